//! Prometheus metrics of the master (default registry, `anode_master_*`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// Reports of bad chunk copies from readers and scrubbers.
pub static BAD_CHUNK_REPORTS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_bad_chunk_reports_total",
        "bad chunk copies reported"
    )
    .expect("register metric")
});

/// Raft messages from peers refused before raft-rs saw them, by reason
/// (`raft_check::RaftMessageError::reason`).
pub static RAFT_MESSAGES_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_raft_messages_refused_total",
        "raft messages from peers refused by validation, by reason",
        &["reason"]
    )
    .expect("register metric")
});

/// [`RAFT_MESSAGES_REFUSED`] summed over every reason (what the simulations assert stays 0).
pub fn raft_messages_refused() -> u64 {
    let vec = &*RAFT_MESSAGES_REFUSED;
    prometheus::core::Collector::collect(vec)
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Linearizable reads by how they were confirmed: `lease` (answered by the leader's read
/// lease, no message) or `read_index` (waited for a ReadIndex round).
pub static READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_reads_total",
        "linearizable read barriers, by path (lease, read_index)",
        &["path"]
    )
    .expect("register metric")
});

/// ReadIndex rounds issued (each covers every read queued when it left, and renews the lease).
pub static READ_ROUNDS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_read_rounds_total",
        "ReadIndex rounds issued (one per batch of reads or lease renewal)"
    )
    .expect("register metric")
});

/// Current raft term.
pub static RAFT_TERM: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!("anode_master_raft_term", "current raft term")
        .expect("register metric")
});

/// Applied raft index.
pub static RAFT_APPLIED: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!("anode_master_raft_applied_index", "applied raft index")
        .expect("register metric")
});

/// Commit index.
pub static RAFT_COMMIT: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!("anode_master_raft_commit_index", "raft commit index")
        .expect("register metric")
});

/// 1 when this member leads.
pub static IS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "anode_master_is_leader",
        "1 when this member is the raft leader"
    )
    .expect("register metric")
});

macro_rules! gauge {
    ($(#[$doc:meta])* $name:ident, $metric:literal, $help:literal) => {
        $(#[$doc])*
        pub static $name: LazyLock<IntGauge> = LazyLock::new(|| {
            prometheus::register_int_gauge!($metric, $help).expect("register metric")
        });
    };
}

gauge!(
    /// Referenced chunks below R live copies (leader, last sweep).
    UNDER_REPLICATED,
    "anode_master_under_replicated_chunks",
    "referenced chunks with fewer than R live copies"
);
gauge!(
    /// Sum of missing copies.
    MISSING_COPIES,
    "anode_master_missing_copies",
    "copies missing to reach R for every chunk"
);
gauge!(
    /// Referenced chunks with no live copy.
    LOST_CHUNKS,
    "anode_master_lost_chunks",
    "referenced chunks with no live copy"
);
gauge!(
    /// Replication/deletion tasks in flight.
    TASKS_IN_FLIGHT,
    "anode_master_repair_tasks_in_flight",
    "replication and deletion commands issued and not yet reported done"
);
gauge!(
    /// Recent repair copy rate.
    REPAIR_BYTES_PER_SEC,
    "anode_master_repair_bytes_per_second",
    "bytes copied by finished replications per second (10 s window)"
);
gauge!(
    /// Unreferenced chunks with copies left.
    GARBAGE_CHUNKS,
    "anode_master_garbage_chunks",
    "unreferenced chunks waiting for deletion"
);

/// Usage per bucket and per user (`kind` = `bytes` or `objects`), published by the leader after
/// each healing sweep (one series per bucket and per user: the label sets are as many as the
/// buckets and users). Buckets from before usage counters appear after their first write.
pub static BUCKET_USAGE: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_bucket_usage",
        "live objects and bytes of a bucket (leader only)",
        &["bucket", "kind"]
    )
    .expect("register metric")
});

