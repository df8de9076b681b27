//! Prometheus metrics of the master (default registry, `anode_master_*`).

use std::sync::LazyLock;

use prometheus::{IntCounter, IntGauge};

/// Reports of bad chunk copies from readers and scrubbers.
pub static BAD_CHUNK_REPORTS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "anode_master_bad_chunk_reports_total",
        "bad chunk copies reported"
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
