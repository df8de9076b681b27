//! Parquet predicates (issue 16): the `x-anode-where` language and pruning by statistics.
//! Interface only; the parser and the evaluator land with the `pq` branch.

use anode_proto::ParquetStats;

/// The longest predicate text accepted.
pub const MAX_PREDICATE_BYTES: usize = 4096;

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    _text: String,
}

/// A predicate that does not parse, with the byte position of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct PredicateError {
    /// Byte offset into the predicate text.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse a predicate.
pub fn parse(text: &str) -> Result<Predicate, PredicateError> {
    Err(PredicateError {
        position: 0,
        message: format!("predicates are not supported yet ({} bytes)", text.len()),
    })
}

/// The row groups of a file, by its statistics, that may hold a row matching `p` (ascending;
/// empty = none may).
pub fn prune(_p: &Predicate, stats: &ParquetStats) -> Vec<u32> {
    (0..stats.row_groups.len() as u32).collect()
}