/// See [`BUCKET_USAGE`].
pub static USER_USAGE: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_user_usage",
        "live objects and bytes over the buckets a user owns (leader only)",
        &["user", "kind"]
    )
    .expect("register metric")
});

// ---- What operators alert on (deploy/prometheus/alerts.yml, deploy/grafana/anode.json) ----

/// Elections this member started (it became a candidate: its election timeout fired, or a
/// leader transfer asked it to campaign).
pub static RAFT_ELECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_raft_elections_total",
        "elections this member started (became candidate)"
    )
    .expect("register metric")
});

/// Changes of the leader this member saw (to another known leader or to none).
pub static RAFT_LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_raft_leader_changes_total",
        "changes of the leader this member observed"
    )
    .expect("register metric")
});

gauge!(
    /// 1 while this member knows a leader (itself or another).
    RAFT_HAS_LEADER,
    "anode_master_raft_has_leader",
    "1 when this member knows a raft leader"
);
gauge!(
    /// Committed entries not yet applied on this member.
    RAFT_APPLY_LAG,
    "anode_master_raft_apply_lag_entries",
    "committed raft entries this member has not applied yet (commit - applied)"
);

/// Entries each member is behind the leader's log (leader only): last index - matched.
pub static RAFT_MEMBER_LAG: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_raft_member_lag_entries",
        "raft entries a member lacks of the leader's log (leader only)",
        &["member"]
    )
    .expect("register metric")
});

/// 1 when the leader heard from a member within two election timeouts (leader only).
pub static RAFT_MEMBER_ACTIVE: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_raft_member_active",
        "1 when the leader heard from the member recently (leader only)",
        &["member"]
    )
    .expect("register metric")
});

/// Time from a proposal to its commit and apply on the leader (answer to the caller).
pub static RAFT_PROPOSAL_SECONDS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    prometheus::register_histogram!(
        "anode_master_raft_proposal_duration_seconds",
        "time from a raft proposal to its applied result",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    )
    .expect("register metric")
});

/// Size of the last raft snapshot streamed, by direction (`sent` by a leader, `received` by
/// a member catching up): bytes of keys and values.
pub static SNAPSHOT_BYTES: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_raft_snapshot_bytes",
        "bytes of keys and values in the last raft snapshot streamed, by direction",
        &["direction"]
    )
    .expect("register metric")
});

/// Time to stream a raft snapshot, by direction (`sent`: reading and sending every record;
/// `received`: from the first piece staged to the checked end).
pub static SNAPSHOT_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    prometheus::register_histogram_vec!(
        "anode_master_raft_snapshot_duration_seconds",
        "time to stream a raft snapshot, by direction",
        &["direction"],
        vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]
    )
    .expect("register metric")
});

/// Registered chunkservers by lease state (leader only; every state present, 0 when none).
pub static CHUNKSERVERS: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_chunkservers",
        "registered chunkservers by state (leader only)",
        &["state"]
    )
    .expect("register metric")
});

/// 1 for the state each chunkserver is in (leader only).
pub static CHUNKSERVER_STATE: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_chunkserver_state",
        "1 for the lease state of each chunkserver (leader only)",
        &["chunkserver", "rack", "state"]
    )
    .expect("register metric")
});

/// Per chunkserver, from its heartbeats: `used_bytes`, `capacity_bytes`, `failed_disks`,
/// `full_disks` (leader only).
pub static CHUNKSERVER_DISK: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_chunkserver_disk",
        "chunkserver disk figures from heartbeats (used_bytes, capacity_bytes, failed_disks, full_disks; leader only)",
        &["chunkserver", "kind"]
    )
    .expect("register metric")
});

/// used / capacity of each chunkserver, 0 to 1 (leader only; 0 when the capacity is unknown).
pub static CHUNKSERVER_FULLNESS: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    prometheus::register_gauge_vec!(
        "anode_master_chunkserver_fullness_ratio",
        "used over capacity bytes of each chunkserver, 0 to 1 (leader only)",
        &["chunkserver"]
    )
    .expect("register metric")
});

