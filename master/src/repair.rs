//! Read repair on the leader: bad copies reported by readers (or scrubbers) become
//! `ReplicateChunkOp` commands in the bad server's next heartbeat reply, re-sent until the
//! server reports them done. Pure bookkeeping; time comes in as a parameter.
//!
//! The full self-healing planner (dead servers, rebalance, drain) is future work; this queue
//! is the part of it that read repair needs.

use std::collections::BTreeMap;

use anode_proto::chunk_command::Op;
use anode_proto::{ChunkCommand, ReplicateChunkOp};

/// A re-sent command is issued again after this long without a done report.
pub const REISSUE_AFTER_MS: u64 = 5_000;
/// At most this many repair commands per heartbeat reply.
pub const MAX_COMMANDS_PER_HEARTBEAT: usize = 16;

#[derive(Clone, Debug)]
struct Task {
    id: u64,
    sha256: Vec<u8>,
    issued_ms: Option<u64>,
    attempts: u64,
}

/// Pending repairs per chunkserver.
#[derive(Debug, Default)]
pub struct RepairQueue {
    next_id: u64,
    by_server: BTreeMap<u64, BTreeMap<Vec<u8>, Task>>,
}

impl RepairQueue {
    /// Server `server` holds a bad copy of `sha256`: it should fetch a good one.
    pub fn report_bad(&mut self, server: u64, sha256: Vec<u8>) {
        self.next_id += 1;
        let id = self.next_id;
        self.by_server
            .entry(server)
            .or_default()
            .entry(sha256.clone())
            .or_insert(Task {
                id,
                sha256,
                issued_ms: None,
                attempts: 0,
            });
    }

    /// Whether `server` itself waits for a repair of `sha256` (so it is no source for it).
    pub fn is_pending(&self, server: u64, sha256: &[u8]) -> bool {
        self.by_server
            .get(&server)
            .is_some_and(|t| t.contains_key(sha256))
    }

    /// Commands for `server`'s heartbeat reply. `source(sha, attempt)` picks a healthy holder
    /// (id, addr) other than `server`, rotating through holders on later attempts; chunks
    /// with no source stay queued.
    pub fn commands_for(
        &mut self,
        server: u64,
        now_ms: u64,
        mut source: impl FnMut(&[u8], u64) -> Option<(u64, String)>,
    ) -> Vec<ChunkCommand> {
        let Some(tasks) = self.by_server.get_mut(&server) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in tasks.values_mut() {
            if out.len() >= MAX_COMMANDS_PER_HEARTBEAT {
                break;
            }
            if t.issued_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < REISSUE_AFTER_MS)
            {
                continue;
            }
            let Some((source_id, source_addr)) = source(&t.sha256, t.attempts) else {
                continue;
            };
            t.issued_ms = Some(now_ms);
            t.attempts += 1;
            out.push(ChunkCommand {
                id: t.id,
                op: Some(Op::Replicate(ReplicateChunkOp {
                    sha256: t.sha256.clone(),
                    source_addr,
                    source_id,
                })),
            });
        }
        out
    }

    /// `server` finished these command ids.
    pub fn done(&mut self, server: u64, ids: &[u64]) {
        if let Some(tasks) = self.by_server.get_mut(&server) {
            tasks.retain(|_, t| !ids.contains(&t.id));
            if tasks.is_empty() {
                self.by_server.remove(&server);
            }
        }
    }

    /// Chunks `server` waits to have repaired.
    pub fn shas_for(&self, server: u64) -> Vec<Vec<u8>> {
        self.by_server
            .get(&server)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Repairs not yet confirmed.
    pub fn pending(&self) -> usize {
        self.by_server.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_copies_are_issued_reissued_and_retired() {
        let mut q = RepairQueue::default();
        q.report_bad(2, vec![1]);
        q.report_bad(2, vec![1]); // duplicate report: one task
        q.report_bad(2, vec![9]);
        let src = |sha: &[u8], _attempt: u64| (sha != [9]).then(|| (3, "s3".to_string()));
        let c = q.commands_for(2, 1_000, src);
        assert_eq!(c.len(), 1, "the chunk without a source stays queued");
        assert!(
            q.commands_for(2, 2_000, src).is_empty(),
            "not re-sent before the timeout"
        );
        assert_eq!(q.commands_for(2, 1_000 + REISSUE_AFTER_MS, src).len(), 1);
        assert!(q.commands_for(1, 1_000, src).is_empty());
        q.done(2, &[c[0].id]);
        assert_eq!(q.pending(), 1);
    }
}
