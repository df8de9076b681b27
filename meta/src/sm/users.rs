//! Users, bucket and user usage, and quotas (issue 19 part A).
//!
//! | key | value |
//! |---|---|
//! | `i/<user name>` | `User` |
//! | `x/usage/bo/<bucket>`, `x/usage/bb/<bucket>` | live objects / bytes of a bucket (u64be) |
//! | `x/usage/uo/<user>`, `x/usage/ub/<user>` | live objects / bytes over a user's buckets |
//!
//! **Usage is exact and kept in the same batch as the write.** Every change of a bucket's live
//! objects (`replace_object`, `delete_objects`) moves its counters and, when a user owns the
//! bucket, that user's counters, in the command that changes the objects. Quotas are checked
//! there too, at apply time, so with raft ordering all writes no two gateways can both pass
//! the last byte: the write that would cross a quota is refused (`QuotaExceeded`) and, like
//! every refused command, leaves nothing behind.
//!
//! **Migration.** Stores from before users have buckets without counters. A bucket's counters
//! exist iff `x/usage/bo/<bucket>` exists; a write to a bucket without them first computes
//! them from the bucket's objects (one scan of that bucket, once: a pure function of the state,
//! so every member computes the same). Every bucket created since has them from its creation.
//! Reads ([`bucket_usage`]) of a bucket without counters scan it.
//!
//! Keys without a user (`AccessKey.user` empty: made before users existed, or without
//! `--user`) are administrator keys; buckets with an empty `owner_user` are owned by the
//! administrators. Old records need no rewrite: the empty fields mean exactly that.

use anode_proto::*;
use prost::Message;

use crate::kv::{KvRead, Overlay};
use crate::validate;

use super::records::{get_msg, scan_msgs};
use super::{
    access_key, bucket_key, get_bucket, get_key, get_u64, list_buckets, list_keys, object_prefix,
    prefix_end, Res, StateError,
};

pub(crate) fn user_key(name: &str) -> Vec<u8> {
    [b"i/", name.as_bytes()].concat()
}

fn counter_key(kind: &[u8; 2], name: &str) -> Vec<u8> {
    [b"x/usage/".as_slice(), kind, b"/", name.as_bytes()].concat()
}

fn bucket_objects_key(bucket: &str) -> Vec<u8> {
    counter_key(b"bo", bucket)
}
fn bucket_bytes_key(bucket: &str) -> Vec<u8> {
    counter_key(b"bb", bucket)
}
fn user_objects_key(user: &str) -> Vec<u8> {
    counter_key(b"uo", user)
}
fn user_bytes_key(user: &str) -> Vec<u8> {
    counter_key(b"ub", user)
}

fn put_u64(o: &mut Overlay<'_>, key: Vec<u8>, v: u64) {
    o.put(key, v.to_be_bytes().to_vec());
}

// ---- queries -------------------------------------------------------------------------------

/// A user.
pub fn get_user(kv: &dyn KvRead, name: &str) -> Option<User> {
    get_msg(kv, &user_key(name))
}

/// All users in name order.
pub fn list_users(kv: &dyn KvRead) -> Vec<User> {
    scan_msgs(kv, b"i/", 100_000)
}

/// Live objects and bytes of a bucket: its counters, or (a bucket from before counters, not
/// written since) the sum over its objects.
pub fn bucket_usage(kv: &dyn KvRead, bucket: &str) -> Usage {
    match kv.get(&bucket_objects_key(bucket)) {
        Some(_) => Usage {
            objects: get_u64(kv, &bucket_objects_key(bucket)),
            bytes: get_u64(kv, &bucket_bytes_key(bucket)),
        },
        None => scan_usage(kv, bucket),
    }
}

/// A bucket's counters, without scanning a bucket that has none yet (`None`).
pub fn tracked_bucket_usage(kv: &dyn KvRead, bucket: &str) -> Option<Usage> {
    kv.get(&bucket_objects_key(bucket))
        .map(|_| bucket_usage(kv, bucket))
}

/// Live objects and bytes over the buckets `user` owns.
pub fn user_usage(kv: &dyn KvRead, user: &str) -> Usage {
    Usage {
        objects: get_u64(kv, &user_objects_key(user)),
        bytes: get_u64(kv, &user_bytes_key(user)),
    }
}

/// The sum over a bucket's objects (a scan).
fn scan_usage(kv: &dyn KvRead, bucket: &str) -> Usage {
    let prefix = object_prefix(bucket);
    let vprefix = super::versions::versions_prefix(bucket);
    let mut u = Usage::default();
    let versions = kv.scan(&vprefix, prefix_end(&vprefix).as_deref(), usize::MAX);
    for (k, v) in kv
        .scan(&prefix, prefix_end(&prefix).as_deref(), usize::MAX)
        .into_iter()
        .chain(versions)
    {
        let m: Manifest = super::records::must_decode(&k, &v);
        if m.delete_marker {
            continue;
        }
        u.objects += 1;
        u.bytes += m.size;
    }
    u
}