/// Most buckets (and users) with their own `anode_bucket_usage` (`anode_user_usage`) series;
/// the rest are summed under the label value [`OTHER_LABEL`] (`--metrics-max-buckets`).
static USAGE_SERIES_CAP: AtomicUsize = AtomicUsize::new(DEFAULT_USAGE_SERIES_CAP);

/// Default of `--metrics-max-buckets`.
pub const DEFAULT_USAGE_SERIES_CAP: usize = 100;

/// Label of the sum of the buckets or users past the cap. Parentheses are valid in neither a
/// bucket name nor a user name, so it never names a real one.
pub const OTHER_LABEL: &str = "(other)";

/// Set the cap of [`USAGE_SERIES_CAP`] (at start).
pub fn set_usage_series_cap(n: usize) {
    USAGE_SERIES_CAP.store(n, Ordering::Relaxed);
}

/// The cap in force.
pub fn usage_series_cap() -> usize {
    USAGE_SERIES_CAP.load(Ordering::Relaxed)
}

/// Objects and bytes of one bucket or user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageFigures {
    /// Live objects.
    pub objects: u64,
    /// Live bytes.
    pub bytes: u64,
}

/// The `cap` largest entries by bytes (then objects, then name, for a stable choice) and the
/// sum of the rest (`None` when nothing was left out).
pub fn top_usage(
    mut all: Vec<(String, UsageFigures)>,
    cap: usize,
) -> (Vec<(String, UsageFigures)>, Option<UsageFigures>) {
    all.sort_by(|a, b| {
        b.1.bytes
            .cmp(&a.1.bytes)
            .then(b.1.objects.cmp(&a.1.objects))
            .then(a.0.cmp(&b.0))
    });
    if all.len() <= cap {
        return (all, None);
    }
    let rest = all.split_off(cap);
    let other = rest
        .iter()
        .fold(UsageFigures::default(), |s, (_, u)| UsageFigures {
            objects: s.objects + u.objects,
            bytes: s.bytes + u.bytes,
        });
    (all, Some(other))
}

/// Publish usage series on `vec` (reset first): the top [`usage_series_cap`] and the rest
/// under [`OTHER_LABEL`].
pub fn publish_usage(vec: &prometheus::IntGaugeVec, all: Vec<(String, UsageFigures)>) {
    let (top, other) = top_usage(all, usage_series_cap());
    vec.reset();
    let other = other.map(|u| (OTHER_LABEL.to_string(), u));
    for (name, u) in top.into_iter().chain(other) {
        vec.with_label_values(&[name.as_str(), "bytes"])
            .set(u.bytes as i64);
        vec.with_label_values(&[name.as_str(), "objects"])
            .set(u.objects as i64);
    }
}

/// What the leader last heard from one chunkserver about its disks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskReport {
    /// Disks that failed (IO errors; the server stopped using them).
    pub failed: u64,
    /// Disks marked full.
    pub full: u64,
}

/// The disk counts of the last heartbeat of each chunkserver (leader-local soft state,
/// cleared when this member stops leading).
static DISK_REPORTS: LazyLock<parking_lot::Mutex<BTreeMap<u64, DiskReport>>> =
    LazyLock::new(Default::default);

/// Count failed and full disks of a heartbeat.
pub fn disk_report(disks: &[anode_proto::DiskHealth]) -> DiskReport {
    DiskReport {
        failed: disks.iter().filter(|d| d.failed).count() as u64,
        full: disks.iter().filter(|d| d.full && !d.failed).count() as u64,
    }
}

/// Remember the disks of a heartbeat of chunkserver `id` (leader).
pub fn observe_heartbeat_disks(id: u64, disks: &[anode_proto::DiskHealth]) {
    DISK_REPORTS.lock().insert(id, disk_report(disks));
}

