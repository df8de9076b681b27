//! `index_tail` and `row_group_ranges` on files written by the `parquet` crate.

mod support;

use anode_pqindex::*;
use anode_proto::parquet_value::V;
use anode_proto::{ParquetDomain, ParquetIndex, ParquetValue};
use support::*;

fn row(i: Option<i64>, f: Option<f64>, s: Option<&str>, b: Option<bool>) -> Row {
    Row {
        i,
        f,
        s: s.map(str::to_string),
        b,
    }
}

/// Index a whole file as a writer would (the last `max_tail + 8` bytes).
fn index(file: &[u8], limits: &Limits) -> Result<Option<ParquetIndex>, IndexError> {
    let tail = last(file, limits.max_tail as usize + 8);
    index_tail(tail, file.len() as u64, file.starts_with(b"PAR1"), limits)
}

fn v(x: V) -> Option<ParquetValue> {
    Some(ParquetValue { v: Some(x) })
}

fn flat_groups() -> Vec<Vec<Row>> {
    let long_a = format!("a{}", "x".repeat(100));
    let long_z = format!("z{}", "\u{ff}".repeat(100));
    vec![
        vec![
            row(Some(1), Some(1.5), Some("apple"), Some(false)),
            row(None, None, None, None),
            row(Some(7), Some(-2.0), Some("banana"), Some(false)),
        ],
        vec![
            row(Some(-5), Some(f64::NAN), Some(&long_a), Some(true)),
            row(Some(100), Some(3.0), Some(&long_z), None),
        ],
        vec![row(None, None, None, None), row(None, None, None, None)],
    ]
}

#[test]
fn flat_file_round_trip() {
    let file = write_flat(&flat_groups(), None);
    let limits = Limits::default();
    let ix = index(&file, &limits).expect("parses").expect("is parquet");
    let info = ix.info.clone().unwrap();
    assert_eq!(info.num_rows, 7);
    assert_eq!(info.num_row_groups, 3);
    assert!(info.has_stats);
    assert_eq!(info.schema_hash.len(), 16);
    // A small file: the whole file is the tail (window 64 KiB).
    assert_eq!(info.tail_len, file.len() as u64);
    assert_eq!(ix.tail, file);
    let footer_len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
    assert_eq!(info.footer_len, footer_len);
    anode_meta::sm::check_parquet_index(&ix, file.len() as u64).expect("the master accepts it");

    let s = ix.stats.unwrap();
    assert_eq!(s.version, anode_meta::sm::PARQUET_RECORD_VERSION);
    let cols: Vec<_> = s
        .columns
        .iter()
        .map(|c| (c.path.as_str(), c.domain))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("i", ParquetDomain::Int as i32),
            ("f", ParquetDomain::Float as i32),
            ("s", ParquetDomain::Bytes as i32),
            ("b", ParquetDomain::Bool as i32),
        ]
    );
    let rg0 = &s.row_groups[0];
    assert_eq!(rg0.num_rows, 3);
    let (i, f, st, b) = (
        &rg0.columns[0],
        &rg0.columns[1],
        &rg0.columns[2],
        &rg0.columns[3],
    );
    assert_eq!((i.min.clone(), i.max.clone()), (v(V::Int(1)), v(V::Int(7))));
    assert_eq!(i.null_count, Some(1));
    assert_eq!(
        (f.min.clone(), f.max.clone()),
        (v(V::Float(-2.0)), v(V::Float(1.5)))
    );
    assert_eq!(f.nan_count, Some(0));
    assert_eq!(
        (st.min.clone(), st.max.clone()),
        (
            v(V::Bytes(b"apple".to_vec())),
            v(V::Bytes(b"banana".to_vec()))
        )
    );
    assert!(st.min_exact && st.max_exact);
    assert_eq!(
        (b.min.clone(), b.max.clone()),
        (v(V::Bool(false)), v(V::Bool(false)))
    );
    assert_eq!(i.nan_count, None, "NaN counts are for floats only");

    // Row group 1: a NaN (excluded from the bounds, counted) and long strings (truncated).
    let rg1 = &s.row_groups[1];
    let f = &rg1.columns[1];
    assert_eq!(
        (f.min.clone(), f.max.clone()),
        (v(V::Float(3.0)), v(V::Float(3.0)))
    );
    assert_eq!(f.nan_count, Some(1));
    let st = &rg1.columns[2];
    let mut want_min = b"a".to_vec();
    want_min.extend(std::iter::repeat_n(b'x', 63));
    assert_eq!(st.min, v(V::Bytes(want_min)));
    assert!(!st.min_exact && !st.max_exact);
    // max "z\u{ff}..." (UTF-8 c3 bf ...) cut at 64 bytes and rounded up: z, 31 x (c3 bf),
    // then the 64th byte c3 incremented to c4.
    let Some(ParquetValue {
        v: Some(V::Bytes(max)),
    }) = &st.max
    else {
        panic!("max {:?}", st.max)
    };
    assert_eq!(max.len(), 64);
    assert!(max.as_slice() > format!("z{}", "\u{ff}".repeat(100)).as_bytes());
    assert_eq!(max[63], 0xc4);

    // Row group 2: only nulls.
    let rg2 = &s.row_groups[2];
    assert!(rg2.columns.iter().all(|c| c.null_count == Some(2)));
    assert!(rg2
        .columns
        .iter()
        .all(|c| c.min.is_none() && c.max.is_none()));

    // Pruning works on it: only row group 1 has i > 50.
    let p = anode_meta::pq::parse("i > 50").unwrap();
    assert_eq!(anode_meta::pq::prune(&p, &s), vec![1]);
    let p = anode_meta::pq::parse("s = 'apple' OR f IS NULL").unwrap();
    assert_eq!(anode_meta::pq::prune(&p, &s), vec![0, 2]);
}

