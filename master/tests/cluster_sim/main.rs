//! Whole-cluster deterministic simulation: 3 masters (real raft `Core`, RocksDB, state
//! machine and leader decisions), 5 chunkservers (real `BlobStore`s) and 3 clients in one
//! seeded, single-threaded run on simulated time, with message drops, delays and reorders,
//! partitions of any node set, master and chunkserver crashes (restarted from disk), wiped
//! disks, corrupted blobs and clock jumps. See docs/architecture.md, "Whole-cluster
//! simulation".
//!
//! Checked after every step: election safety; state machine safety; refcounts equal the
//! manifests' references and the client session table is consistent
//! (`state::check_invariants`) on every member; every chunk a committed manifest references
//! has a good copy on some disk; no put is applied twice (every put writes a value of its own,
//! so one value under two object versions is a retried write applied again). After a fault-free settle phase: every
//! referenced chunk has exactly R good copies, no other blob and no unreferenced chunk record
//! is left, every object reads back byte-identical, and the history of client operations is
//! linearizable (`anode-lincheck`).
//!
//! Besides the network's random drops, the answer to a committed write is lost now and then
//! ([`LOSE_WRITE_ANSWER_PCT`]): the client times out and retries it on another member, as after
//! a leader killed between commit and answer.
//!
//! `ANODE_SEED=<n>` replays one seed (the seed is printed on failure);
//! `ANODE_SIM_SEEDS=<count>` runs more seeds; `ANODE_SIM_STEPS=<n>` sets the chaos steps;
//! `ANODE_SIM_NO_SESSIONS=1` sends writes without client sessions (the invariants above then
//! catch retried writes applied twice: a demonstration that the sessions are needed).

mod body;
mod chunkserver;
mod client;
mod master;
mod net;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use anode_lincheck::{Event, EventType, Func, History, Verdict};
use anode_master::node::bootstrap_store;
use anode_master::read_lease::LeaseClock;
use anode_master::store::RaftStore;
use anode_meta::kv::KvRead as _;
use anode_meta::state;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use chunkserver::SimCs;
use client::{ClientIo, Outcome};
use master::{manifests, references, SimMaster};
use net::*;

type OpFuture = Pin<Box<dyn Future<Output = Outcome>>>;

struct ClientOp {
    /// `None`: set-up work, not part of the history.
    op_id: Option<u64>,
    f: Func,
    key: String,
    fut: OpFuture,
}

struct SimClient {
    io: Rc<ClientIo>,
    op: Option<ClientOp>,
    next_op_ms: u64,
}

/// Fault and workload counters, printed per seed.
#[derive(Debug, Default)]
struct Counts {
    partitions: u32,
    master_crashes: u32,
    cs_crashes: u32,
    wipes: u32,
    corruptions: u32,
    clock_jumps: u32,
    pauses: u32,
    gateway_restarts: u32,
    lost_write_answers: u32,
    /// Raft snapshots streamed from a pinned view into a member's staging area.
    snapshots_streamed: u32,
    ok: u32,
    fail: u32,
    info: u32,
}

