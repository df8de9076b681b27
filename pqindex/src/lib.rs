//! Parquet indexes (issue 16): what a writer (the gateway, the client library) sends with an
//! object that is a Parquet file, computed from the file's last bytes alone.
//!
//! [`index_tail`] decides whether an object is Parquet (`PAR1` at both ends; the caller checks
//! the head) and builds its [`ParquetIndex`]: the tail to store (the footer and its 8-byte
//! trailer, widened to a read window so a reader's first "last 64 KiB" request is served
//! from it), a summary ([`anode_proto::ParquetInfo`]) and the compact statistics the master
//! prunes listings with (`anode_meta::pq::prune`). [`row_group_ranges`] turns row groups
//! into the byte ranges a reader fetches.
//!
//! Pure: no IO, no async runtime. The footer is decoded by the `parquet` crate without its
//! Arrow and compression features (a footer is never compressed).
//!
//! # Statistics
//!
//! One [`ParquetColumn`] per leaf column in schema order: its dotted path, a comparison
//! domain folded from the physical and logical (or legacy converted) type, and whether any
//! ancestor is repeated (then counts are of values, not rows, and the master never prunes on
//! it). Per row group and column: the null count, the NaN count (floats), and min/max bounds
//! only where their order is the domain's:
//!
//! | physical / logical type | domain | bounds used when |
//! |---|---|---|
//! | INT32, INT64 (plain, signed INT_*, DATE, TIME, TIMESTAMP) | INT | always (signed order; legacy fields too) |
//! | INT32, INT64 with DECIMAL | INT, `is_decimal`, scale | always (unscaled, signed) |
//! | INT32, INT64 unsigned (UINT_*, Integer unsigned) | UINT | the file's column order is type-defined, unsigned |
//! | FLOAT, DOUBLE | FLOAT | type-defined signed order or IEEE 754 total order; NaN bounds dropped |
//! | BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY (plain, STRING, ENUM, JSON, BSON, UUID) | BYTES | type-defined unsigned order, never from the legacy signed `min`/`max` |
//! | BOOLEAN | BOOL | type-defined order |
//! | INT96, INTERVAL, FLOAT16, decimals on byte arrays, anything else | UNKNOWN | never |
//!
//! Byte bounds longer than [`Limits::max_bytes_stat`] are truncated: the min to a prefix (still
//! at most every value), the max to a prefix whose last byte below 0xFF is incremented (still
//! at least every value); a max of only 0xFF bytes is dropped. Truncated bounds are marked not
//! exact. Statistics over [`Limits::max_stats`] encoded bytes, or with more columns or row
//! groups than the master accepts, are left out (`has_stats` false).
//!
//! A footer whose schema nests deeper than [`MAX_SCHEMA_DEPTH`] is refused before the
//! `parquet` crate sees it (its schema builder recurses once per level: a crafted footer
//! would overflow the stack).

mod guard;

use std::ops::Range;

use anode_proto::parquet_value::V;
use anode_proto::{
    ColumnStats, ParquetColumn, ParquetDomain, ParquetIndex, ParquetInfo, ParquetStats,
    ParquetValue, RowGroupStats,
};
use parquet::basic::{ColumnOrder, ConvertedType, LogicalType, SortOrder, Type as Physical};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnDescriptor;
use prost::Message;
use sha2::{Digest, Sha256};

/// The largest tail the master stores (`anode_meta::sm::MAX_PARQUET_TAIL`; a test checks they
/// agree).
pub const MAX_PARQUET_TAIL: u64 = 4 << 20;
/// The largest statistics record the master stores (`anode_meta::sm::MAX_PARQUET_STATS`).
pub const MAX_PARQUET_STATS: usize = 1 << 20;
/// The most leaf columns a statistics record may describe (`anode_meta::sm::MAX_PARQUET_COLUMNS`).
pub const MAX_PARQUET_COLUMNS: usize = 10_000;
/// The most row groups a statistics record may describe (`anode_meta::sm::MAX_PARQUET_ROW_GROUPS`).
pub const MAX_PARQUET_ROW_GROUPS: usize = 100_000;
/// The version of the statistics record (`anode_meta::sm::PARQUET_RECORD_VERSION`).
pub const PARQUET_RECORD_VERSION: u32 = 1;

