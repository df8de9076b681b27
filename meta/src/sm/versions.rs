//! Object versions (issue 14): S3 versioning and object lock over the state machine's key
//! space.
//!
//! | key | value |
//! |---|---|
//! | `o/<bucket>\0<key>` | the **current** version, when the newest version is an object |
//! | `v/<bucket>\0<key>\0<!seq u64be>` | every other version: noncurrent objects, delete markers (newest first) |
//! | `n/<bucket>\0<key>` | u64be `seq` of the key's null version when it sits under `v/` |
//!
//! The invariant this module keeps: `o/` holds a key's newest version exactly when that
//! version is an object; everything else is under `v/`. So listing current objects reads
//! `o/` alone, as fast as before versioning, and a bucket that was never versioned has no
//! `v/` keys at all. Each version has a `seq` (see [`seq_of`]) unique within its key and
//! growing with time: `raft index << 16`, or one more than the key's newest when that is
//! higher (a restored group may restart its log below older versions). Its version id is the
//! 16 lowercase hex digits of the seq; the null version's id is `null`.
//!
//! Every version that is an object holds its chunk references and counts in the bucket's
//! usage; moving a version between `o/` and `v/` changes neither. Deleting a version for
//! good drops them (and so frees its chunks through the existing GC).

use anode_proto::*;
use prost::Message;

use super::records::{get_msg, must_decode};
use super::{get_bucket, object_key, prefix_end, StateError};
use crate::kv::{KvRead, Overlay};

/// `BucketConfig.versioning_state`: never enabled.
pub const UNVERSIONED: u32 = 0;
/// Versioning enabled.
pub const ENABLED: u32 = 1;
/// Versioning suspended.
pub const SUSPENDED: u32 = 2;
/// The version id S3 gives versions written while versioning was off or suspended.
pub const NULL_VERSION_ID: &str = "null";
/// Retention modes (`Manifest.lock_mode`, `DefaultRetention.mode`).
pub const GOVERNANCE: &str = "GOVERNANCE";
/// Retention that nobody can shorten or remove.
pub const COMPLIANCE: &str = "COMPLIANCE";
const DAY_MS: u64 = 86_400_000;

/// A bucket's versioning state (the unused pre-issue-14 flag reads as Enabled).
pub fn versioning_of(cfg: &BucketConfig) -> u32 {
    match cfg.versioning_state {
        UNVERSIONED if cfg.versioning => ENABLED,
        s => s,
    }
}

pub(crate) fn versions_prefix(bucket: &str) -> Vec<u8> {
    [b"v/", bucket.as_bytes(), b"\0"].concat()
}
pub(crate) fn key_versions_prefix(bucket: &str, key: &str) -> Vec<u8> {
    [versions_prefix(bucket).as_slice(), key.as_bytes(), b"\0"].concat()
}
fn version_key(bucket: &str, key: &str, seq: u64) -> Vec<u8> {
    [
        key_versions_prefix(bucket, key).as_slice(),
        &(!seq).to_be_bytes(),
    ]
    .concat()
}
fn null_key(bucket: &str, key: &str) -> Vec<u8> {
    [b"n/", bucket.as_bytes(), b"\0", key.as_bytes()].concat()
}
/// The order of a version among its key's versions (higher = newer).
pub fn seq_of(m: &Manifest) -> u64 {
    if m.version_seq != 0 {
        m.version_seq
    } else {
        m.object_version << 16
    }
}

/// The S3 version id of `m` (`null` for the null version).
pub fn version_id_of(m: &Manifest) -> &str {
    if m.version_id.is_empty() {
        NULL_VERSION_ID
    } else {
        &m.version_id
    }
}

/// The version id of the version with `seq`.
pub fn format_version_id(seq: u64) -> String {
    format!("{seq:016x}")
}

