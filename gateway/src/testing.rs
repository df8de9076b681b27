//! Test support: an in-memory [`Backend`] that answers from the master's own state machine.
//!
//! [`MemBackend`] holds an [`anode_meta::state::MemState`] (the pure state machine over a
//! `MemKv`, a raft index counter and the fixed clock [`NOW_MS`]). Each write builds the
//! `Command` the master service builds for that request (`master/src/service.rs`) and applies
//! it; each read is the state machine's query (`get_object`, `list_objects`, `list_parts`,
//! ...). Refusals are the state machine's `ErrorDetail`s mapped by
//! [`ClientError::from_detail`], the mapping the real client applies to a master's answer. No
//! namespace rule (bucket names, conditions, multipart checks, listing, the multipart etag) is
//! written here.
//!
//! What only this fake does, standing in for the client's data path:
//! - Object bodies travel inline in the manifest (`inline_data`) whatever their size: there are
//!   no chunkservers. Content-MD5 is checked here, as the client does before committing.
//! - Parts cannot be inline (the state machine refuses inline parts), so each non-empty part
//!   body is stored as one chunk: a `ChunkRef` (its SHA-256, length, a fresh upload time) in
//!   the `PartRecord`, and the bytes in a content-addressed blob map beside the state, as a
//!   chunkserver would keep them. A completed upload's manifest lists those chunks (the state
//!   machine moves the references), copies share them, and reads concatenate them.
//! - `key_lookups` counts `get_principal` calls (to observe the gateway's key cache);
//!   `bucket_lookups` counts `head_bucket` calls (the bucket cache).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anode_client::chunker::{etag_hex, md5, sha256};
use anode_client::{
    AccessKey, BucketConfig, ByteStream, ClientError, CompletePart, ListMultipartUploadsRequest,
    ListMultipartUploadsResponse, ListObjectsRequest, ListObjectsResponse, ListPartsRequest,
    ListPartsResponse, Manifest, PartRecord, PutOptions,
};
use anode_meta::state::{self, MemState, StateError};
use anode_proto::command::Op;
use anode_proto::*;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::backend::{Backend, BodyStream};

/// Fixed test clock: 2013-05-24T00:00:00Z in milliseconds.
pub const NOW_MS: u64 = 1_369_353_600_000;

/// The state machine and the part bodies beside it.
struct State {
    sm: MemState,
    /// Part bodies by SHA-256 (the chunks `PartRecord`s and multipart manifests reference).
    blobs: HashMap<Vec<u8>, Bytes>,
    /// Uploads created so far (upload ids are this counter in hex, 32 digits like the master's
    /// random ones).
    uploads_created: u64,
}

/// The in-memory backend (see the module docs).
pub struct MemBackend {
    state: Mutex<State>,
    /// The object events of applied commands, for watchers (as the master's broadcast).
    events: tokio::sync::broadcast::Sender<std::sync::Arc<NotificationEvent>>,
    /// Number of `get_principal` calls (to observe the key cache).
    pub key_lookups: AtomicUsize,
    /// Number of `head_bucket` calls (to observe the bucket cache).
    pub bucket_lookups: AtomicUsize,
}

