//! The Anode Rust client: metadata from the master group, chunk bytes directly to and from
//! chunkservers. The S3 gateway is built on it; so can any Rust program.
//!
//! Entry point: [`Client`]. The master-calling machinery ([`MasterConn`]) is public because
//! chunkservers use it too.
//!
//! Parquet readers (issue 16): [`objstore::AnodeStore`] is a bucket as an `object_store`
//! store (footer reads answered from the master's stored tail, pruned listings), and
//! [`Client::plan_scan`] plans a scan down to the byte ranges of the row groups that may
//! match ([`scan`]).
//!
//! Architecture invariants:
//! - A put commits its manifest only after every chunk has R acknowledged durable copies
//!   ([`mod@write`] module docs give the order).
//! - Every byte handed to a reader was verified against its chunk's SHA-256, by the client for
//!   whole chunks, by the chunkserver (`verify = true`) for partial ones.
//! - Metadata reads (`get_object`, `head_object`, listings) always ask the leader; the manifest
//!   cache is only a convenience for callers ([`Client::cached_manifest`]).
//! - Every cross-node await is bounded by a timeout; memory per put and per read is bounded by
//!   `put_parallelism` and `read_ahead_chunks` chunks.
//! - The decisions are pure functions tested without a network: [`chunker`], [`range`],
//!   [`retry`], and the error mapping in [`error`].

#![warn(missing_docs)]

pub mod chunker;
pub mod config;
pub mod error;
pub mod master;
pub mod objstore;
pub mod parquet;
mod pool;
pub mod range;
mod read;
pub mod retry;
pub mod scan;
pub mod trace;
pub mod watch;
pub mod write;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;

use anode_proto::{
    AbortMultipartRequest, CompleteMultipartRequest, CreateBucketRequest, CreateMultipartRequest,
    DeleteBucketRequest, DeleteObjectRequest, DeleteObjectsRequest, GetBucketRequest,
    GetKeyRequest, GetObjectRequest, ListBucketsRequest, MultipartUpload, PutObjectRequest,
    PutObjectsRequest, PutPartRequest, SetBucketAccessRequest, SetBucketCorsRequest,
    SetBucketLifecycleRequest, SetBucketNotificationRequest, SetBucketObjectLockRequest,
    SetBucketTaggingCmd, SetBucketTaggingRequest, SetBucketVersioningRequest, SetObjectAclRequest,
    SetObjectLockRequest, SetObjectTaggingCmd, SetObjectTaggingRequest, SetParquetIndexCmd,
    SetParquetIndexRequest,
};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use lru::LruCache;
use parking_lot::Mutex;

pub use anode_proto::{
    AccessKey, BucketConfig, ChunkRef, CompletePart, ListMultipartUploadsRequest,
    ListMultipartUploadsResponse, ListObjectsRequest, ListObjectsResponse, ListPartsRequest,
    ListPartsResponse, Manifest, ObjectEntry, PartRecord, Usage, User,
};
pub use anode_proto::{
    ByteRangeSpec, ParquetColumn, ParquetIndex, ParquetInfo, ParquetSource, ParquetStats,
};
pub use anode_proto::{
    CorsConfig, CorsRule, DefaultRetention, DeleteOutcome, LifecycleConfig, LifecycleRule,
    ListObjectVersionsRequest, ListObjectVersionsResponse, NotificationConfig, NotificationEvent,
    NotificationRule, ObjectVersionRef, SetObjectLockCmd, Tag, VersionEntry,
};
pub use config::ClientConfig;
pub use error::{ClientError, ErrorCode, ErrorDetail};
pub use master::{MasterConn, MasterConnOptions};
pub use watch::{EventStream, WatchOptions};

/// A stream of object bytes, in order. Every item was verified before it was yielded.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

/// Object metadata and conditions for a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// `Content-Type` to store.
    pub content_type: String,
    /// `x-amz-meta-*` pairs (names without the prefix, as the gateway chooses).
    pub user_metadata: HashMap<String, String>,
    /// Other headers stored verbatim (cache-control, content-disposition, ...).
    pub system_metadata: HashMap<String, String>,
    /// Only commit if the current object's etag equals this (`""` = must not exist).
    pub if_match_etag: Option<String>,
    /// Expected MD5 of the body; a mismatch fails with [`ClientError::BadDigest`] and nothing is
    /// committed.
    pub content_md5: Option<[u8; 16]>,
    /// The object's ACL as stored (`Manifest.acl`: `anode_meta::authz::encode_acl`; empty =
    /// private, owned by the bucket's owner). A multipart upload keeps it until completion; a
    /// copy with `replace` takes it from here.
    pub acl: Vec<u8>,
    /// Object lock retention to set on the new version: mode (`GOVERNANCE`, `COMPLIANCE`;
    /// empty = the bucket's default) and until when (ms since the epoch).
    pub lock_mode: String,
    /// See [`PutOptions::lock_mode`].
    pub retain_until_ms: u64,
    /// A legal hold on the new version.
    pub legal_hold: bool,
    /// The new version's tags (S3 object tagging: at most 10, unique keys; see
    /// `anode_meta::tagging`). A multipart upload keeps them until completion; a copy with
    /// `replace` takes them from here (give the source's tags to keep them).
    pub tags: Vec<Tag>,
    /// The S3 additional checksum of the body (issue 15), filled by the caller while the
    /// client reads the body (the gateway verifies or computes it as the payload streams) and
    /// stored in the manifest as FULL_OBJECT. For CreateMultipartUpload its algorithm and
    /// type (value empty) are the upload's; for a copy it replaces the source's checksum.
    pub checksum: ChecksumCell,
    /// What made the object, naming its event (`PutObjectRequest.source`): "" a put
    /// (`ObjectCreated:Put`), "Post" a browser form upload (`ObjectCreated:Post`). Copies are
    /// always "Copy" ([`Client::copy_from_manifest`]).
    pub event_source: String,
    /// Where the put reports what Parquet indexing made of the body (issue 16).
    pub parquet_outcome: parquet::OutcomeCell,
}

/// How [`Client::commit`] writes a manifest.
struct Commit {
    if_match_etag: Option<String>,
    source: String,
    parquet: Option<ParquetIndex>,
    parquet_copy: Option<ParquetSource>,
}