struct Sim {
    seed: u64,
    rng: ChaCha8Rng,
    rt: tokio::runtime::Runtime,
    now: u64,
    masters: BTreeMap<u64, SimMaster>,
    css: BTreeMap<u64, SimCs>,
    clients: BTreeMap<u64, SimClient>,
    net: Vec<net::Envelope>,
    next_rpc: u64,
    /// Cut links (unordered pairs, stored low-high).
    cut: BTreeSet<(u64, u64)>,
    drop_pct: u32,
    chaos: bool,
    new_ops: bool,
    leaders: BTreeMap<u64, u64>,
    history: Vec<Event>,
    next_op: u64,
    counts: Counts,
    /// (key, etag) -> the object version that committed it: each put's value once.
    committed: BTreeMap<(String, String), u64>,
    /// Stopped masters (SIGSTOP) and when they continue.
    paused_until: BTreeMap<u64, u64>,
    /// Messages that reached a stopped master, handled when it continues.
    held: Vec<net::Envelope>,
    _root: tempfile::TempDir,
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

fn blob_path(dir: &Path, sha: &[u8]) -> PathBuf {
    let h = hex::encode(sha);
    dir.join("blobs").join(&h[0..2]).join(&h[2..4]).join(h)
}

/// Whether `dir` holds a good copy of `sha`.
fn good_copy(dir: &Path, sha: &[u8]) -> bool {
    std::fs::read(blob_path(dir, sha)).is_ok_and(|b| Sha256::digest(&b).as_slice() == sha)
}

/// Every blob file under `dir`.
fn blobs_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(top) = std::fs::read_dir(dir.join("blobs")) else {
        return out;
    };
    for a in top.flatten() {
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                if let Some(id) = f.file_name().to_str().and_then(|n| hex::decode(n).ok()) {
                    out.push(id);
                }
            }
        }
    }
    out.sort();
    out
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim::with_lease_clock(seed, LeaseClock::Monotonic)
    }

    /// A simulation whose masters measure their read lease with `lease_clock` (anything but
    /// `Monotonic` is a deliberately broken lease).
    fn with_lease_clock(seed: u64, lease_clock: LeaseClock) -> Sim {
        // On tmpfs when there is one: fsyncs cost nothing there, and the simulation's crashes
        // are process crashes (the disk keeps what was written), not power losses.
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut masters = BTreeMap::new();
        for id in 1..=MASTERS {
            let dir = root.path().join(format!("m{id}"));
            let store = RaftStore::open(&dir).expect("open store");
            bootstrap_store(&store, &master::peers()).expect("bootstrap");
            drop(store);
            let drift = rng.gen_range(-MAX_DRIFT_PPM..=MAX_DRIFT_PPM);
            let mut m = SimMaster::new(id, dir, rng.gen_range(10..30), drift, lease_clock);
            m.start(0, rng.gen());
            masters.insert(id, m);
        }
        let mut css = BTreeMap::new();
        for i in 1..=CHUNKSERVERS {
            let node = CS_BASE + i;
            let mut cs = SimCs::new(node, root.path().join(format!("cs{i}")));
            cs.start(0, rng.gen_range(0..HEARTBEAT_MS / STEP_MS) * STEP_MS);
            css.insert(node, cs);
        }
        let no_sessions = std::env::var_os("ANODE_SIM_NO_SESSIONS").is_some();
        let clients = (1..=CLIENTS)
            .map(|i| {
                let node = CLIENT_BASE + i;
                let io = ClientIo::new(node);
                io.no_sessions.set(no_sessions);
                let c = SimClient {
                    io,
                    op: None,
                    next_op_ms: 0,
                };
                (node, c)
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Sim {
            seed,
            rng,
            rt,
            now: 0,
            masters,
            css,
            clients,
            net: Vec::new(),
            next_rpc: 0,
            cut: BTreeSet::new(),
            drop_pct: 0,
            chaos: false,
            new_ops: false,
            leaders: BTreeMap::new(),
            history: Vec::new(),
            next_op: 0,
            counts: Counts::default(),
            committed: BTreeMap::new(),
            paused_until: BTreeMap::new(),
            held: Vec::new(),
            _root: root,
        }
    }

    // ---- the step ------------------------------------------------------------------------

    fn step(&mut self) {
        self.now += STEP_MS;
        if self.chaos {
            self.inject_faults();
        }
        self.continue_paused(false);
        self.deliver();
        let now = self.now;
        let ids: Vec<u64> = self.masters.keys().copied().collect();
        for id in ids {
            let mut out = Vec::new();
            self.masters.get_mut(&id).expect("id").tick(now, &mut out);
            self.route(id, out);
        }
        let ids: Vec<u64> = self.css.keys().copied().collect();
        for id in ids {
            let mut out = Vec::new();
            let cs = self.css.get_mut(&id).expect("id");
            cs.tick(&self.rt, now, &mut self.next_rpc, &mut out);
            self.route(id, out);
        }
        self.run_clients();
        self.check();
    }

    fn route(&mut self, from: u64, out: Out) {
        for (to, payload) in out {
            let delay = if self.chaos {
                self.rng.gen_range(1..=3)
            } else {
                1
            };
            self.net.push(net::Envelope {
                at_ms: self.now + delay * STEP_MS,
                from,
                to,
                payload,
            });
        }
    }

    fn deliver(&mut self) {
        let (mut due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|e| e.at_ms <= self.now);
        self.net = keep;
        // Reorder what arrives together.
        for i in (1..due.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            due.swap(i, j);
        }
        for e in due {
            let lost = self.cut.contains(&pair(e.from, e.to))
                || (self.drop_pct > 0 && self.rng.gen_range(0..100) < self.drop_pct)
                || self.lose_write_answer(&e);
            if !lost && self.paused_until.contains_key(&e.to) {
                self.held.push(e);
                continue;
            }
            self.deliver_one(e, lost);
        }
    }

    /// Stop master `id` (SIGSTOP) for `ms`: no ticks, nothing handled; its clock runs on.
    fn pause(&mut self, id: u64, ms: u64) {
        let m = self.masters.get_mut(&id).expect("id");
        if m.core.is_none() || m.paused {
            return;
        }
        m.paused = true;
        self.paused_until.insert(id, self.now + ms);
        self.counts.pauses += 1;
    }

    /// Continue stopped masters whose time came (`all`: every one). What reached
    /// one while it was stopped is handled now, the client requests first: after SIGCONT a
    /// process may well serve the requests waiting on its sockets before the raft messages
    /// that would tell it of a newer term, and a lease must hold even then.
    fn continue_paused(&mut self, all: bool) {
        let now = self.now;
        let due: Vec<u64> = self
            .paused_until
            .iter()
            .filter(|(_, t)| all || **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.paused_until.remove(&id);
            self.masters.get_mut(&id).expect("id").paused = false;
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|e| e.to == id);
            self.held = rest;
            let (reqs, others): (Vec<_>, Vec<_>) = mine
                .into_iter()
                .partition(|e| matches!(e.payload, Payload::Req(..)));
            for e in reqs.into_iter().chain(others) {
                self.deliver_one(e, false);
            }
        }
    }

    /// Whether to lose `e`, the answer to a committed (applied) write, on its way to the client.
    fn lose_write_answer(&mut self, e: &net::Envelope) -> bool {
        let committed = matches!(e.payload, Payload::Resp(_, Reply::Put | Reply::Deleted));
        if !(self.chaos && committed && self.rng.gen_range(0..100) < LOSE_WRITE_ANSWER_PCT) {
            return false;
        }
        self.counts.lost_write_answers += 1;
        true
    }

    fn deliver_one(&mut self, e: net::Envelope, mut lost: bool) {
        let now = self.now;
        if let Payload::Raft(m) = &e.payload {
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                // What the real transport does: stream the records of the view the sender
                // pinned into the receiver's staging area before the message is stepped, and
                // report the snapshot's fate to the sender.
                let up = self.masters[&e.to].core.is_some();
                if !lost && up {
                    let (from, to) = (self.masters[&e.from].store(), self.masters[&e.to].store());
                    let moved = match (from, to) {
                        (Some(f), Some(t)) => {
                            anode_master::store::transfer_snapshot(&f, &t, m.get_snapshot())
                        }
                        _ => Err(anode_master::store::StoreError::SnapshotStream(
                            "sender down".into(),
                        )),
                    };
                    lost = moved.is_err();
                    self.counts.snapshots_streamed += u32::from(!lost);
                }
                if let Some(core) = self.masters.get_mut(&e.from).and_then(|m| m.core.as_mut()) {
                    core.report_snapshot(e.to, !lost && up);
                }
            }
        }
        if lost {
            return;
        }
        if is_master(e.to) {
            let m = self.masters.get_mut(&e.to).expect("master");
            if m.core.is_none() {
                return;
            }
            m.set_clock(now);
            let mut out = Vec::new();
            match e.payload {
                Payload::Raft(msg) => m.step_raft(msg),
                Payload::Req(rpc, call) => m.on_call(now, e.from, rpc, call, &mut out),
                Payload::Resp(..) => {}
            }
            m.flush_raft(&mut out);
            self.route(e.to, out);
        } else if let Some(cs) = self.css.get_mut(&e.to) {
            if cs.store.is_none() {
                return;
            }
            let mut out = Vec::new();
            match e.payload {
                Payload::Req(rpc, call) => {
                    let reply = cs.on_call(&self.rt, call);
                    out.push((e.from, Payload::Resp(rpc, reply)));
                }
                Payload::Resp(rpc, reply) if cs.is_copy(rpc) => {
                    cs.on_copy_reply(&self.rt, now, rpc, reply);
                }
                Payload::Resp(rpc, reply) => {
                    cs.on_master_reply(now, rpc, reply, &mut self.next_rpc, &mut out);
                }
                Payload::Raft(_) => unreachable!("raft to a chunkserver"),
            }
            self.route(e.to, out);
        } else if let Some(c) = self.clients.get(&e.to) {
            if let Payload::Resp(rpc, reply) = e.payload {
                c.io.deliver(rpc, reply);
            }
        }
    }

    // ---- clients -------------------------------------------------------------------------

    fn run_clients(&mut self) {
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            self.run_client(id);
            let out = self.clients[&id].io.take_out();
            self.route(id, out);
        }
    }

    fn run_client(&mut self, id: u64) {
        let now = self.now;
        let c = self.clients.get_mut(&id).expect("client");
        c.io.set_now(now);
        if c.op.is_none() && self.new_ops && now >= c.next_op_ms {
            if self.chaos && self.rng.gen_range(0..100) < GATEWAY_RESTART_PCT {
                // A gateway restart: the new process guesses the leader from its master list.
                c.io.leader.set(self.rng.gen_range(1..=MASTERS));
                self.counts.gateway_restarts += 1;
            }
            let op = Self::new_op(
                &mut self.rng,
                &mut self.next_op,
                &mut self.history,
                id,
                now,
                &c.io,
            );
            c.op = Some(op);
        }
        let Some(op) = c.op.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(outcome) = op.fut.as_mut().poll(&mut cx) else {
            return;
        };
        let op = c.op.take().expect("running");
        c.io.forget_calls();
        c.next_op_ms = now + self.rng.gen_range(0..5) * STEP_MS;
        let Some(op_id) = op.op_id else {
            return;
        };
        let (kind, value) = match outcome {
            Outcome::Ok(v) => {
                self.counts.ok += 1;
                (EventType::Ok, v)
            }
            Outcome::Fail => {
                self.counts.fail += 1;
                (EventType::Fail, None)
            }
            Outcome::Info => {
                self.counts.info += 1;
                (EventType::Info, None)
            }
        };
        self.history.push(Event {
            process: id,
            op_id,
            kind,
            f: op.f,
            key: op.key,
            value,
            time_ns: now * 1_000_000,
        });
    }

    fn new_op(
        rng: &mut ChaCha8Rng,
        next_op: &mut u64,
        history: &mut Vec<Event>,
        process: u64,
        now: u64,
        io: &Rc<ClientIo>,
    ) -> ClientOp {
        *next_op += 1;
        let op_id = *next_op;
        let key = KEYS[rng.gen_range(0..KEYS.len())].to_string();
        let roll = rng.gen_range(0..100);
        let (f, value, fut): (Func, Option<String>, OpFuture) = if roll < 45 {
            let v = body::value_for(op_id, rng.gen_range(0..100), rng.gen_range(0..body::POOL));
            // Some writers stall mid-body (a slow S3 upload): their first copies age past
            // the touch threshold, or become orphans the GC may take.
            let stall_ms = if rng.gen_bool(0.15) {
                rng.gen_range(0..2 * TOUCH_AFTER_MS / STEP_MS) * STEP_MS
            } else {
                0
            };
            let fut = Box::pin(client::put(io.clone(), key.clone(), v.clone(), stall_ms));
            (Func::Put, Some(v), fut)
        } else if roll < 85 {
            (
                Func::Get,
                None,
                Box::pin(client::get(io.clone(), key.clone())),
            )
        } else {
            (
                Func::Delete,
                None,
                Box::pin(client::delete(io.clone(), key.clone())),
            )
        };
        history.push(Event {
            process,
            op_id,
            kind: EventType::Invoke,
            f,
            key: key.clone(),
            value,
            time_ns: now * 1_000_000,
        });
        ClientOp {
            op_id: Some(op_id),
            f,
            key,
            fut,
        }
    }

    fn ops_running(&self) -> bool {
        self.clients.values().any(|c| c.op.is_some())
    }

    // ---- faults --------------------------------------------------------------------------

    fn all_nodes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.masters.keys().copied().collect();
        v.extend(self.css.keys());
        v.extend(self.clients.keys());
        v
    }

    /// A running master to crash or pause: the leader with probability `leader_bias` (when
    /// there is one), else any running master.
    fn pick_master_victim(&mut self, leader_bias: f64) -> Option<u64> {
        let up: Vec<u64> = self
            .masters
            .iter()
            .filter(|(_, m)| m.core.is_some())
            .map(|(id, _)| *id)
            .collect();
        let leader = self.masters.values().find(|m| m.is_leader()).map(|m| m.id);
        match leader {
            Some(l) if self.rng.gen_bool(leader_bias) => Some(l),
            _ => self.pick(&up),
        }
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.gen_range(0..v.len())])
    }

    fn inject_faults(&mut self) {
        let roll: u32 = self.rng.gen_range(0..1000);
        match roll {
            0..=4 => self.partition_set(),
            5..=7 => self.isolate_leader(),
            8..=11 => {
                let nodes = self.all_nodes();
                let (a, b) = (self.pick(&nodes), self.pick(&nodes));
                if let (Some(a), Some(b)) = (a, b) {
                    if a != b {
                        self.cut.insert(pair(a, b));
                        self.counts.partitions += 1;
                    }
                }
            }
            12..=26 => self.cut.clear(),
            27..=30 => {
                let victim = self.pick_master_victim(0.5);
                if let Some(id) = victim {
                    self.masters.get_mut(&id).expect("id").crash();
                    self.paused_until.remove(&id);
                    self.held.retain(|e| e.to != id);
                    self.counts.master_crashes += 1;
                }
            }
            31..=45 => self.restart_masters(),
            46..=48 => {
                let up: Vec<u64> = self
                    .css
                    .iter()
                    .filter(|(_, c)| c.store.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(id) = self.pick(&up) {
                    self.css.get_mut(&id).expect("id").crash();
                    self.counts.cs_crashes += 1;
                }
            }
            49..=62 => self.restart_chunkservers(),
            63 => self.wipe_disk(),
            64..=67 => self.corrupt_blob(),
            68..=74 => {
                let nodes = self.all_nodes();
                if let Some(n) = self.pick(&nodes) {
                    let half = (CLOCK_SKEW_MS / 2) as i64;
                    let offset = self.rng.gen_range(-half..=half);
                    self.set_offset(n, offset);
                    self.counts.clock_jumps += 1;
                }
            }
            75..=77 => self.drop_pct = self.rng.gen_range(0..=10),
            78..=81 => {
                let victim = self.pick_master_victim(0.7);
                if let Some(id) = victim {
                    let ms = self.rng.gen_range(1..=MAX_PAUSE_MS / STEP_MS) * STEP_MS;
                    self.pause(id, ms);
                }
            }
            _ => {}
        }
    }

    /// Cut the leader off from every other node, or only from the other masters (clients
    /// and chunkservers still reach a leader that is about to be deposed).
    fn isolate_leader(&mut self) {
        let Some(l) = self.masters.values().find(|m| m.is_leader()).map(|m| m.id) else {
            return;
        };
        let masters_only = self.rng.gen_bool(0.5);
        for n in self.all_nodes().into_iter().filter(|n| *n != l) {
            if !masters_only || is_master(n) {
                self.cut.insert(pair(l, n));
            }
        }
        self.counts.partitions += 1;
    }

    fn partition_set(&mut self) {
        let nodes = self.all_nodes();
        let size = self.rng.gen_range(1..=3);
        let mut side = BTreeSet::new();
        for _ in 0..size {
            if let Some(n) = self.pick(&nodes) {
                side.insert(n);
            }
        }
        self.cut.clear();
        for a in &side {
            for b in nodes.iter().filter(|b| !side.contains(b)) {
                self.cut.insert(pair(*a, *b));
            }
        }
        self.counts.partitions += 1;
    }

    fn set_offset(&mut self, node: u64, offset: i64) {
        if let Some(m) = self.masters.get_mut(&node) {
            m.wall_offset_ms = offset;
        } else if let Some(c) = self.css.get_mut(&node) {
            c.wall_offset_ms = offset;
            c.set_clock(self.now);
        } else if let Some(c) = self.clients.get(&node) {
            c.io.wall_offset_ms.set(offset);
        }
    }

    fn restart_masters(&mut self) {
        let now = self.now;
        for m in self.masters.values_mut() {
            if m.core.is_none() {
                m.start(now, self.rng.gen());
            }
        }
    }

    fn restart_chunkservers(&mut self) {
        let now = self.now;
        for cs in self.css.values_mut() {
            if cs.store.is_none() {
                cs.start(now, now);
            }
        }
    }

    /// Good copies of `sha` on disks other than `except`'s (down servers included).
    fn good_copies_except(&self, sha: &[u8], except: u64) -> usize {
        self.css
            .values()
            .filter(|c| c.node != except && good_copy(&c.dir, sha))
            .count()
    }

    /// Lose a whole disk, unless it holds the last good copy of some blob.
    fn wipe_disk(&mut self) {
        let ids: Vec<u64> = self.css.keys().copied().collect();
        let Some(id) = self.pick(&ids) else { return };
        let dir = self.css[&id].dir.clone();
        if blobs_in(&dir)
            .iter()
            .any(|sha| self.good_copies_except(sha, id) == 0)
        {
            return;
        }
        self.css.get_mut(&id).expect("id").wipe();
        self.counts.wipes += 1;
    }

    /// Rot one blob in place (mtime kept), unless it is the last good copy.
    fn corrupt_blob(&mut self) {
        let ids: Vec<u64> = self.css.keys().copied().collect();
        let Some(id) = self.pick(&ids) else { return };
        let dir = self.css[&id].dir.clone();
        let blobs = blobs_in(&dir);
        let Some(i) = (!blobs.is_empty()).then(|| self.rng.gen_range(0..blobs.len())) else {
            return;
        };
        let sha = &blobs[i];
        if !good_copy(&dir, sha) || self.good_copies_except(sha, id) == 0 {
            return;
        }
        let path = blob_path(&dir, sha);
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("blob mtime");
        let mut bytes = std::fs::read(&path).expect("read blob");
        bytes[0] ^= 0xff;
        std::fs::write(&path, &bytes).expect("rot blob");
        let f = std::fs::File::options()
            .append(true)
            .open(&path)
            .expect("open blob");
        f.set_modified(mtime).expect("keep mtime");
        self.counts.corruptions += 1;
    }

    // ---- invariants ----------------------------------------------------------------------

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: t={} ms: {what}", self.seed, self.now)
    }

    /// The up member with the highest applied index: the committed state to check against.
    fn reference_member(&self) -> Option<&SimMaster> {
        self.masters
            .values()
            .filter(|m| m.core.is_some())
            .max_by_key(|m| m.core.as_ref().map(|c| c.raft().raft_log.applied))
    }

    fn check(&mut self) {
        for (id, m) in &self.masters {
            let Some(core) = m.core.as_ref() else {
                continue;
            };
            let r = core.raft();
            if r.state == raft::StateRole::Leader {
                if let Some(other) = self.leaders.insert(r.term, *id) {
                    if other != *id {
                        self.fail(format!("two leaders in term {}: {other} and {id}", r.term));
                    }
                }
            }
        }
        let mut by_index: BTreeMap<u64, (u64, &Vec<u8>, u64)> = BTreeMap::new();
        for (id, m) in &self.masters {
            for (i, (t, d)) in &m.applied {
                match by_index.get(i) {
                    Some((t0, d0, who)) if t0 != t || *d0 != d => {
                        self.fail(format!("index {i} applied differently on {who} and {id}"))
                    }
                    Some(_) => {}
                    None => {
                        by_index.insert(*i, (*t, d, *id));
                    }
                }
            }
        }
        for m in self.masters.values() {
            let Some(store) = m.store() else { continue };
            let res = state::check_invariants(&store.view());
            if let Err(e) = res {
                self.fail(format!("member {}: {e}", m.id));
            }
        }
        self.check_durability();
        self.check_applied_once();
    }

    /// No put's value is committed under two object versions (applied twice).
    fn check_applied_once(&mut self) {
        let Some(store) = self.reference_member().and_then(|m| m.store()) else {
            return;
        };
        for (key, m) in manifests(&store.view()) {
            let first = *self
                .committed
                .entry((key.clone(), m.etag.clone()))
                .or_insert(m.object_version);
            if first != m.object_version {
                self.fail(format!(
                    "the put of {key} with etag {} was applied twice: object versions {first} \
                     and {}",
                    m.etag, m.object_version
                ));
            }
        }
    }

    /// Every chunk a committed manifest references has a good copy on some disk.
    fn check_durability(&self) {
        let Some(store) = self.reference_member().and_then(|m| m.store()) else {
            return;
        };
        for sha in references(&store.view()).keys() {
            if self.good_copies_except(sha, 0) == 0 {
                self.fail(format!(
                    "chunk {} of a committed manifest has no good copy on any disk",
                    hex::encode(sha)
                ));
            }
        }
    }

    // ---- phases --------------------------------------------------------------------------

    /// Fault-free start until the bucket exists (not part of the history).
    fn warm_up(&mut self) {
        let id = CLIENT_BASE + 1;
        let io = self.clients[&id].io.clone();
        let c = self.clients.get_mut(&id).expect("client");
        c.op = Some(ClientOp {
            op_id: None,
            f: Func::Put,
            key: String::new(),
            fut: Box::pin(client::create_bucket(io)),
        });
        for _ in 0..600 {
            self.step();
            if !self.ops_running() {
                return;
            }
        }
        self.fail("warm-up: the bucket was never created".into());
    }

    fn chaos_phase(&mut self, steps: u64) {
        self.chaos = true;
        self.new_ops = true;
        for _ in 0..steps {
            self.step();
        }
    }

    /// Everything up and connected, no new operations: run until the cluster converged.
    fn settle(&mut self) {
        self.chaos = false;
        self.new_ops = false;
        self.continue_paused(true);
        self.cut.clear();
        self.drop_pct = 0;
        self.restart_masters();
        self.restart_chunkservers();
        let mut why = String::new();
        for i in 0..3000 {
            self.step();
            if i % 20 == 0 {
                for cs in self.css.values_mut() {
                    cs.scrub_all(&self.rt);
                }
            }
            match self.converged() {
                Ok(()) => return,
                Err(e) => why = e,
            }
        }
        self.fail(format!("did not converge: {why}"));
    }

    fn converged(&self) -> Result<(), String> {
        if self.ops_running() {
            return Err("client operations still running".into());
        }
        let leader = self
            .masters
            .values()
            .find(|m| m.is_leader())
            .ok_or("no leader")?;
        let last = leader
            .core
            .as_ref()
            .expect("up")
            .raft()
            .raft_log
            .last_index();
        for m in self.masters.values() {
            let applied = m.core.as_ref().expect("up").raft().raft_log.applied;
            if applied != last {
                return Err(format!("member {} applied {applied} of {last}", m.id));
            }
        }
        let fig = leader.control.healer().figures();
        if !fig.locations_complete || fig.in_flight > 0 || fig.summary.under_replicated > 0 {
            return Err(format!("healing not done: {fig:?}"));
        }
        let store = leader.store().expect("up");
        let view = store.view();
        // Every member applied the same log to the same state: the state machines agree key
        // for key (the event queues included: events and their ids come from the log only).
        let all = view.scan(b"", None, usize::MAX);
        for m in self.masters.values() {
            let mine = m.store().expect("up").view().scan(b"", None, usize::MAX);
            if mine != all {
                let first = all
                    .iter()
                    .zip(&mine)
                    .find(|(a, b)| a != b)
                    .map(|(a, _)| String::from_utf8_lossy(&a.0).into_owned());
                return Err(format!(
                    "member {} state differs from the leader's ({} keys against {}; first \
                     difference at {first:?})",
                    m.id,
                    mine.len(),
                    all.len()
                ));
            }
        }
        let refs = references(&view);
        for (sha, ci) in state::scan_chunks(&view, &[], usize::MAX) {
            if ci.refcount == 0 {
                let holders = leader
                    .control
                    .healer()
                    .holders(&sha.clone().try_into().expect("32 bytes"));
                let on_disk: Vec<u64> = self
                    .css
                    .values()
                    .filter(|c| blob_path(&c.dir, &sha).exists())
                    .map(|c| c.node)
                    .collect();
                let states: Vec<(u64, String, i32)> = leader
                    .control
                    .server_states(&view, self.now)
                    .into_iter()
                    .map(|(r, s)| (r.id, r.addr, s as i32))
                    .collect();
                return Err(format!(
                    "unreferenced chunk record {} {ci:?}, holders {holders:?}, on disks of {on_disk:?}, servers {states:?}",
                    hex::encode(&sha),
                ));
            }
        }
        for sha in refs.keys() {
            let n = self.good_copies_except(sha, 0);
            if n != R as usize {
                return Err(format!("chunk {} has {n} good copies", hex::encode(sha)));
            }
        }
        for cs in self.css.values() {
            for sha in blobs_in(&cs.dir) {
                if !refs.contains_key(&sha) {
                    return Err(format!("garbage blob {} on {}", hex::encode(&sha), cs.node));
                }
                if !good_copy(&cs.dir, &sha) {
                    return Err(format!("corrupt blob {} on {}", hex::encode(&sha), cs.node));
                }
            }
        }
        Ok(())
    }

    /// One last read of every key (fault-free), in the history too; and every object's
    /// bytes straight from the disks.
    fn final_reads(&mut self) {
        let client = CLIENT_BASE + 1;
        for key in KEYS {
            self.next_op += 1;
            let op_id = self.next_op;
            let io = self.clients[&client].io.clone();
            self.history.push(Event {
                process: client,
                op_id,
                kind: EventType::Invoke,
                f: Func::Get,
                key: key.into(),
                value: None,
                time_ns: self.now * 1_000_000,
            });
            let c = self.clients.get_mut(&client).expect("client");
            c.op = Some(ClientOp {
                op_id: Some(op_id),
                f: Func::Get,
                key: key.into(),
                fut: Box::pin(client::get(io, key.into())),
            });
            for _ in 0..200 {
                self.step();
                if !self.ops_running() {
                    break;
                }
            }
            let last = self.history.last().expect("event");
            if last.op_id != op_id || last.kind != EventType::Ok {
                self.fail(format!("final read of {key} did not succeed: {last:?}"));
            }
        }
        let store = self.reference_member().and_then(|m| m.store()).expect("up");
        for (key, m) in manifests(&store.view()) {
            let mut body = m.inline_data.clone();
            for c in &m.chunks {
                let copy = self
                    .css
                    .values()
                    .find(|cs| good_copy(&cs.dir, &c.sha256))
                    .map(|cs| std::fs::read(blob_path(&cs.dir, &c.sha256)).expect("read"));
                body.extend(copy.unwrap_or_else(|| self.fail(format!("{key}: chunk lost"))));
            }
            if body::value_of(&body).is_none() {
                self.fail(format!("{key}: stored bytes are no value's body"));
            }
        }
    }

    fn history_verdict(&self) -> (usize, Verdict) {
        let h = History {
            events: self.history.clone(),
        };
        let ops = h
            .operations()
            .unwrap_or_else(|e| self.fail(format!("history: {e}")));
        (
            ops.len(),
            anode_lincheck::check(&ops, anode_lincheck::Options::default()),
        )
    }

    fn check_history(&self) {
        match self.history_verdict() {
            (_, Verdict::Linearizable) => {}
            (n, other) => self.fail(format!(
                "history of {n} operations is not linearizable: {other:?}"
            )),
        }
    }

    /// A digest of everything observable: applied entries and the history.
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        for m in self.masters.values() {
            for (i, (t, d)) in &m.applied {
                h.update(i.to_be_bytes());
                h.update(t.to_be_bytes());
                h.update(d);
            }
        }
        h.update(
            History {
                events: self.history.clone(),
            }
            .to_jsonl(),
        );
        hex::encode(h.finalize())
    }
}

