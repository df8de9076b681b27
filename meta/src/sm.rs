//! The deterministic state machine of the master group: `apply(kv, index, command)` and the
//! read queries over the same key space. No IO, no clock, no randomness, no hash-map order.
//!
//! | key | value |
//! |---|---|
//! | `b/<bucket>` | `BucketConfig` (its access record inside: [`permissions`]) |
//! | `o/<bucket>\0<key>` | `Manifest` (a bucket's objects are one ordered range; the object's ACL inside) |
//! | `k/<access key>` | `AccessKey` |
//! | `i/<user name>` | `User` ([`users`]) |
//! | `s/<id u64be>` | `ChunkserverRecord` |
//! | `u/<uuid>` | chunkserver id (u64be) |
//! | `c/<sha256>` | `ChunkInfo` (refcount, length, servers) |
//! | `v/<bucket>\0<key>\0<!seq u64be>`, `n/<bucket>\0<key>` | noncurrent versions and delete markers, the null version's seq ([`versions`]) |
//! | `y/<bucket>` | `LifecycleProgress` (the lifecycle worker's cursor) |
//! | `f/<bucket>\0<key>\0<object_version u64be>`, `g/...` | a version's Parquet tail and statistics ([`parquet_apply`]) |
//! | `m/<bucket>\0<key>\0<upload id>` | `MultipartUpload` |
//! | `p/<bucket>\0<key>\0<upload id>\0<part u32be>` | `PartRecord` |
//! | `x/<counter>` | u64be counters (next chunkserver id, stats, `x/usage/...`: [`users`]) |
//! | `r/<id u64be>` | raft member address (written by the node on conf changes) |
//! | `l/<client id>`, `a/<client id><seq u64be>`, `t/<ms u64be><client id>` | client sessions ([`sessions`]) |
//!
//! Bucket names cannot contain `\0`; object keys are UTF-8 and S3 forbids nothing else that
//! matters here, so `\0` separates components unambiguously within a bucket's range.

use std::collections::BTreeMap;

use anode_proto::command::Op;
use anode_proto::*;
use md5::{Digest, Md5};
use prost::Message;

use crate::checksum;
use crate::kv::{KvRead, Mutation, Overlay};
use crate::validate::{self, ValidationError};

#[cfg(test)]
mod checksums_tests;
mod invariants;
mod lifecycle_apply;
mod list;
mod mem;
mod notify_apply;
#[cfg(test)]
mod notify_tests;
mod parquet_apply;
#[cfg(test)]
mod parquet_tests;
mod permissions;
mod records;
pub mod sessions;
#[cfg(test)]
mod tests;
pub mod users;
pub mod versions;
#[cfg(test)]
mod versions_tests;

pub use invariants::{check_refcount_deltas, InvariantError};
pub use lifecycle_apply::{lifecycle_plan, lifecycle_progress};
pub use list::{list_object_versions, list_objects, list_parts, list_uploads};
pub use mem::MemState;
pub use notify_apply::{get_target, list_targets, queued_events};
pub use parquet_apply::{
    check_index as check_parquet_index, get_stats as get_parquet_stats,
    get_tail as get_parquet_tail, tail_slice, MAX_PARQUET_COLUMNS, MAX_PARQUET_ROW_GROUPS,
    MAX_PARQUET_STATS, MAX_PARQUET_TAIL, PARQUET_RECORD_VERSION,
};
pub use records::{check_record, decode_snapshot};
use records::{get_msg, must_decode, scan_msgs};
pub use users::{
    bucket_usage, get_user, list_users, tracked_bucket_usage, user_usage, within_quota,
};

/// Errors of state machine commands and queries; [`StateError::detail`] is their wire form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The bucket does not exist.
    #[error("the bucket {0} does not exist")]
    NoSuchBucket(String),
    /// Another owner has the bucket.
    #[error("the bucket {0} already exists")]
    BucketAlreadyExists(String),
    /// The caller already owns the bucket.
    #[error("you already own the bucket {0}")]
    BucketAlreadyOwnedByYou(String),
    /// The bucket still has objects or uploads.
    #[error("the bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// A bucket name, key, upload id, part number or metadata size the validator refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The key does not exist.
    #[error("the key {0} does not exist")]
    NoSuchKey(String),
    /// The upload does not exist.
    #[error("the multipart upload {0} does not exist")]
    NoSuchUpload(String),
    /// A listed part is missing or its etag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// Parts not in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A non-final part is under 5 MiB.
    #[error("part {0} is smaller than the minimum allowed size")]
    EntityTooSmall(u32),
    /// A conditional write failed.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// Unknown access key.
    #[error("access key {0} does not exist")]
    NoSuchAccessKey(String),
    /// Access key exists.
    #[error("access key {0} already exists")]
    AccessKeyExists(String),
    /// Unknown chunkserver.
    #[error("chunkserver {0} is not registered")]
    UnknownChunkserver(u64),
    /// Epoch mismatch.
    #[error("stale epoch {got} for chunkserver {id} (current {current})")]
    StaleEpoch {
        /// Server.
        id: u64,
        /// Epoch given.
        got: u64,
        /// Epoch held.
        current: u64,
    },
    /// The command did not decode or lacks fields.
    #[error("bad command: {0}")]
    BadCommand(String),
    /// Unknown command version.
    #[error("unsupported command version {0}")]
    UnsupportedVersion(u32),
    /// Invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A reference to existing content (a copy) names a chunk that garbage collection took.
    #[error("chunk {0} is no longer stored; write the data again")]
    ChunkGone(String),
    /// A write retried after its client session dropped the answer (see [`sessions`]): not
    /// applied now; whether an earlier copy applied is unknown.
    #[error(
        "write {0} of this client session is too old to be answered again; it was not applied now"
    )]
    SessionExpired(u64),
    /// The write would take the named bucket's or user's live objects or bytes past its quota.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// Unknown user.
    #[error("the user {0} does not exist")]
    NoSuchUser(String),
    /// The user exists.
    #[error("the user {0} already exists")]
    UserExists(String),
    /// The user still owns buckets or keys.
    #[error("the user cannot be deleted: {0}")]
    UserNotEmpty(String),
    /// A version id that names no version of the key.
    #[error("no such version: {0}")]
    NoSuchVersion(String),
    /// The version asked for is a delete marker.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// A locked version (retention, legal hold).
    #[error("access denied: {0}")]
    ObjectLocked(String),
    /// The bucket's state forbids the change.
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// The bucket has no such configuration.
    #[error("{0}")]
    NoSuchConfiguration(String),
    /// A bucket access record or object ACL that does not decode, or whose policy does not
    /// parse as its bucket's (`InvalidArgument` on the wire).
    #[error("invalid access configuration: {0}")]
    InvalidAccess(crate::authz::RecordError),
}

impl From<crate::tagging::TagError> for StateError {
    fn from(e: crate::tagging::TagError) -> Self {
        StateError::InvalidArgument(format!("invalid tag set: {e}"))
    }
}

