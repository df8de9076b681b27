//! The leader's read lease (pure: no clock, no IO; time comes in as arguments).
//!
//! A leader answers a linearizable read from its own applied state, with no message, while it
//! holds a lease; otherwise the read waits for a ReadIndex round (a heartbeat round a quorum
//! acknowledges). The lease comes from those same rounds:
//!
//! - A round is stamped with the leader's monotonic clock read *before* its heartbeats leave
//!   ([`ReadLease::round`]), so the stamp is at or before their send time.
//! - When a quorum acknowledged the round, every member of that quorum reset its election
//!   timer on receipt (at or after the stamp), and with raft-rs's `check_quorum` a follower
//!   ignores vote and pre-vote requests for `election_ticks` ticks after hearing from its
//!   leader. A tick is at least `tick_ms` of wall time (the driver ticks no faster; ticks stop
//!   while a process is stopped, which only lengthens the refusal), and the first tick after a
//!   reset may come at once, so no quorum can elect another leader for
//!   `(election_ticks - 1) * tick_ms` after the stamp.
//! - The lease therefore lasts `(election_ticks - 1) * tick_ms - max_drift_ms` from the stamp
//!   ([`LeaseConfig::from_timing`]), measured on the leader's monotonic clock: `max_drift_ms`
//!   bounds how much the leader's clock may run slow against a follower's over one lease.
//! - A member that restarted forgot its leader; it refuses votes for its first
//!   `election_ticks` ticks (`node::Core`), so a restart does not shorten the window.
//! - Leadership transfer ends the lease for the rest of the term ([`ReadLease::end_term`]): the
//!   transferee campaigns with a forced vote that followers grant inside their timeout. A
//!   membership change ends the current lease ([`ReadLease::end`]); rounds in flight from
//!   before cannot renew it.
//!
//! The time never comes from ticks: a leader stopped (SIGSTOP) for seconds resumes with the
//! same tick count but a monotonic clock that moved on, so its lease has expired.

/// How the lease measures time. Only [`LeaseClock::Monotonic`] is safe: the others exist so
/// that tests can show the linearizability checks catch a broken lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeaseClock {
    /// The leader's monotonic clock, injected by the driver.
    #[default]
    Monotonic,
    /// UNSAFE, tests only: time is the tick count times `tick_ms` (ticks stop while the
    /// process is stopped, so a paused leader resumes with a lease it no longer holds).
    BrokenTicks,
    /// UNSAFE, tests only: a confirmed lease never expires within its term.
    BrokenForever,
}

/// Length and clock of the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease length from the stamp of the round that confirmed it; 0 disables lease reads
    /// (every read waits for a ReadIndex round).
    pub duration_ms: u64,
    /// The clock the lease is measured with.
    pub clock: LeaseClock,
}

impl LeaseConfig {
    /// The longest safe lease for raft timing of `tick_ms` per tick and `election_ticks`
    /// ticks of election timeout (raft-rs's `election_tick`, which its vote refusal uses),
    /// less `max_drift_ms`. 0 (no lease) when the drift bound eats the whole window.
    pub fn from_timing(tick_ms: u64, election_ticks: usize, max_drift_ms: u64) -> LeaseConfig {
        let window_ms = (election_ticks as u64).saturating_sub(1) * tick_ms;
        LeaseConfig {
            duration_ms: window_ms.saturating_sub(max_drift_ms),
            clock: LeaseClock::Monotonic,
        }
    }
}

/// A confirmation round the leader sent: what it proves if a quorum acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// The leader's clock when the round was issued (at or before the send).
    pub stamp_ms: u64,
    term: u64,
    fence: u64,
}

/// The lease of one raft member. Pure: every method takes the time it needs.
#[derive(Clone, Debug)]
pub struct ReadLease {
    cfg: LeaseConfig,
    /// The term the lease (and the rounds counted for it) belong to.
    term: u64,
    /// Bumped by [`ReadLease::end`]: rounds stamped before cannot renew the lease.
    fence: u64,
    /// The lease holds while the clock is below this.
    until_ms: Option<u64>,
    /// A term in which no lease may be held again (a leadership transfer began in it).
    ended_term: Option<u64>,
}

