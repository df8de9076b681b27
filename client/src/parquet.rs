//! Parquet awareness on the client side (issue 16; docs/parquet.md).
//!
//! Writes: a put whose body starts with `PAR1` keeps the body's last bytes as it streams
//! ([`Tap`], at most `Limits::max_tail` plus one piece), and after the chunks are durable
//! builds the index (`anode_pqindex::index_tail`) that goes with the manifest in the same raft
//! command. A completed multipart upload is indexed afterwards from its first and last bytes
//! (`SetParquetIndex`); until then it reads as a plain object. A file that claims to be
//! Parquet but does not parse is stored as a plain object and reported
//! ([`ParquetOutcome::Invalid`]), never refused.
//!
//! Reads: [`crate::Client::get_version_tail`] answers a byte range from the stored tail when
//! it covers it; [`crate::Client::list_where`] is the pruned listing.

use std::collections::VecDeque;
use std::sync::Arc;

use anode_proto::*;
use bytes::Bytes;
use parking_lot::Mutex;

pub use anode_pqindex::Limits;

/// What indexing made of one written object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParquetOutcome {
    /// Not a Parquet file (or indexing is off).
    NotParquet,
    /// Indexed: the manifest's `parquet` summary is set.
    Indexed,
    /// Parquet, but its footer is over the configured cap: stored without an index.
    TooLarge,
    /// Starts and ends like Parquet but the footer does not parse: stored without an index.
    Invalid(String),
}

/// Where a put reports its [`ParquetOutcome`] (shared by the clones of its `PutOptions`).
#[derive(Clone, Debug, Default)]
pub struct OutcomeCell(Arc<Mutex<Option<ParquetOutcome>>>);

impl OutcomeCell {
    /// The outcome of the put, once it committed.
    pub fn get(&self) -> Option<ParquetOutcome> {
        self.0.lock().clone()
    }

    pub(crate) fn set(&self, o: ParquetOutcome) {
        *self.0.lock() = Some(o);
    }
}

/// Keeps the first four bytes of a body and, when they are `PAR1`, its last `keep` bytes.
#[derive(Debug)]
pub(crate) struct Tap {
    head: Vec<u8>,
    parquet: Option<bool>,
    pieces: VecDeque<Bytes>,
    held: usize,
    keep: usize,
}

impl Tap {
    pub(crate) fn new(keep: usize) -> Tap {
        Tap {
            head: Vec::with_capacity(4),
            parquet: None,
            pieces: VecDeque::new(),
            held: 0,
            keep,
        }
    }

    pub(crate) fn push(&mut self, piece: &Bytes) {
        if self.head.len() < 4 {
            let n = (4 - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..n]);
            if self.head.len() == 4 {
                self.parquet = Some(self.head == b"PAR1");
            }
        }
        if self.parquet == Some(false) || piece.is_empty() {
            self.pieces.clear();
            self.held = 0;
            return;
        }
        self.pieces.push_back(piece.clone());
        self.held += piece.len();
        while let Some(front) = self.pieces.front() {
            if self.held - front.len() < self.keep {
                break;
            }
            self.held -= front.len();
            self.pieces.pop_front();
        }
    }

    /// The body started with `PAR1`.
    pub(crate) fn is_parquet(&self) -> bool {
        self.parquet == Some(true)
    }

    /// The last `keep` bytes seen (fewer if the body was shorter).
    pub(crate) fn tail(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.held.min(self.keep));
        for p in &self.pieces {
            out.extend_from_slice(p);
        }
        let skip = out.len().saturating_sub(self.keep);
        out.drain(..skip);
        out
    }
}

/// The index of an object of `size` bytes from its tail, and what became of it.
pub(crate) fn index(
    tail: &[u8],
    size: u64,
    limits: &Limits,
) -> (Option<ParquetIndex>, ParquetOutcome) {
    match anode_pqindex::index_tail(tail, size, true, limits) {
        Ok(Some(ix)) => (Some(ix), ParquetOutcome::Indexed),
        // No index: over the cap when it ends like Parquet, else not Parquet at all.
        Ok(None) if tail.ends_with(b"PAR1") => (None, ParquetOutcome::TooLarge),
        Ok(None) => (None, ParquetOutcome::NotParquet),
        Err(e) => {
            tracing::debug!(error = %e, "a body that looks like Parquet did not parse; stored plain");
            (None, ParquetOutcome::Invalid(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(tap: &mut Tap, data: &[u8], piece: usize) {
        for p in data.chunks(piece.max(1)) {
            tap.push(&Bytes::copy_from_slice(p));
        }
    }

    #[test]
    fn a_tap_keeps_the_last_bytes_of_a_parquet_body() {
        let mut body = b"PAR1".to_vec();
        body.extend((0..10_000u32).map(|i| (i % 251) as u8));
        for piece in [1, 3, 7, 100, 4096, 20_000] {
            let mut tap = Tap::new(1000);
            feed(&mut tap, &body, piece);
            assert!(tap.is_parquet());
            assert_eq!(tap.tail(), body[body.len() - 1000..], "pieces of {piece}");
            assert!(
                tap.held <= 1000 + piece,
                "held {} with pieces of {piece}",
                tap.held
            );
        }
        let mut short = Tap::new(1000);
        feed(&mut short, b"PAR1abc", 2);
        assert_eq!(short.tail(), b"PAR1abc");
    }

    #[test]
    fn a_tap_holds_nothing_for_other_bodies() {
        let mut tap = Tap::new(1000);
        feed(&mut tap, &[7u8; 5000], 3);
        assert!(!tap.is_parquet());
        assert_eq!(tap.held, 0);
        assert!(tap.tail().is_empty());
    }
}
