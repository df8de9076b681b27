//! The S3 operations on access configuration: bucket policy (Get/Put/Delete, PolicyStatus),
//! bucket and object ACLs (Get/Put, and the ACL a write carries in `x-amz-acl` /
//! `x-amz-grant-*`), PublicAccessBlock and Object Ownership.
//!
//! Each bucket change is a read-modify-write of the bucket's whole access record
//! ([`BucketAccessRecord`]), stored with a compare-and-set on the record read
//! (`SetBucketAccess` with `expect_access`): two gateways changing the policy and the ACL at
//! once cannot lose either change; a lost race is retried from a fresh read
//! ([`ACCESS_UPDATE_ATTEMPTS`] times). The decisions (what is valid, what an ACL expands to,
//! what PublicAccessBlock and Object Ownership refuse) are the pure functions of
//! [`anode_meta::authz`] and [`crate::access_xml`]; this module only moves bytes.

use anode_client::ErrorCode;
use anode_meta::authz::{
    canonical_id, check_put_acl, check_put_policy, AccessSetError, Acl, BucketAccessRecord,
    CannedAcl, ObjectOwnership, Policy, PublicAccessBlock,
};
use bytes::Bytes;
use http::{Response, StatusCode};

use crate::access_xml;
use crate::acl_headers::{self, AclHeaders};
use crate::body::{full, RequestBody, RespBody};
use crate::bucket_cache::{self, BucketInfo};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, status_only, xml_ok, Ctx};

/// Tries of one read-modify-write of a bucket's access record before giving up with 409
/// `OperationAborted`.
pub const ACCESS_UPDATE_ATTEMPTS: usize = 3;
/// Largest PutBucketPolicy body (S3's limit on a bucket policy: 20 KiB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// Largest PutBucketAcl / PutObjectAcl / PublicAccessBlock / OwnershipControls body.
pub const MAX_ACCESS_XML_BYTES: usize = 64 * 1024;

/// An [`AccessSetError`] as S3 answers it.
pub fn access_set_error(e: AccessSetError) -> S3Error {
    match e {
        AccessSetError::AclsDisabled => S3Error::AccessControlListNotSupported,
        AccessSetError::PublicAclBlocked | AccessSetError::PublicPolicyBlocked => {
            S3Error::AccessDenied(e.to_string())
        }
    }
}

/// The bucket the request addresses (authorization looked it up), or `NoSuchBucket`.
fn target<'a>(cx: &'a Ctx<'_>) -> Result<&'a BucketInfo, S3Error> {
    cx.authz.bucket.as_deref().ok_or(S3Error::NoSuchBucket)
}

/// Display names for `Owner` and grantee elements: the names of the bucket's owner and of the
/// caller (others are shown by id only).
fn display_names<'a>(cx: &'a Ctx<'_>, owner_user: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
    let owner_id = canonical_id(owner_user);
    let caller_id = cx.principal.canonical_id();
    move |id: &str| {
        if id == owner_id {
            Some(if owner_user.is_empty() {
                "admin".into()
            } else {
                owner_user.to_string()
            })
        } else if id == caller_id {
            Some(cx.principal.owner_id().to_string())
        } else {
            None
        }
    }
}

