//! The versioned access records the state machine stores: per bucket the
//! [`BucketAccessRecord`] (policy text, bucket ACL, object ownership, PublicAccessBlock) in
//! `BucketConfig.access`, per object its ACL ([`encode_acl`] / [`decode_acl`]) in
//! `Manifest.acl` (and `MultipartUpload.acl` until the upload completes). Empty bytes stand
//! for the default in both places (no policy, a private ACL owned by the bucket's owner,
//! ObjectWriter, nothing blocked), so a bucket or object that never had its access set costs
//! nothing.
//!
//! Encoding: JSON (serde_json), fields in declaration order, `version` first. Anode's other
//! records are prost messages defined in `proto/`; these stay JSON inside a `bytes` field
//! because they are versioned on their own and have goldens; moving them to prost messages
//! would be a new version of each (the decoder would then read both). The policy is kept as
//! the text the user sent (S3 returns it as given on GetBucketPolicy) and is checked by
//! [`super::policy::Policy::parse`] before it is stored ([`BucketAccessRecord::decode_checked`],
//! which the state machine applies to every record it is asked to store);
//! [`super::BucketAccess::from_record`] parses it again when loaded. The state machine stores
//! the bytes it was given, never a re-encoding, so members of different builds store the
//! same bytes.
//!
//! Golden files: `meta/tests/golden/bucket_access.v1.json` and `object_acl.v1.json` (tests
//! in `meta/tests/authz_golden.rs`).

use serde::{Deserialize, Serialize};

use super::acl::{Acl, AclError, CannedAcl, Grant, ObjectOwnership};
use super::pab::PublicAccessBlock;
use super::policy::{Policy, PolicyError};

/// The current version of [`BucketAccessRecord`].
pub const BUCKET_ACCESS_VERSION: u32 = 1;
/// Largest encoded record: a full-size policy, the largest ACL, and room for the rest.
pub const MAX_BUCKET_ACCESS_BYTES: usize = 64 * 1024;
/// The current version of an encoded object ACL ([`encode_acl`]).
pub const OBJECT_ACL_VERSION: u32 = 1;
/// Largest encoded object ACL: the largest ACL ([`super::acl::MAX_GRANTS`] grants to
/// canonical users, about 11 KiB) with room to spare.
pub const MAX_OBJECT_ACL_BYTES: usize = 16 * 1024;

/// Why bytes did not decode as a bucket-access record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Written by a newer build.
    #[error(
        "bucket access record version {found} is newer than this build supports ({supported})"
    )]
    Newer {
        /// The version found.
        found: u64,
        /// The version this build writes.
        supported: u32,
    },
    /// Not a record of any version.
    #[error("bucket access record does not decode: {0}")]
    Malformed(String),
    /// Its ACL is invalid.
    #[error("access record holds an invalid ACL: {0}")]
    Acl(#[from] AclError),
    /// Its policy does not parse as the policy of its bucket
    /// ([`BucketAccessRecord::decode_checked`]).
    #[error("bucket access record holds an invalid policy: {0}")]
    Policy(#[from] PolicyError),
}

/// One bucket's access configuration as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketAccessRecord {
    /// Format version ([`BUCKET_ACCESS_VERSION`] when written by this build).
    pub version: u32,
    /// The bucket policy as the user sent it, if any.
    pub policy: Option<String>,
    /// The bucket's ACL.
    pub acl: Acl,
    /// Object Ownership.
    pub object_ownership: ObjectOwnership,
    /// PublicAccessBlock.
    pub public_access_block: PublicAccessBlock,
}

impl BucketAccessRecord {
    /// The record of a new bucket owned by `owner_id` with `canned` ACL (`private` when the
    /// request had none), ACLs enabled (ObjectWriter) and nothing blocked.
    pub fn new_bucket(owner_id: &str, canned: CannedAcl) -> BucketAccessRecord {
        BucketAccessRecord {
            version: BUCKET_ACCESS_VERSION,
            policy: None,
            acl: canned.expand(owner_id, owner_id),
            object_ownership: ObjectOwnership::default(),
            public_access_block: PublicAccessBlock::default(),
        }
    }

    /// The record of a bucket owned by user `owner_user` whose stored record is empty (every
    /// bucket until its access is first set): no policy, a `private` ACL owned by the owner's
    /// [`super::canonical_id`], ObjectWriter, nothing blocked. The administrators' buckets
    /// (`owner_user` "") have the canonical id of the empty name, which no user has.
    pub fn default_for(owner_user: &str) -> BucketAccessRecord {
        BucketAccessRecord::new_bucket(&super::canonical_id(owner_user), CannedAcl::Private)
    }

