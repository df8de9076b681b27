//! `anode`: the one binary. Each crate supplies a library and its subcommand.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod bench;
mod chaos_load;
mod dev;
mod s3http;

#[derive(Parser, Debug)]
#[command(
    name = "anode",
    version,
    about = "Anode: an S3-compatible distributed object store"
)]
struct Cli {
    /// TOML file whose keys set flags not given on the command line (`data = "/srv/anode"`,
    /// `masters = "a:7001,b:7001"`; keys are flag names, `-` or `_`).
    #[arg(long, global = true, env = "ANODE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One member of the master raft group.
    Master(anode_master::MasterArgs),
    /// A chunkserver: blob store, data API and heartbeat.
    Chunkserver(anode_chunkserver::ChunkserverArgs),
    /// A stateless S3 gateway.
    Gateway(anode_gateway::GatewayArgs),
    /// The operator CLI.
    Ctl(anode_master::ctl::CtlArgs),
    /// A whole cluster in one process for a first try.
    Dev(dev::DevArgs),
    /// Load tools (metadata throughput, ...).
    Bench(bench::BenchArgs),
    /// Chaos workload recorder: concurrent put/get/delete through S3 endpoints, written as a
    /// JSON Lines history for `anode-lincheck` (or write-once puts and their verification).
    ChaosLoad(chaos_load::ChaosLoadArgs),
}

/// Turn `--config FILE` entries into `ANODE_*` environment variables (flags and real
/// environment variables win), before clap parses flags for real.
fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(String::from))
        })
        .or_else(|| std::env::var("ANODE_CONFIG").ok());
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("read config {path}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parse config {path}"))?;
    for (k, v) in table {
        let var = format!("ANODE_{}", k.to_uppercase().replace('-', "_"));
        if std::env::var_os(&var).is_some() {
            continue;
        }
        let val = match v {
            toml::Value::String(s) => s,
            toml::Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        // SAFETY: single-threaded at this point (before the runtime starts).
        unsafe { std::env::set_var(var, val) };
    }
    Ok(())
}

/// A panic anywhere (the raft thread, a tokio worker, a blocking-pool thread) ends the whole
/// process at once, like `kill -9`: after printing the usual message, `abort`. Without this a
/// panicking raft thread would leave a member that still holds its port and answers but never
/// makes progress, and a panicking task would just fail one request while its process keeps
/// whatever half-done state it left. Recovery from a crash is what the on-disk formats are
/// built for; recovery from an unknown in-memory state is not.
fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
}

fn main() -> anyhow::Result<()> {
    abort_on_panic();
    // Fail points from FAILPOINTS (`name=actions;...`), kept for the whole process.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    apply_config_file()?;
    let cli = Cli::parse();
    let _ = &cli.config;
    anode_common::init_tracing();
    #[cfg(feature = "failpoints")]
    if let Ok(fp) = std::env::var("FAILPOINTS") {
        tracing::warn!(failpoints = %fp, "fail points configured");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Ctl(a) => anode_master::ctl::run(a).await,
            Cmd::Master(a) => anode_master::run(a, anode_common::shutdown_on_signals()).await,
            Cmd::Chunkserver(a) => {
                anode_chunkserver::run(a, anode_common::shutdown_on_signals()).await
            }
            Cmd::Gateway(a) => anode_gateway::run(a, anode_common::shutdown_on_signals()).await,
            Cmd::Dev(a) => dev::run(a, anode_common::shutdown_on_signals()).await,
            Cmd::Bench(a) => bench::run(a).await,
            Cmd::ChaosLoad(a) => chaos_load::run(a).await,
        }
    })
}
