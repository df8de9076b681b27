//! The `x-anode-where` parser: text to [`Expr`] (grammar in the module docs of `pq`).

use super::{CmpOp, Expr, Literal, Predicate, PredicateError};
use super::{MAX_ATOMS, MAX_DEPTH, MAX_IN_LIST, MAX_PREDICATE_BYTES};

/// One lexical token.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: a keyword (case-insensitive) or a column name part.
    Word(String),
    /// A double-quoted column name part.
    Quoted(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Dot,
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of input".into(),
        Some(Tok::Word(w)) => match keyword(w) {
            Some(k) => k.to_string(),
            None => format!("name `{w}`"),
        },
        Some(Tok::Quoted(q)) => format!("name \"{q}\""),
        Some(Tok::Int(_) | Tok::UInt(_) | Tok::Float(_)) => "a number".into(),
        Some(Tok::Str(_)) => "a string".into(),
        Some(Tok::Op(op)) => format!("`{}`", op.as_str()),
        Some(Tok::LParen) => "`(`".into(),
        Some(Tok::RParen) => "`)`".into(),
        Some(Tok::Comma) => "`,`".into(),
        Some(Tok::Dot) => "`.`".into(),
    }
}

const KEYWORDS: [&str; 9] = [
    "AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE",
];

/// The keyword `w` spells (upper case), if any.
fn keyword(w: &str) -> Option<&'static str> {
    KEYWORDS.iter().copied().find(|k| k.eq_ignore_ascii_case(w))
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, PredicateError> {
    Err(PredicateError {
        position,
        message: message.into(),
    })
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Split `text` into tokens with their byte offsets.
fn lex(text: &str) -> Result<Vec<(usize, Tok)>, PredicateError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            b'=' => Tok::Op(CmpOp::Eq),
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 1;
                Tok::Op(CmpOp::Ne)
            }
            b'<' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 1;
                    Tok::Op(CmpOp::Le)
                }
                Some(b'>') => {
                    i += 1;
                    Tok::Op(CmpOp::Ne)
                }
                _ => Tok::Op(CmpOp::Lt),
            },
            b'>' if b.get(i + 1) == Some(&b'=') => {
                i += 1;
                Tok::Op(CmpOp::Ge)
            }
            b'>' => Tok::Op(CmpOp::Gt),
            b'\'' => {
                let (s, end) = quoted(text, i, b'\'')?;
                out.push((start, Tok::Str(s)));
                i = end;
                continue;
            }
            b'"' => {
                let (s, end) = quoted(text, i, b'"')?;
                if s.is_empty() {
                    return err(start, "empty quoted name");
                }
                out.push((start, Tok::Quoted(s)));
                i = end;
                continue;
            }
            b'0'..=b'9' | b'-' | b'.' if starts_number(b, i) => {
                let (t, end) = number(text, i)?;
                out.push((start, t));
                i = end;
                continue;
            }
            b'.' => Tok::Dot,
            _ if is_word_start(c) => {
                while i < b.len() && is_word_char(b[i]) {
                    i += 1;
                }
                out.push((start, Tok::Word(text[start..i].to_string())));
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return err(
                    i,
                    format!(
                        "unexpected character '{}' (expected a name, a literal, an operator or a parenthesis)",
                        ch.escape_debug()
                    ),
                );
            }
        };
        out.push((start, tok));
        i += 1;
    }
    Ok(out)
}

/// A quoted run starting at `i` (the opening `q`), with doubled `q` standing for one; returns
/// the content and the offset after the closing quote.
fn quoted(text: &str, i: usize, q: u8) -> Result<(String, usize), PredicateError> {
    let b = text.as_bytes();
    let mut s = String::new();
    let mut j = i + 1;
    let mut run = j;
    loop {
        match b.get(j) {
            None => {
                let what = if q == b'\'' { "string" } else { "quoted name" };
                return err(
                    i,
                    format!("unterminated {what} (expected a closing {})", q as char),
                );
            }
            Some(&c) if c == q => {
                s.push_str(&text[run..j]);
                if b.get(j + 1) == Some(&q) {
                    s.push(q as char);
                    j += 2;
                    run = j;
                } else {
                    return Ok((s, j + 1));
                }
            }
            Some(_) => j += 1,
        }
    }
}

