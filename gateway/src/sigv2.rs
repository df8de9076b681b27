//! AWS Signature Version 2 (HMAC-SHA1) for S3, as pure functions, for older clients
//! (`s3cmd signurl`, boto with `signature_version='s3'`).
//!
//! Two forms:
//! - header: `Authorization: AWS <AccessKeyId>:<base64 signature>`; the request time comes from
//!   `x-amz-date` or `Date` (RFC 1123) and must be within [`MAX_CLOCK_SKEW_SECS`] of ours
//!   (else `RequestTimeTooSkewed`);
//! - query (presigned URL): `AWSAccessKeyId`, `Signature`, `Expires` (Unix seconds); past
//!   `Expires` the URL is refused with 403 `AccessDenied` "Request has expired".
//!
//! The string to sign is exactly S3's:
//! ```text
//! VERB \n Content-MD5 \n Content-Type \n Date-or-Expires \n CanonicalizedAmzHeaders CanonicalizedResource
//! ```
//! where the Date line is empty when `x-amz-date` is given (header form), the amz headers are
//! every `x-amz-*` header, lower-cased, sorted, values trimmed and joined by `,`, one
//! `name:value\n` line each, and the resource is `/bucket/key` as sent (the bucket prepended for
//! virtual-hosted requests) followed by the sub-resources of [`SUBRESOURCES`] present in the
//! query, sorted by name, with decoded values.
//!
//! The body is not signed by SigV2 (a `Content-MD5` is still checked by the handlers), so a
//! verified request's payload mode is [`PayloadMode::Unsigned`].

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;

use crate::error::S3Error;
use crate::http_util::Query;
use crate::sigv4::{
    canonical_header_value, constant_time_eq, PayloadMode, Verified, MAX_CLOCK_SKEW_SECS,
};

type HmacSha1 = Hmac<Sha1>;

/// The query parameters that are part of the canonicalized resource (S3's list and the ones
/// botocore signs, sorted by name when signing).
pub const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// When the signature stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum V2Time {
    /// Header form: the request time (Unix seconds); the Date line of the string to sign is
    /// `date_line` (empty when `x-amz-date` was given).
    Header {
        /// Request time, Unix seconds.
        request_time: i64,
        /// The `Date` header as sent, or empty.
        date_line: String,
    },
    /// Query form: `Expires`, Unix seconds (also the Date line).
    Expires(i64),
}

/// The SigV2 parameters of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Params {
    /// Access key id.
    pub access_key: String,
    /// The signature given (base64).
    pub signature: String,
    /// Time checks and the Date line.
    pub time: V2Time,
}

/// The request as SigV2 covers it.
#[derive(Clone, Copy, Debug)]
pub struct V2Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Path as received (percent-encoded).
    pub raw_path: &'a str,
    /// The bucket of a virtual-hosted request (prepended to the resource), else `None`.
    pub vhost_bucket: Option<&'a str>,
    /// Decoded query pairs.
    pub query: &'a Query,
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// Whether the request is signed with SigV2 (header `AWS ...`, or `AWSAccessKeyId` in the
/// query); `parse` then reads it.
pub fn is_v2(headers: &HeaderMap, query: &Query) -> bool {
    match headers.get(http::header::AUTHORIZATION) {
        Some(v) => v.as_bytes().starts_with(b"AWS "),
        None => query.has("AWSAccessKeyId") && !query.has("X-Amz-Algorithm"),
    }
}

