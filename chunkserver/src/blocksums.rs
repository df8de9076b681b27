//! Per-block checksums of a blob, so a ranged read checks only the blocks it covers.
//!
//! A blob of `len` bytes is cut into blocks of [`block_bytes_for`]`(len)` bytes (64 KiB, or
//! more for blobs over 32 MiB so there are at most [`MAX_BLOCKS`]); each block has a CRC-32C.
//! The sums are computed as the blob streams in ([`Summer`]) and stored in the blob file's
//! extended attribute [`XATTR_NAME`], set before the file is fsynced and renamed into place,
//! so they are durable exactly when the blob is and travel with it (quarantine, delete).
//!
//! Encoding (version 1, little endian), [`HEADER_BYTES`] + 4 x count + 4 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | encoding version (1) |
//! | 1 | algorithm (1 = CRC-32C) |
//! | 1 | log2 of the block size |
//! | 1 | reserved (0) |
//! | 8 | blob length |
//! | 4 | block count (`ceil(length / block size)`) |
//! | 4 x count | CRC-32C of each block |
//! | 4 | CRC-32C of everything before it |
//!
//! A value that does not decode (another version, a bad trailer, a length that is not the
//! file's) is not trusted: the reader falls back to hashing the whole blob, as for a blob
//! written before block sums (data directory format version 1). The sums guard against media
//! faults; the SHA-256 of the whole blob stays the end-to-end check (client on full reads,
//! scrubber at rest).

use crc_fast::{CrcAlgorithm, Digest};

/// The extended attribute holding a blob's block sums.
pub const XATTR_NAME: &str = "user.anode.blocksums";
/// The encoding this build writes and reads.
pub const ENCODING_VERSION: u8 = 1;
/// Algorithm byte for CRC-32C.
pub const ALGO_CRC32C: u8 = 1;
/// Smallest (and usual) block size.
pub const MIN_BLOCK_BYTES: u64 = 64 << 10;
/// Most blocks per blob (keeps the value under 2.1 KiB, within one ext4 xattr block).
pub const MAX_BLOCKS: u64 = 512;
/// Bytes before the sums.
pub const HEADER_BYTES: usize = 16;

/// CRC-32C (Castagnoli) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// The block size for a blob of `len` bytes: [`MIN_BLOCK_BYTES`] doubled until at most
/// [`MAX_BLOCKS`] blocks cover it.
pub fn block_bytes_for(len: u64) -> u64 {
    let mut b = MIN_BLOCK_BYTES;
    while b.saturating_mul(MAX_BLOCKS) < len {
        b *= 2;
    }
    b
}

/// Why an encoded value is not trusted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SumsError {
    /// Too short, wrong count, or trailing bytes.
    #[error("malformed block sums: {0}")]
    Malformed(&'static str),
    /// Written by a newer encoding or with an unknown algorithm.
    #[error("block sums version {version} algorithm {algo} not supported")]
    Unsupported {
        /// Encoding version found.
        version: u8,
        /// Algorithm found.
        algo: u8,
    },
    /// The value's own CRC does not match.
    #[error("block sums fail their own checksum")]
    BadTrailer,
}

/// The sums of one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSums {
    /// Block size (a power of two).
    pub block_bytes: u64,
    /// Length of the blob.
    pub blob_len: u64,
    /// CRC-32C per block, in order.
    pub sums: Vec<u32>,
}

