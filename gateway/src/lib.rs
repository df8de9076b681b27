//! The Anode S3 gateway: SigV4, S3 XML and streaming bodies over hyper, on top of the Anode
//! client library. Stateless: any number of gateways can serve the same cluster.
//!
//! Code map (request order):
//! - [`server`]: the hyper driver and the per-request pipeline ([`server::Gateway::handle`]).
//! - [`sigv4`]: signature verification (pure), [`aws_chunked`]: body unframing and checking
//!   (sans IO), [`checksum`]: `x-amz-checksum-*` on uploads (pure), [`auth`]: the secret-key
//!   cache.
//! - [`router`]: (method, bucket, key, query) -> [`router::S3Op`] (pure).
//! - [`handlers`]: one function per operation, calling the [`backend::Backend`] trait
//!   (implemented by [`anode_client::Client`]).
//! - [`xml`], [`http_util`], [`error`]: the pure S3 wire layer.
//! - [`janitor`]: aborts stale multipart uploads; [`stall`]: the write-stall guard on
//!   connections.
//!
//! Architecture invariants:
//! - Only this crate knows S3 XML and SigV4.
//! - No request reaches a handler unauthenticated; anonymous requests get 403 AccessDenied.
//! - A request body that fails a check (payload hash, chunk signature, length, size limit)
//!   ends its payload stream with an error, never a clean end, so nothing is committed.
//! - Every response carries `x-amz-request-id`; every error is rendered once, in
//!   [`server::error_response`].

#![warn(missing_docs)]

pub mod auth;
pub mod aws_chunked;
pub mod backend;
pub mod body;
pub mod checksum;
pub mod error;
pub mod handlers;
pub mod http_util;
pub mod janitor;
pub mod metrics;
pub mod router;
pub mod server;
pub mod sigv4;
pub mod stall;
pub mod xml;

#[cfg(test)]
mod server_tests;
/// The in-memory backend of the tests, also built with the `fuzzing` feature so the fuzz
/// targets (`fuzz/`) can drive whole requests through [`Gateway::handle`].
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

pub use backend::Backend;
pub use error::S3Error;
pub use server::{Gateway, ServerConfig};

/// Development access key: `anode dev` creates it when `ANODE_ACCESS_KEY` is unset, and the
/// load tools (`anode-tools`) sign with it by default.
pub const DEV_ACCESS_KEY: &str = "anodedevaccesskey";
/// Development secret key paired with [`DEV_ACCESS_KEY`].
pub const DEV_SECRET_KEY: &str = "anodedevsecretkey-change-me";

/// `anode gateway` flags (each also read from its `ANODE_*` environment variable).
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    /// S3 listen address.
    #[arg(long, env = "ANODE_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Master addresses (`host:port`, comma-separated).
    #[arg(long, env = "ANODE_MASTERS", value_delimiter = ',', required = true)]
    pub masters: Vec<String>,
    /// Admin HTTP address for /metrics and /health.
    #[arg(long, env = "ANODE_ADMIN_LISTEN", default_value = "127.0.0.1:9001")]
    pub admin_listen: SocketAddr,
    /// Base domain(s) for virtual-hosted-style requests (`<bucket>.<domain>`), comma-separated.
    /// Requests to other hosts use path style.
    #[arg(long, env = "ANODE_DOMAIN", value_delimiter = ',')]
    pub domain: Vec<String>,
    /// Region reported to clients (any region is accepted in signatures).
    #[arg(long, env = "ANODE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Most S3 requests handled at once; past it the gateway answers 503 SlowDown.
    #[arg(long, env = "ANODE_MAX_CONCURRENCY", default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Abort multipart uploads older than this many hours (0 = never).
    #[arg(long, env = "ANODE_MULTIPART_STALE_HOURS", default_value_t = 24)]
    pub multipart_stale_hours: u64,
}

/// A started gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Bound S3 address.
    pub addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Resolves when the gateway stopped (after draining).
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start a gateway on the cluster at `--masters`; it serves until `shutdown` turns true.
pub async fn start(
    args: GatewayArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunningGateway> {
    let client = anode_client::Client::connect(args.masters.clone())
        .await
        .context("client for the masters")?;
    start_with_backend(args, Arc::new(client), shutdown).await
}

/// Start a gateway over any [`Backend`] (tests use an in-memory one).
pub async fn start_with_backend(
    args: GatewayArgs,
    backend: Arc<dyn Backend>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunningGateway> {
    anyhow::ensure!(
        args.max_concurrency > 0,
        "--max-concurrency must be positive"
    );
    std::sync::LazyLock::force(&metrics::METRICS);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind S3 listener {}", args.listen))?;
    let addr = listener.local_addr()?;
    let health = anode_common::Health::new();
    let admin_addr =
        anode_common::serve_admin(args.admin_listen, health.clone(), shutdown.clone()).await?;
    let cfg = ServerConfig {
        domains: args.domain.clone(),
        region: args.region.clone(),
        max_concurrency: args.max_concurrency,
    };
    let gateway = Arc::new(Gateway::new(backend.clone(), cfg));
    if args.multipart_stale_hours > 0 {
        let age = Duration::from_secs(args.multipart_stale_hours * 3600);
        janitor::spawn(backend, age, shutdown.clone());
    }
    health.set(true);
    tracing::info!(%addr, %admin_addr, "S3 gateway serving");
    let mut drain_signal = shutdown.clone();
    let drain_health = health.clone();
    tokio::spawn(async move {
        server::wait_for_true(&mut drain_signal).await;
        drain_health.set(false);
    });
    let done = tokio::spawn(async move {
        server::serve(listener, gateway, shutdown, server::DRAIN_TIMEOUT).await?;
        health.set(false);
        Ok(())
    });
    Ok(RunningGateway {
        addr,
        admin_addr,
        done,
    })
}

/// Run a gateway until `shutdown` turns true and it drained.
pub async fn run(args: GatewayArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let g = start(args, shutdown).await?;
    g.done.await.context("gateway task panicked")?
}