pub use guard::MAX_SCHEMA_DEPTH;

const MAGIC: &[u8; 4] = b"PAR1";
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";
/// The footer's trailer: its length (u32 little-endian) and the magic.
const TRAILER: u64 = 8;

/// How much an index may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest tail stored: a file whose footer and trailer are larger gets no index.
    pub max_tail: u64,
    /// The tail stored when the footer is smaller: the file's last `window` bytes (a reader's
    /// usual first request).
    pub window: u64,
    /// The largest encoded statistics record; larger ones are left out.
    pub max_stats: usize,
    /// Byte-array bounds are truncated to this many bytes.
    pub max_bytes_stat: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tail: MAX_PARQUET_TAIL,
            window: 64 << 10,
            max_stats: MAX_PARQUET_STATS,
            max_bytes_stat: 64,
        }
    }
}

/// A file that claims to be Parquet but cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The footer is encrypted (`PARE`): its statistics cannot be read.
    #[error("encrypted Parquet footer")]
    EncryptedFooter,
    /// The trailer states a footer longer than the file can hold.
    #[error("footer of {footer_len} bytes does not fit a file of {size} bytes")]
    FooterTooLong {
        /// The footer length the trailer states.
        footer_len: u32,
        /// The object's size.
        size: u64,
    },
    /// The caller passed fewer bytes than the footer and its trailer.
    #[error("the tail holds {have} bytes, the footer and trailer need {need}")]
    ShortTail {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
    /// The footer does not decode.
    #[error("Parquet footer does not decode: {0}")]
    Footer(String),
    /// The footer decodes but describes an impossible file.
    #[error("corrupt Parquet metadata: {0}")]
    Corrupt(String),
    /// The tail does not end like a Parquet file (`row_group_ranges`).
    #[error("not a Parquet file")]
    NotParquet,
    /// A row group index past the file's row groups (`row_group_ranges`).
    #[error("no row group {index} (the file has {count})")]
    NoSuchRowGroup {
        /// The index asked for.
        index: u32,
        /// Row groups in the file.
        count: usize,
    },
}