impl BlockSums {
    /// The encoded value (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_BYTES + 4 * self.sums.len() + 4);
        v.extend_from_slice(&[
            ENCODING_VERSION,
            ALGO_CRC32C,
            self.block_bytes.trailing_zeros() as u8,
            0,
        ]);
        v.extend_from_slice(&self.blob_len.to_le_bytes());
        v.extend_from_slice(&(self.sums.len() as u32).to_le_bytes());
        for s in &self.sums {
            v.extend_from_slice(&s.to_le_bytes());
        }
        let trailer = crc32c(&v);
        v.extend_from_slice(&trailer.to_le_bytes());
        v
    }

    /// Decode a value; anything but a well-formed version 1 value is refused.
    pub fn decode(b: &[u8]) -> Result<BlockSums, SumsError> {
        if b.len() < HEADER_BYTES + 4 {
            return Err(SumsError::Malformed("too short"));
        }
        let (version, algo, shift) = (b[0], b[1], b[2]);
        if version != ENCODING_VERSION || algo != ALGO_CRC32C {
            return Err(SumsError::Unsupported { version, algo });
        }
        let (body, trailer) = b.split_at(b.len() - 4);
        if crc32c(body).to_le_bytes() != trailer {
            return Err(SumsError::BadTrailer);
        }
        if !(16..=40).contains(&shift) {
            return Err(SumsError::Malformed("block size"));
        }
        let block_bytes = 1u64 << shift;
        let blob_len = u64::from_le_bytes(body[4..12].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes")) as u64;
        if count != blob_len.div_ceil(block_bytes) {
            return Err(SumsError::Malformed("block count"));
        }
        let sums_bytes = &body[HEADER_BYTES..];
        if sums_bytes.len() as u64 != 4 * count {
            return Err(SumsError::Malformed("length"));
        }
        let sums = sums_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(BlockSums {
            block_bytes,
            blob_len,
            sums,
        })
    }

    /// The block-aligned interval `[a, b)` that covers `[offset, offset + len)` (clamped to
    /// the blob).
    pub fn covering(&self, offset: u64, len: u64) -> (u64, u64) {
        let end = offset.saturating_add(len).min(self.blob_len);
        let a = offset.min(self.blob_len) / self.block_bytes * self.block_bytes;
        let b = end
            .div_ceil(self.block_bytes)
            .saturating_mul(self.block_bytes)
            .min(self.blob_len);
        (a, b)
    }

    /// Check `data`, the blob's bytes from block-aligned `start` (whole blocks, the last one
    /// possibly the blob's short tail). `Err(i)` names the first block that does not match.
    pub fn check(&self, start: u64, data: &[u8]) -> Result<(), u64> {
        let first = start / self.block_bytes;
        let blocks = data.chunks(self.block_bytes as usize);
        for (i, block) in (first..).zip(blocks) {
            let want = self.sums.get(i as usize).copied();
            // Checked: `start` past the blob (never sent by the read path) is refused, not
            // wrapped.
            let at = i.checked_mul(self.block_bytes);
            let whole = at.and_then(|a| a.checked_add(self.block_bytes)) <= Some(self.blob_len);
            let tail = at.and_then(|a| a.checked_add(block.len() as u64)) == Some(self.blob_len);
            if want != Some(crc32c(block)) || !(whole || tail) {
                return Err(i);
            }
        }
        Ok(())
    }
}

/// Block sums computed as a blob streams in, in pieces of any size.
pub struct Summer {
    block_bytes: u64,
    blob_len: u64,
    digest: Digest,
    in_block: u64,
    fed: u64,
    sums: Vec<u32>,
}

impl Summer {
    /// Sums for a blob of `blob_len` bytes.
    pub fn new(blob_len: u64) -> Summer {
        let block_bytes = block_bytes_for(blob_len);
        Summer {
            block_bytes,
            blob_len,
            digest: Digest::new(CrcAlgorithm::Crc32Iscsi),
            in_block: 0,
            fed: 0,
            sums: Vec::with_capacity(blob_len.div_ceil(block_bytes) as usize),
        }
    }

