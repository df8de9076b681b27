//! Prometheus metrics (`anode_chunkserver_*`).

use std::sync::LazyLock;

use prometheus::{IntCounter, IntGauge};

macro_rules! counter {
    ($name:ident, $metric:expr, $help:expr) => {
        /// See the metric's help text.
        pub static $name: LazyLock<IntCounter> = LazyLock::new(|| {
            prometheus::register_int_counter!($metric, $help).expect("register metric")
        });
    };
}
macro_rules! gauge {
    ($name:ident, $metric:expr, $help:expr) => {
        /// See the metric's help text.
        pub static $name: LazyLock<IntGauge> = LazyLock::new(|| {
            prometheus::register_int_gauge!($metric, $help).expect("register metric")
        });
    };
}

counter!(PUTS, "anode_chunkserver_puts_total", "chunks written");
counter!(GETS, "anode_chunkserver_gets_total", "chunk reads");
counter!(
    BYTES_IN,
    "anode_chunkserver_bytes_in_total",
    "bytes written"
);
counter!(
    BYTES_DIRECT,
    "anode_chunkserver_bytes_direct_total",
    "bytes of blobs written around the page cache (O_DIRECT)"
);
counter!(BYTES_OUT, "anode_chunkserver_bytes_out_total", "bytes read");
counter!(
    WHOLE_VERIFIES,
    "anode_chunkserver_whole_blob_verifies_total",
    "ranged reads of blobs without block sums, verified by hashing the whole blob"
);
counter!(
    SCRUBBED_BYTES,
    "anode_chunkserver_scrubbed_bytes_total",
    "bytes re-hashed by the scrubber"
);
counter!(
    SCRUB_CORRUPT,
    "anode_chunkserver_scrub_corrupt_total",
    "corrupt blobs found by the scrubber"
);
counter!(
    READ_FAULTS,
    "anode_chunkserver_read_faults_total",
    "blob reads that failed with an IO error (copy quarantined and reported)"
);
gauge!(USED_BYTES, "anode_chunkserver_used_bytes", "bytes stored");
gauge!(CHUNKS, "anode_chunkserver_chunks", "blobs stored");

/// Register every metric now, so each series is on `/metrics` from the start (a counter that
/// first appears at 1 shows no `increase()` for its first event).
pub fn init() {
    LazyLock::force(&PUTS);
    LazyLock::force(&GETS);
    LazyLock::force(&BYTES_IN);
    LazyLock::force(&BYTES_DIRECT);
    LazyLock::force(&BYTES_OUT);
    LazyLock::force(&WHOLE_VERIFIES);
    LazyLock::force(&SCRUBBED_BYTES);
    LazyLock::force(&SCRUB_CORRUPT);
    LazyLock::force(&READ_FAULTS);
    LazyLock::force(&USED_BYTES);
    LazyLock::force(&CHUNKS);
}
