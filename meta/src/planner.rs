//! The repair planner: a pure function from the cluster's state to replication and deletion
//! tasks. No IO, no clock; the leader's healer (`healer.rs`) feeds it and carries the tasks out
//! as commands in heartbeat replies.
//!
//! Inputs: the servers (lease state, draining, rack, space), every chunk's wanted copies and
//! known holders, what is already in flight, and limits. Rules, in priority order:
//! 1. Repair: a chunk with fewer than R *settled* copies (on live, non-draining servers) gets
//!    copies from a live holder to new targets; chunks with fewer copies first. A target is a
//!    writable server without a copy, with room, in a rack holding no copy yet when such a
//!    server exists.
//! 2. Trim: a chunk with more than R settled copies (all holders live, none suspect) loses the
//!    extras, chosen from racks holding two copies first, then the fullest servers. Copies on
//!    draining servers go as soon as R settled copies exist elsewhere.
//! 3. Garbage: every copy of an unreferenced, tombstoned chunk is deleted (fenced by a
//!    "not touched since" time the chunkserver checks).
//!    Deletes only get the task budget repairs and trims left.
//! 4. Rebalance, only when nothing needs repair: move chunks from the fullest to the emptiest
//!    writable server while their utilization differs by more than the allowed spread.
//!
//! Safety (property-tested below): no delete of a referenced chunk leaves it with fewer than R
//! settled copies; every replicate reads from a live holder and writes to a writable server
//! without a copy; per-server and total limits hold; no task touches a chunk already in flight.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::placement::{rank, Candidate};

use crate::locations::ChunkId;

/// A chunkserver as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerView {
    /// Id.
    pub id: u64,
    /// Failure domain.
    pub rack: String,
    /// Lease valid (alive) or just lapsed (suspect): its copies still count.
    pub present: bool,
    /// Lease lapsed but not yet dead: copies count, but it is no source and no target.
    pub suspect: bool,
    /// Operator asked to move everything off it.
    pub draining: bool,
    /// Refuses new writes (disk full).
    pub disk_full: bool,
    /// Bytes stored.
    pub used_bytes: u64,
    /// Capacity in bytes (0 = unknown: treated as unlimited, never rebalanced).
    pub capacity_bytes: u64,
}

impl ServerView {
    fn live(&self) -> bool {
        self.present && !self.suspect
    }
    fn writable(&self) -> bool {
        self.live() && !self.draining && !self.disk_full
    }
}

/// One chunk as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkView {
    /// SHA-256.
    pub id: ChunkId,
    /// Bytes.
    pub length: u64,
    /// Wanted copies (R); ignored for garbage.
    pub want: usize,
    /// Servers known to hold a good copy.
    pub holders: Vec<u64>,
    /// `Some(t)`: unreferenced garbage; delete every copy not touched since `t` (ms).
    pub garbage_since_ms: Option<u64>,
    /// Holders not to copy from (a copy from them failed recently); their copies still count.
    pub avoid_sources: Vec<u64>,
}

/// Work already issued and not finished.
#[derive(Clone, Debug, Default)]
pub struct Busy {
    /// Tasks per server (as source, target or deleting holder).
    pub per_server: HashMap<u64, usize>,
    /// Tasks in total.
    pub total: usize,
    /// Chunks with a task in flight: not planned again until it finishes.
    pub chunks: HashSet<ChunkId>,
    /// Bytes on their way to each server (projected into its utilization).
    pub incoming_bytes: HashMap<u64, u64>,
}

/// Rate limits and the rebalance bound.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tasks per server at once (source, target or delete).
    pub per_server: usize,
    /// Tasks in the cluster at once.
    pub total: usize,
    /// Rebalance while max - min utilization exceeds this fraction (e.g. 0.10).
    pub rebalance_spread: f64,
    /// Bytes of rebalance copies planned per call.
    pub rebalance_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_server: 16,
            total: 64,
            rebalance_spread: 0.10,
            rebalance_bytes: 256 << 20,
        }
    }
}

/// Why a copy is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// More than R settled copies.
    Surplus,
    /// The holder is draining and R settled copies exist elsewhere.
    Drain,
    /// Unreferenced chunk.
    Garbage,
}