    /// Feed the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.fed = self.fed.saturating_add(data.len() as u64);
        while !data.is_empty() {
            let room = (self.block_bytes - self.in_block) as usize;
            let take = room.min(data.len());
            self.digest.update(&data[..take]);
            self.in_block += take as u64;
            data = &data[take..];
            if self.in_block == self.block_bytes {
                self.sums.push(self.digest.finalize() as u32);
                self.digest.reset();
                self.in_block = 0;
            }
        }
    }

    /// The sums, or `None` when the bytes fed were not `blob_len` (the put fails anyway).
    pub fn finish(mut self) -> Option<BlockSums> {
        if self.in_block > 0 {
            self.sums.push(self.digest.finalize() as u32);
        }
        (self.fed == self.blob_len).then_some(BlockSums {
            block_bytes: self.block_bytes,
            blob_len: self.blob_len,
            sums: self.sums,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The model: sums of the blob cut naively.
    fn naive(data: &[u8]) -> BlockSums {
        let block_bytes = block_bytes_for(data.len() as u64);
        BlockSums {
            block_bytes,
            blob_len: data.len() as u64,
            sums: data.chunks(block_bytes as usize).map(crc32c).collect(),
        }
    }

    fn summed(data: &[u8], piece: usize) -> Option<BlockSums> {
        let mut s = Summer::new(data.len() as u64);
        for p in data.chunks(piece.max(1)) {
            s.update(p);
        }
        s.finish()
    }

    proptest! {
        #[test]
        fn streamed_sums_match_the_model_and_round_trip(
            len in 0usize..300_000,
            piece in 1usize..100_000,
            seed in any::<u8>(),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let got = summed(&data, piece).expect("all bytes fed");
            prop_assert_eq!(&got, &naive(&data));
            prop_assert_eq!(BlockSums::decode(&got.encode()), Ok(got.clone()));
            prop_assert_eq!(got.check(0, &data), Ok(()));
        }

        #[test]
        fn covering_is_the_smallest_aligned_superset(
            blob_len in 0u64..1_000_000,
            offset in 0u64..1_100_000,
            len in 0u64..1_100_000,
        ) {
            let s = BlockSums {
                block_bytes: MIN_BLOCK_BYTES,
                blob_len,
                sums: vec![0; blob_len.div_ceil(MIN_BLOCK_BYTES) as usize],
            };
            let (a, b) = s.covering(offset, len);
            let (lo, hi) = (offset.min(blob_len), (offset + len).min(blob_len));
            prop_assert!(a <= lo && hi <= b && b <= blob_len);
            prop_assert_eq!(a % MIN_BLOCK_BYTES, 0);
            prop_assert!(b % MIN_BLOCK_BYTES == 0 || b == blob_len);
            prop_assert!(lo - a < MIN_BLOCK_BYTES);
            prop_assert!(b - hi < MIN_BLOCK_BYTES);
        }

        /// Any single flipped byte is caught in its block and only there.
        #[test]
        fn a_flipped_byte_fails_its_block_only(len in 1usize..400_000, at in any::<usize>(), bit in 0u8..8) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sums = naive(&data);
            let at = at % len;
            let mut bad = data.clone();
            bad[at] ^= 1 << bit;
            let block = at as u64 / sums.block_bytes;
            prop_assert_eq!(sums.check(0, &bad), Err(block));
            let bb = sums.block_bytes as usize;
            for (i, b) in bad.chunks(bb).enumerate() {
                let want = if i as u64 == block { Err(i as u64) } else { Ok(()) };
                prop_assert_eq!(sums.check(i as u64 * sums.block_bytes, b), want);
            }
        }
    }

    #[test]
    fn block_size_keeps_the_count_bounded() {
        assert_eq!(block_bytes_for(0), MIN_BLOCK_BYTES);
        assert_eq!(block_bytes_for(4 << 20), MIN_BLOCK_BYTES);
        assert_eq!(block_bytes_for(32 << 20), MIN_BLOCK_BYTES);
        assert_eq!(block_bytes_for((32 << 20) + 1), 2 * MIN_BLOCK_BYTES);
        let max = anode_proto::MAX_CHUNK_BYTES;
        assert!(max.div_ceil(block_bytes_for(max)) <= MAX_BLOCKS);
        let enc = naive(&vec![0u8; max as usize]).encode();
        assert!(enc.len() <= HEADER_BYTES + 4 * MAX_BLOCKS as usize + 4);
    }

    #[test]
    fn short_or_long_feeds_give_no_sums() {
        let mut s = Summer::new(10);
        s.update(b"123456789");
        assert_eq!(s.finish(), None);
        let mut s = Summer::new(10);
        s.update(b"12345678901");
        assert_eq!(s.finish(), None);
        let mut s = Summer::new(MIN_BLOCK_BYTES);
        s.update(&vec![1; MIN_BLOCK_BYTES as usize + 1]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn damaged_values_are_refused() {
        let good = naive(&[5u8; 200_000]);
        let enc = good.encode();
        assert_eq!(
            BlockSums::decode(&enc[..10]),
            Err(SumsError::Malformed("too short"))
        );
        let mut v = enc.clone();
        v[0] = 2;
        assert_eq!(
            BlockSums::decode(&v),
            Err(SumsError::Unsupported {
                version: 2,
                algo: 1
            })
        );
        let mut v = enc.clone();
        v[HEADER_BYTES] ^= 1;
        assert_eq!(BlockSums::decode(&v), Err(SumsError::BadTrailer));
        // A consistent value whose count does not fit its length.
        let mut wrong = good.clone();
        wrong.sums.pop();
        assert_eq!(
            BlockSums::decode(&wrong.encode()),
            Err(SumsError::Malformed("block count"))
        );
        // Golden: the encoding of a 3-byte blob "abc".
        let abc = naive(b"abc").encode();
        assert_eq!(
            hex::encode(&abc[..HEADER_BYTES]),
            "01011000030000000000000001000000"
        );
        assert_eq!(
            u32::from_le_bytes(abc[16..20].try_into().unwrap()),
            0x364B_3FB7
        );
    }
}
