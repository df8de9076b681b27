//! Versioned decoding: the one decode step every persisted or replicated record goes through.
//!
//! Every message the master persists or replicates (state machine records, raft commands, raft
//! snapshot payloads, membership change contexts) is a prost message whose field 1 is its
//! encoding `version`. [`decode`] peeks that field before decoding the rest, then:
//! - **newer** than this build reads ([`Record::CURRENT`]): [`RecordError::TooNew`], naming
//!   the key, the version found and the version supported. Callers stop (refuse to start, halt
//!   the node): guessing at a newer layout would corrupt replicated state.
//! - **older** (0 = written before versions were stamped): decoded and passed through
//!   [`Record::migrate`], the chain of steps from that version to the current form (the model
//!   is Garage's `Migrate`).
//! - **current**: decoded as is.
//!
//! Old encodings stay readable forever: `meta/tests/golden/` holds the encodings of every
//! record kind as written by each version, and `meta/tests/golden.rs` decodes them.

use anode_proto::*;
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::Message;

/// Why a persisted record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record was written by a newer build.
    #[error(
        "{kind} at {key}: version {found} is newer than this build reads (up to {supported}); \
         run a newer anode"
    )]
    TooNew {
        /// Record kind (e.g. `Manifest`).
        kind: &'static str,
        /// Where it was read (a state machine key, escaped, or a raft entry).
        key: String,
        /// Version found in the record.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The bytes do not decode as that record kind.
    #[error("{kind} at {key} does not decode: {detail}")]
    Corrupt {
        /// Record kind.
        kind: &'static str,
        /// Where it was read.
        key: String,
        /// Decoder message.
        detail: String,
    },
}

/// A persisted message kind: the version this build writes and the decode step from older
/// versions.
pub trait Record: Message + Default {
    /// Name used in error messages.
    const KIND: &'static str;
    /// The version this build writes, and the newest it reads.
    const CURRENT: u32;
    /// Bring a record decoded from an encoding of version `from` (< `CURRENT`) to the current
    /// form, one version step at a time.
    fn migrate(self, from: u32) -> Self;
}

/// Implements [`Record`] for messages whose every older version decodes as the current one:
/// version 0 (no version stamped; the layout of version 1), and for `Command` and
/// `SnapshotData` version 1, which version 2 only extends (a v1 command is a v2 command
/// without a client session; a v1 snapshot holds no session keys). Migration stamps the
/// current version. A kind that changes its layout gets a hand-written `migrate` with one
/// step per version.
macro_rules! versioned {
    ($($t:ty => $current:expr),* $(,)?) => {$(
        impl Record for $t {
            const KIND: &'static str = stringify!($t);
            const CURRENT: u32 = $current;
            fn migrate(mut self, from: u32) -> Self {
                if from < Self::CURRENT {
                    // Same fields; newer versions only added optional ones.
                    self.version = Self::CURRENT;
                }
                self
            }
        }
    )*};
}

versioned! {
    BucketConfig => RECORD_VERSION,
    Manifest => MANIFEST_VERSION,
    AccessKey => RECORD_VERSION,
    User => RECORD_VERSION,
    ChunkserverRecord => RECORD_VERSION,
    ChunkInfo => RECORD_VERSION,
    MultipartUpload => RECORD_VERSION,
    PartRecord => RECORD_VERSION,
    SnapshotData => SNAPSHOT_VERSION,
    MemberChangeContext => RECORD_VERSION,
    ClientSessionRecord => RECORD_VERSION,
    SessionAnswer => RECORD_VERSION,
    LifecycleProgress => RECORD_VERSION,
    NotificationTarget => RECORD_VERSION,
    NotificationEvent => RECORD_VERSION,
    ParquetTail => RECORD_VERSION,
    ParquetStats => RECORD_VERSION,
}

/// Commands keep the version they were written with (version 0 reads as 1): `apply` takes every
/// version up to `COMMAND_VERSION` as it is, and a version decides which input checks apply
/// (`sm::Rules`), so a log an older build wrote replays as it applied then. A v1 command is a
/// v2 command without a client session.
impl Record for Command {
    const KIND: &'static str = "Command";
    const CURRENT: u32 = COMMAND_VERSION;
    fn migrate(mut self, from: u32) -> Self {
        if from == 0 {
            self.version = 1;
        }
        self
    }
}

