//! Prometheus metrics of the gateway (default registry, served on the admin `/metrics`).

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

/// The gateway's metrics.
pub struct Metrics {
    /// Requests by S3 operation and HTTP status.
    pub requests: IntCounterVec,
    /// Time to response headers, by operation.
    pub duration_seconds: HistogramVec,
    /// Requests being handled (until the response body is done).
    pub in_flight: IntGauge,
    /// Requests refused with SlowDown at the concurrency limit.
    pub throttled: IntCounter,
    /// Authenticated requests refused by authorization (403 AccessDenied).
    pub authz_denied: IntCounter,
    /// Request body bytes received.
    pub bytes_in: IntCounter,
    /// Response body bytes of object reads sent.
    pub bytes_out: IntCounter,
    /// Multipart uploads aborted as stale.
    pub stale_uploads_aborted: IntCounter,
    /// Open S3 connections (plain and HTTPS).
    pub connections: IntGauge,
    /// ListenBucketNotification answers streaming.
    pub listeners: IntGauge,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: IntCounter,
    /// Audit records written.
    pub audit_records: IntCounter,
    /// Audit records dropped because the writer's queue was full.
    pub audit_dropped: IntCounter,
    /// Failed audit log writes, rotations or opens (their records are lost).
    pub audit_write_errors: IntCounter,
    /// Range reads of Parquet objects answered from the stored tail, without chunk reads
    /// (issue 16).
    pub parquet_footer_hits: IntCounter,
    /// Range reads of Parquet objects the stored tail did not cover (read from chunks).
    pub parquet_footer_misses: IntCounter,
    /// Written objects by what Parquet indexing made of them: `indexed`, `too_large`,
    /// `invalid` (claimed to be Parquet, did not parse: stored plain), `failed` (a completed
    /// upload whose indexing could not be read or stored).
    pub parquet_writes: IntCounterVec,
}

/// The process-wide metrics, registered on first use.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: register_int_counter_vec!(
        "anode_gateway_requests_total",
        "S3 requests by operation and status",
        &["op", "status"]
    )
    .expect("metric registers once"),
    duration_seconds: register_histogram_vec!(
        "anode_gateway_request_duration_seconds",
        "Time from request to response headers",
        &["op"],
        vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
    )
    .expect("metric registers once"),
    in_flight: register_int_gauge!("anode_gateway_requests_in_flight", "Requests being handled")
        .expect("metric registers once"),
    throttled: register_int_counter!(
        "anode_gateway_throttled_total",
        "Requests refused with SlowDown at the concurrency limit"
    )
    .expect("metric registers once"),
    authz_denied: register_int_counter!(
        "anode_gateway_authz_denied_total",
        "Authenticated requests refused by authorization (403 AccessDenied)"
    )
    .expect("metric registers once"),
    bytes_in: register_int_counter!(
        "anode_gateway_received_bytes_total",
        "Request body bytes received"
    )
    .expect("metric registers once"),
    bytes_out: register_int_counter!("anode_gateway_sent_bytes_total", "Object bytes sent")
        .expect("metric registers once"),
    parquet_footer_hits: register_int_counter!(
        "anode_gateway_parquet_footer_hits_total",
        "Range reads of Parquet objects answered from the stored footer and tail"
    )
    .expect("metric registers once"),
    parquet_footer_misses: register_int_counter!(
        "anode_gateway_parquet_footer_misses_total",
        "Range reads of Parquet objects outside the stored tail (read from chunkservers)"
    )
    .expect("metric registers once"),
    parquet_writes: register_int_counter_vec!(
        "anode_gateway_parquet_writes_total",
        "Objects written that looked like Parquet, by indexing outcome",
        &["outcome"]
    )
    .expect("metric registers once"),
    stale_uploads_aborted: register_int_counter!(
        "anode_gateway_stale_uploads_aborted_total",
        "Multipart uploads aborted because they were older than --multipart-stale-hours"
    )
    .expect("metric registers once"),
    connections: register_int_gauge!("anode_gateway_connections", "Open S3 connections")
        .expect("metric registers once"),
    listeners: register_int_gauge!(
        "anode_gateway_listeners",
        "ListenBucketNotification answers streaming"
    )
    .expect("metric registers once"),
    connections_refused: register_int_counter!(
        "anode_gateway_connections_refused_total",
        "Connections closed at once at the --max-connections limit"
    )
    .expect("metric registers once"),
    audit_records: register_int_counter!(
        "anode_gateway_audit_records_total",
        "Audit log records written"
    )
    .expect("metric registers once"),
    audit_dropped: register_int_counter!(
        "anode_gateway_audit_dropped_total",
        "Audit log records dropped because the writer's queue was full"
    )
    .expect("metric registers once"),
    audit_write_errors: register_int_counter!(
        "anode_gateway_audit_write_errors_total",
        "Failed audit log writes, rotations or opens (their records are lost)"
    )
    .expect("metric registers once"),
});
