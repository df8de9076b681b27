//! The request path end to end (auth, routing, handlers, XML, body streaming) over the
//! in-memory backend, without sockets; plus one test through a real TCP listener.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};

use crate::aws_chunked::encode_signed_chunks;
use crate::server::{Gateway, ServerConfig};
use crate::sigv4::{self, ChunkSigner, SignParams, STREAMING_PAYLOAD, UNSIGNED_PAYLOAD};
use crate::testing::{MemBackend, NOW_MS};

const AK: &str = "AKTESTAKTEST0001";
const SK: &str = "secret/key";
const HOST: &str = "127.0.0.1:9000";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn code(&self) -> String {
        let t = self.text();
        t.split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("")
            .to_string()
    }
}

struct Harness {
    gw: Gateway,
    backend: Arc<MemBackend>,
}

fn amz_date() -> String {
    sigv4::format_amz_date((NOW_MS / 1000) as i64)
}

fn params(date: &str) -> SignParams<'_> {
    SignParams {
        access_key: AK,
        secret_key: SK,
        region: "us-east-1",
        amz_date: date,
    }
}

impl Harness {
    fn new() -> Harness {
        Self::with_config(ServerConfig {
            domains: vec!["s3.test".into()],
            ..Default::default()
        })
    }

    fn with_config(cfg: ServerConfig) -> Harness {
        let backend = Arc::new(MemBackend::with_key(AK, SK));
        let gw = Gateway::new(backend.clone(), cfg)
            .with_clock(Arc::new(|| UNIX_EPOCH + Duration::from_millis(NOW_MS)));
        Harness { gw, backend }
    }

    async fn raw(&self, req: Request<Full<Bytes>>) -> Reply {
        let resp = self.gw.handle(req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A signed request; `uri` is path plus optional `?query`, as sent.
    async fn send(&self, method: &str, uri: &str, extra: &[(&str, &str)], body: &[u8]) -> Reply {
        self.send_as((AK, SK), method, uri, extra, body).await
    }

    /// [`Harness::send`] signed with another key.
    async fn send_as(
        &self,
        (ak, sk): (&str, &str),
        method: &str,
        uri: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        headers.insert("content-length", body.len().to_string().parse().unwrap());
        for (k, v) in extra {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let hash = hex::encode(Sha256::digest(body));
        let date = amz_date();
        let p = SignParams {
            access_key: ak,
            secret_key: sk,
            ..params(&date)
        };
        sigv4::sign_request(method, path, query, &mut headers, &hash, &p);
        self.raw(build(method, uri, headers, body.to_vec())).await
    }

    async fn put(&self, uri: &str, body: &[u8]) -> Reply {
        self.send("PUT", uri, &[], body).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, &[], b"").await
    }
}

fn build(method: &str, uri: &str, headers: HeaderMap, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    *req.headers_mut() = headers;
    req
}

#[tokio::test]
async fn anonymous_and_bad_signatures_are_refused() {
    let h = Harness::new();
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let r = h.raw(build("GET", "/", headers, vec![])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "AccessDenied");
    let id = r.header("x-amz-request-id").to_string();
    assert_eq!(id.len(), 16);
    assert!(
        r.text().contains(&format!("<RequestId>{id}</RequestId>")),
        "{}",
        r.text()
    );
    // Anonymous HEAD: status only.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let r = h.raw(build("HEAD", "/bkt/k", headers, vec![])).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::FORBIDDEN, 0));
    // Signed with the wrong secret.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let date = amz_date();
    let mut p = params(&date);
    p.secret_key = "wrong";
    sigv4::sign_request("GET", "/", "", &mut headers, UNSIGNED_PAYLOAD, &p);
    let r = h.raw(build("GET", "/", headers, vec![])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
    );
    // Unknown key; the miss is cached. A malformed one costs no lookup at all.
    for ak in [
        "AKUNKNOWNUNKNOWN01",
        "NOPE",
        "AKUNKNOWNUNKNOWN01",
        "AK/../x",
        "AKUNKNOWNUNKNOWN01",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        let mut p = params(&date);
        p.access_key = ak;
        sigv4::sign_request("GET", "/", "", &mut headers, UNSIGNED_PAYLOAD, &p);
        let r = h.raw(build("GET", "/", headers, vec![])).await;
        assert_eq!(r.code(), "InvalidAccessKeyId", "{ak}");
    }
    // Good requests: the secret is cached too.
    assert_eq!(h.get("/").await.status, StatusCode::OK);
    assert_eq!(h.get("/").await.status, StatusCode::OK);
    assert_eq!(
        h.backend.key_lookups.load(Ordering::Relaxed),
        2,
        "one miss, one hit, both cached"
    );
    // A request 20 minutes off is refused.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let late = sigv4::format_amz_date((NOW_MS / 1000) as i64 + 1200);
    sigv4::sign_request(
        "GET",
        "/",
        "",
        &mut headers,
        UNSIGNED_PAYLOAD,
        &params(&late),
    );
    let r = h.raw(build("GET", "/", headers, vec![])).await;
    assert_eq!(r.code(), "RequestTimeTooSkewed");
}

#[tokio::test]
async fn buckets() {
    let h = Harness::new();
    assert_eq!(h.put("/Bad_Name", b"").await.code(), "InvalidBucketName");
    let r = h.put("/photos", b"").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("location"), "/photos");
    assert_eq!(
        h.put("/photos", b"").await.code(),
        "BucketAlreadyOwnedByYou"
    );
    let cfg = b"<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>";
    assert_eq!(h.put("/docs", cfg).await.status, StatusCode::OK);
    assert_eq!(h.put("/docs2", b"<bogus").await.code(), "MalformedXML");
    let r = h.get("/").await;
    assert!(r.text().contains("<Name>docs</Name>") && r.text().contains("<Name>photos</Name>"));
    assert_eq!(r.header("content-type"), "application/xml");
    let r = h.send("HEAD", "/photos", &[], b"").await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    let r = h.send("HEAD", "/nope", &[], b"").await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_FOUND, 0));
    assert!(h
        .get("/photos?location")
        .await
        .text()
        .contains("<LocationConstraint xmlns"));
    assert!(h
        .get("/photos?versioning")
        .await
        .text()
        .contains("<VersioningConfiguration"));
    assert!(h.get("/photos?acl").await.text().contains("FULL_CONTROL"));
    let r = h.get("/photos?policy").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NoSuchBucketPolicy")
    );
    assert_eq!(h.get("/nope?policy").await.code(), "NoSuchBucket");
    assert_eq!(
        h.get("/photos?logging").await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(h.put("/photos/k", b"x").await.status, StatusCode::OK);
    assert_eq!(
        h.send("DELETE", "/photos", &[], b"").await.code(),
        "BucketNotEmpty"
    );
    assert_eq!(
        h.send("DELETE", "/photos/k", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.send("DELETE", "/photos", &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get("/photos?list-type=2").await.code(), "NoSuchBucket");
}

#[tokio::test]
async fn objects_read_and_write() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    let r = h
        .send(
            "PUT",
            "/bkt/dir/hello%20world.txt",
            &[
                ("content-type", "text/plain"),
                ("x-amz-meta-color", "blue"),
                ("cache-control", "no-cache"),
                ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ],
            b"hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("etag"), "\"5d41402abc4b2a76b9719d911017c592\"");
    // Bad Content-MD5.
    let r = h
        .send(
            "PUT",
            "/bkt/x",
            &[("content-md5", "XUFAKrxLKna5cZ2REBfFkg==")],
            b"other",
        )
        .await;
    assert_eq!(r.code(), "BadDigest");
    assert!(h.backend.object("bkt", "x").is_none());
    // GET with headers.
    let r = h.get("/bkt/dir/hello%20world.txt").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"hello");
    assert_eq!(r.header("content-type"), "text/plain");
    assert_eq!(r.header("content-length"), "5");
    assert_eq!(r.header("x-amz-meta-color"), "blue");
    assert_eq!(r.header("cache-control"), "no-cache");
    assert_eq!(r.header("last-modified"), "Fri, 24 May 2013 00:00:00 GMT");
    assert_eq!(r.header("accept-ranges"), "bytes");
    // Virtual-hosted style reaches the same object.
    let mut headers = HeaderMap::new();
    headers.insert("host", "bkt.s3.test".parse().unwrap());
    let date = amz_date();
    sigv4::sign_request(
        "GET",
        "/dir/hello%20world.txt",
        "",
        &mut headers,
        UNSIGNED_PAYLOAD,
        &params(&date),
    );
    let r = h
        .raw(build("GET", "/dir/hello%20world.txt", headers, vec![]))
        .await;
    assert_eq!(&r.body[..], b"hello");
    // HEAD: headers, no body.
    let r = h.send("HEAD", "/bkt/dir/hello%20world.txt", &[], b"").await;
    assert_eq!(
        (r.status, r.header("content-length"), r.body.len()),
        (StatusCode::OK, "5", 0)
    );
    // Ranges.
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("range", "bytes=1-3")],
            b"",
        )
        .await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"ell"[..])
    );
    assert_eq!(r.header("content-range"), "bytes 1-3/5");
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("range", "bytes=-2")],
            b"",
        )
        .await;
    assert_eq!(&r.body[..], b"lo");
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("range", "bytes=9-")],
            b"",
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange")
    );
    // Conditionals.
    let etag = "\"5d41402abc4b2a76b9719d911017c592\"";
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("if-none-match", etag)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(r.header("etag"), etag);
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("if-match", "\"zzz\"")],
            b"",
        )
        .await;
    assert_eq!(r.code(), "PreconditionFailed");
    let r = h
        .send(
            "GET",
            "/bkt/dir/hello%20world.txt",
            &[("if-modified-since", "Sat, 25 May 2013 00:00:00 GMT")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // response-* overrides.
    let r = h.get("/bkt/dir/hello%20world.txt?response-content-type=application%2Fjson&response-content-disposition=attachment").await;
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("content-disposition"), "attachment");
    // Missing things.
    let r = h.get("/bkt/nope").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NoSuchKey")
    );
    assert!(r.text().contains("<Resource>/bkt/nope</Resource>"));
    assert_eq!(h.get("/nob/k").await.code(), "NoSuchBucket");
    // Conditional writes.
    let r = h
        .send(
            "PUT",
            "/bkt/dir/hello%20world.txt",
            &[("if-none-match", "*")],
            b"again",
        )
        .await;
    assert_eq!(r.code(), "PreconditionFailed");
    let r = h
        .send(
            "PUT",
            "/bkt/dir/hello%20world.txt",
            &[("if-match", etag)],
            b"again",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Empty objects.
    assert_eq!(h.put("/bkt/empty", b"").await.status, StatusCode::OK);
    let r = h.get("/bkt/empty").await;
    assert_eq!(
        (r.status, r.header("content-length"), r.body.len()),
        (StatusCode::OK, "0", 0)
    );
    // Keys over 1024 bytes.
    let long = format!("/bkt/{}", "k".repeat(1025));
    assert_eq!(h.put(&long, b"x").await.code(), "KeyTooLongError");
}

