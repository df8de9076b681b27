//! Golden encodings: every persisted record kind as written by each version, checked in under
//! `tests/golden/` as hex, decoded through the one decode step readers use
//! (`anode_meta::record::decode`). A golden file is never edited or deleted: when a kind's
//! version rises, add `<kind>.v<N>.hex` next to the old ones, keep the old test rows (they
//! must still decode, migrated, to the values below), and move `CURRENT_WRITES` to the new file.
//!
//! Regenerate a *missing* file (never an existing one) with
//! `ANODE_BLESS_GOLDEN=1 cargo test -p anode-meta --test golden`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;

use anode_meta::record::{self, Record, RecordError};
use anode_proto::command::Op;
use anode_proto::*;
use prost::Message;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"))
}

/// The bytes of golden file `name`; with `ANODE_BLESS_GOLDEN=1`, a missing file is first
/// written from `value`'s encoding by this build.
fn golden_bytes<R: Record>(name: &str, value: &R) -> Vec<u8> {
    let path = golden_path(name);
    if !path.exists() && std::env::var_os("ANODE_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, hex::encode(value.encode_to_vec()) + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (see the module docs)", path.display()));
    hex::decode(text.trim()).unwrap()
}

/// The golden file decodes to `expected`, and (for the version this build writes) this build
/// still encodes `expected` to exactly those bytes.
fn check_golden<R: Record + PartialEq + Debug>(name: &str, expected: &R, current_writes: bool) {
    let bytes = golden_bytes(name, expected);
    let got: R = record::decode(name.as_bytes(), &bytes)
        .unwrap_or_else(|e| panic!("golden {name} no longer decodes: {e}"));
    assert_eq!(&got, expected, "golden {name} decodes to other values");
    if current_writes {
        assert_eq!(
            hex::encode(expected.encode_to_vec()),
            hex::encode(&bytes),
            "this build no longer writes golden {name}: add a new version and golden file"
        );
    }
}

fn one(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_string(), v.to_string())])
}

fn chunk_ref(sha: u8) -> ChunkRef {
    ChunkRef {
        sha256: vec![sha; 32],
        length: 4 << 20,
        servers: vec![1, 3],
        uploaded_ms: 0,
    }
}

fn bucket() -> BucketConfig {
    BucketConfig {
        version: 1,
        name: "photos".into(),
        replication: 3,
        versioning: true,
        quota_bytes: 1 << 40,
        created_ms: 1_700_000_000_000,
        owner_access_key: "AKIDEXAMPLE".into(),
        ..Default::default()
    }
}

fn manifest() -> Manifest {
    Manifest {
        version: 1,
        size: 8 << 20,
        etag: "9e107d9d372bb6826bd81d3542a419d6-2".into(),
        content_type: "image/jpeg".into(),
        user_metadata: one("camera", "x100"),
        chunks: vec![chunk_ref(0xaa), chunk_ref(0xbb)],
        inline_data: b"tiny".to_vec(),
        mtime_ms: 1_700_000_000_123,
        object_version: 42,
        part_sizes: vec![5 << 20, 3 << 20],
        system_metadata: one("cache-control", "max-age=60"),
        acl: Vec::new(),
        ..Default::default()
    }
}

fn access_key() -> AccessKey {
    AccessKey {
        version: 1,
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG".into(),
        name: "ops".into(),
        created_ms: 1_700_000_000_001,
        ..Default::default()
    }
}

/// Fields added within version 1 with issue 19 (empty = as before: an administrator key).
fn access_key_of_user() -> AccessKey {
    AccessKey {
        user: "alice".into(),
        disabled: true,
        expires_ms: 1_800_000_000_000,
        ..access_key()
    }
}

/// Fields added within version 1 with issue 19 (empty = administrators' bucket, no quota).
fn bucket_owned() -> BucketConfig {
    BucketConfig {
        owner_user: "alice".into(),
        quota_objects: 1000,
        ..bucket()
    }
}

fn user() -> User {
    User {
        version: 1,
        name: "alice".into(),
        admin: true,
        created_ms: 1_700_000_000_010,
        quota_bytes: 1 << 30,
        quota_objects: 10_000,
    }
}

/// Version 3: the user, quota and key-state operations.
fn command_create_user() -> Command {
    Command {
        version: 3,
        now_ms: 1_700_000_000_011,
        session: Some(session()),
        op: Some(Op::CreateUser(CreateUserCmd { user: Some(user()) })),
    }
}

fn command_set_bucket_quota() -> Command {
    Command {
        version: 3,
        now_ms: 1_700_000_000_012,
        session: None,
        op: Some(Op::SetBucketQuota(SetBucketQuotaCmd {
            name: "photos".into(),
            quota_bytes: 1 << 40,
            quota_objects: 1_000_000,
        })),
    }
}

