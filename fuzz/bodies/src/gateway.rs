//! Gateway targets: SigV4 (header and presigned), the aws-chunked decoder, the XML request
//! parsers (the access-configuration documents and ACL headers too), addressing and routing, ranges and copy sources, and whole requests through
//! [`Gateway::handle`] over the in-memory backend.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anode_gateway::aws_chunked::{encode_signed_chunks, BodyDecoder, ChunkedDecoder};
use anode_gateway::checksum::PayloadChecksum;
use anode_gateway::handlers::parse_copy_source;
use anode_gateway::http_util::{
    self, decode_continuation_token, decode_path, encode_continuation_token, resolve_range,
    resolve_target, url_decode_s3, url_encode_s3, Conditions, Query,
};
use anode_gateway::sigv4::{self, ChunkSigner, RequestParts, SignParams};
use anode_gateway::testing::MemBackend;
use anode_gateway::{
    access_xml, acl_headers, lifecycle_xml, router, tagging, xml, Gateway, ServerConfig,
};
use anode_meta::authz::acl::MAX_GRANTS;
use anode_meta::authz::{Grantee, ObjectOwnership};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt, Full};

use crate::input::{Cursor, TextRequest};

/// Access key of the AWS SigV4 examples, the one every seed signs with.
pub const AK: &str = "AKIAIOSFODNN7EXAMPLE";
/// Its secret.
pub const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 2013-05-24T00:00:00Z, the time of the AWS examples, in seconds.
pub const T0: i64 = 1_369_353_600;
const AMZ_DATE: &str = "20130524T000000Z";
/// Virtual-hosted-style domain of the fuzzed gateway.
pub const DOMAIN: &str = "s3.local";

fn params() -> SignParams<'static> {
    SignParams {
        access_key: AK,
        secret_key: SK,
        region: "us-east-1",
        amz_date: AMZ_DATE,
    }
}

// ---- SigV4 ----------------------------------------------------------------------------------

/// Parse and verify the request's signature at the request's own time (so the clock check
/// passes and the canonical request is built) and at [`T0`].
fn parse_and_verify(r: &TextRequest, headers: &HeaderMap) {
    let query = Query::parse(&r.query);
    let Ok(Some(auth)) = sigv4::parse_auth(headers, &query) else {
        return;
    };
    let req = RequestParts {
        method: &r.method,
        raw_path: &r.path,
        query: &query,
        headers,
    };
    for now in [auth.request_time, T0] {
        if let Ok(v) = sigv4::verify(&req, &auth, SK, now) {
            assert_eq!(v.access_key, auth.access_key);
            assert_eq!(
                v.chunk_signer.is_some(),
                v.payload.is_chunked() && v.payload != sigv4::PayloadMode::StreamingUnsignedTrailer
            );
        }
    }
}

/// SigV4 `Authorization` header: parse and verify anything; and the signer/verifier round
/// trip: the request signed as a client signs it (every header) must verify.
pub fn sigv4_header(data: &[u8]) {
    let Some(r) = TextRequest::parse(data) else {
        return;
    };
    parse_and_verify(&r, &r.header_map());
    round_trip_header(&r);
}

fn round_trip_header(r: &TextRequest) {
    if r.method.is_empty() || decode_path(&r.path).is_err() {
        return;
    }
    let mut h = r.header_map();
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "date",
    ] {
        h.remove(name);
    }
    if !h.contains_key("host") {
        h.insert("host", HeaderValue::from_static("h"));
    }
    let sig = sigv4::sign_request(
        &r.method,
        &r.path,
        &r.query,
        &mut h,
        sigv4::UNSIGNED_PAYLOAD,
        &params(),
    );
    let query = Query::parse(&r.query);
    let auth = sigv4::parse_auth(&h, &query)
        .expect("a header we signed parses")
        .expect("a header we signed is not anonymous");
    assert_eq!(auth.signature, sig);
    let req = RequestParts {
        method: &r.method,
        raw_path: &r.path,
        query: &query,
        headers: &h,
    };
    if let Err(e) = sigv4::verify(&req, &auth, SK, T0) {
        panic!("a request signed by sign_request does not verify: {e:?}\n{h:?}");
    }
}

