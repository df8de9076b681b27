//! Access control lists: grants of five permissions to canonical users and two groups, on
//! buckets and objects, S3's canned ACLs, and the mapping of ACL permissions to actions.
//!
//! The AccessControlPolicy XML lives in the gateway (architecture invariant: only `gateway`
//! knows S3 XML); it builds an [`Acl`] from the parsed grants with [`Permission::parse`],
//! [`Grantee::from_group_uri`] and [`Acl::validate`], and renders one back with
//! [`Permission::as_str`] and [`Grantee::group_uri`].

use serde::{Deserialize, Serialize};

use super::action::Action;
use super::Principal;

/// Most grants one ACL holds (S3's limit).
pub const MAX_GRANTS: usize = 100;
/// The AllUsers group's URI (anyone, anonymous included).
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The AuthenticatedUsers group's URI (any signed request).
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Why an ACL (or a request to set one) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// More than [`MAX_GRANTS`] grants (S3: `MalformedACLError`).
    #[error("an ACL holds at most {MAX_GRANTS} grants, this one {0}")]
    TooManyGrants(usize),
    /// A permission name S3 does not have (S3: `MalformedACLError`).
    #[error("unknown permission {0:?}")]
    UnknownPermission(String),
    /// A grantee that is no canonical user id and no supported group: e-mail grantees,
    /// `LogDelivery` (S3: `UnresolvableGrantByEmailAddress` / `InvalidArgument`; Anode answers
    /// `InvalidArgument`).
    #[error("unsupported grantee {0:?}")]
    UnsupportedGrantee(String),
    /// A canned ACL name outside the supported set (S3: `InvalidArgument`).
    #[error("unknown or unsupported canned ACL {0:?}")]
    UnknownCannedAcl(String),
}

impl AclError {
    /// The S3 error code.
    pub fn s3_code(&self) -> &'static str {
        match self {
            AclError::TooManyGrants(_) | AclError::UnknownPermission(_) => "MalformedACLError",
            AclError::UnsupportedGrantee(_) | AclError::UnknownCannedAcl(_) => "InvalidArgument",
        }
    }
}

/// An ACL permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `READ`: list the bucket / read the object.
    #[serde(rename = "READ")]
    Read,
    /// `WRITE`: write and delete objects in the bucket (no meaning on an object).
    #[serde(rename = "WRITE")]
    Write,
    /// `READ_ACP`: read the ACL.
    #[serde(rename = "READ_ACP")]
    ReadAcp,
    /// `WRITE_ACP`: replace the ACL.
    #[serde(rename = "WRITE_ACP")]
    WriteAcp,
    /// `FULL_CONTROL`: all four.
    #[serde(rename = "FULL_CONTROL")]
    FullControl,
}

impl Permission {
    /// The name in XML and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    /// The permission named `s` (exact, as S3 spells it).
    pub fn parse(s: &str) -> Result<Permission, AclError> {
        [
            Permission::Read,
            Permission::Write,
            Permission::ReadAcp,
            Permission::WriteAcp,
            Permission::FullControl,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| AclError::UnknownPermission(s.to_string()))
    }

    /// Whether this permission, granted on a bucket (`on_object` false) or an object, allows
    /// `action` (S3's "mapping of ACL permissions and access policy permissions"). Anode adds
    /// `s3:AbortMultipartUpload` and `s3:ListMultipartUploadParts` to bucket `WRITE`, so a
    /// grantee that may upload can finish or abandon its multipart uploads.
    pub fn allows(self, action: Action, on_object: bool) -> bool {
        use Action as A;
        match (self, on_object) {
            (Permission::FullControl, _) => [
                Permission::Read,
                Permission::Write,
                Permission::ReadAcp,
                Permission::WriteAcp,
            ]
            .into_iter()
            .any(|p| p.allows(action, on_object)),
            (Permission::Read, false) => matches!(
                action,
                A::ListBucket | A::ListBucketVersions | A::ListBucketMultipartUploads
            ),
            (Permission::Write, false) => matches!(
                action,
                A::PutObject
                    | A::DeleteObject
                    | A::DeleteObjectVersion
                    | A::AbortMultipartUpload
                    | A::ListMultipartUploadParts
            ),
            (Permission::ReadAcp, false) => action == A::GetBucketAcl,
            (Permission::WriteAcp, false) => action == A::PutBucketAcl,
            (Permission::Read, true) => {
                matches!(
                    action,
                    A::GetObject
                        | A::GetObjectVersion
                        | A::GetObjectAttributes
                        | A::GetObjectVersionAttributes
                )
            }
            (Permission::Write, true) => false,
            (Permission::ReadAcp, true) => action == A::GetObjectAcl,
            (Permission::WriteAcp, true) => action == A::PutObjectAcl,
        }
    }
}

