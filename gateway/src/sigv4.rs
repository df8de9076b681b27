//! AWS Signature Version 4 for S3, as pure functions.
//!
//! Verification is two steps around one lookup, so the async driver only fetches the secret:
//! 1. [`parse_auth`] reads the Authorization header or the presigned-URL query parameters
//!    (`Ok(None)` = anonymous);
//! 2. the driver looks up the secret of [`AuthParams::access_key`];
//! 3. [`verify`] checks the clock window (or the presigned expiry), rebuilds the canonical
//!    request exactly as AWS does and compares signatures in constant time. The result says how
//!    the body must be checked ([`PayloadMode`]) and, for `aws-chunked` bodies, carries the
//!    [`ChunkSigner`] that verifies each chunk signature (see [`crate::aws_chunked`]).
//!
//! Canonical request rules (S3 flavour): the path is URI-encoded once per segment (decoded
//! from the wire, re-encoded with the RFC 3986 unreserved set, `/` kept; S3 does not
//! double-encode or normalize), the query pairs are encoded and sorted by key then value, header
//! names are lower-case and values trimmed with inner runs of spaces collapsed.
//!
//! The signing side ([`sign_request`], [`presign`], [`ChunkSigner`]) shares the same canonical
//! code; it serves the tests and the load tools (`anode-tools`, `tools/src/s3http.rs`).

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::S3Error;
use crate::http_util::{decode_path, uri_encode, Query};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// `x-amz-content-sha256` value: the body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `x-amz-content-sha256` value: `aws-chunked` body with a signature per chunk.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// `x-amz-content-sha256` value: signed chunks followed by signed trailers.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// `x-amz-content-sha256` value: unsigned chunks followed by trailers.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Largest accepted difference between the request time and ours, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Longest presigned-URL lifetime (7 days), in seconds.
pub const MAX_PRESIGN_EXPIRES_SECS: i64 = 7 * 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// How the request body must be checked after the signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD`: take the body as is.
    Unsigned,
    /// The body's SHA-256 must equal this.
    Sha256([u8; 32]),
    /// `aws-chunked` body with chained chunk signatures (`trailer`: signed trailers follow).
    StreamingSigned {
        /// Whether trailers follow the final chunk.
        trailer: bool,
    },
    /// `aws-chunked` body without chunk signatures, trailers at the end.
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Whether the body uses `aws-chunked` framing.
    pub fn is_chunked(&self) -> bool {
        matches!(
            self,
            PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer
        )
    }
}

/// The signature parameters of a request, from the Authorization header or the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthParams {
    /// Access key id.
    pub access_key: String,
    /// Credential scope date (`YYYYMMDD`).
    pub scope_date: String,
    /// Credential scope region.
    pub region: String,
    /// Credential scope service (`s3`).
    pub service: String,
    /// Signed header names, lower-case, as listed.
    pub signed_headers: Vec<String>,
    /// Signature given (lower-case hex).
    pub signature: String,
    /// The request timestamp as given (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// The request timestamp, Unix seconds.
    pub request_time: i64,
    /// Presigned URL: lifetime in seconds (`None` = Authorization header).
    pub presigned_expires: Option<i64>,
    /// The payload hash that goes into the canonical request.
    pub payload_hash: String,
}

impl AuthParams {
    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.scope_date, self.region, self.service
        )
    }
}

/// The parts of an HTTP request that SigV4 covers.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// Method (`GET`, ...).
    pub method: &'a str,
    /// Path as received (percent-encoded).
    pub raw_path: &'a str,
    /// Decoded query pairs.
    pub query: &'a Query,
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// A successfully verified request.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The access key that signed it.
    pub access_key: String,
    /// How to check the body.
    pub payload: PayloadMode,
    /// For signed `aws-chunked` bodies: verifies chunk signatures, seeded with the request
    /// signature.
    pub chunk_signer: Option<ChunkSigner>,
}

// ---- parsing --------------------------------------------------------------------------------