/// One unit of work.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    /// `target` copies `chunk` from `source`.
    Replicate {
        /// Chunk.
        chunk: ChunkId,
        /// Bytes.
        length: u64,
        /// A live holder.
        source: u64,
        /// The new holder.
        target: u64,
        /// Settled copies when planned (0 = most urgent); rebalance moves use `u8::MAX`.
        priority: u8,
    },
    /// `server` deletes its copy of `chunk` unless touched at or after `not_touched_since_ms`
    /// (0 = unconditionally).
    Delete {
        /// Chunk.
        chunk: ChunkId,
        /// Holder.
        server: u64,
        /// GC fence.
        not_touched_since_ms: u64,
        /// Why.
        reason: DeleteReason,
    },
}

impl Task {
    /// The chunk the task is about.
    pub fn chunk(&self) -> &ChunkId {
        match self {
            Task::Replicate { chunk, .. } | Task::Delete { chunk, .. } => chunk,
        }
    }
    /// Servers the task occupies.
    pub fn servers(&self) -> Vec<u64> {
        match self {
            Task::Replicate { source, target, .. } => vec![*source, *target],
            Task::Delete { server, .. } => vec![*server],
        }
    }
}

/// Health figures computed while planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Chunks considered.
    pub chunks: u64,
    /// Referenced chunks below R settled copies.
    pub under_replicated: u64,
    /// Sum of missing copies.
    pub missing_copies: u64,
    /// Sum of missing copies' bytes.
    pub missing_bytes: u64,
    /// Referenced chunks with no present copy at all.
    pub lost: u64,
    /// Garbage chunks with copies left.
    pub garbage: u64,
    /// Referenced copies on draining servers still needed (not yet replaced elsewhere).
    pub draining_needed: u64,
    /// Per draining server: referenced chunks on it with fewer than their R settled copies
    /// elsewhere (0 = safe to remove once reports are complete).
    pub drain_needed: BTreeMap<u64, u64>,
    /// Estimated bytes the rebalancer still wants to move.
    pub rebalance_bytes_pending: u64,
}

/// The planner's answer.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Tasks, most urgent first.
    pub tasks: Vec<Task>,
    /// Figures.
    pub summary: Summary,
}

struct Budget<'a> {
    limits: &'a Limits,
    per_server: HashMap<u64, usize>,
    total: usize,
}

impl Budget<'_> {
    fn server_ok(&self, s: u64) -> bool {
        self.per_server.get(&s).copied().unwrap_or(0) < self.limits.per_server
    }
    fn total_ok(&self) -> bool {
        self.total < self.limits.total
    }
    fn take(&mut self, servers: &[u64]) {
        for s in servers {
            *self.per_server.entry(*s).or_default() += 1;
        }
        self.total += 1;
    }
}

/// Plan tasks. Deterministic for the same inputs (chunk order does not matter).
///
/// One pass per rule of the module docs, each spending what the passes before it left of the
/// task budget: triage (figures, and which pass each chunk goes to), repairs by urgency, trims
/// (surplus and draining copies), garbage, and rebalancing when nothing needs repair.
pub fn plan(servers: &[ServerView], chunks: &[ChunkView], busy: &Busy, limits: &Limits) -> Plan {
    let mut planner = Planner::new(servers, busy, limits);
    // Deterministic order: by id (the repair pass sorts its chunks by urgency).
    let mut order: Vec<&ChunkView> = chunks.iter().collect();
    order.sort_by_key(|c| c.id);
    let triage = planner.triage(&order);
    let planned_repair = planner.repair(triage.repairs);
    planner.trim(triage.trims);
    planner.collect_garbage(triage.garbage);
    if !planned_repair && planner.summary.under_replicated == 0 {
        planner.rebalance(&order);
    }
    Plan {
        tasks: planner.tasks,
        summary: planner.summary,
    }
}

/// A referenced chunk below its R settled copies.
struct Repair<'a> {
    chunk: &'a ChunkView,
    /// Holders on present, non-draining servers.
    settled: Vec<u64>,
    /// Copies missing.
    deficit: usize,
}

/// A referenced chunk with its R settled copies: its surplus and draining copies may go.
struct Trim<'a> {
    chunk: &'a ChunkView,
    /// Holders on present, non-draining servers.
    settled: Vec<u64>,
    /// Copies to keep.
    want: usize,
}