/// Run one seed; returns the digest of the run.
fn run_seed(seed: u64, steps: u64) -> String {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed);
        sim.warm_up();
        sim.chaos_phase(steps);
        sim.settle();
        sim.final_reads();
        sim.check_history();
        println!(
            "seed {seed}: {steps} chaos steps, {} s simulated, terms with a leader {}, ops {:?}",
            sim.now / 1000,
            sim.leaders.len(),
            sim.counts
        );
        sim.digest()
    }));
    match result {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cluster_sim failed; replay with ANODE_SEED={seed}");
            std::panic::resume_unwind(e)
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{name} must be a u64")))
}

fn seeds() -> Vec<u64> {
    match (env_u64("ANODE_SEED"), env_u64("ANODE_SIM_SEEDS")) {
        (Some(s), _) => vec![s],
        (None, Some(n)) => (1..=n).collect(),
        (None, None) => vec![1, 2, 3, 4],
    }
}

#[test]
fn whole_cluster_under_chaos() {
    let steps = env_u64("ANODE_SIM_STEPS").unwrap_or(1500);
    for seed in seeds() {
        run_seed(seed, steps);
        // The raft message check refuses nothing real members send (crashes, partitions,
        // lost disks and clock jumps included).
        assert_eq!(
            anode_master::metrics::raft_messages_refused(),
            0,
            "seed {seed}: legitimate raft messages refused"
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    let seed = env_u64("ANODE_SEED").unwrap_or(7);
    assert_eq!(
        run_seed(seed, 300),
        run_seed(seed, 300),
        "seed {seed} did not replay"
    );
}

impl Sim {
    /// Start an operation of the history on `client` (which must be idle).
    fn start_op(&mut self, client: u64, f: Func, key: &str, value: Option<String>) -> u64 {
        self.next_op += 1;
        let op_id = self.next_op;
        let io = self.clients[&client].io.clone();
        let fut: OpFuture = match (f, &value) {
            (Func::Put, Some(v)) => Box::pin(client::put(io, key.into(), v.clone(), 0)),
            (Func::Get, _) => Box::pin(client::get(io, key.into())),
            _ => unreachable!("puts and gets only"),
        };
        self.history.push(Event {
            process: client,
            op_id,
            kind: EventType::Invoke,
            f,
            key: key.into(),
            value,
            time_ns: self.now * 1_000_000,
        });
        let c = self.clients.get_mut(&client).expect("client");
        c.op = Some(ClientOp {
            op_id: Some(op_id),
            f,
            key: key.into(),
            fut,
        });
        op_id
    }

    /// Step until no client operation runs (at most `steps`).
    fn run_ops(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step();
            if !self.ops_running() {
                return;
            }
        }
        self.fail("client operations did not finish".into());
    }

    fn leader_id(&self) -> Option<u64> {
        self.masters.values().find(|m| m.is_leader()).map(|m| m.id)
    }
}

/// The stale read a lease must prevent, played on the real cluster: the leader `L` answers a
/// read (taking its lease), then stops (SIGSTOP) while its clock runs on; the others elect a
/// new leader, which commits a new value of the key; a gateway that still believes in `L`
/// sends it a read, and `L` continues and serves that request before the raft messages of the
/// newer term. A lease measured on the monotonic clock has lapsed by then (the read waits for
/// a round, which the new term refuses, and the client retries on the new leader); a broken
/// one answers the old value, and the checker must say so. Returns its verdict.
fn stale_read_after_pause(seed: u64, clock: LeaseClock) -> Verdict {
    let mut sim = Sim::with_lease_clock(seed, clock);
    sim.warm_up();
    let (c1, c2) = (CLIENT_BASE + 1, CLIENT_BASE + 2);
    let key = KEYS[0];
    sim.start_op(c1, Func::Put, key, Some("v1-i".into()));
    sim.run_ops(600);
    let old = sim.leader_id().expect("a leader");
    sim.clients[&c2].io.leader.set(old);
    sim.start_op(c2, Func::Get, key, None);
    sim.run_ops(600);
    // Stop the leader for long enough; the others elect a new one.
    sim.pause(old, 60_000);
    let mut new = None;
    for _ in 0..600 {
        sim.step();
        new = sim.leader_id().filter(|l| *l != old);
        if new.is_some() {
            break;
        }
    }
    let new = new.unwrap_or_else(|| sim.fail("no new leader while the old one is stopped".into()));
    sim.clients[&c1].io.leader.set(new);
    sim.start_op(c1, Func::Put, key, Some("v2-i".into()));
    sim.run_ops(600);
    // A gateway that still believes in the old leader reads (strictly after the put
    // returned); the old leader continues.
    sim.step();
    sim.clients[&c2].io.leader.set(old);
    sim.start_op(c2, Func::Get, key, None);
    for _ in 0..3 {
        sim.step(); // the request reaches the stopped leader and waits there
    }
    sim.paused_until.insert(old, sim.now);
    sim.run_ops(600);
    let (n, verdict) = sim.history_verdict();
    if std::env::var_os("ANODE_SIM_DEBUG").is_some() {
        for e in &sim.history {
            println!("{e:?}");
        }
    }
    println!("stale read after pause, lease {clock:?}, seed {seed}: {n} operations: {verdict:?}");
    verdict
}

#[test]
fn a_lease_survives_a_stopped_leader_and_a_broken_one_is_caught() {
    let seed = env_u64("ANODE_SEED").unwrap_or(11);
    assert_eq!(
        stale_read_after_pause(seed, LeaseClock::Monotonic),
        Verdict::Linearizable,
        "seed {seed}: the lease on the monotonic clock served a stale read"
    );
    for broken in [LeaseClock::BrokenTicks, LeaseClock::BrokenForever] {
        assert_ne!(
            stale_read_after_pause(seed, broken),
            Verdict::Linearizable,
            "seed {seed}: the checker missed the stale read of a broken lease ({broken:?})"
        );
    }
}