/// SigV4 presigned URLs: the query parameters (no Authorization header) parsed and verified;
/// and the round trip: the URL presigned as a client presigns it must verify.
pub fn sigv4_presigned(data: &[u8]) {
    let Some(mut r) = TextRequest::parse(data) else {
        return;
    };
    r.headers.retain(|(k, _)| k != "authorization");
    parse_and_verify(&r, &r.header_map());
    round_trip_presigned(&r);
}

fn round_trip_presigned(r: &TextRequest) {
    const OURS: [&str; 6] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ];
    if r.method.is_empty() || decode_path(&r.path).is_err() {
        return;
    }
    // The client's own query, without parameters the presigner adds.
    let raw: Vec<&str> = r
        .query
        .split('&')
        .filter(|p| {
            let k = Query::parse(p).0.first().map(|(k, _)| k.clone());
            !k.is_some_and(|k| OURS.contains(&k.as_str()) || k == "X-Amz-Content-Sha256")
        })
        .collect();
    let raw = raw.join("&");
    let h = r.header_map();
    let host = h
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("h")
        .to_string();
    let q = sigv4::presign(&r.method, &r.path, &raw, &host, 3600, &params());
    let mut headers = HeaderMap::new();
    headers.insert(
        "host",
        HeaderValue::from_str(&host).expect("a host from a header value"),
    );
    let query = Query::parse(&q);
    let auth = match sigv4::parse_auth(&headers, &query) {
        Ok(Some(a)) => a,
        other => panic!("a URL we presigned does not parse: {other:?}\n{q}"),
    };
    let req = RequestParts {
        method: &r.method,
        raw_path: &r.path,
        query: &query,
        headers: &headers,
    };
    if let Err(e) = sigv4::verify(&req, &auth, SK, T0 + 60) {
        panic!("a URL presigned by presign does not verify: {e:?}\n{q}");
    }
}

// ---- aws-chunked ----------------------------------------------------------------------------

/// The chunk signer of the AWS streaming example (made once: deriving its key costs four
/// HMACs).
fn signer() -> ChunkSigner {
    static SIGNER: std::sync::OnceLock<ChunkSigner> = std::sync::OnceLock::new();
    SIGNER
        .get_or_init(|| {
            ChunkSigner::new(
                &params(),
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
            )
        })
        .clone()
}

/// Most chunks the round-trip mode encodes (each costs an HMAC per encode and decode).
const MAX_ROUND_TRIP_CHUNKS: usize = 64;

/// What decoding produced: the error code (if any), the payload, the trailers we look at.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    result: Result<(), &'static str>,
    payload: Vec<u8>,
    checksum_trailer: Option<String>,
}

fn decode_in_pieces(mut d: BodyDecoder, body: &[u8], splits: &[usize]) -> Decoded {
    let mut out = Vec::new();
    let mut rest = Bytes::copy_from_slice(body);
    let mut result = Ok(());
    for &n in splits.iter().chain(std::iter::once(&usize::MAX)) {
        let piece = rest.split_to(n.min(rest.len()));
        if let Err(e) = d.push(piece, &mut out) {
            result = Err(e.aws_code());
            break;
        }
        if rest.is_empty() {
            break;
        }
    }
    if result.is_ok() {
        result = d.finish().map_err(|e| e.aws_code());
    }
    Decoded {
        result,
        payload: out.concat(),
        checksum_trailer: d.trailer("x-amz-checksum-crc32").map(str::to_string),
    }
}

/// The aws-chunked decoder (signed, signed with trailer, unsigned with trailer) on arbitrary
/// bytes fed in arbitrary splits: never a panic, and the outcome (error code, payload,
/// trailers) does not depend on how the body was split. A fourth mode frames fuzz data with
/// [`encode_signed_chunks`] and requires it to decode back exactly, in any split.
///
/// Input: mode byte, optional expected length (u16), split count and sizes, then the body.
pub fn aws_chunked(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    let expected = (mode & 4 != 0).then(|| u64::from(c.u16()));
    let nsplits = c.pick(16);
    let splits: Vec<usize> = (0..nsplits).map(|_| c.u16() as usize % 8192).collect();
    let decoder = || -> BodyDecoder {
        let (signer, trailer) = match mode & 3 {
            0 => (None, true),
            1 => (Some(signer()), false),
            _ => (Some(signer()), true),
        };
        BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(signer, trailer, expected)))
    };
    if mode & 3 == 3 {
        return round_trip_chunked(&mut c, &splits);
    }
    let body = c.rest();
    let whole = decode_in_pieces(decoder(), body, &[]);
    let split = decode_in_pieces(decoder(), body, &splits);
    assert_eq!(whole, split, "the outcome depends on the splits {splits:?}");
    if whole.result.is_ok() {
        if let Some(n) = expected {
            assert_eq!(whole.payload.len() as u64, n);
        }
    }
}

