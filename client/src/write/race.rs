//! The decisions of one chunk write, as a pure state machine: which servers to write to, when
//! a lagging write is hedged to a replacement, when the write is done and when it gives up.
//!
//! [`ReplicaRace`] has no clock, no network and no async runtime. The writer
//! (`ClientInner::replicate`) performs each [`Step`] it returns (ask the master for targets,
//! start writes, wait) and feeds back what happened: a placement, an acknowledgement, an error,
//! a timer. Times are offsets from the start of the write, so tests drive it with plain
//! [`Duration`]s.
//!
//! The rules (see the module docs of `write.rs`):
//! - Ask the master for targets at the start, after every failed write, after a hedge, and
//!   whenever no write is in flight, excluding only the servers whose write failed (a slow
//!   server is busy, not gone); start writes to as many new targets as copies are still
//!   missing, not counting writes given up on as slow, skipping servers already written to.
//! - A refused allocation while writes are in flight is not a failure: the race waits for
//!   them (a cluster whose every disk is busy is slow, not short of servers).
//! - Once one copy is acknowledged, the other writes get [`hedge_delay`] to follow; the writes
//!   still silent then are marked slow (they keep running and may still win) and replacements
//!   are written.
//! - The first R acknowledgements win. The write fails when too few servers are left while no
//!   write is in flight (`InsufficientServers`, a 503 at the gateway), or at the deadline.

use std::time::Duration;

/// How long the remaining copies of a chunk may lag behind the first acknowledged one
/// (written in `first_ack`) before a replacement target is written: twice that time, at least
/// `floor` (`ClientConfig::hedge_after`), so a uniformly slow cluster is not hedged.
pub fn hedge_delay(first_ack: Duration, floor: Duration) -> Duration {
    (first_ack * 2).max(floor)
}

/// What the writer does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask the master for targets (`AllocateChunks`) excluding `exclude`, then call
    /// [`ReplicaRace::on_placement`] with its answer.
    Allocate {
        /// Servers the master should not place on.
        exclude: Vec<u64>,
        /// Servers just given up on as slow (a hedge; empty otherwise), for the log.
        lagging: Vec<u64>,
    },
    /// Start writes to these servers, in this order, then wait ([`ReplicaRace::waiting`]).
    Write(Vec<u64>),
    /// Wait until a write finishes ([`ReplicaRace::on_ack`], [`ReplicaRace::on_error`]) or
    /// until `until` (since the start of the write), then call [`ReplicaRace::on_timer`].
    Wait {
        /// The next hedge or the deadline, whichever comes first.
        until: Duration,
    },
    /// R copies are acknowledged: these servers, in the order their writes started (the
    /// placement's preference order, which readers follow, then replacements).
    Done(Vec<u64>),
    /// Give up.
    Fail(RaceFailure),
}

/// Why a chunk write gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaceFailure {
    /// Too few servers left to write to, and no write in flight that could still succeed.
    TooFewServers {
        /// Copies wanted (R, at least 1).
        need: usize,
        /// Servers acknowledged plus servers still available.
        have: usize,
    },
    /// The deadline passed first.
    Deadline {
        /// Copies acknowledged.
        acked: usize,
        /// Copies wanted (0 if the master never answered).
        r: usize,
    },
}

/// The state of one chunk write racing to R acknowledged copies; see the module docs.
#[derive(Clone, Debug)]
pub struct ReplicaRace {
    /// `ClientConfig::hedge_after`: the least time a lagging write gets.
    hedge_floor: Duration,
    /// Give up at this offset from the start.
    deadline: Duration,
    /// Copies wanted, from the master's last placement (0 before the first).
    r: usize,
    /// Servers that acknowledged, in acknowledgement order.
    acked: Vec<u64>,
    /// Servers whose write failed.
    failed: Vec<u64>,
    /// Servers whose write is in flight (slow ones included).
    pending: Vec<u64>,
    /// Every server written to, in the order its write started.
    started: Vec<u64>,
    /// Servers in flight that were hedged: they may still win, but no longer count as useful.
    slow: Vec<u64>,
    /// When the lagging writes are hedged (armed by an acknowledgement).
    hedge_at: Option<Duration>,
    /// Ask the master for targets before waiting again.
    place: bool,
}

impl ReplicaRace {
    /// A race with nothing written yet, giving up at `deadline` after the start.
    pub fn new(hedge_floor: Duration, deadline: Duration) -> Self {
        ReplicaRace {
            hedge_floor,
            deadline,
            r: 0,
            acked: Vec::new(),
            failed: Vec::new(),
            pending: Vec::new(),
            started: Vec::new(),
            slow: Vec::new(),
            hedge_at: None,
            place: true,
        }
    }

    /// The first step: ask the master for targets.
    pub fn begin(&mut self) -> Step {
        self.next(Vec::new())
    }

