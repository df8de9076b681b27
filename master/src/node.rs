//! The raft-rs driver: one `RawNode` per master process, owned by one OS thread.
//!
//! The thread loop, in order: receive requests (proposals, reads, raft messages) for up to one
//! tick, tick, then handle `Ready`:
//! 1. send leader messages (they do not depend on local persistence),
//! 2. install a snapshot if any,
//! 3. apply committed entries (one RocksDB batch with the applied index),
//! 4. persist new entries and hard state (one synced batch),
//! 5. send messages that depend on persistence,
//! 6. advance, apply what the light ready committed, compact the log past the threshold.
//!
//! Proposals are grouped: every request queued while the thread worked is drained before the
//! next `Ready`, so many proposals share one fsync (group commit).
//!
//! Linearizable reads: a leader holding a read lease ([`crate::read_lease`]) answers at its
//! commit index once applied, with no message; otherwise the read waits for a ReadIndex round
//! (leadership confirmed by a quorum's heartbeat acknowledgements), and the local applied index
//! reaching the read index. One round covers every read queued when it is issued; reads that
//! arrive while a round is in flight wait for the next one (never an earlier round's answer).
//! The same rounds renew the lease. The driver injects a monotonic clock ([`Core::set_clock`]);
//! the core never counts ticks as time.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_proto::{CommandResult, ErrorCode, ErrorDetail};
use parking_lot::RwLock;
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

use crate::log_store::LogStore;
use crate::raft_check::{validate_raft_message, LocalView};
use crate::read_lease::{LeaseClock, LeaseConfig, ReadLease, Round};
use crate::store::{RaftStore, StoreError};
use anode_meta::kv::{KvRead, Mutation, Overlay};

/// Bound on the entry bytes of one MsgAppend. raft-rs re-sends an append from a lagging
/// follower's next index on *every* heartbeat response (one per ReadIndex read), and each append
/// reads its entries from RocksDB on the raft thread. At 1 MiB a thawed or slow follower made
/// the leader re-read thousands of entries per read request, stalling its raft thread for
/// seconds until the followers elected someone else (test_scripts/sigstop.sh, slow-follower.sh).
pub const MAX_APPEND_BYTES: u64 = 64 << 10;

/// Key prefix of member addresses in the state machine (`r/<id be u64>` -> addr).
pub const MEMBER_PREFIX: &[u8] = b"r/";

/// Errors a caller of the node sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// This member is not the leader; `leader` is the known leader id (0 = unknown).
    #[error("not the leader (leader is {leader})")]
    NotLeader {
        /// Known leader id, 0 when unknown.
        leader: u64,
    },
    /// The request queue is full.
    #[error("master busy: request queue full")]
    Busy,
    /// The node thread stopped.
    #[error("raft node stopped")]
    Stopped,
    /// The request did not finish in time (its outcome is unknown).
    #[error("timed out waiting for raft")]
    Timeout,
    /// Raft refused the request.
    #[error("raft: {0}")]
    Raft(String),
    /// The local store failed.
    #[error("store: {0}")]
    Store(String),
    /// A command over `service::MAX_COMMAND_BYTES`: followers would refuse the append
    /// carrying it (`raft_check`), stalling the log behind it.
    #[error("command of {0} bytes is over {max}", max = crate::service::MAX_COMMAND_BYTES)]
    TooLarge(usize),
}

impl NodeError {
    /// The error as it crosses a process. `members` (id -> address) supplies the leader's
    /// address for [`NodeError::NotLeader`]; everything else tells the caller to retry later.
    pub fn detail(&self, members: &BTreeMap<u64, String>) -> ErrorDetail {
        match self {
            NodeError::NotLeader { leader } => match members.get(leader).filter(|_| *leader != 0) {
                Some(addr) => ErrorDetail::new(
                    ErrorCode::NotLeader,
                    format!("not the leader; leader is {leader} at {addr}"),
                )
                .with_leader(*leader, addr.clone()),
                None => ErrorDetail::new(ErrorCode::NotLeader, "no raft leader known"),
            },
            NodeError::Busy => ErrorDetail::new(ErrorCode::Busy, self.to_string()),
            NodeError::TooLarge(_) => {
                ErrorDetail::new(ErrorCode::InvalidArgument, self.to_string())
            }
            NodeError::Stopped | NodeError::Timeout | NodeError::Raft(_) | NodeError::Store(_) => {
                ErrorDetail::new(ErrorCode::Unavailable, self.to_string())
            }
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        NodeError::Store(e.to_string())
    }
}

/// Tuning of the raft node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id (non-zero).
    pub id: u64,
    /// Milliseconds per raft tick.
    pub tick_ms: u64,
    /// Election timeout in ticks (randomized up to twice this).
    pub election_ticks: usize,
    /// Randomized election timeout bounds (0 = raft-rs defaults: election_ticks..2*election_ticks).
    /// Simulations set max = min + 1 for a deterministic, seeded timeout per node.
    pub min_election_ticks: usize,
    /// Upper bound (exclusive) of the randomized election timeout (0 = default).
    pub max_election_ticks: usize,
    /// Leader heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Compact the log when more than this many applied entries are in it.
    pub compact_threshold_entries: u64,
    /// Entries kept below the applied index after compaction (for slow followers).
    pub compact_keep_entries: u64,
    /// Capacity of the request queue.
    pub queue_capacity: usize,
    /// Answer reads on a leader holding a read lease without a ReadIndex round.
    pub read_lease: bool,
    /// How much the leader's monotonic clock may run slow against a follower's over one
    /// lease; the lease is `(election_ticks - 1) * tick_ms` less this
    /// ([`LeaseConfig::from_timing`]).
    pub lease_max_drift_ms: u64,
    /// The lease's clock: [`LeaseClock::Monotonic`] except in tests showing a broken lease
    /// is caught.
    pub lease_clock: LeaseClock,
}

