//! Who a request acts as ([`Principal`]) and whether it may do what it asks ([`check`]).
//!
//! The one place a decision is taken: [`crate::server`] resolves the principal from the key
//! that signed the request (header or presigned URL alike: a presigned URL acts as its
//! signing key's user; an unsigned request is [`Principal::anonymous`]), routes the request,
//! and calls [`check`] for every bucket the operation touches (the target, and the source of
//! a copy) before any handler runs. DeleteObjects also checks each key it deletes
//! ([`Authorizer`], the same function).
//!
//! [`check`] is [`anode_meta::authz::authorize`] (the pure model: explicit deny, then admin,
//! owner, bucket policy, ACL grants, else deny; see its module docs and docs/security.md)
//! fed with what the gateway knows: the principal, the action of the S3 operation, the ARN
//! of the bucket or object, the request context (source address, TLS, `prefix`), and the
//! bucket's cached owner and access configuration ([`crate::bucket_cache`]).

use std::net::IpAddr;
use std::sync::Arc;

use anode_meta::authz::{
    canonical_id, Acl, Action, BucketView, Context, Decision, DenyReason,
    Principal as MetaPrincipal, Resource as MetaResource,
};

use crate::bucket_cache::BucketInfo;

/// The identity a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The access key that signed the request.
    pub access_key: String,
    /// The key's user; empty for an administrator key (a key without a user).
    pub user: String,
    /// An administrator: a key without a user, or a key of a user with the admin flag.
    pub admin: bool,
}

impl Principal {
    /// The principal of `key`, whose user record (when it names one) is `user`. A key without
    /// a user is an administrator key. A key naming a user whose record is missing (the master
    /// refuses to delete a user that has keys, so this is a broken state) acts as that user
    /// without the admin flag: never more than the key names.
    pub fn of_key(key: &anode_client::AccessKey, user: Option<&anode_client::User>) -> Principal {
        if key.user.is_empty() {
            return Principal {
                access_key: key.access_key.clone(),
                user: String::new(),
                admin: true,
            };
        }
        Principal {
            access_key: key.access_key.clone(),
            user: key.user.clone(),
            admin: user.is_some_and(|u| u.name == key.user && u.admin),
        }
    }

    /// An unsigned request.
    pub fn anonymous() -> Principal {
        Principal {
            access_key: String::new(),
            user: String::new(),
            admin: false,
        }
    }

    /// Whether the request was unsigned.
    pub fn is_anonymous(&self) -> bool {
        self.access_key.is_empty()
    }

    /// The canonical id of the principal in ACLs and `Owner` elements: [`canonical_id`] of
    /// the user name (every administrator key without a user shares the id of the name "").
    pub fn canonical_id(&self) -> String {
        canonical_id(&self.user)
    }

    /// The principal as the authorization model sees it.
    pub fn meta(&self) -> MetaPrincipal {
        if self.is_anonymous() {
            return MetaPrincipal::Anonymous;
        }
        MetaPrincipal::User {
            name: self.user.clone(),
            admin: self.admin,
            canonical_id: self.canonical_id(),
        }
    }

    /// The display name shown as `Owner` (ListBuckets, listings, ACLs): the user name, or the
    /// access key for an administrator key.
    pub fn owner_id(&self) -> &str {
        if self.is_anonymous() {
            "anonymous"
        } else if self.user.is_empty() {
            &self.access_key
        } else {
            &self.user
        }
    }

    /// Does this principal own a bucket owned by `owner_user` ("" = the administrators)?
    pub fn owns(&self, owner_user: &str) -> bool {
        if self.is_anonymous() {
            false
        } else if owner_user.is_empty() {
            self.admin
        } else {
            self.user == owner_user
        }
    }
}

/// The facts of the request that policy conditions test.
pub fn context(source_ip: Option<IpAddr>, secure: bool, prefix: Option<&str>) -> Context {
    Context {
        source_ip,
        secure_transport: secure,
        prefix: prefix.map(str::to_string),
        existing_object_tags: None,
        request_object_tags: None,
    }
}

/// `ctx` with the tags a write gives its object (`x-amz-tagging`, for
/// `s3:RequestObjectTag/<key>`); unchanged when it gives none or they do not parse (the
/// handler refuses those).
pub fn with_request_tags(ctx: Context, headers: &http::HeaderMap) -> Context {
    if !headers.contains_key("x-amz-tagging") {
        return ctx;
    }
    match crate::tagging::tags_from_headers(headers) {
        Ok(tags) => Context {
            request_object_tags: Some(tags.into_iter().map(|t| (t.key, t.value)).collect()),
            ..ctx
        },
        Err(_) => ctx,
    }
}

/// Whether the bucket's policy tests `s3:ExistingObjectTag/<key>`: only then does an object
/// request read the object's tags before it is decided ([`with_object_tags`]).
pub fn policy_reads_object_tags(bucket: &BucketInfo) -> bool {
    bucket
        .record
        .policy
        .as_deref()
        .is_some_and(|p| p.to_ascii_lowercase().contains("s3:existingobjecttag/"))
}