/// All the bytes of a (small) read.
async fn collect(mut s: ByteStream) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(piece) = s.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

/// An S3 additional checksum: algorithm (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`),
/// base64 value, and type (`FULL_OBJECT` or `COMPOSITE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredChecksum {
    /// S3's algorithm name.
    pub algorithm: String,
    /// Base64 value (a composite one ends in `-N`).
    pub value: String,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub checksum_type: String,
}

/// A [`StoredChecksum`] known only once a body has been read: shared between the reader of
/// the body, which sets it when the payload ends, and the client, which stores it.
#[derive(Clone, Debug, Default)]
pub struct ChecksumCell(Arc<std::sync::Mutex<Option<StoredChecksum>>>);

impl ChecksumCell {
    /// A cell already holding `c`.
    pub fn with(c: StoredChecksum) -> ChecksumCell {
        let cell = ChecksumCell::default();
        cell.set(c);
        cell
    }

    /// Record the checksum.
    pub fn set(&self, c: StoredChecksum) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// The checksum recorded, if any.
    pub fn get(&self) -> Option<StoredChecksum> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The Anode client. Cheap to clone; clones share connections and caches.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

/// Until the master says otherwise: touch copies older than this before committing.
pub(crate) const DEFAULT_TOUCH_AFTER_MS: u64 = 300_000;

pub(crate) struct ClientInner {
    pub(crate) cfg: ClientConfig,
    pub(crate) master: MasterConn,
    pub(crate) pool: pool::ChunkPool,
    /// One permit per chunk write in flight (`ClientConfig::chunk_writes_max`).
    pub(crate) chunk_writes: tokio::sync::Semaphore,
    manifests: Option<Mutex<LruCache<(String, String), Manifest>>>,
    /// Copies older than this are touched before a commit (learned from the master).
    pub(crate) touch_after_ms: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("master", &self.inner.master)
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

impl Client {
    /// A client for the masters at `masters` ("127.0.0.1:7001" style) over `tls`, with the
    /// default [`ClientConfig`]. Connections are lazy: this dials nothing, so it succeeds while
    /// the masters are still starting.
    pub async fn connect(masters: Vec<String>, tls: anode_tls::Tls) -> Result<Client, ClientError> {
        let cfg = ClientConfig {
            tls: Some(tls),
            ..ClientConfig::default()
        };
        Self::with_config(masters, cfg).await
    }

    /// Like [`Client::connect`] with explicit tuning.
    pub async fn with_config(
        masters: Vec<String>,
        cfg: ClientConfig,
    ) -> Result<Client, ClientError> {
        cfg.validate()?;
        let tls = cfg.tls.clone().ok_or_else(|| {
            ClientError::InvalidArgument(anode_tls::TlsError::NotConfigured.to_string())
        })?;
        let master = MasterConn::with_options(
            masters,
            MasterConnOptions {
                rpc_timeout: cfg.master_rpc_timeout,
                retry_budget: cfg.retry_budget,
                probe_after: cfg.master_probe_after,
            },
            tls.clone(),
        );
        if master.addrs().is_empty() {
            return Err(ClientError::InvalidArgument("no master addresses".into()));
        }
        let manifests =
            NonZeroUsize::new(cfg.manifest_cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        Ok(Client {
            inner: Arc::new(ClientInner {
                pool: pool::ChunkPool::new(cfg.rpc_timeout, tls),
                chunk_writes: tokio::sync::Semaphore::new(cfg.chunk_writes_max),
                cfg,
                master,
                manifests,
                touch_after_ms: std::sync::atomic::AtomicU64::new(DEFAULT_TOUCH_AFTER_MS),
            }),
        })
    }

    /// The master handle (for calls this API does not wrap).
    pub fn master(&self) -> &MasterConn {
        &self.inner.master
    }

    /// The tuning in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    // ---- buckets ------------------------------------------------------------------------------

    /// Create bucket `name` with replication factor `replication` (0 = cluster default), owned
    /// by the administrators (see [`Client::create_bucket_owned`]).
    pub async fn create_bucket(
        &self,
        name: &str,
        replication: u32,
        owner_access_key: &str,
    ) -> Result<BucketConfig, ClientError> {
        self.create_bucket_owned(name, replication, owner_access_key, "", Vec::new())
            .await
    }

    /// Create bucket `name` owned by user `owner_user` ("" = the administrators), made with
    /// the key `owner_access_key`, with the initial access record `access`
    /// (`BucketConfig.access`: an encoded `anode_meta::authz::BucketAccessRecord`; empty = the
    /// default). An existing bucket is `BucketAlreadyOwnedByYou` when the same user owns it,
    /// else `BucketAlreadyExists`; a record the master cannot decode is `InvalidArgument`.
    pub async fn create_bucket_owned(
        &self,
        name: &str,
        replication: u32,
        owner_access_key: &str,
        owner_user: &str,
        access: Vec<u8>,
    ) -> Result<BucketConfig, ClientError> {
        let req = CreateBucketRequest {
            name: name.to_string(),
            replication,
            owner_access_key: owner_access_key.to_string(),
            owner_user: owner_user.to_string(),
            access,
            ..Default::default()
        };
        self.create_bucket_request(req).await
    }

    /// Create a bucket as `req` describes (owner, access record, object lock).
    pub async fn create_bucket_request(
        &self,
        req: CreateBucketRequest,
    ) -> Result<BucketConfig, ClientError> {
        let resp = self
            .inner
            .master
            .write(|mut c, session| {
                let req = CreateBucketRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.create_bucket(req).await }
            })
            .await?;
        required(resp.config, "CreateBucketResponse.config")
    }

    /// Delete bucket `name` (the master refuses a non-empty bucket).
    pub async fn delete_bucket(&self, name: &str) -> Result<(), ClientError> {
        let req = DeleteBucketRequest {
            name: name.to_string(),
            session: None,
        };
        self.inner
            .master
            .write(|mut c, session| {
                let req = DeleteBucketRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.delete_bucket(req).await }
            })
            .await?;
        Ok(())
    }

