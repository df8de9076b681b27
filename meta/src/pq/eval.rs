//! Pruning: the outcomes a predicate may take on the rows of each row group, from the row
//! group's statistics (see "Pruning" in the module docs of `pq`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use anode_proto::parquet_value::V;
use anode_proto::{ColumnStats, ParquetColumn, ParquetDomain, ParquetStats, ParquetValue};

use super::{CmpOp, Expr, Literal};

/// A set of outcomes of SQL's three-valued logic, as bits.
type Outcomes = u8;
const TRUE: Outcomes = 1;
const FALSE: Outcomes = 2;
const UNKNOWN: Outcomes = 4;
const ALL: Outcomes = TRUE | FALSE | UNKNOWN;

/// Largest integer magnitude every double between 0 and it represents exactly (2^53).
const EXACT_DOUBLE_INT: i128 = 1 << 53;

fn not(s: Outcomes) -> Outcomes {
    (s & UNKNOWN) | ((s & TRUE) << 1) | ((s & FALSE) >> 1)
}

fn members(s: Outcomes) -> impl Iterator<Item = Outcomes> {
    [TRUE, FALSE, UNKNOWN]
        .into_iter()
        .filter(move |o| s & o != 0)
}

/// Pairwise combination of two sets with a three-valued operator on single outcomes.
fn combine(a: Outcomes, b: Outcomes, op: fn(Outcomes, Outcomes) -> Outcomes) -> Outcomes {
    let mut out = 0;
    for x in members(a) {
        for y in members(b) {
            out |= op(x, y);
        }
    }
    out
}

fn and1(x: Outcomes, y: Outcomes) -> Outcomes {
    if x == FALSE || y == FALSE {
        FALSE
    } else if x == TRUE && y == TRUE {
        TRUE
    } else {
        UNKNOWN
    }
}

fn or1(x: Outcomes, y: Outcomes) -> Outcomes {
    if x == TRUE || y == TRUE {
        TRUE
    } else if x == FALSE && y == FALSE {
        FALSE
    } else {
        UNKNOWN
    }
}

/// A number for exact comparison across integers and doubles.
#[derive(Debug, Clone, Copy)]
enum Num {
    I(i128),
    F(f64),
}

/// Exact order of an integer and a double (`None` for NaN).
pub(super) fn int_float(i: i128, f: f64) -> Option<Ordering> {
    // 2^127: every double at or above it is above every i128.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() {
        return None;
    }
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f < -LIMIT {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // Exact: `t` is an integer inside the i128 range.
    let ti = t as i128;
    Some(match i.cmp(&ti) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        o => o,
    })
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => int_float(x, y),
        (Num::F(x), Num::I(y)) => int_float(y, x).map(Ordering::reverse),
    }
}

/// A value in a column's comparison domain.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Num(Num),
    Bytes(&'a [u8]),
    Bool(bool),
}

