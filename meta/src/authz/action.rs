//! The S3 actions a request or a policy can name, with their IAM names and the resource each
//! applies to.
//!
//! The set is closed: a policy naming an action outside it (or a wildcard matching none of
//! it) is refused as malformed, as S3 refuses "Policy has invalid action". It holds every
//! action the gateway asks about (see [`Action::for_operation`]) and the other bucket and
//! object actions people commonly write in bucket policies, so such policies are accepted
//! even where Anode does not serve the operation yet (they then never match a request).

use super::glob;

/// What an action applies to, which decides the ARN it is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// No resource (`s3:ListAllMyBuckets`): never in a bucket policy's reach.
    Service,
    /// The bucket: `arn:aws:s3:::BUCKET`.
    Bucket,
    /// An object: `arn:aws:s3:::BUCKET/KEY`.
    Object,
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $level:ident;)*) => {
        /// One S3 action (IAM `s3:` namespace).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Action {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant,
            )*
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The IAM name (`s3:GetObject`).
            pub fn iam_name(self) -> &'static str {
                match self { $(Action::$variant => $name),* }
            }

            /// What the action applies to.
            pub fn level(self) -> Level {
                match self { $(Action::$variant => Level::$level),* }
            }
        }
    };
}

actions! {
    ListAllMyBuckets => "s3:ListAllMyBuckets", Service;
    CreateBucket => "s3:CreateBucket", Bucket;
    DeleteBucket => "s3:DeleteBucket", Bucket;
    ListBucket => "s3:ListBucket", Bucket;
    ListBucketVersions => "s3:ListBucketVersions", Bucket;
    ListBucketMultipartUploads => "s3:ListBucketMultipartUploads", Bucket;
    GetBucketLocation => "s3:GetBucketLocation", Bucket;
    GetBucketVersioning => "s3:GetBucketVersioning", Bucket;
    PutBucketVersioning => "s3:PutBucketVersioning", Bucket;
    GetBucketAcl => "s3:GetBucketAcl", Bucket;
    PutBucketAcl => "s3:PutBucketAcl", Bucket;
    GetBucketPolicy => "s3:GetBucketPolicy", Bucket;
    PutBucketPolicy => "s3:PutBucketPolicy", Bucket;
    DeleteBucketPolicy => "s3:DeleteBucketPolicy", Bucket;
    GetBucketPolicyStatus => "s3:GetBucketPolicyStatus", Bucket;
    GetBucketPublicAccessBlock => "s3:GetBucketPublicAccessBlock", Bucket;
    PutBucketPublicAccessBlock => "s3:PutBucketPublicAccessBlock", Bucket;
    GetBucketOwnershipControls => "s3:GetBucketOwnershipControls", Bucket;
    PutBucketOwnershipControls => "s3:PutBucketOwnershipControls", Bucket;
    GetBucketTagging => "s3:GetBucketTagging", Bucket;
    PutBucketTagging => "s3:PutBucketTagging", Bucket;
    GetBucketCors => "s3:GetBucketCORS", Bucket;
    PutBucketCors => "s3:PutBucketCORS", Bucket;
    GetBucketWebsite => "s3:GetBucketWebsite", Bucket;
    PutBucketWebsite => "s3:PutBucketWebsite", Bucket;
    DeleteBucketWebsite => "s3:DeleteBucketWebsite", Bucket;
    GetLifecycleConfiguration => "s3:GetLifecycleConfiguration", Bucket;
    PutLifecycleConfiguration => "s3:PutLifecycleConfiguration", Bucket;
    GetEncryptionConfiguration => "s3:GetEncryptionConfiguration", Bucket;
    PutEncryptionConfiguration => "s3:PutEncryptionConfiguration", Bucket;
    GetBucketObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration", Bucket;
    PutBucketObjectLockConfiguration => "s3:PutBucketObjectLockConfiguration", Bucket;
    GetReplicationConfiguration => "s3:GetReplicationConfiguration", Bucket;
    PutReplicationConfiguration => "s3:PutReplicationConfiguration", Bucket;
    GetBucketNotification => "s3:GetBucketNotification", Bucket;
    PutBucketNotification => "s3:PutBucketNotification", Bucket;
    ListenBucketNotification => "s3:ListenBucketNotification", Bucket;
    GetObject => "s3:GetObject", Object;
    GetObjectVersion => "s3:GetObjectVersion", Object;
    GetObjectAttributes => "s3:GetObjectAttributes", Object;
    GetObjectVersionAttributes => "s3:GetObjectVersionAttributes", Object;
    PutObject => "s3:PutObject", Object;
    DeleteObject => "s3:DeleteObject", Object;
    DeleteObjectVersion => "s3:DeleteObjectVersion", Object;
    GetObjectAcl => "s3:GetObjectAcl", Object;
    PutObjectAcl => "s3:PutObjectAcl", Object;
    GetObjectTagging => "s3:GetObjectTagging", Object;
    PutObjectTagging => "s3:PutObjectTagging", Object;
    DeleteObjectTagging => "s3:DeleteObjectTagging", Object;
    GetObjectVersionTagging => "s3:GetObjectVersionTagging", Object;
    PutObjectVersionTagging => "s3:PutObjectVersionTagging", Object;
    DeleteObjectVersionTagging => "s3:DeleteObjectVersionTagging", Object;
    AbortMultipartUpload => "s3:AbortMultipartUpload", Object;
    ListMultipartUploadParts => "s3:ListMultipartUploadParts", Object;
    RestoreObject => "s3:RestoreObject", Object;
    GetObjectRetention => "s3:GetObjectRetention", Object;
    PutObjectRetention => "s3:PutObjectRetention", Object;
    GetObjectLegalHold => "s3:GetObjectLegalHold", Object;
    PutObjectLegalHold => "s3:PutObjectLegalHold", Object;
    BypassGovernanceRetention => "s3:BypassGovernanceRetention", Object;
}