/// A version id as given by a client: `None` for `null`, the seq otherwise; anything else is
/// `InvalidArgument` (S3: "Invalid version id specified").
pub fn parse_version_id(id: &str) -> Result<Option<u64>, StateError> {
    if id == NULL_VERSION_ID {
        return Ok(None);
    }
    let ok = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match ok.then(|| u64::from_str_radix(id, 16).ok()).flatten() {
        Some(seq) if seq > 0 => Ok(Some(seq)),
        _ => Err(StateError::InvalidArgument(format!(
            "invalid version id specified: {id:?}"
        ))),
    }
}

/// Where a version is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Current,
    Versions(u64),
}

/// The key's versions stored under `v/`, newest first (at most `limit`).
pub(crate) fn stored_versions(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    limit: usize,
) -> Vec<Manifest> {
    let p = key_versions_prefix(bucket, key);
    kv.scan(&p, prefix_end(&p).as_deref(), limit)
        .into_iter()
        .map(|(k, v)| must_decode(&k, &v))
        .collect()
}

/// The newest version of a key (object or delete marker) and where it is.
fn newest(kv: &dyn KvRead, bucket: &str, key: &str) -> Option<(Manifest, Slot)> {
    if let Some(m) = get_msg::<Manifest>(kv, &object_key(bucket, key)) {
        return Some((m, Slot::Current));
    }
    stored_versions(kv, bucket, key, 1).pop().map(|m| {
        let seq = seq_of(&m);
        (m, Slot::Versions(seq))
    })
}

/// Find one version: `None` = the null version.
fn find(kv: &dyn KvRead, bucket: &str, key: &str, want: Option<u64>) -> Option<(Manifest, Slot)> {
    let cur = get_msg::<Manifest>(kv, &object_key(bucket, key));
    match want {
        None => {
            if let Some(m) = cur.filter(|m| m.version_id.is_empty()) {
                return Some((m, Slot::Current));
            }
            let seq = kv
                .get(&null_key(bucket, key))
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map(u64::from_be_bytes)?;
            let m: Manifest = get_msg(kv, &version_key(bucket, key, seq))?;
            Some((m, Slot::Versions(seq)))
        }
        Some(seq) => {
            let id = format_version_id(seq);
            if let Some(m) = cur.filter(|m| m.version_id == id) {
                return Some((m, Slot::Current));
            }
            get_msg::<Manifest>(kv, &version_key(bucket, key, seq))
                .filter(|m| m.version_id == id)
                .map(|m| (m, Slot::Versions(seq)))
        }
    }
}

/// A version of `bucket/key`: `version_id` None = the newest (a delete marker only when
/// `include_markers`; NoSuchKey otherwise), Some = that version (NoSuchVersion when there is
/// none; a delete marker is returned as such and the caller decides what it means).
pub fn get_version(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    include_markers: bool,
) -> Result<Manifest, StateError> {
    if get_bucket(kv, bucket).is_none() {
        return Err(StateError::NoSuchBucket(bucket.into()));
    }
    match version_id {
        None => match newest(kv, bucket, key) {
            Some((m, _)) if !m.delete_marker || include_markers => Ok(m),
            _ => Err(StateError::NoSuchKey(key.into())),
        },
        Some(id) => {
            let want = parse_version_id(id)?;
            match find(kv, bucket, key, want) {
                Some((m, _)) if !m.delete_marker || include_markers => Ok(m),
                Some(_) => Err(StateError::MethodNotAllowed(format!(
                    "version {id} of {key} is a delete marker"
                ))),
                None => Err(StateError::NoSuchVersion(format!("{key} version {id}"))),
            }
        }
    }
}

