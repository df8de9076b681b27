//! Pure retry policy: what to do with a failed master call, and how long to wait.
//!
//! The async driver lives in [`crate::master`]; everything here is plain data so it is tested
//! without tokio or a network.

use std::time::Duration;

use anode_proto::{ErrorDetail, Refusal};
use rand::Rng;

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
    /// A definite answer (an error code, a bad request): return it, never retry.
    Fail,
}

/// Classify a failed master call. Pure.
///
/// With an [`ErrorDetail`] (one exhaustive match over its code):
/// - `NotLeader` naming the leader's address -> [`Disposition::Redirect`];
/// - `NotLeader` without one, `Busy`, `Unavailable`, `Timeout` -> [`Disposition::TryNext`];
/// - every other code -> [`Disposition::Fail`].
///
/// Without one (connection failures; other gRPC software): UNAVAILABLE, DEADLINE_EXCEEDED,
/// CANCELLED, UNKNOWN (tonic reports connection failures this way), ABORTED, RESOURCE_EXHAUSTED
/// and FAILED_PRECONDITION -> [`Disposition::TryNext`]; everything else -> [`Disposition::Fail`].
pub fn classify(status: &tonic::Status) -> Disposition {
    match ErrorDetail::from_status(status) {
        Some(d) => classify_detail(d),
        None => match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Aborted
            | tonic::Code::ResourceExhausted
            | tonic::Code::FailedPrecondition => Disposition::TryNext,
            _ => Disposition::Fail,
        },
    }
}

/// [`classify`] for a status that carries an error detail ([`ErrorDetail::refusal`], the
/// decision `anode ctl` shares).
fn classify_detail(d: ErrorDetail) -> Disposition {
    match d.refusal() {
        Refusal::Redirect(leader) => Disposition::Redirect(leader),
        Refusal::TryNext => Disposition::TryNext,
        Refusal::Final => Disposition::Fail,
    }
}

/// The client side of client sessions (docs/architecture.md, "Client sessions"): a random
/// client id per client, a sequence number per logical write (kept across its retries), and
/// the writes still awaiting an answer. Pure bookkeeping; [`crate::master::MasterConn::write`]
/// drives it.
#[derive(Clone, Debug)]
pub struct WriteSessions {
    client_id: [u8; 16],
    next_seq: u64,
    unanswered: std::collections::BTreeSet<u64>,
}

impl WriteSessions {
    /// A session with client id `client_id` (random per client process).
    pub fn new(client_id: [u8; 16]) -> Self {
        WriteSessions {
            client_id,
            next_seq: 1,
            unanswered: Default::default(),
        }
    }

    /// Start a logical write: its sequence number.
    pub fn begin(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unanswered.insert(seq);
        seq
    }

    /// The write `seq` is over (answered, failed for good, or abandoned): no retry of it
    /// follows, so the master may forget its answer.
    pub fn end(&mut self, seq: u64) {
        self.unanswered.remove(&seq);
    }

    /// What an attempt of write `seq` carries. `first_unanswered` is the lowest write still
    /// awaiting an answer (never above `seq` while `seq` is open).
    pub fn session(&self, seq: u64) -> anode_proto::ClientSession {
        let first = self.unanswered.first().copied().unwrap_or(seq).min(seq);
        anode_proto::ClientSession {
            client_id: self.client_id.to_vec(),
            seq,
            first_unanswered: first,
        }
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
    use anode_proto::ErrorCode;
    use rand::SeedableRng;

    fn coded(code: ErrorCode) -> tonic::Status {
        ErrorDetail::new(code, "m").to_status()
    }

    #[test]
    fn classify_table() {
        let cases = [
            (
                ErrorDetail::new(ErrorCode::NotLeader, "follower")
                    .with_leader(2, "10.0.0.2:7001")
                    .to_status(),
                Disposition::Redirect("10.0.0.2:7001".into()),
            ),
            (coded(ErrorCode::NotLeader), Disposition::TryNext),
            (coded(ErrorCode::Busy), Disposition::TryNext),
            (coded(ErrorCode::Unavailable), Disposition::TryNext),
            (coded(ErrorCode::Timeout), Disposition::TryNext),
            (coded(ErrorCode::NoSuchKey), Disposition::Fail),
            (coded(ErrorCode::PreconditionFailed), Disposition::Fail),
            (coded(ErrorCode::InsufficientServers), Disposition::Fail),
            (coded(ErrorCode::Internal), Disposition::Fail),
            (coded(ErrorCode::Unspecified), Disposition::Fail),
            (
                tonic::Status::failed_precondition("no detail"),
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
                tonic::Status::resource_exhausted("busy"),
                Disposition::TryNext,
            ),
            (tonic::Status::invalid_argument("bad"), Disposition::Fail),
            (tonic::Status::internal("bug"), Disposition::Fail),
        ];
        for (status, want) in cases {
            assert_eq!(classify(&status), want, "{status:?}");
        }
    }

    /// A code is retried elsewhere exactly when the client calls it retryable, except
    /// `InsufficientServers`, which no other master answers differently at once.
    #[test]
    fn retry_policy_agrees_with_retryable() {
        for code in ErrorCode::ALL {
            let tries_next = classify(&coded(code)) == Disposition::TryNext;
            let retryable = crate::error::retryable(code);
            assert_eq!(
                tries_next,
                retryable && code != ErrorCode::InsufficientServers,
                "{code:?}"
            );
        }
    }

    #[test]
    fn write_sessions_number_writes_and_track_the_first_unanswered() {
        let mut w = WriteSessions::new([7; 16]);
        let (a, b, c) = (w.begin(), w.begin(), w.begin());
        assert_eq!((a, b, c), (1, 2, 3));
        let s = w.session(c);
        assert_eq!(
            (s.client_id, s.seq, s.first_unanswered),
            (vec![7; 16], 3, 1)
        );
        // A retry of write 2 keeps its number.
        assert_eq!(w.session(b).seq, 2);
        w.end(a);
        assert_eq!(w.session(c).first_unanswered, 2);
        w.end(c);
        assert_eq!(w.session(b).first_unanswered, 2);
        w.end(b);
        let d = w.begin();
        assert_eq!((d, w.session(d).first_unanswered), (4, 4));
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