impl ReadLease {
    /// No lease yet.
    pub fn new(cfg: LeaseConfig) -> ReadLease {
        ReadLease {
            cfg,
            term: 0,
            fence: 0,
            until_ms: None,
            ended_term: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> LeaseConfig {
        self.cfg
    }

    /// Follow the member's term: a new term ends any lease of the old one.
    pub fn observe_term(&mut self, term: u64) {
        if term != self.term {
            self.term = term;
            self.end();
        }
    }

    /// Stamp a round a leader in `term` issues at `now_ms`.
    pub fn round(&mut self, now_ms: u64, term: u64) -> Round {
        self.observe_term(term);
        Round {
            stamp_ms: now_ms,
            term,
            fence: self.fence,
        }
    }

    /// A quorum acknowledged `round`: the lease runs to its stamp plus the duration (never
    /// shortened by an older round), unless the lease ended or the term moved since.
    pub fn confirmed(&mut self, round: Round) {
        if self.cfg.duration_ms == 0
            || round.term != self.term
            || round.fence != self.fence
            || self.ended_term == Some(self.term)
        {
            return;
        }
        let until = round.stamp_ms.saturating_add(self.cfg.duration_ms);
        self.until_ms = Some(self.until_ms.map_or(until, |u| u.max(until)));
    }

    /// End the lease now; rounds already in flight cannot renew it.
    pub fn end(&mut self) {
        self.fence += 1;
        self.until_ms = None;
    }

    /// End the lease for the rest of `term` (a leadership transfer began).
    pub fn end_term(&mut self, term: u64) {
        self.observe_term(term);
        self.ended_term = Some(term);
        self.end();
    }

    /// Whether a leader in `term` may answer a read at `now_ms` from its own state.
    pub fn valid(&self, now_ms: u64, term: u64) -> bool {
        if term != self.term || self.ended_term == Some(term) {
            return false;
        }
        match (self.until_ms, self.cfg.clock) {
            (None, _) => false,
            (Some(_), LeaseClock::BrokenForever) => true,
            (Some(until), _) => now_ms < until,
        }
    }

    /// Whether a leader in `term` should confirm its leadership again at `now_ms` to keep
    /// the lease: none held, or less than half of it left.
    pub fn wants_renewal(&self, now_ms: u64, term: u64) -> bool {
        if self.cfg.duration_ms == 0 || self.ended_term == Some(term) {
            return false;
        }
        if !self.valid(now_ms, term) {
            return true;
        }
        self.until_ms
            .is_some_and(|u| u.saturating_sub(now_ms) < self.cfg.duration_ms / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lease(ms: u64) -> ReadLease {
        ReadLease::new(LeaseConfig {
            duration_ms: ms,
            clock: LeaseClock::Monotonic,
        })
    }

    #[test]
    fn from_timing_subtracts_one_tick_and_the_drift() {
        assert_eq!(LeaseConfig::from_timing(100, 10, 200).duration_ms, 700);
        assert_eq!(LeaseConfig::from_timing(100, 10, 0).duration_ms, 900);
        assert_eq!(LeaseConfig::from_timing(100, 10, 5_000).duration_ms, 0);
        assert_eq!(LeaseConfig::from_timing(100, 0, 0).duration_ms, 0);
    }

    #[test]
    fn lease_runs_from_the_stamp_not_the_acknowledgement() {
        let mut l = lease(700);
        assert!(!l.valid(0, 1));
        let r = l.round(1_000, 1);
        l.confirmed(r);
        assert!(l.valid(1_000, 1));
        assert!(l.valid(1_699, 1));
        assert!(!l.valid(1_700, 1), "expires at stamp + duration");
        assert!(!l.valid(1_500, 2), "another term holds nothing");
    }

    #[test]
    fn older_round_never_shortens_and_renewal_asked_at_half() {
        let mut l = lease(700);
        let old = l.round(1_000, 1);
        let new = l.round(1_300, 1);
        l.confirmed(new);
        l.confirmed(old);
        assert!(l.valid(1_999, 1));
        assert!(!l.wants_renewal(1_500, 1));
        assert!(l.wants_renewal(1_700, 1), "under half left");
        assert!(l.wants_renewal(2_000, 1), "expired");
    }

    #[test]
    fn end_fences_rounds_in_flight() {
        let mut l = lease(700);
        let r = l.round(1_000, 1);
        l.end();
        l.confirmed(r);
        assert!(
            !l.valid(1_001, 1),
            "a round from before the end renews nothing"
        );
        let r2 = l.round(1_100, 1);
        l.confirmed(r2);
        assert!(l.valid(1_101, 1));
    }

    #[test]
    fn transfer_ends_the_lease_for_the_term() {
        let mut l = lease(700);
        let r = l.round(1_000, 3);
        l.confirmed(r);
        l.end_term(3);
        assert!(!l.valid(1_001, 3));
        let r2 = l.round(1_100, 3);
        l.confirmed(r2);
        assert!(!l.valid(1_101, 3), "no lease again in the transfer's term");
        assert!(!l.wants_renewal(1_101, 3));
        let r3 = l.round(2_000, 4);
        l.confirmed(r3);
        assert!(l.valid(2_001, 4), "a later term leases again");
    }

    #[test]
    fn new_term_ends_the_lease_and_old_rounds() {
        let mut l = lease(700);
        let r = l.round(1_000, 1);
        l.observe_term(2);
        l.confirmed(r);
        assert!(!l.valid(1_001, 2));
        assert!(!l.valid(1_001, 1));
    }

    #[test]
    fn zero_duration_never_leases() {
        let mut l = lease(0);
        let r = l.round(1_000, 1);
        l.confirmed(r);
        assert!(!l.valid(1_000, 1));
        assert!(!l.wants_renewal(1_000, 1));
    }

    #[test]
    fn broken_forever_keeps_the_lease() {
        let mut l = ReadLease::new(LeaseConfig {
            duration_ms: 700,
            clock: LeaseClock::BrokenForever,
        });
        let r = l.round(1_000, 1);
        l.confirmed(r);
        assert!(l.valid(1_000_000, 1));
    }

    proptest! {
        /// Whatever the order of rounds, ends and acknowledgements, a valid lease at `now` is
        /// backed by a round of the same term, stamped after the last end, that a quorum
        /// acknowledged, with `now < stamp + duration`.
        #[test]
        fn valid_only_inside_a_confirmed_round(ops in proptest::collection::vec((0u8..4, 0u64..50), 1..60)) {
            let dur = 700;
            let mut l = lease(dur);
            let mut now = 0u64;
            let term = 1;
            let mut sent: Vec<(Round, u64)> = Vec::new(); // (round, epoch)
            let mut epoch = 0u64;
            let mut confirmed_ok: Vec<u64> = Vec::new(); // stamps of rounds that count
            for (op, dt) in ops {
                now += dt * 10;
                match op {
                    0 => sent.push((l.round(now, term), epoch)),
                    1 => if let Some((r, e)) = sent.pop() {
                        l.confirmed(r);
                        if e == epoch { confirmed_ok.push(r.stamp_ms); }
                    },
                    2 => { l.end(); epoch += 1; confirmed_ok.clear(); }
                    _ => {}
                }
                let backed = confirmed_ok.iter().any(|s| now < s + dur);
                prop_assert_eq!(l.valid(now, term), backed);
            }
        }
    }
}
