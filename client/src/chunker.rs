//! Pure chunking and digests: cut a body (arriving as arbitrary pieces) into fixed-size chunks,
//! and compute the S3 ETag (MD5) as it streams.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Cuts a stream of arbitrary pieces into chunks of exactly `chunk_size` bytes (the last one may
/// be shorter, never empty) and keeps the running MD5 of everything pushed.
///
/// Memory: holds less than one chunk plus the last pushed piece. A piece that already holds a
/// whole chunk is split without copying.
#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    pending: VecDeque<Bytes>,
    pending_len: usize,
    md5: Md5,
    total_bytes: u64,
}

/// What a finished [`Chunker`] leaves: the last (short) chunk, the MD5 and the total size.
#[derive(Debug)]
pub struct ChunkerTail {
    /// The last chunk, shorter than `chunk_size`; `None` when the body ended on a boundary.
    pub last: Option<Bytes>,
    /// MD5 of the whole body.
    pub md5: [u8; 16],
    /// Total body length.
    pub total_bytes: u64,
}

impl Chunker {
    /// A chunker cutting `chunk_size`-byte chunks.
    pub fn new(chunk_size: usize) -> Self {
        assert!(chunk_size > 0, "chunk size must be positive");
        Chunker {
            chunk_size,
            pending: VecDeque::new(),
            pending_len: 0,
            md5: Md5::new(),
            total_bytes: 0,
        }
    }

    /// Bytes pushed so far.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes pushed but not yet taken as a chunk.
    pub fn pending_bytes(&self) -> usize {
        self.pending_len
    }

    /// Feed the next piece of the body. Follow with [`Chunker::next_chunk`] until `None`.
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.md5.update(&piece);
        self.total_bytes += piece.len() as u64;
        self.pending_len += piece.len();
        self.pending.push_back(piece);
    }

    /// Take the next full chunk, if enough bytes are pending.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.pending_len < self.chunk_size {
            return None;
        }
        let chunk = self.take(self.chunk_size);
        debug_assert_eq!(chunk.len(), self.chunk_size);
        Some(chunk)
    }

    /// Take every pending byte, in order (the inline path uses this for a body that ended
    /// before filling a chunk).
    pub fn take_all(&mut self) -> Bytes {
        self.take(self.pending_len)
    }

    /// End of body: the remaining short chunk, the MD5 and the total size.
    pub fn finish(mut self) -> ChunkerTail {
        let last = (self.pending_len > 0).then(|| self.take(self.pending_len));
        ChunkerTail {
            last,
            md5: self.md5.finalize().into(),
            total_bytes: self.total_bytes,
        }
    }

    fn take(&mut self, n: usize) -> Bytes {
        assert!(n <= self.pending_len);
        self.pending_len -= n;
        if let Some(front) = self.pending.front_mut() {
            if front.len() >= n {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.pending.pop_front();
                }
                return out;
            }
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let front = self
                .pending
                .front_mut()
                .expect("pending_len counts these bytes");
            let want = (n - out.len()).min(front.len());
            out.extend_from_slice(&front.split_to(want));
            if front.is_empty() {
                self.pending.pop_front();
            }
        }
        out.freeze()
    }
}

/// SHA-256 of a chunk: its content address.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// MD5 of a byte string.
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The S3 ETag of a single-part body: lowercase hex MD5, without quotes.
pub fn etag_hex(md5: &[u8; 16]) -> String {
    hex::encode(md5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cut `data` into pieces at `splits` (sorted, deduplicated, in range), push them through a
    /// chunker and collect every chunk.
    fn run(data: &[u8], splits: &[usize], chunk_size: usize) -> (Vec<Bytes>, ChunkerTail) {
        let mut c = Chunker::new(chunk_size);
        let mut chunks = Vec::new();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&data.len())) {
            c.push(Bytes::copy_from_slice(&data[start..end]));
            start = end;
            while let Some(chunk) = c.next_chunk() {
                chunks.push(chunk);
            }
            assert!(c.pending_bytes() < chunk_size);
        }
        let tail = c.finish();
        (chunks, tail)
    }

    fn sizes() -> impl Strategy<Value = (usize, usize)> {
        // (chunk size, body length) around interesting boundaries.
        (1usize..64).prop_flat_map(|cs| {
            let lens = prop_oneof![
                Just(0),
                Just(1),
                Just(cs - 1),
                Just(cs),
                Just(cs + 1),
                Just(3 * cs + 7),
                0..(5 * cs + 3),
            ];
            (Just(cs), lens)
        })
    }

    proptest! {
        #[test]
        fn chunking_round_trips(
            (cs, len) in sizes(),
            seed in any::<u64>(),
            split_points in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3]).collect();
            let mut splits: Vec<usize> = split_points.iter().map(|ix| if len == 0 { 0 } else { ix.index(len + 1) }).collect();
            splits.sort_unstable();
            splits.dedup();
            let (chunks, tail) = run(&data, &splits, cs);
            // Every full chunk has exactly cs bytes; the tail is short and non-empty.
            for c in &chunks {
                prop_assert_eq!(c.len(), cs);
            }
            if let Some(last) = &tail.last {
                prop_assert!(!last.is_empty() && last.len() < cs);
            }
            prop_assert_eq!(chunks.len() + tail.last.iter().count(), len.div_ceil(cs));
            let mut joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            joined.extend(tail.last.iter().flat_map(|c| c.iter().copied()));
            prop_assert_eq!(&joined, &data);
            prop_assert_eq!(tail.total_bytes, len as u64);
            prop_assert_eq!(tail.md5, md5(&data));
        }
    }

    #[test]
    fn whole_chunk_pieces_are_not_copied() {
        let data = Bytes::from(vec![7u8; 10]);
        let mut c = Chunker::new(4);
        c.push(data.clone());
        let a = c.next_chunk().unwrap();
        assert_eq!(
            a.as_ptr(),
            data.as_ptr(),
            "first chunk should be a slice of the piece"
        );
        assert_eq!(c.next_chunk().unwrap().len(), 4);
        assert!(c.next_chunk().is_none());
        assert_eq!(c.finish().last.unwrap().len(), 2);
    }

    #[test]
    fn etags() {
        // Known MD5s.
        assert_eq!(etag_hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(etag_hex(&md5(b"hello")), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