/// Read SigV2 parameters (`Ok(None)`: the request is not SigV2).
pub fn parse(headers: &HeaderMap, query: &Query) -> Result<Option<V2Params>, S3Error> {
    if !is_v2(headers, query) {
        return Ok(None);
    }
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let malformed = || {
            S3Error::AuthorizationHeaderMalformed(
                "Signature Version 2 is 'AWS AccessKeyId:Signature'".into(),
            )
        };
        let value = value.to_str().map_err(|_| malformed())?;
        let rest = value.strip_prefix("AWS ").ok_or_else(malformed)?.trim();
        let (ak, sig) = rest.rsplit_once(':').ok_or_else(malformed)?;
        if ak.is_empty() || sig.is_empty() {
            return Err(malformed());
        }
        let time = header_time(headers)?;
        return Ok(Some(V2Params {
            access_key: ak.trim().to_string(),
            signature: sig.trim().to_string(),
            time,
        }));
    }
    let denied = |m: &str| S3Error::AccessDenied(m.to_string());
    let ak = query.get("AWSAccessKeyId").unwrap_or_default();
    let sig = query
        .get("Signature")
        .ok_or_else(|| denied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"))?;
    let expires = query
        .get("Expires")
        .ok_or_else(|| denied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"))?;
    let expires: i64 = expires
        .trim()
        .parse()
        .map_err(|_| denied("Invalid date (should be seconds since epoch)"))?;
    Ok(Some(V2Params {
        access_key: ak.to_string(),
        // Base64 has no spaces: a '+' sent unencoded was decoded as one.
        signature: sig.replace(' ', "+"),
        time: V2Time::Expires(expires),
    }))
}

fn header_time(headers: &HeaderMap) -> Result<V2Time, S3Error> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let missing = || {
        S3Error::AccessDenied(
            "AWS authentication requires a valid Date or x-amz-date header".into(),
        )
    };
    if let Some(amz) = get("x-amz-date") {
        let t = parse_date(amz).ok_or_else(missing)?;
        return Ok(V2Time::Header {
            request_time: t,
            date_line: String::new(),
        });
    }
    let date = get("date").ok_or_else(missing)?;
    let t = parse_date(date).ok_or_else(missing)?;
    Ok(V2Time::Header {
        request_time: t,
        date_line: date.to_string(),
    })
}

/// An RFC 1123 date, `GMT` or `+0000` (s3cmd writes the latter).
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let gmt;
    let s = match s.strip_suffix("+0000") {
        Some(head) => {
            gmt = format!("{head}GMT");
            gmt.as_str()
        }
        None => s,
    };
    crate::http_util::parse_http_date_secs(s).map(|t| t as i64)
}

/// The canonicalized resource: the path as sent (with the virtual-hosted bucket in front) and
/// the signed sub-resources.
pub fn canonical_resource(req: &V2Request<'_>) -> String {
    let mut out = String::new();
    if let Some(b) = req.vhost_bucket {
        out.push('/');
        out.push_str(b);
    }
    out.push_str(if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    });
    let mut subs: Vec<(&str, &str)> = req
        .query
        .0
        .iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Stable: equal names keep their order on the wire.
    subs.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in subs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// The `x-amz-*` headers: `name:v1,v2\n` per name, sorted by name.
pub fn canonical_amz_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(headers, name));
        out.push('\n');
    }
    out
}

/// The string to sign (see the module docs). `date_line` is the Date header, empty, or the
/// `Expires` value.
pub fn string_to_sign(req: &V2Request<'_>, date_line: &str) -> String {
    let get = |n: &str| {
        req.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
    };
    format!(
        "{}\n{}\n{}\n{}\n{}{}",
        req.method,
        get("content-md5"),
        get("content-type"),
        date_line,
        canonical_amz_headers(req.headers),
        canonical_resource(req)
    )
}

/// Base64 HMAC-SHA1 of `string_to_sign` under `secret`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verify `p` over `req` with `secret` at `now` (Unix seconds).
pub fn verify(
    req: &V2Request<'_>,
    p: &V2Params,
    secret: &str,
    now: i64,
) -> Result<Verified, S3Error> {
    let date_line = match &p.time {
        V2Time::Header {
            request_time,
            date_line,
        } => {
            if (now - request_time).abs() > MAX_CLOCK_SKEW_SECS {
                return Err(S3Error::RequestTimeTooSkewed);
            }
            date_line.clone()
        }
        V2Time::Expires(expires) => {
            if now > *expires {
                return Err(S3Error::AccessDenied("Request has expired".into()));
            }
            expires.to_string()
        }
    };
    let expected = sign(secret, &string_to_sign(req, &date_line));
    let mut ok = constant_time_eq(expected.as_bytes(), p.signature.as_bytes());
    // A bucket addressed without its trailing slash (`/bucket`): botocore and s3cmd sign the
    // resource as `/bucket/`, as S3 names a bucket.
    if !ok && req.vhost_bucket.is_none() {
        let path = req.raw_path.trim_start_matches('/');
        if !path.is_empty() && !path.contains('/') {
            let slashed = format!("/{path}/");
            let alt = V2Request {
                raw_path: &slashed,
                ..*req
            };
            let expected = sign(secret, &string_to_sign(&alt, &date_line));
            ok = constant_time_eq(expected.as_bytes(), p.signature.as_bytes());
        }
    }
    if !ok {
        return Err(S3Error::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key: p.access_key.clone(),
        payload: PayloadMode::Unsigned,
        chunk_signer: None,
    })
}

