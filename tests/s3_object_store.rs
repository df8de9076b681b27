//! The `object_store` crate's S3 client (a SigV4 client we did not write) against a real
//! multi-process cluster: 1 master, 3 chunkservers and 2 gateways, each an `anode` process.
//!
//! - `object_store_operations`: put (attributes, conditional modes), a 50 MiB multipart upload,
//!   get with ranges and conditions, head, list (paged past 1,000 keys, delimiter, offset),
//!   copy, copy-if-not-exists, rename, delete, bulk delete, presigned GET and PUT, and the auth
//!   failures (wrong secret, unknown key, expired and tampered presigned URLs).
//! - `two_gateways_read_each_others_writes`: every write through one gateway is seen at once by
//!   reads, lists and heads through the other.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum, S3CopyIfNotExists};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, Error as OsError, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use rand::{RngCore, SeedableRng};
use reqwest::{Method, StatusCode};
use s3_cluster::{S3Cluster, ACCESS_KEY, REGION, SECRET_KEY};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// An `AmazonS3` store on `endpoint` for `bucket`, path-style, no retries (a retry would hide a
/// gateway error), with the given credentials.
fn store_with(endpoint: &str, bucket: &str, access: &str, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region(REGION)
        .with_bucket_name(bucket)
        .with_access_key_id(access)
        .with_secret_access_key(secret)
        .with_virtual_hosted_style_request(false)
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
        // Every PUT and part carries x-amz-checksum-sha256, which the gateway verifies.
        .with_checksum_algorithm(Checksum::SHA256)
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(Duration::from_secs(120)),
        )
        .build()
        .expect("build AmazonS3")
}

fn store(endpoint: &str, bucket: &str) -> AmazonS3 {
    store_with(endpoint, bucket, ACCESS_KEY, SECRET_KEY)
}

async fn create_bucket(c: &S3Cluster, name: &str) {
    let cl = anode_client::Client::with_config(vec![c.master.clone()], support::client_config())
        .await
        .unwrap();
    cl.create_bucket(name, 3, ACCESS_KEY).await.unwrap();
}

/// `len` seeded random bytes.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Stream a GET to the end, hashing as it goes; returns (SHA-256, length).
async fn get_sha256(s: &AmazonS3, p: &Path) -> (String, usize) {
    let mut stream = s.get(p).await.unwrap().into_stream();
    let (mut h, mut n) = (Sha256::new(), 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len();
        h.update(&chunk);
    }
    (hex::encode(h.finalize()), n)
}

async fn get_range(s: &AmazonS3, p: &Path, r: GetRange) -> Result<Bytes, OsError> {
    let opts = GetOptions {
        range: Some(r),
        ..GetOptions::default()
    };
    s.get_opts(p, opts).await?.bytes().await
}