impl NodeConfig {
    /// The read lease this configuration gives (duration 0 when disabled).
    pub fn lease_config(&self) -> LeaseConfig {
        let mut c =
            LeaseConfig::from_timing(self.tick_ms, self.election_ticks, self.lease_max_drift_ms);
        if !self.read_lease {
            c.duration_ms = 0;
        }
        c.clock = self.lease_clock;
        c
    }
}

/// Default [`NodeConfig::lease_max_drift_ms`]: with 100 ms ticks and 10 election ticks the
/// lease is 700 ms, renewed by a round every ~350 ms while reads come.
pub const DEFAULT_LEASE_MAX_DRIFT_MS: u64 = 200;

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            tick_ms: 100,
            election_ticks: 10,
            min_election_ticks: 0,
            max_election_ticks: 0,
            heartbeat_ticks: 2,
            // Compaction window (docs/architecture.md, "Master storage budget"): the log holds
            // at most threshold + keep entries (60 k: ~70 MB of 1 KiB inline objects), and a
            // follower that falls up to `keep` entries behind (20 k: several seconds at the
            // best measured write rate, a restart) catches up from the log instead of a
            // whole-state snapshot, which at millions of objects costs far more than the log.
            compact_threshold_entries: 40_000,
            compact_keep_entries: 20_000,
            queue_capacity: 16_384,
            read_lease: true,
            lease_max_drift_ms: DEFAULT_LEASE_MAX_DRIFT_MS,
            lease_clock: LeaseClock::Monotonic,
        }
    }
}

pub use anode_meta::membership::{NodeStatus, Role};

/// A raft message leaving this node, handed to the transport.
pub trait Outbox: Send + Sync + 'static {
    /// Queue `msgs` for delivery. Must not block.
    fn send(&self, msgs: Vec<Message>, members: &BTreeMap<u64, String>);
}

enum Request {
    Propose(Vec<u8>, oneshot::Sender<Result<CommandResult, NodeError>>),
    ConfChange(
        ConfChangeV2,
        oneshot::Sender<Result<CommandResult, NodeError>>,
    ),
    Read(oneshot::Sender<Result<(), NodeError>>),
    Step(Message),
    TransferLeader(u64),
    Unreachable(u64),
    SnapshotDone(u64, bool),
    Campaign,
    LearnPeer(u64, String),
    PinSnapshot(oneshot::Sender<Result<Snapshot, NodeError>>),
    Stop,
}

/// Handle to the node thread. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    tx: SyncSender<Request>,
    status: Arc<RwLock<NodeStatus>>,
    store: RaftStore,
    events: EventSender,
}

/// Object events as this member applies them (after they are stored), for watchers.
pub type EventSender = tokio::sync::broadcast::Sender<Arc<anode_proto::NotificationEvent>>;

/// Events a watcher may fall behind by before its stream ends.
pub const WATCH_BUFFER: usize = 4096;

impl NodeHandle {
    fn send(&self, r: Request) -> Result<(), NodeError> {
        self.tx.try_send(r).map_err(|e| match e {
            TrySendError::Full(_) => NodeError::Busy,
            TrySendError::Disconnected(_) => NodeError::Stopped,
        })
    }

    /// Propose an encoded [`anode_proto::Command`]; resolves with its apply result.
    pub async fn propose(&self, data: Vec<u8>) -> Result<CommandResult, NodeError> {
        let started = std::time::Instant::now();
        let (tx, rx) = oneshot::channel();
        self.send(Request::Propose(data, tx))?;
        let r = rx.await.map_err(|_| NodeError::Stopped)?;
        // Accepted proposals only: a refusal (not the leader, too large) is no raft latency.
        if r.is_ok() {
            crate::metrics::RAFT_PROPOSAL_SECONDS.observe(started.elapsed().as_secs_f64());
        }
        r
    }