/// `ctx` with the addressed object's tags (`s3:ExistingObjectTag/<key>`; no object: none).
pub fn with_object_tags(ctx: &Context, tags: &[anode_client::Tag]) -> Context {
    Context {
        existing_object_tags: Some(
            tags.iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        ),
        ..ctx.clone()
    }
}

/// May `p` do `action` on `key` (or the bucket itself) of `bucket`, a bucket that exists
/// (`Some`, with its owner and access configuration) or not (`None`: any signed user goes on
/// so the handler answers `NoSuchBucket`; anonymous is refused)? `object_acl` is the
/// addressed object's ACL when the caller looked it up. Pure.
pub fn check(
    p: &Principal,
    action: Action,
    bucket_name: &str,
    key: Option<&str>,
    ctx: &Context,
    bucket: Option<&BucketInfo>,
    object_acl: Option<&Acl>,
) -> Decision {
    let resource = MetaResource {
        bucket: bucket_name.to_string(),
        key: key.map(str::to_string),
    };
    let view = bucket.map(|b| BucketView {
        owner: &b.config.owner_user,
        access: &b.access,
        object_acl,
    });
    anode_meta::authz::authorize(&p.meta(), action, &resource, ctx, view.as_ref())
}

/// Whether a denial could turn into an allow once the object's own ACL is known: the
/// action is an object action on an existing key and the bucket honours ACLs. (A policy's
/// explicit deny never turns.)
pub fn object_acl_may_allow(decision: &Decision, action: Action, bucket: &BucketInfo) -> bool {
    matches!(decision, Decision::Deny(DenyReason::Implicit))
        && bucket.access.object_ownership.acls_enabled()
        && anode_meta::authz::acl::scope_of(action)
            == Some(anode_meta::authz::acl::AclScope::Object)
}

/// [`check`] for the handlers that decide per key after the request-level check
/// (DeleteObjects: `s3:DeleteObject` on every key).
pub struct Authorizer<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// The request's context.
    pub ctx: &'a Context,
    /// The bucket the request addresses, when it exists.
    pub bucket: Option<Arc<BucketInfo>>,
}