impl StateError {
    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StateError::NoSuchBucket(_) => ErrorCode::NoSuchBucket,
            StateError::BucketAlreadyExists(_) => ErrorCode::BucketAlreadyExists,
            StateError::BucketAlreadyOwnedByYou(_) => ErrorCode::BucketAlreadyOwnedByYou,
            StateError::BucketNotEmpty(_) => ErrorCode::BucketNotEmpty,
            StateError::Invalid(v) => v.code(),
            StateError::NoSuchKey(_) => ErrorCode::NoSuchKey,
            StateError::NoSuchUpload(_) => ErrorCode::NoSuchUpload,
            StateError::InvalidPart(_) => ErrorCode::InvalidPart,
            StateError::InvalidPartOrder => ErrorCode::InvalidPartOrder,
            StateError::EntityTooSmall(_) => ErrorCode::EntityTooSmall,
            StateError::PreconditionFailed(_) => ErrorCode::PreconditionFailed,
            StateError::NoSuchAccessKey(_) => ErrorCode::NoSuchAccessKey,
            StateError::AccessKeyExists(_) => ErrorCode::AccessKeyExists,
            StateError::UnknownChunkserver(_) => ErrorCode::UnknownChunkserver,
            StateError::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            StateError::BadCommand(_) => ErrorCode::BadCommand,
            StateError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            StateError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            StateError::ChunkGone(_) => ErrorCode::ChunkGone,
            StateError::SessionExpired(_) => ErrorCode::SessionExpired,
            StateError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            StateError::NoSuchUser(_) => ErrorCode::NoSuchUser,
            StateError::UserExists(_) => ErrorCode::UserExists,
            StateError::UserNotEmpty(_) => ErrorCode::UserNotEmpty,
            StateError::InvalidAccess(_) => ErrorCode::InvalidArgument,
            StateError::NoSuchVersion(_) => ErrorCode::NoSuchVersion,
            StateError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            StateError::ObjectLocked(_) => ErrorCode::ObjectLocked,
            StateError::InvalidBucketState(_) => ErrorCode::InvalidBucketState,
            StateError::NoSuchConfiguration(_) => ErrorCode::NoSuchConfiguration,
        }
    }

    /// The error as it crosses a process: code, message, and the resource it names.
    pub fn detail(&self) -> ErrorDetail {
        let d = ErrorDetail::new(self.code(), self.to_string());
        match self {
            StateError::Invalid(v) => v.detail(),
            StateError::NoSuchBucket(r)
            | StateError::BucketAlreadyExists(r)
            | StateError::BucketAlreadyOwnedByYou(r)
            | StateError::BucketNotEmpty(r)
            | StateError::NoSuchKey(r)
            | StateError::NoSuchUpload(r)
            | StateError::NoSuchAccessKey(r)
            | StateError::AccessKeyExists(r)
            | StateError::ChunkGone(r)
            | StateError::QuotaExceeded(r)
            | StateError::NoSuchUser(r)
            | StateError::UserExists(r)
            | StateError::UserNotEmpty(r)
            | StateError::NoSuchVersion(r) => d.with_resource(r.clone()),
            StateError::UnknownChunkserver(id) | StateError::StaleEpoch { id, .. } => {
                d.with_resource(id.to_string())
            }
            StateError::EntityTooSmall(part) => d.with_resource(part.to_string()),
            StateError::SessionExpired(seq) => d.with_resource(seq.to_string()),
            StateError::InvalidPart(_)
            | StateError::InvalidPartOrder
            | StateError::PreconditionFailed(_)
            | StateError::BadCommand(_)
            | StateError::UnsupportedVersion(_)
            | StateError::InvalidArgument(_)
            | StateError::InvalidAccess(_)
            | StateError::MethodNotAllowed(_)
            | StateError::ObjectLocked(_)
            | StateError::InvalidBucketState(_)
            | StateError::NoSuchConfiguration(_) => d,
        }
    }
}

/// Smallest non-final multipart part size.
pub const MIN_PART_BYTES: u64 = 5 << 20;
pub use crate::validate::MAX_PART_NUMBER;

// ---- keys ----------------------------------------------------------------------------------

pub(crate) fn bucket_key(name: &str) -> Vec<u8> {
    [b"b/", name.as_bytes()].concat()
}
pub(crate) fn object_prefix(bucket: &str) -> Vec<u8> {
    [b"o/", bucket.as_bytes(), b"\0"].concat()
}
pub(crate) fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    [object_prefix(bucket).as_slice(), key.as_bytes()].concat()
}
pub(crate) fn access_key(ak: &str) -> Vec<u8> {
    [b"k/", ak.as_bytes()].concat()
}
fn server_key(id: u64) -> Vec<u8> {
    [b"s/".as_slice(), &id.to_be_bytes()].concat()
}
fn uuid_key(uuid: &str) -> Vec<u8> {
    [b"u/", uuid.as_bytes()].concat()
}
fn chunk_key(sha: &[u8]) -> Vec<u8> {
    [b"c/", sha].concat()
}
pub(crate) fn upload_prefix(bucket: &str) -> Vec<u8> {
    [b"m/", bucket.as_bytes(), b"\0"].concat()
}
pub(crate) fn upload_key(bucket: &str, key: &str, id: &str) -> Vec<u8> {
    [
        upload_prefix(bucket).as_slice(),
        key.as_bytes(),
        b"\0",
        id.as_bytes(),
    ]
    .concat()
}
pub(crate) fn part_prefix(bucket: &str, key: &str, id: &str) -> Vec<u8> {
    [
        b"p/",
        bucket.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        id.as_bytes(),
        b"\0",
    ]
    .concat()
}
fn part_key(bucket: &str, key: &str, id: &str, n: u32) -> Vec<u8> {
    [part_prefix(bucket, key, id).as_slice(), &n.to_be_bytes()].concat()
}
const NEXT_SERVER_ID: &[u8] = b"x/next_chunkserver_id";
const STAT_OBJECTS: &[u8] = b"x/stat/objects";
const STAT_LOGICAL: &[u8] = b"x/stat/logical_bytes";
const STAT_CHUNKS: &[u8] = b"x/stat/chunks";
const STAT_STORED: &[u8] = b"x/stat/stored_bytes";

/// The key just past every key that starts with `prefix` (None: no upper bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---- decoding helpers ----------------------------------------------------------------------

fn get_u64(kv: &dyn KvRead, key: &[u8]) -> u64 {
    kv.get(key)
        .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0)
}

fn add_u64(o: &mut Overlay<'_>, key: &[u8], delta: i64) {
    let cur = get_u64(o, key) as i64;
    let next = cur + delta;
    debug_assert!(next >= 0, "counter {key:?} underflow");
    o.put(key.to_vec(), (next.max(0) as u64).to_be_bytes().to_vec());
}

// ---- queries -------------------------------------------------------------------------------

/// A bucket's config.
pub fn get_bucket(kv: &dyn KvRead, name: &str) -> Option<BucketConfig> {
    get_msg(kv, &bucket_key(name))
}

/// All buckets in name order.
pub fn list_buckets(kv: &dyn KvRead) -> Vec<BucketConfig> {
    scan_msgs(kv, b"b/", 100_000)
}

/// An object's manifest.
pub fn get_object(kv: &dyn KvRead, bucket: &str, key: &str) -> Result<Manifest, StateError> {
    if get_bucket(kv, bucket).is_none() {
        return Err(StateError::NoSuchBucket(bucket.into()));
    }
    get_msg(kv, &object_key(bucket, key)).ok_or_else(|| StateError::NoSuchKey(key.into()))
}

/// An access key.
pub fn get_key(kv: &dyn KvRead, ak: &str) -> Option<AccessKey> {
    get_msg(kv, &access_key(ak))
}

/// All access keys.
pub fn list_keys(kv: &dyn KvRead) -> Vec<AccessKey> {
    scan_msgs(kv, b"k/", 100_000)
}

/// All registered chunkservers by id.
pub fn list_chunkservers(kv: &dyn KvRead) -> Vec<ChunkserverRecord> {
    scan_msgs(kv, b"s/", 100_000)
}

/// One chunkserver.
pub fn get_chunkserver(kv: &dyn KvRead, id: u64) -> Option<ChunkserverRecord> {
    get_msg(kv, &server_key(id))
}

/// One chunk's record.
pub fn get_chunk(kv: &dyn KvRead, sha256: &[u8]) -> Option<ChunkInfo> {
    get_msg(kv, &chunk_key(sha256))
}

/// Up to `limit` chunk records after `start_after` (exclusive) in hash order.
pub fn scan_chunks(kv: &dyn KvRead, start_after: &[u8], limit: usize) -> Vec<(Vec<u8>, ChunkInfo)> {
    let start = if start_after.is_empty() {
        chunk_key(&[])
    } else {
        [chunk_key(start_after), vec![0]].concat()
    };
    kv.scan(&start, prefix_end(b"c/").as_deref(), limit)
        .into_iter()
        .map(|(k, v)| {
            let ci = must_decode(&k, &v);
            (k[2..].to_vec(), ci)
        })
        .collect()
}

/// One multipart upload.
pub fn get_upload(kv: &dyn KvRead, bucket: &str, key: &str, id: &str) -> Option<MultipartUpload> {
    get_msg(kv, &upload_key(bucket, key, id))
}

/// Namespace counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Buckets.
    pub buckets: u64,
    /// Objects.
    pub objects: u64,
    /// Distinct chunks with a record.
    pub chunks: u64,
    /// Sum of object sizes.
    pub logical_bytes: u64,
    /// Sum of distinct chunk lengths plus inline bytes (one copy).
    pub stored_bytes: u64,
}

/// Namespace counters.
pub fn stats(kv: &dyn KvRead) -> Stats {
    Stats {
        buckets: kv
            .scan(b"b/", prefix_end(b"b/").as_deref(), usize::MAX)
            .len() as u64,
        objects: get_u64(kv, STAT_OBJECTS),
        chunks: get_u64(kv, STAT_CHUNKS),
        logical_bytes: get_u64(kv, STAT_LOGICAL),
        stored_bytes: get_u64(kv, STAT_STORED),
    }
}