/// The sub-resource of `GET /bucket?<name>` for a configuration Anode answers as absent, and
/// what it needs (see [`Action::for_operation`]).
fn config_get_action(sub: &str) -> Option<Action> {
    Some(match sub {
        "policy" => Action::GetBucketPolicy,
        "policyStatus" => Action::GetBucketPolicyStatus,
        "publicAccessBlock" => Action::GetBucketPublicAccessBlock,
        "ownershipControls" => Action::GetBucketOwnershipControls,
        "lifecycle" => Action::GetLifecycleConfiguration,
        "cors" => Action::GetBucketCors,
        "tagging" => Action::GetBucketTagging,
        "website" => Action::GetBucketWebsite,
        "encryption" => Action::GetEncryptionConfiguration,
        "object-lock" => Action::GetBucketObjectLockConfiguration,
        "replication" => Action::GetReplicationConfiguration,
        "notification" => Action::GetBucketNotification,
        "versioning" => Action::GetBucketVersioning,
        "location" => Action::GetBucketLocation,
        _ => return None,
    })
}

impl Action {
    /// The action named exactly `name` (IAM names are case-insensitive: `s3:getobject` is
    /// `s3:GetObject`).
    pub fn from_iam_name(name: &str) -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.iam_name().eq_ignore_ascii_case(name))
    }

    /// Every action a policy pattern (`s3:Get*`, `*`, `s3:GetObject`) matches, case folded.
    pub fn matching(pattern: &str) -> Vec<Action> {
        let p = pattern.to_ascii_lowercase();
        Action::ALL
            .iter()
            .copied()
            .filter(|a| glob::matches(&p, &a.iam_name().to_ascii_lowercase()))
            .collect()
    }

    /// The action each S3 operation of the gateway needs, by the operation's name in the S3
    /// API reference (`GetObject`, `ListObjectsV2`, ...; `sub` is the sub-resource for
    /// `GetBucketConfig`-style requests, `acl_of_object` picks the object form of `GetAcl` /
    /// `PutAcl`). Operations that need two checks are listed in docs/security.md
    /// ("Authorization"): `CopyObject` and `UploadPartCopy` also need `s3:GetObject` on the
    /// source, `DeleteObjects` needs `s3:DeleteObject` on every key. `None` for a name this
    /// table does not know (the gateway's table test covers its every operation).
    pub fn for_operation(op: &str, sub: Option<&str>, acl_of_object: bool) -> Option<Action> {
        Some(match op {
            "ListBuckets" => Action::ListAllMyBuckets,
            "CreateBucket" => Action::CreateBucket,
            "DeleteBucket" => Action::DeleteBucket,
            "HeadBucket" | "ListObjects" | "ListObjectsV2" => Action::ListBucket,
            "GetBucketLocation" => Action::GetBucketLocation,
            "GetBucketVersioning" => Action::GetBucketVersioning,
            "PutBucketVersioning" => Action::PutBucketVersioning,
            "GetObjectLockConfiguration" => Action::GetBucketObjectLockConfiguration,
            "PutObjectLockConfiguration" => Action::PutBucketObjectLockConfiguration,
            "GetBucketLifecycleConfiguration" => Action::GetLifecycleConfiguration,
            "GetBucketCors" => Action::GetBucketCors,
            "PutBucketCors" | "DeleteBucketCors" => Action::PutBucketCors,
            "GetBucketNotificationConfiguration" => Action::GetBucketNotification,
            "PutBucketNotificationConfiguration" => Action::PutBucketNotification,
            "ListenBucketNotification" => Action::ListenBucketNotification,
            "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
                Action::PutLifecycleConfiguration
            }
            "GetObjectRetention" => Action::GetObjectRetention,
            "PutObjectRetention" => Action::PutObjectRetention,
            "GetObjectLegalHold" => Action::GetObjectLegalHold,
            "PutObjectLegalHold" => Action::PutObjectLegalHold,
            "ListObjectVersions" => Action::ListBucketVersions,
            "ListMultipartUploads" => Action::ListBucketMultipartUploads,
            "GetAcl" | "GetBucketAcl" | "GetObjectAcl" if acl_of_object || op == "GetObjectAcl" => {
                Action::GetObjectAcl
            }
            "GetAcl" | "GetBucketAcl" => Action::GetBucketAcl,
            "PutAcl" | "PutBucketAcl" | "PutObjectAcl" if acl_of_object || op == "PutObjectAcl" => {
                Action::PutObjectAcl
            }
            "PutAcl" | "PutBucketAcl" => Action::PutBucketAcl,
            "GetBucketPolicy" => Action::GetBucketPolicy,
            "PutBucketPolicy" => Action::PutBucketPolicy,
            "DeleteBucketPolicy" => Action::DeleteBucketPolicy,
            "GetBucketPolicyStatus" => Action::GetBucketPolicyStatus,
            "GetPublicAccessBlock" => Action::GetBucketPublicAccessBlock,
            "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
                Action::PutBucketPublicAccessBlock
            }
            "GetBucketOwnershipControls" => Action::GetBucketOwnershipControls,
            "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
                Action::PutBucketOwnershipControls
            }
            "GetBucketConfig" => config_get_action(sub?)?,
            "GetBucketTagging" => Action::GetBucketTagging,
            // S3 has no s3:DeleteBucketTagging: deleting the tag set needs s3:PutBucketTagging.
            "PutBucketTagging" | "DeleteBucketTagging" => Action::PutBucketTagging,
            "GetObjectTagging" => Action::GetObjectTagging,
            "GetObjectAttributes" => Action::GetObjectAttributes,
            "PutObjectTagging" => Action::PutObjectTagging,
            "DeleteObjectTagging" => Action::DeleteObjectTagging,
            "GetObject" | "HeadObject" => Action::GetObject,
            "PutObject"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload" => Action::PutObject,
            "DeleteObject" | "DeleteObjects" => Action::DeleteObject,
            "AbortMultipartUpload" => Action::AbortMultipartUpload,
            "ListParts" => Action::ListMultipartUploadParts,
            _ => return None,
        })
    }

    /// Whether the action manages the bucket policy: the bucket owner and admins may always
    /// do these, whatever the policy denies, so nobody locks a bucket for good (S3 grants the
    /// same to the owning account's root user).
    pub fn is_policy_management(self) -> bool {
        matches!(
            self,
            Action::GetBucketPolicy | Action::PutBucketPolicy | Action::DeleteBucketPolicy
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_iam_name(a.iam_name()), Some(*a));
            assert_eq!(
                Action::from_iam_name(&a.iam_name().to_ascii_uppercase()),
                Some(*a)
            );
            assert!(a.iam_name().starts_with("s3:"));
        }
        let names: std::collections::BTreeSet<_> =
            Action::ALL.iter().map(|a| a.iam_name()).collect();
        assert_eq!(names.len(), Action::ALL.len());
    }

    #[test]
    fn wildcards_match_by_folded_name() {
        assert_eq!(Action::matching("*").len(), Action::ALL.len());
        assert_eq!(Action::matching("s3:*").len(), Action::ALL.len());
        let gets = Action::matching("S3:Get*");
        assert!(gets.contains(&Action::GetObject) && gets.contains(&Action::GetBucketAcl));
        assert!(!gets.contains(&Action::PutObject));
        assert_eq!(Action::matching("s3:*Object"), {
            let mut v: Vec<_> = Action::ALL
                .iter()
                .copied()
                .filter(|a| a.iam_name().ends_with("Object"))
                .collect();
            v.sort();
            v
        });
        assert!(Action::matching("s3:Nope*").is_empty());
        assert!(Action::matching("iam:*").is_empty());
    }

    #[test]
    fn every_gateway_operation_has_an_action() {
        // The operation names of gateway/src/router.rs `S3Op::name` and the ones it will add.
        let table = [
            ("ListBuckets", None, false, Action::ListAllMyBuckets),
            ("CreateBucket", None, false, Action::CreateBucket),
            ("DeleteBucket", None, false, Action::DeleteBucket),
            ("HeadBucket", None, false, Action::ListBucket),
            ("GetBucketLocation", None, false, Action::GetBucketLocation),
            (
                "GetBucketVersioning",
                None,
                false,
                Action::GetBucketVersioning,
            ),
            ("GetAcl", None, false, Action::GetBucketAcl),
            ("GetAcl", None, true, Action::GetObjectAcl),
            ("PutAcl", None, false, Action::PutBucketAcl),
            ("PutAcl", None, true, Action::PutObjectAcl),
            ("GetObjectTagging", None, false, Action::GetObjectTagging),
            (
                "GetBucketConfig",
                Some("policy"),
                false,
                Action::GetBucketPolicy,
            ),
            (
                "GetBucketConfig",
                Some("cors"),
                false,
                Action::GetBucketCors,
            ),
            ("ListObjects", None, false, Action::ListBucket),
            ("ListObjectsV2", None, false, Action::ListBucket),
            (
                "ListObjectVersions",
                None,
                false,
                Action::ListBucketVersions,
            ),
            (
                "ListMultipartUploads",
                None,
                false,
                Action::ListBucketMultipartUploads,
            ),
            ("DeleteObjects", None, false, Action::DeleteObject),
            ("PutObject", None, false, Action::PutObject),
            ("CopyObject", None, false, Action::PutObject),
            ("GetObject", None, false, Action::GetObject),
            ("HeadObject", None, false, Action::GetObject),
            ("DeleteObject", None, false, Action::DeleteObject),
            ("CreateMultipartUpload", None, false, Action::PutObject),
            ("UploadPart", None, false, Action::PutObject),
            ("UploadPartCopy", None, false, Action::PutObject),
            ("CompleteMultipartUpload", None, false, Action::PutObject),
            (
                "AbortMultipartUpload",
                None,
                false,
                Action::AbortMultipartUpload,
            ),
            ("ListParts", None, false, Action::ListMultipartUploadParts),
            ("GetBucketPolicy", None, false, Action::GetBucketPolicy),
            ("PutBucketPolicy", None, false, Action::PutBucketPolicy),
            (
                "DeleteBucketPolicy",
                None,
                false,
                Action::DeleteBucketPolicy,
            ),
            (
                "GetBucketPolicyStatus",
                None,
                false,
                Action::GetBucketPolicyStatus,
            ),
        ];
        for (op, sub, obj, want) in table {
            assert_eq!(
                Action::for_operation(op, sub, obj),
                Some(want),
                "{op} {sub:?}"
            );
        }
        assert_eq!(Action::for_operation("Frobnicate", None, false), None);
        assert_eq!(
            Action::for_operation("GetBucketConfig", Some("x"), false),
            None
        );
    }
}