async fn get_if(s: &AmazonS3, p: &Path, opts: GetOptions) -> Result<Bytes, OsError> {
    s.get_opts(p, opts).await?.bytes().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_operations() {
    let c = S3Cluster::start(2).await;
    let run = async {
        create_bucket(&c, "os-bucket").await;
        let s = store(&c.endpoints[0], "os-bucket");
        put_get_attributes_and_conditions(&s).await;
        multipart_50mib_and_ranges(&s).await;
        listing(&s).await;
        copy_rename_delete(&s).await;
        presigned_urls(&s).await;
        auth_failures(&c).await;
    };
    tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .unwrap_or_else(|_| panic!("timed out\n{}", c.logs()));
}

async fn put_get_attributes_and_conditions(s: &AmazonS3) {
    let p = Path::from("small/hello world+&.txt");
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::ContentType, "text/plain".into());
    attrs.insert(Attribute::Metadata("color".into()), "blue".into());
    let put = s
        .put_opts(
            &p,
            PutPayload::from_static(b"hello world"),
            PutOptions::from(attrs.clone()),
        )
        .await
        .unwrap();
    let etag = put.e_tag.clone().expect("PUT returns an ETag");
    assert_eq!(etag, format!("\"{}\"", hex::encode(md5_of(b"hello world"))));

    let got = s.get(&p).await.unwrap();
    assert_eq!(got.meta.size, 11);
    assert_eq!(got.meta.e_tag.as_deref(), Some(etag.as_str()));
    assert_eq!(
        got.attributes
            .get(&Attribute::ContentType)
            .unwrap()
            .as_ref(),
        "text/plain"
    );
    assert_eq!(
        got.attributes
            .get(&Attribute::Metadata("color".into()))
            .map(|v| v.as_ref().to_string()),
        Some("blue".to_string())
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello world");

    let head = s.head(&p).await.unwrap();
    assert_eq!(head.size, 11);
    assert_eq!(head.e_tag.as_deref(), Some(etag.as_str()));
    let age = chrono::Utc::now() - head.last_modified;
    assert!(
        age.num_seconds().abs() < 120,
        "last_modified {}",
        head.last_modified
    );

    // Conditional GETs.
    let lm = head.last_modified;
    let hour = chrono::Duration::hours(1);
    let ok = |o: GetOptions| get_if(s, &p, o);
    ok(GetOptions::new().with_if_match(Some(etag.clone())))
        .await
        .unwrap();
    let e = ok(GetOptions::new().with_if_match(Some("\"0123\"")))
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::Precondition { .. }), "{e}");
    let e = ok(GetOptions::new().with_if_none_match(Some(etag.clone())))
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::NotModified { .. }), "{e}");
    ok(GetOptions::new().with_if_none_match(Some("\"0123\"")))
        .await
        .unwrap();
    let e = ok(GetOptions {
        if_modified_since: Some(lm),
        ..GetOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(e, OsError::NotModified { .. }), "{e}");
    ok(GetOptions {
        if_modified_since: Some(lm - hour),
        ..GetOptions::default()
    })
    .await
    .unwrap();
    let e = ok(GetOptions {
        if_unmodified_since: Some(lm - hour),
        ..GetOptions::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(e, OsError::Precondition { .. }), "{e}");
    ok(GetOptions {
        if_unmodified_since: Some(lm + hour),
        ..GetOptions::default()
    })
    .await
    .unwrap();

    // Conditional PUTs: create-only and compare-and-swap on the ETag.
    let e = s
        .put_opts(&p, PutPayload::from_static(b"x"), PutMode::Create.into())
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::AlreadyExists { .. }), "{e}");
    let stale = UpdateVersion {
        e_tag: Some("\"00000000000000000000000000000000\"".into()),
        version: None,
    };
    let e = s
        .put_opts(
            &p,
            PutPayload::from_static(b"x"),
            PutMode::Update(stale).into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::Precondition { .. }), "{e}");
    let cur = UpdateVersion {
        e_tag: Some(etag.clone()),
        version: None,
    };
    s.put_opts(
        &p,
        PutPayload::from_static(b"hello again"),
        PutMode::Update(cur).into(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(&p).await.unwrap().bytes().await.unwrap().as_ref(),
        b"hello again"
    );
    let fresh = Path::from("small/created");
    s.put_opts(
        &fresh,
        PutPayload::from_static(b"new"),
        PutMode::Create.into(),
    )
    .await
    .unwrap();

    // A missing object.
    let e = s.get(&Path::from("small/missing")).await.unwrap_err();
    assert!(matches!(e, OsError::NotFound { .. }), "{e}");
    let e = s.head(&Path::from("small/missing")).await.unwrap_err();
    assert!(matches!(e, OsError::NotFound { .. }), "{e}");
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(b).into()
}