/// An object ACL as stored (`Manifest.acl`, `MultipartUpload.acl`): owner alice, public read.
fn object_acl() -> Vec<u8> {
    use anode_meta::authz::{Acl, Grant, Grantee, Permission};
    let alice = anode_meta::authz::canonical_id("alice");
    // Spelled out (not `CannedAcl::expand`, whose grant order may change): as the files hold it.
    anode_meta::authz::encode_acl(&Acl {
        owner: alice.clone(),
        grants: vec![
            Grant {
                grantee: Grantee::CanonicalUser { id: alice },
                permission: Permission::FullControl,
            },
            Grant {
                grantee: Grantee::AllUsers,
                permission: Permission::Read,
            },
        ],
    })
}

/// A bucket access record as stored (`BucketConfig.access`), with a policy of `photos`.
fn bucket_access() -> Vec<u8> {
    use anode_meta::authz::{canonical_id, BucketAccessRecord, CannedAcl};
    let mut rec = BucketAccessRecord::new_bucket(&canonical_id("alice"), CannedAcl::Private);
    rec.policy = Some(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#
            .into(),
    );
    rec.encode()
}

/// Fields added within version 1 with command version 4 (empty = the default access).
fn bucket_with_access() -> BucketConfig {
    BucketConfig {
        access: bucket_access(),
        ..bucket_owned()
    }
}

fn manifest_with_acl() -> Manifest {
    Manifest {
        acl: object_acl(),
        ..manifest()
    }
}

fn upload_with_acl() -> MultipartUpload {
    MultipartUpload {
        acl: object_acl(),
        ..upload()
    }
}

/// Version 4: the access operations.
fn command_set_bucket_access() -> Command {
    Command {
        version: 4,
        now_ms: 1_700_000_000_013,
        session: Some(session()),
        op: Some(Op::SetBucketAccess(SetBucketAccessCmd {
            name: "photos".into(),
            access: bucket_access(),
            expect_access: Some(Vec::new()),
        })),
    }
}

fn command_set_object_acl() -> Command {
    Command {
        version: 4,
        now_ms: 1_700_000_000_014,
        session: None,
        op: Some(Op::SetObjectAcl(SetObjectAclCmd {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            acl: object_acl(),
            // The version of the object `the_version_4_commands_apply` writes (raft index 2).
            expect_object_version: Some(2),
        })),
    }
}

fn chunkserver() -> ChunkserverRecord {
    ChunkserverRecord {
        version: 1,
        id: 7,
        addr: "10.0.0.7:7100".into(),
        rack: "r2".into(),
        epoch: 5,
        capacity_bytes: 4 << 40,
        used_bytes: 1 << 40,
        chunks: 262_144,
        draining: true,
        registered_ms: 1_700_000_000_002,
        last_heartbeat_ms: 1_700_000_000_999,
        uuid: "6f1c2a4e-0d6b-4b1e-9d3a-2f6c1b7e8a90".into(),
        disk_full: true,
    }
}

fn chunk_info() -> ChunkInfo {
    ChunkInfo {
        version: 1,
        refcount: 2,
        length: 4 << 20,
        servers: vec![1, 3, 7],
        zero_since_ms: 1_700_000_000_003,
        tombstone_ms: 1_700_000_000_004,
        replication: 3,
    }
}

fn upload() -> MultipartUpload {
    MultipartUpload {
        version: 1,
        bucket: "photos".into(),
        key: "2024/big.tar".into(),
        upload_id: "u-0001".into(),
        initiated_ms: 1_700_000_000_005,
        content_type: "application/x-tar".into(),
        user_metadata: one("owner", "ann"),
        system_metadata: one("content-encoding", "gzip"),
        acl: Vec::new(),
        ..Default::default()
    }
}

fn part() -> PartRecord {
    PartRecord {
        version: 1,
        part_number: 2,
        etag: "0cc175b9c0f1b6a831c399e269772661".into(),
        size: 5 << 20,
        chunks: vec![chunk_ref(0xcc)],
        mtime_ms: 1_700_000_000_006,
        inline_data: b"x".to_vec(),
        ..Default::default()
    }
}

/// A command as version 1 wrote it (no client session).
fn command_v1() -> Command {
    Command {
        version: 1,
        now_ms: 1_700_000_000_007,
        session: None,
        op: Some(Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            manifest: Some(Manifest {
                chunks: vec![ChunkRef {
                    uploaded_ms: 1_700_000_000_000,
                    ..chunk_ref(0xdd)
                }],
                ..manifest()
            }),
            if_match_etag: Some(String::new()),
            source: String::new(),
        })),
    }
}