fn round_trip_chunked(c: &mut Cursor<'_>, splits: &[usize]) {
    let chunk_size = 1 + c.u16() as usize;
    let with_trailer = c.u8() & 1 == 1;
    let data = c.rest();
    let chunk_size = chunk_size.max(data.len().div_ceil(MAX_ROUND_TRIP_CHUNKS));
    // A stand-in trailer value: hex of a prefix of the data's digest.
    let crc = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(data)[..4]);
    let trailers: Vec<(&str, &str)> = if with_trailer {
        vec![("x-amz-checksum-crc32", crc.as_str())]
    } else {
        Vec::new()
    };
    let s = signer();
    let body = encode_signed_chunks(&s, data, chunk_size, &trailers);
    let d = || {
        BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(
            Some(signer()),
            with_trailer,
            Some(data.len() as u64),
        )))
    };
    for sp in [&[][..], splits] {
        let got = decode_in_pieces(d(), &body, sp);
        assert_eq!(
            got.result,
            Ok(()),
            "an encoded body does not decode (splits {sp:?})"
        );
        assert_eq!(got.payload, data);
        assert_eq!(
            got.checksum_trailer.as_deref(),
            with_trailer.then_some(crc.as_str())
        );
    }
}

// ---- XML request bodies ---------------------------------------------------------------------

/// `CompleteMultipartUpload` bodies.
pub fn xml_complete_multipart(data: &[u8]) {
    if let Ok(parts) = xml::parse_complete_multipart(data) {
        assert!(!parts.is_empty());
    }
}

/// `Delete` (DeleteObjects) bodies.
pub fn xml_delete(data: &[u8]) {
    if let Ok(req) = xml::parse_delete(data) {
        assert!((1..=1000).contains(&req.objects.len()));
    }
}

/// `CreateBucketConfiguration` bodies.
pub fn xml_create_bucket(data: &[u8]) {
    if let Ok(Some(loc)) = xml::parse_create_bucket(data) {
        assert!(!loc.is_empty());
    }
}

/// `LifecycleConfiguration` (PutBucketLifecycleConfiguration) bodies. Properties: a parsed
/// configuration has 1 to 1,000 rules, every one with an id, validates as the state machine
/// validates it, and renders to a document that parses back equal.
pub fn xml_lifecycle(data: &[u8]) {
    let Ok(cfg) = lifecycle_xml::parse_lifecycle(data) else {
        return;
    };
    if crate::debug() {
        eprintln!("xml_lifecycle: {cfg:?}");
    }
    assert!((1..=anode_meta::lifecycle::MAX_RULES).contains(&cfg.rules.len()));
    assert!(cfg.rules.iter().all(|r| !r.id.is_empty()));
    assert!(anode_meta::lifecycle::validate(&cfg).is_ok());
    let xml = lifecycle_xml::render_lifecycle(&cfg);
    assert_eq!(lifecycle_xml::parse_lifecycle(xml.as_bytes()), Ok(cfg));
}

/// `CORSConfiguration` (PutBucketCors) bodies, and the preflight and actual-response
/// decisions over what parsed. Properties: a parsed configuration has 1 to 100 rules, validates
/// as the state machine validates it, renders to a document that parses back equal; a
/// preflight from an origin the input's last line names either is refused or allows exactly
/// that origin (or `*`).
pub fn xml_cors(data: &[u8]) {
    let Ok(cfg) = anode_gateway::cors::parse_cors(data) else {
        return;
    };
    if crate::debug() {
        eprintln!("xml_cors: {cfg:?}");
    }
    assert!((1..=anode_meta::cors::MAX_RULES).contains(&cfg.rules.len()));
    assert!(anode_meta::cors::validate(&cfg).is_ok());
    let xml = anode_gateway::cors::render_cors(&cfg);
    assert_eq!(
        anode_gateway::cors::parse_cors(xml.as_bytes()),
        Ok(cfg.clone())
    );
    let origin = cfg.rules[0]
        .allowed_origins
        .first()
        .map(|o| o.replace('*', "x"))
        .unwrap_or_default();
    let ask = anode_gateway::cors::CorsAsk {
        origin: origin.clone(),
        request_method: Some("GET".into()),
        request_headers: cfg.rules[0].allowed_headers.join(","),
    };
    if let Ok(h) = anode_gateway::cors::preflight(Some(&cfg), Some(&ask)) {
        // Bytes, not text: an origin with non-ASCII characters (obs-text) is echoed as is.
        let allowed = h["access-control-allow-origin"].as_bytes();
        assert!(allowed == b"*" || allowed == origin.as_bytes());
    }
    let mut h = http::HeaderMap::new();
    anode_gateway::cors::decorate(&cfg, &ask, "PUT", &mut h);
}