    /// The record stored as `bytes` (`BucketConfig.access`) for a bucket owned by
    /// `owner_user`: decoded, or [`BucketAccessRecord::default_for`] when empty.
    pub fn load(bytes: &[u8], owner_user: &str) -> Result<BucketAccessRecord, RecordError> {
        if bytes.is_empty() {
            return Ok(BucketAccessRecord::default_for(owner_user));
        }
        BucketAccessRecord::decode(bytes)
    }

    /// The bytes stored, stamped with the current version.
    pub fn encode(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.version = BUCKET_ACCESS_VERSION;
        serde_json::to_vec(&r).expect("a record of strings, bools and enums always encodes")
    }

    /// Decode stored bytes: the version is checked first (a newer one is refused even when
    /// its layout no longer parses as this one), then the fields and the ACL.
    pub fn decode(bytes: &[u8]) -> Result<BucketAccessRecord, RecordError> {
        if bytes.len() > MAX_BUCKET_ACCESS_BYTES {
            return Err(RecordError::Malformed(format!(
                "{} bytes, at most {MAX_BUCKET_ACCESS_BYTES}",
                bytes.len()
            )));
        }
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        check_version(&v, BUCKET_ACCESS_VERSION)?;
        let r: BucketAccessRecord =
            serde_json::from_value(v).map_err(|e| RecordError::Malformed(e.to_string()))?;
        r.acl.validate()?;
        Ok(r)
    }

    /// [`BucketAccessRecord::decode`], and its policy (if any) parsed as the policy of bucket
    /// `bucket`: what the state machine requires of a record before storing it. Empty bytes
    /// are the default record (`None`).
    pub fn decode_checked(
        bytes: &[u8],
        bucket: &str,
    ) -> Result<Option<BucketAccessRecord>, RecordError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let r = BucketAccessRecord::decode(bytes)?;
        if let Some(text) = &r.policy {
            Policy::parse(text, bucket)?;
        }
        Ok(Some(r))
    }
}

/// The `version` of a decoded JSON record: refused when absent, 0 or newer than `supported`
/// (checked before the fields, so a newer layout is named as newer even when it no longer
/// parses as this one).
fn check_version(v: &serde_json::Value, supported: u32) -> Result<(), RecordError> {
    let found = v
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| RecordError::Malformed("no version".into()))?;
    if found > u64::from(supported) {
        return Err(RecordError::Newer { found, supported });
    }
    if found == 0 {
        return Err(RecordError::Malformed("version 0".into()));
    }
    Ok(())
}

/// The stored form of an object ACL: the [`Acl`] with a version.
#[derive(Serialize)]
struct ObjectAclOut<'a> {
    version: u32,
    owner: &'a str,
    grants: &'a [Grant],
}

/// The stored form of an object ACL, read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectAclIn {
    #[allow(dead_code)] // checked by `check_version` before the fields are read
    version: u32,
    owner: String,
    grants: Vec<Grant>,
}

/// The bytes stored for an object's ACL (`Manifest.acl`, `MultipartUpload.acl`):
/// `{"version":1,"owner":...,"grants":[...]}`. Writers that mean the default (private,
/// owned by the bucket's owner) store empty bytes instead.
pub fn encode_acl(acl: &Acl) -> Vec<u8> {
    serde_json::to_vec(&ObjectAclOut {
        version: OBJECT_ACL_VERSION,
        owner: &acl.owner,
        grants: &acl.grants,
    })
    .expect("an ACL of strings and enums always encodes")
}