    /// Servers the master is asked not to place on: those whose write failed, only.
    ///
    /// Servers hedged as slow are not excluded (issue 18): under a load that makes every disk
    /// slow, excluding them left the master fewer than R candidates and it refused the whole
    /// allocation ("need 3 chunkservers, have 2"), a 503 from a cluster with every server
    /// alive. [`ReplicaRace::on_placement`] skips servers with a write in flight, so a slow
    /// server is never written twice.
    pub fn exclude(&self) -> Vec<u64> {
        self.failed.clone()
    }

    /// The master answered with replication `r` and `ranked` targets in preference order
    /// (its placement, then the other live servers). Starts writes to new targets for the
    /// copies still missing; fails when there are too few and no write is in flight.
    pub fn on_placement(&mut self, r: usize, ranked: &[u64]) -> Step {
        self.r = r;
        let mut candidates: Vec<u64> = Vec::new();
        for &id in ranked {
            let used = self.acked.contains(&id)
                || self.pending.contains(&id)
                || self.failed.contains(&id)
                || candidates.contains(&id);
            if !used {
                candidates.push(id);
            }
        }
        let useful = self
            .pending
            .iter()
            .filter(|id| !self.slow.contains(id))
            .count();
        let need = r.saturating_sub(self.acked.len() + useful);
        if r == 0 || (candidates.len() < need && self.pending.is_empty()) {
            return Step::Fail(RaceFailure::TooFewServers {
                need: r.max(1),
                have: self.acked.len() + candidates.len(),
            });
        }
        candidates.truncate(need);
        self.pending.extend(&candidates);
        self.started.extend(&candidates);
        Step::Write(candidates)
    }

    /// The master refused the allocation (too few servers once `exclude` is left out, or no
    /// answer in time) with `err`. While writes are in flight the race waits for them (they
    /// may still make R copies; a later event asks again); with none in flight it gives up
    /// with `err`.
    pub fn on_refused<E>(&mut self, err: E) -> Result<Step, E> {
        if self.pending.is_empty() {
            return Err(err);
        }
        Ok(self.waiting())
    }

    /// The wait after writes started: until the next hedge or the deadline.
    pub fn waiting(&self) -> Step {
        let until = self
            .hedge_at
            .map_or(self.deadline, |h| h.min(self.deadline));
        Step::Wait { until }
    }

    /// `id` acknowledged its copy `now` after the start. Done at R copies; the first
    /// acknowledgement (since the last hedge) arms the next hedge.
    pub fn on_ack(&mut self, id: u64, now: Duration) -> Step {
        self.pending.retain(|p| *p != id);
        self.acked.push(id);
        if self.acked.len() >= self.r {
            let mut servers = self.acked.clone();
            servers.sort_by_key(|id| self.started.iter().position(|s| s == id));
            return Step::Done(servers);
        }
        if self.hedge_at.is_none() {
            self.hedge_at = Some(now + hedge_delay(now, self.hedge_floor));
        }
        self.next(Vec::new())
    }

    /// `id`'s write failed: it is replaced.
    pub fn on_error(&mut self, id: u64) -> Step {
        self.pending.retain(|p| *p != id);
        self.failed.push(id);
        self.place = true;
        self.next(Vec::new())
    }

    /// The wait returned by [`ReplicaRace::waiting`] ended `now` after the start: give up at the
    /// deadline; at the hedge, mark the writes still in flight as slow and replace them.
    pub fn on_timer(&mut self, now: Duration) -> Step {
        if now >= self.deadline {
            return Step::Fail(RaceFailure::Deadline {
                acked: self.acked.len(),
                r: self.r,
            });
        }
        let mut lagging = Vec::new();
        if self.hedge_at.is_some_and(|h| now >= h) {
            self.hedge_at = None;
            lagging = self
                .pending
                .iter()
                .copied()
                .filter(|id| !self.slow.contains(id))
                .collect();
            if !lagging.is_empty() {
                self.slow.extend(&lagging);
                self.place = true;
            }
        }
        self.next(lagging)
    }

