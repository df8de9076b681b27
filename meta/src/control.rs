//! The leader's control decisions, separated from gRPC and raft IO: chunkserver leases,
//! placement of new chunks, chunk lookups, heartbeat handling (locations, task outcomes,
//! commands) and the healing / garbage-collection sweep.
//!
//! Pure: no IO, no clock, no randomness. Time comes in as parameters (`mono_ms` from the
//! caller's monotonic clock for leases and task bookkeeping, `wall_ms` for anything compared
//! with raft-stamped times or chunkserver mtimes); state comes in as a [`KvRead`] view of the
//! applied state machine. `anode-master`'s `service.rs` drives it from tonic handlers and the
//! heal loop; the whole-cluster simulation (`master/tests/cluster_sim/`) drives the same code on simulated
//! time. Commands it wants committed are returned, never proposed here.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anode_proto::command::Op;
use anode_proto::*;

use crate::healer::{Healer, HealthFigures};
use crate::kv::KvRead;
use crate::leases::{LeaseConfig, LeaseTable};
use crate::locations::{chunk_id, ChunkId};
use crate::planner::{ChunkView, Limits, ServerView};
use crate::state;

/// Commit a heartbeat's stats through raft at most this often per server (unless changed).
pub const STATS_COMMIT_INTERVAL_MS: u64 = 10_000;
/// Most chunk records proposed for a tombstone in one command.
pub const TOMBSTONE_BATCH: usize = 1000;
/// Most chunk records removed per sweep.
pub const FORGET_BATCH: usize = 256;
/// Most orphan chunks (copies without a record) considered per sweep.
pub const ORPHAN_BATCH: usize = 10_000;
/// Chunk records read per page while sweeping.
const SWEEP_PAGE: usize = 4096;

/// Self-healing and garbage-collection settings.
#[derive(Clone, Debug)]
pub struct HealConfig {
    /// Planner limits.
    pub limits: Limits,
    /// Refcount 0 for this long -> tombstone.
    pub gc_grace_ms: u64,
    /// Writers touch copies older than this before commit.
    pub touch_after_ms: u64,
    /// Clock-skew margin of GC fences.
    pub clock_skew_ms: u64,
    /// Sweep interval.
    pub interval: Duration,
}

impl Default for HealConfig {
    fn default() -> Self {
        HealConfig {
            limits: Limits::default(),
            gc_grace_ms: 60_000,
            touch_after_ms: 300_000,
            clock_skew_ms: 30_000,
            interval: Duration::from_secs(1),
        }
    }
}

/// A refused control request; [`ControlError::detail`] is its wire form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The bucket does not exist.
    #[error("no bucket {0}")]
    NoSuchBucket(String),
    /// Too few live, writable chunkservers for the replication factor.
    #[error("need {need} live chunkservers, have {have}")]
    InsufficientServers {
        /// Copies wanted.
        need: u32,
        /// Usable servers.
        have: usize,
    },
}

impl ControlError {
    /// The error as it crosses a process (`need` and `have` as fields, not text).
    pub fn detail(&self) -> ErrorDetail {
        match self {
            ControlError::NoSuchBucket(b) => {
                ErrorDetail::new(ErrorCode::NoSuchBucket, self.to_string()).with_resource(b.clone())
            }
            ControlError::InsufficientServers { need, have } => {
                ErrorDetail::new(ErrorCode::InsufficientServers, self.to_string())
                    .with_need_have(u64::from(*need), *have as u64)
            }
        }
    }
}

/// First half of a heartbeat: accept it (possibly after committing new stats) or ask the
/// server to register again.
#[derive(Clone, Debug, PartialEq)]
pub enum HeartbeatStep {
    /// Unknown server or stale epoch: the reply is `reregister`.
    Reregister,
    /// The heartbeat is current. Commit `update` (when present) before
    /// [`LeaderControl::heartbeat_finish`].
    Accept {
        /// The server's registered epoch.
        epoch: u64,
        /// Stats to commit through raft.
        update: Option<ChunkserverUpdateCmd>,
    },
}

/// What one sweep wants committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Chunks unreferenced for longer than the grace period.
    pub to_tombstone: Vec<Vec<u8>>,
    /// Tombstoned chunks with no copy left: their records go.
    pub to_forget: Vec<Vec<u8>>,
    /// Healing tasks queued by this sweep.
    pub tasks_planned: usize,
}