fn session() -> ClientSession {
    ClientSession {
        client_id: (1..=16).collect(),
        seq: 9,
        first_unanswered: 7,
    }
}

/// Version 2: a command of a client session.
fn command() -> Command {
    Command {
        version: 2,
        session: Some(session()),
        ..command_v1()
    }
}

fn put_result() -> CommandResult {
    CommandResult {
        manifest: Some(manifest()),
        upload_id: "u-0001".into(),
        access_key: Some(AccessKey {
            secret_key: String::new(),
            ..access_key()
        }),
        ..Default::default()
    }
}

fn client_session() -> ClientSessionRecord {
    ClientSessionRecord {
        version: 1,
        client_id: session().client_id,
        last_active_ms: 1_700_000_000_008,
        floor_seq: 7,
        answers: 2,
    }
}

fn session_answer() -> SessionAnswer {
    SessionAnswer {
        version: 1,
        seq: 9,
        result: Some(put_result()),
    }
}

fn member_context() -> MemberChangeContext {
    MemberChangeContext {
        version: 1,
        id: 4,
        addr: "10.0.0.4:7000".into(),
    }
}

/// A snapshot as version 1 wrote it (no session keys).
fn snapshot_v1() -> SnapshotData {
    SnapshotData {
        version: 1,
        descriptor: None,
        pairs: vec![
            KvPair {
                key: b"b/photos".to_vec(),
                value: bucket().encode_to_vec(),
            },
            KvPair {
                key: b"c/\xaa\xaa".to_vec(),
                value: chunk_info().encode_to_vec(),
            },
            KvPair {
                key: b"r/\0\0\0\0\0\0\0\x01".to_vec(),
                value: b"10.0.0.1:7000".to_vec(),
            },
            KvPair {
                key: b"x/next_chunkserver_id".to_vec(),
                value: 8u64.to_be_bytes().to_vec(),
            },
        ],
    }
}

/// Version 2: may hold the client session keys.
fn snapshot_v2() -> SnapshotData {
    let client = session().client_id;
    let mut pairs = snapshot_v1().pairs;
    pairs.extend([
        KvPair {
            key: [b"a/".as_slice(), &client, &9u64.to_be_bytes()].concat(),
            value: session_answer().encode_to_vec(),
        },
        KvPair {
            key: [b"l/".as_slice(), &client].concat(),
            value: client_session().encode_to_vec(),
        },
        KvPair {
            key: [
                b"t/".as_slice(),
                &1_700_000_000_008u64.to_be_bytes(),
                &client,
            ]
            .concat(),
            value: Vec::new(),
        },
        KvPair {
            key: b"x/sessions".to_vec(),
            value: 1u64.to_be_bytes().to_vec(),
        },
    ]);
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    SnapshotData {
        version: 2,
        pairs,
        descriptor: None,
    }
}

/// Version 3: a streamed snapshot's descriptor (the raft snapshot's data; the records come
/// over the stream, each piece a version 3 `SnapshotData` with pairs only).
fn snapshot() -> SnapshotData {
    SnapshotData {
        version: 3,
        pairs: Vec::new(),
        descriptor: Some(SnapshotDescriptor {
            index: 1_234_567,
            term: 9,
        }),
    }
}

/// Version 3: one piece of a streamed snapshot's records.
fn snapshot_piece() -> SnapshotData {
    SnapshotData {
        version: 3,
        ..snapshot_v2()
    }
}

/// `r` as this build reads it: an older version is stamped current, nothing else changes.
fn migrated<R: Record + Clone>(r: &R, set_version: fn(&mut R, u32)) -> R {
    let mut r = r.clone();
    set_version(&mut r, R::CURRENT);
    r
}

#[test]
fn issue_19_encodings_stay_readable() {
    check_golden("user.v1", &user(), true);
    check_golden("access_key_of_user.v1", &access_key_of_user(), true);
    check_golden("bucket_config_owned.v1", &bucket_owned(), true);
    check_golden("command_create_user.v3", &command_create_user(), true);
    check_golden(
        "command_set_bucket_quota.v3",
        &command_set_bucket_quota(),
        true,
    );
}

#[test]
fn access_encodings_stay_readable() {
    check_golden("bucket_config_access.v1", &bucket_with_access(), true);
    check_golden("manifest_acl.v1", &manifest_with_acl(), true);
    check_golden("multipart_upload_acl.v1", &upload_with_acl(), true);
    check_golden(
        "command_set_bucket_access.v4",
        &command_set_bucket_access(),
        true,
    );
    check_golden("command_set_object_acl.v4", &command_set_object_acl(), true);
}