#[tokio::test]
async fn payload_checks() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    // The signed payload hash must match the body.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("content-length", "5".parse().unwrap());
    let date = amz_date();
    let wrong = hex::encode(Sha256::digest(b"other"));
    sigv4::sign_request("PUT", "/bkt/k", "", &mut headers, &wrong, &params(&date));
    let r = h
        .raw(build("PUT", "/bkt/k", headers, b"hello".to_vec()))
        .await;
    assert_eq!(r.code(), "XAmzContentSHA256Mismatch");
    assert!(h.backend.object("bkt", "k").is_none());
    // No length at all.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    sigv4::sign_request(
        "PUT",
        "/bkt/k",
        "",
        &mut headers,
        UNSIGNED_PAYLOAD,
        &params(&date),
    );
    let r = h
        .raw(build("PUT", "/bkt/k", headers, b"hello".to_vec()))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::LENGTH_REQUIRED, "MissingContentLength")
    );
    // Declared too large.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("content-length", (6u64 << 30).to_string().parse().unwrap());
    sigv4::sign_request(
        "PUT",
        "/bkt/k",
        "",
        &mut headers,
        UNSIGNED_PAYLOAD,
        &params(&date),
    );
    let r = h.raw(build("PUT", "/bkt/k", headers, vec![])).await;
    assert_eq!(r.code(), "EntityTooLarge");
}

/// SSE-C and SSE-KMS requests are refused, not stored unprotected; SSE-S3 is accepted.
/// Object lock headers on a bucket without object lock are refused (`InvalidArgument`, from
/// the state machine), never ignored.
#[tokio::test]
async fn unhonored_protection_headers_are_refused() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    for header in [
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        ("x-amz-server-side-encryption", "aws:kms"),
    ] {
        let r = h.send("PUT", "/bkt/k", &[header], b"hello").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            "{header:?}"
        );
        assert!(h.backend.object("bkt", "k").is_none(), "{header:?}");
    }
    let r = h
        .send(
            "PUT",
            "/bkt/k",
            &[("x-amz-object-lock-legal-hold", "ON")],
            b"hello",
        )
        .await;
    assert_eq!(r.code(), "InvalidArgument");
    assert!(h.backend.object("bkt", "k").is_none());
    let r = h
        .send(
            "PUT",
            "/bkt/k",
            &[("x-amz-server-side-encryption", "AES256")],
            b"hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert!(h.backend.object("bkt", "k").is_none());
    let r = h
        .send(
            "PUT",
            "/bkt/k",
            &[("x-amz-storage-class", "GLACIER")],
            b"hello",
        )
        .await;
    assert_eq!(r.code(), "InvalidStorageClass");
    let r = h
        .send(
            "PUT",
            "/bkt/k",
            &[
                ("x-amz-storage-class", "STANDARD"),
                ("x-amz-website-redirect-location", "/other"),
            ],
            b"hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.send("HEAD", "/bkt/k", &[], b"").await;
    assert_eq!(r.headers["x-amz-website-redirect-location"], "/other");
    // x-amz-expected-bucket-owner: the owner's canonical id, or 403.
    let owner = anode_meta::authz::canonical_id(&h.backend.head_bucket_owner("bkt"));
    let r = h
        .send(
            "HEAD",
            "/bkt/k",
            &[("x-amz-expected-bucket-owner", "111122223333")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = h
        .send(
            "HEAD",
            "/bkt/k",
            &[("x-amz-expected-bucket-owner", owner.as_str())],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A session token (STS) is refused, never ignored.
    let r = h
        .send(
            "GET",
            "/bkt/k",
            &[("x-amz-security-token", "FQoGZXIvYXdzE")],
            b"",
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "InvalidToken".into())
    );
    // x-amz-source-expected-bucket-owner: the copy source's owner, or 403 (nothing copied).
    let copy = |expected: &'static str| {
        [
            ("x-amz-copy-source", "/bkt/k"),
            ("x-amz-source-expected-bucket-owner", expected),
        ]
    };
    let r = h.send("PUT", "/bkt/copy", &copy("111122223333"), b"").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.backend.object("bkt", "copy").is_none());
    let owner: &'static str = Box::leak(owner.into_boxed_str());
    let r = h.send("PUT", "/bkt/copy", &copy(owner), b"").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .send(
            "GET",
            "/bkt/k",
            &[("x-amz-server-side-encryption-customer-algorithm", "AES256")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
}

/// `x-amz-checksum-*` as a header and as an unsigned-payload trailer: a mismatch is
/// `BadDigest` and commits nothing.
#[tokio::test]
async fn flexible_checksums() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    // CRC32("hello") = 0x3610a686.
    let (good, bad) = ("NhCmhg==", "NhCmhw==");
    let r = h
        .send("PUT", "/bkt/c", &[("x-amz-checksum-crc32", bad)], b"hello")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "BadDigest")
    );
    assert!(h.backend.object("bkt", "c").is_none());
    let r = h
        .send(
            "PUT",
            "/bkt/c",
            &[("x-amz-checksum-crc32", "xyz")],
            b"hello",
        )
        .await;
    assert_eq!(r.code(), "InvalidRequest");
    let r = h
        .send("PUT", "/bkt/c", &[("x-amz-checksum-crc32", good)], b"hello")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    h.send("DELETE", "/bkt/c", &[], b"").await;
    let trailer_put = |value: &'static str| {
        let h = &h;
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("host", HOST.parse().unwrap());
            headers.insert("content-encoding", "aws-chunked".parse().unwrap());
            headers.insert("x-amz-decoded-content-length", "5".parse().unwrap());
            headers.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
            let date = amz_date();
            sigv4::sign_request(
                "PUT",
                "/bkt/t",
                "",
                &mut headers,
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                &params(&date),
            );
            let body = format!("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:{value}\r\n\r\n");
            h.raw(build("PUT", "/bkt/t", headers, body.into_bytes()))
                .await
        }
    };
    let r = trailer_put(bad).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "BadDigest")
    );
    assert!(h.backend.object("bkt", "t").is_none(), "nothing committed");
    let r = trailer_put(good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.backend.object("bkt", "t").unwrap().inline_data, b"hello");
}

/// A streaming upload signed chunk by chunk, then the same with one corrupted byte.
#[tokio::test]
async fn aws_chunked_uploads() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let send = |corrupt: bool| {
        let data = data.clone();
        let h = &h;
        async move {
            let date = amz_date();
            let mut headers = HeaderMap::new();
            headers.insert("host", HOST.parse().unwrap());
            headers.insert("content-encoding", "aws-chunked".parse().unwrap());
            headers.insert(
                "x-amz-decoded-content-length",
                data.len().to_string().parse().unwrap(),
            );
            let seed = sigv4::sign_request(
                "PUT",
                "/bkt/big",
                "",
                &mut headers,
                STREAMING_PAYLOAD,
                &params(&date),
            );
            let signer = ChunkSigner::new(&params(&date), seed);
            let mut body = encode_signed_chunks(&signer, &data, 8192, &[]);
            if corrupt {
                body[20_000] ^= 1;
            }
            h.raw(build("PUT", "/bkt/big", headers, body)).await
        }
    };
    let r = send(false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let stored = h.backend.object("bkt", "big").unwrap();
    assert_eq!(stored.inline_data, data);
    assert!(
        !stored.system_metadata.contains_key("content-encoding"),
        "aws-chunked is not stored"
    );
    h.send("DELETE", "/bkt/big", &[], b"").await;
    let r = send(true).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
    );
    assert!(
        h.backend.object("bkt", "big").is_none(),
        "nothing committed"
    );
}

#[tokio::test]
async fn presigned_get() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    h.put("/bkt/k", b"data").await;
    let date = amz_date();
    let q = sigv4::presign("GET", "/bkt/k", "", HOST, 60, &params(&date));
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let r = h
        .raw(build(
            "GET",
            &format!("/bkt/k?{q}"),
            headers.clone(),
            vec![],
        ))
        .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"data"[..]));
    let old = sigv4::format_amz_date((NOW_MS / 1000) as i64 - 120);
    let q = sigv4::presign("GET", "/bkt/k", "", HOST, 60, &params(&old));
    let r = h
        .raw(build("GET", &format!("/bkt/k?{q}"), headers, vec![]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("Request has expired"), "{}", r.text());
}

/// A presigned PUT URL cannot be turned into a CopyObject (or gain metadata) by adding
/// unsigned `x-amz-*` headers; a header-signed request cannot either.
#[tokio::test]
async fn unsigned_amz_headers_are_refused() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    h.put("/bkt/secret", b"top secret").await;
    let date = amz_date();
    let q = sigv4::presign("PUT", "/bkt/upload", "", HOST, 60, &params(&date));
    let uri = format!("/bkt/upload?{q}");
    let with = |extra: &[(&str, &str)]| {
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        headers.insert("content-length", "2".parse().unwrap());
        for (k, v) in extra {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        build("PUT", &uri, headers, b"hi".to_vec())
    };
    let r = h.raw(with(&[("x-amz-copy-source", "/bkt/secret")])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    assert!(
        r.text().contains("which were not signed")
            && r.text()
                .contains("<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>"),
        "{}",
        r.text()
    );
    assert!(
        h.backend.object("bkt", "upload").is_none(),
        "nothing copied"
    );
    let r = h
        .raw(with(&[("x-amz-meta-a", "1"), ("x-amz-acl", "public-read")]))
        .await;
    assert!(
        r.text()
            .contains("<HeadersNotSigned>x-amz-acl, x-amz-meta-a</HeadersNotSigned>"),
        "{}",
        r.text()
    );
    // A streaming marker is not the URL's payload hash: refused too.
    let r = h
        .raw(with(&[("x-amz-content-sha256", STREAMING_PAYLOAD)]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // What S3 lets through: x-amz-content-sha256 repeating the URL's hash, and x-amzn-*.
    let r = h
        .raw(with(&[
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ("x-amzn-trace-id", "Root=1"),
        ]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.get("/bkt/upload").await.body, "hi");
    // Header auth: a header added after signing.
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("content-length", "0".parse().unwrap());
    sigv4::sign_request(
        "PUT",
        "/bkt/copy",
        "",
        &mut headers,
        sigv4::EMPTY_SHA256,
        &params(&date),
    );
    headers.insert("x-amz-copy-source", "/bkt/secret".parse().unwrap());
    let r = h.raw(build("PUT", "/bkt/copy", headers, vec![])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    assert!(h.backend.object("bkt", "copy").is_none(), "nothing copied");
}

/// Names and sizes S3 restricts, refused before anything reaches the cluster: NUL in keys,
/// system headers over 8 KiB, upload ids the master never issues.
#[tokio::test]
async fn keys_headers_and_upload_ids_are_checked() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    let r = h.put("/bkt/a%00b", b"x").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "InvalidArgument")
    );
    assert!(h.backend.object("bkt", "a\0b").is_none());
    let r = h.put("/bkt/tab%09ok", b"x").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "S3 accepts other control characters"
    );
    let long = "v".repeat(8192);
    let r = h
        .send("PUT", "/bkt/big-headers", &[("cache-control", &long)], b"x")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MetadataTooLarge")
    );
    assert!(h.backend.object("bkt", "big-headers").is_none());
    let r = h
        .send("POST", "/bkt/mp?uploads", &[("content-type", &long)], b"")
        .await;
    assert_eq!(r.code(), "MetadataTooLarge");
    let fits = "v".repeat(4000);
    let r = h
        .send("PUT", "/bkt/ok-headers", &[("cache-control", &fits)], b"x")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for id in [
        "abc1234def",
        "56788",
        &format!("{:032X}", 1),
        &format!("{:032x}", 99),
    ] {
        let r = h
            .send("DELETE", &format!("/bkt/mp?uploadId={id}"), &[], b"")
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "NoSuchUpload"),
            "{id}"
        );
    }
}

