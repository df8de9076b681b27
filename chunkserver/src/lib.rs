//! Anode chunkserver: a content-addressed SHA-256 blob store on local disks with a streamed
//! data API, heartbeats to the master leader, read repair and a scrubber.
//!
//! Architecture invariant: a chunkserver holds no metadata; it only knows blobs by hash.
//! A put is acknowledged only after the bytes hashed to the id and the blob is durable
//! (temp file fsynced, renamed, directory fsynced; every directory it had to create fsynced
//! with its parent). Every read is verified once: a full read by the reader's SHA-256 (or here,
//! when the reader asks), a ranged read here against the blob's per-block CRC-32Cs (or its
//! whole SHA-256 for a blob without them); the scrubber re-hashes blobs at rest.

pub mod blocksums;
pub mod direct;
pub mod error;
pub mod exports;
pub mod format;
pub mod heartbeat;
pub mod limits;
pub mod metrics;
pub mod scrub;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anode_proto::chunkserver_server::ChunkserverServer;
use anyhow::Context;
use tokio::sync::watch;

/// Largest gRPC message of the data API.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Flags of `anode chunkserver`; every flag also reads an `ANODE_*` variable.
#[derive(clap::Args, Clone, Debug)]
pub struct ChunkserverArgs {
    /// Data directories (disks), comma-separated or repeated.
    #[arg(long, env = "ANODE_DATA", value_delimiter = ',', required = true)]
    pub data: Vec<PathBuf>,
    /// Data API listen address.
    #[arg(long, env = "ANODE_LISTEN", default_value = "127.0.0.1:7101")]
    pub listen: SocketAddr,
    /// Address given to the master for clients (default: the listen address).
    #[arg(long, env = "ANODE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Master addresses.
    #[arg(
        long,
        env = "ANODE_MASTERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    pub masters: Vec<String>,
    /// Rack label (placement keeps copies on distinct racks).
    #[arg(long, env = "ANODE_RACK", default_value = "")]
    pub rack: String,
    /// Capacity in bytes (0 = no limit beyond the disks).
    #[arg(long, env = "ANODE_CAPACITY", default_value_t = 0)]
    pub capacity: u64,
    /// Admin HTTP address: a page naming this server at /, /metrics and /health.
    /// Unauthenticated and read-only: bind it to a private address.
    #[arg(long, env = "ANODE_ADMIN_LISTEN", default_value = "127.0.0.1:7181")]
    pub admin_listen: SocketAddr,
    /// Admin addresses of the masters (`host:port` or URLs, comma-separated), linked from
    /// this server's admin page (the status page is on the masters).
    #[arg(long, env = "ANODE_MASTER_ADMIN", value_delimiter = ',')]
    pub master_admin: Vec<String>,
    /// Heartbeat interval.
    #[arg(long, env = "ANODE_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// Scrubber rate (0 = off).
    #[arg(long, env = "ANODE_SCRUB_BYTES_PER_SEC", default_value_t = 32 << 20)]
    pub scrub_bytes_per_sec: u64,
    /// Pause between scrub passes.
    #[arg(long, env = "ANODE_SCRUB_INTERVAL_SECS", default_value_t = 3600)]
    pub scrub_interval_secs: u64,
    /// Send a full chunk report this often (copies lost behind the server's back, e.g. a
    /// blob file removed by hand, are noticed by the master at the next full report).
    #[arg(long, env = "ANODE_FULL_REPORT_SECS", default_value_t = 600)]
    pub full_report_secs: u64,
    /// Write blobs around the page cache (`O_DIRECT` where the filesystem takes it; see
    /// `anode_chunkserver::direct`): large PUTs cost about half the CPU per byte (no copy
    /// into the page cache), but the first read of a fresh blob comes from the disk (16 MiB
    /// GETs right after their PUTs measured 0.47-0.87x). Off by default: reads are what
    /// users notice first.
    #[arg(long, env = "ANODE_DIRECT_WRITES")]
    pub direct_writes: bool,
    /// Metadata exports (copies of the master's metadata, for `anode ctl rebuild`) kept per
    /// data directory; older ones are removed as new ones arrive.
    #[arg(long, env = "ANODE_EXPORTS_KEEP", default_value_t = exports::DEFAULT_KEEP)]
    pub exports_keep: usize,
    /// Mutual TLS (`--certs-dir`, a chunkserver certificate) or `--insecure-no-tls`.
    #[command(flatten)]
    pub tls: anode_tls::TlsArgs,
}

