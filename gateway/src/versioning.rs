//! S3 object versioning (issue 14): Get/PutBucketVersioning, ListObjectVersions, and the
//! version-aware DeleteObject and DeleteObjects. The state machine decides what a delete does
//! in each versioning state (`anode_meta::state::versions`); these handlers map requests and
//! answers.

use anode_client::{DeleteIf, DeleteOutcome, ListObjectVersionsRequest, ObjectVersionRef};
use http::{Response, StatusCode};

use crate::body::{RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, status_only, xml_ok, Ctx, MAX_DELETE_BODY_BYTES};
use crate::http_util::check_key;
use crate::xml;

/// The bucket's versioning as `GetBucketVersioning` shows it.
pub async fn get_bucket_versioning(
    cx: &Ctx<'_>,
    bucket: &str,
) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    let status = match anode_meta::state::versions::versioning_of(&cfg) {
        anode_meta::state::versions::ENABLED => Some("Enabled"),
        anode_meta::state::versions::SUSPENDED => Some("Suspended"),
        _ => None,
    };
    Ok(xml_ok(xml::versioning_configuration(status)))
}

/// Enable or suspend versioning.
pub async fn put_bucket_versioning(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(crate::handlers::MAX_SMALL_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let state = xml::parse_versioning(&body)?;
    let done = cx
        .backend
        .set_bucket_versioning(bucket, state)
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::OK))
}

/// One page of ListObjectVersions.
pub async fn list_object_versions(
    cx: &Ctx<'_>,
    bucket: &str,
) -> Result<Response<RespBody>, S3Error> {
    let q = cx.query;
    let max_keys = crate::handlers::page_size(q, "max-keys")?;
    let prefix = q.get("prefix").unwrap_or_default().to_string();
    let delimiter = q
        .get("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let key_marker = q.get("key-marker").unwrap_or_default().to_string();
    let version_id_marker = q.get("version-id-marker").unwrap_or_default().to_string();
    if !version_id_marker.is_empty() {
        if key_marker.is_empty() {
            return Err(S3Error::InvalidArgument(
                "A version-id marker cannot be specified without a key marker.".into(),
            ));
        }
        anode_meta::state::versions::parse_version_id(&version_id_marker)
            .map_err(|_| S3Error::InvalidArgument("Invalid version id specified".into()))?;
    }
    let mut out = xml::VersionsPage {
        page: xml::ListPage {
            bucket: bucket.to_string(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            max_keys,
            encoding_url: crate::handlers::encoding_url(q)?,
            owner: Some(cx.owner()),
            ..Default::default()
        },
        key_marker: key_marker.clone(),
        version_id_marker: version_id_marker.clone(),
        next_key_marker: String::new(),
        next_version_id_marker: String::new(),
        versions: Vec::new(),
    };
    if max_keys == 0 {
        cx.backend.head_bucket(bucket).await.map_err(ce)?;
    } else {
        let resp = cx
            .backend
            .list_object_versions(ListObjectVersionsRequest {
                bucket: bucket.to_string(),
                prefix,
                delimiter: delimiter.unwrap_or_default(),
                key_marker,
                version_id_marker,
                max_keys,
                allow_stale: false,
            })
            .await
            .map_err(ce)?;
        out.page.is_truncated = resp.is_truncated;
        out.page.common_prefixes = resp.common_prefixes;
        out.next_key_marker = resp.next_key_marker;
        out.next_version_id_marker = resp.next_version_id_marker;
        out.versions = resp.versions;
    }
    Ok(xml_ok(xml::list_object_versions_result(&out)))
}

/// DeleteObject: a given version for good, or the simple delete (a delete marker in a
/// versioned bucket). Answers 204 with `x-amz-version-id` and `x-amz-delete-marker` as S3
/// does.
pub async fn delete_object(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let vid = cx.query.get("versionId");
    let bypass = crate::object_lock::bypass_governance(cx, bucket, key);
    let cond = delete_condition(cx.headers)?;
    let outcome = cx
        .backend
        .delete_version(bucket, key, vid, bypass, cond)
        .await
        .map_err(ce)?;
    let mut r = status_only(StatusCode::NO_CONTENT);
    if !outcome.version_id.is_empty() {
        crate::handlers::set_header(&mut r, "x-amz-version-id", &outcome.version_id);
    }
    if outcome.delete_marker {
        crate::handlers::set_header(&mut r, "x-amz-delete-marker", "true");
    }
    Ok(r)
}

/// How a successful delete is reported: S3 reports every requested key as deleted, whether
/// or not it existed.
fn deleted_entry(o: DeleteOutcome, asked: Option<String>) -> xml::Deleted {
    let created_marker = asked.is_none() && o.delete_marker;
    xml::Deleted {
        key: o.key,
        version_id: asked,
        delete_marker: o.delete_marker,
        delete_marker_version_id: created_marker.then(|| o.version_id.clone()),
    }
}

/// The conditions of a DeleteObject (S3's 2024 conditional deletes): `If-Match` (an ETag or
/// `*`), `x-amz-if-match-last-modified-time` (an HTTP date), `x-amz-if-match-size`. Decided
/// by the state machine when the delete applies. A malformed value is `InvalidArgument`.
pub fn delete_condition(h: &http::HeaderMap) -> Result<DeleteIf, S3Error> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let mtime_ms = get("x-amz-if-match-last-modified-time")
        .map(|v| {
            crate::http_util::parse_http_date_secs(v)
                .or_else(|| crate::object_lock::parse_iso8601_ms(v).map(|ms| ms / 1000))
                .map(|s| s.saturating_mul(1000))
                .ok_or_else(|| {
                    S3Error::InvalidArgument("Invalid x-amz-if-match-last-modified-time".into())
                })
        })
        .transpose()?;
    let size = get("x-amz-if-match-size")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| S3Error::InvalidArgument("Invalid x-amz-if-match-size".into()))
        })
        .transpose()?;
    Ok(DeleteIf {
        etag: get("if-match").map(str::to_string),
        mtime_ms,
        size,
    })
}

