//! Tests of object versions (issue 14) against S3's documented semantics: versioning states,
//! delete markers, version ids, object lock, ListObjectVersions paging, and lifecycle batches.
//! Every command goes through [`MemState::propose`], which checks the invariants (refcounts,
//! counters, usage) after each one.

use std::collections::BTreeMap;

use anode_proto::command::Op;
use anode_proto::*;
use proptest::prelude::*;

use super::versions::{self, COMPLIANCE, ENABLED, GOVERNANCE, SUSPENDED};
use super::*;

const B: &str = "vbkt";
const T0: u64 = 1_000_000;

fn new_bucket(st: &mut MemState, name: &str) {
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            name: name.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
}

fn state() -> MemState {
    let mut st = MemState::new(T0);
    new_bucket(&mut st, B);
    st
}

/// A body of one chunk whose hash is made of `tag` (so its refcount can be read back).
fn body(tag: u8) -> Vec<ChunkRef> {
    vec![ChunkRef {
        sha256: vec![tag; 32],
        length: 10 + u64::from(tag),
        servers: vec![1, 2, 3],
        uploaded_ms: 1,
    }]
}

fn manifest(tag: u8) -> Manifest {
    let chunks = body(tag);
    Manifest {
        size: chunks[0].length,
        etag: format!("e{tag}"),
        chunks,
        ..Default::default()
    }
}

fn put_m(st: &mut MemState, b: &str, key: &str, m: Manifest) -> Result<Manifest, ErrorDetail> {
    st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: b.into(),
        key: key.into(),
        manifest: Some(m),
        if_match_etag: None,
        source: String::new(),
    }))
    .map(|r| r.manifest.expect("a put returns its manifest"))
}

fn put(st: &mut MemState, key: &str, tag: u8) -> Manifest {
    put_m(st, B, key, manifest(tag)).unwrap()
}

fn del_in(
    st: &mut MemState,
    b: &str,
    key: &str,
    vid: Option<&str>,
    bypass: bool,
) -> Result<DeleteOutcome, ErrorDetail> {
    st.propose(Op::DeleteObject(DeleteObjectCmd {
        bucket: b.into(),
        key: key.into(),
        version_id: vid.map(str::to_string),
        bypass_governance: bypass,
        ..Default::default()
    }))
    .map(|mut r| r.deletions.pop().expect("one outcome"))
}

fn del(st: &mut MemState, key: &str, vid: Option<&str>) -> Result<DeleteOutcome, ErrorDetail> {
    del_in(st, B, key, vid, false)
}

fn set_versioning_in(st: &mut MemState, b: &str, state: u32) -> Result<(), ErrorDetail> {
    st.propose(Op::SetBucketVersioning(SetBucketVersioningCmd {
        name: b.into(),
        state,
    }))
    .map(|_| ())
}

fn set_versioning(st: &mut MemState, state: u32) {
    set_versioning_in(st, B, state).unwrap();
}

fn get(st: &MemState, key: &str, vid: Option<&str>, markers: bool) -> Result<Manifest, StateError> {
    versions::get_version(&st.kv, B, key, vid, markers)
}

fn refcount(st: &MemState, tag: u8) -> u64 {
    get_chunk(&st.kv, &[tag; 32]).map_or(0, |c| c.refcount)
}

/// One listed version: key, version id, is_latest, delete marker, etag.
type Row = (String, String, bool, bool, String);

/// The whole ListObjectVersions of `bucket`, paged `max` at a time through the markers.
fn list_all(kv: &dyn KvRead, bucket: &str, max: u32) -> Vec<Row> {
    let mut out = Vec::new();
    let (mut km, mut vm) = (String::new(), String::new());
    for _ in 0..10_000 {
        let page = list_object_versions(
            kv,
            &ListObjectVersionsRequest {
                bucket: bucket.into(),
                key_marker: km.clone(),
                version_id_marker: vm.clone(),
                max_keys: max,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(page.versions.len() <= max as usize, "page over max_keys");
        out.extend(page.versions.into_iter().map(|v| {
            (
                v.key,
                v.version_id,
                v.is_latest,
                v.delete_marker,
                if v.delete_marker {
                    String::new()
                } else {
                    v.etag
                },
            )
        }));
        if !page.is_truncated {
            assert!(page.next_key_marker.is_empty() && page.next_version_id_marker.is_empty());
            return out;
        }
        km = page.next_key_marker;
        vm = page.next_version_id_marker;
    }
    panic!("listing never ended")
}

fn rows(kv: &dyn KvRead) -> Vec<Row> {
    list_all(kv, B, 1000)
}

fn row(key: &str, vid: &str, latest: bool, marker: bool, etag: &str) -> Row {
    (key.into(), vid.into(), latest, marker, etag.into())
}

fn code(e: StateError) -> ErrorCode {
    e.code()
}

// ---- S3 semantics --------------------------------------------------------------------------

#[test]
fn enabling_keeps_the_existing_object_as_the_null_version() {
    let mut st = state();
    let m0 = put(&mut st, "k", 1);
    assert_eq!(m0.version_id, "", "an unversioned put has the null version");
    assert_eq!(versions::version_id_of(&m0), "null");
    set_versioning(&mut st, ENABLED);
    assert_eq!(get(&st, "k", None, false).unwrap().etag, "e1");
    let m1 = put(&mut st, "k", 2);
    let m2 = put(&mut st, "k", 3);
    for m in [&m1, &m2] {
        assert_eq!(m.version_id.len(), 16, "{m:?}");
        assert!(versions::parse_version_id(&m.version_id).unwrap().is_some());
    }
    // Version ids sort with time: the newer the greater (fixed-width hex).
    assert!(m2.version_id > m1.version_id);
    assert!(versions::seq_of(&m2) > versions::seq_of(&m1));
    assert_eq!(get(&st, "k", None, false).unwrap().etag, "e3");
    assert_eq!(get(&st, "k", Some("null"), false).unwrap().etag, "e1");
    assert_eq!(
        get(&st, "k", Some(&m1.version_id), false).unwrap().etag,
        "e2"
    );
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", &m2.version_id, true, false, "e3"),
            row("k", &m1.version_id, false, false, "e2"),
            row("k", "null", false, false, "e1"),
        ]
    );
    for tag in 1..=3 {
        assert_eq!(refcount(&st, tag), 1, "every version keeps its chunks");
    }
    assert_eq!(
        code(get(&st, "k", Some("ffffffffffffffff"), false).unwrap_err()),
        ErrorCode::NoSuchVersion
    );
    assert_eq!(
        code(get(&st, "k", Some("not-an-id"), false).unwrap_err()),
        ErrorCode::InvalidArgument
    );
    assert_eq!(bucket_usage(&st.kv, B).objects, 3);
}

#[test]
fn a_simple_delete_adds_a_marker_and_deleting_the_marker_restores_the_object() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    let m1 = put(&mut st, "k", 1);
    let out = del(&mut st, "k", None).unwrap();
    assert!(out.delete_marker && out.existed);
    let marker_id = out.version_id.clone();
    assert_eq!(marker_id.len(), 16);
    assert!(marker_id > m1.version_id);
    assert_eq!(
        code(get(&st, "k", None, false).unwrap_err()),
        ErrorCode::NoSuchKey
    );
    assert_eq!(
        code(get_object(&st.kv, B, "k").unwrap_err()),
        ErrorCode::NoSuchKey
    );
    let mk = get(&st, "k", None, true).unwrap();
    assert!(mk.delete_marker);
    assert_eq!(mk.version_id, marker_id);
    assert_eq!(
        code(get(&st, "k", Some(&marker_id), false).unwrap_err()),
        ErrorCode::MethodNotAllowed
    );
    // The object's version is still readable by id and keeps its chunk.
    assert_eq!(
        get(&st, "k", Some(&m1.version_id), false).unwrap().etag,
        "e1"
    );
    assert_eq!(refcount(&st, 1), 1);
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", &marker_id, true, true, ""),
            row("k", &m1.version_id, false, false, "e1"),
        ]
    );
    // Deleting the marker by id makes the object current again.
    let out = del(&mut st, "k", Some(&marker_id)).unwrap();
    assert!(out.delete_marker && out.existed);
    assert_eq!(out.version_id, marker_id);
    let cur = get(&st, "k", None, false).unwrap();
    assert_eq!(cur.version_id, m1.version_id);
    assert_eq!(get_object(&st.kv, B, "k").unwrap().etag, "e1");
    assert_eq!(
        rows(&st.kv),
        vec![row("k", &m1.version_id, true, false, "e1")]
    );
    // Two simple deletes stack two markers.
    let d1 = del(&mut st, "k", None).unwrap().version_id;
    let d2 = del(&mut st, "k", None).unwrap().version_id;
    assert!(d2 > d1);
    assert_eq!(rows(&st.kv).len(), 3);
}