fn key_cmp(a: Key<'_>, b: Key<'_>) -> Option<Ordering> {
    match (a, b) {
        (Key::Num(x), Key::Num(y)) => num_cmp(x, y),
        (Key::Bytes(x), Key::Bytes(y)) => Some(x.cmp(y)),
        (Key::Bool(x), Key::Bool(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

fn domain(c: &ParquetColumn) -> ParquetDomain {
    ParquetDomain::try_from(c.domain).unwrap_or(ParquetDomain::Unknown)
}

/// A statistics bound as a key of the column's domain; `None` when it is absent, of another
/// kind than the domain, or NaN.
fn bound_key<'a>(c: &ParquetColumn, v: Option<&'a ParquetValue>) -> Option<Key<'a>> {
    let k = match (domain(c), v?.v.as_ref()?) {
        (ParquetDomain::Int, V::Int(i)) => Key::Num(Num::I(*i as i128)),
        (ParquetDomain::Uint, V::Uint(u)) => Key::Num(Num::I(*u as i128)),
        (ParquetDomain::Float, V::Float(f)) if !f.is_nan() => Key::Num(Num::F(*f)),
        (ParquetDomain::Bytes, V::Bytes(b)) => Key::Bytes(b),
        (ParquetDomain::Bool, V::Bool(b)) => Key::Bool(*b),
        _ => return None,
    };
    Some(k)
}

/// The keys a literal stands for against column `c` (two for a FLOAT column and a double that
/// single precision does not hold: the double and its rounding); `None` when the statistics
/// cannot compare with it soundly.
fn literal_keys<'a>(c: &ParquetColumn, lit: &'a Literal) -> Option<([Key<'a>; 2], usize)> {
    let one = |k| Some(([k, k], 1));
    let int = |l: &Literal| match l {
        Literal::Int(i) => Some(*i as i128),
        Literal::UInt(u) => Some(*u as i128),
        _ => None,
    };
    match domain(c) {
        ParquetDomain::Int | ParquetDomain::Uint if c.is_decimal => {
            let scale = u32::try_from(c.decimal_scale).ok().filter(|s| *s <= 38)?;
            let scaled = int(lit)?.checked_mul(10i128.checked_pow(scale)?)?;
            one(Key::Num(Num::I(scaled)))
        }
        ParquetDomain::Int | ParquetDomain::Uint => match lit {
            Literal::Float(f) if f.abs() <= EXACT_DOUBLE_INT as f64 => one(Key::Num(Num::F(*f))),
            _ => one(Key::Num(Num::I(int(lit)?))),
        },
        ParquetDomain::Float if c.is_decimal => None,
        ParquetDomain::Float => match lit {
            Literal::Float(f) => {
                let single = *f as f32 as f64;
                if single == *f {
                    one(Key::Num(Num::F(*f)))
                } else {
                    Some(([Key::Num(Num::F(*f)), Key::Num(Num::F(single))], 2))
                }
            }
            _ => {
                let i = int(lit)?;
                (i.abs() <= EXACT_DOUBLE_INT).then_some(([Key::Num(Num::I(i)); 2], 1))
            }
        },
        ParquetDomain::Bytes => match lit {
            Literal::Str(s) => one(Key::Bytes(s.as_bytes())),
            _ => None,
        },
        ParquetDomain::Bool => match lit {
            Literal::Bool(b) => one(Key::Bool(*b)),
            _ => None,
        },
        ParquetDomain::Unknown => None,
    }
}

/// Outcomes of `v op c` over values `v` with `min <= v <= max`, given `lo` = min vs c and
/// `hi` = max vs c (`None`: that bound is unknown).
fn range_outcomes(op: CmpOp, lo: Option<Ordering>, hi: Option<Ordering>) -> Outcomes {
    use Ordering::*;
    let some_le = lo.is_none_or(|o| o != Greater);
    let some_lt = lo.is_none_or(|o| o == Less);
    let some_ge = hi.is_none_or(|o| o != Less);
    let some_gt = hi.is_none_or(|o| o == Greater);
    let all_eq = lo == Some(Equal) && hi == Some(Equal);
    let pick = |t: bool, f: bool| (if t { TRUE } else { 0 }) | (if f { FALSE } else { 0 });
    match op {
        CmpOp::Eq => pick(some_le && some_ge, !all_eq),
        CmpOp::Ne => pick(!all_eq, some_le && some_ge),
        CmpOp::Lt => pick(some_lt, some_ge),
        CmpOp::Le => pick(some_le, some_gt),
        CmpOp::Gt => pick(some_gt, some_le),
        CmpOp::Ge => pick(some_ge, some_lt),
    }
}

/// One column of one row group.
#[derive(Clone, Copy)]
struct Col<'a> {
    meta: &'a ParquetColumn,
    stats: &'a ColumnStats,
    num_rows: u64,
}

/// What kinds of rows a column chunk may hold.
struct Rows {
    null: bool,
    nan: bool,
    value: bool,
}

impl Col<'_> {
    fn rows(&self) -> Rows {
        let s = self.stats;
        let non_null = s.null_count.is_none_or(|n| n < self.num_rows);
        let float = domain(self.meta) == ParquetDomain::Float;
        let all_nan = match (s.null_count, s.nan_count) {
            (Some(n), Some(k)) => n.saturating_add(k) >= self.num_rows,
            _ => false,
        };
        Rows {
            null: s.null_count.is_none_or(|n| n > 0),
            nan: float && non_null && s.nan_count != Some(0),
            value: non_null && !(float && all_nan),
        }
    }

    /// Outcomes of `column op lit` on this chunk's rows.
    fn compare(&self, op: CmpOp, lit: &Literal) -> Outcomes {
        let Some((keys, n)) = literal_keys(self.meta, lit) else {
            return ALL;
        };
        let rows = self.rows();
        let mut out = 0;
        if rows.null {
            out |= UNKNOWN;
        }
        if rows.nan {
            out |= if op == CmpOp::Ne { TRUE } else { FALSE };
        }
        if rows.value {
            let (mut lo, mut hi) = (
                bound_key(self.meta, self.stats.min.as_ref()),
                bound_key(self.meta, self.stats.max.as_ref()),
            );
            if let (Some(l), Some(h)) = (lo, hi) {
                if matches!(key_cmp(l, h), Some(Ordering::Greater) | None) {
                    // Inconsistent bounds: trust neither.
                    (lo, hi) = (None, None);
                }
            }
            for c in &keys[..n] {
                let lo_c = lo.and_then(|l| key_cmp(l, *c));
                let hi_c = hi.and_then(|h| key_cmp(h, *c));
                out |= range_outcomes(op, lo_c, hi_c);
            }
        }
        out
    }

    fn is_null(&self) -> Outcomes {
        let s = self.stats;
        let null = s.null_count.is_none_or(|n| n > 0);
        let non_null = s.null_count.is_none_or(|n| n < self.num_rows);
        (if null { TRUE } else { 0 }) | (if non_null { FALSE } else { 0 })
    }
}