/// `NotificationConfiguration` (PutBucketNotificationConfiguration) bodies. Properties: a
/// parsed configuration has at most 100 rules, each with an id and its target taken from its
/// ARN, validates as the state machine validates it, has no two overlapping rules, and renders
/// to a document that parses back equal (generated ids included).
pub fn xml_notification(data: &[u8]) {
    let Ok(cfg) = anode_gateway::notify_xml::parse_notification(data) else {
        return;
    };
    if crate::debug() {
        eprintln!("xml_notification: {cfg:?}");
    }
    assert!(cfg.rules.len() <= anode_meta::notify::MAX_RULES);
    for r in &cfg.rules {
        assert!(!r.id.is_empty());
        assert_eq!(
            anode_meta::notify::target_of_arn(&r.arn).as_ref(),
            Ok(&r.target)
        );
    }
    assert!(anode_meta::notify::validate_config(&cfg).is_ok());
    assert_eq!(anode_gateway::notify_xml::overlapping(&cfg), None);
    let xml = anode_gateway::notify_xml::render_notification(Some(&cfg));
    assert_eq!(
        anode_gateway::notify_xml::parse_notification(xml.as_bytes()),
        Ok(cfg)
    );
}

/// `Tagging` bodies (Put{Object,Bucket}Tagging) and, the input read as text, the
/// `x-amz-tagging` header. Properties: an accepted object tag set passes
/// `anode_meta::tagging::validate_object` (at most 10 tags, key 1..=128 and value 0..=256
/// characters, unique keys, no `aws:`), a bucket set `validate_bucket`; every accepted set
/// renders to a document that parses back to the same tags (sorted by key); header tags
/// validate and, re-encoded as a header, parse back equal.
pub fn xml_tagging(data: &[u8]) {
    let sorted = |mut t: Vec<anode_proto::Tag>| {
        t.sort_by(|a, b| a.key.cmp(&b.key));
        t
    };
    if let Ok(tags) = tagging::parse_object_tagging(data) {
        assert!(anode_meta::tagging::validate_object(&tags).is_ok());
        let doc = tagging::render_tagging(&tags);
        let back = tagging::parse_object_tagging(doc.as_bytes()).expect("rendered tags parse");
        assert_eq!(back, sorted(tags));
    }
    if let Ok(tags) = tagging::parse_bucket_tagging(data) {
        if crate::debug() {
            eprintln!("xml_tagging: {tags:?}");
        }
        assert!(anode_meta::tagging::validate_bucket(&tags).is_ok());
        let doc = tagging::render_tagging(&tags);
        let back = tagging::parse_bucket_tagging(doc.as_bytes()).expect("rendered tags parse");
        assert_eq!(back, sorted(tags));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tags) = tagging::parse_tagging_header(text) {
            assert!(anode_meta::tagging::validate_object(&tags).is_ok());
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            let header: Vec<String> = tags
                .iter()
                .map(|t| format!("{}={}", enc(&t.key), enc(&t.value)))
                .collect();
            assert_eq!(tagging::parse_tagging_header(&header.join("&")), Ok(tags));
        }
    }
}

/// The owner of the ACLs `xml_access` parses (a canonical id).
fn access_owner() -> String {
    anode_meta::authz::canonical_id("alice")
}

