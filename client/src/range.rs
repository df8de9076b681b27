//! Pure range planning: which chunks, and which bytes of each, a byte range of an object needs.

/// The part of one chunk a read needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Index of the chunk in the manifest.
    pub index: usize,
    /// First byte needed, relative to the chunk.
    pub offset: u64,
    /// Bytes needed from `offset` (at least 1).
    pub length: u64,
    /// Full length of the chunk.
    pub chunk_length: u64,
}

impl ChunkSpan {
    /// Whether the span covers the whole chunk (then the reader verifies the SHA-256 itself).
    pub fn is_full(&self) -> bool {
        self.offset == 0 && self.length == self.chunk_length
    }
}

/// Clamp an inclusive range `[start, end]` to an object of `size` bytes. `None` means the whole
/// object. Returns the half-open byte interval to read, or `None` when the range starts past the
/// end (or the object is empty and a range was asked).
pub fn clamp_range(size: u64, range: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match range {
        None => Some((0, size)),
        Some((start, end)) if start < size && start <= end => Some((start, end.min(size - 1) + 1)),
        Some(_) => None,
    }
}

/// The chunk spans covering the half-open byte interval `[start, end)` of an object made of
/// chunks with lengths `chunk_lengths`, in order. Zero-length chunks never appear in the plan.
/// The interval is clamped to the object's size.
pub fn plan_range(chunk_lengths: &[u64], start: u64, end: u64) -> Vec<ChunkSpan> {
    let mut spans = Vec::new();
    let mut chunk_start = 0u64;
    for (index, &chunk_length) in chunk_lengths.iter().enumerate() {
        let chunk_end = chunk_start + chunk_length;
        if chunk_end <= start {
            chunk_start = chunk_end;
            continue;
        }
        if chunk_start >= end {
            break;
        }
        let lo = start.max(chunk_start);
        let hi = end.min(chunk_end);
        if hi > lo {
            spans.push(ChunkSpan {
                index,
                offset: lo - chunk_start,
                length: hi - lo,
                chunk_length,
            });
        }
        chunk_start = chunk_end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive model: for every byte of the object, which (chunk, offset) holds it.
    fn byte_map(chunk_lengths: &[u64]) -> Vec<(usize, u64)> {
        chunk_lengths
            .iter()
            .enumerate()
            .flat_map(|(i, &len)| (0..len).map(move |o| (i, o)))
            .collect()
    }

    proptest! {
        #[test]
        fn plan_matches_naive_model(
            chunk_lengths in proptest::collection::vec(0u64..20, 0..8),
            a in 0u64..200,
            b in 0u64..200,
        ) {
            let size: u64 = chunk_lengths.iter().sum();
            let (start, end) = (a.min(b), a.max(b));
            let plan = plan_range(&chunk_lengths, start, end);
            let expanded: Vec<(usize, u64)> = plan
                .iter()
                .flat_map(|s| (s.offset..s.offset + s.length).map(move |o| (s.index, o)))
                .collect();
            let model = byte_map(&chunk_lengths);
            let lo = (start.min(size)) as usize;
            let hi = (end.min(size)) as usize;
            prop_assert_eq!(&expanded[..], &model[lo..hi]);
            for s in &plan {
                prop_assert!(s.length > 0);
                prop_assert_eq!(s.chunk_length, chunk_lengths[s.index]);
                prop_assert_eq!(s.is_full(), s.offset == 0 && s.length == chunk_lengths[s.index]);
            }
            // Chunks appear once each, in order.
            prop_assert!(plan.windows(2).all(|w| w[0].index < w[1].index));
        }

        #[test]
        fn clamp_matches_model(size in 0u64..50, a in 0u64..80, b in 0u64..80) {
            let got = clamp_range(size, Some((a, b)));
            if a < size && a <= b {
                prop_assert_eq!(got, Some((a, b.min(size - 1) + 1)));
            } else {
                prop_assert_eq!(got, None);
            }
        }
    }

    #[test]
    fn table() {
        let lens = [4, 4, 3];
        assert_eq!(clamp_range(11, None), Some((0, 11)));
        assert_eq!(
            plan_range(&lens, 0, 11)
                .iter()
                .filter(|s| s.is_full())
                .count(),
            3
        );
        assert_eq!(
            plan_range(&lens, 3, 5),
            vec![
                ChunkSpan {
                    index: 0,
                    offset: 3,
                    length: 1,
                    chunk_length: 4
                },
                ChunkSpan {
                    index: 1,
                    offset: 0,
                    length: 1,
                    chunk_length: 4
                },
            ]
        );
        assert_eq!(
            plan_range(&lens, 10, 11),
            vec![ChunkSpan {
                index: 2,
                offset: 2,
                length: 1,
                chunk_length: 3
            }]
        );
        assert!(plan_range(&lens, 11, 20).is_empty());
        assert!(plan_range(&[], 0, 0).is_empty());
        assert_eq!(clamp_range(0, Some((0, 0))), None);
        assert_eq!(clamp_range(5, Some((2, 100))), Some((2, 5)));
    }
}
