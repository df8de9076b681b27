//! The leader's self-healing bookkeeping: chunk locations, tasks in flight, and the commands
//! that carry the planner's tasks to chunkservers in heartbeat replies.
//!
//! Pure state machine: no IO, no clock (time comes in as parameters). The service feeds it
//! heartbeats and reports, and once a second calls [`Healer::tick`] with a sweep of the chunk
//! table; `tick` asks [`crate::planner::plan`] for tasks and queues them per executing server
//! (the target of a copy, the holder of a deletion).
//!
//! Lifecycle of a task: planned -> queued for its executor -> sent in a heartbeat reply ->
//! reported done (locations updated, bytes counted) or failed (dropped; the next tick plans
//! again, avoiding the source that failed for a while) -> or timed out and dropped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use anode_proto::chunk_command::Op;
use anode_proto::{ChunkCommand, DeleteChunkOp, ReplicateChunkOp};

use crate::locations::{ChunkId, Locations};
use crate::planner::{self, Busy, ChunkView, Limits, ServerView, Summary, Task};

/// A sent command is sent again after this long without a report.
pub const RESEND_AFTER_MS: u64 = 10_000;
/// A task not finished after this long is dropped (and planned again).
pub const TASK_TIMEOUT_MS: u64 = 120_000;
/// A source that failed a copy is not used for that chunk again for this long.
pub const AVOID_MS: u64 = 30_000;
/// At most this many commands per heartbeat reply.
pub const MAX_COMMANDS_PER_REPLY: usize = 32;
/// Window of the repair-rate meter.
pub const RATE_WINDOW_MS: u64 = 10_000;

#[derive(Clone, Debug)]
struct InFlight {
    task: Task,
    executor: u64,
    created_ms: u64,
    sent_ms: Option<u64>,
}

/// Figures for `anode ctl status` and metrics.
#[derive(Clone, Debug, Default)]
pub struct HealthFigures {
    /// The planner's summary from the last sweep.
    pub summary: Summary,
    /// Tasks in flight.
    pub in_flight: u64,
    /// Bytes copied per second (recent).
    pub bytes_per_sec: u64,
    /// Every live server sent its full report.
    pub locations_complete: bool,
}

/// Leader-local healing state.
#[derive(Debug, Default)]
pub struct Healer {
    /// Where copies live.
    pub locations: Locations,
    next_id: u64,
    tasks: BTreeMap<u64, InFlight>,
    queue: BTreeMap<u64, VecDeque<u64>>,
    avoid: HashMap<(u64, ChunkId), u64>,
    done_bytes: VecDeque<(u64, u64)>,
    figures: HealthFigures,
    orphan_seen: HashMap<ChunkId, u64>,
}

impl Healer {
    /// Forget everything (leadership changed).
    pub fn reset(&mut self) {
        *self = Healer {
            next_id: self.next_id,
            ..Healer::default()
        };
    }

