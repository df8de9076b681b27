//! A simulated master: the real raft `Core` (no clock; IO only through its log store) over a
//! real RocksDB store, the real state machine, and the real leader decisions
//! (`anode_meta::control::LeaderControl`). This module is only the glue `service.rs` is in
//! production: requests in, commands proposed, replies out, and the heal loop on a timer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anode_master::node::{Core, NodeConfig, NodeError, Outbox};
use anode_master::read_lease::LeaseClock;
use anode_master::store::RaftStore;
use anode_meta::control::{fresh_copies, HealConfig, HeartbeatStep, LeaderControl};
use anode_meta::kv::KvRead;
use anode_meta::leases::LeaseConfig;
use anode_meta::locations::ChunkId;
use anode_meta::planner::Limits;
use anode_meta::state;
use anode_proto::command::Op;
use anode_proto::*;
use parking_lot::Mutex;
use prost::Message as _;
use raft::eraftpb::Message;
use raft::StateRole;
use tokio::sync::oneshot;

use crate::net::*;

/// Collects the raft messages `Core` sends.
#[derive(Default)]
pub struct Collect(pub Mutex<Vec<Message>>);

impl Outbox for Collect {
    fn send(&self, msgs: Vec<Message>, _members: &BTreeMap<u64, String>) {
        self.0.lock().extend(msgs);
    }
}

/// Member addresses (the simulated network routes by id).
pub fn peers() -> BTreeMap<u64, String> {
    (1..=MASTERS).map(|i| (i, format!("m-{i}"))).collect()
}

/// The control settings every master runs with.
pub fn control_settings() -> (LeaseConfig, HealConfig) {
    (
        LeaseConfig {
            lease_ms: LEASE_MS,
            dead_after_ms: DEAD_AFTER_MS,
        },
        HealConfig {
            limits: Limits::default(),
            gc_grace_ms: GC_GRACE_MS,
            touch_after_ms: TOUCH_AFTER_MS,
            clock_skew_ms: CLOCK_SKEW_MS,
            interval: std::time::Duration::from_millis(HEAL_INTERVAL_MS),
        },
    )
}

type ProposeRx = oneshot::Receiver<Result<CommandResult, NodeError>>;
type ReadRx = oneshot::Receiver<Result<(), NodeError>>;

/// What to answer once raft resolved a request.
enum Then {
    Created,
    /// A put; the copies of its fresh uploads become known locations once it commits.
    Put(Vec<(u64, ChunkId)>),
    Deleted,
    Registered,
    /// A heartbeat whose stats update was proposed; finish it after the commit.
    Heartbeat(Box<HeartbeatRequest>, u64),
    /// A manifest read after the read barrier.
    Get(GetObjectRequest),
}

enum Rx {
    Propose(ProposeRx),
    Read(ReadRx),
}

struct Pending {
    from: u64,
    rpc: u64,
    deadline_ms: u64,
    rx: Rx,
    then: Then,
}

/// One master.
pub struct SimMaster {
    /// Member id.
    pub id: u64,
    dir: PathBuf,
    cfg: NodeConfig,
    /// `None` while crashed.
    pub core: Option<Core>,
    outbox: Arc<Collect>,
    /// Entries applied across incarnations (index -> (term, data)).
    pub applied: BTreeMap<u64, (u64, Vec<u8>)>,
    /// The leader decisions; memory only, lost in a crash.
    pub control: LeaderControl,
    started_ms: u64,
    /// Wall clock offset from true time.
    pub wall_offset_ms: i64,
    /// Rate error of this member's monotonic clock in parts per million (drift): its raft
    /// ticks and its read lease run on that clock.
    pub drift_ppm: i64,
    /// Raft ticks given to the core in this incarnation.
    ticks_done: u64,
    /// Stopped (SIGSTOP): no ticks and no messages handled; the clock runs on.
    pub paused: bool,
    pending: Vec<Pending>,
    heal_pending: Vec<(u64, ProposeRx)>,
    next_heal_ms: u64,
}

impl SimMaster {
    /// A master over a bootstrapped store in `dir`.
    pub fn new(
        id: u64,
        dir: PathBuf,
        election_ticks: usize,
        drift_ppm: i64,
        lease_clock: LeaseClock,
    ) -> SimMaster {
        let cfg = NodeConfig {
            lease_max_drift_ms: LEASE_MAX_DRIFT_MS,
            lease_clock,
            id,
            election_ticks: 10,
            min_election_ticks: election_ticks,
            max_election_ticks: election_ticks + 1,
            heartbeat_ticks: 2,
            compact_threshold_entries: 200,
            compact_keep_entries: 50,
            ..Default::default()
        };
        let (lc, hc) = control_settings();
        SimMaster {
            id,
            dir,
            cfg,
            core: None,
            outbox: Arc::default(),
            applied: BTreeMap::new(),
            control: LeaderControl::new(lc, hc),
            started_ms: 0,
            wall_offset_ms: 0,
            drift_ppm,
            ticks_done: 0,
            paused: false,
            pending: Vec::new(),
            heal_pending: Vec::new(),
            next_heal_ms: 0,
        }
    }

