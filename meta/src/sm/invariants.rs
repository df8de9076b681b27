//! Invariants checked on every command in release builds, before its mutations are returned
//! to the driver (and so before the batch that makes them durable is written).
//!
//! **Refcounts equal references** (`refcounts-equal-references` in docs/architecture.md),
//! checked incrementally: for every chunk whose references (manifests `o/` and `v/`, parts `p/`) or
//! record (`c/`) a command changes, the change of its refcount equals the change of its
//! references. Given a state where the invariant holds, the state after the command holds it
//! too. The cost is the old values of the keys the command writes (point reads), never a scan.
//! The full check, [`super::check_invariants`], scans everything and runs in tests after
//! every step.

use std::collections::BTreeMap;

use anode_proto::*;

use crate::kv::{KvRead, Mutation};
use crate::record::{self, Record, RecordError};

/// A command's mutations would break an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantError {
    /// A chunk's refcount changed by a different amount than its references.
    #[error(
        "chunk {sha}: refcount changes by {refcount_delta} but its references by {refs_delta}"
    )]
    RefcountDelta {
        /// Chunk hash, hex.
        sha: String,
        /// Change of `ChunkInfo.refcount` (a missing record counts as 0).
        refcount_delta: i64,
        /// Change of the number of references from manifests and parts.
        refs_delta: i64,
    },
    /// A record the check reads did not decode.
    #[error(transparent)]
    Record(#[from] RecordError),
}

#[derive(Default)]
struct Deltas {
    refs: i64,
    refcount: i64,
}

fn decode_opt<M: Record>(key: &[u8], v: Option<&Vec<u8>>) -> Result<Option<M>, RecordError> {
    v.map(|v| record::decode(key, v)).transpose()
}

fn count_refs(deltas: &mut BTreeMap<Vec<u8>, Deltas>, chunks: &[ChunkRef], sign: i64) {
    for c in chunks {
        deltas.entry(c.sha256.clone()).or_default().refs += sign;
    }
}

/// Record the reference and refcount changes of writing `new` (None: delete) at `key`, whose
/// value before the command is `old`.
fn account(
    deltas: &mut BTreeMap<Vec<u8>, Deltas>,
    key: &[u8],
    old: Option<&Vec<u8>>,
    new: Option<&Vec<u8>>,
) -> Result<(), RecordError> {
    match key.get(..2).unwrap_or_default() {
        b"o/" | b"v/" => {
            let chunks = |m: Option<Manifest>| m.map(|m| m.chunks).unwrap_or_default();
            count_refs(deltas, &chunks(decode_opt(key, old)?), -1);
            count_refs(deltas, &chunks(decode_opt(key, new)?), 1);
        }
        b"p/" => {
            let chunks = |p: Option<PartRecord>| p.map(|p| p.chunks).unwrap_or_default();
            count_refs(deltas, &chunks(decode_opt(key, old)?), -1);
            count_refs(deltas, &chunks(decode_opt(key, new)?), 1);
        }
        b"c/" => {
            let rc = |c: Option<ChunkInfo>| c.map_or(0, |c| c.refcount as i64);
            let d = rc(decode_opt(key, new)?) - rc(decode_opt(key, old)?);
            deltas.entry(key[2..].to_vec()).or_default().refcount += d;
        }
        _ => {}
    }
    Ok(())
}

/// Check that applying `muts` (in order) to `base` changes every chunk's refcount by exactly
/// the change of its references. See the module documentation.
pub fn check_refcount_deltas(base: &dyn KvRead, muts: &[Mutation]) -> Result<(), InvariantError> {
    // The final value of each written key (a later mutation of the same key wins).
    let mut last: BTreeMap<&[u8], Option<&Vec<u8>>> = BTreeMap::new();
    for m in muts {
        match m {
            Mutation::Put(k, v) => last.insert(k, Some(v)),
            Mutation::Delete(k) => last.insert(k, None),
        };
    }
    let mut deltas: BTreeMap<Vec<u8>, Deltas> = BTreeMap::new();
    for (key, new) in last {
        if matches!(key.get(..2), Some(b"o/" | b"v/" | b"p/" | b"c/")) {
            let old = base.get(key);
            account(&mut deltas, key, old.as_ref(), new)?;
        }
    }
    match deltas.into_iter().find(|(_, d)| d.refs != d.refcount) {
        Some((sha, d)) => Err(InvariantError::RefcountDelta {
            sha: hex::encode(&sha),
            refcount_delta: d.refcount,
            refs_delta: d.refs,
        }),
        None => Ok(()),
    }
}