/// The golden version 4 commands apply: the bucket gets its record, the object its ACL.
#[test]
fn the_version_4_commands_apply() {
    let mut st = anode_meta::state::MemState::new(5);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(bucket()),
    }))
    .unwrap();
    st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: "photos".into(),
        key: "2024/cat.jpg".into(),
        manifest: Some(Manifest {
            size: 4,
            etag: "e".into(),
            inline_data: b"tiny".to_vec(),
            ..Default::default()
        }),
        if_match_etag: None,
        source: String::new(),
    }))
    .unwrap();
    for (index, name, cmd) in [
        (
            10,
            "command_set_bucket_access.v4",
            command_set_bucket_access(),
        ),
        (11, "command_set_object_acl.v4", command_set_object_acl()),
    ] {
        let bytes = golden_bytes(name, &cmd);
        let (muts, res) = anode_meta::state::apply_bytes(&st.kv, index, &bytes);
        assert_eq!(res.error, None, "{name}");
        st.kv.apply(&muts);
    }
    let b = anode_meta::state::get_bucket(&st.kv, "photos").unwrap();
    assert_eq!(b.access, bucket_access());
    let m = anode_meta::state::get_object(&st.kv, "photos", "2024/cat.jpg").unwrap();
    assert_eq!(m.acl, object_acl());
}

/// Fields added within version 1 with issue 14 (versions and object lock).
fn manifest_versioned() -> Manifest {
    Manifest {
        version_id: "0000002a00010000".into(),
        version_seq: 0x2a_0001_0000,
        lock_mode: "GOVERNANCE".into(),
        retain_until_ms: 1_800_000_000_000,
        legal_hold: true,
        ..manifest()
    }
}

fn delete_marker() -> Manifest {
    Manifest {
        version: 1,
        delete_marker: true,
        version_id: "0000002b00000000".into(),
        version_seq: 0x2b_0000_0000,
        mtime_ms: 1_700_000_000_200,
        object_version: 43,
        ..Default::default()
    }
}

fn bucket_versioned() -> BucketConfig {
    BucketConfig {
        versioning: false,
        versioning_state: 2,
        object_lock: true,
        default_retention: Some(DefaultRetention {
            mode: "COMPLIANCE".into(),
            days: 3,
            years: 0,
        }),
        lifecycle: Some(LifecycleConfig {
            rules: vec![LifecycleRule {
                id: "logs".into(),
                enabled: true,
                prefix: "logs/".into(),
                size_greater_than: 10,
                expiration_days: 30,
                noncurrent_days: 7,
                newer_noncurrent_versions: 2,
                abort_multipart_days: 1,
                ..Default::default()
            }],
        }),
        ..bucket()
    }
}

fn lifecycle_progress() -> LifecycleProgress {
    LifecycleProgress {
        version: 1,
        pass_started_ms: 1_700_000_000_300,
        last_pass_done_ms: 1_700_000_000_100,
        phase: 1,
        after_key: "logs/a\0u-1".into(),
        pass_done: false,
        expired: 5,
        noncurrent_deleted: 4,
        markers_removed: 3,
        uploads_aborted: 2,
        passes: 1,
    }
}

fn v5(op: Op) -> Command {
    Command {
        version: 5,
        now_ms: 1_700_000_000_400,
        session: None,
        op: Some(op),
    }
}

fn command_set_bucket_versioning() -> Command {
    v5(Op::SetBucketVersioning(SetBucketVersioningCmd {
        name: "photos".into(),
        state: 1,
    }))
}

fn command_delete_version() -> Command {
    v5(Op::DeleteObjects(DeleteObjectsCmd {
        bucket: "photos".into(),
        keys: vec!["a".into()],
        objects: vec![ObjectVersionRef {
            key: "b".into(),
            version_id: Some("null".into()),
        }],
        bypass_governance: true,
    }))
}

fn command_set_object_lock() -> Command {
    v5(Op::SetObjectLock(SetObjectLockCmd {
        bucket: "photos".into(),
        key: "2024/cat.jpg".into(),
        version_id: Some("0000002a00010000".into()),
        set_retention: true,
        mode: "GOVERNANCE".into(),
        retain_until_ms: 1_900_000_000_000,
        bypass_governance: false,
        set_legal_hold: true,
        legal_hold: false,
    }))
}