#[test]
fn writer_truncated_statistics_stay_bounds() {
    // The parquet writer's own truncation (16 bytes) marks bounds not exact.
    let file = write_flat(&flat_groups(), Some(16));
    let ix = index(&file, &Limits::default()).unwrap().unwrap();
    let st = &ix.stats.unwrap().row_groups[1].columns[2];
    let Some(ParquetValue {
        v: Some(V::Bytes(min)),
    }) = &st.min
    else {
        panic!()
    };
    assert!(min.len() <= 16 && !st.min_exact && !st.max_exact);
}

#[test]
fn nested_repeated_unsigned_decimal() {
    let file = write_nested();
    let ix = index(&file, &Limits::default()).unwrap().unwrap();
    anode_meta::sm::check_parquet_index(&ix, file.len() as u64).unwrap();
    let s = ix.stats.unwrap();
    let cols: Vec<_> = s
        .columns
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.domain,
                c.repeated,
                c.is_decimal,
                c.decimal_scale,
            )
        })
        .collect();
    assert_eq!(
        cols,
        vec![
            ("a.b", ParquetDomain::Int as i32, false, false, 0),
            ("r", ParquetDomain::Int as i32, true, false, 0),
            ("u", ParquetDomain::Uint as i32, false, false, 0),
            ("d", ParquetDomain::Int as i32, false, true, 2),
        ]
    );
    let rg1 = &s.row_groups[1];
    assert_eq!(rg1.columns[0].min, v(V::Int(11)));
    assert_eq!(rg1.columns[0].null_count, Some(1));
    assert_eq!(rg1.columns[2].min, v(V::Uint(5)));
    assert_eq!(rg1.columns[2].max, v(V::Uint(3_000_000_000)));
    assert_eq!(rg1.columns[3].max, v(V::Int(251)));
    let prune = |t: &str| anode_meta::pq::prune(&anode_meta::pq::parse(t).unwrap(), &s);
    assert_eq!(prune("a.b = 11"), vec![1]);
    assert_eq!(prune("u > 2999999999"), vec![0, 1]);
    assert_eq!(prune("u > 3000000000"), Vec::<u32>::new());
    // Repeated: never pruned on.
    assert_eq!(prune("r = 99"), vec![0, 1]);
    // DECIMAL(9,2): 1.25..2.50 and 1.26..2.51; integer literals compare scaled.
    assert_eq!(prune("d = 2"), vec![0, 1]);
    assert_eq!(prune("d > 2"), vec![0, 1]);
    assert_eq!(prune("d >= 3"), Vec::<u32>::new());
}

#[test]
fn not_parquet() {
    let limits = Limits::default();
    let plain = b"hello world, this is not a parquet file at all".to_vec();
    assert_eq!(index(&plain, &limits), Ok(None));
    assert_eq!(index_tail(b"", 0, false, &limits), Ok(None));
    assert_eq!(index_tail(b"PAR1", 4, true, &limits), Ok(None));
    // PAR1 at the end only: not Parquet (the head decides).
    let file = write_flat(&flat_groups(), None);
    let tail = last(&file, 1000);
    assert_eq!(
        index_tail(tail, file.len() as u64, false, &limits),
        Ok(None)
    );
    assert_eq!(
        row_group_ranges(&plain, plain.len() as u64, &[0]),
        Err(IndexError::NotParquet)
    );
}