fn starts_number(b: &[u8], i: usize) -> bool {
    let digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    match b[i] {
        b'-' => digit(i + 1) || (b.get(i + 1) == Some(&b'.') && digit(i + 2)),
        b'.' => digit(i + 1),
        _ => true,
    }
}

/// A number starting at `i`: `-? digits [. digits] [(e|E) [+-] digits]`, or `-? . digits ...`.
fn number(text: &str, i: usize) -> Result<(Tok, usize), PredicateError> {
    let b = text.as_bytes();
    let mut j = i;
    if b[j] == b'-' {
        j += 1;
    }
    let digits = |mut k: usize| {
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        k
    };
    j = digits(j);
    let mut float = false;
    if b.get(j) == Some(&b'.') {
        float = true;
        j = digits(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        float = true;
        let mut k = j + 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        let end = digits(k);
        if end == k {
            return err(j, "expected digits in the number's exponent");
        }
        j = end;
    }
    if b.get(j).is_some_and(|&c| is_word_char(c) || c == b'.') {
        return err(
            j,
            "unexpected character after a number (expected a space, an operator, `,` or `)`)",
        );
    }
    let s = &text[i..j];
    if float {
        return match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((Tok::Float(f), j)),
            _ => err(i, "number out of range (expected a finite double)"),
        };
    }
    if let Ok(v) = s.parse::<i64>() {
        return Ok((Tok::Int(v), j));
    }
    match s.parse::<u64>() {
        Ok(v) => Ok((Tok::UInt(v), j)),
        Err(_) => err(i, "integer out of range (expected -2^63 to 2^64-1)"),
    }
}

/// One side of a comparison.
enum Operand {
    Column(String),
    Lit(Literal),
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    atoms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn fail<T>(&self, expected: &str) -> Result<T, PredicateError> {
        err(
            self.offset(),
            format!("expected {expected}, found {}", describe(self.peek())),
        )
    }