/// The admin page at `/`: role, the id the master gave (once registered), master links.
struct AdminPage {
    id: Arc<AtomicU64>,
    page: anode_common::admin_html::NodePage,
}

impl anode_common::AdminRoutes for AdminPage {
    fn get(&self, path: &str) -> Option<anode_common::AdminPage> {
        let mut page = self.page.clone();
        page.id = match self.id.load(std::sync::atomic::Ordering::SeqCst) {
            0 => "(not registered yet)".into(),
            n => n.to_string(),
        };
        page.get(path)
    }
}

/// Run a chunkserver until `shutdown` turns true.
pub async fn run(args: ChunkserverArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    metrics::init();
    let tls = args.tls.load_as(anode_tls::Role::Chunkserver, None)?;
    let store = store::BlobStore::open(&args.data, args.capacity)
        .context("open blob store")?
        .with_direct_io(args.direct_writes);
    let uuid = store::load_uuid(&args.data[0])?;
    let exports =
        exports::ExportStore::open(&args.data, args.exports_keep).context("open exports")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    let health = anode_common::Health::new();
    let id = Arc::new(AtomicU64::new(0));
    let page = AdminPage {
        id: id.clone(),
        page: anode_common::admin_html::NodePage {
            role: "chunkserver".into(),
            id: String::new(),
            serves: vec![
                ("data API (gRPC)".into(), addr.to_string()),
                ("rack".into(), args.rack.clone()),
            ],
            master_grpc: args.masters.clone(),
            master_admin: args.master_admin.clone(),
        },
    };
    let admin = anode_common::serve_admin_with(
        args.admin_listen,
        health.clone(),
        Arc::new(page),
        shutdown.clone(),
    )
    .await?;
    let epoch = Arc::new(AtomicU64::new(0));
    let hb = heartbeat::Heartbeat {
        store: store.clone(),
        masters: heartbeat::master_conn(args.masters.clone(), tls.clone()),
        advertise: args.advertise.clone().unwrap_or_else(|| addr.to_string()),
        rack: args.rack.clone(),
        uuid,
        interval: Duration::from_millis(args.heartbeat_ms),
        full_report_every: Duration::from_secs(args.full_report_secs.max(1)),
        epoch: epoch.clone(),
        id,
        tls: tls.clone(),
    };
    tokio::spawn(hb.run(shutdown.clone()));
    let scrub_rate = Arc::new(AtomicU64::new(args.scrub_bytes_per_sec));
    scrub::spawn_rate_reloader(scrub_rate.clone(), shutdown.clone())?;
    tokio::spawn(scrub::run(
        store.clone(),
        scrub_rate,
        Duration::from_secs(args.scrub_interval_secs),
        shutdown.clone(),
    ));
    let svc = ChunkserverServer::new(service::DataService::new(store, epoch).with_exports(exports))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    health.set(true);
    tracing::info!(%addr, %admin, "chunkserver serving");
    let mut sd = shutdown.clone();
    let serve = limits::windows(limits::LIMITS.apply(tls.server_builder()?))
        .layer(tls.authz_layer())
        .tcp_nodelay(true)
        .trace_fn(anode_common::rpc_span)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = sd.wait_for(|v| *v).await;
                health.set(false);
            },
        );
    let mut sd2 = shutdown;
    tokio::select! {
        r = serve => r.context("grpc server")?,
        _ = async { let _ = sd2.wait_for(|v| *v).await; tokio::time::sleep(Duration::from_secs(10)).await } => {
            tracing::warn!("drain timed out; exiting");
        }
    }
    Ok(())
}
