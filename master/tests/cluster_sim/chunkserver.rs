//! A simulated chunkserver: the real `BlobStore` on a temp dir (driven one operation at a
//! time through a current-thread tokio runtime), the real heartbeat request builder, and a
//! model of the heartbeat loop, command executor, data API and scrubber of
//! `anode_chunkserver` (`heartbeat.rs`, `service.rs`, `scrub.rs`) on simulated time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anode_chunkserver::heartbeat::{build_request, Results};
use anode_chunkserver::store::{load_uuid, BlobStore, Events};
use anode_proto::chunk_command::Op as CmdOp;
use anode_proto::*;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

use crate::net::*;

/// Copies and deletions run at once per server (`COMMAND_CONCURRENCY`).
const COMMAND_CONCURRENCY: usize = 4;
/// A copy waits this long for its source.
const COPY_TIMEOUT_MS: u64 = 5_000;

enum Beat {
    Register,
    Heartbeat(Results),
}

struct Copy {
    cmd: u64,
    sha: Vec<u8>,
    deadline_ms: u64,
}

/// One chunkserver.
pub struct SimCs {
    /// Node id (also its address `cs-<node>`).
    pub node: u64,
    /// Its one data directory.
    pub dir: PathBuf,
    rack: String,
    /// Disk generation: a wiped disk comes back with a new identity.
    pub generation: u64,
    /// `None` while down.
    pub store: Option<BlobStore>,
    /// Wall clock offset from true time.
    pub wall_offset_ms: i64,
    clock: Arc<AtomicU64>,
    reg: Option<(u64, u64)>,
    pending: Events,
    send_full: bool,
    last_full_ms: u64,
    next_beat_ms: u64,
    beat: Option<(u64, u64, Beat)>,
    leader: u64,
    results: Results,
    running: BTreeSet<u64>,
    queue: VecDeque<ChunkCommand>,
    copies: BTreeMap<u64, Copy>,
    scrub_after: Vec<u8>,
    next_scrub_ms: u64,
}

impl SimCs {
    /// A chunkserver (down until started).
    pub fn new(node: u64, dir: PathBuf) -> SimCs {
        SimCs {
            node,
            dir,
            rack: format!("rack-{}", node % 3),
            generation: 0,
            store: None,
            wall_offset_ms: 0,
            clock: Arc::default(),
            reg: None,
            pending: Events::default(),
            send_full: true,
            last_full_ms: 0,
            next_beat_ms: 0,
            beat: None,
            leader: 1,
            results: Results::default(),
            running: BTreeSet::new(),
            queue: VecDeque::new(),
            copies: BTreeMap::new(),
            scrub_after: Vec::new(),
            next_scrub_ms: 0,
        }
    }

    /// Set the wall clock for `now_ms`.
    pub fn set_clock(&self, now_ms: u64) {
        let wall = (BASE_WALL_MS + now_ms).saturating_add_signed(self.wall_offset_ms);
        self.clock.store(wall, Ordering::SeqCst);
    }

    /// Start (or restart): open the store (leftovers in tmp/ go), register again.
    pub fn start(&mut self, now_ms: u64, first_beat_ms: u64) {
        std::fs::create_dir_all(&self.dir).expect("data dir");
        let uuid_file = self.dir.join("uuid");
        if !uuid_file.exists() {
            // A seeded identity instead of `load_uuid`'s random one (replays stay exact).
            let uuid = format!("uuid-{}-{}", self.node, self.generation);
            std::fs::write(&uuid_file, uuid).expect("write uuid");
        }
        let clock = self.clock.clone();
        let store = BlobStore::open(std::slice::from_ref(&self.dir), CAPACITY_BYTES)
            .expect("open blob store")
            .with_clock(Arc::new(move || {
                UNIX_EPOCH + Duration::from_millis(clock.load(Ordering::SeqCst))
            }));
        self.set_clock(now_ms);
        self.store = Some(store);
        self.send_full = true;
        self.last_full_ms = now_ms;
        self.next_beat_ms = first_beat_ms;
        self.next_scrub_ms = now_ms + SCRUB_EVERY_MS;
    }

    /// Crash: memory goes, the disk stays.
    pub fn crash(&mut self) {
        self.store = None;
        self.reg = None;
        self.pending = Events::default();
        self.beat = None;
        self.results = Results::default();
        self.running.clear();
        self.queue.clear();
        self.copies.clear();
    }