/// One chunkserver as the leader's metrics show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkserverFigures {
    /// Chunkserver id.
    pub id: u64,
    /// Rack label.
    pub rack: String,
    /// Lease state name (`alive`, `suspect`, `dead`, `draining`).
    pub state: &'static str,
    /// Bytes stored.
    pub used_bytes: u64,
    /// Capacity in bytes (0 = unknown).
    pub capacity_bytes: u64,
}

/// used / capacity, 0 when the capacity is unknown; at most 1.
pub fn fullness(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (used as f64 / capacity as f64).min(1.0)
    }
}

/// The lease states `anode_master_chunkservers` always shows.
pub const CHUNKSERVER_STATES: [&str; 4] = ["alive", "suspect", "dead", "draining"];

/// Servers per state, every state of [`CHUNKSERVER_STATES`] present.
pub fn count_states(servers: &[ChunkserverFigures]) -> BTreeMap<&'static str, i64> {
    let mut n: BTreeMap<&'static str, i64> = CHUNKSERVER_STATES.iter().map(|s| (*s, 0)).collect();
    for s in servers {
        *n.entry(s.state).or_default() += 1;
    }
    n
}

/// Publish the leader's view of every chunkserver (the series are rebuilt, so a removed server
/// disappears).
pub fn publish_chunkservers(servers: &[ChunkserverFigures]) {
    for (state, n) in count_states(servers) {
        CHUNKSERVERS.with_label_values(&[state]).set(n);
    }
    CHUNKSERVER_STATE.reset();
    CHUNKSERVER_DISK.reset();
    CHUNKSERVER_FULLNESS.reset();
    let reports = DISK_REPORTS.lock().clone();
    for s in servers {
        let id = s.id.to_string();
        CHUNKSERVER_STATE
            .with_label_values(&[id.as_str(), s.rack.as_str(), s.state])
            .set(1);
        let d = reports.get(&s.id).copied().unwrap_or_default();
        for (kind, v) in [
            ("used_bytes", s.used_bytes),
            ("capacity_bytes", s.capacity_bytes),
            ("failed_disks", d.failed),
            ("full_disks", d.full),
        ] {
            CHUNKSERVER_DISK
                .with_label_values(&[id.as_str(), kind])
                .set(v as i64);
        }
        CHUNKSERVER_FULLNESS
            .with_label_values(&[id.as_str()])
            .set(fullness(s.used_bytes, s.capacity_bytes));
    }
}

/// Raft figures of one member's status, as the gauges show them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftFigures {
    /// commit - applied.
    pub apply_lag: u64,
    /// Leader only: entries each member lacks (last index - matched).
    pub member_lag: BTreeMap<u64, u64>,
    /// Leader only: whether each member was heard from recently.
    pub member_active: BTreeMap<u64, bool>,
}

/// The figures of a status (`matched` and `recent_active` are filled on the leader only).
pub fn raft_figures(st: &anode_meta::membership::NodeStatus) -> RaftFigures {
    RaftFigures {
        apply_lag: st.commit.saturating_sub(st.applied),
        member_lag: st
            .matched
            .iter()
            .map(|(id, m)| (*id, st.last_index.saturating_sub(*m)))
            .collect(),
        member_active: st.recent_active.clone(),
    }
}