/// The footer length a Parquet file's last 8 bytes state (`<len u32 LE>PAR1`), when `tail`
/// ends with them; nothing is checked beyond the magic.
pub fn trailer_footer_len(tail: &[u8]) -> Option<u32> {
    let t = tail.len().checked_sub(8).map(|i| &tail[i..])?;
    (&t[4..] == MAGIC).then(|| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

/// The footer found at the end of `tail`: its length and its decoded metadata.
struct Footer {
    len: u32,
    meta: ParquetMetaData,
}

/// Decode the footer at the end of `tail` (the last bytes of an object of `size` bytes).
/// `Ok(None)`: no `PAR1` trailer, or a footer over `max_tail`.
fn footer(tail: &[u8], size: u64, max_tail: u64) -> Result<Option<Footer>, IndexError> {
    let n = tail.len();
    if n < TRAILER as usize || (n as u64) > size {
        return Ok(None);
    }
    if &tail[n - 4..] == MAGIC_ENCRYPTED {
        return Err(IndexError::EncryptedFooter);
    }
    let Some(len) = trailer_footer_len(tail) else {
        return Ok(None);
    };
    let need = len as u64 + TRAILER;
    if need > max_tail {
        return Ok(None);
    }
    if need + MAGIC.len() as u64 > size {
        return Err(IndexError::FooterTooLong {
            footer_len: len,
            size,
        });
    }
    if need > n as u64 {
        return Err(IndexError::ShortTail {
            need,
            have: n as u64,
        });
    }
    let bytes = &tail[n - need as usize..n - TRAILER as usize];
    guard::check_schema_depth(bytes)?;
    let meta = ParquetMetaDataReader::decode_metadata(bytes)
        .map_err(|e| IndexError::Footer(e.to_string()))?;
    Ok(Some(Footer { len, meta }))
}

/// Decide whether an object of `size` bytes, whose last bytes are `tail` and whose first four
/// bytes are `PAR1` when `head_is_par1`, is a Parquet file, and build its index.
///
/// The caller keeps the object's last `min(size, limits.max_tail + 8)` bytes or more.
/// `Ok(None)`: not Parquet (no `PAR1` at the head or at the end), or a footer (with its
/// trailer) over `limits.max_tail` (not indexed). `Err`: a file ending like Parquet whose
/// footer does not decode or describes an impossible file, a schema nested deeper than
/// [`MAX_SCHEMA_DEPTH`], or a file ending in `PARE` (an encrypted footer, whatever the head:
/// encrypted files start with `PARE` too); the caller stores it as a plain object.
///
/// The stored tail is the file's last `max(footer_len + 8, min(size, window))` bytes, at most
/// `max_tail` (and at most what the caller passed).
pub fn index_tail(
    tail: &[u8],
    size: u64,
    head_is_par1: bool,
    limits: &Limits,
) -> Result<Option<ParquetIndex>, IndexError> {
    if !head_is_par1 && !tail.ends_with(MAGIC_ENCRYPTED) {
        return Ok(None);
    }
    let max_tail = limits.max_tail.min(MAX_PARQUET_TAIL);
    let Some(f) = footer(tail, size, max_tail)? else {
        return Ok(None);
    };
    let need = f.len as u64 + TRAILER;
    let window = limits.window.min(size).min(tail.len() as u64);
    let tail_len = need.max(window).min(max_tail);
    let fm = f.meta.file_metadata();
    let num_rows = u64::try_from(fm.num_rows())
        .map_err(|_| IndexError::Corrupt(format!("{} rows", fm.num_rows())))?;
    let columns = columns(&f.meta);
    let schema_hash = schema_hash(&columns);
    let stats = stats(&f.meta, columns, limits)?;
    let info = ParquetInfo {
        tail_len,
        footer_len: f.len,
        num_rows,
        num_row_groups: f.meta.num_row_groups() as u32,
        schema_hash,
        has_stats: stats.is_some(),
    };
    Ok(Some(ParquetIndex {
        info: Some(info),
        tail: tail[tail.len() - tail_len as usize..].to_vec(),
        stats,
    }))
}

/// The first 16 bytes of SHA-256 over the leaves in order, each as its path's length (u32
/// little-endian), the path, the domain (i32 little-endian), the repeated and decimal flags
/// (one byte each) and the decimal scale (i32 little-endian).
fn schema_hash(columns: &[ParquetColumn]) -> Vec<u8> {
    let mut h = Sha256::new();
    for c in columns {
        h.update((c.path.len() as u32).to_le_bytes());
        h.update(c.path.as_bytes());
        h.update(c.domain.to_le_bytes());
        h.update([c.repeated as u8, c.is_decimal as u8]);
        h.update(c.decimal_scale.to_le_bytes());
    }
    h.finalize()[..16].to_vec()
}

/// The comparison domain of a leaf, and its decimal scale when it is a DECIMAL on integers.
fn domain(d: &ColumnDescriptor) -> (ParquetDomain, Option<i32>) {
    let logical = d.logical_type_ref();
    let converted = d.converted_type();
    match d.physical_type() {
        Physical::BOOLEAN => (ParquetDomain::Bool, None),
        Physical::FLOAT | Physical::DOUBLE => match (logical, converted) {
            (None, ConvertedType::NONE) => (ParquetDomain::Float, None),
            _ => (ParquetDomain::Unknown, None),
        },
        Physical::INT32 | Physical::INT64 => match (logical, converted) {
            (Some(LogicalType::Decimal(t)), _) => (ParquetDomain::Int, Some(t.scale)),
            (None, ConvertedType::DECIMAL) => (ParquetDomain::Int, Some(d.type_scale())),
            (Some(LogicalType::Integer(t)), _) if !t.is_signed => (ParquetDomain::Uint, None),
            (None, ConvertedType::UINT_8 | ConvertedType::UINT_16)
            | (None, ConvertedType::UINT_32 | ConvertedType::UINT_64) => {
                (ParquetDomain::Uint, None)
            }
            (
                Some(
                    LogicalType::Integer(_)
                    | LogicalType::Date
                    | LogicalType::Time(_)
                    | LogicalType::Timestamp(_),
                ),
                _,
            ) => (ParquetDomain::Int, None),
            (
                None,
                ConvertedType::NONE
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32
                | ConvertedType::INT_64
                | ConvertedType::DATE
                | ConvertedType::TIME_MILLIS
                | ConvertedType::TIME_MICROS
                | ConvertedType::TIMESTAMP_MILLIS
                | ConvertedType::TIMESTAMP_MICROS,
            ) => (ParquetDomain::Int, None),
            _ => (ParquetDomain::Unknown, None),
        },
        Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => match (logical, converted) {
            (
                Some(
                    LogicalType::String
                    | LogicalType::Enum
                    | LogicalType::Json
                    | LogicalType::Bson
                    | LogicalType::Uuid,
                ),
                _,
            ) => (ParquetDomain::Bytes, None),
            (
                None,
                ConvertedType::NONE
                | ConvertedType::UTF8
                | ConvertedType::ENUM
                | ConvertedType::JSON
                | ConvertedType::BSON,
            ) => (ParquetDomain::Bytes, None),
            _ => (ParquetDomain::Unknown, None),
        },
        Physical::INT96 => (ParquetDomain::Unknown, None),
    }
}

/// The leaves of the file's schema, in order.
fn columns(meta: &ParquetMetaData) -> Vec<ParquetColumn> {
    meta.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|d| {
            let (dom, scale) = domain(d);
            ParquetColumn {
                path: d.path().string(),
                domain: dom as i32,
                repeated: d.max_rep_level() > 0,
                decimal_scale: scale.unwrap_or(0),
                is_decimal: scale.is_some(),
            }
        })
        .collect()
}

/// Whether the file's min/max of column `i` are in the order of its domain.
fn bounds_usable(meta: &ParquetMetaData, i: usize, c: &ParquetColumn, s: &Statistics) -> bool {
    let dom = ParquetDomain::try_from(c.domain).unwrap_or(ParquetDomain::Unknown);
    if dom == ParquetDomain::Int {
        // Signed integers: the legacy fields and the type-defined order agree.
        return true;
    }
    let want = match dom {
        ParquetDomain::Uint | ParquetDomain::Bytes | ParquetDomain::Bool => SortOrder::UNSIGNED,
        ParquetDomain::Float => SortOrder::SIGNED,
        _ => return false,
    };
    let order = meta.file_metadata().column_order(i);
    // IEEE 754 total order (floats, parquet-format 2.11+) refines IEEE comparison on every
    // value but NaN, and NaN bounds are dropped: its bounds are bounds here too.
    let float_total = dom == ParquetDomain::Float && order == ColumnOrder::IEEE_754_TOTAL_ORDER;
    !s.is_min_max_deprecated() && (order == ColumnOrder::TYPE_DEFINED_ORDER(want) || float_total)
}

fn value(v: V) -> Option<ParquetValue> {
    Some(ParquetValue { v: Some(v) })
}

/// `b` cut to at most `max` bytes: (bound, exact still).
fn truncate_min(b: &[u8], max: usize) -> (Vec<u8>, bool) {
    (b[..b.len().min(max)].to_vec(), b.len() <= max)
}

/// The smallest byte string of at most `max` bytes that is at least `b`, when one exists:
/// `b` itself if short enough, else a prefix with its last byte below 0xFF incremented.
fn truncate_max(b: &[u8], max: usize) -> Option<(Vec<u8>, bool)> {
    if b.len() <= max {
        return Some((b.to_vec(), true));
    }
    let mut p = b[..max].to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some((p, false));
        }
    }
    None
}

