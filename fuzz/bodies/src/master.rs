//! Master targets: raft command bytes applied by the real state machine on the in-memory
//! state (`anode_meta` `MemKv`), commands built from small alphabets so sequences reach deep
//! states, and the versioned record decoder plus the shared validator on arbitrary bytes.
//!
//! Every command a leader proposes is built from client requests, so any field of any `Op`
//! may carry client data; a command that panics `apply` would stop every master at the same
//! index. Invariants are checked after every command (refcounts equal references, counters).

use anode_meta::kv::MemKv;
use anode_meta::record::{self, Record};
use anode_meta::sm::{self, MemState};
use anode_meta::validate;
use anode_proto::command::Op;
use anode_proto::*;
use md5::Digest;
use prost::Message;

use crate::input::Cursor;

/// Most commands one input applies.
const MAX_COMMANDS: usize = 64;

/// Apply `data` as raft entries: `[u16 length][Command bytes]` records, each through
/// `sm::apply_bytes` (the decode step of `record::decode`, then `apply`) at the next index on
/// one in-memory state; the mutations are written and the full invariant check runs after
/// each. Never a panic.
pub fn master_apply(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut kv = MemKv::new();
    let mut index = 0;
    while !c.is_empty() && index < MAX_COMMANDS as u64 {
        let entry = c.chunk();
        index += 1;
        let (muts, res) = sm::apply_bytes(&kv, index, entry);
        if crate::debug() {
            eprintln!("entry {index}: {:?}", res.error);
        }
        kv.apply(&muts);
        if let Err(e) = sm::check_invariants(&kv) {
            panic!("invariant broken after entry {index}: {e}");
        }
    }
}

/// Sequences of commands over small alphabets (two buckets, a few keys, upload ids and chunk
/// ids, plus malformed ones) through [`MemState::propose`], which checks the invariants after
/// each; the clock moves forward by fuzz amounts. Never a panic.
pub fn master_ops(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut st = MemState::new(1_000_000);
    let mut n = 0;
    while !c.is_empty() && n < MAX_COMMANDS {
        st.now_ms += u64::from(c.u8()) * 1000;
        let op = op(&mut c);
        let res = st.propose(op.clone());
        if crate::debug() {
            eprintln!("{op:?} -> {:?}", res.err());
        }
        n += 1;
    }
}

const BUCKETS: [&str; 3] = ["bkt", "b2", "Bad_Bucket"];
const KEYS: [&str; 4] = ["k1", "k2", "dir/k3", ""];
const UPLOADS: [&str; 3] = ["0123456789abcdef0123456789abcdef", "u2", "bad/id"];

fn bucket(c: &mut Cursor<'_>) -> String {
    BUCKETS[c.pick(BUCKETS.len())].to_string()
}

fn key(c: &mut Cursor<'_>) -> String {
    KEYS[c.pick(KEYS.len())].to_string()
}

fn upload_id(c: &mut Cursor<'_>) -> String {
    UPLOADS[c.pick(UPLOADS.len())].to_string()
}

fn sha(c: &mut Cursor<'_>) -> Vec<u8> {
    match c.u8() % 8 {
        6 => Vec::new(),
        7 => vec![9],
        n => vec![n + 1; 32],
    }
}

fn number(c: &mut Cursor<'_>) -> u64 {
    match c.u8() % 4 {
        0 => 0,
        1 => u64::from(c.u8()),
        2 => u64::from(c.u16()) << 10,
        _ => c.u64(),
    }
}

fn chunks(c: &mut Cursor<'_>) -> Vec<ChunkRef> {
    (0..c.pick(4))
        .map(|_| ChunkRef {
            sha256: sha(c),
            length: number(c),
            servers: (0..c.pick(3)).map(|_| u64::from(c.u8() % 4)).collect(),
            uploaded_ms: number(c),
        })
        .collect()
}

fn etag(c: &mut Cursor<'_>) -> String {
    match c.u8() % 4 {
        0 => hex::encode(md5::Md5::digest([c.u8()])),
        1 => format!("{}-2", hex::encode(md5::Md5::digest([c.u8()]))),
        2 => String::new(),
        _ => "zz".into(),
    }
}

fn metadata(c: &mut Cursor<'_>) -> std::collections::HashMap<String, String> {
    (0..c.pick(3))
        .map(|i| (format!("m{i}"), "v".repeat(c.u16() as usize % 3000)))
        .collect()
}