    fn at_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        let hit = self.at_keyword(k);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_keyword(&mut self, k: &str) -> Result<(), PredicateError> {
        if self.eat_keyword(k) {
            Ok(())
        } else {
            self.fail(k)
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), PredicateError> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, PredicateError> {
        let mut parts = vec![self.and(depth)?];
        while self.eat_keyword("OR") {
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, PredicateError> {
        let mut parts = vec![self.not(depth)?];
        while self.eat_keyword("AND") {
            parts.push(self.not(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::And(parts)
        })
    }

    fn deeper(&self, depth: usize) -> Result<usize, PredicateError> {
        if depth >= MAX_DEPTH {
            return err(
                self.offset(),
                format!("nesting deeper than {MAX_DEPTH} (parentheses and NOT)"),
            );
        }
        Ok(depth + 1)
    }

    fn not(&mut self, depth: usize) -> Result<Expr, PredicateError> {
        if self.at_keyword("NOT") {
            let d = self.deeper(depth)?;
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(d)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            let d = self.deeper(depth)?;
            self.pos += 1;
            let e = self.or(d)?;
            self.expect(Tok::RParen, "`)` or AND or OR")?;
            return Ok(e);
        }
        self.atom()
    }

    /// A column reference or a literal; `None` when the next token starts neither.
    fn operand(&mut self) -> Result<Option<Operand>, PredicateError> {
        let Some((off, t)) = self.toks.get(self.pos).cloned() else {
            return Ok(None);
        };
        let lit = match t {
            Tok::Int(v) => Literal::Int(v),
            Tok::UInt(v) => Literal::UInt(v),
            Tok::Float(v) => Literal::Float(v),
            Tok::Str(s) => Literal::Str(s),
            Tok::Word(w) => match keyword(&w) {
                Some("TRUE") => Literal::Bool(true),
                Some("FALSE") => Literal::Bool(false),
                Some("NULL") => return err(
                    off,
                    "NULL is only allowed in IS [NOT] NULL (a comparison with NULL is never true)",
                ),
                Some(_) => return Ok(None),
                None => return self.column().map(|c| Some(Operand::Column(c))),
            },
            Tok::Quoted(_) => return self.column().map(|c| Some(Operand::Column(c))),
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(Operand::Lit(lit)))
    }

    /// `part (. part)*`, each part a bare word or a quoted name; joined with dots.
    fn column(&mut self) -> Result<String, PredicateError> {
        let mut path = String::new();
        loop {
            match self.peek() {
                Some(Tok::Word(w) | Tok::Quoted(w)) => path.push_str(w),
                _ => return self.fail("a column name part after `.`"),
            }
            self.pos += 1;
            if self.peek() != Some(&Tok::Dot) {
                return Ok(path);
            }
            self.pos += 1;
            path.push('.');
        }
    }

    fn literal(&mut self) -> Result<Literal, PredicateError> {
        let off = self.offset();
        match self.operand()? {
            Some(Operand::Lit(l)) => Ok(l),
            Some(Operand::Column(_)) => err(off, "expected a literal, found a column"),
            None => self.fail("a literal"),
        }
    }

    fn count_atom(&mut self, off: usize) -> Result<(), PredicateError> {
        self.atoms += 1;
        if self.atoms > MAX_ATOMS {
            return err(off, format!("more than {MAX_ATOMS} conditions"));
        }
        Ok(())
    }

    /// One condition: a comparison, IN, IS [NOT] NULL or BETWEEN.
    fn atom(&mut self) -> Result<Expr, PredicateError> {
        let start = self.offset();
        let Some(left) = self.operand()? else {
            return self.fail("a column, a literal, NOT or `(`");
        };
        self.count_atom(start)?;
        let op_off = self.offset();
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right_off = self.offset();
            let Some(right) = self.operand()? else {
                return self.fail("a column or a literal after the operator");
            };
            return match (left, right) {
                (Operand::Column(column), Operand::Lit(lit)) => Ok(Expr::Cmp { column, op, lit }),
                (Operand::Lit(lit), Operand::Column(column)) => Ok(Expr::Cmp {
                    column,
                    op: op.flipped(),
                    lit,
                }),
                (Operand::Column(_), Operand::Column(_)) => err(
                    right_off,
                    "expected a literal (comparing two columns is not supported)",
                ),
                (Operand::Lit(_), Operand::Lit(_)) => {
                    err(start, "expected a column on one side of the comparison")
                }
            };
        }
        let Operand::Column(column) = left else {
            return err(
                op_off,
                format!(
                    "expected a comparison operator after a literal, found {}",
                    describe(self.peek())
                ),
            );
        };
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull { column, negated });
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("IN") {
            return self.in_list(column, negated);
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.literal()?;
            self.expect_keyword("AND")?;
            let high = self.literal()?;
            return Ok(Expr::Between {
                column,
                negated,
                low,
                high,
            });
        }
        if negated {
            self.fail("IN or BETWEEN after NOT")
        } else {
            self.fail("a comparison operator, IN, IS or BETWEEN")
        }
    }

    fn in_list(&mut self, column: String, negated: bool) -> Result<Expr, PredicateError> {
        self.expect(Tok::LParen, "`(` after IN")?;
        let mut list = Vec::new();
        loop {
            if list.len() == MAX_IN_LIST {
                return err(
                    self.offset(),
                    format!("more than {MAX_IN_LIST} values in an IN list"),
                );
            }
            list.push(self.literal()?);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::RParen) => {
                    self.pos += 1;
                    return Ok(Expr::In {
                        column,
                        negated,
                        list,
                    });
                }
                _ => return self.fail("`,` or `)` in the IN list"),
            }
        }
    }
}

/// Parse `text` (see the module docs for the language).
pub(super) fn parse(text: &str) -> Result<Predicate, PredicateError> {
    if text.len() > MAX_PREDICATE_BYTES {
        return err(
            MAX_PREDICATE_BYTES,
            format!(
                "predicate of {} bytes (expected at most {MAX_PREDICATE_BYTES})",
                text.len()
            ),
        );
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        atoms: 0,
    };
    let root = p.or(0)?;
    if p.pos != p.toks.len() {
        return p.fail("AND, OR or end of input");
    }
    Ok(Predicate { root })
}
