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
pub fn plan(servers: &[ServerView], chunks: &[ChunkView], busy: &Busy, limits: &Limits) -> Plan {
    let by_id: BTreeMap<u64, &ServerView> = servers.iter().map(|s| (s.id, s)).collect();
    let mut budget = Budget {
        limits,
        per_server: busy.per_server.clone(),
        total: busy.total,
    };
    let mut incoming: HashMap<u64, u64> = busy.incoming_bytes.clone();
    let writable_count = servers.iter().filter(|s| s.writable()).count();
    let mut summary = Summary {
        drain_needed: servers
            .iter()
            .filter(|s| s.draining)
            .map(|s| (s.id, 0))
            .collect(),
        ..Summary::default()
    };
    let mut tasks = Vec::new();
    // Deterministic order: most urgent first, then by id.
    let mut order: Vec<&ChunkView> = chunks.iter().collect();
    order.sort_by_key(|c| c.id);

    let present = |s: &u64| by_id.get(s).is_some_and(|v| v.present);
    let settled_of = |c: &ChunkView| -> Vec<u64> {
        c.holders
            .iter()
            .copied()
            .filter(|s| by_id.get(s).is_some_and(|v| v.present && !v.draining))
            .collect()
    };

    // Pass 1: figures, garbage and repair needs.
    let mut needs: Vec<(Vec<u64>, &ChunkView, usize)> = Vec::new(); // (settled, chunk, deficit)
    let mut trims: Vec<(Vec<u64>, &ChunkView, usize)> = Vec::new(); // (settled, chunk, want)
    let mut garbage: Vec<(&ChunkView, Vec<u64>, u64)> = Vec::new(); // (chunk, holders, fence)
    for c in &order {
        summary.chunks += 1;
        if let Some(since) = c.garbage_since_ms {
            let holders: Vec<u64> = c.holders.iter().copied().filter(present).collect();
            if holders.is_empty() {
                continue;
            }
            summary.garbage += 1;
            if !busy.chunks.contains(&c.id) {
                garbage.push((c, holders, since));
            }
            continue;
        }
        let settled = settled_of(c);
        if settled.len() < c.want {
            for s in &c.holders {
                if let Some(n) = summary.drain_needed.get_mut(s) {
                    *n += 1;
                }
            }
        }
        let want = c.want.min(writable_count.max(settled.len())).max(1);
        let any_present = c.holders.iter().any(present);
        if !any_present {
            summary.lost += 1;
        }
        let deficit = want.saturating_sub(settled.len());
        if deficit > 0 {
            summary.under_replicated += 1;
            summary.missing_copies += deficit as u64;
            summary.missing_bytes += deficit as u64 * c.length;
            summary.draining_needed += c
                .holders
                .iter()
                .filter(|s| by_id.get(s).is_some_and(|v| v.present && v.draining))
                .count() as u64;
            needs.push((settled, c, deficit));
        } else {
            trims.push((settled, c, want));
        }
    }

    // Pass 2: repairs, fewest settled copies first.
    needs.sort_by_key(|(settled, c, _)| (settled.len(), c.id));
    let mut planned_repair = false;
    for (settled, c, deficit) in needs {
        if busy.chunks.contains(&c.id) {
            continue;
        }
        let sources: Vec<u64> = c
            .holders
            .iter()
            .copied()
            .filter(|s| by_id.get(s).is_some_and(|v| v.live()) && !c.avoid_sources.contains(s))
            .collect();
        if sources.is_empty() {
            continue;
        }
        let mut racks: HashSet<&str> = settled
            .iter()
            .map(|s| by_id[s].rack.as_str())
            .collect::<HashSet<_>>();
        let mut chosen: Vec<u64> = Vec::new();
        for _ in 0..deficit {
            if !budget.total_ok() {
                break;
            }
            let Some(source) = sources
                .iter()
                .copied()
                .filter(|s| budget.server_ok(*s))
                .min_by_key(|s| (budget.per_server.get(s).copied().unwrap_or(0), *s))
            else {
                break;
            };
            let eligible: Vec<&ServerView> = servers
                .iter()
                .filter(|s| {
                    s.writable()
                        && !c.holders.contains(&s.id)
                        && !chosen.contains(&s.id)
                        && budget.server_ok(s.id)
                        && has_room(s, incoming.get(&s.id).copied().unwrap_or(0), c.length)
                })
                .collect();
            let Some(target) = pick_target(&c.id, &eligible, &racks) else {
                break;
            };
            racks.insert(by_id[&target].rack.as_str());
            chosen.push(target);
            budget.take(&[source, target]);
            *incoming.entry(target).or_default() += c.length;
            planned_repair = true;
            tasks.push(Task::Replicate {
                chunk: c.id,
                length: c.length,
                source,
                target,
                priority: settled.len().min(u8::MAX as usize - 1) as u8,
            });
        }
    }

    // Pass 3: trims (surplus and drained copies) of chunks with R settled copies.
    for (settled, c, want) in trims {
        // A suspect holder may be back in a moment with its copy: trim only when every
        // present holder is live.
        if busy.chunks.contains(&c.id)
            || c.holders
                .iter()
                .any(|s| by_id.get(s).is_some_and(|v| v.suspect))
        {
            continue;
        }
        let mut drop: Vec<(u64, DeleteReason)> = c
            .holders
            .iter()
            .copied()
            .filter(|s| by_id.get(s).is_some_and(|v| v.live() && v.draining))
            .map(|s| (s, DeleteReason::Drain))
            .collect();
        if settled.len() > want {
            drop.extend(
                surplus_order(&settled, &by_id, &incoming)
                    .into_iter()
                    .take(settled.len() - want)
                    .map(|s| (s, DeleteReason::Surplus)),
            );
        }
        for (s, reason) in drop {
            if !budget.total_ok() || !budget.server_ok(s) {
                continue;
            }
            budget.take(&[s]);
            tasks.push(Task::Delete {
                chunk: c.id,
                server: s,
                not_touched_since_ms: 0,
                reason,
            });
        }
    }

    // Pass 4: garbage, with the budget repairs and trims left (a steady stream of overwrites
    // must not starve repairs).
    for (c, holders, since) in garbage {
        for s in holders {
            if by_id[&s].live() && budget.total_ok() && budget.server_ok(s) {
                budget.take(&[s]);
                tasks.push(Task::Delete {
                    chunk: c.id,
                    server: s,
                    not_touched_since_ms: since,
                    reason: DeleteReason::Garbage,
                });
            }
        }
    }

    // Pass 5: rebalance when nothing needs repair.
    if !planned_repair && summary.under_replicated == 0 {
        rebalance(
            servers,
            &order,
            busy,
            limits,
            &mut budget,
            &mut incoming,
            &mut tasks,
            &mut summary,
        );
    }
    Plan { tasks, summary }
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

#[allow(clippy::too_many_arguments)]
fn rebalance(
    servers: &[ServerView],
    order: &[&ChunkView],
    busy: &Busy,
    limits: &Limits,
    budget: &mut Budget<'_>,
    incoming: &mut HashMap<u64, u64>,
    tasks: &mut Vec<Task>,
    summary: &mut Summary,
) {
    let pool: Vec<&ServerView> = servers
        .iter()
        .filter(|s| s.writable() && s.capacity_bytes > 0)
        .collect();
    if pool.len() < 2 {
        return;
    }
    let util = |s: &ServerView, inc: &HashMap<u64, u64>| {
        utilization(s, inc.get(&s.id).copied().unwrap_or(0))
    };
    let by_id: HashMap<u64, &ServerView> = servers.iter().map(|s| (s.id, s)).collect();
    let mut moved = 0u64;
    // Moves planned in this call leave their source only after the trim that follows the
    // copy; count them as outgoing so one call does not pick the same source forever.
    let mut outgoing: HashMap<u64, u64> = HashMap::new();
    let eff = |s: &ServerView, inc: &HashMap<u64, u64>, out: &HashMap<u64, u64>| {
        let o = out.get(&s.id).copied().unwrap_or(0) as f64 / s.capacity_bytes as f64;
        util(s, inc) - o
    };
    let mean: f64 = pool.iter().map(|s| util(s, incoming)).sum::<f64>() / pool.len() as f64;
    summary.rebalance_bytes_pending = pool
        .iter()
        .map(|s| {
            let excess = util(s, incoming) - mean - limits.rebalance_spread / 2.0;
            if excess > 0.0 {
                (excess * s.capacity_bytes as f64) as u64
            } else {
                0
            }
        })
        .sum();
    let spread_of = |inc: &HashMap<u64, u64>, out: &HashMap<u64, u64>| {
        let mut v: Vec<(f64, u64)> = pool.iter().map(|s| (eff(s, inc, out), s.id)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        (v[0], v[v.len() - 1])
    };
    for c in order {
        if moved >= limits.rebalance_bytes || !budget.total_ok() {
            break;
        }
        let ((lo_u, lo), (hi_u, hi)) = spread_of(incoming, &outgoing);
        if hi_u - lo_u <= limits.rebalance_spread {
            break;
        }
        if c.garbage_since_ms.is_some()
            || busy.chunks.contains(&c.id)
            || !c.holders.contains(&hi)
            || c.holders.contains(&lo)
            || !budget.server_ok(hi)
            || !budget.server_ok(lo)
        {
            continue;
        }
        // All holders live and settled, and the move keeps the rack spread.
        if c.holders
            .iter()
            .any(|s| !by_id.get(s).is_some_and(|v| v.live() && !v.draining))
        {
            continue;
        }
        let lo_rack = by_id[&lo].rack.as_str();
        let other_racks: HashSet<&str> = c
            .holders
            .iter()
            .filter(|s| **s != hi)
            .map(|s| by_id[s].rack.as_str())
            .collect();
        if other_racks.contains(lo_rack) && by_id[&hi].rack != lo_rack {
            continue;
        }
        if !has_room(
            by_id[&lo],
            incoming.get(&lo).copied().unwrap_or(0),
            c.length,
        ) {
            continue;
        }
        // Only move when it narrows the gap.
        let after_lo = lo_u + c.length as f64 / by_id[&lo].capacity_bytes as f64;
        let after_hi = hi_u - c.length as f64 / by_id[&hi].capacity_bytes as f64;
        if after_lo > hi_u || after_hi < lo_u {
            continue;
        }
        budget.take(&[hi, lo]);
        *incoming.entry(lo).or_default() += c.length;
        *outgoing.entry(hi).or_default() += c.length;
        moved += c.length;
        tasks.push(Task::Replicate {
            chunk: c.id,
            length: c.length,
            source: hi,
            target: lo,
            priority: u8::MAX,
        });
    }
}

#[cfg(test)]
pub(crate) mod tests;