impl Default for MemBackend {
    fn default() -> Self {
        MemBackend {
            state: Mutex::new(State {
                sm: MemState::new(NOW_MS),
                blobs: HashMap::new(),
                uploads_created: 0,
            }),
            key_lookups: AtomicUsize::new(0),
            bucket_lookups: AtomicUsize::new(0),
            events: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

/// A state machine refusal as the client reports it.
fn refused(e: StateError) -> ClientError {
    ClientError::from_detail(e.detail())
}

impl MemBackend {
    /// A backend knowing one access key.
    pub fn with_key(ak: &str, sk: &str) -> MemBackend {
        let b = MemBackend::default();
        b.add_key(ak, sk);
        b
    }

    /// Create one more access key.
    pub fn add_key(&self, ak: &str, sk: &str) {
        let key = AccessKey {
            version: RECORD_VERSION,
            access_key: ak.into(),
            secret_key: sk.into(),
            ..Default::default()
        };
        self.propose(Op::CreateKey(CreateKeyCmd { key: Some(key) }))
            .expect("the backend accepts the key");
    }

    /// Create a user.
    pub fn add_user(&self, name: &str, admin: bool) {
        self.propose(Op::CreateUser(CreateUserCmd {
            user: Some(User {
                name: name.into(),
                admin,
                ..Default::default()
            }),
        }))
        .expect("the backend accepts the user");
    }

    /// Create an access key of `user`, expiring at `expires_ms` (0 = never).
    pub fn add_user_key(&self, ak: &str, sk: &str, user: &str, expires_ms: u64) {
        let key = AccessKey {
            version: RECORD_VERSION,
            access_key: ak.into(),
            secret_key: sk.into(),
            user: user.into(),
            expires_ms,
            ..Default::default()
        };
        self.propose(Op::CreateKey(CreateKeyCmd { key: Some(key) }))
            .expect("the backend accepts the key");
    }

    /// Disable or enable a key.
    pub fn set_key_disabled(&self, ak: &str, disabled: bool) {
        self.propose(Op::SetKeyDisabled(SetKeyDisabledCmd {
            access_key: ak.into(),
            disabled,
        }))
        .expect("the key exists");
    }

    /// Set a bucket's quota.
    pub fn set_bucket_quota(&self, bucket: &str, quota_bytes: u64, quota_objects: u64) {
        self.propose(Op::SetBucketQuota(SetBucketQuotaCmd {
            name: bucket.into(),
            quota_bytes,
            quota_objects,
        }))
        .expect("the bucket exists");
    }

    /// The owning user of a bucket ("" = the administrators).
    pub fn head_bucket_owner(&self, bucket: &str) -> String {
        self.read(|kv| state::get_bucket(kv, bucket))
            .map(|b| b.owner_user)
            .unwrap_or_default()
    }

    /// The committed manifest of an object, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Manifest> {
        self.read(|kv| state::get_object(kv, bucket, key).ok())
    }

    /// Create (Some url) or remove (None) a notification target, as `anode ctl notify` does.
    pub fn set_notification_target(&self, name: &str, url: Option<&str>) {
        self.propose(Op::SetNotificationTarget(SetNotificationTargetCmd {
            name: name.into(),
            target: url.map(|u| NotificationTarget {
                name: name.into(),
                url: u.into(),
                ..Default::default()
            }),
        }))
        .expect("the backend accepts the target");
    }

    /// The events queued for `target` (what the leader would deliver), oldest first.
    pub fn queued_events(&self, target: &str) -> Vec<NotificationEvent> {
        self.read(|kv| state::queued_events(kv, target, None, usize::MAX))
    }

    /// Apply one command, as the master's write path does (`MemState::propose`, also sending
    /// the command's object events to watchers); a refusal as the client sees it.
    fn propose(&self, op: Op) -> Result<CommandResult, ClientError> {
        let mut s = self.state.lock().unwrap();
        let sm = &mut s.sm;
        sm.index += 1;
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms: sm.now_ms,
            session: None,
            op: Some(op),
        };
        let (muts, res, events) = state::apply_with_events(&sm.kv, sm.index, &cmd);
        sm.kv.apply(&muts);
        if let Err(e) = state::check_invariants(&sm.kv) {
            panic!(
                "state machine invariant broken after command {}: {e}",
                sm.index
            );
        }
        if let Some(e) = res.error {
            return Err(ClientError::from_detail(e));
        }
        for e in events {
            let _ = self.events.send(std::sync::Arc::new(e));
        }
        Ok(res)
    }

    /// A query over the applied state.
    fn read<T>(&self, f: impl FnOnce(&anode_meta::kv::MemKv) -> T) -> T {
        f(&self.state.lock().unwrap().sm.kv)
    }

    /// Commit `manifest` at `bucket/key` (the client's `commit`: one `PutObject`).
    fn commit(
        &self,
        bucket: &str,
        key: &str,
        manifest: Manifest,
        if_match_etag: Option<String>,
        source: String,
    ) -> Result<Manifest, ClientError> {
        let res = self.propose(Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: bucket.into(),
            key: key.into(),
            manifest: Some(manifest.clone()),
            if_match_etag,
            source,
        }))?;
        Ok(res.manifest.unwrap_or(manifest))
    }

    /// The whole body of a manifest: its inline data, or its chunks from the blob map.
    fn body_of(&self, manifest: &Manifest) -> Result<Bytes, ClientError> {
        if manifest.chunks.is_empty() {
            return Ok(Bytes::from(manifest.inline_data.clone()));
        }
        let s = self.state.lock().unwrap();
        let mut body = BytesMut::with_capacity(manifest.size as usize);
        for c in &manifest.chunks {
            let blob = s
                .blobs
                .get(&c.sha256)
                .ok_or_else(|| ClientError::ChunkUnavailable {
                    sha256: hex::encode(&c.sha256),
                })?;
            body.extend_from_slice(blob);
        }
        Ok(body.freeze())
    }

    /// Keep a part body as one chunk; its reference (none for an empty body).
    fn store_part_body(&self, data: Bytes) -> Vec<ChunkRef> {
        if data.is_empty() {
            return Vec::new();
        }
        let sha = sha256(&data).to_vec();
        let length = data.len() as u64;
        self.state.lock().unwrap().blobs.insert(sha.clone(), data);
        vec![ChunkRef {
            sha256: sha,
            length,
            servers: Vec::new(),
            uploaded_ms: NOW_MS,
        }]
    }
}

