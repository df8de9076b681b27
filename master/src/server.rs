//! `anode master`: wires the store, the raft node, the transport, the gRPC API and the admin
//! endpoint together, and drains on shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anode_proto::master_server::MasterServer;
use anode_proto::raft_transport_server::RaftTransportServer;
use anyhow::Context;
use tokio::sync::watch;
use tonic::transport::server::Router;

use crate::node::{self, NodeConfig, NodeHandle};
use crate::service::MasterService;
use crate::status_page::{EventLog, MasterAdmin};
use crate::store::RaftStore;
use crate::transport::{GrpcOutbox, RaftService, MAX_RAFT_MESSAGE_BYTES};
use anode_meta::leases::LeaseConfig;
use anode_meta::membership::Role;

/// Flags of `anode master`. Every flag also reads an `ANODE_*` environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct MasterArgs {
    /// This member's raft id (non-zero, unique in the group).
    #[arg(long, env = "ANODE_ID")]
    pub id: u64,
    /// Data directory (RocksDB lives in DIR/raft).
    #[arg(long, env = "ANODE_DATA")]
    pub data: PathBuf,
    /// gRPC listen address (clients, chunkservers and raft peers).
    #[arg(long, env = "ANODE_LISTEN", default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,
    /// Initial members as `ID=ADDR,...` (include this member). Ignored once the data dir is initialized.
    #[arg(long, env = "ANODE_PEERS", default_value = "")]
    pub peers: String,
    /// Address peers and clients use to reach this member (default: its --peers entry, else --listen).
    #[arg(long, env = "ANODE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Start empty and wait to be added with `anode ctl members add` (do not bootstrap).
    #[arg(long, env = "ANODE_JOIN")]
    pub join: bool,
    /// Find the group through these masters (`host:port,...`; dead ones are skipped) and ask
    /// its leader to add this member (learner, then voter). Implies --join. Needs
    /// --advertise (or a --peers entry) for the address the group will use.
    #[arg(long, env = "ANODE_JOIN_SEEDS", value_delimiter = ',')]
    pub join_seeds: Vec<String>,
    /// Find the group through every A/AAAA record of `NAME:PORT` (a Kubernetes headless
    /// Service) and ask to be added, as --join-seeds. Implies --join.
    #[arg(long, env = "ANODE_JOIN_DNS")]
    pub join_dns: Option<String>,
    /// Start a NEW group from the backup in DIR (`anode ctl backup DIR`): every member of the
    /// new group passes the same DIR and --peers. Refused when the data dir is already
    /// initialized (unless by a restore of this same backup). See docs/operations.md.
    #[arg(long, env = "ANODE_RESTORE", conflicts_with_all = ["join", "join_seeds", "join_dns"])]
    pub restore: Option<PathBuf>,
    /// Admin HTTP address: the status page at /, its JSON at /api/status, /metrics and
    /// /health. Unauthenticated and read-only: bind it to a private address.
    #[arg(long, env = "ANODE_ADMIN_LISTEN", default_value = "127.0.0.1:7081")]
    pub admin_listen: SocketAddr,
    /// Milliseconds per raft tick.
    #[arg(long, env = "ANODE_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,
    /// Election timeout in ticks.
    #[arg(long, env = "ANODE_ELECTION_TICKS", default_value_t = 10)]
    pub election_ticks: usize,
    /// Chunkserver lease in milliseconds (suspect after).
    #[arg(long, env = "ANODE_LEASE_MS", default_value_t = 3_000)]
    pub lease_ms: u64,
    /// Drift bound of the leader's read lease, ms: the lease lasts
    /// `(election_ticks - 1) * tick_ms` less this (700 ms by default). At or above that window
    /// there is no lease and every read takes a ReadIndex round. See docs/architecture.md.
    #[arg(long, env = "ANODE_LEASE_MAX_DRIFT_MS", default_value_t = node::DEFAULT_LEASE_MAX_DRIFT_MS)]
    pub lease_max_drift_ms: u64,
    /// A chunkserver silent this long is dead.
    #[arg(long, env = "ANODE_DEAD_AFTER_MS", default_value_t = 30_000)]
    pub dead_after_ms: u64,
    /// Compact the raft log past this many applied entries (keeping the last
    /// min(20,000, half of this) for followers that lag; see docs/architecture.md).
    #[arg(long, env = "ANODE_COMPACT_THRESHOLD", default_value_t = 40_000)]
    pub compact_threshold: u64,
    /// An unreferenced chunk is tombstoned (then deleted) after this long.
    #[arg(long, env = "ANODE_GC_GRACE_MS", default_value_t = 60_000)]
    pub gc_grace_ms: u64,
    /// Writers touch copies older than this before committing; chunkservers delete garbage
    /// only when untouched for this long (plus the clock-skew margin).
    #[arg(long, env = "ANODE_TOUCH_AFTER_MS", default_value_t = 300_000)]
    pub touch_after_ms: u64,
    /// Allowed wall-clock difference between masters, writers and chunkservers.
    #[arg(long, env = "ANODE_CLOCK_SKEW_MS", default_value_t = 30_000)]
    pub clock_skew_ms: u64,
    /// Replication and deletion tasks per chunkserver at once.
    #[arg(long, env = "ANODE_REPAIR_PER_SERVER", default_value_t = 16)]
    pub repair_per_server: usize,
    /// Replication and deletion tasks in the cluster at once.
    #[arg(long, env = "ANODE_REPAIR_TOTAL", default_value_t = 64)]
    pub repair_total: usize,
    /// Rebalance while the used-space fractions of chunkservers differ by more than this.
    #[arg(long, env = "ANODE_REBALANCE_SPREAD", default_value_t = 0.10)]
    pub rebalance_spread: f64,
    /// Milliseconds between healing sweeps of the chunk table (stretched to 4x the last
    /// sweep's duration when sweeps get long, so they use at most 1/5 of the leader's time).
    #[arg(long, env = "ANODE_HEAL_INTERVAL_MS", default_value_t = 500)]
    pub heal_interval_ms: u64,
    /// Most buckets (and users) with their own usage series on the leader's `/metrics`
    /// (`anode_bucket_usage`, `anode_user_usage`); the others are summed under the label
    /// `(other)`, so the series stay bounded however many buckets there are.
    #[arg(long, env = "ANODE_METRICS_MAX_BUCKETS", default_value_t = crate::metrics::DEFAULT_USAGE_SERIES_CAP)]
    pub metrics_max_buckets: usize,
    /// Seconds between metadata exports to chunkservers, taken by the leader for `anode ctl
    /// rebuild` when every master's data is lost (0 = off). Objects committed after the
    /// newest export are not in a rebuilt namespace: this is the recovery point.
    #[arg(
        long,
        env = "ANODE_METADATA_EXPORT_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub metadata_export_interval_secs: u64,
    /// Chunkservers that keep a copy of each metadata export (distinct racks where possible).
    #[arg(long, env = "ANODE_METADATA_EXPORT_COPIES", default_value_t = 3)]
    pub metadata_export_copies: usize,
    /// Length of a lifecycle "day" in seconds: rule ages count in these. DEBUG SETTING for
    /// tests (as RGW's `rgw_lc_debug_interval`); anything but 86400 makes objects expire
    /// sooner, and the master logs a warning.
    #[arg(long, env = "ANODE_LIFECYCLE_DAY_SECS", default_value_t = crate::lifecycle::DAY_SECS)]
    pub lifecycle_day_secs: u64,
    /// Seconds from the end of a bucket's lifecycle pass to the start of its next one (at
    /// most one lifecycle day).
    #[arg(long, env = "ANODE_LIFECYCLE_INTERVAL_SECS", default_value_t = 3600)]
    pub lifecycle_interval_secs: u64,
    /// Most lifecycle batches (each up to 1,000 keys examined and 100 actions) the leader
    /// proposes per second, over every bucket.
    #[arg(long, env = "ANODE_LIFECYCLE_BATCHES_PER_SEC", default_value_t = 10)]
    pub lifecycle_batches_per_sec: u32,
    /// `awsRegion` of the S3 event records the leader sends to notification targets (the
    /// gateways' `--region`).
    #[arg(long, env = "ANODE_NOTIFY_REGION", default_value = "us-east-1")]
    pub notify_region: String,
    /// Longest wait between two attempts to deliver an event to a failing target, ms.
    #[arg(long, env = "ANODE_NOTIFY_RETRY_MAX_MS", default_value_t = 10_000)]
    pub notify_retry_max_ms: u64,
    /// Mutual TLS (`--certs-dir`, a master certificate with this member's id) or
    /// `--insecure-no-tls`.
    #[command(flatten)]
    pub tls: anode_tls::TlsArgs,
}