impl SweepOutcome {
    /// The raft operations to commit, in order: one tombstone batch, then one removal per
    /// forgotten record.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        if !self.to_tombstone.is_empty() {
            ops.push(Op::TombstoneChunks(TombstoneChunksCmd {
                sha256: self.to_tombstone.clone(),
            }));
        }
        for sha in &self.to_forget {
            ops.push(Op::ChunkDeleted(ChunkDeletedCmd {
                sha256: sha.clone(),
            }));
        }
        ops
    }
}

/// The copies a commit's fresh uploads name: (server, chunk) for every chunk reference with an
/// upload time (the writer stored and fsynced those copies just before committing). Stored and
/// copied references carry no upload time and are not trusted as locations.
pub fn fresh_copies<'a>(refs: impl Iterator<Item = &'a ChunkRef>) -> Vec<(u64, ChunkId)> {
    refs.filter(|c| c.uploaded_ms > 0)
        .filter_map(|c| chunk_id(&c.sha256).map(|id| (c, id)))
        .flat_map(|(c, id)| c.servers.iter().map(move |s| (*s, id)))
        .collect()
}

/// What a sweep needs of one chunk record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecordKind {
    /// Referenced: `want` copies.
    Referenced { want: usize },
    /// Unreferenced and tombstoned: its copies are garbage.
    Tombstoned,
    /// Unreferenced since `zero_since_ms`, not yet tombstoned.
    Unreferenced { zero_since_ms: u64 },
}

#[derive(Clone, Debug)]
struct Record {
    id: ChunkId,
    length: u64,
    kind: RecordKind,
}

/// The chunk table as a sweep needs it: a pass over a [`KvRead`] view (a consistent
/// snapshot) that needs none of the leader's control state, so the service reads it without
/// holding its control lock; [`LeaderControl::sweep_scanned`] then joins it with the known
/// locations.
#[derive(Clone, Debug, Default)]
pub struct ChunkTable {
    /// Every record with a valid id, in id order.
    records: Vec<Record>,
    /// The ids of every record (orphans are copies of chunks not in here).
    ids: HashSet<ChunkId>,
}

impl ChunkTable {
    /// Read every chunk record of `kv`, [`SWEEP_PAGE`] at a time.
    pub fn scan(kv: &dyn KvRead) -> ChunkTable {
        let mut t = ChunkTable::default();
        let mut after: Vec<u8> = Vec::new();
        loop {
            let page = state::scan_chunks(kv, &after, SWEEP_PAGE);
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (sha, ci) in page {
                let Some(id) = chunk_id(&sha) else { continue };
                t.ids.insert(id);
                let kind = if ci.refcount > 0 {
                    RecordKind::Referenced {
                        want: if ci.replication > 0 {
                            ci.replication as usize
                        } else {
                            3
                        },
                    }
                } else if ci.tombstone_ms > 0 {
                    RecordKind::Tombstoned
                } else {
                    RecordKind::Unreferenced {
                        zero_since_ms: ci.zero_since_ms,
                    }
                };
                t.records.push(Record {
                    id,
                    length: ci.length,
                    kind,
                });
            }
        }
        t
    }

    /// Chunk records read.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No chunk records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The leader-local control state: leases and the healer, with their settings.
#[derive(Debug)]
pub struct LeaderControl {
    leases: LeaseTable,
    healer: Healer,
    lease_cfg: LeaseConfig,
    heal_cfg: HealConfig,
    /// The term this member last led (0 = never).
    term: u64,
}

impl LeaderControl {
    /// A fresh control state (a process start).
    pub fn new(lease_cfg: LeaseConfig, heal_cfg: HealConfig) -> Self {
        LeaderControl {
            leases: LeaseTable::default(),
            healer: Healer::default(),
            lease_cfg,
            heal_cfg,
            term: 0,
        }
    }

    /// Lease settings.
    pub fn lease_cfg(&self) -> &LeaseConfig {
        &self.lease_cfg
    }

    /// Healing settings.
    pub fn heal_cfg(&self) -> &HealConfig {
        &self.heal_cfg
    }

    /// Replace the repair limits (a reload at run time): tasks in flight run to their end,
    /// the next plans follow the new limits. Returns the previous ones.
    pub fn set_limits(&mut self, limits: Limits) -> Limits {
        std::mem::replace(&mut self.heal_cfg.limits, limits)
    }