#[test]
fn issue_14_encodings_stay_readable() {
    check_golden("manifest_versioned.v1", &manifest_versioned(), true);
    check_golden("manifest_delete_marker.v1", &delete_marker(), true);
    check_golden("bucket_config_versioned.v1", &bucket_versioned(), true);
    check_golden("lifecycle_progress.v1", &lifecycle_progress(), true);
    check_golden(
        "command_set_bucket_versioning.v5",
        &command_set_bucket_versioning(),
        true,
    );
    check_golden("command_delete_version.v5", &command_delete_version(), true);
    check_golden(
        "command_set_object_lock.v5",
        &command_set_object_lock(),
        true,
    );
}

// ---- issue 15: stored checksums, conditional deletes, completed upload ids ----

fn checksums_manifest() -> Manifest {
    Manifest {
        part_sizes: vec![5 << 20, 1 << 20],
        checksum_algorithm: "CRC32".into(),
        checksum_value: "jAxrMA==".into(),
        checksum_type: "FULL_OBJECT".into(),
        part_checksums: vec!["AAAAAA==".into(), "/////w==".into()],
        part_etags: vec![
            "0cc175b9c0f1b6a831c399e269772661".into(),
            "92eb5ffee6ae2fec3ad71c777531578f".into(),
        ],
        completed_upload_id: "0123456789abcdef0123456789abcdef".into(),
        ..manifest_versioned()
    }
}

fn checksums_upload() -> MultipartUpload {
    MultipartUpload {
        checksum_algorithm: "SHA256".into(),
        checksum_type: "COMPOSITE".into(),
        ..upload()
    }
}

fn checksums_part() -> PartRecord {
    PartRecord {
        checksum_algorithm: "SHA256".into(),
        checksum_value: "ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=".into(),
        ..part()
    }
}

fn checksums_command_delete_if() -> Command {
    Command {
        version: 6,
        now_ms: 1_700_000_000_500,
        session: None,
        op: Some(Op::DeleteObject(DeleteObjectCmd {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: Some("0000002a00010000".into()),
            bypass_governance: false,
            if_match_etag: Some("\"0cc175b9c0f1b6a831c399e269772661\"".into()),
            if_match_last_modified_ms: Some(1_700_000_000_000),
            if_match_size: Some(0),
        })),
    }
}

#[test]
fn checksum_encodings_stay_readable() {
    check_golden("checksums_manifest.v1", &checksums_manifest(), true);
    check_golden("checksums_multipart_upload.v1", &checksums_upload(), true);
    check_golden("checksums_part_record.v1", &checksums_part(), true);
    check_golden(
        "checksums_command_delete_if.v6",
        &checksums_command_delete_if(),
        true,
    );
}

#[test]
fn version_3_encodings_stay_readable() {
    check_golden("snapshot_data.v3", &snapshot(), true);
    check_golden("snapshot_piece.v3", &snapshot_piece(), true);
}

#[test]
fn version_2_encodings_stay_readable() {
    check_golden("command_put_object.v2", &command(), false);
    // A whole-state snapshot (before streaming) reads as version 3 holding the same pairs.
    let snapshot_v2_read = migrated(&snapshot_v2(), |r, v| r.version = v);
    check_golden("snapshot_data.v2", &snapshot_v2_read, false);
}

#[test]
fn version_1_encodings_stay_readable() {
    check_golden("bucket_config.v1", &bucket(), true);
    check_golden("manifest.v1", &manifest(), true);
    check_golden("access_key.v1", &access_key(), true);
    check_golden("chunkserver_record.v1", &chunkserver(), true);
    check_golden("chunk_info.v1", &chunk_info(), true);
    check_golden("multipart_upload.v1", &upload(), true);
    check_golden("part_record.v1", &part(), true);
    check_golden("member_change_context.v1", &member_context(), true);
    check_golden("client_session.v1", &client_session(), true);
    check_golden("session_answer.v1", &session_answer(), true);
    // A command keeps its version (it decides the apply-time checks, `sm::Rules`); a
    // snapshot reads as version 3 (2 only added key kinds, 3 the descriptor).
    check_golden("command_put_object.v1", &command_v1(), false);
    let snapshot_v1_read = migrated(&snapshot_v1(), |r, v| r.version = v);
    check_golden("snapshot_data.v1", &snapshot_v1_read, false);
}

#[test]
fn the_golden_snapshots_pass_the_install_check() {
    let bytes = golden_bytes("snapshot_data.v3", &snapshot());
    assert_eq!(
        anode_meta::state::decode_snapshot(&bytes).unwrap(),
        snapshot()
    );
    let bytes = golden_bytes("snapshot_piece.v3", &snapshot_piece());
    assert_eq!(
        anode_meta::state::decode_snapshot(&bytes).unwrap(),
        snapshot_piece()
    );
    let bytes = golden_bytes("snapshot_data.v2", &snapshot_v2());
    assert_eq!(
        anode_meta::state::decode_snapshot(&bytes).unwrap(),
        migrated(&snapshot_v2(), |r, v| r.version = v)
    );
    let bytes = golden_bytes("snapshot_data.v1", &snapshot_v1());
    assert_eq!(
        anode_meta::state::decode_snapshot(&bytes).unwrap(),
        migrated(&snapshot_v1(), |r, v| r.version = v)
    );
}

