//! Parquet indexes in the state machine: stored with the put, answered by tail slices, moved
//! with versions, removed with them, copied by copies, added later by `SetParquetIndex` only
//! to the version it names, refused when malformed, and stamped with command version 8.

use anode_proto::command::Op;
use anode_proto::*;

use super::mem::MemState;
use super::versions::ENABLED;
use super::*;

const B: &str = "pqbkt";

fn state() -> MemState {
    let mut st = MemState::new(1_700_000_000_000);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            name: B.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
    st
}

/// A body of `size` bytes that ends like a Parquet file with a footer of `footer` bytes.
fn body(size: usize, footer: u32) -> Vec<u8> {
    let mut b: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    b[..4].copy_from_slice(b"PAR1");
    b[size - 8..size - 4].copy_from_slice(&footer.to_le_bytes());
    b[size - 4..].copy_from_slice(b"PAR1");
    b
}

fn index_of(b: &[u8], tail_len: usize, footer: u32, stats: bool) -> ParquetIndex {
    let stats = stats.then(|| ParquetStats {
        version: PARQUET_RECORD_VERSION,
        columns: vec![ParquetColumn {
            path: "ts".into(),
            domain: ParquetDomain::Int as i32,
            ..Default::default()
        }],
        row_groups: vec![RowGroupStats {
            num_rows: 10,
            columns: vec![ColumnStats {
                null_count: Some(0),
                min: Some(ParquetValue {
                    v: Some(parquet_value::V::Int(1)),
                }),
                max: Some(ParquetValue {
                    v: Some(parquet_value::V::Int(10)),
                }),
                ..Default::default()
            }],
        }],
    });
    ParquetIndex {
        info: Some(ParquetInfo {
            tail_len: tail_len as u64,
            footer_len: footer,
            num_rows: 10,
            num_row_groups: u32::from(stats.is_some()),
            schema_hash: vec![7; 16],
            has_stats: stats.is_some(),
        }),
        tail: b[b.len() - tail_len..].to_vec(),
        stats,
    }
}

fn put_cmd(key: &str, b: &[u8], ix: Option<ParquetIndex>) -> Op {
    Op::PutObject(PutObjectCmd {
        bucket: B.into(),
        key: key.into(),
        manifest: Some(Manifest {
            size: b.len() as u64,
            etag: format!("{:032x}", b.len()),
            inline_data: b.to_vec(),
            ..Default::default()
        }),
        parquet: ix,
        ..Default::default()
    })
}

fn put(st: &mut MemState, key: &str, b: &[u8], ix: Option<ParquetIndex>) -> Manifest {
    st.propose(put_cmd(key, b, ix)).unwrap().manifest.unwrap()
}

fn index_keys(st: &MemState) -> usize {
    let f = st.kv.scan(b"f/", Some(b"f0"), usize::MAX).len();
    let g = st.kv.scan(b"g/", Some(b"g0"), usize::MAX).len();
    f + g
}

fn suffix(n: u64) -> ByteRangeSpec {
    ByteRangeSpec {
        suffix: Some(n),
        ..Default::default()
    }
}

fn span(a: u64, b: Option<u64>) -> ByteRangeSpec {
    ByteRangeSpec {
        start: Some(a),
        end: b,
        suffix: None,
    }
}

#[test]
fn a_put_stores_the_index_and_its_tail_answers_covered_ranges() {
    let mut st = state();
    let b = body(1000, 100);
    let m = put(&mut st, "a.parquet", &b, Some(index_of(&b, 300, 100, true)));
    let info = m.parquet.clone().expect("indexed");
    assert_eq!(
        (info.tail_len, info.footer_len, info.has_stats),
        (300, 100, true)
    );
    let tail = get_parquet_tail(&st.kv, B, "a.parquet", m.object_version).unwrap();
    assert_eq!(tail, b[700..]);
    let stats = get_parquet_stats(&st.kv, B, "a.parquet", m.object_version).unwrap();
    assert_eq!(stats.row_groups.len(), 1);
    // Covered: the last 8 bytes, the footer, anything inside the last 300 bytes.
    for (r, want) in [
        (suffix(8), 992..1000),
        (suffix(108), 892..1000),
        (span(700, Some(799)), 700..800),
        (span(950, None), 950..1000),
        (span(990, Some(5000)), 990..1000),
    ] {
        let (start, bytes) = tail_slice(&m, &tail, &r).unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(start, want.start as u64, "{r:?}");
        assert_eq!(bytes, b[want], "{r:?}");
    }
    // Not covered, or not satisfiable: read from chunks.
    for r in [
        suffix(301),
        span(699, Some(710)),
        span(0, None),
        span(1000, None),
        suffix(0),
        span(10, Some(5)),
    ] {
        assert_eq!(tail_slice(&m, &tail, &r), None, "{r:?}");
    }
}