async fn multipart_50mib_and_ranges(s: &AmazonS3) {
    let part = 5 * MIB;
    let len = 50 * MIB + 12_345;
    let data = random_bytes(len, 50);
    let p = Path::from("big/fifty.bin");
    let mut up = s.put_multipart(&p).await.unwrap();
    // Parts are sent two at a time, like a real uploader.
    let mut pending = Vec::new();
    for chunk in data.chunks(part) {
        pending.push(up.put_part(PutPayload::from(Bytes::copy_from_slice(chunk))));
        if pending.len() == 2 {
            futures::future::try_join_all(pending.drain(..))
                .await
                .unwrap();
        }
    }
    futures::future::try_join_all(pending).await.unwrap();
    let res = up.complete().await.unwrap();
    let n_parts = len.div_ceil(part);
    let etag = res.e_tag.unwrap();
    assert!(etag.ends_with(&format!("-{n_parts}\"")), "{etag}");
    let mut md5s = Vec::new();
    for chunk in data.chunks(part) {
        md5s.extend_from_slice(&md5_of(chunk));
    }
    assert_eq!(
        etag,
        format!("\"{}-{n_parts}\"", hex::encode(md5_of(&md5s)))
    );

    let head = s.head(&p).await.unwrap();
    assert_eq!(head.size, len as u64);
    assert_eq!(head.e_tag.as_deref(), Some(etag.as_str()));
    assert_eq!(get_sha256(s, &p).await, (sha256(&data), len));

    // Ranges: inside a chunk, across the 4 MiB chunk and 5 MiB part boundaries, the last
    // byte, open-ended and suffix ranges, several at once.
    let l = len as u64;
    let bounded = [
        0..1,
        0..4096,
        (4 * MIB as u64 - 10)..(4 * MIB as u64 + 10),
        (5 * MIB as u64 - 1)..(15 * MIB as u64 + 1),
        (l - 1)..l,
        (l - 300_000)..l,
    ];
    for r in bounded.iter().cloned() {
        let got = s.get_range(&p, r.clone()).await.unwrap();
        assert!(
            got.as_ref() == &data[r.start as usize..r.end as usize],
            "range {r:?}"
        );
    }
    let got = get_range(s, &p, GetRange::Offset(l - 1000)).await.unwrap();
    assert!(got.as_ref() == &data[len - 1000..]);
    let got = get_range(s, &p, GetRange::Suffix(777)).await.unwrap();
    assert!(got.as_ref() == &data[len - 777..]);
    // A range past the end is cut to the object (206), a start past the end is 416.
    let got = s.get_range(&p, (l - 5)..(l + 100)).await.unwrap();
    assert!(got.as_ref() == &data[len - 5..]);
    let e = get_range(s, &p, GetRange::Offset(l + 10))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("InvalidRange"), "{e}");
    let many = s
        .get_ranges(&p, &[10..20, (20 * MIB as u64)..(20 * MIB as u64 + 5)])
        .await
        .unwrap();
    assert!(many[0].as_ref() == &data[10..20]);
    assert!(many[1].as_ref() == &data[20 * MIB..20 * MIB + 5]);
}

