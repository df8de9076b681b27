//! The core guarantee of issue 16: pruning never drops a row group that holds a matching
//! row. Random small tables (an i64, an f64 with NaN and signed zeros, strings including long
//! ones whose bounds get truncated, a bool; all with NULLs) are written as Parquet with small
//! row groups, indexed from the file's tail (`index_tail`), and random predicates (as text,
//! over literals near the data) are parsed and pruned (`anode_meta::pq`); every row group in
//! which a brute-force, independent row evaluator (SQL three-valued logic) finds a TRUE row
//! must be kept.
//!
//! Cases: `PROPTEST_CASES` (default 256). Seed: `ANODE_SEED=<u64>` replays a run (the seed is
//! printed).

mod support;

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use anode_pqindex::{index_tail, Limits};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use support::{write_flat, Row};

// ---- the data ----

fn ints() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        1 => Just(None),
        6 => (-4i64..12).prop_map(Some),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, -1 << 53, 1 << 53]).prop_map(Some),
    ]
}

fn floats() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => prop::sample::select(vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY]).prop_map(Some),
        6 => (-8i32..24).prop_map(|k| Some(k as f64 / 2.0)),
    ]
}

/// Short strings from a small alphabet, and long ones sharing 60+ byte prefixes (truncated by
/// the index at 4..64 bytes), including 0xFF-heavy UTF-8 ('ÿ' is c3 bf).
fn strings() -> impl Strategy<Value = Option<String>> {
    let short = prop::collection::vec(prop::sample::select(vec!['a', 'b', 'z', 'é']), 0..4)
        .prop_map(|v| v.into_iter().collect::<String>());
    let long = (
        prop::sample::select(vec!['a', 'b', 'ÿ']),
        60usize..80,
        prop::collection::vec(prop::sample::select(vec!['a', 'b', 'ÿ']), 0..3),
    )
        .prop_map(|(c, n, tail)| {
            let mut s: String = std::iter::repeat_n(c, n).collect();
            s.extend(tail);
            s
        });
    prop_oneof![1 => Just(None), 4 => short.prop_map(Some), 2 => long.prop_map(Some)]
}

fn rows() -> impl Strategy<Value = Row> {
    (ints(), floats(), strings(), prop::option::of(any::<bool>())).prop_map(|(i, f, s, b)| Row {
        i,
        f,
        s,
        b,
    })
}

fn table() -> impl Strategy<Value = Vec<Vec<Row>>> {
    prop::collection::vec(prop::collection::vec(rows(), 1..7), 1..7)
}

// ---- predicates, as text and as a tree for the oracle ----

#[derive(Debug, Clone)]
enum Lit {
    I(i64),
    F(f64),
    S(String),
    B(bool),
}

impl Lit {
    fn text(&self) -> String {
        match self {
            Lit::I(i) => i.to_string(),
            // `{:?}` keeps a fraction or exponent, so the parser reads a float.
            Lit::F(f) => format!("{f:?}"),
            Lit::S(s) => format!("'{}'", s.replace('\'', "''")),
            Lit::B(b) => if *b { "TRUE" } else { "false" }.into(),
        }
    }
}