#[tokio::test]
async fn listings() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    for k in ["a/1", "a/2", "b", "c/x/1", "d e", "f"] {
        h.put(&format!("/bkt/{}", k.replace(' ', "%20")), k.as_bytes())
            .await;
    }
    let r = h.get("/bkt?list-type=2&delimiter=%2F").await;
    let t = r.text();
    assert!(t.contains("<KeyCount>5</KeyCount>"), "{t}");
    assert!(t.contains("<CommonPrefixes><Prefix>a/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>c/</Prefix></CommonPrefixes>"), "{t}");
    assert!(t.contains("<Key>d e</Key>"));
    // Page through with max-keys=2 and continuation tokens.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let uri = match &token {
            None => "/bkt?list-type=2&max-keys=2&delimiter=%2F&encoding-type=url".to_string(),
            Some(t) => format!("/bkt?list-type=2&max-keys=2&delimiter=%2F&encoding-type=url&continuation-token={t}"),
        };
        let t = h.get(&uri).await.text();
        for part in t.split("<Key>").skip(1).chain(t.split("<Prefix>").skip(2)) {
            seen.push(part.split('<').next().unwrap().to_string());
        }
        match t.split("<NextContinuationToken>").nth(1) {
            Some(rest) => token = Some(rest.split('<').next().unwrap().to_string()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b", "c/", "d%20e", "f"]);
    // v1 with marker.
    let t = h.get("/bkt?marker=b&max-keys=2").await.text();
    assert!(
        t.contains("<Marker>b</Marker>") && t.contains("<IsTruncated>true</IsTruncated>"),
        "{t}"
    );
    assert!(
        t.contains("<Key>c/x/1</Key>") && t.contains("<NextMarker>d e</NextMarker>"),
        "{t}"
    );
    // An administrator key without a user: the canonical id of the name "".
    let admins_id = anode_meta::authz::canonical_id("");
    assert!(t.contains(&format!(
        "<Owner><ID>{admins_id}</ID><DisplayName>AKTESTAKTEST0001</DisplayName>"
    )));
    // max-keys=0 and bad parameters.
    let t = h.get("/bkt?list-type=2&max-keys=0").await.text();
    assert!(t.contains("<KeyCount>0</KeyCount>") && t.contains("<IsTruncated>false</IsTruncated>"));
    assert_eq!(
        h.get("/bkt?list-type=2&max-keys=-1").await.code(),
        "InvalidArgument"
    );
    assert_eq!(
        h.get("/bkt?list-type=2&encoding-type=xml").await.code(),
        "InvalidArgument"
    );
    assert_eq!(
        h.get("/bkt?list-type=2&continuation-token=zzz")
            .await
            .code(),
        "InvalidArgument"
    );
    // Versions listing.
    let t = h.get("/bkt?versions&prefix=a%2F").await.text();
    assert!(
        t.contains("<Version><Key>a/1</Key><VersionId>null</VersionId>"),
        "{t}"
    );
}

#[tokio::test]
async fn delete_objects() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    h.put("/bkt/x", b"1").await;
    h.put("/bkt/y", b"2").await;
    let body = b"<Delete><Object><Key>x</Key></Object><Object><Key>nope</Key></Object><Object><Key>y</Key><VersionId>v9</VersionId></Object></Delete>";
    let r = h.send("POST", "/bkt?delete", &[], body).await;
    let t = r.text();
    assert_eq!(r.status, StatusCode::OK, "{t}");
    assert!(
        t.contains("<Deleted><Key>x</Key></Deleted><Deleted><Key>nope</Key></Deleted>"),
        "{t}"
    );
    assert!(
        t.contains("<Error><Key>y</Key><VersionId>v9</VersionId><Code>NoSuchVersion</Code>"),
        "{t}"
    );
    assert!(h.backend.object("bkt", "x").is_none());
    let quiet = b"<Delete><Quiet>true</Quiet><Object><Key>y</Key></Object></Delete>";
    let t = h
        .send(
            "POST",
            "/bkt?delete",
            &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            quiet,
        )
        .await;
    assert_eq!(t.code(), "BadDigest");
    let t = h.send("POST", "/bkt?delete", &[], quiet).await.text();
    assert!(
        !t.contains("Deleted") && h.backend.object("bkt", "y").is_none(),
        "{t}"
    );
    assert_eq!(
        h.send("POST", "/bkt?delete", &[], b"<Delete/>")
            .await
            .code(),
        "MalformedXML"
    );
}

#[tokio::test]
async fn copies() {
    let h = Harness::new();
    h.put("/src", b"").await;
    h.put("/dst", b"").await;
    h.send(
        "PUT",
        "/src/a%20b",
        &[("x-amz-meta-k", "v"), ("content-type", "text/x")],
        b"0123456789",
    )
    .await;
    let r = h
        .send("PUT", "/dst/c", &[("x-amz-copy-source", "/src/a%20b")], b"")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("<CopyObjectResult"));
    let c = h.backend.object("dst", "c").unwrap();
    assert_eq!(
        (c.inline_data.as_slice(), c.content_type.as_str()),
        (&b"0123456789"[..], "text/x")
    );
    assert_eq!(c.user_metadata.get("k").map(String::as_str), Some("v"));
    let r = h
        .send(
            "PUT",
            "/dst/d",
            &[
                ("x-amz-copy-source", "src/a%20b"),
                ("x-amz-metadata-directive", "REPLACE"),
                ("content-type", "a/b"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let d = h.backend.object("dst", "d").unwrap();
    assert!(d.user_metadata.is_empty() && d.content_type == "a/b");
    let r = h
        .send(
            "PUT",
            "/src/a%20b",
            &[("x-amz-copy-source", "src/a%20b")],
            b"",
        )
        .await;
    assert_eq!(r.code(), "InvalidRequest");
    let r = h
        .send(
            "PUT",
            "/dst/e",
            &[
                ("x-amz-copy-source", "src/a%20b"),
                ("x-amz-copy-source-if-match", "\"nope\""),
            ],
            b"",
        )
        .await;
    assert_eq!(r.code(), "PreconditionFailed");
    let r = h
        .send(
            "PUT",
            "/dst/e",
            &[("x-amz-copy-source", "src/missing")],
            b"",
        )
        .await;
    assert_eq!(r.code(), "NoSuchKey");
}

#[tokio::test]
async fn multipart_upload() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    let r = h
        .send(
            "POST",
            "/bkt/big?uploads",
            &[("content-type", "video/mp4")],
            b"",
        )
        .await;
    let t = r.text();
    let id = t
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    // Every part but the last is at least 5 MiB (the state machine's rule, as in S3).
    let p1 = [vec![b'.'; (5 << 20) - 6], b"hello ".to_vec()].concat();
    let e1 = h
        .put(&format!("/bkt/big?partNumber=1&uploadId={id}"), &p1)
        .await;
    assert_eq!(e1.status, StatusCode::OK, "{}", e1.text());
    let e1 = e1.header("etag").to_string();
    h.put("/bkt/src", b"xxworldxx").await;
    let r = h
        .send(
            "PUT",
            &format!("/bkt/big?partNumber=2&uploadId={id}"),
            &[
                ("x-amz-copy-source", "/bkt/src"),
                ("x-amz-copy-source-range", "bytes=2-6"),
            ],
            b"",
        )
        .await;
    assert!(r.text().contains("<CopyPartResult"), "{}", r.text());
    let e2 = r
        .text()
        .split("<ETag>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .replace("&quot;", "\"");
    let t = h.get(&format!("/bkt/big?uploadId={id}")).await.text();
    assert!(
        t.contains("<PartNumber>1</PartNumber>") && t.contains("<PartNumber>2</PartNumber>"),
        "{t}"
    );
    let t = h.get("/bkt?uploads").await.text();
    assert!(
        t.contains(&format!("<Key>big</Key><UploadId>{id}</UploadId>")),
        "{t}"
    );
    // Out of order.
    let bad = format!("<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part></CompleteMultipartUpload>");
    assert_eq!(
        h.send(
            "POST",
            &format!("/bkt/big?uploadId={id}"),
            &[],
            bad.as_bytes()
        )
        .await
        .code(),
        "InvalidPartOrder"
    );
    let good = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>");
    // A conditional completion: If-Match on a missing object fails (404 NoSuchKey, as S3
    // answers since its 2024 conditional writes) and keeps the upload.
    let complete = format!("/bkt/big?uploadId={id}");
    let r = h
        .send(
            "POST",
            &complete,
            &[("if-match", "\"0123\"")],
            good.as_bytes(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "NoSuchKey".into())
    );
    let r = h
        .send(
            "POST",
            &complete,
            &[("if-none-match", "*")],
            good.as_bytes(),
        )
        .await;
    assert!(
        r.text().contains("<CompleteMultipartUploadResult"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("-2&quot;</ETag>"), "{}", r.text());
    let r = h.get("/bkt/big").await;
    assert_eq!(
        (&r.body[..], r.header("content-type")),
        (&[&p1[..], b"world"].concat()[..], "video/mp4")
    );
    let r = h.get("/bkt/big?partNumber=2").await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"world"[..])
    );
    assert_eq!(r.header("x-amz-mp-parts-count"), "2");
    // A part the object does not have: 400 InvalidPart (as RGW and the Ceph s3-tests).
    assert_eq!(h.get("/bkt/big?partNumber=3").await.code(), "InvalidPart");
    // The upload is gone; abort of an unknown upload.
    assert_eq!(
        h.send("DELETE", &format!("/bkt/big?uploadId={id}"), &[], b"")
            .await
            .code(),
        "NoSuchUpload"
    );
    let t = h.send("POST", "/bkt/k2?uploads", &[], b"").await.text();
    let id2 = t
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        h.send("DELETE", &format!("/bkt/k2?uploadId={id2}"), &[], b"")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn slow_down_past_the_limit() {
    let h = Harness::with_config(ServerConfig {
        max_concurrency: 0,
        ..Default::default()
    });
    let r = h.get("/").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "SlowDown")
    );
    assert_eq!(r.header("retry-after"), "1");
}

