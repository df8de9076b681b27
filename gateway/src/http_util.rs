//! Pure HTTP-level S3 helpers: ranges, conditional requests, `response-*` overrides, metadata
//! headers, Content-MD5, continuation tokens, URL encodings and bucket/key addressing.

use std::collections::HashMap;

use base64::Engine;
use http::HeaderMap;

use crate::error::S3Error;

use anode_meta::validate;
pub use anode_meta::validate::{MAX_KEY_BYTES, MAX_USER_METADATA_BYTES};
/// Prefix of user-metadata headers.
pub const USER_META_PREFIX: &str = "x-amz-meta-";
/// Headers stored verbatim as system metadata and returned on GET/HEAD.
pub const SYSTEM_METADATA_HEADERS: [&str; 6] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-website-redirect-location",
];

// ---- query strings --------------------------------------------------------------------------

/// A decoded query string: pairs in request order (`?uploads` gives `("uploads", "")`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parse a raw query string: split on `&` and the first `=`, percent-decode both sides
    /// (`+` is a space, as in form encoding). Invalid UTF-8 is replaced.
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (query_decode(k), query_decode(v))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

fn query_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decode a request path (`+` stays a plus). Invalid UTF-8 is `InvalidArgument`.
pub fn decode_path(raw: &str) -> Result<String, S3Error> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| S3Error::InvalidArgument("the request path is not valid UTF-8".into()))
}

// ---- URL encodings --------------------------------------------------------------------------

/// The AWS SigV4 URI encoding: every byte except the RFC 3986 unreserved set
/// (`A-Z a-z 0-9 - _ . ~`) becomes `%XX` (upper-case hex); `/` is kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b'/' && keep_slash {
            out.push('/');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The encoding S3 uses for `encoding-type=url` listings: unreserved characters and `/` stay,
/// every other byte is `%XX` (a space is `%20`, a plus `%2B`, as S3 and RGW send them).
/// Inverse: [`url_decode_s3`].
pub fn url_encode_s3(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode [`url_encode_s3`] output (`+` is a space).
pub fn url_decode_s3(s: &str) -> String {
    query_decode(s)
}

// ---- continuation tokens --------------------------------------------------------------------

/// Version byte leading every continuation token.
const TOKEN_VERSION: u8 = 1;

/// An opaque ListObjectsV2 continuation token for "resume after `key`".
pub fn encode_continuation_token(key: &str) -> String {
    let mut raw = Vec::with_capacity(key.len() + 1);
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The key a continuation token resumes after; anything we did not issue is `InvalidArgument`.
pub fn decode_continuation_token(token: &str) -> Result<String, S3Error> {
    let bad = || S3Error::InvalidArgument("The continuation token provided is incorrect".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| bad())?;
    match raw.split_first() {
        Some((&TOKEN_VERSION, key)) => String::from_utf8(key.to_vec()).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

// ---- ranges ---------------------------------------------------------------------------------

/// The syntax of a `Range` header S3 honours (`bytes=a-b`, `bytes=a-`, `bytes=-n`), before
/// the object's size is known; `None` = a header S3 ignores (other units, several ranges,
/// malformed).
pub fn parse_range(header: Option<&str>) -> Option<anode_proto::ByteRangeSpec> {
    let set = strip_prefix_ci(header?.trim(), "bytes=")?;
    if set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let n = last.parse::<u64>().ok()?;
        return Some(anode_proto::ByteRangeSpec {
            suffix: Some(n),
            ..Default::default()
        });
    }
    let start = first.parse::<u64>().ok()?;
    let end = match last {
        "" => None,
        l => Some(l.parse::<u64>().ok().filter(|e| *e >= start)?),
    };
    Some(anode_proto::ByteRangeSpec {
        start: Some(start),
        end,
        suffix: None,
    })
}

/// Resolve a `Range` header against an object of `size` bytes to an inclusive `(start, end)`.
///
/// `Ok(None)` means serve the whole object: no header, a unit other than `bytes`, a
/// syntactically invalid spec (RFC 7233 says ignore it) or several ranges (S3 does not serve
/// multipart/byteranges; like S3 we answer with the whole object). `Err(InvalidRange)` (416) when
/// the single range does not overlap the object (first byte past the end, `bytes=-0`, or any
/// range of an empty object).
pub fn resolve_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(r) = parse_range(header) else {
        return Ok(None);
    };
    match (r.start, r.end, r.suffix) {
        (None, _, Some(n)) => {
            if n == 0 || size == 0 {
                return Err(S3Error::InvalidRange);
            }
            Ok(Some((size.saturating_sub(n), size - 1)))
        }
        (Some(start), end, _) => {
            if start >= size {
                return Err(S3Error::InvalidRange);
            }
            Ok(Some((start, end.unwrap_or(u64::MAX).min(size - 1))))
        }
        (None, _, None) => Ok(None),
    }
}

/// Resolve `x-amz-copy-source-range` (`bytes=first-last`, both required, inside the source).
pub fn resolve_copy_source_range(header: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let bad = || {
        S3Error::InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first \
             and last are the zero-based offsets of the first and last bytes to copy"
                .into(),
        )
    };
    let set = strip_prefix_ci(header.trim(), "bytes=").ok_or_else(bad)?;
    let (a, b) = set.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if start > end {
        return Err(bad());
    }
    if end >= size {
        return Err(S3Error::InvalidRange);
    }
    Ok((start, end))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The `Content-Range` value of a partial response.
pub fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{end}/{size}")
}

// ---- conditional requests -------------------------------------------------------------------

/// The conditions of a request (plain `If-*` headers, or the `x-amz-copy-source-if-*` ones).
/// Dates are Unix seconds; unparsable dates are dropped (RFC 7232 says ignore them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match` (raw list).
    pub if_match: Option<String>,
    /// `If-None-Match` (raw list).
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<u64>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<u64>,
}