async fn collect(mut body: BodyStream) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    while let Some(piece) = body.next().await {
        buf.extend_from_slice(&piece?);
    }
    Ok(buf.freeze())
}

/// The body, after the Content-MD5 check the client makes before committing anything.
async fn checked_body(
    body: BodyStream,
    content_md5: Option<[u8; 16]>,
) -> Result<(Bytes, [u8; 16]), ClientError> {
    let data = collect(body).await?;
    let digest = md5(&data);
    if content_md5.is_some_and(|m| m != digest) {
        return Err(ClientError::BadDigest);
    }
    Ok((data, digest))
}

/// Stream `slice` in small pieces for small bodies, to exercise the gateway's streaming.
fn pieces(slice: Bytes) -> ByteStream {
    let piece = if slice.len() < 1024 { 7 } else { 64 << 10 };
    let pieces: Vec<Result<Bytes, ClientError>> = (0..slice.len())
        .step_by(piece)
        .map(|i| Ok(slice.slice(i..(i + piece).min(slice.len()))))
        .collect();
    futures::stream::iter(pieces).boxed()
}

#[async_trait::async_trait]
impl Backend for MemBackend {
    async fn create_bucket(
        &self,
        name: &str,
        owner_key: &str,
        owner_user: &str,
        access: Vec<u8>,
        object_lock: bool,
    ) -> Result<(), ClientError> {
        let config = BucketConfig {
            version: RECORD_VERSION,
            name: name.into(),
            replication: 0,
            owner_access_key: owner_key.into(),
            owner_user: owner_user.into(),
            access,
            object_lock,
            versioning_state: u32::from(object_lock),
            ..Default::default()
        };
        self.propose(Op::CreateBucket(CreateBucketCmd {
            config: Some(config),
        }))
        .map(|_| ())
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), ClientError> {
        self.propose(Op::DeleteBucket(DeleteBucketCmd { name: name.into() }))
            .map(|_| ())
    }

    async fn list_buckets(&self) -> Result<Vec<BucketConfig>, ClientError> {
        Ok(self.read(|kv| state::list_buckets(kv)))
    }

    async fn head_bucket(&self, name: &str) -> Result<BucketConfig, ClientError> {
        self.bucket_lookups.fetch_add(1, Ordering::Relaxed);
        self.read(|kv| state::get_bucket(kv, name))
            .ok_or_else(|| refused(StateError::NoSuchBucket(name.into())))
    }

