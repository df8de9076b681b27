//! Scan planning over Parquet files (issue 16): which files under a prefix, which of their row
//! groups, and which bytes, a query with a predicate must read, without reading a footer from
//! a chunkserver.
//!
//! [`crate::Client::plan_scan`] pages through the pruned listing ([`crate::Client::list_where`]):
//! the master lists only the files whose statistics may hold a matching row, with the row
//! groups that may. For each indexed file the planner asks the master for the file's stored
//! tail (it holds the footer) and computes the byte ranges of the chosen row groups' column
//! chunks from it (`anode_pqindex::row_group_ranges`). A file without statistics is planned
//! whole (`row_groups` None: the reader reads all of it). [`crate::Client::read_ranges`] then
//! reads exactly those ranges straight from the chunkservers, verified, from the version that
//! was planned.
//!
//! The plan is of the versions listed: a file overwritten between the listing and the tail
//! read is planned whole at its new version (its row groups were chosen for the old one).

use std::ops::Range;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::{ByteRangeSpec, Client, ClientError, Manifest, ObjectEntry};

/// Most files one [`crate::Client::plan_scan`] plans (the listing stops with an error past it:
/// narrow the prefix or the predicate).
pub const MAX_SCAN_FILES: usize = 100_000;

/// The tail suffix asked for first: the writer's default tail window, so one call answers for
/// files whose footer fits in it (a second call asks for the whole stored tail otherwise).
const FIRST_TAIL: u64 = 64 << 10;

/// One file of a scan plan.
#[derive(Clone, Debug)]
pub struct ScanFile {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The version planned (`Manifest.object_version`).
    pub object_version: u64,
    /// The row groups that may hold a matching row (ascending); None = not indexed (or
    /// overwritten since the listing): read the whole file.
    pub row_groups: Option<Vec<u32>>,
    /// The byte ranges of those row groups' column chunks, in file order, merged where they
    /// touch; empty when `row_groups` is None.
    pub ranges: Vec<Range<u64>>,
    /// The manifest of the version planned ([`crate::Client::read_ranges`] reads from it).
    pub manifest: Manifest,
}

impl ScanFile {
    /// Bytes [`crate::Client::read_ranges`] reads for this file.
    pub fn bytes_to_read(&self) -> u64 {
        match self.row_groups {
            Some(_) => self.ranges.iter().map(|r| r.end - r.start).sum(),
            None => self.size,
        }
    }
}

impl Client {
    /// The scan plan of the Parquet files under `prefix` of `bucket` for `predicate` (see the
    /// [module docs](crate::scan)). An empty predicate plans every file whole. A bad predicate
    /// is `InvalidArgument` (from the master, naming the position).
    pub async fn plan_scan(
        &self,
        bucket: &str,
        prefix: &str,
        predicate: &str,
    ) -> Result<Vec<ScanFile>, ClientError> {
        let mut files = Vec::new();
        let mut start_after = String::new();
        loop {
            let page = self
                .list_where(bucket, prefix, predicate, &start_after)
                .await?;
            if files.len() + page.objects.len() > MAX_SCAN_FILES {
                return Err(ClientError::InvalidArgument(format!(
                    "a scan of more than {MAX_SCAN_FILES} files"
                )));
            }
            for e in &page.objects {
                let rgs = e.indexed.then(|| e.row_groups.clone());
                files.push(self.plan_entry(bucket, e, rgs).await?);
            }
            if !page.is_truncated || page.next_start_after.as_str() <= start_after.as_str() {
                break;
            }
            start_after = page.next_start_after;
        }
        Ok(files)
    }

    /// The plan of the current version of one file for the given row groups (None: the whole
    /// file). `InvalidArgument` when a row group is past the file's, or the file has no
    /// stored Parquet tail while row groups were asked for.
    pub async fn plan_file(
        &self,
        bucket: &str,
        key: &str,
        row_groups: Option<Vec<u32>>,
    ) -> Result<ScanFile, ClientError> {
        let (m, tail) = self.footer_tail(bucket, key).await?;
        let Some(rgs) = row_groups else {
            return Ok(whole(key, m));
        };
        let Some(tail) = tail else {
            return Err(ClientError::InvalidArgument(format!(
                "{key}: no stored Parquet tail to plan row groups from"
            )));
        };
        planned(key, m, &tail, rgs)
    }