/// Min/max of one column chunk in the column's domain, with their exactness.
fn bounds(
    c: &ParquetColumn,
    s: &Statistics,
    limits: &Limits,
) -> (Option<ParquetValue>, Option<ParquetValue>, bool, bool) {
    let dom = ParquetDomain::try_from(c.domain).unwrap_or(ParquetDomain::Unknown);
    let (mut min_exact, mut max_exact) = (s.min_is_exact(), s.max_is_exact());
    let num = |f: f64| (!f.is_nan()).then_some(V::Float(f));
    let (min, max) = match (dom, s) {
        (ParquetDomain::Int, Statistics::Int32(v)) => (
            v.min_opt().map(|x| V::Int(*x as i64)),
            v.max_opt().map(|x| V::Int(*x as i64)),
        ),
        (ParquetDomain::Int, Statistics::Int64(v)) => (
            v.min_opt().map(|x| V::Int(*x)),
            v.max_opt().map(|x| V::Int(*x)),
        ),
        (ParquetDomain::Uint, Statistics::Int32(v)) => (
            v.min_opt().map(|x| V::Uint(*x as u32 as u64)),
            v.max_opt().map(|x| V::Uint(*x as u32 as u64)),
        ),
        (ParquetDomain::Uint, Statistics::Int64(v)) => (
            v.min_opt().map(|x| V::Uint(*x as u64)),
            v.max_opt().map(|x| V::Uint(*x as u64)),
        ),
        (ParquetDomain::Float, Statistics::Float(v)) => (
            v.min_opt().and_then(|x| num(*x as f64)),
            v.max_opt().and_then(|x| num(*x as f64)),
        ),
        (ParquetDomain::Float, Statistics::Double(v)) => (
            v.min_opt().and_then(|x| num(*x)),
            v.max_opt().and_then(|x| num(*x)),
        ),
        (ParquetDomain::Bool, Statistics::Boolean(v)) => (
            v.min_opt().map(|x| V::Bool(*x)),
            v.max_opt().map(|x| V::Bool(*x)),
        ),
        (ParquetDomain::Bytes, Statistics::ByteArray(_) | Statistics::FixedLenByteArray(_)) => {
            let min = s.min_bytes_opt().map(|b| {
                let (t, exact) = truncate_min(b, limits.max_bytes_stat);
                min_exact &= exact;
                V::Bytes(t)
            });
            let max = s
                .max_bytes_opt()
                .and_then(|b| truncate_max(b, limits.max_bytes_stat))
                .map(|(t, exact)| {
                    max_exact &= exact;
                    V::Bytes(t)
                });
            (min, max)
        }
        _ => (None, None),
    };
    (
        min.and_then(value),
        max.and_then(value),
        min_exact,
        max_exact,
    )
}