// ---- apply ---------------------------------------------------------------------------------

/// Decode (through [`crate::record::decode`]: an older version is migrated) and apply one
/// command's bytes. Undecodable bytes give an error result and no mutations, and so does a
/// newer command version (as [`apply`] answers it; the node refuses such an entry before).
pub fn apply_bytes(kv: &dyn KvRead, index: u64, data: &[u8]) -> (Vec<Mutation>, CommandResult) {
    let (muts, res, _) = apply_bytes_with_events(kv, index, data);
    (muts, res)
}

/// [`apply_bytes`], also giving the object events the command made (numbered; see
/// [`apply_with_events`]).
pub fn apply_bytes_with_events(kv: &dyn KvRead, index: u64, data: &[u8]) -> Applied {
    let at = format!("raft entry {index}");
    match crate::record::decode::<Command>(at.as_bytes(), data) {
        Ok(cmd) => apply_with_events(kv, index, &cmd),
        Err(crate::record::RecordError::TooNew { found, .. }) => (
            Vec::new(),
            error_result(&StateError::UnsupportedVersion(found)),
            Vec::new(),
        ),
        Err(e) => (
            Vec::new(),
            error_result(&StateError::BadCommand(e.to_string())),
            Vec::new(),
        ),
    }
}

/// What applying one command gives: its mutations, its result, and the object events it made
/// (`anode_meta::notify`; empty for a refused or repeated command).
pub type Applied = (Vec<Mutation>, CommandResult, Vec<NotificationEvent>);

/// The lowest command version that expresses `op`, which the leader stamps on it: a member of
/// the previous release (which refuses newer versions by halting) keeps applying every command
/// it can apply the same way during a rolling upgrade, and halts only at one that needs the
/// new version (versioning, object lock and lifecycle: version 5). Commands of version 4 apply
/// the same on both (an unversioned bucket's put and delete; a bucket only becomes versioned
/// through a version 5 command, which the old member never applies).
pub fn command_version_for(op: &Op) -> u32 {
    let locked = |m: &Manifest| !m.lock_mode.is_empty() || m.retain_until_ms != 0 || m.legal_hold;
    let v5 = match op {
        Op::SetBucketVersioning(_)
        | Op::SetBucketObjectLock(_)
        | Op::SetBucketLifecycle(_)
        | Op::SetObjectLock(_)
        | Op::LifecycleBatch(_) => true,
        Op::DeleteObject(c) => c.version_id.is_some() || c.bypass_governance,
        Op::DeleteObjects(c) => !c.objects.is_empty() || c.bypass_governance,
        Op::PutObject(c) => c.manifest.as_ref().is_some_and(locked),
        Op::PutObjects(c) => c
            .objects
            .iter()
            .filter_map(|p| p.manifest.as_ref())
            .any(locked),
        Op::CreateBucket(c) => c.config.as_ref().is_some_and(|b| {
            b.object_lock
                || b.versioning_state != 0
                || b.default_retention.is_some()
                || b.lifecycle.is_some()
        }),
        Op::CreateMultipart(c) => c
            .upload
            .as_ref()
            .is_some_and(|u| !u.lock_mode.is_empty() || u.retain_until_ms != 0 || u.legal_hold),
        _ => false,
    };
    if needs_v8(op) {
        COMMAND_VERSION.min(8)
    } else if needs_v7(op) {
        COMMAND_VERSION.min(7)
    } else if needs_v6(op) {
        COMMAND_VERSION.min(6)
    } else if v5 {
        COMMAND_VERSION.min(5)
    } else {
        4
    }
}

/// Whether `op` needs command version 8 (issue 16's Parquet indexes): `SetParquetIndex`, and
/// puts that carry or copy an index (an older member would store the object without it).
fn needs_v8(op: &Op) -> bool {
    match op {
        Op::SetParquetIndex(_) => true,
        Op::PutObject(c) => c.parquet.is_some() || c.parquet_copy.is_some(),
        _ => false,
    }
}

/// Whether `op` needs command version 7 (issue 15's event notifications): the notification
/// commands, and a bucket created with notification rules. `PutObjectCmd.source` does not:
/// it only names events, and no bucket has rules before a version 7 command.
fn needs_v7(op: &Op) -> bool {
    match op {
        Op::SetBucketNotification(_) | Op::SetNotificationTarget(_) | Op::AckNotifications(_) => {
            true
        }
        Op::CreateBucket(c) => c.config.as_ref().is_some_and(|b| b.notification.is_some()),
        _ => false,
    }
}

/// Whether `op` needs command version 6 (issue 15): the CORS and tagging commands; writes
/// carrying tags, CORS rules or stored checksums; conditional deletes and puts (conditions
/// decide as S3 does since version 6, see `check_write_condition`); and every completion (it
/// records part etags and the upload id in the manifest).
fn needs_v6(op: &Op) -> bool {
    let checksummed = |m: &Manifest| {
        !m.checksum_algorithm.is_empty()
            || !m.checksum_value.is_empty()
            || !m.checksum_type.is_empty()
            || !m.part_checksums.is_empty()
            || !m.part_etags.is_empty()
            || !m.completed_upload_id.is_empty()
    };
    let new_manifest = |m: &Manifest| !m.tags.is_empty() || checksummed(m);
    match op {
        Op::SetObjectTagging(_) | Op::SetBucketTagging(_) | Op::SetBucketCors(_) => true,
        Op::CompleteMultipart(_) => true,
        Op::DeleteObject(c) => {
            c.if_match_etag.is_some()
                || c.if_match_last_modified_ms.is_some()
                || c.if_match_size.is_some()
        }
        Op::PutObject(c) => {
            c.if_match_etag.is_some() || c.manifest.as_ref().is_some_and(new_manifest)
        }
        Op::PutObjects(c) => c
            .objects
            .iter()
            .filter_map(|p| p.manifest.as_ref())
            .any(new_manifest),
        Op::PutPart(c) => c
            .part
            .as_ref()
            .is_some_and(|p| !p.checksum_algorithm.is_empty() || !p.checksum_value.is_empty()),
        Op::CreateMultipart(c) => c.upload.as_ref().is_some_and(|u| {
            !u.tags.is_empty() || !u.checksum_algorithm.is_empty() || !u.checksum_type.is_empty()
        }),
        Op::CreateBucket(c) => c
            .config
            .as_ref()
            .is_some_and(|b| !b.tags.is_empty() || b.cors.is_some()),
        _ => false,
    }
}

fn error_result(e: &StateError) -> CommandResult {
    CommandResult {
        error: Some(e.detail()),
        ..Default::default()
    }
}

/// Apply one command at raft `index`. A refused operation changes nothing of the namespace;
/// only its client session (if it carries one) records the refusal as its answer. A command
/// of a client session that was applied before is answered with the recorded result and not
/// applied again ([`sessions`]). Every command also expires idle sessions. The mutations are
/// checked against the invariants first (see [`InvariantError`]); a violation panics, before
/// anything is written.
pub fn apply(kv: &dyn KvRead, index: u64, cmd: &Command) -> (Vec<Mutation>, CommandResult) {
    let (muts, res, _) = apply_with_events(kv, index, cmd);
    (muts, res)
}

/// [`apply`], also giving the object events the command made, numbered from `index`
/// (`anode_meta::notify::event_id`) and stamped with the command's time. The copies for the
/// bucket's notification targets are queued by the mutations themselves.
pub fn apply_with_events(kv: &dyn KvRead, index: u64, cmd: &Command) -> Applied {
    if cmd.version == 0 || cmd.version > COMMAND_VERSION {
        return (
            Vec::new(),
            error_result(&StateError::UnsupportedVersion(cmd.version)),
            Vec::new(),
        );
    }
    let session = match cmd.session.as_ref().map(sessions::validate).transpose() {
        Ok(s) => s,
        Err(e) => return (Vec::new(), error_result(&e), Vec::new()),
    };
    let mut o = Overlay::new(kv);
    let (result, fresh) = match session.map(|s| sessions::check(kv, s)) {
        Some(sessions::Check::Duplicate(r)) => (*r, false),
        Some(sessions::Check::Forgotten) => {
            let seq = session.map_or(0, |s| s.seq);
            (error_result(&StateError::SessionExpired(seq)), false)
        }
        Some(sessions::Check::Apply) | None => match apply_once(&mut o, index, cmd) {
            Ok(r) => (r, true),
            Err(e) => {
                // A refused operation leaves nothing behind.
                o = Overlay::new(kv);
                (error_result(&e), true)
            }
        },
    };
    let events = std::mem::take(&mut o.events);
    let events = notify_apply::enqueue(&mut o, index, cmd.now_ms, events);
    if let Some(s) = session {
        sessions::touch(&mut o, cmd.now_ms, s, fresh.then_some(&result));
    }
    sessions::expire(&mut o, cmd.now_ms);
    let muts = o.into_mutations();
    invariants::assert_command(kv, index, &muts);
    (muts, result, events)
}

