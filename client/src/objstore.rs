//! [`AnodeStore`]: one bucket of an Anode cluster as an `object_store::ObjectStore` (issue 16),
//! so Parquet readers (parquet's `ParquetObjectReader`, DataFusion's `ListingTable`) read
//! Anode directly: metadata from the masters, bytes straight from the chunkservers, no S3
//! gateway in between.
//!
//! - Reads (`get_opts`, and through it `get`, `get_range`, `head`) ask the master for the
//!   version together with the bytes of the range when the version's stored Parquet tail
//!   covers it ([`Client::get_version_tail`]): a reader's footer reads (`-8`, `-64KiB`, the
//!   footer itself) are answered by the master alone, without a chunk read. Other ranges are
//!   read from the chunkservers from that same manifest. [`AnodeStore::stats`] counts both.
//!   `get_ranges` reads every range of one call from one version (one master call).
//!   Conditions (`if_match`, `if_none_match`, `if_modified_since`, `if_unmodified_since`) are
//!   checked against the manifest read, so the bytes returned are of the version checked;
//!   `version` names an S3 version id (versioned buckets).
//! - Writes: `put_opts` stores the payload as one object (a Parquet body is indexed by the
//!   client's writer); `PutMode::Create` is the master's "must not exist" condition and
//!   `PutMode::Update` its etag condition, both decided by the state machine.
//!   `put_multipart_opts` is a real multipart upload: parts are buffered to S3's 5 MiB
//!   minimum (the last part may be smaller), and the completed object is indexed as Parquet
//!   when it is one ([`Client::index_parquet_version`]).
//! - Listings page through `ListObjects`; a store made [`AnodeStore::with_where`] lists through
//!   the pruned listing ([`Client::list_where`]) instead, so a table scan over the store only
//!   sees files whose statistics may hold a matching row.
//! - Copies are by reference (no bytes move); `CopyMode::Create` copies only when the
//!   destination does not exist.
//!
//! Errors map to `object_store::Error`: a missing key or version is `NotFound`, a failed
//! create condition `AlreadyExists`, other failed conditions `Precondition` (or
//! `NotModified` for `if_none_match` / `if_modified_since`), anything else `Generic` with the
//! [`ClientError`] as source.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, CopyMode, CopyOptions, GetOptions, GetRange, GetResult,
    GetResultPayload, ListResult, MultipartUpload, ObjectMeta, PutMode, PutMultipartOptions,
    PutOptions as OsPutOptions, PutPayload, PutResult, UploadPart,
};
use parking_lot::Mutex;

use crate::{ByteRangeSpec, Client, ClientError, CompletePart, ErrorCode, Manifest, PutOptions};

/// Name of the store in `object_store` errors.
const STORE: &str = "Anode";

/// S3's smallest part (all parts but the last): a multipart upload buffers to this.
pub const MIN_PART_BYTES: usize = 5 << 20;

/// Most keys one listing page asks for.
const PAGE_KEYS: u32 = 1000;

/// The system metadata an [`Attribute`] is stored as (the gateway's header names).
fn system_key(a: &Attribute) -> Option<&'static str> {
    Some(match a {
        Attribute::CacheControl => "cache-control",
        Attribute::ContentDisposition => "content-disposition",
        Attribute::ContentEncoding => "content-encoding",
        Attribute::ContentLanguage => "content-language",
        _ => return None,
    })
}

/// What an [`AnodeStore`]'s reads did, for tests and metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    tail_hits: AtomicU64,
    tail_misses: AtomicU64,
    chunk_reads: AtomicU64,
    chunk_bytes: AtomicU64,
    chunk_read_end: AtomicU64,
}

/// A copy of [`StoreStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Ranged reads answered from the stored Parquet tail (no chunk read).
    pub tail_hits: u64,
    /// Ranged reads the stored tail did not cover (read from chunkservers), objects without
    /// a Parquet index included.
    pub tail_misses: u64,
    /// Reads (ranges or whole bodies) sent to the chunkservers.
    pub chunk_reads: u64,
    /// Bytes those reads asked for.
    pub chunk_bytes: u64,
    /// The highest end offset (exclusive) of any chunk read: a Parquet reader whose footer
    /// reads all hit the tail never reads past the start of the footer.
    pub chunk_read_end: u64,
}