/// The `version` (field 1) of an encoded record, without decoding the rest: 0 when absent.
/// Like protobuf decoding, the last occurrence of the field wins, so the version checked is
/// the version the decoded record carries. (A first-occurrence peek let a record with
/// `version` 1 then 8 pass as version 1 and decode as 8; found by the `master_records` fuzz
/// target.) The other fields are skipped, not decoded. Bytes that stop parsing after a
/// version was seen give that version: a newer layout that this build cannot parse is still
/// reported as newer (and any other such record fails to decode afterwards).
pub fn peek_version(bytes: &[u8]) -> Result<u32, String> {
    let mut buf = bytes;
    let mut version = None;
    while !buf.is_empty() {
        match next_version_field(&mut buf) {
            Ok(Some(v)) => version = Some(v),
            Ok(None) => {}
            Err(e) => return version.ok_or(e),
        }
    }
    Ok(version.unwrap_or(0))
}

/// Read one field: `Some(version)` for field 1, else skip it.
fn next_version_field(buf: &mut &[u8]) -> Result<Option<u32>, String> {
    let (tag, wire) = decode_key(buf).map_err(|e| e.to_string())?;
    if tag == 1 && wire == WireType::Varint {
        let v = decode_varint(buf).map_err(|e| e.to_string())?;
        // Protobuf truncates an out-of-range uint32; saturate instead, so it reads as new.
        return Ok(Some(u32::try_from(v).unwrap_or(u32::MAX)));
    }
    skip_field(wire, tag, buf, DecodeContext::default()).map_err(|e| e.to_string())?;
    Ok(None)
}

/// Escape a key for messages (`c/\x01\x02`).
pub fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// Decode a record read at `key` (used only in error messages): refuse a newer version,
/// migrate an older one.
pub fn decode<R: Record>(key: &[u8], bytes: &[u8]) -> Result<R, RecordError> {
    let corrupt = |detail: String| RecordError::Corrupt {
        kind: R::KIND,
        key: show_key(key),
        detail,
    };
    let found = peek_version(bytes).map_err(corrupt)?;
    if found > R::CURRENT {
        return Err(RecordError::TooNew {
            kind: R::KIND,
            key: show_key(key),
            found,
            supported: R::CURRENT,
        });
    }
    let r = R::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    Ok(if found < R::CURRENT {
        r.migrate(found)
    } else {
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_finds_the_version_anywhere_and_zero_when_absent() {
        let b = BucketConfig {
            version: 7,
            name: "abc".into(),
            ..Default::default()
        };
        assert_eq!(peek_version(&b.encode_to_vec()), Ok(7));
        // Field 1 after another field (legal protobuf, not what prost writes).
        let mut late = BucketConfig {
            name: "abc".into(),
            ..Default::default()
        }
        .encode_to_vec();
        late.extend_from_slice(&[0x08, 0x05]);
        assert_eq!(peek_version(&late), Ok(5));
        assert_eq!(peek_version(&[]), Ok(0));
        assert!(peek_version(&[0x0a, 0x09]).is_err(), "length past the end");
    }

    /// A repeated version field counts as protobuf decodes it: the last one. (Regression:
    /// the first one was checked, so `version 1, ..., version 8` passed as current.)
    #[test]
    fn the_last_version_field_is_the_one_checked() {
        let mut twice = ChunkInfo {
            version: RECORD_VERSION,
            refcount: 3,
            ..Default::default()
        }
        .encode_to_vec();
        twice.extend_from_slice(&[0x08, 0x08]);
        assert_eq!(peek_version(&twice), Ok(8));
        assert!(matches!(
            decode::<ChunkInfo>(b"c/\x01", &twice),
            Err(RecordError::TooNew { found: 8, .. })
        ));
        let mut back = twice.clone();
        back.extend_from_slice(&[0x08, 0x01]);
        assert_eq!(
            decode::<ChunkInfo>(b"c/\x01", &back).map(|c| c.refcount),
            Ok(3)
        );
    }

    #[test]
    fn version_zero_is_migrated_and_newer_is_refused() {
        let v0 = ChunkInfo {
            version: 0,
            refcount: 3,
            ..Default::default()
        };
        let got: ChunkInfo = decode(b"c/\x01", &v0.encode_to_vec()).unwrap();
        assert_eq!(got.version, RECORD_VERSION);
        assert_eq!(got.refcount, 3);
        let v2 = ChunkInfo {
            version: RECORD_VERSION + 1,
            ..v0
        };
        let err = decode::<ChunkInfo>(b"c/\x01", &v2.encode_to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "ChunkInfo at c/\\x01: version {} is newer than this build reads (up to {}); \
                 run a newer anode",
                RECORD_VERSION + 1,
                RECORD_VERSION
            )
        );
    }
}