    async fn plan_entry(
        &self,
        bucket: &str,
        e: &ObjectEntry,
        row_groups: Option<Vec<u32>>,
    ) -> Result<ScanFile, ClientError> {
        let Some(rgs) = row_groups else {
            // Not indexed: no tail to read; the listing's version is the one to read.
            let m = self.get_version(bucket, &e.key, None, false).await?;
            return Ok(whole(&e.key, m));
        };
        let (m, tail) = self.footer_tail(bucket, &e.key).await?;
        match tail {
            Some(tail) if m.object_version == e.object_version => planned(&e.key, m, &tail, rgs),
            _ => Ok(whole(&e.key, m)),
        }
    }

    /// The current manifest of `key` and, when it has a Parquet index, its stored tail.
    async fn footer_tail(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Manifest, Option<Bytes>), ClientError> {
        let suffix = |n| ByteRangeSpec {
            start: None,
            end: None,
            suffix: Some(n),
        };
        let (m, tail) = self
            .get_version_tail(bucket, key, None, false, Some(suffix(FIRST_TAIL)))
            .await?;
        let Some(info) = m.parquet.clone() else {
            return Ok((m, None));
        };
        let need = u64::from(info.footer_len) + 8;
        if let Some((_, b)) = tail {
            if b.len() as u64 >= need {
                return Ok((m, Some(b)));
            }
        }
        // The footer is longer than the first ask: the whole stored tail, of that version.
        let version = (!m.version_id.is_empty()).then(|| m.version_id.clone());
        let (m2, tail) = self
            .get_version_tail(
                bucket,
                key,
                version.as_deref(),
                false,
                Some(suffix(info.tail_len.min(m.size))),
            )
            .await?;
        if m2.object_version != m.object_version {
            return Ok((m2, None));
        }
        Ok((m2, tail.map(|(_, b)| b)))
    }

    /// The bytes of `file`'s ranges (each whole, in order, with its range), straight from the
    /// chunkservers and verified; a file planned whole is one range `0..size`. Reads from the
    /// planned version, so an overwrite since does not mix versions.
    pub fn read_ranges(
        &self,
        bucket: &str,
        file: &ScanFile,
    ) -> impl Stream<Item = Result<(Range<u64>, Bytes), ClientError>> + Send + 'static {
        let ranges = match file.row_groups {
            Some(_) => file.ranges.clone(),
            None if file.size > 0 => std::iter::once(0..file.size).collect(),
            None => Vec::new(),
        };
        let client = self.clone();
        let bucket = bucket.to_string();
        let m = file.manifest.clone();
        futures::stream::iter(ranges).then(move |r| {
            let s = client.read_manifest(&bucket, &m, Some((r.start, r.end - 1)));
            async move {
                let pieces: Vec<Bytes> = s.try_collect().await?;
                let b = Bytes::from(pieces.concat());
                if b.len() as u64 != r.end - r.start {
                    return Err(ClientError::Internal(format!(
                        "read {} bytes of range {r:?}",
                        b.len()
                    )));
                }
                Ok((r, b))
            }
        })
    }
}

fn whole(key: &str, m: Manifest) -> ScanFile {
    ScanFile {
        key: key.to_string(),
        size: m.size,
        object_version: m.object_version,
        row_groups: None,
        ranges: Vec::new(),
        manifest: m,
    }
}

fn planned(key: &str, m: Manifest, tail: &[u8], rgs: Vec<u32>) -> Result<ScanFile, ClientError> {
    let ranges = anode_pqindex::row_group_ranges(tail, m.size, &rgs)
        .map_err(|e| ClientError::InvalidArgument(format!("{key}: {e}")))?;
    Ok(ScanFile {
        key: key.to_string(),
        size: m.size,
        object_version: m.object_version,
        row_groups: Some(rgs),
        ranges,
        manifest: m,
    })
}