/// The access-configuration documents and the ACL request headers. The whole input, and the
/// body of its text-request form, go through the `AccessControlPolicy`,
/// `PublicAccessBlockConfiguration` and `OwnershipControls` parsers; the headers of the text
/// form through `x-amz-acl` / `x-amz-grant-*`, the PutBucketAcl choice between headers and
/// body, and `x-amz-object-ownership`.
///
/// Properties: a parsed ACL has the expected owner, at most 100 grants, validates, and renders
/// to a document that parses back equal; the other documents round-trip the same way; grants
/// parsed from headers are 1 to 100, written back as headers they parse equal; every ACL the
/// headers or a Put*Acl request yield validates and has the expected owner.
pub fn xml_access(data: &[u8]) {
    xml_access_documents(data);
    let Some(r) = TextRequest::parse(data) else {
        return;
    };
    xml_access_documents(&r.body);
    let owner = access_owner();
    let bucket_owner = anode_meta::authz::canonical_id("bob");
    let h = r.header_map();
    if let Ok(Some(o)) = acl_headers::parse_object_ownership(&h) {
        assert_eq!(ObjectOwnership::parse(o.as_str()), Some(o));
    }
    let Ok(parsed) = acl_headers::parse_acl_headers(&h) else {
        return;
    };
    if crate::debug() {
        eprintln!("xml_access headers: {parsed:?}");
    }
    if let acl_headers::AclHeaders::Grants(grants) = &parsed {
        assert!((1..=MAX_GRANTS).contains(&grants.len()));
        let mut again = HeaderMap::new();
        for (name, permission) in acl_headers::GRANT_HEADERS {
            let of: Vec<&Grantee> = grants
                .iter()
                .filter(|g| g.permission == permission)
                .map(|g| &g.grantee)
                .collect();
            if !of.is_empty() {
                let v = acl_headers::grant_header_value(of);
                again.insert(name, HeaderValue::from_str(&v).expect("header value"));
            }
        }
        // Parsed grants come header by header in GRANT_HEADERS order, so one header per
        // permission gives them back in the same order.
        assert_eq!(
            acl_headers::parse_acl_headers(&again),
            Ok(acl_headers::AclHeaders::Grants(grants.clone()))
        );
    }
    let acl = parsed
        .to_acl(&owner, &bucket_owner)
        .expect("header ACLs of canonical owners validate");
    assert_eq!(acl.is_none(), parsed.is_none());
    if let Some(acl) = acl {
        assert_eq!(acl.owner, owner);
        assert!(acl.validate().is_ok());
    }
    if let Ok(acl) = acl_headers::acl_for_put(&parsed, &r.body, &owner, &bucket_owner) {
        assert_eq!(acl.owner, owner);
        assert!(acl.validate().is_ok());
    }
}

fn xml_access_documents(body: &[u8]) {
    let owner = access_owner();
    let names = |id: &str| (id == owner).then(|| "alice".to_string());
    if let Ok(acl) = access_xml::parse_access_control_policy(body, &owner) {
        if crate::debug() {
            eprintln!("xml_access ACL: {acl:?}");
        }
        assert_eq!(acl.owner, owner);
        assert!(acl.grants.len() <= MAX_GRANTS);
        assert!(acl.validate().is_ok());
        let xml = access_xml::access_control_policy(&acl, &names);
        assert_eq!(
            access_xml::parse_access_control_policy(xml.as_bytes(), &owner),
            Ok(acl)
        );
    }
    if let Ok(pab) = access_xml::parse_public_access_block(body) {
        let xml = access_xml::public_access_block_configuration(&pab);
        assert_eq!(
            access_xml::parse_public_access_block(xml.as_bytes()),
            Ok(pab)
        );
    }
    if let Ok(o) = access_xml::parse_ownership_controls(body) {
        let xml = access_xml::ownership_controls(o);
        assert_eq!(access_xml::parse_ownership_controls(xml.as_bytes()), Ok(o));
    }
}

// ---- addressing, routing, header helpers ----------------------------------------------------

/// Method + host + path + query + headers -> operation, and every pure header/query helper
/// the handlers apply to a request: copy source, conditions, metadata, checksums, Content-MD5,
/// continuation tokens, the listing URL encoding.
pub fn s3_route(data: &[u8]) {
    let Some(r) = TextRequest::parse(data) else {
        return;
    };
    let Ok(method) = Method::from_bytes(r.method.as_bytes()) else {
        return;
    };
    let query = Query::parse(&r.query);
    let h = r.header_map();
    let Ok(path) = decode_path(&r.path) else {
        return;
    };
    let host = h.get("host").and_then(|v| v.to_str().ok());
    let target = resolve_target(host, &path, &[DOMAIN.to_string()]);
    assert!(target.bucket.as_deref() != Some(""));
    assert!(target.key.as_deref() != Some(""));
    let op = router::route(
        &method,
        target.bucket.as_deref(),
        target.key.as_deref(),
        &query,
        h.contains_key("x-amz-copy-source"),
    );
    if let Ok(op) = &op {
        let _ = op.name();
    }
    header_helpers(&h, &query);
}