fn manifest(c: &mut Cursor<'_>) -> Manifest {
    let chunks = chunks(c);
    let n = c.pick(8).min(4);
    let inline = c.take(n).to_vec();
    let size = match c.u8() % 3 {
        0 => chunks
            .iter()
            .map(|x| x.length)
            .fold(0u64, u64::wrapping_add),
        1 => inline.len() as u64,
        _ => number(c),
    };
    Manifest {
        parquet: None,
        version: c.u8() as u32 % 3,
        size,
        etag: etag(c),
        content_type: "text/plain".into(),
        user_metadata: metadata(c),
        chunks,
        inline_data: inline,
        mtime_ms: number(c),
        object_version: number(c),
        part_sizes: (0..c.pick(3)).map(|_| number(c)).collect(),
        system_metadata: Default::default(),
        acl: acl(c),
        // Object lock fields (refused on buckets without object lock) and, rarely, version
        // fields a writer must never set.
        lock_mode: ["", "", "GOVERNANCE", "COMPLIANCE", "bogus"][c.pick(5)].into(),
        retain_until_ms: if c.u8().is_multiple_of(2) {
            0
        } else {
            number(c)
        },
        legal_hold: c.u8().is_multiple_of(4),
        version_id: if c.u8().is_multiple_of(8) {
            "0000000000000001".into()
        } else {
            String::new()
        },
        delete_marker: c.u8().is_multiple_of(16),
        version_seq: 0,
        tags: tags(c),
        // Stored checksums (issue 15): mostly none, sometimes one a writer could send, or a
        // malformed one; completion records a writer must never set.
        checksum_algorithm: ["", "", "CRC32", "SHA256", "bogus"][c.pick(5)].into(),
        checksum_value: ["", "AAAAAA==", "not base64"][c.pick(3)].into(),
        checksum_type: ["", "FULL_OBJECT", "COMPOSITE"][c.pick(3)].into(),
        part_checksums: Vec::new(),
        part_etags: Vec::new(),
        completed_upload_id: if c.u8().is_multiple_of(16) {
            "0123456789abcdef0123456789abcdef".into()
        } else {
            String::new()
        },
    }
}

/// A tag set: mostly none, a few valid tags, or one the limits refuse (too many, duplicate,
/// reserved, too long).
fn tags(c: &mut Cursor<'_>) -> Vec<Tag> {
    let t = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    match c.u8() % 8 {
        0..=4 => Vec::new(),
        5 => vec![t("a", "1"), t("b", "")],
        6 => vec![t("a", "1"), t("a", "2")],
        _ => match c.pick(3) {
            0 => (0..11).map(|i| t(&i.to_string(), "")).collect(),
            1 => vec![t("aws:x", "")],
            _ => vec![t(&"k".repeat(129), "")],
        },
    }
}

/// An object ACL as stored: mostly none (the default), a valid one, or fuzz bytes.
fn acl(c: &mut Cursor<'_>) -> Vec<u8> {
    use anode_meta::authz::{canonical_id, encode_acl, CannedAcl};
    match c.u8() % 4 {
        0 | 1 => Vec::new(),
        2 => encode_acl(&CannedAcl::PublicRead.expand(&canonical_id("u1"), &canonical_id("u2"))),
        _ => {
            let n = c.pick(64);
            c.take(n).to_vec()
        }
    }
}

