//! The Anode S3 gateway: SigV4, S3 XML and streaming bodies over hyper, on top of the Anode
//! client library. Stateless: any number of gateways can serve the same cluster.
//!
//! Code map (request order):
//! - [`server`]: the hyper driver and the per-request pipeline ([`server::Gateway::handle`]).
//! - [`sigv4`] and [`sigv2`]: signature verification (pure), [`aws_chunked`]: body unframing and checking
//!   (sans IO), [`checksum`]: `x-amz-checksum-*` on uploads (pure), [`auth`]: the key cache
//!   (secret, principal, disabled, expiry; 10 s).
//! - POST Object (browser form uploads, authenticated by their fields): [`post_form`] (the
//!   streaming `multipart/form-data` parser, sans IO), [`post_policy`] (the policy document and
//!   its decision, pure), `server::post_object` (the driver).
//! - [`router`]: (method, bucket, key, query) -> [`router::S3Op`] (pure).
//! - [`authz`]: the principal and the one authorization decision, `authorize` (pure), called
//!   by [`server`] for every bucket an operation touches before its handler.
//! - [`handlers`]: one function per operation, calling the [`backend::Backend`] trait
//!   (implemented by [`anode_client::Client`]).
//! - [`xml`], [`http_util`], [`error`]: the pure S3 wire layer; [`access_xml`] and
//!   [`acl_headers`]: its access-configuration documents (ACLs, PublicAccessBlock,
//!   OwnershipControls, PolicyStatus) and ACL request headers.
//! - [`audit`]: the audit log (one JSON line per request, a bounded queue to one writer
//!   thread, size rotation), fed by [`server`] when a response body ends.
//! - [`janitor`]: aborts stale multipart uploads; [`stall`]: minimum transfer rates (response
//!   writes and request bodies); [`tls`]: S3 over HTTPS with the certificate reloaded on SIGHUP.
//!
//! Architecture invariants:
//! - Only this crate knows S3 XML, SigV4 and SigV2.
//! - No request reaches a handler unauthenticated; anonymous requests get 403 AccessDenied.
//! - No request reaches a handler unauthorized: [`authz::authorize`] allowed it for the target
//!   bucket and a copy's source bucket.
//! - A request body that fails a check (payload hash, chunk signature, length, size limit)
//!   ends its payload stream with an error, never a clean end, so nothing is committed.
//! - Every response carries `x-amz-request-id`; every error is rendered once, in
//!   [`server::error_response`].

#![warn(missing_docs)]