/// May `m` be deleted (or replaced) now? Retention and legal hold, as S3 object lock says:
/// COMPLIANCE holds against everyone until it ends, GOVERNANCE unless the caller bypasses it
/// (the gateway sets `bypass` only for a caller allowed to), a legal hold until it is lifted.
pub fn check_lock(m: &Manifest, now_ms: u64, bypass: bool) -> Result<(), StateError> {
    if m.delete_marker {
        return Ok(());
    }
    let id = version_id_of(m);
    if m.legal_hold {
        return Err(StateError::ObjectLocked(format!(
            "version {id} is under a legal hold"
        )));
    }
    if m.retain_until_ms > now_ms {
        let locked = match m.lock_mode.as_str() {
            COMPLIANCE => true,
            GOVERNANCE => !bypass,
            _ => false,
        };
        if locked {
            return Err(StateError::ObjectLocked(format!(
                "version {id} is retained ({}) until {} ms",
                m.lock_mode, m.retain_until_ms
            )));
        }
    }
    Ok(())
}

/// Write the record of `m` at `slot` (and the null index when a null version goes under
/// `v/`).
fn store(o: &mut Overlay<'_>, bucket: &str, key: &str, m: &Manifest, slot: &Slot) {
    match slot {
        Slot::Current => o.put(object_key(bucket, key), m.encode_to_vec()),
        Slot::Versions(seq) => {
            o.put(version_key(bucket, key, *seq), m.encode_to_vec());
            if m.version_id.is_empty() {
                o.put(null_key(bucket, key), seq.to_be_bytes().to_vec());
            }
        }
    }
}

/// Remove the record at `slot`.
fn unstore(o: &mut Overlay<'_>, bucket: &str, key: &str, m: &Manifest, slot: &Slot) {
    match slot {
        Slot::Current => o.delete(object_key(bucket, key)),
        Slot::Versions(seq) => {
            o.delete(version_key(bucket, key, *seq));
            if m.version_id.is_empty() {
                o.delete(null_key(bucket, key));
            }
        }
    }
}

/// Keep the invariant after a removal: when no current object is stored and the newest
/// remaining version is an object, it becomes the current one.
fn promote(o: &mut Overlay<'_>, bucket: &str, key: &str) {
    if o.get(&object_key(bucket, key)).is_some() {
        return;
    }
    if let Some(m) = stored_versions(o, bucket, key, 1).pop() {
        if !m.delete_marker {
            let seq = seq_of(&m);
            unstore(o, bucket, key, &m, &Slot::Versions(seq));
            store(o, bucket, key, &m, &Slot::Current);
        }
    }
}

/// What [`install`] did to the versions it displaced, for the caller's accounting.
pub(crate) struct Installed {
    /// A version removed for good (the previous null version, replaced in place).
    pub replaced: Option<Manifest>,
}

/// Install `m` (an object or a delete marker) as the newest version of `bucket/key`, as the
/// bucket's versioning state says: unversioned and suspended buckets replace the key's null
/// version, enabled ones keep every version. Sets `m`'s version fields. Refuses (nothing
/// written) when the version it would replace is locked. The caller accounts for `m` and for
/// the returned replaced version.
pub(crate) fn install(
    o: &mut Overlay<'_>,
    index: u64,
    now_ms: u64,
    bucket: &str,
    key: &str,
    m: &mut Manifest,
) -> Result<Installed, StateError> {
    let cfg = get_bucket(o, bucket).ok_or_else(|| StateError::NoSuchBucket(bucket.into()))?;
    let state = versioning_of(&cfg);
    let newest_seq = newest(o, bucket, key).map_or(0, |(n, _)| seq_of(&n));
    let seq = (index << 16).max(newest_seq + 1);
    // Stored only when it differs from what `seq_of` derives from the raft index, so a put
    // into an unversioned bucket writes the same bytes as before versioning existed (a member
    // of the previous release applying the same command during a rolling upgrade).
    m.version_seq = if seq == index << 16 { 0 } else { seq };
    m.object_version = index;
    m.version_id = if state == ENABLED {
        format_version_id(seq)
    } else {
        String::new()
    };
    if !m.delete_marker {
        apply_default_retention(&cfg, now_ms, m)?;
    }
    let mut replaced = None;
    if state != ENABLED {
        // The null version is replaced in place.
        if let Some((old, slot)) = find(o, bucket, key, None) {
            check_lock(&old, now_ms, false)?;
            unstore(o, bucket, key, &old, &slot);
            replaced = Some(old);
        }
    }
    // The current object (if any is left) becomes noncurrent.
    if state != UNVERSIONED {
        if let Some(cur) = get_msg::<Manifest>(o, &object_key(bucket, key)) {
            let slot = Slot::Versions(seq_of(&cur));
            unstore(o, bucket, key, &cur, &Slot::Current);
            store(o, bucket, key, &cur, &slot);
        }
    }
    let slot = if m.delete_marker {
        Slot::Versions(seq)
    } else {
        Slot::Current
    };
    store(o, bucket, key, m, &slot);
    Ok(Installed { replaced })
}