/// Read-modify-write of the bucket's access record (see the module docs).
async fn update_access<F>(cx: &Ctx<'_>, bucket: &str, mut edit: F) -> Result<(), S3Error>
where
    F: FnMut(&BucketInfo, &mut BucketAccessRecord) -> Result<(), S3Error>,
{
    for attempt in 1..=ACCESS_UPDATE_ATTEMPTS {
        let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
        let expect = cfg.access.clone();
        let info = BucketInfo::from_config(cfg)?;
        let mut rec = info.record.clone();
        edit(&info, &mut rec)?;
        match cx
            .backend
            .set_bucket_access(bucket, rec.encode(), Some(expect))
            .await
        {
            Ok(()) => {
                cx.buckets.invalidate(bucket);
                return Ok(());
            }
            Err(e)
                if e.code() == ErrorCode::PreconditionFailed
                    && attempt < ACCESS_UPDATE_ATTEMPTS =>
            {
                tracing::debug!(bucket, attempt, "bucket access changed meanwhile; again");
            }
            Err(e) if e.code() == ErrorCode::PreconditionFailed => {
                return Err(S3Error::OperationAborted);
            }
            Err(e) => return Err(ce(e)),
        }
    }
    Err(S3Error::OperationAborted)
}

// ---- bucket policy --------------------------------------------------------------------------

/// GetBucketPolicy: the policy as it was put.
pub async fn get_bucket_policy(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let text = b
        .record
        .policy
        .clone()
        .ok_or_else(access_xml::no_such_bucket_policy)?;
    let mut r = Response::new(full(Bytes::from(text)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// PutBucketPolicy: parsed and checked (MalformedPolicy, BlockPublicPolicy) before anything is
/// stored.
pub async fn put_bucket_policy(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_POLICY_BYTES).await.map_err(|e| match e {
        S3Error::EntityTooLarge => {
            S3Error::MalformedPolicy(format!("Policies must be at most {MAX_POLICY_BYTES} bytes"))
        }
        other => other,
    })?;
    check_body_md5(cx.headers, &body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| S3Error::MalformedPolicy("Policies must be UTF-8 JSON".into()))?
        .to_string();
    let policy =
        Policy::parse(&text, bucket).map_err(|e| S3Error::MalformedPolicy(e.to_string()))?;
    update_access(cx, bucket, |b, rec| {
        check_put_policy(&b.record.public_access_block, &policy).map_err(access_set_error)?;
        rec.policy = Some(text.clone());
        Ok(())
    })
    .await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// DeleteBucketPolicy: 204 whether or not there was one.
pub async fn delete_bucket_policy(
    cx: &Ctx<'_>,
    bucket: &str,
) -> Result<Response<RespBody>, S3Error> {
    set_access(cx, bucket, StatusCode::NO_CONTENT, |rec| rec.policy = None).await
}

/// GetBucketPolicyStatus: whether the policy is public (NoSuchBucketPolicy without one).
pub async fn get_bucket_policy_status(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    if b.access.policy.is_none() {
        return Err(access_xml::no_such_bucket_policy());
    }
    Ok(xml_ok(access_xml::policy_status(b.access.policy_public)))
}

// ---- ACLs -----------------------------------------------------------------------------------

/// GetBucketAcl.
pub async fn get_bucket_acl(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let names = display_names(cx, &b.config.owner_user);
    Ok(xml_ok(access_xml::access_control_policy(
        &b.record.acl,
        &names,
    )))
}

/// GetObjectAcl: the object's own ACL, or the default (private to the bucket owner).
pub async fn get_object_acl(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let manifest = cx.backend.head_object(bucket, key).await.map_err(ce)?;
    let acl = bucket_cache::object_acl(&manifest)?.unwrap_or_else(|| default_object_acl(b));
    let names = display_names(cx, &b.config.owner_user);
    Ok(xml_ok(access_xml::access_control_policy(&acl, &names)))
}

fn default_object_acl(b: &BucketInfo) -> Acl {
    let owner = canonical_id(&b.config.owner_user);
    CannedAcl::Private.expand(&owner, &owner)
}

/// The ACL a PutBucketAcl / PutObjectAcl request asks for, owned by `owner_id`: its
/// `x-amz-acl` / `x-amz-grant-*` headers (parsed by the caller) or its AccessControlPolicy
/// body ([`acl_headers::acl_for_put`]).
async fn requested_acl(
    cx: &Ctx<'_>,
    headers: &AclHeaders,
    body: RequestBody,
    owner_id: &str,
    bucket_owner_id: &str,
) -> Result<Acl, S3Error> {
    let body = config_body(cx, body).await?;
    acl_headers::acl_for_put(headers, &body, owner_id, bucket_owner_id)
}

/// PutBucketAcl.
pub async fn put_bucket_acl(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let owner = canonical_id(&b.config.owner_user);
    let headers = acl_headers::parse_acl_headers(cx.headers)?;
    let acl = requested_acl(cx, &headers, body, &owner, &owner).await?;
    update_access(cx, bucket, |b, rec| {
        check_put_acl(
            b.access.object_ownership,
            &b.access.public_access_block,
            &acl,
            &owner,
        )
        .map_err(access_set_error)?;
        rec.acl = acl.clone();
        Ok(())
    })
    .await?;
    Ok(status_only(StatusCode::OK))
}

/// PutObjectAcl: replaces the object's ACL in place (no new version, same ETag and
/// Last-Modified).
pub async fn put_object_acl(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let bucket_owner = canonical_id(&b.config.owner_user);
    let manifest = cx.backend.head_object(bucket, key).await.map_err(ce)?;
    let current = bucket_cache::object_acl(&manifest)?.unwrap_or_else(|| default_object_acl(b));
    let headers = acl_headers::parse_acl_headers(cx.headers)?;
    let acl = requested_acl(cx, &headers, body, &current.owner, &bucket_owner).await?;
    check_as_caller(cx, b, &headers, &acl)?;
    cx.backend
        .set_object_acl(
            bucket,
            key,
            stored_object_acl(b, &acl),
            Some(manifest.object_version),
        )
        .await
        .map_err(ce)?;
    Ok(status_only(StatusCode::OK))
}

/// The bytes stored for an object's ACL: nothing for the default (private to the bucket
/// owner), so most objects carry no ACL at all.
fn stored_object_acl(b: &BucketInfo, acl: &Acl) -> Vec<u8> {
    if *acl == default_object_acl(b) {
        Vec::new()
    } else {
        anode_meta::authz::record::encode_acl(acl)
    }
}

/// The ACL a write (PutObject, CopyObject, CreateMultipartUpload) stores with the object, from
/// its `x-amz-acl` / `x-amz-grant-*` headers: owned by the writer (ObjectWriter), or by the
/// bucket owner (BucketOwnerEnforced; BucketOwnerPreferred with `bucket-owner-full-control`;
/// anonymous writers). Checked against Object Ownership and BlockPublicAcls; empty bytes for
/// the default ACL.
pub fn acl_for_write(cx: &Ctx<'_>) -> Result<Vec<u8>, S3Error> {
    let requested = acl_headers::parse_acl_headers(cx.headers)?;
    let Some(b) = cx.authz.bucket.as_deref() else {
        // A missing bucket: the write fails with NoSuchBucket anyway.
        return Ok(Vec::new());
    };
    let bucket_owner = canonical_id(&b.config.owner_user);
    let bucket_owned = match b.access.object_ownership {
        ObjectOwnership::BucketOwnerEnforced => true,
        ObjectOwnership::BucketOwnerPreferred => {
            requested == AclHeaders::Canned(CannedAcl::BucketOwnerFullControl)
        }
        ObjectOwnership::ObjectWriter => false,
    };
    let owner = if bucket_owned || cx.principal.is_anonymous() {
        bucket_owner.clone()
    } else {
        cx.principal.canonical_id()
    };
    let acl = requested
        .to_acl(&owner, &bucket_owner)?
        .unwrap_or_else(|| CannedAcl::Private.expand(&owner, &bucket_owner));
    check_as_caller(cx, b, &requested, &acl)?;
    Ok(stored_object_acl(b, &acl))
}

/// [`check_put_acl`] (Object Ownership, BlockPublicAcls) on what the caller asked for, read as
/// the caller's: a canned ACL is expanded with the caller as its owner, so `private` from
/// anyone but the bucket owner is not "the bucket owner's full control" and is refused under
/// BucketOwnerEnforced, as in S3. `effective` is the ACL that would be stored (checked as is
/// for an explicit grant list or a body).
fn check_as_caller(
    cx: &Ctx<'_>,
    b: &BucketInfo,
    requested: &AclHeaders,
    effective: &Acl,
) -> Result<(), S3Error> {
    let bucket_owner = canonical_id(&b.config.owner_user);
    let as_caller = match requested {
        AclHeaders::Canned(c) => c.expand(&cx.principal.canonical_id(), &bucket_owner),
        _ => effective.clone(),
    };
    check_put_acl(
        b.access.object_ownership,
        &b.access.public_access_block,
        &as_caller,
        &bucket_owner,
    )
    .map_err(access_set_error)
}

/// The access record of a new bucket of `owner_user`: its ACL from `x-amz-acl` /
/// `x-amz-grant-*`, its Object Ownership from `x-amz-object-ownership` (an ACL other than the
/// owner's full control with BucketOwnerEnforced is `InvalidBucketAclWithObjectOwnership`).
pub fn record_for_new_bucket(cx: &Ctx<'_>, owner_user: &str) -> Result<Vec<u8>, S3Error> {
    let requested = acl_headers::parse_acl_headers(cx.headers)?;
    let ownership = acl_headers::parse_object_ownership(cx.headers)?;
    let owner = canonical_id(owner_user);
    let mut rec = BucketAccessRecord::new_bucket(&owner, CannedAcl::Private);
    if let Some(acl) = requested.to_acl(&owner, &owner)? {
        rec.acl = acl;
    }
    if let Some(o) = ownership {
        rec.object_ownership = o;
    }
    if let Err(AccessSetError::AclsDisabled) = check_put_acl(
        rec.object_ownership,
        &PublicAccessBlock::default(),
        &rec.acl,
        &owner,
    ) {
        return Err(S3Error::InvalidBucketAclWithObjectOwnership);
    }
    if requested.is_none() && ownership.is_none() {
        // The default record: store nothing, as for buckets made before records existed.
        return Ok(Vec::new());
    }
    Ok(rec.encode())
}

// ---- PublicAccessBlock and Object Ownership -------------------------------------------------

/// GetPublicAccessBlock (`NoSuchPublicAccessBlockConfiguration` while every setting is off).
pub async fn get_public_access_block(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    let pab = b.record.public_access_block;
    if pab == PublicAccessBlock::default() {
        return Err(access_xml::no_such_public_access_block());
    }
    Ok(xml_ok(access_xml::public_access_block_configuration(&pab)))
}

/// PutPublicAccessBlock.
pub async fn put_public_access_block(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let pab = access_xml::parse_public_access_block(&config_body(cx, body).await?)?;
    set_access(cx, bucket, StatusCode::OK, |rec| {
        rec.public_access_block = pab
    })
    .await
}

/// DeletePublicAccessBlock: every setting off.
pub async fn delete_public_access_block(
    cx: &Ctx<'_>,
    bucket: &str,
) -> Result<Response<RespBody>, S3Error> {
    set_access(cx, bucket, StatusCode::NO_CONTENT, |rec| {
        rec.public_access_block = PublicAccessBlock::default()
    })
    .await
}

/// GetBucketOwnershipControls: the bucket's setting (ObjectWriter unless changed).
pub async fn get_ownership_controls(cx: &Ctx<'_>) -> Result<Response<RespBody>, S3Error> {
    let b = target(cx)?;
    Ok(xml_ok(access_xml::ownership_controls(
        b.record.object_ownership,
    )))
}

/// PutBucketOwnershipControls.
pub async fn put_ownership_controls(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let ownership = access_xml::parse_ownership_controls(&config_body(cx, body).await?)?;
    update_access(cx, bucket, |b, rec| {
        // ACLs are disabled only over a bucket ACL that grants the owner alone, as in S3 (a
        // public grant kept here would come back with the next switch to ObjectWriter).
        let owner = canonical_id(&b.config.owner_user);
        if !ownership.acls_enabled() && !rec.acl.is_bucket_owner_full_control(&owner) {
            return Err(S3Error::InvalidBucketAclWithObjectOwnership);
        }
        rec.object_ownership = ownership;
        Ok(())
    })
    .await?;
    Ok(status_only(StatusCode::OK))
}

/// DeleteBucketOwnershipControls: back to the default (ObjectWriter).
pub async fn delete_ownership_controls(
    cx: &Ctx<'_>,
    bucket: &str,
) -> Result<Response<RespBody>, S3Error> {
    set_access(cx, bucket, StatusCode::NO_CONTENT, |rec| {
        rec.object_ownership = ObjectOwnership::default()
    })
    .await
}

/// A configuration body: at most [`MAX_ACCESS_XML_BYTES`], Content-MD5 checked.
async fn config_body(cx: &Ctx<'_>, body: RequestBody) -> Result<Bytes, S3Error> {
    let body = body.collect(MAX_ACCESS_XML_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    Ok(body)
}

/// An edit that cannot fail, stored with [`update_access`], answered with `status`.
async fn set_access(
    cx: &Ctx<'_>,
    bucket: &str,
    status: StatusCode,
    mut edit: impl FnMut(&mut BucketAccessRecord),
) -> Result<Response<RespBody>, S3Error> {
    update_access(cx, bucket, |_, rec| {
        edit(rec);
        Ok(())
    })
    .await?;
    Ok(status_only(status))
}
