//! Writes the seed corpus, `fuzz/corpus/NAME/seed-*`, from the test vectors and the project's
//! own signing and encoding code: `cargo run -p anode-fuzz --example seeds`. Inputs found by
//! fuzzing and kept (minimized) sit beside the seeds under other names.

use std::path::{Path, PathBuf};

use anode_fuzz::gateway::{AK, DOMAIN, SK};
use anode_gateway::aws_chunked::encode_signed_chunks;
use anode_gateway::sigv4::{self, ChunkSigner, SignParams};
use anode_proto::command::Op;
use anode_proto::*;
use prost::Message;
use sha2::{Digest, Sha256};

const AMZ_DATE: &str = "20130524T000000Z";

fn params() -> SignParams<'static> {
    SignParams {
        access_key: AK,
        secret_key: SK,
        region: "us-east-1",
        amz_date: AMZ_DATE,
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn write(target: &str, name: &str, data: impl AsRef<[u8]>) {
    let dir = corpus().join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed");
}

const AWS_GET: &str = "GET /test.txt HTTP/1.1\nhost: examplebucket.s3.amazonaws.com\nrange: bytes=0-9\nx-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date: 20130524T000000Z\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\n\n";
const AWS_PUT: &str = "PUT /test%24file.text HTTP/1.1\nhost: examplebucket.s3.amazonaws.com\ndate: Fri, 24 May 2013 00:00:00 GMT\nx-amz-date: 20130524T000000Z\nx-amz-storage-class: REDUCED_REDUNDANCY\nx-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd\n\nWelcome to Amazon S3.";
const AWS_LIST: &str = "GET /?max-keys=2&prefix=J HTTP/1.1\nhost: examplebucket.s3.amazonaws.com\nx-amz-date: 20130524T000000Z\nx-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7\n\n";
const AWS_STREAM: &str = "PUT /examplebucket/chunkObject.txt HTTP/1.1\nhost: s3.amazonaws.com\nx-amz-date: 20130524T000000Z\nx-amz-storage-class: REDUCED_REDUNDANCY\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\ncontent-encoding: aws-chunked\nx-amz-decoded-content-length: 66560\ncontent-length: 66824\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n\n";
const AWS_PRESIGNED: &str = "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\nhost: examplebucket.s3.amazonaws.com\n\n";

/// A request signed by `sign_request` in the text form.
fn signed(method: &str, path: &str, query: &str, extra: &[(&str, &str)], body: &str) -> String {
    let mut h = http::HeaderMap::new();
    h.insert("host", "s3.local".parse().unwrap());
    for (k, v) in extra {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    sigv4::sign_request(method, path, query, &mut h, &payload, &params());
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut out = format!("{method} {target}\n");
    for (k, v) in &h {
        out.push_str(&format!("{k}: {}\n", v.to_str().unwrap()));
    }
    out.push('\n');
    out.push_str(body);
    out
}

fn sigv4_seeds() {
    for (n, r) in [
        ("aws-get", AWS_GET),
        ("aws-put", AWS_PUT),
        ("aws-list", AWS_LIST),
        ("aws-streaming", AWS_STREAM),
    ] {
        write("sigv4_header", n, r);
    }
    write(
        "sigv4_header",
        "signed-odd",
        signed(
            "PUT",
            "/b/a%20b/c~d%2B",
            "uploads&x=a+b&y=%2F",
            &[
                ("x-amz-meta-a", "  two   spaces "),
                ("x-amz-meta-a", "again"),
            ],
            "body",
        ),
    );
    write("sigv4_presigned", "aws-presigned", AWS_PRESIGNED);
    let q = sigv4::presign(
        "PUT",
        "/b/k%20x",
        "partNumber=1&uploadId=u1",
        "s3.local",
        3600,
        &params(),
    );
    write(
        "sigv4_presigned",
        "presigned-part",
        format!("PUT /b/k%20x?{q}\nhost: s3.local\n\n"),
    );
}

fn chunked_seeds() {
    let signer = ChunkSigner::new(
        &params(),
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
    );
    // Mode byte, [expected u16], split count, splits (u16 each), body.
    let framed = |mode: u8, splits: &[u16], body: &[u8]| {
        let mut v = vec![mode];
        if mode & 4 != 0 {
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.push(splits.len() as u8);
        for s in splits {
            v.extend_from_slice(&s.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    };
    let unsigned = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
    write(
        "aws_chunked",
        "unsigned-trailer",
        framed(0, &[3, 9], unsigned),
    );
    let signed = encode_signed_chunks(&signer, &[b'a'; 300], 128, &[]);
    write("aws_chunked", "signed", framed(1, &[1, 90, 2], &signed));
    let trailer = encode_signed_chunks(
        &signer,
        b"hello world",
        4,
        &[("x-amz-checksum-crc32", "DUoRhQ==")],
    );
    write(
        "aws_chunked",
        "signed-trailer",
        framed(2, &[7, 40], &trailer),
    );
    let mut rt = framed(3, &[5, 17], &[]);
    rt.extend_from_slice(&[0, 9, 1]);
    rt.extend_from_slice(b"round trip data of some length");
    write("aws_chunked", "round-trip", rt);
}

fn xml_seeds() {
    write(
        "xml_complete_multipart",
        "two-parts",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part><Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber>2</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>",
    );
    write(
        "xml_delete",
        "quiet",
        "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key><![CDATA[c<d]]></Key><VersionId>null</VersionId></Object></Delete>",
    );
    write(
        "xml_create_bucket",
        "location",
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <LocationConstraint>us-west-1</LocationConstraint>\n</CreateBucketConfiguration>",
    );
    write("xml_create_bucket", "empty", " \n");
    write(
        "xml_lifecycle",
        "legacy-prefix",
        "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ID>test1/</ID><Expiration><Days>31</Days></Expiration><Prefix>test1/</Prefix><Status>Enabled</Status></Rule><Rule><Prefix>test2/</Prefix><Status>Disabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>",
    );
    write(
        "xml_lifecycle",
        "filters",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration><Rule><ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan><ObjectSizeLessThan>100</ObjectSizeLessThan></And></Filter><Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration><NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule><Rule><ID>b</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule><Rule><Filter><Tag><Key>t</Key><Value></Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
    );
    write(
        "xml_tagging",
        "object",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet><Tag><Key>0</Key><Value>0</Value></Tag><Tag><Key>a &amp; b</Key><Value></Value></Tag><Tag><Key><![CDATA[c<d]]></Key><Value>é</Value></Tag></TagSet></Tagging>",
    );
    write("xml_tagging", "header", "foo=bar&bar&a%20b=c+d&%C3%A9=%26");
    write(
        "xml_tagging",
        "bucket-many",
        "<Tagging><TagSet><Tag><Key>k0</Key><Value>v0</Value></Tag><Tag><Key>k1</Key><Value>v1</Value></Tag><Tag><Key>k2</Key><Value>v2</Value></Tag><Tag><Key>k3</Key><Value>v3</Value></Tag><Tag><Key>k4</Key><Value>v4</Value></Tag><Tag><Key>k5</Key><Value>v5</Value></Tag><Tag><Key>k6</Key><Value>v6</Value></Tag><Tag><Key>k7</Key><Value>v7</Value></Tag><Tag><Key>k8</Key><Value>v8</Value></Tag><Tag><Key>k9</Key><Value>v9</Value></Tag><Tag><Key>k10</Key><Value>v10</Value></Tag><Tag><Key>k11</Key><Value>v11</Value></Tag></TagSet></Tagging>",
    );
}

fn cors_seeds() {
    write(
        "xml_cors",
        "rules",
        "<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><CORSRule><ID>web</ID><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>HEAD</AllowedMethod></CORSRule></CORSConfiguration>",
    );
    write(
        "xml_cors",
        "bad-method",
        "<CORSConfiguration><CORSRule><AllowedOrigin>a*b</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>",
    );
}

fn notification_seeds() {
    for (name, doc) in NOTIFICATION_SEEDS {
        write("xml_notification", name, doc);
    }
}

/// The `xml_notification` seeds (also written by hand to fuzz/corpus/xml_notification/).
const NOTIFICATION_SEEDS: [(&str, &str); 4] = [
    (
        "rules",
        "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><QueueConfiguration><Id>images</Id><Queue>arn:aws:sqs:us-east-1:123456789012:hooks</Queue><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:Delete</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>images/</Value></FilterRule><FilterRule><Name>Suffix</Name><Value>.jpg</Value></FilterRule></S3Key></Filter></QueueConfiguration><TopicConfiguration><Topic>arn:minio:sqs::1:other</Topic><Event>s3:ObjectTagging:*</Event></TopicConfiguration><CloudFunctionConfiguration><CloudFunction>arn:anode:lambda::fn_1</CloudFunction><Event>s3:ObjectRemoved:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>logs/</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>",
    ),
    ("empty", "<NotificationConfiguration/>"),
    (
        "overlap",
        "<NotificationConfiguration><QueueConfiguration><Queue>arn:anode:sqs::a</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration><QueueConfiguration><Queue>arn:anode:sqs::b</Queue><Event>s3:ObjectCreated:Put</Event><Filter><S3Key><FilterRule><Name>suffix</Name><Value> x</Value></FilterRule></S3Key></Filter></QueueConfiguration></NotificationConfiguration>",
    ),
    (
        "eventbridge",
        "<NotificationConfiguration><EventBridgeConfiguration/></NotificationConfiguration>",
    ),
];

fn access_seeds() {
    let alice = anode_meta::authz::canonical_id("alice");
    let bob = anode_meta::authz::canonical_id("bob");
    let xsi = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    let acl = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>{alice}</ID><DisplayName>alice</DisplayName></Owner><AccessControlList><Grant><Grantee {xsi} xsi:type=\"CanonicalUser\"><ID>{alice}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant><Grant><Grantee {xsi} xsi:type=\"CanonicalUser\"><ID>{bob}</ID><DisplayName>bob</DisplayName></Grantee><Permission>WRITE_ACP</Permission></Grant><Grant><Grantee {xsi} xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant><Grant><Grantee {xsi} xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AuthenticatedUsers</URI></Grantee><Permission>READ_ACP</Permission></Grant></AccessControlList></AccessControlPolicy>"
    );
    write("xml_access", "acl", &acl);
    write(
        "xml_access",
        "acl-email",
        format!("<AccessControlPolicy><AccessControlList><Grant><Grantee {xsi} xsi:type=\"AmazonCustomerByEmail\"><EmailAddress>a@example.com</EmailAddress></Grantee><Permission>WRITE</Permission></Grant></AccessControlList></AccessControlPolicy>"),
    );
    write(
        "xml_access",
        "public-access-block",
        "<PublicAccessBlockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>false</IgnorePublicAcls><BlockPublicPolicy>TRUE</BlockPublicPolicy><RestrictPublicBuckets>false</RestrictPublicBuckets></PublicAccessBlockConfiguration>",
    );
    write(
        "xml_access",
        "ownership-controls",
        "<OwnershipControls xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>",
    );
    write(
        "xml_access",
        "grant-headers",
        format!("PUT /b?acl\nx-amz-grant-read: id=\"{alice}\", uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"\nx-amz-grant-full-control: id={bob}\nx-amz-grant-write-acp: uri=\"http://acs.amazonaws.com/groups/global/AuthenticatedUsers\"\nx-amz-object-ownership: ObjectWriter\n\n"),
    );
    write(
        "xml_access",
        "canned-and-body",
        format!("PUT /b/k?acl\nx-amz-acl: bucket-owner-full-control\n\n{acl}"),
    );
    write("xml_access", "body-only", format!("PUT /b?acl\n\n{acl}"));
}

fn route_seeds() {
    for (n, r) in [
        ("put-copy", "PUT /b/k?partNumber=3&uploadId=0123456789abcdef0123456789abcdef\nhost: s3.local\nx-amz-copy-source: /src/a%20b?versionId=null\nx-amz-copy-source-range: bytes=0-9\nx-amz-copy-source-if-match: \"abc\"\n\n"),
        ("virtual-host", "GET /some/key?response-content-type=text/plain&versionId=null\nhost: bkt.s3.local:9000\nif-none-match: W/\"x\", \"y\"\nif-modified-since: Fri, 24 May 2013 00:00:00 GMT\n\n"),
        ("list-v2", "GET /bkt?list-type=2&continuation-token=AWs&encoding-type=url&prefix=a+b%2F\nhost: s3.local\n\n"),
        ("put-meta", "PUT /bkt/k\nhost: [::1]:9000\nx-amz-meta-a: 1\nx-amz-meta-a: 2\ncontent-encoding: aws-chunked,gzip\ncontent-md5: 1B2M2Y8AsgTpgAmY7PhCfg==\nx-amz-checksum-crc32: AAAAAA==\nx-amz-server-side-encryption: AES256\n\n"),
        ("trailer", "PUT /bkt/k\nhost: s3.local\nx-amz-trailer: x-amz-checksum-sha256\nx-fuzz-trailer: abc=\n\n"),
        ("delete", "POST /bkt?delete\nhost: s3.local\n\n"),
    ] {
        write("s3_route", n, r);
    }
}

fn range_seeds() {
    write(
        "range_copy_source",
        "basic",
        "100\nbytes=0-9\nbytes=10-19\nsrc/key",
    );
    write(
        "range_copy_source",
        "suffix",
        "0\nbytes=-5\nBYTES=1-0\n/b/%E2%82%AC",
    );
    write("range_copy_source", "open", "18446744073709551615\nbytes=18446744073709551614-\nbytes=0-18446744073709551614\nb/k?versionId=v1");
}

fn gateway_seeds() {
    let sep = "\n=====\n";
    let put = signed(
        "PUT",
        "/bkt/k1",
        "",
        &[("content-type", "text/plain")],
        "hello",
    );
    let s = [
        "PUT /bkt\n\n".to_string(),
        "PUT /bkt/k1\ncontent-type: text/plain\nx-amz-meta-a: b\n\nhello world".into(),
        "GET /bkt/k1\nrange: bytes=2-5\n\n".into(),
        "HEAD /bkt/k1\nif-none-match: *\n\n".into(),
        "GET /bkt?list-type=2&prefix=k&delimiter=/&max-keys=1\n\n".into(),
        "PUT /bkt/k2\nx-amz-copy-source: /bkt/k1\n\n".into(),
        "POST /bkt?delete\n\n<Delete><Object><Key>k2</Key></Object></Delete>".into(),
        "GET /bkt/k2\n\n".into(),
    ]
    .join(sep);
    write("gateway_request", "objects", s);
    let mp = [
        "PUT /bkt\n\n",
        "PUT /bkt/src\n\n0123456789",
        "POST /bkt/big?uploads\n\n",
        "PUT /bkt/big?partNumber=1&uploadId=00000000000000000000000000000001\n\npart one",
        "PUT /bkt/big?partNumber=2&uploadId=00000000000000000000000000000001\nx-amz-copy-source: bkt/src\nx-amz-copy-source-range: bytes=2-5\n\n",
        "GET /bkt/big?uploadId=00000000000000000000000000000001\n\n",
        "GET /bkt?uploads\n\n",
        "POST /bkt/big?uploadId=00000000000000000000000000000001\n\n<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>PART2</ETag></Part></CompleteMultipartUpload>",
        "GET /bkt/big\nrange: bytes=1-2\n\n",
        "DELETE /bkt/big?uploadId=00000000000000000000000000000001\n\n",
    ]
    .join(sep)
    .replace("PART2", &hex::encode(md5::Md5::digest(b"2345")));
    write("gateway_request", "multipart", mp);
    let streaming = [
        "PUT /bkt\n\n",
        "PUT /bkt/s\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nx-fuzz-chunk-size: 3\n\nstreamed body",
        "PUT /bkt/t\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\ncontent-encoding: aws-chunked\nx-amz-trailer: x-amz-checksum-crc32\n\n5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n",
        "GET /bkt/s\n\n",
    ]
    .join(sep);
    write("gateway_request", "streaming", streaming);
    let notify = [
        "PUT /bkt\n\n",
        "PUT /bkt?notification\n\n<NotificationConfiguration><QueueConfiguration><Queue>arn:anode:sqs::hooks</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration></NotificationConfiguration>",
        "GET /bkt?notification\n\n",
        "GET /bkt?events=s3%3AObjectCreated%3A%2A&prefix=a%2F&ping=1\n\n",
        "PUT /bkt?notification\n\n<NotificationConfiguration/>",
    ]
    .join(sep);
    write("gateway_request", "notification", notify);
    write(
        "gateway_request",
        "presigned-signed",
        format!("{put}{sep}GET /bkt/k1\n\n"),
    );
}

fn rpc(kind: u8, msg: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

fn chunkserver_seeds() {
    let data = b"hello chunk".to_vec();
    let sha = Sha256::digest(&data).to_vec();
    let header = PutChunkRequest {
        header: Some(PutChunkHeader {
            sha256: sha.clone(),
            length: data.len() as u64,
            epoch: 0,
        }),
        data: data[..5].to_vec().into(),
    };
    let rest = PutChunkRequest {
        header: None,
        data: data[5..].to_vec().into(),
    };
    let get = GetChunkRequest {
        sha256: sha.clone(),
        offset: 3,
        length: 4,
        verify: true,
    };
    let stat = StatChunkRequest {
        sha256: sha.clone(),
        touch: true,
    };
    let mut s = rpc(0, &header.encode_to_vec());
    s.extend(rpc(1, &rest.encode_to_vec()));
    s.extend(rpc(2, &get.encode_to_vec()));
    s.extend(rpc(3, &stat.encode_to_vec()));
    write("chunkserver_rpc", "put-get-stat", s);
    let empty = PutChunkRequest {
        header: Some(PutChunkHeader {
            sha256: Sha256::digest([]).to_vec(),
            length: 0,
            epoch: 0,
        }),
        data: Default::default(),
    };
    let mut s = rpc(0, &empty.encode_to_vec());
    s.extend(rpc(
        2,
        &GetChunkRequest {
            sha256: vec![1],
            ..Default::default()
        }
        .encode_to_vec(),
    ));
    s.extend(rpc(3, &[0x0a, 0x20]));
    write("chunkserver_rpc", "empty-and-bad", s);
}

fn command(op: Op) -> Vec<u8> {
    Command {
        version: COMMAND_VERSION,
        now_ms: 1_000,
        session: None,
        op: Some(op),
    }
    .encode_to_vec()
}

fn master_seeds() {
    let chunk = |b: u8, len: u64| ChunkRef {
        sha256: vec![b; 32],
        length: len,
        servers: vec![1],
        uploaded_ms: 900,
    };
    let cmds = [
        Op::CreateBucket(CreateBucketCmd {
            config: Some(BucketConfig {
                version: RECORD_VERSION,
                name: "bkt".into(),
                ..Default::default()
            }),
        }),
        Op::RegisterChunkserver(RegisterChunkserverCmd {
            addr: "127.0.0.1:7101".into(),
            uuid: "u-1".into(),
            capacity_bytes: 1 << 30,
            ..Default::default()
        }),
        Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: "bkt".into(),
            key: "k".into(),
            manifest: Some(Manifest {
                version: MANIFEST_VERSION,
                size: 30,
                etag: "0123456789abcdef0123456789abcdef".into(),
                chunks: vec![chunk(1, 10), chunk(2, 20)],
                ..Default::default()
            }),
            if_match_etag: None,
            source: String::new(),
            ..Default::default()
        }),
        Op::CreateMultipart(CreateMultipartCmd {
            upload: Some(MultipartUpload {
                version: RECORD_VERSION,
                bucket: "bkt".into(),
                key: "m".into(),
                upload_id: "0123456789abcdef0123456789abcdef".into(),
                ..Default::default()
            }),
        }),
        Op::PutPart(PutPartCmd {
            bucket: "bkt".into(),
            key: "m".into(),
            upload_id: "0123456789abcdef0123456789abcdef".into(),
            part: Some(PartRecord {
                version: RECORD_VERSION,
                part_number: 1,
                etag: "0123456789abcdef0123456789abcdef".into(),
                size: 10,
                chunks: vec![chunk(1, 10)],
                ..Default::default()
            }),
        }),
        Op::CompleteMultipart(CompleteMultipartCmd {
            bucket: "bkt".into(),
            key: "m".into(),
            upload_id: "0123456789abcdef0123456789abcdef".into(),
            parts: vec![CompletePart {
                part_number: 1,
                etag: "0123456789abcdef0123456789abcdef".into(),
            }],
            if_match_etag: None,
        }),
        Op::DeleteObject(DeleteObjectCmd {
            bucket: "bkt".into(),
            key: "k".into(),
            ..Default::default()
        }),
        Op::TombstoneChunks(TombstoneChunksCmd {
            sha256: vec![vec![2; 32]],
        }),
        Op::ChunkDeleted(ChunkDeletedCmd {
            sha256: vec![2; 32],
        }),
    ];
    let mut s = Vec::new();
    for op in cmds {
        let c = command(op);
        s.extend_from_slice(&(c.len() as u16).to_be_bytes());
        s.extend_from_slice(&c);
    }
    write("master_apply", "lifecycle", s);
    // master_ops: create bucket, put object with two chunks, delete it, complete a multipart.
    write(
        "master_ops",
        "bytes-a",
        [0u8, 0, 0, 0, 3, 2, 0, 0, 1, 2, 1, 0, 5, 1, 1, 7, 3],
    );
    write(
        "master_ops",
        "bytes-b",
        [
            1u8, 0, 0, 1, 12, 0, 0, 0, 0, 1, 13, 0, 0, 0, 0, 0, 1, 1, 1, 14, 0, 0, 0, 1, 1, 0,
        ],
    );
    let b = BucketConfig {
        version: RECORD_VERSION,
        name: "bkt".into(),
        replication: 3,
        ..Default::default()
    };
    let mut rec = vec![0u8];
    rec.extend(b.encode_to_vec());
    write("master_records", "bucket", rec);
    let m = Manifest {
        version: 0,
        size: 3,
        inline_data: b"abc".to_vec(),
        ..Default::default()
    };
    let mut rec = vec![1u8];
    rec.extend(m.encode_to_vec());
    write("master_records", "manifest-v0", rec);
    write("master_records", "validators", b"\x0abkt\nkey=value\nx=y");
}

fn control_seeds() {
    let rec = |kind: u8, step: u8, msg: &[u8]| {
        let mut v = vec![kind, step];
        v.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        v.extend_from_slice(msg);
        v
    };
    let hb = |id: u64, added: Vec<Vec<u8>>, full: bool| HeartbeatRequest {
        id,
        epoch: 1,
        capacity_bytes: 1 << 30,
        used_bytes: 200,
        chunks: added.len() as u64,
        added,
        full_report: full,
        ..Default::default()
    };
    let mut s = Vec::new();
    s.extend(rec(
        0,
        4,
        &hb(1, vec![vec![1; 32], vec![2; 32]], true).encode_to_vec(),
    ));
    s.extend(rec(0, 0, &hb(2, vec![vec![1; 32]], true).encode_to_vec()));
    s.extend(rec(0, 0, &hb(3, vec![], true).encode_to_vec()));
    let alloc = AllocateChunksRequest {
        bucket: "bkt".into(),
        sha256: vec![vec![5; 32], vec![6; 32]],
        exclude: vec![2],
    };
    s.extend(rec(1, 1, &alloc.encode_to_vec()));
    let locate = LocateChunksRequest {
        sha256: vec![vec![1; 32], vec![9]],
    };
    s.extend(rec(2, 1, &locate.encode_to_vec()));
    let bad = ReportBadChunkRequest {
        sha256: vec![2; 32],
        server_id: 1,
        reason: "scrub".into(),
    };
    s.extend(rec(3, 1, &bad.encode_to_vec()));
    s.extend(rec(4, 40, &[]));
    let mut done = hb(1, vec![], false);
    done.done_commands = vec![1, 2];
    done.failed_commands = vec![3];
    done.removed = vec![vec![2; 32]];
    done.corrupt = vec![vec![1; 32]];
    s.extend(rec(0, 8, &done.encode_to_vec()));
    s.extend(rec(4, 255, &[]));
    write("master_control", "heartbeats-alloc-sweep", s);
}

fn blocksums_seeds() {
    use anode_chunkserver::blocksums::{crc32c, BlockSums};
    let range = |offset: u64, len: u64| {
        let mut v = offset.to_be_bytes().to_vec();
        v.extend_from_slice(&len.to_be_bytes());
        v
    };
    for (name, blob_len, offset, len) in [
        ("small", 1000u64, 10u64, 100u64),
        ("chunk", 4 << 20, 100_000, 300_000),
        ("large", 64 << 20, 1 << 20, 5 << 20),
    ] {
        let block_bytes = anode_chunkserver::blocksums::block_bytes_for(blob_len);
        let sums = BlockSums {
            block_bytes,
            blob_len,
            sums: (0..blob_len.div_ceil(block_bytes))
                .map(|i| crc32c(&i.to_le_bytes()))
                .collect(),
        };
        let mut v = range(offset, len);
        v.extend(sums.encode());
        write("blocksums", name, v);
    }
    // Without the trailer: the body recomputes it.
    let mut v = range(0, 1);
    let enc = BlockSums {
        block_bytes: 64 << 10,
        blob_len: 1,
        sums: vec![crc32c(b"x")],
    }
    .encode();
    v.extend_from_slice(&enc[..enc.len() - 4]);
    write("blocksums", "no-trailer", v);
}

/// Real bucket policies (the shapes the AWS documentation and tools write) for bucket
/// `fuzz-bucket`, a record, and a few refused ones.
fn authz_seeds() {
    let b = anode_fuzz::authz::BUCKET;
    let seeds = [
        ("public-read", format!(r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":["arn:aws:s3:::{b}/*"]}}]}}"#)),
        ("user-read-write", format!(r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"ListBob","Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::anode:user/bob"]}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::{b}","Condition":{{"StringLike":{{"s3:prefix":["home/bob/*","home/"]}}}}}},{{"Sid":"RWBob","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::anode:user/bob"}},"Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":"arn:aws:s3:::{b}/home/bob/*"}}]}}"#)),
        ("deny-insecure", format!(r#"{{"Version":"2012-10-17","Statement":{{"Sid":"DenyInsecure","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{b}","arn:aws:s3:::{b}/*"],"Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}}}"#)),
        ("ip-allow-deny", format!(r#"{{"Version":"2012-10-17","Id":"S3PolicyId1","Statement":[{{"Sid":"IPAllow","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{b}","arn:aws:s3:::{b}/*"],"Condition":{{"IpAddress":{{"aws:SourceIp":["192.0.2.0/24","2001:DB8:1234:5678::/64"]}},"NotIpAddress":{{"aws:SourceIp":"192.0.2.188/32"}}}}}},{{"Sid":"NoSecret","Effect":"Deny","Principal":{{"AWS":"*"}},"NotAction":["s3:List*","s3:Get*"],"NotResource":"arn:aws:s3:::{b}/public/*"}}]}}"#)),
        ("tags-and-canonical", format!(r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"CanonicalUser":"{}"}},"Action":"s3:Get*","Resource":"arn:aws:s3:::{b}/*","Condition":{{"StringEquals":{{"s3:ExistingObjectTag/class":"public"}},"Null":{{"s3:prefix":"true"}}}}}}]}}"#, anode_meta::authz::canonical_id("bob"))),
        ("not-principal", format!(r#"{{"Statement":[{{"Effect":"Deny","NotPrincipal":{{"AWS":"arn:aws:iam::anode:user/bob"}},"Action":"s3:*","Resource":"arn:aws:s3:::{b}/*"}}]}}"#)),
        ("other-bucket", r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#.to_string()),
    ];
    for (name, text) in seeds {
        write("authz_policy", name, text);
    }
    let mut rec = anode_meta::authz::BucketAccessRecord::new_bucket(
        &anode_meta::authz::canonical_id("alice"),
        anode_meta::authz::CannedAcl::PublicRead,
    );
    rec.policy = Some(r#"{"Statement":[]}"#.into());
    write("authz_policy", "record", rec.encode());
}

fn main() {
    control_seeds();
    sigv4_seeds();
    chunked_seeds();
    xml_seeds();
    access_seeds();
    cors_seeds();
    notification_seeds();
    route_seeds();
    range_seeds();
    gateway_seeds();
    chunkserver_seeds();
    master_seeds();
    blocksums_seeds();
    authz_seeds();
    auth_seeds();
    parquet_seeds();
    let _ = DOMAIN;
    println!("seeds written under {}", corpus().display());
}

/// SigV2 and POST Object (issue 15): the seeds are committed as written by hand from the AWS
/// examples and the unit tests (`fuzz/corpus/{sigv2,post_form,post_policy}/seed-*`); this
/// only checks they are there.
fn auth_seeds() {
    for t in ["sigv2", "post_form", "post_policy"] {
        let n = std::fs::read_dir(corpus().join(t)).map_or(0, |d| d.count());
        assert!(n > 0, "fuzz/corpus/{t} has no seeds");
    }
}

/// Parquet awareness (issue 16): predicates covering the language (and a few errors), and
/// small Parquet files written by the `parquet` crate (flat with NULLs, NaN and long strings;
/// nested, repeated, unsigned and decimal leaves).
fn parquet_seeds() {
    for (name, text) in [
        ("cmp", "i >= 10 AND f < 2.5e0 OR s = 'b''c'"),
        ("flipped", "5 < i AND -0.5 <= f"),
        (
            "in",
            "s NOT IN ('a', 'bb', 'c') OR u IN (1, 18446744073709551615)",
        ),
        (
            "between",
            "d BETWEEN 1 AND 2 AND NOT (i NOT BETWEEN -3 AND 3)",
        ),
        ("null", "x IS NULL OR r IS NOT NULL OR \"a\".b = 1"),
        ("bool", "b = TRUE AND b <> false"),
        ("deep", "NOT (NOT ((i = 1) OR (f != 1.0)))"),
        ("error", "i = 'unterminated"),
    ] {
        write("parquet_predicate", name, text);
    }
    write("parquet_footer", "flat", parquet_flat());
    write("parquet_footer", "nested", parquet_nested());
}

fn parquet_writer<'a>(
    schema: &str,
    out: &'a mut Vec<u8>,
) -> parquet::file::writer::SerializedFileWriter<&'a mut Vec<u8>> {
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    let schema = std::sync::Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
    let props = WriterProperties::builder()
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    parquet::file::writer::SerializedFileWriter::new(out, schema, std::sync::Arc::new(props))
        .unwrap()
}

fn parquet_flat() -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    let mut out = Vec::new();
    let mut w = parquet_writer(
        "message t { optional int64 i; optional double f; optional binary s (STRING); }",
        &mut out,
    );
    let long = "\u{ff}".repeat(50);
    for g in 0..2i64 {
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int64Type>()
            .write_batch(&[g, g + 10], Some(&[1, 0, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<DoubleType>()
            .write_batch(&[f64::NAN, 1.5, -0.0], Some(&[1, 1, 1]), None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        let vals = [ByteArray::from("apple"), ByteArray::from(long.as_str())];
        c.typed::<ByteArrayType>()
            .write_batch(&vals, Some(&[1, 1, 0]), None)
            .unwrap();
        c.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
    out
}

fn parquet_nested() -> Vec<u8> {
    use parquet::data_type::{Int32Type, Int64Type};
    let mut out = Vec::new();
    let mut w = parquet_writer(
        "message n { optional group a { optional int32 b; } repeated int64 r; \
         required int32 u (INTEGER(32, false)); required int32 d (DECIMAL(9, 2)); }",
        &mut out,
    );
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int32Type>()
        .write_batch(&[1], Some(&[2, 1]), None)
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int64Type>()
        .write_batch(&[1, 2, 3], Some(&[1, 1, 1, 0]), Some(&[0, 1, 1, 0]))
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int32Type>()
        .write_batch(&[-5, 5], None, None)
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int32Type>()
        .write_batch(&[125, 250], None, None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
    out
}