/// Retention given on the write, or the bucket's default. Retention on a bucket without
/// object lock is refused.
fn apply_default_retention(
    cfg: &BucketConfig,
    now_ms: u64,
    m: &mut Manifest,
) -> Result<(), StateError> {
    let given = !m.lock_mode.is_empty() || m.retain_until_ms != 0 || m.legal_hold;
    if !cfg.object_lock {
        if given {
            return Err(StateError::InvalidArgument(
                "the bucket has no object lock configuration".into(),
            ));
        }
        return Ok(());
    }
    check_retention_fields(&m.lock_mode, m.retain_until_ms)?;
    if m.lock_mode.is_empty() {
        if let Some(d) = cfg
            .default_retention
            .as_ref()
            .filter(|d| !d.mode.is_empty())
        {
            m.lock_mode = d.mode.clone();
            m.retain_until_ms = now_ms.saturating_add(default_retention_ms(d));
        }
    }
    Ok(())
}

/// The length of a default retention.
pub fn default_retention_ms(d: &DefaultRetention) -> u64 {
    u64::from(d.days)
        .saturating_add(u64::from(d.years).saturating_mul(365))
        .saturating_mul(DAY_MS)
}

/// A retention as written on a version: no mode and no date, or a mode with a date.
fn check_retention_fields(mode: &str, until_ms: u64) -> Result<(), StateError> {
    match (mode, until_ms) {
        ("", 0) => Ok(()),
        (GOVERNANCE | COMPLIANCE, u) if u > 0 => Ok(()),
        (GOVERNANCE | COMPLIANCE, _) => Err(StateError::InvalidArgument(
            "a retention mode needs a retain-until date".into(),
        )),
        ("", _) => Err(StateError::InvalidArgument(
            "a retain-until date needs a retention mode".into(),
        )),
        (m, _) => Err(StateError::InvalidArgument(format!(
            "unknown retention mode {m:?}"
        ))),
    }
}

/// A default retention as PutObjectLockConfiguration may set it.
pub fn check_default_retention(d: &DefaultRetention) -> Result<(), StateError> {
    match d.mode.as_str() {
        "" if d.days == 0 && d.years == 0 => Ok(()),
        GOVERNANCE | COMPLIANCE if (d.days == 0) != (d.years == 0) => {
            if d.days > 36_500 || d.years > 100 {
                return Err(StateError::InvalidArgument(
                    "default retention is at most 100 years".into(),
                ));
            }
            Ok(())
        }
        GOVERNANCE | COMPLIANCE => Err(StateError::InvalidArgument(
            "a default retention has exactly one of Days and Years, above zero".into(),
        )),
        m => Err(StateError::InvalidArgument(format!(
            "unknown retention mode {m:?}"
        ))),
    }
}

/// What one delete names: a key, a version (None: the S3 simple delete), the governance
/// bypass, and a condition.
pub(crate) struct Target<'a> {
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub bypass: bool,
    pub cond: &'a DeleteCondition,
}