async fn listing(s: &AmazonS3) {
    // More than one page (1,000 keys) so the continuation token is used.
    let n = 1_030;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let p = Path::from(format!("many/{i:05}"));
            s.put(&p, PutPayload::from(format!("v{i}"))).await
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let listed: Vec<String> = s
        .list(Some(&Path::from("many")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let want: Vec<String> = (0..n).map(|i| format!("many/{i:05}")).collect();
    assert_eq!(listed, want);

    // start-after.
    let after: Vec<String> = s
        .list_with_offset(Some(&Path::from("many")), &Path::from("many/01020"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(after, want[1021..].to_vec());

    // Delimiter: objects and common prefixes.
    for k in [
        "tree/a",
        "tree/b",
        "tree/sub1/x",
        "tree/sub1/y",
        "tree/sub2/z",
    ] {
        s.put(&Path::from(k), PutPayload::from_static(b"t"))
            .await
            .unwrap();
    }
    let r = s
        .list_with_delimiter(Some(&Path::from("tree")))
        .await
        .unwrap();
    let objs: Vec<String> = r.objects.iter().map(|m| m.location.to_string()).collect();
    let dirs: Vec<String> = r.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(objs, ["tree/a", "tree/b"]);
    assert_eq!(dirs, ["tree/sub1", "tree/sub2"]);
    assert!(r.objects.iter().all(|m| m.size == 1 && m.e_tag.is_some()));
    let top = s.list_with_delimiter(None).await.unwrap();
    let dirs: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(dirs, ["big", "many", "small", "tree"]);

    // Bulk delete (DeleteObjects) of every "many/" key.
    let locations =
        futures::stream::iter(want.clone().into_iter().map(|k| Ok(Path::from(k)))).boxed();
    let deleted: Vec<Path> = s.delete_stream(locations).try_collect().await.unwrap();
    assert_eq!(deleted.len(), n);
    let left = s.list(Some(&Path::from("many"))).count().await;
    assert_eq!(left, 0);
}

async fn copy_rename_delete(s: &AmazonS3) {
    let src = Path::from("cp/src");
    let body = random_bytes(3 * MIB + 5, 7);
    s.put(&src, PutPayload::from(body.clone())).await.unwrap();
    let dst = Path::from("cp/dst");
    s.copy(&src, &dst).await.unwrap();
    assert_eq!(get_sha256(s, &dst).await, (sha256(&body), body.len()));

    // copy_if_not_exists (multipart UploadPartCopy + conditional Complete).
    let e = s.copy_if_not_exists(&src, &dst).await.unwrap_err();
    assert!(matches!(e, OsError::AlreadyExists { .. }), "{e}");
    let dst2 = Path::from("cp/dst2");
    s.copy_if_not_exists(&src, &dst2).await.unwrap();
    assert_eq!(get_sha256(s, &dst2).await, (sha256(&body), body.len()));

    let moved = Path::from("cp/moved");
    s.rename(&dst2, &moved).await.unwrap();
    assert!(matches!(
        s.head(&dst2).await.unwrap_err(),
        OsError::NotFound { .. }
    ));
    assert_eq!(get_sha256(s, &moved).await, (sha256(&body), body.len()));

    s.delete(&src).await.unwrap();
    // Deleting again (a missing key) succeeds, as on S3.
    s.delete(&src).await.unwrap();
    assert!(matches!(
        s.get(&src).await.unwrap_err(),
        OsError::NotFound { .. }
    ));
    // The copies share chunks with the deleted source and still read.
    assert_eq!(get_sha256(s, &dst).await, (sha256(&body), body.len()));
}

async fn presigned_urls(s: &AmazonS3) {
    let http = reqwest::Client::new();
    let p = Path::from("presigned/obj");
    let body = random_bytes(100_000, 3);
    let put_url = s
        .signed_url(Method::PUT, &p, Duration::from_secs(300))
        .await
        .unwrap();
    let r = http.put(put_url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let get_url = s
        .signed_url(Method::GET, &p, Duration::from_secs(300))
        .await
        .unwrap();
    let r = http.get(get_url.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-amz-request-id"));
    assert!(r.bytes().await.unwrap().as_ref() == body.as_slice());

    // A tampered signature.
    let mut bad = get_url.clone();
    let pairs: Vec<(String, String)> = get_url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                flip_hex(&v)
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    bad.query_pairs_mut().clear().extend_pairs(pairs);
    expect_s3_error(http.get(bad), 403, "SignatureDoesNotMatch").await;

    // An expired URL: valid for 1 s, then AccessDenied.
    let short = s
        .signed_url(Method::GET, &p, Duration::from_secs(1))
        .await
        .unwrap();
    support::wait_for("presigned URL to expire", Duration::from_secs(10), || {
        let req = http.get(short.clone()).send();
        async move {
            let r = req.await.ok()?;
            (r.status() == StatusCode::FORBIDDEN).then_some(r)
        }
    })
    .await;
    expect_s3_error(http.get(short), 403, "AccessDenied").await;
}

fn flip_hex(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    c[0] = if c[0] == '0' { '1' } else { '0' };
    c.into_iter().collect()
}

/// Send `req`, expect an S3 XML error with `status` and `code`, and a request id.
async fn expect_s3_error(req: reqwest::RequestBuilder, status: u16, code: &str) {
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), status);
    assert!(r.headers().contains_key("x-amz-request-id"));
    let text = r.text().await.unwrap();
    assert!(text.contains(&format!("<Code>{code}</Code>")), "{text}");
}

async fn auth_failures(c: &S3Cluster) {
    let ep = &c.endpoints[0];
    let p = Path::from("small/created");
    let wrong = store_with(ep, "os-bucket", ACCESS_KEY, "not-the-secret");
    let e = wrong.get(&p).await.unwrap_err();
    assert!(matches!(e, OsError::PermissionDenied { .. }), "{e}");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    let e = wrong
        .put(&p, PutPayload::from_static(b"evil"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    let unknown = store_with(ep, "os-bucket", "AKIAUNKNOWNKEY000000", SECRET_KEY);
    let e = unknown.head(&p).await.unwrap_err();
    // HEAD has no body: the status is all a client sees.
    assert!(matches!(e, OsError::PermissionDenied { .. }), "{e}");
    let e = unknown.get(&p).await.unwrap_err();
    assert!(e.to_string().contains("InvalidAccessKeyId"), "{e}");
    // Unsigned requests.
    let http = reqwest::Client::new();
    expect_s3_error(
        http.get(format!("{ep}/os-bucket/small/created")),
        403,
        "AccessDenied",
    )
    .await;
    expect_s3_error(http.get(format!("{ep}/")), 403, "AccessDenied").await;
    // The object is untouched.
    let s = store(ep, "os-bucket");
    assert_eq!(
        s.get(&p).await.unwrap().bytes().await.unwrap().as_ref(),
        b"new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_read_each_others_writes() {
    let c = S3Cluster::start(2).await;
    let run = async {
        create_bucket(&c, "two-gw").await;
        let gw = [
            Arc::new(store(&c.endpoints[0], "two-gw")),
            Arc::new(store(&c.endpoints[1], "two-gw")),
        ];
        for i in 0..50usize {
            let (w, r) = (&gw[i % 2], &gw[(i + 1) % 2]);
            let p = Path::from(format!("k/{i:03}"));
            // Create, read and list through the other gateway.
            let v1 = random_bytes(100 + i * 997, i as u64);
            let put = w.put(&p, PutPayload::from(v1.clone())).await.unwrap();
            let got = r.get(&p).await.unwrap();
            assert_eq!(got.meta.e_tag, put.e_tag, "key {i}: ETag via other gateway");
            assert!(
                got.bytes().await.unwrap().as_ref() == v1.as_slice(),
                "key {i}"
            );
            let listed: Vec<Path> = r
                .list(Some(&Path::from("k")))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .unwrap();
            assert!(listed.contains(&p), "key {i} not listed via other gateway");
            // Overwrite through the reader, check through the writer.
            let v2 = random_bytes(i * 13 + 1, 1_000 + i as u64);
            let put2 = r.put(&p, PutPayload::from(v2.clone())).await.unwrap();
            let head = w.head(&p).await.unwrap();
            assert_eq!(head.e_tag, put2.e_tag, "key {i}: overwrite not seen");
            assert_eq!(head.size, v2.len() as u64);
            assert!(w.get(&p).await.unwrap().bytes().await.unwrap().as_ref() == v2.as_slice());
            // Every other key is deleted through one gateway and must be gone on the other.
            if i % 2 == 1 {
                w.delete(&p).await.unwrap();
                let e = r.head(&p).await.unwrap_err();
                assert!(matches!(e, OsError::NotFound { .. }), "key {i}: {e}");
                let e = r.get(&p).await.unwrap_err();
                assert!(matches!(e, OsError::NotFound { .. }), "key {i}: {e}");
            }
        }
        // One hot key overwritten through alternating gateways: whole and ranged reads through
        // both see every version at once (multi-chunk values, so ranges hit the chunkservers).
        let hot = Path::from("hot");
        for round in 0..20usize {
            let v = random_bytes(5 * MIB + round * 4099, 7_000 + round as u64);
            let put = gw[round % 2]
                .put(&hot, PutPayload::from(v.clone()))
                .await
                .unwrap();
            for g in &gw {
                let got = g.get(&hot).await.unwrap();
                assert_eq!(got.meta.e_tag, put.e_tag, "round {round}");
                assert!(
                    got.bytes().await.unwrap().as_ref() == v.as_slice(),
                    "round {round}"
                );
                let r = (4 * MIB as u64 - 3)..(4 * MIB as u64 + 3);
                let part = g.get_range(&hot, r.clone()).await.unwrap();
                assert!(
                    part.as_ref() == &v[r.start as usize..r.end as usize],
                    "round {round}"
                );
            }
        }
        gw[0].delete(&hot).await.unwrap();
        for (g, name) in gw.iter().zip(["gateway-1", "gateway-2"]) {
            let listed: Vec<String> = g
                .list(Some(&Path::from("k")))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap();
            let want: Vec<String> = (0..50).step_by(2).map(|i| format!("k/{i:03}")).collect();
            assert_eq!(listed, want, "final listing via {name}");
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .unwrap_or_else(|_| panic!("timed out\n{}", c.logs()));
}