pub mod access;
pub mod access_xml;
pub mod acl_headers;
pub mod attributes;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod aws_chunked;
pub mod backend;
pub mod body;
pub mod bucket_cache;
pub mod checksum;
pub mod cors;
pub mod error;
pub mod handlers;
pub mod http_util;
pub mod janitor;
pub mod lifecycle;
pub mod lifecycle_xml;
pub mod metrics;
pub mod notify;
pub mod notify_xml;
pub mod object_lock;
pub mod post_form;
pub mod post_policy;
pub mod router;
pub mod server;
pub mod sigv2;
pub mod sigv4;
pub mod stall;
pub mod tagging;
pub mod tls;
pub mod versioning;
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
    /// gRPC to masters and chunkservers: mutual TLS with a gateway certificate
    /// (`--certs-dir`), or `--insecure-no-tls`.
    #[command(flatten)]
    pub grpc_tls: anode_tls::TlsArgs,
    /// Admin HTTP address: a page naming this gateway at /, /metrics and /health.
    /// Unauthenticated and read-only: bind it to a private address.
    #[arg(long, env = "ANODE_ADMIN_LISTEN", default_value = "127.0.0.1:9001")]
    pub admin_listen: SocketAddr,
    /// Admin addresses of the masters (`host:port` or URLs, comma-separated), linked from
    /// this gateway's admin page (the status page is on the masters).
    #[arg(long, env = "ANODE_MASTER_ADMIN", value_delimiter = ',')]
    pub master_admin: Vec<String>,
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
    /// Most ListenBucketNotification answers streaming at once (each also holds one of the
    /// `--max-concurrency` slots); past it the gateway answers 503 SlowDown.
    #[arg(long, env = "ANODE_MAX_LISTENERS", default_value_t = notify::DEFAULT_MAX_LISTENERS)]
    pub max_listeners: usize,
    /// Parquet indexing (docs/parquet.md): bytes of a Parquet file's end kept in the metadata
    /// beside its footer, so engines' first reads of the end are answered without chunk reads
    /// (pyarrow reads the last 64 KiB). 0 keeps the footer only.
    #[arg(long, env = "ANODE_PARQUET_TAIL_WINDOW", default_value_t = 64 << 10)]
    pub parquet_tail_window: u64,
    /// Largest stored Parquet tail (footer and trailer included): files with larger footers
    /// are stored without an index. At most 4 MiB; 0 turns Parquet indexing off.
    #[arg(long, env = "ANODE_PARQUET_MAX_TAIL", default_value_t = 4 << 20)]
    pub parquet_max_tail: u64,
    /// How long, in milliseconds, a bucket's owner, policy, ACL, ownership and
    /// PublicAccessBlock are trusted before they are read from the masters again: a change
    /// made through another gateway takes effect here within this time (changes made through
    /// this gateway at once). 0 reads them on every request.
    #[arg(long, env = "ANODE_BUCKET_CACHE_TTL_MS", default_value_t = bucket_cache::BUCKET_CACHE_TTL.as_millis() as u64)]
    pub bucket_cache_ttl_ms: u64,
    /// Abort multipart uploads older than this many hours (0 = never).
    #[arg(long, env = "ANODE_MULTIPART_STALE_HOURS", default_value_t = 24)]
    pub multipart_stale_hours: u64,
    /// S3 over HTTPS: the certificate chain (PEM, leaf first). With `--tls-key`, the gateway
    /// also serves HTTPS on `--https-listen`; the plain `--listen` stays for loopback use.
    /// Reloaded on SIGHUP.
    #[arg(long, env = "ANODE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ANODE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// HTTPS listen address (used with `--tls-cert` and `--tls-key`).
    #[arg(long, env = "ANODE_HTTPS_LISTEN", default_value = "127.0.0.1:9443")]
    pub https_listen: SocketAddr,
    /// Most open S3 connections over both listeners; past it new connections are closed.
    #[arg(long, env = "ANODE_MAX_CONNECTIONS", default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most headers in one request (431 past it).
    #[arg(long, env = "ANODE_MAX_HEADERS", default_value_t = server::DEFAULT_MAX_HEADERS)]
    pub max_headers: usize,
    /// Largest request line plus headers, in bytes (431 past it).
    #[arg(long, env = "ANODE_MAX_HEADER_BYTES", default_value_t = server::DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Minimum transfer rate, in bytes per second, while the gateway waits for a client (an
    /// upload body, or a response the client does not read), measured over
    /// `--transfer-rate-window-secs` of waiting. Slower uploads get 400 RequestTimeout; slower
    /// downloads are cut. 0 still ends a complete stall after one window.
    #[arg(long, env = "ANODE_MIN_TRANSFER_RATE", default_value_t = stall::DEFAULT_MIN_BYTES_PER_SEC)]
    pub min_transfer_rate: u64,
    /// The window of `--min-transfer-rate`, in seconds.
    #[arg(long, env = "ANODE_TRANSFER_RATE_WINDOW_SECS", default_value_t = stall::DEFAULT_RATE_WINDOW.as_secs())]
    pub transfer_rate_window_secs: u64,
    /// Audit log: one JSON line per S3 request (allowed or refused) to this file, rotated by
    /// size, or `-` for stdout. Off when unset. See docs/security.md.
    #[arg(long, env = "ANODE_AUDIT_LOG")]
    pub audit_log: Option<std::path::PathBuf>,
    /// Rotate the audit log file before it would grow past this many bytes.
    #[arg(long, env = "ANODE_AUDIT_LOG_MAX_BYTES", default_value_t = audit::DEFAULT_MAX_BYTES)]
    pub audit_log_max_bytes: u64,
    /// Rotated audit log files kept (`PATH.1` newest ... `PATH.N` oldest; 0 keeps none).
    #[arg(long, env = "ANODE_AUDIT_LOG_KEEP", default_value_t = audit::DEFAULT_KEEP)]
    pub audit_log_keep: usize,
}

