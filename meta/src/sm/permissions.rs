//! Access configuration in the state machine (issue 19): a bucket's access record
//! (`BucketConfig.access`: policy, bucket ACL, Object Ownership, PublicAccessBlock) and each
//! object's ACL (`Manifest.acl`, `MultipartUpload.acl`).
//!
//! The state machine stores what the gateway decided, after checking that it is well formed:
//! every record is decoded ([`crate::authz::BucketAccessRecord::decode_checked`], which also
//! parses the policy as the policy of its bucket; [`crate::authz::decode_acl`]) before it is
//! stored, and a refused one leaves nothing behind. Who may change what (owner, grants,
//! PublicAccessBlock) is the gateway's decision ([`crate::authz::authorize`]); the state
//! machine only keeps concurrent edits from losing one another ([`set_bucket_access`]'s
//! compare-and-set). The bytes are stored as given (never re-encoded), so members of different
//! builds store the same bytes. Empty bytes are the default (no policy, private ACLs owned by
//! the bucket's owner, ObjectWriter, nothing blocked): records from before command version 4
//! read as the default.
//!
//! Note for later versions: the checks run at apply time, so a log replays as it applied only
//! while the parsers accept the same inputs. A parser that becomes stricter must keep
//! accepting what older commands carried (gate the new check on the command version, like
//! `sm::Rules`).

use anode_proto::*;
use prost::Message;

use crate::authz::{self, BucketAccessRecord};
use crate::kv::Overlay;

use super::records::get_msg;
use super::{bucket_key, get_bucket, object_key, Res, StateError};

/// A bucket access record the state machine may store for bucket `bucket` (empty = the
/// default).
pub(super) fn check_bucket_access(bytes: &[u8], bucket: &str) -> Result<(), StateError> {
    BucketAccessRecord::decode_checked(bytes, bucket)
        .map(|_| ())
        .map_err(StateError::InvalidAccess)
}

/// An object ACL the state machine may store (empty = the default).
pub(super) fn check_object_acl(bytes: &[u8]) -> Result<(), StateError> {
    authz::decode_acl(bytes)
        .map(|_| ())
        .map_err(StateError::InvalidAccess)
}

/// `SetBucketAccess`: replace the whole record, when `expect_access` (if given) is the
/// current record byte for byte.
pub(super) fn set_bucket_access(o: &mut Overlay<'_>, c: &SetBucketAccessCmd) -> Res {
    let mut b = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    if let Some(expect) = &c.expect_access {
        if *expect != b.access {
            return Err(StateError::PreconditionFailed(format!(
                "the access configuration of bucket {} changed since it was read",
                c.name
            )));
        }
    }
    check_bucket_access(&c.access, &c.name)?;
    b.access = c.access.clone();
    o.put(bucket_key(&c.name), b.encode_to_vec());
    Ok(CommandResult::default())
}

/// `SetObjectAcl`: the current manifest of `bucket/key` with its ACL replaced; nothing else
/// of it changes (body, etag, mtime, object version), so no reference or counter moves. With
/// `expect_object_version`, only when the object is still that version.
pub(super) fn set_object_acl(o: &mut Overlay<'_>, c: &SetObjectAclCmd) -> Res {
    get_bucket(o, &c.bucket).ok_or_else(|| StateError::NoSuchBucket(c.bucket.clone()))?;
    let key = object_key(&c.bucket, &c.key);
    let mut m: Manifest = get_msg(o, &key).ok_or_else(|| StateError::NoSuchKey(c.key.clone()))?;
    if let Some(v) = c.expect_object_version {
        if v != m.object_version {
            return Err(StateError::PreconditionFailed(format!(
                "object {} is version {}, not {v}",
                c.key, m.object_version
            )));
        }
    }
    check_object_acl(&c.acl)?;
    m.acl = c.acl.clone();
    o.put(key, m.encode_to_vec());
    Ok(CommandResult::default())
}