    /// A server registered again (new epoch): its commands are void and it sends a new full
    /// report.
    pub fn server_reregistered(&mut self, server: u64) {
        self.locations.forget_server(server);
        let ids: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.executor == server)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.tasks.remove(&id);
        }
        self.queue.remove(&server);
    }

    /// A reader or scrubber found `server`'s copy of `chunk` bad: it no longer counts, and
    /// the planner replaces it (possibly onto the same server, which re-fetches).
    pub fn report_bad(&mut self, server: u64, chunk: ChunkId) {
        self.locations.remove(server, &chunk);
    }

    /// Results from `server`'s heartbeat.
    pub fn reported(&mut self, server: u64, done: &[u64], failed: &[u64], now_ms: u64) {
        for id in done {
            let Some(t) = self.tasks.get(id).filter(|t| t.executor == server) else {
                continue;
            };
            match t.task {
                Task::Replicate { chunk, length, .. } => {
                    self.locations.add(server, chunk);
                    self.done_bytes.push_back((now_ms, length));
                }
                Task::Delete { chunk, .. } => self.locations.remove(server, &chunk),
            }
            self.tasks.remove(id);
        }
        for id in failed {
            let Some(t) = self.tasks.get(id).filter(|t| t.executor == server) else {
                continue;
            };
            if let Task::Replicate { chunk, source, .. } = t.task {
                self.avoid.insert((source, chunk), now_ms + AVOID_MS);
            }
            self.tasks.remove(id);
        }
    }

    /// Commands for `server`'s heartbeat reply. `addr(id)` gives a source's address.
    pub fn commands_for(
        &mut self,
        server: u64,
        now_ms: u64,
        addr: impl Fn(u64) -> Option<String>,
    ) -> Vec<ChunkCommand> {
        let Some(q) = self.queue.get_mut(&server) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        q.retain(|id| self.tasks.contains_key(id));
        for id in q.iter() {
            if out.len() >= MAX_COMMANDS_PER_REPLY {
                break;
            }
            let t = self.tasks.get_mut(id).expect("retained");
            if t.sent_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < RESEND_AFTER_MS)
            {
                continue;
            }
            let op = match &t.task {
                Task::Replicate { chunk, source, .. } => {
                    let Some(source_addr) = addr(*source) else {
                        continue;
                    };
                    Op::Replicate(ReplicateChunkOp {
                        sha256: chunk.to_vec(),
                        source_addr,
                        source_id: *source,
                    })
                }
                Task::Delete {
                    chunk,
                    not_touched_since_ms,
                    ..
                } => Op::Delete(DeleteChunkOp {
                    sha256: chunk.to_vec(),
                    not_touched_since_ms: *not_touched_since_ms,
                }),
            };
            t.sent_ms = Some(now_ms);
            out.push(ChunkCommand {
                id: *id,
                op: Some(op),
            });
        }
        out
    }

    fn busy(&self) -> Busy {
        let mut b = Busy::default();
        for t in self.tasks.values() {
            for s in t.task.servers() {
                *b.per_server.entry(s).or_default() += 1;
            }
            b.total += 1;
            b.chunks.insert(*t.task.chunk());
            if let Task::Replicate { target, length, .. } = t.task {
                *b.incoming_bytes.entry(target).or_default() += length;
            }
        }
        b
    }

    /// Plan and queue new tasks. `servers` are every registered server's views; `chunks` the
    /// sweep of the chunk table with holders filled from [`Healer::locations`] by the caller
    /// (see [`Healer::holders`]). Returns the new tasks.
    pub fn tick(
        &mut self,
        now_ms: u64,
        servers: &[ServerView],
        chunks: &[ChunkView],
        limits: &Limits,
    ) -> Vec<Task> {
        self.tasks
            .retain(|_, t| now_ms.saturating_sub(t.created_ms) < TASK_TIMEOUT_MS);
        self.avoid.retain(|_, until| *until > now_ms);
        while self
            .done_bytes
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > RATE_WINDOW_MS)
        {
            self.done_bytes.pop_front();
        }
        let complete = self.reports_complete(servers);
        let busy = self.busy();
        let plan = planner::plan(servers, chunks, &busy, limits);
        self.figures = HealthFigures {
            summary: plan.summary.clone(),
            in_flight: 0,
            bytes_per_sec: 0,
            locations_complete: complete,
        };
        if !complete {
            // Without every live server's report, "no copy known" may only mean "not reported
            // yet": plan nothing.
            return Vec::new();
        }
        for t in &plan.tasks {
            self.next_id += 1;
            let id = self.next_id;
            let executor = match t {
                Task::Replicate { target, .. } => *target,
                Task::Delete { server, .. } => *server,
            };
            self.tasks.insert(
                id,
                InFlight {
                    task: t.clone(),
                    executor,
                    created_ms: now_ms,
                    sent_ms: None,
                },
            );
            self.queue.entry(executor).or_default().push_back(id);
        }
        plan.tasks
    }

    /// Whether every live (present, not suspect) server among `servers` has sent its full
    /// report to this leader: until then "no copy known" may mean "not reported yet".
    pub fn reports_complete(&self, servers: &[ServerView]) -> bool {
        self.locations.complete(
            servers
                .iter()
                .filter(|s| s.present && !s.suspect)
                .map(|s| &s.id),
        )
    }

    /// Known holders of `chunk` for the planner.
    pub fn holders(&self, chunk: &ChunkId) -> Vec<u64> {
        self.locations.holders(chunk).to_vec()
    }

    /// Holders a copy of `chunk` failed from recently.
    pub fn avoided_sources(&self, chunk: &ChunkId) -> Vec<u64> {
        self.locations
            .holders(chunk)
            .iter()
            .copied()
            .filter(|s| self.avoid.contains_key(&(*s, *chunk)))
            .collect()
    }

    /// Figures for status and metrics.
    pub fn figures(&self) -> HealthFigures {
        let mut f = self.figures.clone();
        f.in_flight = self.tasks.len() as u64;
        let bytes: u64 = self.done_bytes.iter().map(|(_, b)| b).sum();
        f.bytes_per_sec = bytes * 1000 / RATE_WINDOW_MS;
        f
    }

    /// Chunks with a known copy but no record in the chunk table (uploads never committed,
    /// or records already removed) for at least `min_age_ms`: garbage candidates. Most are
    /// uploads about to be committed, so they wait before any delete is tried.
    pub fn ripe_orphans(
        &mut self,
        has_record: impl Fn(&ChunkId) -> bool,
        now_ms: u64,
        min_age_ms: u64,
        limit: usize,
    ) -> Vec<(ChunkId, Vec<u64>)> {
        let orphans: Vec<(ChunkId, Vec<u64>)> = self
            .locations
            .chunks()
            .filter(|(c, _)| !has_record(c))
            .map(|(c, h)| (*c, h.to_vec()))
            .collect();
        let current: HashSet<ChunkId> = orphans.iter().map(|(c, _)| *c).collect();
        self.orphan_seen.retain(|c, _| current.contains(c));
        let mut out = Vec::new();
        for (c, h) in orphans {
            let seen = *self.orphan_seen.entry(c).or_insert(now_ms);
            if now_ms.saturating_sub(seen) >= min_age_ms && out.len() < limit {
                out.push((c, h));
            }
        }
        out
    }

    /// Ids of tasks in flight for `chunk` (tests and diagnostics).
    pub fn in_flight_for(&self, chunk: &ChunkId) -> HashSet<u64> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.task.chunk() == chunk)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(id: u64) -> ServerView {
        crate::planner::tests::srv(id, "")
    }

    #[test]
    fn tasks_flow_from_plan_to_commands_to_reports() {
        let mut h = Healer::default();
        let servers: Vec<ServerView> = (1..=3).map(srv).collect();
        let c = [7u8; 32];
        h.locations.full_report(1, [c]);
        h.locations.full_report(2, []);
        let view = |h: &Healer| {
            vec![ChunkView {
                id: c,
                length: 10,
                want: 3,
                holders: h.holders(&c),
                garbage_since_ms: None,
                avoid_sources: h.avoided_sources(&c),
            }]
        };
        // Server 3 has not reported: nothing is planned yet.
        assert!(h
            .tick(0, &servers, &view(&h), &Limits::default())
            .is_empty());
        assert!(!h.figures().locations_complete);
        h.locations.full_report(3, []);
        let tasks = h.tick(1, &servers, &view(&h), &Limits::default());
        assert_eq!(tasks.len(), 2);
        // Nothing new while in flight.
        assert!(h
            .tick(2, &servers, &view(&h), &Limits::default())
            .is_empty());
        let addr = |id: u64| Some(format!("s{id}"));
        let c2 = h.commands_for(2, 3, addr);
        let c3 = h.commands_for(3, 3, addr);
        assert_eq!((c2.len(), c3.len()), (1, 1));
        assert!(h.commands_for(2, 4, addr).is_empty(), "not re-sent at once");
        assert_eq!(h.commands_for(2, 3 + RESEND_AFTER_MS, addr).len(), 1);
        h.reported(2, &[c2[0].id], &[], 5);
        h.reported(3, &[], &[c3[0].id], 5);
        assert_eq!(h.locations.holders(&c), &[1, 2]);
        assert_eq!(h.figures().in_flight, 0);
        assert_eq!(h.figures().bytes_per_sec, 10 * 1000 / RATE_WINDOW_MS);
        // The failed copy is planned again, from the other holder.
        let again = h.tick(6, &servers, &view(&h), &Limits::default());
        assert!(
            matches!(
                again[..],
                [Task::Replicate {
                    source: 2,
                    target: 3,
                    ..
                }]
            ),
            "{again:?}"
        );
    }

    #[test]
    fn bad_copies_are_replaced_and_reregistration_voids_commands() {
        let mut h = Healer::default();
        let servers: Vec<ServerView> = (1..=3).map(srv).collect();
        let c = [1u8; 32];
        for s in 1..=3 {
            h.locations.full_report(s, [c]);
        }
        h.report_bad(2, c);
        let view = vec![ChunkView {
            id: c,
            length: 1,
            want: 3,
            holders: h.holders(&c),
            garbage_since_ms: None,
            avoid_sources: Vec::new(),
        }];
        assert_eq!(view[0].holders, vec![1, 3]);
        let tasks = h.tick(1, &servers, &view, &Limits::default());
        assert!(matches!(tasks[..], [Task::Replicate { target: 2, .. }]));
        h.server_reregistered(2);
        assert_eq!(h.figures().in_flight, 0);
        assert!(!h.locations.has_full_report(2));
    }
}
