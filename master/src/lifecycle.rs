//! The lifecycle worker: while this member leads, it walks every bucket with lifecycle rules
//! and proposes the batches `anode_meta::state::lifecycle_plan` finds, through raft
//! (`Op::LifecycleBatch`), at most `batches_per_sec` of them a second.
//!
//! The worker keeps no state of its own: the cursor of each bucket's pass is in raft
//! (`y/<bucket>`), and every batch is planned again from the applied state. So a new leader
//! resumes where the old one's last applied batch left off, and a late batch of a deposed
//! leader is a no-op (its `from` progress is stale).
//!
//! Order within a tick: the buckets take turns, one batch each, until every one of them has
//! finished its pass (or has nothing due: its last pass ended less than the pass interval
//! ago). A batch with no actions is still proposed, since it moves the cursor.

use std::time::{Duration, Instant};

use anode_proto::{CommandResult, LifecycleBatchCmd, LifecycleProgress};
use tokio::sync::watch;

use crate::service::MasterService;

/// A real lifecycle day in seconds (the default of `--lifecycle-day-secs`).
pub const DAY_SECS: u64 = 86_400;

/// What one planned batch may cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// Length of a lifecycle "day", ms.
    pub day_ms: u64,
    /// A bucket's next pass starts this long after its last one finished, ms.
    pub pass_interval_ms: u64,
    /// Keys (then uploads) one batch examines.
    pub max_keys: usize,
    /// Actions one batch carries.
    pub max_actions: usize,
}

/// Settings of [`lifecycle_loop`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifecycleWorkerConfig {
    /// How often the leader looks for due buckets.
    pub tick: Duration,
    /// Limits of each batch.
    pub limits: PlanLimits,
    /// Most batches proposed per second over every bucket.
    pub batches_per_sec: u32,
}

impl LifecycleWorkerConfig {
    /// From the flags: a day of `day_secs` (at least 1), a pass every `interval_secs` (at most
    /// one day, so a shortened debug day also shortens the passes; at least 1 s), and at most
    /// `batches_per_sec` batches a second (at least 1).
    pub fn from_flags(day_secs: u64, interval_secs: u64, batches_per_sec: u32) -> Self {
        let day_secs = day_secs.max(1);
        LifecycleWorkerConfig {
            tick: Duration::from_secs(1),
            limits: PlanLimits {
                day_ms: day_secs * 1000,
                pass_interval_ms: interval_secs.clamp(1, day_secs) * 1000,
                max_keys: 1000,
                max_actions: 100,
            },
            batches_per_sec: batches_per_sec.max(1),
        }
    }
}

/// Spaces events at most `per_sec` a second (pure: the caller passes the clock).
#[derive(Debug)]
pub struct Pacer {
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `per_sec` events a second (at least 1).
    pub fn new(per_sec: u32) -> Self {
        Pacer {
            gap: Duration::from_secs(1) / per_sec.max(1),
            next: None,
        }
    }

    /// How long to wait at `now` before the next event, which is then counted as taken
    /// at `now` plus that wait.
    pub fn wait(&mut self, now: Instant) -> Duration {
        let at = self.next.map_or(now, |n| n.max(now));
        self.next = Some(at + self.gap);
        at - now
    }
}

/// What the stored counters gained between two progress records, by action label.
pub fn counter_gains(
    before: &LifecycleProgress,
    after: &LifecycleProgress,
) -> [(&'static str, u64); 4] {
    [
        ("expired", after.expired.saturating_sub(before.expired)),
        (
            "noncurrent_deleted",
            after
                .noncurrent_deleted
                .saturating_sub(before.noncurrent_deleted),
        ),
        (
            "markers_removed",
            after.markers_removed.saturating_sub(before.markers_removed),
        ),
        (
            "uploads_aborted",
            after.uploads_aborted.saturating_sub(before.uploads_aborted),
        ),
    ]
}

/// Run the lifecycle worker on this member while it leads, until `shutdown`.
pub async fn lifecycle_loop(
    service: MasterService,
    cfg: LifecycleWorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    if cfg.limits.day_ms != DAY_SECS * 1000 {
        tracing::warn!(
            day_ms = cfg.limits.day_ms,
            pass_interval_ms = cfg.limits.pass_interval_ms,
            "LIFECYCLE DEBUG SETTING: a lifecycle day is not 24 hours (--lifecycle-day-secs); \
             objects expire that much sooner. For tests only"
        );
    }
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pacer = Pacer::new(cfg.batches_per_sec);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if !service.is_leader() {
            crate::metrics::clear_lifecycle_leader_only();
            continue;
        }
        let buckets = service.lifecycle_buckets();
        crate::metrics::publish_lifecycle_passes(&buckets);
        let names = buckets.into_iter().map(|(b, _)| b).collect();
        if let Err(e) = run_round(&service, &cfg, &mut pacer, names, &mut shutdown).await {
            tracing::debug!(error = %e, "lifecycle round stopped");
        }
    }
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("shutting down")]
    Shutdown,
    #[error("{0}")]
    Raft(#[from] tonic::Status),
}