/// Read the signature parameters: the Authorization header, else presigned query parameters,
/// else `Ok(None)` (anonymous). Malformed parameters are errors; so is an algorithm other than
/// `AWS4-HMAC-SHA256` (SigV2 requests are read by [`crate::sigv2::parse`] first: the driver
/// asks it before this).
pub fn parse_auth(headers: &HeaderMap, query: &Query) -> Result<Option<AuthParams>, S3Error> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| S3Error::AuthorizationHeaderMalformed("not ASCII".into()))?;
        return parse_header_auth(value, headers).map(Some);
    }
    if query.has("X-Amz-Algorithm") || query.has("X-Amz-Signature") {
        return parse_presigned(query).map(Some);
    }
    if query.has("Signature") && query.has("AWSAccessKeyId") {
        return Err(S3Error::NotImplemented(
            "AWS Signature Version 2 is not supported; use Signature Version 4".into(),
        ));
    }
    Ok(None)
}

fn parse_header_auth(value: &str, headers: &HeaderMap) -> Result<AuthParams, S3Error> {
    let malformed = |why: &str| S3Error::AuthorizationHeaderMalformed(why.to_string());
    let Some(rest) = value.trim().strip_prefix(ALGORITHM) else {
        if value.trim_start().starts_with("AWS ") {
            return Err(S3Error::NotImplemented(
                "AWS Signature Version 2 is not supported; use Signature Version 4".into(),
            ));
        }
        return Err(malformed("the algorithm must be AWS4-HMAC-SHA256"));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let signed = signed.ok_or_else(|| malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
    let (access_key, scope_date, region, service) = parse_credential(credential)
        .ok_or_else(|| malformed("the Credential is not AK/date/region/service/aws4_request"))?;
    let (amz_date, request_time) = header_date(headers)?;
    if !amz_date.starts_with(&scope_date) {
        return Err(malformed(
            "the credential date does not match the request date",
        ));
    }
    let payload_hash = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| S3Error::MissingSecurityHeader("x-amz-content-sha256".into()))?
        .to_string();
    payload_mode(&payload_hash)?;
    Ok(AuthParams {
        access_key,
        scope_date,
        region,
        service,
        signed_headers: parse_signed_headers(signed)?,
        signature: signature.to_ascii_lowercase(),
        amz_date,
        request_time,
        presigned_expires: None,
        payload_hash,
    })
}

fn parse_presigned(query: &Query) -> Result<AuthParams, S3Error> {
    let err = |m: &str| S3Error::AuthorizationQueryParametersError(m.to_string());
    let get = |name: &str| {
        query
            .get(name)
            .ok_or_else(|| err(&format!("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters (missing {name}).")))
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(err("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    let (access_key, scope_date, region, service) = parse_credential(get("X-Amz-Credential")?)
        .ok_or_else(|| err("Error parsing the X-Amz-Credential parameter"))?;
    let amz_date = get("X-Amz-Date")?.to_string();
    let request_time = parse_amz_date(&amz_date).ok_or_else(|| {
        err("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    if !amz_date.starts_with(&scope_date) {
        return Err(err("the credential date does not match X-Amz-Date"));
    }
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| err("X-Amz-Expires should be a number"))?;
    if expires < 0 {
        return Err(err("X-Amz-Expires must be non-negative"));
    }
    if expires == 0 {
        return Err(err("X-Amz-Expires must be greater than 0"));
    }
    if expires > MAX_PRESIGN_EXPIRES_SECS {
        return Err(err(
            "X-Amz-Expires must be less than a week (in seconds) that is 7 days",
        ));
    }
    let signed = parse_signed_headers(get("X-Amz-SignedHeaders")?)?;
    let payload_hash = query
        .get("X-Amz-Content-Sha256")
        .unwrap_or(UNSIGNED_PAYLOAD)
        .to_string();
    if payload_mode(&payload_hash)?.is_chunked() {
        return Err(err("streaming payloads cannot be presigned"));
    }
    Ok(AuthParams {
        access_key,
        scope_date,
        region,
        service,
        signed_headers: signed,
        signature: get("X-Amz-Signature")?.to_ascii_lowercase(),
        amz_date,
        request_time,
        presigned_expires: Some(expires),
        payload_hash,
    })
}

/// `AK/20130524/us-east-1/s3/aws4_request` -> (AK, date, region, service).
pub(crate) fn parse_credential(c: &str) -> Option<(String, String, String, String)> {
    // The access key itself cannot contain '/', so split from the right.
    let mut it = c.rsplitn(5, '/');
    let terminal = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let date = it.next()?;
    let ak = it.next()?;
    let ok = terminal == "aws4_request"
        && !ak.is_empty()
        && date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !region.is_empty()
        && service == "s3";
    ok.then(|| (ak.into(), date.into(), region.into(), service.into()))
}

fn parse_signed_headers(s: &str) -> Result<Vec<String>, S3Error> {
    let names: Vec<String> = s
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if !names.iter().any(|h| h == "host") {
        return Err(S3Error::AccessDenied(
            "the host header must be signed".into(),
        ));
    }
    Ok(names)
}

/// The request time from `x-amz-date` (ISO 8601 basic) or else `Date` (HTTP date).
fn header_date(headers: &HeaderMap) -> Result<(String, i64), S3Error> {
    if let Some(v) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) {
        let t = parse_amz_date(v.trim()).ok_or_else(|| {
            S3Error::AccessDenied(
                "AWS authentication requires a valid Date or x-amz-date header".into(),
            )
        })?;
        return Ok((v.trim().to_string(), t));
    }
    let date = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::http_util::parse_http_date_secs)
        .ok_or_else(|| {
            S3Error::AccessDenied(
                "AWS authentication requires a valid Date or x-amz-date header".into(),
            )
        })? as i64;
    Ok((format_amz_date(date), date))
}

/// `20130524T000000Z` -> Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let month = time::Month::try_from(num(4..6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(num(0..4)? as i32, month, num(6..8)? as u8).ok()?;
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Unix seconds -> `20130524T000000Z`.
pub fn format_amz_date(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What an `x-amz-content-sha256` value asks for; anything else is `InvalidArgument`.
pub fn payload_mode(value: &str) -> Result<PayloadMode, S3Error> {
    match value {
        UNSIGNED_PAYLOAD => Ok(PayloadMode::Unsigned),
        STREAMING_PAYLOAD => Ok(PayloadMode::StreamingSigned { trailer: false }),
        STREAMING_PAYLOAD_TRAILER => Ok(PayloadMode::StreamingSigned { trailer: true }),
        STREAMING_UNSIGNED_TRAILER => Ok(PayloadMode::StreamingUnsignedTrailer),
        v if v.starts_with("STREAMING-") => Err(S3Error::NotImplemented(format!(
            "x-amz-content-sha256 {v} is not supported"
        ))),
        v => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(v, &mut out).map_err(|_| {
                S3Error::InvalidArgument(
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.".into(),
                )
            })?;
            Ok(PayloadMode::Sha256(out))
        }
    }
}

// ---- verification ---------------------------------------------------------------------------

/// Verify `auth` over `req` with `secret` at `now` (Unix seconds). See the module docs.
pub fn verify(
    req: &RequestParts<'_>,
    auth: &AuthParams,
    secret: &str,
    now: i64,
) -> Result<Verified, S3Error> {
    check_time(auth, now)?;
    check_signed_headers(req.headers, auth)?;
    let canonical = canonical_request(req, auth)?;
    let key = signing_key(secret, &auth.scope_date, &auth.region, &auth.service);
    let expected = signature(
        &key,
        &string_to_sign(&auth.amz_date, &auth.scope(), &canonical),
    );
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(S3Error::SignatureDoesNotMatch);
    }
    let payload = payload_mode(&auth.payload_hash)?;
    let chunk_signer =
        matches!(payload, PayloadMode::StreamingSigned { .. }).then(|| ChunkSigner {
            key,
            amz_date: auth.amz_date.clone(),
            scope: auth.scope(),
            seed_signature: expected,
        });
    Ok(Verified {
        access_key: auth.access_key.clone(),
        payload,
        chunk_signer,
    })
}

/// The `x-amz-*` request headers the signature does not cover, sorted. With an Authorization
/// header every `x-amz-*` header must be in `SignedHeaders` (`x-amz-content-sha256` and
/// `x-amz-date` included). A presigned URL signs its parameters in the query, so any
/// `x-amz-*` header must be in `X-Amz-SignedHeaders`, except `x-amz-content-sha256` when it
/// repeats the payload hash the URL was signed with (clients add it; it changes nothing).
/// `x-amzn-*` (tracing) is not `x-amz-*`.
pub fn unsigned_amz_headers(headers: &HeaderMap, auth: &AuthParams) -> Vec<String> {
    let mut out: Vec<String> = headers
        .iter()
        .filter(|(name, value)| {
            let name = name.as_str();
            if !name.starts_with("x-amz-") || auth.signed_headers.iter().any(|s| s == name) {
                return false;
            }
            let harmless_hash = auth.presigned_expires.is_some()
                && name == "x-amz-content-sha256"
                && value.to_str().is_ok_and(|v| v.trim() == auth.payload_hash);
            !harmless_hash
        })
        .map(|(name, _)| name.as_str().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Refuse a request carrying `x-amz-*` headers the signature does not cover (see
/// [`unsigned_amz_headers`]), as S3 does: 403 AccessDenied with `<HeadersNotSigned>`. Without
/// this, the holder of a presigned PUT URL could add `x-amz-copy-source` and turn it into a
/// copy of any object the signer can read.
pub fn check_signed_headers(headers: &HeaderMap, auth: &AuthParams) -> Result<(), S3Error> {
    let unsigned = unsigned_amz_headers(headers, auth);
    if unsigned.is_empty() {
        return Ok(());
    }
    Err(S3Error::HeadersNotSigned(unsigned))
}

fn check_time(auth: &AuthParams, now: i64) -> Result<(), S3Error> {
    match auth.presigned_expires {
        None => {
            if (now - auth.request_time).abs() > MAX_CLOCK_SKEW_SECS {
                return Err(S3Error::RequestTimeTooSkewed);
            }
        }
        Some(expires) => {
            if auth.request_time - now > MAX_CLOCK_SKEW_SECS {
                return Err(S3Error::AccessDenied("Request is not valid yet".into()));
            }
            if now > auth.request_time + expires {
                return Err(S3Error::AccessDenied("Request has expired".into()));
            }
        }
    }
    Ok(())
}

/// The canonical request string.
pub fn canonical_request(req: &RequestParts<'_>, auth: &AuthParams) -> Result<String, S3Error> {
    let path = decode_path(req.raw_path)?;
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&uri_encode(if path.is_empty() { "/" } else { &path }, true));
    out.push('\n');
    out.push_str(&canonical_query(
        req.query,
        auth.presigned_expires.is_some(),
    ));
    out.push('\n');
    for name in &auth.signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(req.headers, name));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&auth.signed_headers.join(";"));
    out.push('\n');
    out.push_str(&auth.payload_hash);
    Ok(out)
}

/// Encoded pairs sorted by key then value; a presigned request leaves out its signature.
fn canonical_query(query: &Query, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .0
        .iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// All values of `name`, each trimmed with inner whitespace runs collapsed, joined by `,`.
pub(crate) fn canonical_header_value(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex sha256(canonical)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The derived signing key for a scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Hex HMAC-SHA256 of `string_to_sign` under `key`.
pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Compare two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---- chunk signatures -----------------------------------------------------------------------

/// Computes the chained signatures of an `aws-chunked` body (and its trailer).
#[derive(Clone)]
pub struct ChunkSigner {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    /// The request's own signature, which chunk 1 chains from.
    pub seed_signature: String,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("seed_signature", &self.seed_signature)
            .finish_non_exhaustive()
    }
}

impl ChunkSigner {
    /// A signer for the scope of `params`, seeded with `seed_signature`.
    pub fn new(params: &SignParams<'_>, seed_signature: String) -> ChunkSigner {
        ChunkSigner {
            key: signing_key(
                params.secret_key,
                &params.amz_date[..8],
                params.region,
                "s3",
            ),
            amz_date: params.amz_date.to_string(),
            scope: format!(
                "{}/{}/s3/aws4_request",
                &params.amz_date[..8],
                params.region
            ),
            seed_signature,
        }
    }

    /// The signature of a chunk whose data hashes to `data_sha256`, chained from `previous`.
    pub fn chunk_signature(&self, previous: &str, data_sha256: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(data_sha256)
        );
        signature(&self.key, &sts)
    }

    /// The signature of the trailer block (`name:value\n` lines), chained from the final
    /// chunk's signature.
    pub fn trailer_signature(&self, previous: &str, trailer: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{previous}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(Sha256::digest(trailer))
        );
        signature(&self.key, &sts)
    }
}

// ---- signing (tests, bench) -----------------------------------------------------------------

/// Credentials and time for signing a request.
#[derive(Clone, Copy, Debug)]
pub struct SignParams<'a> {
    /// Access key id.
    pub access_key: &'a str,
    /// Secret key.
    pub secret_key: &'a str,
    /// Region of the credential scope.
    pub region: &'a str,
    /// Timestamp, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// Sign a request in place: sets `x-amz-date` and `x-amz-content-sha256` (`payload_hash`), then
/// `Authorization` over every header present (which must include `host`). `raw_path` and
/// `raw_query` are as they will be sent. Returns the signature.
pub fn sign_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
    p: &SignParams<'_>,
) -> String {
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        h.insert(k, v.parse().expect("signing header values are ASCII"));
    };
    set(headers, "x-amz-date", p.amz_date);
    set(headers, "x-amz-content-sha256", payload_hash);
    let mut signed: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
    signed.retain(|h| h != "authorization");
    signed.sort();
    signed.dedup();
    let auth = sign_params(p, signed.clone(), payload_hash, None);
    let query = Query::parse(raw_query);
    let req = RequestParts {
        method,
        raw_path,
        query: &query,
        headers,
    };
    let sig = compute_signature(&req, &auth, p.secret_key);
    let value = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={sig}",
        p.access_key,
        auth.scope(),
        signed.join(";")
    );
    set(headers, "authorization", &value);
    sig
}

