//! Parquet indexes in the state machine (issue 16; command version 8, store format 9): a
//! version's stored tail (`f/`) and statistics (`g/`) beside its manifest, keyed by the
//! version's `object_version`, written with the put that commits it (or later by
//! `SetParquetIndex`), copied by copies, and removed with the version.
//!
//! | key | value |
//! |---|---|
//! | `f/<bucket>\0<key>\0<object_version u64be>` | `ParquetTail` (the file's last bytes) |
//! | `g/<bucket>\0<key>\0<object_version u64be>` | `ParquetStats` |
//!
//! The index is computed by the writer (`anode_pqindex::index_tail`), which is trusted as much
//! as the bytes it writes; the state machine checks its shape and sizes, never parses Parquet
//! (an apply must not depend on a parser that may change between releases).

use anode_proto::*;
use prost::Message;

use super::records::get_msg;
use super::{get_bucket, versions, CommandResult, Res, StateError};
use crate::kv::{KvRead, Overlay};

/// The largest stored tail: a file whose footer (plus its 8-byte trailer) is larger is stored
/// without an index. Writers choose smaller tails (`anode_pqindex::Limits`).
pub const MAX_PARQUET_TAIL: u64 = 4 << 20;
/// The largest encoded statistics record; larger statistics are not stored (`has_stats` false).
pub const MAX_PARQUET_STATS: usize = 1 << 20;
/// The most leaf columns and row groups a statistics record may describe.
pub const MAX_PARQUET_COLUMNS: usize = 10_000;
/// See [`MAX_PARQUET_COLUMNS`].
pub const MAX_PARQUET_ROW_GROUPS: usize = 100_000;
/// The version of `ParquetTail` and `ParquetStats` records.
pub const PARQUET_RECORD_VERSION: u32 = 1;

fn index_key(prefix: &[u8; 2], bucket: &str, key: &str, object_version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + bucket.len() + key.len() + 10);
    k.extend_from_slice(prefix);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(&object_version.to_be_bytes());
    k
}

/// `f/<bucket>\0<key>\0<object_version>`.
pub(crate) fn tail_key(bucket: &str, key: &str, object_version: u64) -> Vec<u8> {
    index_key(b"f/", bucket, key, object_version)
}

/// `g/<bucket>\0<key>\0<object_version>`.
pub(crate) fn stats_key(bucket: &str, key: &str, object_version: u64) -> Vec<u8> {
    index_key(b"g/", bucket, key, object_version)
}

fn bad(msg: impl Into<String>) -> StateError {
    StateError::InvalidArgument(format!("parquet index: {}", msg.into()))
}

/// Check an index as a writer sent it for an object of `size` bytes: a tail that ends the way
/// a Parquet file ends and agrees with its summary, sizes under their caps, statistics whose
/// row groups describe every listed column.
pub fn check_index(ix: &ParquetIndex, size: u64) -> Result<(), StateError> {
    let info = ix.info.as_ref().ok_or_else(|| bad("no summary"))?;
    let tail = &ix.tail;
    if tail.len() as u64 != info.tail_len {
        return Err(bad(format!(
            "tail of {} bytes, summary says {}",
            tail.len(),
            info.tail_len
        )));
    }
    if info.tail_len > MAX_PARQUET_TAIL || info.tail_len > size {
        return Err(bad(format!(
            "tail of {} bytes (object {size}, at most {MAX_PARQUET_TAIL})",
            info.tail_len
        )));
    }
    if (info.footer_len as u64) + 8 > info.tail_len || !tail.ends_with(b"PAR1") {
        return Err(bad("the tail does not hold the footer and its trailer"));
    }
    let n = tail.len();
    let stated = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]);
    if stated != info.footer_len {
        return Err(bad(format!(
            "footer length {} in the trailer, summary says {}",
            stated, info.footer_len
        )));
    }
    if info.schema_hash.len() > 32 {
        return Err(bad("schema hash over 32 bytes"));
    }
    match &ix.stats {
        None if info.has_stats => Err(bad("summary says statistics, none given")),
        None => Ok(()),
        Some(_) if !info.has_stats => Err(bad("statistics given, summary says none")),
        Some(s) => check_stats(s, info),
    }
}

fn check_stats(s: &ParquetStats, info: &ParquetInfo) -> Result<(), StateError> {
    if s.version != PARQUET_RECORD_VERSION {
        return Err(bad(format!("statistics version {}", s.version)));
    }
    if s.encoded_len() > MAX_PARQUET_STATS {
        return Err(bad(format!(
            "statistics of {} bytes, at most {MAX_PARQUET_STATS}",
            s.encoded_len()
        )));
    }
    if s.columns.len() > MAX_PARQUET_COLUMNS || s.row_groups.len() > MAX_PARQUET_ROW_GROUPS {
        return Err(bad("too many columns or row groups"));
    }
    if s.row_groups.len() as u64 != info.num_row_groups as u64 {
        return Err(bad("row group count differs from the summary"));
    }
    if s.row_groups
        .iter()
        .any(|rg| rg.columns.len() != s.columns.len())
    {
        return Err(bad("a row group does not describe every column"));
    }
    Ok(())
}