/// Through a real listener: two requests on one keep-alive connection, then a drain.
#[tokio::test]
async fn over_tcp_with_keep_alive() {
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        grpc_tls: Default::default(),
        max_concurrency: 8,
        ..crate::GatewayArgs::local(vec![])
    };
    let g = crate::start_with_backend(args, backend, rx).await.unwrap();
    let stream = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let host = g.addr.to_string();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = sigv4::format_amz_date(now);
    for (method, uri, body) in [
        ("PUT", "/tcp", ""),
        ("PUT", "/tcp/k", "over tcp"),
        ("GET", "/tcp/k", ""),
        ("HEAD", "/tcp/k", ""),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        headers.insert("content-length", body.len().to_string().parse().unwrap());
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        sigv4::sign_request(method, uri, "", &mut headers, &hash, &params(&date));
        let req = build(method, uri, headers, body.as_bytes().to_vec());
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{method} {uri}");
        assert!(resp.headers().contains_key("x-amz-request-id"));
        let length = resp.headers().get("content-length").cloned();
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        if method == "HEAD" {
            assert_eq!(length.unwrap(), "8");
            assert!(got.is_empty());
        }
        if method == "GET" {
            assert_eq!(&got[..], b"over tcp");
        }
    }
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), g.done)
        .await
        .expect("drains")
        .unwrap()
        .unwrap();
}

/// Start a gateway over the in-memory backend on a loopback port (virtual-hosted style under
/// `localhost`) for the client smoke tests.
async fn smoke_gateway() -> (crate::RunningGateway, tokio::sync::watch::Sender<bool>) {
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        grpc_tls: Default::default(),
        domain: vec!["localhost".into()],
        max_concurrency: 64,
        ..crate::GatewayArgs::local(vec![])
    };
    (
        crate::start_with_backend(args, backend, rx).await.unwrap(),
        tx,
    )
}

/// Run a smoke script against `endpoint`; panics with its output on failure.
async fn run_smoke(program: &str, script: &str, envs: &[(&str, String)], ok_line: &str) {
    let out = tokio::process::Command::new(program)
        .arg(script)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_ACCESS_KEY_ID", AK)
        .env("AWS_SECRET_ACCESS_KEY", SK)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .await
        .expect("the smoke script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(ok_line),
        "{script}: {text}"
    );
}

/// Real S3 client compatibility: boto3 against a gateway over the in-memory backend, path and
/// virtual-hosted style. `cargo test -p anode-gateway smoke -- --ignored`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3 with boto3"]
async fn boto3_smoke() {
    let (g, _tx) = smoke_gateway().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/boto3_smoke.py");
    for style in ["path", "virtual"] {
        let host = if style == "path" {
            "127.0.0.1"
        } else {
            "localhost"
        };
        let envs = [
            ("S3_ENDPOINT", format!("http://{host}:{}", g.addr.port())),
            ("S3_ADDRESSING", style.to_string()),
        ];
        run_smoke("python3", script, &envs, "boto3 smoke: ok").await;
    }
}

/// Real S3 client compatibility: the AWS CLI (multipart uploads, sync, recursive delete).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the aws CLI"]
async fn awscli_smoke() {
    let (g, _tx) = smoke_gateway().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/awscli_smoke.sh");
    let envs = [("S3_ENDPOINT", format!("http://127.0.0.1:{}", g.addr.port()))];
    run_smoke("bash", script, &envs, "awscli smoke: ok").await;
}

/// A PUT whose body trickles in below the minimum rate gets 400 RequestTimeout and commits
/// nothing.
#[tokio::test]
async fn a_trickling_upload_gets_request_timeout() {
    let h = Harness::with_config(ServerConfig {
        min_rate: crate::stall::MinRate::per_sec(1000, Duration::from_millis(300)),
        ..Default::default()
    });
    h.put("/bkt", b"").await;
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("content-length", "100000".parse().unwrap());
    let date = amz_date();
    sigv4::sign_request(
        "PUT",
        "/bkt/slow",
        "",
        &mut headers,
        UNSIGNED_PAYLOAD,
        &params(&date),
    );
    type Piece = Result<hyper::body::Frame<Bytes>, std::io::Error>;
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(1);
    tokio::spawn(async move {
        for _ in 0..10_000 {
            let frame = hyper::body::Frame::data(Bytes::from_static(&[1u8; 10]));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut req = Request::builder()
        .method("PUT")
        .uri("/bkt/slow")
        .body(body)
        .unwrap();
    *req.headers_mut() = headers;
    let resp = tokio::time::timeout(Duration::from_secs(10), h.gw.handle(req))
        .await
        .expect("answered in time");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    assert!(
        h.backend.object("bkt", "slow").is_none(),
        "nothing committed"
    );
}

/// Read one HTTP/1.1 response head from a raw stream: its status code, or `None` when the
/// server closed without answering.
async fn status_of<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf[got..])).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!("no answer within 10 s"),
        };
        if n == 0 {
            return None;
        }
        got += n;
        let text = String::from_utf8_lossy(&buf[..got]);
        if let Some(line) = text.split("\r\n").next().filter(|_| text.contains("\r\n")) {
            return line.split(' ').nth(1).and_then(|c| c.parse().ok());
        }
    }
}

/// Header count and size limits answer 431; past `--max-connections` new connections are
/// closed until one of the open ones ends.
#[tokio::test]
async fn connection_and_header_limits() {
    use tokio::io::AsyncWriteExt;
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        max_connections: 2,
        max_headers: 20,
        max_header_bytes: 4096,
        ..crate::GatewayArgs::local(vec![])
    };
    let g = crate::start_with_backend(args, backend, rx).await.unwrap();
    let anon = |extra: &str| format!("GET / HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
    // Within limits: an answer (403: anonymous) on a kept-alive connection.
    let mut a = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    a.write_all(anon("").as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut a).await, Some(403));
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let mut b = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    b.write_all(anon(&many).as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut b).await, Some(431), "too many headers");
    drop(b);
    let big = format!("x-big: {}\r\n", "v".repeat(5000));
    let mut c = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let _ = c.write_all(anon(&big).as_bytes()).await;
    assert_eq!(status_of(&mut c).await, Some(431), "headers too large");
    drop(c);
    // Two open connections (a and d): a third is closed without an answer.
    let mut d = loop {
        let mut d = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        d.write_all(anon("").as_bytes()).await.unwrap();
        if status_of(&mut d).await == Some(403) {
            break d; // b and c released their slots
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut e = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let _ = e.write_all(anon("").as_bytes()).await;
    assert_eq!(status_of(&mut e).await, None, "over the connection limit");
    // One closes: new connections are served again.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut f = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        let _ = f.write_all(anon("").as_bytes()).await;
        if status_of(&mut f).await == Some(403) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.write_all(anon("").as_bytes()).await.unwrap();
    assert_eq!(
        status_of(&mut d).await,
        Some(403),
        "open connections keep working"
    );
    tx.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), g.done).await;
}

/// A TLS client trusting `roots`; the certificate the server presented on each connection.
mod tls_client {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, ServerName};

    pub fn connector(roots: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).unwrap();
        }
        #[allow(deprecated)] // see `tls::provider`
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        // Full handshakes only: a resumed session would not show the certificate served now.
        cfg.resumption = rustls::client::Resumption::disabled();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    }

    pub async fn connect(
        c: &tokio_rustls::TlsConnector,
        addr: std::net::SocketAddr,
    ) -> (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        CertificateDer<'static>,
    ) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let s = c.connect(name, tcp).await.expect("TLS handshake");
        let leaf = s.get_ref().1.peer_certificates().unwrap()[0].clone();
        (s, leaf)
    }
}

fn pem_cert_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// S3 over HTTPS; SIGHUP swaps the certificate for new handshakes while an open connection
/// keeps working; a bad file on reload keeps the old certificate.
#[tokio::test]
async fn https_and_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let names = vec!["localhost".to_string()];
    let (c1, k1) = crate::tls::self_signed_pem(&names).unwrap();
    let (c2, k2) = crate::tls::self_signed_pem(&names).unwrap();
    std::fs::write(&cert, &c1).unwrap();
    std::fs::write(&key, &k1).unwrap();
    let (der1, der2) = (pem_cert_der(&c1), pem_cert_der(&c2));
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.clone()),
        ..crate::GatewayArgs::local(vec![])
    };
    let g = crate::start_with_backend(args, backend, rx).await.unwrap();
    let https = g.https_addr.expect("an HTTPS listener");
    let connector = tls_client::connector(&[der1.clone(), der2.clone()]);
    let (stream, leaf) = tls_client::connect(&connector, https).await;
    assert_eq!(leaf, der1);
    let (mut old, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let host = format!("localhost:{}", https.port());
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = sigv4::format_amz_date(now);
    let signed = |method: &str, uri: &str, body: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        headers.insert("content-length", body.len().to_string().parse().unwrap());
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        sigv4::sign_request(method, uri, "", &mut headers, &hash, &params(&date));
        build(method, uri, headers, body.as_bytes().to_vec())
    };
    let r = old.send_request(signed("PUT", "/tls", "")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // New files, then SIGHUP to this process (the gateway's handler is installed).
    std::fs::write(&key, &k2).unwrap();
    std::fs::write(&cert, &c2).unwrap();
    let pid = std::process::id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let served = g.tls.clone().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while served.chain()[0] != der2 {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, leaf) = tls_client::connect(&connector, https).await;
    assert_eq!(leaf, der2, "a new handshake sees the new certificate");
    let r = old
        .send_request(signed("PUT", "/tls/k", "kept"))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the connection opened before keeps working"
    );
    // A bad file: the reload fails and the current certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    crate::tls::reload_logged(&served);
    let (stream, leaf) = tls_client::connect(&connector, https).await;
    assert_eq!(leaf, der2);
    let (mut fresh, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = fresh
        .send_request(signed("GET", "/tls/k", ""))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let got = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&got[..], b"kept");
    // Plain HTTP is still served beside it.
    let plain = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    drop(plain);
    tx.send(true).unwrap();
    drop((old, fresh));
    tokio::time::timeout(Duration::from_secs(10), g.done)
        .await
        .expect("drains")
        .unwrap()
        .unwrap();
}

// ---- users, ownership, quotas (issue 19 part A) --------------------------------------------

const ALICE: (&str, &str) = ("AKALICE000000001", "alice-secret");
const BOB: (&str, &str) = ("AKBOB00000000001", "bob-secret");
const ROOT: (&str, &str) = ("AKROOT0000000001", "root-secret");

/// A harness with users alice and bob (plain) and root (admin user), one key each, beside the
/// administrator key `AK`.
fn users_harness() -> Harness {
    let h = Harness::new();
    h.backend.add_user("alice", false);
    h.backend.add_user("bob", false);
    h.backend.add_user("root", true);
    h.backend.add_user_key(ALICE.0, ALICE.1, "alice", 0);
    h.backend.add_user_key(BOB.0, BOB.1, "bob", 0);
    h.backend.add_user_key(ROOT.0, ROOT.1, "root", 0);
    h
}

/// (method, uri, extra headers, body) of one request.
type Attempt<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a [u8]);