#[test]
fn indexes_go_with_their_versions() {
    let mut st = state();
    let b = body(500, 50);
    put(&mut st, "k", &b, Some(index_of(&b, 100, 50, true)));
    assert_eq!(index_keys(&st), 2);
    // Overwritten in an unversioned bucket: the old version's index goes with it.
    let m2 = put(&mut st, "k", &b, Some(index_of(&b, 60, 50, false)));
    assert_eq!(
        index_keys(&st),
        1,
        "tail only: the new index has no statistics"
    );
    assert!(get_parquet_tail(&st.kv, B, "k", m2.object_version).is_some());
    // A plain object replacing it drops it too.
    let m3 = put(&mut st, "k", b"plain", None);
    assert!(m3.parquet.is_none());
    assert_eq!(index_keys(&st), 0);
    // Versioned: noncurrent versions keep theirs until deleted for good.
    st.propose(Op::SetBucketVersioning(SetBucketVersioningCmd {
        name: B.into(),
        state: ENABLED,
    }))
    .unwrap();
    let v1 = put(&mut st, "v", &b, Some(index_of(&b, 100, 50, true)));
    let v2 = put(&mut st, "v", &b, Some(index_of(&b, 100, 50, true)));
    assert_eq!(index_keys(&st), 4);
    st.propose(Op::DeleteObject(DeleteObjectCmd {
        bucket: B.into(),
        key: "v".into(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(index_keys(&st), 4, "a delete marker removes nothing");
    for v in [&v1, &v2] {
        st.propose(Op::DeleteObject(DeleteObjectCmd {
            bucket: B.into(),
            key: "v".into(),
            version_id: Some(v.version_id.clone()),
            ..Default::default()
        }))
        .unwrap();
    }
    assert_eq!(index_keys(&st), 0);
    check_invariants(&st.kv).unwrap();
}

#[test]
fn a_copy_takes_the_source_versions_index() {
    let mut st = state();
    let b = body(400, 40);
    let src = put(&mut st, "src", &b, Some(index_of(&b, 200, 40, true)));
    let copy = Op::PutObject(PutObjectCmd {
        parquet_copy: Some(ParquetSource {
            bucket: B.into(),
            key: "src".into(),
            object_version: src.object_version,
        }),
        source: "Copy".into(),
        ..match put_cmd("dst", &b, None) {
            Op::PutObject(c) => c,
            _ => unreachable!(),
        }
    });
    assert_eq!(command_version_for(&copy), 8);
    let dst = st.propose(copy).unwrap().manifest.unwrap();
    let info = dst.parquet.clone().expect("the copy is indexed");
    assert_eq!(
        (
            info.tail_len,
            info.footer_len,
            info.num_row_groups,
            info.has_stats
        ),
        (200, 40, 1, true)
    );
    assert_eq!(
        get_parquet_tail(&st.kv, B, "dst", dst.object_version),
        get_parquet_tail(&st.kv, B, "src", src.object_version)
    );
    // A copy of a version that has no index (or no longer exists) is a plain copy.
    let stale = Op::PutObject(PutObjectCmd {
        parquet_copy: Some(ParquetSource {
            bucket: B.into(),
            key: "src".into(),
            object_version: 999_999,
        }),
        ..match put_cmd("dst2", &b, None) {
            Op::PutObject(c) => c,
            _ => unreachable!(),
        }
    });
    assert!(st
        .propose(stale)
        .unwrap()
        .manifest
        .unwrap()
        .parquet
        .is_none());
    // A manifest that claims an index it did not bring keeps none.
    let mut claimed = put_cmd("dst3", &b, None);
    if let Op::PutObject(c) = &mut claimed {
        c.manifest.as_mut().unwrap().parquet = src.parquet.clone();
    }
    assert!(st
        .propose(claimed)
        .unwrap()
        .manifest
        .unwrap()
        .parquet
        .is_none());
}

#[test]
fn set_parquet_index_applies_only_to_the_version_it_names() {
    let mut st = state();
    let b = body(600, 60);
    let m = put(&mut st, "mp", &b, None);
    assert!(m.parquet.is_none());
    let set = |ver: u64| {
        Op::SetParquetIndex(SetParquetIndexCmd {
            bucket: B.into(),
            key: "mp".into(),
            object_version: ver,
            index: Some(index_of(&b, 120, 60, true)),
        })
    };
    assert_eq!(command_version_for(&set(1)), 8);
    assert_eq!(st.propose(set(m.object_version + 1)).unwrap().written, 0);
    assert_eq!(index_keys(&st), 0);
    assert_eq!(st.propose(set(m.object_version)).unwrap().written, 1);
    let now = get_object(&st.kv, B, "mp").unwrap();
    assert_eq!(now.parquet.map(|p| p.tail_len), Some(120));
    assert_eq!(now.etag, m.etag, "the version is otherwise unchanged");
    // Already indexed: not again.
    assert_eq!(st.propose(set(m.object_version)).unwrap().written, 0);
    // Overwritten: the old version's number indexes nothing.
    let m2 = put(&mut st, "mp", b"plain", None);
    assert_eq!(st.propose(set(m.object_version)).unwrap().written, 0);
    assert!(get_object(&st.kv, B, "mp").unwrap().parquet.is_none());
    assert_ne!(m2.object_version, m.object_version);
    check_invariants(&st.kv).unwrap();
}

#[test]
fn malformed_indexes_are_refused_and_nothing_is_written() {
    let mut st = state();
    let b = body(300, 30);
    let good = index_of(&b, 100, 30, true);
    let mut cases: Vec<(&str, ParquetIndex)> = Vec::new();
    let mut c = good.clone();
    c.tail.pop();
    cases.push(("tail shorter than its summary", c));
    let mut c = good.clone();
    c.info.as_mut().unwrap().footer_len = 31;
    cases.push(("footer length differs from the trailer", c));
    let mut c = good.clone();
    let n = c.tail.len();
    c.tail[n - 1] = b'X';
    cases.push(("no PAR1 trailer", c));
    let mut c = good.clone();
    c.info.as_mut().unwrap().tail_len = 20;
    c.tail = b[280..].to_vec();
    cases.push(("tail without the whole footer", c));
    let mut c = good.clone();
    c.stats.as_mut().unwrap().row_groups[0].columns.clear();
    cases.push(("row group missing a column", c));
    let mut c = good.clone();
    c.info.as_mut().unwrap().has_stats = false;
    cases.push(("statistics the summary denies", c));
    let mut c = good.clone();
    c.stats.as_mut().unwrap().version = 2;
    cases.push(("statistics of a newer version", c));
    let mut c = good.clone();
    c.info.as_mut().unwrap().num_row_groups = 5;
    cases.push(("row group count differs", c));
    for (what, ix) in cases {
        let e = st.propose(put_cmd("bad", &b, Some(ix))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{what}: {e:?}");
    }
    // A tail longer than the object.
    let e = st
        .propose(put_cmd("bad", &b[..50], Some(index_of(&b, 100, 30, false))))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(index_keys(&st), 0);
    assert!(get_object(&st.kv, B, "bad").is_err());
}

#[test]
fn puts_with_an_index_need_command_version_8() {
    let b = body(100, 10);
    assert_eq!(
        command_version_for(&put_cmd("k", &b, Some(index_of(&b, 50, 10, false)))),
        8
    );
    assert!(command_version_for(&put_cmd("k", &b, None)) < 8);
}

/// An index whose one INT column `ts` has a row group per `(min, max)`.
fn ts_index(b: &[u8], groups: &[(i64, i64)]) -> ParquetIndex {
    let mut ix = index_of(b, 100, 50, true);
    let stats = ix.stats.as_mut().unwrap();
    let int = |v| {
        Some(ParquetValue {
            v: Some(parquet_value::V::Int(v)),
        })
    };
    stats.row_groups = groups
        .iter()
        .map(|&(lo, hi)| RowGroupStats {
            num_rows: 10,
            columns: vec![ColumnStats {
                null_count: Some(0),
                min: int(lo),
                max: int(hi),
                min_exact: true,
                max_exact: true,
                nan_count: None,
            }],
        })
        .collect();
    ix.info.as_mut().unwrap().num_row_groups = groups.len() as u32;
    ix
}

fn list_where(
    st: &MemState,
    predicate: &str,
    start_after: &str,
) -> Result<ListObjectsResponse, StateError> {
    list_objects(
        &st.kv,
        &ListObjectsRequest {
            bucket: B.into(),
            r#where: predicate.into(),
            start_after: start_after.into(),
            ..Default::default()
        },
    )
}

#[test]
fn a_listing_with_a_predicate_keeps_what_may_match_and_every_unindexed_object() {
    let mut st = state();
    let b = body(500, 50);
    put(&mut st, "a", &b, Some(ts_index(&b, &[(0, 99), (100, 199)])));
    put(
        &mut st,
        "b",
        &b,
        Some(ts_index(&b, &[(200, 299), (300, 399)])),
    );
    put(&mut st, "c", b"plain", None);
    put(&mut st, "d", &b, Some(index_of(&b, 100, 50, false)));
    let page = list_where(&st, "ts >= 150 AND ts < 250", "").unwrap();
    let got: Vec<_> = page
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.indexed, o.row_groups.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", true, vec![1]),
            ("b", true, vec![0]),
            ("c", false, vec![]),
            ("d", false, vec![])
        ]
    );
    let page = list_where(&st, "ts > 1000", "").unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["c", "d"], "files that cannot match are left out");
    assert!(!page.is_truncated);
    // A column the files lack never prunes them.
    let page = list_where(&st, "other = 1", "").unwrap();
    assert_eq!(page.objects.len(), 4);
    assert!(page.objects[0].row_groups == [0, 1]);
    // Without a predicate nothing is marked.
    let page = list_where(&st, "", "").unwrap();
    assert!(page
        .objects
        .iter()
        .all(|o| !o.indexed && o.row_groups.is_empty()));
}

#[test]
fn a_bad_predicate_is_invalid_argument_with_its_position() {
    let mut st = state();
    put(&mut st, "a", b"plain", None);
    for (text, pos) in [
        ("ts >= ", "position 6"),
        ("ts = 'open", "position 5"),
        ("(ts = 1", "position 7"),
    ] {
        match list_where(&st, text, "") {
            Err(StateError::InvalidArgument(m)) => {
                assert!(
                    m.contains("x-anode-where") && m.contains(pos),
                    "{text:?}: {m}"
                )
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn a_listing_with_a_predicate_reads_a_bounded_number_of_entries_per_page() {
    let mut st = state();
    let b = body(500, 50);
    for i in 0..12 {
        let (lo, hi) = if i == 10 { (500, 600) } else { (0, 9) };
        put(
            &mut st,
            &format!("f{i:02}"),
            &b,
            Some(ts_index(&b, &[(lo, hi)])),
        );
    }
    let req = |start_after: &str| ListObjectsRequest {
        bucket: B.into(),
        r#where: "ts > 100".into(),
        start_after: start_after.into(),
        ..Default::default()
    };
    // 5 entries read, none matches: an empty page that says where to go on.
    let page = list::list_objects_scanning(&st.kv, &req(""), 5).unwrap();
    assert!(page.objects.is_empty());
    assert!(page.is_truncated);
    assert_eq!(page.next_start_after, "f04");
    let page = list::list_objects_scanning(&st.kv, &req("f04"), 5).unwrap();
    assert!(page.objects.is_empty() && page.is_truncated);
    assert_eq!(page.next_start_after, "f09");
    let page = list::list_objects_scanning(&st.kv, &req("f09"), 5).unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["f10"]);
    assert!(!page.is_truncated);
    assert_eq!(list::MAX_SCANNED_WITH_PREDICATE, 10_000);
}
