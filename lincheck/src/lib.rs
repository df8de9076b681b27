//! `anode-lincheck`: a linearizability checker for key-value histories recorded by Anode's
//! chaos scenarios (issue 6). Pure library: no IO, no clock, no randomness.
//!
//! - [`history`]: the JSON Lines history format ([`History`]) and its pairing into
//!   [`Operation`]s (`fail` dropped, `info` = may or may not have happened, returning at
//!   +infinity).
//! - [`checker`]: Wing & Gong search with memoization of (linearized set, model state), as in
//!   Porcupine, run per key (P-compositionality) against a register model with a step budget
//!   that yields [`Verdict::Unknown`] instead of running forever.
//!
//! Model: `put(k, v) -> ok` sets k to v, `delete(k) -> ok` removes k, `get(k) -> v | null`
//! must return the current value (null when absent; every key starts absent).

pub mod checker;
pub mod history;

pub use checker::{check, Options, Verdict};
pub use history::{Event, EventType, Func, History, HistoryError, Operation, Outcome};

/// Pair and check a history.
pub fn check_history(history: &History, opts: Options) -> Result<Verdict, HistoryError> {
    Ok(check(&history.operations()?, opts))
}