impl Authorizer<'_> {
    /// May the principal do `action` on `key` of the request's bucket `bucket_name`?
    pub fn allows(&self, action: Action, bucket_name: &str, key: &str) -> Decision {
        check(
            self.principal,
            action,
            bucket_name,
            Some(key),
            self.ctx,
            self.bucket.as_deref(),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_client::BucketConfig;
    use anode_meta::authz::{BucketAccessRecord, CannedAcl};

    fn user(name: &str, admin: bool) -> Principal {
        Principal {
            access_key: format!("AK_{name}"),
            user: name.into(),
            admin,
        }
    }

    fn bucket(owner: &str, edit: impl FnOnce(&mut BucketAccessRecord)) -> BucketInfo {
        let mut rec = BucketAccessRecord::new_bucket(&canonical_id(owner), CannedAcl::Private);
        edit(&mut rec);
        let access = anode_meta::authz::BucketAccess::from_record(&rec, "b").unwrap();
        BucketInfo {
            config: BucketConfig {
                name: "b".into(),
                owner_user: owner.into(),
                ..Default::default()
            },
            record: rec,
            access,
        }
    }

    #[test]
    fn existing_object_tags_decide_when_the_policy_tests_them() {
        let bob = user("bob", false);
        let by_tag = bucket("alice", |r| {
            r.policy = Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
                "Condition":{"StringEquals":{"s3:ExistingObjectTag/security":"public"}}}]}"#
                    .into(),
            )
        });
        assert!(policy_reads_object_tags(&by_tag));
        assert!(!policy_reads_object_tags(&bucket("alice", |_| {})));
        let ctx = context(None, false, None);
        let tag = |k: &str, v: &str| anode_client::Tag {
            key: k.into(),
            value: v.into(),
        };
        let get = |tags: &[anode_client::Tag]| {
            let c = with_object_tags(&ctx, tags);
            check(
                &bob,
                Action::GetObject,
                "b",
                Some("k"),
                &c,
                Some(&by_tag),
                None,
            )
            .is_allowed()
        };
        assert!(get(&[tag("security", "public"), tag("foo", "bar")]));
        assert!(!get(&[tag("security", "private")]));
        assert!(!get(&[tag("security1", "public")]));
        assert!(!get(&[]));
    }

    #[test]
    fn request_object_tags_come_from_x_amz_tagging() {
        let bob = user("bob", false);
        let by_tag = bucket("alice", |r| {
            r.policy = Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
                "Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
                "Condition":{"StringEquals":{"s3:RequestObjectTag/security":"public"}}}]}"#
                    .into(),
            )
        });
        let put = |tagging: Option<&str>| {
            let mut h = http::HeaderMap::new();
            if let Some(t) = tagging {
                h.insert("x-amz-tagging", t.parse().unwrap());
            }
            let c = with_request_tags(context(None, false, None), &h);
            check(
                &bob,
                Action::PutObject,
                "b",
                Some("k"),
                &c,
                Some(&by_tag),
                None,
            )
            .is_allowed()
        };
        assert!(put(Some("security=public&x=1")));
        assert!(!put(Some("security=private")));
        assert!(!put(None));
        assert!(
            !put(Some("security=public&security=x")),
            "undecodable: no tags"
        );
    }

    #[test]
    fn principals_of_keys() {
        let key = |ak: &str, user: &str| anode_client::AccessKey {
            access_key: ak.into(),
            user: user.into(),
            ..Default::default()
        };
        let legacy = Principal::of_key(&key("AKLEGACY", ""), None);
        assert!(legacy.admin && !legacy.is_anonymous());
        assert_eq!(legacy.owner_id(), "AKLEGACY");
        // A key naming a user without a record is that user, never an admin.
        let orphan = Principal::of_key(&key("AKORPHAN", "ghost"), None);
        assert_eq!((orphan.user.as_str(), orphan.admin), ("ghost", false));
        let admin_user = anode_client::User {
            name: "root".into(),
            admin: true,
            ..Default::default()
        };
        assert!(Principal::of_key(&key("AKROOT", "root"), Some(&admin_user)).admin);
        assert!(!Principal::of_key(&key("AKX", "other"), Some(&admin_user)).admin);
        let anon = Principal::anonymous();
        assert!(anon.is_anonymous() && !anon.owns("") && !anon.owns("alice"));
        assert_eq!(anon.meta(), MetaPrincipal::Anonymous);
        assert_eq!(anon.owner_id(), "anonymous");
        assert_eq!(user("alice", false).canonical_id(), canonical_id("alice"));
    }

    #[test]
    fn owners_admins_policies_acls_and_anonymous() {
        let alice = user("alice", false);
        let bob = user("bob", false);
        let root = user("root", true);
        let anon = Principal::anonymous();
        let private = bucket("alice", |_| {});
        let public_read = bucket("alice", |r| {
            r.acl = CannedAcl::PublicRead.expand(&canonical_id("alice"), &canonical_id("alice"))
        });
        let bob_reads = bucket("alice", |r| {
            r.policy = Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"AWS":["arn:aws:iam::anode:user/bob"]},
                "Action":["s3:GetObject","s3:ListBucket"],
                "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#
                    .into(),
            )
        });
        let deny_all = bucket("alice", |r| {
            r.policy = Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
                "Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#
                    .into(),
            )
        });
        let ctx = context(None, false, None);
        let get = Action::GetObject;
        let put = Action::PutObject;
        let k = Some("k");
        let table: &[(&Principal, Action, &BucketInfo, bool)] = &[
            (&alice, get, &private, true),
            (&alice, put, &private, true),
            (&bob, get, &private, false),
            (&bob, put, &private, false),
            (&root, put, &private, true),
            (&anon, get, &private, false),
            (&anon, get, &public_read, false), // READ on a bucket is ListBucket, not GetObject
            (&anon, Action::ListBucket, &public_read, true),
            (&anon, put, &public_read, false),
            (&bob, get, &bob_reads, true),
            (&bob, Action::ListBucket, &bob_reads, true),
            (&bob, put, &bob_reads, false),
            (&bob, Action::DeleteObject, &bob_reads, false),
            (&anon, get, &bob_reads, false),
            (&alice, get, &deny_all, false),
            (&root, get, &deny_all, false),
            (&alice, Action::DeleteBucketPolicy, &deny_all, true),
            (&root, Action::PutBucketPolicy, &deny_all, true),
            (&bob, Action::DeleteBucketPolicy, &deny_all, false),
        ];
        for (p, action, b, allowed) in table {
            let key = if matches!(
                anode_meta::authz::acl::scope_of(*action),
                Some(anode_meta::authz::acl::AclScope::Object)
            ) || *action == get
                || *action == put
            {
                k
            } else {
                None
            };
            let d = check(p, *action, "b", key, &ctx, Some(b), None);
            assert_eq!(d.is_allowed(), *allowed, "{p:?} {action:?}: {d}");
        }
        // A missing bucket: signed requests go on (the handler answers NoSuchBucket).
        assert!(check(&bob, get, "nope", k, &ctx, None, None).is_allowed());
        assert!(!check(&anon, get, "nope", k, &ctx, None, None).is_allowed());
        // The object's ACL is consulted when given.
        let obj_acl = CannedAcl::PublicRead.expand(&canonical_id("alice"), &canonical_id("alice"));
        let d = check(&anon, get, "b", k, &ctx, Some(&private), None);
        assert!(object_acl_may_allow(&d, get, &private));
        assert!(check(&anon, get, "b", k, &ctx, Some(&private), Some(&obj_acl)).is_allowed());
        let d = check(&alice, get, "b", k, &ctx, Some(&deny_all), Some(&obj_acl));
        assert!(!d.is_allowed() && !object_acl_may_allow(&d, get, &deny_all));
        // Per-key checks through the Authorizer.
        let a = Authorizer {
            principal: &bob,
            ctx: &ctx,
            bucket: Some(Arc::new(bob_reads.clone())),
        };
        assert!(!a.allows(Action::DeleteObject, "b", "k").is_allowed());
        assert!(a.allows(Action::GetObject, "b", "k").is_allowed());
    }
}
