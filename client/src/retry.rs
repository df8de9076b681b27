//! Pure retry policy: what to do with a failed master call, and how long to wait.
//!
//! The async driver lives in [`crate::master`]; everything here is plain data so it is tested
//! without tokio or a network.

use std::time::Duration;

use anode_proto::LEADER_METADATA_KEY;
use rand::Rng;

use crate::error::{is_not_leader, metadata_str};

/// First backoff delay between master attempts.
pub const BACKOFF_BASE: Duration = Duration::from_millis(10);
/// Largest backoff delay between master attempts.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// What the master driver does after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The answering master is a follower that named the leader: retry there at once.
    Redirect(String),
    /// This master cannot serve now (down, not leader, leader unknown): back off, try the next.
    TryNext,
    /// A definite answer (an Anode error code, a bad request): return it, never retry.
    Fail,
}

/// Classify a failed master call. Pure.
///
/// - FAILED_PRECONDITION with `anode-leader: ADDR` (a follower) -> [`Disposition::Redirect`];
/// - not-leader without a hint, UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN (tonic reports
///   connection failures this way), ABORTED and RESOURCE_EXHAUSTED without a code (a busy
///   master) -> [`Disposition::TryNext`] (with backoff);
/// - anything carrying `anode-error-code`, and every other code -> [`Disposition::Fail`].
pub fn classify(status: &tonic::Status) -> Disposition {
    if is_not_leader(status) {
        return match metadata_str(status, LEADER_METADATA_KEY) {
            Some(addr) => Disposition::Redirect(addr),
            None => Disposition::TryNext,
        };
    }
    if metadata_str(status, anode_proto::ERROR_CODE_METADATA_KEY).is_some() {
        return Disposition::Fail;
    }
    match status.code() {
        tonic::Code::Unavailable
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Cancelled
        | tonic::Code::Unknown
        | tonic::Code::Aborted
        | tonic::Code::ResourceExhausted => Disposition::TryNext,
        _ => Disposition::Fail,
    }
}

/// Jittered exponential backoff: the n-th delay is drawn uniformly from
/// `[cap/2, cap]` with `cap = min(max, base * 2^n)` ("equal jitter").
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_BASE, BACKOFF_MAX)
    }
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        assert!(
            base <= max && !base.is_zero(),
            "backoff base must be in (0, max]"
        );
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The cap of the next delay, without jitter.
    pub fn next_cap(&self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay, with jitter from `rng` (inject a seeded RNG in tests).
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let cap = self.next_cap();
        self.attempt = self.attempt.saturating_add(1);
        let cap_us = cap.as_micros() as u64;
        Duration::from_micros(rng.gen_range(cap_us / 2..=cap_us))
    }

    /// Start over (after a success or a redirect to a fresh leader).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_proto::ERROR_CODE_METADATA_KEY;
    use rand::SeedableRng;

    fn meta(mut s: tonic::Status, pairs: &[(&'static str, &str)]) -> tonic::Status {
        for (k, v) in pairs {
            s.metadata_mut().insert(*k, v.parse().unwrap());
        }
        s
    }

    #[test]
    fn classify_table() {
        let cases = [
            (
                meta(
                    tonic::Status::failed_precondition("follower"),
                    &[(LEADER_METADATA_KEY, "10.0.0.2:7001")],
                ),
                Disposition::Redirect("10.0.0.2:7001".into()),
            ),
            (
                tonic::Status::failed_precondition("no leader"),
                Disposition::TryNext,
            ),
            (
                tonic::Status::unavailable("conn refused"),
                Disposition::TryNext,
            ),
            (
                tonic::Status::deadline_exceeded("slow"),
                Disposition::TryNext,
            ),
            (
                tonic::Status::unknown("transport error"),
                Disposition::TryNext,
            ),
            (
                meta(
                    tonic::Status::not_found("x"),
                    &[(ERROR_CODE_METADATA_KEY, "NoSuchKey")],
                ),
                Disposition::Fail,
            ),
            (
                meta(
                    tonic::Status::unavailable("x"),
                    &[(ERROR_CODE_METADATA_KEY, "SlowDown")],
                ),
                Disposition::Fail,
            ),
            (
                meta(
                    tonic::Status::failed_precondition("etag"),
                    &[(ERROR_CODE_METADATA_KEY, "PreconditionFailed")],
                ),
                Disposition::Fail,
            ),
            (
                meta(
                    tonic::Status::unavailable("x"),
                    &[(ERROR_CODE_METADATA_KEY, "NotLeader")],
                ),
                Disposition::TryNext,
            ),
            (
                tonic::Status::resource_exhausted("master busy"),
                Disposition::TryNext,
            ),
            (
                meta(
                    tonic::Status::resource_exhausted("need 3"),
                    &[(ERROR_CODE_METADATA_KEY, "InsufficientServers")],
                ),
                Disposition::Fail,
            ),
            (tonic::Status::invalid_argument("bad"), Disposition::Fail),
            (tonic::Status::internal("bug"), Disposition::Fail),
        ];
        for (status, want) in cases {
            assert_eq!(classify(&status), want, "{status:?}");
        }
    }

    #[test]
    fn backoff_grows_jitters_and_caps() {
        let seed = crate::test_seed();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut b = Backoff::default();
        let mut prev_cap = Duration::ZERO;
        for n in 0..20 {
            let cap = b.next_cap();
            assert!(cap >= prev_cap, "seed {seed}: cap shrank at {n}");
            assert!(cap <= BACKOFF_MAX);
            let d = b.next_delay(&mut rng);
            assert!(
                d >= cap / 2 && d <= cap,
                "seed {seed}: {d:?} outside [{cap:?}/2, {cap:?}]"
            );
            prev_cap = cap;
        }
        assert_eq!(prev_cap, BACKOFF_MAX);
        assert_eq!(Backoff::default().next_cap(), BACKOFF_BASE);
        b.reset();
        assert_eq!(b.next_cap(), BACKOFF_BASE);
    }
}