/// Publish the raft gauges of this member's status (once a second).
pub fn publish_raft(st: &anode_meta::membership::NodeStatus) {
    let f = raft_figures(st);
    RAFT_TERM.set(st.term as i64);
    RAFT_APPLIED.set(st.applied as i64);
    RAFT_COMMIT.set(st.commit as i64);
    IS_LEADER.set(i64::from(st.role == anode_meta::membership::Role::Leader));
    RAFT_HAS_LEADER.set(i64::from(st.leader_id != 0));
    RAFT_APPLY_LAG.set(f.apply_lag as i64);
    RAFT_MEMBER_LAG.reset();
    RAFT_MEMBER_ACTIVE.reset();
    for (id, lag) in &f.member_lag {
        RAFT_MEMBER_LAG
            .with_label_values(&[id.to_string().as_str()])
            .set(*lag as i64);
    }
    for (id, active) in &f.member_active {
        RAFT_MEMBER_ACTIVE
            .with_label_values(&[id.to_string().as_str()])
            .set(i64::from(*active));
    }
}

/// Clear what only a leader publishes (this member no longer leads: a former leader must not
/// keep showing its last figures next to the new leader's).
pub fn clear_leader_only() {
    for g in [
        &*UNDER_REPLICATED,
        &*MISSING_COPIES,
        &*LOST_CHUNKS,
        &*TASKS_IN_FLIGHT,
        &*REPAIR_BYTES_PER_SEC,
        &*GARBAGE_CHUNKS,
    ] {
        g.set(0);
    }
    BUCKET_USAGE.reset();
    USER_USAGE.reset();
    CHUNKSERVERS.reset();
    CHUNKSERVER_STATE.reset();
    CHUNKSERVER_DISK.reset();
    CHUNKSERVER_FULLNESS.reset();
    DISK_REPORTS.lock().clear();
}

/// Metadata exports to chunkservers by outcome (`ok`: at least one copy stored, `failed`),
/// counted on the leader that took them.
pub static METADATA_EXPORTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_metadata_exports_total",
        "metadata exports to chunkservers, by result (ok, failed)",
        &["result"]
    )
    .expect("register metric")
});

/// Time of one metadata export (snapshot, staging and the copies to chunkservers).
pub static METADATA_EXPORT_SECONDS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    prometheus::register_histogram!(
        "anode_master_metadata_export_duration_seconds",
        "time of one metadata export, from the pinned snapshot to the last chunkserver copy",
        vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
    )
    .expect("register metric")
});

/// Payload bytes of metadata exports stored on chunkservers (each copy counted).
pub static METADATA_EXPORT_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_metadata_export_bytes_total",
        "payload bytes of metadata exports stored on chunkservers (every copy)"
    )
    .expect("register metric")
});

gauge!(
    /// The export interval in seconds (0: exports are off); the alert on stale exports
    /// compares the last success's age with it.
    METADATA_EXPORT_INTERVAL,
    "anode_master_metadata_export_interval_seconds",
    "configured interval between metadata exports (0 = off)"
);
gauge!(
    /// Raft index of the last export this member stored as leader.
    METADATA_EXPORT_LAST_INDEX,
    "anode_master_metadata_export_last_success_index",
    "raft index of the last metadata export stored on a chunkserver by this member"
);
gauge!(
    /// When that export finished (Unix seconds; 0 = none yet by this member).
    METADATA_EXPORT_LAST_TIME,
    "anode_master_metadata_export_last_success_timestamp_seconds",
    "Unix time of the last metadata export stored by this member (0 = none yet)"
);
gauge!(
    /// Copies the last export stored.
    METADATA_EXPORT_LAST_COPIES,
    "anode_master_metadata_export_last_copies",
    "chunkservers that stored the last metadata export"
);

/// Versions and uploads the lifecycle worker removed, by action (`expired`,
/// `noncurrent_deleted`, `markers_removed`, `uploads_aborted`), counted on the leader that
/// proposed the batches (from the bucket's stored counters before and after each batch).
pub static LIFECYCLE_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_lifecycle_actions_total",
        "lifecycle actions applied, by action (expired, noncurrent_deleted, markers_removed, uploads_aborted)",
        &["action"]
    )
    .expect("register metric")
});

/// Lifecycle batches this member proposed and saw applied as leader.
pub static LIFECYCLE_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_lifecycle_batches_total",
        "lifecycle batches proposed and applied by this member as leader"
    )
    .expect("register metric")
});