#[derive(Debug, Clone)]
enum P {
    Cmp(&'static str, &'static str, Lit, bool),
    IsNull(&'static str, bool),
    In(&'static str, Vec<Lit>, bool),
    Between(&'static str, Lit, Lit, bool),
    Not(Box<P>),
    And(Box<P>, Box<P>),
    Or(Box<P>, Box<P>),
}

const OPS: [&str; 7] = ["=", "!=", "<>", "<", "<=", ">", ">="];

fn flip(op: &'static str) -> &'static str {
    match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        o => o,
    }
}

impl P {
    fn text(&self) -> String {
        match self {
            P::Cmp(c, op, l, false) => format!("{c} {op} {}", l.text()),
            P::Cmp(c, op, l, true) => format!("{} {} {c}", l.text(), flip(op)),
            P::IsNull(c, n) => format!("{c} IS {}NULL", if *n { "NOT " } else { "" }),
            P::In(c, ls, n) => format!(
                "{c} {}IN ({})",
                if *n { "NOT " } else { "" },
                ls.iter().map(Lit::text).collect::<Vec<_>>().join(", ")
            ),
            P::Between(c, a, b, n) => format!(
                "{c} {}BETWEEN {} AND {}",
                if *n { "not " } else { "" },
                a.text(),
                b.text()
            ),
            P::Not(p) => format!("NOT ({})", p.text()),
            P::And(a, b) => format!("({}) AND ({})", a.text(), b.text()),
            P::Or(a, b) => format!("({}) or ({})", a.text(), b.text()),
        }
    }
}

/// A literal of the kind of `column`, near its data.
fn lit_for(column: &'static str) -> BoxedStrategy<Lit> {
    match column {
        "i" => prop_oneof![
            4 => ints().prop_filter_map("null", |v| v.map(Lit::I)),
            1 => (-8i32..24).prop_map(|k| Lit::F(k as f64 / 2.0)),
        ]
        .boxed(),
        "f" => prop_oneof![
            4 => floats().prop_filter_map("null or NaN", |v| v.filter(|f| f.is_finite()).map(Lit::F)),
            1 => (-4i64..12).prop_map(Lit::I),
        ]
        .boxed(),
        "s" => strings().prop_filter_map("null", |v| v.map(Lit::S)).boxed(),
        _ => any::<bool>().prop_map(Lit::B).boxed(),
    }
}

fn atom() -> impl Strategy<Value = P> {
    prop::sample::select(vec!["i", "f", "s", "b"]).prop_flat_map(|c| {
        prop_oneof![
            4 => (prop::sample::select(OPS.to_vec()), lit_for(c), any::<bool>())
                .prop_map(move |(op, l, swap)| P::Cmp(c, op, l, swap)),
            1 => any::<bool>().prop_map(move |n| P::IsNull(c, n)),
            1 => (prop::collection::vec(lit_for(c), 1..4), any::<bool>())
                .prop_map(move |(ls, n)| P::In(c, ls, n)),
            1 => (lit_for(c), lit_for(c), any::<bool>())
                .prop_map(move |(a, b, n)| P::Between(c, a, b, n)),
        ]
    })
}

fn predicate() -> impl Strategy<Value = P> {
    atom().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|p| P::Not(Box::new(p))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| P::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| P::Or(Box::new(a), Box::new(b))),
        ]
    })
}

// ---- the oracle: one row, SQL three-valued logic (None = UNKNOWN) ----

fn order(row: &Row, column: &str, l: &Lit) -> Option<Option<Ordering>> {
    // Outer None: the value is NULL. Inner None: unordered (NaN).
    Some(match (column, l) {
        ("i", Lit::I(x)) => Some(row.i?.cmp(x)),
        ("i", Lit::F(x)) => (row.i? as f64).partial_cmp(x),
        ("f", Lit::F(x)) => row.f?.partial_cmp(x),
        ("f", Lit::I(x)) => row.f?.partial_cmp(&(*x as f64)),
        ("s", Lit::S(x)) => Some(row.s.as_ref()?.as_bytes().cmp(x.as_bytes())),
        ("b", Lit::B(x)) => Some(row.b?.cmp(x)),
        _ => unreachable!("generated predicates compare like kinds"),
    })
}

