//! S3 CORS rules (issue 15): validation of a bucket's configuration, and the one pure
//! decision of which rule (if any) allows a cross-origin request.
//!
//! S3's semantics: the rules are tried in order and the first one that allows the origin, the
//! method and every requested header wins. An origin or header pattern holds at most one `*`,
//! which matches any run of characters (also none); origins compare case-sensitively, header
//! names case-insensitively. The gateway answers preflight `OPTIONS` requests from the rule
//! found (no signature needed), and adds the rule's headers to actual responses.

use anode_proto::*;

/// Most rules in one configuration (S3's limit).
pub const MAX_RULES: usize = 100;
/// Longest rule id.
pub const MAX_ID_CHARS: usize = 255;
/// Longest origin, header or method entry we keep.
pub const MAX_ENTRY_CHARS: usize = 1024;
/// Most entries of one list in a rule (origins, methods, headers, expose headers).
pub const MAX_ENTRIES: usize = 100;
/// The methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// Why a configuration is refused (S3 answers these `400 InvalidRequest`, or `MalformedXML`
/// for a structurally incomplete rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// No rules at all.
    #[error("The XML you provided was not well-formed or did not validate against our published schema (no CORSRule)")]
    NoRules,
    /// More than [`MAX_RULES`] rules.
    #[error("The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules")]
    TooManyRules,
    /// A rule without an origin or a method.
    #[error("The XML you provided was not well-formed or did not validate against our published schema (a CORSRule needs an AllowedOrigin and an AllowedMethod)")]
    Incomplete,
    /// A method S3 does not allow in CORS rules.
    #[error("Found unsupported HTTP method in CORS config. Unsupported method is {0}")]
    BadMethod(String),
    /// More than one `*` in an origin.
    #[error("AllowedOrigin \"{0}\" can not have more than one wildcard.")]
    OriginWildcards(String),
    /// More than one `*` in a header.
    #[error("AllowedHeader \"{0}\" can not have more than one wildcard.")]
    HeaderWildcards(String),
    /// An id, entry or list over the limits.
    #[error("CORS rule over a limit: {0}")]
    TooLarge(&'static str),
    /// A control character in an id or entry (it could not be sent in a header or written
    /// back in XML).
    #[error("CORS rule with a control character in {0}")]
    BadCharacter(&'static str),
    /// A negative MaxAgeSeconds.
    #[error("MaxAgeSeconds must not be negative")]
    BadMaxAge,
}

/// Check a configuration as PutBucketCors must (the gateway and the state machine both run
/// this; the state machine's check is the one that counts).
pub fn validate(cfg: &CorsConfig) -> Result<(), CorsError> {
    if cfg.rules.is_empty() {
        return Err(CorsError::NoRules);
    }
    if cfg.rules.len() > MAX_RULES {
        return Err(CorsError::TooManyRules);
    }
    for r in &cfg.rules {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(CorsError::Incomplete);
        }
        if r.id.chars().count() > MAX_ID_CHARS {
            return Err(CorsError::TooLarge("ID longer than 255 characters"));
        }
        for list in [
            &r.allowed_origins,
            &r.allowed_methods,
            &r.allowed_headers,
            &r.expose_headers,
        ] {
            if list.len() > MAX_ENTRIES {
                return Err(CorsError::TooLarge("more than 100 entries in a list"));
            }
            if list.iter().any(|e| e.chars().count() > MAX_ENTRY_CHARS) {
                return Err(CorsError::TooLarge("an entry longer than 1024 characters"));
            }
        }
        if r.id.chars().any(char::is_control) {
            return Err(CorsError::BadCharacter("ID"));
        }
        if [
            &r.allowed_origins,
            &r.allowed_methods,
            &r.allowed_headers,
            &r.expose_headers,
        ]
        .iter()
        .any(|list| list.iter().any(|e| e.chars().any(char::is_control)))
        {
            return Err(CorsError::BadCharacter("an entry"));
        }
        if let Some(m) = r
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(CorsError::BadMethod(m.clone()));
        }
        if let Some(o) = r
            .allowed_origins
            .iter()
            .find(|o| o.matches('*').count() > 1)
        {
            return Err(CorsError::OriginWildcards(o.clone()));
        }
        if let Some(h) = r
            .allowed_headers
            .iter()
            .find(|h| h.matches('*').count() > 1)
        {
            return Err(CorsError::HeaderWildcards(h.clone()));
        }
        if r.max_age_seconds.is_some_and(|a| a < 0) {
            return Err(CorsError::BadMaxAge);
        }
    }
    Ok(())
}