/// The predicate's tree with its columns looked up in the file's schema.
struct Eval<'a> {
    stats: &'a ParquetStats,
    columns: BTreeMap<&'a str, Option<usize>>,
}

impl<'a> Eval<'a> {
    fn new(stats: &'a ParquetStats) -> Self {
        let mut columns = BTreeMap::new();
        for (i, c) in stats.columns.iter().enumerate() {
            columns
                .entry(c.path.as_str())
                .and_modify(|e| *e = None)
                .or_insert(Some(i));
        }
        Eval { stats, columns }
    }

    /// The column `path` in row group `rg`, when it is known, unique and not repeated.
    fn col(&self, path: &str, rg: usize) -> Option<Col<'a>> {
        let i = (*self.columns.get(path)?)?;
        let meta = &self.stats.columns[i];
        let group = &self.stats.row_groups[rg];
        let stats = group.columns.get(i)?;
        (!meta.repeated).then_some(Col {
            meta,
            stats,
            num_rows: group.num_rows,
        })
    }

    fn outcomes(&self, e: &Expr, rg: usize) -> Outcomes {
        match e {
            Expr::And(parts) => parts.iter().fold(TRUE, |acc, p| {
                if acc == FALSE {
                    FALSE
                } else {
                    combine(acc, self.outcomes(p, rg), and1)
                }
            }),
            Expr::Or(parts) => parts.iter().fold(FALSE, |acc, p| {
                if acc == TRUE {
                    TRUE
                } else {
                    combine(acc, self.outcomes(p, rg), or1)
                }
            }),
            Expr::Not(inner) => not(self.outcomes(inner, rg)),
            Expr::Cmp { column, op, lit } => self.cmp(column, rg, *op, lit),
            Expr::In {
                column,
                negated,
                list,
            } => {
                let s = list.iter().fold(FALSE, |acc, l| {
                    combine(acc, self.cmp(column, rg, CmpOp::Eq, l), or1)
                });
                if *negated {
                    not(s)
                } else {
                    s
                }
            }
            Expr::IsNull { column, negated } => {
                let s = self.col(column, rg).map_or(ALL, |c| c.is_null());
                if *negated {
                    not(s)
                } else {
                    s
                }
            }
            Expr::Between {
                column,
                negated,
                low,
                high,
            } => {
                let s = combine(
                    self.cmp(column, rg, CmpOp::Ge, low),
                    self.cmp(column, rg, CmpOp::Le, high),
                    and1,
                );
                if *negated {
                    not(s)
                } else {
                    s
                }
            }
        }
    }

    fn cmp(&self, column: &str, rg: usize, op: CmpOp, lit: &Literal) -> Outcomes {
        self.col(column, rg).map_or(ALL, |c| c.compare(op, lit))
    }
}

/// Row groups (ascending) of `stats` where `e` may be TRUE on some row.
pub(super) fn prune(e: &Expr, stats: &ParquetStats) -> Vec<u32> {
    let ev = Eval::new(stats);
    (0..stats.row_groups.len())
        .filter(|&rg| stats.row_groups[rg].num_rows > 0 && ev.outcomes(e, rg) & TRUE != 0)
        .map(|rg| rg as u32)
        .collect()
}