/// Store `ix` for version `m` (already installed with its `object_version`) and note it in
/// `m`, which the caller writes.
fn store(o: &mut Overlay<'_>, bucket: &str, key: &str, m: &mut Manifest, ix: ParquetIndex) {
    let ver = m.object_version;
    let mut info = ix.info.unwrap_or_default();
    info.has_stats = ix.stats.is_some();
    o.put(
        tail_key(bucket, key, ver),
        ParquetTail {
            version: PARQUET_RECORD_VERSION,
            data: ix.tail,
        }
        .encode_to_vec(),
    );
    if let Some(s) = ix.stats {
        o.put(stats_key(bucket, key, ver), s.encode_to_vec());
    }
    m.parquet = Some(info);
}

/// The index a put brings: its own (checked against the manifest's size) or, for a copy, the
/// source version's (if it has one).
pub(super) fn index_for_put(
    o: &dyn KvRead,
    c: &PutObjectCmd,
    size: u64,
) -> Result<Option<ParquetIndex>, StateError> {
    if let Some(ix) = &c.parquet {
        check_index(ix, size)?;
        return Ok(Some(ix.clone()));
    }
    let Some(src) = &c.parquet_copy else {
        return Ok(None);
    };
    // The source version's own summary and records, as stored (none when the version is gone
    // or has no index).
    let info = versions::find_by_object_version(o, &src.bucket, &src.key, src.object_version)
        .and_then(|m| m.parquet);
    let (Some(info), Some(tail)) = (info, get_tail(o, &src.bucket, &src.key, src.object_version))
    else {
        return Ok(None);
    };
    Ok(Some(ParquetIndex {
        stats: get_stats(o, &src.bucket, &src.key, src.object_version),
        info: Some(info),
        tail,
    }))
}

/// Before a put's version `m` (with its `object_version`) is installed: store its index and
/// note it in `m`. A summary the writer's manifest carried (a copied manifest names the
/// source's records) is never kept as it came.
pub(super) fn attach(
    o: &mut Overlay<'_>,
    bucket: &str,
    key: &str,
    m: &mut Manifest,
    ix: Option<ParquetIndex>,
) {
    m.parquet = None;
    if let Some(ix) = ix {
        store(o, bucket, key, m, ix);
    }
}

/// Remove the index of a version removed for good.
pub(super) fn drop_index(o: &mut Overlay<'_>, bucket: &str, key: &str, m: &Manifest) {
    if m.parquet.is_some() {
        o.delete(tail_key(bucket, key, m.object_version));
        o.delete(stats_key(bucket, key, m.object_version));
    }
}

/// `SetParquetIndex`: index a version written without one, if it is still there and has none.
/// `written` = 1 when applied.
pub(super) fn set_index(o: &mut Overlay<'_>, c: &SetParquetIndexCmd) -> Res {
    get_bucket(o, &c.bucket).ok_or_else(|| StateError::NoSuchBucket(c.bucket.clone()))?;
    let ix = c.index.clone().ok_or_else(|| bad("no index"))?;
    let found = versions::find_by_object_version(o, &c.bucket, &c.key, c.object_version);
    let Some(mut m) = found.filter(|m| m.parquet.is_none()) else {
        return Ok(CommandResult::default());
    };
    check_index(&ix, m.size)?;
    store(o, &c.bucket, &c.key, &mut m, ix);
    let info = m.parquet.take();
    versions::update_by_object_version(o, &c.bucket, &c.key, c.object_version, |v| {
        v.parquet = info;
    });
    Ok(CommandResult {
        written: 1,
        ..Default::default()
    })
}

/// The stored tail of a version, if it has one.
pub fn get_tail(kv: &dyn KvRead, bucket: &str, key: &str, object_version: u64) -> Option<Vec<u8>> {
    get_msg::<ParquetTail>(kv, &tail_key(bucket, key, object_version)).map(|t| t.data)
}

/// The stored statistics of a version, if it has them.
pub fn get_stats(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    object_version: u64,
) -> Option<ParquetStats> {
    get_msg(kv, &stats_key(bucket, key, object_version))
}

/// The part of the stored tail that answers `range` of version `m`, and where it starts: only
/// when the whole range lies in the tail (`None` otherwise, or for an unsatisfiable range).
pub fn tail_slice(m: &Manifest, tail: &[u8], range: &ByteRangeSpec) -> Option<(u64, Vec<u8>)> {
    let size = m.size;
    let tail_start = size.checked_sub(tail.len() as u64)?;
    let (start, end) = match (range.start, range.end, range.suffix) {
        (None, None, Some(n)) if n > 0 => (size.saturating_sub(n), size - 1),
        (Some(s), e, None) if s < size => (s, e.map_or(size - 1, |e| e.min(size - 1))),
        _ => return None,
    };
    if start < tail_start || end < start {
        return None;
    }
    let from = (start - tail_start) as usize;
    let to = (end - tail_start) as usize;
    Some((start, tail.get(from..=to)?.to_vec()))
}