#[test]
fn corrupt_and_encrypted_footers_are_errors() {
    let limits = Limits::default();
    let mut file = write_flat(&flat_groups(), None);
    let n = file.len();
    let footer_len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
    // Garble the footer's first bytes.
    for b in &mut file[n - 8 - footer_len..n - 8 - footer_len + 16] {
        *b = 0xFF;
    }
    assert!(matches!(index(&file, &limits), Err(IndexError::Footer(_))));

    // A footer length longer than the file.
    let mut f2 = write_flat(&flat_groups(), None);
    let n = f2.len();
    f2[n - 8..n - 4].copy_from_slice(&(n as u32).to_le_bytes());
    assert!(matches!(
        index(&f2, &limits),
        Err(IndexError::FooterTooLong { .. })
    ));

    // Encrypted footer.
    let mut f3 = write_flat(&flat_groups(), None);
    let n = f3.len();
    f3[n - 4..].copy_from_slice(b"PARE");
    f3[..4].copy_from_slice(b"PARE");
    assert_eq!(index(&f3, &limits), Err(IndexError::EncryptedFooter));

    // A caller that passed too little.
    let f4 = write_flat(&flat_groups(), None);
    assert!(matches!(
        index_tail(last(&f4, 20), f4.len() as u64, true, &limits),
        Err(IndexError::ShortTail { .. })
    ));
}

#[test]
fn tail_window_and_huge_footer() {
    let file = write_flat(&flat_groups(), None);
    let n = file.len();
    let footer_len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as u64;
    // A window smaller than the footer: the tail is exactly footer + trailer.
    let small = Limits {
        window: 10,
        ..Limits::default()
    };
    let ix = index(&file, &small).unwrap().unwrap();
    assert_eq!(ix.info.as_ref().unwrap().tail_len, footer_len + 8);
    assert_eq!(ix.tail, last(&file, footer_len as usize + 8));
    // A window between: the tail is the window.
    let mid = Limits {
        window: footer_len + 20,
        ..Limits::default()
    };
    let ix = index(&file, &mid).unwrap().unwrap();
    assert_eq!(ix.tail, last(&file, footer_len as usize + 20));
    // A footer larger than max_tail: not indexed.
    let tiny = Limits {
        max_tail: footer_len + 7,
        ..Limits::default()
    };
    assert_eq!(index(&file, &tiny), Ok(None));
    // A footer claiming 5 MiB (over the 4 MiB cap): not indexed, whatever follows.
    let mut huge = vec![0u8; 64];
    huge[..4].copy_from_slice(b"PAR1");
    huge[56..60].copy_from_slice(&(5u32 << 20).to_le_bytes());
    huge[60..].copy_from_slice(b"PAR1");
    assert_eq!(
        index_tail(&huge, 100 << 20, true, &Limits::default()),
        Ok(None)
    );
}

#[test]
fn statistics_over_their_cap_are_left_out() {
    let file = write_flat(&flat_groups(), None);
    let limits = Limits {
        max_stats: 100,
        ..Limits::default()
    };
    let ix = index(&file, &limits).unwrap().unwrap();
    assert!(ix.stats.is_none());
    assert!(!ix.info.as_ref().unwrap().has_stats);
    anode_meta::sm::check_parquet_index(&ix, file.len() as u64).unwrap();
}

#[test]
fn schema_hash_follows_the_schema() {
    let a = index(&write_flat(&flat_groups(), None), &Limits::default())
        .unwrap()
        .unwrap();
    let b = index(&write_flat(&flat_groups()[..1], None), &Limits::default())
        .unwrap()
        .unwrap();
    let c = index(&write_nested(), &Limits::default()).unwrap().unwrap();
    let h = |ix: &ParquetIndex| ix.info.as_ref().unwrap().schema_hash.clone();
    assert_eq!(h(&a), h(&b), "same schema, other data");
    assert_ne!(h(&a), h(&c));
}

