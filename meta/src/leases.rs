//! Chunkserver lease bookkeeping on the leader. Pure: time comes in as a parameter.
//!
//! The registry (ids, epochs, addresses, stats) is raft state; when each server was last
//! heard from is leader-local memory. A newly elected leader has heard from nobody, so it
//! counts every registered server as seen at the moment it took office (a grace period of
//! one dead timeout before anything is declared dead).

use std::collections::BTreeMap;

use anode_proto::{ChunkserverRecord, ChunkserverState};

/// Lease timing.
#[derive(Clone, Copy, Debug)]
pub struct LeaseConfig {
    /// A server not heard from for this long is suspect.
    pub lease_ms: u64,
    /// A server not heard from for this long is dead.
    pub dead_after_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease_ms: 3_000,
            dead_after_ms: 30_000,
        }
    }
}

/// Last-heard times of chunkservers, as known by this leader.
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    /// When this member became leader (ms on the caller's monotonic clock).
    pub leader_since_ms: u64,
    /// Last heartbeat per server id.
    pub last_seen_ms: BTreeMap<u64, u64>,
}

impl LeaseTable {
    /// Reset on a leadership change.
    pub fn became_leader(&mut self, now_ms: u64) {
        self.leader_since_ms = now_ms;
        self.last_seen_ms.clear();
    }

    /// Record a heartbeat or registration.
    pub fn seen(&mut self, id: u64, now_ms: u64) {
        self.last_seen_ms.insert(id, now_ms);
    }

    /// The state of `rec` at `now_ms`.
    pub fn state(
        &self,
        rec: &ChunkserverRecord,
        now_ms: u64,
        cfg: &LeaseConfig,
    ) -> ChunkserverState {
        let seen = self
            .last_seen_ms
            .get(&rec.id)
            .copied()
            .unwrap_or(self.leader_since_ms);
        let age = now_ms.saturating_sub(seen);
        if age > cfg.dead_after_ms {
            ChunkserverState::Dead
        } else if age > cfg.lease_ms {
            ChunkserverState::Suspect
        } else if rec.draining {
            ChunkserverState::Draining
        } else {
            ChunkserverState::Alive
        }
    }
}

/// Lower-case name of a state, as `anode ctl status` prints it.
pub fn state_name(s: ChunkserverState) -> &'static str {
    match s {
        ChunkserverState::Alive => "alive",
        ChunkserverState::Suspect => "suspect",
        ChunkserverState::Dead => "dead",
        ChunkserverState::Draining => "draining",
        ChunkserverState::Unspecified => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_lease_age() {
        let cfg = LeaseConfig {
            lease_ms: 3_000,
            dead_after_ms: 10_000,
        };
        let mut t = LeaseTable::default();
        t.became_leader(1_000);
        let rec = ChunkserverRecord {
            id: 7,
            ..Default::default()
        };
        // Grace from the moment of leadership.
        assert_eq!(t.state(&rec, 2_000, &cfg), ChunkserverState::Alive);
        assert_eq!(t.state(&rec, 5_000, &cfg), ChunkserverState::Suspect);
        assert_eq!(t.state(&rec, 12_000, &cfg), ChunkserverState::Dead);
        t.seen(7, 12_000);
        assert_eq!(t.state(&rec, 12_500, &cfg), ChunkserverState::Alive);
        let draining = ChunkserverRecord {
            draining: true,
            ..rec
        };
        assert_eq!(t.state(&draining, 12_500, &cfg), ChunkserverState::Draining);
        t.became_leader(20_000);
        assert_eq!(t.state(&draining, 21_000, &cfg), ChunkserverState::Draining);
    }
}