    /// The healing bookkeeping (figures, locations).
    pub fn healer(&self) -> &Healer {
        &self.healer
    }

    /// This member leads in `term`: on a new term every server gets a lease grace period
    /// from now and chunk locations are re-learned from full reports.
    pub fn observe_leadership(&mut self, term: u64, mono_ms: u64) {
        if self.term != term {
            self.term = term;
            self.leases.became_leader(mono_ms);
            // Chunk locations are soft state: re-learned from full reports in this term.
            self.healer.reset();
        }
    }

    /// Every registered server with its lease state.
    pub fn server_states(
        &self,
        kv: &dyn KvRead,
        mono_ms: u64,
    ) -> Vec<(ChunkserverRecord, ChunkserverState)> {
        state::list_chunkservers(kv)
            .into_iter()
            .map(|r| {
                let s = self.leases.state(&r, mono_ms, &self.lease_cfg);
                (r, s)
            })
            .collect()
    }

    /// The wire description of a server.
    pub fn info(rec: &ChunkserverRecord, s: ChunkserverState) -> ChunkserverInfo {
        ChunkserverInfo {
            id: rec.id,
            addr: rec.addr.clone(),
            rack: rec.rack.clone(),
            epoch: rec.epoch,
            state: s as i32,
        }
    }

    /// Targets for new chunks: R live, writable servers per chunk by rendezvous hashing.
    pub fn allocate(
        &self,
        kv: &dyn KvRead,
        r: &AllocateChunksRequest,
        mono_ms: u64,
    ) -> Result<AllocateChunksResponse, ControlError> {
        let bucket = state::get_bucket(kv, &r.bucket)
            .ok_or_else(|| ControlError::NoSuchBucket(r.bucket.clone()))?;
        let alive: Vec<(ChunkserverRecord, ChunkserverState)> = self
            .server_states(kv, mono_ms)
            .into_iter()
            .filter(|(rec, s)| *s == ChunkserverState::Alive && !rec.disk_full)
            .collect();
        let replication = crate::placement::effective_replication(bucket.replication, alive.len());
        let usable: Vec<&(ChunkserverRecord, ChunkserverState)> = alive
            .iter()
            .filter(|(rec, _)| !r.exclude.contains(&rec.id))
            .collect();
        if usable.len() < replication as usize || replication == 0 {
            return Err(ControlError::InsufficientServers {
                need: replication,
                have: usable.len(),
            });
        }
        let cands: Vec<crate::placement::Candidate> = usable
            .iter()
            .map(|(rec, _)| crate::placement::Candidate::new(rec.id, rec.rack.clone()))
            .collect();
        let placements = r
            .sha256
            .iter()
            .map(|sha| {
                let ids = crate::placement::place(sha, &cands, replication as usize);
                let servers = ids
                    .iter()
                    .filter_map(|id| usable.iter().find(|(rec, _)| rec.id == *id))
                    .map(|(rec, s)| Self::info(rec, *s))
                    .collect();
                ChunkPlacement {
                    sha256: sha.clone(),
                    servers,
                }
            })
            .collect();
        let live = alive.iter().map(|(rec, s)| Self::info(rec, *s)).collect();
        Ok(AllocateChunksResponse {
            replication,
            placements,
            live,
            touch_after_ms: self.heal_cfg.touch_after_ms,
        })
    }

    /// Holders of each chunk: reported locations first, then the writers' acknowledgements;
    /// live servers before the others.
    pub fn locate(&self, kv: &dyn KvRead, sha256: &[Vec<u8>], mono_ms: u64) -> Vec<ChunkPlacement> {
        let servers = self.server_states(kv, mono_ms);
        sha256
            .iter()
            .map(|sha| {
                let mut ids = chunk_id(sha)
                    .map(|c| self.healer.locations.holders(&c).to_vec())
                    .unwrap_or_default();
                for s in state::get_chunk(kv, sha)
                    .map(|c| c.servers)
                    .unwrap_or_default()
                {
                    if !ids.contains(&s) {
                        ids.push(s);
                    }
                }
                let mut found: Vec<ChunkserverInfo> = ids
                    .iter()
                    .filter_map(|id| servers.iter().find(|(rec, _)| rec.id == *id))
                    .map(|(rec, s)| Self::info(rec, *s))
                    .collect();
                // Live copies first; dead ones last (still worth a try).
                found.sort_by_key(|i| i.state != ChunkserverState::Alive as i32);
                ChunkPlacement {
                    sha256: sha.clone(),
                    servers: found,
                }
            })
            .collect()
    }

