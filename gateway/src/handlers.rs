//! One handler per [`S3Op`]: parse the S3 parameters, call the [`Backend`], render the answer.
//! Authentication and routing happened before (see [`crate::server`]); errors are returned as
//! [`S3Error`] and rendered once by the server.

use std::collections::HashMap;

use anode_client::{
    ChecksumCell, ClientError, CompletePart, ListMultipartUploadsRequest, ListObjectsRequest,
    ListPartsRequest, Manifest, PutOptions, StoredChecksum,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use md5::{Digest, Md5};

use anode_client::parquet::ParquetOutcome;

use crate::access;
use crate::authz::{Authorizer, Principal};
use crate::backend::{Backend, BodyStream};
use crate::body::{empty, full, streaming, BodyError, RequestBody, RespBody};
use crate::bucket_cache::BucketCache;
use crate::checksum::PayloadChecksum;
use crate::error::S3Error;
use crate::http_util::{
    check_key, content_range, decode_continuation_token, decode_path, encode_continuation_token,
    http_date_ms, parse_content_md5, refuse_unhonored_headers, resolve_copy_source_range,
    resolve_range, response_overrides, system_metadata, uri_encode, user_metadata, CondOutcome,
    Conditions, Query, USER_META_PREFIX,
};
use crate::metrics::METRICS;
use crate::router::{parse_part_number, S3Op};
use crate::versioning;
use crate::xml;
use crate::{lifecycle, object_lock, tagging};

/// Largest object a single PUT may store (S3: 5 GiB).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 << 30;
/// Largest multipart part (S3: 5 GiB).
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// Largest XML request body for CompleteMultipartUpload (10,000 parts).
pub const MAX_COMPLETE_BODY_BYTES: usize = 4 << 20;
/// Largest XML request body for DeleteObjects (1,000 keys of 1 KiB).
pub const MAX_DELETE_BODY_BYTES: usize = 2 << 20;
/// Largest other request body read whole (CreateBucketConfiguration).
pub const MAX_SMALL_BODY_BYTES: usize = 64 << 10;
/// Page size when the client asks for none (and the cap when it asks for more).
pub const MAX_KEYS: u32 = 1000;
/// Content-Type stored when the client sends none (S3's default).
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// What a handler needs of the request and the gateway.
pub struct Ctx<'a> {
    /// Storage.
    pub backend: &'a dyn Backend,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Decoded query.
    pub query: &'a Query,
    /// The access key that signed the request.
    pub access_key: &'a str,
    /// Who the request acts as (authorized before the handler runs).
    pub principal: &'a Principal,
    /// The region this gateway reports.
    pub region: &'a str,
    /// Milliseconds since the epoch, now.
    pub now_ms: u64,
    /// The gateway's bucket cache (handlers that change a bucket drop its entry).
    pub buckets: &'a BucketCache,
    /// Per-key authorization (DeleteObjects), and the request's bucket.
    pub authz: Authorizer<'a>,
    /// The gateway's ListenBucketNotification slots ([`crate::notify`]).
    pub listeners: &'a std::sync::Arc<tokio::sync::Semaphore>,
    /// Turns true when the gateway shuts down (long-lived answers end then).
    pub shutdown: &'a tokio::sync::watch::Receiver<bool>,
}

