//! [`Backend`]: the narrow storage interface the S3 handlers call. Production uses
//! [`anode_client::Client`]; tests use an in-memory implementation. API boundary: everything the
//! gateway asks of the cluster goes through this trait.

use std::pin::Pin;

use anode_client::parquet::ParquetOutcome;
use anode_client::{
    AccessKey, BucketConfig, ByteStream, Client, ClientError, CompletePart,
    ListMultipartUploadsRequest, ListMultipartUploadsResponse, ListObjectsRequest,
    ListObjectsResponse, ListPartsRequest, ListPartsResponse, Manifest, PartRecord, PutOptions,
    User,
};
use anode_client::{ByteRangeSpec, EventStream, WatchOptions};
use anode_client::{
    CorsConfig, DefaultRetention, DeleteOutcome, LifecycleConfig, ListObjectVersionsRequest,
    ListObjectVersionsResponse, NotificationConfig, ObjectVersionRef, SetObjectLockCmd, Tag,
};
use bytes::Bytes;
use futures::Stream;

/// A request body handed to the storage layer: payload bytes, already unframed and checked as
/// far as possible while streaming; an `Err` item means the body is bad and nothing may be
/// committed.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The storage operations behind the S3 API (see [`anode_client::Client`] for semantics).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Create a bucket owned by user `owner_user` ("" = the administrators), made with the key
    /// `owner_key`, with the default replication and the initial access record `access`
    /// (`BucketConfig.access`, an encoded `anode_meta::authz::BucketAccessRecord`; empty = the
    /// default).
    async fn create_bucket(
        &self,
        name: &str,
        owner_key: &str,
        owner_user: &str,
        access: Vec<u8>,
        object_lock: bool,
    ) -> Result<(), ClientError>;
    /// Delete an empty bucket.
    async fn delete_bucket(&self, name: &str) -> Result<(), ClientError>;
    /// Every bucket.
    async fn list_buckets(&self) -> Result<Vec<BucketConfig>, ClientError>;
    /// One bucket's configuration (`NoSuchBucket`), its access record (`access`) included.
    async fn head_bucket(&self, name: &str) -> Result<BucketConfig, ClientError>;
    /// Replace a bucket's access record (policy, ACL, Object Ownership, PublicAccessBlock);
    /// with `expect`, only if the current record is exactly those bytes (else
    /// `PreconditionFailed`: read again and retry).
    async fn set_bucket_access(
        &self,
        name: &str,
        access: Vec<u8>,
        expect: Option<Vec<u8>>,
    ) -> Result<(), ClientError>;
    /// Replace the ACL of the current object in place (`NoSuchKey`, `NoSuchBucket`); with
    /// `expect_version`, only if the object is still that `object_version` (else
    /// `PreconditionFailed`).
    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        acl: Vec<u8>,
        expect_version: Option<u64>,
    ) -> Result<(), ClientError>;
    /// Store and commit an object.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError>;
    /// The current manifest (`NoSuchKey`).
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError>;
    /// Stream the bytes (or inclusive range) of a manifest.
    fn read_manifest(
        &self,
        bucket: &str,
        manifest: &Manifest,
        range: Option<(u64, u64)>,
    ) -> ByteStream;
    /// Copy the version `src` (as read, conditions checked) to `dst_bucket/dst_key` by
    /// reference; `replace` replaces the metadata.
    async fn copy_from(
        &self,
        src_bucket: &str,
        src_key: &str,
        src: Manifest,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError>;
    /// Delete one object; whether it existed.
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ClientError>;
    /// Delete several objects; the keys that existed.
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ClientError>;
    /// One listing page.
    async fn list_objects(
        &self,
        req: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, ClientError>;
    /// One version (None: the newest); with `include_markers` a delete marker is answered as
    /// a manifest with `delete_marker` (issue 14).
    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_markers: bool,
    ) -> Result<Manifest, ClientError>;
    /// [`Backend::get_version`] for a read of `range` (issue 16): also the range's bytes when
    /// the version's stored Parquet tail covers it, and where they start. A backend without
    /// stored tails answers none.
    async fn get_version_tail(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_markers: bool,
        range: Option<ByteRangeSpec>,
    ) -> Result<(Manifest, Option<(u64, Bytes)>), ClientError> {
        let _ = range;
        let m = self
            .get_version(bucket, key, version_id, include_markers)
            .await?;
        Ok((m, None))
    }
    /// Index a completed version as Parquet if it is one (issue 16); what became of it.
    async fn index_parquet_version(
        &self,
        bucket: &str,
        key: &str,
        m: &Manifest,
    ) -> Result<ParquetOutcome, ClientError> {
        let _ = (bucket, key, m);
        Ok(ParquetOutcome::NotParquet)
    }
    /// Delete one version for good (Some) or the S3 simple delete (None).
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
        cond: anode_client::DeleteIf,
    ) -> Result<DeleteOutcome, ClientError>;
    /// Bulk delete with version ids; one outcome per entry.
    async fn delete_versions(
        &self,
        bucket: &str,
        objects: Vec<ObjectVersionRef>,
        bypass_governance: bool,
    ) -> Result<Vec<DeleteOutcome>, ClientError>;
    /// One page of ListObjectVersions.
    async fn list_object_versions(
        &self,
        req: ListObjectVersionsRequest,
    ) -> Result<ListObjectVersionsResponse, ClientError>;
    /// Enable (1) or suspend (2) versioning.
    async fn set_bucket_versioning(&self, bucket: &str, state: u32) -> Result<(), ClientError>;
    /// Enable object lock with a default retention (None: none).
    async fn set_bucket_object_lock(
        &self,
        bucket: &str,
        default_retention: Option<DefaultRetention>,
    ) -> Result<(), ClientError>;
    /// Replace (Some) or delete (None) the lifecycle rules.
    async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        config: Option<LifecycleConfig>,
    ) -> Result<(), ClientError>;
    /// Replace (Some) or delete (None) the CORS rules.
    async fn set_bucket_cors(
        &self,
        bucket: &str,
        config: Option<CorsConfig>,
    ) -> Result<(), ClientError>;
    /// Replace (Some) or delete (None) the event notification rules (every rule's target
    /// must exist: `InvalidArgument`).
    async fn set_bucket_notification(
        &self,
        bucket: &str,
        config: Option<NotificationConfig>,
    ) -> Result<(), ClientError>;
    /// The events of `bucket` matching `opts` as they are applied (not durable; the stream
    /// ends, after an error item, when the member serving it fails: see
    /// [`anode_client::watch`]).
    async fn watch(&self, bucket: &str, opts: WatchOptions) -> Result<EventStream, ClientError>;
    /// Set a version's retention and/or legal hold.
    async fn set_object_lock(&self, cmd: SetObjectLockCmd) -> Result<Manifest, ClientError>;
    /// Replace a version's tag set (`version_id` None: the current one; empty: delete it);
    /// the version as tagged.
    async fn set_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<Manifest, ClientError>;
    /// Replace a bucket's tag set (empty: delete it).
    async fn set_bucket_tagging(&self, bucket: &str, tags: Vec<Tag>) -> Result<(), ClientError>;
    /// Start a multipart upload; its id.
    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<String, ClientError>;
    /// Store one part.
    async fn upload_part(
        &self,
        id: anode_client::PartId<'_>,
        body: BodyStream,
        content_md5: Option<[u8; 16]>,
        checksum: anode_client::ChecksumCell,
    ) -> Result<PartRecord, ClientError>;
    /// Complete an upload, if the object's current etag matches `if_match_etag` when set
    /// (`""` = the object must not exist).
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        if_match_etag: Option<String>,
    ) -> Result<Manifest, ClientError>;
    /// Abort an upload.
    async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError>;
    /// One page of an upload's parts.
    async fn list_parts(&self, req: ListPartsRequest) -> Result<ListPartsResponse, ClientError>;
    /// One page of a bucket's uploads.
    async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, ClientError>;
    /// An access key with its secret, and its user when it has one (`NoSuchAccessKey`).
    async fn get_principal(
        &self,
        access_key: &str,
    ) -> Result<(AccessKey, Option<User>), ClientError>;
}