/// Decode a stored object ACL: at most [`MAX_OBJECT_ACL_BYTES`], the version checked first,
/// then the fields and [`Acl::validate`]. Empty bytes are the default ACL (`None`): private,
/// owned by the bucket's owner, which only the caller knows.
pub fn decode_acl(bytes: &[u8]) -> Result<Option<Acl>, RecordError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() > MAX_OBJECT_ACL_BYTES {
        return Err(RecordError::Malformed(format!(
            "object ACL of {} bytes, at most {MAX_OBJECT_ACL_BYTES}",
            bytes.len()
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
    check_version(&v, OBJECT_ACL_VERSION)?;
    let r: ObjectAclIn =
        serde_json::from_value(v).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let acl = Acl {
        owner: r.owner,
        grants: r.grants,
    };
    acl.validate()?;
    Ok(Some(acl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::acl::{Grantee, Permission, MAX_GRANTS};
    use crate::authz::canonical_id;

    fn full_acl() -> Acl {
        Acl {
            owner: canonical_id("owner"),
            grants: (0..MAX_GRANTS)
                .map(|i| Grant {
                    grantee: Grantee::CanonicalUser {
                        id: canonical_id(&format!("user{i}")),
                    },
                    permission: Permission::FullControl,
                })
                .collect(),
        }
    }

    #[test]
    fn object_acls_roundtrip_and_the_largest_fits_the_cap() {
        let acl = full_acl();
        let bytes = encode_acl(&acl);
        assert!(bytes.len() <= MAX_OBJECT_ACL_BYTES, "{}", bytes.len());
        assert_eq!(decode_acl(&bytes), Ok(Some(acl)));
        assert_eq!(decode_acl(b""), Ok(None));
        let small = CannedAcl::PublicRead.expand(&canonical_id("a"), &canonical_id("b"));
        assert_eq!(decode_acl(&encode_acl(&small)), Ok(Some(small)));
    }

    #[test]
    fn bad_object_acls_are_refused() {
        let owner = canonical_id("a");
        let mut too_many = full_acl();
        too_many.grants.push(too_many.grants[0].clone());
        assert_eq!(
            decode_acl(&encode_acl(&too_many)),
            Err(RecordError::Acl(AclError::TooManyGrants(MAX_GRANTS + 1)))
        );
        let bad_owner = Acl {
            owner: "nobody".into(),
            grants: Vec::new(),
        };
        assert!(matches!(
            decode_acl(&encode_acl(&bad_owner)),
            Err(RecordError::Acl(AclError::UnsupportedGrantee(_)))
        ));
        let newer = format!(r#"{{"version":2,"owner":"{owner}","grants":[],"x":1}}"#);
        assert_eq!(
            decode_acl(newer.as_bytes()),
            Err(RecordError::Newer {
                found: 2,
                supported: OBJECT_ACL_VERSION
            })
        );
        for bad in [
            "{}".to_string(),
            "not json".to_string(),
            format!(r#"{{"version":0,"owner":"{owner}","grants":[]}}"#),
            format!(r#"{{"version":1,"owner":"{owner}","grants":[],"extra":true}}"#),
            format!(r#"{{"version":1,"owner":"{owner}"}}"#),
            format!(
                r#"{{"version":1,"owner":"{owner}","grants":[{{"grantee":{{"type":"AllUsers"}},"permission":"ALL"}}]}}"#
            ),
        ] {
            assert!(
                matches!(decode_acl(bad.as_bytes()), Err(RecordError::Malformed(_))),
                "{bad}"
            );
        }
        let mut huge = encode_acl(&full_acl());
        huge.splice(1..1, vec![b' '; MAX_OBJECT_ACL_BYTES]);
        assert!(matches!(
            decode_acl(&huge),
            Err(RecordError::Malformed(m)) if m.contains("at most")
        ));
    }

    #[test]
    fn an_empty_record_loads_as_the_owners_default() {
        let d = BucketAccessRecord::load(b"", "alice").unwrap();
        assert_eq!(d.policy, None);
        assert_eq!(d.acl, CannedAcl::Private.expand(&canonical_id("alice"), ""));
        assert_eq!(d.object_ownership, ObjectOwnership::ObjectWriter);
        assert_eq!(d.public_access_block, PublicAccessBlock::default());
        assert_ne!(d, BucketAccessRecord::default_for("bob"));
        let mut set = d.clone();
        set.policy = Some("x".into());
        assert_eq!(BucketAccessRecord::load(&set.encode(), "bob"), Ok(set));
        assert!(BucketAccessRecord::load(b"{", "alice").is_err());
    }

    #[test]
    fn a_stored_bucket_record_needs_a_policy_of_its_bucket() {
        assert_eq!(BucketAccessRecord::decode_checked(b"", "photos"), Ok(None));
        let mut rec = BucketAccessRecord::new_bucket(&canonical_id("a"), CannedAcl::Private);
        assert_eq!(
            BucketAccessRecord::decode_checked(&rec.encode(), "photos"),
            Ok(Some(rec.clone()))
        );
        rec.policy = Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#
                .into(),
        );
        let bytes = rec.encode();
        assert_eq!(
            BucketAccessRecord::decode_checked(&bytes, "photos"),
            Ok(Some(rec.clone()))
        );
        assert!(matches!(
            BucketAccessRecord::decode_checked(&bytes, "other"),
            Err(RecordError::Policy(PolicyError::ResourceOutsideBucket(_)))
        ));
        rec.policy = Some("{".into());
        assert!(matches!(
            BucketAccessRecord::decode_checked(&rec.encode(), "photos"),
            Err(RecordError::Policy(PolicyError::BadJson(_)))
        ));
        assert!(matches!(
            BucketAccessRecord::decode_checked(b"[]", "photos"),
            Err(RecordError::Malformed(_))
        ));
    }
}