/// An unreferenced chunk with copies left.
struct Garbage<'a> {
    chunk: &'a ChunkView,
    /// Holders on present servers.
    holders: Vec<u64>,
    /// The GC fence: delete only copies not touched since then (ms).
    since_ms: u64,
}

/// The chunks sorted by the pass that handles them (chunks with a task in flight are left out
/// of `garbage` here, and skipped by the repair and trim passes).
#[derive(Default)]
struct Triage<'a> {
    repairs: Vec<Repair<'a>>,
    trims: Vec<Trim<'a>>,
    garbage: Vec<Garbage<'a>>,
}

/// What one [`plan`] call threads through its passes: the inputs, the budget and incoming bytes
/// the tasks planned so far take, and the answer being built.
struct Planner<'a> {
    servers: &'a [ServerView],
    by_id: BTreeMap<u64, &'a ServerView>,
    busy: &'a Busy,
    limits: &'a Limits,
    budget: Budget<'a>,
    /// Bytes on their way to each server, counting the copies planned in this call.
    incoming: HashMap<u64, u64>,
    tasks: Vec<Task>,
    summary: Summary,
}

impl<'a> Planner<'a> {
    fn new(servers: &'a [ServerView], busy: &'a Busy, limits: &'a Limits) -> Self {
        Planner {
            servers,
            by_id: servers.iter().map(|s| (s.id, s)).collect(),
            busy,
            limits,
            budget: Budget {
                limits,
                per_server: busy.per_server.clone(),
                total: busy.total,
            },
            incoming: busy.incoming_bytes.clone(),
            tasks: Vec::new(),
            summary: Summary {
                drain_needed: servers
                    .iter()
                    .filter(|s| s.draining)
                    .map(|s| (s.id, 0))
                    .collect(),
                ..Summary::default()
            },
        }
    }