#[async_trait::async_trait]
impl Backend for Client {
    async fn create_bucket(
        &self,
        name: &str,
        owner_key: &str,
        owner_user: &str,
        access: Vec<u8>,
        object_lock: bool,
    ) -> Result<(), ClientError> {
        let req = anode_proto::CreateBucketRequest {
            name: name.to_string(),
            owner_access_key: owner_key.to_string(),
            owner_user: owner_user.to_string(),
            access,
            object_lock,
            ..Default::default()
        };
        Client::create_bucket_request(self, req).await.map(|_| ())
    }
    async fn delete_bucket(&self, name: &str) -> Result<(), ClientError> {
        Client::delete_bucket(self, name).await
    }
    async fn list_buckets(&self) -> Result<Vec<BucketConfig>, ClientError> {
        Client::list_buckets(self).await
    }
    async fn head_bucket(&self, name: &str) -> Result<BucketConfig, ClientError> {
        Client::head_bucket(self, name).await
    }
    async fn set_bucket_access(
        &self,
        name: &str,
        access: Vec<u8>,
        expect: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        Client::set_bucket_access(self, name, access, expect).await
    }
    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        acl: Vec<u8>,
        expect_version: Option<u64>,
    ) -> Result<(), ClientError> {
        Client::set_object_acl(self, bucket, key, acl, expect_version).await
    }
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError> {
        Client::put_object(self, bucket, key, body, opts).await
    }
    async fn head_object(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError> {
        Client::head_object(self, bucket, key).await
    }
    fn read_manifest(
        &self,
        bucket: &str,
        manifest: &Manifest,
        range: Option<(u64, u64)>,
    ) -> ByteStream {
        Client::read_manifest(self, bucket, manifest, range)
    }
    async fn copy_from(
        &self,
        src_bucket: &str,
        src_key: &str,
        src: Manifest,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError> {
        Client::copy_from_manifest(self, src_bucket, src_key, src, dst_bucket, dst_key, replace)
            .await
    }
    async fn get_version_tail(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_markers: bool,
        range: Option<ByteRangeSpec>,
    ) -> Result<(Manifest, Option<(u64, Bytes)>), ClientError> {
        Client::get_version_tail(self, bucket, key, version_id, include_markers, range).await
    }
    async fn index_parquet_version(
        &self,
        bucket: &str,
        key: &str,
        m: &Manifest,
    ) -> Result<ParquetOutcome, ClientError> {
        Client::index_parquet_version(self, bucket, key, m).await
    }
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ClientError> {
        Client::delete_object(self, bucket, key).await
    }
    async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        Client::delete_objects(self, bucket, keys).await
    }
    async fn list_objects(
        &self,
        req: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, ClientError> {
        Client::list_objects(self, req).await
    }
    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        include_markers: bool,
    ) -> Result<Manifest, ClientError> {
        Client::get_version(self, bucket, key, version_id, include_markers).await
    }
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
        cond: anode_client::DeleteIf,
    ) -> Result<DeleteOutcome, ClientError> {
        Client::delete_version_if(self, bucket, key, version_id, bypass_governance, cond).await
    }
    async fn delete_versions(
        &self,
        bucket: &str,
        objects: Vec<ObjectVersionRef>,
        bypass_governance: bool,
    ) -> Result<Vec<DeleteOutcome>, ClientError> {
        Client::delete_versions(self, bucket, objects, bypass_governance).await
    }
    async fn list_object_versions(
        &self,
        req: ListObjectVersionsRequest,
    ) -> Result<ListObjectVersionsResponse, ClientError> {
        Client::list_object_versions(self, req).await
    }
    async fn set_bucket_versioning(&self, bucket: &str, state: u32) -> Result<(), ClientError> {
        Client::set_bucket_versioning(self, bucket, state).await
    }
    async fn set_bucket_object_lock(
        &self,
        bucket: &str,
        default_retention: Option<DefaultRetention>,
    ) -> Result<(), ClientError> {
        Client::set_bucket_object_lock(self, bucket, default_retention).await
    }
    async fn set_bucket_lifecycle(
        &self,
        bucket: &str,
        config: Option<LifecycleConfig>,
    ) -> Result<(), ClientError> {
        Client::set_bucket_lifecycle(self, bucket, config).await
    }
    async fn set_bucket_cors(
        &self,
        bucket: &str,
        config: Option<CorsConfig>,
    ) -> Result<(), ClientError> {
        Client::set_bucket_cors(self, bucket, config).await
    }
    async fn set_bucket_notification(
        &self,
        bucket: &str,
        config: Option<NotificationConfig>,
    ) -> Result<(), ClientError> {
        Client::set_bucket_notification(self, bucket, config).await
    }
    async fn watch(&self, bucket: &str, opts: WatchOptions) -> Result<EventStream, ClientError> {
        Client::watch_with(self, bucket, opts).await
    }
    async fn set_object_lock(&self, cmd: SetObjectLockCmd) -> Result<Manifest, ClientError> {
        Client::set_object_lock(self, cmd).await
    }
    async fn set_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<Manifest, ClientError> {
        Client::set_object_tagging(self, bucket, key, version_id, tags).await
    }
    async fn set_bucket_tagging(&self, bucket: &str, tags: Vec<Tag>) -> Result<(), ClientError> {
        Client::set_bucket_tagging(self, bucket, tags).await
    }
    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<String, ClientError> {
        Client::create_multipart(self, bucket, key, opts).await
    }
    async fn upload_part(
        &self,
        id: anode_client::PartId<'_>,
        body: BodyStream,
        content_md5: Option<[u8; 16]>,
        checksum: anode_client::ChecksumCell,
    ) -> Result<PartRecord, ClientError> {
        Client::upload_part_checked(self, id, body, content_md5, checksum).await
    }
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        if_match_etag: Option<String>,
    ) -> Result<Manifest, ClientError> {
        Client::complete_multipart(self, bucket, key, upload_id, parts, if_match_etag).await
    }
    async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        Client::abort_multipart(self, bucket, key, upload_id).await
    }
    async fn list_parts(&self, req: ListPartsRequest) -> Result<ListPartsResponse, ClientError> {
        Client::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, ClientError> {
        Client::list_multipart_uploads(self, req).await
    }
    async fn get_principal(
        &self,
        access_key: &str,
    ) -> Result<(AccessKey, Option<User>), ClientError> {
        Client::get_principal(self, access_key).await
    }
}
