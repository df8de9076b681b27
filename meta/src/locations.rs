//! Where chunk copies live: the leader's soft-state table, rebuilt from chunkserver reports.
//!
//! Like GFS and HDFS, the master does not replicate chunk locations through raft: chunkservers
//! are the authority for what they hold. Each server sends a full report after registering
//! (and whenever a new leader asks for one) and incremental `added`/`removed` lists in every
//! heartbeat. A new leader starts empty and plans nothing until every live server has sent
//! its full report (`complete`), so it never mistakes "not reported yet" for "lost".
//!
//! Pure data structure: no IO, no clock.

use std::collections::{HashMap, HashSet};

/// A 32-byte SHA-256 chunk id.
pub type ChunkId = [u8; 32];

/// Convert a wire id; `None` unless exactly 32 bytes.
pub fn chunk_id(b: &[u8]) -> Option<ChunkId> {
    b.try_into().ok()
}

#[derive(Debug, Default)]
struct ServerEntry {
    full_seen: bool,
    chunks: HashSet<ChunkId>,
}

/// Chunk id -> servers holding a copy, and the reverse.
#[derive(Debug, Default)]
pub struct Locations {
    by_chunk: HashMap<ChunkId, Vec<u64>>,
    by_server: HashMap<u64, ServerEntry>,
}

impl Locations {
    /// Forget everything (a new term: locations are re-learned from full reports).
    pub fn clear(&mut self) {
        self.by_chunk.clear();
        self.by_server.clear();
    }

    /// Whether `server` has sent a full report to this leader.
    pub fn has_full_report(&self, server: u64) -> bool {
        self.by_server.get(&server).is_some_and(|e| e.full_seen)
    }

    /// Whether every server in `servers` has sent its full report.
    pub fn complete<'a>(&self, servers: impl IntoIterator<Item = &'a u64>) -> bool {
        servers.into_iter().all(|s| self.has_full_report(*s))
    }

    /// Replace `server`'s copies with `chunks`.
    pub fn full_report(&mut self, server: u64, chunks: impl IntoIterator<Item = ChunkId>) {
        self.forget_server(server);
        let entry = self.by_server.entry(server).or_default();
        entry.full_seen = true;
        for c in chunks {
            if entry.chunks.insert(c) {
                self.by_chunk.entry(c).or_default().push(server);
            }
        }
    }

    /// Apply an incremental report. Ignored until the server's full report arrived (the full
    /// report that follows will include these changes).
    pub fn incremental(&mut self, server: u64, added: &[ChunkId], removed: &[ChunkId]) {
        if !self.has_full_report(server) {
            return;
        }
        for c in added {
            self.add(server, *c);
        }
        for c in removed {
            self.remove(server, c);
        }
    }

    /// Record one copy (e.g. a replication that finished).
    pub fn add(&mut self, server: u64, c: ChunkId) {
        let entry = self.by_server.entry(server).or_default();
        if entry.chunks.insert(c) {
            self.by_chunk.entry(c).or_default().push(server);
        }
    }

    /// Drop one copy (deleted, or reported corrupt).
    pub fn remove(&mut self, server: u64, c: &ChunkId) {
        if let Some(e) = self.by_server.get_mut(&server) {
            e.chunks.remove(c);
        }
        if let Some(v) = self.by_chunk.get_mut(c) {
            v.retain(|s| *s != server);
            if v.is_empty() {
                self.by_chunk.remove(c);
            }
        }
    }

    /// Drop everything known about `server` (and its full-report flag).
    pub fn forget_server(&mut self, server: u64) {
        if let Some(e) = self.by_server.remove(&server) {
            for c in e.chunks {
                if let Some(v) = self.by_chunk.get_mut(&c) {
                    v.retain(|s| *s != server);
                    if v.is_empty() {
                        self.by_chunk.remove(&c);
                    }
                }
            }
        }
    }

    /// Servers holding `c`.
    pub fn holders(&self, c: &ChunkId) -> &[u64] {
        self.by_chunk.get(c).map_or(&[], |v| v.as_slice())
    }

    /// Number of copies `server` holds.
    pub fn count_on(&self, server: u64) -> usize {
        self.by_server.get(&server).map_or(0, |e| e.chunks.len())
    }

    /// The chunks `server` holds.
    pub fn chunks_on(&self, server: u64) -> impl Iterator<Item = &ChunkId> {
        self.by_server
            .get(&server)
            .into_iter()
            .flat_map(|e| e.chunks.iter())
    }

    /// Every chunk with at least one known copy.
    pub fn chunks(&self) -> impl Iterator<Item = (&ChunkId, &[u64])> {
        self.by_chunk.iter().map(|(c, v)| (c, v.as_slice()))
    }

    /// Number of distinct chunks with a known copy.
    pub fn len(&self) -> usize {
        self.by_chunk.len()
    }

    /// Whether no copy is known.
    pub fn is_empty(&self) -> bool {
        self.by_chunk.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        [n; 32]
    }

    #[test]
    fn full_then_incremental_reports() {
        let mut l = Locations::default();
        l.incremental(1, &[id(9)], &[]);
        assert!(
            l.holders(&id(9)).is_empty(),
            "ignored before the full report"
        );
        l.full_report(1, [id(1), id(2)]);
        l.full_report(2, [id(2)]);
        assert!(l.complete(&[1, 2]));
        assert!(!l.complete(&[1, 2, 3]));
        assert_eq!(l.holders(&id(2)), &[1, 2]);
        l.incremental(2, &[id(3)], &[id(2)]);
        assert_eq!(l.holders(&id(2)), &[1]);
        assert_eq!(l.holders(&id(3)), &[2]);
        // A new full report replaces the old view.
        l.full_report(1, [id(3)]);
        assert!(l.holders(&id(1)).is_empty());
        assert_eq!(l.holders(&id(3)), &[2, 1]);
        assert_eq!(l.count_on(1), 1);
        l.forget_server(2);
        assert_eq!(l.holders(&id(3)), &[1]);
        assert!(!l.has_full_report(2));
        assert_eq!(l.len(), 1);
        l.clear();
        assert!(l.is_empty());
    }
}