/// The conditions of a conditional delete (S3's 2024 `If-Match`,
/// `x-amz-if-match-last-modified-time`, `x-amz-if-match-size`, and their DeleteObjects
/// entry forms), checked against the version the delete acts on: the named version, or the
/// newest one (a delete marker included: its etag is empty, its size 0). When there is
/// nothing to delete the delete succeeds as a no-op, as S3 answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteCondition {
    /// The ETag (quotes allowed), or `*` for any.
    pub etag: Option<String>,
    /// Last-Modified, compared in whole seconds (HTTP dates carry no more).
    pub mtime_ms: Option<u64>,
    /// The size in bytes.
    pub size: Option<u64>,
}

impl DeleteCondition {
    /// Whether no condition is given.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.mtime_ms.is_none() && self.size.is_none()
    }

    /// `PreconditionFailed` unless `m` meets every condition given.
    pub fn check(&self, m: &Manifest) -> Result<(), StateError> {
        if let Some(e) = &self.etag {
            let e = e.trim();
            if e != "*" && e.trim_matches('"') != m.etag {
                return Err(StateError::PreconditionFailed("etag does not match".into()));
            }
        }
        if self.mtime_ms.is_some_and(|t| t / 1000 != m.mtime_ms / 1000) {
            return Err(StateError::PreconditionFailed(
                "last modified time does not match".into(),
            ));
        }
        if self.size.is_some_and(|n| n != m.size) {
            return Err(StateError::PreconditionFailed("size does not match".into()));
        }
        Ok(())
    }
}

/// The outcome of deleting one entry.
pub(crate) struct Deletion {
    pub outcome: DeleteOutcome,
    /// A version removed for good (its references and usage are the caller's to drop).
    pub removed: Option<Manifest>,
}

/// Delete `bucket/key`: with `version_id`, that version for good (locks permitting); without,
/// the S3 simple delete (the current object in an unversioned bucket; a delete marker on top
/// otherwise, replacing the null version in a suspended one).
pub(crate) fn delete(
    o: &mut Overlay<'_>,
    index: u64,
    now_ms: u64,
    bucket: &str,
    t: &Target<'_>,
) -> Result<Deletion, StateError> {
    let (key, version_id, bypass) = (t.key, t.version_id, t.bypass);
    let cfg = get_bucket(o, bucket).ok_or_else(|| StateError::NoSuchBucket(bucket.into()))?;
    let mut outcome = DeleteOutcome {
        key: key.to_string(),
        ..Default::default()
    };
    if let Some(id) = version_id {
        let want = parse_version_id(id)?;
        outcome.version_id = id.to_string();
        let Some((m, slot)) = find(o, bucket, key, want) else {
            return Ok(Deletion {
                outcome,
                removed: None,
            });
        };
        t.cond.check(&m)?;
        check_lock(&m, now_ms, bypass)?;
        unstore(o, bucket, key, &m, &slot);
        promote(o, bucket, key);
        outcome.existed = true;
        outcome.delete_marker = m.delete_marker;
        let removed = (!m.delete_marker).then_some(m);
        return Ok(Deletion { outcome, removed });
    }
    if versioning_of(&cfg) == UNVERSIONED {
        let Some(m) = get_msg::<Manifest>(o, &object_key(bucket, key)) else {
            return Ok(Deletion {
                outcome,
                removed: None,
            });
        };
        t.cond.check(&m)?;
        check_lock(&m, now_ms, bypass)?;
        o.delete(object_key(bucket, key));
        outcome.existed = true;
        return Ok(Deletion {
            outcome,
            removed: Some(m),
        });
    }
    match newest(o, bucket, key) {
        Some((m, _)) => t.cond.check(&m)?,
        // A conditional delete of a key with no versions is a no-op (no delete marker).
        None if !t.cond.is_empty() => {
            return Ok(Deletion {
                outcome,
                removed: None,
            })
        }
        None => {}
    }
    let mut marker = Manifest {
        version: MANIFEST_VERSION,
        delete_marker: true,
        mtime_ms: now_ms,
        ..Default::default()
    };
    let installed = install(o, index, now_ms, bucket, key, &mut marker)?;
    outcome.existed = true;
    outcome.delete_marker = true;
    outcome.version_id = version_id_of(&marker).to_string();
    Ok(Deletion {
        outcome,
        removed: installed.replaced.filter(|m| !m.delete_marker),
    })
}