    /// Record the copies of a committed fresh upload (see [`fresh_copies`]) as known locations
    /// at once. Their chunkservers report them on their next heartbeat anyway; until then the
    /// planner would count a just-written chunk as under-replicated (and schedule a needless
    /// repair, then a trim), and `ctl status` would never read healthy under a steady write
    /// load.
    pub fn learn_copies(&mut self, copies: &[(u64, ChunkId)]) {
        for (server, id) in copies {
            self.healer.locations.add(*server, *id);
        }
    }

    /// A reader or scrubber found `server`'s copy of `sha256` bad.
    pub fn report_bad(&mut self, server: u64, sha256: &[u8]) {
        if let Some(c) = chunk_id(sha256) {
            self.healer.report_bad(server, c);
        }
    }

    /// A registration of `id` was committed.
    pub fn registered(&mut self, id: u64, mono_ms: u64) {
        self.leases.seen(id, mono_ms);
        self.healer.server_reregistered(id);
    }

    /// First half of a heartbeat: fencing, lease renewal and whether new stats must be
    /// committed (changed, or not committed for [`STATS_COMMIT_INTERVAL_MS`]).
    pub fn heartbeat_begin(
        &mut self,
        kv: &dyn KvRead,
        r: &HeartbeatRequest,
        mono_ms: u64,
        wall_ms: u64,
    ) -> HeartbeatStep {
        let Some(rec) = state::get_chunkserver(kv, r.id).filter(|rec| rec.epoch == r.epoch) else {
            return HeartbeatStep::Reregister;
        };
        self.leases.seen(r.id, mono_ms);
        let disk_full = !r.disks.is_empty() && r.disks.iter().all(|d| d.full || d.failed);
        let changed = rec.used_bytes != r.used_bytes
            || rec.chunks != r.chunks
            || rec.capacity_bytes != r.capacity_bytes
            || rec.disk_full != disk_full;
        let stale = wall_ms.saturating_sub(rec.last_heartbeat_ms) > STATS_COMMIT_INTERVAL_MS;
        let update = (changed || stale).then_some(ChunkserverUpdateCmd {
            id: r.id,
            epoch: r.epoch,
            capacity_bytes: r.capacity_bytes,
            used_bytes: r.used_bytes,
            chunks: r.chunks,
            disk_full,
        });
        HeartbeatStep::Accept {
            epoch: rec.epoch,
            update,
        }
    }

    /// Second half of an accepted heartbeat: learn locations, corrupt copies and task
    /// outcomes, and hand out the server's queued commands.
    pub fn heartbeat_finish(
        &mut self,
        kv: &dyn KvRead,
        r: &HeartbeatRequest,
        epoch: u64,
        mono_ms: u64,
    ) -> HeartbeatResponse {
        let ids = |v: &[Vec<u8>]| v.iter().filter_map(|b| chunk_id(b)).collect::<Vec<_>>();
        let h = &mut self.healer;
        if r.full_report {
            h.locations.full_report(r.id, ids(&r.added));
        } else {
            h.locations
                .incremental(r.id, &ids(&r.added), &ids(&r.removed));
        }
        for c in ids(&r.corrupt) {
            h.report_bad(r.id, c);
        }
        h.reported(r.id, &r.done_commands, &r.failed_commands, mono_ms);
        // Point lookups of the copy sources only (most replies carry no command).
        let commands = h.commands_for(r.id, mono_ms, |id| {
            state::get_chunkserver(kv, id).map(|rec| rec.addr)
        });
        HeartbeatResponse {
            lease_ms: self.lease_cfg.lease_ms,
            epoch,
            commands,
            reregister: false,
            send_full_report: !h.locations.has_full_report(r.id),
        }
    }

    /// One healing sweep over the applied state: plan and queue repair, trim, drain,
    /// rebalance and garbage tasks; return the GC bookkeeping to commit. The same as
    /// [`ChunkTable::scan`] followed by [`LeaderControl::sweep_scanned`]; the service runs the
    /// scan without its control lock and only the second half under it.
    pub fn sweep(&mut self, kv: &dyn KvRead, mono_ms: u64, wall_ms: u64) -> SweepOutcome {
        let table = ChunkTable::scan(kv);
        self.sweep_scanned(kv, &table, mono_ms, wall_ms)
    }