/// Which ACL can grant an action: the bucket's, the object's, or none (policy-only actions
/// such as `s3:PutBucketPolicy` or `s3:DeleteBucket`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclScope {
    /// The bucket's ACL.
    Bucket,
    /// The object's ACL.
    Object,
}

/// The ACL that can grant `action`, if any.
pub fn scope_of(action: Action) -> Option<AclScope> {
    const PERMS: [Permission; 4] = [
        Permission::Read,
        Permission::Write,
        Permission::ReadAcp,
        Permission::WriteAcp,
    ];
    if PERMS.iter().any(|p| p.allows(action, true)) {
        Some(AclScope::Object)
    } else if PERMS.iter().any(|p| p.allows(action, false)) {
        Some(AclScope::Bucket)
    } else {
        None
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Grantee {
    /// One user, by canonical id ([`super::canonical_id`]).
    CanonicalUser {
        /// The id (64 lower-case hex digits).
        id: String,
    },
    /// Everyone, anonymous requests included.
    AllUsers,
    /// Every signed request.
    AuthenticatedUsers,
}

impl Grantee {
    /// The group named by `uri`.
    pub fn from_group_uri(uri: &str) -> Result<Grantee, AclError> {
        match uri {
            ALL_USERS_URI => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
            _ => Err(AclError::UnsupportedGrantee(uri.to_string())),
        }
    }

    /// A canonical user grantee, checked.
    pub fn canonical_user(id: &str) -> Result<Grantee, AclError> {
        if super::is_canonical_id(id) {
            Ok(Grantee::CanonicalUser { id: id.to_string() })
        } else {
            Err(AclError::UnsupportedGrantee(id.to_string()))
        }
    }

    /// The group's URI (`None` for a canonical user).
    pub fn group_uri(&self) -> Option<&'static str> {
        match self {
            Grantee::CanonicalUser { .. } => None,
            Grantee::AllUsers => Some(ALL_USERS_URI),
            Grantee::AuthenticatedUsers => Some(AUTHENTICATED_USERS_URI),
        }
    }

    /// Whether the grantee is a public group (S3 counts both groups as public).
    pub fn is_public(&self) -> bool {
        !matches!(self, Grantee::CanonicalUser { .. })
    }

    /// Whether `principal` is covered by this grantee.
    pub fn covers(&self, principal: &Principal) -> bool {
        match (self, principal) {
            (Grantee::AllUsers, _) => true,
            (Grantee::AuthenticatedUsers, p) => !matches!(p, Principal::Anonymous),
            (Grantee::CanonicalUser { id }, Principal::User { canonical_id, .. }) => {
                id == canonical_id
            }
            (Grantee::CanonicalUser { .. }, Principal::Anonymous) => false,
        }
    }
}

/// One grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// A bucket's or an object's ACL: its owner (canonical id) and its grants. The owner always
/// holds `READ_ACP` and `WRITE_ACP` on it, as in S3, whatever the grants say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// The owner's canonical id.
    pub owner: String,
    /// The grants, in the order given.
    pub grants: Vec<Grant>,
}

impl Acl {
    /// Checks an ACL built from a request: at most [`MAX_GRANTS`] grants, a valid owner id
    /// and grantee ids.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.grants.len() > MAX_GRANTS {
            return Err(AclError::TooManyGrants(self.grants.len()));
        }
        if !super::is_canonical_id(&self.owner) {
            return Err(AclError::UnsupportedGrantee(self.owner.clone()));
        }
        for g in &self.grants {
            if let Grantee::CanonicalUser { id } = &g.grantee {
                Grantee::canonical_user(id)?;
            }
        }
        Ok(())
    }

    /// Whether some grant is to a public group (S3's "public ACL").
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.is_public())
    }

    /// Whether this is a "bucket owner full control" ACL, the one kind S3 accepts when ACLs
    /// are disabled: it grants the bucket owner FULL_CONTROL and nothing else, except
    /// FULL_CONTROL to the ACL's own owner (what `bucket-owner-full-control` from another
    /// writer expands to; `private` from the bucket owner qualifies, from anyone else not).
    pub fn is_bucket_owner_full_control(&self, bucket_owner_id: &str) -> bool {
        let full_to = |g: &Grant, id: &str| {
            g.permission == Permission::FullControl
                && matches!(&g.grantee, Grantee::CanonicalUser { id: x } if x == id)
        };
        self.grants.iter().any(|g| full_to(g, bucket_owner_id))
            && self
                .grants
                .iter()
                .all(|g| full_to(g, bucket_owner_id) || full_to(g, &self.owner))
    }

    /// The grant (or the owner's implicit ACP rights) that lets `principal` do `action` on
    /// what this ACL guards (`on_object`); public grants are skipped when `ignore_public`
    /// (IgnorePublicAcls).
    pub fn grant_for(
        &self,
        principal: &Principal,
        action: Action,
        on_object: bool,
        ignore_public: bool,
    ) -> Option<Grant> {
        if let Principal::User { canonical_id, .. } = principal {
            let acp = if on_object {
                [Action::GetObjectAcl, Action::PutObjectAcl]
            } else {
                [Action::GetBucketAcl, Action::PutBucketAcl]
            };
            if *canonical_id == self.owner && acp.contains(&action) {
                return Some(Grant {
                    grantee: Grantee::CanonicalUser {
                        id: self.owner.clone(),
                    },
                    permission: Permission::FullControl,
                });
            }
        }
        self.grants
            .iter()
            .filter(|g| !(ignore_public && g.grantee.is_public()))
            .find(|g| g.grantee.covers(principal) && g.permission.allows(action, on_object))
            .cloned()
    }
}

