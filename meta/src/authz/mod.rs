//! Authorization of S3 requests: one pure function, [`authorize`], over the request's
//! principal, action, resource and context and the bucket's access configuration (bucket
//! policy, ACLs, Object Ownership, PublicAccessBlock).
//!
//! Decision order (S3's, see docs/security.md "Authorization"):
//! 1. No bucket in reach (`s3:ListAllMyBuckets`, CreateBucket of a new bucket, a bucket that
//!    does not exist): any signed user is allowed, anonymous is denied.
//! 2. An explicit `Deny` of the bucket policy that matches wins over everything, for every
//!    principal, the owner and admins included (as S3 denies an account's own users), except
//!    that the owner and admins may always get, put and delete the bucket policy, so a bucket
//!    can never be locked for good.
//! 3. Allowed: an admin; the bucket's owner; a matching `Allow` of the policy (not when the
//!    policy is public and RestrictPublicBuckets is set); an ACL grant that covers the action
//!    (not when Object Ownership is BucketOwnerEnforced; public grants not when
//!    IgnorePublicAcls is set).
//! 4. Otherwise denied (implicit deny).
//!
//! Identities: a user `NAME` is `arn:aws:iam::anode:user/NAME` in policies ([`user_arn`]) and
//! has the canonical id [`canonical_id`]`(NAME)` in ACLs (64 hex digits, like S3's).
//!
//! Architecture invariant: pure (no IO, no clock); the gateway evaluates it once per request
//! at one place.

pub mod acl;
pub mod action;
pub mod cidr;
pub mod glob;
pub mod pab;
pub mod policy;
pub mod record;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

pub use acl::{Acl, AclError, CannedAcl, Grant, Grantee, ObjectOwnership, Permission};
pub use action::Action;
pub use pab::{check_put_acl, check_put_policy, AccessSetError, PublicAccessBlock};
pub use policy::{Policy, PolicyError};
pub use record::{
    decode_acl, encode_acl, BucketAccessRecord, RecordError, BUCKET_ACCESS_VERSION,
    OBJECT_ACL_VERSION,
};

/// The account part of every user ARN.
pub const ACCOUNT: &str = "anode";
/// Prefix of a user ARN.
const USER_ARN_PREFIX: &str = "arn:aws:iam::anode:user/";
/// Longest user name in a user ARN (IAM's limit).
pub const MAX_USER_NAME_CHARS: usize = 64;

/// The ARN naming user `name` in bucket policies: `arn:aws:iam::anode:user/NAME`.
pub fn user_arn(name: &str) -> String {
    format!("{USER_ARN_PREFIX}{name}")
}

/// The user named by a user ARN: `arn:aws:iam::anode:user/NAME` with NAME of 1 to 64
/// characters of `A-Z a-z 0-9 + = , . @ _ -` (IAM's user name alphabet). No wildcards.
pub fn parse_user_arn(arn: &str) -> Option<&str> {
    let name = arn.strip_prefix(USER_ARN_PREFIX)?;
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    ok.then_some(name)
}

/// The canonical id of user `name`: lower-case hex SHA-256 of `anode-canonical-user:NAME`.
/// Stable for a name (a user deleted and created again under the same name gets the same id,
/// so remove their grants when deleting a user).
pub fn canonical_id(name: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"anode-canonical-user:");
    h.update(name.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `s` has the form of a canonical id (64 lower-case hex digits).
pub fn is_canonical_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Who sends a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No signature.
    Anonymous,
    /// The user owning the key that signed the request (presigned URLs too).
    User {
        /// User name.
        name: String,
        /// Whether the user is an admin.
        admin: bool,
        /// [`canonical_id`] of the name.
        canonical_id: String,
    },
}

impl Principal {
    /// The principal of user `name`.
    pub fn user(name: &str, admin: bool) -> Principal {
        Principal::User {
            name: name.to_string(),
            admin,
            canonical_id: canonical_id(name),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anonymous => f.write_str("anonymous"),
            Principal::User { name, .. } => f.write_str(name),
        }
    }
}

/// What a request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The bucket (empty for `s3:ListAllMyBuckets`).
    pub bucket: String,
    /// The key, for object actions.
    pub key: Option<String>,
}

impl Resource {
    /// The ARN policies match: `arn:aws:s3:::BUCKET` or `arn:aws:s3:::BUCKET/KEY`.
    pub fn arn(&self) -> String {
        match &self.key {
            None => policy::bucket_arn(&self.bucket),
            Some(k) => format!("arn:aws:s3:::{}/{k}", self.bucket),
        }
    }
}

/// The request's facts that conditions test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The client's address (`aws:SourceIp`); `None` only where there is none to give.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// ListBucket's `prefix` parameter (`s3:prefix`); `None` when the request has none.
    pub prefix: Option<String>,
    /// The object's tags (`s3:ExistingObjectTag/<key>`); `None` when not looked up.
    pub existing_object_tags: Option<BTreeMap<String, String>>,
    /// The tags the request gives the object (`s3:RequestObjectTag/<key>`: `x-amz-tagging`
    /// of a write); `None` when it gives none.
    pub request_object_tags: Option<BTreeMap<String, String>>,
}