/// A version 1 command (no session) applies as it did: the golden one creates its object.
#[test]
fn a_version_1_command_applies_without_a_session() {
    let mut st = anode_meta::state::MemState::new(5);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(bucket()),
    }))
    .unwrap();
    let bytes = golden_bytes("command_put_object.v1", &command_v1());
    let (muts, res) = anode_meta::state::apply_bytes(&st.kv, 2, &bytes);
    assert_eq!(res.error, None);
    st.kv.apply(&muts);
    let m = anode_meta::state::get_object(&st.kv, "photos", "2024/cat.jpg").unwrap();
    assert_eq!(m.object_version, 2);
    assert!(muts.iter().all(|m| !matches!(m,
        anode_meta::kv::Mutation::Put(k, _) if k.starts_with(b"l/") || k.starts_with(b"a/"))));
}

/// Version 0 (no version stamped) is the layout of version 1: it decodes, migrated.
fn check_v0_migrates<R: Record + PartialEq + Debug + Clone>(
    current: &R,
    set_version: fn(&mut R, u32),
) {
    let mut v0 = current.clone();
    set_version(&mut v0, 0);
    let got: R = record::decode(b"k", &v0.encode_to_vec()).unwrap();
    // Commands keep their version, so version 0 reads as 1; other records read as current.
    let mut expected = current.clone();
    if R::KIND == "Command" {
        set_version(&mut expected, 1);
    }
    assert_eq!(got, expected, "{} v0 -> v1", R::KIND);
}

/// A record from a newer build is refused with the kind, key and both versions, even when its
/// layout changed so much that it no longer decodes as this build's message.
fn check_newer_refused<R: Record + Clone + Debug>(current: &R, set_version: fn(&mut R, u32)) {
    let mut newer = current.clone();
    set_version(&mut newer, R::CURRENT + 1);
    let mut bytes = newer.encode_to_vec();
    bytes.extend_from_slice(&[0x12, 0xff]); // field 2 with a truncated length: undecodable
    assert!(R::decode(bytes.as_slice()).is_err());
    let err = record::decode::<R>(b"c/\x01", &bytes).unwrap_err();
    assert_eq!(
        err,
        RecordError::TooNew {
            kind: R::KIND,
            key: "c/\\x01".into(),
            found: R::CURRENT + 1,
            supported: R::CURRENT,
        }
    );
    let msg = err.to_string();
    for part in [R::KIND, "c/\\x01", &format!("version {}", R::CURRENT + 1)] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    assert!(msg.contains(&format!("up to {}", R::CURRENT)), "{msg}");
}

macro_rules! each_kind {
    ($check:ident) => {
        $check(&bucket(), |r, v| r.version = v);
        $check(&manifest(), |r, v| r.version = v);
        $check(&access_key(), |r, v| r.version = v);
        $check(&chunkserver(), |r, v| r.version = v);
        $check(&chunk_info(), |r, v| r.version = v);
        $check(&upload(), |r, v| r.version = v);
        $check(&part(), |r, v| r.version = v);
        $check(&command(), |r, v| r.version = v);
        $check(&member_context(), |r, v| r.version = v);
        $check(&snapshot(), |r, v| r.version = v);
        $check(&snapshot_piece(), |r, v| r.version = v);
        $check(&client_session(), |r, v| r.version = v);
        $check(&session_answer(), |r, v| r.version = v);
        $check(&user(), |r, v| r.version = v);
        $check(&command_create_user(), |r, v| r.version = v);
        $check(&command_set_bucket_access(), |r, v| r.version = v);
        $check(&bucket_with_access(), |r, v| r.version = v);
        $check(&manifest_with_acl(), |r, v| r.version = v);
    };
}

#[test]
fn version_0_records_are_migrated() {
    each_kind!(check_v0_migrates);
}

#[test]
fn newer_records_are_refused_with_a_clear_error() {
    each_kind!(check_newer_refused);
}

#[test]
fn a_newer_snapshot_is_refused_before_its_records_are_read() {
    let mut snap = snapshot();
    snap.version = SNAPSHOT_VERSION + 1;
    let err = anode_meta::state::decode_snapshot(&snap.encode_to_vec()).unwrap_err();
    assert!(
        matches!(err, RecordError::TooNew { kind: "SnapshotData", found, .. }
            if found == SNAPSHOT_VERSION + 1),
        "{err}"
    );
}