    /// Propose a membership change; resolves when it is applied.
    pub async fn conf_change(&self, cc: ConfChangeV2) -> Result<CommandResult, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::ConfChange(cc, tx))?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Wait until a read of the local state is linearizable (ReadIndex).
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Read(tx))?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Pin a streamed snapshot of the applied state (on the raft thread, the only writer, so
    /// the pinned view is exactly the state at the snapshot's index) and return its
    /// descriptor: index, term and the conf state at that index. Stream its records with
    /// [`RaftStore::snapshot_stream`]. Call after [`Self::read_barrier`] to cover every write
    /// acknowledged before.
    pub async fn pin_snapshot(&self) -> Result<Snapshot, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::PinSnapshot(tx))?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Deliver a raft message from a peer.
    pub fn step(&self, m: Message) -> Result<(), NodeError> {
        self.send(Request::Step(m))
    }

    /// Ask the leader to hand leadership to `id`.
    pub fn transfer_leader(&self, id: u64) -> Result<(), NodeError> {
        self.send(Request::TransferLeader(id))
    }

    /// Remember a peer's address learned from its messages (used until the replicated
    /// member table knows it).
    pub fn learn_peer(&self, id: u64, addr: String) {
        if self.status.read().members.get(&id) != Some(&addr) {
            let _ = self.send(Request::LearnPeer(id, addr));
        }
    }

    /// Start an election now (tests and operators).
    pub fn campaign(&self) -> Result<(), NodeError> {
        self.send(Request::Campaign)
    }

    /// The transport failed to reach `id`.
    pub fn report_unreachable(&self, id: u64) {
        let _ = self.send(Request::Unreachable(id));
    }

    /// The transport finished (or failed) sending a snapshot to `id`.
    pub fn report_snapshot(&self, id: u64, ok: bool) {
        let _ = self.send(Request::SnapshotDone(id, ok));
    }

    /// Stop the node thread.
    pub fn stop(&self) {
        let _ = self.tx.send(Request::Stop);
    }

    /// Latest status snapshot.
    pub fn status(&self) -> NodeStatus {
        self.status.read().clone()
    }

    /// The local store (for state machine reads after [`Self::read_barrier`]).
    pub fn store(&self) -> &RaftStore {
        &self.store
    }

    /// Receive the object events of every command this member applies from now on.
    pub fn subscribe_events(
        &self,
    ) -> tokio::sync::broadcast::Receiver<Arc<anode_proto::NotificationEvent>> {
        self.events.subscribe()
    }
}

/// Start the node thread. `peers` are the configured member addresses (id -> addr);
/// `bootstrap` = true initializes a new group with `peers` as voters when the store is empty.
pub fn start(
    cfg: NodeConfig,
    store: RaftStore,
    peers: BTreeMap<u64, String>,
    bootstrap: bool,
    outbox: Arc<dyn Outbox>,
) -> Result<NodeHandle, NodeError> {
    if store.is_empty() && bootstrap {
        bootstrap_store(&store, &peers)?;
    }
    let (tx, rx) = mpsc::sync_channel(cfg.queue_capacity);
    let core = Core::new(
        cfg.clone(),
        store.clone(),
        peers,
        outbox,
        rand::random::<u64>(),
    )?;
    let status = core.status.clone();
    let events = core.events.clone();
    core.publish_status();
    std::thread::Builder::new()
        .name(format!("raft-{}", cfg.id))
        .spawn(move || drive(core, rx))
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    Ok(NodeHandle {
        tx,
        status,
        store,
        events,
    })
}

/// The state key of member `id`'s address.
pub fn member_key(id: u64) -> Vec<u8> {
    let mut k = MEMBER_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn bootstrap_store(store: &RaftStore, peers: &BTreeMap<u64, String>) -> Result<(), NodeError> {
    let voters: Vec<u64> = peers.keys().copied().collect();
    store.bootstrap(voters.clone())?;
    let muts: Vec<Mutation> = peers
        .iter()
        .map(|(id, addr)| Mutation::Put(member_key(*id), addr.as_bytes().to_vec()))
        .collect();
    let cs = ConfState {
        voters,
        ..Default::default()
    };
    store.commit_apply(&muts, 0, 0, Some(&cs))?;
    Ok(())
}

/// Stop (halt the node, before anything of this batch is written) at a command written by a
/// newer build: applying it as an error here while newer members apply it would split the
/// replicated state. The operator upgrades this member; it then applies the entry.
fn refuse_newer_command(e: &Entry) -> Result<(), NodeError> {
    let found = anode_meta::record::peek_version(&e.data).unwrap_or(0);
    if found > anode_proto::COMMAND_VERSION {
        let err = anode_meta::record::RecordError::TooNew {
            kind: "Command",
            key: format!("raft entry {}", e.index),
            found,
            supported: anode_proto::COMMAND_VERSION,
        };
        return Err(StoreError::from(err).into());
    }
    Ok(())
}

/// Read member addresses from the state machine.
pub fn read_members(kv: &dyn KvRead) -> BTreeMap<u64, String> {
    let mut end = MEMBER_PREFIX.to_vec();
    end.push(0xff);
    kv.scan(MEMBER_PREFIX, Some(&end), 1024)
        .into_iter()
        .filter_map(|(k, v)| {
            let id = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?);
            Some((id, String::from_utf8(v).ok()?))
        })
        .collect()
}