    /// Replace the access record of bucket `name` (`BucketConfig.access`, read with
    /// [`Client::head_bucket`]; empty = the default). With `expect`, only when the current
    /// record is exactly those bytes: a read-modify-write that lost a race to another writer
    /// fails with `PreconditionFailed` and changes nothing (read again and retry). A record
    /// the master cannot decode, or whose policy is not one of this bucket, is
    /// `InvalidArgument`.
    pub async fn set_bucket_access(
        &self,
        name: &str,
        access: Vec<u8>,
        expect: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        let req = SetBucketAccessRequest {
            name: name.to_string(),
            access,
            expect_access: expect,
            session: None,
        };
        self.inner
            .master
            .write(|mut c, session| {
                let req = SetBucketAccessRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.set_bucket_access(req).await }
            })
            .await?;
        Ok(())
    }

    /// Every bucket.
    pub async fn list_buckets(&self) -> Result<Vec<BucketConfig>, ClientError> {
        let resp = self
            .inner
            .master
            .call(|mut c| async move { c.list_buckets(ListBucketsRequest {}).await })
            .await?;
        Ok(resp.buckets)
    }

    /// Every bucket with its usage (live objects and bytes).
    pub async fn list_buckets_with_usage(&self) -> Result<Vec<(BucketConfig, Usage)>, ClientError> {
        let resp = self
            .inner
            .master
            .call(|mut c| async move { c.list_buckets(ListBucketsRequest {}).await })
            .await?;
        let mut usage = resp.usage.into_iter();
        Ok(resp
            .buckets
            .into_iter()
            .map(|b| (b, usage.next().unwrap_or_default()))
            .collect())
    }