/// Does `pattern` (at most one `*`, matching any run of characters) match `value`?
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The index of the first rule that allows a request from `origin` with `method` asking to
/// send `headers` (names from `Access-Control-Request-Headers`; any case), if any.
pub fn find_rule(cfg: &CorsConfig, origin: &str, method: &str, headers: &[&str]) -> Option<usize> {
    cfg.rules.iter().position(|r| {
        r.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                let h = h.trim().to_ascii_lowercase();
                h.is_empty()
                    || r.allowed_headers
                        .iter()
                        .any(|a| wildcard_match(&a.to_ascii_lowercase(), &h))
            })
    })
}

/// The names in an `Access-Control-Request-Headers` value (comma separated; empty entries
/// dropped).
pub fn split_header_list(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn cfg(rules: Vec<CorsRule>) -> CorsConfig {
        CorsConfig { rules }
    }

    #[test]
    fn wildcards_match_as_s3_documents() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "http://a"));
        assert!(wildcard_match("*suffix", "foo.suffix"));
        assert!(!wildcard_match("*suffix", "foo.suffix.get"));
        assert!(wildcard_match("start*end", "startend"));
        assert!(wildcard_match("start*end", "start12end"));
        assert!(!wildcard_match("start*end", "0start12end"));
        // The prefix and suffix may not overlap.
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("prefix*", "prefix"));
        assert!(!wildcard_match("prefix*", "bla.prefix"));
        assert!(wildcard_match("http://x.com", "http://x.com"));
        assert!(!wildcard_match("http://x.com", "http://X.com"));
    }

    #[test]
    fn first_rule_allowing_origin_method_and_headers_wins() {
        let c = cfg(vec![
            rule(&["*suffix"], &["GET"], &[]),
            rule(&["*.put"], &["PUT"], &["x-amz-*", "content-type"]),
            rule(&["*"], &["GET", "PUT"], &["*"]),
        ]);
        assert_eq!(find_rule(&c, "foo.suffix", "GET", &[]), Some(0));
        assert_eq!(
            find_rule(&c, "a.put", "PUT", &["X-Amz-Date", "Content-Type"]),
            Some(1)
        );
        // A header the second rule does not allow falls through to the third.
        assert_eq!(find_rule(&c, "a.put", "PUT", &["authorization"]), Some(2));
        assert_eq!(find_rule(&c, "foo.suffix", "DELETE", &[]), None);
        let strict = cfg(vec![rule(&["*"], &["GET"], &[])]);
        assert_eq!(
            find_rule(&strict, "o", "GET", &["x-amz-meta-header2"]),
            None
        );
        assert_eq!(find_rule(&strict, "o", "GET", &[" "]), Some(0));
    }

    #[test]
    fn validation_refuses_what_s3_refuses() {
        assert_eq!(validate(&cfg(vec![])), Err(CorsError::NoRules));
        assert_eq!(
            validate(&cfg(vec![rule(&["*"], &["PATCH"], &[])])),
            Err(CorsError::BadMethod("PATCH".into()))
        );
        assert_eq!(
            validate(&cfg(vec![rule(&["*.a.*"], &["GET"], &[])])),
            Err(CorsError::OriginWildcards("*.a.*".into()))
        );
        assert_eq!(
            validate(&cfg(vec![rule(&["*"], &["GET"], &["x-*-*"])])),
            Err(CorsError::HeaderWildcards("x-*-*".into()))
        );
        assert_eq!(
            validate(&cfg(vec![rule(&[], &["GET"], &[])])),
            Err(CorsError::Incomplete)
        );
        let mut r = rule(&["*"], &["GET"], &[]);
        r.max_age_seconds = Some(-1);
        assert_eq!(validate(&cfg(vec![r])), Err(CorsError::BadMaxAge));
        assert_eq!(
            validate(&cfg(vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1])),
            Err(CorsError::TooManyRules)
        );
        assert_eq!(
            validate(&cfg(vec![rule(&["*"], &["GET", "HEAD"], &["*"])])),
            Ok(())
        );
    }

    proptest! {
        /// A pattern with one `*` matches exactly the values made of its head, anything, and
        /// its tail; without `*`, only itself.
        #[test]
        fn wildcard_matches_head_any_tail(
            head in "[a-c.]{0,4}", mid in "[a-c.]{0,4}", tail in "[a-c.]{0,4}", other in "[a-c.]{0,10}"
        ) {
            let pattern = format!("{head}*{tail}");
            let value = format!("{head}{mid}{tail}");
            prop_assert!(wildcard_match(&pattern, &value));
            let expected = other.len() >= head.len() + tail.len()
                && other.starts_with(&head) && other.ends_with(&tail);
            prop_assert_eq!(wildcard_match(&pattern, &other), expected);
            prop_assert_eq!(wildcard_match(&value, &other), value == other);
        }
    }
}