/// Parse `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("peer {part:?} is not ID=ADDR"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("bad peer id in {part:?}"))?;
        anyhow::ensure!(id != 0, "peer id 0 is reserved");
        out.insert(id, addr.trim().to_string());
    }
    Ok(out)
}

/// A running master (for tests and the embedded `anode dev`).
pub struct RunningMaster {
    /// Bound gRPC address.
    pub addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// The raft node.
    pub node: NodeHandle,
    /// Resolves when the server stopped.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start a master; it runs until `shutdown` turns true.
///
/// Steps: open the store, start the raft node, serve the admin endpoint, bind the gRPC
/// listener, build the metadata service and its background loops, then serve gRPC (metadata
/// API and raft transport) in a task that drains on shutdown.
pub async fn start(
    args: MasterArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunningMaster> {
    anyhow::ensure!(args.id != 0, "--id must be non-zero");
    let peers = parse_peers(&args.peers)?;
    let tls = args
        .tls
        .load_as(anode_tls::Role::Master, Some(&args.id.to_string()))?;
    let seeds = crate::join::Seeds::from_args(&args);
    if seeds.is_some() {
        let advertise = advertise_addr(&args, &peers);
        let unspecified = advertise
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        anyhow::ensure!(
            !unspecified,
            "--join-seeds/--join-dns: this member would ask to be added at {advertise}, which \
             other members cannot reach; set --advertise"
        );
    }
    let store = open_store(&args, &peers)?;
    let (node, advertise) = start_node(&args, store.clone(), peers, tls.clone())?;
    let health = anode_common::Health::new();
    let service =
        MasterService::with_healing(node.clone(), lease_config(&args), heal_config(&args));
    crate::metrics::init();
    crate::metrics::set_usage_series_cap(args.metrics_max_buckets);
    crate::reload::spawn_limits_reloader(service.clone(), shutdown.clone())?;
    let events = Arc::new(EventLog::new(crate::status_page::EVENT_CAPACITY));
    let leader_admin = crate::status_page::LeaderAdmin::default();
    let admin_addr = anode_common::serve_admin_with(
        args.admin_listen,
        health.clone(),
        Arc::new(MasterAdmin::new(
            service.clone(),
            events.clone(),
            leader_admin.clone(),
        )),
        shutdown.clone(),
    )
    .await?;
    tokio::spawn(crate::status_page::track_leader_admin(
        service.clone(),
        tls.clone(),
        leader_admin,
        shutdown.clone(),
    ));
    service.set_admin_addr(admin_addr.to_string());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(publish_metrics(node.clone(), shutdown.clone()));
    tokio::spawn(crate::status_page::record_events(
        service.clone(),
        events,
        Duration::from_secs(1),
        shutdown.clone(),
    ));
    tokio::spawn(service.clone().heal_loop(shutdown.clone()));
    tokio::spawn(crate::export::export_loop(
        service.clone(),
        args.data.clone(),
        tls.clone(),
        crate::export::ExportConfig {
            interval: Duration::from_secs(args.metadata_export_interval_secs),
            copies: args.metadata_export_copies.max(1),
        },
        shutdown.clone(),
    ));
    tokio::spawn(crate::lifecycle::lifecycle_loop(
        service.clone(),
        crate::lifecycle::LifecycleWorkerConfig::from_flags(
            args.lifecycle_day_secs,
            args.lifecycle_interval_secs,
            args.lifecycle_batches_per_sec,
        ),
        shutdown.clone(),
    ));
    tokio::spawn(crate::notify::notify_loop(
        service.clone(),
        crate::notify::NotifyWorkerConfig {
            region: args.notify_region.clone(),
            backoff_max: Duration::from_millis(args.notify_retry_max_ms.max(100)),
            ..Default::default()
        },
        shutdown.clone(),
    ));
    let server = grpc_server(service, &node, store, &tls)?;
    health.set(true);
    tracing::info!(id = args.id, %addr, %admin_addr, "master serving");
    let done = tokio::spawn(serve(
        server,
        listener,
        node.clone(),
        health,
        shutdown.clone(),
    ));
    if let Some(seeds) = seeds {
        tokio::spawn(crate::join::join_loop(
            node.clone(),
            advertise,
            seeds,
            tls.clone(),
            shutdown,
        ));
    }
    Ok(RunningMaster {
        addr,
        admin_addr,
        node,
        done,
    })
}

/// Whether this member waits to be added instead of bootstrapping (`--join`, or a way to
/// find the group).
fn joins(args: &MasterArgs) -> bool {
    args.join || crate::join::Seeds::from_args(args).is_some()
}

/// Open (or create) the raft store in DATA/raft. A new store bootstraps a group only when
/// `--peers` lists this member, unless the member waits to be added (`--join`); with
/// `--restore` it is initialized from a backup first.
fn open_store(args: &MasterArgs, peers: &BTreeMap<u64, String>) -> anyhow::Result<RaftStore> {
    anode_common::fsutil::create_dir_all_durable(&args.data)
        .with_context(|| format!("create {}", args.data.display()))?;
    let path = args.data.join("raft");
    let store = RaftStore::open(&path).context("open raft store")?;
    if let Some(dir) = &args.restore {
        restore(args, &store, &path, dir, peers)?;
    }
    if store.is_empty() && !joins(args) {
        anyhow::ensure!(
            peers.contains_key(&args.id),
            "--peers must list this member ({}) to bootstrap a new group, or pass --join",
            args.id
        );
    }
    Ok(store)
}

/// `--restore DIR`: initialize the empty store from the backup (or find it already restored
/// from this same backup and start from it).
fn restore(
    args: &MasterArgs,
    store: &RaftStore,
    path: &std::path::Path,
    dir: &std::path::Path,
    peers: &BTreeMap<u64, String>,
) -> anyhow::Result<()> {
    use crate::backup;
    anyhow::ensure!(
        peers.contains_key(&args.id),
        "--restore starts a new group: --peers must list this member ({}) and every member \
         of the new group (the same on each)",
        args.id
    );
    if !store.is_empty() {
        let m = backup::read_manifest(dir)?;
        if backup::restored_from(&args.data, &m) {
            tracing::info!(
                backup = %dir.display(),
                index = m.raft_index,
                "data dir already restored from this backup; starting from it"
            );
            return Ok(());
        }
    }
    let t0 = std::time::Instant::now();
    let m = backup::restore_store(store, path, dir, peers)?;
    backup::write_marker(&args.data, &m)?;
    tracing::info!(
        backup = %dir.display(),
        index = m.raft_index,
        term = m.raft_term,
        records = m.records,
        bytes = m.payload_bytes,
        voters = ?peers.keys().collect::<Vec<_>>(),
        ms = t0.elapsed().as_millis() as u64,
        "restored the metadata from a backup; starting a new group"
    );
    Ok(())
}

/// Start the raft node over `store`, with the gRPC outbox that carries its messages to the
/// peers (advertising `--advertise`, else this member's `--peers` entry, else `--listen`).
/// Returns the node and the advertised address.
fn start_node(
    args: &MasterArgs,
    store: RaftStore,
    peers: BTreeMap<u64, String>,
    tls: anode_tls::Tls,
) -> anyhow::Result<(NodeHandle, String)> {
    let cfg = NodeConfig {
        id: args.id,
        tick_ms: args.tick_ms,
        election_ticks: args.election_ticks,
        compact_threshold_entries: args.compact_threshold,
        lease_max_drift_ms: args.lease_max_drift_ms,
        ..Default::default()
    };
    let advertise = advertise_addr(args, &peers);
    let outbox = GrpcOutbox::new(
        args.id,
        advertise.clone(),
        tokio::runtime::Handle::current(),
        tls,
        store.clone(),
    );
    let node = node::start(cfg, store, peers, !joins(args), outbox.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    outbox.set_node(node.clone());
    Ok((node, advertise))
}

/// The address this member gives its peers: `--advertise`, else its `--peers` entry, else
/// `--listen`.
fn advertise_addr(args: &MasterArgs, peers: &BTreeMap<u64, String>) -> String {
    match &args.advertise {
        Some(a) => a.clone(),
        None => peers
            .get(&args.id)
            .cloned()
            .unwrap_or_else(|| args.listen.to_string()),
    }
}

/// Chunkserver lease timing from the flags.
fn lease_config(args: &MasterArgs) -> LeaseConfig {
    LeaseConfig {
        lease_ms: args.lease_ms,
        dead_after_ms: args.dead_after_ms,
    }
}

/// Healing limits and timing from the flags (task limits at least 1, sweeps at least 50 ms
/// apart).
fn heal_config(args: &MasterArgs) -> crate::service::HealConfig {
    crate::service::HealConfig {
        limits: anode_meta::planner::Limits {
            per_server: args.repair_per_server.max(1),
            total: args.repair_total.max(1),
            rebalance_spread: args.rebalance_spread,
            ..Default::default()
        },
        gc_grace_ms: args.gc_grace_ms,
        touch_after_ms: args.touch_after_ms,
        clock_skew_ms: args.clock_skew_ms,
        interval: Duration::from_millis(args.heal_interval_ms.max(50)),
    }
}

/// The gRPC services of a master: the metadata API and the raft transport, behind mutual TLS
/// and the role check of every call (`anode_tls::authz`).
fn grpc_server(
    service: MasterService,
    node: &NodeHandle,
    store: RaftStore,
    tls: &anode_tls::Tls,
) -> anyhow::Result<Router<GrpcLayers>> {
    Ok(crate::limits::LIMITS
        .apply(tls.server_builder()?)
        .layer(tls.authz_layer())
        .tcp_nodelay(true)
        .trace_fn(anode_common::rpc_span)
        .add_service(
            MasterServer::new(service)
                .max_decoding_message_size(crate::limits::MAX_CLIENT_MESSAGE_BYTES)
                .max_encoding_message_size(crate::limits::MAX_CLIENT_MESSAGE_BYTES),
        )
        .add_service(
            RaftTransportServer::new(RaftService::new(node.clone(), store))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
        ))
}

type GrpcLayers = anode_tls::authz::ServerLayers;

/// Serve `server` on `listener` until `shutdown`; then report unhealthy, hand leadership over
/// and drain (at most 15 s: long-lived peer connections must not hold us forever), and stop
/// the raft node.
async fn serve(
    server: Router<GrpcLayers>,
    listener: tokio::net::TcpListener,
    node: NodeHandle,
    health: anode_common::Health,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut sd = shutdown.clone();
    let signal = async move {
        let _ = sd.wait_for(|v| *v).await;
    };
    let serve = server.serve_with_incoming_shutdown(incoming, async {
        signal.await;
        health.set(false);
        drain_leadership(&node).await;
    });
    let mut sd2 = shutdown;
    tokio::select! {
        r = serve => r.context("grpc server")?,
        _ = async { let _ = sd2.wait_for(|v| *v).await; tokio::time::sleep(Duration::from_secs(15)).await } => {
            tracing::warn!("drain timed out; exiting");
        }
    }
    node.stop();
    Ok(())
}

/// Run `anode master` until a shutdown signal.
pub async fn run(args: MasterArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let m = start(args, shutdown).await?;
    m.done.await.context("master task")?
}

/// On shutdown a leader hands leadership to the most caught-up voter first (bounded wait).
async fn drain_leadership(node: &NodeHandle) {
    let st = node.status();
    if st.role != Role::Leader {
        return;
    }
    let Some(target) = anode_meta::membership::best_successor(&st) else {
        return;
    };
    tracing::info!(target, "transferring leadership before shutdown");
    if node.transfer_leader(target).is_err() {
        return;
    }
    for _ in 0..60 {
        if node.status().leader_id != st.id {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish_metrics(node: NodeHandle, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        crate::metrics::publish_raft(&node.status());
    }
}
