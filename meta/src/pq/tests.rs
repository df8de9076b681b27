use super::*;
use anode_proto::parquet_value::V;
use anode_proto::{ColumnStats, ParquetColumn, ParquetDomain, ParquetValue, RowGroupStats};

fn p(text: &str) -> Expr {
    match parse(text) {
        Ok(p) => p.root,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn cmp(column: &str, op: CmpOp, lit: Literal) -> Expr {
    Expr::Cmp {
        column: column.into(),
        op,
        lit,
    }
}

#[test]
fn parses_the_language() {
    use Literal::*;
    assert_eq!(p("ts = 5"), cmp("ts", CmpOp::Eq, Int(5)));
    assert_eq!(p("5 < ts"), cmp("ts", CmpOp::Gt, Int(5)));
    assert_eq!(p("5 >= ts"), cmp("ts", CmpOp::Le, Int(5)));
    assert_eq!(p("a.b <> 'x'"), cmp("a.b", CmpOp::Ne, Str("x".into())));
    assert_eq!(p("a.b != 'x'"), cmp("a.b", CmpOp::Ne, Str("x".into())));
    assert_eq!(
        p("\"weird name\".\"x\"\"y\" = 'it''s'"),
        cmp("weird name.x\"y", CmpOp::Eq, Str("it's".into()))
    );
    assert_eq!(p("a.in = 1"), cmp("a.in", CmpOp::Eq, Int(1)));
    assert_eq!(p("x = -7"), cmp("x", CmpOp::Eq, Int(-7)));
    assert_eq!(
        p("x = 18446744073709551615"),
        cmp("x", CmpOp::Eq, UInt(u64::MAX))
    );
    assert_eq!(
        p("x = -9223372036854775808"),
        cmp("x", CmpOp::Eq, Int(i64::MIN))
    );
    assert_eq!(p("x = 1.5e3"), cmp("x", CmpOp::Eq, Float(1500.0)));
    assert_eq!(p("x = -.5"), cmp("x", CmpOp::Eq, Float(-0.5)));
    assert_eq!(p("x = 2."), cmp("x", CmpOp::Eq, Float(2.0)));
    assert_eq!(p("x = 1E-2"), cmp("x", CmpOp::Eq, Float(0.01)));
    assert_eq!(p("x=TrUe"), cmp("x", CmpOp::Eq, Bool(true)));
    assert_eq!(p("x = false"), cmp("x", CmpOp::Eq, Bool(false)));
    assert_eq!(
        p("x is not null"),
        Expr::IsNull {
            column: "x".into(),
            negated: true
        }
    );
    assert_eq!(
        p("x NOT IN (1, 'a', 2.5)"),
        Expr::In {
            column: "x".into(),
            negated: true,
            list: vec![Int(1), Str("a".into()), Float(2.5)]
        }
    );
    assert_eq!(
        p("x between 1 and 3 and y = 2"),
        Expr::And(vec![
            Expr::Between {
                column: "x".into(),
                negated: false,
                low: Int(1),
                high: Int(3)
            },
            cmp("y", CmpOp::Eq, Int(2))
        ])
    );
}

#[test]
fn precedence_or_and_not() {
    use Literal::Int;
    let a = || cmp("a", CmpOp::Eq, Int(1));
    let b = || cmp("b", CmpOp::Eq, Int(2));
    let c = || cmp("c", CmpOp::Eq, Int(3));
    assert_eq!(
        p("a = 1 OR b = 2 AND c = 3"),
        Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
    );
    assert_eq!(
        p("(a = 1 OR b = 2) AND c = 3"),
        Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
    );
    assert_eq!(
        p("NOT a = 1 AND b = 2"),
        Expr::And(vec![Expr::Not(Box::new(a())), b()])
    );
    assert_eq!(
        p("NOT NOT (a = 1)"),
        Expr::Not(Box::new(Expr::Not(Box::new(a()))))
    );
}

#[test]
fn errors_name_position_and_expectation() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "",
            0,
            "expected a column, a literal, NOT or `(`, found end of input",
        ),
        (
            "x",
            1,
            "expected a comparison operator, IN, IS or BETWEEN, found end of input",
        ),
        (
            "x = ",
            4,
            "expected a column or a literal after the operator",
        ),
        ("x = 'abc", 4, "unterminated string"),
        ("\"abc = 1", 0, "unterminated quoted name"),
        ("\"\" = 1", 0, "empty quoted name"),
        (
            "x = 1 y",
            6,
            "expected AND, OR or end of input, found name `y`",
        ),
        ("x = 1)", 5, "expected AND, OR or end of input, found `)`"),
        ("(x = 1", 6, "expected `)` or AND or OR, found end of input"),
        ("x # 1", 2, "unexpected character '#'"),
        ("x = 1 AND", 9, "expected a column, a literal, NOT or `(`"),
        ("x = NULL", 4, "NULL is only allowed in IS [NOT] NULL"),
        ("x IS 1", 5, "expected NULL, found a number"),
        ("x IN 1", 5, "expected `(` after IN"),
        ("x IN ()", 6, "expected a literal, found `)`"),
        ("x IN (1 2)", 8, "expected `,` or `)` in the IN list"),
        ("x IN (y)", 6, "expected a literal, found a column"),
        ("x NOT = 1", 6, "expected IN or BETWEEN after NOT"),
        ("x BETWEEN 1 OR 2", 12, "expected AND, found OR"),
        ("x = y", 4, "comparing two columns is not supported"),
        ("1 = 2", 0, "expected a column on one side"),
        (
            "1 IN (2)",
            2,
            "expected a comparison operator after a literal, found IN",
        ),
        ("x = 12abc", 6, "unexpected character after a number"),
        ("x = 1e", 5, "expected digits in the number's exponent"),
        ("x = 1e999", 4, "number out of range"),
        ("x = 99999999999999999999", 4, "integer out of range"),
        ("x = -18446744073709551615", 4, "integer out of range"),
        ("a. = 1", 3, "expected a column name part after `.`"),
        (
            "AND = 1",
            0,
            "expected a column, a literal, NOT or `(`, found AND",
        ),
        ("x ! 1", 2, "unexpected character '!'"),
        ("x = 'é' AND ü = 1", 13, "unexpected character 'ü'"),
    ];
    for (text, pos, msg) in cases {
        let e = parse(text).expect_err(text);
        assert_eq!(e.position, *pos, "{text:?}: {e}");
        assert!(e.message.contains(msg), "{text:?}: {e} (want {msg:?})");
        assert!(e.to_string().ends_with(&format!("at position {pos}")));
    }
}

