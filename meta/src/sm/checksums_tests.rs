//! Tests of issue 15 in the state machine: conditional deletes (ETag, Last-Modified, size;
//! with and without versioning), S3's 2024 conditional writes at command version 6, stored
//! checksums of multipart completions, and the command versions that express them.

use anode_proto::command::Op;
use anode_proto::*;

use super::mem::MemState;
use super::versions::{self, ENABLED};
use super::*;
use crate::checksum::{self as sum, Algorithm};

const B: &str = "cbkt";
/// The leader clock: 1_000_000.5 s, so whole-second comparisons are exercised.
const T0: u64 = 1_000_000_500;
const UPLOAD: &str = "0123456789abcdef0123456789abcdef";
const MIB: u64 = 1 << 20;

fn state(versioned: bool) -> MemState {
    let mut st = MemState::new(T0);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            name: B.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
    if versioned {
        st.propose(Op::SetBucketVersioning(SetBucketVersioningCmd {
            name: B.into(),
            state: ENABLED,
        }))
        .unwrap();
    }
    st
}

fn chunk(tag: u8, length: u64) -> ChunkRef {
    ChunkRef {
        sha256: vec![tag; 32],
        length,
        servers: vec![1, 2, 3],
        uploaded_ms: 1,
    }
}

fn put_if(
    st: &mut MemState,
    key: &str,
    tag: u8,
    cond: Option<&str>,
) -> Result<Manifest, ErrorDetail> {
    st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: B.into(),
        key: key.into(),
        manifest: Some(Manifest {
            size: 10 + u64::from(tag),
            etag: format!("{tag:032x}"),
            chunks: vec![chunk(tag, 10 + u64::from(tag))],
            ..Default::default()
        }),
        if_match_etag: cond.map(str::to_string),
        source: String::new(),
    }))
    .map(|r| r.manifest.unwrap())
}

fn put(st: &mut MemState, key: &str, tag: u8) -> Manifest {
    put_if(st, key, tag, None).unwrap()
}

fn del_if(
    st: &mut MemState,
    key: &str,
    vid: Option<&str>,
    cond: versions::DeleteCondition,
) -> Result<DeleteOutcome, ErrorDetail> {
    st.propose(Op::DeleteObject(DeleteObjectCmd {
        bucket: B.into(),
        key: key.into(),
        version_id: vid.map(str::to_string),
        if_match_etag: cond.etag,
        if_match_last_modified_ms: cond.mtime_ms,
        if_match_size: cond.size,
        ..Default::default()
    }))
    .map(|mut r| r.deletions.pop().unwrap())
}

fn etag(e: &str) -> versions::DeleteCondition {
    versions::DeleteCondition {
        etag: Some(e.into()),
        ..Default::default()
    }
}

fn size(n: u64) -> versions::DeleteCondition {
    versions::DeleteCondition {
        size: Some(n),
        ..Default::default()
    }
}

fn mtime(ms: u64) -> versions::DeleteCondition {
    versions::DeleteCondition {
        mtime_ms: Some(ms),
        ..Default::default()
    }
}

fn code(r: Result<impl std::fmt::Debug, ErrorDetail>) -> ErrorCode {
    r.expect_err("refused").code()
}