/// Panic (stopping the member: a panic aborts the process) when `muts` break an invariant.
/// Called by [`super::apply`] for every command.
pub(super) fn assert_command(base: &dyn KvRead, index: u64, muts: &[Mutation]) {
    if let Err(e) = check_refcount_deltas(base, muts) {
        panic!(
            "state machine invariant violated by the command at raft index {index} \
             (nothing was written): {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::kv::MemKv;

    fn chunk_ref(sha: u8) -> ChunkRef {
        ChunkRef {
            sha256: vec![sha],
            length: 1,
            ..Default::default()
        }
    }

    fn manifest(shas: &[u8]) -> Vec<u8> {
        Manifest {
            version: MANIFEST_VERSION,
            chunks: shas.iter().map(|s| chunk_ref(*s)).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn chunk(refcount: u64) -> Vec<u8> {
        ChunkInfo {
            version: RECORD_VERSION,
            refcount,
            length: 1,
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// One object `o/b\0k` referencing chunk 1 twice and chunk 2 once.
    fn base() -> MemKv {
        let mut kv = MemKv::new();
        kv.apply(&[
            Mutation::Put(b"o/b\0k".to_vec(), manifest(&[1, 1, 2])),
            Mutation::Put(b"c/\x01".to_vec(), chunk(2)),
            Mutation::Put(b"c/\x02".to_vec(), chunk(1)),
        ]);
        kv
    }

    #[test]
    fn balanced_changes_pass() {
        // Overwrite the object with one referencing chunks 2 and 3; chunk 1 drops to 0.
        let muts = vec![
            Mutation::Put(b"o/b\0k".to_vec(), manifest(&[2, 3])),
            Mutation::Put(b"c/\x01".to_vec(), chunk(0)),
            Mutation::Put(b"c/\x03".to_vec(), chunk(1)),
            Mutation::Put(b"s/x".to_vec(), b"ignored".to_vec()),
        ];
        check_refcount_deltas(&base(), &muts).unwrap();
        // Deleting the object and every chunk record it held is balanced too.
        let muts = vec![
            Mutation::Delete(b"o/b\0k".to_vec()),
            Mutation::Delete(b"c/\x01".to_vec()),
            Mutation::Delete(b"c/\x02".to_vec()),
        ];
        check_refcount_deltas(&base(), &muts).unwrap();
    }

    #[test]
    fn a_reference_without_its_refcount_is_caught() {
        // A new part referencing chunk 2, with chunk 2's record left unchanged.
        let part = PartRecord {
            version: RECORD_VERSION,
            part_number: 1,
            chunks: vec![chunk_ref(2)],
            ..Default::default()
        };
        let muts = vec![Mutation::Put(
            b"p/b\0k\0u\0\0\0\0\x01".to_vec(),
            part.encode_to_vec(),
        )];
        let err = check_refcount_deltas(&base(), &muts).unwrap_err();
        assert_eq!(
            err,
            InvariantError::RefcountDelta {
                sha: "02".into(),
                refcount_delta: 0,
                refs_delta: 1
            }
        );
    }

    #[test]
    fn dropping_a_referenced_chunk_record_is_caught() {
        let muts = vec![Mutation::Delete(b"c/\x01".to_vec())];
        let err = check_refcount_deltas(&base(), &muts).unwrap_err();
        assert!(
            matches!(
                err,
                InvariantError::RefcountDelta {
                    refcount_delta: -2,
                    refs_delta: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    #[should_panic(expected = "chunk 01 refcount underflow: 0 - 1")]
    fn a_refcount_underflow_stops_the_member() {
        // A broken state: the object references chunk 1 twice, its record counts 1.
        let mut kv = base();
        kv.apply(&[
            Mutation::Put(b"b/b".to_vec(), BucketConfig::default().encode_to_vec()),
            Mutation::Put(b"c/\x01".to_vec(), chunk(1)),
        ]);
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms: 1,
            session: None,
            op: Some(command::Op::DeleteObject(DeleteObjectCmd {
                bucket: "b".into(),
                key: "k".into(),
                ..Default::default()
            })),
        };
        let _ = super::super::apply(&kv, 7, &cmd);
    }

    #[test]
    #[should_panic(expected = "invariant violated by the command at raft index 7")]
    fn an_unbalanced_command_stops_the_member() {
        let muts = vec![Mutation::Delete(b"c/\x02".to_vec())];
        assert_command(&base(), 7, &muts);
    }

    #[test]
    fn the_last_mutation_of_a_key_counts() {
        let muts = vec![
            Mutation::Put(b"c/\x01".to_vec(), chunk(5)),
            Mutation::Put(b"c/\x01".to_vec(), chunk(2)),
        ];
        check_refcount_deltas(&base(), &muts).unwrap();
    }
}
