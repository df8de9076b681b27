//! The versioned bucket-access record: what the state machine will store per bucket for
//! authorization (policy text, bucket ACL, object ownership, PublicAccessBlock).
//!
//! Encoding: JSON (serde_json), fields in declaration order, `version` first. Anode's other
//! records are prost messages defined in `proto/`; this one is JSON because this change may
//! not edit `proto/` — moving it to a prost message is a new version of the record (the
//! decoder would then read both). The policy is kept as the text the user sent (S3 returns
//! it as given on GetBucketPolicy) and was checked by [`super::policy::Policy::parse`] before
//! it was stored; [`super::BucketAccess::from_record`] parses it again when loaded.
//!
//! Golden file: `meta/tests/golden/bucket_access.v1.json` (test `meta/tests/authz_golden.rs`).

use serde::{Deserialize, Serialize};

use super::acl::{Acl, AclError, CannedAcl, ObjectOwnership};
use super::pab::PublicAccessBlock;

/// The current version of [`BucketAccessRecord`].
pub const BUCKET_ACCESS_VERSION: u32 = 1;
/// Largest encoded record: a full-size policy, the largest ACL, and room for the rest.
pub const MAX_BUCKET_ACCESS_BYTES: usize = 64 * 1024;

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
    #[error("bucket access record holds an invalid ACL: {0}")]
    Acl(#[from] AclError),
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
        let found = v
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| RecordError::Malformed("no version".into()))?;
        if found > u64::from(BUCKET_ACCESS_VERSION) {
            return Err(RecordError::Newer {
                found,
                supported: BUCKET_ACCESS_VERSION,
            });
        }
        if found == 0 {
            return Err(RecordError::Malformed("version 0".into()));
        }
        let r: BucketAccessRecord =
            serde_json::from_value(v).map_err(|e| RecordError::Malformed(e.to_string()))?;
        r.acl.validate()?;
        Ok(r)
    }
}