fn header_helpers(h: &HeaderMap, query: &Query) {
    if let Some(v) = h.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) {
        check_copy_source(v);
    }
    for prefix in ["", "x-amz-copy-source-"] {
        let cond = Conditions::from_headers(h, prefix);
        let _ = cond.evaluate("0123456789abcdef0123456789abcdef", (T0 as u64) * 1000);
    }
    let _ = http_util::user_metadata(h);
    let _ = http_util::system_metadata(h);
    let _ = http_util::refuse_unhonored_headers(h);
    let _ = http_util::response_overrides(query);
    if let Ok(Some(mut sum)) = PayloadChecksum::from_headers(h) {
        sum.update(b"payload");
        let _ = sum.finish(h.get("x-fuzz-trailer").and_then(|v| v.to_str().ok()));
    }
    if let Some(v) = h.get("content-md5").and_then(|v| v.to_str().ok()) {
        let _ = http_util::parse_content_md5(v);
    }
    if let Some(t) = query.get("continuation-token") {
        if let Ok(key) = decode_continuation_token(t) {
            assert_eq!(
                decode_continuation_token(&encode_continuation_token(&key)),
                Ok(key)
            );
        }
    }
    for (k, v) in &query.0 {
        assert_eq!(&url_decode_s3(&url_encode_s3(k)), k);
        assert_eq!(&url_decode_s3(&url_encode_s3(v)), v);
    }
    let _ = router::parse_part_number(query.get("partNumber"));
}

fn check_copy_source(v: &str) {
    if let Ok((bucket, key)) = parse_copy_source(v) {
        assert!(!bucket.is_empty() && !key.is_empty());
        assert!(key.len() <= http_util::MAX_KEY_BYTES);
    }
}

/// `Range`, `x-amz-copy-source-range` and `x-amz-copy-source`.
///
/// Input lines: object size (decimal; else the first 8 bytes as a number), `Range` value,
/// `x-amz-copy-source-range` value, `x-amz-copy-source` value. A resolved range lies inside
/// the object and is not empty.
pub fn range_copy_source(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let size = first
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| Cursor::new(first.as_bytes()).u64());
    let range = lines.next();
    if let Ok(Some((s, e))) = resolve_range(range, size) {
        assert!(s <= e && e < size, "range {range:?} of {size} -> {s}-{e}");
        let _ = http_util::content_range(s, e, size);
    }
    if let Some(cr) = lines.next() {
        if let Ok((s, e)) = http_util::resolve_copy_source_range(cr, size) {
            assert!(s <= e && e < size, "copy range {cr:?} of {size} -> {s}-{e}");
        }
    }
    if let Some(src) = lines.next() {
        check_copy_source(src);
    }
}

// ---- whole requests -------------------------------------------------------------------------

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Most requests one input sends.
const MAX_REQUESTS: usize = 16;
/// How long one response body may take (the in-memory backend answers at once).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whole requests through [`Gateway::handle`] over the in-memory backend (the real state
/// machine): a sequence of requests in the text form, separated by lines `=====`. A request
/// without `Authorization` and without `X-Amz-Signature` is signed first (as a client
/// would: every header, the body's SHA-256 unless `x-amz-content-sha256` is given); with
/// `x-fuzz-chunk-size: N` and a streaming `x-amz-content-sha256`, the body is framed as
/// signed aws-chunked. Never a panic, and never a 500 (InternalError).
pub fn gateway_request(data: &[u8]) {
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let cfg = ServerConfig {
        domains: vec![DOMAIN.into()],
        ..ServerConfig::default()
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 as u64);
    let gw = Gateway::new(backend, cfg).with_clock(Arc::new(move || now));
    let requests: Vec<http::Request<Full<Bytes>>> = split_requests(data)
        .take(MAX_REQUESTS)
        .filter_map(|r| TextRequest::parse(r).and_then(build_request))
        .collect();
    runtime().block_on(async {
        for req in requests {
            let what = format!("{} {}", req.method(), req.uri());
            let resp = gw.handle(req).await;
            let status = resp.status();
            // A ListenBucketNotification answer streams until the client hangs up: its first
            // line is read, then it is dropped (hung up).
            let listening = status == http::StatusCode::OK
                && resp.headers().get("content-type").map(|v| v.as_bytes())
                    == Some(b"application/json".as_slice());
            let body = if listening {
                let mut b = resp.into_body();
                let first = tokio::time::timeout(RESPONSE_TIMEOUT, b.frame())
                    .await
                    .expect("a listen answer starts with a keep-alive");
                first
                    .and_then(|f| f.ok())
                    .and_then(|f| f.into_data().ok())
                    .unwrap_or_default()
            } else {
                let body = tokio::time::timeout(RESPONSE_TIMEOUT, resp.into_body().collect())
                    .await
                    .expect("a response body finishes");
                body.map(|b| b.to_bytes()).unwrap_or_default()
            };
            if crate::debug() {
                eprintln!("{what} -> {status} {}", String::from_utf8_lossy(&body));
            }
            // 501 (an unsupported feature) and 503 (SlowDown) are answers; 500 is a bug.
            assert!(
                status != http::StatusCode::INTERNAL_SERVER_ERROR,
                "{what} -> {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    });
}

fn split_requests(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    const SEP: &[u8] = b"\n=====\n";
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let d = rest?;
        match d.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                rest = Some(&d[i + SEP.len()..]);
                Some(&d[..i])
            }
            None => {
                rest = None;
                Some(d)
            }
        }
    })
}