impl GatewayArgs {
    /// Defaults for a gateway on loopback with OS-chosen ports (tests).
    pub fn local(masters: Vec<String>) -> GatewayArgs {
        GatewayArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            masters,
            // No certificates: set them for a gateway that calls real masters.
            grpc_tls: Default::default(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            master_admin: Vec::new(),
            domain: Vec::new(),
            region: "us-east-1".into(),
            max_concurrency: 1024,
            max_listeners: notify::DEFAULT_MAX_LISTENERS,
            parquet_tail_window: 64 << 10,
            parquet_max_tail: 4 << 20,
            multipart_stale_hours: 0,
            bucket_cache_ttl_ms: bucket_cache::BUCKET_CACHE_TTL.as_millis() as u64,
            tls_cert: None,
            tls_key: None,
            https_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
            max_headers: server::DEFAULT_MAX_HEADERS,
            max_header_bytes: server::DEFAULT_MAX_HEADER_BYTES,
            min_transfer_rate: stall::DEFAULT_MIN_BYTES_PER_SEC,
            transfer_rate_window_secs: stall::DEFAULT_RATE_WINDOW.as_secs(),
            audit_log: None,
            audit_log_max_bytes: audit::DEFAULT_MAX_BYTES,
            audit_log_keep: audit::DEFAULT_KEEP,
        }
    }

    /// The audit log of `--audit-log`, started (the file is opened now), or `None`.
    fn audit_log(&self) -> anyhow::Result<Option<audit::AuditLog>> {
        let Some(path) = &self.audit_log else {
            return Ok(None);
        };
        anyhow::ensure!(
            self.audit_log_max_bytes >= AUDIT_LOG_MIN_BYTES,
            "--audit-log-max-bytes must be at least {AUDIT_LOG_MIN_BYTES}"
        );
        let target = audit::Target::from_flag(path, self.audit_log_max_bytes, self.audit_log_keep);
        let log = audit::AuditLog::start(target)
            .with_context(|| format!("open the audit log {}", path.display()))?;
        tracing::info!(path = %path.display(), "audit log on");
        Ok(Some(log))
    }

    fn min_rate(&self) -> stall::MinRate {
        stall::MinRate::per_sec(
            self.min_transfer_rate,
            Duration::from_secs(self.transfer_rate_window_secs),
        )
    }
}