fn apply_once(o: &mut Overlay<'_>, index: u64, cmd: &Command) -> Res {
    match &cmd.op {
        Some(op) => apply_op(o, index, cmd.now_ms, op, Rules::of(cmd.version)),
        None => Err(StateError::BadCommand("no operation".into())),
    }
}

type Res = Result<CommandResult, StateError>;

/// Which apply-time input checks a command gets: those of its command version, so a log an
/// older build wrote replays as it applied then. Version 2 (issue 12) checks manifests and
/// parts whole (`validate::manifest`/`part`), stored system headers, NUL in keys and the one
/// issued upload id shape; version 1 keeps the checks it had (key length, upload id charset,
/// user metadata) plus size bounds that keep the byte counters from overflowing (found by
/// fuzzing; no writer ever sent such sizes).
/// Version 6 (issue 15) adds the checks of stored checksums and conditional deletes, and
/// completions that record part etags, checksums and the upload id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rules {
    V1,
    V2,
    V6,
}

impl Rules {
    fn of(version: u32) -> Rules {
        if version >= 6 {
            Rules::V6
        } else if version >= 2 {
            Rules::V2
        } else {
            Rules::V1
        }
    }

    fn object_key(self, key: &str) -> Result<(), ValidationError> {
        match self {
            Rules::V2 | Rules::V6 => validate::object_key(key),
            Rules::V1 => match key.len() {
                0 => Err(ValidationError::EmptyKey),
                n if n > validate::MAX_KEY_BYTES => Err(ValidationError::KeyTooLong(n)),
                _ => Ok(()),
            },
        }
    }

    fn upload_id(self, id: &str) -> Result<(), ValidationError> {
        match self {
            Rules::V2 | Rules::V6 => validate::upload_id(id),
            Rules::V1 => {
                let url_safe =
                    |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
                if id.is_empty() || id.len() > 128 || !id.bytes().all(url_safe) {
                    return Err(ValidationError::InvalidUploadId(id.to_string()));
                }
                Ok(())
            }
        }
    }

    fn manifest(self, m: &Manifest) -> Result<(), StateError> {
        crate::tagging::validate_object(&m.tags)?;
        match self {
            Rules::V2 | Rules::V6 => {
                validate::manifest(m)?;
                validate::system_metadata(&m.content_type, &m.system_metadata)?;
                if self == Rules::V6 {
                    check_manifest_checksum(m)?;
                }
                Ok(())
            }
            Rules::V1 => {
                validate::user_metadata(&m.user_metadata)?;
                v1_sizes(m.size, validate::MAX_OBJECT_BYTES, &m.chunks)
            }
        }
    }

    fn part(self, p: &PartRecord) -> Result<(), StateError> {
        match self {
            Rules::V2 => Ok(validate::part(p)?),
            Rules::V6 => {
                validate::part(p)?;
                checksum::check_stored(&p.checksum_algorithm, &p.checksum_value, "", None)
                    .map_err(|e| StateError::InvalidArgument(e.to_string()))
            }
            Rules::V1 => v1_sizes(p.size, validate::MAX_PART_BYTES, &p.chunks),
        }
    }
}

/// A stored manifest's checksum: a known algorithm, a type it allows, a value of its length
/// (`-N` when composite of N parts), and part checksums of the algorithm.
fn check_manifest_checksum(m: &Manifest) -> Result<(), StateError> {
    let bad = |e: checksum::ChecksumError| StateError::InvalidArgument(e.to_string());
    let parts = (m.checksum_type == checksum::COMPOSITE && !m.part_checksums.is_empty())
        .then_some(m.part_checksums.len());
    checksum::check_stored(
        &m.checksum_algorithm,
        &m.checksum_value,
        &m.checksum_type,
        parts,
    )
    .map_err(bad)?;
    if m.part_checksums.len() > MAX_PART_NUMBER as usize
        || m.part_etags.len() > MAX_PART_NUMBER as usize
    {
        return Err(StateError::InvalidArgument("too many part records".into()));
    }
    for v in &m.part_checksums {
        checksum::check_stored(&m.checksum_algorithm, v, "", None).map_err(bad)?;
    }
    if m.part_etags.iter().any(|e| part_md5(e).is_none()) || m.completed_upload_id.len() > 128 {
        return Err(StateError::InvalidArgument(
            "bad part etag or upload id".into(),
        ));
    }
    Ok(())
}

/// An upload's checksum settings: none, or a known algorithm with a type it allows.
fn check_upload_checksum(u: &MultipartUpload) -> Result<(), StateError> {
    if u.checksum_algorithm.is_empty() && u.checksum_type.is_empty() {
        return Ok(());
    }
    let alg = checksum::Algorithm::parse(&u.checksum_algorithm)
        .ok()
        .filter(|a| a.name() == u.checksum_algorithm)
        .ok_or_else(|| {
            StateError::InvalidArgument(format!(
                "unknown checksum algorithm {:?}",
                u.checksum_algorithm
            ))
        })?;
    if !alg.allows_type(&u.checksum_type) {
        return Err(StateError::InvalidArgument(format!(
            "checksum type {:?} is not supported with {:?}",
            u.checksum_type, u.checksum_algorithm
        )));
    }
    Ok(())
}

/// What a version 6 completion records besides the body: the part etags, the upload id (a
/// repeated completion is answered from them), and the object's checksum when the upload
/// declared an algorithm and every chosen part carries a checksum of it. A part without one
/// (an UploadPartCopy part: copies are made by reference and not read, so S3's computed
/// checksum of the copied range is missing) leaves the object without a stored checksum
/// rather than failing the completion (object_store's `copy_if_not_exists` completes such
/// uploads).
fn completion_records(
    m: &mut Manifest,
    u: &MultipartUpload,
    parts: &[PartRecord],
) -> Result<(), StateError> {
    m.part_etags = parts
        .iter()
        .map(|p| p.etag.trim_matches('"').to_string())
        .collect();
    m.completed_upload_id = u.upload_id.clone();
    if u.checksum_algorithm.is_empty() {
        return Ok(());
    }
    let alg = checksum::Algorithm::parse(&u.checksum_algorithm)
        .map_err(|e| StateError::InvalidArgument(e.to_string()))?;
    if parts
        .iter()
        .any(|p| p.checksum_algorithm != u.checksum_algorithm || p.checksum_value.is_empty())
    {
        return Ok(());
    }
    let pairs: Vec<(&str, u64)> = parts
        .iter()
        .map(|p| (p.checksum_value.as_str(), p.size))
        .collect();
    let value = checksum::of_parts(alg, &u.checksum_type, &pairs)
        .ok_or_else(|| StateError::InvalidPart("a part checksum is invalid".into()))?;
    m.checksum_algorithm = u.checksum_algorithm.clone();
    m.checksum_type = u.checksum_type.clone();
    m.checksum_value = value;
    m.part_checksums = parts.iter().map(|p| p.checksum_value.clone()).collect();
    Ok(())
}

/// Version 1 size bounds: a body of at most `max` bytes, chunks of at most `MAX_CHUNK_BYTES`.
fn v1_sizes(size: u64, max: u64, chunks: &[ChunkRef]) -> Result<(), StateError> {
    if size > max {
        return Err(StateError::InvalidArgument(format!(
            "size {size} is over {max} bytes"
        )));
    }
    if let Some(c) = chunks.iter().find(|c| c.length > MAX_CHUNK_BYTES) {
        return Err(StateError::InvalidArgument(format!(
            "chunk length {} is over {MAX_CHUNK_BYTES} bytes",
            c.length
        )));
    }
    Ok(())
}