/// Verify a SigV2 POST policy: base64 HMAC-SHA1 of the base64 policy itself.
pub fn verify_policy(policy_b64: &str, signature: &str, secret: &str) -> Result<(), S3Error> {
    let expected = sign(secret, policy_b64);
    if !constant_time_eq(expected.as_bytes(), signature.trim().as_bytes()) {
        return Err(S3Error::SignatureDoesNotMatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// AWS's documented example keys.
    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

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

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        vhost: Option<&'a str>,
        q: &'a Query,
        h: &'a HeaderMap,
    ) -> V2Request<'a> {
        V2Request {
            method,
            raw_path: path,
            vhost_bucket: vhost,
            query: q,
            headers: h,
        }
    }

    /// AWS S3 documentation ("Signing and Authenticating REST Requests"): Object GET.
    #[test]
    fn aws_object_get_example() {
        let h = headers(&[
            ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
        ]);
        let q = Query::default();
        let r = req(
            "GET",
            "/photos/puppy.jpg",
            Some("awsexamplebucket1"),
            &q,
            &h,
        );
        let sts = string_to_sign(&r, "Tue, 27 Mar 2007 19:36:42 +0000");
        assert_eq!(
            sts,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert_eq!(sign(SK, &sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
    }

    /// AWS: Object PUT with Content-Type and Content-Length.
    #[test]
    fn aws_object_put_example() {
        let h = headers(&[
            ("content-type", "image/jpeg"),
            ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ]);
        let q = Query::default();
        let r = req(
            "PUT",
            "/photos/puppy.jpg",
            Some("awsexamplebucket1"),
            &q,
            &h,
        );
        let sts = string_to_sign(&r, "Tue, 27 Mar 2007 21:15:45 +0000");
        assert_eq!(sign(SK, &sts), "iqRzw+ileNPu1fhspnRs8nOjjIA=");
    }

    /// AWS: List with a prefix (query not signed), and a `?acl` fetch (signed).
    #[test]
    fn aws_list_and_acl_examples() {
        let h = headers(&[("date", "Tue, 27 Mar 2007 19:42:41 +0000")]);
        let q = Query::parse("prefix=photos&max-keys=50&marker=puppy");
        let r = req("GET", "/", Some("awsexamplebucket1"), &q, &h);
        let sts = string_to_sign(&r, "Tue, 27 Mar 2007 19:42:41 +0000");
        assert!(sts.ends_with("\n/awsexamplebucket1/"), "{sts}");
        assert_eq!(sign(SK, &sts), "m0WP8eCtspQl5Ahe6L1SozdX9YA=");
        let h = headers(&[("date", "Tue, 27 Mar 2007 19:44:46 +0000")]);
        let q = Query::parse("acl");
        let r = req("GET", "/", Some("awsexamplebucket1"), &q, &h);
        let sts = string_to_sign(&r, "Tue, 27 Mar 2007 19:44:46 +0000");
        assert!(sts.ends_with("\n/awsexamplebucket1/?acl"), "{sts}");
        assert_eq!(sign(SK, &sts), "82ZHiFIjc+WbcwFKGUVEQspPn+0=");
    }

    /// AWS: DELETE with x-amz-date (the Date line is empty).
    #[test]
    fn aws_delete_with_amz_date() {
        let h = headers(&[
            ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
        ]);
        let q = Query::default();
        let r = req(
            "DELETE",
            "/awsexamplebucket1/photos/puppy.jpg",
            None,
            &q,
            &h,
        );
        let V2Time::Header { date_line, .. } = header_time(&h).unwrap() else {
            panic!()
        };
        assert_eq!(date_line, "");
        let sts = string_to_sign(&r, &date_line);
        assert_eq!(
            sts,
            "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert_eq!(sign(SK, &sts), "Ri1hpB1zpS9pGqR7y8kuNFCl4sE=");
    }

    /// AWS: Upload with multiple x-amz-meta values, Content-MD5 (the canonical headers).
    #[test]
    fn aws_upload_example_canonical_headers() {
        let h = headers(&[
            ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
            ("x-amz-acl", "public-read"),
            ("content-type", "application/x-download"),
            ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
            ("x-amz-meta-reviewedby", "joe@example.com"),
            ("x-amz-meta-reviewedby", "jane@example.com"),
            ("x-amz-meta-filechecksum", "0x02661779"),
            ("x-amz-meta-checksumalgorithm", "crc32"),
        ]);
        let q = Query::default();
        let r = req(
            "PUT",
            "/db-backup.dat.gz",
            Some("static.example.com"),
            &q,
            &h,
        );
        let sts = string_to_sign(&r, "Tue, 27 Mar 2007 21:06:08 +0000");
        assert_eq!(
            sts,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\nx-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz"
        );
        assert_eq!(sign(SK, &sts), "jtBQa0Aq+DkULFI8qrpwIjGEx0E=");
    }

    /// AWS: query string authentication example (the older documentation's `johnsmith` bucket).
    #[test]
    fn aws_query_example() {
        let q = Query::parse(&format!(
            "AWSAccessKeyId={AK}&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
        ));
        let h = headers(&[("host", "johnsmith.s3.amazonaws.com")]);
        let p = parse(&h, &q).unwrap().unwrap();
        assert_eq!(p.time, V2Time::Expires(1175139620));
        let r = req("GET", "/photos/puppy.jpg", Some("johnsmith"), &q, &h);
        verify(&r, &p, SK, 1175139620).unwrap();
        assert_eq!(
            verify(&r, &p, SK, 1175139621).unwrap_err(),
            S3Error::AccessDenied("Request has expired".into())
        );
        assert_eq!(
            verify(&r, &p, "wrong", 1175139000).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
        // Every x-amz-* header is signed: a presigned PUT cannot become a copy.
        let mut h2 = h.clone();
        h2.insert("x-amz-copy-source", "/other/secret".parse().unwrap());
        let r2 = req("GET", "/photos/puppy.jpg", Some("johnsmith"), &q, &h2);
        assert_eq!(
            verify(&r2, &p, SK, 1175139000).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
        // An unencoded '+' arrives as a space and still verifies.
        let q2 = Query::parse(&format!(
            "AWSAccessKeyId={AK}&Expires=1175139620&Signature=NpgCjnDzrM+WFzoENXmpNDUsSn8%3D"
        ));
        let p2 = parse(&h, &q2).unwrap().unwrap();
        let r2 = req("GET", "/photos/puppy.jpg", Some("johnsmith"), &q2, &h);
        verify(&r2, &p2, SK, 1175139000).unwrap();
    }

    #[test]
    fn header_form_and_errors() {
        let date = "Tue, 27 Mar 2007 19:36:42 GMT";
        let t = parse_date(date).unwrap();
        assert_eq!(parse_date("Tue, 27 Mar 2007 19:36:42 +0000"), Some(t));
        let q = Query::parse("uploadId=abc&partNumber=2&foo=bar");
        let mut h = headers(&[("date", date), ("x-amz-meta-a", " x  y ")]);
        let r = req("PUT", "/b/k%20x", None, &q, &h);
        let sts = string_to_sign(&r, date);
        assert!(sts.ends_with("x-amz-meta-a:x y\n/b/k%20x?partNumber=2&uploadId=abc"));
        let sig = sign(SK, &sts);
        h.insert("authorization", format!("AWS {AK}:{sig}").parse().unwrap());
        let p = parse(&h, &q).unwrap().unwrap();
        let r = req("PUT", "/b/k%20x", None, &q, &h);
        assert_eq!(verify(&r, &p, SK, t + 60).unwrap().access_key, AK);
        assert_eq!(
            verify(&r, &p, SK, t + 16 * 60).unwrap_err(),
            S3Error::RequestTimeTooSkewed
        );
        assert_eq!(
            verify(&r, &p, SK, t - 16 * 60).unwrap_err(),
            S3Error::RequestTimeTooSkewed
        );
        let other = req("GET", "/b/k%20x", None, &q, &h);
        assert_eq!(
            verify(&other, &p, SK, t).unwrap_err(),
            S3Error::SignatureDoesNotMatch
        );
        // Malformed headers, missing dates.
        for bad in ["AWS nocolon", "AWS :sig", "AWS ak:"] {
            let h = headers(&[("authorization", bad), ("date", date)]);
            assert_eq!(
                parse(&h, &q).unwrap_err().aws_code(),
                "AuthorizationHeaderMalformed",
                "{bad}"
            );
        }
        let h = headers(&[("authorization", "AWS ak:sig")]);
        assert_eq!(parse(&h, &q).unwrap_err().aws_code(), "AccessDenied");
        let q = Query::parse("AWSAccessKeyId=ak&Signature=x&Expires=soon");
        assert_eq!(
            parse(&HeaderMap::new(), &q).unwrap_err().aws_code(),
            "AccessDenied"
        );
        // A bucket without its slash is signed as `/bucket/` by botocore and s3cmd.
        let mut h = headers(&[("date", date)]);
        let q = Query::default();
        let sig = sign(SK, &format!("PUT\n\n\n{date}\n/bkt/"));
        h.insert("authorization", format!("AWS {AK}:{sig}").parse().unwrap());
        let p = parse(&h, &q).unwrap().unwrap();
        verify(&req("PUT", "/bkt", None, &q, &h), &p, SK, t).unwrap();
        verify(&req("PUT", "/bkt/", None, &q, &h), &p, SK, t).unwrap();
        assert!(verify(&req("PUT", "/bkt2", None, &q, &h), &p, SK, t).is_err());
        // SigV4 is not SigV2.
        let q = Query::parse("X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=x");
        assert_eq!(parse(&HeaderMap::new(), &q), Ok(None));
        assert_eq!(parse(&HeaderMap::new(), &Query::default()), Ok(None));
    }

    #[test]
    fn post_policy_signature() {
        let policy = base64::engine::general_purpose::STANDARD.encode(b"{\"expiration\":\"x\"}");
        let sig = sign(SK, &policy);
        verify_policy(&policy, &sig, SK).unwrap();
        assert_eq!(
            verify_policy(&policy, &sig, "other"),
            Err(S3Error::SignatureDoesNotMatch)
        );
    }

    proptest! {
        /// Signing then verifying the same request succeeds; any change of the path or of a
        /// signed sub-resource fails.
        #[test]
        fn sign_verify_round_trip(
            path in "/[a-z0-9%/._-]{0,40}",
            sub in proptest::sample::select(SUBRESOURCES),
            value in "[a-zA-Z0-9]{0,8}",
            expires in 0i64..4_000_000_000,
        ) {
            let raw = format!("{sub}={value}&AWSAccessKeyId={AK}&Expires={expires}");
            let q0 = Query::parse(&raw);
            let h = HeaderMap::new();
            let r0 = req("GET", &path, None, &q0, &h);
            let sig = sign(SK, &string_to_sign(&r0, &expires.to_string()));
            let enc: String = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC).to_string();
            let q = Query::parse(&format!("{raw}&Signature={enc}"));
            let p = parse(&h, &q).unwrap().unwrap();
            let r = req("GET", &path, None, &q, &h);
            prop_assert!(verify(&r, &p, SK, expires).is_ok());
            let moved = format!("{path}x");
            let r2 = req("GET", &moved, None, &q, &h);
            prop_assert_eq!(verify(&r2, &p, SK, expires).unwrap_err(), S3Error::SignatureDoesNotMatch);
            let q3 = Query::parse(&format!("{sub}={value}z&AWSAccessKeyId={AK}&Expires={expires}&Signature={enc}"));
            let r3 = req("GET", &path, None, &q3, &h);
            prop_assert_eq!(verify(&r3, &p, SK, expires).unwrap_err(), S3Error::SignatureDoesNotMatch);
        }
    }
}