/// Lifecycle passes over a bucket that this member's batches finished.
pub static LIFECYCLE_PASSES: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_lifecycle_passes_total",
        "lifecycle passes over a bucket finished by this member's batches"
    )
    .expect("register metric")
});

/// When each bucket's last lifecycle pass finished (Unix seconds, 0 = none yet; leader only):
/// the first `--metrics-max-buckets` buckets with rules by name have their own series, the
/// rest share [`OTHER_LABEL`] with the oldest of their times (what a staleness alert wants).
pub static LIFECYCLE_LAST_PASS: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_lifecycle_last_pass_done_timestamp_seconds",
        "Unix time the last lifecycle pass over the bucket finished (0 = none yet; leader only)",
        &["bucket"]
    )
    .expect("register metric")
});

/// The lifecycle actions `anode_master_lifecycle_actions_total` always shows.
pub const LIFECYCLE_ACTION_LABELS: [&str; 4] = [
    "expired",
    "noncurrent_deleted",
    "markers_removed",
    "uploads_aborted",
];

/// The series of [`LIFECYCLE_LAST_PASS`] for `buckets` (name, last pass done in Unix ms, by
/// name): the first `cap` on their own, the oldest time of the rest as [`OTHER_LABEL`].
pub fn last_pass_series(buckets: &[(String, u64)], cap: usize) -> Vec<(String, i64)> {
    let secs = |ms: u64| (ms / 1000) as i64;
    let mut out: Vec<(String, i64)> = buckets
        .iter()
        .take(cap)
        .map(|(b, ms)| (b.clone(), secs(*ms)))
        .collect();
    if let Some(oldest) = buckets.iter().skip(cap).map(|(_, ms)| *ms).min() {
        out.push((OTHER_LABEL.to_string(), secs(oldest)));
    }
    out
}

/// Publish [`LIFECYCLE_LAST_PASS`] from each bucket's stored progress (reset first, so a
/// bucket whose rules were removed disappears).
pub fn publish_lifecycle_passes(buckets: &[(String, anode_proto::LifecycleProgress)]) {
    let times: Vec<(String, u64)> = buckets
        .iter()
        .map(|(b, p)| (b.clone(), p.last_pass_done_ms))
        .collect();
    LIFECYCLE_LAST_PASS.reset();
    for (bucket, t) in last_pass_series(&times, usage_series_cap()) {
        LIFECYCLE_LAST_PASS
            .with_label_values(&[bucket.as_str()])
            .set(t);
    }
}

/// Clear the lifecycle series only a leader publishes.
pub fn clear_lifecycle_leader_only() {
    LIFECYCLE_LAST_PASS.reset();
}

/// Register the metrics without labels now, so each series is on `/metrics` from the start (a
/// counter that first appears at 1 shows no `increase()` for its first event).
pub fn init() {
    LazyLock::force(&BAD_CHUNK_REPORTS);
    LazyLock::force(&READ_ROUNDS);
    LazyLock::force(&RAFT_TERM);
    LazyLock::force(&RAFT_APPLIED);
    LazyLock::force(&RAFT_COMMIT);
    LazyLock::force(&IS_LEADER);
    LazyLock::force(&UNDER_REPLICATED);
    LazyLock::force(&MISSING_COPIES);
    LazyLock::force(&LOST_CHUNKS);
    LazyLock::force(&TASKS_IN_FLIGHT);
    LazyLock::force(&REPAIR_BYTES_PER_SEC);
    LazyLock::force(&GARBAGE_CHUNKS);
    LazyLock::force(&RAFT_ELECTIONS);
    LazyLock::force(&RAFT_LEADER_CHANGES);
    LazyLock::force(&RAFT_HAS_LEADER);
    LazyLock::force(&RAFT_APPLY_LAG);
    LazyLock::force(&RAFT_PROPOSAL_SECONDS);
    LazyLock::force(&METADATA_EXPORT_SECONDS);
    LazyLock::force(&METADATA_EXPORT_BYTES);
    LazyLock::force(&METADATA_EXPORT_INTERVAL);
    LazyLock::force(&METADATA_EXPORT_LAST_INDEX);
    LazyLock::force(&METADATA_EXPORT_LAST_TIME);
    LazyLock::force(&METADATA_EXPORT_LAST_COPIES);
    for r in ["ok", "failed"] {
        METADATA_EXPORTS.with_label_values(&[r]);
    }
    LazyLock::force(&LIFECYCLE_BATCHES);
    LazyLock::force(&LIFECYCLE_PASSES);
    for a in LIFECYCLE_ACTION_LABELS {
        LIFECYCLE_ACTIONS.with_label_values(&[a]);
    }
}