impl StoreStats {
    fn hit(&self) {
        self.tail_hits.fetch_add(1, Ordering::Relaxed);
    }

    fn miss(&self) {
        self.tail_misses.fetch_add(1, Ordering::Relaxed);
    }

    fn chunk_read(&self, r: &Range<u64>) {
        self.chunk_reads.fetch_add(1, Ordering::Relaxed);
        self.chunk_bytes
            .fetch_add(r.end - r.start, Ordering::Relaxed);
        self.chunk_read_end.fetch_max(r.end, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            tail_hits: self.tail_hits.load(Ordering::Relaxed),
            tail_misses: self.tail_misses.load(Ordering::Relaxed),
            chunk_reads: self.chunk_reads.load(Ordering::Relaxed),
            chunk_bytes: self.chunk_bytes.load(Ordering::Relaxed),
            chunk_read_end: self.chunk_read_end.load(Ordering::Relaxed),
        }
    }
}

/// One bucket of an Anode cluster as an `object_store::ObjectStore` (see the module docs).
#[derive(Clone)]
pub struct AnodeStore {
    client: Client,
    bucket: String,
    predicate: Option<String>,
    stats: Arc<StoreStats>,
}

impl fmt::Debug for AnodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnodeStore")
            .field("bucket", &self.bucket)
            .field("predicate", &self.predicate)
            .finish()
    }
}

impl fmt::Display for AnodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.predicate {
            Some(p) => write!(f, "Anode({} where {p})", self.bucket),
            None => write!(f, "Anode({})", self.bucket),
        }
    }
}

impl AnodeStore {
    /// The bucket `bucket` through `client`.
    pub fn new(client: Client, bucket: impl Into<String>) -> AnodeStore {
        AnodeStore {
            client,
            bucket: bucket.into(),
            predicate: None,
            stats: Arc::default(),
        }
    }

    /// The same store whose listings (`list`, `list_with_offset`, `list_with_delimiter`) list
    /// only the objects whose
    /// Parquet statistics may hold a row matching `predicate` (docs/parquet.md), plus every
    /// object without statistics. Reads and writes are unchanged. The predicate is checked by
    /// the master on the first listing (a bad one fails that listing).
    pub fn with_where(&self, predicate: impl Into<String>) -> AnodeStore {
        AnodeStore {
            predicate: Some(predicate.into()),
            ..self.clone()
        }
    }

    /// The bucket this store is.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The client it reads and writes through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What its reads did so far (shared by its clones and [`AnodeStore::with_where`] copies).
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The manifest of `location` and, when the stored tail covers `range`, its bytes.
    async fn version(
        &self,
        location: &Path,
        version: Option<&str>,
        range: Option<ByteRangeSpec>,
    ) -> object_store::Result<(Manifest, Option<(u64, Bytes)>)> {
        self.client
            .get_version_tail(&self.bucket, location.as_ref(), version, false, range)
            .await
            .map_err(|e| map_err(location, e, Cond::Read))
    }