fn bucket_names(xml: &str) -> Vec<String> {
    xml.split("<Name>")
        .skip(1)
        .filter_map(|r| r.split("</Name>").next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn only_the_owner_or_an_admin_reaches_a_bucket() {
    let h = users_harness();
    let r = h.send_as(ALICE, "PUT", "/alices", &[], b"").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.backend.head_bucket_owner("alices"), "alice");
    h.send_as(ALICE, "PUT", "/alices/k", &[], b"data").await;
    h.send_as(BOB, "PUT", "/bobs", &[], b"").await;
    h.send_as(BOB, "PUT", "/bobs/k", &[], b"bob").await;
    let upload = h
        .send_as(ALICE, "POST", "/alices/big?uploads", &[], b"")
        .await;
    let upload_id = upload
        .text()
        .split("<UploadId>")
        .nth(1)
        .and_then(|r| r.split("</UploadId>").next())
        .unwrap()
        .to_string();
    let delete_body = b"<Delete><Object><Key>k</Key></Object></Delete>";
    let part = format!("/alices/big?partNumber=1&uploadId={upload_id}");
    let list_parts = format!("/alices/big?uploadId={upload_id}");
    // (method, uri, extra headers, body): every operation on alice's bucket.
    let ops: Vec<Attempt<'_>> = vec![
        ("GET", "/alices/k".into(), vec![], b""),
        ("HEAD", "/alices/k".into(), vec![], b""),
        ("PUT", "/alices/k2".into(), vec![], b"x"),
        ("GET", "/alices".into(), vec![], b""),
        ("GET", "/alices?list-type=2".into(), vec![], b""),
        ("HEAD", "/alices".into(), vec![], b""),
        ("GET", "/alices?uploads".into(), vec![], b""),
        ("POST", "/alices/new?uploads".into(), vec![], b""),
        ("PUT", part.clone(), vec![], b"p"),
        ("GET", list_parts.clone(), vec![], b""),
        // Copy from alice's bucket into bob's, and from bob's into alice's.
        (
            "PUT",
            "/bobs/stolen".into(),
            vec![("x-amz-copy-source", "/alices/k".into())],
            b"",
        ),
        (
            "PUT",
            "/alices/planted".into(),
            vec![("x-amz-copy-source", "/bobs/k".into())],
            b"",
        ),
        ("POST", "/alices?delete".into(), vec![], delete_body),
        ("DELETE", "/alices/k".into(), vec![], b""),
        ("DELETE", list_parts.clone(), vec![], b""),
        ("DELETE", "/alices".into(), vec![], b""),
    ];
    for (method, uri, extra, body) in &ops {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = h.send_as(BOB, method, uri, &extra, body).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "bob {method} {uri}: {}",
            r.text()
        );
        if *method != "HEAD" {
            assert_eq!(r.code(), "AccessDenied", "bob {method} {uri}");
        }
    }
    // Nothing of bob's attempts happened.
    assert!(h.backend.object("alices", "k").is_some());
    assert!(h.backend.object("alices", "k2").is_none());
    assert!(h.backend.object("bobs", "stolen").is_none());
    // The owner, an admin user and the administrator key reach it.
    for who in [ALICE, ROOT, (AK, SK)] {
        let r = h.send_as(who, "GET", "/alices/k", &[], b"").await;
        assert_eq!(
            (r.status, &r.body[..]),
            (StatusCode::OK, &b"data"[..]),
            "{who:?}"
        );
        let r = h.send_as(who, "GET", "/alices?list-type=2", &[], b"").await;
        assert_eq!(r.status, StatusCode::OK, "{who:?}");
    }
    let r = h
        .send_as(
            ROOT,
            "PUT",
            "/alices/byroot",
            &[("x-amz-copy-source", "/bobs/k")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A missing bucket is NoSuchBucket for anyone, as in S3.
    let r = h.send_as(BOB, "GET", "/nobucket/k", &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NoSuchBucket")
    );
    // Creating an existing bucket: someone else's is BucketAlreadyExists, one's own
    // BucketAlreadyOwnedByYou.
    let r = h.send_as(BOB, "PUT", "/alices", &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "BucketAlreadyExists")
    );
    let r = h.send_as(ALICE, "PUT", "/alices", &[], b"").await;
    assert_eq!(r.code(), "BucketAlreadyOwnedByYou");
}

#[tokio::test]
async fn list_buckets_shows_the_callers_buckets_with_the_caller_as_owner() {
    let h = users_harness();
    h.send_as(ALICE, "PUT", "/alice-1", &[], b"").await;
    h.send_as(ALICE, "PUT", "/alice-2", &[], b"").await;
    h.send_as(BOB, "PUT", "/bob-1", &[], b"").await;
    h.put("/admin-1", b"").await;
    let r = h.send_as(ALICE, "GET", "/", &[], b"").await;
    assert_eq!(bucket_names(&r.text()), ["alice-1", "alice-2"]);
    // Owner: the canonical id (what ACL grants name), the user name as DisplayName.
    let alice_id = anode_meta::authz::canonical_id("alice");
    assert!(
        r.text().contains(&format!(
            "<ID>{alice_id}</ID><DisplayName>alice</DisplayName>"
        )),
        "{}",
        r.text()
    );
    let r = h.send_as(BOB, "GET", "/", &[], b"").await;
    assert_eq!(bucket_names(&r.text()), ["bob-1"]);
    for admin in [ROOT, (AK, SK)] {
        let r = h.send_as(admin, "GET", "/", &[], b"").await;
        assert_eq!(
            bucket_names(&r.text()),
            ["admin-1", "alice-1", "alice-2", "bob-1"]
        );
    }
    // Users cannot reach the administrators' buckets.
    let r = h.send_as(ALICE, "GET", "/admin-1", &[], b"").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn disabled_and_expired_keys_are_refused() {
    let h = users_harness();
    h.backend
        .add_user_key("AKEXPIRED0000001", "old", "alice", NOW_MS);
    h.backend
        .add_user_key("AKLATER000000001", "later", "alice", NOW_MS + 1);
    h.backend.set_key_disabled(BOB.0, true);
    for who in [BOB, ("AKEXPIRED0000001", "old")] {
        let r = h.send_as(who, "GET", "/", &[], b"").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "InvalidAccessKeyId"),
            "{who:?}"
        );
    }
    let r = h
        .send_as(("AKLATER000000001", "later"), "GET", "/", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_write_past_a_quota_is_quota_exceeded_and_commits_nothing() {
    let h = users_harness();
    h.send_as(ALICE, "PUT", "/quota", &[], b"").await;
    h.backend.set_bucket_quota("quota", 10, 0);
    let r = h.send_as(ALICE, "PUT", "/quota/a", &[], b"123456").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.send_as(ALICE, "PUT", "/quota/b", &[], b"12345").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "QuotaExceeded"),
        "{}",
        r.text()
    );
    assert!(h.backend.object("quota", "b").is_none());
    let r = h
        .send_as(
            ALICE,
            "PUT",
            "/quota/c",
            &[("x-amz-copy-source", "/quota/a")],
            b"",
        )
        .await;
    assert_eq!(r.code(), "QuotaExceeded");
    assert!(h.backend.object("quota", "c").is_none());
}

// ---- audit log (issue 19) ------------------------------------------------------------------

impl Harness {
    fn with_audit(self, log: crate::audit::AuditLog) -> Harness {
        Harness {
            gw: self.gw.with_audit(log),
            backend: self.backend,
        }
    }
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One record per request, allowed or refused, with who, what, the decision and its reason,
/// the status and the bytes each way.
#[tokio::test]
async fn every_request_writes_one_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = crate::audit::AuditLog::start(crate::audit::Target::File {
        path: path.clone(),
        max_bytes: 1 << 20,
        keep: 1,
    })
    .unwrap();
    let h = users_harness().with_audit(log.clone());
    assert_eq!(
        h.send_as(ALICE, "PUT", "/alices", &[], b"").await.status,
        StatusCode::OK
    );
    let put = h.send_as(ALICE, "PUT", "/alices/k", &[], b"data").await;
    assert_eq!(put.status, StatusCode::OK);
    let get = h.send_as(ALICE, "GET", "/alices/k", &[], b"").await;
    assert_eq!(get.body.as_ref(), b"data");
    let refused = h.send_as(BOB, "GET", "/alices/k", &[], b"").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let anon = h.raw(build("GET", "/alices/k", headers, vec![])).await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN);
    let forged = h
        .send_as((ALICE.0, "wrong"), "GET", "/alices/k", &[], b"")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let admin = h.send("GET", "/alices/k", &[], b"").await;
    assert_eq!(admin.status, StatusCode::OK);
    assert!(log.flush(Duration::from_secs(10)));

    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    for (line, reply) in lines[1..]
        .iter()
        .zip([&put, &get, &refused, &anon, &forged, &admin])
    {
        assert_eq!(line["v"], 1);
        assert_eq!(line["request_id"], reply.header("x-amz-request-id"));
        assert_eq!(line["status"], reply.status.as_u16());
        assert_eq!(line["bucket"], "alices");
        assert_eq!(line["key"], "k");
        // The arrival time on the pinned clock.
        assert_eq!(line["time"], crate::audit::rfc3339_ms(NOW_MS));
        assert_eq!(
            line["source"],
            serde_json::Value::Null,
            "no socket in this harness"
        );
    }
    let field = |i: usize, f: &str| lines[i][f].clone();
    // Allowed: alice's PUT received the body, her GET sent it.
    assert_eq!(field(1, "principal"), "alice");
    assert_eq!(field(1, "access_key"), ALICE.0);
    assert_eq!(field(1, "op"), "PutObject");
    assert_eq!(field(1, "decision"), "allow");
    assert_eq!(field(1, "reason"), "allow: bucket owner");
    assert_eq!(field(1, "bytes_in"), 4);
    assert_eq!(field(2, "op"), "GetObject");
    assert_eq!(field(2, "bytes_out"), 4);
    assert_eq!(field(2, "bytes_in"), 0);
    // Refused by authorization: bob on alice's bucket.
    assert_eq!(field(3, "principal"), "bob");
    assert_eq!(field(3, "access_key"), BOB.0);
    assert_eq!(field(3, "op"), "GetObject");
    assert_eq!(field(3, "decision"), "deny");
    assert_eq!(field(3, "reason"), "deny: nothing allows it");
    assert_eq!(field(3, "error"), "AccessDenied");
    assert_eq!(field(3, "bytes_out"), refused.body.len());
    // Unsigned.
    assert_eq!(field(4, "principal"), "anonymous");
    assert_eq!(field(4, "access_key"), serde_json::Value::Null);
    assert_eq!(field(4, "op"), "GetObject");
    assert_eq!(field(4, "decision"), "deny");
    assert_eq!(field(4, "reason"), "deny: nothing allows it");
    // A signature that does not verify: the claimed key, no principal.
    assert_eq!(field(5, "principal"), serde_json::Value::Null);
    assert_eq!(field(5, "access_key"), ALICE.0);
    assert_eq!(field(5, "decision"), "deny");
    assert_eq!(field(5, "reason"), "authentication: SignatureDoesNotMatch");
    // The administrator key without a user.
    assert_eq!(field(6, "principal"), format!("admin-key:{AK}"));
    assert_eq!(field(6, "decision"), "allow");
    assert_eq!(field(6, "reason"), "allow: admin");
    assert_eq!(log.stats().dropped.load(Ordering::Relaxed), 0);
}

