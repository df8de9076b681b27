//! Reading the state machine's stored values: every read goes through
//! [`crate::record::decode`] (version check and migration); [`check_record`] checks any key of
//! the key space by its prefix, and [`decode_snapshot`] checks a whole raft snapshot payload
//! before it replaces the state.

use anode_proto::*;

use crate::kv::KvRead;
use crate::record::{self, show_key, Record, RecordError};

use super::{prefix_end, sessions};

/// Decode the record at `key`, if any. A record that does not decode, or was written by a
/// newer build, is replicated state this member cannot interpret: stop rather than guess (the
/// panic aborts the process; see docs/architecture.md, "A panic aborts the process").
pub(super) fn get_msg<M: Record>(kv: &dyn KvRead, key: &[u8]) -> Option<M> {
    let v = kv.get(key)?;
    Some(must_decode(key, &v))
}

/// Decode a stored record or stop (see [`get_msg`]).
pub(super) fn must_decode<M: Record>(key: &[u8], value: &[u8]) -> M {
    record::decode(key, value).unwrap_or_else(|e| panic!("unreadable state record: {e}"))
}

/// Up to `limit` records under `prefix`, decoded.
pub(super) fn scan_msgs<M: Record>(kv: &dyn KvRead, prefix: &[u8], limit: usize) -> Vec<M> {
    kv.scan(prefix, prefix_end(prefix).as_deref(), limit)
        .into_iter()
        .map(|(k, v)| must_decode(&k, &v))
        .collect()
}

fn check<M: Record>(key: &[u8], value: &[u8]) -> Result<(), RecordError> {
    record::decode::<M>(key, value).map(|_| ())
}

fn raw_error(key: &[u8], kind: &'static str, detail: &str) -> RecordError {
    RecordError::Corrupt {
        kind,
        key: show_key(key),
        detail: detail.into(),
    }
}

/// Check that `value` is a readable record for `key` under the key layout of
/// [`crate::sm`]: a prost record of a version this build reads, or a raw value of the right
/// shape (`u/`, `x/`: u64 big-endian; `r/`: a UTF-8 address; `t/`: empty, the session idle
/// index). Unknown prefixes are refused:
/// a new key kind comes with a new snapshot and store format version.
pub fn check_record(key: &[u8], value: &[u8]) -> Result<(), RecordError> {
    match key.get(..2).unwrap_or_default() {
        b"b/" => check::<BucketConfig>(key, value),
        b"o/" | b"v/" => check::<Manifest>(key, value),
        b"y/" => check::<LifecycleProgress>(key, value),
        b"e/" => check::<NotificationTarget>(key, value),
        b"q/" => check::<NotificationEvent>(key, value),
        b"f/" => check::<ParquetTail>(key, value),
        b"g/" => check::<ParquetStats>(key, value),
        b"k/" => check::<AccessKey>(key, value),
        b"i/" => check::<User>(key, value),
        b"s/" => check::<ChunkserverRecord>(key, value),
        b"c/" => check::<ChunkInfo>(key, value),
        b"m/" => check::<MultipartUpload>(key, value),
        b"p/" => check::<PartRecord>(key, value),
        b"l/" if key.len() == sessions::SESSION_KEY_LEN => check::<ClientSessionRecord>(key, value),
        b"a/" if key.len() == sessions::ANSWER_KEY_LEN => check::<SessionAnswer>(key, value),
        b"t/" if key.len() == sessions::IDLE_KEY_LEN && value.is_empty() => Ok(()),
        b"l/" | b"a/" | b"t/" => Err(raw_error(key, "client session key", "bad length")),
        b"u/" | b"x/" | b"n/" if value.len() == 8 => Ok(()),
        b"u/" | b"x/" | b"n/" => Err(raw_error(key, "u64 value", "not 8 bytes")),
        b"r/" if std::str::from_utf8(value).is_ok() => Ok(()),
        b"r/" => Err(raw_error(key, "member address", "not UTF-8")),
        _ => Err(raw_error(key, "state key", "unknown key prefix")),
    }
}

/// Decode a raft snapshot payload ([`SnapshotData`]) and check every record in it, before
/// anything is written: a snapshot from a newer leader is refused as a whole.
pub fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotData, RecordError> {
    let data: SnapshotData = record::decode(b"<raft snapshot data>", bytes)?;
    for p in &data.pairs {
        check_record(&p.key, &p.value)?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn check_record_knows_every_prefix() {
        let bucket = BucketConfig {
            version: RECORD_VERSION,
            name: "b1".into(),
            ..Default::default()
        };
        assert!(check_record(b"b/b1", &bucket.encode_to_vec()).is_ok());
        assert!(check_record(b"x/next_chunkserver_id", &7u64.to_be_bytes()).is_ok());
        assert!(check_record(b"x/next_chunkserver_id", &[1, 2]).is_err());
        assert!(check_record(b"r/\0\0\0\0\0\0\0\x01", b"127.0.0.1:1").is_ok());
        assert!(check_record(b"r/\0\0\0\0\0\0\0\x01", &[0xff]).is_err());
        assert!(check_record(b"z/what", b"").is_err());
        assert!(check_record(b"c/\x01", &[0x0a, 0x09]).is_err());
    }

    #[test]
    fn a_snapshot_holding_a_newer_record_is_refused() {
        let newer = ChunkInfo {
            version: RECORD_VERSION + 1,
            ..Default::default()
        };
        let snap = SnapshotData {
            version: SNAPSHOT_VERSION,
            pairs: vec![KvPair {
                key: b"c/\x01".to_vec(),
                value: newer.encode_to_vec(),
            }],
            descriptor: None,
        };
        let err = decode_snapshot(&snap.encode_to_vec()).unwrap_err();
        assert!(
            matches!(err, RecordError::TooNew { kind: "ChunkInfo", found, .. }
                if found == RECORD_VERSION + 1),
            "{err}"
        );
    }
}