    /// The bytes `r` of `m`, from the chunkservers (inline bodies from the manifest).
    fn read_chunks(
        &self,
        location: &Path,
        m: &Manifest,
        r: &Range<u64>,
    ) -> BoxStream<'static, object_store::Result<Bytes>> {
        if r.is_empty() {
            return futures::stream::empty().boxed();
        }
        self.stats.chunk_read(r);
        let path = location.clone();
        self.client
            .read_manifest(&self.bucket, m, Some((r.start, r.end - 1)))
            .map_err(move |e| map_err(&path, e, Cond::Read))
            .boxed()
    }

    /// One listing page (pruned when the store has a predicate).
    async fn page(
        &self,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
    ) -> Result<crate::ListObjectsResponse, ClientError> {
        self.client
            .list_objects(crate::ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: prefix.to_string(),
                delimiter: delimiter.to_string(),
                start_after: start_after.to_string(),
                max_keys: PAGE_KEYS,
                r#where: self.predicate.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await
    }

    /// Every object under `prefix` after `start_after`, page by page.
    fn list_from(
        &self,
        prefix: Option<&Path>,
        start_after: String,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = dir_prefix(prefix);
        futures::stream::try_unfold(Some(start_after), move |start_after| {
            let store = store.clone();
            let prefix = prefix.clone();
            async move {
                let Some(start_after) = start_after else {
                    return Ok::<_, object_store::Error>(None);
                };
                let page = store
                    .page(&prefix, "", &start_after)
                    .await
                    .map_err(|e| map_err(&Path::from(prefix.as_str()), e, Cond::Read))?;
                let next = next_start(&page, &start_after);
                let metas = page.objects.iter().map(entry_meta).collect::<Vec<_>>();
                Ok(Some((futures::stream::iter(metas), next)))
            }
        })
        .try_flatten()
        .boxed()
    }
}

/// Where to continue a listing after `page` (None: done). A truncated page that does not move
/// forward is an error of the master's; stopping there keeps the listing finite.
fn next_start(page: &crate::ListObjectsResponse, start_after: &str) -> Option<String> {
    (page.is_truncated && page.next_start_after.as_str() > start_after)
        .then(|| page.next_start_after.clone())
}

/// `object_store` prefixes are whole path segments: `a/b` lists `a/b/...`, never `a/bc`.
fn dir_prefix(prefix: Option<&Path>) -> String {
    match prefix.map(|p| p.as_ref()) {
        None | Some("") => String::new(),
        Some(p) => format!("{p}/"),
    }
}

fn time(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

fn entry_meta(e: &crate::ObjectEntry) -> object_store::Result<ObjectMeta> {
    Ok(ObjectMeta {
        location: Path::parse(&e.key)?,
        last_modified: time(e.mtime_ms),
        size: e.size,
        e_tag: Some(e.etag.clone()),
        version: None,
    })
}

fn manifest_meta(location: &Path, m: &Manifest) -> ObjectMeta {
    ObjectMeta {
        location: location.clone(),
        last_modified: time(m.mtime_ms),
        size: m.size,
        e_tag: Some(m.etag.clone()),
        version: (!m.version_id.is_empty()).then(|| m.version_id.clone()),
    }
}

fn manifest_attributes(m: &Manifest) -> Attributes {
    let mut a = Attributes::new();
    if !m.content_type.is_empty() {
        a.insert(Attribute::ContentType, m.content_type.clone().into());
    }
    for attr in [
        Attribute::CacheControl,
        Attribute::ContentDisposition,
        Attribute::ContentEncoding,
        Attribute::ContentLanguage,
    ] {
        let key = system_key(&attr).unwrap_or_default();
        if let Some(v) = m.system_metadata.get(key) {
            a.insert(attr, v.clone().into());
        }
    }
    for (k, v) in &m.user_metadata {
        a.insert(Attribute::Metadata(Cow::Owned(k.clone())), v.clone().into());
    }
    a
}

/// The client's put options for `object_store` attributes and tags. Storage classes have no
/// meaning here and are refused (`NotSupported`), like an unknown attribute.
fn put_options(
    location: &Path,
    attributes: &Attributes,
    tags: &object_store::TagSet,
) -> object_store::Result<PutOptions> {
    let mut o = PutOptions::default();
    for (k, v) in attributes {
        let v: &AttributeValue = v;
        match k {
            Attribute::ContentType => o.content_type = v.to_string(),
            Attribute::Metadata(name) => {
                o.user_metadata.insert(name.to_string(), v.to_string());
            }
            other => match system_key(other) {
                Some(key) => {
                    o.system_metadata.insert(key.to_string(), v.to_string());
                }
                None => {
                    return Err(object_store::Error::NotSupported {
                        source: format!("{location}: attribute {other:?} is not stored by Anode")
                            .into(),
                    })
                }
            },
        }
    }
    o.tags = parse_tags(tags.encoded())
        .into_iter()
        .map(|(key, value)| crate::Tag { key, value })
        .collect();
    Ok(o)
}

/// The pairs of a URL-encoded tag set (`k=v&k2=v2`, `+` for a space, as `TagSet` writes it).
fn parse_tags(encoded: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    encoded
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// What a failed condition means for the call that had it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    /// A read (no condition is sent to the master; kept for completeness).
    Read,
    /// A create (`PutMode::Create`, `CopyMode::Create`): the object exists.
    Create,
    /// An update (`PutMode::Update`): the etag no longer matches.
    Update,
}

/// A [`ClientError`] as the `object_store` error of an operation on `location`.
fn map_err(location: &Path, e: ClientError, cond: Cond) -> object_store::Error {
    let path = location.to_string();
    match e.code() {
        ErrorCode::NoSuchKey | ErrorCode::NoSuchVersion => object_store::Error::NotFound {
            path,
            source: Box::new(e),
        },
        ErrorCode::PreconditionFailed if cond == Cond::Create => {
            object_store::Error::AlreadyExists {
                path,
                source: Box::new(e),
            }
        }
        ErrorCode::PreconditionFailed => object_store::Error::Precondition {
            path,
            source: Box::new(e),
        },
        ErrorCode::PermissionDenied => object_store::Error::PermissionDenied {
            path,
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        },
    }
}

fn generic(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: msg.into(),
    }
}

