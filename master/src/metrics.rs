//! Prometheus metrics of the master (default registry, `anode_master_*`).

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge};

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