/// Change the retention and/or legal hold of one version in place (its body, etag, seq and
/// id stay). Retention rules: COMPLIANCE can only be extended; GOVERNANCE can be extended, and
/// shortened, removed or made COMPLIANCE only with `bypass`.
pub(crate) fn set_lock(
    o: &mut Overlay<'_>,
    now_ms: u64,
    c: &SetObjectLockCmd,
) -> Result<Manifest, StateError> {
    let cfg = get_bucket(o, &c.bucket).ok_or_else(|| StateError::NoSuchBucket(c.bucket.clone()))?;
    if !cfg.object_lock {
        return Err(StateError::InvalidArgument(
            "the bucket has no object lock configuration".into(),
        ));
    }
    let (mut m, slot) = match c.version_id.as_deref() {
        None => match newest(o, &c.bucket, &c.key) {
            Some((m, slot)) if !m.delete_marker => (m, slot),
            _ => return Err(StateError::NoSuchKey(c.key.clone())),
        },
        Some(id) => find(o, &c.bucket, &c.key, parse_version_id(id)?)
            .ok_or_else(|| StateError::NoSuchVersion(format!("{} version {id}", c.key)))?,
    };
    if m.delete_marker {
        return Err(StateError::MethodNotAllowed(
            "a delete marker has no retention or legal hold".into(),
        ));
    }
    if c.set_retention {
        check_retention_fields(&c.mode, c.retain_until_ms)?;
        let active = m.retain_until_ms > now_ms && !m.lock_mode.is_empty();
        if active {
            let extends = c.retain_until_ms >= m.retain_until_ms;
            // As S3 and Ceph RGW: GOVERNANCE can only be extended as GOVERNANCE; any other
            // change (shorter, removed, or made COMPLIANCE) needs the bypass.
            let allowed = match (m.lock_mode.as_str(), c.mode.as_str()) {
                (COMPLIANCE, COMPLIANCE) => extends,
                (COMPLIANCE, _) => false,
                (GOVERNANCE, GOVERNANCE) if extends => true,
                _ => c.bypass_governance,
            };
            if !allowed {
                return Err(StateError::ObjectLocked(format!(
                    "version {} is retained ({}) until {} ms; the retention can only be \
                     extended{}",
                    version_id_of(&m),
                    m.lock_mode,
                    m.retain_until_ms,
                    if m.lock_mode == GOVERNANCE {
                        " without the governance bypass"
                    } else {
                        ""
                    }
                )));
            }
        }
        m.lock_mode = c.mode.clone();
        m.retain_until_ms = c.retain_until_ms;
    }
    if c.set_legal_hold {
        m.legal_hold = c.legal_hold;
    }
    store(o, &c.bucket, &c.key, &m, &slot);
    Ok(m)
}