    /// The second half of [`LeaderControl::sweep`]: join `table` (a scan of the applied
    /// chunk table, possibly a little older than `kv`) with the known locations, plan and
    /// queue tasks, and return the GC bookkeeping to commit. Servers come from `kv`.
    pub fn sweep_scanned(
        &mut self,
        kv: &dyn KvRead,
        table: &ChunkTable,
        mono_ms: u64,
        wall_ms: u64,
    ) -> SweepOutcome {
        let servers: Vec<ServerView> = self
            .server_states(kv, mono_ms)
            .into_iter()
            .map(|(rec, st)| ServerView {
                id: rec.id,
                rack: rec.rack.clone(),
                present: st != ChunkserverState::Dead,
                suspect: st == ChunkserverState::Suspect,
                draining: rec.draining,
                disk_full: rec.disk_full,
                used_bytes: rec.used_bytes,
                capacity_bytes: rec.capacity_bytes,
            })
            .collect();
        let fence = wall_ms
            .saturating_sub(self.heal_cfg.touch_after_ms)
            .saturating_sub(self.heal_cfg.clock_skew_ms);
        let complete = self.healer.reports_complete(&servers);
        let present: HashSet<u64> = servers.iter().filter(|s| s.present).map(|s| s.id).collect();
        let (mut chunks, mut out) = self.join_records(table, wall_ms, fence, complete, &present);
        // Copies nobody references: uploads never committed (or records already gone).
        // The fence spares anything written or touched recently.
        let orphans = self.healer.ripe_orphans(
            |c| table.ids.contains(c),
            mono_ms,
            self.heal_cfg.touch_after_ms,
            ORPHAN_BATCH,
        );
        for (id, holders) in orphans {
            chunks.push(ChunkView {
                id,
                length: 0,
                want: 0,
                holders,
                garbage_since_ms: Some(fence),
                avoid_sources: Vec::new(),
            });
        }
        let tasks = self
            .healer
            .tick(mono_ms, &servers, &chunks, &self.heal_cfg.limits);
        out.tasks_planned = tasks.len();
        out
    }

    /// Planner views of the referenced and tombstoned chunks of `table`, and the tombstones
    /// and removals to commit. A tombstoned record goes once no `present` (not dead) server
    /// is known to hold a copy: a dead server that comes back re-reports its copy, which is
    /// then an orphan and collected.
    fn join_records(
        &self,
        table: &ChunkTable,
        wall_ms: u64,
        fence: u64,
        complete: bool,
        present: &HashSet<u64>,
    ) -> (Vec<ChunkView>, SweepOutcome) {
        let h = &self.healer;
        let mut chunks: Vec<ChunkView> = Vec::with_capacity(table.records.len());
        let mut out = SweepOutcome::default();
        for r in &table.records {
            let id = r.id;
            match r.kind {
                RecordKind::Referenced { want } => chunks.push(ChunkView {
                    id,
                    length: r.length,
                    want,
                    holders: h.holders(&id),
                    garbage_since_ms: None,
                    avoid_sources: h.avoided_sources(&id),
                }),
                RecordKind::Tombstoned => {
                    let holders = h.holders(&id);
                    if !holders.iter().any(|s| present.contains(s)) && complete {
                        if out.to_forget.len() < FORGET_BATCH {
                            out.to_forget.push(id.to_vec());
                        }
                    } else {
                        chunks.push(ChunkView {
                            id,
                            length: r.length,
                            want: 0,
                            holders,
                            garbage_since_ms: Some(fence),
                            avoid_sources: Vec::new(),
                        });
                    }
                }
                RecordKind::Unreferenced { zero_since_ms } => {
                    if wall_ms.saturating_sub(zero_since_ms) >= self.heal_cfg.gc_grace_ms
                        && out.to_tombstone.len() < TOMBSTONE_BATCH
                    {
                        out.to_tombstone.push(id.to_vec());
                    }
                }
            }
        }
        (chunks, out)
    }