impl Ctx<'_> {
    pub(crate) fn owner(&self) -> xml::Owner {
        xml::Owner {
            id: self.principal.canonical_id(),
            display_name: self.principal.owner_id().to_string(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}

pub(crate) fn ce(e: ClientError) -> S3Error {
    S3Error::from_client_error(&e)
}

/// Run `op`.
pub async fn dispatch(
    cx: &Ctx<'_>,
    op: S3Op,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    refuse_unhonored_headers(cx.headers)?;
    match op {
        S3Op::ListBuckets => list_buckets(cx).await,
        S3Op::CreateBucket { bucket } => create_bucket(cx, &bucket, body).await,
        S3Op::DeleteBucket { bucket } => delete_bucket(cx, &bucket).await,
        S3Op::HeadBucket { bucket } => head_bucket(cx, &bucket).await,
        S3Op::GetBucketLocation { bucket } => {
            bucket_document(cx, &bucket, xml::location_constraint(cx.region)).await
        }
        S3Op::GetBucketVersioning { bucket } => {
            versioning::get_bucket_versioning(cx, &bucket).await
        }
        S3Op::PutBucketVersioning { bucket } => {
            versioning::put_bucket_versioning(cx, &bucket, body).await
        }
        S3Op::GetObjectLockConfiguration { bucket } => object_lock::get_config(cx, &bucket).await,
        S3Op::PutObjectLockConfiguration { bucket } => {
            object_lock::put_config(cx, &bucket, body).await
        }
        S3Op::GetObjectRetention { bucket, key } => {
            object_lock::get_retention(cx, &bucket, &key).await
        }
        S3Op::PutObjectRetention { bucket, key } => {
            object_lock::put_retention(cx, &bucket, &key, body).await
        }
        S3Op::GetObjectLegalHold { bucket, key } => {
            object_lock::get_legal_hold(cx, &bucket, &key).await
        }
        S3Op::PutObjectLegalHold { bucket, key } => {
            object_lock::put_legal_hold(cx, &bucket, &key, body).await
        }
        S3Op::GetBucketLifecycleConfiguration { bucket } => {
            lifecycle::get_lifecycle(cx, &bucket).await
        }
        S3Op::PutBucketLifecycleConfiguration { bucket } => {
            lifecycle::put_lifecycle(cx, &bucket, body).await
        }
        S3Op::DeleteBucketLifecycle { bucket } => lifecycle::delete_lifecycle(cx, &bucket).await,
        S3Op::GetBucketCors { bucket } => crate::cors::get_cors(cx, &bucket).await,
        S3Op::PutBucketCors { bucket } => crate::cors::put_cors(cx, &bucket, body).await,
        S3Op::DeleteBucketCors { bucket } => crate::cors::delete_cors(cx, &bucket).await,
        S3Op::GetBucketNotification { bucket } => {
            crate::notify::get_notification(cx, &bucket).await
        }
        S3Op::PutBucketNotification { bucket } => {
            crate::notify::put_notification(cx, &bucket, body).await
        }
        S3Op::ListenBucketNotification { bucket } => crate::notify::listen(cx, &bucket).await,
        S3Op::GetBucketAcl { .. } => access::get_bucket_acl(cx).await,
        S3Op::PutBucketAcl { bucket } => access::put_bucket_acl(cx, &bucket, body).await,
        S3Op::GetObjectAcl { bucket, key } => access::get_object_acl(cx, &bucket, &key).await,
        S3Op::PutObjectAcl { bucket, key } => access::put_object_acl(cx, &bucket, &key, body).await,
        S3Op::GetBucketPolicy { .. } => access::get_bucket_policy(cx).await,
        S3Op::PutBucketPolicy { bucket } => access::put_bucket_policy(cx, &bucket, body).await,
        S3Op::DeleteBucketPolicy { bucket } => access::delete_bucket_policy(cx, &bucket).await,
        S3Op::GetBucketPolicyStatus { .. } => access::get_bucket_policy_status(cx).await,
        S3Op::GetPublicAccessBlock { .. } => access::get_public_access_block(cx).await,
        S3Op::PutPublicAccessBlock { bucket } => {
            access::put_public_access_block(cx, &bucket, body).await
        }
        S3Op::DeletePublicAccessBlock { bucket } => {
            access::delete_public_access_block(cx, &bucket).await
        }
        S3Op::GetBucketOwnershipControls { .. } => access::get_ownership_controls(cx).await,
        S3Op::PutBucketOwnershipControls { bucket } => {
            access::put_ownership_controls(cx, &bucket, body).await
        }
        S3Op::DeleteBucketOwnershipControls { bucket } => {
            access::delete_ownership_controls(cx, &bucket).await
        }
        S3Op::GetObjectTagging { bucket, key } => tagging::get_object(cx, &bucket, &key).await,
        S3Op::PutObjectTagging { bucket, key } => {
            tagging::put_object(cx, &bucket, &key, Some(body)).await
        }
        S3Op::DeleteObjectTagging { bucket, key } => {
            tagging::put_object(cx, &bucket, &key, None).await
        }
        S3Op::GetBucketTagging { bucket } => tagging::get_bucket(cx, &bucket).await,
        S3Op::PutBucketTagging { bucket } => tagging::put_bucket(cx, &bucket, Some(body)).await,
        S3Op::DeleteBucketTagging { bucket } => tagging::put_bucket(cx, &bucket, None).await,
        S3Op::GetObjectAttributes { bucket, key } => {
            crate::attributes::get_object_attributes(cx, &bucket, &key).await
        }
        S3Op::GetMissingBucketConfig {
            bucket, missing, ..
        } => {
            cx.backend.head_bucket(&bucket).await.map_err(ce)?;
            Err(missing)
        }
        S3Op::ListObjectsV1 { bucket } => list_objects(cx, &bucket, ListKind::V1).await,
        S3Op::ListObjectsV2 { bucket } => list_objects(cx, &bucket, ListKind::V2).await,
        S3Op::ListObjectVersions { bucket } => versioning::list_object_versions(cx, &bucket).await,
        S3Op::ListMultipartUploads { bucket } => list_uploads(cx, &bucket).await,
        S3Op::DeleteObjects { bucket } => versioning::delete_objects(cx, &bucket, body).await,
        S3Op::PutObject { bucket, key } => put_object(cx, &bucket, &key, body).await,
        S3Op::CopyObject { bucket, key } => copy_object(cx, &bucket, &key).await,
        S3Op::GetObject { bucket, key } => get_object(cx, &bucket, &key, false).await,
        S3Op::HeadObject { bucket, key } => get_object(cx, &bucket, &key, true).await,
        S3Op::DeleteObject { bucket, key } => versioning::delete_object(cx, &bucket, &key).await,
        S3Op::CreateMultipartUpload { bucket, key } => create_multipart(cx, &bucket, &key).await,
        S3Op::UploadPart {
            bucket,
            key,
            upload_id,
            part_number,
        } => upload_part(cx, &bucket, &key, &upload_id, part_number, body).await,
        S3Op::UploadPartCopy {
            bucket,
            key,
            upload_id,
            part_number,
        } => upload_part_copy(cx, &bucket, &key, &upload_id, part_number).await,
        S3Op::CompleteMultipartUpload {
            bucket,
            key,
            upload_id,
        } => complete_multipart(cx, &bucket, &key, &upload_id, body).await,
        S3Op::AbortMultipartUpload {
            bucket,
            key,
            upload_id,
        } => abort_multipart(cx, &bucket, &key, &upload_id).await,
        S3Op::ListParts {
            bucket,
            key,
            upload_id,
        } => list_parts(cx, &bucket, &key, &upload_id).await,
    }
}

// ---- small handlers ---------------------------------------------------------------------------

async fn delete_bucket(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let deleted = cx.backend.delete_bucket(bucket).await.map_err(ce);
    cx.buckets.invalidate(bucket);
    deleted?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

async fn head_bucket(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    cx.backend.head_bucket(bucket).await.map_err(ce)?;
    let mut r = status_only(StatusCode::OK);
    set(&mut r, "x-amz-bucket-region", cx.region);
    Ok(r)
}

/// A fixed XML answer about an existing bucket (its location, its versioning).
async fn bucket_document(
    cx: &Ctx<'_>,
    bucket: &str,
    doc: String,
) -> Result<Response<RespBody>, S3Error> {
    cx.backend.head_bucket(bucket).await.map_err(ce)?;
    Ok(xml_ok(doc))
}

async fn create_multipart(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let mut opts = put_options(cx.headers)?;
    opts.content_md5 = None;
    opts.acl = access::acl_for_write(cx)?;
    with_lock(cx, &mut opts)?;
    let sum = upload_checksum(cx.headers)?;
    if let Some(c) = &sum {
        opts.checksum = ChecksumCell::with(c.clone());
    }
    let id = cx
        .backend
        .create_multipart(bucket, key, opts)
        .await
        .map_err(ce)?;
    let mut r = xml_ok(xml::initiate_multipart_upload(bucket, key, &id));
    if let Some(c) = sum {
        set(&mut r, "x-amz-checksum-algorithm", &c.algorithm);
        set(&mut r, "x-amz-checksum-type", &c.checksum_type);
    }
    Ok(r)
}

/// The checksum algorithm and type CreateMultipartUpload asks for (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`; the type defaults to the algorithm's, see
/// [`anode_meta::checksum::Algorithm::default_type`]). A type without an algorithm, an
/// unknown algorithm, or a type the algorithm does not allow is `InvalidRequest`.
pub fn upload_checksum(h: &HeaderMap) -> Result<Option<StoredChecksum>, S3Error> {
    use anode_meta::checksum::Algorithm;
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let kind = get("x-amz-checksum-type").map(str::to_ascii_uppercase);
    let Some(alg) = get("x-amz-checksum-algorithm") else {
        return match kind {
            None => Ok(None),
            Some(_) => Err(S3Error::InvalidRequest(
                "The x-amz-checksum-type header can only be used with the \
                 x-amz-checksum-algorithm header."
                    .into(),
            )),
        };
    };
    let alg = Algorithm::parse(alg).map_err(|_| {
        S3Error::InvalidRequest("Checksum algorithm provided is unsupported.".into())
    })?;
    let kind = kind.unwrap_or_else(|| alg.default_type().to_string());
    if !alg.allows_type(&kind) {
        return Err(S3Error::InvalidRequest(format!(
            "The {kind} checksum type cannot be used with the {} checksum algorithm.",
            alg.name().to_lowercase()
        )));
    }
    Ok(Some(StoredChecksum {
        algorithm: alg.name().to_string(),
        value: String::new(),
        checksum_type: kind,
    }))
}

async fn abort_multipart(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Response<RespBody>, S3Error> {
    cx.backend
        .abort_multipart(bucket, key, upload_id)
        .await
        .map_err(ce)?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

// ---- responses ------------------------------------------------------------------------------

pub(crate) fn status_only(status: StatusCode) -> Response<RespBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        set(&mut r, "content-length", "0");
    }
    r
}

pub(crate) fn xml_ok(doc: String) -> Response<RespBody> {
    let len = doc.len();
    let mut r = Response::new(full(doc));
    set(&mut r, "content-type", "application/xml");
    set(&mut r, "content-length", &len.to_string());
    r
}

/// Set a response header (a value that is no valid header value is left out).
pub(crate) fn set_header(r: &mut Response<RespBody>, name: &'static str, value: &str) {
    set(r, name, value);
}

fn set(r: &mut Response<RespBody>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn set_dyn(r: &mut Response<RespBody>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        r.headers_mut().insert(n, v);
    }
}

// ---- buckets --------------------------------------------------------------------------------

async fn list_buckets(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let mut buckets = cx.backend.list_buckets().await.map_err(ce)?;
    // Only the caller's buckets (every bucket for an administrator).
    buckets.retain(|b| cx.principal.admin || cx.principal.owns(&b.owner_user));
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(xml_ok(xml::list_all_my_buckets(&cx.owner(), &buckets)))
}

async fn create_bucket(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    anode_meta::validate::bucket_name(bucket)?;
    let body = body.collect(MAX_SMALL_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let _location = xml::parse_create_bucket(&body)?;
    cx.backend
        .create_bucket(
            bucket,
            cx.access_key,
            &cx.principal.user,
            access::record_for_new_bucket(cx, &cx.principal.user)?,
            object_lock::lock_enabled_on_create(cx.headers)?,
        )
        .await
        .map_err(ce)?;
    cx.buckets.invalidate(bucket);
    let mut r = status_only(StatusCode::OK);
    set(&mut r, "location", &format!("/{bucket}"));
    Ok(r)
}

// ---- listings -------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    V1,
    V2,
}

/// `max-keys`-style parameter: absent = 1000, capped at 1000, negative or non-numeric invalid.
pub(crate) fn page_size(q: &Query, name: &str) -> Result<u32, S3Error> {
    match q.get(name) {
        None | Some("") => Ok(MAX_KEYS),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(MAX_KEYS as i64) as u32),
            _ => Err(S3Error::InvalidArgument(format!(
                "Provided {name} not an integer or within integer range"
            ))),
        },
    }
}

pub(crate) fn encoding_url(q: &Query) -> Result<bool, S3Error> {
    match q.get("encoding-type") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
        Some(_) => Err(S3Error::InvalidArgument(
            "Invalid Encoding Method specified in Request".into(),
        )),
    }
}