fn build_request(r: TextRequest) -> Option<http::Request<Full<Bytes>>> {
    let method = Method::from_bytes(r.method.as_bytes()).ok()?;
    let uri: http::Uri = r.target().parse().ok()?;
    uri.path_and_query()?;
    let mut h = r.header_map();
    if !h.contains_key("host") {
        h.insert("host", HeaderValue::from_static(DOMAIN));
    }
    let mut body = r.body.clone();
    let presigned = r.query.contains("X-Amz-Signature");
    if !h.contains_key("authorization") && !presigned {
        body = sign(&r, &mut h)?;
    }
    if !h.contains_key("content-length") {
        // hyper hands the gateway the length the client framed the body with.
        h.insert("content-length", HeaderValue::from(body.len()));
    }
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    *req.headers_mut() = h;
    Some(req)
}

/// Sign `r` in place; the body to send.
fn sign(r: &TextRequest, h: &mut HeaderMap) -> Option<Vec<u8>> {
    use sha2::Digest;
    let given = h
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let chunk_size = h
        .get("x-fuzz-chunk-size")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    h.remove("x-fuzz-chunk-size");
    let payload = given.unwrap_or_else(|| hex::encode(sha2::Sha256::digest(&r.body)));
    let streaming_signed = payload.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    if streaming_signed && chunk_size.is_some() {
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        h.insert(
            "x-amz-decoded-content-length",
            HeaderValue::from_str(&r.body.len().to_string()).ok()?,
        );
    }
    let seed = sigv4::sign_request(&r.method, &r.path, &r.query, h, &payload, &params());
    match chunk_size {
        Some(n) if streaming_signed => {
            let s = ChunkSigner::new(&params(), seed);
            let trailers: &[(&str, &str)] = if payload.ends_with("TRAILER") {
                &[("x-amz-checksum-crc32", "AAAAAA==")]
            } else {
                &[]
            };
            Some(encode_signed_chunks(
                &s,
                &r.body,
                n.clamp(1, 1 << 20),
                trailers,
            ))
        }
        _ => Some(r.body.clone()),
    }
}

