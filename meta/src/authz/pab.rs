//! PublicAccessBlock and the checks that refuse setting public policies and ACLs.
//!
//! The four settings, as S3 documents them (bucket level; Anode has no account level):
//! - `BlockPublicAcls`: PutBucketAcl, PutObjectAcl, and PutObject / CreateBucket carrying an
//!   ACL, fail when that ACL is public ([`check_put_acl`]); existing ACLs are untouched.
//! - `IgnorePublicAcls`: grants to AllUsers and AuthenticatedUsers on the bucket and its
//!   objects are ignored by [`super::authorize`]; they stay stored.
//! - `BlockPublicPolicy`: PutBucketPolicy fails when the policy is public
//!   ([`check_put_policy`]); an existing policy is untouched.
//! - `RestrictPublicBuckets`: while the bucket's policy is public, no Allow of that policy
//!   counts for anyone but the owner and admins (S3 blocks "public and cross-account access"
//!   through a public policy; every Anode user is its own account, see docs/security.md).

use serde::{Deserialize, Serialize};

use super::acl::{Acl, ObjectOwnership};
use super::policy::Policy;

/// A bucket's PublicAccessBlock configuration (all false: nothing blocked, the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicAccessBlock {
    /// Refuse new public ACLs.
    pub block_public_acls: bool,
    /// Ignore public ACLs when authorizing.
    pub ignore_public_acls: bool,
    /// Refuse new public policies.
    pub block_public_policy: bool,
    /// Restrict a bucket with a public policy to its owner and admins.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// All four on.
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// Why setting a policy or an ACL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessSetError {
    /// The bucket's ownership is BucketOwnerEnforced and the ACL is not the bucket owner's
    /// full control (S3: `AccessControlListNotSupported`, 400).
    #[error("the bucket does not allow ACLs")]
    AclsDisabled,
    /// BlockPublicAcls is set and the ACL is public (S3: `AccessDenied`, 403).
    #[error("public ACLs are blocked by the BlockPublicAcls setting")]
    PublicAclBlocked,
    /// BlockPublicPolicy is set and the policy is public (S3: `AccessDenied`, 403).
    #[error("public policies are blocked by the BlockPublicPolicy setting")]
    PublicPolicyBlocked,
}

impl AccessSetError {
    /// The S3 error code.
    pub fn s3_code(&self) -> &'static str {
        match self {
            AccessSetError::AclsDisabled => "AccessControlListNotSupported",
            AccessSetError::PublicAclBlocked | AccessSetError::PublicPolicyBlocked => {
                "AccessDenied"
            }
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            AccessSetError::AclsDisabled => 400,
            AccessSetError::PublicAclBlocked | AccessSetError::PublicPolicyBlocked => 403,
        }
    }
}

/// Whether `policy` may be stored on a bucket with `pab`.
pub fn check_put_policy(pab: &PublicAccessBlock, policy: &Policy) -> Result<(), AccessSetError> {
    if pab.block_public_policy && policy.is_public() {
        return Err(AccessSetError::PublicPolicyBlocked);
    }
    Ok(())
}

/// Whether `acl` may be set (PutBucketAcl, PutObjectAcl, or an ACL on PutObject /
/// CreateBucket / CreateMultipartUpload / CopyObject) on a bucket with `ownership` and `pab`
/// owned by `bucket_owner_id`. Ownership is checked first, as S3 does.
pub fn check_put_acl(
    ownership: ObjectOwnership,
    pab: &PublicAccessBlock,
    acl: &Acl,
    bucket_owner_id: &str,
) -> Result<(), AccessSetError> {
    if !ownership.acls_enabled() && !acl.is_bucket_owner_full_control(bucket_owner_id) {
        return Err(AccessSetError::AclsDisabled);
    }
    if pab.block_public_acls && acl.is_public() {
        return Err(AccessSetError::PublicAclBlocked);
    }
    Ok(())
}