/// Open `Watch` streams on this member.
pub static WATCHERS: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "anode_master_watchers",
        "open event watch streams on this member"
    )
    .expect("register metric")
});

/// Events the leader's delivery worker POSTed and the target accepted (2xx), by target.
pub static NOTIFY_DELIVERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_notify_delivered_total",
        "events delivered to notification targets by this member as leader",
        &["target"]
    )
    .expect("register metric")
});

/// Delivery attempts that failed (connection error, timeout, non-2xx), by target.
pub static NOTIFY_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "anode_master_notify_failures_total",
        "failed event deliveries to notification targets (retried)",
        &["target"]
    )
    .expect("register metric")
});

/// Events waiting in each target's queue, and events dropped because it was full (from the
/// leader's applied state, set by its delivery worker).
pub static NOTIFY_QUEUED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_notify_queued",
        "events queued for each notification target (leader only)",
        &["target"]
    )
    .expect("register metric")
});

/// Events dropped because a target's queue was full.
pub static NOTIFY_DROPPED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "anode_master_notify_dropped",
        "events not queued because the target's queue was full (leader only)",
        &["target"]
    )
    .expect("register metric")
});

#[cfg(test)]
mod tests {
    use super::*;

    fn u(objects: u64, bytes: u64) -> UsageFigures {
        UsageFigures { objects, bytes }
    }

