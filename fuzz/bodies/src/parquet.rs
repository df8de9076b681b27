//! Parquet awareness targets (issue 16): the `x-anode-where` predicate parser and pruner
//! (`anode_meta::pq`), and the writer's footer indexer (`anode_pqindex`) on arbitrary tails.

use anode_meta::pq;
use anode_pqindex::{index_tail, row_group_ranges, Limits};
use anode_proto::parquet_value::V;
use anode_proto::*;

fn val(v: V) -> Option<ParquetValue> {
    Some(ParquetValue { v: Some(v) })
}

fn column(path: &str, d: ParquetDomain) -> ParquetColumn {
    ParquetColumn {
        path: path.into(),
        domain: d as i32,
        ..Default::default()
    }
}

/// A statistics record that reaches every branch of the pruner: each domain, a decimal, a
/// repeated leaf, an UNKNOWN one, a duplicated path, NaN and inverted bounds, missing
/// counts, all-NULL and empty row groups.
pub fn sample_stats() -> ParquetStats {
    let mut dec = column("d", ParquetDomain::Int);
    dec.is_decimal = true;
    dec.decimal_scale = 2;
    let mut rep = column("r", ParquetDomain::Int);
    rep.repeated = true;
    let columns = vec![
        column("i", ParquetDomain::Int),
        column("u", ParquetDomain::Uint),
        column("f", ParquetDomain::Float),
        column("s", ParquetDomain::Bytes),
        column("b", ParquetDomain::Bool),
        dec,
        rep,
        column("x", ParquetDomain::Unknown),
        column("a.b", ParquetDomain::Int),
        column("a.b", ParquetDomain::Int),
    ];
    let cs = |min: Option<V>, max: Option<V>, nulls: Option<u64>, nans: Option<u64>| ColumnStats {
        null_count: nulls,
        min: min.and_then(val),
        max: max.and_then(val),
        min_exact: true,
        max_exact: false,
        nan_count: nans,
    };
    let group = |k: i64, rows: u64| RowGroupStats {
        num_rows: rows,
        columns: vec![
            cs(
                Some(V::Int(k * 10)),
                Some(V::Int(k * 10 + 9)),
                Some(k as u64 % 3),
                None,
            ),
            cs(
                Some(V::Uint(k as u64)),
                Some(V::Uint(u64::MAX - k as u64)),
                Some(0),
                None,
            ),
            cs(
                Some(V::Float(if k == 2 { f64::NAN } else { k as f64 - 0.5 })),
                Some(V::Float(k as f64 + 0.5)),
                Some(0),
                if k == 1 { None } else { Some(k as u64) },
            ),
            cs(
                Some(V::Bytes(vec![b'a' + k as u8])),
                Some(V::Bytes(vec![b'a' + k as u8, 0xFF])),
                None,
                None,
            ),
            cs(
                Some(V::Bool(k % 2 == 1)),
                Some(V::Bool(true)),
                Some(0),
                None,
            ),
            cs(
                Some(V::Int(100 * k)),
                Some(V::Int(100 * k + 50)),
                Some(0),
                None,
            ),
            cs(Some(V::Int(0)), Some(V::Int(1)), Some(rows), None),
            cs(Some(V::Int(0)), Some(V::Int(1)), Some(0), None),
            cs(Some(V::Int(5)), Some(V::Int(1)), Some(0), None),
            cs(None, None, Some(rows), None),
        ],
    };
    let mut row_groups: Vec<_> = (0..4).map(|k| group(k, 10)).collect();
    row_groups.push(group(4, 0));
    row_groups.push(RowGroupStats {
        num_rows: 3,
        columns: Vec::new(),
    });
    ParquetStats {
        version: 1,
        columns,
        row_groups,
    }
}

/// The input as predicate text (UTF-8, lossily) through `pq::parse`, and what parses through
/// `pq::prune` over [`sample_stats`]. Properties: an error's position is inside the text (or at
/// the length cap for an over-long one) and on a character boundary; pruning answers
/// ascending row groups that have rows; `(p) OR (p)` keeps what `p` keeps.
pub fn parquet_predicate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let stats = sample_stats();
    match pq::parse(&text) {
        Err(e) => {
            if text.len() > pq::MAX_PREDICATE_BYTES {
                assert_eq!(e.position, pq::MAX_PREDICATE_BYTES, "{e}");
            } else {
                assert!(e.position <= text.len(), "{e}");
                assert!(text.is_char_boundary(e.position), "{e}");
            }
        }
        Ok(p) => {
            let kept = pq::prune(&p, &stats);
            if crate::debug() {
                eprintln!("parquet_predicate: {p:?} keeps {kept:?}");
            }
            assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");
            assert!(kept
                .iter()
                .all(|&g| stats.row_groups[g as usize].num_rows > 0));
            if let Ok(twice) = pq::parse(&format!("({text}) OR ({text})")) {
                assert_eq!(pq::prune(&twice, &stats), kept);
            }
        }
    }
}

/// The input as the tail of a Parquet file (the whole file, and the file with 1 KiB more in
/// front) through `index_tail` with the default and with small limits, and through
/// `row_group_ranges`. Properties: every index built passes the master's
/// `check_parquet_index` for the file's size, its tail is the file's end, its statistics
/// describe `num_row_groups` groups; ranges are sorted, disjoint and inside the file's data.
pub fn parquet_footer(data: &[u8]) {
    let small = Limits {
        max_tail: 512,
        window: 64,
        max_stats: 256,
        max_bytes_stat: 4,
    };
    for size in [data.len() as u64, data.len() as u64 + 1024] {
        for limits in [Limits::default(), small.clone()] {
            let Ok(Some(ix)) = index_tail(data, size, true, &limits) else {
                continue;
            };
            if crate::debug() {
                eprintln!("parquet_footer: {:?}", ix.info);
            }
            anode_meta::sm::check_parquet_index(&ix, size).expect("the master accepts the index");
            assert!(data.ends_with(&ix.tail));
            let info = ix.info.as_ref().expect("summary");
            if let Some(s) = &ix.stats {
                assert_eq!(s.row_groups.len(), info.num_row_groups as usize);
            }
        }
        if let Ok(ranges) = row_group_ranges(data, size, &[0, 1, 2, 0]) {
            assert!(
                ranges.windows(2).all(|w| w[0].end < w[1].start),
                "{ranges:?}"
            );
            assert!(ranges.iter().all(|r| r.start >= 4 && r.end <= size));
        }
    }
}
