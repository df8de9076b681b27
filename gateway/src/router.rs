//! Request routing: (method, bucket, key, query, a few headers) -> [`S3Op`]. Pure.
//!
//! The access configuration has an operation per method and sub-resource: `?acl` on buckets
//! and objects (GET, PUT), `?policy` (GET, PUT, DELETE), `?policyStatus` (GET),
//! `?publicAccessBlock` and `?ownershipControls` (GET, PUT, DELETE).
//!
//! Other sub-resources Anode does not implement answer the way a bucket without that
//! configuration does where S3 has such an answer (`GET ?lifecycle` ->
//! `NoSuchCORSConfiguration`, ...); everything else is `NotImplemented`. Versioning
//! (`?versioning`, `?versions`, `versionId`) is real (issue 14), and so is tagging
//! (`?tagging` on buckets and objects, issue 15).

use http::Method;

use anode_meta::validate;

use crate::error::S3Error;
use crate::http_util::Query;

/// Highest part number S3 allows.
pub use anode_meta::validate::MAX_PART_NUMBER;

/// One S3 operation with the names it addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3Op {
    /// `GET /`.
    ListBuckets,
    /// `PUT /b`.
    CreateBucket {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b`.
    DeleteBucket {
        /// Bucket.
        bucket: String,
    },
    /// `HEAD /b`.
    HeadBucket {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?location`.
    GetBucketLocation {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?versioning`.
    GetBucketVersioning {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?versioning`.
    PutBucketVersioning {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?object-lock`.
    GetObjectLockConfiguration {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?object-lock`.
    PutObjectLockConfiguration {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?lifecycle`.
    GetBucketLifecycleConfiguration {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?lifecycle`.
    PutBucketLifecycleConfiguration {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?lifecycle`.
    DeleteBucketLifecycle {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?cors`.
    GetBucketCors {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?cors`.
    PutBucketCors {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?cors`.
    DeleteBucketCors {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?notification`.
    GetBucketNotification {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?notification`.
    PutBucketNotification {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?events=...`: MinIO's ListenBucketNotification (a long-lived stream of events).
    ListenBucketNotification {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b/k?retention`.
    GetObjectRetention {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k?retention`.
    PutObjectRetention {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b/k?legal-hold`.
    GetObjectLegalHold {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k?legal-hold`.
    PutObjectLegalHold {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b?acl`.
    GetBucketAcl {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?acl`: the ACL from `x-amz-acl` / `x-amz-grant-*` or the body.
    PutBucketAcl {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b/k?acl`.
    GetObjectAcl {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k?acl`.
    PutObjectAcl {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b?policy` (404 `NoSuchBucketPolicy` without one).
    GetBucketPolicy {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?policy` (answers 204).
    PutBucketPolicy {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?policy` (answers 204).
    DeleteBucketPolicy {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?policyStatus`.
    GetBucketPolicyStatus {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?publicAccessBlock`.
    GetPublicAccessBlock {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?publicAccessBlock`.
    PutPublicAccessBlock {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?publicAccessBlock` (answers 204).
    DeletePublicAccessBlock {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?ownershipControls`.
    GetBucketOwnershipControls {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?ownershipControls`.
    PutBucketOwnershipControls {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?ownershipControls` (answers 204).
    DeleteBucketOwnershipControls {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b/k?tagging` (with `versionId`: that version's).
    GetObjectTagging {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k?tagging`.
    PutObjectTagging {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b/k?attributes`: GetObjectAttributes.
    GetObjectAttributes {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `DELETE /b/k?tagging` (answers 204).
    DeleteObjectTagging {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b?tagging`.
    GetBucketTagging {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b?tagging`.
    PutBucketTagging {
        /// Bucket.
        bucket: String,
    },
    /// `DELETE /b?tagging` (answers 204).
    DeleteBucketTagging {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?<config>` for a configuration that is never set: 404 with `code`.
    GetMissingBucketConfig {
        /// Bucket.
        bucket: String,
        /// The sub-resource (`lifecycle`, `cors`, ...).
        sub: &'static str,
        /// The 404 answer.
        missing: S3Error,
    },
    /// `GET /b` (no `list-type=2`).
    ListObjectsV1 {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?list-type=2`.
    ListObjectsV2 {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?versions`.
    ListObjectVersions {
        /// Bucket.
        bucket: String,
    },
    /// `GET /b?uploads`.
    ListMultipartUploads {
        /// Bucket.
        bucket: String,
    },
    /// `POST /b?delete`.
    DeleteObjects {
        /// Bucket.
        bucket: String,
    },
    /// `PUT /b/k`.
    PutObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k` with `x-amz-copy-source`.
    CopyObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `GET /b/k`.
    GetObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `HEAD /b/k`.
    HeadObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `DELETE /b/k`.
    DeleteObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `POST /b/k?uploads`.
    CreateMultipartUpload {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// `PUT /b/k?partNumber=N&uploadId=U`.
    UploadPart {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// Part number (1..=10000).
        part_number: u32,
    },
    /// `PUT /b/k?partNumber=N&uploadId=U` with `x-amz-copy-source`.
    UploadPartCopy {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// Part number (1..=10000).
        part_number: u32,
    },
    /// `POST /b/k?uploadId=U`.
    CompleteMultipartUpload {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// `DELETE /b/k?uploadId=U`.
    AbortMultipartUpload {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// `GET /b/k?uploadId=U`.
    ListParts {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
}

impl S3Op {
    /// The operation name (metrics label, logs), as in the S3 API reference.
    pub fn name(&self) -> &'static str {
        match self {
            S3Op::ListBuckets => "ListBuckets",
            S3Op::CreateBucket { .. } => "CreateBucket",
            S3Op::DeleteBucket { .. } => "DeleteBucket",
            S3Op::HeadBucket { .. } => "HeadBucket",
            S3Op::GetBucketLocation { .. } => "GetBucketLocation",
            S3Op::GetBucketVersioning { .. } => "GetBucketVersioning",
            S3Op::PutBucketVersioning { .. } => "PutBucketVersioning",
            S3Op::GetObjectLockConfiguration { .. } => "GetObjectLockConfiguration",
            S3Op::PutObjectLockConfiguration { .. } => "PutObjectLockConfiguration",
            S3Op::GetBucketLifecycleConfiguration { .. } => "GetBucketLifecycleConfiguration",
            S3Op::PutBucketLifecycleConfiguration { .. } => "PutBucketLifecycleConfiguration",
            S3Op::DeleteBucketLifecycle { .. } => "DeleteBucketLifecycle",
            S3Op::GetBucketCors { .. } => "GetBucketCors",
            S3Op::PutBucketCors { .. } => "PutBucketCors",
            S3Op::DeleteBucketCors { .. } => "DeleteBucketCors",
            S3Op::GetBucketNotification { .. } => "GetBucketNotificationConfiguration",
            S3Op::PutBucketNotification { .. } => "PutBucketNotificationConfiguration",
            S3Op::ListenBucketNotification { .. } => "ListenBucketNotification",
            S3Op::GetObjectRetention { .. } => "GetObjectRetention",
            S3Op::PutObjectRetention { .. } => "PutObjectRetention",
            S3Op::GetObjectLegalHold { .. } => "GetObjectLegalHold",
            S3Op::PutObjectLegalHold { .. } => "PutObjectLegalHold",
            S3Op::GetBucketAcl { .. } => "GetBucketAcl",
            S3Op::PutBucketAcl { .. } => "PutBucketAcl",
            S3Op::GetObjectAcl { .. } => "GetObjectAcl",
            S3Op::PutObjectAcl { .. } => "PutObjectAcl",
            S3Op::GetBucketPolicy { .. } => "GetBucketPolicy",
            S3Op::PutBucketPolicy { .. } => "PutBucketPolicy",
            S3Op::DeleteBucketPolicy { .. } => "DeleteBucketPolicy",
            S3Op::GetBucketPolicyStatus { .. } => "GetBucketPolicyStatus",
            S3Op::GetPublicAccessBlock { .. } => "GetPublicAccessBlock",
            S3Op::PutPublicAccessBlock { .. } => "PutPublicAccessBlock",
            S3Op::DeletePublicAccessBlock { .. } => "DeletePublicAccessBlock",
            S3Op::GetBucketOwnershipControls { .. } => "GetBucketOwnershipControls",
            S3Op::PutBucketOwnershipControls { .. } => "PutBucketOwnershipControls",
            S3Op::DeleteBucketOwnershipControls { .. } => "DeleteBucketOwnershipControls",
            S3Op::GetObjectTagging { .. } => "GetObjectTagging",
            S3Op::PutObjectTagging { .. } => "PutObjectTagging",
            S3Op::DeleteObjectTagging { .. } => "DeleteObjectTagging",
            S3Op::GetBucketTagging { .. } => "GetBucketTagging",
            S3Op::PutBucketTagging { .. } => "PutBucketTagging",
            S3Op::DeleteBucketTagging { .. } => "DeleteBucketTagging",
            S3Op::GetObjectAttributes { .. } => "GetObjectAttributes",
            S3Op::GetMissingBucketConfig { .. } => "GetBucketConfig",
            S3Op::ListObjectsV1 { .. } => "ListObjects",
            S3Op::ListObjectsV2 { .. } => "ListObjectsV2",
            S3Op::ListObjectVersions { .. } => "ListObjectVersions",
            S3Op::ListMultipartUploads { .. } => "ListMultipartUploads",
            S3Op::DeleteObjects { .. } => "DeleteObjects",
            S3Op::PutObject { .. } => "PutObject",
            S3Op::CopyObject { .. } => "CopyObject",
            S3Op::GetObject { .. } => "GetObject",
            S3Op::HeadObject { .. } => "HeadObject",
            S3Op::DeleteObject { .. } => "DeleteObject",
            S3Op::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            S3Op::UploadPart { .. } => "UploadPart",
            S3Op::UploadPartCopy { .. } => "UploadPartCopy",
            S3Op::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            S3Op::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            S3Op::ListParts { .. } => "ListParts",
        }
    }

    /// The existing bucket the operation acts on (`None`: ListBuckets, and CreateBucket,
    /// whose bucket is new). A copy's source bucket comes from its header, not from here.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            S3Op::ListBuckets | S3Op::CreateBucket { .. } => None,
            S3Op::DeleteBucket { bucket }
            | S3Op::HeadBucket { bucket }
            | S3Op::GetBucketLocation { bucket }
            | S3Op::GetBucketVersioning { bucket }
            | S3Op::PutBucketVersioning { bucket }
            | S3Op::GetObjectLockConfiguration { bucket }
            | S3Op::PutObjectLockConfiguration { bucket }
            | S3Op::GetBucketLifecycleConfiguration { bucket }
            | S3Op::PutBucketLifecycleConfiguration { bucket }
            | S3Op::DeleteBucketLifecycle { bucket }
            | S3Op::GetBucketCors { bucket }
            | S3Op::PutBucketCors { bucket }
            | S3Op::DeleteBucketCors { bucket }
            | S3Op::GetBucketNotification { bucket }
            | S3Op::PutBucketNotification { bucket }
            | S3Op::ListenBucketNotification { bucket }
            | S3Op::GetObjectRetention { bucket, .. }
            | S3Op::PutObjectRetention { bucket, .. }
            | S3Op::GetObjectLegalHold { bucket, .. }
            | S3Op::PutObjectLegalHold { bucket, .. }
            | S3Op::GetBucketAcl { bucket }
            | S3Op::PutBucketAcl { bucket }
            | S3Op::GetObjectAcl { bucket, .. }
            | S3Op::PutObjectAcl { bucket, .. }
            | S3Op::GetBucketPolicy { bucket }
            | S3Op::PutBucketPolicy { bucket }
            | S3Op::DeleteBucketPolicy { bucket }
            | S3Op::GetBucketPolicyStatus { bucket }
            | S3Op::GetPublicAccessBlock { bucket }
            | S3Op::PutPublicAccessBlock { bucket }
            | S3Op::DeletePublicAccessBlock { bucket }
            | S3Op::GetBucketOwnershipControls { bucket }
            | S3Op::PutBucketOwnershipControls { bucket }
            | S3Op::DeleteBucketOwnershipControls { bucket }
            | S3Op::GetObjectTagging { bucket, .. }
            | S3Op::PutObjectTagging { bucket, .. }
            | S3Op::DeleteObjectTagging { bucket, .. }
            | S3Op::GetBucketTagging { bucket }
            | S3Op::PutBucketTagging { bucket }
            | S3Op::DeleteBucketTagging { bucket }
            | S3Op::GetObjectAttributes { bucket, .. }
            | S3Op::GetMissingBucketConfig { bucket, .. }
            | S3Op::ListObjectsV1 { bucket }
            | S3Op::ListObjectsV2 { bucket }
            | S3Op::ListObjectVersions { bucket }
            | S3Op::ListMultipartUploads { bucket }
            | S3Op::DeleteObjects { bucket }
            | S3Op::PutObject { bucket, .. }
            | S3Op::CopyObject { bucket, .. }
            | S3Op::GetObject { bucket, .. }
            | S3Op::HeadObject { bucket, .. }
            | S3Op::DeleteObject { bucket, .. }
            | S3Op::CreateMultipartUpload { bucket, .. }
            | S3Op::UploadPart { bucket, .. }
            | S3Op::UploadPartCopy { bucket, .. }
            | S3Op::CompleteMultipartUpload { bucket, .. }
            | S3Op::AbortMultipartUpload { bucket, .. }
            | S3Op::ListParts { bucket, .. } => Some(bucket),
        }
    }

    /// The key the operation addresses (`None` for bucket and service operations).
    pub fn key(&self) -> Option<&str> {
        match self {
            S3Op::GetObjectAcl { key, .. }
            | S3Op::PutObjectAcl { key, .. }
            | S3Op::GetObjectRetention { key, .. }
            | S3Op::PutObjectRetention { key, .. }
            | S3Op::GetObjectLegalHold { key, .. }
            | S3Op::PutObjectLegalHold { key, .. }
            | S3Op::GetObjectTagging { key, .. }
            | S3Op::PutObjectTagging { key, .. }
            | S3Op::DeleteObjectTagging { key, .. }
            | S3Op::GetObjectAttributes { key, .. }
            | S3Op::PutObject { key, .. }
            | S3Op::CopyObject { key, .. }
            | S3Op::GetObject { key, .. }
            | S3Op::HeadObject { key, .. }
            | S3Op::DeleteObject { key, .. }
            | S3Op::CreateMultipartUpload { key, .. }
            | S3Op::UploadPart { key, .. }
            | S3Op::UploadPartCopy { key, .. }
            | S3Op::CompleteMultipartUpload { key, .. }
            | S3Op::AbortMultipartUpload { key, .. }
            | S3Op::ListParts { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether the operation acts on an object's ACL rather than the bucket's (the
    /// `acl_of_object` argument of `anode_meta::authz::Action::for_operation`).
    pub fn acl_of_object(&self) -> bool {
        matches!(self, S3Op::GetObjectAcl { .. } | S3Op::PutObjectAcl { .. })
    }

    /// The S3 action the operation needs ([`anode_meta::authz::Action::for_operation`]);
    /// `None` for an operation that table does not know (refused).
    pub fn action(&self) -> Option<anode_meta::authz::Action> {
        self.action_for(false)
    }

    /// [`S3Op::action`] for a request that names a version (`versionId`): reading or
    /// deleting a given version needs `s3:GetObjectVersion` / `s3:DeleteObjectVersion`, as in
    /// AWS.
    pub fn action_for(&self, versioned: bool) -> Option<anode_meta::authz::Action> {
        use anode_meta::authz::Action as A;
        if versioned {
            match self {
                S3Op::GetObject { .. } | S3Op::HeadObject { .. } => {
                    return Some(A::GetObjectVersion)
                }
                S3Op::DeleteObject { .. } => return Some(A::DeleteObjectVersion),
                S3Op::GetObjectTagging { .. } => return Some(A::GetObjectVersionTagging),
                S3Op::PutObjectTagging { .. } => return Some(A::PutObjectVersionTagging),
                S3Op::DeleteObjectTagging { .. } => return Some(A::DeleteObjectVersionTagging),
                S3Op::GetObjectAttributes { .. } => return Some(A::GetObjectVersionAttributes),
                _ => {}
            }
        }
        let sub = match self {
            S3Op::GetMissingBucketConfig { sub, .. } => Some(*sub),
            _ => None,
        };
        A::for_operation(self.name(), sub, self.acl_of_object())
    }

    /// Whether the operation reads a copy source (`x-amz-copy-source`).
    pub fn copies(&self) -> bool {
        matches!(self, S3Op::CopyObject { .. } | S3Op::UploadPartCopy { .. })
    }
}

/// Sub-resources that select an S3 API Anode does not implement (beyond the read-only answers
/// listed in the module docs).
const UNSUPPORTED_SUBRESOURCES: [&str; 14] = [
    "accelerate",
    "analytics",
    "attributes",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "logging",
    "metrics",
    "replication",
    "requestPayment",
    "restore",
    "select",
    "torrent",
    "website",
];

/// Route a request. `has_copy_source` is whether `x-amz-copy-source` is present.
pub fn route(
    method: &Method,
    bucket: Option<&str>,
    key: Option<&str>,
    query: &Query,
    has_copy_source: bool,
) -> Result<S3Op, S3Error> {
    match (bucket, key) {
        (None, _) => route_service(method, query),
        (Some(b), None) => route_bucket(method, b.to_string(), query),
        (Some(b), Some(k)) => {
            route_object(method, b.to_string(), k.to_string(), query, has_copy_source)
        }
    }
}

fn route_service(method: &Method, query: &Query) -> Result<S3Op, S3Error> {
    match *method {
        // MinIO's ListenNotification over every bucket.
        Method::GET if query.has("events") => Err(not_implemented("events without a bucket")),
        Method::GET => Ok(S3Op::ListBuckets),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

fn unsupported(query: &Query) -> Option<&'static str> {
    UNSUPPORTED_SUBRESOURCES
        .iter()
        .copied()
        .find(|s| query.has(s))
}

fn not_implemented(what: &str) -> S3Error {
    S3Error::NotImplemented(format!(
        "A header or query you provided implies functionality that is not implemented ({what})"
    ))
}

fn missing_config(sub: &str) -> Option<S3Error> {
    let (code, message) = match sub {
        "lifecycle" => (
            "NoSuchLifecycleConfiguration",
            "The lifecycle configuration does not exist",
        ),
        "cors" => (
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
        ),
        "website" => (
            "NoSuchWebsiteConfiguration",
            "The specified bucket does not have a website configuration",
        ),
        "encryption" => (
            "ServerSideEncryptionConfigurationNotFoundError",
            "The server side encryption configuration was not found",
        ),
        "object-lock" => (
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
        ),
        "replication" => (
            "ReplicationConfigurationNotFoundError",
            "The replication configuration was not found",
        ),
        _ => return None,
    };
    Some(S3Error::NoSuchConfiguration { code, message })
}

/// Sub-resources of the access configuration, each with its own operations (`acl` first: the
/// only one objects have too).
const ACCESS_SUBRESOURCES: [&str; 5] = [
    "acl",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "ownershipControls",
];

/// The access-configuration operation `method` `?sub` names on `bucket`.
fn route_bucket_access(method: &Method, bucket: String, sub: &str) -> Result<S3Op, S3Error> {
    use S3Op as O;
    Ok(match (method.as_str(), sub) {
        ("GET", "acl") => O::GetBucketAcl { bucket },
        ("PUT", "acl") => O::PutBucketAcl { bucket },
        ("GET", "policy") => O::GetBucketPolicy { bucket },
        ("PUT", "policy") => O::PutBucketPolicy { bucket },
        ("DELETE", "policy") => O::DeleteBucketPolicy { bucket },
        ("GET", "policyStatus") => O::GetBucketPolicyStatus { bucket },
        ("GET", "publicAccessBlock") => O::GetPublicAccessBlock { bucket },
        ("PUT", "publicAccessBlock") => O::PutPublicAccessBlock { bucket },
        ("DELETE", "publicAccessBlock") => O::DeletePublicAccessBlock { bucket },
        ("GET", "ownershipControls") => O::GetBucketOwnershipControls { bucket },
        ("PUT", "ownershipControls") => O::PutBucketOwnershipControls { bucket },
        ("DELETE", "ownershipControls") => O::DeleteBucketOwnershipControls { bucket },
        _ => return Err(S3Error::MethodNotAllowed),
    })
}

fn route_bucket(method: &Method, bucket: String, q: &Query) -> Result<S3Op, S3Error> {
    if let Some(sub) = ACCESS_SUBRESOURCES.iter().copied().find(|s| q.has(s)) {
        return route_bucket_access(method, bucket, sub);
    }
    if q.has("object-lock") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectLockConfiguration { bucket }),
            Method::PUT => Ok(S3Op::PutObjectLockConfiguration { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("lifecycle") {
        return match *method {
            Method::GET => Ok(S3Op::GetBucketLifecycleConfiguration { bucket }),
            Method::PUT => Ok(S3Op::PutBucketLifecycleConfiguration { bucket }),
            Method::DELETE => Ok(S3Op::DeleteBucketLifecycle { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("cors") {
        return match *method {
            Method::GET => Ok(S3Op::GetBucketCors { bucket }),
            Method::PUT => Ok(S3Op::PutBucketCors { bucket }),
            Method::DELETE => Ok(S3Op::DeleteBucketCors { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("notification") {
        return match *method {
            Method::GET => Ok(S3Op::GetBucketNotification { bucket }),
            Method::PUT => Ok(S3Op::PutBucketNotification { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("tagging") {
        return match *method {
            Method::GET => Ok(S3Op::GetBucketTagging { bucket }),
            Method::PUT => Ok(S3Op::PutBucketTagging { bucket }),
            Method::DELETE => Ok(S3Op::DeleteBucketTagging { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("versioning") {
        return match *method {
            Method::GET => Ok(S3Op::GetBucketVersioning { bucket }),
            Method::PUT => Ok(S3Op::PutBucketVersioning { bucket }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if let Some(sub) = unsupported(q) {
        if *method != Method::GET {
            return Err(not_implemented(sub));
        }
        return match missing_config(sub) {
            Some(missing) => Ok(S3Op::GetMissingBucketConfig {
                bucket,
                sub,
                missing,
            }),
            None => Err(not_implemented(sub)),
        };
    }
    match *method {
        Method::GET if q.has("location") => Ok(S3Op::GetBucketLocation { bucket }),
        Method::GET if q.has("events") => Ok(S3Op::ListenBucketNotification { bucket }),
        Method::GET if q.has("uploads") => Ok(S3Op::ListMultipartUploads { bucket }),
        Method::GET if q.has("versions") => Ok(S3Op::ListObjectVersions { bucket }),
        Method::GET => match q.get("list-type") {
            Some("2") => Ok(S3Op::ListObjectsV2 { bucket }),
            None => Ok(S3Op::ListObjectsV1 { bucket }),
            Some(_) => Err(S3Error::InvalidArgument(
                "Invalid list type specified".into(),
            )),
        },
        Method::HEAD => Ok(S3Op::HeadBucket { bucket }),
        Method::PUT => Ok(S3Op::CreateBucket { bucket }),
        Method::DELETE => Ok(S3Op::DeleteBucket { bucket }),
        Method::POST if q.has("delete") => Ok(S3Op::DeleteObjects { bucket }),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

fn route_object(
    method: &Method,
    bucket: String,
    key: String,
    q: &Query,
    has_copy_source: bool,
) -> Result<S3Op, S3Error> {
    // A version id must be well formed (the handlers pass it to the master as given).
    if let Some(v) = q.get("versionId") {
        anode_meta::state::versions::parse_version_id(v)
            .map_err(|_| S3Error::InvalidArgument("Invalid version id specified".into()))?;
        // ACLs of other versions than the current one are not kept apart yet.
        if v != "null" && q.has("acl") {
            return Err(not_implemented("versionId on ?acl"));
        }
    }
    // The bucket-only access sub-resources name nothing on an object.
    if let Some(sub) = ACCESS_SUBRESOURCES[1..].iter().copied().find(|s| q.has(s)) {
        return Err(not_implemented(sub));
    }
    if q.has("retention") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectRetention { bucket, key }),
            Method::PUT => Ok(S3Op::PutObjectRetention { bucket, key }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("legal-hold") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectLegalHold { bucket, key }),
            Method::PUT => Ok(S3Op::PutObjectLegalHold { bucket, key }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("acl") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectAcl { bucket, key }),
            Method::PUT => Ok(S3Op::PutObjectAcl { bucket, key }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("tagging") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectTagging { bucket, key }),
            Method::PUT => Ok(S3Op::PutObjectTagging { bucket, key }),
            Method::DELETE => Ok(S3Op::DeleteObjectTagging { bucket, key }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if q.has("attributes") {
        return match *method {
            Method::GET => Ok(S3Op::GetObjectAttributes { bucket, key }),
            _ => Err(S3Error::MethodNotAllowed),
        };
    }
    if let Some(sub) = unsupported(q) {
        return Err(not_implemented(sub));
    }
    if q.has("notification") {
        return Err(not_implemented("notification"));
    }
    if let Some(upload_id) = q.get("uploadId").map(str::to_string) {
        return route_upload(method, bucket, key, upload_id, q, has_copy_source);
    }
    match *method {
        Method::GET => Ok(S3Op::GetObject { bucket, key }),
        Method::HEAD => Ok(S3Op::HeadObject { bucket, key }),
        Method::PUT if q.has("partNumber") => Err(S3Error::InvalidArgument(
            "partNumber requires uploadId".into(),
        )),
        Method::PUT if has_copy_source => Ok(S3Op::CopyObject { bucket, key }),
        Method::PUT => Ok(S3Op::PutObject { bucket, key }),
        Method::DELETE => Ok(S3Op::DeleteObject { bucket, key }),
        Method::POST if q.has("uploads") => Ok(S3Op::CreateMultipartUpload { bucket, key }),
        Method::POST => Err(not_implemented("POST object")),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

fn route_upload(
    method: &Method,
    bucket: String,
    key: String,
    upload_id: String,
    q: &Query,
    has_copy_source: bool,
) -> Result<S3Op, S3Error> {
    // An id the master could never have issued names no upload.
    validate::upload_id(&upload_id)?;
    match *method {
        Method::PUT => {
            let part_number = parse_part_number(q.get("partNumber"))?;
            if has_copy_source {
                Ok(S3Op::UploadPartCopy {
                    bucket,
                    key,
                    upload_id,
                    part_number,
                })
            } else {
                Ok(S3Op::UploadPart {
                    bucket,
                    key,
                    upload_id,
                    part_number,
                })
            }
        }
        Method::POST => Ok(S3Op::CompleteMultipartUpload {
            bucket,
            key,
            upload_id,
        }),
        Method::DELETE => Ok(S3Op::AbortMultipartUpload {
            bucket,
            key,
            upload_id,
        }),
        Method::GET => Ok(S3Op::ListParts {
            bucket,
            key,
            upload_id,
        }),
        _ => Err(S3Error::MethodNotAllowed),
    }
}

/// A `partNumber` value: an integer in 1..=10000.
pub fn parse_part_number(v: Option<&str>) -> Result<u32, S3Error> {
    let v = v.ok_or_else(|| S3Error::InvalidArgument("partNumber is required".into()))?;
    // Not a number is refused as an out-of-range one (0).
    let n = v.parse::<u32>().unwrap_or(0);
    validate::part_number(n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[rustfmt::skip]
    fn table() {
        let b = || "b".to_string();
        let k = || "k".to_string();
        let u = || "00000000000000000000000000000001".to_string();
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, bool, Result<S3Op, &'a str>);
        let cases: Vec<Case> = vec![
            ("GET", None, None, "", false, Ok(S3Op::ListBuckets)),
            ("PUT", None, None, "", false, Err("MethodNotAllowed")),
            ("PUT", Some("b"), None, "", false, Ok(S3Op::CreateBucket { bucket: b() })),
            ("DELETE", Some("b"), None, "", false, Ok(S3Op::DeleteBucket { bucket: b() })),
            ("HEAD", Some("b"), None, "", false, Ok(S3Op::HeadBucket { bucket: b() })),
            ("GET", Some("b"), None, "location", false, Ok(S3Op::GetBucketLocation { bucket: b() })),
            ("GET", Some("b"), None, "", false, Ok(S3Op::ListObjectsV1 { bucket: b() })),
            ("GET", Some("b"), None, "prefix=a&marker=x", false, Ok(S3Op::ListObjectsV1 { bucket: b() })),
            ("GET", Some("b"), None, "list-type=2&prefix=a", false, Ok(S3Op::ListObjectsV2 { bucket: b() })),
            ("GET", Some("b"), None, "list-type=3", false, Err("InvalidArgument")),
            ("GET", Some("b"), None, "versions", false, Ok(S3Op::ListObjectVersions { bucket: b() })),
            ("GET", Some("b"), None, "uploads", false, Ok(S3Op::ListMultipartUploads { bucket: b() })),
            ("POST", Some("b"), None, "delete", false, Ok(S3Op::DeleteObjects { bucket: b() })),
            ("POST", Some("b"), None, "", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), None, "versioning", false, Ok(S3Op::GetBucketVersioning { bucket: b() })),
            ("GET", Some("b"), None, "acl", false, Ok(S3Op::GetBucketAcl { bucket: b() })),
            ("PUT", Some("b"), None, "acl", false, Ok(S3Op::PutBucketAcl { bucket: b() })),
            ("DELETE", Some("b"), None, "acl", false, Err("MethodNotAllowed")),
            ("POST", Some("b"), None, "acl", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), None, "policy", false, Ok(S3Op::GetBucketPolicy { bucket: b() })),
            ("PUT", Some("b"), None, "policy", false, Ok(S3Op::PutBucketPolicy { bucket: b() })),
            ("DELETE", Some("b"), None, "policy", false, Ok(S3Op::DeleteBucketPolicy { bucket: b() })),
            ("GET", Some("b"), None, "policyStatus", false, Ok(S3Op::GetBucketPolicyStatus { bucket: b() })),
            ("PUT", Some("b"), None, "policyStatus", false, Err("MethodNotAllowed")),
            ("DELETE", Some("b"), None, "policyStatus", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), None, "publicAccessBlock", false, Ok(S3Op::GetPublicAccessBlock { bucket: b() })),
            ("PUT", Some("b"), None, "publicAccessBlock", false, Ok(S3Op::PutPublicAccessBlock { bucket: b() })),
            ("DELETE", Some("b"), None, "publicAccessBlock", false, Ok(S3Op::DeletePublicAccessBlock { bucket: b() })),
            ("GET", Some("b"), None, "ownershipControls", false, Ok(S3Op::GetBucketOwnershipControls { bucket: b() })),
            ("PUT", Some("b"), None, "ownershipControls", false, Ok(S3Op::PutBucketOwnershipControls { bucket: b() })),
            ("DELETE", Some("b"), None, "ownershipControls", false, Ok(S3Op::DeleteBucketOwnershipControls { bucket: b() })),
            ("HEAD", Some("b"), None, "ownershipControls", false, Err("MethodNotAllowed")),
            ("PUT", Some("b"), None, "versioning", false, Ok(S3Op::PutBucketVersioning { bucket: b() })),
            ("DELETE", Some("b"), None, "versioning", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), Some("k"), "versionId=000000000000002a", false, Ok(S3Op::GetObject { bucket: b(), key: k() })),
            ("DELETE", Some("b"), Some("k"), "versionId=000000000000002a", false, Ok(S3Op::DeleteObject { bucket: b(), key: k() })),
            ("GET", Some("b"), Some("k"), "acl&versionId=000000000000002a", false, Err("NotImplemented")),
            ("GET", Some("b"), None, "lifecycle", false, Ok(S3Op::GetBucketLifecycleConfiguration { bucket: b() })),
            ("PUT", Some("b"), None, "lifecycle", false, Ok(S3Op::PutBucketLifecycleConfiguration { bucket: b() })),
            ("DELETE", Some("b"), None, "lifecycle", false, Ok(S3Op::DeleteBucketLifecycle { bucket: b() })),
            ("GET", Some("b"), None, "object-lock", false, Ok(S3Op::GetObjectLockConfiguration { bucket: b() })),
            ("PUT", Some("b"), None, "object-lock", false, Ok(S3Op::PutObjectLockConfiguration { bucket: b() })),
            ("PUT", Some("b"), Some("k"), "legal-hold", false, Ok(S3Op::PutObjectLegalHold { bucket: b(), key: k() })),
            ("GET", Some("b"), Some("k"), "legal-hold", false, Ok(S3Op::GetObjectLegalHold { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "retention", false, Ok(S3Op::PutObjectRetention { bucket: b(), key: k() })),
            ("GET", Some("b"), None, "notification", false, Ok(S3Op::GetBucketNotification { bucket: b() })),
            ("PUT", Some("b"), None, "notification", false, Ok(S3Op::PutBucketNotification { bucket: b() })),
            ("DELETE", Some("b"), None, "notification", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), Some("k"), "notification", false, Err("NotImplemented")),
            ("GET", Some("b"), None, "prefix=a&suffix=&events=s3%3AObjectCreated%3A%2A&ping=10", false, Ok(S3Op::ListenBucketNotification { bucket: b() })),
            ("GET", None, None, "events=s3%3AObjectCreated%3A%2A", false, Err("NotImplemented")),
            ("DELETE", Some("b"), None, "cors", false, Ok(S3Op::DeleteBucketCors { bucket: b() })),
            ("PUT", Some("b"), Some("k"), "", false, Ok(S3Op::PutObject { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "", true, Ok(S3Op::CopyObject { bucket: b(), key: k() })),
            ("GET", Some("b"), Some("k"), "", false, Ok(S3Op::GetObject { bucket: b(), key: k() })),
            ("GET", Some("b"), Some("k"), "response-content-type=x", false, Ok(S3Op::GetObject { bucket: b(), key: k() })),
            ("HEAD", Some("b"), Some("k"), "", false, Ok(S3Op::HeadObject { bucket: b(), key: k() })),
            ("DELETE", Some("b"), Some("k"), "", false, Ok(S3Op::DeleteObject { bucket: b(), key: k() })),
            ("POST", Some("b"), Some("k"), "uploads", false, Ok(S3Op::CreateMultipartUpload { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "partNumber=3&uploadId=00000000000000000000000000000001", false, Ok(S3Op::UploadPart { bucket: b(), key: k(), upload_id: u(), part_number: 3 })),
            ("PUT", Some("b"), Some("k"), "partNumber=3&uploadId=00000000000000000000000000000001", true, Ok(S3Op::UploadPartCopy { bucket: b(), key: k(), upload_id: u(), part_number: 3 })),
            ("PUT", Some("b"), Some("k"), "partNumber=0&uploadId=00000000000000000000000000000001", false, Err("InvalidArgument")),
            ("PUT", Some("b"), Some("k"), "partNumber=10001&uploadId=00000000000000000000000000000001", false, Err("InvalidArgument")),
            ("PUT", Some("b"), Some("k"), "uploadId=00000000000000000000000000000001", false, Err("InvalidArgument")),
            ("PUT", Some("b"), Some("k"), "partNumber=1", false, Err("InvalidArgument")),
            ("POST", Some("b"), Some("k"), "uploadId=00000000000000000000000000000001", false, Ok(S3Op::CompleteMultipartUpload { bucket: b(), key: k(), upload_id: u() })),
            ("DELETE", Some("b"), Some("k"), "uploadId=00000000000000000000000000000001", false, Ok(S3Op::AbortMultipartUpload { bucket: b(), key: k(), upload_id: u() })),
            ("GET", Some("b"), Some("k"), "uploadId=00000000000000000000000000000001", false, Ok(S3Op::ListParts { bucket: b(), key: k(), upload_id: u() })),
            // Ids the master never issues are unknown uploads (s3-tests: 'abc1234def', '56788').
            ("POST", Some("b"), Some("k"), "uploadId=abc1234def", false, Err("NoSuchUpload")),
            ("DELETE", Some("b"), Some("k"), "uploadId=56788", false, Err("NoSuchUpload")),
            ("GET", Some("b"), Some("k"), "uploadId=0000000000000000000000000000000A", false, Err("NoSuchUpload")),
            ("PUT", Some("b"), Some("k"), "partNumber=1&uploadId=000000000000000000000000000000001", false, Err("NoSuchUpload")),
            ("GET", Some("b"), Some("k"), "acl", false, Ok(S3Op::GetObjectAcl { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "acl", false, Ok(S3Op::PutObjectAcl { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "acl&versionId=null", false, Ok(S3Op::PutObjectAcl { bucket: b(), key: k() })),
            ("GET", Some("b"), Some("k"), "acl&versionId=v1", false, Err("InvalidArgument")),
            ("DELETE", Some("b"), Some("k"), "acl", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), Some("k"), "policy", false, Err("NotImplemented")),
            ("PUT", Some("b"), Some("k"), "publicAccessBlock", false, Err("NotImplemented")),
            ("GET", Some("b"), Some("k"), "ownershipControls", false, Err("NotImplemented")),
            ("GET", Some("b"), Some("k"), "policyStatus", false, Err("NotImplemented")),
            ("GET", Some("b"), Some("k"), "tagging", false, Ok(S3Op::GetObjectTagging { bucket: b(), key: k() })),
            ("PUT", Some("b"), Some("k"), "tagging", false, Ok(S3Op::PutObjectTagging { bucket: b(), key: k() })),
            ("DELETE", Some("b"), Some("k"), "tagging", false, Ok(S3Op::DeleteObjectTagging { bucket: b(), key: k() })),
            ("POST", Some("b"), Some("k"), "tagging", false, Err("MethodNotAllowed")),
            ("PUT", Some("b"), Some("k"), "tagging&versionId=000000000000002a", false, Ok(S3Op::PutObjectTagging { bucket: b(), key: k() })),
            ("GET", Some("b"), None, "tagging", false, Ok(S3Op::GetBucketTagging { bucket: b() })),
            ("PUT", Some("b"), None, "tagging", false, Ok(S3Op::PutBucketTagging { bucket: b() })),
            ("DELETE", Some("b"), None, "tagging", false, Ok(S3Op::DeleteBucketTagging { bucket: b() })),
            ("GET", Some("b"), Some("k"), "retention", false, Ok(S3Op::GetObjectRetention { bucket: b(), key: k() })),
            ("POST", Some("b"), Some("k"), "select&select-type=2", false, Err("NotImplemented")),
            ("POST", Some("b"), Some("k"), "", false, Err("NotImplemented")),
            ("PATCH", Some("b"), Some("k"), "", false, Err("MethodNotAllowed")),
            ("GET", Some("b"), Some("k"), "versionId=null", false, Ok(S3Op::GetObject { bucket: b(), key: k() })),
            ("DELETE", Some("b"), Some("k"), "versionId=null", false, Ok(S3Op::DeleteObject { bucket: b(), key: k() })),
            ("DELETE", Some("b"), Some("k"), "versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", false, Err("InvalidArgument")),
            ("GET", Some("b"), Some("k"), "versionId=v1", false, Err("InvalidArgument")),
            ("HEAD", Some("b"), Some("k"), "versionId=v1", false, Err("InvalidArgument")),
            ("GET", Some("b"), Some("k"), "versionId=v1&tagging", false, Err("InvalidArgument")),
        ];
        for (method, bucket, key, query, copy, want) in cases {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let got = route(&m, bucket, key, &Query::parse(query), copy);
            match (&got, &want) {
                (Ok(op), Ok(w)) => assert_eq!(op, w, "{method} {bucket:?} {key:?} ?{query}"),
                (Err(e), Err(code)) => assert_eq!(e.aws_code(), *code, "{method} {bucket:?} {key:?} ?{query}"),
                _ => panic!("{method} {bucket:?} {key:?} ?{query}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Every operation name is one `anode_meta::authz::Action::for_operation` knows, with the
    /// action S3 documents for it.
    #[test]
    #[rustfmt::skip]
    fn every_operation_has_its_action() {
        use anode_meta::authz::Action as A;
        let s = || "b".to_string();
        let k = || "k".to_string();
        let u = || "00000000000000000000000000000001".to_string();
        let ops = [
            (S3Op::ListBuckets, A::ListAllMyBuckets),
            (S3Op::CreateBucket { bucket: s() }, A::CreateBucket),
            (S3Op::DeleteBucket { bucket: s() }, A::DeleteBucket),
            (S3Op::HeadBucket { bucket: s() }, A::ListBucket),
            (S3Op::GetBucketLocation { bucket: s() }, A::GetBucketLocation),
            (S3Op::GetBucketVersioning { bucket: s() }, A::GetBucketVersioning),
            (S3Op::PutBucketVersioning { bucket: s() }, A::PutBucketVersioning),
            (S3Op::GetObjectLockConfiguration { bucket: s() }, A::GetBucketObjectLockConfiguration),
            (S3Op::PutObjectLockConfiguration { bucket: s() }, A::PutBucketObjectLockConfiguration),
            (S3Op::GetBucketLifecycleConfiguration { bucket: s() }, A::GetLifecycleConfiguration),
            (S3Op::PutBucketLifecycleConfiguration { bucket: s() }, A::PutLifecycleConfiguration),
            (S3Op::DeleteBucketLifecycle { bucket: s() }, A::PutLifecycleConfiguration),
            (S3Op::GetObjectRetention { bucket: s(), key: s() }, A::GetObjectRetention),
            (S3Op::PutObjectRetention { bucket: s(), key: s() }, A::PutObjectRetention),
            (S3Op::GetObjectLegalHold { bucket: s(), key: s() }, A::GetObjectLegalHold),
            (S3Op::PutObjectLegalHold { bucket: s(), key: s() }, A::PutObjectLegalHold),
            (S3Op::GetBucketAcl { bucket: s() }, A::GetBucketAcl),
            (S3Op::PutBucketAcl { bucket: s() }, A::PutBucketAcl),
            (S3Op::GetObjectAcl { bucket: s(), key: k() }, A::GetObjectAcl),
            (S3Op::PutObjectAcl { bucket: s(), key: k() }, A::PutObjectAcl),
            (S3Op::GetBucketPolicy { bucket: s() }, A::GetBucketPolicy),
            (S3Op::PutBucketPolicy { bucket: s() }, A::PutBucketPolicy),
            (S3Op::DeleteBucketPolicy { bucket: s() }, A::DeleteBucketPolicy),
            (S3Op::GetBucketPolicyStatus { bucket: s() }, A::GetBucketPolicyStatus),
            (S3Op::GetPublicAccessBlock { bucket: s() }, A::GetBucketPublicAccessBlock),
            (S3Op::PutPublicAccessBlock { bucket: s() }, A::PutBucketPublicAccessBlock),
            (S3Op::DeletePublicAccessBlock { bucket: s() }, A::PutBucketPublicAccessBlock),
            (S3Op::GetBucketOwnershipControls { bucket: s() }, A::GetBucketOwnershipControls),
            (S3Op::PutBucketOwnershipControls { bucket: s() }, A::PutBucketOwnershipControls),
            (S3Op::DeleteBucketOwnershipControls { bucket: s() }, A::PutBucketOwnershipControls),
            (S3Op::GetObjectTagging { bucket: s(), key: k() }, A::GetObjectTagging),
            (S3Op::PutObjectTagging { bucket: s(), key: k() }, A::PutObjectTagging),
            (S3Op::DeleteObjectTagging { bucket: s(), key: k() }, A::DeleteObjectTagging),
            (S3Op::GetBucketTagging { bucket: s() }, A::GetBucketTagging),
            (S3Op::PutBucketTagging { bucket: s() }, A::PutBucketTagging),
            (S3Op::DeleteBucketTagging { bucket: s() }, A::PutBucketTagging),
            (S3Op::ListObjectsV1 { bucket: s() }, A::ListBucket),
            (S3Op::ListObjectsV2 { bucket: s() }, A::ListBucket),
            (S3Op::ListObjectVersions { bucket: s() }, A::ListBucketVersions),
            (S3Op::ListMultipartUploads { bucket: s() }, A::ListBucketMultipartUploads),
            (S3Op::DeleteObjects { bucket: s() }, A::DeleteObject),
            (S3Op::PutObject { bucket: s(), key: k() }, A::PutObject),
            (S3Op::CopyObject { bucket: s(), key: k() }, A::PutObject),
            (S3Op::GetObject { bucket: s(), key: k() }, A::GetObject),
            (S3Op::HeadObject { bucket: s(), key: k() }, A::GetObject),
            (S3Op::DeleteObject { bucket: s(), key: k() }, A::DeleteObject),
            (S3Op::CreateMultipartUpload { bucket: s(), key: k() }, A::PutObject),
            (S3Op::UploadPart { bucket: s(), key: k(), upload_id: u(), part_number: 1 }, A::PutObject),
            (S3Op::UploadPartCopy { bucket: s(), key: k(), upload_id: u(), part_number: 1 }, A::PutObject),
            (S3Op::CompleteMultipartUpload { bucket: s(), key: k(), upload_id: u() }, A::PutObject),
            (S3Op::AbortMultipartUpload { bucket: s(), key: k(), upload_id: u() }, A::AbortMultipartUpload),
            (S3Op::ListParts { bucket: s(), key: k(), upload_id: u() }, A::ListMultipartUploadParts),
        ];
        for (op, want) in ops {
            assert_eq!(op.action(), Some(want), "{op:?}");
        }
        // With a versionId, tagging needs the ...VersionTagging actions, as in AWS.
        for (op, want) in [
            (S3Op::GetObjectTagging { bucket: s(), key: k() }, A::GetObjectVersionTagging),
            (S3Op::PutObjectTagging { bucket: s(), key: k() }, A::PutObjectVersionTagging),
            (S3Op::DeleteObjectTagging { bucket: s(), key: k() }, A::DeleteObjectVersionTagging),
            (S3Op::GetBucketTagging { bucket: s() }, A::GetBucketTagging),
        ] {
            assert_eq!(op.action_for(true), Some(want), "{op:?}");
        }
        // The 404 answers of unset configurations carry their sub-resource.
        let missing = route(&Method::GET, Some("b"), None, &Query::parse("website"), false).unwrap();
        assert_eq!(missing.action(), Some(A::GetBucketWebsite));
        for (op, want) in [
            (S3Op::GetBucketCors { bucket: s() }, A::GetBucketCors),
            (S3Op::PutBucketCors { bucket: s() }, A::PutBucketCors),
            (S3Op::DeleteBucketCors { bucket: s() }, A::PutBucketCors),
            (S3Op::GetBucketNotification { bucket: s() }, A::GetBucketNotification),
            (S3Op::PutBucketNotification { bucket: s() }, A::PutBucketNotification),
        ] {
            assert_eq!(op.action(), Some(want), "{op:?}");
        }
    }

    #[test]
    fn op_names() {
        assert_eq!(S3Op::ListBuckets.name(), "ListBuckets");
        assert_eq!(
            S3Op::UploadPartCopy {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "u".into(),
                part_number: 1
            }
            .name(),
            "UploadPartCopy"
        );
    }
}
