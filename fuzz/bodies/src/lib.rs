//! The bodies of Anode's fuzz targets, one plain function per target.
//!
//! `fuzz/fuzz_targets/NAME.rs` (cargo-fuzz, nightly, libFuzzer) is one line calling `NAME`
//! here; `tests/replay.rs` runs every file of `fuzz/corpus/NAME/` through the same function on
//! stable, in the normal workspace test suite, so the committed corpus (seeds from the tests
//! and every input that once found a bug) keeps being checked without a nightly toolchain.
//! A body panics only on a finding: a panic in the code under test or a broken property
//! (documented on each function). See docs/fuzzing.md.

pub mod authz;
pub mod chunkserver;
pub mod gateway;
pub mod input;
pub mod master;
pub mod parquet;

pub use authz::authz_policy;
pub use chunkserver::{blocksums, chunkserver_rpc};
pub use gateway::{
    aws_chunked, gateway_request, post_form, post_policy, range_copy_source, s3_route, sigv2,
    sigv4_header, sigv4_presigned, xml_access, xml_complete_multipart, xml_cors, xml_create_bucket,
    xml_delete, xml_lifecycle, xml_notification, xml_tagging,
};
pub use master::{master_apply, master_control, master_ops, master_records};
pub use parquet::{parquet_footer, parquet_predicate};

/// Whether `ANODE_FUZZ_DEBUG` is set: bodies then print what the code under test answered
/// (for writing seeds that reach deep).
pub fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ANODE_FUZZ_DEBUG").is_some())
}

/// A fuzz target body.
pub type Body = fn(&[u8]);

/// Every target: its name (the file `fuzz/fuzz_targets/NAME.rs` and the corpus directory
/// `fuzz/corpus/NAME/`) and its body. `tests/replay.rs` checks the three agree.
pub const TARGETS: &[(&str, Body)] = &[
    ("sigv4_header", sigv4_header),
    ("sigv4_presigned", sigv4_presigned),
    ("aws_chunked", aws_chunked),
    ("xml_complete_multipart", xml_complete_multipart),
    ("xml_delete", xml_delete),
    ("xml_create_bucket", xml_create_bucket),
    ("xml_access", xml_access),
    ("xml_lifecycle", xml_lifecycle),
    ("xml_cors", xml_cors),
    ("xml_notification", xml_notification),
    ("xml_tagging", xml_tagging),
    ("s3_route", s3_route),
    ("range_copy_source", range_copy_source),
    ("gateway_request", gateway_request),
    ("chunkserver_rpc", chunkserver_rpc),
    ("blocksums", blocksums),
    ("master_apply", master_apply),
    ("master_ops", master_ops),
    ("master_records", master_records),
    ("master_control", master_control),
    ("authz_policy", authz_policy),
    ("sigv2", sigv2),
    ("post_form", post_form),
    ("post_policy", post_policy),
    ("parquet_predicate", parquet_predicate),
    ("parquet_footer", parquet_footer),
];
