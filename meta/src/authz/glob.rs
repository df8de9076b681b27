//! IAM wildcard matching: `*` matches any run of characters (including none and `/`), `?`
//! exactly one character; everything else matches itself. Used for actions (after folding
//! case), resource ARNs and `StringLike` conditions (case-sensitive).
//!
//! Linear in practice: the classic greedy scan that backtracks only to the last `*`, which is
//! correct for this pattern language and `O(pattern x text)` at worst; both sides are bounded
//! by the 20 KiB policy limit and S3's 1 KiB keys.

/// Whether `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    // Over bytes, without allocating: `*` and `?` are ASCII, so they never fall inside a
    // multi-byte character; `?` and a star's backtrack step advance by a whole character.
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` seen in the pattern and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ti += char_len(t[ti]);
        } else if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the last star swallow one more character and retry after it.
            let next = st + char_len(t[st]);
            pi = sp + 1;
            ti = next;
            star = Some((sp, next));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character starting with byte `b` (1 for a continuation byte,
/// which a `&str` never starts a character with).
fn char_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Whether `pattern` matches some text that starts with `prefix` (the rest free): whether any
/// object key could complete `arn:aws:s3:::bucket/` into a match. Runs the pattern as a set of
/// positions over `prefix`; a position that survives can go on matching anything after it
/// (a pattern's tail always matches some text).
pub fn can_match_prefix(pattern: &str, prefix: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    // states[i]: pattern position i is reachable after the characters consumed so far.
    let mut states = vec![false; p.len() + 1];
    states[0] = true;
    close_stars(&p, &mut states);
    for c in prefix.chars() {
        let mut next = vec![false; p.len() + 1];
        for i in 0..p.len() {
            if !states[i] {
                continue;
            }
            match p[i] {
                '*' => next[i] = true,
                '?' => next[i + 1] = true,
                x if x == c => next[i + 1] = true,
                _ => {}
            }
        }
        close_stars(&p, &mut next);
        if !next.iter().any(|&s| s) {
            return false;
        }
        states = next;
    }
    states.iter().any(|&s| s)
}

/// A `*` may match nothing: a reachable `*` makes the position after it reachable.
fn close_stars(p: &[char], states: &mut [bool]) {
    for i in 0..p.len() {
        if states[i] && p[i] == '*' {
            states[i + 1] = true;
        }
    }
}

/// Whether `s` holds a wildcard character.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (p, t, want) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("?", "", false),
            ("?", "é", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbcd", false),
            ("a*b*c", "aXbYbZc", true),
            ("s3:get*", "s3:getobject", true),
            ("s3:*object", "s3:putobject", true),
            ("s3:*object", "s3:putobjectacl", false),
            ("arn:aws:s3:::b/a?c", "arn:aws:s3:::b/abc", true),
            ("arn:aws:s3:::b/a?c", "arn:aws:s3:::b/ac", false),
            ("**a", "a", true),
            ("a*", "a", true),
        ] {
            assert_eq!(matches(p, t), want, "{p:?} ~ {t:?}");
        }
    }

    #[test]
    fn prefix_table() {
        for (p, pre, want) in [
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/", true),
            ("arn:aws:s3:::b", "arn:aws:s3:::b/", false),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b/", true),
            ("arn:aws:s3:::c/*", "arn:aws:s3:::b/", false),
            ("arn:aws:s3:::?/x", "arn:aws:s3:::b/", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(can_match_prefix(p, pre), want, "{p:?} prefix {pre:?}");
        }
    }
}