    /// The configuration of bucket `name` (`NoSuchBucket` if absent).
    pub async fn head_bucket(&self, name: &str) -> Result<BucketConfig, ClientError> {
        let req = GetBucketRequest {
            name: name.to_string(),
        };
        let resp = self
            .inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_bucket(req).await }
            })
            .await?;
        required(resp.config, "GetBucketResponse.config")
    }

    // ---- objects ------------------------------------------------------------------------------

    /// Store `body` as `bucket/key`: chunks first (R copies each), then the manifest through the
    /// master. Bodies of at most `inline_max_bytes` go inline in the manifest. Returns the
    /// committed manifest.
    pub async fn put_object<S>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        // Issue 16: a body that starts with `PAR1` keeps its tail for the index.
        let limits = self.inner.cfg.parquet.clone();
        let tap = Arc::new(parking_lot::Mutex::new(parquet::Tap::new(
            limits.as_ref().map_or(0, |l| l.max_tail as usize),
        )));
        let body = {
            let tap = tap.clone();
            let on = limits.is_some();
            body.inspect(move |piece| {
                if let (true, Ok(b)) = (on, piece) {
                    tap.lock().push(b);
                }
            })
        };
        let stored = self
            .inner
            .store_body(bucket, body, true, opts.content_md5)
            .await?;
        let (index, outcome) = match limits {
            Some(l) if tap.lock().is_parquet() => {
                let tail = tap.lock().tail();
                parquet::index(&tail, stored.size, &l)
            }
            _ => (None, parquet::ParquetOutcome::NotParquet),
        };
        let manifest = Manifest {
            version: anode_proto::MANIFEST_VERSION,
            size: stored.size,
            etag: chunker::etag_hex(&stored.md5),
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            chunks: stored.chunks,
            inline_data: stored.inline.map(|b| b.to_vec()).unwrap_or_default(),
            mtime_ms: 0,
            object_version: 0,
            part_sizes: Vec::new(),
            system_metadata: opts.system_metadata,
            acl: opts.acl,
            lock_mode: opts.lock_mode,
            retain_until_ms: opts.retain_until_ms,
            legal_hold: opts.legal_hold,
            tags: opts.tags,
            ..Default::default()
        };
        let manifest = with_checksum(manifest, opts.checksum.get());
        let put = Commit {
            if_match_etag: opts.if_match_etag,
            source: opts.event_source,
            parquet: index,
            parquet_copy: None,
        };
        let m = self.commit(bucket, key, manifest, put).await?;
        opts.parquet_outcome.set(outcome);
        Ok(m)
    }

    /// [`Client::put_object`] for a body already in memory.
    pub async fn put_object_bytes(
        &self,
        bucket: &str,
        key: &str,
        data: Bytes,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError> {
        let body = futures::stream::iter(std::iter::once(Ok::<_, std::io::Error>(data)));
        self.put_object(bucket, key, body, opts).await
    }

    async fn commit(
        &self,
        bucket: &str,
        key: &str,
        manifest: Manifest,
        put: Commit,
    ) -> Result<Manifest, ClientError> {
        let req = PutObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            manifest: Some(manifest.clone()),
            if_match_etag: put.if_match_etag,
            session: None,
            source: put.source,
            parquet: put.parquet,
            parquet_copy: put.parquet_copy,
        };
        let resp = self
            .inner
            .master
            .write_req(req, |mut c, req| async move { c.put_object(req).await })
            .await?;
        let committed = resp.manifest.unwrap_or(manifest);
        self.inner.cache_put(bucket, key, &committed);
        Ok(committed)
    }

    /// The current manifest of `bucket/key`, from the leader (`NoSuchKey` if absent).
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError> {
        let req = GetObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            allow_stale: false,
            ..Default::default()
        };
        let resp = self
            .inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_object(req).await }
            })
            .await?;
        let manifest = required(resp.manifest, "GetObjectResponse.manifest")?;
        self.inner.cache_put(bucket, key, &manifest);
        Ok(manifest)
    }

    /// The manifest of `bucket/key` (from the leader) and a stream of its bytes, or of the
    /// inclusive byte range `range` (validated by the caller; clamped to the size here).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<(Manifest, ByteStream), ClientError> {
        let manifest = self.head_object(bucket, key).await?;
        let body = self.read_manifest(bucket, &manifest, range);
        Ok((manifest, body))
    }

    /// Stream the body (or inclusive byte `range`) of an already fetched manifest. Nothing is
    /// fetched until the stream is polled; at most `read_ahead_chunks` chunks are buffered.
    pub fn read_manifest(
        &self,
        bucket: &str,
        manifest: &Manifest,
        range: Option<(u64, u64)>,
    ) -> ByteStream {
        let _ = bucket;
        read::read_manifest(self.inner.clone(), manifest, range)
    }

    /// The manifest last seen for `bucket/key` by this client, if cached. Possibly stale: for
    /// callers that accept that (strongly consistent reads use [`Client::head_object`]).
    pub fn cached_manifest(&self, bucket: &str, key: &str) -> Option<Manifest> {
        let cache = self.inner.manifests.as_ref()?;
        cache
            .lock()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    /// Copy `src_bucket/src_key` to `dst_bucket/dst_key` without moving bytes: the new manifest
    /// references the source's chunks (or inline data). With `replace`, its content type and
    /// metadata replace the source's, and its `if_match_etag` guards the destination.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError> {
        let src = self.head_object(src_bucket, src_key).await?;
        self.copy_from_manifest(src_bucket, src_key, src, dst_bucket, dst_key, replace)
            .await
    }

    /// Copy the version `src` of `src_bucket/src_key` (a manifest as read, e.g. by
    /// [`Client::get_version`]) to `dst_bucket/dst_key` by reference; `replace` replaces the
    /// metadata. The copy takes the source version's Parquet index, if it has one.
    pub async fn copy_from_manifest(
        &self,
        src_bucket: &str,
        src_key: &str,
        src: Manifest,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError> {
        let parquet_copy = src.parquet.is_some().then(|| ParquetSource {
            bucket: src_bucket.to_string(),
            key: src_key.to_string(),
            object_version: src.object_version,
        });
        let (manifest, if_match) = copy_manifest(src, replace);
        let put = Commit {
            if_match_etag: if_match,
            source: "Copy".into(),
            parquet: None,
            parquet_copy,
        };
        self.commit(dst_bucket, dst_key, manifest, put).await
    }

    /// Replace the ACL of the current object `bucket/key` in place (`Manifest.acl`; empty =
    /// private, owned by the bucket's owner): its body, etag, mtime and version stay. With
    /// `expect_version`, only if the object is still that `object_version` (else
    /// `PreconditionFailed`: it was overwritten since it was read). `NoSuchKey` /
    /// `NoSuchBucket` when absent; `InvalidArgument` for an ACL the master cannot decode.
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        acl: Vec<u8>,
        expect_version: Option<u64>,
    ) -> Result<(), ClientError> {
        let req = SetObjectAclRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            acl,
            expect_object_version: expect_version,
            session: None,
        };
        let res = self
            .inner
            .master
            .write(|mut c, session| {
                let req = SetObjectAclRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.set_object_acl(req).await }
            })
            .await;
        // The object version stays, so a cached manifest would keep the old ACL: drop it.
        self.inner.cache_forget(bucket, key);
        res.map(|_| ())
    }

    /// Delete `bucket/key`; returns whether it existed.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ClientError> {
        let req = DeleteObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            ..Default::default()
        };
        self.inner.cache_forget(bucket, key);
        let resp = self
            .inner
            .master
            .write(|mut c, session| {
                let req = DeleteObjectRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.delete_object(req).await }
            })
            .await?;
        Ok(resp.existed)
    }

    /// Delete several keys of `bucket` in one command; returns the keys that existed.
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        for key in &keys {
            self.inner.cache_forget(bucket, key);
        }
        let req = DeleteObjectsRequest {
            bucket: bucket.to_string(),
            keys,
            ..Default::default()
        };
        let resp = self
            .inner
            .master
            .write(|mut c, session| {
                let req = DeleteObjectsRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.delete_objects(req).await }
            })
            .await?;
        Ok(resp.deleted)
    }

    /// Store many small objects in one bucket as one master command (bulk loads, e.g.
    /// `anode-tools bench fill --batch`): every body goes inline in its manifest, so each must
    /// be at most `inline_max_bytes`, and at most 1,000 objects per call. All or none are
    /// written; returns how many were. Overwrites like [`Client::put_object`], unconditionally.
    pub async fn put_small_objects(
        &self,
        bucket: &str,
        objects: Vec<(String, Bytes)>,
    ) -> Result<u64, ClientError> {
        let limit = self.inner.cfg.inline_max_bytes;
        if let Some((key, body)) = objects.iter().find(|(_, b)| b.len() > limit) {
            return Err(ClientError::InvalidArgument(format!(
                "{key}: {} bytes is over the inline limit of {limit} bytes",
                body.len()
            )));
        }
        let objects: Vec<anode_proto::BulkPut> = objects
            .into_iter()
            .map(|(key, body)| {
                self.inner.cache_forget(bucket, &key);
                anode_proto::BulkPut {
                    key,
                    manifest: Some(Manifest {
                        version: anode_proto::MANIFEST_VERSION,
                        size: body.len() as u64,
                        etag: chunker::etag_hex(&chunker::md5(&body)),
                        inline_data: body.to_vec(),
                        ..Default::default()
                    }),
                }
            })
            .collect();
        let req = PutObjectsRequest {
            bucket: bucket.to_string(),
            objects,
            session: None,
        };
        let resp = self
            .inner
            .master
            .write(|mut c, session| {
                let req = PutObjectsRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.put_objects(req).await }
            })
            .await?;
        Ok(resp.written)
    }

    /// One page of a listing (see `ListObjectsRequest` for paging with `start_after`).
    pub async fn list_objects(
        &self,
        req: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, ClientError> {
        self.inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.list_objects(req).await }
            })
            .await
    }

    /// One page of a pruned listing (issue 16): the objects under `prefix` after
    /// `start_after` whose Parquet statistics may hold a row matching `predicate`
    /// (docs/parquet.md), each `indexed` with the row groups that may; objects without
    /// statistics are listed too (not `indexed`). A bad predicate is `InvalidArgument` naming
    /// the position. A page may be truncated with few entries (the master bounds the entries
    /// it reads per page); continue from `next_start_after`.
    pub async fn list_where(
        &self,
        bucket: &str,
        prefix: &str,
        predicate: &str,
        start_after: &str,
    ) -> Result<ListObjectsResponse, ClientError> {
        self.list_objects(ListObjectsRequest {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            start_after: start_after.to_string(),
            r#where: predicate.to_string(),
            ..Default::default()
        })
        .await
    }

    /// [`Client::get_version`] for a read of `range` (issue 16): also the bytes of the range
    /// when the version's stored Parquet tail covers it (and where they start), so the
    /// caller answers without reading chunks.
    pub async fn get_version_tail(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_delete_markers: bool,
        range: Option<ByteRangeSpec>,
    ) -> Result<(Manifest, Option<(u64, Bytes)>), ClientError> {
        let req = GetObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            allow_stale: false,
            version_id: version_id.map(str::to_string),
            include_delete_markers,
            tail_range: range,
        };
        let resp = self
            .inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_object(req).await }
            })
            .await?;
        let tail = resp
            .tail_slice
            .map(|b| (resp.tail_slice_start, Bytes::from(b)));
        Ok((required(resp.manifest, "GetObjectResponse.manifest")?, tail))
    }

    // ---- versions, object lock, lifecycle (issue 14) ----------------------------------------

    /// One version of `bucket/key` from the leader: `version_id` None = the newest. With
    /// `include_delete_markers`, a delete marker is answered as a manifest with
    /// `delete_marker` set (otherwise `NoSuchKey`, or `MethodNotAllowed` for a version id).
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_delete_markers: bool,
    ) -> Result<Manifest, ClientError> {
        let (m, _) = self
            .get_version_tail(bucket, key, version_id, include_delete_markers, None)
            .await?;
        Ok(m)
    }

    /// Delete one version of `bucket/key` for good (`version_id` Some; `"null"` names the null
    /// version), or make the S3 simple delete (None: a delete marker in a versioned bucket).
    /// `bypass_governance` lifts GOVERNANCE retention (the caller must be allowed to).
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
    ) -> Result<DeleteOutcome, ClientError> {
        let cond = DeleteIf::default();
        self.delete_version_if(bucket, key, version_id, bypass_governance, cond)
            .await
    }

    /// [`Client::delete_version`] under a condition, decided by the state machine against the
    /// version the delete acts on (`PreconditionFailed` when it fails; nothing to delete is a
    /// successful no-op).
    pub async fn delete_version_if(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
        cond: DeleteIf,
    ) -> Result<DeleteOutcome, ClientError> {
        let req = DeleteObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.map(str::to_string),
            bypass_governance,
            if_match_etag: cond.etag,
            if_match_last_modified_ms: cond.mtime_ms,
            if_match_size: cond.size,
            session: None,
        };
        self.inner.cache_forget(bucket, key);
        let resp = self
            .inner
            .master
            .write_req(req, |mut c, req| async move { c.delete_object(req).await })
            .await?;
        Ok(resp.outcome.unwrap_or_default())
    }

    /// Delete many entries (with or without version ids) in one command; one outcome per
    /// entry, in order (a refused entry carries its error, the others still apply).
    pub async fn delete_versions(
        &self,
        bucket: &str,
        objects: Vec<ObjectVersionRef>,
        bypass_governance: bool,
    ) -> Result<Vec<DeleteOutcome>, ClientError> {
        for o in &objects {
            self.inner.cache_forget(bucket, &o.key);
        }
        let req = DeleteObjectsRequest {
            bucket: bucket.to_string(),
            objects,
            bypass_governance,
            ..Default::default()
        };
        let resp = self
            .inner
            .master
            .write_req(req, |mut c, req| async move { c.delete_objects(req).await })
            .await?;
        Ok(resp.outcomes)
    }

    /// One page of ListObjectVersions.
    pub async fn list_object_versions(
        &self,
        req: ListObjectVersionsRequest,
    ) -> Result<ListObjectVersionsResponse, ClientError> {
        self.inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.list_object_versions(req).await }
            })
            .await
    }

    /// Enable (1) or suspend (2) versioning on `bucket`.
    pub async fn set_bucket_versioning(&self, bucket: &str, state: u32) -> Result<(), ClientError> {
        let req = SetBucketVersioningRequest {
            name: bucket.to_string(),
            state,
            session: None,
        };
        self.inner
            .master
            .write_req(req, |mut c, req| async move {
                c.set_bucket_versioning(req).await
            })
            .await?;
        Ok(())
    }

    /// Enable object lock on `bucket` (versioning must be enabled) with a default retention
    /// (None = no default).
    pub async fn set_bucket_object_lock(
        &self,
        bucket: &str,
        default_retention: Option<DefaultRetention>,
    ) -> Result<(), ClientError> {
        let req = SetBucketObjectLockRequest {
            name: bucket.to_string(),
            default_retention,
            session: None,
        };
        self.inner
            .master
            .write_req(req, |mut c, req| async move {
                c.set_bucket_object_lock(req).await
            })
            .await?;
        Ok(())
    }

    /// Replace (Some) or delete (None) the lifecycle rules of `bucket`.
    pub async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        config: Option<LifecycleConfig>,
    ) -> Result<(), ClientError> {
        let req = SetBucketLifecycleRequest {
            name: bucket.to_string(),
            config,
            session: None,
        };
        self.inner
            .master
            .write_req(req, |mut c, req| async move {
                c.set_bucket_lifecycle(req).await
            })
            .await?;
        Ok(())
    }

    /// Replace (Some) or delete (None) the CORS rules of `bucket`.
    pub async fn set_bucket_cors(
        &self,
        bucket: &str,
        config: Option<CorsConfig>,
    ) -> Result<(), ClientError> {
        let req = SetBucketCorsRequest {
            name: bucket.to_string(),
            config,
            session: None,
        };
        self.inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.set_bucket_cors(req).await },
            )
            .await?;
        Ok(())
    }

    /// Replace (Some) or delete (None) the event notification rules of `bucket`. Every
    /// rule's target must exist (`InvalidArgument` otherwise; see
    /// `anode_meta::notify::validate_config` for the rest of the checks).
    pub async fn set_bucket_notification(
        &self,
        bucket: &str,
        config: Option<NotificationConfig>,
    ) -> Result<(), ClientError> {
        let req = SetBucketNotificationRequest {
            name: bucket.to_string(),
            config,
            session: None,
        };
        self.inner
            .master
            .write_req(req, |mut c, req| async move {
                c.set_bucket_notification(req).await
            })
            .await?;
        Ok(())
    }

    /// Set the retention and/or legal hold of one version; returns its manifest.
    pub async fn set_object_lock(&self, cmd: SetObjectLockCmd) -> Result<Manifest, ClientError> {
        self.inner.cache_forget(&cmd.bucket, &cmd.key);
        let req = SetObjectLockRequest {
            cmd: Some(cmd),
            session: None,
        };
        let resp = self
            .inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.set_object_lock(req).await },
            )
            .await?;
        required(resp.manifest, "SetObjectLockResponse.manifest")
    }

    /// Replace the tag set of one version of `bucket/key` (`version_id` None: the current
    /// one; `"null"` names the null version); an empty `tags` deletes the tag set. The
    /// version keeps its id, mtime and ETag. Returns the version as tagged.
    pub async fn set_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<Manifest, ClientError> {
        self.inner.cache_forget(bucket, key);
        let req = SetObjectTaggingRequest {
            cmd: Some(SetObjectTaggingCmd {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version_id: version_id.map(str::to_string),
                tags,
            }),
            session: None,
        };
        let resp = self
            .inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.set_object_tagging(req).await },
            )
            .await?;
        required(resp.manifest, "SetObjectTaggingResponse.manifest")
    }

    /// The tag set of one version of `bucket/key` (`version_id` None: the current one), read
    /// from the leader, with the version id it belongs to ("" = the null version).
    pub async fn get_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Vec<Tag>, String), ClientError> {
        let m = self.get_version(bucket, key, version_id, false).await?;
        Ok((m.tags, m.version_id))
    }

    /// Replace the tag set of `bucket` (empty: delete it; at most 50 tags).
    pub async fn set_bucket_tagging(
        &self,
        bucket: &str,
        tags: Vec<Tag>,
    ) -> Result<(), ClientError> {
        let req = SetBucketTaggingRequest {
            cmd: Some(SetBucketTaggingCmd {
                name: bucket.to_string(),
                tags,
            }),
            session: None,
        };
        self.inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.set_bucket_tagging(req).await },
            )
            .await?;
        Ok(())
    }

    /// The tag set of `bucket` (empty: none).
    pub async fn get_bucket_tagging(&self, bucket: &str) -> Result<Vec<Tag>, ClientError> {
        Ok(self.head_bucket(bucket).await?.tags)
    }

    /// Every object of `bucket` under `prefix`, in key order, fetching pages as it goes.
    pub fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Stream<Item = Result<ObjectEntry, ClientError>> + Send + 'static {
        let client = self.clone();
        let base = ListObjectsRequest {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            max_keys: 1000,
            ..Default::default()
        };
        futures::stream::try_unfold(Some(String::new()), move |start_after| {
            let client = client.clone();
            let mut req = base.clone();
            async move {
                let Some(start_after) = start_after else {
                    return Ok::<_, ClientError>(None);
                };
                req.start_after = start_after;
                let page = client.list_objects(req).await?;
                let next = next_page_start(&page);
                Ok(Some((
                    futures::stream::iter(page.objects.into_iter().map(Ok::<_, ClientError>)),
                    next,
                )))
            }
        })
        .try_flatten()
    }

    // ---- multipart ----------------------------------------------------------------------------

    /// Start a multipart upload of `bucket/key`; returns the upload id.
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<String, ClientError> {
        let checksum = opts.checksum.get().unwrap_or_default();
        let req = CreateMultipartRequest {
            upload: Some(MultipartUpload {
                version: anode_proto::RECORD_VERSION,
                bucket: bucket.to_string(),
                key: key.to_string(),
                upload_id: String::new(),
                initiated_ms: 0,
                content_type: opts.content_type,
                user_metadata: opts.user_metadata,
                system_metadata: opts.system_metadata,
                acl: opts.acl,
                lock_mode: opts.lock_mode,
                retain_until_ms: opts.retain_until_ms,
                legal_hold: opts.legal_hold,
                tags: opts.tags,
                checksum_algorithm: checksum.algorithm,
                checksum_type: checksum.checksum_type,
            }),
            session: None,
        };
        let resp = self
            .inner
            .master
            .write(|mut c, session| {
                let req = CreateMultipartRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.create_multipart(req).await }
            })
            .await?;
        Ok(resp.upload_id)
    }

    /// Store one part (always as chunks, never inline) and record it with the master. A part
    /// number uploaded again replaces the earlier part.
    pub async fn upload_part<S>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: S,
        content_md5: Option<[u8; 16]>,
    ) -> Result<PartRecord, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let id = PartId {
            bucket,
            key,
            upload_id,
            part_number,
        };
        self.upload_part_checked(id, body, content_md5, ChecksumCell::default())
            .await
    }

    /// [`Client::upload_part`] that also stores the part's S3 checksum, as `checksum` holds it
    /// once the body has been read.
    pub async fn upload_part_checked<S>(
        &self,
        id: PartId<'_>,
        body: S,
        content_md5: Option<[u8; 16]>,
        checksum: ChecksumCell,
    ) -> Result<PartRecord, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let PartId {
            bucket,
            key,
            upload_id,
            part_number,
        } = id;
        let stored = self
            .inner
            .store_body(bucket, body, false, content_md5)
            .await?;
        let sum = checksum.get().unwrap_or_default();
        let part = PartRecord {
            version: anode_proto::RECORD_VERSION,
            part_number,
            etag: chunker::etag_hex(&stored.md5),
            size: stored.size,
            chunks: stored.chunks,
            mtime_ms: 0,
            inline_data: Vec::new(),
            checksum_algorithm: sum.algorithm,
            checksum_value: sum.value,
        };
        let req = PutPartRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            part: Some(part.clone()),
            session: None,
        };
        self.inner
            .master
            .write_req(req, |mut c, req| async move { c.put_part(req).await })
            .await?;
        Ok(part)
    }

    /// Complete a multipart upload from the listed parts (the master checks numbers and etags);
    /// returns the committed manifest. `if_match_etag` makes it conditional like
    /// [`PutOptions::if_match_etag`] (`""` = the object must not exist); on a failed condition
    /// the upload stays open.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        if_match_etag: Option<String>,
    ) -> Result<Manifest, ClientError> {
        let req = CompleteMultipartRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            parts,
            if_match_etag,
            session: None,
        };
        let resp = self
            .inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.complete_multipart(req).await },
            )
            .await?;
        let manifest = required(resp.manifest, "CompleteMultipartResponse.manifest")?;
        self.inner.cache_put(bucket, key, &manifest);
        Ok(manifest)
    }

    /// Index the completed (multipart) version `m` of `bucket/key` if it is a Parquet file:
    /// read its first 4 and last bytes, build the index, and store it with `SetParquetIndex`
    /// (applied only while that version exists). What became of it is returned; reading or
    /// storing errors are returned as errors (the object stays a plain object).
    pub async fn index_parquet_version(
        &self,
        bucket: &str,
        key: &str,
        m: &Manifest,
    ) -> Result<parquet::ParquetOutcome, ClientError> {
        let Some(limits) = self.inner.cfg.parquet.clone() else {
            return Ok(parquet::ParquetOutcome::NotParquet);
        };
        if m.size < 12 || m.parquet.is_some() {
            return Ok(parquet::ParquetOutcome::NotParquet);
        }
        let head = collect(self.read_manifest(bucket, m, Some((0, 3)))).await?;
        if head != b"PAR1" {
            return Ok(parquet::ParquetOutcome::NotParquet);
        }
        // The window first: it holds the whole footer unless the footer is larger.
        let window = limits.window.max(8).min(m.size);
        let mut tail =
            collect(self.read_manifest(bucket, m, Some((m.size - window, m.size - 1)))).await?;
        let Some(footer_len) = anode_pqindex::trailer_footer_len(&tail) else {
            return Ok(parquet::ParquetOutcome::NotParquet);
        };
        let want = u64::from(footer_len) + 8;
        if want > limits.max_tail.min(m.size) {
            return Ok(parquet::ParquetOutcome::TooLarge);
        }
        if want > window {
            tail =
                collect(self.read_manifest(bucket, m, Some((m.size - want, m.size - 1)))).await?;
        }
        let (index, outcome) = parquet::index(&tail, m.size, &limits);
        let Some(index) = index else {
            return Ok(outcome);
        };
        let req = SetParquetIndexRequest {
            cmd: Some(SetParquetIndexCmd {
                bucket: bucket.to_string(),
                key: key.to_string(),
                object_version: m.object_version,
                index: Some(index),
            }),
            session: None,
        };
        self.inner
            .master
            .write_req(
                req,
                |mut c, req| async move { c.set_parquet_index(req).await },
            )
            .await?;
        Ok(outcome)
    }

    /// Abort a multipart upload; its parts' chunks become garbage.
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        let req = AbortMultipartRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            session: None,
        };
        self.inner
            .master
            .write(|mut c, session| {
                let req = AbortMultipartRequest {
                    session: Some(session),
                    ..req.clone()
                };
                async move { c.abort_multipart(req).await }
            })
            .await?;
        Ok(())
    }

    /// One page of the parts of an upload.
    pub async fn list_parts(
        &self,
        req: ListPartsRequest,
    ) -> Result<ListPartsResponse, ClientError> {
        self.inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.list_parts(req).await }
            })
            .await
    }

    /// One page of the uploads in progress in a bucket.
    pub async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, ClientError> {
        self.inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.list_multipart_uploads(req).await }
            })
            .await
    }

    // ---- keys ---------------------------------------------------------------------------------

    /// The access key record (including its secret) for `access_key`, for SigV4 verification.
    pub async fn get_access_key(&self, access_key: &str) -> Result<AccessKey, ClientError> {
        let req = GetKeyRequest {
            access_key: access_key.to_string(),
        };
        let resp = self
            .inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_key(req).await }
            })
            .await?;
        required(resp.key, "GetKeyResponse.key")
    }

    /// An access key (with its secret) and, when it belongs to a user, that user's record:
    /// what a gateway needs to resolve a request's principal, in one round trip.
    pub async fn get_principal(
        &self,
        access_key: &str,
    ) -> Result<(AccessKey, Option<User>), ClientError> {
        let req = GetKeyRequest {
            access_key: access_key.to_string(),
        };
        let resp = self
            .inner
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.get_key(req).await }
            })
            .await?;
        Ok((required(resp.key, "GetKeyResponse.key")?, resp.user))
    }
}