#[test]
fn conditional_deletes_unversioned() {
    let mut st = state(false);
    let m = put(&mut st, "k", 1);
    let before = st.kv.clone();
    assert_eq!(
        code(del_if(&mut st, "k", None, etag("bad"))),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(
        code(del_if(&mut st, "k", None, size(m.size + 1))),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(
        code(del_if(&mut st, "k", None, mtime(T0 - 1000))),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(st.kv, before, "a failed condition changes nothing");
    // Last-Modified is compared in whole seconds (an HTTP date has no more).
    let o = del_if(&mut st, "k", None, mtime(T0 - 500)).unwrap();
    assert!(o.existed);
    assert!(get_object(&st.kv, B, "k").is_err());
    // Nothing to delete: any condition is a successful no-op.
    let o = del_if(&mut st, "k", None, etag("bad")).unwrap();
    assert!(!o.existed);
    // Quoted etags, `*` and size.
    put(&mut st, "k", 2);
    assert!(
        del_if(&mut st, "k", None, etag(&format!("\"{:032x}\"", 2)))
            .unwrap()
            .existed
    );
    put(&mut st, "k", 3);
    assert!(del_if(&mut st, "k", None, etag("*")).unwrap().existed);
    let m = put(&mut st, "k", 4);
    assert!(del_if(&mut st, "k", None, size(m.size)).unwrap().existed);
}

#[test]
fn conditional_deletes_versioned() {
    let mut st = state(true);
    // No versions at all: a conditional delete is a no-op and adds no delete marker.
    let o = del_if(&mut st, "k", None, etag("*")).unwrap();
    assert!(!o.existed && !o.delete_marker);
    assert!(!del_if(&mut st, "k", None, etag("bad")).unwrap().existed);
    let m = put(&mut st, "k", 1);
    assert_eq!(
        code(del_if(&mut st, "k", None, etag("bad"))),
        ErrorCode::PreconditionFailed
    );
    // On the current version: a delete marker on top.
    let o = del_if(&mut st, "k", None, etag(&m.etag)).unwrap();
    assert!(o.delete_marker);
    // The newest is now the marker: `*` matches it, another etag or size does not.
    assert_eq!(
        code(del_if(&mut st, "k", None, etag("bad"))),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(
        code(del_if(&mut st, "k", None, size(9999))),
        ErrorCode::PreconditionFailed
    );
    assert!(del_if(&mut st, "k", None, etag("*")).unwrap().delete_marker);
    // On a given version.
    let v = versions::version_id_of(&m).to_string();
    assert_eq!(
        code(del_if(&mut st, "k", Some(&v), size(m.size + 1))),
        ErrorCode::PreconditionFailed
    );
    assert!(versions::get_version(&st.kv, B, "k", Some(&v), false).is_ok());
    let o = del_if(&mut st, "k", Some(&v), mtime(m.mtime_ms)).unwrap();
    assert!(o.existed && !o.delete_marker);
    assert!(versions::get_version(&st.kv, B, "k", Some(&v), false).is_err());
    // The version is gone: a condition on it is a no-op.
    assert!(!del_if(&mut st, "k", Some(&v), etag("bad")).unwrap().existed);
}

#[test]
fn conditional_writes_follow_s3_at_version_6() {
    let mut st = state(true);
    // If-Match on no object: NoSuchKey, `*` included.
    assert_eq!(
        code(put_if(&mut st, "k", 1, Some("*"))),
        ErrorCode::NoSuchKey
    );
    assert_eq!(
        code(put_if(&mut st, "k", 1, Some("bad"))),
        ErrorCode::NoSuchKey
    );
    let m = put_if(&mut st, "k", 1, Some("")).unwrap();
    assert_eq!(
        code(put_if(&mut st, "k", 2, Some(""))),
        ErrorCode::PreconditionFailed
    );
    assert_eq!(
        code(put_if(&mut st, "k", 2, Some("bad"))),
        ErrorCode::PreconditionFailed
    );
    let m2 = put_if(&mut st, "k", 2, Some(&format!("\"{}\"", m.etag))).unwrap();
    put_if(&mut st, "k", 3, Some("*")).unwrap();
    assert_eq!(
        code(put_if(&mut st, "k", 4, Some(&m2.etag))),
        ErrorCode::PreconditionFailed
    );
    // A current delete marker is no object.
    del_if(&mut st, "k", None, Default::default()).unwrap();
    assert_eq!(
        code(put_if(&mut st, "k", 4, Some("*"))),
        ErrorCode::NoSuchKey
    );
    put_if(&mut st, "k", 4, Some("")).unwrap();
}

fn create(st: &mut MemState, key: &str, alg: &str, kind: &str) -> Result<(), ErrorDetail> {
    st.propose(Op::CreateMultipart(CreateMultipartCmd {
        upload: Some(MultipartUpload {
            bucket: B.into(),
            key: key.into(),
            upload_id: UPLOAD.into(),
            checksum_algorithm: alg.into(),
            checksum_type: kind.into(),
            ..Default::default()
        }),
    }))
    .map(|_| ())
}

fn upload_part(st: &mut MemState, key: &str, n: u32, size: u64, alg: &str, value: &str) {
    st.propose(Op::PutPart(PutPartCmd {
        bucket: B.into(),
        key: key.into(),
        upload_id: UPLOAD.into(),
        part: Some(PartRecord {
            part_number: n,
            etag: format!("{n:032x}"),
            size,
            chunks: vec![chunk(n as u8 + 100, size)],
            checksum_algorithm: alg.into(),
            checksum_value: value.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
}

fn complete(st: &mut MemState, key: &str, n: u32) -> Result<Manifest, ErrorDetail> {
    st.propose(Op::CompleteMultipart(CompleteMultipartCmd {
        bucket: B.into(),
        key: key.into(),
        upload_id: UPLOAD.into(),
        parts: (1..=n)
            .map(|i| CompletePart {
                part_number: i,
                etag: format!("{i:032x}"),
            })
            .collect(),
        if_match_etag: None,
    }))
    .map(|r| r.manifest.unwrap())
}

#[test]
fn completions_store_composite_and_full_object_checksums() {
    let bodies: [&[u8]; 2] = [b"first part", b"second"];
    for (alg, kind) in [
        (Algorithm::Sha256, sum::COMPOSITE),
        (Algorithm::Crc32c, sum::COMPOSITE),
        (Algorithm::Crc32, sum::FULL_OBJECT),
        (Algorithm::Crc64Nvme, sum::FULL_OBJECT),
    ] {
        let mut st = state(false);
        let key = format!("mp-{}", alg.name());
        create(&mut st, &key, alg.name(), kind).unwrap();
        let values: Vec<String> = bodies.iter().map(|b| sum::b64(&alg.digest(b))).collect();
        upload_part(&mut st, &key, 1, 5 * MIB, alg.name(), &values[0]);
        upload_part(&mut st, &key, 2, MIB, alg.name(), &values[1]);
        let m = complete(&mut st, &key, 2).unwrap();
        assert_eq!(m.checksum_algorithm, alg.name());
        assert_eq!(m.checksum_type, kind);
        assert_eq!(m.part_checksums, values);
        assert_eq!(m.completed_upload_id, UPLOAD);
        assert_eq!(
            m.part_etags,
            vec![format!("{:032x}", 1), format!("{:032x}", 2)]
        );
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let want = if kind == sum::COMPOSITE {
            sum::composite(alg, &refs).unwrap()
        } else {
            sum::full_object(alg, &[(refs[0], 5 * MIB), (refs[1], MIB)]).unwrap()
        };
        assert_eq!(m.checksum_value, want, "{}", alg.name());
        assert_eq!(get_object(&st.kv, B, &key).unwrap(), m);
    }
}

#[test]
fn full_object_completion_equals_the_crc_of_the_body() {
    // Real part bodies (sizes only matter to the combine), small enough to hash here.
    let mut st = state(false);
    let p1 = vec![7u8; (5 * MIB) as usize];
    let p2 = b"tail".to_vec();
    create(&mut st, "k", "CRC32", sum::FULL_OBJECT).unwrap();
    upload_part(
        &mut st,
        "k",
        1,
        5 * MIB,
        "CRC32",
        &sum::b64(&Algorithm::Crc32.digest(&p1)),
    );
    upload_part(
        &mut st,
        "k",
        2,
        4,
        "CRC32",
        &sum::b64(&Algorithm::Crc32.digest(&p2)),
    );
    let m = complete(&mut st, "k", 2).unwrap();
    let whole = [p1, p2].concat();
    assert_eq!(m.checksum_value, sum::b64(&Algorithm::Crc32.digest(&whole)));
}

#[test]
fn uploads_and_parts_with_bad_checksums_are_refused() {
    let mut st = state(false);
    assert_eq!(
        code(create(&mut st, "k", "MD5", "COMPOSITE")),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(create(&mut st, "k", "CRC64NVME", "COMPOSITE")),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(create(&mut st, "k", "SHA1", "FULL_OBJECT")),
        ErrorCode::InvalidArgument
    );
    create(&mut st, "k", "SHA1", "COMPOSITE").unwrap();
    let bad = st.propose(Op::PutPart(PutPartCmd {
        bucket: B.into(),
        key: "k".into(),
        upload_id: UPLOAD.into(),
        part: Some(PartRecord {
            part_number: 1,
            etag: format!("{:032x}", 1),
            size: 3,
            chunks: vec![chunk(9, 3)],
            checksum_algorithm: "SHA1".into(),
            checksum_value: "AAAA".into(),
            ..Default::default()
        }),
    }));
    assert_eq!(code(bad), ErrorCode::InvalidArgument);
    // A part without the upload's checksum (an UploadPartCopy part) completes the upload
    // without an object checksum.
    create(&mut st, "copied", "SHA1", "COMPOSITE").unwrap();
    upload_part(&mut st, "copied", 1, 3, "", "");
    let m = complete(&mut st, "copied", 1).unwrap();
    assert!(m.checksum_algorithm.is_empty() && m.checksum_value.is_empty());
    assert!(get_upload(&st.kv, B, "copied", UPLOAD).is_none());
    upload_part(
        &mut st,
        "k",
        1,
        3,
        "SHA1",
        &sum::b64(&Algorithm::Sha1.digest(b"abc")),
    );
    let m = complete(&mut st, "k", 1).unwrap();
    assert!(m.checksum_value.ends_with("-1"));
    // A put of a manifest with a malformed checksum is refused.
    let put = st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: B.into(),
        key: "p".into(),
        manifest: Some(Manifest {
            size: 1,
            etag: format!("{:032x}", 5),
            inline_data: b"x".to_vec(),
            checksum_algorithm: "CRC32".into(),
            checksum_value: "not base64".into(),
            checksum_type: "FULL_OBJECT".into(),
            ..Default::default()
        }),
        if_match_etag: None,
        source: String::new(),
    }));
    assert_eq!(code(put), ErrorCode::InvalidArgument);
}

#[test]
fn version_5_completions_apply_as_before() {
    let mut st = state(false);
    create(&mut st, "k", "", "").unwrap();
    upload_part(&mut st, "k", 1, 3, "", "");
    st.index += 1;
    let cmd = Command {
        version: 5,
        now_ms: T0,
        session: None,
        op: Some(Op::CompleteMultipart(CompleteMultipartCmd {
            bucket: B.into(),
            key: "k".into(),
            upload_id: UPLOAD.into(),
            parts: vec![CompletePart {
                part_number: 1,
                etag: format!("{:032x}", 1),
            }],
            if_match_etag: None,
        })),
    };
    let (muts, res) = apply(&st.kv, st.index, &cmd);
    assert_eq!(res.error, None);
    st.kv.apply(&muts);
    let m = get_object(&st.kv, B, "k").unwrap();
    assert!(m.part_etags.is_empty() && m.completed_upload_id.is_empty());
}

#[test]
fn issue_15_commands_carry_version_6() {
    let del = |cond: Option<String>| {
        Op::DeleteObject(DeleteObjectCmd {
            bucket: B.into(),
            key: "k".into(),
            if_match_etag: cond,
            ..Default::default()
        })
    };
    assert_eq!(command_version_for(&del(None)), 4);
    assert_eq!(command_version_for(&del(Some("e".into()))), 6);
    let size_only = Op::DeleteObject(DeleteObjectCmd {
        if_match_size: Some(0),
        ..Default::default()
    });
    assert_eq!(command_version_for(&size_only), 6);
    let put = |m: Manifest, cond: Option<String>| {
        Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: B.into(),
            key: "k".into(),
            manifest: Some(m),
            if_match_etag: cond,
            source: String::new(),
        })
    };
    assert_eq!(command_version_for(&put(Manifest::default(), None)), 4);
    assert_eq!(
        command_version_for(&put(Manifest::default(), Some(String::new()))),
        6
    );
    let summed = Manifest {
        checksum_algorithm: "CRC32".into(),
        ..Default::default()
    };
    assert_eq!(command_version_for(&put(summed, None)), 6);
    let part = |alg: &str| {
        Op::PutPart(PutPartCmd {
            part: Some(PartRecord {
                checksum_algorithm: alg.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    assert_eq!(command_version_for(&part("")), 4);
    assert_eq!(command_version_for(&part("SHA1")), 6);
    let complete = Op::CompleteMultipart(CompleteMultipartCmd::default());
    assert_eq!(command_version_for(&complete), 6);
    let locked = Op::SetBucketVersioning(SetBucketVersioningCmd::default());
    assert_eq!(command_version_for(&locked), 5);
}
