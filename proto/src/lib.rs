//! Anode's wire types. Architecture invariant: only this crate defines types that cross a
//! process boundary or are persisted (raft commands, manifests, registry records).

/// Version 1 of the Anode protocol (`anode.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/anode.v1.rs"));
}

pub use v1::*;

pub mod error;
#[cfg(feature = "grpc")]
pub use error::grpc::grpc_code;
pub use error::Refusal;

/// Current encoding version of [`v1::Command`]. Version 2 added the client session
/// (`Command.session`); a version 1 command reads as a version 2 command without one.
/// Version 3 added the user, quota and key-state operations (`CreateUser`, `DeleteUser`,
/// `SetUserQuota`, `SetBucketQuota`, `SetKeyDisabled`): a member too old for them halts at
/// the first one instead of refusing it where newer members apply it.
/// Version 4 added access configuration (`BucketConfig.access`, `Manifest.acl`,
/// `MultipartUpload.acl`, `SetBucketAccess`, `SetObjectAcl`): a version 3 member would drop
/// those fields while decoding and apply the rest, so it halts at the first version 4
/// command instead.
/// Version 5 added versioning, object lock and lifecycle (`SetBucketVersioning`,
/// `SetBucketObjectLock`, `SetBucketLifecycle`, `SetObjectLock`, `LifecycleBatch`, the version
/// fields of `DeleteObject(s)`): a version 4 member would delete current objects where newer
/// members add delete markers, so it halts at the first version 5 command instead.
/// Version 6 (issue 15) added CORS rules (`SetBucketCors`, `BucketConfig.cors`), tagging
/// (`Manifest.tags`, `MultipartUpload.tags`, `BucketConfig.tags`, `SetObjectTagging`,
/// `SetBucketTagging`), stored checksums, conditional deletes and the completed upload id
/// (`Manifest.checksum_*`, `part_checksums`, `part_etags`, `completed_upload_id`,
/// `PartRecord.checksum_*`, `MultipartUpload.checksum_*`, `DeleteObjectCmd.if_match_*`): a
/// version 5 member would drop those fields while decoding and write different records, so it
/// halts at the first command carrying them instead.
/// Version 7 (issue 15) added event notifications (`SetBucketNotification`,
/// `SetNotificationTarget`, `AckNotifications`, `BucketConfig.notification`).
/// Version 8 (issue 16) added Parquet indexes (`PutObjectCmd.parquet`, `.parquet_copy`,
/// `SetParquetIndex`, `Manifest.parquet`).
pub const COMMAND_VERSION: u32 = 8;
/// Current encoding version of [`v1::Manifest`].
pub const MANIFEST_VERSION: u32 = 1;
/// Current encoding version of records in the master state (buckets, keys, registry, chunks).
pub const RECORD_VERSION: u32 = 1;
/// Largest chunk a chunkserver accepts (the declared length of a `PutChunk`), 64 MiB; the
/// client refuses a larger chunk size. A wire limit, so both ends read it from here.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;
/// Length of a chunk id (the SHA-256 of its content) on the wire.
pub const CHUNK_ID_BYTES: usize = 32;

/// Current encoding version of [`v1::SnapshotData`] (a raft snapshot's payload). Version 2
/// may hold the client session keys (`l/`, `a/`, `t/`), which a version 1 reader refuses.
/// Version 3 streams the state: the raft snapshot carries only a `SnapshotDescriptor`, the
/// records follow in pieces (each a version 3 `SnapshotData` with pairs only); a version 2
/// payload (every pair in the raft snapshot) still installs.
pub const SNAPSHOT_VERSION: u32 = 3;
/// Current format of a master's RocksDB store (column families, meta keys, the layout of the
/// state machine's key space). Stored under the `format` key of the `meta` column family; a
/// store without it is format 0, the pre-versioning layout (identical to format 1).
///
/// Rule: raising [`RECORD_VERSION`], [`MANIFEST_VERSION`] or the key layout raises this too,
/// so a binary that cannot read a store's records refuses to open it instead of failing on
/// the first record it meets. Format 2 added the client session keys (`l/`, `a/`, `t/`);
/// formats 0 and 1 are read as format 2 with no sessions. Format 3 added the second state
/// column family `sm2` and the `sm_cf` key naming the one that holds the state (a streamed
/// snapshot is staged in the other and switched in by rewriting the key); formats 0-2 have
/// their state in `sm` and are read as format 3.
/// Format 4 added the user records (`i/`) and the per-bucket and per-user usage counters
/// (`x/usage/...`); formats 0-3 are read as format 4 without them (a bucket without counters
/// gets them on its first write, `anode_meta::state`).
/// Format 5 added fields within record version 1 (`BucketConfig.access`, `Manifest.acl`,
/// `MultipartUpload.acl`): a format 4 binary would read such records, drop the fields and
/// write them back without (an older binary opening a newer store loses access
/// configuration silently), so it refuses the store instead; formats 0-4 read as format 5
/// (empty fields: the default access).
/// Format 6 added object versions (issue 14): the key ranges `v/` (noncurrent versions and
/// delete markers) and `n/` (where a key's null version sits among them), the version and
/// lock fields of `Manifest`, and the versioning, object lock and lifecycle fields of
/// `BucketConfig`. Formats 0-5 read as format 6 with no versions: every object is the
/// current, `null` version of its key.
/// Format 7 added issue 15's fields within record version 1 (`BucketConfig.cors` and
/// `.tags`, `Manifest.tags` and the stored checksums of manifests, parts and uploads): a
/// format 6 binary would drop them when it rewrites a record, so it refuses the store instead;
/// formats 0-6 read as format 7 with none of them.
/// Format 8 added event notifications: `BucketConfig.notification`, the targets (`e/`) and
/// the event queues (`q/`, counters under `x/nq/` and `x/nd/`); formats 0-7 read as format 8
/// with none.
/// Format 9 added Parquet indexes: `Manifest.parquet`, the tails (`f/`) and statistics (`g/`)
/// beside the manifests; formats 0-8 read as format 9 with none.
pub const STORE_FORMAT_VERSION: u32 = 9;