impl ClientInner {
    fn cache_put(&self, bucket: &str, key: &str, manifest: &Manifest) {
        if let Some(cache) = &self.manifests {
            let mut cache = cache.lock();
            let k = (bucket.to_string(), key.to_string());
            // Never let an older version replace a newer one.
            let newer = cache
                .peek(&k)
                .is_none_or(|old| old.object_version <= manifest.object_version);
            if newer {
                cache.put(k, manifest.clone());
            }
        }
    }

    fn cache_forget(&self, bucket: &str, key: &str) {
        if let Some(cache) = &self.manifests {
            cache.lock().pop(&(bucket.to_string(), key.to_string()));
        }
    }
}

/// Pure: the manifest a copy commits, and its condition (what [`Client::copy_object`] sends;
/// public so the gateway's in-memory test backend copies by the same rule). Keeps the body
/// (chunks or inline data), size, etag and part sizes; takes content type, metadata and ACL
/// from `replace` when given. The source's ACL is never copied (S3: a copy gets the ACL of its
/// request, `private` when it names none), so without `replace` the copy has the default ACL.
pub fn copy_manifest(src: Manifest, replace: Option<PutOptions>) -> (Manifest, Option<String>) {
    let mut m = Manifest {
        version: anode_proto::MANIFEST_VERSION,
        mtime_ms: 0,
        object_version: 0,
        acl: Vec::new(),
        // A copy is a new version with its own id, and never inherits the source's
        // retention or legal hold (S3: those come from the copy request).
        version_id: String::new(),
        version_seq: 0,
        delete_marker: false,
        lock_mode: String::new(),
        retain_until_ms: 0,
        legal_hold: false,
        // The copy is no completion of the source's upload.
        completed_upload_id: String::new(),
        ..src
    };
    let mut if_match = None;
    if let Some(opts) = replace {
        m.content_type = opts.content_type;
        m.user_metadata = opts.user_metadata;
        m.system_metadata = opts.system_metadata;
        m.acl = opts.acl;
        m.lock_mode = opts.lock_mode;
        m.retain_until_ms = opts.retain_until_ms;
        m.legal_hold = opts.legal_hold;
        m.tags = opts.tags;
        if_match = opts.if_match_etag;
        m = with_checksum(m, opts.checksum.get());
    }
    (m, if_match)
}