#[test]
fn a_newer_command_is_answered_unsupported_without_mutations() {
    let mut cmd = command();
    cmd.version = COMMAND_VERSION + 1;
    let kv = anode_meta::kv::MemKv::new();
    let (muts, res) = anode_meta::state::apply_bytes(&kv, 3, &cmd.encode_to_vec());
    assert!(muts.is_empty());
    let err = res.error.expect("an error result");
    assert_eq!(err.code(), anode_proto::ErrorCode::UnsupportedVersion);
    let want = format!("unsupported command version {}", COMMAND_VERSION + 1);
    assert_eq!(err.message, want);
}

// ---- tagging (issue 15; command version 6) ----

fn tags() -> Vec<Tag> {
    vec![
        Tag {
            key: "project".into(),
            value: "apollo".into(),
        },
        Tag {
            key: "empty".into(),
            value: String::new(),
        },
    ]
}

fn v6(op: Op) -> Command {
    Command {
        version: 6,
        now_ms: 1_700_000_000_600,
        session: None,
        op: Some(op),
    }
}

fn manifest_tagged() -> Manifest {
    Manifest {
        tags: tags(),
        ..manifest_versioned()
    }
}

fn bucket_tagged() -> BucketConfig {
    BucketConfig {
        tags: tags(),
        ..bucket()
    }
}

fn upload_tagged() -> MultipartUpload {
    MultipartUpload {
        tags: tags(),
        ..upload()
    }
}

#[test]
fn tagging_encodings_stay_readable() {
    check_golden("tagging_manifest.v1", &manifest_tagged(), true);
    check_golden("tagging_bucket_config.v1", &bucket_tagged(), true);
    check_golden("tagging_multipart_upload.v1", &upload_tagged(), true);
    check_golden(
        "tagging_command_set_object_tagging.v6",
        &v6(Op::SetObjectTagging(SetObjectTaggingCmd {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: Some("0000002a00010000".into()),
            tags: tags(),
        })),
        true,
    );
    check_golden(
        "tagging_command_set_bucket_tagging.v6",
        &v6(Op::SetBucketTagging(SetBucketTaggingCmd {
            name: "photos".into(),
            tags: tags(),
        })),
        true,
    );
    check_golden(
        "tagging_command_put_object.v6",
        &v6(Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            manifest: Some(manifest_tagged()),
            if_match_etag: None,
            source: String::new(),
        })),
        true,
    );
}