    #[test]
    fn top_usage_keeps_the_largest_and_sums_the_rest() {
        let all = vec![
            ("small".to_string(), u(1, 10)),
            ("big".to_string(), u(5, 1000)),
            ("mid-b".to_string(), u(3, 100)),
            ("mid-a".to_string(), u(3, 100)),
            ("tiny".to_string(), u(7, 1)),
        ];
        let (top, other) = top_usage(all.clone(), 3);
        let names: Vec<_> = top.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["big", "mid-a", "mid-b"]);
        assert_eq!(other, Some(u(8, 11)));
        let (top, other) = top_usage(all.clone(), 5);
        assert_eq!(top.len(), 5);
        assert_eq!(other, None);
        let (top, other) = top_usage(all, 0);
        assert!(top.is_empty());
        assert_eq!(other, Some(u(19, 1211)));
    }

    #[test]
    fn last_pass_series_are_capped_with_the_oldest_of_the_rest() {
        let b = |n: &str, ms| (n.to_string(), ms);
        let all = [b("a", 5_000), b("b", 9_000), b("c", 7_999), b("d", 0)];
        assert_eq!(
            last_pass_series(&all, 2),
            [b("a", 5), b("b", 9), b(OTHER_LABEL, 0)]
                .map(|(n, s)| (n, s as i64))
                .to_vec()
        );
        assert_eq!(last_pass_series(&all[..3], 3).len(), 3);
        assert_eq!(
            last_pass_series(&all[..3], 0),
            vec![(OTHER_LABEL.to_string(), 5)]
        );
    }

    #[test]
    fn other_label_is_no_bucket_or_user_name() {
        assert!(anode_meta::validate::bucket_name(OTHER_LABEL).is_err());
        assert!(anode_meta::validate::user_name(OTHER_LABEL).is_err());
    }

    #[test]
    fn disk_reports_count_failed_and_full() {
        let d = |full, failed| anode_proto::DiskHealth {
            full,
            failed,
            ..Default::default()
        };
        assert_eq!(
            disk_report(&[
                d(false, false),
                d(true, false),
                d(true, true),
                d(false, true)
            ]),
            DiskReport { failed: 2, full: 1 }
        );
        assert_eq!(disk_report(&[]), DiskReport::default());
    }

    #[test]
    fn fullness_is_a_bounded_ratio() {
        assert_eq!(fullness(50, 200), 0.25);
        assert_eq!(fullness(5, 0), 0.0);
        assert_eq!(fullness(300, 200), 1.0);
    }

    #[test]
    fn states_are_counted_with_every_state_present() {
        let s = |id, state| ChunkserverFigures {
            id,
            rack: String::new(),
            state,
            used_bytes: 0,
            capacity_bytes: 0,
        };
        let n = count_states(&[s(1, "alive"), s(2, "dead"), s(3, "alive")]);
        assert_eq!(n["alive"], 2);
        assert_eq!(n["dead"], 1);
        assert_eq!(n["suspect"], 0);
        assert_eq!(n["draining"], 0);
    }

    #[test]
    fn raft_figures_from_a_leader_status() {
        let mut st = anode_meta::membership::NodeStatus {
            commit: 100,
            applied: 97,
            last_index: 102,
            ..Default::default()
        };
        st.matched.insert(1, 102);
        st.matched.insert(2, 90);
        st.matched.insert(3, 0);
        st.recent_active.insert(1, true);
        st.recent_active.insert(3, false);
        let f = raft_figures(&st);
        assert_eq!(f.apply_lag, 3);
        assert_eq!(f.member_lag[&1], 0);
        assert_eq!(f.member_lag[&2], 12);
        assert_eq!(f.member_lag[&3], 102);
        assert!(!f.member_active[&3]);
        // A follower's status has no per-member figures; applied past commit (a snapshot
        // just installed) is no lag.
        let st = anode_meta::membership::NodeStatus {
            commit: 5,
            applied: 9,
            ..Default::default()
        };
        let f = raft_figures(&st);
        assert_eq!(f.apply_lag, 0);
        assert!(f.member_lag.is_empty());
    }

    #[test]
    fn published_chunkservers_replace_the_previous_set() {
        observe_heartbeat_disks(
            901,
            &[anode_proto::DiskHealth {
                failed: true,
                ..Default::default()
            }],
        );
        let s = |id, state| ChunkserverFigures {
            id,
            rack: "r1".into(),
            state,
            used_bytes: 30,
            capacity_bytes: 120,
        };
        publish_chunkservers(&[s(901, "alive"), s(902, "dead")]);
        let disk = |id: &str, kind: &str| CHUNKSERVER_DISK.with_label_values(&[id, kind]).get();
        assert_eq!(disk("901", "failed_disks"), 1);
        assert_eq!(disk("902", "failed_disks"), 0);
        assert_eq!(disk("902", "capacity_bytes"), 120);
        assert_eq!(CHUNKSERVER_FULLNESS.with_label_values(&["901"]).get(), 0.25);
        assert_eq!(
            CHUNKSERVER_STATE
                .with_label_values(&["902", "r1", "dead"])
                .get(),
            1
        );
        publish_chunkservers(&[s(901, "alive")]);
        let series: Vec<String> = prometheus::core::Collector::collect(&*CHUNKSERVER_STATE)
            .iter()
            .flat_map(|f| f.get_metric().to_vec())
            .map(|m| format!("{:?}", m.get_label()))
            .collect();
        assert!(series.iter().all(|l| !l.contains("902")), "{series:?}");
    }
}