fn apply_op(o: &mut Overlay<'_>, index: u64, now: u64, op: &Op, rules: Rules) -> Res {
    match op {
        Op::Noop(_) => Ok(CommandResult::default()),
        Op::CreateBucket(c) => create_bucket(o, now, c),
        Op::DeleteBucket(c) => delete_bucket(o, &c.name),
        Op::PutObject(c) => put_object(o, index, now, c, rules),
        Op::PutObjects(c) => put_objects(o, index, now, c, rules),
        Op::DeleteObject(c) => {
            let entry = [(c.key.clone(), c.version_id.clone())];
            let mode = DeleteMode {
                bypass: c.bypass_governance,
                single: true,
                cond: versions::DeleteCondition {
                    etag: c.if_match_etag.clone(),
                    mtime_ms: c.if_match_last_modified_ms,
                    size: c.if_match_size,
                },
                lifecycle: false,
            };
            delete_objects(o, index, now, &c.bucket, &entry, &mode)
        }
        Op::DeleteObjects(c) => {
            let entries: Vec<(String, Option<String>)> = c
                .keys
                .iter()
                .map(|k| (k.clone(), None))
                .chain(
                    c.objects
                        .iter()
                        .map(|r| (r.key.clone(), r.version_id.clone())),
                )
                .collect();
            let mode = DeleteMode {
                bypass: c.bypass_governance,
                ..Default::default()
            };
            delete_objects(o, index, now, &c.bucket, &entries, &mode)
        }
        Op::SetBucketVersioning(c) => {
            versions::set_versioning(o, c)?;
            Ok(CommandResult::default())
        }
        Op::SetBucketObjectLock(c) => {
            versions::set_object_lock_config(o, c)?;
            Ok(CommandResult::default())
        }
        Op::SetBucketLifecycle(c) => lifecycle_apply::set_lifecycle(o, c),
        Op::SetBucketCors(c) => set_cors(o, c),
        Op::SetObjectLock(c) => Ok(CommandResult {
            manifest: Some(versions::set_lock(o, now, c)?),
            ..Default::default()
        }),
        Op::LifecycleBatch(c) => lifecycle_apply::apply_batch(o, index, now, c),
        Op::SetObjectTagging(c) => {
            let m = versions::set_tagging(o, c)?;
            let name = if c.tags.is_empty() {
                "ObjectTagging:Delete"
            } else {
                "ObjectTagging:Put"
            };
            notify_apply::object_event(o, name, &c.bucket, &c.key, Some(&m), "");
            Ok(CommandResult {
                manifest: Some(m),
                ..Default::default()
            })
        }
        Op::SetBucketNotification(c) => notify_apply::set_bucket_notification(o, c),
        Op::SetNotificationTarget(c) => notify_apply::set_target(o, now, c),
        Op::AckNotifications(c) => notify_apply::ack(o, c),
        Op::SetParquetIndex(c) => parquet_apply::set_index(o, c),
        Op::SetBucketTagging(c) => {
            let mut cfg =
                get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
            crate::tagging::validate_bucket(&c.tags)?;
            cfg.tags = c.tags.clone();
            o.put(bucket_key(&c.name), cfg.encode_to_vec());
            Ok(CommandResult::default())
        }
        Op::CreateKey(c) => create_key(o, now, c),
        Op::CreateUser(c) => users::create_user(o, now, c),
        Op::DeleteUser(c) => users::delete_user(o, &c.name),
        Op::SetUserQuota(c) => users::set_user_quota(o, c),
        Op::SetBucketQuota(c) => users::set_bucket_quota(o, c),
        Op::SetKeyDisabled(c) => users::set_key_disabled(o, c),
        Op::SetBucketAccess(c) => permissions::set_bucket_access(o, c),
        Op::SetObjectAcl(c) => permissions::set_object_acl(o, c),
        Op::DeleteKey(c) => {
            let k = access_key(&c.access_key);
            o.get(&k)
                .ok_or_else(|| StateError::NoSuchAccessKey(c.access_key.clone()))?;
            o.delete(k);
            Ok(CommandResult::default())
        }
        Op::RegisterChunkserver(c) => register(o, now, c),
        Op::ChunkserverUpdate(c) => server_update(o, now, c),
        Op::SetDraining(c) => {
            let mut rec = get_chunkserver(o, c.id).ok_or(StateError::UnknownChunkserver(c.id))?;
            rec.draining = c.draining;
            o.put(server_key(c.id), rec.encode_to_vec());
            Ok(CommandResult::default())
        }
        Op::ChunkDeleted(c) => {
            if get_chunk(o, &c.sha256).is_some_and(|ci| ci.refcount == 0) {
                o.delete(chunk_key(&c.sha256));
                add_u64(o, STAT_CHUNKS, -1);
            }
            Ok(CommandResult::default())
        }
        Op::TombstoneChunks(c) => {
            for sha in &c.sha256 {
                if let Some(mut ci) = get_chunk(o, sha).filter(|ci| ci.refcount == 0) {
                    ci.tombstone_ms = now;
                    o.put(chunk_key(sha), ci.encode_to_vec());
                }
            }
            Ok(CommandResult::default())
        }
        Op::CreateMultipart(c) => create_multipart(o, now, c, rules),
        Op::PutPart(c) => put_part(o, now, c, rules),
        Op::CompleteMultipart(c) => complete_multipart(o, index, now, c, rules),
        Op::AbortMultipart(c) => abort_multipart(o, now, c),
    }
}

fn create_bucket(o: &mut Overlay<'_>, now: u64, c: &CreateBucketCmd) -> Res {
    let cfg = c
        .config
        .clone()
        .ok_or_else(|| StateError::BadCommand("no bucket config".into()))?;
    validate::bucket_name(&cfg.name)?;
    if let Some(existing) = get_bucket(o, &cfg.name) {
        return Err(users::existing_bucket_error(&existing, &cfg));
    }
    if !cfg.owner_user.is_empty() && get_user(o, &cfg.owner_user).is_none() {
        return Err(StateError::NoSuchUser(cfg.owner_user));
    }
    permissions::check_bucket_access(&cfg.access, &cfg.name)?;
    crate::tagging::validate_bucket(&cfg.tags)?;
    let cfg = BucketConfig {
        version: RECORD_VERSION,
        created_ms: now,
        ..cfg
    };
    o.put(bucket_key(&cfg.name), cfg.encode_to_vec());
    users::start_bucket(o, &cfg.name);
    Ok(CommandResult::default())
}

fn delete_bucket(o: &mut Overlay<'_>, name: &str) -> Res {
    get_bucket(o, name).ok_or_else(|| StateError::NoSuchBucket(name.into()))?;
    for prefix in [
        object_prefix(name),
        upload_prefix(name),
        versions::versions_prefix(name),
    ] {
        if !o
            .scan(&prefix, prefix_end(&prefix).as_deref(), 1)
            .is_empty()
        {
            return Err(StateError::BucketNotEmpty(name.into()));
        }
    }
    o.delete(bucket_key(name));
    o.delete([b"y/", name.as_bytes()].concat());
    users::drop_bucket(o, name);
    Ok(CommandResult::default())
}

/// New references must name live content: a fresh upload (`uploaded_ms > 0`, whose writer
/// wrote or touched every copy recently; it may resurrect a tombstoned chunk, because the
/// chunkservers refuse to delete blobs touched after the deletion's fence) or a chunk that
/// has a record and no tombstone (a copy of an existing object). See docs/architecture.md,
/// "Garbage collection".
fn check_new_refs(o: &dyn KvRead, chunks: &[ChunkRef]) -> Result<(), StateError> {
    for c in chunks.iter().filter(|c| c.uploaded_ms == 0) {
        if get_chunk(o, &c.sha256).is_none_or(|ci| ci.tombstone_ms != 0) {
            return Err(StateError::ChunkGone(hex::encode(&c.sha256)));
        }
    }
    Ok(())
}

/// The stored form of references: the writer's upload time is a commit-time check only.
fn stored_refs(chunks: &mut [ChunkRef]) {
    for c in chunks {
        c.uploaded_ms = 0;
    }
}

fn bucket_replication(o: &dyn KvRead, bucket: &str) -> u32 {
    get_bucket(o, bucket).map_or(0, |b| b.replication)
}