    /// Start (or restart from disk) at `now_ms`.
    pub fn start(&mut self, now_ms: u64, nonce: u64) {
        let store = RaftStore::open(&self.dir).expect("open raft store");
        let mut core =
            Core::new(self.cfg.clone(), store, peers(), self.outbox.clone(), nonce).expect("core");
        core.record_applied();
        self.core = Some(core);
        let (lc, hc) = control_settings();
        self.control = LeaderControl::new(lc, hc);
        self.started_ms = now_ms;
        self.ticks_done = 0;
        self.paused = false;
        self.next_heal_ms = now_ms + HEAL_INTERVAL_MS;
        self.set_clock(now_ms);
    }

    /// Crash: every in-memory state goes, the disk stays.
    pub fn crash(&mut self) {
        self.core = None;
        self.paused = false;
        self.pending.clear();
        self.heal_pending.clear();
        self.outbox.0.lock().clear();
    }

    /// Whether this member is up and leads.
    pub fn is_leader(&self) -> bool {
        self.core
            .as_ref()
            .is_some_and(|c| c.raft().state == StateRole::Leader)
    }

    /// The store (cheap handle); `store.view()` reads the applied state.
    pub fn store(&self) -> Option<RaftStore> {
        Some(self.core.as_ref()?.raft().raft_log.store().clone())
    }

    fn mono(&self, now_ms: u64) -> u64 {
        now_ms - self.started_ms
    }

    /// This member's monotonic clock (true time since start, off by its drift).
    fn raft_clock(&self, now_ms: u64) -> u64 {
        let elapsed = (now_ms - self.started_ms) as i128;
        (elapsed * (1_000_000 + self.drift_ppm as i128) / 1_000_000) as u64
    }

    /// Give the core its clock (the driver does before every request and ready).
    pub fn set_clock(&mut self, now_ms: u64) {
        let t = self.raft_clock(now_ms);
        if let Some(core) = self.core.as_mut() {
            core.set_clock(t);
        }
    }

    fn wall(&self, now_ms: u64) -> u64 {
        (BASE_WALL_MS + now_ms).saturating_add_signed(self.wall_offset_ms)
    }

    /// One tick: raft, applied-log bookkeeping, resolved requests, the heal loop. Returns
    /// raft messages to send.
    pub fn tick(&mut self, now_ms: u64, out: &mut Out) {
        if self.paused {
            return;
        }
        let clock = self.raft_clock(now_ms);
        let Some(core) = self.core.as_mut() else {
            return;
        };
        core.set_clock(clock);
        // One tick per STEP_MS of this member's own clock: a fast clock ticks more often.
        while self.ticks_done < clock / STEP_MS {
            core.tick();
            self.ticks_done += 1;
        }
        core.process().expect("raft process");
        for (i, t, d) in core.applied_log() {
            if let Some((t0, d0)) = self.applied.get(i) {
                assert!(
                    t0 == t && d0 == d,
                    "member {} re-applied index {i} differently",
                    self.id
                );
            }
            self.applied.insert(*i, (*t, d.clone()));
        }
        core.record_applied();
        self.resolve(now_ms, out);
        self.heal_loop(now_ms);
        self.flush_raft(out);
    }

    /// Raft messages produced since the last flush.
    pub fn flush_raft(&mut self, out: &mut Out) {
        for m in std::mem::take(&mut *self.outbox.0.lock()) {
            out.push((m.to, Payload::Raft(m)));
        }
    }

