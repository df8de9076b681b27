//! The event delivery worker: while this member leads, one task per notification target
//! POSTs the target's queued events (`anode_meta::state::queued_events`) in order, one event
//! per request as S3 sends them (`{"Records":[record]}`, header `x-anode-event-id`), retries
//! a failed POST with a capped exponential backoff until the endpoint answers 2xx, and
//! proposes `AckNotifications` through raft for what was delivered (every `ack_every`
//! events, and when the queue runs dry).
//!
//! The queue is in raft, so nothing here is state: a new leader starts from the oldest
//! unacknowledged event. Events delivered but not yet acknowledged when a leader fails are
//! delivered again, with the same ids (at least once; consumers deduplicate by id).

use std::collections::BTreeMap;
use std::time::Duration;

use anode_proto::{NotificationEvent, NotificationTarget, NotificationTargetStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::service::MasterService;

/// Settings of [`notify_loop`].
#[derive(Clone, Debug)]
pub struct NotifyWorkerConfig {
    /// How often the leader looks at the targets and an idle target at its queue.
    pub tick: Duration,
    /// Events read from the queue at a time.
    pub batch: usize,
    /// Most delivered events before an acknowledgement is proposed.
    pub ack_every: usize,
    /// Time limit of one POST.
    pub timeout: Duration,
    /// First retry delay after a failed POST; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// `awsRegion` of the event records.
    pub region: String,
}

impl Default for NotifyWorkerConfig {
    fn default() -> Self {
        NotifyWorkerConfig {
            tick: Duration::from_millis(200),
            batch: 100,
            ack_every: 100,
            timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            region: "us-east-1".into(),
        }
    }
}

/// Capped exponential backoff (pure: the caller sleeps).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starting at `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }
    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    /// After a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Which delivery tasks to stop and start so that exactly the `targets` run, each with its
/// current record (a changed URL or authorization restarts the target's task). `running`
/// maps each running task's target name to the record it was started with.
pub fn plan_tasks(
    running: &BTreeMap<String, NotificationTarget>,
    targets: &[NotificationTarget],
) -> (Vec<String>, Vec<NotificationTarget>) {
    let want: BTreeMap<&str, &NotificationTarget> =
        targets.iter().map(|t| (t.name.as_str(), t)).collect();
    let stop = running
        .iter()
        .filter(|(name, t)| {
            want.get(name.as_str())
                .is_none_or(|w| w.url != t.url || w.authorization != t.authorization)
        })
        .map(|(name, _)| name.clone())
        .collect::<Vec<_>>();
    let start = targets
        .iter()
        .filter(|t| !running.contains_key(&t.name) || stop.contains(&t.name))
        .cloned()
        .collect();
    (stop, start)
}

/// Why one POST failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No connection, a timeout, or a broken answer.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The endpoint answered, not with a 2xx.
    #[error("the endpoint answered {0}")]
    Status(u16),
}

/// POST one event to `target`.
pub async fn post_event(
    http: &reqwest::Client,
    target: &NotificationTarget,
    event: &NotificationEvent,
    region: &str,
) -> Result<(), DeliveryError> {
    let body = anode_meta::notify::records_body(std::slice::from_ref(event), region);
    let mut req = http
        .post(&target.url)
        .header("content-type", "application/json")
        .header("x-anode-event-id", &event.id)
        .body(body);
    if !target.authorization.is_empty() {
        req = req.header("authorization", &target.authorization);
    }
    let status = req.send().await?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}

struct Task {
    target: NotificationTarget,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Run the delivery worker on this member while it leads, until `shutdown`.
pub async fn notify_loop(
    service: MasterService,
    cfg: NotifyWorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    // Webhook URLs may be https: rustls with ring, the provider every Anode TLS stack uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = match reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "event delivery disabled: no HTTP client");
            return;
        }
    };
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        tasks.retain(|_, t| !t.handle.is_finished());
        if !service.is_leader() {
            stop_all(&mut tasks);
            crate::metrics::NOTIFY_QUEUED.reset();
            crate::metrics::NOTIFY_DROPPED.reset();
            continue;
        }
        let statuses = service.notification_targets();
        publish(&statuses);
        let targets: Vec<NotificationTarget> =
            statuses.into_iter().filter_map(|s| s.target).collect();
        let running = tasks
            .iter()
            .map(|(n, t)| (n.clone(), t.target.clone()))
            .collect();
        let (stop, start) = plan_tasks(&running, &targets);
        for name in stop {
            if let Some(t) = tasks.remove(&name) {
                let _ = t.stop.send(true);
            }
        }
        for target in start {
            let (stop, rx) = watch::channel(false);
            let handle = tokio::spawn(deliver(
                service.clone(),
                http.clone(),
                target.clone(),
                cfg.clone(),
                rx,
            ));
            tasks.insert(
                target.name.clone(),
                Task {
                    target,
                    stop,
                    handle,
                },
            );
        }
    }
    stop_all(&mut tasks);
}