/// Add `delta` references to each chunk of `chunks` (a chunk listed twice counts twice).
/// New references raise the chunk's replication factor to `replication` when higher.
fn adjust_refs(o: &mut Overlay<'_>, now: u64, chunks: &[ChunkRef], delta: i64, replication: u32) {
    for c in chunks {
        let key = chunk_key(&c.sha256);
        let existing = get_chunk(o, &c.sha256);
        let is_new = existing.is_none();
        let mut ci = existing.unwrap_or(ChunkInfo {
            version: RECORD_VERSION,
            length: c.length,
            ..Default::default()
        });
        if delta > 0 {
            ci.refcount += delta as u64;
            ci.zero_since_ms = 0;
            ci.tombstone_ms = 0;
            ci.replication = ci.replication.max(replication);
            for s in &c.servers {
                if !ci.servers.contains(s) {
                    ci.servers.push(*s);
                }
            }
            ci.servers.sort_unstable();
        } else {
            let d = delta.unsigned_abs();
            // More references dropped than counted: the state is already wrong. Stop (the
            // panic aborts the process before anything is written) rather than clamp.
            ci.refcount = ci.refcount.checked_sub(d).unwrap_or_else(|| {
                panic!(
                    "chunk {} refcount underflow: {} - {d}",
                    hex::encode(&c.sha256),
                    ci.refcount
                )
            });
            if ci.refcount == 0 {
                ci.zero_since_ms = now;
            }
        }
        if is_new {
            add_u64(o, STAT_CHUNKS, 1);
            add_u64(o, STAT_STORED, c.length as i64);
        }
        o.put(key, ci.encode_to_vec());
    }
}

fn put_object(o: &mut Overlay<'_>, index: u64, now: u64, c: &PutObjectCmd, rules: Rules) -> Res {
    get_bucket(o, &c.bucket).ok_or_else(|| StateError::NoSuchBucket(c.bucket.clone()))?;
    rules.object_key(&c.key)?;
    let m = c
        .manifest
        .clone()
        .ok_or_else(|| StateError::BadCommand("no manifest".into()))?;
    rules.manifest(&m)?;
    if m.delete_marker {
        return Err(StateError::BadCommand(
            "a written manifest is no delete marker".into(),
        ));
    }
    permissions::check_object_acl(&m.acl)?;
    let key = object_key(&c.bucket, &c.key);
    let old: Option<Manifest> = get_msg(o, &key);
    check_write_condition(old.as_ref(), c.if_match_etag.as_deref(), rules)?;
    check_new_refs(o, &m.chunks)?;
    let ix = parquet_apply::index_for_put(o, c, m.size)?;
    let mut m = m;
    stored_refs(&mut m.chunks);
    let mut m = Manifest {
        version: MANIFEST_VERSION,
        mtime_ms: now,
        object_version: index,
        ..m
    };
    parquet_apply::attach(o, &c.bucket, &c.key, &mut m, ix);
    let name = match c.source.as_str() {
        "" => "ObjectCreated:Put",
        "Copy" => "ObjectCreated:Copy",
        "Post" => "ObjectCreated:Post",
        other => {
            return Err(StateError::InvalidArgument(format!(
                "unknown put source {other:?}"
            )))
        }
    };
    let m = write_version(o, index, now, &c.bucket, &c.key, m)?;
    notify_apply::object_event(o, name, &c.bucket, &c.key, Some(&m), "");
    Ok(CommandResult {
        manifest: Some(m),
        ..Default::default()
    })
}

/// Every put of a bulk command, in order; the first refusal refuses the whole command (the
/// overlay is dropped, nothing is written).
fn put_objects(o: &mut Overlay<'_>, index: u64, now: u64, c: &PutObjectsCmd, rules: Rules) -> Res {
    if c.objects.len() > validate::MAX_BULK_PUTS {
        return Err(StateError::InvalidArgument(format!(
            "{} objects in one PutObjects, at most {}",
            c.objects.len(),
            validate::MAX_BULK_PUTS
        )));
    }
    for p in &c.objects {
        let put = PutObjectCmd {
            bucket: c.bucket.clone(),
            key: p.key.clone(),
            manifest: p.manifest.clone(),
            if_match_etag: None,
            source: String::new(),
            parquet: None,
            parquet_copy: None,
        };
        put_object(o, index, now, &put, rules)?;
    }
    Ok(CommandResult {
        written: c.objects.len() as u64,
        ..Default::default()
    })
}

/// A write's condition as its command version decides it: version 6 follows S3's 2024
/// conditional writes (a current delete marker is no object; `If-Match` on no object is
/// `NoSuchKey`; `*` matches any object), older versions as they applied then.
fn check_write_condition(
    old: Option<&Manifest>,
    cond: Option<&str>,
    rules: Rules,
) -> Result<(), StateError> {
    if rules != Rules::V6 {
        return check_condition(old, cond);
    }
    let old = old.filter(|m| !m.delete_marker);
    match (cond.map(|c| c.trim().trim_matches('"')), old) {
        (None, _) | (Some(""), None) => Ok(()),
        (Some(""), Some(_)) => Err(StateError::PreconditionFailed("object exists".into())),
        (Some(_), None) => Err(StateError::NoSuchKey("no object to match".into())),
        (Some("*"), Some(_)) => Ok(()),
        (Some(e), Some(m)) if m.etag == e => Ok(()),
        (Some(_), Some(_)) => Err(StateError::PreconditionFailed("etag does not match".into())),
    }
}

fn check_condition(old: Option<&Manifest>, cond: Option<&str>) -> Result<(), StateError> {
    match (cond, old) {
        (None, _) => Ok(()),
        (Some(""), None) => Ok(()),
        (Some(""), Some(_)) => Err(StateError::PreconditionFailed("object exists".into())),
        (Some(e), Some(m)) if m.etag == e.trim_matches('"') => Ok(()),
        (Some(_), _) => Err(StateError::PreconditionFailed("etag does not match".into())),
    }
}

/// Write `m` as the newest version of `bucket/key` (see [`versions::install`]), moving
/// references and counters: the version it replaces for good (an unversioned or suspended
/// bucket's null version) gives its up, `m` takes its own. `QuotaExceeded` (and nothing
/// written) when the bucket's or its owner's usage would grow past a quota.
fn write_version(
    o: &mut Overlay<'_>,
    index: u64,
    now: u64,
    bucket: &str,
    key: &str,
    mut m: Manifest,
) -> Result<Manifest, StateError> {
    track_usage(o, bucket)?;
    let installed = versions::install(o, index, now, bucket, key, &mut m)?;
    if let Some(old) = installed.replaced.filter(|r| !r.delete_marker) {
        drop_version(o, now, bucket, key, &old)?;
    }
    if !m.delete_marker {
        let replication = bucket_replication(o, bucket);
        users::charge(o, bucket, 1, m.size as i64)?;
        adjust_refs(o, now, &m.chunks, 1, replication);
        add_u64(o, STAT_STORED, m.inline_data.len() as i64);
        add_u64(o, STAT_LOGICAL, m.size as i64);
        add_u64(o, STAT_OBJECTS, 1);
    }
    Ok(m)
}

/// Make sure the bucket has usage counters before versions move (the counters of a bucket
/// from before them are computed by a scan, which must see the state before the command).
fn track_usage(o: &mut Overlay<'_>, bucket: &str) -> Result<(), StateError> {
    let cfg = get_bucket(o, bucket).ok_or_else(|| StateError::NoSuchBucket(bucket.into()))?;
    users::ensure_tracked(o, bucket, &cfg);
    Ok(())
}

/// Give up the references, usage and counters of a version removed for good.
fn drop_version(
    o: &mut Overlay<'_>,
    now: u64,
    bucket: &str,
    key: &str,
    old: &Manifest,
) -> Result<(), StateError> {
    parquet_apply::drop_index(o, bucket, key, old);
    users::charge(o, bucket, -1, -(old.size as i64))?;
    adjust_refs(o, now, &old.chunks, -1, 0);
    add_u64(o, STAT_STORED, -(old.inline_data.len() as i64));
    add_u64(o, STAT_LOGICAL, -(old.size as i64));
    add_u64(o, STAT_OBJECTS, -1);
    Ok(())
}

/// Deletes, in order: the plain `keys` (S3 simple deletes), then the `objects` with their
/// version ids. In a bulk delete a refused entry (a locked version, a bad version id) is
/// reported in its outcome and the others still apply; a single delete's refusal is the
/// command's.
/// How [`delete_objects`] deletes: bypassing GOVERNANCE retention, as a single delete (whose
/// refusal is the command's), under a condition (version 6; checked against each entry).
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteMode {
    pub bypass: bool,
    pub single: bool,
    pub cond: versions::DeleteCondition,
    /// The lifecycle worker's expiration (its events are `LifecycleExpiration:*`).
    pub lifecycle: bool,
}