/// Smallest `--audit-log-max-bytes` (a few records).
pub const AUDIT_LOG_MIN_BYTES: u64 = 4096;
/// How long a stopping gateway waits for the audit log's queued records to be written.
pub const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A started gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Bound S3 address.
    pub addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Bound HTTPS address, when serving HTTPS.
    pub https_addr: Option<SocketAddr>,
    /// The HTTPS certificate (reloaded on SIGHUP; tests reload it directly).
    pub tls: Option<Arc<tls::ReloadingCert>>,
    /// Resolves when the gateway stopped (after draining).
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start a gateway on the cluster at `--masters`; it serves until `shutdown` turns true.
pub async fn start(
    args: GatewayArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunningGateway> {
    let tls = args.grpc_tls.load_as(anode_tls::Role::Gateway, None)?;
    // The gateway never reads the client's manifest cache (every GET asks the leader), so it
    // is off: no manifest clone and no LRU lock per GET and PUT.
    anyhow::ensure!(
        args.parquet_max_tail <= anode_meta::state::MAX_PARQUET_TAIL,
        "--parquet-max-tail {} is over {}",
        args.parquet_max_tail,
        anode_meta::state::MAX_PARQUET_TAIL
    );
    let parquet = (args.parquet_max_tail > 0).then(|| anode_client::parquet::Limits {
        max_tail: args.parquet_max_tail,
        window: args.parquet_tail_window,
        ..Default::default()
    });
    let cfg = anode_client::ClientConfig {
        tls: Some(tls),
        manifest_cache_entries: 0,
        parquet,
        ..anode_client::ClientConfig::default()
    };
    let client = anode_client::Client::with_config(args.masters.clone(), cfg)
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
    anyhow::ensure!(
        args.max_connections > 0,
        "--max-connections must be positive"
    );
    anyhow::ensure!(
        args.max_header_bytes >= 1024,
        "--max-header-bytes must be at least 1024"
    );
    std::sync::LazyLock::force(&metrics::METRICS);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind S3 listener {}", args.listen))?;
    let addr = listener.local_addr()?;
    let https = https_listener(&args, shutdown.clone()).await?;
    let health = anode_common::Health::new();
    let mut serves = vec![("S3".to_string(), addr.to_string())];
    if let Some(h) = &https {
        serves.push(("S3 over HTTPS".to_string(), h.addr.to_string()));
    }
    // A gateway has no cluster id: it is named by its S3 address.
    let page = anode_common::admin_html::NodePage {
        role: "gateway".into(),
        id: addr.to_string(),
        serves,
        master_grpc: args.masters.clone(),
        master_admin: args.master_admin.clone(),
    };
    let admin_addr = anode_common::serve_admin_with(
        args.admin_listen,
        health.clone(),
        Arc::new(page),
        shutdown.clone(),
    )
    .await?;
    let cfg = ServerConfig {
        domains: args.domain.clone(),
        region: args.region.clone(),
        max_concurrency: args.max_concurrency,
        min_rate: args.min_rate(),
        bucket_cache_ttl: Duration::from_millis(args.bucket_cache_ttl_ms),
        max_listeners: args.max_listeners,
    };
    let audit = args.audit_log()?;
    let mut gateway = Gateway::new(backend.clone(), cfg).with_shutdown(shutdown.clone());
    if let Some(log) = &audit {
        gateway = gateway.with_audit(log.clone());
    }
    let gateway = Arc::new(gateway);
    if args.multipart_stale_hours > 0 {
        let age = Duration::from_secs(args.multipart_stale_hours * 3600);
        janitor::spawn(backend, age, shutdown.clone());
    }
    health.set(true);
    let https_addr = https.as_ref().map(|h| h.addr);
    tracing::info!(%addr, ?https_addr, %admin_addr, "S3 gateway serving");
    let mut drain_signal = shutdown.clone();
    let drain_health = health.clone();
    tokio::spawn(async move {
        server::wait_for_true(&mut drain_signal).await;
        drain_health.set(false);
    });
    let limits = server::ConnLimits {
        max_connections: args.max_connections,
        max_headers: args.max_headers,
        max_header_bytes: args.max_header_bytes,
        min_rate: args.min_rate(),
    };
    let connections = Arc::new(tokio::sync::Semaphore::new(args.max_connections));
    let mut listeners = vec![server::Listener {
        tcp: listener,
        tls: None,
    }];
    let tls = https.map(|h| {
        listeners.push(h.listener);
        h.cert
    });
    let serving: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let serve = server::serve(
                l,
                gateway.clone(),
                limits.clone(),
                connections.clone(),
                shutdown.clone(),
                server::DRAIN_TIMEOUT,
            );
            tokio::spawn(serve)
        })
        .collect();
    let done = tokio::spawn(async move {
        for s in serving {
            s.await.context("S3 listener task panicked")??;
        }
        health.set(false);
        if let Some(log) = audit {
            let flushed = tokio::task::spawn_blocking(move || log.flush(AUDIT_FLUSH_TIMEOUT))
                .await
                .unwrap_or(false);
            if !flushed {
                tracing::warn!("audit log not flushed at shutdown: queued records may be lost");
            }
        }
        Ok(())
    });
    Ok(RunningGateway {
        addr,
        admin_addr,
        https_addr,
        tls,
        done,
    })
}

struct Https {
    listener: server::Listener,
    addr: SocketAddr,
    cert: Arc<tls::ReloadingCert>,
}

/// The HTTPS listener when `--tls-cert` and `--tls-key` are given (certificate reloaded on
/// SIGHUP from then on).
async fn https_listener(
    args: &GatewayArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Https>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let cert = Arc::new(tls::ReloadingCert::load(cert, key)?);
    let config = tls::server_config(cert.clone())?;
    let tcp = tokio::net::TcpListener::bind(args.https_listen)
        .await
        .with_context(|| format!("bind S3 HTTPS listener {}", args.https_listen))?;
    let addr = tcp.local_addr()?;
    tls::spawn_sighup_reloader(cert.clone(), shutdown).context("SIGHUP handler")?;
    Ok(Some(Https {
        listener: server::Listener {
            tcp,
            tls: Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        },
        addr,
        cert,
    }))
}

/// Run a gateway until `shutdown` turns true and it drained.
pub async fn run(args: GatewayArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let g = start(args, shutdown).await?;
    g.done.await.context("gateway task panicked")?
}