/// Does the write that changes usage `u` by (`d_objects`, `d_bytes`) stay within the quota
/// (`0` = no limit)? Only growth is checked: a delete or a shrinking overwrite is always
/// allowed, even where a lowered quota is already exceeded.
pub fn within_quota(
    u: &Usage,
    d_objects: i64,
    d_bytes: i64,
    quota_objects: u64,
    quota_bytes: u64,
) -> bool {
    let over = |cur: u64, d: i64, quota: u64| {
        d > 0 && quota > 0 && cur.saturating_add(d.unsigned_abs()) > quota
    };
    !over(u.objects, d_objects, quota_objects) && !over(u.bytes, d_bytes, quota_bytes)
}

// ---- usage bookkeeping ---------------------------------------------------------------------

/// Make sure bucket `name` (whose config is `cfg`) has counters (the migration step, see the
/// module docs).
pub(super) fn ensure_tracked(o: &mut Overlay<'_>, name: &str, cfg: &BucketConfig) {
    if o.get(&bucket_objects_key(name)).is_some() {
        return;
    }
    let u = scan_usage(o, name);
    put_u64(o, bucket_objects_key(name), u.objects);
    put_u64(o, bucket_bytes_key(name), u.bytes);
    if !cfg.owner_user.is_empty() {
        add(o, &user_objects_key(&cfg.owner_user), u.objects as i64);
        add(o, &user_bytes_key(&cfg.owner_user), u.bytes as i64);
    }
}

fn add(o: &mut Overlay<'_>, key: &[u8], delta: i64) {
    let cur = get_u64(o, key);
    let next = cur as i128 + delta as i128;
    // A counter going below zero means the state is already wrong: stop (as refcounts do).
    assert!(
        next >= 0,
        "usage counter {key:?} underflow: {cur} {delta:+}"
    );
    put_u64(o, key.to_vec(), next as u64);
}

/// Change `bucket`'s live usage (and its owner's) by (`d_objects`, `d_bytes`), refusing with
/// `QuotaExceeded` a growth past the bucket's or the owner's quota. Nothing is written when it
/// refuses (and the caller's whole command is dropped).
pub(super) fn charge(
    o: &mut Overlay<'_>,
    bucket: &str,
    d_objects: i64,
    d_bytes: i64,
) -> Result<(), StateError> {
    let cfg = get_bucket(o, bucket).ok_or_else(|| StateError::NoSuchBucket(bucket.into()))?;
    ensure_tracked(o, bucket, &cfg);
    let u = bucket_usage(o, bucket);
    if !within_quota(&u, d_objects, d_bytes, cfg.quota_objects, cfg.quota_bytes) {
        return Err(StateError::QuotaExceeded(format!("bucket {bucket}")));
    }
    let owner = (!cfg.owner_user.is_empty())
        .then(|| get_user(o, &cfg.owner_user))
        .flatten();
    if let Some(user) = &owner {
        let uu = user_usage(o, &user.name);
        if !within_quota(
            &uu,
            d_objects,
            d_bytes,
            user.quota_objects,
            user.quota_bytes,
        ) {
            return Err(StateError::QuotaExceeded(format!("user {}", user.name)));
        }
    }
    add(o, &bucket_objects_key(bucket), d_objects);
    add(o, &bucket_bytes_key(bucket), d_bytes);
    if !cfg.owner_user.is_empty() {
        add(o, &user_objects_key(&cfg.owner_user), d_objects);
        add(o, &user_bytes_key(&cfg.owner_user), d_bytes);
    }
    Ok(())
}

/// A new bucket starts with zero counters.
pub(super) fn start_bucket(o: &mut Overlay<'_>, bucket: &str) {
    put_u64(o, bucket_objects_key(bucket), 0);
    put_u64(o, bucket_bytes_key(bucket), 0);
}

/// A deleted (empty) bucket's counters go with it.
pub(super) fn drop_bucket(o: &mut Overlay<'_>, bucket: &str) {
    o.delete(bucket_objects_key(bucket));
    o.delete(bucket_bytes_key(bucket));
}

// ---- commands ------------------------------------------------------------------------------