/// The driver thread's loop, the only code around [`Core`] that reads a clock: it turns wall
/// time into ticks (one per `tick_ms`), feeds queued requests to the core (everything already
/// queued is taken before the next `Ready`: group commit), and stops on `Stop` or when handling
/// a ready fails (a store error, or a command from a newer build).
fn drive<S: LogStore>(mut core: Core<S>, rx: mpsc::Receiver<Request>) {
    let tick = Duration::from_millis(core.cfg.tick_ms);
    // The lease's clock: `Instant` is CLOCK_MONOTONIC, which keeps running while this process
    // is stopped. Read again before every request, so a lease is checked at the time a read
    // is handled and a round is stamped no later than its heartbeats leave.
    let origin = Instant::now();
    let clock = || origin.elapsed().as_millis() as u64;
    let mut next_tick = Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(req) => {
                core.set_clock(clock());
                if !core.handle(req) {
                    break;
                }
                // Group commit: take everything already queued.
                let mut stop = false;
                for _ in 0..4096 {
                    match rx.try_recv() {
                        Ok(r) => {
                            core.set_clock(clock());
                            if !core.handle(r) {
                                stop = true;
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if stop {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        core.set_clock(clock());
        if Instant::now() >= next_tick {
            core.tick();
            next_tick = Instant::now() + tick;
        }
        // Twice at most: bookkeeping after a ready may issue a read round whose heartbeats
        // should leave now, not after the next request or tick.
        let mut failed = false;
        for _ in 0..2 {
            core.set_clock(clock());
            if let Err(e) = core.on_ready() {
                // A storage failure leaves no safe way to continue as a raft member.
                tracing::error!(error = %e, "raft storage failed; stopping node");
                failed = true;
                break;
            }
            core.after_ready();
            if !core.raw.has_ready() {
                break;
            }
        }
        if failed {
            break;
        }
    }
    core.fail_all(NodeError::Stopped);
    core.status.write().role = Role::Stopped;
}

/// Where a proposal's result goes.
pub type Reply = oneshot::Sender<Result<CommandResult, NodeError>>;

/// Where a read barrier's outcome goes.
pub type ReadReply = oneshot::Sender<Result<(), NodeError>>;

/// The core of a raft member: a `RawNode` over a log store `S`, the apply loop and the
/// bookkeeping of proposals and reads.
///
/// - Generic over its storage: every durable read and write goes through [`LogStore`]
///   (synchronously: a ready is persisted before [`Core::process`] returns). Production and the
///   simulations use the default, [`RaftStore`] (RocksDB); tests of disk failures use
///   [`crate::log_store::FaultyStore`]. The core is as free of IO as its store: there is no
///   in-memory store today, so in practice it writes RocksDB.
/// - No clock: time is the ticks it is given ([`Core::tick`]); a peer's last contact is counted
///   in ticks.
/// - No randomness of its own: the proposal nonce comes from the caller; election timeouts are
///   raft-rs's, bounded by [`NodeConfig`] (simulations pin them).
/// - No sockets or threads: messages leave through the [`Outbox`].
///
/// Two things feed it requests and ticks and call [`Core::process`]: the driver thread of
/// [`start`] (the only code that reads a clock, turning 100 ms of wall time into one tick) and
/// the deterministic simulations (`master/tests/raft_sim.rs`, `master/tests/cluster_sim/`).
pub struct Core<S: LogStore = RaftStore> {
    cfg: NodeConfig,
    raw: RawNode<S>,
    store: S,
    outbox: Arc<dyn Outbox>,
    peers: BTreeMap<u64, String>,
    status: Arc<RwLock<NodeStatus>>,
    /// Proposals in flight by proposal id (entry context).
    pending: BTreeMap<u64, Reply>,
    /// ReadIndex rounds in flight by request context: the round's lease stamp and the reads
    /// it covers (at most one round is issued at a time; see [`Core::flush_reads`]).
    pending_reads: BTreeMap<u64, (Round, Vec<ReadReply>)>,
    /// Reads waiting for the next ReadIndex round (they arrived after the one in flight).
    queued_reads: Vec<ReadReply>,
    /// Reads whose read index is known, waiting for apply.
    waiting_reads: Vec<(u64, ReadReply)>,
    /// Reads that arrived before the leader committed an entry in its term.
    deferred_reads: Vec<ReadReply>,
    /// The leader's read lease.
    lease: ReadLease,
    /// A lease read was answered since the last round was issued (renew while reads come).
    lease_used: bool,
    /// The driver's monotonic clock, ms ([`Core::set_clock`]); never derived from ticks.
    now_ms: u64,
    /// Whether a driver ever set the clock (without one there are no lease reads).
    clock_set: bool,
    nonce: u64,
    seq: u64,
    last_role: StateRole,
    last_term: u64,
    /// The leader seen at the last ready (0 = none), for the leader-change counter.
    last_leader: u64,
    members: BTreeMap<u64, String>,
    applied_log: Option<Vec<(u64, u64, Vec<u8>)>>,
    /// Object events of applied commands, for watchers (sent once stored).
    pub(crate) events: EventSender,
    /// Ticks since this core started: the core's only notion of time (no clock inside).
    ticks: u64,
    /// The tick at which each peer was last heard from.
    heard: BTreeMap<u64, u64>,
}

fn ctx_bytes(nonce: u64, seq: u64) -> Vec<u8> {
    let mut v = nonce.to_be_bytes().to_vec();
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

fn ctx_seq(nonce: u64, ctx: &[u8]) -> Option<u64> {
    if ctx.len() != 16 || u64::from_be_bytes(ctx[..8].try_into().ok()?) != nonce {
        return None;
    }
    Some(u64::from_be_bytes(ctx[8..].try_into().ok()?))
}

/// A failed write of the log store, as the node reports it.
fn store_err(e: impl std::error::Error) -> NodeError {
    NodeError::Store(e.to_string())
}

impl<S: LogStore> Core<S> {
    /// Build a core over an (already bootstrapped, if new) store. `nonce` tags this
    /// incarnation's proposals (random in production, seeded in simulations).
    pub fn new(
        cfg: NodeConfig,
        store: S,
        peers: BTreeMap<u64, String>,
        outbox: Arc<dyn Outbox>,
        nonce: u64,
    ) -> Result<Self, NodeError> {
        let logger = crate::slog_tracing::logger(cfg.id);
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            min_election_tick: cfg.min_election_ticks,
            max_election_tick: cfg.max_election_ticks,
            applied: store.applied(),
            max_size_per_msg: MAX_APPEND_BYTES,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_cfg
            .validate()
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let raw = RawNode::new(&raft_cfg, store.clone(), &logger)
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let lease = ReadLease::new(cfg.lease_config());
        let mut core = Core {
            cfg,
            raw,
            store,
            outbox,
            peers,
            status: Arc::new(RwLock::new(NodeStatus::default())),
            pending: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            queued_reads: Vec::new(),
            waiting_reads: Vec::new(),
            deferred_reads: Vec::new(),
            lease,
            lease_used: false,
            now_ms: 0,
            clock_set: false,
            nonce,
            seq: 0,
            last_role: StateRole::Follower,
            last_term: 0,
            last_leader: 0,
            members: BTreeMap::new(),
            applied_log: None,
            events: tokio::sync::broadcast::channel(WATCH_BUFFER).0,
            ticks: 0,
            heard: BTreeMap::new(),
        };
        core.reload_members();
        Ok(core)
    }

    /// Record `(index, term, data)` of every applied entry (simulation tests).
    pub fn record_applied(&mut self) {
        self.applied_log = Some(Vec::new());
    }

    /// Entries applied so far when recording.
    pub fn applied_log(&self) -> &[(u64, u64, Vec<u8>)] {
        self.applied_log.as_deref().unwrap_or(&[])
    }

    /// The driver's monotonic clock in ms (any origin; it never goes back: an earlier value is
    /// ignored). Read leases are measured with it; call it before each request and ready.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.clock_set = true;
    }

    /// Advance the logical clock by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
    }

    /// Deliver a raft message.
    pub fn step(&mut self, m: Message) {
        let _ = self.handle(Request::Step(m));
    }

    /// The transport finished (`ok`) or failed sending a snapshot to `to`.
    pub fn report_snapshot(&mut self, to: u64, ok: bool) {
        let _ = self.handle(Request::SnapshotDone(to, ok));
    }

    /// Propose encoded command bytes; `reply` resolves once applied.
    pub fn propose_bytes(&mut self, data: Vec<u8>, reply: Reply) {
        self.propose(data, reply);
    }

    /// Ask for a linearizable read (lease or ReadIndex); `reply` resolves once the local
    /// applied state may be read (the simulation's equivalent of [`NodeHandle::read_barrier`]).
    pub fn read_index(&mut self, reply: ReadReply) {
        self.read(reply);
    }

    /// Whether this member holds a valid read lease now (tests).
    pub fn holds_lease(&self) -> bool {
        self.lease_usable() && self.lease.valid(self.lease_now(), self.raw.raft.term)
    }

    /// Handle `Ready` and bookkeeping after requests or ticks (twice when the bookkeeping
    /// issued a read round, so its heartbeats leave now, as the driver does).
    pub fn process(&mut self) -> Result<(), NodeError> {
        self.on_ready()?;
        self.after_ready();
        if self.raw.has_ready() {
            self.on_ready()?;
            self.after_ready();
        }
        Ok(())
    }

    /// Ask this member, if it leads, to hand leadership to `id` (ends its read lease).
    pub fn transfer_leader(&mut self, id: u64) {
        let _ = self.handle(Request::TransferLeader(id));
    }

    /// The underlying raft state (tests and status).
    pub fn raft(&self) -> &raft::Raft<S> {
        &self.raw.raft
    }

    /// The log store this core writes (a handle sharing the one raft-rs reads).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Returns false to stop.
    fn handle(&mut self, req: Request) -> bool {
        match req {
            Request::Propose(data, reply) => self.propose(data, reply),
            Request::ConfChange(cc, reply) => self.propose_cc(cc, reply),
            Request::Read(reply) => self.read(reply),
            Request::Step(m) => self.step_checked(m),
            // Only a leader transfers: a follower would forward the request to the leader as a
            // raft message, a type the receiving side refuses (`raft_check`).
            Request::TransferLeader(id) if self.raw.raft.state == StateRole::Leader => {
                // The transferee campaigns with a forced vote that followers grant inside
                // their election timeout: no lease for the rest of this term.
                self.lease.end_term(self.raw.raft.term);
                self.raw.transfer_leader(id)
            }
            Request::TransferLeader(id) => {
                tracing::info!(id, "not leading any more; leadership transfer dropped")
            }
            Request::Unreachable(id) => self.raw.report_unreachable(id),
            Request::SnapshotDone(id, ok) => {
                let s = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(id, s);
            }
            Request::Campaign => {
                let _ = self.raw.campaign();
            }
            Request::LearnPeer(id, addr) => {
                self.peers.entry(id).or_insert(addr);
                self.reload_members();
            }
            Request::PinSnapshot(reply) => {
                let r = raft::Storage::snapshot(self.raw.store(), 0, 0)
                    .map_err(|e| NodeError::Store(e.to_string()));
                let _ = reply.send(r);
            }
            Request::Stop => return false,
        }
        true
    }

    /// Step a message from a peer once it passed [`validate_raft_message`]; a refused one is
    /// dropped, logged with its sender and counted. Only members of the configuration are
    /// remembered as heard from (a forged sender id adds nothing).
    fn step_checked(&mut self, m: Message) {
        let view = LocalView::of(&self.raw.raft);
        if let Err(e) = validate_raft_message(&m, &view) {
            crate::metrics::RAFT_MESSAGES_REFUSED
                .with_label_values(&[e.reason()])
                .inc();
            tracing::warn!(
                from = m.from,
                to = m.to,
                msg_type = ?m.get_msg_type(),
                term = m.term,
                error = %e,
                "refused raft message"
            );
            return;
        }
        if self.refuse_vote_after_start(&m) {
            return;
        }
        if self.raw.raft.prs().get(m.from).is_some() {
            self.heard.insert(m.from, self.ticks);
        }
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(error = %e, "raft step");
        }
    }

    /// A member that (re)started does not know the leader, so raft-rs would grant votes at
    /// once; the leader's lease counts on every member of the quorum that confirmed it
    /// refusing votes for an election timeout. So for its first `election_ticks` ticks (each
    /// at least `tick_ms` of wall time) a member drops vote and pre-vote requests of a newer
    /// term, unless forced by a leadership transfer (which ended the old leader's lease).
    fn refuse_vote_after_start(&self, m: &Message) -> bool {
        use raft::eraftpb::MessageType::{MsgRequestPreVote, MsgRequestVote};
        let vote = matches!(m.get_msg_type(), MsgRequestVote | MsgRequestPreVote);
        let refuse = vote
            && self.lease.config().duration_ms > 0
            && self.ticks < self.cfg.election_ticks as u64
            && m.term > self.raw.raft.term
            && m.context.as_ref() != raft::CAMPAIGN_TRANSFER;
        if refuse {
            tracing::debug!(
                from = m.from,
                term = m.term,
                "vote refused: member just started"
            );
        }
        refuse
    }

    /// The lease's notion of now: the injected monotonic clock, or (broken, tests only) the
    /// tick count.
    fn lease_now(&self) -> u64 {
        match self.cfg.lease_clock {
            LeaseClock::BrokenTicks => self.ticks * self.cfg.tick_ms,
            LeaseClock::Monotonic | LeaseClock::BrokenForever => self.now_ms,
        }
    }

    /// A leader with a clock and no transfer under way (raft-rs clears `lead_transferee`
    /// when one ends).
    fn lease_usable(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
            && self.raw.raft.lead_transferee.is_none()
            && (self.clock_set || self.cfg.lease_clock == LeaseClock::BrokenTicks)
    }

    fn not_leader(&self) -> NodeError {
        NodeError::NotLeader {
            leader: self.raw.raft.leader_id,
        }
    }

    fn next_ctx(&mut self) -> (u64, Vec<u8>) {
        self.seq += 1;
        (self.seq, ctx_bytes(self.nonce, self.seq))
    }

    fn propose(&mut self, data: Vec<u8>, reply: Reply) {
        if data.len() > crate::service::MAX_COMMAND_BYTES {
            let _ = reply.send(Err(NodeError::TooLarge(data.len())));
            return;
        }
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let (seq, ctx) = self.next_ctx();
        match self.raw.propose(ctx, data) {
            Ok(()) => {
                self.pending.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Raft(e.to_string())));
            }
        }
    }

    fn propose_cc(&mut self, cc: ConfChangeV2, reply: Reply) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        let (seq, ctx) = self.next_ctx();
        match self.raw.propose_conf_change(ctx, cc) {
            Ok(()) => {
                self.pending.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Raft(e.to_string())));
            }
        }
    }

    /// A read barrier: answered at once on a leader holding a lease (at the commit index,
    /// once applied), else queued for the next ReadIndex round ([`Core::flush_reads`]).
    fn read(&mut self, reply: ReadReply) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if !self.raw.raft.commit_to_current_term() {
            self.deferred_reads.push(reply);
            return;
        }
        if self.lease_usable() && self.lease.valid(self.lease_now(), self.raw.raft.term) {
            crate::metrics::READS.with_label_values(&["lease"]).inc();
            self.lease_used = true;
            self.answer_at(self.raw.raft.raft_log.committed, reply);
            return;
        }
        crate::metrics::READS
            .with_label_values(&["read_index"])
            .inc();
        self.queued_reads.push(reply);
    }

    /// Answer `reply` once the applied index reaches `index` (at once if it has).
    fn answer_at(&mut self, index: u64, reply: ReadReply) {
        if self.store.applied() >= index {
            let _ = reply.send(Ok(()));
        } else {
            self.waiting_reads.push((index, reply));
        }
    }

    /// Issue one ReadIndex round for every queued read, unless a round is in flight (the
    /// queued reads arrived after it was issued, so its answer does not cover them: they wait
    /// for the next). A leader whose lease is half spent and was used also renews it here.
    fn flush_reads(&mut self) {
        let leader = self.raw.raft.state == StateRole::Leader;
        if !leader || !self.pending_reads.is_empty() || !self.raw.raft.commit_to_current_term() {
            return;
        }
        let term = self.raw.raft.term;
        let now = self.lease_now();
        if self.lease_usable() && self.lease.valid(now, term) && !self.queued_reads.is_empty() {
            // A round confirmed while these waited: the lease covers them now.
            let commit = self.raw.raft.raft_log.committed;
            for reply in std::mem::take(&mut self.queued_reads) {
                self.answer_at(commit, reply);
            }
        }
        let renew = self.lease_used && self.lease.wants_renewal(now, term);
        if self.queued_reads.is_empty() && !renew {
            return;
        }
        self.lease_used = false;
        let round = self.lease.round(now, term);
        let (seq, ctx) = self.next_ctx();
        self.raw.read_index(ctx);
        crate::metrics::READ_ROUNDS.inc();
        let readers = std::mem::take(&mut self.queued_reads);
        self.pending_reads.insert(seq, (round, readers));
    }

    fn on_ready(&mut self) -> Result<(), NodeError> {
        self.flush_reads();
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if !ready.messages().is_empty() {
            self.outbox.send(ready.take_messages(), &self.members);
        }
        if !ready.snapshot().is_empty() {
            self.store
                .install_snapshot(ready.snapshot())
                .map_err(store_err)?;
            self.reload_members();
            tracing::info!(
                index = ready.snapshot().get_metadata().index,
                "installed raft snapshot"
            );
        }
        for rs in ready.take_read_states() {
            if let Some(seq) = ctx_seq(self.nonce, &rs.request_ctx) {
                if let Some((round, readers)) = self.pending_reads.remove(&seq) {
                    self.lease.confirmed(round);
                    self.waiting_reads
                        .extend(readers.into_iter().map(|r| (rs.index, r)));
                }
            }
        }
        self.apply_entries(ready.take_committed_entries())?;
        self.store
            .persist(ready.entries(), ready.hs())
            .map_err(store_err)?;
        fail::fail_point!("master::node::after_persist_before_send");
        if !ready.persisted_messages().is_empty() {
            self.outbox
                .send(ready.take_persisted_messages(), &self.members);
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit).map_err(store_err)?;
        }
        if !light.messages().is_empty() {
            self.outbox.send(light.take_messages(), &self.members);
        }
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_compact()?;
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let (last_index, last_term) = (last.index, last.term);
        let store = self.store.clone();
        let view = store.view();
        let mut overlay = Overlay::new(&view);
        let mut new_cs: Option<ConfState> = None;
        let mut replies: Vec<(u64, Result<CommandResult, NodeError>)> = Vec::new();
        let mut events = Vec::new();
        for e in &entries {
            let result = match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => CommandResult::default(),
                EntryType::EntryNormal => {
                    refuse_newer_command(e)?;
                    let (muts, res, evs) =
                        anode_meta::state::apply_bytes_with_events(&overlay, e.index, &e.data);
                    events.extend(evs);
                    for m in muts {
                        match m {
                            Mutation::Put(k, v) => overlay.put(k, v),
                            Mutation::Delete(k) => overlay.delete(k),
                        }
                    }
                    res
                }
                EntryType::EntryConfChangeV2 | EntryType::EntryConfChange => {
                    match self.apply_conf_change(e, &mut overlay) {
                        Ok(cs) => {
                            new_cs = Some(cs);
                            CommandResult::default()
                        }
                        Err(msg) => CommandResult {
                            error: Some(ErrorDetail::new(ErrorCode::ConfChangeRejected, msg)),
                            ..Default::default()
                        },
                    }
                }
            };
            if let Some(log) = self.applied_log.as_mut() {
                log.push((e.index, e.term, e.data.to_vec()));
            }
            if let Some(seq) = ctx_seq(self.nonce, &e.context) {
                replies.push((seq, Ok(result)));
            }
        }
        let muts = overlay.into_mutations();
        self.store
            .commit_apply(&muts, last_index, last_term, new_cs.as_ref())
            .map_err(store_err)?;
        if new_cs.is_some() || muts.iter().any(is_member_key) {
            self.reload_members();
        }
        if self.events.receiver_count() > 0 {
            for ev in events {
                let _ = self.events.send(Arc::new(ev));
            }
        }
        for (seq, r) in replies {
            if let Some(reply) = self.pending.remove(&seq) {
                let _ = reply.send(r);
            }
        }
        Ok(())
    }

    fn apply_conf_change(
        &mut self,
        e: &Entry,
        overlay: &mut Overlay<'_>,
    ) -> Result<ConfState, String> {
        let cc = if e.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::parse_from_bytes(&e.data).map_err(|e| e.to_string())?
        } else {
            let v1 = ConfChange::parse_from_bytes(&e.data).map_err(|e| e.to_string())?;
            let mut single = raft::eraftpb::ConfChangeSingle::default();
            single.set_change_type(v1.get_change_type());
            single.node_id = v1.node_id;
            let mut v2 = ConfChangeV2::default();
            v2.set_changes(vec![single].into());
            v2.set_context(v1.get_context().to_vec().into());
            v2
        };
        let cs = self.raw.apply_conf_change(&cc).map_err(|e| e.to_string())?;
        let ctx = (!cc.get_context().is_empty())
            .then(|| {
                anode_meta::record::decode::<anode_proto::MemberChangeContext>(
                    b"conf change",
                    cc.get_context(),
                )
            })
            .and_then(|r| {
                r.map_err(|err| tracing::error!(%err, "member address not recorded"))
                    .ok()
            });
        for ch in cc.get_changes() {
            use raft::eraftpb::ConfChangeType::*;
            match ch.get_change_type() {
                AddNode | AddLearnerNode => {
                    if let Some(c) = ctx
                        .as_ref()
                        .filter(|c| c.id == ch.node_id && !c.addr.is_empty())
                    {
                        overlay.put(member_key(ch.node_id), c.addr.as_bytes().to_vec());
                    }
                }
                RemoveNode => overlay.delete(member_key(ch.node_id)),
            }
        }
        // The quorum changed: the next round, confirmed by the new one, renews the lease.
        self.lease.end();
        tracing::info!(voters = ?cs.voters, learners = ?cs.learners, "membership changed");
        Ok(cs)
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let applied = self.store.applied();
        let first = self.store.first_log_index();
        if applied.saturating_sub(first) > self.cfg.compact_threshold_entries {
            let keep = self
                .cfg
                .compact_keep_entries
                .min(self.cfg.compact_threshold_entries / 2);
            let to = applied.saturating_sub(keep);
            self.store.compact(to).map_err(store_err)?;
            tracing::debug!(to, "compacted raft log");
        }
        Ok(())
    }

    fn reload_members(&mut self) {
        let mut m = self.peers.clone();
        m.extend(read_members(&self.store.view()));
        self.members = m;
    }

    fn after_ready(&mut self) {
        let applied = self.store.applied();
        let mut i = 0;
        while i < self.waiting_reads.len() {
            if self.waiting_reads[i].0 <= applied {
                let (_, reply) = self.waiting_reads.swap_remove(i);
                let _ = reply.send(Ok(()));
            } else {
                i += 1;
            }
        }
        let role = self.raw.raft.state;
        let term = self.raw.raft.term;
        let leader = self.raw.raft.leader_id;
        if leader != self.last_leader {
            crate::metrics::RAFT_LEADER_CHANGES.inc();
            self.last_leader = leader;
        }
        self.lease.observe_term(term);
        if role != StateRole::Leader {
            self.lease.end();
        }
        if role != self.last_role || term != self.last_term {
            // An election this member started: it is a candidate (in a new role or term), or
            // it leads in a term it was not seen campaigning in (a lone voter wins at once).
            if role == StateRole::Candidate || role == StateRole::Leader && term != self.last_term {
                crate::metrics::RAFT_ELECTIONS.inc();
            }
            if role != StateRole::Leader {
                // Proposals and reads may never finish here; their outcome is unknown to the
                // caller, who retries against the new leader.
                self.fail_all(self.not_leader());
            }
            tracing::info!(
                ?role,
                term,
                leader = self.raw.raft.leader_id,
                "raft role changed"
            );
            self.last_role = role;
            self.last_term = term;
        }
        if role == StateRole::Leader
            && !self.deferred_reads.is_empty()
            && self.raw.raft.commit_to_current_term()
        {
            for reply in std::mem::take(&mut self.deferred_reads) {
                self.read(reply);
            }
        }
        self.flush_reads();
        self.publish_status();
    }

    fn fail_all(&mut self, err: NodeError) {
        for (_, r) in std::mem::take(&mut self.pending) {
            let _ = r.send(Err(err.clone()));
        }
        for (_, (_, readers)) in std::mem::take(&mut self.pending_reads) {
            for r in readers {
                let _ = r.send(Err(err.clone()));
            }
        }
        for r in std::mem::take(&mut self.queued_reads) {
            let _ = r.send(Err(err.clone()));
        }
        for (_, r) in std::mem::take(&mut self.waiting_reads) {
            let _ = r.send(Err(err.clone()));
        }
        for r in std::mem::take(&mut self.deferred_reads) {
            let _ = r.send(Err(err.clone()));
        }
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        let mut s = NodeStatus {
            id: r.id,
            leader_id: r.leader_id,
            term: r.term,
            role: role_of(r.state),
            commit: r.raft_log.committed,
            applied: self.store.applied(),
            last_index: self.store.last_log_index(),
            first_index: self.store.first_log_index(),
            members: self.members.clone(),
            ..Default::default()
        };
        let conf = r.prs().conf();
        s.voters = conf.voters().ids().iter().collect();
        s.voters.sort_unstable();
        s.learners = conf.learners().iter().copied().collect();
        s.learners.sort_unstable();
        if r.state == StateRole::Leader {
            for (id, p) in r.prs().iter() {
                s.matched.insert(*id, p.matched);
                // Heard from within two election timeouts (raft-rs's own flag is reset every
                // timeout, so it reads false right after each check).
                let window = self.cfg.election_ticks as u64 * 2;
                let heard = self
                    .heard
                    .get(id)
                    .is_some_and(|t| self.ticks.saturating_sub(*t) < window);
                s.recent_active.insert(*id, heard || *id == r.id);
            }
        }
        *self.status.write() = s;
    }
}

fn is_member_key(m: &Mutation) -> bool {
    match m {
        Mutation::Put(k, _) | Mutation::Delete(k) => k.starts_with(MEMBER_PREFIX),
    }
}

fn role_of(r: StateRole) -> Role {
    match r {
        StateRole::Leader => Role::Leader,
        StateRole::Follower => Role::Follower,
        StateRole::Candidate => Role::Candidate,
        StateRole::PreCandidate => Role::PreCandidate,
    }
}
