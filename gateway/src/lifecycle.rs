//! S3 lifecycle configuration (issue 14): Get/Put/DeleteBucketLifecycleConfiguration. The
//! rules are parsed and rendered by [`crate::lifecycle_xml`], validated again by the state
//! machine, and carried out by the master leader's lifecycle worker.

use http::{Response, StatusCode};

use crate::body::{RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, status_only, xml_ok, Ctx};
use crate::lifecycle_xml::{parse_lifecycle, render_lifecycle, MAX_LIFECYCLE_BODY_BYTES};

/// GetBucketLifecycleConfiguration (404 `NoSuchLifecycleConfiguration` without rules).
pub async fn get_lifecycle(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    match cfg.lifecycle.filter(|l| !l.rules.is_empty()) {
        Some(l) => Ok(xml_ok(render_lifecycle(&l))),
        None => Err(S3Error::NoSuchConfiguration {
            code: "NoSuchLifecycleConfiguration",
            message: "The lifecycle configuration does not exist",
        }),
    }
}

/// PutBucketLifecycleConfiguration.
pub async fn put_lifecycle(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_LIFECYCLE_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let cfg = parse_lifecycle(&body)?;
    let done = cx
        .backend
        .set_bucket_lifecycle(bucket, Some(cfg))
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::OK))
}

/// DeleteBucketLifecycle (204, also when there were no rules).
pub async fn delete_lifecycle(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let done = cx
        .backend
        .set_bucket_lifecycle(bucket, None)
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::NO_CONTENT))
}