/// The conditions of a conditional delete: ETag (`*` = any), Last-Modified (compared in
/// whole seconds), size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteIf {
    /// The ETag the version must have.
    pub etag: Option<String>,
    /// Its Last-Modified, ms since the epoch.
    pub mtime_ms: Option<u64>,
    /// Its size in bytes.
    pub size: Option<u64>,
}

impl DeleteIf {
    /// Whether no condition is given.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.mtime_ms.is_none() && self.size.is_none()
    }
}

/// Which part an upload names.
#[derive(Clone, Copy, Debug)]
pub struct PartId<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object key.
    pub key: &'a str,
    /// The upload.
    pub upload_id: &'a str,
    /// 1..=10000.
    pub part_number: u32,
}

/// `m` with the checksum `c` of its whole body (a single PUT's or a recomputed copy's), which
/// replaces any the manifest had.
pub fn with_checksum(mut m: Manifest, c: Option<StoredChecksum>) -> Manifest {
    if let Some(c) = c {
        m.checksum_algorithm = c.algorithm;
        m.checksum_value = c.value;
        m.checksum_type = if c.checksum_type.is_empty() {
            "FULL_OBJECT".to_string()
        } else {
            c.checksum_type
        };
        m.part_checksums = Vec::new();
    }
    m
}