    fn propose(&mut self, now_ms: u64, session: Option<ClientSession>, op: Op) -> ProposeRx {
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms: self.wall(now_ms),
            session,
            op: Some(op),
        };
        let (tx, rx) = oneshot::channel();
        self.core
            .as_mut()
            .expect("up")
            .propose_bytes(cmd.encode_to_vec(), tx);
        rx
    }

    fn wait(&mut self, now_ms: u64, from: u64, rpc: u64, rx: Rx, then: Then) {
        self.pending.push(Pending {
            from,
            rpc,
            deadline_ms: now_ms + RAFT_TIMEOUT_MS,
            rx,
            then,
        });
    }

    /// `service.rs`'s `require_leader`: a redirect unless leading; a new term resets leases
    /// and locations. `Err` carries the known leader (0 = none).
    fn require_leader(&mut self, now_ms: u64) -> Result<(), u64> {
        let core = self.core.as_ref().expect("up");
        let r = core.raft();
        if r.state != StateRole::Leader {
            return Err(r.leader_id);
        }
        let term = r.term;
        let mono = self.mono(now_ms);
        self.control.observe_leadership(term, mono);
        Ok(())
    }

    /// Handle a request; the reply goes out now or once raft resolves it.
    pub fn on_call(&mut self, now_ms: u64, from: u64, rpc: u64, call: Call, out: &mut Out) {
        if let Call::Locate(r) = &call {
            // `read(allow_stale = true)`: any member answers from its own state.
            let store = self.store().expect("up");
            let view = store.view();
            let p = self.control.locate(&view, &r.sha256, self.mono(now_ms));
            let resp = LocateChunksResponse { placements: p };
            out.push((from, Payload::Resp(rpc, Reply::Located(resp))));
            return;
        }
        if let Err(leader) = self.require_leader(now_ms) {
            out.push((from, Payload::Resp(rpc, Reply::NotLeader(leader))));
            return;
        }
        let mono = self.mono(now_ms);
        let wall = self.wall(now_ms);
        let store = self.store().expect("up");
        let view = store.view();
        let session = match &call {
            Call::CreateBucket(r) => r.session.clone(),
            Call::PutObject(r) => r.session.clone(),
            Call::DeleteObject(r) => r.session.clone(),
            _ => None,
        };
        let (op, then) = match call {
            Call::CreateBucket(r) => (
                Op::CreateBucket(CreateBucketCmd {
                    config: Some(BucketConfig {
                        version: RECORD_VERSION,
                        name: r.name,
                        replication: r.replication,
                        ..Default::default()
                    }),
                }),
                Then::Created,
            ),
            Call::PutObject(r) => {
                let fresh = fresh_copies(r.manifest.iter().flat_map(|m| m.chunks.iter()));
                (
                    Op::PutObject(PutObjectCmd {
                        parquet: None,
                        parquet_copy: None,
                        bucket: r.bucket,
                        key: r.key,
                        manifest: r.manifest,
                        if_match_etag: r.if_match_etag,
                        source: String::new(),
                    }),
                    Then::Put(fresh),
                )
            }
            Call::DeleteObject(r) => (
                Op::DeleteObject(DeleteObjectCmd {
                    bucket: r.bucket,
                    key: r.key,
                    ..Default::default()
                }),
                Then::Deleted,
            ),
            Call::Register(r) => (
                Op::RegisterChunkserver(RegisterChunkserverCmd {
                    addr: r.addr,
                    rack: r.rack,
                    capacity_bytes: r.capacity_bytes,
                    uuid: r.uuid,
                }),
                Then::Registered,
            ),
            Call::GetObject(r) => {
                let (tx, rx) = oneshot::channel();
                self.core.as_mut().expect("up").read_index(tx);
                self.wait(now_ms, from, rpc, Rx::Read(rx), Then::Get(r));
                return;
            }
            Call::Allocate(r) => {
                let reply = match self.control.allocate(&view, &r, mono) {
                    Ok(a) => Reply::Allocated(a),
                    Err(e) => Reply::Error(e.detail().code()),
                };
                out.push((from, Payload::Resp(rpc, reply)));
                return;
            }
            Call::ReportBad(r) => {
                self.control.report_bad(r.server_id, &r.sha256);
                out.push((from, Payload::Resp(rpc, Reply::Ack)));
                return;
            }
            Call::Heartbeat(r) => match self.control.heartbeat_begin(&view, &r, mono, wall) {
                HeartbeatStep::Reregister => {
                    let resp = HeartbeatResponse {
                        reregister: true,
                        ..Default::default()
                    };
                    out.push((from, Payload::Resp(rpc, Reply::Heartbeat(resp))));
                    return;
                }
                HeartbeatStep::Accept {
                    epoch,
                    update: None,
                } => {
                    let resp = self.control.heartbeat_finish(&view, &r, epoch, mono);
                    out.push((from, Payload::Resp(rpc, Reply::Heartbeat(resp))));
                    return;
                }
                HeartbeatStep::Accept {
                    epoch,
                    update: Some(u),
                } => (
                    Op::ChunkserverUpdate(u),
                    Then::Heartbeat(Box::new(r), epoch),
                ),
            },
            Call::Locate(_)
            | Call::PutChunk { .. }
            | Call::GetChunk { .. }
            | Call::StatChunk { .. } => unreachable!("not a master call"),
        };
        let rx = self.propose(now_ms, session, op);
        self.wait(now_ms, from, rpc, Rx::Propose(rx), then);
    }

    /// Answer requests raft resolved (or that waited too long).
    fn resolve(&mut self, now_ms: u64, out: &mut Out) {
        let pending = std::mem::take(&mut self.pending);
        for mut p in pending {
            let reply = match &mut p.rx {
                Rx::Propose(rx) => match rx.try_recv() {
                    Ok(Ok(CommandResult { error: Some(e), .. })) => Some(Reply::Error(e.code())),
                    Ok(Ok(res)) => Some(self.after_commit(now_ms, &p.then, res)),
                    Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => Some(Reply::Lost),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                },
                Rx::Read(rx) => match rx.try_recv() {
                    Ok(Ok(())) => Some(self.after_read(&p.then)),
                    Ok(Err(NodeError::NotLeader { leader })) => Some(Reply::NotLeader(leader)),
                    Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => Some(Reply::Lost),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                },
            };
            match reply {
                Some(r) => out.push((p.from, Payload::Resp(p.rpc, r))),
                None if now_ms >= p.deadline_ms => {
                    out.push((p.from, Payload::Resp(p.rpc, Reply::Lost)));
                }
                None => self.pending.push(p),
            }
        }
    }

    fn after_commit(&mut self, now_ms: u64, then: &Then, res: CommandResult) -> Reply {
        match then {
            Then::Created => Reply::Created,
            Then::Put(fresh) => {
                self.control.learn_copies(fresh);
                Reply::Put
            }
            Then::Deleted => Reply::Deleted,
            Then::Registered => {
                let mono = self.mono(now_ms);
                self.control.registered(res.chunkserver_id, mono);
                Reply::Registered(res.chunkserver_id, res.chunkserver_epoch)
            }
            Then::Heartbeat(r, epoch) => {
                let store = self.store().expect("up");
                let view = store.view();
                let mono = self.mono(now_ms);
                Reply::Heartbeat(self.control.heartbeat_finish(&view, r, *epoch, mono))
            }
            Then::Get(_) => unreachable!("reads wait on the barrier"),
        }
    }

    fn after_read(&self, then: &Then) -> Reply {
        let Then::Get(r) = then else {
            unreachable!("only reads wait on the barrier")
        };
        let store = self.store().expect("up");
        let view = store.view();
        match state::get_object(&view, &r.bucket, &r.key) {
            Ok(m) => Reply::Got(Box::new(m)),
            Err(e) => Reply::Error(e.code()),
        }
    }

    /// `MasterService::heal_loop`: every interval, while leading and the previous sweep's
    /// commits are done, sweep and propose what it asks for.
    fn heal_loop(&mut self, now_ms: u64) {
        if now_ms < self.next_heal_ms {
            return;
        }
        self.next_heal_ms = now_ms + HEAL_INTERVAL_MS;
        self.heal_pending.retain_mut(|(deadline, rx)| {
            matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)) && now_ms < *deadline
        });
        if !self.heal_pending.is_empty() || self.require_leader(now_ms).is_err() {
            return;
        }
        let store = self.store().expect("up");
        let view = store.view();
        let (mono, wall) = (self.mono(now_ms), self.wall(now_ms));
        let sweep = self.control.sweep(&view, mono, wall);
        for op in sweep.ops() {
            let rx = self.propose(now_ms, None, op);
            self.heal_pending.push((now_ms + RAFT_TIMEOUT_MS, rx));
        }
    }

    /// Deliver a raft message.
    pub fn step_raft(&mut self, m: Message) {
        if let Some(core) = self.core.as_mut() {
            core.step(m);
        }
    }
}

/// Every chunk reference of every manifest and part in `kv`, with the number of references.
pub fn references(kv: &dyn KvRead) -> BTreeMap<Vec<u8>, u64> {
    let mut refs = BTreeMap::new();
    for prefix in [&b"o/"[..], b"p/"] {
        for (_, v) in kv.scan(prefix, state::prefix_end(prefix).as_deref(), usize::MAX) {
            let chunks = if prefix == b"o/" {
                Manifest::decode(v.as_slice()).expect("manifest").chunks
            } else {
                PartRecord::decode(v.as_slice()).expect("part").chunks
            };
            for c in chunks {
                *refs.entry(c.sha256).or_default() += 1;
            }
        }
    }
    refs
}

/// The live manifests in `kv` by key.
pub fn manifests(kv: &dyn KvRead) -> BTreeMap<String, Manifest> {
    let prefix = [b"o/", BUCKET.as_bytes(), b"\0"].concat();
    kv.scan(&prefix, state::prefix_end(&prefix).as_deref(), usize::MAX)
        .into_iter()
        .map(|(k, v)| {
            let key = String::from_utf8(k[prefix.len()..].to_vec()).expect("utf-8 key");
            (key, Manifest::decode(v.as_slice()).expect("manifest"))
        })
        .collect()
}