/// S3's canned ACLs that Anode supports (`aws-exec-read` and `log-delivery-write` name
/// groups Anode does not have and are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedAcl {
    /// Owner FULL_CONTROL only.
    Private,
    /// And AllUsers READ.
    PublicRead,
    /// And AllUsers READ and WRITE.
    PublicReadWrite,
    /// And AuthenticatedUsers READ.
    AuthenticatedRead,
    /// Object owner FULL_CONTROL, bucket owner READ.
    BucketOwnerRead,
    /// Object owner and bucket owner FULL_CONTROL.
    BucketOwnerFullControl,
}

impl CannedAcl {
    /// The canned ACL named `s` (`x-amz-acl`).
    pub fn parse(s: &str) -> Result<CannedAcl, AclError> {
        Ok(match s {
            "private" => CannedAcl::Private,
            "public-read" => CannedAcl::PublicRead,
            "public-read-write" => CannedAcl::PublicReadWrite,
            "authenticated-read" => CannedAcl::AuthenticatedRead,
            "bucket-owner-read" => CannedAcl::BucketOwnerRead,
            "bucket-owner-full-control" => CannedAcl::BucketOwnerFullControl,
            _ => return Err(AclError::UnknownCannedAcl(s.to_string())),
        })
    }

    /// The ACL it stands for, owned by `owner_id` (the bucket's owner for a bucket, the
    /// object's for an object) in a bucket owned by `bucket_owner_id`. On a bucket, the two
    /// `bucket-owner-*` ACLs are `private` (the owner is the bucket owner), as in S3.
    pub fn expand(self, owner_id: &str, bucket_owner_id: &str) -> Acl {
        let user = |id: &str, permission| Grant {
            grantee: Grantee::CanonicalUser { id: id.to_string() },
            permission,
        };
        let group = |grantee, permission| Grant {
            grantee,
            permission,
        };
        // Group grants first, then the owner's (the order Ceph RGW answers and its s3-tests
        // expect; S3 defines none).
        let owner = user(owner_id, Permission::FullControl);
        let grants = match self {
            CannedAcl::Private => vec![owner],
            CannedAcl::PublicRead => vec![group(Grantee::AllUsers, Permission::Read), owner],
            CannedAcl::PublicReadWrite => vec![
                group(Grantee::AllUsers, Permission::Read),
                group(Grantee::AllUsers, Permission::Write),
                owner,
            ],
            CannedAcl::AuthenticatedRead => {
                vec![group(Grantee::AuthenticatedUsers, Permission::Read), owner]
            }
            CannedAcl::BucketOwnerRead | CannedAcl::BucketOwnerFullControl
                if owner_id == bucket_owner_id =>
            {
                vec![owner]
            }
            CannedAcl::BucketOwnerRead => vec![owner, user(bucket_owner_id, Permission::Read)],
            CannedAcl::BucketOwnerFullControl => {
                vec![owner, user(bucket_owner_id, Permission::FullControl)]
            }
        };
        Acl {
            owner: owner_id.to_string(),
            grants,
        }
    }
}

/// S3's Object Ownership setting of a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled; the bucket owner owns every object. Only `bucket-owner-full-control`
    /// (or an equal explicit ACL) may be set.
    BucketOwnerEnforced,
    /// The bucket owner owns objects uploaded with `bucket-owner-full-control`; ACLs apply.
    BucketOwnerPreferred,
    /// The uploader owns the object; ACLs apply. Anode's default, as Ceph RGW and MinIO
    /// honour ACLs by default.
    #[default]
    ObjectWriter,
}

impl ObjectOwnership {
    /// The name in `OwnershipControls` XML.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    /// The setting named `s`.
    pub fn parse(s: &str) -> Option<ObjectOwnership> {
        [
            ObjectOwnership::BucketOwnerEnforced,
            ObjectOwnership::BucketOwnerPreferred,
            ObjectOwnership::ObjectWriter,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// Whether ACLs take part in authorization.
    pub fn acls_enabled(self) -> bool {
        self != ObjectOwnership::BucketOwnerEnforced
    }
}