/// What a conditional request evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CondOutcome {
    /// Serve normally.
    Proceed,
    /// 304 (GET/HEAD only).
    NotModified,
    /// 412.
    PreconditionFailed,
}

impl Conditions {
    /// Read `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` after
    /// `prefix` (`""` or `"x-amz-copy-source-"`).
    pub fn from_headers(headers: &HeaderMap, prefix: &str) -> Conditions {
        let get = |name: &str| {
            headers
                .get(format!("{prefix}{name}").as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let date = |name: &str| get(name).and_then(|d| parse_http_date_secs(&d));
        Conditions {
            if_match: get("if-match"),
            if_none_match: get("if-none-match"),
            if_modified_since: date("if-modified-since"),
            if_unmodified_since: date("if-unmodified-since"),
        }
    }

    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// Evaluate against the current object (`etag` unquoted, `mtime_ms`), in RFC 7232 order,
    /// which is also S3's: If-Match (else If-Unmodified-Since) can fail with 412; then
    /// If-None-Match (else If-Modified-Since) can answer 304. A true If-Match overrides a false
    /// If-Unmodified-Since; a present If-None-Match overrides If-Modified-Since.
    pub fn evaluate(&self, etag: &str, mtime_ms: u64) -> CondOutcome {
        let mtime_s = mtime_ms / 1000;
        if let Some(list) = &self.if_match {
            if !etag_list_matches(list, etag) {
                return CondOutcome::PreconditionFailed;
            }
        } else if let Some(t) = self.if_unmodified_since {
            if mtime_s > t {
                return CondOutcome::PreconditionFailed;
            }
        }
        if let Some(list) = &self.if_none_match {
            if etag_list_matches(list, etag) {
                return CondOutcome::NotModified;
            }
        } else if let Some(t) = self.if_modified_since {
            if mtime_s <= t {
                return CondOutcome::NotModified;
            }
        }
        CondOutcome::Proceed
    }
}

/// Whether a comma-separated ETag list (`"a", W/"b"`, or `*`) names `etag`.
pub fn etag_list_matches(list: &str, etag: &str) -> bool {
    let want = etag.trim_matches('"');
    list.split(',')
        .map(str::trim)
        .any(|e| e == "*" || e.trim_start_matches("W/").trim_matches('"') == want)
}

/// An HTTP date (RFC 7231 forms) as Unix seconds.
pub fn parse_http_date_secs(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// `Last-Modified` style HTTP date for milliseconds since the epoch.
pub fn http_date_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    httpdate::fmt_http_date(t)
}

// ---- headers --------------------------------------------------------------------------------

/// `response-*` query parameters of a GET/HEAD that override response headers, as
/// `(header name, value)` pairs.
pub fn response_overrides(query: &Query) -> Vec<(&'static str, String)> {
    const PAIRS: [(&str, &str); 6] = [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ];
    PAIRS
        .iter()
        .filter_map(|(param, header)| query.get(param).map(|v| (*header, v.to_string())))
        .collect()
}

/// The `x-amz-meta-*` headers as lower-case names without the prefix. Over 2 KiB in total (as
/// stored, measured by the shared validator the master applies too) is `MetadataTooLarge`.
/// Repeated headers are joined with `,`.
pub fn user_metadata(headers: &HeaderMap) -> Result<HashMap<String, String>, S3Error> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (name, value) in headers {
        let Some(short) = name.as_str().strip_prefix(USER_META_PREFIX) else {
            continue;
        };
        let value = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
        out.entry(short.to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    validate::user_metadata(&out)?;
    Ok(out)
}

/// The stored system headers (see [`SYSTEM_METADATA_HEADERS`]). The `aws-chunked` token is a
/// transfer detail and is removed from Content-Encoding.
pub fn system_metadata(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for name in SYSTEM_METADATA_HEADERS {
        let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let v = if name == "content-encoding" {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            v.trim().to_string()
        };
        if !v.is_empty() {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// Parse a `Content-MD5` value: base64 of exactly 16 bytes, else `InvalidDigest`.
pub fn parse_content_md5(value: &str) -> Result<[u8; 16], S3Error> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| S3Error::InvalidDigest)?;
    raw.try_into().map_err(|_| S3Error::InvalidDigest)
}

/// Request headers that ask for a guarantee Anode cannot give. Ignoring them would store the
/// object while the client believes it is encrypted (SSE-S3, SSE-C, SSE-KMS) or kept in
/// another storage class, so such requests are refused instead: `NotImplemented` for
/// encryption at rest (issue 17 adds it), `InvalidStorageClass` for a class other than
/// `STANDARD`. (Object lock headers are honoured since issue 14.)
pub fn refuse_unhonored_headers(headers: &HeaderMap) -> Result<(), S3Error> {
    const REFUSED_PREFIXES: [&str; 2] = [
        "x-amz-server-side-encryption-customer-",
        "x-amz-copy-source-server-side-encryption-customer-",
    ];
    const REFUSED: [&str; 3] = [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-context",
    ];
    for name in headers.keys().map(|n| n.as_str()) {
        if REFUSED_PREFIXES.iter().any(|p| name.starts_with(p)) || REFUSED.contains(&name) {
            return Err(S3Error::NotImplemented(format!(
                "A header you provided implies functionality that is not implemented ({name}: \
                 server-side encryption at rest)"
            )));
        }
    }
    match headers
        .get("x-amz-storage-class")
        .map(|v| v.to_str().unwrap_or_default().trim())
    {
        None | Some("STANDARD") => Ok(()),
        Some(_) => Err(S3Error::InvalidStorageClass),
    }
}

// ---- addressing -----------------------------------------------------------------------------

/// The bucket and key a request addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// Bucket, if any (`None` = service level).
    pub bucket: Option<String>,
    /// Key, if any (non-empty).
    pub key: Option<String>,
}

/// Resolve bucket and key from the `Host` header and the decoded path.
///
/// Virtual-hosted style when the host (port removed, case ignored) is `<bucket>.<domain>` for
/// one of `domains`: the bucket comes from the host and the whole path (minus its leading `/`)
/// is the key. Otherwise path style: `/<bucket>/<key>`. An empty key is no key.
pub fn resolve_target(host: Option<&str>, path: &str, domains: &[String]) -> Target {
    let host = host
        .map(strip_port)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path = path.strip_prefix('/').unwrap_or(path);
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    for domain in domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            continue;
        }
        if let Some(bucket) = host
            .strip_suffix(domain.as_str())
            .and_then(|h| h.strip_suffix('.'))
            .filter(|b| !b.is_empty())
        {
            return Target {
                bucket: Some(bucket.to_string()),
                key: nonempty(path),
            };
        }
    }
    match path.split_once('/') {
        Some((bucket, key)) => Target {
            bucket: nonempty(bucket),
            key: nonempty(key),
        },
        None => Target {
            bucket: nonempty(path),
            key: None,
        },
    }
}

fn strip_port(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Check an object key with the shared validator: 1 to 1024 bytes (`KeyTooLongError` above).
pub fn check_key(key: &str) -> Result<(), S3Error> {
    Ok(validate::object_key(key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unhonored_headers_are_refused() {
        let with = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            refuse_unhonored_headers(&h).map_err(|e| e.aws_code())
        };
        assert_eq!(with(&[]), Ok(()));
        assert_eq!(
            with(&[("x-amz-meta-a", "1"), ("content-type", "a/b")]),
            Ok(())
        );
        assert_eq!(with(&[("x-amz-storage-class", "STANDARD")]), Ok(()));
        assert_eq!(
            with(&[("x-amz-storage-class", "GLACIER")]),
            Err("InvalidStorageClass")
        );
        assert_eq!(with(&[("x-amz-object-lock-legal-hold", "ON")]), Ok(()));
        for refused in [
            vec![("x-amz-server-side-encryption", "AES256")],
            vec![("x-amz-server-side-encryption", "aws:kms")],
            vec![("x-amz-server-side-encryption", "aws:kms:dsse")],
            vec![("x-amz-server-side-encryption-aws-kms-key-id", "k")],
            vec![("x-amz-server-side-encryption-customer-algorithm", "AES256")],
            vec![("x-amz-server-side-encryption-customer-key-md5", "x")],
            vec![("x-amz-copy-source-server-side-encryption-customer-key", "x")],
        ] {
            assert_eq!(with(&refused), Err("NotImplemented"), "{refused:?}");
        }
    }

    #[test]
    fn ranges() {
        let size = 100;
        type Case<'a> = (Option<&'a str>, Result<Option<(u64, u64)>, S3Error>);
        let table: &[Case] = &[
            (None, Ok(None)),
            (Some("bytes=0-9"), Ok(Some((0, 9)))),
            (Some("bytes=10-"), Ok(Some((10, 99)))),
            (Some("bytes=-10"), Ok(Some((90, 99)))),
            (Some("bytes=-1000"), Ok(Some((0, 99)))),
            (Some("bytes=90-1000"), Ok(Some((90, 99)))),
            (Some("bytes=99-99"), Ok(Some((99, 99)))),
            (Some("Bytes = 5-6"), Ok(None)),
            (Some("BYTES=5-6"), Ok(Some((5, 6)))),
            (Some("bytes=100-"), Err(S3Error::InvalidRange)),
            (Some("bytes=100-200"), Err(S3Error::InvalidRange)),
            (Some("bytes=-0"), Err(S3Error::InvalidRange)),
            (Some("bytes=9-5"), Ok(None)),
            (Some("bytes=a-b"), Ok(None)),
            (Some("bytes=-"), Ok(None)),
            (Some("items=0-5"), Ok(None)),
            (Some("bytes=0-1,5-6"), Ok(None)),
            (Some("bytes=5"), Ok(None)),
        ];
        for (header, want) in table {
            assert_eq!(&resolve_range(*header, size), want, "{header:?}");
        }
        assert_eq!(
            resolve_range(Some("bytes=0-0"), 0),
            Err(S3Error::InvalidRange)
        );
        assert_eq!(
            resolve_range(Some("bytes=-5"), 0),
            Err(S3Error::InvalidRange)
        );
        assert_eq!(
            resolve_range(Some("bytes=0-"), 0),
            Err(S3Error::InvalidRange)
        );
    }

    #[test]
    fn copy_source_ranges() {
        assert_eq!(resolve_copy_source_range("bytes=0-9", 10), Ok((0, 9)));
        assert_eq!(
            resolve_copy_source_range("bytes=0-10", 10),
            Err(S3Error::InvalidRange)
        );
        for bad in ["bytes=5-", "bytes=-5", "0-5", "bytes=6-5", "bytes=x-y"] {
            assert_eq!(
                resolve_copy_source_range(bad, 10).unwrap_err().aws_code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }

    #[test]
    fn conditionals() {
        // Object: etag "e", modified at t=1000 s.
        let m = 1_000_000;
        let c =
            |im: Option<&str>, inm: Option<&str>, ims: Option<u64>, ius: Option<u64>| Conditions {
                if_match: im.map(String::from),
                if_none_match: inm.map(String::from),
                if_modified_since: ims,
                if_unmodified_since: ius,
            };
        use CondOutcome::*;
        let table = [
            (c(None, None, None, None), Proceed),
            (c(Some("\"e\""), None, None, None), Proceed),
            (c(Some("e"), None, None, None), Proceed),
            (c(Some("\"x\", \"e\""), None, None, None), Proceed),
            (c(Some("*"), None, None, None), Proceed),
            (c(Some("\"x\""), None, None, None), PreconditionFailed),
            (c(None, Some("\"e\""), None, None), NotModified),
            (c(None, Some("W/\"e\""), None, None), NotModified),
            (c(None, Some("*"), None, None), NotModified),
            (c(None, Some("\"x\""), None, None), Proceed),
            (c(None, None, Some(1000), None), NotModified),
            (c(None, None, Some(999), None), Proceed),
            (c(None, None, None, Some(1000)), Proceed),
            (c(None, None, None, Some(999)), PreconditionFailed),
            // If-Match true wins over a false If-Unmodified-Since.
            (c(Some("\"e\""), None, None, Some(999)), Proceed),
            // If-None-Match false (no match) overrides a true If-Modified-Since 304.
            (c(None, Some("\"x\""), Some(2000), None), Proceed),
            // If-None-Match matching -> 304 even if modified since.
            (c(None, Some("\"e\""), Some(10), None), NotModified),
            // 412 beats 304.
            (
                c(Some("\"x\""), Some("\"e\""), None, None),
                PreconditionFailed,
            ),
            (c(None, Some("\"e\""), None, Some(999)), PreconditionFailed),
        ];
        for (cond, want) in table {
            assert_eq!(cond.evaluate("e", m), want, "{cond:?}");
        }
    }

    #[test]
    fn conditions_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("if-match", "\"a\"".parse().unwrap());
        h.insert(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        h.insert("if-unmodified-since", "garbage".parse().unwrap());
        h.insert("x-amz-copy-source-if-none-match", "\"b\"".parse().unwrap());
        let c = Conditions::from_headers(&h, "");
        assert_eq!(c.if_match.as_deref(), Some("\"a\""));
        assert_eq!(c.if_modified_since, Some(784111777));
        assert_eq!(c.if_unmodified_since, None);
        let cs = Conditions::from_headers(&h, "x-amz-copy-source-");
        assert_eq!(cs.if_none_match.as_deref(), Some("\"b\""));
        assert!(cs.if_match.is_none());
        assert!(Conditions::default().is_empty());
        assert_eq!(
            http_date_ms(784_111_777_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn overrides_and_metadata() {
        let q = Query::parse("response-content-type=text%2Fplain&response-expires=x&other=1");
        assert_eq!(
            response_overrides(&q),
            vec![
                ("content-type", "text/plain".to_string()),
                ("expires", "x".to_string())
            ]
        );
        let mut h = HeaderMap::new();
        h.insert("x-amz-meta-color", " blue ".parse().unwrap());
        h.append("x-amz-meta-color", "red".parse().unwrap());
        h.insert("X-Amz-Meta-Size", "1".parse().unwrap());
        h.insert("content-encoding", "aws-chunked, gzip".parse().unwrap());
        h.insert("cache-control", "no-cache".parse().unwrap());
        h.insert("content-type", "a/b".parse().unwrap());
        let um = user_metadata(&h).unwrap();
        assert_eq!(um.get("color").map(String::as_str), Some("blue,red"));
        assert_eq!(um.get("size").map(String::as_str), Some("1"));
        let sm = system_metadata(&h);
        assert_eq!(sm.get("content-encoding").map(String::as_str), Some("gzip"));
        assert_eq!(
            sm.get("cache-control").map(String::as_str),
            Some("no-cache")
        );
        assert_eq!(sm.len(), 2);
        let mut only_chunked = HeaderMap::new();
        only_chunked.insert("content-encoding", "aws-chunked".parse().unwrap());
        assert!(system_metadata(&only_chunked).is_empty());
        let mut big = HeaderMap::new();
        big.insert("x-amz-meta-big", "x".repeat(2100).parse().unwrap());
        assert_eq!(user_metadata(&big), Err(S3Error::MetadataTooLarge));
    }

    #[test]
    fn content_md5() {
        assert_eq!(
            parse_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").map(hex::encode),
            Ok("d41d8cd98f00b204e9800998ecf8427e".to_string())
        );
        assert_eq!(parse_content_md5("abc"), Err(S3Error::InvalidDigest));
        assert_eq!(parse_content_md5("YWJj"), Err(S3Error::InvalidDigest));
    }

    #[test]
    fn queries() {
        let q = Query::parse("uploads&prefix=a%2Fb+c&max-keys=5&empty=");
        assert!(q.has("uploads"));
        assert_eq!(q.get("uploads"), Some(""));
        assert_eq!(q.get("prefix"), Some("a/b c"));
        assert_eq!(q.get("max-keys"), Some("5"));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get("nope"), None);
        assert_eq!(decode_path("/b/a%20b+c").unwrap(), "/b/a b+c");
        assert!(decode_path("/b/%FF").is_err());
    }

    #[test]
    fn addressing() {
        let d = vec!["s3.example.com".to_string(), "localhost".to_string()];
        let t = |host: Option<&str>, path: &str| {
            let t = resolve_target(host, path, &d);
            (t.bucket, t.key)
        };
        let s = |x: &str| Some(x.to_string());
        assert_eq!(t(Some("s3.example.com"), "/"), (None, None));
        assert_eq!(t(Some("s3.example.com"), "/b"), (s("b"), None));
        assert_eq!(t(Some("s3.example.com"), "/b/"), (s("b"), None));
        assert_eq!(t(Some("s3.example.com"), "/b/k/x/"), (s("b"), s("k/x/")));
        assert_eq!(t(Some("b.s3.example.com"), "/"), (s("b"), None));
        assert_eq!(
            t(Some("B.S3.Example.com:9000"), "/k//x"),
            (s("b"), s("k//x"))
        );
        assert_eq!(t(Some("my.b.localhost:9000"), "/k"), (s("my.b"), s("k")));
        assert_eq!(t(Some("127.0.0.1:9000"), "/b/k"), (s("b"), s("k")));
        assert_eq!(t(None, "/b/k"), (s("b"), s("k")));
        assert_eq!(t(Some("[::1]:9000"), "/b/k"), (s("b"), s("k")));
        assert_eq!(t(Some("xs3.example.com"), "/b/k"), (s("b"), s("k")));
    }

    #[test]
    fn keys() {
        assert_eq!(check_key(&"k".repeat(1025)), Err(S3Error::KeyTooLongError));
        assert_eq!(check_key(&"k".repeat(1024)), Ok(()));
        assert!(matches!(check_key(""), Err(S3Error::InvalidArgument(_))));
    }

    #[test]
    fn encodings() {
        assert_eq!(uri_encode("a b/c~d+é", true), "a%20b/c~d%2B%C3%A9");
        assert_eq!(uri_encode("a/b=", false), "a%2Fb%3D");
        assert_eq!(url_encode_s3("a b+c/ü"), "a%20b%2Bc/%C3%BC");
        assert_eq!(url_encode_s3("quux ab/"), "quux%20ab/");
        assert!(decode_continuation_token("!!").is_err());
        assert!(decode_continuation_token("").is_err());
        // Valid base64 with the wrong version byte.
        assert!(decode_continuation_token("AmE").is_err());
    }

    proptest! {
        #[test]
        fn continuation_token_round_trip(key in ".{0,200}") {
            let token = encode_continuation_token(&key);
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert_eq!(decode_continuation_token(&token).unwrap(), key);
        }

        #[test]
        fn url_encoding_round_trip(key in ".{0,200}") {
            let enc = url_encode_s3(&key);
            prop_assert!(enc.is_ascii());
            prop_assert!(!enc.contains(' '));
            prop_assert_eq!(url_decode_s3(&enc), key.clone());
            let uri = uri_encode(&key, true);
            prop_assert_eq!(decode_path(&uri).unwrap(), key);
        }

        #[test]
        fn resolved_ranges_are_inside(size in 0u64..1000, a in 0u64..1200, b in 0u64..1200, suffix in any::<bool>()) {
            let header = if suffix { format!("bytes=-{a}") } else { format!("bytes={a}-{b}") };
            if let Ok(Some((s, e))) = resolve_range(Some(&header), size) {
                prop_assert!(s <= e && e < size);
            }
        }
    }
}