fn nonempty(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(str::to_string)
}

async fn list_objects(
    cx: &Ctx<'_>,
    bucket: &str,
    kind: ListKind,
) -> Result<Response<RespBody>, S3Error> {
    let q = cx.query;
    let max_keys = page_size(q, "max-keys")?;
    let prefix = q.get("prefix").unwrap_or_default().to_string();
    let delimiter = nonempty(q.get("delimiter"));
    // S3: a `continuation-token` given empty is refused, not read as "from the start".
    if q.get("continuation-token") == Some("") {
        return Err(S3Error::InvalidArgument(
            "The continuation token provided is incorrect".into(),
        ));
    }
    let token = nonempty(q.get("continuation-token"));
    let start_after = match kind {
        ListKind::V1 => q.get("marker").unwrap_or_default().to_string(),
        ListKind::V2 => match &token {
            Some(t) => decode_continuation_token(t)?,
            None => q.get("start-after").unwrap_or_default().to_string(),
        },
    };
    let mut page = xml::ListPage {
        bucket: bucket.to_string(),
        prefix: prefix.clone(),
        delimiter: delimiter.clone(),
        max_keys,
        encoding_url: encoding_url(q)?,
        owner: (kind != ListKind::V2 || q.get("fetch-owner") == Some("true")).then(|| cx.owner()),
        ..Default::default()
    };
    // Issue 16: a predicate over Parquet statistics prunes the listing (docs/parquet.md).
    let predicate = q.get("x-anode-where").unwrap_or_default().to_string();
    if predicate.len() > anode_meta::pq::MAX_PREDICATE_BYTES {
        return Err(S3Error::InvalidArgument(format!(
            "x-anode-where: {} bytes, at most {}",
            predicate.len(),
            anode_meta::pq::MAX_PREDICATE_BYTES
        )));
    }
    let mut next = None;
    if max_keys == 0 {
        cx.backend.head_bucket(bucket).await.map_err(ce)?;
    } else {
        let resp = cx
            .backend
            .list_objects(ListObjectsRequest {
                bucket: bucket.to_string(),
                prefix,
                delimiter: delimiter.unwrap_or_default(),
                start_after: start_after.clone(),
                max_keys,
                allow_stale: false,
                r#where: predicate,
            })
            .await
            .map_err(ce)?;
        page.is_truncated = resp.is_truncated;
        next = resp.is_truncated.then(|| {
            if resp.next_start_after.is_empty() {
                last_listed(&resp.objects, &resp.common_prefixes)
            } else {
                resp.next_start_after.clone()
            }
        });
        page.objects = resp.objects;
        page.common_prefixes = resp.common_prefixes;
    }
    let doc = match kind {
        ListKind::V1 => xml::list_bucket_result(
            &page,
            &xml::ListVersion::V1 {
                marker: start_after,
                next_marker: next,
            },
        ),
        ListKind::V2 => xml::list_bucket_result(
            &page,
            &xml::ListVersion::V2 {
                start_after: nonempty(q.get("start-after")),
                continuation_token: token,
                next_continuation_token: next.as_deref().map(encode_continuation_token),
            },
        ),
    };
    Ok(xml_ok(doc))
}

/// The greatest key or prefix of a page (where the next page starts).
fn last_listed(objects: &[anode_client::ObjectEntry], prefixes: &[String]) -> String {
    let k = objects.last().map(|o| o.key.as_str()).unwrap_or_default();
    let p = prefixes.last().map(String::as_str).unwrap_or_default();
    k.max(p).to_string()
}

async fn list_uploads(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let q = cx.query;
    let max_uploads = page_size(q, "max-uploads")?;
    let prefix = q.get("prefix").unwrap_or_default().to_string();
    let delimiter = nonempty(q.get("delimiter"));
    let key_marker = q.get("key-marker").unwrap_or_default().to_string();
    let upload_id_marker = q.get("upload-id-marker").unwrap_or_default().to_string();
    let resp = cx
        .backend
        .list_multipart_uploads(ListMultipartUploadsRequest {
            bucket: bucket.to_string(),
            prefix: prefix.clone(),
            key_marker: key_marker.clone(),
            upload_id_marker: upload_id_marker.clone(),
            max_uploads: max_uploads.max(1),
        })
        .await
        .map_err(ce)?;
    let next_markers = resp
        .uploads
        .last()
        .map(|u| (u.key.clone(), u.upload_id.clone()));
    let (uploads, common_prefixes) = roll_up_uploads(resp.uploads, &prefix, delimiter.as_deref());
    let page = xml::UploadsPage {
        bucket: bucket.to_string(),
        key_marker,
        upload_id_marker,
        prefix,
        delimiter,
        max_uploads,
        encoding_url: encoding_url(q)?,
        is_truncated: resp.is_truncated,
        next_markers,
        uploads,
        common_prefixes,
        owner: cx.owner(),
    };
    Ok(xml_ok(xml::list_multipart_uploads_result(&page)))
}