pub(super) fn create_user(o: &mut Overlay<'_>, now: u64, c: &CreateUserCmd) -> Res {
    let u = c
        .user
        .clone()
        .ok_or_else(|| StateError::BadCommand("no user".into()))?;
    validate::user_name(&u.name)?;
    if get_user(o, &u.name).is_some() {
        return Err(StateError::UserExists(u.name));
    }
    let u = User {
        version: RECORD_VERSION,
        created_ms: now,
        ..u
    };
    o.put(user_key(&u.name), u.encode_to_vec());
    put_u64(o, user_objects_key(&u.name), 0);
    put_u64(o, user_bytes_key(&u.name), 0);
    Ok(CommandResult::default())
}

pub(super) fn delete_user(o: &mut Overlay<'_>, name: &str) -> Res {
    get_user(o, name).ok_or_else(|| StateError::NoSuchUser(name.into()))?;
    if list_buckets(o).iter().any(|b| b.owner_user == name) {
        return Err(StateError::UserNotEmpty(format!("{name} owns buckets")));
    }
    if list_keys(o).iter().any(|k| k.user == name) {
        return Err(StateError::UserNotEmpty(format!("{name} has access keys")));
    }
    o.delete(user_key(name));
    o.delete(user_objects_key(name));
    o.delete(user_bytes_key(name));
    Ok(CommandResult::default())
}

pub(super) fn set_user_quota(o: &mut Overlay<'_>, c: &SetUserQuotaCmd) -> Res {
    let mut u = get_user(o, &c.name).ok_or_else(|| StateError::NoSuchUser(c.name.clone()))?;
    u.quota_bytes = c.quota_bytes;
    u.quota_objects = c.quota_objects;
    o.put(user_key(&c.name), u.encode_to_vec());
    Ok(CommandResult::default())
}

pub(super) fn set_bucket_quota(o: &mut Overlay<'_>, c: &SetBucketQuotaCmd) -> Res {
    let mut b = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    ensure_tracked(o, &c.name, &b);
    b.quota_bytes = c.quota_bytes;
    b.quota_objects = c.quota_objects;
    o.put(bucket_key(&c.name), b.encode_to_vec());
    Ok(CommandResult::default())
}

pub(super) fn set_key_disabled(o: &mut Overlay<'_>, c: &SetKeyDisabledCmd) -> Res {
    let mut k = get_key(o, &c.access_key)
        .ok_or_else(|| StateError::NoSuchAccessKey(c.access_key.clone()))?;
    k.disabled = c.disabled;
    o.put(access_key(&c.access_key), k.encode_to_vec());
    Ok(CommandResult::default())
}

/// A key of a user needs the user; an administrator key (no user) needs nothing.
pub(super) fn check_key_user(o: &dyn KvRead, k: &AccessKey) -> Result<(), StateError> {
    if !k.user.is_empty() && get_user(o, &k.user).is_none() {
        return Err(StateError::NoSuchUser(k.user.clone()));
    }
    Ok(())
}

/// The owner check of CreateBucket on an existing bucket: owned by the same user (or, for
/// administrator buckets and keys, created by the same key) is `BucketAlreadyOwnedByYou`,
/// anything else `BucketAlreadyExists`.
pub(super) fn existing_bucket_error(existing: &BucketConfig, new: &BucketConfig) -> StateError {
    let same = if existing.owner_user.is_empty() && new.owner_user.is_empty() {
        existing.owner_access_key == new.owner_access_key
    } else {
        existing.owner_user == new.owner_user
    };
    if same {
        StateError::BucketAlreadyOwnedByYou(new.name.clone())
    } else {
        StateError::BucketAlreadyExists(new.name.clone())
    }
}

// ---- the full check (tests) ----------------------------------------------------------------

/// Every tracked bucket's counters equal the sum over its objects, and every user's counters
/// the sum over the buckets it owns.
pub(super) fn check_usage(kv: &dyn KvRead) -> Result<(), String> {
    let mut per_user: std::collections::BTreeMap<String, Usage> = list_users(kv)
        .into_iter()
        .map(|u| (u.name, Usage::default()))
        .collect();
    for b in list_buckets(kv) {
        let real = scan_usage(kv, &b.name);
        if kv.get(&bucket_objects_key(&b.name)).is_some() && bucket_usage(kv, &b.name) != real {
            return Err(format!(
                "bucket {} counters {:?} but objects sum to {real:?}",
                b.name,
                bucket_usage(kv, &b.name)
            ));
        }
        if !b.owner_user.is_empty() {
            let e = per_user.entry(b.owner_user.clone()).or_default();
            e.objects += real.objects;
            e.bytes += real.bytes;
        }
    }
    for (user, want) in per_user {
        let got = user_usage(kv, &user);
        if got != want {
            return Err(format!(
                "user {user} counters {got:?} but buckets sum to {want:?}"
            ));
        }
    }
    Ok(())
}