/// Presign a request: returns the full query string (the given `raw_query` plus the `X-Amz-*`
/// parameters and the signature). Only `host` is signed.
pub fn presign(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    host: &str,
    expires_secs: i64,
    p: &SignParams<'_>,
) -> String {
    let scope = format!("{}/{}/s3/aws4_request", &p.amz_date[..8], p.region);
    let mut q = raw_query.to_string();
    let params = [
        ("X-Amz-Algorithm", ALGORITHM.to_string()),
        ("X-Amz-Credential", format!("{}/{scope}", p.access_key)),
        ("X-Amz-Date", p.amz_date.to_string()),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    for (k, v) in params {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(&format!("{k}={}", uri_encode(&v, false)));
    }
    let mut headers = HeaderMap::new();
    headers.insert("host", host.parse().expect("host is ASCII"));
    let auth = sign_params(p, vec!["host".into()], UNSIGNED_PAYLOAD, Some(expires_secs));
    let query = Query::parse(&q);
    let req = RequestParts {
        method,
        raw_path,
        query: &query,
        headers: &headers,
    };
    let sig = compute_signature(&req, &auth, p.secret_key);
    format!("{q}&X-Amz-Signature={sig}")
}

fn sign_params(
    p: &SignParams<'_>,
    signed_headers: Vec<String>,
    payload_hash: &str,
    presigned_expires: Option<i64>,
) -> AuthParams {
    AuthParams {
        access_key: p.access_key.to_string(),
        scope_date: p.amz_date[..8].to_string(),
        region: p.region.to_string(),
        service: "s3".into(),
        signed_headers,
        signature: String::new(),
        amz_date: p.amz_date.to_string(),
        request_time: parse_amz_date(p.amz_date).unwrap_or(0),
        presigned_expires,
        payload_hash: payload_hash.to_string(),
    }
}

fn compute_signature(req: &RequestParts<'_>, auth: &AuthParams, secret: &str) -> String {
    let canonical = canonical_request(req, auth).unwrap_or_default();
    let key = signing_key(secret, &auth.scope_date, &auth.region, &auth.service);
    signature(
        &key,
        &string_to_sign(&auth.amz_date, &auth.scope(), &canonical),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    pub(crate) const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// 2013-05-24T00:00:00Z.
    const T0: i64 = 1_369_353_600;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn check(
        method: &str,
        path: &str,
        raw_query: &str,
        h: &HeaderMap,
        now: i64,
    ) -> Result<Verified, S3Error> {
        let query = Query::parse(raw_query);
        let auth = parse_auth(h, &query)?.expect("signed");
        assert_eq!(auth.access_key, AK);
        let req = RequestParts {
            method,
            raw_path: path,
            query: &query,
            headers: h,
        };
        verify(&req, &auth, SK, now)
    }

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(T0));
        assert_eq!(format_amz_date(T0), "20130524T000000Z");
        for bad in [
            "20130524T000000",
            "2013-05-24T000000Z",
            "20131324T000000Z",
            "2013052AT000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    /// AWS S3 documentation, "Example: GET Object".
    #[test]
    fn aws_get_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ]);
        let v = check("GET", "/test.txt", "", &h, T0 + 60).unwrap();
        assert_eq!(v.access_key, AK);
        let mut empty = [0u8; 32];
        hex::decode_to_slice(EMPTY_SHA256, &mut empty).unwrap();
        assert_eq!(v.payload, PayloadMode::Sha256(empty));
        assert!(v.chunk_signer.is_none());
        // The canonical request and string to sign match the documented ones.
        let query = Query::default();
        let auth = parse_auth(&h, &query).unwrap().unwrap();
        let req = RequestParts {
            method: "GET",
            raw_path: "/test.txt",
            query: &query,
            headers: &h,
        };
        let sts = string_to_sign(
            &auth.amz_date,
            &auth.scope(),
            &canonical_request(&req, &auth).unwrap(),
        );
        assert!(sts.ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
        // Clock skew.
        assert_eq!(
            check("GET", "/test.txt", "", &h, T0 + 16 * 60).unwrap_err(),
            S3Error::RequestTimeTooSkewed
        );
        assert_eq!(
            check("GET", "/test.txt", "", &h, T0 - 16 * 60).unwrap_err(),
            S3Error::RequestTimeTooSkewed
        );
        // Another path, another signature.
        assert_eq!(
            check("GET", "/test.txu", "", &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
    }

    /// AWS S3 documentation, "Example: PUT Object" (header-based auth).
    #[test]
    fn aws_put_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            (
                "x-amz-content-sha256",
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            ),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
        ]);
        check("PUT", "/test%24file.text", "", &h, T0).unwrap();
    }

    /// AWS S3 documentation, "Example: GET Bucket Lifecycle" and "Get Bucket (List Objects)".
    #[test]
    fn aws_query_examples() {
        let base = |sig: &str, signed: &str| {
            headers(&[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                (
                    "authorization",
                    &format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={sig}"),
                ),
            ])
        };
        let h = base(
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            "host;x-amz-content-sha256;x-amz-date",
        );
        check("GET", "/", "lifecycle", &h, T0).unwrap();
        let h = base(
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            "host;x-amz-content-sha256;x-amz-date",
        );
        check("GET", "/", "max-keys=2&prefix=J", &h, T0).unwrap();
        // Query order on the wire does not matter.
        check("GET", "/", "prefix=J&max-keys=2", &h, T0).unwrap();
        assert_eq!(
            check("GET", "/", "prefix=K&max-keys=2", &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
    }

    /// AWS S3 documentation, "Example: Presigned URL" (query-string auth).
    #[test]
    fn aws_presigned_example() {
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let v = check("GET", "/test.txt", q, &h, T0 + 3600).unwrap();
        assert_eq!(v.payload, PayloadMode::Unsigned);
        assert_eq!(
            check("GET", "/test.txt", q, &h, T0 + 86401).unwrap_err(),
            S3Error::AccessDenied("Request has expired".into())
        );
        assert_eq!(
            check("GET", "/test.txt", q, &h, T0 - 3600).unwrap_err(),
            S3Error::AccessDenied("Request is not valid yet".into())
        );
        for bad in [
            "604801",
            "0",
            "-7",
            "-0",
            "1e3",
            "",
            "soon",
            "99999999999999999999",
        ] {
            let q = q.replace("X-Amz-Expires=86400", &format!("X-Amz-Expires={bad}"));
            let e = check("GET", "/test.txt", &q, &h, T0).unwrap_err();
            assert_eq!(e.aws_code(), "AuthorizationQueryParametersError", "{bad}");
            assert_eq!(e.http_status(), http::StatusCode::BAD_REQUEST, "{bad}");
        }
        // The longest lifetime is accepted.
        let week = q.replace("X-Amz-Expires=86400", "X-Amz-Expires=604800");
        assert_eq!(
            check("GET", "/test.txt", &week, &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
        let missing = q.replace("X-Amz-Date=20130524T000000Z&", "");
        assert_eq!(
            check("GET", "/test.txt", &missing, &h, T0)
                .unwrap_err()
                .aws_code(),
            "AuthorizationQueryParametersError"
        );
    }

    /// AWS S3 documentation, "Signature Calculations for the Authorization Header: Transferring
    /// Payload in Multiple Chunks": the seed signature and the three chunk signatures.
    #[test]
    fn aws_streaming_example() {
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            ),
        ]);
        let v = check("PUT", "/examplebucket/chunkObject.txt", "", &h, T0).unwrap();
        assert_eq!(v.payload, PayloadMode::StreamingSigned { trailer: false });
        let signer = v.chunk_signer.unwrap();
        assert_eq!(
            signer.seed_signature,
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        );
        let s1 = signer.chunk_signature(&signer.seed_signature, &Sha256::digest([b'a'; 65536]));
        assert_eq!(
            s1,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
        let s2 = signer.chunk_signature(&s1, &Sha256::digest([b'a'; 1024]));
        assert_eq!(
            s2,
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
        );
        let s3 = signer.chunk_signature(&s2, &Sha256::digest([]));
        assert_eq!(
            s3,
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
        );
    }

    fn params() -> SignParams<'static> {
        SignParams {
            access_key: AK,
            secret_key: SK,
            region: "us-east-1",
            amz_date: "20130524T000000Z",
        }
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let cases = [
            (
                "GET",
                "/b/a%20b/c~d%2B",
                "prefix=a%2Fb&list-type=2&delimiter=%2F",
            ),
            ("PUT", "/b/%E2%9C%93/x", "partNumber=1&uploadId=abc%3D%3D"),
            ("POST", "/b", "delete"),
            ("GET", "/", ""),
        ];
        for (method, path, query) in cases {
            let mut h = headers(&[
                ("host", "127.0.0.1:9000"),
                ("x-amz-meta-a", "  two   spaces "),
                ("content-type", "text/plain"),
            ]);
            sign_request(method, path, query, &mut h, UNSIGNED_PAYLOAD, &params());
            check(method, path, query, &h, T0).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
            // Whitespace inside a header value is collapsed, so this still verifies.
            h.insert("x-amz-meta-a", "two spaces".parse().unwrap());
            check(method, path, query, &h, T0).unwrap();
            // Flip one byte of a signed header: mismatch.
            h.insert("content-type", "text/plaiN".parse().unwrap());
            assert_eq!(
                check(method, path, query, &h, T0).unwrap_err(),
                S3Error::SignatureDoesNotMatch
            );
        }
    }

    #[test]
    fn flipped_signature_byte_fails() {
        let mut h = headers(&[("host", "h")]);
        let sig = sign_request("GET", "/b/k", "", &mut h, EMPTY_SHA256, &params());
        let auth = h
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mut bad = sig.clone().into_bytes();
        bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        h.insert("authorization", auth.replace(&sig, &bad).parse().unwrap());
        assert_eq!(
            check("GET", "/b/k", "", &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
        // The wrong secret fails too.
        let mut h = headers(&[("host", "h")]);
        let mut p = params();
        p.secret_key = "other";
        sign_request("GET", "/b/k", "", &mut h, EMPTY_SHA256, &p);
        assert_eq!(
            check("GET", "/b/k", "", &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
    }

    #[test]
    fn presign_round_trip() {
        let q = presign(
            "GET",
            "/b/some%20key",
            "response-content-type=text%2Fplain",
            "h:9000",
            60,
            &params(),
        );
        let h = headers(&[("host", "h:9000")]);
        check("GET", "/b/some%20key", &q, &h, T0 + 30).unwrap();
        assert_eq!(
            check("GET", "/b/some%20key", &q, &h, T0 + 61).unwrap_err(),
            S3Error::AccessDenied("Request has expired".into())
        );
        assert_eq!(
            check("PUT", "/b/some%20key", &q, &h, T0).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
    }

    #[test]
    fn malformed_and_anonymous() {
        let q = Query::default();
        assert_eq!(parse_auth(&HeaderMap::new(), &q), Ok(None));
        let bad = [
            "AWS4-HMAC-SHA256 Credential=AK/2013/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab",
            "AWS4-HMAC-SHA256 SignedHeaders=host,Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,Signature=ab",
            "AWS4-HMAC-SHA512 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20130525/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab",
        ];
        for auth in bad {
            let h = headers(&[
                ("authorization", auth),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
            ]);
            assert_eq!(
                parse_auth(&h, &q).unwrap_err().aws_code(),
                "AuthorizationHeaderMalformed",
                "{auth}"
            );
        }
        let ok = "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab";
        let h = headers(&[("authorization", ok), ("x-amz-date", "20130524T000000Z")]);
        assert_eq!(
            parse_auth(&h, &q).unwrap_err().aws_code(),
            "MissingSecurityHeader"
        );
        let h = headers(&[
            ("authorization", ok),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        assert_eq!(parse_auth(&h, &q).unwrap_err().aws_code(), "AccessDenied");
        let h = headers(&[
            ("authorization", ok),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", "nothex"),
        ]);
        assert_eq!(
            parse_auth(&h, &q).unwrap_err().aws_code(),
            "InvalidArgument"
        );
        let no_host = ok.replace("SignedHeaders=host", "SignedHeaders=x-amz-date");
        let h = headers(&[
            ("authorization", no_host.as_str()),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        assert_eq!(parse_auth(&h, &q).unwrap_err().aws_code(), "AccessDenied");
        let h = headers(&[("authorization", "AWS AK:sig")]);
        assert_eq!(parse_auth(&h, &q).unwrap_err().aws_code(), "NotImplemented");
        // Date header instead of x-amz-date.
        let h = headers(&[
            ("authorization", ok),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ]);
        assert_eq!(parse_auth(&h, &q).unwrap().unwrap().request_time, T0);
    }

    #[test]
    fn payload_modes() {
        assert_eq!(payload_mode(UNSIGNED_PAYLOAD), Ok(PayloadMode::Unsigned));
        assert_eq!(
            payload_mode(STREAMING_PAYLOAD_TRAILER),
            Ok(PayloadMode::StreamingSigned { trailer: true })
        );
        assert_eq!(
            payload_mode(STREAMING_UNSIGNED_TRAILER),
            Ok(PayloadMode::StreamingUnsignedTrailer)
        );
        assert_eq!(
            payload_mode("STREAMING-AWS4-HMAC-SHA256-EVENTS")
                .unwrap_err()
                .aws_code(),
            "NotImplemented"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
