//! `anode-toxiproxy`: the Toxiproxy-compatible server binary (flags like `toxiproxy-server`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// A Toxiproxy 2.x API compatible TCP fault-injection proxy (engine: noxious).
#[derive(Parser, Debug)]
#[command(name = "anode-toxiproxy", version)]
struct Args {
    /// Host of the HTTP API.
    #[arg(long, env = "TOXIPROXY_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port of the HTTP API.
    #[arg(long, env = "TOXIPROXY_PORT", default_value_t = 8474)]
    port: u16,
    /// Seed for the per-connection randomness of toxics (toxicity, jitter, slicer sizes).
    #[arg(long, env = "ANODE_SEED")]
    seed: Option<u64>,
    /// JSON file of proxies to create at start (the body of `POST /populate`: a list, or
    /// `{"proxies": [...]}`), like `toxiproxy-server -config`.
    #[arg(long, env = "TOXIPROXY_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anode_common::init_tracing();
    let args = Args::parse();
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("bad --host/--port {}:{}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the API on {addr}"))?;
    tracing::info!(api = %listener.local_addr()?, seed = ?args.seed, "anode-toxiproxy listening");
    let registry = Arc::new(anode_toxiproxy::Registry::new(args.seed));
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --config {}", path.display()))?;
        let list = serde_json::from_str::<anode_toxiproxy::model::PopulateBody>(&text)
            .with_context(|| format!("parsing --config {}", path.display()))?
            .into_list();
        let n = list.len();
        registry
            .populate(list)
            .await
            .with_context(|| format!("creating the proxies of {}", path.display()))?;
        tracing::info!(proxies = n, config = %path.display(), "proxies created from the config file");
    }
    let shutdown = anode_common::shutdown_on_signals();
    anode_toxiproxy::http::serve(listener, registry, shutdown).await;
    tracing::info!("anode-toxiproxy stopped");
    Ok(())
}