    /// Lose the disk: crash and remove everything, identity included.
    pub fn wipe(&mut self) {
        self.crash();
        // Already gone when a crashed server loses its disk twice before restarting.
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("wipe data dir: {e}"),
        }
        self.generation += 1;
    }

    fn epoch(&self) -> u64 {
        self.reg.map_or(0, |(_, e)| e)
    }

    /// Timers: heartbeat or registration, the scrubber, copy timeouts.
    pub fn tick(&mut self, rt: &Runtime, now_ms: u64, next_rpc: &mut u64, out: &mut Out) {
        if self.store.is_none() {
            return;
        }
        self.set_clock(now_ms);
        self.expire(now_ms);
        if let Some((rpc, deadline, _)) = &self.beat {
            if now_ms >= *deadline {
                let rpc = *rpc;
                self.on_master_reply(now_ms, rpc, Reply::Timeout, next_rpc, out);
            }
        }
        if self.beat.is_none() && now_ms >= self.next_beat_ms {
            self.next_beat_ms = now_ms + HEARTBEAT_MS;
            self.send_beat(now_ms, next_rpc, out);
        }
        if now_ms >= self.next_scrub_ms {
            self.next_scrub_ms = now_ms + SCRUB_EVERY_MS;
            self.scrub_one(rt);
        }
        self.pump(rt, now_ms, next_rpc, out);
    }

    fn send_beat(&mut self, now_ms: u64, next_rpc: &mut u64, out: &mut Out) {
        let store = self.store.clone().expect("up");
        *next_rpc += 1;
        let rpc = *next_rpc;
        let Some((id, epoch)) = self.reg else {
            let uuid = load_uuid(&self.dir).expect("uuid");
            let req = RegisterChunkserverRequest {
                addr: cs_addr(self.node),
                rack: self.rack.clone(),
                capacity_bytes: store.capacity_bytes(),
                uuid,
            };
            out.push((self.leader, Payload::Req(rpc, Call::Register(req))));
            self.beat = Some((rpc, now_ms + RPC_TIMEOUT_MS, Beat::Register));
            return;
        };
        let ev = store.take_events();
        self.pending.added.extend(ev.added);
        self.pending.removed.extend(ev.removed);
        self.pending.corrupt.extend(ev.corrupt);
        if now_ms.saturating_sub(self.last_full_ms) >= FULL_REPORT_MS {
            self.send_full = true;
        }
        let full = if self.send_full {
            self.last_full_ms = now_ms;
            store
                .list()
                .ok()
                .map(|l| l.into_iter().map(|(s, _)| s).collect())
        } else {
            None
        };
        let results = std::mem::take(&mut self.results);
        let req = build_request(&store, id, epoch, &self.pending, full, &results);
        out.push((self.leader, Payload::Req(rpc, Call::Heartbeat(req))));
        self.beat = Some((rpc, now_ms + RPC_TIMEOUT_MS, Beat::Heartbeat(results)));
    }

    /// A master's answer to the registration or heartbeat in flight.
    pub fn on_master_reply(
        &mut self,
        now_ms: u64,
        rpc: u64,
        reply: Reply,
        next_rpc: &mut u64,
        out: &mut Out,
    ) {
        if self.beat.as_ref().is_none_or(|(r, _, _)| *r != rpc) {
            return;
        }
        let (_, _, kind) = self.beat.take().expect("checked");
        match (kind, reply) {
            (Beat::Register, Reply::Registered(id, epoch)) => {
                self.reg = Some((id, epoch));
                self.send_full = true;
                // The loop continues at once with a heartbeat.
                self.next_beat_ms = now_ms;
            }
            (Beat::Heartbeat(_), Reply::Heartbeat(resp)) if resp.reregister => {
                self.reg = None;
            }
            (Beat::Heartbeat(_), Reply::Heartbeat(resp)) => {
                self.pending = Events::default();
                self.send_full = resp.send_full_report;
                if resp.epoch == self.epoch() {
                    for c in resp.commands {
                        self.start_command(c);
                    }
                }
            }
            (kind, reply) => {
                if let Beat::Heartbeat(results) = kind {
                    // Report these outcomes next time.
                    self.results.done.extend(results.done);
                    self.results.failed.extend(results.failed);
                }
                self.follow(reply);
                // The master connection retries within its budget.
                self.next_beat_ms = self.next_beat_ms.min(now_ms + 2 * STEP_MS);
            }
        }
        let _ = (next_rpc, out);
    }

    fn follow(&mut self, reply: Reply) {
        match reply {
            Reply::NotLeader(l) if l != 0 => self.leader = l,
            _ => self.leader = self.leader % MASTERS + 1,
        }
    }

    fn start_command(&mut self, c: ChunkCommand) {
        if self.running.insert(c.id) {
            self.queue.push_back(c);
        }
    }

    fn finish_command(&mut self, now_ms: u64, id: u64, ok: bool) {
        if ok {
            self.results.done.push(id);
        } else {
            self.results.failed.push(id);
        }
        self.running.remove(&id);
        if self.running.is_empty() {
            // The executor went idle: report at once.
            self.next_beat_ms = self.next_beat_ms.min(now_ms);
        }
    }

    /// Start queued commands while permits are free.
    fn pump(&mut self, rt: &Runtime, now_ms: u64, next_rpc: &mut u64, out: &mut Out) {
        while self.copies.len() < COMMAND_CONCURRENCY {
            let Some(c) = self.queue.pop_front() else {
                return;
            };
            let store = self.store.clone().expect("up");
            match c.op {
                Some(CmdOp::Delete(d)) => {
                    let ok = matches!(
                        store.delete_if_untouched(&d.sha256, d.not_touched_since_ms),
                        Ok(Some(_))
                    );
                    self.finish_command(now_ms, c.id, ok);
                }
                Some(CmdOp::Replicate(r)) => {
                    if store.locate(&r.sha256).is_some() {
                        if rt.block_on(store.verify(&r.sha256)).unwrap_or(false) {
                            self.finish_command(now_ms, c.id, true);
                            continue;
                        }
                        store.quarantine(&r.sha256);
                    }
                    let Some(source) = cs_node(&r.source_addr) else {
                        self.finish_command(now_ms, c.id, false);
                        continue;
                    };
                    *next_rpc += 1;
                    let call = Call::GetChunk {
                        sha: r.sha256.clone(),
                    };
                    out.push((source, Payload::Req(*next_rpc, call)));
                    self.copies.insert(
                        *next_rpc,
                        Copy {
                            cmd: c.id,
                            sha: r.sha256,
                            deadline_ms: now_ms + COPY_TIMEOUT_MS,
                        },
                    );
                }
                None => self.finish_command(now_ms, c.id, true),
            }
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let late: Vec<u64> = self
            .copies
            .iter()
            .filter(|(_, c)| now_ms >= c.deadline_ms)
            .map(|(rpc, _)| *rpc)
            .collect();
        for rpc in late {
            let c = self.copies.remove(&rpc).expect("listed");
            self.finish_command(now_ms, c.cmd, false);
        }
    }

    /// The source's answer to a copy.
    pub fn on_copy_reply(&mut self, rt: &Runtime, now_ms: u64, rpc: u64, reply: Reply) {
        let Some(c) = self.copies.remove(&rpc) else {
            return;
        };
        let store = self.store.clone().expect("up");
        let ok = match reply {
            Reply::ChunkGot(Ok(data)) => rt.block_on(put_blob(&store, &c.sha, &data)).is_ok(),
            _ => false,
        };
        self.finish_command(now_ms, c.cmd, ok);
    }

    /// Whether `rpc` is one of this server's copies.
    pub fn is_copy(&self, rpc: u64) -> bool {
        self.copies.contains_key(&rpc)
    }

    /// The data API (`service.rs`).
    pub fn on_call(&mut self, rt: &Runtime, call: Call) -> Reply {
        let store = self.store.clone().expect("up");
        match call {
            Call::PutChunk { sha, data, epoch } => {
                let current = self.epoch();
                if epoch != 0 && current != 0 && epoch != current {
                    return Reply::ChunkPut(Err(format!(
                        "stale epoch {epoch} (current {current})"
                    )));
                }
                Reply::ChunkPut(rt.block_on(put_blob(&store, &sha, &data)))
            }
            Call::GetChunk { sha } => Reply::ChunkGot(rt.block_on(get_blob(&store, &sha))),
            Call::StatChunk { sha, touch } => {
                if touch {
                    if let Err(e) = store.touch(&sha) {
                        return Reply::ChunkStat(Err(format!("touch: {e}")));
                    }
                }
                Reply::ChunkStat(Ok(store.locate(&sha).is_some()))
            }
            other => unreachable!("not a chunkserver call: {other:?}"),
        }
    }

    /// The scrubber, one blob per call, in id order.
    fn scrub_one(&mut self, rt: &Runtime) {
        let store = self.store.clone().expect("up");
        let list = store.list().unwrap_or_default();
        let next = list
            .iter()
            .find(|(s, _)| *s > self.scrub_after)
            .or(list.first());
        if let Some((sha, _)) = next {
            self.scrub_after = sha.clone();
            if matches!(rt.block_on(store.verify(sha)), Ok(false)) {
                store.quarantine(sha);
            }
        }
    }

    /// A whole scrub pass (the settle phase).
    pub fn scrub_all(&mut self, rt: &Runtime) {
        let Some(store) = self.store.clone() else {
            return;
        };
        for (sha, _) in store.list().unwrap_or_default() {
            if matches!(rt.block_on(store.verify(&sha)), Ok(false)) {
                store.quarantine(&sha);
            }
        }
    }
}

async fn put_blob(store: &BlobStore, sha: &[u8], data: &[u8]) -> Result<(), String> {
    let mut w = store
        .begin(sha.to_vec(), data.len() as u64)
        .await
        .map_err(|e| e.to_string())?;
    w.write(data).await.map_err(|e| e.to_string())?;
    w.finish().await.map(|_| ()).map_err(|e| e.to_string())
}

/// A full read, hashed as it streams; a mismatch quarantines the copy (`stream_file`).
async fn get_blob(store: &BlobStore, sha: &[u8]) -> Result<Vec<u8>, ChunkFail> {
    let (mut f, n, _) = store.read_range(sha, 0, 0).await.map_err(|e| match e {
        anode_chunkserver::error::ChunkError::NotFound(_) => ChunkFail::NotFound,
        other => ChunkFail::Other(other.to_string()),
    })?;
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)
        .await
        .map_err(|e| ChunkFail::Other(e.to_string()))?;
    if Sha256::digest(&buf).as_slice() != sha {
        store.quarantine(sha);
        return Err(ChunkFail::Corrupt);
    }
    Ok(buf)
}