/// Through a real listener: `--audit-log` is honoured, the record has the client's address,
/// and a stopping gateway flushes what it queued.
#[tokio::test]
async fn audit_log_flag_records_the_source_address() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        audit_log: Some(path.clone()),
        ..crate::GatewayArgs::local(vec![])
    };
    let g = crate::start_with_backend(args, backend, rx).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(b"GET /b/k HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&mut s).await, Some(403));
    drop(s);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), g.done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["source"], local.to_string());
    assert_eq!(lines[0]["principal"], "anonymous");
    assert_eq!(lines[0]["op"], "GetObject");
    assert_eq!(lines[0]["status"], 403);
    let bad = crate::GatewayArgs {
        audit_log: Some(dir.path().join("no-such-dir").join("audit.log")),
        ..crate::GatewayArgs::local(vec![])
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    assert!(crate::start_with_backend(bad, backend, rx).await.is_err());
}

/// An unsigned request (the anonymous principal).
async fn anonymous(h: &Harness, method: &str, uri: &str, body: &[u8]) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    h.raw(build(method, uri, headers, body.to_vec())).await
}

#[tokio::test]
async fn policies_acls_public_access_block_and_anonymous_requests() {
    let h = users_harness();
    let ok = |r: &Reply| assert!(r.status.is_success(), "{} {}", r.status, r.text());
    ok(&h
        .send_as(ALICE, "PUT", "/pub", &[("x-amz-acl", "public-read")], b"")
        .await);
    ok(&h
        .send_as(
            ALICE,
            "PUT",
            "/pub/o",
            &[("x-amz-acl", "public-read")],
            b"open",
        )
        .await);
    ok(&h.send_as(ALICE, "PUT", "/pub/p", &[], b"closed").await);
    // Anonymous: the bucket's READ grant lists, the object's READ grant reads.
    let anon = |m: &'static str, u: &'static str| anonymous(&h, m, u, b"");
    assert_eq!(anon("GET", "/pub/o").await.status, StatusCode::OK);
    assert_eq!(&anon("GET", "/pub/o").await.body[..], b"open");
    assert_eq!(anon("HEAD", "/pub/o").await.status, StatusCode::OK);
    assert_eq!(anon("GET", "/pub?list-type=2").await.status, StatusCode::OK);
    assert_eq!(anon("GET", "/pub/p").await.status, StatusCode::FORBIDDEN);
    assert_eq!(anon("GET", "/pub/none").await.status, StatusCode::NOT_FOUND);
    assert_eq!(anon("PUT", "/pub/x").await.status, StatusCode::FORBIDDEN);
    assert_eq!(anon("GET", "/").await.status, StatusCode::FORBIDDEN);
    // Bob has nothing on alice's bucket but what the public grants give anyone signed too.
    let r = h.send_as(BOB, "GET", "/pub/p", &[], b"").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A policy granting bob reads: in force at once on this gateway.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"BobReads","Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::anode:user/bob"},"Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::pub/*"}]}"#;
    let r = h
        .send_as(BOB, "PUT", "/pub?policy", &[], policy.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = h
        .send_as(ALICE, "PUT", "/pub?policy", &[], policy.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = h.send_as(ALICE, "GET", "/pub?policy", &[], b"").await;
    assert_eq!(r.text(), policy);
    let r = h.send_as(BOB, "GET", "/pub/p", &[], b"").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"closed"[..]));
    let r = h.send_as(BOB, "PUT", "/pub/p", &[], b"mine").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A refused request whose body may be unread closes its connection (a late body, as
    // after `Expect: 100-continue`, must not be read as the next request).
    assert_eq!(r.header("connection"), "close");
    let r = h.send_as(BOB, "GET", "/pub/p", &[], b"").await;
    assert!(r.headers.get("connection").is_none());
    let r = h.send_as(ALICE, "GET", "/pub?policyStatus", &[], b"").await;
    assert!(
        r.text().contains("<IsPublic>false</IsPublic>"),
        "{}",
        r.text()
    );
    // Malformed policies are refused and change nothing.
    for bad in [
        "{",
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Nope","Resource":"*"}]}"#,
    ] {
        let r = h
            .send_as(ALICE, "PUT", "/pub?policy", &[], bad.as_bytes())
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "MalformedPolicy")
        );
    }
    assert_eq!(
        h.send_as(ALICE, "GET", "/pub?policy", &[], b"")
            .await
            .text(),
        policy
    );
    // ACL documents; PutObjectAcl keeps the object as it was.
    let r = h.send_as(ALICE, "GET", "/pub/o?acl", &[], b"").await;
    assert!(
        r.text().contains("AllUsers") && r.text().contains("<Permission>READ</Permission>"),
        "{}",
        r.text()
    );
    let before = h.send_as(ALICE, "HEAD", "/pub/p", &[], b"").await;
    let r = h
        .send_as(
            ALICE,
            "PUT",
            "/pub/p?acl",
            &[("x-amz-acl", "public-read")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let after = h.send_as(ALICE, "HEAD", "/pub/p", &[], b"").await;
    assert_eq!(before.header("etag"), after.header("etag"));
    assert_eq!(
        before.header("last-modified"),
        after.header("last-modified")
    );
    assert_eq!(anon("GET", "/pub/p").await.status, StatusCode::OK);
    let r = h
        .send_as(BOB, "PUT", "/pub/p?acl", &[("x-amz-acl", "private")], b"")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // PublicAccessBlock: public grants stop counting; new public ACLs are refused.
    let pab = b"<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>\
        <IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>";
    let r = h
        .send_as(ALICE, "PUT", "/pub?publicAccessBlock", &[], pab)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(anon("GET", "/pub/o").await.status, StatusCode::FORBIDDEN);
    let r = h
        .send_as(
            ALICE,
            "PUT",
            "/pub/q",
            &[("x-amz-acl", "public-read")],
            b"q",
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    let r = h
        .send_as(ALICE, "DELETE", "/pub?publicAccessBlock", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(anon("GET", "/pub/o").await.status, StatusCode::OK);
    // BucketOwnerEnforced: refused while the bucket ACL grants anyone but the owner; then
    // ACLs no longer count, and only the owner's full control is taken.
    let enforced = b"<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>";
    let r = h
        .send_as(ALICE, "PUT", "/pub?ownershipControls", &[], enforced)
        .await;
    assert_eq!(r.code(), "InvalidBucketAclWithObjectOwnership");
    let r = h
        .send_as(ALICE, "PUT", "/pub?acl", &[("x-amz-acl", "private")], b"")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = h
        .send_as(ALICE, "PUT", "/pub?ownershipControls", &[], enforced)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // `private` is the owner's full control only from the bucket owner: from an admin (who
    // may write, but is not the owner) it is an ACL the bucket refuses, as in S3.
    let r = h
        .send_as(ROOT, "PUT", "/pub/z", &[("x-amz-acl", "private")], b"z")
        .await;
    assert_eq!(r.code(), "AccessControlListNotSupported");
    let r = h
        .send_as(ALICE, "PUT", "/pub/z", &[("x-amz-acl", "private")], b"z")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = h
        .send_as(
            ROOT,
            "PUT",
            "/pub/z",
            &[("x-amz-acl", "bucket-owner-full-control")],
            b"z",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let bofc = [("x-amz-acl", "bucket-owner-full-control")];
    let r = h.send_as(ALICE, "PUT", "/pub/y", &bofc, b"y").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(anon("GET", "/pub/o").await.status, StatusCode::FORBIDDEN);
    let r = h
        .send_as(
            ALICE,
            "PUT",
            "/pub/q",
            &[("x-amz-acl", "public-read")],
            b"q",
        )
        .await;
    assert_eq!(r.code(), "AccessControlListNotSupported");
    // Bob's policy survived the ACL, PublicAccessBlock and ownership edits (each a
    // read-modify-write of the one record).
    assert_eq!(
        h.send_as(ALICE, "GET", "/pub?policy", &[], b"")
            .await
            .text(),
        policy
    );
}

/// A SigV2 header-signed request (`date` as the Date header).
async fn send_v2(h: &Harness, method: &str, uri: &str, date: &str, sk: &str, body: &[u8]) -> Reply {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("date", date.parse().unwrap());
    headers.insert("content-length", body.len().to_string().parse().unwrap());
    headers.insert("x-amz-meta-v", "2".parse().unwrap());
    let q = crate::http_util::Query::parse(query);
    let req = crate::sigv2::V2Request {
        method,
        raw_path: path,
        vhost_bucket: None,
        query: &q,
        headers: &headers,
    };
    let sig = crate::sigv2::sign(sk, &crate::sigv2::string_to_sign(&req, date));
    headers.insert("authorization", format!("AWS {AK}:{sig}").parse().unwrap());
    h.raw(build(method, uri, headers, body.to_vec())).await
}

#[tokio::test]
async fn sigv2_header_and_presigned() {
    let h = Harness::new();
    let now = (NOW_MS / 1000) as i64;
    let date = crate::http_util::http_date_ms(NOW_MS);
    assert_eq!(
        send_v2(&h, "PUT", "/bkt", &date, SK, b"").await.status,
        StatusCode::OK
    );
    let r = send_v2(&h, "PUT", "/bkt/a%20b", &date, SK, b"v2 data").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send_v2(&h, "GET", "/bkt/a%20b", &date, SK, b"").await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"v2 data"[..]));
    assert_eq!(r.header("x-amz-meta-v"), "2");
    // A signed sub-resource.
    let r = send_v2(&h, "GET", "/bkt?acl", &date, SK, b"").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Wrong secret, skewed clock.
    let r = send_v2(&h, "GET", "/bkt/a%20b", &date, "wrong", b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
    );
    let late = crate::http_util::http_date_ms(NOW_MS + 20 * 60 * 1000);
    let r = send_v2(&h, "GET", "/bkt/a%20b", &late, SK, b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "RequestTimeTooSkewed")
    );
    // Presigned (query) form: valid, expired, tampered.
    let url = |expires: i64, path: &str| {
        let sts = format!("GET\n\n\n{expires}\n{path}");
        let sig = crate::sigv2::sign(SK, &sts);
        let enc = crate::http_util::uri_encode(&sig, false);
        format!("{path}?AWSAccessKeyId={AK}&Expires={expires}&Signature={enc}")
    };
    let h = &h;
    let anon = |u: String| async move {
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        h.raw(build("GET", &u, headers, vec![])).await
    };
    let r = anon(url(now + 60, "/bkt/a%20b")).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"v2 data"[..]));
    let r = anon(url(now - 1, "/bkt/a%20b")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "AccessDenied")
    );
    assert!(r.text().contains("Request has expired"), "{}", r.text());
    let r = anon(url(now + 60, "/bkt/a%20b").replace("/bkt/a%20b?", "/bkt/a%20c?")).await;
    assert_eq!(r.code(), "SignatureDoesNotMatch");
    // Virtual-hosted: the bucket from the host is part of the signed resource.
    let mut headers = HeaderMap::new();
    headers.insert("host", "bkt.s3.test".parse().unwrap());
    headers.insert("date", date.parse().unwrap());
    let sts = format!("GET\n\n\n{date}\n/bkt/a%20b");
    let sig = crate::sigv2::sign(SK, &sts);
    headers.insert("authorization", format!("AWS {AK}:{sig}").parse().unwrap());
    let r = h.raw(build("GET", "/a%20b", headers, vec![])).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"v2 data"[..]));
}