fn delete_objects(
    o: &mut Overlay<'_>,
    index: u64,
    now: u64,
    bucket: &str,
    entries: &[(String, Option<String>)],
    mode: &DeleteMode,
) -> Res {
    let (bypass, single) = (mode.bypass, mode.single);
    track_usage(o, bucket)?;
    if entries.len() > validate::MAX_DELETE_KEYS {
        return Err(StateError::InvalidArgument(format!(
            "{} keys in one delete, at most {}",
            entries.len(),
            validate::MAX_DELETE_KEYS
        )));
    }
    let mut result = CommandResult::default();
    for (k, vid) in entries {
        // Each entry on its own overlay, so a refused one leaves nothing behind.
        let mut entry = Overlay::new(&*o);
        let target = versions::Target {
            key: k,
            version_id: vid.as_deref(),
            bypass,
            cond: &mode.cond,
        };
        let done = versions::delete(&mut entry, index, now, bucket, &target).and_then(|d| {
            if let Some(old) = &d.removed {
                drop_version(&mut entry, now, bucket, k, old)?;
            }
            Ok(d.outcome)
        });
        match done {
            Ok(outcome) => {
                let muts = entry.into_mutations();
                o.apply_mutations(muts);
                if outcome.existed {
                    let name = match (mode.lifecycle, vid.is_none() && outcome.delete_marker) {
                        (false, false) => "ObjectRemoved:Delete",
                        (false, true) => "ObjectRemoved:DeleteMarkerCreated",
                        (true, false) => "LifecycleExpiration:Delete",
                        (true, true) => "LifecycleExpiration:DeleteMarkerCreated",
                    };
                    notify_apply::object_event(o, name, bucket, k, None, &outcome.version_id);
                }
                if outcome.existed && vid.is_none() {
                    result.deleted_keys.push(k.clone());
                }
                result.deletions.push(outcome);
            }
            Err(e) if single => return Err(e),
            Err(e) => result.deletions.push(DeleteOutcome {
                key: k.clone(),
                version_id: vid.clone().unwrap_or_default(),
                error: Some(e.detail()),
                ..Default::default()
            }),
        }
    }
    Ok(result)
}

/// Replace or delete (config absent) a bucket's CORS rules.
fn set_cors(o: &mut Overlay<'_>, c: &SetBucketCorsCmd) -> Res {
    let mut cfg = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    if let Some(rules) = &c.config {
        crate::cors::validate(rules).map_err(|e| StateError::InvalidArgument(e.to_string()))?;
    }
    cfg.cors = c.config.clone();
    o.put(bucket_key(&c.name), cfg.encode_to_vec());
    Ok(CommandResult::default())
}

fn create_key(o: &mut Overlay<'_>, now: u64, c: &CreateKeyCmd) -> Res {
    let k = c
        .key
        .clone()
        .ok_or_else(|| StateError::BadCommand("no key".into()))?;
    if k.access_key.is_empty() || k.secret_key.is_empty() {
        return Err(StateError::InvalidArgument(
            "access and secret key must be non-empty".into(),
        ));
    }
    if get_key(o, &k.access_key).is_some() {
        return Err(StateError::AccessKeyExists(k.access_key));
    }
    users::check_key_user(o, &k)?;
    let k = AccessKey {
        version: RECORD_VERSION,
        created_ms: now,
        ..k
    };
    o.put(access_key(&k.access_key), k.encode_to_vec());
    // The key's id, never its secret: a result may be kept as a session answer, and the
    // secret lives only in the key's own record.
    Ok(CommandResult {
        access_key: Some(AccessKey {
            secret_key: String::new(),
            ..k
        }),
        ..Default::default()
    })
}

fn register(o: &mut Overlay<'_>, now: u64, c: &RegisterChunkserverCmd) -> Res {
    let known = o
        .get(&uuid_key(&c.uuid))
        .and_then(|v| v.try_into().ok().map(u64::from_be_bytes));
    let (id, epoch, rec) = match known.and_then(|id| get_chunkserver(o, id)) {
        Some(rec) => (rec.id, rec.epoch + 1, rec),
        None => {
            let id = get_u64(o, NEXT_SERVER_ID).max(1);
            o.put(NEXT_SERVER_ID.to_vec(), (id + 1).to_be_bytes().to_vec());
            o.put(uuid_key(&c.uuid), id.to_be_bytes().to_vec());
            (id, 1, ChunkserverRecord::default())
        }
    };
    let rec = ChunkserverRecord {
        version: RECORD_VERSION,
        id,
        epoch,
        addr: c.addr.clone(),
        rack: c.rack.clone(),
        capacity_bytes: c.capacity_bytes,
        uuid: c.uuid.clone(),
        registered_ms: now,
        last_heartbeat_ms: now,
        ..rec
    };
    o.put(server_key(id), rec.encode_to_vec());
    Ok(CommandResult {
        chunkserver_id: id,
        chunkserver_epoch: epoch,
        ..Default::default()
    })
}

fn server_update(o: &mut Overlay<'_>, now: u64, c: &ChunkserverUpdateCmd) -> Res {
    let mut rec = get_chunkserver(o, c.id).ok_or(StateError::UnknownChunkserver(c.id))?;
    if rec.epoch != c.epoch {
        return Err(StateError::StaleEpoch {
            id: c.id,
            got: c.epoch,
            current: rec.epoch,
        });
    }
    rec.capacity_bytes = c.capacity_bytes;
    rec.used_bytes = c.used_bytes;
    rec.chunks = c.chunks;
    rec.disk_full = c.disk_full;
    rec.last_heartbeat_ms = now;
    o.put(server_key(c.id), rec.encode_to_vec());
    Ok(CommandResult {
        chunkserver_id: rec.id,
        chunkserver_epoch: rec.epoch,
        ..Default::default()
    })
}

fn create_multipart(o: &mut Overlay<'_>, now: u64, c: &CreateMultipartCmd, rules: Rules) -> Res {
    let u = c
        .upload
        .clone()
        .ok_or_else(|| StateError::BadCommand("no upload".into()))?;
    get_bucket(o, &u.bucket).ok_or_else(|| StateError::NoSuchBucket(u.bucket.clone()))?;
    rules.object_key(&u.key)?;
    rules.upload_id(&u.upload_id)?;
    validate::user_metadata(&u.user_metadata)?;
    if rules != Rules::V1 {
        validate::system_metadata(&u.content_type, &u.system_metadata)?;
    }
    if rules == Rules::V6 {
        check_upload_checksum(&u)?;
    }
    permissions::check_object_acl(&u.acl)?;
    crate::tagging::validate_object(&u.tags)?;
    let u = MultipartUpload {
        version: RECORD_VERSION,
        initiated_ms: now,
        ..u
    };
    o.put(
        upload_key(&u.bucket, &u.key, &u.upload_id),
        u.encode_to_vec(),
    );
    Ok(CommandResult {
        upload_id: u.upload_id,
        ..Default::default()
    })
}

fn put_part(o: &mut Overlay<'_>, now: u64, c: &PutPartCmd, rules: Rules) -> Res {
    get_upload(o, &c.bucket, &c.key, &c.upload_id)
        .ok_or_else(|| StateError::NoSuchUpload(c.upload_id.clone()))?;
    let replication = bucket_replication(o, &c.bucket);
    let mut p = c
        .part
        .clone()
        .ok_or_else(|| StateError::BadCommand("no part".into()))?;
    rules.part(&p)?;
    check_new_refs(o, &p.chunks)?;
    stored_refs(&mut p.chunks);
    validate::part_number(p.part_number)?;
    if part_md5(&p.etag).is_none() {
        return Err(StateError::InvalidPart(format!(
            "part {} etag {:?} is not an MD5 hex digest",
            p.part_number, p.etag
        )));
    }
    if !p.inline_data.is_empty() {
        return Err(StateError::InvalidArgument(
            "parts are stored as chunks, never inline".into(),
        ));
    }
    let key = part_key(&c.bucket, &c.key, &c.upload_id, p.part_number);
    if let Some(old) = get_msg::<PartRecord>(o, &key) {
        adjust_refs(o, now, &old.chunks, -1, 0);
    }
    adjust_refs(o, now, &p.chunks, 1, replication);
    let p = PartRecord {
        version: RECORD_VERSION,
        mtime_ms: now,
        ..p
    };
    o.put(key, p.encode_to_vec());
    Ok(CommandResult::default())
}