/// The statistics of one row group.
fn row_group(
    meta: &ParquetMetaData,
    rg: &RowGroupMetaData,
    columns: &[ParquetColumn],
    limits: &Limits,
) -> Result<RowGroupStats, IndexError> {
    let num_rows = u64::try_from(rg.num_rows())
        .map_err(|_| IndexError::Corrupt(format!("row group of {} rows", rg.num_rows())))?;
    let mut out = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let chunk = rg
            .columns()
            .get(i)
            .ok_or_else(|| IndexError::Corrupt("a row group lacks a column chunk".into()))?;
        let Some(s) = chunk.statistics() else {
            out.push(ColumnStats::default());
            continue;
        };
        let mut cs = ColumnStats {
            null_count: s.null_count_opt(),
            ..Default::default()
        };
        if c.domain == ParquetDomain::Float as i32 {
            cs.nan_count = s.nan_count_opt();
        }
        if bounds_usable(meta, i, c, s) {
            (cs.min, cs.max, cs.min_exact, cs.max_exact) = bounds(c, s, limits);
        }
        out.push(cs);
    }
    Ok(RowGroupStats {
        num_rows,
        columns: out,
    })
}

/// The statistics record, or `None` when it would be over its limits.
fn stats(
    meta: &ParquetMetaData,
    columns: Vec<ParquetColumn>,
    limits: &Limits,
) -> Result<Option<ParquetStats>, IndexError> {
    let groups = meta.row_groups();
    if columns.len() > MAX_PARQUET_COLUMNS || groups.len() > MAX_PARQUET_ROW_GROUPS {
        return Ok(None);
    }
    let max_stats = limits.max_stats.min(MAX_PARQUET_STATS);
    let mut s = ParquetStats {
        version: PARQUET_RECORD_VERSION,
        columns,
        row_groups: Vec::with_capacity(groups.len()),
    };
    let mut size = s.encoded_len();
    for rg in groups {
        let r = row_group(meta, rg, &s.columns, limits)?;
        // Field tag, length prefix and message: an upper bound on what the group adds.
        size += r.encoded_len() + 11;
        if size > max_stats {
            return Ok(None);
        }
        s.row_groups.push(r);
    }
    Ok((s.encoded_len() <= max_stats).then_some(s))
}