/// Roll up uploads whose key has `delimiter` after `prefix` into common prefixes. Done per page
/// (the master lists uploads without a delimiter), so a prefix can repeat across pages.
fn roll_up_uploads(
    uploads: Vec<anode_proto::MultipartUpload>,
    prefix: &str,
    delimiter: Option<&str>,
) -> (Vec<anode_proto::MultipartUpload>, Vec<String>) {
    let Some(d) = delimiter else {
        return (uploads, Vec::new());
    };
    let mut kept = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for u in uploads {
        let rest = u.key.get(prefix.len()..).unwrap_or_default();
        match rest.find(d) {
            Some(i) => {
                let cp = u.key[..prefix.len() + i + d.len()].to_string();
                if prefixes.last() != Some(&cp) {
                    prefixes.push(cp);
                }
            }
            None => kept.push(u),
        }
    }
    (kept, prefixes)
}

async fn list_parts(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Response<RespBody>, S3Error> {
    let q = cx.query;
    let max_parts = page_size(q, "max-parts")?;
    let marker = match q.get("part-number-marker") {
        None | Some("") => 0,
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            S3Error::InvalidArgument("Provided part-number-marker not an integer".into())
        })?,
    };
    let resp = cx
        .backend
        .list_parts(ListPartsRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            part_number_marker: marker,
            max_parts: max_parts.max(1),
        })
        .await
        .map_err(ce)?;
    let page = xml::PartsPage {
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: upload_id.to_string(),
        part_number_marker: marker,
        next_part_number_marker: resp.next_part_number_marker,
        max_parts,
        is_truncated: resp.is_truncated,
        parts: resp.parts,
        owner: cx.owner(),
    };
    Ok(xml_ok(xml::list_parts_result(&page)))
}

// ---- object writes --------------------------------------------------------------------------

/// Content type, metadata, Content-MD5, write conditions and tags (`x-amz-tagging`) of a PUT.
fn put_options(h: &HeaderMap) -> Result<PutOptions, S3Error> {
    Ok(PutOptions {
        tags: tagging::tags_from_headers(h)?,
        ..put_options_untagged(h)?
    })
}

/// [`put_options`] without the tags (a copy takes them by its tagging directive).
fn put_options_untagged(h: &HeaderMap) -> Result<PutOptions, S3Error> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let content_md5 = get("content-md5").map(parse_content_md5).transpose()?;
    let if_match_etag = write_condition(h)?;
    let opts = PutOptions {
        content_type: get("content-type")
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CONTENT_TYPE)
            .to_string(),
        user_metadata: user_metadata(h)?,
        system_metadata: system_metadata(h),
        if_match_etag,
        content_md5,
        // Set by the handler from x-amz-acl / x-amz-grant-* (access::acl_for_write).
        acl: Vec::new(),
        ..Default::default()
    };
    anode_meta::validate::system_metadata(&opts.content_type, &opts.system_metadata)?;
    Ok(opts)
}

/// The condition of a write (PutObject, CompleteMultipartUpload): `If-None-Match: *` -> `""`
/// (the object must not exist), `If-Match: ETAG` -> that etag.
fn write_condition(h: &HeaderMap) -> Result<Option<String>, S3Error> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    match (get("if-none-match"), get("if-match")) {
        (Some("*"), _) => Ok(Some(String::new())),
        (Some(_), _) => Err(S3Error::NotImplemented(
            "If-None-Match on writes only supports *".into(),
        )),
        (None, Some(etag)) => Ok(Some(etag.trim_matches('"').to_string())),
        (None, None) => Ok(None),
    }
}

/// The payload length the client declares, if any: `x-amz-decoded-content-length` for
/// `aws-chunked` bodies, else `Content-Length`. A body with neither a length nor
/// `Transfer-Encoding` is `MissingContentLength`.
fn declared_length(h: &HeaderMap, chunked_payload: bool) -> Result<Option<u64>, S3Error> {
    let num = |n: &str| -> Result<Option<u64>, S3Error> {
        h.get(n)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| S3Error::InvalidArgument(format!("invalid {n}")))
            })
            .transpose()
    };
    if chunked_payload {
        if let Some(n) = num("x-amz-decoded-content-length")? {
            return Ok(Some(n));
        }
    }
    match num("content-length")? {
        Some(n) if !chunked_payload => Ok(Some(n)),
        Some(_) => Ok(None),
        None if h.contains_key("transfer-encoding") => Ok(None),
        None => Err(S3Error::MissingContentLength),
    }
}

/// Check the declared size against `max` and turn the body into a payload stream.
fn payload_stream(
    cx: &Ctx<'_>,
    body: RequestBody,
    chunked_payload: bool,
    max: u64,
    err: &BodyError,
) -> Result<(BodyStream, ChecksumCell), S3Error> {
    if let Some(n) = declared_length(cx.headers, chunked_payload)? {
        if n > max {
            return Err(S3Error::EntityTooLarge);
        }
    }
    let checksum = PayloadChecksum::from_headers(cx.headers)?;
    let cell = checksum.as_ref().map(|c| c.cell()).unwrap_or_default();
    let stream = body.into_checked_stream(max, checksum, err.clone());
    Ok((stream, cell))
}

/// `x-amz-checksum-<alg>` (and `x-amz-checksum-type` when given) of a stored checksum.
pub(crate) fn checksum_headers(
    r: &mut Response<RespBody>,
    algorithm: &str,
    value: &str,
    kind: &str,
) {
    let Some(alg) = crate::checksum::Algorithm::from_name(algorithm) else {
        return;
    };
    if algorithm != alg.name() || value.is_empty() {
        return;
    }
    set(r, alg.header(), value);
    if !kind.is_empty() {
        set(r, "x-amz-checksum-type", kind);
    }
}

