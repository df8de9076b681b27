//! Parquet predicates (issue 16): the `x-anode-where` language of ListObjectsV2, and pruning
//! a file's row groups with the statistics its writer sent (`anode_pqindex::index_tail`).
//!
//! # The language
//!
//! SQL-style boolean conditions over a file's leaf columns. At most [`MAX_PREDICATE_BYTES`]
//! bytes, [`MAX_DEPTH`] levels of parentheses and `NOT`, [`MAX_ATOMS`] conditions and
//! [`MAX_IN_LIST`] values in one `IN` list. Keywords (`AND OR NOT IN IS NULL BETWEEN TRUE
//! FALSE`) are case-insensitive; column names are case-sensitive. Whitespace is space, tab,
//! CR and LF.
//!
//! ```text
//! predicate := or
//! or        := and ( OR and )*
//! and       := not ( AND not )*
//! not       := NOT not | '(' or ')' | condition
//! condition := column cmp literal | literal cmp column
//!            | column [NOT] IN '(' literal ( ',' literal )* ')'
//!            | column IS [NOT] NULL
//!            | column [NOT] BETWEEN literal AND literal
//! cmp       := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
//! column    := part ( '.' part )*        -- joined with '.', matched against the leaf path
//! part      := [A-Za-z_][A-Za-z0-9_]*    -- not a keyword (after a '.', keywords are names)
//!            | '"' ( any but '"' | '""' )+ '"'
//! literal   := integer | float | string | TRUE | FALSE
//! integer   := -?[0-9]+                  -- i64, or u64 above i64::MAX; else an error
//! float     := -?([0-9]+ '.' [0-9]* | '.' [0-9]+ | [0-9]+) ( [eE] [+-]? [0-9]+ )?
//!                                        -- with '.' or an exponent; finite doubles only
//! string    := '\'' ( any but '\'' | '\'\'' )* '\''
//! ```
//!
//! Precedence: `OR` < `AND` < `NOT` < conditions. `NULL` appears only in `IS [NOT] NULL`.
//! Comparing two columns or two literals is an error. Every error names the byte offset
//! where it was found and what was expected there ([`PredicateError`]).
//!
//! # Meaning
//!
//! Per row, with SQL's three-valued logic: a condition on a NULL value is UNKNOWN (except
//! `IS [NOT] NULL`); `NOT UNKNOWN` is UNKNOWN; `FALSE AND x` is FALSE, `TRUE OR x` is TRUE,
//! otherwise UNKNOWN absorbs; a row matches only when the predicate is TRUE.
//! `a BETWEEN l AND h` is `a >= l AND a <= h`; `a IN (l, ...)` is `a = l OR ...`; `a != l`
//! (and `<>`) is `NOT (a = l)`; `NOT BETWEEN` and `NOT IN` are the `NOT` of the positive form.
//! Numbers compare by exact value whatever their types (an INT column with `1.5`, a FLOAT
//! column with `3`). A float NaN is neither equal to, less than nor greater than anything,
//! so `=`, `<`, `<=`, `>`, `>=`, `BETWEEN` and `IN` are FALSE on it and `!=`, `NOT IN`,
//! `NOT BETWEEN` TRUE. Strings compare as unsigned bytes (UTF-8), booleans `FALSE < TRUE`.
//! A column name is the leaf's dotted path (`a.b` for field `b` of group `a`). There are no
//! date or time literals: DATE, TIME and TIMESTAMP columns compare as the integers they store
//! (days, or the column's unit since the epoch or midnight); DECIMAL columns by their value.
//!
//! # Pruning
//!
//! [`prune`] keeps every row group in which some row may make the predicate TRUE: it never
//! drops a row group holding a matching row. For each row group it computes the set of
//! outcomes (TRUE, FALSE, UNKNOWN) the predicate may take on some row, from the row count,
//! null and NaN counts and the min/max bounds (truncated bounds are still bounds); `NOT`
//! swaps TRUE and FALSE, `AND`/`OR` combine the sets of their parts pair by pair (an
//! over-approximation: parts are treated as independent), and the row group is kept when
//! TRUE is in the set. A condition the statistics cannot decide has every outcome, and then
//! never prunes: a column missing from the file (or named by two leaves), a repeated
//! column, a domain of `UNKNOWN`, a literal of another kind than the column (a string
//! against a number), a float literal against an integer column or an integer literal
//! against a float column when its magnitude is over 2^53 (where readers that convert one
//! side to a double disagree with exact comparison), a float literal against a DECIMAL
//! column. DECIMAL columns (integers with a scale) compare with integer literals exactly,
//! the literal scaled by 10^scale. FLOAT columns also consider a float literal rounded to
//! single precision, so readers that cast the literal to a 32-bit column's type are covered.
//! Unless the writer said a row group has no NaN (`nan_count` 0), a float column may hold
//! NaN rows. A row group of zero rows is never kept.

mod eval;
mod parse;

use anode_proto::ParquetStats;

/// The longest predicate text accepted.
pub const MAX_PREDICATE_BYTES: usize = 4096;
/// The deepest nesting of parentheses and `NOT`.
pub const MAX_DEPTH: usize = 64;
/// The most conditions (comparisons, `IN`, `IS NULL`, `BETWEEN`) in one predicate.
pub const MAX_ATOMS: usize = 256;
/// The most values in one `IN` list.
pub const MAX_IN_LIST: usize = 1000;

/// A comparison operator, with the column on its left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator with its sides swapped (`lit < col` is `col > lit`).
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A literal value of a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer that fits an i64.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A number with a fraction or an exponent (finite).
    Float(f64),
    /// A string.
    Str(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
}

/// A node of a parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All parts (two or more).
    And(Vec<Expr>),
    /// Any part (two or more).
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `column op lit` (a `lit op column` is stored flipped).
    Cmp {
        /// The dotted leaf path.
        column: String,
        /// The operator, column on its left.
        op: CmpOp,
        /// The right side.
        lit: Literal,
    },
    /// `column [NOT] IN (list)`.
    In {
        /// The dotted leaf path.
        column: String,
        /// `NOT IN`.
        negated: bool,
        /// One to [`MAX_IN_LIST`] values.
        list: Vec<Literal>,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The dotted leaf path.
        column: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `column [NOT] BETWEEN low AND high`.
    Between {
        /// The dotted leaf path.
        column: String,
        /// `NOT BETWEEN`.
        negated: bool,
        /// Lower bound (inclusive).
        low: Literal,
        /// Upper bound (inclusive).
        high: Literal,
    },
}

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    root: Expr,
}

impl Predicate {
    /// The predicate's syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.root
    }
}

/// A predicate that does not parse, with the byte position of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct PredicateError {
    /// Byte offset into the predicate text.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse a predicate (the language is in the module docs).
pub fn parse(text: &str) -> Result<Predicate, PredicateError> {
    parse::parse(text)
}

/// The row groups of a file, by its statistics, that may hold a row matching `p` (ascending;
/// empty = none may).
pub fn prune(p: &Predicate, stats: &ParquetStats) -> Vec<u32> {
    eval::prune(&p.root, stats)
}

#[cfg(test)]
mod tests;