    /// Figures for status and metrics, and the copies reported per server.
    pub fn figures(&self, servers: &[u64]) -> (HealthFigures, BTreeMap<u64, u64>) {
        let reported = servers
            .iter()
            .map(|id| (*id, self.healer.locations.count_on(*id) as u64))
            .collect();
        (self.healer.figures(), reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn apply(kv: &mut MemKv, index: u64, now_ms: u64, op: Op) -> CommandResult {
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms,
            session: None,
            op: Some(op),
        };
        let (muts, res) = state::apply(kv, index, &cmd);
        assert!(res.error.is_none(), "{:?}", res.error);
        kv.apply(&muts);
        res
    }

    fn heartbeat(id: u64, epoch: u64, chunks: &[Vec<u8>]) -> HeartbeatRequest {
        HeartbeatRequest {
            id,
            epoch,
            added: chunks.to_vec(),
            full_report: true,
            ..Default::default()
        }
    }

    /// Regression (found by the whole-cluster simulation): a tombstoned chunk whose last
    /// known copy is on a dead server (e.g. a lost disk that never returns) kept its record
    /// forever, because the dead server still counted as a holder.
    #[test]
    fn tombstoned_chunk_on_dead_server_is_forgotten() {
        let mut kv = MemKv::new();
        let sha = vec![9u8; 32];
        let mut ids = Vec::new();
        for (i, uuid) in ["a", "b"].iter().enumerate() {
            let res = apply(
                &mut kv,
                1 + i as u64,
                0,
                Op::RegisterChunkserver(RegisterChunkserverCmd {
                    addr: format!("cs-{uuid}"),
                    uuid: uuid.to_string(),
                    ..Default::default()
                }),
            );
            ids.push(res.chunkserver_id);
        }
        apply(
            &mut kv,
            3,
            0,
            Op::CreateBucket(CreateBucketCmd {
                config: Some(BucketConfig {
                    version: RECORD_VERSION,
                    name: "bkt".into(),
                    replication: 1,
                    ..Default::default()
                }),
            }),
        );
        let chunk = ChunkRef {
            sha256: sha.clone(),
            length: 10,
            servers: vec![ids[0]],
            uploaded_ms: 1,
        };
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            size: 10,
            chunks: vec![chunk],
            ..Default::default()
        };
        let put = PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: "bkt".into(),
            key: "k".into(),
            manifest: Some(manifest),
            if_match_etag: None,
            source: String::new(),
        };
        apply(&mut kv, 4, 0, Op::PutObject(put));
        let del = DeleteObjectCmd {
            bucket: "bkt".into(),
            key: "k".into(),
            ..Default::default()
        };
        apply(&mut kv, 5, 0, Op::DeleteObject(del));
        let (lc, hc) = (LeaseConfig::default(), HealConfig::default());
        let grace = hc.gc_grace_ms;
        let mut c = LeaderControl::new(lc, hc);
        c.observe_leadership(1, 0);
        for (i, id) in ids.iter().enumerate() {
            let chunks = if i == 0 { vec![sha.clone()] } else { vec![] };
            let r = heartbeat(*id, 1, &chunks);
            assert!(matches!(
                c.heartbeat_begin(&kv, &r, 0, 0),
                HeartbeatStep::Accept { .. }
            ));
            c.heartbeat_finish(&kv, &r, 1, 0);
        }
        let out = c.sweep(&kv, 0, grace);
        assert_eq!(out.to_tombstone, vec![sha.clone()]);
        apply(&mut kv, 6, grace, out.ops().remove(0));
        // The holder dies (its disk is gone); the other server keeps reporting.
        let later = lc.dead_after_ms + 1;
        let r = heartbeat(ids[1], 1, &[]);
        c.heartbeat_begin(&kv, &r, later, grace);
        c.heartbeat_finish(&kv, &r, 1, later);
        let out = c.sweep(&kv, later, grace + later);
        assert_eq!(out.to_forget, vec![sha.clone()]);
        // While the holder is alive the record stays (its copy must be deleted first).
        let mut alive = LeaderControl::new(lc, HealConfig::default());
        alive.observe_leadership(1, 0);
        for (i, id) in ids.iter().enumerate() {
            let chunks = if i == 0 { vec![sha.clone()] } else { vec![] };
            let r = heartbeat(*id, 1, &chunks);
            alive.heartbeat_begin(&kv, &r, 0, 0);
            alive.heartbeat_finish(&kv, &r, 1, 0);
        }
        assert!(alive.sweep(&kv, 1, grace + 1).to_forget.is_empty());
    }
}