fn stop_all(tasks: &mut BTreeMap<String, Task>) {
    for (_, t) in std::mem::take(tasks) {
        let _ = t.stop.send(true);
    }
}

fn publish(statuses: &[NotificationTargetStatus]) {
    for s in statuses {
        let name = s.target.as_ref().map_or("", |t| t.name.as_str());
        crate::metrics::NOTIFY_QUEUED
            .with_label_values(&[name])
            .set(s.queued as i64);
        crate::metrics::NOTIFY_DROPPED
            .with_label_values(&[name])
            .set(s.dropped as i64);
    }
}

/// Wait `d`, or less when told to stop (then true).
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Deliver one target's queue in order while this member leads and the task is not stopped.
async fn deliver(
    service: MasterService,
    http: reqwest::Client,
    target: NotificationTarget,
    cfg: NotifyWorkerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let name = target.name.clone();
    tracing::info!(target = %name, url = %target.url, "event delivery started");
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    // The last event delivered, and the last one acknowledged through raft.
    let mut delivered: Option<String> = None;
    let mut acked: Option<String> = None;
    let mut since_ack = 0usize;
    loop {
        if *stop.borrow() || !service.is_leader() {
            break;
        }
        let batch = service.queued_events(&name, delivered.as_deref(), cfg.batch);
        if batch.is_empty() {
            if delivered != acked {
                acked = ack(&service, &name, &delivered, acked).await;
                since_ack = 0;
            }
            if pause(cfg.tick, &mut stop).await {
                break;
            }
            continue;
        }
        for event in batch {
            loop {
                match post_event(&http, &target, &event, &cfg.region).await {
                    Ok(()) => break,
                    Err(e) => {
                        crate::metrics::NOTIFY_FAILURES
                            .with_label_values(&[&name])
                            .inc();
                        let wait = backoff.next_delay();
                        tracing::debug!(target = %name, id = %event.id, error = %e, retry_in = ?wait, "event delivery failed");
                        if pause(wait, &mut stop).await || !service.is_leader() {
                            // Acknowledge what was delivered before going.
                            ack(&service, &name, &delivered, acked).await;
                            return;
                        }
                    }
                }
            }
            backoff.reset();
            crate::metrics::NOTIFY_DELIVERED
                .with_label_values(&[&name])
                .inc();
            delivered = Some(event.id.clone());
            since_ack += 1;
            if since_ack >= cfg.ack_every {
                acked = ack(&service, &name, &delivered, acked).await;
                since_ack = 0;
            }
        }
    }
    ack(&service, &name, &delivered, acked).await;
    tracing::info!(target = %name, "event delivery stopped");
}

/// Propose the acknowledgement of everything up to `delivered` (when it moved past
/// `acked`); the new acknowledged id, or the old one when the proposal failed (the events
/// then stay queued and a leader delivers them again).
async fn ack(
    service: &MasterService,
    target: &str,
    delivered: &Option<String>,
    acked: Option<String>,
) -> Option<String> {
    let Some(id) = delivered.as_ref().filter(|d| Some(*d) != acked.as_ref()) else {
        return acked;
    };
    match service.propose_ack(target, id).await {
        Ok(()) => Some(id.clone()),
        Err(e) => {
            tracing::debug!(target, id, error = %e, "event acknowledgement not applied");
            acked
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn tasks_follow_the_targets() {
        let t = |name: &str, url: &str| NotificationTarget {
            name: name.into(),
            url: url.into(),
            ..Default::default()
        };
        let running: BTreeMap<String, NotificationTarget> = [
            ("a".to_string(), t("a", "http://x/1")),
            ("b".to_string(), t("b", "http://x/2")),
        ]
        .into();
        // b's URL changed, c is new, a is gone.
        let (stop, start) = plan_tasks(&running, &[t("b", "http://x/3"), t("c", "http://x/4")]);
        assert_eq!(stop, ["a", "b"]);
        let names: Vec<&str> = start.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        // Nothing changed: nothing to do.
        let same: Vec<NotificationTarget> = running.values().cloned().collect();
        assert_eq!(plan_tasks(&running, &same), (vec![], vec![]));
    }
}