/// Whether this request's body is `aws-chunked` (its decoder says so).
pub fn is_chunked(h: &HeaderMap) -> bool {
    h.get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

async fn put_object(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let mut opts = put_options(cx.headers)?;
    opts.acl = access::acl_for_write(cx)?;
    with_lock(cx, &mut opts)?;
    let err = BodyError::default();
    let (stream, cell) =
        payload_stream(cx, body, is_chunked(cx.headers), MAX_PUT_OBJECT_BYTES, &err)?;
    opts.checksum = cell;
    let outcome = opts.parquet_outcome.clone();
    let m = cx
        .backend
        .put_object(bucket, key, stream, opts)
        .await
        .map_err(|e| err.take().unwrap_or_else(|| ce(e)))?;
    count_parquet(outcome.get());
    let mut r = status_only(StatusCode::OK);
    set(&mut r, "etag", &xml::quote_etag(&m.etag));
    version_header(&mut r, &m);
    checksum_headers(
        &mut r,
        &m.checksum_algorithm,
        &m.checksum_value,
        &m.checksum_type,
    );
    Ok(r)
}

/// Store a POST Object upload: `stream` is the form's `file` part (already bounded by the
/// policy's size range; its failures recorded in `err`), `cx.headers` the headers the form
/// fields stand for (Content-Type, `x-amz-meta-*`, `x-amz-acl`, ...). Its event is
/// `ObjectCreated:Post`.
pub async fn put_object_stream(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    stream: BodyStream,
    err: &BodyError,
) -> Result<Manifest, S3Error> {
    refuse_unhonored_headers(cx.headers)?;
    check_key(key)?;
    let mut opts = put_options(cx.headers)?;
    opts.acl = access::acl_for_write(cx)?;
    opts.event_source = "Post".into();
    with_lock(cx, &mut opts)?;
    let outcome = opts.parquet_outcome.clone();
    let m = cx
        .backend
        .put_object(bucket, key, stream, opts)
        .await
        .map_err(|e| err.take().unwrap_or_else(|| ce(e)))?;
    count_parquet(outcome.get());
    Ok(m)
}

/// Count what Parquet indexing made of a written object (issue 16; plain objects are not
/// counted).
fn count_parquet(outcome: Option<ParquetOutcome>) {
    let label = match outcome {
        None | Some(ParquetOutcome::NotParquet) => return,
        Some(ParquetOutcome::Indexed) => "indexed",
        Some(ParquetOutcome::TooLarge) => "too_large",
        Some(ParquetOutcome::Invalid(_)) => "invalid",
    };
    METRICS.parquet_writes.with_label_values(&[label]).inc();
}

/// The object lock a write's headers ask for (`x-amz-object-lock-*`).
fn with_lock(cx: &Ctx<'_>, opts: &mut PutOptions) -> Result<(), S3Error> {
    let (mode, until, hold) = object_lock::lock_from_headers(cx.headers, cx.now_ms)?;
    opts.lock_mode = mode;
    opts.retain_until_ms = until;
    opts.legal_hold = hold;
    Ok(())
}

/// `x-amz-version-id` of a version written in a versioned bucket.
fn version_header(r: &mut Response<RespBody>, m: &Manifest) {
    if !m.version_id.is_empty() {
        set(r, "x-amz-version-id", &m.version_id);
    }
}

async fn upload_part(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let md5 = cx
        .header("content-md5")
        .map(parse_content_md5)
        .transpose()?;
    let err = BodyError::default();
    let (stream, cell) = payload_stream(cx, body, is_chunked(cx.headers), MAX_PART_BYTES, &err)?;
    let part = cx
        .backend
        .upload_part(
            anode_client::PartId {
                bucket,
                key,
                upload_id,
                part_number,
            },
            stream,
            md5,
            cell,
        )
        .await
        .map_err(|e| err.take().unwrap_or_else(|| ce(e)))?;
    let mut r = status_only(StatusCode::OK);
    set(&mut r, "etag", &xml::quote_etag(&part.etag));
    checksum_headers(&mut r, &part.checksum_algorithm, &part.checksum_value, "");
    Ok(r)
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=...]`, URL-encoded.
pub fn parse_copy_source(value: &str) -> Result<(String, String), S3Error> {
    parse_copy_source_version(value).map(|(b, k, _)| (b, k))
}

/// [`parse_copy_source`] with the source's `versionId` (None: the current version).
pub fn parse_copy_source_version(value: &str) -> Result<(String, String, Option<String>), S3Error> {
    let bad = || {
        S3Error::InvalidArgument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey".into(),
        )
    };
    let (path, version) = match value.split_once('?') {
        Some((p, q)) => (p, Query::parse(q).get("versionId").map(str::to_string)),
        None => (value, None),
    };
    if let Some(v) = &version {
        anode_meta::state::versions::parse_version_id(v)
            .map_err(|_| S3Error::InvalidArgument("Invalid version id specified".into()))?;
    }
    let path = decode_path(path.trim())?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').ok_or_else(bad)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(bad());
    }
    check_key(key)?;
    Ok((bucket.to_string(), key.to_string(), version))
}

/// Head the copy source and check the `x-amz-copy-source-if-*` conditions (any failure is 412).
async fn copy_source(cx: &Ctx<'_>) -> Result<(String, String, Manifest), S3Error> {
    let value = cx
        .header("x-amz-copy-source")
        .ok_or_else(|| S3Error::InvalidArgument("missing x-amz-copy-source".into()))?;
    let (sb, sk, version) = parse_copy_source_version(value)?;
    let src = match cx
        .backend
        .get_version(&sb, &sk, version.as_deref(), false)
        .await
    {
        Ok(m) => m,
        // S3 answers a copy of a delete marker as a bad request.
        Err(e) if e.code() == anode_client::ErrorCode::MethodNotAllowed => {
            return Err(S3Error::InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker by version id."
                    .into(),
            ))
        }
        Err(e) => return Err(ce(e)),
    };
    let cond = Conditions::from_headers(cx.headers, "x-amz-copy-source-");
    if cond.evaluate(&src.etag, src.mtime_ms) != CondOutcome::Proceed {
        return Err(S3Error::PreconditionFailed);
    }
    Ok((sb, sk, src))
}

async fn copy_object(cx: &Ctx<'_>, bucket: &str, key: &str) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let (sb, sk, src) = copy_source(cx).await?;
    let replace = match cx.header("x-amz-metadata-directive") {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("COPY") => false,
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::InvalidArgument(
                "Unknown metadata directive.".into(),
            ))
        }
    };
    if sb == bucket && sk == key && !replace {
        return Err(S3Error::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location or \
             encryption attributes."
                .into(),
        ));
    }
    // The copy gets the ACL of its own headers (never the source's, as in S3).
    let acl = access::acl_for_write(cx)?;
    let lock = object_lock::lock_from_headers(cx.headers, cx.now_ms)?;
    let locked = !lock.0.is_empty() || lock.2;
    // x-amz-tagging-directive: COPY (default) keeps the source's tags, REPLACE takes
    // x-amz-tagging's.
    let new_tags = tagging::copy_tags(cx.headers)?;
    let dest_cond = write_condition(cx.headers)?;
    let checksum = copy_checksum(cx, &sb, &src).await?;
    let replace = if replace {
        let mut opts = put_options_untagged(cx.headers)?;
        opts.content_md5 = None;
        opts.acl = acl;
        (opts.lock_mode, opts.retain_until_ms, opts.legal_hold) = lock;
        opts.tags = new_tags.unwrap_or_else(|| src.tags.clone());
        opts.checksum = checksum;
        Some(opts)
    } else if !acl.is_empty()
        || locked
        || new_tags.is_some()
        || dest_cond.is_some()
        || checksum.get().is_some()
    {
        // COPY keeps the source's metadata; the ACL still comes from this request.
        Some(PutOptions {
            parquet_outcome: Default::default(),
            content_type: src.content_type.clone(),
            user_metadata: src.user_metadata.clone(),
            system_metadata: src.system_metadata.clone(),
            if_match_etag: dest_cond,
            content_md5: None,
            acl,
            lock_mode: lock.0,
            retain_until_ms: lock.1,
            legal_hold: lock.2,
            tags: new_tags.unwrap_or_else(|| src.tags.clone()),
            checksum,
            // Copies are always `ObjectCreated:Copy` (Backend::copy_from).
            event_source: String::new(),
        })
    } else {
        None
    };
    let src_version = (!src.version_id.is_empty()).then(|| src.version_id.clone());
    let m = cx
        .backend
        .copy_from(&sb, &sk, src, bucket, key, replace)
        .await
        .map_err(ce)?;
    let mtime = if m.mtime_ms == 0 {
        cx.now_ms
    } else {
        m.mtime_ms
    };
    let mut r = xml_ok(xml::copy_object_result(&m.etag, mtime));
    version_header(&mut r, &m);
    if let Some(v) = src_version {
        set(&mut r, "x-amz-copy-source-version-id", &v);
    }
    Ok(r)
}

/// The checksum a copy gets when `x-amz-checksum-algorithm` asks for one the source does not
/// have as a whole-object checksum: computed over the source's bytes (an empty cell keeps the
/// source's checksum, as S3 does).
async fn copy_checksum(cx: &Ctx<'_>, sb: &str, src: &Manifest) -> Result<ChecksumCell, S3Error> {
    let Some(name) = cx.header("x-amz-checksum-algorithm") else {
        return Ok(ChecksumCell::default());
    };
    let alg = crate::checksum::Algorithm::from_name(name).ok_or_else(|| {
        S3Error::InvalidRequest("Checksum algorithm provided is unsupported.".into())
    })?;
    if src.checksum_algorithm == alg.name()
        && src.checksum_type == anode_meta::checksum::FULL_OBJECT
    {
        return Ok(ChecksumCell::default());
    }
    let mut sum = PayloadChecksum::compute(alg);
    let mut body = cx.backend.read_manifest(sb, src, None);
    while let Some(piece) = body.next().await {
        sum.update(&piece.map_err(ce)?);
    }
    let cell = sum.cell();
    sum.finish(None)?;
    Ok(cell)
}

async fn upload_part_copy(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
) -> Result<Response<RespBody>, S3Error> {
    let (sb, _sk, src) = copy_source(cx).await?;
    let range = cx
        .header("x-amz-copy-source-range")
        .map(|r| resolve_copy_source_range(r, src.size))
        .transpose()?;
    let len = range.map_or(src.size, |(a, b)| b - a + 1);
    if len > MAX_PART_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let source = cx
        .backend
        .read_manifest(&sb, &src, range)
        .map_err(|e| std::io::Error::other(e.to_string()));
    // An upload that declared a checksum algorithm gets the copied range's checksum, as S3
    // computes it (the part is read and written anyway), so the object's checksum can be
    // combined at completion.
    let upload = cx
        .backend
        .list_parts(ListPartsRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            max_parts: 1,
            ..Default::default()
        })
        .await
        .map_err(ce)?
        .upload;
    let alg = upload
        .as_ref()
        .and_then(|u| crate::checksum::Algorithm::from_name(&u.checksum_algorithm));
    let (stream, cell): (BodyStream, ChecksumCell) = match alg {
        None => (Box::pin(source), ChecksumCell::default()),
        Some(alg) => {
            let sum = PayloadChecksum::compute(alg);
            let cell = sum.cell();
            let sum = std::sync::Arc::new(std::sync::Mutex::new(Some(sum)));
            let feed = sum.clone();
            let body = source.map(move |piece| {
                if let (Ok(b), Ok(mut s)) = (&piece, feed.lock()) {
                    if let Some(s) = s.as_mut() {
                        s.update(b);
                    }
                }
                piece
            });
            // After the last piece: the checksum is complete (nothing to compare it with).
            let done = futures::stream::once(async move {
                if let Some(s) = sum.lock().ok().and_then(|mut s| s.take()) {
                    let _ = s.finish(None);
                }
            })
            .filter_map(|()| async { None });
            (Box::pin(body.chain(done)), cell)
        }
    };
    let part = cx
        .backend
        .upload_part(
            anode_client::PartId {
                bucket,
                key,
                upload_id,
                part_number,
            },
            stream,
            None,
            cell,
        )
        .await
        .map_err(ce)?;
    let mtime = if part.mtime_ms == 0 {
        cx.now_ms
    } else {
        part.mtime_ms
    };
    let checksum = (
        part.checksum_algorithm.as_str(),
        part.checksum_value.as_str(),
    );
    Ok(xml_ok(xml::copy_part_result(
        &part.etag,
        mtime,
        Some(checksum),
    )))
}

async fn complete_multipart(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let condition = write_condition(cx.headers)?;
    let body = body.collect(MAX_COMPLETE_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let parts = xml::parse_complete_multipart(&body)?;
    if parts
        .windows(2)
        .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(S3Error::InvalidPartOrder);
    }
    let whole = whole_checksum(cx.headers)?;
    let etags: Vec<String> = parts.iter().map(|p| p.etag.clone()).collect();
    let done = async {
        if whole.is_some() || parts.iter().any(|p| !p.checksums.is_empty()) {
            check_part_checksums(cx, bucket, key, upload_id, &parts, whole.as_ref()).await?;
        }
        let parts = parts
            .iter()
            .map(|p| CompletePart {
                part_number: p.part_number,
                etag: p.etag.clone(),
            })
            .collect();
        cx.backend
            .complete_multipart(bucket, key, upload_id, parts, condition)
            .await
            .map_err(ce)
    };
    let m = match done.await {
        Ok(m) => m,
        Err(S3Error::NoSuchUpload) => completed_before(cx, bucket, key, upload_id, &etags)
            .await
            .ok_or(S3Error::NoSuchUpload)?,
        Err(e) => return Err(e),
    };
    // Issue 16: a completed Parquet file is indexed from its first and last bytes; until
    // then (or if that fails) it reads as a plain object.
    match cx.backend.index_parquet_version(bucket, key, &m).await {
        Ok(outcome) => count_parquet(Some(outcome)),
        Err(e) => {
            tracing::warn!(error = %e, bucket, key, "indexing a completed Parquet upload failed");
            METRICS.parquet_writes.with_label_values(&["failed"]).inc();
        }
    }
    let host = cx.header("host").unwrap_or("localhost");
    let location = format!("http://{host}/{bucket}/{}", uri_encode(key, true));
    let sum = xml::checksum_elem(&m.checksum_algorithm)
        .map(|name| (name, m.checksum_value.as_str(), m.checksum_type.as_str()));
    let mut r = xml_ok(xml::complete_multipart_upload_checksum(
        &location, bucket, key, &m.etag, sum,
    ));
    version_header(&mut r, &m);
    checksum_headers(
        &mut r,
        &m.checksum_algorithm,
        &m.checksum_value,
        &m.checksum_type,
    );
    Ok(r)
}

/// The current version of `bucket/key` when it is the completion of `upload_id` with these
/// part etags: a repeated CompleteMultipartUpload answers 200 with it, as S3 does.
async fn completed_before(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    etags: &[String],
) -> Option<Manifest> {
    let m = cx
        .backend
        .get_version(bucket, key, None, false)
        .await
        .ok()?;
    let same_parts = m.part_etags.len() == etags.len()
        && m.part_etags
            .iter()
            .zip(etags)
            .all(|(a, b)| a.trim_matches('"') == b.trim_matches('"'));
    (m.completed_upload_id == upload_id && same_parts).then_some(m)
}

/// A whole-object checksum sent with CompleteMultipartUpload (`x-amz-checksum-<alg>`), as
/// (algorithm, base64 value).
fn whole_checksum(
    h: &HeaderMap,
) -> Result<Option<(anode_meta::checksum::Algorithm, String)>, S3Error> {
    let mut found = anode_meta::checksum::ALL.into_iter().filter_map(|a| {
        let header = format!("x-amz-checksum-{}", a.name().to_ascii_lowercase());
        h.get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(|v| (a, v.trim().to_string()))
    });
    let first = found.next();
    if found.next().is_some() {
        return Err(S3Error::InvalidRequest(
            "Expecting a single x-amz-checksum- header".into(),
        ));
    }
    Ok(first)
}

/// The version a GET, HEAD or GetObjectAttributes reads (`versionId`, else the newest), read
/// from the leader. A delete marker is S3's error: 404 `NoSuchKey` for the newest version,
/// 405 for a version id, both answered with the marker's `x-amz-delete-marker` and version id.
pub(crate) async fn read_version(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Manifest, S3Error> {
    Ok(read_version_tail(cx, bucket, key, None).await?.0)
}

/// [`read_version`] for a read of `range`: also the range's bytes when the version's stored
/// Parquet tail covers them (issue 16).
async fn read_version_tail(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    range: Option<anode_client::ByteRangeSpec>,
) -> Result<(Manifest, Option<(u64, Bytes)>), S3Error> {
    let vid = cx.query.get("versionId");
    let (m, tail) = cx
        .backend
        .get_version_tail(bucket, key, vid, true, range)
        .await
        .map_err(ce)?;
    if m.delete_marker {
        let e = if vid.is_some() {
            S3Error::MethodNotAllowed
        } else {
            S3Error::NoSuchKey
        };
        return Err(S3Error::DeleteMarker {
            inner: Box::new(e),
            version_id: anode_meta::state::versions::version_id_of(&m).to_string(),
        });
    }
    Ok((m, tail))
}

/// Check the part checksums a CompleteMultipartUpload names against the stored parts
/// (`InvalidPart` on a mismatch), and a whole-object checksum sent with it against the one
/// the parts give (`BadDigest`). The state machine checks the part etags again at apply time,
/// so a part replaced after this check fails there.
async fn check_part_checksums(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    wanted: &[xml::CompletePartSpec],
    whole: Option<&(anode_meta::checksum::Algorithm, String)>,
) -> Result<(), S3Error> {
    let stored = all_parts(cx, bucket, key, upload_id).await?;
    let mut chosen = Vec::with_capacity(wanted.len());
    for w in wanted {
        let p = stored.get(&w.part_number).ok_or(S3Error::InvalidPart)?;
        for (elem, value) in &w.checksums {
            let same = xml::checksum_elem(&p.checksum_algorithm) == Some(elem.as_str())
                && p.checksum_value == *value;
            if !same {
                return Err(S3Error::InvalidPart);
            }
        }
        chosen.push(p);
    }
    let Some((alg, value)) = whole else {
        return Ok(());
    };
    if chosen.iter().any(|p| p.checksum_algorithm != alg.name()) {
        return Err(S3Error::InvalidRequest(format!(
            "The upload's parts have no {} checksums",
            alg.name()
        )));
    }
    let pairs: Vec<(&str, u64)> = chosen
        .iter()
        .map(|p| (p.checksum_value.as_str(), p.size))
        .collect();
    let kind = if value.contains('-') {
        anode_meta::checksum::COMPOSITE
    } else {
        anode_meta::checksum::FULL_OBJECT
    };
    match anode_meta::checksum::of_parts(*alg, kind, &pairs) {
        Some(v) if v == *value => Ok(()),
        _ => Err(S3Error::BadDigest),
    }
}

/// Every part of an upload, by number (ListParts pages of 1000).
async fn all_parts(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<std::collections::BTreeMap<u32, anode_client::PartRecord>, S3Error> {
    let mut out = std::collections::BTreeMap::new();
    let mut marker = 0;
    loop {
        let resp = cx
            .backend
            .list_parts(ListPartsRequest {
                bucket: bucket.to_string(),
                key: key.to_string(),
                upload_id: upload_id.to_string(),
                part_number_marker: marker,
                max_parts: 1000,
            })
            .await
            .map_err(ce)?;
        let last = resp.parts.last().map(|p| p.part_number);
        for p in resp.parts {
            out.insert(p.part_number, p);
        }
        match last {
            Some(n) if resp.is_truncated && n > marker => marker = n,
            _ => return Ok(out),
        }
    }
}

/// When Content-MD5 is present, the collected body must match it.
pub(crate) fn check_body_md5(h: &HeaderMap, body: &Bytes) -> Result<(), S3Error> {
    let Some(v) = h.get("content-md5").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let want = parse_content_md5(v)?;
    let got: [u8; 16] = Md5::digest(body).into();
    if got == want {
        Ok(())
    } else {
        Err(S3Error::BadDigest)
    }
}

// ---- object reads ---------------------------------------------------------------------------

/// The byte range selected by `partNumber` (1-based) of a manifest; a part the object does
/// not have is 400 `InvalidPart` (RGW's answer, which the Ceph s3-tests expect).
fn part_range(m: &Manifest, part_number: u32) -> Result<(u64, u64), S3Error> {
    let sizes: Vec<u64> = if m.part_sizes.is_empty() {
        vec![m.size]
    } else {
        m.part_sizes.clone()
    };
    let idx = (part_number - 1) as usize;
    let Some(&len) = sizes.get(idx) else {
        return Err(S3Error::InvalidPart);
    };
    let start: u64 = sizes[..idx].iter().sum();
    if len == 0 {
        return Err(S3Error::InvalidPart);
    }
    Ok((start, start + len - 1))
}

async fn get_object(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    head: bool,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let part_number = cx
        .query
        .get("partNumber")
        .map(|v| parse_part_number(Some(v)))
        .transpose()?;
    let range_header = cx.header("range");
    if part_number.is_some() && range_header.is_some() {
        return Err(S3Error::InvalidRequest(
            "Cannot specify both Range header and partNumber query parameter".into(),
        ));
    }
    // A range read may be answered from the version's stored Parquet tail (issue 16).
    let asked = match (head, part_number) {
        (false, None) => crate::http_util::parse_range(range_header),
        _ => None,
    };
    let (m, tail) = read_version_tail(cx, bucket, key, asked).await?;
    match Conditions::from_headers(cx.headers, "").evaluate(&m.etag, m.mtime_ms) {
        CondOutcome::Proceed => {}
        CondOutcome::PreconditionFailed => return Err(S3Error::PreconditionFailed),
        CondOutcome::NotModified => {
            let mut r = status_only(StatusCode::NOT_MODIFIED);
            set(&mut r, "etag", &xml::quote_etag(&m.etag));
            set(&mut r, "last-modified", &http_date_ms(m.mtime_ms));
            return Ok(r);
        }
    }
    let range = match part_number {
        Some(n) => Some(part_range(&m, n)?),
        None => resolve_range(range_header, m.size)?,
    };
    let (status, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a + 1),
        None => (StatusCode::OK, m.size),
    };
    let from_tail = match (range, tail) {
        (Some((a, b)), Some((start, bytes))) if a >= start && b - start < bytes.len() as u64 => {
            Some(bytes.slice((a - start) as usize..=(b - start) as usize))
        }
        _ => None,
    };
    if asked.is_some() && m.parquet.is_some() {
        let counter = match from_tail {
            Some(_) => &METRICS.parquet_footer_hits,
            None => &METRICS.parquet_footer_misses,
        };
        counter.inc();
    }
    let body = match from_tail {
        _ if head || len == 0 => empty(),
        Some(bytes) => {
            METRICS.bytes_out.inc_by(bytes.len() as u64);
            full(bytes)
        }
        None => object_stream(cx.backend, bucket, key, &m, range),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    object_headers(&mut r, &m, len);
    if !m.version_id.is_empty() || cx.query.get("versionId").is_some() {
        set(
            &mut r,
            "x-amz-version-id",
            anode_meta::state::versions::version_id_of(&m),
        );
    }
    object_lock::lock_response_headers(&mut r, &m);
    if let Some((a, b)) = range {
        set(&mut r, "content-range", &content_range(a, b, m.size));
    }
    if part_number.is_some() && !m.part_sizes.is_empty() {
        set(
            &mut r,
            "x-amz-mp-parts-count",
            &m.part_sizes.len().to_string(),
        );
    }
    if checksum_mode(cx.headers) {
        read_checksum_headers(&mut r, &m, part_number, range.is_some());
    }
    for (name, value) in response_overrides(cx.query) {
        set(&mut r, name, &value);
    }
    Ok(r)
}

/// Whether a GET/HEAD asks for the stored checksum (`x-amz-checksum-mode: ENABLED`).
fn checksum_mode(h: &HeaderMap) -> bool {
    h.get("x-amz-checksum-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("ENABLED"))
}

/// The stored checksum of what a GET/HEAD returns: the object's for the whole object, the
/// part's for a `partNumber` read of a multipart object (a single-part object's part 1 is
/// the whole object), none for a byte range (S3 has none for it).
fn read_checksum_headers(
    r: &mut Response<RespBody>,
    m: &Manifest,
    part_number: Option<u32>,
    ranged: bool,
) {
    match part_number {
        Some(n) if !m.part_sizes.is_empty() => {
            if let Some(v) = m.part_checksums.get(n as usize - 1) {
                checksum_headers(r, &m.checksum_algorithm, v, &m.checksum_type);
            }
        }
        _ if ranged && part_number.is_none() => {}
        _ => checksum_headers(
            r,
            &m.checksum_algorithm,
            &m.checksum_value,
            &m.checksum_type,
        ),
    }
}

/// The object's bytes as a response body; a storage failure mid-stream aborts the response
/// (the client sees a short body, never wrong bytes).
fn object_stream(
    backend: &dyn Backend,
    bucket: &str,
    key: &str,
    m: &Manifest,
    range: Option<(u64, u64)>,
) -> RespBody {
    let what = format!("{bucket}/{key}");
    // Polled by hyper after the handler returned: log in the request's span.
    let span = tracing::Span::current();
    let stream = backend
        .read_manifest(bucket, m, range)
        .map(move |item| match item {
            Ok(b) => {
                METRICS.bytes_out.inc_by(b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                let _in = span.enter();
                tracing::warn!(object = %what, error = %e, "object read failed mid-response");
                Err(std::io::Error::other(e.to_string()))
            }
        });
    streaming(stream)
}

/// Content headers of GET/HEAD from the manifest.
fn object_headers(r: &mut Response<RespBody>, m: &Manifest, len: u64) {
    let ctype = if m.content_type.is_empty() {
        DEFAULT_CONTENT_TYPE
    } else {
        &m.content_type
    };
    set(r, "content-type", ctype);
    set(r, "content-length", &len.to_string());
    set(r, "etag", &xml::quote_etag(&m.etag));
    set(r, "last-modified", &http_date_ms(m.mtime_ms));
    set(r, "accept-ranges", "bytes");
    tagging::count_header(r, m);
    for (k, v) in sorted(&m.system_metadata) {
        set_dyn(r, k, v);
    }
    for (k, v) in sorted(&m.user_metadata) {
        set_dyn(r, &format!("{USER_META_PREFIX}{k}"), v);
    }
}

fn sorted(m: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources() {
        let ok = |s: &str| parse_copy_source(s).unwrap();
        assert_eq!(ok("/b/k"), ("b".into(), "k".into()));
        assert_eq!(ok("b/dir/a%20b"), ("b".into(), "dir/a b".into()));
        assert_eq!(ok("b/k?versionId=null"), ("b".into(), "k".into()));
        assert_eq!(
            parse_copy_source_version("b/k?versionId=000000000000002a").unwrap(),
            ("b".into(), "k".into(), Some("000000000000002a".into()))
        );
        assert_eq!(
            parse_copy_source("b/k?versionId=v1")
                .unwrap_err()
                .aws_code(),
            "InvalidArgument"
        );
        for bad in ["b", "/b/", "/k", ""] {
            assert_eq!(
                parse_copy_source(bad).unwrap_err().aws_code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }

    #[test]
    fn part_ranges() {
        let m = Manifest {
            size: 12,
            part_sizes: vec![5, 5, 2],
            ..Default::default()
        };
        assert_eq!(part_range(&m, 1), Ok((0, 4)));
        assert_eq!(part_range(&m, 3), Ok((10, 11)));
        assert_eq!(part_range(&m, 4), Err(S3Error::InvalidPart));
        let single = Manifest {
            size: 7,
            ..Default::default()
        };
        assert_eq!(part_range(&single, 1), Ok((0, 6)));
        assert_eq!(part_range(&single, 2), Err(S3Error::InvalidPart));
    }

    #[test]
    fn declared_lengths() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert_eq!(
            declared_length(&h(&[("content-length", "5")]), false),
            Ok(Some(5))
        );
        assert_eq!(
            declared_length(&h(&[]), false),
            Err(S3Error::MissingContentLength)
        );
        assert_eq!(
            declared_length(&h(&[("transfer-encoding", "chunked")]), false),
            Ok(None)
        );
        assert_eq!(
            declared_length(
                &h(&[
                    ("content-length", "90"),
                    ("x-amz-decoded-content-length", "66")
                ]),
                true
            ),
            Ok(Some(66))
        );
        assert_eq!(
            declared_length(&h(&[("content-length", "90")]), true),
            Ok(None)
        );
        assert_eq!(
            declared_length(&h(&[("content-length", "x")]), false)
                .unwrap_err()
                .aws_code(),
            "InvalidArgument"
        );
    }

    #[test]
    fn put_options_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("if-none-match", "*".parse().unwrap());
        h.insert("x-amz-meta-a", "1".parse().unwrap());
        let o = put_options(&h).unwrap();
        assert_eq!(o.if_match_etag.as_deref(), Some(""));
        assert_eq!(o.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(o.user_metadata.get("a").map(String::as_str), Some("1"));
        h.insert("if-none-match", "\"x\"".parse().unwrap());
        assert_eq!(put_options(&h).unwrap_err().aws_code(), "NotImplemented");
        h.remove("if-none-match");
        h.insert("if-match", "\"abc\"".parse().unwrap());
        h.insert("content-md5", "bad".parse().unwrap());
        assert_eq!(put_options(&h).unwrap_err(), S3Error::InvalidDigest);
        h.remove("content-md5");
        assert_eq!(
            put_options(&h).unwrap().if_match_etag.as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn upload_roll_up() {
        let up = |k: &str| anode_proto::MultipartUpload {
            key: k.into(),
            ..Default::default()
        };
        let (kept, prefixes) = roll_up_uploads(
            vec![up("a/1"), up("a/2"), up("b"), up("c/x/y")],
            "",
            Some("/"),
        );
        assert_eq!(
            kept.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(prefixes, ["a/", "c/"]);
        let (kept, prefixes) = roll_up_uploads(vec![up("a/1")], "", None);
        assert_eq!((kept.len(), prefixes.len()), (1, 0));
    }
}