    /// The server `id`, if known.
    fn known(&self, id: u64) -> Option<&'a ServerView> {
        self.by_id.get(&id).copied()
    }

    /// The server `id`, known to exist (a holder or candidate already checked).
    fn server(&self, id: u64) -> &'a ServerView {
        self.by_id[&id]
    }

    fn is_present(&self, id: u64) -> bool {
        self.known(id).is_some_and(|v| v.present)
    }

    /// Holders whose copies count towards R: on present, non-draining servers.
    fn settled(&self, c: &ChunkView) -> Vec<u64> {
        c.holders
            .iter()
            .copied()
            .filter(|s| self.known(*s).is_some_and(|v| v.present && !v.draining))
            .collect()
    }

    /// Pass 1: the health figures, and which pass each chunk goes to.
    fn triage(&mut self, order: &[&'a ChunkView]) -> Triage<'a> {
        let writable_count = self.servers.iter().filter(|s| s.writable()).count();
        let mut triage = Triage::default();
        for &c in order {
            self.summary.chunks += 1;
            if let Some(since_ms) = c.garbage_since_ms {
                let holders: Vec<u64> = c
                    .holders
                    .iter()
                    .copied()
                    .filter(|s| self.is_present(*s))
                    .collect();
                if holders.is_empty() {
                    continue;
                }
                self.summary.garbage += 1;
                if !self.busy.chunks.contains(&c.id) {
                    triage.garbage.push(Garbage {
                        chunk: c,
                        holders,
                        since_ms,
                    });
                }
                continue;
            }
            let settled = self.settled(c);
            if settled.len() < c.want {
                for s in &c.holders {
                    if let Some(n) = self.summary.drain_needed.get_mut(s) {
                        *n += 1;
                    }
                }
            }
            let want = c.want.min(writable_count.max(settled.len())).max(1);
            if !c.holders.iter().any(|s| self.is_present(*s)) {
                self.summary.lost += 1;
            }
            let deficit = want.saturating_sub(settled.len());
            if deficit > 0 {
                self.count_missing(c, deficit);
                triage.repairs.push(Repair {
                    chunk: c,
                    settled,
                    deficit,
                });
            } else {
                triage.trims.push(Trim {
                    chunk: c,
                    settled,
                    want,
                });
            }
        }
        triage
    }

    /// The figures of a chunk `deficit` copies short.
    fn count_missing(&mut self, c: &ChunkView, deficit: usize) {
        self.summary.under_replicated += 1;
        self.summary.missing_copies += deficit as u64;
        self.summary.missing_bytes += deficit as u64 * c.length;
        self.summary.draining_needed += c
            .holders
            .iter()
            .filter(|s| self.known(**s).is_some_and(|v| v.present && v.draining))
            .count() as u64;
    }

    /// Pass 2: repairs, chunks with the fewest settled copies first. True when any was planned.
    fn repair(&mut self, mut repairs: Vec<Repair<'a>>) -> bool {
        repairs.sort_by_key(|r| (r.settled.len(), r.chunk.id));
        let mut planned = false;
        for r in &repairs {
            if !self.busy.chunks.contains(&r.chunk.id) {
                planned |= self.repair_chunk(r);
            }
        }
        planned
    }

    /// Up to `deficit` new copies of one chunk, each from the least busy live source (not one
    /// to avoid) to the best target ([`pick_target`]: a rack without a copy first). True when
    /// any was planned.
    fn repair_chunk(&mut self, r: &Repair<'a>) -> bool {
        let c = r.chunk;
        let sources: Vec<u64> = c
            .holders
            .iter()
            .copied()
            .filter(|s| self.known(*s).is_some_and(|v| v.live()) && !c.avoid_sources.contains(s))
            .collect();
        if sources.is_empty() {
            return false;
        }
        let mut racks: HashSet<&'a str> = r
            .settled
            .iter()
            .map(|s| self.server(*s).rack.as_str())
            .collect();
        let mut chosen: Vec<u64> = Vec::new();
        for _ in 0..r.deficit {
            if !self.budget.total_ok() {
                break;
            }
            let Some(source) = self.least_busy(&sources) else {
                break;
            };
            let Some(target) = self.repair_target(c, &chosen, &racks) else {
                break;
            };
            racks.insert(self.server(target).rack.as_str());
            chosen.push(target);
            self.budget.take(&[source, target]);
            *self.incoming.entry(target).or_default() += c.length;
            self.tasks.push(Task::Replicate {
                chunk: c.id,
                length: c.length,
                source,
                target,
                priority: r.settled.len().min(u8::MAX as usize - 1) as u8,
            });
        }
        !chosen.is_empty()
    }

    /// The source with budget left and the fewest tasks (then the lowest id).
    fn least_busy(&self, sources: &[u64]) -> Option<u64> {
        sources
            .iter()
            .copied()
            .filter(|s| self.budget.server_ok(*s))
            .min_by_key(|s| (self.budget.per_server.get(s).copied().unwrap_or(0), *s))
    }

    /// A writable server with budget and room, holding no copy of `c` and not `chosen` yet.
    fn repair_target(&self, c: &ChunkView, chosen: &[u64], racks: &HashSet<&str>) -> Option<u64> {
        let eligible: Vec<&ServerView> = self
            .servers
            .iter()
            .filter(|s| {
                s.writable()
                    && !c.holders.contains(&s.id)
                    && !chosen.contains(&s.id)
                    && self.budget.server_ok(s.id)
                    && has_room(s, self.incoming.get(&s.id).copied().unwrap_or(0), c.length)
            })
            .collect();
        pick_target(&c.id, &eligible, racks)
    }

    /// Pass 3: trims of chunks with their R settled copies: copies on draining servers, then
    /// the surplus.
    fn trim(&mut self, trims: Vec<Trim<'a>>) {
        for t in &trims {
            // A suspect holder may be back in a moment with its copy: trim only when every
            // present holder is live.
            if self.busy.chunks.contains(&t.chunk.id)
                || t.chunk
                    .holders
                    .iter()
                    .any(|s| self.known(*s).is_some_and(|v| v.suspect))
            {
                continue;
            }
            for (s, reason) in self.trim_victims(t) {
                if self.budget.total_ok() && self.budget.server_ok(s) {
                    self.delete(t.chunk.id, s, 0, reason);
                }
            }
        }
    }

    /// The copies of one chunk that may go, in order: those on live draining servers, then
    /// the surplus over `want` in [`surplus_order`].
    fn trim_victims(&self, t: &Trim<'_>) -> Vec<(u64, DeleteReason)> {
        let mut drop: Vec<(u64, DeleteReason)> = t
            .chunk
            .holders
            .iter()
            .copied()
            .filter(|s| self.known(*s).is_some_and(|v| v.live() && v.draining))
            .map(|s| (s, DeleteReason::Drain))
            .collect();
        if t.settled.len() > t.want {
            drop.extend(
                surplus_order(&t.settled, &self.by_id, &self.incoming)
                    .into_iter()
                    .take(t.settled.len() - t.want)
                    .map(|s| (s, DeleteReason::Surplus)),
            );
        }
        drop
    }

    /// Pass 4: every live copy of unreferenced chunks, with the budget repairs and trims left
    /// (a steady stream of overwrites must not starve repairs).
    fn collect_garbage(&mut self, garbage: Vec<Garbage<'a>>) {
        for g in &garbage {
            for &s in &g.holders {
                if self.server(s).live() && self.budget.total_ok() && self.budget.server_ok(s) {
                    self.delete(g.chunk.id, s, g.since_ms, DeleteReason::Garbage);
                }
            }
        }
    }

    /// Plans the delete of `server`'s copy of `chunk` (budget already checked).
    fn delete(
        &mut self,
        chunk: ChunkId,
        server: u64,
        not_touched_since_ms: u64,
        reason: DeleteReason,
    ) {
        self.budget.take(&[server]);
        self.tasks.push(Task::Delete {
            chunk,
            server,
            not_touched_since_ms,
            reason,
        });
    }

    /// Pass 5, only when nothing needs repair: move chunks (in `order`) from the fullest
    /// writable server of known capacity to the emptiest while their utilization differs by
    /// more than `rebalance_spread`, up to `rebalance_bytes` per call. Also estimates the bytes
    /// still to move.
    fn rebalance(&mut self, order: &[&'a ChunkView]) {
        let pool: Vec<&'a ServerView> = self
            .servers
            .iter()
            .filter(|s| s.writable() && s.capacity_bytes > 0)
            .collect();
        if pool.len() < 2 {
            return;
        }
        self.summary.rebalance_bytes_pending =
            excess_bytes(&pool, &self.incoming, self.limits.rebalance_spread);
        let mut moved = 0u64;
        // Moves planned in this call leave their source only after the trim that follows the
        // copy; count them as outgoing so one call does not pick the same source forever.
        let mut outgoing: HashMap<u64, u64> = HashMap::new();
        for &c in order {
            if moved >= self.limits.rebalance_bytes || !self.budget.total_ok() {
                break;
            }
            let ((lo_u, lo), (hi_u, hi)) = extremes(&pool, &self.incoming, &outgoing);
            if hi_u - lo_u <= self.limits.rebalance_spread {
                break;
            }
            if !self.movable(c, (hi_u, hi), (lo_u, lo)) {
                continue;
            }
            self.budget.take(&[hi, lo]);
            *self.incoming.entry(lo).or_default() += c.length;
            *outgoing.entry(hi).or_default() += c.length;
            moved += c.length;
            self.tasks.push(Task::Replicate {
                chunk: c.id,
                length: c.length,
                source: hi,
                target: lo,
                priority: u8::MAX,
            });
        }
    }

    /// Whether moving `c`'s copy from `hi` to `lo` (each as (effective utilization, id)) is
    /// allowed and useful: `c` is referenced and idle, `hi` holds it and `lo` does not, both
    /// have budget, every holder is live and settled, the move keeps the rack spread, `lo` has
    /// room, and the move narrows the gap.
    fn movable(&self, c: &ChunkView, (hi_u, hi): (f64, u64), (lo_u, lo): (f64, u64)) -> bool {
        if c.garbage_since_ms.is_some()
            || self.busy.chunks.contains(&c.id)
            || !c.holders.contains(&hi)
            || c.holders.contains(&lo)
            || !self.budget.server_ok(hi)
            || !self.budget.server_ok(lo)
        {
            return false;
        }
        if c.holders
            .iter()
            .any(|s| !self.known(*s).is_some_and(|v| v.live() && !v.draining))
        {
            return false;
        }
        let (hi_s, lo_s) = (self.server(hi), self.server(lo));
        let other_racks: HashSet<&str> = c
            .holders
            .iter()
            .filter(|s| **s != hi)
            .map(|s| self.server(*s).rack.as_str())
            .collect();
        if other_racks.contains(lo_s.rack.as_str()) && hi_s.rack != lo_s.rack {
            return false;
        }
        if !has_room(lo_s, self.incoming.get(&lo).copied().unwrap_or(0), c.length) {
            return false;
        }
        let after_lo = lo_u + c.length as f64 / lo_s.capacity_bytes as f64;
        let after_hi = hi_u - c.length as f64 / hi_s.capacity_bytes as f64;
        after_lo <= hi_u && after_hi >= lo_u
    }
}

/// Utilization of `s` counting the bytes on their way to it.
fn projected(s: &ServerView, incoming: &HashMap<u64, u64>) -> f64 {
    utilization(s, incoming.get(&s.id).copied().unwrap_or(0))
}

/// Bytes the servers of `pool` hold above their mean utilization plus half the allowed spread.
fn excess_bytes(pool: &[&ServerView], incoming: &HashMap<u64, u64>, spread: f64) -> u64 {
    let mean: f64 = pool.iter().map(|s| projected(s, incoming)).sum::<f64>() / pool.len() as f64;
    pool.iter()
        .map(|s| {
            let excess = projected(s, incoming) - mean - spread / 2.0;
            if excess > 0.0 {
                (excess * s.capacity_bytes as f64) as u64
            } else {
                0
            }
        })
        .sum()
}

/// The emptiest and the fullest server of a non-empty `pool`, each as (effective utilization,
/// id): projected utilization less the bytes this call already moves off it. Ties go to the
/// lower id for the emptiest, the higher id for the fullest.
fn extremes(
    pool: &[&ServerView],
    incoming: &HashMap<u64, u64>,
    outgoing: &HashMap<u64, u64>,
) -> ((f64, u64), (f64, u64)) {
    let mut v: Vec<(f64, u64)> = pool
        .iter()
        .map(|s| {
            let out = outgoing.get(&s.id).copied().unwrap_or(0) as f64 / s.capacity_bytes as f64;
            (projected(s, incoming) - out, s.id)
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    (v[0], v[v.len() - 1])
}

fn has_room(s: &ServerView, incoming: u64, length: u64) -> bool {
    s.capacity_bytes == 0
        || s.used_bytes.saturating_add(incoming).saturating_add(length) <= s.capacity_bytes
}

/// The best target: rendezvous order, preferring a rack without a copy.
fn pick_target(chunk: &ChunkId, eligible: &[&ServerView], racks: &HashSet<&str>) -> Option<u64> {
    let cands: Vec<Candidate> = eligible
        .iter()
        .map(|s| Candidate::new(s.id, s.rack.clone()))
        .collect();
    let ranked = rank(chunk, &cands);
    let rack_of = |id: u64| {
        eligible
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.rack.as_str())
    };
    ranked
        .iter()
        .copied()
        .find(|id| rack_of(*id).is_some_and(|r| !racks.contains(r)))
        .or_else(|| ranked.first().copied())
}

/// Settled holders in the order their copies should go: racks holding two or more copies
/// first, then the fullest server, then the highest id.
fn surplus_order(
    settled: &[u64],
    by_id: &BTreeMap<u64, &ServerView>,
    incoming: &HashMap<u64, u64>,
) -> Vec<u64> {
    let mut per_rack: HashMap<&str, usize> = HashMap::new();
    for s in settled {
        *per_rack.entry(by_id[s].rack.as_str()).or_default() += 1;
    }
    let mut v: Vec<u64> = settled.to_vec();
    v.sort_by(|a, b| {
        let (sa, sb) = (by_id[a], by_id[b]);
        let dup = |s: &ServerView| per_rack[s.rack.as_str()] > 1;
        dup(sb)
            .cmp(&dup(sa))
            .then(
                utilization(sb, incoming.get(b).copied().unwrap_or(0))
                    .total_cmp(&utilization(sa, incoming.get(a).copied().unwrap_or(0))),
            )
            .then(b.cmp(a))
    });
    v
}

fn utilization(s: &ServerView, incoming: u64) -> f64 {
    if s.capacity_bytes == 0 {
        0.0
    } else {
        (s.used_bytes + incoming) as f64 / s.capacity_bytes as f64
    }
}

#[cfg(test)]
pub(crate) mod tests;