/// The range as the master's `ByteRangeSpec` (inclusive ends).
fn range_spec(r: &GetRange) -> ByteRangeSpec {
    match r {
        GetRange::Bounded(b) => ByteRangeSpec {
            start: Some(b.start),
            end: Some(b.end.saturating_sub(1)),
            suffix: None,
        },
        GetRange::Offset(o) => ByteRangeSpec {
            start: Some(*o),
            end: None,
            suffix: None,
        },
        GetRange::Suffix(n) => ByteRangeSpec {
            start: None,
            end: None,
            suffix: Some(*n),
        },
    }
}

/// The bytes `r` from a tail slice starting at `start`, if it holds all of them.
fn from_tail(tail: &Option<(u64, Bytes)>, r: &Range<u64>) -> Option<Bytes> {
    let (start, bytes) = tail.as_ref()?;
    let end = start.checked_add(bytes.len() as u64)?;
    (r.start >= *start && r.end <= end)
        .then(|| bytes.slice((r.start - start) as usize..(r.end - start) as usize))
}

/// Sorted, overlapping or touching ranges merged (a `get_ranges` answer is cut back out).
fn merge_ranges(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
    sorted.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

async fn collect_bytes(
    mut s: BoxStream<'static, object_store::Result<Bytes>>,
    len: u64,
) -> object_store::Result<Bytes> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while let Some(piece) = s.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(Bytes::from(out))
}

