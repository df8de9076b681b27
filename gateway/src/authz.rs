//! Who a request acts as ([`Principal`]) and whether it may do what it asks ([`authorize`]).
//!
//! The one place a decision is taken: [`crate::server`] resolves the principal from the key
//! that signed the request (header or presigned URL alike: a presigned URL acts as its
//! signing key's user), routes the request, and calls [`authorize`] once for every bucket the
//! operation touches (the target, and the source of a copy) before any handler runs.
//!
//! The rule for now (issue 19 part A): the bucket's owner or an administrator may do anything
//! on a bucket; everyone else is refused (403 AccessDenied). Any authenticated principal may
//! list its buckets and create a bucket (it becomes the owner). A bucket that does not exist
//! is not refused here, so the handler answers `NoSuchBucket` as S3 does. The rule is a pure
//! function of plain data so it can later be pointed at the policy/ACL evaluation of
//! `anode_meta` without changing its callers.

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

    /// The canonical id shown as `Owner` (ListBuckets, listings, ACLs): the user name, or the
    /// access key for an administrator key.
    pub fn owner_id(&self) -> &str {
        if self.user.is_empty() {
            &self.access_key
        } else {
            &self.user
        }
    }

    /// Does this principal own a bucket owned by `owner_user` ("" = the administrators)?
    pub fn owns(&self, owner_user: &str) -> bool {
        if owner_user.is_empty() {
            self.admin
        } else {
            self.user == owner_user
        }
    }
}

/// What the request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The service: ListBuckets, CreateBucket (the new bucket is the caller's).
    Service,
    /// An existing bucket and its owning user ("" = the administrators).
    Bucket {
        /// Bucket name.
        name: &'a str,
        /// Its owner.
        owner_user: &'a str,
    },
    /// A bucket that does not exist (the handler answers `NoSuchBucket`).
    MissingBucket,
    /// A bucket whose owner was not looked up: only administrators get here (they need no
    /// lookup); anyone else is refused.
    UnresolvedBucket,
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Refuse with 403 AccessDenied; the reason goes to the log, never to the client.
    Deny(&'static str),
}

/// May `p` do `action` (the S3 operation name, [`crate::router::S3Op::name`]) on `resource`?
/// Pure; the action does not matter yet (owner or admin: everything; else nothing).
pub fn authorize(p: &Principal, action: &str, resource: Resource<'_>) -> Decision {
    let _ = action;
    if p.admin {
        return Decision::Allow;
    }
    match resource {
        Resource::Service | Resource::MissingBucket => Decision::Allow,
        Resource::Bucket { owner_user, .. } if p.owns(owner_user) => Decision::Allow,
        Resource::Bucket { .. } => Decision::Deny("not the bucket's owner"),
        Resource::UnresolvedBucket => Decision::Deny("bucket owner not resolved"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, admin: bool) -> Principal {
        Principal {
            access_key: format!("AK_{name}"),
            user: name.into(),
            admin,
        }
    }

    #[test]
    fn owner_or_admin_may_do_anything_everyone_else_nothing() {
        let alice = user("alice", false);
        let bob = user("bob", false);
        let root = user("root", true);
        let key = |ak: &str, user: &str| anode_client::AccessKey {
            access_key: ak.into(),
            user: user.into(),
            ..Default::default()
        };
        let legacy = Principal::of_key(&key("AKLEGACY", ""), None);
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
        let alices = Resource::Bucket {
            name: "a",
            owner_user: "alice",
        };
        let admins = Resource::Bucket {
            name: "x",
            owner_user: "",
        };
        let table: &[(&Principal, Resource<'_>, bool)] = &[
            (&alice, alices, true),
            (&bob, alices, false),
            (&root, alices, true),
            (&legacy, alices, true),
            (&alice, admins, false),
            (&root, admins, true),
            (&legacy, admins, true),
            (&bob, Resource::Service, true),
            (&bob, Resource::MissingBucket, true),
            (&bob, Resource::UnresolvedBucket, false),
            (&root, Resource::UnresolvedBucket, true),
        ];
        for action in ["GetObject", "PutObject", "DeleteBucket", "ListObjects"] {
            for (p, r, allowed) in table {
                let d = authorize(p, action, *r);
                assert_eq!(
                    d == Decision::Allow,
                    *allowed,
                    "{p:?} {action} {r:?}: {d:?}"
                );
            }
        }
        assert!(legacy.admin);
        assert_eq!(legacy.owner_id(), "AKLEGACY");
        assert_eq!(alice.owner_id(), "alice");
    }
}