/// One round: the buckets take turns, one batch each, until none has a batch due or its
/// pass finished in this round.
async fn run_round(
    service: &MasterService,
    cfg: &LifecycleWorkerConfig,
    pacer: &mut Pacer,
    mut buckets: Vec<String>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RoundError> {
    while !buckets.is_empty() {
        let mut still = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let now_ms = anode_common::now_ms();
            let Some(batch) = service
                .plan_lifecycle(bucket.clone(), now_ms, cfg.limits)
                .await?
            else {
                continue;
            };
            let wait = pacer.wait(Instant::now());
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return Err(RoundError::Shutdown),
                }
            }
            let done = batch.progress.as_ref().is_some_and(|p| p.pass_done);
            propose(service, batch).await?;
            if !done {
                still.push(bucket);
            }
        }
        buckets = still;
    }
    Ok(())
}

/// Propose one batch and count what it did (from the stored counters before and after).
async fn propose(service: &MasterService, batch: LifecycleBatchCmd) -> Result<(), RoundError> {
    let bucket = batch.bucket.clone();
    let actions = batch.actions.len();
    let before = batch.from.clone().unwrap_or_default();
    let res: CommandResult = service.propose_lifecycle(batch).await?;
    crate::metrics::LIFECYCLE_BATCHES.inc();
    let after = service
        .lifecycle_buckets()
        .into_iter()
        .find(|(b, _)| *b == bucket)
        .map(|(_, p)| p)
        .unwrap_or_default();
    for (action, n) in counter_gains(&before, &after) {
        crate::metrics::LIFECYCLE_ACTIONS
            .with_label_values(&[action])
            .inc_by(n);
    }
    let passes = after.passes.saturating_sub(before.passes);
    crate::metrics::LIFECYCLE_PASSES.inc_by(passes);
    if actions > 0 {
        tracing::info!(
            bucket,
            proposed = actions,
            deleted = res.deletions.len(),
            pass_done = after.pass_done,
            after_key = after.after_key,
            "lifecycle batch applied"
        );
    } else if passes > 0 {
        tracing::debug!(bucket, "lifecycle pass done with nothing to do");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_events_and_does_not_bank_idle_time() {
        let mut p = Pacer::new(10);
        let t0 = Instant::now();
        assert_eq!(p.wait(t0), Duration::ZERO);
        assert_eq!(p.wait(t0), Duration::from_millis(100));
        assert_eq!(
            p.wait(t0 + Duration::from_millis(50)),
            Duration::from_millis(150)
        );
        // After a long idle time the next event goes at once, and only one does.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.wait(later), Duration::ZERO);
        assert_eq!(p.wait(later), Duration::from_millis(100));
    }

    #[test]
    fn a_short_day_shortens_the_pass_interval() {
        let c = LifecycleWorkerConfig::from_flags(DAY_SECS, 3600, 10);
        assert_eq!(c.limits.day_ms, 86_400_000);
        assert_eq!(c.limits.pass_interval_ms, 3_600_000);
        let c = LifecycleWorkerConfig::from_flags(1, 3600, 0);
        assert_eq!(c.limits.day_ms, 1000);
        assert_eq!(c.limits.pass_interval_ms, 1000);
        assert_eq!(c.batches_per_sec, 1);
        let c = LifecycleWorkerConfig::from_flags(0, 0, 5);
        assert_eq!((c.limits.day_ms, c.limits.pass_interval_ms), (1000, 1000));
    }

    #[test]
    fn counter_gains_are_per_action_and_never_negative() {
        let before = LifecycleProgress {
            expired: 3,
            noncurrent_deleted: 1,
            ..Default::default()
        };
        let after = LifecycleProgress {
            expired: 5,
            noncurrent_deleted: 1,
            markers_removed: 2,
            ..Default::default()
        };
        assert_eq!(
            counter_gains(&before, &after),
            [
                ("expired", 2),
                ("noncurrent_deleted", 0),
                ("markers_removed", 2),
                ("uploads_aborted", 0)
            ]
        );
        assert_eq!(counter_gains(&after, &before)[0], ("expired", 0));
    }
}