#[test]
fn caps() {
    let long = format!("x = '{}'", "a".repeat(MAX_PREDICATE_BYTES));
    let e = parse(&long).unwrap_err();
    assert_eq!(e.position, MAX_PREDICATE_BYTES);
    assert!(parse(&format!("x = '{}'", "a".repeat(MAX_PREDICATE_BYTES - 6))).is_ok());

    let ok = format!("{}x = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!(
        "{}x = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let e = parse(&deep).unwrap_err();
    assert_eq!(e.position, MAX_DEPTH);
    assert!(e.message.contains("nesting deeper than 64"), "{e}");
    let nots = format!("{}x = 1", "NOT ".repeat(MAX_DEPTH + 1));
    assert_eq!(parse(&nots).unwrap_err().position, 4 * MAX_DEPTH);

    let atoms = vec!["x=1"; MAX_ATOMS].join(" OR ");
    assert!(parse(&atoms).is_ok());
    let more = format!("{atoms} OR y=2");
    let e = parse(&more).unwrap_err();
    assert_eq!(e.position, more.len() - 3);
    assert!(e.message.contains("more than 256 conditions"));

    let list = |n: usize| format!("x IN ({})", vec!["1"; n].join(","));
    assert!(parse(&list(MAX_IN_LIST)).is_ok());
    let e = parse(&list(MAX_IN_LIST + 1)).unwrap_err();
    assert_eq!(e.position, 6 + 2 * MAX_IN_LIST);
    assert!(e.message.contains("more than 1000 values"));
}

#[test]
fn never_panics_on_prefixes_and_bytes() {
    let text = "NOT (\"a b\".c >= -1.5e3 OR x IN ('it''s', 2)) AND y IS NOT NULL AND z NOT BETWEEN 1 AND 2";
    assert!(parse(text).is_ok());
    for i in 0..=text.len() {
        if text.is_char_boundary(i) {
            let _ = parse(&text[..i]);
            let _ = parse(&text[i..]);
        }
    }
    for b in 0u8..=127 {
        let _ = parse(&format!("x = 1 {}", b as char));
        let _ = parse(&format!("{} x", b as char));
    }
}

// ---- pruning ----

fn col(path: &str, d: ParquetDomain) -> ParquetColumn {
    ParquetColumn {
        path: path.into(),
        domain: d as i32,
        ..Default::default()
    }
}

fn val(v: V) -> Option<ParquetValue> {
    Some(ParquetValue { v: Some(v) })
}

/// Column stats with bounds, nulls and NaNs.
fn cs(min: Option<V>, max: Option<V>, nulls: Option<u64>, nans: Option<u64>) -> ColumnStats {
    ColumnStats {
        null_count: nulls,
        min: min.and_then(val),
        max: max.and_then(val),
        min_exact: true,
        max_exact: true,
        nan_count: nans,
    }
}

/// A file of one column over row groups of 10 rows each.
fn file(c: ParquetColumn, groups: Vec<ColumnStats>) -> ParquetStats {
    ParquetStats {
        version: 1,
        columns: vec![c],
        row_groups: groups
            .into_iter()
            .map(|s| RowGroupStats {
                num_rows: 10,
                columns: vec![s],
            })
            .collect(),
    }
}

fn kept(text: &str, f: &ParquetStats) -> Vec<u32> {
    prune(&parse(text).unwrap(), f)
}

fn ints() -> ParquetStats {
    // rg0 [0,9] no nulls; rg1 [10,19] 3 nulls; rg2 all null; rg3 [5,5]; rg4 no stats.
    file(
        col("x", ParquetDomain::Int),
        vec![
            cs(Some(V::Int(0)), Some(V::Int(9)), Some(0), None),
            cs(Some(V::Int(10)), Some(V::Int(19)), Some(3), None),
            cs(None, None, Some(10), None),
            cs(Some(V::Int(5)), Some(V::Int(5)), Some(0), None),
            cs(None, None, None, None),
        ],
    )
}

#[test]
fn each_operator_on_integers() {
    let f = ints();
    let cases: &[(&str, &[u32])] = &[
        ("x = 5", &[0, 3, 4]),
        ("x = 10", &[1, 4]),
        ("x = 100", &[4]),
        ("x != 5", &[0, 1, 4]),
        ("x <> 5", &[0, 1, 4]),
        ("x < 5", &[0, 4]),
        ("x <= 5", &[0, 3, 4]),
        ("x > 9", &[1, 4]),
        ("x >= 9", &[0, 1, 4]),
        ("9 <= x", &[0, 1, 4]),
        ("x >= 19.5", &[4]),
        ("x > 18.5", &[1, 4]),
        ("x < 0.5", &[0, 4]),
        ("x = 5.0", &[0, 3, 4]),
        ("x = 5.5", &[0, 4]),
        ("x IN (5, 50)", &[0, 3, 4]),
        ("x IN (50, 60)", &[4]),
        ("x NOT IN (5)", &[0, 1, 4]),
        ("x BETWEEN 6 AND 12", &[0, 1, 4]),
        ("x BETWEEN 20 AND 30", &[4]),
        ("x NOT BETWEEN 0 AND 9", &[1, 4]),
        ("x IS NULL", &[1, 2, 4]),
        ("x IS NOT NULL", &[0, 1, 3, 4]),
        ("NOT x = 5", &[0, 1, 4]),
        ("NOT x IS NULL", &[0, 1, 3, 4]),
        ("x = 5 OR x = 15", &[0, 1, 3, 4]),
        ("x > 3 AND x < 7", &[0, 3, 4]),
        ("x < 3 AND x > 7", &[0, 4]),
        ("NOT (x < 5 OR x > 5)", &[0, 3, 4]),
        ("x = 18446744073709551615", &[4]),
        ("x < 18446744073709551615", &[0, 1, 3, 4]),
        ("x > -9223372036854775808", &[0, 1, 3, 4]),
        // Not comparable soundly: every row group with rows is kept.
        ("x = 'a'", &[0, 1, 2, 3, 4]),
        ("x = TRUE", &[0, 1, 2, 3, 4]),
        ("x = 1e300", &[0, 1, 2, 3, 4]),
        ("nope = 1", &[0, 1, 2, 3, 4]),
        ("nope IS NULL", &[0, 1, 2, 3, 4]),
        ("NOT nope = 1", &[0, 1, 2, 3, 4]),
        ("nope = 1 AND x = 100", &[4]),
    ];
    for (text, want) in cases {
        assert_eq!(kept(text, &f), *want, "{text}");
    }
}

#[test]
fn nulls_are_unknown_under_not() {
    // All NULL: neither a comparison nor its negation can be TRUE.
    let f = file(
        col("x", ParquetDomain::Int),
        vec![cs(None, None, Some(10), None)],
    );
    for text in [
        "x = 1",
        "NOT x = 1",
        "x != 1",
        "NOT (x != 1)",
        "x IN (1)",
        "x NOT IN (1)",
    ] {
        assert_eq!(kept(text, &f), Vec::<u32>::new(), "{text}");
    }
    assert_eq!(kept("x IS NULL", &f), vec![0]);
    assert_eq!(kept("x = 1 OR x IS NULL", &f), vec![0]);
    assert_eq!(kept("NOT (x = 1 AND x IS NOT NULL)", &f), vec![0]);
}

#[test]
fn floats_and_nan() {
    let f = file(
        col("f", ParquetDomain::Float),
        vec![
            // [1, 2], may hold NaN (count unknown)
            cs(Some(V::Float(1.0)), Some(V::Float(2.0)), Some(0), None),
            // [1, 2], no NaN
            cs(Some(V::Float(1.0)), Some(V::Float(2.0)), Some(0), Some(0)),
            // only NaN
            cs(None, None, Some(0), Some(10)),
            // NaN bounds (ignored)
            cs(
                Some(V::Float(f64::NAN)),
                Some(V::Float(f64::NAN)),
                Some(0),
                Some(0),
            ),
            // [1, 1] exactly, no NaN
            cs(Some(V::Float(1.0)), Some(V::Float(1.0)), Some(0), Some(0)),
        ],
    );
    let cases: &[(&str, &[u32])] = &[
        ("f = 1.5", &[0, 1, 3]),
        ("f = 3", &[3]),
        ("f > 2", &[3]),
        // NaN rows make != TRUE and NOT (comparison) TRUE.
        ("f != 1", &[0, 1, 2, 3]),
        ("NOT f = 1", &[0, 1, 2, 3]),
        ("NOT f < 5", &[0, 2, 3]),
        ("NOT f BETWEEN 0 AND 5", &[0, 2, 3]),
        ("f NOT IN (1, 1.5)", &[0, 1, 2, 3]),
        ("f IS NULL", &[]),
        ("f = 1", &[0, 1, 3, 4]),
        ("f = 9007199254740993", &[0, 1, 2, 3, 4]),
        ("f < 1", &[3]),
        ("f <= 1", &[0, 1, 3, 4]),
    ];
    for (text, want) in cases {
        assert_eq!(kept(text, &f), *want, "{text}");
    }
}

#[test]
fn float_literal_also_at_single_precision() {
    // A FLOAT (f32) column holding 0.1f32: as a double it is 0.10000000149011612.
    let v = 0.1f32 as f64;
    let f = file(
        col("f", ParquetDomain::Float),
        vec![cs(Some(V::Float(v)), Some(V::Float(v)), Some(0), Some(0))],
    );
    assert_eq!(kept("f = 0.1", &f), vec![0]);
    assert_eq!(kept("f = 0.2", &f), Vec::<u32>::new());
    assert_eq!(kept("f != 0.1", &f), vec![0]);
}

#[test]
fn strings_and_truncated_bounds() {
    let b = |s: &str| Some(V::Bytes(s.as_bytes().to_vec()));
    let mut trunc = cs(b("abc"), b("abd"), Some(0), None);
    trunc.min_exact = false;
    trunc.max_exact = false;
    let f = file(
        col("s", ParquetDomain::Bytes),
        vec![
            cs(b("apple"), b("banana"), Some(0), None),
            // truncated: values in ["abc", "abd"], e.g. "abcxyz"
            trunc,
            cs(b("é"), b("é"), Some(2), None),
        ],
    );
    let cases: &[(&str, &[u32])] = &[
        ("s = 'apricot'", &[0]),
        ("s = 'abcxyz'", &[1]),
        ("s = 'abc'", &[1]),
        ("s = 'abd'", &[1]),
        ("s = 'abda'", &[]),
        ("s > 'b'", &[0, 2]),
        ("s >= 'banana'", &[0, 2]),
        ("s > 'banana'", &[2]),
        ("s < 'abc'", &[]),
        ("s = 'é'", &[2]),
        ("s != 'é'", &[0, 1]),
        ("s IN ('zzz', 'abcq')", &[1]),
        ("s = 5", &[0, 1, 2]),
    ];
    for (text, want) in cases {
        assert_eq!(kept(text, &f), *want, "{text}");
    }
}

#[test]
fn bools() {
    let bools = file(
        col("b", ParquetDomain::Bool),
        vec![
            cs(Some(V::Bool(false)), Some(V::Bool(false)), Some(0), None),
            cs(Some(V::Bool(false)), Some(V::Bool(true)), Some(0), None),
            cs(Some(V::Bool(true)), Some(V::Bool(true)), Some(0), None),
        ],
    );
    assert_eq!(kept("b = TRUE", &bools), vec![1, 2]);
    assert_eq!(kept("b = FALSE", &bools), vec![0, 1]);
    assert_eq!(kept("b < TRUE", &bools), vec![0, 1]);
    assert_eq!(kept("b != FALSE", &bools), vec![1, 2]);
    assert!(parse("NOT b").is_err(), "a bare column is not a condition");
}

#[test]
fn uints_and_decimals() {
    let u = file(
        col("u", ParquetDomain::Uint),
        vec![
            cs(Some(V::Uint(0)), Some(V::Uint(10)), Some(0), None),
            cs(
                Some(V::Uint(1 << 63)),
                Some(V::Uint(u64::MAX)),
                Some(0),
                None,
            ),
        ],
    );
    assert_eq!(kept("u = 18446744073709551615", &u), vec![1]);
    assert_eq!(kept("u < 0", &u), Vec::<u32>::new());
    assert_eq!(kept("u > -1", &u), vec![0, 1]);
    assert_eq!(kept("u <= 9223372036854775807", &u), vec![0]);

    // DECIMAL(9, 2) as unscaled integers: [1.00, 2.50].
    let mut d = col("d", ParquetDomain::Int);
    d.is_decimal = true;
    d.decimal_scale = 2;
    let dec = file(
        d,
        vec![cs(Some(V::Int(100)), Some(V::Int(250)), Some(0), None)],
    );
    assert_eq!(kept("d = 2", &dec), vec![0]);
    assert_eq!(kept("d = 3", &dec), Vec::<u32>::new());
    assert_eq!(kept("d > 2", &dec), vec![0]);
    assert_eq!(kept("d < 1", &dec), Vec::<u32>::new());
    // A float literal against a decimal column never prunes.
    assert_eq!(kept("d = 9.5", &dec), vec![0]);
}

#[test]
fn unknown_stats_keep_everything() {
    let mut rep = col("x", ParquetDomain::Int);
    rep.repeated = true;
    let f = file(
        rep,
        vec![cs(Some(V::Int(0)), Some(V::Int(1)), Some(10), None)],
    );
    assert_eq!(kept("x = 100", &f), vec![0]);
    assert_eq!(kept("x IS NOT NULL", &f), vec![0]);

    // Domain UNKNOWN, bounds of the wrong kind, inverted bounds.
    let unk = file(
        col("x", ParquetDomain::Unknown),
        vec![cs(Some(V::Int(0)), Some(V::Int(1)), Some(0), None)],
    );
    assert_eq!(kept("x = 100", &unk), vec![0]);
    let wrong = file(
        col("x", ParquetDomain::Int),
        vec![cs(Some(V::Uint(0)), Some(V::Float(1.0)), Some(0), None)],
    );
    assert_eq!(kept("x = 100", &wrong), vec![0]);
    let inverted = file(
        col("x", ParquetDomain::Int),
        vec![cs(Some(V::Int(5)), Some(V::Int(1)), Some(0), None)],
    );
    assert_eq!(kept("x = 100", &inverted), vec![0]);

    // Two leaves with the same dotted path: ambiguous, never pruned on.
    let mut two = file(
        col("a.b", ParquetDomain::Int),
        vec![cs(Some(V::Int(0)), Some(V::Int(1)), Some(0), None)],
    );
    two.columns.push(col("a.b", ParquetDomain::Int));
    two.row_groups[0]
        .columns
        .push(cs(Some(V::Int(0)), Some(V::Int(1)), Some(0), None));
    assert_eq!(kept("a.b = 100", &two), vec![0]);

    // A row group of no rows is never kept; a row group missing its column stats is.
    let mut short = ints();
    short.row_groups[0].num_rows = 0;
    short.row_groups[1].columns.clear();
    assert_eq!(kept("x = 100", &short), vec![1, 4]);
}

#[test]
fn exact_number_order() {
    let int_float_probe = super::eval::int_float;
    assert_eq!(int_float_probe(3, 2.5), Some(std::cmp::Ordering::Greater));
    assert_eq!(int_float_probe(-3, -2.5), Some(std::cmp::Ordering::Less));
    assert_eq!(int_float_probe(2, 2.0), Some(std::cmp::Ordering::Equal));
    assert_eq!(
        int_float_probe((1 << 53) + 1, 9007199254740992.0),
        Some(std::cmp::Ordering::Greater)
    );
    assert_eq!(
        int_float_probe(i128::MAX, 1e300),
        Some(std::cmp::Ordering::Less)
    );
    assert_eq!(
        int_float_probe(i128::MIN, -1e300),
        Some(std::cmp::Ordering::Greater)
    );
    assert_eq!(int_float_probe(0, f64::NAN), None);
}