    async fn set_bucket_access(
        &self,
        name: &str,
        access: Vec<u8>,
        expect: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketAccess(SetBucketAccessCmd {
            name: name.into(),
            access,
            expect_access: expect,
        }))
        .map(|_| ())
    }

    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        acl: Vec<u8>,
        expect_version: Option<u64>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetObjectAcl(SetObjectAclCmd {
            bucket: bucket.into(),
            key: key.into(),
            acl,
            expect_object_version: expect_version,
        }))
        .map(|_| ())
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError> {
        let (data, digest) = checked_body(body, opts.content_md5).await?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            size: data.len() as u64,
            etag: etag_hex(&digest),
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            system_metadata: opts.system_metadata,
            inline_data: data.to_vec(),
            acl: opts.acl,
            lock_mode: opts.lock_mode,
            retain_until_ms: opts.retain_until_ms,
            legal_hold: opts.legal_hold,
            tags: opts.tags,
            ..Default::default()
        };
        let manifest = anode_client::with_checksum(manifest, opts.checksum.get());
        self.commit(bucket, key, manifest, opts.if_match_etag, opts.event_source)
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError> {
        self.read(|kv| state::get_object(kv, bucket, key))
            .map_err(refused)
    }

    fn read_manifest(
        &self,
        _bucket: &str,
        manifest: &Manifest,
        range: Option<(u64, u64)>,
    ) -> ByteStream {
        let data = match self.body_of(manifest) {
            Ok(data) => data,
            Err(e) => return futures::stream::iter([Err(e)]).boxed(),
        };
        let (start, end) = range.unwrap_or((0, data.len().saturating_sub(1) as u64));
        let slice = if data.is_empty() {
            data
        } else {
            data.slice(start as usize..=(end as usize).min(data.len() - 1))
        };
        pieces(slice)
    }

    async fn copy_from(
        &self,
        _src_bucket: &str,
        _src_key: &str,
        src: Manifest,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError> {
        let (manifest, if_match) = anode_client::copy_manifest(src, replace);
        self.commit(dst_bucket, dst_key, manifest, if_match, "Copy".into())
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ClientError> {
        let res = self.propose(Op::DeleteObject(DeleteObjectCmd {
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        }))?;
        Ok(!res.deleted_keys.is_empty())
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        let res = self.propose(Op::DeleteObjects(DeleteObjectsCmd {
            bucket: bucket.into(),
            keys,
            ..Default::default()
        }))?;
        Ok(res.deleted_keys)
    }

    async fn list_objects(
        &self,
        req: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, ClientError> {
        self.read(|kv| state::list_objects(kv, &req))
            .map_err(refused)
    }

    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_markers: bool,
    ) -> Result<Manifest, ClientError> {
        self.read(|kv| state::versions::get_version(kv, bucket, key, version_id, include_markers))
            .map_err(refused)
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
        cond: anode_client::DeleteIf,
    ) -> Result<anode_client::DeleteOutcome, ClientError> {
        let res = self.propose(Op::DeleteObject(DeleteObjectCmd {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.map(str::to_string),
            bypass_governance,
            if_match_etag: cond.etag,
            if_match_last_modified_ms: cond.mtime_ms,
            if_match_size: cond.size,
        }))?;
        Ok(res.deletions.into_iter().next().unwrap_or_default())
    }

    async fn delete_versions(
        &self,
        bucket: &str,
        objects: Vec<anode_client::ObjectVersionRef>,
        bypass_governance: bool,
    ) -> Result<Vec<anode_client::DeleteOutcome>, ClientError> {
        let res = self.propose(Op::DeleteObjects(DeleteObjectsCmd {
            bucket: bucket.into(),
            objects,
            bypass_governance,
            ..Default::default()
        }))?;
        Ok(res.deletions)
    }

    async fn list_object_versions(
        &self,
        req: anode_client::ListObjectVersionsRequest,
    ) -> Result<anode_client::ListObjectVersionsResponse, ClientError> {
        self.read(|kv| state::list_object_versions(kv, &req))
            .map_err(refused)
    }

    async fn set_bucket_object_lock(
        &self,
        bucket: &str,
        default_retention: Option<anode_client::DefaultRetention>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketObjectLock(SetBucketObjectLockCmd {
            name: bucket.into(),
            default_retention,
        }))?;
        Ok(())
    }

    async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        config: Option<anode_client::LifecycleConfig>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketLifecycle(SetBucketLifecycleCmd {
            name: bucket.into(),
            config,
        }))?;
        Ok(())
    }

    async fn set_bucket_cors(
        &self,
        bucket: &str,
        config: Option<anode_client::CorsConfig>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketCors(SetBucketCorsCmd {
            name: bucket.into(),
            config,
        }))?;
        Ok(())
    }

    async fn set_bucket_notification(
        &self,
        bucket: &str,
        config: Option<NotificationConfig>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketNotification(SetBucketNotificationCmd {
            name: bucket.into(),
            config,
        }))?;
        Ok(())
    }

    /// As the master's `Watch`: subscribe, then check the bucket, then the matching events
    /// (no keep-alives: the stream only ends when the backend is dropped).
    async fn watch(
        &self,
        bucket: &str,
        opts: anode_client::WatchOptions,
    ) -> Result<anode_client::EventStream, ClientError> {
        if let Some(e) = opts
            .events
            .iter()
            .find(|e| !anode_meta::notify::EVENT_NAMES.contains(&e.as_str()))
        {
            return Err(ClientError::InvalidArgument(format!("unknown event {e}")));
        }
        let rx = self.events.subscribe();
        self.read(|kv| state::get_bucket(kv, bucket))
            .ok_or_else(|| refused(StateError::NoSuchBucket(bucket.into())))?;
        let bucket = bucket.to_string();
        let stream = futures::stream::unfold(Some(rx), move |rx| {
            let (bucket, opts) = (bucket.clone(), opts.clone());
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(e) => {
                            let take = e.bucket == bucket
                                && anode_meta::notify::filter_matches(
                                    &opts.events,
                                    &opts.prefix,
                                    &opts.suffix,
                                    &e.event_name,
                                    &e.key,
                                );
                            if take {
                                return Some((Ok((*e).clone()), Some(rx)));
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        Err(e) => {
                            return Some((Err(ClientError::Unavailable(e.to_string())), None))
                        }
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn set_object_lock(
        &self,
        cmd: anode_client::SetObjectLockCmd,
    ) -> Result<Manifest, ClientError> {
        let res = self.propose(Op::SetObjectLock(cmd))?;
        res.manifest
            .ok_or_else(|| ClientError::Internal("no manifest in the answer".into()))
    }

    async fn set_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<anode_client::Tag>,
    ) -> Result<Manifest, ClientError> {
        let res = self.propose(Op::SetObjectTagging(anode_proto::SetObjectTaggingCmd {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.map(str::to_string),
            tags,
        }))?;
        res.manifest
            .ok_or_else(|| ClientError::Internal("no manifest in the answer".into()))
    }

    async fn set_bucket_tagging(
        &self,
        bucket: &str,
        tags: Vec<anode_client::Tag>,
    ) -> Result<(), ClientError> {
        self.propose(Op::SetBucketTagging(anode_proto::SetBucketTaggingCmd {
            name: bucket.into(),
            tags,
        }))?;
        Ok(())
    }

    async fn set_bucket_versioning(&self, bucket: &str, state: u32) -> Result<(), ClientError> {
        self.propose(Op::SetBucketVersioning(SetBucketVersioningCmd {
            name: bucket.into(),
            state,
        }))?;
        Ok(())
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<String, ClientError> {
        let upload_id = {
            let mut s = self.state.lock().unwrap();
            s.uploads_created += 1;
            format!("{:032x}", s.uploads_created)
        };
        let upload = MultipartUpload {
            version: RECORD_VERSION,
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.clone(),
            initiated_ms: 0,
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            system_metadata: opts.system_metadata,
            acl: opts.acl,
            lock_mode: opts.lock_mode,
            retain_until_ms: opts.retain_until_ms,
            legal_hold: opts.legal_hold,
            tags: opts.tags,
            checksum_algorithm: opts.checksum.get().unwrap_or_default().algorithm,
            checksum_type: opts.checksum.get().unwrap_or_default().checksum_type,
        };
        self.propose(Op::CreateMultipart(CreateMultipartCmd {
            upload: Some(upload),
        }))?;
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        id: anode_client::PartId<'_>,
        body: BodyStream,
        content_md5: Option<[u8; 16]>,
        checksum: anode_client::ChecksumCell,
    ) -> Result<PartRecord, ClientError> {
        let anode_client::PartId {
            bucket,
            key,
            upload_id,
            part_number,
        } = id;
        let (data, digest) = checked_body(body, content_md5).await?;
        let sum = checksum.get().unwrap_or_default();
        let part = PartRecord {
            version: RECORD_VERSION,
            part_number,
            etag: etag_hex(&digest),
            size: data.len() as u64,
            chunks: self.store_part_body(data),
            mtime_ms: 0,
            inline_data: Vec::new(),
            checksum_algorithm: sum.algorithm,
            checksum_value: sum.value,
        };
        self.propose(Op::PutPart(PutPartCmd {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part: Some(part.clone()),
        }))?;
        Ok(part)
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        if_match_etag: Option<String>,
    ) -> Result<Manifest, ClientError> {
        let res = self.propose(Op::CompleteMultipart(CompleteMultipartCmd {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            parts,
            if_match_etag,
        }))?;
        res.manifest
            .ok_or_else(|| ClientError::Internal("completion without a manifest".into()))
    }

    async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        self.propose(Op::AbortMultipart(AbortMultipartCmd {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        }))
        .map(|_| ())
    }

    async fn list_parts(&self, req: ListPartsRequest) -> Result<ListPartsResponse, ClientError> {
        self.read(|kv| state::list_parts(kv, &req)).map_err(refused)
    }

    async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, ClientError> {
        self.read(|kv| state::list_uploads(kv, &req))
            .map_err(refused)
    }

    async fn get_principal(
        &self,
        access_key: &str,
    ) -> Result<(AccessKey, Option<User>), ClientError> {
        self.key_lookups.fetch_add(1, Ordering::Relaxed);
        self.read(|kv| {
            let k = state::get_key(kv, access_key)?;
            let user = (!k.user.is_empty())
                .then(|| state::get_user(kv, &k.user))
                .flatten();
            Some((k, user))
        })
        .ok_or_else(|| refused(StateError::NoSuchAccessKey(access_key.into())))
    }
}