fn compare(row: &Row, column: &str, op: &str, l: &Lit) -> Option<bool> {
    let o = order(row, column, l)?;
    Some(match op {
        "=" => o == Some(Ordering::Equal),
        "!=" | "<>" => o != Some(Ordering::Equal),
        "<" => o == Some(Ordering::Less),
        "<=" => matches!(o, Some(Ordering::Less | Ordering::Equal)),
        ">" => o == Some(Ordering::Greater),
        ">=" => matches!(o, Some(Ordering::Greater | Ordering::Equal)),
        _ => unreachable!(),
    })
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn not3(a: Option<bool>) -> Option<bool> {
    a.map(|x| !x)
}

fn eval(p: &P, row: &Row) -> Option<bool> {
    match p {
        P::Cmp(c, op, l, _) => compare(row, c, op, l),
        P::IsNull(c, n) => {
            let null = match *c {
                "i" => row.i.is_none(),
                "f" => row.f.is_none(),
                "s" => row.s.is_none(),
                _ => row.b.is_none(),
            };
            Some(null != *n)
        }
        P::In(c, ls, n) => {
            // Not a `try_fold`: UNKNOWN does not end the OR, a later TRUE still wins.
            let mut any = Some(false);
            for l in ls {
                any = or3(any, compare(row, c, "=", l));
            }
            if *n {
                not3(any)
            } else {
                any
            }
        }
        P::Between(c, a, b, n) => {
            let v = and3(compare(row, c, ">=", a), compare(row, c, "<=", b));
            if *n {
                not3(v)
            } else {
                v
            }
        }
        P::Not(p) => not3(eval(p, row)),
        P::And(a, b) => and3(eval(a, row), eval(b, row)),
        P::Or(a, b) => or3(eval(a, row), eval(b, row)),
    }
}

// ---- the property ----

static GROUPS: AtomicU64 = AtomicU64::new(0);
static MATCHING: AtomicU64 = AtomicU64::new(0);
static KEPT: AtomicU64 = AtomicU64::new(0);

fn check(
    groups: &[Vec<Row>],
    preds: &[P],
    writer_truncate: Option<usize>,
    max_bytes_stat: usize,
) -> Result<(), TestCaseError> {
    let file = write_flat(groups, writer_truncate);
    let limits = Limits {
        max_bytes_stat,
        ..Limits::default()
    };
    let tail = support::last(&file, limits.max_tail as usize + 8);
    let ix = index_tail(tail, file.len() as u64, true, &limits)
        .map_err(|e| TestCaseError::fail(format!("index: {e}")))?
        .ok_or_else(|| TestCaseError::fail("not recognised as Parquet"))?;
    let stats = ix.stats.expect("small files have statistics");
    prop_assert_eq!(stats.row_groups.len(), groups.len());
    for p in preds {
        let text = p.text();
        let parsed = anode_meta::pq::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let kept = anode_meta::pq::prune(&parsed, &stats);
        prop_assert!(
            kept.windows(2).all(|w| w[0] < w[1]),
            "ascending: {:?}",
            kept
        );
        for (g, rows) in groups.iter().enumerate() {
            let matching = rows.iter().any(|r| eval(p, r) == Some(true));
            if matching {
                MATCHING.fetch_add(1, AtomicOrdering::Relaxed);
                prop_assert!(
                    kept.contains(&(g as u32)),
                    "{text:?} dropped row group {g} holding a match: rows {:?}, stats {:?}",
                    rows,
                    stats.row_groups[g]
                );
            }
        }
        GROUPS.fetch_add(groups.len() as u64, AtomicOrdering::Relaxed);
        KEPT.fetch_add(kept.len() as u64, AtomicOrdering::Relaxed);
    }
    Ok(())
}

fn seed() -> u64 {
    match std::env::var("ANODE_SEED") {
        Ok(s) => s.parse().expect("ANODE_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

#[test]
fn pruning_never_drops_a_matching_row_group() {
    let seed = seed();
    eprintln!("prune_property: ANODE_SEED={seed}");
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let strategy = (
        table(),
        prop::collection::vec(predicate(), 1..6),
        prop::sample::select(vec![None, Some(8), Some(64)]),
        prop::sample::select(vec![4usize, 8, 64]),
    );
    let start = std::time::Instant::now();
    let result = runner.run(&strategy, |(groups, preds, wt, mb)| {
        check(&groups, &preds, wt, mb)
    });
    let (groups, matching, kept) = (
        GROUPS.load(AtomicOrdering::Relaxed),
        MATCHING.load(AtomicOrdering::Relaxed),
        KEPT.load(AtomicOrdering::Relaxed),
    );
    eprintln!(
        "prune_property: {cases} cases in {:.1} s; {groups} (predicate, row group) pairs, \
         {matching} with a matching row, {kept} kept, {} pruned",
        start.elapsed().as_secs_f64(),
        groups - kept
    );
    if let Err(e) = result {
        panic!("ANODE_SEED={seed}: {e}");
    }
    // Not trivially keeping everything: a good share of the row groups without a match go.
    assert!(
        groups - kept > (groups - matching) / 4,
        "pruning too weak: {kept} of {groups} kept, {matching} needed"
    );
}