#[tokio::test]
async fn presigned_expires_out_of_range_is_400() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    h.put("/bkt/k", b"data").await;
    let date = amz_date();
    let q = sigv4::presign("GET", "/bkt/k", "", HOST, 60, &params(&date));
    for bad in ["0", "-7", "604801", "x"] {
        let q = q.replace("X-Amz-Expires=60", &format!("X-Amz-Expires={bad}"));
        let mut headers = HeaderMap::new();
        headers.insert("host", HOST.parse().unwrap());
        let r = h
            .raw(build("GET", &format!("/bkt/k?{q}"), headers, vec![]))
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "AuthorizationQueryParametersError"),
            "{bad}"
        );
    }
}

fn form_body(fields: &[(&str, &str)], filename: &str, data: &[u8]) -> (Vec<u8>, String) {
    let b = "formBoundary7MA4YWxk";
    let mut out = Vec::new();
    for (k, v) in fields {
        out.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{b}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nignored\r\n--{b}--\r\n").as_bytes());
    (out, format!("multipart/form-data; boundary={b}"))
}

async fn post_form(h: &Harness, uri: &str, fields: &[(&str, &str)], data: &[u8]) -> Reply {
    let (body, ct) = form_body(fields, "photo.jpg", data);
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert("content-type", ct.parse().unwrap());
    headers.insert("content-length", body.len().to_string().parse().unwrap());
    h.raw(build("POST", uri, headers, body)).await
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn post_object_forms() {
    let h = Harness::new();
    h.put("/bkt", b"").await;
    let exp = "2099-01-01T00:00:00Z";
    let policy = b64(&format!(
        r#"{{"expiration":"{exp}","conditions":[{{"bucket":"bkt"}},["starts-with","$key","up/"],["starts-with","$Content-Type","image/"],["starts-with","$x-amz-meta-tag",""],["eq","$success_action_status","201"],["content-length-range",1,10]]}}"#
    ));
    // SigV2 form fields.
    let sig2 = crate::sigv2::sign(SK, &policy);
    let v2 = |key: &'static str| {
        vec![
            ("key", key),
            ("AWSAccessKeyId", AK),
            ("policy", policy.as_str()),
            ("signature", sig2.as_str()),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-tag", "t1"),
            ("success_action_status", "201"),
        ]
    };
    let r = post_form(&h, "/bkt", &v2("up/${filename}"), b"jpeg!").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.text().contains("<Key>up/photo.jpg</Key>"), "{}", r.text());
    assert!(r.text().contains("<Bucket>bkt</Bucket>"), "{}", r.text());
    let g = h.get("/bkt/up/photo.jpg").await;
    assert_eq!(&g.body[..], b"jpeg!");
    assert_eq!(g.header("content-type"), "image/jpeg");
    assert_eq!(g.header("x-amz-meta-tag"), "t1");
    assert_eq!(r.header("etag"), g.header("etag"));
    // Policy violations, sizes, signatures.
    let code = |r: &Reply| (r.status.as_u16(), r.code());
    let r = post_form(&h, "/bkt", &v2("down/x"), b"jpeg!").await;
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    let r = post_form(&h, "/bkt", &v2("up/big"), b"01234567890").await;
    assert_eq!(code(&r), (400, "EntityTooLarge".into()));
    let r = post_form(&h, "/bkt", &v2("up/small"), b"").await;
    assert_eq!(code(&r), (400, "EntityTooSmall".into()));
    assert_eq!(h.get("/bkt/up/big").await.status, StatusCode::NOT_FOUND);
    let mut extra = v2("up/e");
    extra.push(("x-amz-meta-other", "1"));
    let r = post_form(&h, "/bkt", &extra, b"x").await;
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    let mut ignored = v2("up/i");
    ignored.push(("x-ignore-other", "1"));
    assert_eq!(
        post_form(&h, "/bkt", &ignored, b"x").await.status,
        StatusCode::CREATED
    );
    let mut bad = v2("up/s");
    bad[3].1 = "AAAA";
    assert_eq!(
        code(&post_form(&h, "/bkt", &bad, b"x").await),
        (403, "SignatureDoesNotMatch".into())
    );
    let mut unknown = v2("up/s");
    unknown[1].1 = "AKUNKNOWNUNKNOWN01";
    assert_eq!(
        code(&post_form(&h, "/bkt", &unknown, b"x").await),
        (403, "InvalidAccessKeyId".into())
    );
    let mut nokey = v2("x");
    nokey.remove(0);
    assert_eq!(
        code(&post_form(&h, "/bkt", &nokey, b"x").await),
        (400, "InvalidArgument".into())
    );
    let expired = b64(r#"{"expiration":"2001-01-01T00:00:00Z","conditions":[]}"#);
    let sig_e = crate::sigv2::sign(SK, &expired);
    let r = post_form(
        &h,
        "/bkt",
        &[
            ("key", "k"),
            ("AWSAccessKeyId", AK),
            ("policy", &expired),
            ("signature", &sig_e),
        ],
        b"x",
    )
    .await;
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    let nocond = b64(r#"{"expiration":"2099-01-01T00:00:00Z"}"#);
    let sig_n = crate::sigv2::sign(SK, &nocond);
    let r = post_form(
        &h,
        "/bkt",
        &[
            ("key", "k"),
            ("AWSAccessKeyId", AK),
            ("policy", &nocond),
            ("signature", &sig_n),
        ],
        b"x",
    )
    .await;
    assert_eq!(code(&r), (400, "InvalidPolicyDocument".into()));
    // SigV4 form fields; redirect.
    let date = amz_date();
    let cred = format!("{AK}/{}/us-east-1/s3/aws4_request", &date[..8]);
    let policy4 = b64(&format!(
        r#"{{"expiration":"{exp}","conditions":[{{"bucket":"bkt"}},{{"key":"v4"}},{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{cred}"}},{{"x-amz-date":"{date}"}},["starts-with","$success_action_redirect","http://app/"]]}}"#
    ));
    let key4 = sigv4::signing_key(SK, &date[..8], "us-east-1", "s3");
    let sig4 = sigv4::signature(&key4, &policy4);
    let f4 = [
        ("key", "v4"),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", cred.as_str()),
        ("x-amz-date", date.as_str()),
        ("policy", policy4.as_str()),
        ("x-amz-signature", sig4.as_str()),
        ("success_action_redirect", "http://app/done"),
    ];
    let r = post_form(&h, "/bkt", &f4, b"v4 data").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let etag = h.get("/bkt/v4").await.header("etag").to_string();
    assert_eq!(
        r.header("location"),
        format!(
            "http://app/done?bucket=bkt&key=v4&etag={}",
            crate::http_util::uri_encode(&etag, false)
        )
    );
    // Anonymous: refused on a private bucket, allowed where anyone may write.
    let r = post_form(&h, "/bkt", &[("key", "anon")], b"x").await;
    assert_eq!(code(&r), (403, "AccessDenied".into()));
    h.send("PUT", "/open", &[("x-amz-acl", "public-read-write")], b"")
        .await;
    let r = post_form(
        &h,
        "/open",
        &[("key", "anon"), ("success_action_status", "200")],
        b"anon",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(&h.get("/open/anon").await.body[..], b"anon");
    // A declared checksum is checked.
    let good = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"sum"))
    };
    let r = post_form(
        &h,
        "/open",
        &[("key", "ck"), ("x-amz-checksum-sha256", &good)],
        b"sum",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = post_form(
        &h,
        "/open",
        &[("key", "ck2"), ("x-amz-checksum-sha256", &good)],
        b"sun",
    )
    .await;
    assert_eq!(code(&r), (400, "BadDigest".into()));
    assert_eq!(h.get("/open/ck2").await.status, StatusCode::NOT_FOUND);
    // Too many bytes before the file; no file at all; a body that is not a form.
    let big = "x".repeat(crate::server::post_object::MAX_PRE_FILE_BYTES + 1);
    let r = post_form(&h, "/open", &[("key", "k"), ("x-ignore-pad", &big)], b"x").await;
    assert_eq!(code(&r), (400, "MaxPostPreDataLengthExceeded".into()));
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    headers.insert(
        "content-type",
        "multipart/form-data; boundary=zz".parse().unwrap(),
    );
    let r = h
        .raw(build(
            "POST",
            "/open",
            headers.clone(),
            b"--zz\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--zz--\r\n".to_vec(),
        ))
        .await;
    assert_eq!(
        code(&r),
        (400, "IncorrectNumberOfFilesInPostRequest".into())
    );
    let r = h
        .raw(build(
            "POST",
            "/open",
            headers,
            b"--zz\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated".to_vec(),
        ))
        .await;
    assert_eq!(code(&r), (400, "MalformedPOSTRequest".into()));
}

#[tokio::test]
async fn tagging() {
    let h = Harness::new();
    h.put("/tagb", b"").await;
    let tags = |n: usize| {
        let mut s = String::from("<Tagging><TagSet>");
        for i in 0..n {
            s.push_str(&format!("<Tag><Key>k{i}</Key><Value>v{i}</Value></Tag>"));
        }
        s + "</TagSet></Tagging>"
    };
    // x-amz-tagging on PUT; GET/HEAD count it; GetObjectTagging lists it sorted by key.
    let r = h
        .send(
            "PUT",
            "/tagb/o",
            &[("x-amz-tagging", "foo=bar&bar")],
            b"data",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let etag = h.backend.object("tagb", "o").unwrap().etag;
    let r = h.send("HEAD", "/tagb/o", &[], b"").await;
    assert_eq!(r.headers["x-amz-tagging-count"], "2");
    let r = h.get("/tagb/o?tagging").await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    assert!(
        t.find("<Key>bar</Key><Value></Value>").unwrap()
            < t.find("<Key>foo</Key><Value>bar</Value>").unwrap(),
        "{t}"
    );
    // PutObjectTagging replaces, keeping the ETag; DeleteObjectTagging answers 204.
    let r = h.put("/tagb/o?tagging", tags(10).as_bytes()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let m = h.backend.object("tagb", "o").unwrap();
    assert_eq!((m.tags.len(), m.etag), (10, etag));
    assert_eq!(
        h.put("/tagb/o?tagging", tags(11).as_bytes()).await.code(),
        "InvalidTag"
    );
    assert_eq!(
        h.put("/tagb/o?tagging", b"<Tagging>").await.code(),
        "MalformedXML"
    );
    let r = h.send("DELETE", "/tagb/o?tagging", &[], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(h.backend.object("tagb", "o").unwrap().tags.is_empty());
    let r = h.send("HEAD", "/tagb/o", &[], b"").await;
    assert!(!r.headers.contains_key("x-amz-tagging-count"));
    assert_eq!(h.get("/tagb/missing?tagging").await.code(), "NoSuchKey");
    let r = h
        .send("PUT", "/tagb/bad", &[("x-amz-tagging", "aws:x=1")], b"data")
        .await;
    assert_eq!(r.code(), "InvalidTag");
    assert!(h.backend.object("tagb", "bad").is_none());
    // Copies: COPY keeps the source's tags, REPLACE takes x-amz-tagging's.
    h.send("PUT", "/tagb/src", &[("x-amz-tagging", "a=1")], b"s")
        .await;
    h.send(
        "PUT",
        "/tagb/c1",
        &[("x-amz-copy-source", "/tagb/src")],
        b"",
    )
    .await;
    assert_eq!(h.backend.object("tagb", "c1").unwrap().tags.len(), 1);
    let replace = [
        ("x-amz-copy-source", "/tagb/src"),
        ("x-amz-tagging-directive", "REPLACE"),
        ("x-amz-tagging", "b=2&c=3"),
    ];
    h.send("PUT", "/tagb/c2", &replace, b"").await;
    assert_eq!(h.backend.object("tagb", "c2").unwrap().tags.len(), 2);
    // Bucket tags.
    assert_eq!(h.get("/tagb?tagging").await.code(), "NoSuchTagSet");
    let r = h.put("/tagb?tagging", tags(50).as_bytes()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert!(h
        .get("/tagb?tagging")
        .await
        .text()
        .contains("<Key>k49</Key>"));
    assert_eq!(
        h.put("/tagb?tagging", tags(51).as_bytes()).await.code(),
        "InvalidTag"
    );
    let r = h.send("DELETE", "/tagb?tagging", &[], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.get("/tagb?tagging").await.code(), "NoSuchTagSet");
}

// ---- event notifications (issue 15) ---------------------------------------------------------

const NOTIFY_HOOKS: &str = "<NotificationConfiguration><QueueConfiguration><Id>img</Id>\
    <Queue>arn:anode:sqs::hooks</Queue><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event>\
    <Filter><S3Key><FilterRule><Name>prefix</Name><Value>img/</Value></FilterRule></S3Key></Filter>\
    </QueueConfiguration></NotificationConfiguration>";

#[tokio::test]
async fn notification_configuration_and_queued_events() {
    let h = users_harness();
    h.put("/bkt", b"").await;
    let r = h.get("/bkt?notification").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("<NotificationConfiguration"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("Configuration><"), "{}", r.text());
    // The target does not exist yet: the master refuses.
    let r = h.put("/bkt?notification", NOTIFY_HOOKS.as_bytes()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "InvalidArgument"),
        "{}",
        r.text()
    );
    h.backend
        .set_notification_target("hooks", Some("http://127.0.0.1:9/hook"));
    let r = h.put("/bkt?notification", NOTIFY_HOOKS.as_bytes()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = h.get("/bkt?notification").await;
    assert!(
        r.text()
            .contains("<QueueConfiguration><Id>img</Id><Queue>arn:anode:sqs::hooks</Queue>"),
        "{}",
        r.text()
    );
    // Bad documents.
    for (body, code) in [
        ("<NotificationConfiguration><EventBridgeConfiguration/></NotificationConfiguration>", "NotImplemented"),
        ("<NotificationConfiguration><QueueConfiguration><Queue>arn:anode:sqs::hooks</Queue><Event>s3:ObjectAccessed:*</Event></QueueConfiguration></NotificationConfiguration>", "InvalidArgument"),
        ("<NotificationConfiguration><QueueConfiguration>", "MalformedXML"),
    ] {
        assert_eq!(h.put("/bkt?notification", body.as_bytes()).await.code(), code, "{body}");
    }
    // Only the owner (or an admin, or a policy) may read or change the rules.
    h.send_as(ALICE, "PUT", "/alices", &[], b"").await;
    for (method, body) in [("GET", ""), ("PUT", NOTIFY_HOOKS)] {
        let r = h
            .send_as(BOB, method, "/alices?notification", &[], body.as_bytes())
            .await;
        assert_eq!(r.code(), "AccessDenied", "{method}");
    }
    let r = h
        .send_as(
            ALICE,
            "PUT",
            "/alices?notification",
            &[],
            NOTIFY_HOOKS.as_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Events: put, copy (named Copy), delete; the key outside the prefix makes none.
    h.put("/bkt/img/a.jpg", b"x").await;
    h.put("/bkt/doc/x", b"x").await;
    let r = h
        .send(
            "PUT",
            "/bkt/img/b.jpg",
            &[("x-amz-copy-source", "/bkt/img/a.jpg")],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    h.send("DELETE", "/bkt/img/a.jpg", &[], b"").await;
    let queued = h.backend.queued_events("hooks");
    let names: Vec<(&str, &str)> = queued
        .iter()
        .filter(|e| e.bucket == "bkt")
        .map(|e| (e.key.as_str(), e.event_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("img/a.jpg", "ObjectCreated:Put"),
            ("img/b.jpg", "ObjectCreated:Copy"),
            ("img/a.jpg", "ObjectRemoved:Delete")
        ]
    );
    assert!(queued.windows(2).all(|w| w[0].id < w[1].id));
    // An empty configuration removes the rules.
    let r = h
        .put("/bkt?notification", b"<NotificationConfiguration/>")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!h.get("/bkt?notification").await.text().contains("Queue"));
}

/// A signed request whose answer is not collected (a listen stream).
async fn open_stream(
    h: &Harness,
    key: (&str, &str),
    uri: &str,
) -> http::Response<crate::body::RespBody> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut headers = HeaderMap::new();
    headers.insert("host", HOST.parse().unwrap());
    let date = amz_date();
    let p = SignParams {
        access_key: key.0,
        secret_key: key.1,
        ..params(&date)
    };
    let hash = hex::encode(Sha256::digest(b""));
    sigv4::sign_request("GET", path, query, &mut headers, &hash, &p);
    h.gw.handle(build("GET", uri, headers, Vec::new())).await
}

async fn next_line(body: &mut crate::body::RespBody) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a line within 10 s")
        .expect("the stream goes on")
        .expect("no error");
    String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn listen_streams_matching_events_and_is_bounded() {
    let h = Harness::with_config(ServerConfig {
        max_listeners: 1,
        ..Default::default()
    });
    h.put("/bkt", b"").await;
    let uri = "/bkt?prefix=img%2F&suffix=&events=s3%3AObjectCreated%3A%2A&events=s3%3AObjectAccessed%3A%2A";
    let resp = open_stream(&h, (AK, SK), uri).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut body = resp.into_body();
    assert_eq!(next_line(&mut body).await, "{\"Records\":[]}\n");
    // The only slot is taken.
    let r = open_stream(&h, (AK, SK), uri).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.put("/bkt/doc/x", b"x").await;
    h.send("DELETE", "/bkt/img/a", &[], b"").await;
    h.put("/bkt/img/a", b"xyz").await;
    let line = next_line(&mut body).await;
    let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    assert_eq!(v["Records"][0]["eventName"], "ObjectCreated:Put");
    assert_eq!(v["Records"][0]["s3"]["object"]["key"], "img/a");
    assert_eq!(v["Records"][0]["s3"]["object"]["size"], 3);
    assert_eq!(v["Records"][0]["s3"]["bucket"]["name"], "bkt");
    // Hanging up gives the slot back.
    drop(body);
    let resp = open_stream(&h, (AK, SK), uri).await;
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    // Errors before the stream starts are S3 errors.
    let r = h.get("/nope?events=s3%3AObjectCreated%3A%2A").await;
    assert_eq!(r.code(), "NoSuchBucket");
    let r = h.get("/bkt?events=ObjectCreated").await;
    assert_eq!(r.code(), "InvalidArgument");
}

#[tokio::test]
async fn listen_needs_the_bucket_owner() {
    let h = users_harness();
    h.send_as(ALICE, "PUT", "/alices", &[], b"").await;
    let r = open_stream(&h, BOB, "/alices?events=s3%3AObjectCreated%3A%2A").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = open_stream(&h, ALICE, "/alices?events=s3%3AObjectCreated%3A%2A").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn listen_ends_at_shutdown() {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let gw = Gateway::new(backend.clone(), ServerConfig::default())
        .with_clock(Arc::new(|| UNIX_EPOCH + Duration::from_millis(NOW_MS)))
        .with_shutdown(rx);
    let h = Harness { gw, backend };
    h.put("/bkt", b"").await;
    let resp = open_stream(&h, (AK, SK), "/bkt?events=").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    assert_eq!(next_line(&mut body).await, "{\"Records\":[]}\n");
    tx.send(true).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the answer ends at shutdown");
    assert!(end.is_none(), "{end:?}");
}

/// Over TCP: a listener that hangs up gives its slot back (noticed at the latest at the next
/// keep-alive), and a listener still open does not hold up the drain.
#[tokio::test]
async fn listen_over_tcp_hang_up_and_drain() {
    let backend = Arc::new(MemBackend::with_key(AK, SK));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let args = crate::GatewayArgs {
        grpc_tls: Default::default(),
        max_listeners: 1,
        ..crate::GatewayArgs::local(vec![])
    };
    let g = crate::start_with_backend(args, backend, rx).await.unwrap();
    let host = g.addr.to_string();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = sigv4::format_amz_date(now);
    let empty = hex::encode(Sha256::digest(b""));
    let send = |method: &'static str, path: &'static str, query: &'static str| {
        let (host, date, empty) = (host.clone(), date.clone(), empty.clone());
        let addr = g.addr;
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            let conn = tokio::spawn(conn);
            let mut headers = HeaderMap::new();
            headers.insert("host", host.parse().unwrap());
            sigv4::sign_request(method, path, query, &mut headers, &empty, &params(&date));
            let uri = if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{query}")
            };
            let resp = sender
                .send_request(build(method, &uri, headers, Vec::new()))
                .await
                .unwrap();
            (resp, conn)
        }
    };
    let (r, _c) = send("PUT", "/tcp", "").await;
    assert_eq!(r.status(), StatusCode::OK);
    let (resp, conn) = send("GET", "/tcp", "events=&ping=1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"{\"Records\":[]}\n");
    let (busy, _c) = send("GET", "/tcp", "events=&ping=1").await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Hang up: the connection task and its socket go away.
    conn.abort();
    drop(body);
    let (resp, _keep) = support_wait_ok(|| send("GET", "/tcp", "events=&ping=1")).await;
    let mut body = resp.into_body();
    assert!(body.frame().await.is_some());
    // Shutdown with that listener open: the drain ends well within its 30 s.
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), g.done)
        .await
        .expect("drains with a listener open")
        .unwrap()
        .unwrap();
}

/// Retry `f` until it answers 200, for 10 s.
async fn support_wait_ok<F, Fut, C>(mut f: F) -> (http::Response<hyper::body::Incoming>, C)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (http::Response<hyper::body::Incoming>, C)>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (r, c) = f().await;
        if r.status() == StatusCode::OK {
            return (r, c);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not given back within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