/// SigV2 (issue 15): a request in text form through `sigv2::parse` + `verify` (at a fixed time
/// and at its own `Expires`); then the same request signed by `sigv2::sign` in the header
/// form (its `Date` as sent or a fixed one) and in the query form must verify.
pub fn sigv2(data: &[u8]) {
    use anode_gateway::sigv2::{self, V2Request};
    let Some(r) = TextRequest::parse(data) else {
        return;
    };
    let h = r.header_map();
    let q = Query::parse(&r.query);
    let req = V2Request {
        method: &r.method,
        raw_path: &r.path,
        vhost_bucket: None,
        query: &q,
        headers: &h,
    };
    if let Ok(Some(p)) = sigv2::parse(&h, &q) {
        let _ = sigv2::verify(&req, &p, SK, T0);
        if let sigv2::V2Time::Expires(e) = p.time {
            let _ = sigv2::verify(&req, &p, SK, e);
        }
    }
    // Round trip, query form: the client's own query plus our three parameters.
    let own: Vec<&str> = r
        .query
        .split('&')
        .filter(|p| {
            let k = Query::parse(p).0.first().map(|(k, _)| k.clone());
            !k.is_some_and(|k| {
                matches!(
                    k.as_str(),
                    "AWSAccessKeyId" | "Signature" | "Expires" | "X-Amz-Algorithm"
                )
            })
        })
        .collect();
    let mut h = h.clone();
    h.remove("authorization");
    let base = own.join("&");
    let unsigned_q = if base.is_empty() {
        format!("AWSAccessKeyId={AK}&Expires={T0}")
    } else {
        format!("{base}&AWSAccessKeyId={AK}&Expires={T0}")
    };
    let q0 = Query::parse(&unsigned_q);
    let r0 = V2Request {
        method: &r.method,
        raw_path: &r.path,
        vhost_bucket: Some("b"),
        query: &q0,
        headers: &h,
    };
    let sig = sigv2::sign(SK, &sigv2::string_to_sign(&r0, &T0.to_string()));
    let enc = http_util::uri_encode(&sig, false);
    let q1 = Query::parse(&format!("{unsigned_q}&Signature={enc}"));
    let r1 = V2Request { query: &q1, ..r0 };
    let p = sigv2::parse(&h, &q1)
        .expect("our own query parses")
        .expect("and is SigV2");
    if let Err(e) = sigv2::verify(&r1, &p, SK, T0) {
        panic!("a URL signed by sigv2::sign did not verify: {e:?}");
    }
}

/// POST Object forms (issue 15): arbitrary bytes as a `multipart/form-data` body with the
/// boundary `XyZ`, fed whole and in pieces of the size the first byte says.
/// Property: the events (data merged per part) do not depend on the split, and part data
/// never contains the delimiter.
pub fn post_form(data: &[u8]) {
    use anode_gateway::post_form::{parse_all, FormEvent};
    let Some((&n, body)) = data.split_first() else {
        return;
    };
    let whole = parse_all("XyZ", &[body]);
    let size = (n as usize % 64) + 1;
    let pieces: Vec<&[u8]> = body.chunks(size).collect();
    let split = parse_all("XyZ", &pieces);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "events depend on the split ({size})"),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("the outcome depends on the split ({size}): {whole:?} vs {split:?}"),
    }
    if let Ok(events) = whole {
        for e in events {
            if let FormEvent::Data(d) = e {
                assert!(!contains(&d, b"\r\n--XyZ"), "part data holds the delimiter");
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// POST Object policy documents (issue 15): arbitrary bytes through `parse_policy_json` and,
/// as text, `parse_policy` (base64). Property: for a parsed policy whose conditions name each
/// field once, the form that satisfies every condition (each field set to its `eq` value or
/// `starts-with` prefix) passes `check_policy` before the expiration and is refused with
/// AccessDenied after it; a field no condition names is refused.
pub fn post_policy(data: &[u8]) {
    use anode_gateway::post_policy::{check_policy, parse_policy, parse_policy_json, Condition};
    let _ = parse_policy(&String::from_utf8_lossy(data));
    let Ok(p) = parse_policy_json(data) else {
        return;
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for c in &p.conditions {
        let (f, v) = match c {
            Condition::Eq { field, value } => (field, value),
            Condition::StartsWith { field, prefix } => (field, prefix),
            Condition::LengthRange { .. } => continue,
        };
        if fields.iter().any(|(n, _)| n == f) || f == "bucket" {
            return;
        }
        fields.push((f.clone(), v.clone()));
    }
    if p.expiration_ms == i64::MAX || p.expiration_ms == i64::MIN {
        return;
    }
    let before = check_policy(&p, &fields, "b", p.expiration_ms);
    assert!(before.is_ok(), "a satisfying form was refused: {before:?}");
    let after = check_policy(&p, &fields, "b", p.expiration_ms + 1);
    assert_eq!(after.unwrap_err().aws_code(), "AccessDenied");
    let mut extra = fields.clone();
    extra.push(("x-amz-meta-fuzz-unnamed".into(), String::new()));
    if !fields.iter().any(|(n, _)| n == "x-amz-meta-fuzz-unnamed") {
        let e = check_policy(&p, &extra, "b", p.expiration_ms).unwrap_err();
        assert_eq!(e.aws_code(), "AccessDenied");
    }
}