/// Pure: where the next page of a listing starts, or `None` when this was the last page.
pub(crate) fn next_page_start(page: &ListObjectsResponse) -> Option<String> {
    if !page.is_truncated {
        return None;
    }
    let next = if page.next_start_after.is_empty() {
        page.objects.last().map(|o| o.key.clone())?
    } else {
        page.next_start_after.clone()
    };
    Some(next)
}

fn required<T>(field: Option<T>, name: &str) -> Result<T, ClientError> {
    field.ok_or_else(|| ClientError::Internal(format!("master answer without {name}")))
}

/// The seed of a randomized test: `ANODE_SEED` if set, else random; printed for replay.
#[cfg(test)]
pub(crate) fn test_seed() -> u64 {
    let seed = std::env::var("ANODE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("ANODE_SEED={seed}");
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_body_and_replaces_metadata() {
        let src = Manifest {
            version: 1,
            size: 5,
            etag: "e".into(),
            content_type: "text/plain".into(),
            user_metadata: [("a".to_string(), "1".to_string())].into(),
            chunks: vec![ChunkRef {
                sha256: vec![1; 32],
                length: 5,
                servers: vec![1, 2],
                uploaded_ms: 0,
            }],
            mtime_ms: 9,
            object_version: 7,
            acl: b"source acl".to_vec(),
            ..Default::default()
        };
        let (same, cond) = copy_manifest(src.clone(), None);
        assert_eq!(same.chunks, src.chunks);
        assert_eq!(same.user_metadata, src.user_metadata);
        assert_eq!((same.mtime_ms, same.object_version, cond), (0, 0, None));
        assert!(same.acl.is_empty(), "a copy never takes the source's ACL");
        let (replaced, cond) = copy_manifest(
            src.clone(),
            Some(PutOptions {
                content_type: "image/png".into(),
                if_match_etag: Some(String::new()),
                acl: b"request acl".to_vec(),
                ..Default::default()
            }),
        );
        assert_eq!(replaced.content_type, "image/png");
        assert_eq!(replaced.acl, b"request acl");
        assert!(replaced.user_metadata.is_empty());
        assert_eq!((replaced.etag.as_str(), replaced.size), ("e", 5));
        assert_eq!(cond, Some(String::new()));
    }

    #[test]
    fn copies_keep_the_source_tags_unless_replaced() {
        let tag = |k: &str| Tag {
            key: k.into(),
            value: String::new(),
        };
        let src = Manifest {
            etag: "e".into(),
            tags: vec![tag("a")],
            ..Default::default()
        };
        assert_eq!(copy_manifest(src.clone(), None).0.tags, vec![tag("a")]);
        let opts = PutOptions {
            tags: vec![tag("b"), tag("c")],
            ..Default::default()
        };
        assert_eq!(
            copy_manifest(src.clone(), Some(opts)).0.tags,
            vec![tag("b"), tag("c")]
        );
        let none = copy_manifest(src, Some(PutOptions::default())).0;
        assert!(none.tags.is_empty(), "replace without tags: none");
    }

    /// The gateway runs these futures on a multi-threaded runtime: they must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(c: &Client, m: &Manifest) {
        fn send<T: Send>(_: T) {}
        fn send_sync<T: Send + Sync + Clone + 'static>() {}
        send_sync::<Client>();
        send_sync::<MasterConn>();
        let body = futures::stream::empty::<Result<Bytes, std::io::Error>>();
        send(c.put_object("b", "k", body, PutOptions::default()));
        let body = futures::stream::empty::<Result<Bytes, std::io::Error>>();
        send(c.upload_part("b", "k", "u", 1, body, None));
        send(c.get_object("b", "k", None));
        send(c.read_manifest("b", m, None));
        send(c.copy_object("b", "k", "b", "k2", None));
        send(c.set_bucket_access("b", Vec::new(), None));
        send(c.set_object_acl("b", "k", Vec::new(), None));
        send(c.list_all("b", ""));
        send(c.delete_objects("b", vec![]));
    }

    #[test]
    fn paging() {
        let entry = |k: &str| ObjectEntry {
            key: k.into(),
            ..Default::default()
        };
        let mut page = ListObjectsResponse {
            objects: vec![entry("a"), entry("b")],
            ..Default::default()
        };
        assert_eq!(next_page_start(&page), None);
        page.is_truncated = true;
        assert_eq!(next_page_start(&page).as_deref(), Some("b"));
        page.next_start_after = "c/".into();
        assert_eq!(next_page_start(&page).as_deref(), Some("c/"));
    }
}