fn upload_parts(o: &dyn KvRead, bucket: &str, key: &str, id: &str) -> BTreeMap<u32, PartRecord> {
    let prefix = part_prefix(bucket, key, id);
    scan_msgs::<PartRecord>(o, &prefix, MAX_PART_NUMBER as usize + 1)
        .into_iter()
        .map(|p| (p.part_number, p))
        .collect()
}

fn complete_multipart(
    o: &mut Overlay<'_>,
    index: u64,
    now: u64,
    c: &CompleteMultipartCmd,
    rules: Rules,
) -> Res {
    let u = get_upload(o, &c.bucket, &c.key, &c.upload_id)
        .ok_or_else(|| StateError::NoSuchUpload(c.upload_id.clone()))?;
    if c.parts.is_empty() {
        return Err(StateError::InvalidArgument("no parts".into()));
    }
    if c.parts
        .windows(2)
        .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(StateError::InvalidPartOrder);
    }
    let key = object_key(&c.bucket, &c.key);
    let old: Option<Manifest> = get_msg(o, &key);
    check_write_condition(old.as_ref(), c.if_match_etag.as_deref(), rules)?;
    let stored = upload_parts(o, &c.bucket, &c.key, &c.upload_id);
    let mut chosen = Vec::with_capacity(c.parts.len());
    for (i, cp) in c.parts.iter().enumerate() {
        let p = stored
            .get(&cp.part_number)
            .filter(|p| p.etag.trim_matches('"') == cp.etag.trim_matches('"'))
            .ok_or_else(|| {
                StateError::InvalidPart(format!("part {} missing or etag differs", cp.part_number))
            })?;
        if i + 1 < c.parts.len() && p.size < MIN_PART_BYTES {
            return Err(StateError::EntityTooSmall(cp.part_number));
        }
        chosen.push(p.clone());
    }
    let mut m = multipart_manifest(&u, &chosen, index, now)?;
    if rules == Rules::V6 {
        completion_records(&mut m, &u, &chosen)?;
    }
    if rules != Rules::V1 {
        validate::manifest(&m)?;
    }
    // The parts' references move to the object; parts not chosen are dropped.
    for p in stored.values() {
        adjust_refs(o, now, &p.chunks, -1, 0);
        o.delete(part_key(&c.bucket, &c.key, &c.upload_id, p.part_number));
    }
    o.delete(upload_key(&c.bucket, &c.key, &c.upload_id));
    let m = write_version(o, index, now, &c.bucket, &c.key, m)?;
    let name = "ObjectCreated:CompleteMultipartUpload";
    notify_apply::object_event(o, name, &c.bucket, &c.key, Some(&m), "");
    Ok(CommandResult {
        manifest: Some(m),
        ..Default::default()
    })
}

/// The binary MD5 a part etag names: 32 hex digits, quotes allowed around them (S3 quotes
/// etags on the wire). `None` for anything else.
pub fn part_md5(etag: &str) -> Option<[u8; 16]> {
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(etag.trim_matches('"'), &mut md5).ok()?;
    Some(md5)
}

/// S3 multipart ETag: hex(md5(concat(binary md5 of each part))) + "-N". The one
/// implementation (the state machine computes it on completion; the client and the gateway
/// only carry its result). `None` when a part etag is not an MD5 hex digest: such an etag is a
/// bug or a forged part, never something to hash as if it were zeros.
pub fn multipart_etag<S: AsRef<str>>(part_etags: &[S]) -> Option<String> {
    let mut h = Md5::new();
    for e in part_etags {
        h.update(part_md5(e.as_ref())?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(h.finalize()),
        part_etags.len()
    ))
}

/// The manifest of a completed upload, or `InvalidPart` when a stored part's etag is not an MD5
/// hex digest (`put_part` refuses those, so only a record from before that check can).
fn multipart_manifest(
    u: &MultipartUpload,
    parts: &[PartRecord],
    index: u64,
    now: u64,
) -> Result<Manifest, StateError> {
    let etags: Vec<&str> = parts.iter().map(|p| p.etag.as_str()).collect();
    let etag = multipart_etag(&etags)
        .ok_or_else(|| StateError::InvalidPart("a part etag is not an MD5 hex digest".into()))?;
    let size = parts
        .iter()
        .try_fold(0u64, |n, p| n.checked_add(p.size))
        .ok_or_else(|| StateError::InvalidArgument("part sizes overflow".into()))?;
    Ok(Manifest {
        version: MANIFEST_VERSION,
        size,
        etag,
        content_type: u.content_type.clone(),
        user_metadata: u.user_metadata.clone(),
        system_metadata: u.system_metadata.clone(),
        chunks: parts
            .iter()
            .flat_map(|p| p.chunks.iter().cloned())
            .collect(),
        part_sizes: parts.iter().map(|p| p.size).collect(),
        mtime_ms: now,
        object_version: index,
        inline_data: Vec::new(),
        // The ACL given when the upload started (checked then).
        acl: u.acl.clone(),
        lock_mode: u.lock_mode.clone(),
        retain_until_ms: u.retain_until_ms,
        legal_hold: u.legal_hold,
        // The tags given when the upload started (checked then).
        tags: u.tags.clone(),
        ..Default::default()
    })
}

fn abort_multipart(o: &mut Overlay<'_>, now: u64, c: &AbortMultipartCmd) -> Res {
    get_upload(o, &c.bucket, &c.key, &c.upload_id)
        .ok_or_else(|| StateError::NoSuchUpload(c.upload_id.clone()))?;
    for p in upload_parts(o, &c.bucket, &c.key, &c.upload_id).values() {
        adjust_refs(o, now, &p.chunks, -1, 0);
        o.delete(part_key(&c.bucket, &c.key, &c.upload_id, p.part_number));
    }
    o.delete(upload_key(&c.bucket, &c.key, &c.upload_id));
    Ok(CommandResult::default())
}

/// Check that every chunk's refcount equals the references from manifests and parts, that
/// counters match, and that the client session table is consistent (used by tests after
/// every apply).
pub fn check_invariants(kv: &dyn KvRead) -> Result<(), String> {
    let mut refs: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let (mut objects, mut logical) = (0u64, 0u64);
    let (mut tails, mut stats_records) = (0usize, 0usize);
    let versions = kv.scan(b"v/", prefix_end(b"v/").as_deref(), usize::MAX);
    for (k, v) in kv
        .scan(b"o/", prefix_end(b"o/").as_deref(), usize::MAX)
        .into_iter()
        .chain(versions)
    {
        let m: Manifest = crate::record::decode(&k, &v).map_err(|e| e.to_string())?;
        if m.delete_marker {
            continue;
        }
        objects += 1;
        logical += m.size;
        for c in &m.chunks {
            *refs.entry(c.sha256.clone()).or_default() += 1;
        }
        if let Some(p) = &m.parquet {
            tails += 1;
            stats_records += usize::from(p.has_stats);
        }
    }
    // Every Parquet index belongs to a version that says it has one (issue 16).
    let stored = |p: &[u8]| kv.scan(p, prefix_end(p).as_deref(), usize::MAX).len();
    if (stored(b"f/"), stored(b"g/")) != (tails, stats_records) {
        return Err(format!(
            "{} Parquet tails and {} statistics stored, versions name {tails} and {stats_records}",
            stored(b"f/"),
            stored(b"g/")
        ));
    }
    for (k, v) in kv.scan(b"p/", prefix_end(b"p/").as_deref(), usize::MAX) {
        let p: PartRecord = crate::record::decode(&k, &v).map_err(|e| e.to_string())?;
        for c in &p.chunks {
            *refs.entry(c.sha256.clone()).or_default() += 1;
        }
    }
    for (sha, ci) in scan_chunks(kv, &[], usize::MAX) {
        let want = refs.remove(&sha).unwrap_or(0);
        if ci.refcount != want {
            return Err(format!(
                "chunk {} refcount {} but {} references",
                hex::encode(&sha),
                ci.refcount,
                want
            ));
        }
    }
    if let Some((sha, n)) = refs.into_iter().next() {
        return Err(format!(
            "chunk {} referenced {n} times but has no record",
            hex::encode(sha)
        ));
    }
    let st = stats(kv);
    if st.objects != objects || st.logical_bytes != logical {
        return Err(format!(
            "counters {st:?} but {objects} objects, {logical} bytes"
        ));
    }
    users::check_usage(kv)?;
    sessions::check_all(kv)
}