#[test]
fn deleting_the_current_version_promotes_the_next_newest() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    let v1 = put(&mut st, "k", 1).version_id;
    let v2 = put(&mut st, "k", 2).version_id;
    let v3 = put(&mut st, "k", 3).version_id;
    let out = del(&mut st, "k", Some(&v3)).unwrap();
    assert!(out.existed && !out.delete_marker);
    assert_eq!(
        refcount(&st, 3),
        0,
        "a version deleted for good drops its chunks"
    );
    assert_eq!(get(&st, "k", None, false).unwrap().version_id, v2);
    assert_eq!(get_object(&st.kv, B, "k").unwrap().version_id, v2);
    // A noncurrent one goes without touching the current.
    del(&mut st, "k", Some(&v1)).unwrap();
    assert_eq!(refcount(&st, 1), 0);
    assert_eq!(rows(&st.kv), vec![row("k", &v2, true, false, "e2")]);
    // A version deleted twice: the second finds nothing.
    let again = del(&mut st, "k", Some(&v1)).unwrap();
    assert!(!again.existed);
    // A marker between objects: deleting the object on top leaves the marker current.
    let dm = del(&mut st, "k", None).unwrap().version_id;
    let v4 = put(&mut st, "k", 4).version_id;
    del(&mut st, "k", Some(&v4)).unwrap();
    assert_eq!(
        code(get(&st, "k", None, false).unwrap_err()),
        ErrorCode::NoSuchKey
    );
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", &dm, true, true, ""),
            row("k", &v2, false, false, "e2"),
        ]
    );
    assert_eq!(bucket_usage(&st.kv, B).objects, 1);
}

#[test]
fn suspended_puts_and_deletes_replace_the_null_version_only() {
    let mut st = state();
    put(&mut st, "k", 1); // null
    set_versioning(&mut st, ENABLED);
    let v2 = put(&mut st, "k", 2).version_id;
    set_versioning(&mut st, SUSPENDED);
    let m3 = put(&mut st, "k", 3);
    assert_eq!(m3.version_id, "", "a suspended put writes the null version");
    assert_eq!(
        refcount(&st, 1),
        0,
        "the old null version's chunks are dropped"
    );
    assert_eq!(refcount(&st, 2), 1);
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", "null", true, false, "e3"),
            row("k", &v2, false, false, "e2"),
        ]
    );
    put(&mut st, "k", 4);
    assert_eq!(refcount(&st, 3), 0);
    assert_eq!(get(&st, "k", Some("null"), false).unwrap().etag, "e4");
    // A simple delete: a null delete marker replaces the null version.
    let out = del(&mut st, "k", None).unwrap();
    assert!(out.delete_marker);
    assert_eq!(out.version_id, "null");
    assert_eq!(refcount(&st, 4), 0);
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", "null", true, true, ""),
            row("k", &v2, false, false, "e2"),
        ]
    );
    assert_eq!(
        code(get(&st, "k", Some("null"), false).unwrap_err()),
        ErrorCode::MethodNotAllowed
    );
    // The null version below a newer one is replaced from where it is.
    set_versioning(&mut st, ENABLED);
    let v5 = put(&mut st, "k", 5).version_id;
    set_versioning(&mut st, SUSPENDED);
    put(&mut st, "k", 6);
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", "null", true, false, "e6"),
            row("k", &v5, false, false, "e5"),
            row("k", &v2, false, false, "e2"),
        ]
    );
    // A suspended delete of a key that has nothing still leaves a null marker (S3).
    let out = del(&mut st, "other", None).unwrap();
    assert!(out.delete_marker);
    assert_eq!(out.version_id, "null");
    // Deleting the null version by id in a suspended bucket promotes the next one.
    del(&mut st, "k", Some("null")).unwrap();
    assert_eq!(get(&st, "k", None, false).unwrap().version_id, v5);
    assert_eq!(refcount(&st, 6), 0);
    assert_eq!(bucket_usage(&st.kv, B).objects, 2);
}

#[test]
fn versioning_never_returns_to_unversioned() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    for bad in [0, 3] {
        let e = set_versioning_in(&mut st, B, bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "state {bad}");
    }
    assert_eq!(
        versions::versioning_of(&get_bucket(&st.kv, B).unwrap()),
        ENABLED
    );
    set_versioning(&mut st, SUSPENDED);
    assert_eq!(
        set_versioning_in(&mut st, B, 0).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        versions::versioning_of(&get_bucket(&st.kv, B).unwrap()),
        SUSPENDED
    );
    assert_eq!(
        set_versioning_in(&mut st, "nope", ENABLED)
            .unwrap_err()
            .code(),
        ErrorCode::NoSuchBucket
    );
}

fn lock_bucket(st: &mut MemState, name: &str, default: Option<DefaultRetention>) {
    new_bucket(st, name);
    assert_eq!(
        st.propose(Op::SetBucketObjectLock(SetBucketObjectLockCmd {
            name: name.into(),
            default_retention: default.clone(),
        }))
        .unwrap_err()
        .code(),
        ErrorCode::InvalidBucketState,
        "object lock needs versioning"
    );
    set_versioning_in(st, name, ENABLED).unwrap();
    st.propose(Op::SetBucketObjectLock(SetBucketObjectLockCmd {
        name: name.into(),
        default_retention: default,
    }))
    .unwrap();
}

fn lock_cmd(b: &str, key: &str, vid: &str) -> SetObjectLockCmd {
    SetObjectLockCmd {
        bucket: b.into(),
        key: key.into(),
        version_id: Some(vid.into()),
        ..Default::default()
    }
}

fn retain(b: &str, key: &str, vid: &str, mode: &str, until: u64, bypass: bool) -> Op {
    Op::SetObjectLock(SetObjectLockCmd {
        set_retention: true,
        mode: mode.into(),
        retain_until_ms: until,
        bypass_governance: bypass,
        ..lock_cmd(b, key, vid)
    })
}

fn hold(b: &str, key: &str, vid: &str, on: bool) -> Op {
    Op::SetObjectLock(SetObjectLockCmd {
        set_legal_hold: true,
        legal_hold: on,
        ..lock_cmd(b, key, vid)
    })
}