fn cors_rules() -> CorsConfig {
    CorsConfig {
        rules: vec![
            CorsRule {
                id: "web".into(),
                allowed_origins: vec!["https://*.example.com".into()],
                allowed_methods: vec!["GET".into(), "PUT".into()],
                allowed_headers: vec!["x-amz-*".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(3000),
            },
            CorsRule {
                allowed_origins: vec!["*".into()],
                allowed_methods: vec!["HEAD".into()],
                ..Default::default()
            },
        ],
    }
}

#[test]
fn cors_encodings_stay_readable() {
    check_golden(
        "cors_bucket_config.v1",
        &BucketConfig {
            cors: Some(cors_rules()),
            ..bucket()
        },
        true,
    );
    check_golden(
        "cors_command_set_bucket_cors.v6",
        &v6(Op::SetBucketCors(SetBucketCorsCmd {
            name: "photos".into(),
            config: Some(cors_rules()),
        })),
        true,
    );
}

fn notification_rules() -> NotificationConfig {
    NotificationConfig {
        rules: vec![NotificationRule {
            id: "uploads".into(),
            kind: 1,
            arn: "arn:anode:sqs::hooks".into(),
            target: "hooks".into(),
            events: vec![
                "s3:ObjectCreated:*".into(),
                "s3:ObjectRemoved:Delete".into(),
            ],
            prefix: "logs/".into(),
            suffix: ".gz".into(),
        }],
    }
}

fn v7(op: Op) -> Command {
    Command {
        version: 7,
        ..v6(op)
    }
}

#[test]
fn notification_encodings_stay_readable() {
    check_golden(
        "notify_bucket_config.v1",
        &BucketConfig {
            notification: Some(notification_rules()),
            ..bucket()
        },
        true,
    );
    check_golden(
        "notify_target.v1",
        &NotificationTarget {
            version: 1,
            name: "hooks".into(),
            url: "https://hooks.example.com/s3".into(),
            authorization: "Bearer x".into(),
            created_ms: 1_700_000_000_000,
        },
        true,
    );
    check_golden(
        "notify_event.v1",
        &NotificationEvent {
            version: 1,
            id: "00000000000000070001".into(),
            target: "hooks".into(),
            configuration_id: "uploads".into(),
            bucket: "photos".into(),
            key: "logs/a.gz".into(),
            event_name: "ObjectCreated:Put".into(),
            size: 42,
            etag: "0123456789abcdef0123456789abcdef".into(),
            version_id: String::new(),
            time_ms: 1_700_000_000_007,
        },
        true,
    );
    check_golden(
        "notify_command_set_bucket_notification.v7",
        &v7(Op::SetBucketNotification(SetBucketNotificationCmd {
            name: "photos".into(),
            config: Some(notification_rules()),
        })),
        true,
    );
    check_golden(
        "notify_command_set_target.v7",
        &v7(Op::SetNotificationTarget(SetNotificationTargetCmd {
            name: "hooks".into(),
            target: Some(NotificationTarget {
                name: "hooks".into(),
                url: "http://127.0.0.1:9000/".into(),
                ..Default::default()
            }),
        })),
        true,
    );
    check_golden(
        "notify_command_ack.v7",
        &v7(Op::AckNotifications(AckNotificationsCmd {
            target: "hooks".into(),
            up_to_id: "00000000000000070001".into(),
        })),
        true,
    );
}

fn v8(op: Op) -> Command {
    Command {
        version: 8,
        ..v7(op)
    }
}

fn parquet_stats() -> ParquetStats {
    ParquetStats {
        version: 1,
        columns: vec![
            ParquetColumn {
                path: "ts".into(),
                domain: ParquetDomain::Int as i32,
                ..Default::default()
            },
            ParquetColumn {
                path: "city".into(),
                domain: ParquetDomain::Bytes as i32,
                ..Default::default()
            },
        ],
        row_groups: vec![RowGroupStats {
            num_rows: 1000,
            columns: vec![
                ColumnStats {
                    null_count: Some(0),
                    min: Some(ParquetValue {
                        v: Some(parquet_value::V::Int(15_000)),
                    }),
                    max: Some(ParquetValue {
                        v: Some(parquet_value::V::Int(16_000)),
                    }),
                    min_exact: true,
                    max_exact: true,
                    nan_count: None,
                },
                ColumnStats {
                    null_count: Some(3),
                    min: Some(ParquetValue {
                        v: Some(parquet_value::V::Bytes(b"Bergen".to_vec())),
                    }),
                    max: Some(ParquetValue {
                        v: Some(parquet_value::V::Bytes(b"Oslp".to_vec())),
                    }),
                    min_exact: true,
                    max_exact: false,
                    nan_count: None,
                },
            ],
        }],
    }
}

fn parquet_index() -> ParquetIndex {
    let mut tail = vec![0u8; 20];
    tail.extend_from_slice(&20u32.to_le_bytes());
    tail.extend_from_slice(b"PAR1");
    ParquetIndex {
        info: Some(ParquetInfo {
            tail_len: 28,
            footer_len: 20,
            num_rows: 1000,
            num_row_groups: 1,
            schema_hash: vec![0xab; 16],
            has_stats: true,
        }),
        tail,
        stats: Some(parquet_stats()),
    }
}

#[test]
fn parquet_encodings_stay_readable() {
    check_golden(
        "parquet_tail.v1",
        &ParquetTail {
            version: 1,
            data: parquet_index().tail,
        },
        true,
    );
    check_golden("parquet_stats.v1", &parquet_stats(), true);
    check_golden(
        "parquet_manifest.v1",
        &Manifest {
            parquet: parquet_index().info,
            ..manifest()
        },
        true,
    );
    check_golden(
        "parquet_command_put_object.v8",
        &v8(Op::PutObject(PutObjectCmd {
            bucket: "lake".into(),
            key: "t/part-0.parquet".into(),
            manifest: Some(manifest()),
            parquet: Some(parquet_index()),
            ..Default::default()
        })),
        true,
    );
    check_golden(
        "parquet_command_copy.v8",
        &v8(Op::PutObject(PutObjectCmd {
            bucket: "lake".into(),
            key: "t/copy.parquet".into(),
            manifest: Some(manifest()),
            source: "Copy".into(),
            parquet_copy: Some(ParquetSource {
                bucket: "lake".into(),
                key: "t/part-0.parquet".into(),
                object_version: 42,
            }),
            ..Default::default()
        })),
        true,
    );
    check_golden(
        "parquet_command_set_index.v8",
        &v8(Op::SetParquetIndex(SetParquetIndexCmd {
            bucket: "lake".into(),
            key: "t/part-0.parquet".into(),
            object_version: 42,
            index: Some(parquet_index()),
        })),
        true,
    );
}