/// The conditions of one DeleteObjects entry (`ETag`, `LastModifiedTime` in ISO 8601,
/// `Size`).
pub fn entry_condition(c: &xml::DeleteCond) -> Result<DeleteIf, S3Error> {
    let mtime_ms = c
        .last_modified
        .as_deref()
        .map(|v| {
            crate::object_lock::parse_iso8601_ms(v)
                .or_else(|| crate::http_util::parse_http_date_secs(v).map(|s| s * 1000))
                .ok_or(S3Error::MalformedXML)
        })
        .transpose()?;
    let size = c
        .size
        .as_deref()
        .map(|v| v.parse::<u64>().map_err(|_| S3Error::MalformedXML))
        .transpose()?;
    Ok(DeleteIf {
        etag: c.etag.clone(),
        mtime_ms,
        size,
    })
}

/// DeleteObjects with or without version ids: each entry is authorized on its own
/// (`s3:DeleteObject`, or `s3:DeleteObjectVersion` for an entry with a version id), and
/// answered on its own.
pub async fn delete_objects(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    use anode_meta::authz::Action;
    let body = body.collect(MAX_DELETE_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let req = xml::parse_delete(&body)?;
    let conds = req
        .conditions
        .iter()
        .map(entry_condition)
        .collect::<Result<Vec<_>, _>>()?;
    let mut errors = Vec::new();
    let mut wanted = Vec::new();
    let mut conditional = Vec::new();
    for ((key, version), cond) in req.objects.into_iter().zip(conds) {
        let version = version.filter(|v| !v.is_empty());
        let action = if version.is_some() {
            Action::DeleteObjectVersion
        } else {
            Action::DeleteObject
        };
        let bad_version = version
            .as_deref()
            .is_some_and(|v| anode_meta::state::versions::parse_version_id(v).is_err());
        if key.is_empty() || check_key(&key).is_err() {
            errors.push(xml::DeleteError {
                key,
                version_id: version,
                code: "InvalidArgument".into(),
                message: "Invalid key".into(),
            });
        } else if bad_version {
            errors.push(xml::DeleteError {
                key,
                version_id: version,
                code: "NoSuchVersion".into(),
                message: "The specified version does not exist.".into(),
            });
        } else if !cx.authz.allows(action, bucket, &key).is_allowed() {
            crate::metrics::METRICS.authz_denied.inc();
            errors.push(xml::DeleteError {
                key,
                version_id: version,
                code: "AccessDenied".into(),
                message: "Access Denied".into(),
            });
        } else if !cond.is_empty() {
            conditional.push((key, version, cond));
        } else {
            wanted.push(ObjectVersionRef {
                key,
                version_id: version,
            });
        }
    }
    let mut deleted = Vec::new();
    // Conditional entries are single conditional deletes, each decided when it applies.
    for (key, version, cond) in conditional {
        let bypass = crate::object_lock::bypass_governance(cx, bucket, &key);
        let done = cx
            .backend
            .delete_version(bucket, &key, version.as_deref(), bypass, cond)
            .await;
        match done {
            Ok(o) => deleted.push(deleted_entry(o, version)),
            Err(e) => {
                let s3 = ce(e);
                errors.push(xml::DeleteError {
                    key,
                    version_id: version,
                    code: s3.aws_code().into(),
                    message: s3.public_message(),
                });
            }
        }
    }
    if wanted.is_empty()
        && deleted.is_empty()
        && !errors.is_empty()
        && errors.iter().all(|e| e.code == "AccessDenied")
    {
        // Nothing the caller asked for may be deleted by them: refuse the request as a whole
        // (Ceph RGW does the same without a policy); a partial refusal is per key.
        return Err(S3Error::AccessDenied("Access Denied".into()));
    }
    if wanted.is_empty() {
        cx.backend.head_bucket(bucket).await.map_err(ce)?;
    } else {
        let asked: Vec<Option<String>> = wanted.iter().map(|w| w.version_id.clone()).collect();
        // The bypass is asked for the request as a whole; it is granted when the caller may
        // bypass on every key named.
        let bypass = wanted
            .iter()
            .all(|w| crate::object_lock::bypass_governance(cx, bucket, &w.key));
        let outcomes = cx
            .backend
            .delete_versions(bucket, wanted, bypass)
            .await
            .map_err(ce)?;
        for (o, asked) in outcomes.into_iter().zip(asked) {
            if let Some(e) = o.error {
                let s3 = S3Error::from_error_code(e.code(), &e.message);
                errors.push(xml::DeleteError {
                    key: o.key,
                    version_id: asked,
                    code: s3.aws_code().into(),
                    message: s3.public_message(),
                });
                continue;
            }
            deleted.push(deleted_entry(o, asked));
        }
    }
    Ok(xml_ok(xml::delete_result_versions(
        &deleted, &errors, req.quiet,
    )))
}