#[test]
fn object_lock_refuses_deletes_as_s3_says() {
    let mut st = state();
    let l = "locked";
    lock_bucket(&mut st, l, None);
    assert_eq!(
        set_versioning_in(&mut st, l, SUSPENDED).unwrap_err().code(),
        ErrorCode::InvalidBucketState
    );
    let until = T0 + 10_000;
    // COMPLIANCE: nobody deletes the version, bypass or not.
    let c = put_m(&mut st, l, "c", manifest(1)).unwrap().version_id;
    st.propose(retain(l, "c", &c, COMPLIANCE, until, false))
        .unwrap();
    for bypass in [false, true] {
        let e = del_in(&mut st, l, "c", Some(&c), bypass).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ObjectLocked);
    }
    assert_eq!(refcount(&st, 1), 1);
    // A simple delete only adds a marker: allowed.
    let dm = del_in(&mut st, l, "c", None, false).unwrap();
    assert!(dm.delete_marker);
    del_in(&mut st, l, "c", Some(&dm.version_id), false).unwrap();
    // GOVERNANCE: refused without the bypass, allowed with it.
    let g = put_m(&mut st, l, "g", manifest(2)).unwrap().version_id;
    st.propose(retain(l, "g", &g, GOVERNANCE, until, false))
        .unwrap();
    assert_eq!(
        del_in(&mut st, l, "g", Some(&g), false).unwrap_err().code(),
        ErrorCode::ObjectLocked
    );
    assert!(del_in(&mut st, l, "g", Some(&g), true).unwrap().existed);
    assert_eq!(refcount(&st, 2), 0);
    // Legal hold: refused even with the bypass until it is lifted.
    let h = put_m(&mut st, l, "h", manifest(3)).unwrap().version_id;
    st.propose(hold(l, "h", &h, true)).unwrap();
    assert!(get_object(&st.kv, l, "h").unwrap().legal_hold);
    assert_eq!(
        del_in(&mut st, l, "h", Some(&h), true).unwrap_err().code(),
        ErrorCode::ObjectLocked
    );
    st.propose(hold(l, "h", &h, false)).unwrap();
    del_in(&mut st, l, "h", Some(&h), false).unwrap();
    // When the retention ends, the COMPLIANCE version may go.
    st.now_ms = until;
    del_in(&mut st, l, "c", Some(&c), false).unwrap();
    assert_eq!(refcount(&st, 1), 0);
    // Retention on a bucket without object lock is refused, on the put and afterwards.
    let plain = Manifest {
        lock_mode: GOVERNANCE.into(),
        retain_until_ms: until,
        ..manifest(4)
    };
    assert_eq!(
        put_m(&mut st, B, "x", plain).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    put(&mut st, "x", 4);
    assert_eq!(
        st.propose(retain(B, "x", "null", GOVERNANCE, until, false))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn default_retention_is_applied_on_put() {
    let mut st = state();
    let l = "deflock";
    let d = DefaultRetention {
        mode: GOVERNANCE.into(),
        days: 2,
        years: 0,
    };
    lock_bucket(&mut st, l, Some(d));
    let m = put_m(&mut st, l, "k", manifest(1)).unwrap();
    assert_eq!(m.lock_mode, GOVERNANCE);
    assert_eq!(m.retain_until_ms, T0 + 2 * 86_400_000);
    let stored = get_object(&st.kv, l, "k").unwrap();
    assert_eq!(
        (stored.lock_mode.as_str(), stored.retain_until_ms),
        (GOVERNANCE, m.retain_until_ms)
    );
    assert_eq!(
        del_in(&mut st, l, "k", Some(&m.version_id), false)
            .unwrap_err()
            .code(),
        ErrorCode::ObjectLocked
    );
    // A retention given on the write wins over the default.
    let given = Manifest {
        lock_mode: COMPLIANCE.into(),
        retain_until_ms: T0 + 5,
        ..manifest(2)
    };
    let m2 = put_m(&mut st, l, "k", given).unwrap();
    assert_eq!(
        (m2.lock_mode.as_str(), m2.retain_until_ms),
        (COMPLIANCE, T0 + 5)
    );
    // Bad retention fields are refused.
    for (mode, until) in [("COMPLIANCE", 0), ("", 5), ("FOREVER", 5)] {
        let bad = Manifest {
            lock_mode: mode.into(),
            retain_until_ms: until,
            ..manifest(3)
        };
        assert_eq!(
            put_m(&mut st, l, "k", bad).unwrap_err().code(),
            ErrorCode::InvalidArgument,
            "{mode} {until}"
        );
    }
    // A delete marker carries no retention.
    let dm = del_in(&mut st, l, "k", None, false).unwrap();
    let marker = versions::get_version(&st.kv, l, "k", Some(&dm.version_id), true).unwrap();
    assert!(marker.delete_marker && marker.lock_mode.is_empty());
}

#[test]
fn retention_can_be_extended_but_compliance_never_shortened() {
    let mut st = state();
    let l = "setlock";
    lock_bucket(&mut st, l, None);
    let v = put_m(&mut st, l, "k", manifest(1)).unwrap().version_id;
    let until = T0 + 1000;
    st.propose(retain(l, "k", &v, COMPLIANCE, until, false))
        .unwrap();
    // Extend: fine.
    st.propose(retain(l, "k", &v, COMPLIANCE, until + 500, false))
        .unwrap();
    // Shorten, weaken or remove a COMPLIANCE retention: refused, bypass or not.
    for (mode, t) in [(COMPLIANCE, until), (GOVERNANCE, until + 1000), ("", 0)] {
        for bypass in [false, true] {
            assert_eq!(
                st.propose(retain(l, "k", &v, mode, t, bypass))
                    .unwrap_err()
                    .code(),
                ErrorCode::ObjectLocked,
                "{mode} {t} {bypass}"
            );
        }
    }
    let m = versions::get_version(&st.kv, l, "k", Some(&v), false).unwrap();
    assert_eq!(
        (m.lock_mode.as_str(), m.retain_until_ms),
        (COMPLIANCE, until + 500)
    );
    // GOVERNANCE: extend freely; shorten, remove or make COMPLIANCE only with the bypass.
    let g = put_m(&mut st, l, "g", manifest(2)).unwrap().version_id;
    st.propose(retain(l, "g", &g, GOVERNANCE, until, false))
        .unwrap();
    assert_eq!(
        st.propose(retain(l, "g", &g, GOVERNANCE, until - 1, false))
            .unwrap_err()
            .code(),
        ErrorCode::ObjectLocked
    );
    assert_eq!(
        st.propose(retain(l, "g", &g, "", 0, false))
            .unwrap_err()
            .code(),
        ErrorCode::ObjectLocked
    );
    st.propose(retain(l, "g", &g, GOVERNANCE, until - 1, true))
        .unwrap();
    st.propose(retain(l, "g", &g, "", 0, true)).unwrap();
    del_in(&mut st, l, "g", Some(&g), false).unwrap();
    let g2 = put_m(&mut st, l, "g", manifest(3)).unwrap().version_id;
    st.propose(retain(l, "g", &g2, GOVERNANCE, until, false))
        .unwrap();
    assert_eq!(
        st.propose(retain(l, "g", &g2, COMPLIANCE, until, false))
            .unwrap_err()
            .code(),
        ErrorCode::ObjectLocked
    );
    st.propose(retain(l, "g", &g2, COMPLIANCE, until, true))
        .unwrap();
    assert_eq!(
        del_in(&mut st, l, "g", Some(&g2), true).unwrap_err().code(),
        ErrorCode::ObjectLocked
    );
    // The version changed in place: same id, body and place.
    let m = get_object(&st.kv, l, "g").unwrap();
    assert_eq!(
        (m.version_id.as_str(), m.etag.as_str()),
        (g2.as_str(), "e3")
    );
    // An expired retention may be replaced by anything.
    st.now_ms = until + 10_000;
    st.propose(retain(l, "k", &v, GOVERNANCE, st.now_ms + 5, false))
        .unwrap();
    // Markers, unknown versions and bad ids.
    let dm = del_in(&mut st, l, "k", None, false).unwrap().version_id;
    assert_eq!(
        st.propose(hold(l, "k", &dm, true)).unwrap_err().code(),
        ErrorCode::MethodNotAllowed
    );
    assert_eq!(
        st.propose(Op::SetObjectLock(SetObjectLockCmd {
            set_legal_hold: true,
            legal_hold: true,
            bucket: l.into(),
            key: "k".into(),
            version_id: None,
            ..Default::default()
        }))
        .unwrap_err()
        .code(),
        ErrorCode::NoSuchKey,
        "the current version is a marker"
    );
    assert_eq!(
        st.propose(hold(l, "k", "00000000ffffffff", true))
            .unwrap_err()
            .code(),
        ErrorCode::NoSuchVersion
    );
    assert_eq!(
        st.propose(hold(l, "k", "zz", true)).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn a_bucket_with_versions_left_cannot_be_deleted() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    let v1 = put(&mut st, "k", 1).version_id;
    let dm = del(&mut st, "k", None).unwrap().version_id;
    assert!(get_object(&st.kv, B, "k").is_err(), "no current object");
    let drop_bucket = || Op::DeleteBucket(DeleteBucketCmd { name: B.into() });
    assert_eq!(
        st.propose(drop_bucket()).unwrap_err().code(),
        ErrorCode::BucketNotEmpty
    );
    del(&mut st, "k", Some(&v1)).unwrap();
    // Only a marker is left: still not empty.
    assert_eq!(
        st.propose(drop_bucket()).unwrap_err().code(),
        ErrorCode::BucketNotEmpty
    );
    del(&mut st, "k", Some(&dm)).unwrap();
    st.propose(drop_bucket()).unwrap();
    assert!(get_bucket(&st.kv, B).is_none());
    assert!(st
        .kv
        .scan(b"n/", prefix_end(b"n/").as_deref(), 10)
        .is_empty());
}

#[test]
fn a_bulk_delete_reports_the_locked_entry_and_applies_the_others() {
    let mut st = state();
    let l = "bulklock";
    lock_bucket(&mut st, l, None);
    let a = put_m(&mut st, l, "a", manifest(1)).unwrap().version_id;
    let b = put_m(&mut st, l, "b", manifest(2)).unwrap().version_id;
    put_m(&mut st, l, "c", manifest(3)).unwrap();
    st.propose(retain(l, "a", &a, COMPLIANCE, T0 + 1000, false))
        .unwrap();
    let r = st
        .propose(Op::DeleteObjects(DeleteObjectsCmd {
            bucket: l.into(),
            keys: vec!["c".into()],
            objects: vec![
                ObjectVersionRef {
                    key: "a".into(),
                    version_id: Some(a.clone()),
                },
                ObjectVersionRef {
                    key: "b".into(),
                    version_id: Some(b.clone()),
                },
                ObjectVersionRef {
                    key: "b".into(),
                    version_id: Some("bogus".into()),
                },
            ],
            bypass_governance: true,
        }))
        .unwrap();
    assert_eq!(r.deletions.len(), 4);
    let by = |k: &str, vid: &str| {
        r.deletions
            .iter()
            .find(|d| d.key == k && d.version_id == vid)
            .unwrap_or_else(|| panic!("no outcome for {k} {vid}: {:?}", r.deletions))
            .clone()
    };
    assert_eq!(
        by("a", &a).error.expect("locked").code(),
        ErrorCode::ObjectLocked
    );
    assert_eq!(
        by("b", "bogus").error.expect("bad id").code(),
        ErrorCode::InvalidArgument
    );
    let ob = by("b", &b);
    assert!(ob.error.is_none() && ob.existed);
    let oc = r.deletions.iter().find(|d| d.key == "c").unwrap();
    assert!(oc.error.is_none() && oc.delete_marker);
    assert_eq!(r.deleted_keys, vec!["c".to_string()]);
    assert_eq!(get_object(&st.kv, l, "a").unwrap().version_id, a);
    assert!(get_object(&st.kv, l, "b").is_err());
    assert_eq!(refcount(&st, 1), 1);
    assert_eq!(refcount(&st, 2), 0);
    assert_eq!(refcount(&st, 3), 1, "c's object stays under its marker");
    // A single delete of the locked version is the command's refusal.
    assert_eq!(
        del_in(&mut st, l, "a", Some(&a), true).unwrap_err().code(),
        ErrorCode::ObjectLocked
    );
}

#[test]
fn version_markers_resume_inside_a_key_and_after_a_null_version() {
    let mut st = state();
    put(&mut st, "a", 1); // null of a
    set_versioning(&mut st, ENABLED);
    let a2 = put(&mut st, "a", 2).version_id;
    let a3 = del(&mut st, "a", None).unwrap().version_id;
    let b1 = put(&mut st, "a/b", 3).version_id;
    let c1 = put(&mut st, "b", 4).version_id;
    let full = vec![
        row("a", &a3, true, true, ""),
        row("a", &a2, false, false, "e2"),
        row("a", "null", false, false, "e1"),
        row("a/b", &b1, true, false, "e3"),
        row("b", &c1, true, false, "e4"),
    ];
    for max in 1..=6 {
        assert_eq!(list_all(&st.kv, B, max), full, "max_keys {max}");
    }
    let page = |km: &str, vm: &str| {
        list_object_versions(
            &st.kv,
            &ListObjectVersionsRequest {
                bucket: B.into(),
                key_marker: km.into(),
                version_id_marker: vm.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .versions
        .into_iter()
        .map(|v| (v.key, v.version_id))
        .collect::<Vec<_>>()
    };
    let ids = |rs: &[Row]| {
        rs.iter()
            .map(|r| (r.0.clone(), r.1.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(page("a", ""), ids(&full[3..]));
    assert_eq!(page("a", &a3), ids(&full[1..]));
    assert_eq!(page("a", "null"), ids(&full[3..]));
    assert_eq!(page("a/b", &b1), ids(&full[4..]));
    assert_eq!(
        code(
            list_object_versions(
                &st.kv,
                &ListObjectVersionsRequest {
                    bucket: B.into(),
                    key_marker: "a".into(),
                    version_id_marker: "junk".into(),
                    ..Default::default()
                },
            )
            .unwrap_err()
        ),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn the_pre_versioning_flag_reads_as_enabled() {
    let mut st = MemState::new(T0);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            name: B.into(),
            versioning: true,
            ..Default::default()
        }),
    }))
    .unwrap();
    let v1 = put(&mut st, "k", 1).version_id;
    let v2 = put(&mut st, "k", 2).version_id;
    assert!(!v1.is_empty() && v2 > v1);
    set_versioning(&mut st, SUSPENDED);
    assert_eq!(put(&mut st, "k", 3).version_id, "");
    assert_eq!(rows(&st.kv).len(), 3);
}

#[test]
fn versions_written_after_a_log_restart_still_sort_newest() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    st.index = 1_000;
    let old = put(&mut st, "k", 1).version_id;
    let marker = del(&mut st, "k", None).unwrap().version_id;
    // A restored group restarts its log below the versions it holds.
    st.index = 10;
    let new = put(&mut st, "k", 2).version_id;
    assert!(new > marker && marker > old, "{old} {marker} {new}");
    assert_eq!(get(&st, "k", None, false).unwrap().etag, "e2");
    assert_eq!(
        rows(&st.kv),
        vec![
            row("k", &new, true, false, "e2"),
            row("k", &marker, false, true, ""),
            row("k", &old, false, false, "e1"),
        ]
    );
    // Two versions of one key in one command (one raft index) get distinct ids.
    st.propose(Op::PutObjects(PutObjectsCmd {
        bucket: B.into(),
        objects: [3, 4]
            .map(|t| BulkPut {
                key: "k".into(),
                manifest: Some(manifest(t)),
            })
            .to_vec(),
    }))
    .unwrap();
    let ids: Vec<String> = rows(&st.kv).into_iter().map(|r| r.1).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[test]
fn lifecycle_expiry_removes_in_unversioned_and_replaces_the_null_in_suspended_buckets() {
    let mut st = state();
    let rules = || {
        vec![LifecycleRule {
            expiration_days: 1,
            ..rule("exp", "")
        }]
    };
    set_rules(&mut st, B, rules());
    put(&mut st, "k", 1);
    run_pass(&mut st, B, T0 + DAY);
    assert!(
        rows(&st.kv).is_empty(),
        "an unversioned expiry removes the object"
    );
    assert_eq!(refcount(&st, 1), 0);
    let s = "suspbkt";
    new_bucket(&mut st, s);
    set_rules(&mut st, s, rules());
    set_versioning_in(&mut st, s, ENABLED).unwrap();
    let v = put_m(&mut st, s, "k", manifest(2)).unwrap().version_id;
    set_versioning_in(&mut st, s, SUSPENDED).unwrap();
    put_m(&mut st, s, "k", manifest(3)).unwrap();
    run_pass(&mut st, s, T0 + 2 * DAY);
    assert_eq!(
        list_all(&st.kv, s, 1000),
        vec![
            row("k", "null", true, true, ""),
            row("k", &v, false, false, "e2"),
        ]
    );
    assert_eq!(refcount(&st, 3), 0, "the null object's data is dropped");
    assert_eq!(refcount(&st, 2), 1);
}

// ---- the model test ------------------------------------------------------------------------

/// One version in the model: id (None = null), delete marker, body tag (0 for markers).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MV {
    id: Option<String>,
    marker: bool,
    tag: u8,
}

impl MV {
    fn vid(&self) -> &str {
        self.id.as_deref().unwrap_or("null")
    }
}

#[derive(Debug, Clone)]
enum VOp {
    Put(usize),
    /// Two puts of the key in one PutObjects command (one raft index).
    PutTwice(usize),
    Delete(usize),
    /// Key, and which id: an index into the key's known versions, or past them: `null`, a
    /// well-formed id of no version, or an invalid one.
    DeleteVersion(usize, usize),
    /// One DeleteObjects: a simple delete of the next key, then these ids of the key.
    BulkDelete(usize, Vec<usize>),
    Versioning(bool),
}

const KEYS: [&str; 3] = ["a", "a/b", "b"];
const NO_SUCH_ID: &str = "00000000000000ff";
const BAD_ID: &str = "bogus";

fn vop() -> impl Strategy<Value = VOp> {
    prop_oneof![
        4 => (0..KEYS.len()).prop_map(VOp::Put),
        1 => (0..KEYS.len()).prop_map(VOp::PutTwice),
        2 => (0..KEYS.len()).prop_map(VOp::Delete),
        3 => (0..KEYS.len(), 0usize..8).prop_map(|(k, i)| VOp::DeleteVersion(k, i)),
        1 => (0..KEYS.len(), prop::collection::vec(0usize..8, 1..4))
            .prop_map(|(k, ids)| VOp::BulkDelete(k, ids)),
        1 => any::<bool>().prop_map(VOp::Versioning),
    ]
}

#[derive(Default)]
struct Model {
    state: u32,
    keys: BTreeMap<String, Vec<MV>>,
}

impl Model {
    /// Remove the null version of `key`, if any.
    fn drop_null(&mut self, key: &str) {
        if let Some(vs) = self.keys.get_mut(key) {
            vs.retain(|v| v.id.is_some());
        }
    }
    fn push(&mut self, key: &str, v: MV) {
        self.keys.entry(key.to_string()).or_default().insert(0, v);
    }
    fn listing(&self) -> Vec<Row> {
        let mut out = Vec::new();
        for (k, vs) in &self.keys {
            for (i, v) in vs.iter().enumerate() {
                let etag = if v.marker {
                    String::new()
                } else {
                    format!("e{}", v.tag)
                };
                out.push((k.clone(), v.vid().to_string(), i == 0, v.marker, etag));
            }
        }
        out
    }
    /// The version id a choice names (see [`VOp::DeleteVersion`]).
    fn pick(&self, key: &str, i: usize) -> String {
        let known = self.keys.get(key).map_or(&[][..], Vec::as_slice);
        match i.checked_sub(known.len()) {
            None => known[i].vid().to_string(),
            Some(0) => NULL_VERSION.to_string(),
            Some(1) => NO_SUCH_ID.to_string(),
            Some(_) => BAD_ID.to_string(),
        }
    }
    /// A put in the model; `id` is the one the state machine gave (checked here).
    fn put(&mut self, key: &str, tag: u8, id: &str) -> Result<(), TestCaseError> {
        let id = if self.state == ENABLED {
            prop_assert_eq!(id.len(), 16);
            for v in self.keys.get(key).into_iter().flatten() {
                if let Some(old) = &v.id {
                    prop_assert!(id > old.as_str(), "new id {} sorts newer than {}", id, old);
                }
            }
            Some(id.to_string())
        } else {
            prop_assert_eq!(id, "");
            self.drop_null(key);
            None
        };
        self.push(
            key,
            MV {
                id,
                marker: false,
                tag,
            },
        );
        Ok(())
    }
    /// A simple delete in the model, checked against its outcome.
    fn delete(&mut self, key: &str, out: &DeleteOutcome) -> Result<(), TestCaseError> {
        prop_assert!(out.error.is_none());
        match self.state {
            0 => {
                let existed = self.keys.remove(key).is_some_and(|v| !v.is_empty());
                prop_assert_eq!(out.existed, existed);
                prop_assert!(!out.delete_marker);
            }
            s => {
                prop_assert!(out.delete_marker && out.existed);
                let id = if s == ENABLED {
                    prop_assert_eq!(out.version_id.len(), 16);
                    Some(out.version_id.clone())
                } else {
                    prop_assert_eq!(&out.version_id, "null");
                    self.drop_null(key);
                    None
                };
                self.push(
                    key,
                    MV {
                        id,
                        marker: true,
                        tag: 0,
                    },
                );
            }
        }
        Ok(())
    }
    /// A delete of version `vid` in the model, checked against its outcome.
    fn delete_version(
        &mut self,
        key: &str,
        vid: &str,
        out: Result<&DeleteOutcome, ErrorCode>,
    ) -> Result<(), TestCaseError> {
        if vid == BAD_ID {
            prop_assert_eq!(out.map(|_| ()), Err(ErrorCode::InvalidArgument));
            return Ok(());
        }
        let out = out.map_err(|e| TestCaseError::fail(format!("{key} {vid}: {e:?}")))?;
        let known = self.keys.get(key).cloned().unwrap_or_default();
        let at = known.iter().position(|v| v.vid() == vid);
        prop_assert_eq!(out.existed, at.is_some(), "{} {}", key, vid);
        prop_assert_eq!(&out.version_id, vid);
        if let Some(at) = at {
            prop_assert_eq!(out.delete_marker, known[at].marker);
            let vs = self.keys.get_mut(key).expect("known key");
            vs.remove(at);
            if vs.is_empty() {
                self.keys.remove(key);
            }
        }
        Ok(())
    }
}

const NULL_VERSION: &str = versions::NULL_VERSION_ID;

fn check_against(st: &MemState, model: &Model, page: u32) -> Result<(), TestCaseError> {
    for key in KEYS {
        let vs = model.keys.get(key).cloned().unwrap_or_default();
        let got = get(st, key, None, false);
        // The current object is the one `o/` holds (plain GETs and ListObjects read it).
        let current = vs.first().filter(|v| !v.marker);
        prop_assert_eq!(
            get_object(&st.kv, B, key).ok().map(|m| m.etag),
            current.map(|v| format!("e{}", v.tag)),
            "the current object of {} in o/",
            key
        );
        match vs.first() {
            Some(v) if !v.marker => {
                let m = got.map_err(|e| TestCaseError::fail(format!("{key}: {e}")))?;
                prop_assert_eq!(&m.etag, &format!("e{}", v.tag));
                prop_assert_eq!(versions::version_id_of(&m), v.vid());
            }
            _ => prop_assert_eq!(got.map_err(code), Err(ErrorCode::NoSuchKey), "{}", key),
        }
        for v in &vs {
            let m = get(st, key, Some(v.vid()), true)
                .map_err(|e| TestCaseError::fail(format!("{key} {}: {e}", v.vid())))?;
            prop_assert_eq!(m.delete_marker, v.marker);
            if !v.marker {
                prop_assert_eq!(m.etag, format!("e{}", v.tag));
            }
        }
    }
    let listed: Vec<(String, String)> = list_objects(
        &st.kv,
        &ListObjectsRequest {
            bucket: B.into(),
            ..Default::default()
        },
    )
    .unwrap()
    .objects
    .into_iter()
    .map(|o| (o.key, o.etag))
    .collect();
    let current: Vec<(String, String)> = model
        .keys
        .iter()
        .filter_map(|(k, vs)| {
            vs.first()
                .filter(|v| !v.marker)
                .map(|v| (k.clone(), format!("e{}", v.tag)))
        })
        .collect();
    prop_assert_eq!(listed, current);
    let want = model.listing();
    prop_assert_eq!(&list_all(&st.kv, B, page), &want);
    prop_assert_eq!(&list_all(&st.kv, B, 1000), &want);
    // With the delimiter `/`, "a/b" rolls up into one common prefix, listed once.
    let (got_v, got_cp) = list_delimited(&st.kv, page);
    let want_v: Vec<Row> = want
        .iter()
        .filter(|r| !r.0.contains('/'))
        .cloned()
        .collect();
    prop_assert_eq!(got_v, want_v);
    let want_cp: Vec<String> = if model.keys.contains_key("a/b") {
        vec!["a/".into()]
    } else {
        vec![]
    };
    prop_assert_eq!(got_cp, want_cp);
    let objects = want.iter().filter(|r| !r.3).count() as u64;
    prop_assert_eq!(bucket_usage(&st.kv, B).objects, objects);
    prop_assert_eq!(stats(&st.kv).objects, objects);
    Ok(())
}

/// The whole listing of [`B`] with the delimiter `/`, paged: versions and common prefixes.
fn list_delimited(kv: &dyn KvRead, max: u32) -> (Vec<Row>, Vec<String>) {
    let (mut vs, mut cps) = (Vec::new(), Vec::new());
    let (mut km, mut vm) = (String::new(), String::new());
    for _ in 0..1000 {
        let page = list_object_versions(
            kv,
            &ListObjectVersionsRequest {
                bucket: B.into(),
                delimiter: "/".into(),
                key_marker: km,
                version_id_marker: vm,
                max_keys: max,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(page.versions.len() + page.common_prefixes.len() <= max as usize);
        vs.extend(page.versions.into_iter().map(|v| {
            let etag = if v.delete_marker {
                String::new()
            } else {
                v.etag
            };
            (v.key, v.version_id, v.is_latest, v.delete_marker, etag)
        }));
        cps.extend(page.common_prefixes);
        if !page.is_truncated {
            return (vs, cps);
        }
        km = page.next_key_marker;
        vm = page.next_version_id_marker;
    }
    panic!("delimited listing never ended")
}

fn step(st: &mut MemState, model: &mut Model, tag: &mut u8, op: VOp) -> Result<(), TestCaseError> {
    match op {
        VOp::Put(k) => {
            *tag += 1;
            let m = put(st, KEYS[k], *tag);
            model.put(KEYS[k], *tag, &m.version_id)?;
        }
        VOp::PutTwice(k) => {
            let key = KEYS[k];
            let (t1, t2) = (*tag + 1, *tag + 2);
            *tag += 2;
            let r = st
                .propose(Op::PutObjects(PutObjectsCmd {
                    bucket: B.into(),
                    objects: [t1, t2]
                        .map(|t| BulkPut {
                            key: key.into(),
                            manifest: Some(manifest(t)),
                        })
                        .to_vec(),
                }))
                .unwrap();
            prop_assert_eq!(r.written, 2);
            // The ids the state machine gave: the key's two newest versions.
            let listed: Vec<Row> = rows(&st.kv).into_iter().filter(|r| r.0 == key).collect();
            let id_of = |etag: String| {
                listed.iter().find(|r| r.4 == etag).map(|r| {
                    if r.1 == "null" {
                        String::new()
                    } else {
                        r.1.clone()
                    }
                })
            };
            if model.state == ENABLED {
                let id1 = id_of(format!("e{t1}")).expect("first put kept");
                model.put(key, t1, &id1)?;
            } else {
                prop_assert!(
                    id_of(format!("e{t1}")).is_none(),
                    "the null version replaced"
                );
                model.put(key, t1, "")?;
            }
            let id2 = id_of(format!("e{t2}")).expect("second put current");
            model.put(key, t2, &id2)?;
        }
        VOp::Delete(k) => {
            let out = del(st, KEYS[k], None).unwrap();
            model.delete(KEYS[k], &out)?;
        }
        VOp::DeleteVersion(k, i) => {
            let vid = model.pick(KEYS[k], i);
            let res = del(st, KEYS[k], Some(&vid)).map_err(|e| e.code());
            model.delete_version(KEYS[k], &vid, res.as_ref().map_err(|e| *e))?;
        }
        VOp::BulkDelete(k, picks) => {
            let key = KEYS[k];
            let other = KEYS[(k + 1) % KEYS.len()];
            let vids: Vec<String> = picks.iter().map(|&i| model.pick(key, i)).collect();
            let r = st
                .propose(Op::DeleteObjects(DeleteObjectsCmd {
                    bucket: B.into(),
                    keys: vec![other.into()],
                    objects: vids
                        .iter()
                        .map(|v| ObjectVersionRef {
                            key: key.into(),
                            version_id: Some(v.clone()),
                        })
                        .collect(),
                    bypass_governance: false,
                }))
                .unwrap();
            prop_assert_eq!(r.deletions.len(), 1 + vids.len());
            model.delete(other, &r.deletions[0])?;
            for (vid, out) in vids.iter().zip(&r.deletions[1..]) {
                let res = match &out.error {
                    Some(e) => Err(e.code()),
                    None => Ok(out),
                };
                model.delete_version(key, vid, res)?;
            }
        }
        VOp::Versioning(on) => {
            let s = if on { ENABLED } else { SUSPENDED };
            set_versioning(st, s);
            model.state = s;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random puts, deletes, deletes by version id (alone and in bulk) and versioning changes
    /// on one bucket agree with a model of S3's rules after every step: the current object,
    /// every version by id, the whole listing paged through its markers (with and without a
    /// delimiter), the usage counters, and (through `propose`) the invariants.
    #[test]
    fn versions_follow_the_s3_model(
        ops in prop::collection::vec(vop(), 1..60),
        page in 1u32..4,
    ) {
        let mut st = state();
        let mut model = Model::default();
        let mut tag = 0u8;
        for op in ops {
            step(&mut st, &mut model, &mut tag, op)?;
            check_against(&st, &model, page)?;
        }
    }
}

// ---- lifecycle -----------------------------------------------------------------------------

const DAY: u64 = 100;

fn rule(id: &str, prefix: &str) -> LifecycleRule {
    LifecycleRule {
        id: id.into(),
        enabled: true,
        prefix: prefix.into(),
        ..Default::default()
    }
}

fn set_rules(st: &mut MemState, b: &str, rules: Vec<LifecycleRule>) {
    st.propose(Op::SetBucketLifecycle(SetBucketLifecycleCmd {
        name: b.into(),
        config: Some(LifecycleConfig { rules }),
    }))
    .unwrap();
}

/// Run the worker on `b` at `now` until its pass is done (small batches), as the leader does.
fn run_pass(st: &mut MemState, b: &str, now: u64) -> usize {
    st.now_ms = now;
    let mut batches = 0;
    for _ in 0..100 {
        let Some(batch) = lifecycle_plan(&st.kv, b, now, DAY, 0, 2, 2) else {
            return batches;
        };
        st.propose(Op::LifecycleBatch(batch)).unwrap();
        batches += 1;
        let p = lifecycle_progress(&st.kv, b);
        if p.pass_done {
            assert_eq!(p.last_pass_done_ms, now);
            return batches;
        }
    }
    panic!("the lifecycle pass never ended");
}

fn upload(st: &mut MemState, b: &str, key: &str, id: &str) {
    st.propose(Op::CreateMultipart(CreateMultipartCmd {
        upload: Some(MultipartUpload {
            bucket: b.into(),
            key: key.into(),
            upload_id: id.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
}

const UP1: &str = "00000000000000000000000000000001";
const UP2: &str = "00000000000000000000000000000002";
const UP3: &str = "00000000000000000000000000000003";
const UP4: &str = "00000000000000000000000000000004";

#[test]
fn lifecycle_passes_reach_the_rules_end_state() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    set_rules(
        &mut st,
        B,
        vec![
            LifecycleRule {
                expiration_days: 1,
                ..rule("exp", "exp/")
            },
            LifecycleRule {
                noncurrent_days: 1,
                newer_noncurrent_versions: 1,
                ..rule("nc", "nc/")
            },
            LifecycleRule {
                expired_object_delete_marker: true,
                ..rule("dm", "dm/")
            },
            LifecycleRule {
                abort_multipart_days: 1,
                ..rule("up", "up/")
            },
        ],
    );
    let e1 = put(&mut st, "exp/a", 1).version_id;
    let n: Vec<String> = (2..=5)
        .map(|t| put(&mut st, "nc/k", t).version_id)
        .collect();
    let d1 = put(&mut st, "dm/k", 6).version_id;
    let dm = del(&mut st, "dm/k", None).unwrap().version_id;
    del(&mut st, "dm/k", Some(&d1)).unwrap();
    let keep = put(&mut st, "keep", 7).version_id;
    // Several uploads of one key: the worker's upload cursor must pass each of them.
    for id in [UP1, UP3, UP4] {
        upload(&mut st, B, "up/k", id);
    }
    upload(&mut st, B, "other/k", UP2);
    let before = rows(&st.kv);
    assert_eq!(before.len(), 1 + 4 + 1 + 1);
    assert!(before.contains(&row("dm/k", &dm, true, true, "")));
    // Less than a day: nothing qualifies except the lone marker (no age needed).
    run_pass(&mut st, B, T0 + DAY - 1);
    let after_first: Vec<Row> = before.iter().filter(|r| r.0 != "dm/k").cloned().collect();
    assert_eq!(rows(&st.kv), after_first);
    assert!(get_upload(&st.kv, B, "up/k", UP1).is_some());
    let p = lifecycle_progress(&st.kv, B);
    assert_eq!((p.markers_removed, p.passes), (1, 1));
    // A day on: exp/a gets a marker, nc/k keeps its current and newest noncurrent version,
    // the upload under up/ is aborted.
    let batches = run_pass(&mut st, B, T0 + DAY);
    assert!(batches >= 2, "small batches page through the bucket");
    let got = rows(&st.kv);
    let exp: Vec<&Row> = got.iter().filter(|r| r.0 == "exp/a").collect();
    assert_eq!(exp.len(), 2);
    assert!(exp[0].2 && exp[0].3, "a delete marker is current: {exp:?}");
    assert_eq!(exp[1].1, e1);
    assert_eq!(
        got.iter()
            .filter(|r| r.0 == "nc/k")
            .map(|r| r.1.clone())
            .collect::<Vec<_>>(),
        vec![n[3].clone(), n[2].clone()]
    );
    assert_eq!(refcount(&st, 2), 0);
    assert_eq!(refcount(&st, 3), 0);
    assert_eq!(refcount(&st, 4), 1);
    assert!(got.contains(&row("keep", &keep, true, false, "e7")));
    for id in [UP1, UP3, UP4] {
        assert!(get_upload(&st.kv, B, "up/k", id).is_none(), "{id}");
    }
    assert!(get_upload(&st.kv, B, "other/k", UP2).is_some());
    let p = lifecycle_progress(&st.kv, B);
    assert_eq!(
        (
            p.expired,
            p.noncurrent_deleted,
            p.markers_removed,
            p.uploads_aborted
        ),
        (1, 2, 1, 3)
    );
    assert_eq!(p.passes, 2);
    // Later passes change nothing more: the state is the rules' fixed point.
    let settled = rows(&st.kv);
    run_pass(&mut st, B, T0 + 5 * DAY);
    assert_eq!(rows(&st.kv), settled);
    let p2 = lifecycle_progress(&st.kv, B);
    assert_eq!(
        (
            p2.expired,
            p2.noncurrent_deleted,
            p2.markers_removed,
            p2.uploads_aborted
        ),
        (1, 2, 1, 3)
    );
    // With a pass interval, the next pass waits for it.
    assert!(lifecycle_plan(&st.kv, B, T0 + 5 * DAY + 1, DAY, 1000, 2, 2).is_none());
    assert!(lifecycle_plan(&st.kv, B, T0 + 5 * DAY + 1000, DAY, 1000, 2, 2).is_some());
}

#[test]
fn a_stale_lifecycle_batch_is_ignored() {
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    set_rules(
        &mut st,
        B,
        vec![LifecycleRule {
            expiration_days: 1,
            ..rule("exp", "")
        }],
    );
    let v = put(&mut st, "a", 1).version_id;
    put(&mut st, "b", 2);
    // Two batches planned from the same progress: one early (nothing due), one late.
    let early = lifecycle_plan(&st.kv, B, T0 + 1, DAY, 0, 1, 10).unwrap();
    let late = lifecycle_plan(&st.kv, B, T0 + DAY, DAY, 0, 1, 10).unwrap();
    assert!(early.actions.is_empty());
    assert_eq!(late.actions.len(), 1, "{late:?}");
    st.now_ms = T0 + DAY;
    st.propose(Op::LifecycleBatch(early)).unwrap();
    let advanced = lifecycle_progress(&st.kv, B);
    assert_eq!(advanced.after_key, "a");
    let before = st.kv.clone();
    st.propose(Op::LifecycleBatch(late.clone())).unwrap();
    assert_eq!(st.kv, before, "a batch from stale progress changes nothing");
    assert_eq!(get(&st, "a", None, false).unwrap().version_id, v);
    // A batch with the right progress but an action that does not qualify now is not
    // carried out: the state machine decides again.
    let mut forged = lifecycle_plan(&st.kv, B, T0 + 1, DAY, 0, 1, 10).unwrap();
    assert!(forged.actions.is_empty());
    forged.actions.push(LifecycleAction {
        kind: crate::lifecycle::ActionKind::DeleteNoncurrent as u32,
        key: "a".into(),
        version_seq: versions::parse_version_id(&v).unwrap().unwrap(),
        upload_id: String::new(),
    });
    st.propose(Op::LifecycleBatch(forged)).unwrap();
    assert_eq!(get(&st, "a", None, false).unwrap().version_id, v);
    assert_eq!(rows(&st.kv).len(), 2);
    // The pass started early ends without going back; the next one expires both keys.
    run_pass(&mut st, B, T0 + DAY);
    assert_eq!(lifecycle_progress(&st.kv, B).expired, 0);
    run_pass(&mut st, B, T0 + DAY);
    assert_eq!(
        code(get(&st, "a", None, false).unwrap_err()),
        ErrorCode::NoSuchKey
    );
    assert_eq!(
        code(get(&st, "b", None, false).unwrap_err()),
        ErrorCode::NoSuchKey
    );
    assert_eq!(lifecycle_progress(&st.kv, B).expired, 2);
}

#[test]
fn lifecycle_skips_a_locked_version() {
    let mut st = state();
    let l = "lclock";
    lock_bucket(&mut st, l, None);
    set_rules(
        &mut st,
        l,
        vec![LifecycleRule {
            noncurrent_days: 1,
            ..rule("nc", "")
        }],
    );
    let until = T0 + 10 * DAY;
    let v1 = put_m(&mut st, l, "k", manifest(1)).unwrap().version_id;
    st.propose(retain(l, "k", &v1, GOVERNANCE, until, false))
        .unwrap();
    let v2 = put_m(&mut st, l, "k", manifest(2)).unwrap().version_id;
    let v3 = put_m(&mut st, l, "k", manifest(3)).unwrap().version_id;
    let versions_of = |st: &MemState| {
        list_all(&st.kv, l, 1000)
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(versions_of(&st), vec![v3.clone(), v2, v1.clone()]);
    run_pass(&mut st, l, T0 + 2 * DAY);
    // v2 is gone; v1 is retained (GOVERNANCE, and lifecycle never bypasses): still there.
    assert_eq!(versions_of(&st), vec![v3.clone(), v1.clone()]);
    assert_eq!(refcount(&st, 1), 1);
    assert_eq!(lifecycle_progress(&st.kv, l).noncurrent_deleted, 1);
    // Once the retention ends, the next pass deletes it.
    run_pass(&mut st, l, until);
    assert_eq!(versions_of(&st), vec![v3]);
    assert_eq!(refcount(&st, 1), 0);
    assert_eq!(lifecycle_progress(&st.kv, l).noncurrent_deleted, 2);
}

// ---- tagging (issue 15) ----------------------------------------------------------------------

fn set_tags(
    st: &mut MemState,
    b: &str,
    key: &str,
    vid: Option<&str>,
    tags: Vec<Tag>,
) -> Result<Manifest, ErrorDetail> {
    st.propose(Op::SetObjectTagging(SetObjectTaggingCmd {
        bucket: b.into(),
        key: key.into(),
        version_id: vid.map(str::to_string),
        tags,
    }))
    .map(|r| r.manifest.expect("tagging returns the version"))
}

#[test]
fn tagging_a_version_keeps_its_id_mtime_etag_and_place() {
    use crate::tagging::tag;
    let mut st = state();
    set_versioning(&mut st, ENABLED);
    let v1 = put(&mut st, "k", 1);
    st.now_ms += 50;
    let v2 = put(&mut st, "k", 2);
    st.now_ms += 50;
    let before = rows(&st.kv);
    // The older version, by id.
    let t = set_tags(&mut st, B, "k", Some(&v1.version_id), vec![tag("a", "1")]).unwrap();
    assert_eq!(
        (&t.version_id, t.mtime_ms, &t.etag, t.version_seq),
        (&v1.version_id, v1.mtime_ms, &v1.etag, v1.version_seq)
    );
    assert_eq!(
        get(&st, "k", Some(&v1.version_id), false).unwrap().tags,
        vec![tag("a", "1")]
    );
    assert!(
        get(&st, "k", None, false).unwrap().tags.is_empty(),
        "the current one untouched"
    );
    // The current version, without an id.
    let t = set_tags(&mut st, B, "k", None, vec![tag("b", "2"), tag("c", "")]).unwrap();
    assert_eq!((&t.version_id, t.mtime_ms), (&v2.version_id, v2.mtime_ms));
    assert_eq!(get(&st, "k", None, false).unwrap().tags.len(), 2);
    assert_eq!(rows(&st.kv), before, "the listing did not change");
    // Replace, then delete (an empty set).
    set_tags(&mut st, B, "k", None, vec![tag("d", "4")]).unwrap();
    assert_eq!(
        get(&st, "k", None, false).unwrap().tags,
        vec![tag("d", "4")]
    );
    set_tags(&mut st, B, "k", None, Vec::new()).unwrap();
    assert!(get(&st, "k", None, false).unwrap().tags.is_empty());
    // A delete marker has no tags; missing keys and versions are refused.
    let marker = del(&mut st, "k", None).unwrap();
    let e = set_tags(&mut st, B, "k", None, vec![tag("a", "")]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSuchKey);
    let e = set_tags(&mut st, B, "k", Some(&marker.version_id), vec![]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MethodNotAllowed);
    let e = set_tags(&mut st, B, "k", Some("00000000000000ff"), vec![]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSuchVersion);
    let e = set_tags(&mut st, "nope", "k", None, vec![]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSuchBucket);
    // Over the limits: refused, nothing changed.
    let eleven = (0..11).map(|i| tag(&i.to_string(), "")).collect();
    let e = set_tags(&mut st, B, "k", Some(&v1.version_id), eleven).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let dup = vec![tag("a", "1"), tag("a", "2")];
    assert!(set_tags(&mut st, B, "k", Some(&v1.version_id), dup).is_err());
    assert_eq!(
        get(&st, "k", Some(&v1.version_id), false).unwrap().tags,
        vec![tag("a", "1")]
    );
}

#[test]
fn tagging_works_on_the_null_version_and_in_unversioned_buckets() {
    use crate::tagging::tag;
    let mut st = state();
    let m = put(&mut st, "plain", 3);
    let t = set_tags(&mut st, B, "plain", None, vec![tag("x", "y")]).unwrap();
    assert_eq!(
        (t.version_id.as_str(), t.etag.as_str()),
        ("", m.etag.as_str())
    );
    assert_eq!(
        get_object(&st.kv, B, "plain").unwrap().tags,
        vec![tag("x", "y")]
    );
    set_versioning(&mut st, ENABLED);
    put(&mut st, "plain", 4);
    set_tags(&mut st, B, "plain", Some("null"), vec![tag("n", "1")]).unwrap();
    assert_eq!(
        get(&st, "plain", Some("null"), false).unwrap().tags,
        vec![tag("n", "1")]
    );
    assert!(get(&st, "plain", None, false).unwrap().tags.is_empty());
}

#[test]
fn locked_versions_can_be_tagged_as_in_s3() {
    use crate::tagging::tag;
    let mut st = state();
    lock_bucket(&mut st, "locked", None);
    let m = put_m(&mut st, "locked", "k", manifest(5)).unwrap();
    st.propose(retain(
        "locked",
        "k",
        &m.version_id,
        COMPLIANCE,
        T0 + 1_000_000,
        false,
    ))
    .unwrap();
    st.propose(hold("locked", "k", &m.version_id, true))
        .unwrap();
    let t = set_tags(
        &mut st,
        "locked",
        "k",
        Some(&m.version_id),
        vec![tag("a", "")],
    )
    .unwrap();
    assert_eq!((t.lock_mode.as_str(), t.legal_hold), (COMPLIANCE, true));
    assert_eq!(t.tags, vec![tag("a", "")]);
}

#[test]
fn lifecycle_tag_filters_expire_only_the_tagged_objects() {
    use crate::tagging::tag;
    let mut st = state();
    put(&mut st, "tmp/tagged", 1);
    put(&mut st, "tmp/other-value", 2);
    put(&mut st, "tmp/untagged", 3);
    put(&mut st, "keep/tagged", 4);
    set_tags(
        &mut st,
        B,
        "tmp/tagged",
        None,
        vec![tag("x", "1"), tag("class", "tmp")],
    )
    .unwrap();
    set_tags(
        &mut st,
        B,
        "tmp/other-value",
        None,
        vec![tag("class", "keep")],
    )
    .unwrap();
    set_tags(&mut st, B, "keep/tagged", None, vec![tag("class", "tmp")]).unwrap();
    set_rules(
        &mut st,
        B,
        vec![LifecycleRule {
            expiration_days: 1,
            tags: vec![LifecycleTag {
                key: "class".into(),
                value: "tmp".into(),
            }],
            ..rule("r", "tmp/")
        }],
    );
    run_pass(&mut st, B, T0 + 2 * DAY);
    let left: Vec<String> = rows(&st.kv).into_iter().map(|r| r.0).collect();
    assert_eq!(left, ["keep/tagged", "tmp/other-value", "tmp/untagged"]);
}