#[async_trait]
impl object_store::ObjectStore for AnodeStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: OsPutOptions,
    ) -> object_store::Result<PutResult> {
        let mut o = put_options(location, &opts.attributes, &opts.tags)?;
        let cond = match &opts.mode {
            PutMode::Overwrite => Cond::Read,
            PutMode::Create => {
                o.if_match_etag = Some(String::new());
                Cond::Create
            }
            PutMode::Update(v) => {
                let Some(etag) = v.e_tag.clone() else {
                    return Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: "PutMode::Update needs an e_tag (Anode conditions are on etags)"
                            .into(),
                    });
                };
                o.if_match_etag = Some(etag);
                Cond::Update
            }
        };
        let body = futures::stream::iter(payload.into_iter().map(Ok::<_, std::io::Error>));
        let m = self
            .client
            .put_object(&self.bucket, location.as_ref(), body, o)
            .await
            .map_err(|e| map_err(location, e, cond))?;
        Ok(PutResult {
            e_tag: Some(m.etag.clone()),
            version: (!m.version_id.is_empty()).then_some(m.version_id),
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let o = put_options(location, &opts.attributes, &opts.tags)?;
        let upload_id = self
            .client
            .create_multipart(&self.bucket, location.as_ref(), o)
            .await
            .map_err(|e| map_err(location, e, Cond::Read))?;
        Ok(Box::new(AnodeUpload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            location: location.clone(),
            upload_id,
            buffer: Vec::new(),
            buffered: 0,
            next_part: 1,
            parts: Arc::default(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if let Some(r) = &options.range {
            r.is_valid()
                .map_err(|e| generic(format!("{location}: {e}")))?;
        }
        // A whole read asks too: a file entirely inside its stored tail is answered at once.
        let spec = match (&options.range, options.head) {
            (_, true) => None,
            (Some(r), false) => Some(range_spec(r)),
            (None, false) => Some(ByteRangeSpec {
                start: Some(0),
                end: None,
                suffix: None,
            }),
        };
        let (m, tail) = self
            .version(location, options.version.as_deref(), spec)
            .await?;
        let meta = manifest_meta(location, &m);
        options.check_preconditions(&meta)?;
        let attributes = manifest_attributes(&m);
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                range: 0..m.size,
                meta,
                attributes,
                extensions: Default::default(),
            });
        }
        let range = match &options.range {
            Some(r) => r
                .as_range(m.size)
                .map_err(|e| generic(format!("{location}: {e}")))?,
            None => 0..m.size,
        };
        let payload = match from_tail(&tail, &range) {
            Some(b) => {
                self.stats.hit();
                futures::stream::once(async move { Ok(b) }).boxed()
            }
            None => {
                if options.range.is_some() {
                    self.stats.miss();
                }
                self.read_chunks(location, &m, &range)
            }
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    /// All `ranges` from one version: one master call (which answers the last range from the
    /// stored tail when it covers it), then the other ranges from the chunkservers, merged
    /// where they overlap or touch. A range past the end is an error (`Generic`). Parquet
    /// readers fetch footers and page indexes with single-range reads, which the tail answers;
    /// their multi-range reads are column chunks.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let merged = merge_ranges(ranges);
        let Some(last) = merged.last() else {
            return Ok(vec![Bytes::new(); ranges.len()]);
        };
        let spec = range_spec(&GetRange::Bounded(last.clone()));
        let (m, tail) = self.version(location, None, Some(spec)).await?;
        if last.end > m.size {
            return Err(generic(format!(
                "{location}: range {}..{} past the end of a {} byte object",
                last.start, last.end, m.size
            )));
        }
        let mut pieces = Vec::with_capacity(merged.len());
        for r in &merged {
            let b = match from_tail(&tail, r) {
                Some(b) => {
                    self.stats.hit();
                    b
                }
                None => {
                    self.stats.miss();
                    collect_bytes(self.read_chunks(location, &m, r), r.end - r.start).await?
                }
            };
            if b.len() as u64 != r.end - r.start {
                return Err(generic(format!(
                    "{location}: read {} bytes of range {}..{}",
                    b.len(),
                    r.start,
                    r.end
                )));
            }
            pieces.push((r.clone(), b));
        }
        ranges
            .iter()
            .map(|want| {
                if want.is_empty() {
                    return Ok(Bytes::new());
                }
                let (r, b) = pieces
                    .iter()
                    .find(|(r, _)| r.start <= want.start && want.end <= r.end)
                    .ok_or_else(|| generic(format!("{location}: range {want:?} not read")))?;
                Ok(b.slice((want.start - r.start) as usize..(want.end - r.start) as usize))
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .map(move |p| {
                let store = store.clone();
                async move {
                    let p = p?;
                    store
                        .client
                        .delete_object(&store.bucket, p.as_ref())
                        .await
                        .map_err(|e| map_err(&p, e, Cond::Read))?;
                    Ok(p)
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_from(prefix, String::new())
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_from(prefix, offset.to_string())
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let dir = dir_prefix(prefix);
        let err_path = Path::from(dir.as_str());
        let mut objects = Vec::new();
        let mut common_prefixes = Vec::new();
        let mut start_after = String::new();
        loop {
            let page = self
                .page(&dir, "/", &start_after)
                .await
                .map_err(|e| map_err(&err_path, e, Cond::Read))?;
            for e in &page.objects {
                objects.push(entry_meta(e)?);
            }
            for p in &page.common_prefixes {
                common_prefixes.push(Path::parse(p.trim_end_matches('/'))?);
            }
            match next_start(&page, &start_after) {
                Some(next) => start_after = next,
                None => break,
            }
        }
        Ok(ListResult {
            common_prefixes,
            objects,
            extensions: Default::default(),
        })
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let (b, f, t) = (&self.bucket, from.as_ref(), to.as_ref());
        match options.mode {
            CopyMode::Overwrite => {
                self.client
                    .copy_object(b, f, b, t, None)
                    .await
                    .map_err(|e| map_err(from, e, Cond::Read))?;
            }
            CopyMode::Create => {
                let src = self
                    .client
                    .head_object(b, f)
                    .await
                    .map_err(|e| map_err(from, e, Cond::Read))?;
                // Keep the source's metadata; only add the "must not exist" condition.
                let keep = PutOptions {
                    content_type: src.content_type.clone(),
                    user_metadata: src.user_metadata.clone(),
                    system_metadata: src.system_metadata.clone(),
                    tags: src.tags.clone(),
                    if_match_etag: Some(String::new()),
                    ..Default::default()
                };
                self.client
                    .copy_from_manifest(b, f, src, b, t, Some(keep))
                    .await
                    .map_err(|e| map_err(to, e, Cond::Create))?;
            }
        }
        Ok(())
    }
}

/// A multipart upload through an [`AnodeStore`]: `put_part` payloads are buffered up to
/// [`MIN_PART_BYTES`] and uploaded as numbered parts; `complete` uploads the rest as the last
/// part, completes, and indexes the object if it is Parquet.
struct AnodeUpload {
    client: Client,
    bucket: String,
    location: Path,
    upload_id: String,
    buffer: Vec<Bytes>,
    buffered: usize,
    next_part: u32,
    parts: Arc<Mutex<Vec<CompletePart>>>,
}

impl fmt::Debug for AnodeUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnodeUpload")
            .field("bucket", &self.bucket)
            .field("location", &self.location)
            .field("upload_id", &self.upload_id)
            .field("next_part", &self.next_part)
            .finish()
    }
}

impl AnodeUpload {
    /// Upload what is buffered as the next part.
    fn flush(&mut self) -> UploadPart {
        let pieces = std::mem::take(&mut self.buffer);
        self.buffered = 0;
        let number = self.next_part;
        self.next_part += 1;
        let (client, bucket, location, upload_id, parts) = (
            self.client.clone(),
            self.bucket.clone(),
            self.location.clone(),
            self.upload_id.clone(),
            self.parts.clone(),
        );
        Box::pin(async move {
            let body = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
            let part = client
                .upload_part(&bucket, location.as_ref(), &upload_id, number, body, None)
                .await
                .map_err(|e| map_err(&location, e, Cond::Read))?;
            parts.lock().push(CompletePart {
                part_number: number,
                etag: part.etag,
            });
            Ok(())
        })
    }
}

#[async_trait]
impl MultipartUpload for AnodeUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.buffered += data.content_length();
        self.buffer.extend(data);
        if self.buffered >= MIN_PART_BYTES {
            self.flush()
        } else {
            Box::pin(async { Ok(()) })
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        if self.buffered > 0 || self.next_part == 1 {
            self.flush().await?;
        }
        let mut parts = self.parts.lock().clone();
        parts.sort_by_key(|p| p.part_number);
        if parts.len() as u32 != self.next_part - 1 {
            return Err(generic(format!(
                "{}: {} of {} parts uploaded (complete before every put_part finished)",
                self.location,
                parts.len(),
                self.next_part - 1
            )));
        }
        let key = self.location.as_ref();
        let m = self
            .client
            .complete_multipart(&self.bucket, key, &self.upload_id, parts, None)
            .await
            .map_err(|e| map_err(&self.location, e, Cond::Read))?;
        // The object is committed; an index that fails only costs the tail shortcut.
        if let Err(e) = self
            .client
            .index_parquet_version(&self.bucket, key, &m)
            .await
        {
            tracing::warn!(key, error = %e, "indexing a multipart Parquet upload failed");
        }
        Ok(PutResult {
            e_tag: Some(m.etag.clone()),
            version: (!m.version_id.is_empty()).then_some(m.version_id),
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.client
            .abort_multipart(&self.bucket, self.location.as_ref(), &self.upload_id)
            .await
            .map_err(|e| map_err(&self.location, e, Cond::Read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_overlap_or_touch() {
        let got = merge_ranges(&[10..20, 0..5, 5..7, 15..30, 40..41, 40..40]);
        assert_eq!(got, vec![0..7, 10..30, 40..41]);
        assert!(merge_ranges(&[]).is_empty());
    }

    #[test]
    fn a_tail_slice_answers_only_ranges_inside_it() {
        let tail = Some((100u64, Bytes::from_static(b"0123456789")));
        assert_eq!(from_tail(&tail, &(100..103)).unwrap(), &b"012"[..]);
        assert_eq!(from_tail(&tail, &(105..110)).unwrap(), &b"56789"[..]);
        assert!(from_tail(&tail, &(99..101)).is_none());
        assert!(from_tail(&tail, &(108..111)).is_none());
        assert!(from_tail(&None, &(0..1)).is_none());
    }

    #[test]
    fn range_specs_are_inclusive() {
        let b = range_spec(&GetRange::Bounded(5..10));
        assert_eq!((b.start, b.end, b.suffix), (Some(5), Some(9), None));
        let o = range_spec(&GetRange::Offset(7));
        assert_eq!((o.start, o.end, o.suffix), (Some(7), None, None));
        let s = range_spec(&GetRange::Suffix(8));
        assert_eq!((s.start, s.end, s.suffix), (None, None, Some(8)));
    }

    #[test]
    fn prefixes_are_whole_segments() {
        assert_eq!(dir_prefix(None), "");
        assert_eq!(dir_prefix(Some(&Path::from(""))), "");
        assert_eq!(dir_prefix(Some(&Path::from("a/b"))), "a/b/");
    }

    #[test]
    fn tags_decode_as_tag_set_encodes_them() {
        let mut t = object_store::TagSet::default();
        t.push("team", "data eng");
        t.push("k/=&", "v+%");
        assert_eq!(
            parse_tags(t.encoded()),
            vec![
                ("team".to_string(), "data eng".to_string()),
                ("k/=&".to_string(), "v+%".to_string())
            ]
        );
        assert!(parse_tags("").is_empty());
    }

    #[test]
    fn errors_map_by_code() {
        let remote = |code| ClientError::Remote {
            code,
            message: "m".into(),
            resource: String::new(),
        };
        let p = Path::from("k");
        assert!(matches!(
            map_err(&p, remote(ErrorCode::NoSuchKey), Cond::Read),
            object_store::Error::NotFound { .. }
        ));
        assert!(matches!(
            map_err(&p, remote(ErrorCode::PreconditionFailed), Cond::Create),
            object_store::Error::AlreadyExists { .. }
        ));
        assert!(matches!(
            map_err(&p, remote(ErrorCode::PreconditionFailed), Cond::Update),
            object_store::Error::Precondition { .. }
        ));
        assert!(matches!(
            map_err(&p, ClientError::NoLeader, Cond::Read),
            object_store::Error::Generic { .. }
        ));
    }

    #[test]
    fn listing_stops_when_a_page_does_not_advance() {
        let page = |t: bool, next: &str| crate::ListObjectsResponse {
            is_truncated: t,
            next_start_after: next.to_string(),
            ..Default::default()
        };
        assert_eq!(next_start(&page(true, "b"), "a"), Some("b".to_string()));
        assert_eq!(next_start(&page(true, "a"), "a"), None);
        assert_eq!(next_start(&page(false, "b"), "a"), None);
    }
}