/// The byte ranges of the file (of `size` bytes, whose last bytes are `tail`, holding at
/// least the footer and its trailer) that hold the column chunks of `row_groups`: sorted,
/// adjacent or overlapping ranges merged. For a reader's planner: fetch these, nothing else.
pub fn row_group_ranges(
    tail: &[u8],
    size: u64,
    row_groups: &[u32],
) -> Result<Vec<Range<u64>>, IndexError> {
    let f = footer(tail, size, MAX_PARQUET_TAIL)?.ok_or(IndexError::NotParquet)?;
    let data_end = size - (f.len as u64 + TRAILER);
    let groups = f.meta.row_groups();
    let mut ranges = Vec::new();
    for &index in row_groups {
        let rg = groups
            .get(index as usize)
            .ok_or(IndexError::NoSuchRowGroup {
                index,
                count: groups.len(),
            })?;
        for chunk in rg.columns() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let len = chunk.compressed_size();
            let range = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| Some(s..s.checked_add(l)?))
                .filter(|r| r.start >= MAGIC.len() as u64 && r.end <= data_end)
                .ok_or_else(|| {
                    IndexError::Corrupt(format!(
                        "column chunk at {start} of {len} bytes outside the data of {data_end} bytes"
                    ))
                })?;
            ranges.push(range);
        }
    }
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_bounds() {
        assert_eq!(truncate_min(b"abcdef", 3), (b"abc".to_vec(), false));
        assert_eq!(truncate_min(b"abc", 3), (b"abc".to_vec(), true));
        assert_eq!(truncate_max(b"abcdef", 3), Some((b"abd".to_vec(), false)));
        assert_eq!(
            truncate_max(b"ab\xff\xffz", 4),
            Some((b"ac".to_vec(), false))
        );
        assert_eq!(truncate_max(b"abc", 3), Some((b"abc".to_vec(), true)));
        assert_eq!(truncate_max(b"\xff\xff\xff\xff", 2), None);
        for s in [&b"abcdef"[..], b"ab\xff\xffz", b"a\xff"] {
            let (max, _) = truncate_max(s, 2).unwrap();
            assert!(max.as_slice() >= s, "{max:?} >= {s:?}");
            assert!(truncate_min(s, 2).0.as_slice() <= s);
        }
    }
}