    /// After an event: ask for targets when a write failed or was hedged, or none is in
    /// flight; wait otherwise.
    fn next(&mut self, lagging: Vec<u64>) -> Step {
        if self.place || self.pending.is_empty() {
            self.place = false;
            return Step::Allocate {
                exclude: self.exclude(),
                lagging,
            };
        }
        self.waiting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(500);
    const DEADLINE: Duration = Duration::from_secs(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn allocate(exclude: &[u64]) -> Step {
        Step::Allocate {
            exclude: exclude.to_vec(),
            lagging: Vec::new(),
        }
    }

    /// A race that asked for targets and started writes to the first three of `ranked`.
    fn started(ranked: &[u64]) -> ReplicaRace {
        let mut race = ReplicaRace::new(FLOOR, DEADLINE);
        assert_eq!(race.begin(), allocate(&[]));
        assert_eq!(
            race.on_placement(3, ranked),
            Step::Write(ranked[..3].to_vec())
        );
        assert_eq!(race.waiting(), Step::Wait { until: DEADLINE });
        race
    }

    /// One event fed to a race.
    #[derive(Clone, Copy, Debug)]
    enum Event {
        Ack(u64, u64),
        Error(u64),
        Timer(u64),
        Placement(usize, &'static [u64]),
    }

    fn feed(race: &mut ReplicaRace, event: Event) -> Step {
        match event {
            Event::Ack(id, at) => race.on_ack(id, ms(at)),
            Event::Error(id) => race.on_error(id),
            Event::Timer(at) => race.on_timer(ms(at)),
            Event::Placement(r, ranked) => race.on_placement(r, ranked),
        }
    }

    #[test]
    fn scripted_races() {
        use Event::*;
        let wait = |until: u64| Step::Wait { until: ms(until) };
        let hedged = |exclude: &[u64], lagging: &[u64]| Step::Allocate {
            exclude: exclude.to_vec(),
            lagging: lagging.to_vec(),
        };
        let too_few = |need, have| Step::Fail(RaceFailure::TooFewServers { need, have });
        // (case, events after writes to 1, 2, 3 started, the step after each event)
        let table: Vec<(&str, Vec<(Event, Step)>)> = vec![
            (
                "all fast: done in the order the writes started",
                vec![
                    (Ack(2, 10), wait(510)),
                    (Ack(3, 12), wait(510)),
                    (Ack(1, 15), Step::Done(vec![1, 2, 3])),
                ],
            ),
            (
                "one slow: hedged after twice the first copy's time, at least the floor",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Ack(2, 20), wait(510)),
                    (Timer(510), hedged(&[], &[3])),
                    (Placement(3, &[1, 2, 3, 4, 5]), Step::Write(vec![4])),
                    (Ack(4, 600), Step::Done(vec![1, 2, 4])),
                ],
            ),
            (
                "a hedge after a slow first copy waits twice its time",
                vec![
                    (Ack(1, 2000), wait(6000)),
                    (Timer(6000), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3, 4, 5]), Step::Write(vec![4, 5])),
                ],
            ),
            (
                "a hedged write that lands late still wins",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![4])),
                    (Ack(3, 700), wait(700 + 1400)),
                    (Ack(2, 800), Step::Done(vec![1, 2, 3])),
                ],
            ),
            (
                "all slow: no hedge before a first copy, wait until the deadline, then fail",
                vec![
                    (Timer(10_000), wait(20_000)),
                    (
                        Timer(20_000),
                        Step::Fail(RaceFailure::Deadline { acked: 0, r: 3 }),
                    ),
                ],
            ),
            (
                "slow and nothing to hedge to: keep waiting for the slow writes",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3]), Step::Write(vec![])),
                    (Ack(2, 5000), wait(15_000)),
                    (Ack(3, 9000), Step::Done(vec![1, 2, 3])),
                ],
            ),
            (
                "every target slow (issue 18): the hedge excludes no one, and with no server \
                 left to hedge to the race waits for the slow writes instead of failing",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![4])),
                    // The replacement is slow too: the next acknowledgement arms a hedge
                    // with nothing left to hedge to.
                    (Ack(2, 5000), wait(15_000)),
                    (Timer(15_000), hedged(&[], &[4])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![])),
                    (Timer(19_000), wait(20_000)),
                    (Ack(3, 19_500), Step::Done(vec![1, 2, 3])),
                ],
            ),
            (
                "slow and failed: only the failed server is excluded; the slow ones still win",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![4])),
                    (Error(4), allocate(&[4])),
                    (Placement(3, &[1, 2, 3]), Step::Write(vec![])),
                    (Ack(3, 3000), wait(9000)),
                    (Ack(2, 4000), Step::Done(vec![1, 2, 3])),
                ],
            ),
            (
                "slow and failed, the failed one the last: replaced once a server is back",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3]), Step::Write(vec![])),
                    (Error(2), allocate(&[2])),
                    (Placement(3, &[1, 3, 4]), Step::Write(vec![4])),
                    (Ack(4, 900), wait(2700)),
                    (Ack(3, 1000), Step::Done(vec![1, 3, 4])),
                ],
            ),
            (
                "an error is replaced at once",
                vec![
                    (Error(2), allocate(&[2])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![4])),
                    (Ack(1, 10), wait(510)),
                    (Ack(4, 20), wait(510)),
                    (Ack(3, 30), Step::Done(vec![1, 3, 4])),
                ],
            ),
            (
                "an error with no replacement waits while writes are in flight",
                vec![
                    (Error(2), allocate(&[2])),
                    (Placement(3, &[1, 2, 3]), Step::Write(vec![])),
                    (Ack(1, 10), wait(510)),
                ],
            ),
            (
                "too few servers and nothing in flight: fail with need and have",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Error(2), allocate(&[2])),
                    (Placement(3, &[1, 2, 3]), Step::Write(vec![])),
                    (Error(3), allocate(&[2, 3])),
                    (Placement(3, &[1, 2, 3]), too_few(3, 1)),
                ],
            ),
            (
                "a slow write that then fails is replaced too",
                vec![
                    (Ack(1, 10), wait(510)),
                    (Timer(510), hedged(&[], &[2, 3])),
                    (Placement(3, &[1, 2, 3, 4]), Step::Write(vec![4])),
                    (Error(2), allocate(&[2])),
                    (Placement(3, &[1, 3, 4, 5]), Step::Write(vec![5])),
                ],
            ),
            (
                "a timer before the hedge (spurious wake-up) changes nothing",
                vec![(Ack(1, 10), wait(510)), (Timer(300), wait(510))],
            ),
            (
                "the deadline wins over a later hedge",
                vec![
                    (Ack(1, 15_000), wait(20_000)),
                    (
                        Timer(20_000),
                        Step::Fail(RaceFailure::Deadline { acked: 1, r: 3 }),
                    ),
                ],
            ),
        ];
        for (case, events) in table {
            let mut race = started(&[1, 2, 3, 4, 5]);
            for (i, (event, want)) in events.into_iter().enumerate() {
                assert_eq!(feed(&mut race, event), want, "{case}: event {i} {event:?}");
            }
        }
    }

    #[test]
    fn too_few_candidates_at_the_start_fail_with_need_and_have() {
        let mut race = ReplicaRace::new(FLOOR, DEADLINE);
        race.begin();
        assert_eq!(
            race.on_placement(3, &[1, 2]),
            Step::Fail(RaceFailure::TooFewServers { need: 3, have: 2 })
        );
        let mut race = ReplicaRace::new(FLOOR, DEADLINE);
        race.begin();
        assert_eq!(
            race.on_placement(0, &[1, 2]),
            Step::Fail(RaceFailure::TooFewServers { need: 1, have: 2 })
        );
    }

    #[test]
    fn a_refused_allocation_waits_for_writes_in_flight_and_fails_without_any() {
        // Server 2 failed, 1 and 3 are slow, and the master has no third server to offer.
        let mut race = started(&[1, 2, 3]);
        assert_eq!(race.on_ack(1, ms(10)), Step::Wait { until: ms(510) });
        assert_eq!(race.on_error(2), allocate(&[2]));
        assert_eq!(
            race.on_refused("need 3, have 2"),
            Ok(Step::Wait { until: ms(510) })
        );
        assert_eq!(
            race.on_timer(ms(510)),
            Step::Allocate {
                exclude: vec![2],
                lagging: vec![3]
            }
        );
        assert_eq!(
            race.on_refused("need 3, have 2"),
            Ok(Step::Wait { until: DEADLINE })
        );
        // The slow write fails too: nothing in flight, the master's refusal is the answer.
        assert_eq!(race.on_error(3), allocate(&[2, 3]));
        assert_eq!(race.on_refused("need 3, have 1"), Err("need 3, have 1"));
    }

    #[test]
    fn candidates_skip_used_servers_and_duplicates() {
        let mut race = started(&[1, 2, 3]);
        race.on_ack(1, ms(10));
        assert_eq!(race.on_error(2), allocate(&[2]));
        assert_eq!(
            race.on_placement(3, &[3, 1, 2, 4, 4, 5]),
            Step::Write(vec![4])
        );
    }

    #[test]
    fn no_write_in_flight_asks_for_targets_again() {
        // Server 3 failed and had no replacement; when the others are done, a fourth server
        // has joined.
        let mut race = started(&[1, 2, 3]);
        assert_eq!(race.on_error(3), allocate(&[3]));
        assert_eq!(race.on_placement(3, &[1, 2, 3]), Step::Write(vec![]));
        assert_eq!(race.on_ack(1, ms(10)), Step::Wait { until: ms(510) });
        assert_eq!(race.on_ack(2, ms(20)), allocate(&[3]));
        assert_eq!(race.on_placement(3, &[1, 2, 3, 4]), Step::Write(vec![4]));
        assert_eq!(race.on_ack(4, ms(30)), Step::Done(vec![1, 2, 4]));
    }

    #[test]
    fn hedge_waits_twice_the_first_copy_and_at_least_the_floor() {
        assert_eq!(hedge_delay(ms(5), FLOOR), FLOOR);
        assert_eq!(
            hedge_delay(Duration::from_secs(2), FLOOR),
            Duration::from_secs(4)
        );
    }
}