/// A bucket's access configuration, parsed for evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketAccess {
    /// The policy, if any.
    pub policy: Option<Policy>,
    /// Whether the policy is public (cached [`Policy::is_public`]).
    pub policy_public: bool,
    /// The bucket ACL.
    pub acl: Acl,
    /// Object Ownership.
    pub object_ownership: ObjectOwnership,
    /// PublicAccessBlock.
    pub public_access_block: PublicAccessBlock,
}

impl BucketAccess {
    /// The parsed form of a stored record of bucket `bucket`.
    pub fn from_record(
        rec: &BucketAccessRecord,
        bucket: &str,
    ) -> Result<BucketAccess, PolicyError> {
        let policy = match &rec.policy {
            None => None,
            Some(text) => Some(Policy::parse(text, bucket)?),
        };
        Ok(BucketAccess {
            policy_public: policy.as_ref().is_some_and(Policy::is_public),
            policy,
            acl: rec.acl.clone(),
            object_ownership: rec.object_ownership,
            public_access_block: rec.public_access_block,
        })
    }
}

/// The bucket a request reaches, as [`authorize`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct BucketView<'a> {
    /// The owning user's name (empty: owned by no user, admins only).
    pub owner: &'a str,
    /// Its access configuration.
    pub access: &'a BucketAccess,
    /// The addressed object's ACL, when the action is an object action and the object exists.
    pub object_acl: Option<&'a Acl>,
}

/// Why a request was allowed (for the audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowReason {
    /// The principal is an admin.
    Admin,
    /// The principal owns the bucket.
    Owner,
    /// A signed request with no bucket in reach.
    Authenticated,
    /// An Allow statement of the bucket policy.
    Policy {
        /// Its Sid.
        sid: Option<String>,
    },
    /// An ACL grant (of the bucket or of the object).
    Acl {
        /// The grant.
        grant: Grant,
        /// Whether it was the object's ACL.
        on_object: bool,
    },
}

/// Why a request was denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// A Deny statement of the bucket policy.
    ExplicitDeny {
        /// Its Sid.
        sid: Option<String>,
    },
    /// Nothing allows it.
    Implicit,
}

/// The answer of [`authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow(AllowReason),
    /// 403 AccessDenied.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sid = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
        match self {
            Decision::Allow(AllowReason::Admin) => f.write_str("allow: admin"),
            Decision::Allow(AllowReason::Owner) => f.write_str("allow: bucket owner"),
            Decision::Allow(AllowReason::Authenticated) => f.write_str("allow: authenticated"),
            Decision::Allow(AllowReason::Policy { sid: s }) => {
                write!(f, "allow: policy statement {}", sid(s))
            }
            Decision::Allow(AllowReason::Acl { grant, on_object }) => write!(
                f,
                "allow: {} ACL grant {} to {:?}",
                if *on_object { "object" } else { "bucket" },
                grant.permission.as_str(),
                grant.grantee
            ),
            Decision::Deny(DenyReason::ExplicitDeny { sid: s }) => {
                write!(f, "deny: policy statement {}", sid(s))
            }
            Decision::Deny(DenyReason::Implicit) => f.write_str("deny: nothing allows it"),
        }
    }
}

/// Decide whether `principal` may do `action` on `resource` (see the module doc for the
/// order). `bucket` is `None` when no existing bucket is in reach.
pub fn authorize(
    principal: &Principal,
    action: Action,
    resource: &Resource,
    ctx: &Context,
    bucket: Option<&BucketView<'_>>,
) -> Decision {
    let (user, admin) = match principal {
        Principal::Anonymous => (None, false),
        Principal::User { name, admin, .. } => (Some(name.as_str()), *admin),
    };
    let Some(b) = bucket else {
        return match user {
            Some(_) => Decision::Allow(AllowReason::Authenticated),
            None => Decision::Deny(DenyReason::Implicit),
        };
    };
    let owner = user.is_some_and(|u| !b.owner.is_empty() && u == b.owner);
    let verdict = b
        .access
        .policy
        .as_ref()
        .map(|p| p.evaluate(principal, action, resource, ctx))
        .unwrap_or_default();
    if let Some(sid) = verdict.denied_by {
        if !((owner || admin) && action.is_policy_management()) {
            return Decision::Deny(DenyReason::ExplicitDeny { sid });
        }
    }
    if admin {
        return Decision::Allow(AllowReason::Admin);
    }
    if owner {
        return Decision::Allow(AllowReason::Owner);
    }
    let pab = &b.access.public_access_block;
    if let Some((sid, _)) = verdict.allowed_by {
        if !(pab.restrict_public_buckets && b.access.policy_public) {
            return Decision::Allow(AllowReason::Policy { sid });
        }
    }
    if b.access.object_ownership.acls_enabled() {
        let (acl, on_object) = match acl::scope_of(action) {
            Some(acl::AclScope::Bucket) => (Some(&b.access.acl), false),
            Some(acl::AclScope::Object) => (b.object_acl, true),
            None => (None, false),
        };
        let grant =
            acl.and_then(|a| a.grant_for(principal, action, on_object, pab.ignore_public_acls));
        if let Some(grant) = grant {
            return Decision::Allow(AllowReason::Acl { grant, on_object });
        }
    }
    Decision::Deny(DenyReason::Implicit)
}

#[cfg(test)]
mod tests;