#[test]
fn row_group_ranges_cover_the_chunks() {
    let file = write_flat(&flat_groups(), None);
    let n = file.len() as u64;
    let all = row_group_ranges(&file, n, &[0, 1, 2]).unwrap();
    // The chunks of all groups are contiguous: one range from after the magic, ending before
    // the page indexes and the footer.
    let footer_len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].start, 4);
    assert!(all[0].end <= n - footer_len as u64 - 8);
    let one = row_group_ranges(&file, n, &[1]).unwrap();
    assert_eq!(one.len(), 1);
    let (a, b) = (
        row_group_ranges(&file, n, &[0]).unwrap(),
        row_group_ranges(&file, n, &[2]).unwrap(),
    );
    assert_eq!(a[0].start, 4);
    assert_eq!(a[0].end, one[0].start);
    assert_eq!(one[0].end, b[0].start);
    assert_eq!(b[0].end, all[0].end);
    let split = row_group_ranges(&file, n, &[2, 0]).unwrap();
    assert_eq!(split, vec![a[0].clone(), b[0].clone()]);
    assert_eq!(
        row_group_ranges(&file, n, &[3]),
        Err(IndexError::NoSuchRowGroup { index: 3, count: 3 })
    );
    // From a tail alone, with the offsets the footer states.
    let tail = last(&file, footer_len as usize + 8);
    assert_eq!(row_group_ranges(tail, n, &[0, 1, 2]).unwrap(), all);
}

#[test]
fn constants_agree_with_the_master() {
    assert_eq!(MAX_PARQUET_TAIL, anode_meta::sm::MAX_PARQUET_TAIL);
    assert_eq!(MAX_PARQUET_STATS, anode_meta::sm::MAX_PARQUET_STATS);
    assert_eq!(MAX_PARQUET_COLUMNS, anode_meta::sm::MAX_PARQUET_COLUMNS);
    assert_eq!(
        MAX_PARQUET_ROW_GROUPS,
        anode_meta::sm::MAX_PARQUET_ROW_GROUPS
    );
    assert_eq!(
        PARQUET_RECORD_VERSION,
        anode_meta::sm::PARQUET_RECORD_VERSION
    );
}

#[test]
fn arbitrary_tails_never_panic() {
    // Every cut and a few corruptions of a real file's tail.
    let file = write_flat(&flat_groups(), None);
    let limits = Limits::default();
    for k in 0..file.len() {
        let _ = index_tail(&file[k..], file.len() as u64, true, &limits);
        let _ = row_group_ranges(&file[k..], file.len() as u64, &[0, 1, 2]);
    }
    for pos in 0..file.len() - 8 {
        let mut f = file.clone();
        f[pos] ^= 0x55;
        let _ = index_tail(&f, f.len() as u64, true, &limits);
        let _ = row_group_ranges(&f, f.len() as u64, &[0, 1, 2]);
    }
}

/// A Parquet file of no row groups whose schema is a root, `groups` nested optional groups
/// and an INT32 leaf, its footer encoded by hand (Thrift compact).
fn nested_file(groups: u64) -> Vec<u8> {
    let mut f = vec![0x15, 0x02, 0x19, 0xFC];
    let mut n = groups + 2;
    while n >= 0x80 {
        f.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    f.push(n as u8);
    f.extend([0x48, 1, b'r', 0x15, 0x02, 0x00]);
    for _ in 0..groups {
        f.extend([0x35, 0x02, 0x18, 1, b'g', 0x15, 0x02, 0x00]);
    }
    f.extend([0x15, 0x02, 0x25, 0x02, 0x18, 1, b'x', 0x00]);
    f.extend([0x16, 0x00, 0x19, 0x0C, 0x00]);
    let mut file = b"PAR1".to_vec();
    let len = f.len() as u32;
    file.extend(f);
    file.extend(len.to_le_bytes());
    file.extend(b"PAR1");
    file
}

#[test]
fn a_deeply_nested_schema_is_refused_not_a_stack_overflow() {
    // 100,000 groups: 800 KB of footer that would overflow the stack of the parquet crate's
    // recursive schema builder.
    let file = nested_file(100_000);
    let got = index(&file, &Limits::default());
    assert!(
        matches!(&got, Err(IndexError::Corrupt(m)) if m.contains("nested deeper than 100")),
        "{got:?}"
    );
    assert!(row_group_ranges(&file, file.len() as u64, &[]).is_err());
    // At the limit it decodes (in a test thread's stack, unoptimized).
    let ok = nested_file(MAX_SCHEMA_DEPTH as u64 - 1);
    let ix = index(&ok, &Limits::default()).unwrap().unwrap();
    let s = ix.stats.unwrap();
    assert_eq!(s.columns.len(), 1);
    assert_eq!(
        s.columns[0].path,
        format!("{}x", "g.".repeat(MAX_SCHEMA_DEPTH - 1))
    );
}