/// Replace the tag set of one version (absent version id: the current one; S3 tags a delete
/// marker never). Its version id, mtime and ETag stay, and so does its place among the key's
/// versions. Object lock does not stop it: S3 allows tagging retained and held versions.
pub(crate) fn set_tagging(
    o: &mut Overlay<'_>,
    c: &SetObjectTaggingCmd,
) -> Result<Manifest, StateError> {
    get_bucket(o, &c.bucket).ok_or_else(|| StateError::NoSuchBucket(c.bucket.clone()))?;
    crate::tagging::validate_object(&c.tags)?;
    let (mut m, slot) = match c.version_id.as_deref() {
        None => match newest(o, &c.bucket, &c.key) {
            Some((m, slot)) if !m.delete_marker => (m, slot),
            _ => return Err(StateError::NoSuchKey(c.key.clone())),
        },
        Some(id) => find(o, &c.bucket, &c.key, parse_version_id(id)?)
            .ok_or_else(|| StateError::NoSuchVersion(format!("{} version {id}", c.key)))?,
    };
    if m.delete_marker {
        return Err(StateError::MethodNotAllowed(
            "a delete marker has no tags".into(),
        ));
    }
    m.tags = c.tags.clone();
    store(o, &c.bucket, &c.key, &m, &slot);
    Ok(m)
}

/// Change a bucket's versioning state: Enabled or Suspended, never back to unversioned;
/// object lock keeps it Enabled.
pub(crate) fn set_versioning(
    o: &mut Overlay<'_>,
    c: &SetBucketVersioningCmd,
) -> Result<(), StateError> {
    let mut cfg = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    match c.state {
        ENABLED | SUSPENDED => {}
        s => {
            return Err(StateError::InvalidArgument(format!(
                "versioning state {s} is not Enabled (1) or Suspended (2)"
            )))
        }
    }
    if cfg.object_lock && c.state != ENABLED {
        return Err(StateError::InvalidBucketState(
            "versioning cannot be suspended on a bucket with object lock".into(),
        ));
    }
    cfg.versioning_state = c.state;
    o.put(super::bucket_key(&c.name), cfg.encode_to_vec());
    Ok(())
}

/// Turn on object lock (a versioning-enabled bucket only; it stays on) and set the default
/// retention.
pub(crate) fn set_object_lock_config(
    o: &mut Overlay<'_>,
    c: &SetBucketObjectLockCmd,
) -> Result<(), StateError> {
    let mut cfg = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    if !cfg.object_lock && versioning_of(&cfg) != ENABLED {
        return Err(StateError::InvalidBucketState(
            "object lock needs versioning enabled on the bucket".into(),
        ));
    }
    let d = c.default_retention.clone().unwrap_or_default();
    check_default_retention(&d)?;
    cfg.object_lock = true;
    cfg.versioning_state = ENABLED;
    cfg.default_retention = (!d.mode.is_empty()).then_some(d);
    o.put(super::bucket_key(&c.name), cfg.encode_to_vec());
    Ok(())
}

/// Change the version of `bucket/key` whose `object_version` is `object_version` (current or
/// noncurrent) in place with `f`; false when the key has no such version (overwritten or
/// deleted). Noncurrent versions are scanned (a key's versions are one short range).
pub(crate) fn update_by_object_version(
    o: &mut Overlay<'_>,
    bucket: &str,
    key: &str,
    object_version: u64,
    f: impl FnOnce(&mut Manifest),
) -> bool {
    let Some((mut m, slot)) = locate_object_version(o, bucket, key, object_version) else {
        return false;
    };
    f(&mut m);
    store(o, bucket, key, &m, &slot);
    true
}

/// The version (no delete marker) of `bucket/key` whose `object_version` is `object_version`.
pub(crate) fn find_by_object_version(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    object_version: u64,
) -> Option<Manifest> {
    locate_object_version(kv, bucket, key, object_version).map(|(m, _)| m)
}

fn locate_object_version(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    object_version: u64,
) -> Option<(Manifest, Slot)> {
    let found = match get_msg::<Manifest>(kv, &object_key(bucket, key)) {
        Some(m) if m.object_version == object_version => Some((m, Slot::Current)),
        _ => stored_versions(kv, bucket, key, usize::MAX)
            .into_iter()
            .find(|m| m.object_version == object_version)
            .map(|m| {
                let seq = seq_of(&m);
                (m, Slot::Versions(seq))
            }),
    };
    found.filter(|(m, _)| !m.delete_marker)
}