/// A bucket access record as stored: none (the default), a valid one with a policy of bucket
/// `bkt` (refused for any other bucket), one without a policy, or fuzz bytes.
fn access(c: &mut Cursor<'_>) -> Vec<u8> {
    use anode_meta::authz::{canonical_id, BucketAccessRecord, CannedAcl};
    let mut rec = BucketAccessRecord::new_bucket(&canonical_id("u1"), CannedAcl::Private);
    match c.u8() % 4 {
        0 => Vec::new(),
        1 => {
            rec.policy = Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/*"}]}"#
                    .into(),
            );
            rec.encode()
        }
        2 => rec.encode(),
        _ => {
            let n = c.pick(64);
            c.take(n).to_vec()
        }
    }
}

fn op(c: &mut Cursor<'_>) -> Op {
    match c.u8() % 30 {
        0 => Op::CreateBucket(CreateBucketCmd {
            config: Some(BucketConfig {
                version: RECORD_VERSION,
                name: bucket(c),
                replication: u32::from(c.u8() % 5),
                owner_user: user(c),
                owner_access_key: ["AK1", "AK2", ""][c.pick(3)].into(),
                quota_bytes: quota(c),
                quota_objects: quota(c),
                access: access(c),
                ..Default::default()
            }),
        }),
        1 => Op::DeleteBucket(DeleteBucketCmd { name: bucket(c) }),
        2 => Op::PutObject(PutObjectCmd {
            parquet: c.u8().is_multiple_of(4).then(|| parquet_index(c)),
            parquet_copy: c.u8().is_multiple_of(8).then(|| ParquetSource {
                bucket: bucket(c),
                key: key(c),
                object_version: number(c) % 64,
            }),
            bucket: bucket(c),
            key: key(c),
            manifest: (!c.u8().is_multiple_of(8)).then(|| manifest(c)),
            if_match_etag: (c.u8().is_multiple_of(4)).then(|| etag(c)),
            source: ["", "Copy", "Post", "Bad"][c.pick(4)].into(),
        }),
        3 => Op::DeleteObject(DeleteObjectCmd {
            bucket: bucket(c),
            key: key(c),
            ..Default::default()
        }),
        4 => Op::DeleteObjects(DeleteObjectsCmd {
            bucket: bucket(c),
            keys: (0..c.pick(4)).map(|_| key(c)).collect(),
            ..Default::default()
        }),
        5 => Op::CreateKey(CreateKeyCmd {
            key: Some(AccessKey {
                version: RECORD_VERSION,
                access_key: ["AK1", "AK2", ""][c.pick(3)].into(),
                secret_key: "sk".into(),
                user: user(c),
                ..Default::default()
            }),
        }),
        6 => Op::DeleteKey(DeleteKeyCmd {
            access_key: ["AK1", "AK2", ""][c.pick(3)].into(),
        }),
        7 => Op::RegisterChunkserver(RegisterChunkserverCmd {
            addr: format!("127.0.0.1:{}", 7100 + c.u8() as u32),
            rack: ["", "r1"][c.pick(2)].into(),
            capacity_bytes: number(c),
            uuid: ["u-1", "u-2", "u-3", ""][c.pick(4)].into(),
        }),
        8 => Op::ChunkserverUpdate(ChunkserverUpdateCmd {
            id: u64::from(c.u8() % 5),
            epoch: u64::from(c.u8() % 4),
            capacity_bytes: number(c),
            used_bytes: number(c),
            chunks: number(c),
            disk_full: c.u8() % 2 == 1,
        }),
        9 => Op::SetDraining(SetDrainingCmd {
            id: u64::from(c.u8() % 5),
            draining: c.u8() % 2 == 1,
        }),
        10 => Op::ChunkDeleted(ChunkDeletedCmd { sha256: sha(c) }),
        11 => Op::TombstoneChunks(TombstoneChunksCmd {
            sha256: (0..c.pick(4)).map(|_| sha(c)).collect(),
        }),
        12 => Op::CreateMultipart(CreateMultipartCmd {
            upload: Some(MultipartUpload {
                version: RECORD_VERSION,
                bucket: bucket(c),
                key: key(c),
                upload_id: upload_id(c),
                user_metadata: metadata(c),
                acl: acl(c),
                ..Default::default()
            }),
        }),
        13 => Op::PutPart(PutPartCmd {
            bucket: bucket(c),
            key: key(c),
            upload_id: upload_id(c),
            part: Some(PartRecord {
                version: RECORD_VERSION,
                part_number: [1, 2, 3, 0, 10_001][c.pick(5)],
                etag: etag(c),
                size: number(c),
                chunks: chunks(c),
                mtime_ms: number(c),
                inline_data: {
                    let n = c.pick(3);
                    c.take(n).to_vec()
                },
                ..Default::default()
            }),
        }),
        14 => Op::CompleteMultipart(CompleteMultipartCmd {
            bucket: bucket(c),
            key: key(c),
            upload_id: upload_id(c),
            parts: (0..c.pick(4))
                .map(|_| CompletePart {
                    part_number: u32::from(c.u8() % 4),
                    etag: etag(c),
                })
                .collect(),
            if_match_etag: (c.u8().is_multiple_of(4)).then(|| etag(c)),
        }),
        15 => Op::AbortMultipart(AbortMultipartCmd {
            bucket: bucket(c),
            key: key(c),
            upload_id: upload_id(c),
        }),
        17 => Op::CreateUser(CreateUserCmd {
            user: Some(User {
                version: RECORD_VERSION,
                name: user(c),
                admin: c.u8() % 2 == 1,
                quota_bytes: quota(c),
                quota_objects: quota(c),
                ..Default::default()
            }),
        }),
        18 => Op::DeleteUser(DeleteUserCmd { name: user(c) }),
        19 => Op::SetUserQuota(SetUserQuotaCmd {
            name: user(c),
            quota_bytes: quota(c),
            quota_objects: quota(c),
        }),
        20 => Op::SetBucketQuota(SetBucketQuotaCmd {
            name: bucket(c),
            quota_bytes: quota(c),
            quota_objects: quota(c),
        }),
        21 => Op::SetKeyDisabled(SetKeyDisabledCmd {
            access_key: ["AK1", "AK2", ""][c.pick(3)].into(),
            disabled: c.u8() % 2 == 1,
        }),
        22 => Op::SetBucketAccess(SetBucketAccessCmd {
            name: bucket(c),
            access: access(c),
            expect_access: (c.u8().is_multiple_of(2)).then(|| access(c)),
        }),
        23 => Op::SetObjectAcl(SetObjectAclCmd {
            bucket: bucket(c),
            key: key(c),
            acl: acl(c),
            expect_object_version: (c.u8().is_multiple_of(2)).then(|| number(c)),
        }),
        24 => Op::SetObjectTagging(SetObjectTaggingCmd {
            bucket: bucket(c),
            key: key(c),
            version_id: (c.u8().is_multiple_of(2)).then(|| "null".to_string()),
            tags: tags(c),
        }),
        25 => Op::SetBucketTagging(SetBucketTaggingCmd {
            name: bucket(c),
            tags: tags(c),
        }),
        26 => Op::SetNotificationTarget(SetNotificationTargetCmd {
            name: target(c),
            target: (!c.u8().is_multiple_of(4)).then(|| NotificationTarget {
                name: target(c),
                url: ["http://127.0.0.1:9/h", "ftp://x", ""][c.pick(3)].into(),
                ..Default::default()
            }),
        }),
        27 => Op::SetBucketNotification(SetBucketNotificationCmd {
            name: bucket(c),
            config: (!c.u8().is_multiple_of(4)).then(|| NotificationConfig {
                rules: (0..c.pick(3))
                    .map(|i| {
                        let t = target(c);
                        NotificationRule {
                            id: format!("r{i}"),
                            kind: u32::from(c.u8() % 4),
                            arn: format!("arn:anode:sqs::{t}"),
                            target: t,
                            events: vec![[
                                "s3:ObjectCreated:*",
                                "s3:ObjectRemoved:*",
                                "s3:ObjectTagging:Put",
                                "s3:Nope",
                            ][c.pick(4)]
                            .into()],
                            prefix: ["", "a", "k"][c.pick(3)].into(),
                            suffix: ["", "1"][c.pick(2)].into(),
                        }
                    })
                    .collect(),
            }),
        }),
        28 => Op::AckNotifications(AckNotificationsCmd {
            target: target(c),
            up_to_id: match c.u8() % 3 {
                0 => anode_meta::notify::event_id(number(c) % 64, u32::from(c.u8() % 4)),
                1 => "FFFFFFFFFFFFFFFFFFFF".into(),
                _ => "bad".into(),
            },
        }),
        29 => Op::SetParquetIndex(SetParquetIndexCmd {
            bucket: bucket(c),
            key: key(c),
            object_version: number(c) % 64,
            index: (!c.u8().is_multiple_of(8)).then(|| parquet_index(c)),
        }),
        _ => Op::Noop(NoopCmd {}),
    }
}

/// A Parquet index (issue 16): mostly well formed (a tail ending in the footer length and
/// `PAR1`, statistics matching the summary), with each field sometimes off.
fn parquet_index(c: &mut Cursor<'_>) -> ParquetIndex {
    let footer = u32::from(c.u8() % 40);
    let tail_len = u64::from(footer) + 8 + u64::from(c.u8() % 16);
    let mut tail = vec![0u8; tail_len as usize - 8];
    tail.extend_from_slice(&footer.to_le_bytes());
    tail.extend_from_slice(if c.u8().is_multiple_of(16) {
        b"PARX"
    } else {
        b"PAR1"
    });
    let columns = c.pick(3);
    let groups = c.pick(3);
    let stats = (!c.u8().is_multiple_of(4)).then(|| ParquetStats {
        version: if c.u8().is_multiple_of(32) { 2 } else { 1 },
        columns: (0..columns)
            .map(|i| ParquetColumn {
                path: format!("c{i}"),
                domain: i32::from(c.u8() % 7),
                ..Default::default()
            })
            .collect(),
        row_groups: (0..groups)
            .map(|_| RowGroupStats {
                num_rows: u64::from(c.u8()),
                columns: (0..columns + usize::from(c.u8().is_multiple_of(32)))
                    .map(|_| ColumnStats {
                        null_count: Some(u64::from(c.u8())),
                        min: Some(ParquetValue {
                            v: Some(parquet_value::V::Int(i64::from(c.u8()))),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
    });
    ParquetIndex {
        info: Some(ParquetInfo {
            tail_len: tail_len + u64::from(c.u8().is_multiple_of(16)),
            footer_len: footer,
            num_rows: u64::from(c.u8()),
            num_row_groups: groups as u32,
            schema_hash: vec![1; c.pick(40)],
            has_stats: stats.is_some() != c.u8().is_multiple_of(16),
        }),
        tail,
        stats,
    }
}

/// A notification target name ("" and one the validator refuses among them).
fn target(c: &mut Cursor<'_>) -> String {
    ["t1", "t2", "", "Bad Name"][c.pick(4)].into()
}

/// A user name from a small alphabet ("" = none, and one the validator refuses).
fn user(c: &mut Cursor<'_>) -> String {
    ["", "u1", "u2", "bad name"][c.pick(4)].into()
}

/// A quota: none, small (so writes cross it), or any number.
fn quota(c: &mut Cursor<'_>) -> u64 {
    match c.u8() % 4 {
        0 | 1 => 0,
        2 => u64::from(c.u8()),
        _ => number(c),
    }
}

/// Decode arbitrary bytes as every persisted record kind through `record::decode` (never a
/// panic; a record that decodes re-encodes to one that decodes equal), and run the shared
/// validator on arbitrary strings.
///
/// Input: a selector byte, then the bytes.
pub fn master_records(data: &[u8]) {
    let mut c = Cursor::new(data);
    let which = c.u8();
    let bytes = c.rest();
    let _ = record::peek_version(bytes);
    match which % 15 {
        0 => decode_round_trip::<BucketConfig>(bytes),
        1 => decode_round_trip::<Manifest>(bytes),
        2 => decode_round_trip::<AccessKey>(bytes),
        3 => decode_round_trip::<ChunkserverRecord>(bytes),
        4 => decode_round_trip::<ChunkInfo>(bytes),
        5 => decode_round_trip::<MultipartUpload>(bytes),
        6 => decode_round_trip::<PartRecord>(bytes),
        7 => decode_round_trip::<Command>(bytes),
        8 => decode_round_trip::<SnapshotData>(bytes),
        9 => decode_round_trip::<MemberChangeContext>(bytes),
        11 => access_round_trip(bytes),
        12 => acl_round_trip(bytes),
        13 => decode_round_trip::<NotificationTarget>(bytes),
        14 => decode_round_trip::<NotificationEvent>(bytes),
        _ => validators(bytes),
    }
}

/// A bucket access record that decodes re-encodes to one that decodes equal.
fn access_round_trip(bytes: &[u8]) {
    use anode_meta::authz::BucketAccessRecord;
    if let Ok(r) = BucketAccessRecord::decode(bytes) {
        assert_eq!(BucketAccessRecord::decode(&r.encode()), Ok(r));
    }
}

/// An object ACL that decodes re-encodes to one that decodes equal.
fn acl_round_trip(bytes: &[u8]) {
    use anode_meta::authz::{decode_acl, encode_acl};
    if let Ok(Some(acl)) = decode_acl(bytes) {
        assert_eq!(decode_acl(&encode_acl(&acl)), Ok(Some(acl)));
    }
}

fn decode_round_trip<R: Record + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(r) = record::decode::<R>(b"k", bytes) {
        let again: R = record::decode(b"k", &r.encode_to_vec()).expect("re-encoded decodes");
        assert_eq!(again, r);
    }
}

fn validators(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if validate::bucket_name(&s).is_ok() {
        assert!((3..=63).contains(&s.len()));
    }
    if validate::object_key(&s).is_ok() {
        assert!(!s.is_empty() && s.len() <= validate::MAX_KEY_BYTES);
    }
    if validate::upload_id(&s).is_ok() {
        assert!(!s.contains('/'));
    }
    let _ = validate::part_number(u32::from_le_bytes(
        [0, 1, 2, 3].map(|i| bytes.get(i).copied().unwrap_or(0)),
    ));
    let meta = s
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = validate::user_metadata(&meta);
}

/// The leader's chunkserver-facing decisions, driven as `master/src/service.rs` drives them:
/// heartbeats (fencing, stats committed through the state machine, chunk reports, command
/// outcomes, queued commands), chunk allocation and location, bad-copy reports, and healing
/// sweeps whose GC operations are committed. Starts from a state with a bucket, three
/// registered servers and one object.
///
/// Input: records `[kind byte][clock step byte][u16 length][message bytes]`; kind % 5: 0 a
/// `HeartbeatRequest`, 1 `AllocateChunksRequest`, 2 `LocateChunksRequest`, 3
/// `ReportBadChunkRequest`, 4 a sweep. Never a panic; invariants after every command.
pub fn master_control(data: &[u8]) {
    use anode_meta::control::{HealConfig, HeartbeatStep, LeaderControl};
    use anode_meta::leases::LeaseConfig;
    let mut st = MemState::new(1_000_000);
    let mut ctl = LeaderControl::new(LeaseConfig::default(), HealConfig::default());
    let mut mono = 0u64;
    ctl.observe_leadership(1, mono);
    control_fixture(&mut st, &mut ctl);
    let mut c = Cursor::new(data);
    let mut n = 0;
    while !c.is_empty() && n < MAX_COMMANDS {
        n += 1;
        let kind = c.u8() % 5;
        let step = u64::from(c.u8()) * 250;
        mono += step;
        st.now_ms += step;
        let msg = c.chunk();
        match kind {
            0 => {
                let Ok(r) = HeartbeatRequest::decode(msg) else {
                    continue;
                };
                let HeartbeatStep::Accept { epoch, update } =
                    ctl.heartbeat_begin(&st.kv, &r, mono, st.now_ms)
                else {
                    continue;
                };
                if let Some(u) = update {
                    let _ = st.propose(Op::ChunkserverUpdate(u));
                }
                let resp = ctl.heartbeat_finish(&st.kv, &r, epoch, mono);
                assert_eq!(resp.epoch, epoch);
            }
            1 => {
                if let Ok(r) = AllocateChunksRequest::decode(msg) {
                    if let Ok(resp) = ctl.allocate(&st.kv, &r, mono) {
                        assert_eq!(resp.placements.len(), r.sha256.len());
                    }
                }
            }
            2 => {
                if let Ok(r) = LocateChunksRequest::decode(msg) {
                    assert_eq!(ctl.locate(&st.kv, &r.sha256, mono).len(), r.sha256.len());
                }
            }
            3 => {
                if let Ok(r) = ReportBadChunkRequest::decode(msg) {
                    ctl.report_bad(r.server_id, &r.sha256);
                }
            }
            _ => {
                for op in ctl.sweep(&st.kv, mono, st.now_ms).ops() {
                    let _ = st.propose(op);
                }
            }
        }
    }
}

/// Bucket `bkt`, servers 1-3 registered (epoch 1) and seen, object `bkt/k` with two chunks.
fn control_fixture(st: &mut MemState, ctl: &mut anode_meta::control::LeaderControl) {
    let must = |r: Result<CommandResult, ErrorDetail>| r.expect("the fixture applies");
    must(st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            version: RECORD_VERSION,
            name: "bkt".into(),
            ..Default::default()
        }),
    })));
    for i in 1..=3u64 {
        let res = must(st.propose(Op::RegisterChunkserver(RegisterChunkserverCmd {
            addr: format!("127.0.0.1:710{i}"),
            rack: format!("r{i}"),
            capacity_bytes: 1 << 30,
            uuid: format!("u-{i}"),
        })));
        ctl.registered(res.chunkserver_id, 0);
    }
    let chunk = |b: u8| ChunkRef {
        sha256: vec![b; 32],
        length: 100,
        servers: vec![1, 2],
        uploaded_ms: 900_000,
    };
    must(st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: "bkt".into(),
        key: "k".into(),
        manifest: Some(Manifest {
            version: MANIFEST_VERSION,
            size: 200,
            etag: "0123456789abcdef0123456789abcdef".into(),
            chunks: vec![chunk(1), chunk(2)],
            ..Default::default()
        }),
        if_match_etag: None,
        source: String::new(),
    })));
}
