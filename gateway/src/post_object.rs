//! POST Object: browser HTML form uploads (`POST /bucket`, `multipart/form-data`). A child of
//! [`crate::server`] (it drives the same key lookup and authorization).
//!
//! 1. The form is read with the streaming parser ([`crate::post_form`]) up to the `file`
//!    field; the fields before it are kept (at most [`MAX_PRE_FILE_BYTES`] in all, else
//!    `MaxPostPreDataLengthExceeded`); fields after it are not read, as in S3.
//! 2. Authentication from the fields: SigV4 (`x-amz-algorithm`, `x-amz-credential`,
//!    `x-amz-date`, `x-amz-signature`: hex HMAC-SHA256 of the base64 policy under the scope's
//!    signing key), SigV2 (`AWSAccessKeyId`, `signature`: base64 HMAC-SHA1 of the policy), or
//!    none (anonymous, no policy). A signed form's policy is decided by
//!    [`crate::post_policy::check_policy`].
//! 3. Authorization as a PutObject of the key by that principal (the same decision as a PUT:
//!    bucket policy, ACLs, ownership).
//! 4. The `file` part streams into the ordinary put path ([`handlers::put_object_stream`]),
//!    bounded by the policy's `content-length-range` (`EntityTooLarge` / `EntityTooSmall`)
//!    and by the largest PUT; a declared `x-amz-checksum-*` field is checked (`BadDigest`).
//! 5. The answer: `success_action_redirect` (or `redirect`) -> 303 to it with `bucket`, `key`
//!    and `etag` in the query; else `success_action_status` 200, 201 (with the XML
//!    `PostResponse`) or 204 (the default, and for any other value).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::{principal_label, unix_ms, Gateway, PeerAddr, ReqInfo, SecureTransport};
use crate::authz::{self, Principal};
use crate::aws_chunked::BodyDecoder;
use crate::backend::BodyStream;
use crate::body::{full, BodyError, RequestBody, RespBody};
use crate::checksum::PayloadChecksum;
use crate::error::S3Error;
use crate::handlers::{self, Ctx, MAX_PUT_OBJECT_BYTES};
use crate::post_form::{FormEvent, FormParser};
use crate::post_policy::{check_policy, parse_policy};
use crate::router::S3Op;
use crate::{sigv2, sigv4, xml};

/// Most bytes of field names and values before the `file` field.
pub const MAX_PRE_FILE_BYTES: usize = 20 * 1024;
/// Most form bytes around the file (part headers, delimiters, fields).
const FORM_OVERHEAD_BYTES: u64 = 1 << 20;

/// The form read up to its `file` field.
struct Form {
    /// (lower-case name, value) in order.
    fields: Vec<(String, String)>,
    /// The file part's filename.
    filename: Option<String>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The form's body, parsed on demand.
struct FormReader {
    raw: BodyStream,
    parser: FormParser,
    err: BodyError,
    ended: bool,
}

impl FormReader {
    async fn next(&mut self) -> Result<Option<FormEvent>, S3Error> {
        loop {
            if let Some(ev) = self.parser.next_event()? {
                return Ok(Some(ev));
            }
            if self.ended {
                return Ok(None);
            }
            match self.raw.next().await {
                Some(Ok(b)) => self.parser.push(&b),
                Some(Err(e)) => {
                    return Err(self
                        .err
                        .take()
                        .unwrap_or_else(|| S3Error::IncompleteBody(e.to_string())))
                }
                None => {
                    self.ended = true;
                    self.parser.finish();
                }
            }
        }
    }

    /// The fields up to the `file` part (whose start has been read when this returns).
    async fn read_fields(&mut self) -> Result<Form, S3Error> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut used = 0usize;
        let mut current: Option<(String, Vec<u8>)> = None;
        loop {
            let Some(ev) = self.next().await? else {
                return Err(S3Error::IncorrectNumberOfFilesInPostRequest);
            };
            match ev {
                FormEvent::Part { name, filename, .. } => {
                    let name = name.to_ascii_lowercase();
                    if name == "file" {
                        return Ok(Form { fields, filename });
                    }
                    used += name.len();
                    if used > MAX_PRE_FILE_BYTES {
                        return Err(S3Error::MaxPostPreDataLengthExceeded);
                    }
                    current = Some((name, Vec::new()));
                }
                FormEvent::Data(d) => {
                    used += d.len();
                    if used > MAX_PRE_FILE_BYTES {
                        return Err(S3Error::MaxPostPreDataLengthExceeded);
                    }
                    if let Some((_, v)) = &mut current {
                        v.extend_from_slice(&d);
                    }
                }
                FormEvent::PartEnd => {
                    if let Some((name, v)) = current.take() {
                        let v = String::from_utf8(v).map_err(|_| {
                            S3Error::InvalidArgument(format!("the form field {name} is not UTF-8"))
                        })?;
                        fields.push((name, v));
                    }
                }
                FormEvent::End => return Err(S3Error::IncorrectNumberOfFilesInPostRequest),
            }
        }
    }

    /// The `file` part's data as a payload stream, within `min..=max` bytes.
    /// A declared `x-amz-checksum-*` is checked at the end (`BadDigest`).
    fn into_file_stream(
        self,
        min: u64,
        max: u64,
        checksum: Option<PayloadChecksum>,
        err: BodyError,
    ) -> BodyStream {
        let state = ((self, checksum), 0u64, false);
        Box::pin(futures::stream::unfold(
            state,
            move |((mut r, mut checksum), mut total, done)| {
                let err = err.clone();
                async move {
                    if done {
                        return None;
                    }
                    let fail = |e: S3Error, r: FormReader, total| {
                        let io =
                            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
                        err.set(e);
                        Some((Err(io), ((r, None), total, true)))
                    };
                    loop {
                        match r.next().await {
                            Ok(Some(FormEvent::Data(d))) => {
                                total += d.len() as u64;
                                if total > max {
                                    return fail(S3Error::EntityTooLarge, r, total);
                                }
                                if d.is_empty() {
                                    continue;
                                }
                                if let Some(c) = &mut checksum {
                                    c.update(&d);
                                }
                                return Some((
                                    Ok::<Bytes, std::io::Error>(d),
                                    ((r, checksum), total, false),
                                ));
                            }
                            Ok(Some(FormEvent::PartEnd)) => {
                                if total < min {
                                    return fail(S3Error::EntityTooSmall, r, total);
                                }
                                if let Some(c) = checksum.take() {
                                    if let Err(e) = c.finish(None) {
                                        return fail(e, r, total);
                                    }
                                }
                                return None;
                            }
                            Ok(Some(_)) | Ok(None) => {
                                return fail(
                                    S3Error::MalformedPOSTRequest(
                                        "The body of your POST request is not well-formed multipart/form-data.".into(),
                                    ),
                                    r,
                                    total,
                                )
                            }
                            Err(e) => return fail(e, r, total),
                        }
                    }
                }
            },
        ))
    }
}

/// Form fields that become request headers of the stored object (besides `x-amz-meta-*` and
/// the other `x-amz-*` fields).
const HEADER_FIELDS: [&str; 6] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// `x-amz-*` form fields that authenticate the form (not object headers).
const AUTH_FIELDS: [&str; 5] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The headers the form's fields stand for.
fn form_headers(form: &Form) -> Result<HeaderMap, S3Error> {
    let mut h = HeaderMap::new();
    for (name, value) in &form.fields {
        let header = if name == "acl" {
            "x-amz-acl"
        } else if HEADER_FIELDS.contains(&name.as_str())
            || (name.starts_with("x-amz-") && !AUTH_FIELDS.contains(&name.as_str()))
        {
            name.as_str()
        } else {
            continue;
        };
        let n = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| S3Error::InvalidArgument(format!("invalid form field name {name}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| S3Error::InvalidArgument(format!("invalid value of form field {name}")))?;
        h.append(n, v);
    }
    Ok(h)
}

/// The response to a stored upload.
fn success_response(
    form: &Form,
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
    version_id: &str,
) -> Response<RespBody> {
    let quoted = xml::quote_etag(etag);
    let enc = |s: &str| crate::http_util::uri_encode(s, false);
    let redirect = form
        .get("success_action_redirect")
        .or_else(|| form.get("redirect"))
        .filter(|r| !r.is_empty());
    let mut r = match redirect {
        Some(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let to = format!(
                "{url}{sep}bucket={}&key={}&etag={}",
                enc(bucket),
                enc(key),
                enc(&quoted)
            );
            let mut r = Response::new(crate::body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        None => match form.get("success_action_status") {
            Some("200") => {
                let mut r = Response::new(crate::body::empty());
                *r.status_mut() = StatusCode::OK;
                r
            }
            Some("201") => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    xml_escape(location),
                    xml_escape(bucket),
                    xml_escape(key),
                    xml_escape(&quoted)
                );
                let mut r = Response::new(full(body));
                *r.status_mut() = StatusCode::CREATED;
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                r
            }
            _ => {
                let mut r = Response::new(crate::body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        },
    };
    if let Ok(v) = HeaderValue::from_str(&quoted) {
        r.headers_mut().insert(http::header::ETAG, v);
    }
    if !r.headers().contains_key(http::header::LOCATION) {
        if let Ok(v) = HeaderValue::from_str(location) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
    }
    if !version_id.is_empty() {
        if let Ok(v) = HeaderValue::from_str(version_id) {
            r.headers_mut().insert("x-amz-version-id", v);
        }
    }
    r
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl Gateway {
    /// Handle `POST /bucket` with a `multipart/form-data` body (see the module docs).
    pub(super) async fn post_object<B>(
        &self,
        parts: &http::request::Parts,
        body: B,
        bucket: String,
        boundary: &str,
        info: &mut ReqInfo,
        received: Option<Arc<AtomicU64>>,
    ) -> Result<Response<RespBody>, S3Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        info.op = "PostObject";
        tracing::Span::current().record("op", "PostObject");
        let err = BodyError::default();
        let mut raw = RequestBody::new(body, BodyDecoder::Raw).with_min_rate(self.cfg.min_rate);
        if let Some(counter) = received {
            raw = raw.with_received_counter(counter);
        }
        let raw = raw.into_stream(MAX_PUT_OBJECT_BYTES + FORM_OVERHEAD_BYTES, err.clone());
        let mut reader = FormReader {
            raw,
            parser: FormParser::new(boundary),
            err: err.clone(),
            ended: false,
        };
        let mut form = reader.read_fields().await?;
        // A `tagging` field holds a `<Tagging>` document; the put takes it as `x-amz-tagging`.
        let tagging = form
            .get("tagging")
            .map(|t| crate::tagging::parse_object_tagging(t.as_bytes()))
            .transpose()?;
        let key_template = form
            .get("key")
            .ok_or_else(|| {
                S3Error::InvalidArgument(
                    "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.".into(),
                )
            })?
            .to_string();
        let key = key_template.replace("${filename}", form.filename.as_deref().unwrap_or(""));
        for (n, v) in &mut form.fields {
            if n == "key" {
                *v = key.clone();
            }
        }
        info.key = Some(key.clone());
        let now_ms = unix_ms(&self.clock);
        let (principal, signed) = match self.authenticate_form(&form, info).await {
            Ok(v) => v,
            Err(e) => {
                if info.reason.is_none() {
                    info.reason = Some(format!("authentication: {}", e.aws_code()));
                }
                return Err(e);
            }
        };
        let (min, max) = match (signed, form.get("policy")) {
            (true, Some(policy)) => {
                let p = parse_policy(policy)?;
                check_policy(&p, &form.fields, &bucket, now_ms as i64)?
            }
            _ => (0, u64::MAX),
        };
        let mut headers = form_headers(&form)?;
        if let Some(tags) = tagging.filter(|t| !t.is_empty()) {
            let value = crate::tagging::header_value(&tags);
            headers.insert(
                "x-amz-tagging",
                HeaderValue::from_str(&value)
                    .map_err(|_| S3Error::InvalidArgument("invalid tagging field".into()))?,
            );
        }
        let op = S3Op::PutObject {
            bucket: bucket.clone(),
            key: key.clone(),
        };
        let actx = authz::context(
            parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
            parts.extensions.get::<SecureTransport>().is_some(),
            None,
        );
        let target = self
            .authorize(&principal, &op, &headers, &actx, false, info)
            .await?;
        info.allowed = true;
        let access_key = principal.access_key.clone();
        let query = crate::http_util::Query::default();
        let cx = Ctx {
            backend: &*self.backend,
            headers: &headers,
            query: &query,
            access_key: &access_key,
            principal: &principal,
            region: &self.cfg.region,
            now_ms,
            buckets: &self.buckets,
            authz: authz::Authorizer {
                principal: &principal,
                ctx: &actx,
                bucket: target,
            },
            listeners: &self.listeners,
            shutdown: &self.shutdown,
        };
        let checksum = PayloadChecksum::from_headers(&headers)?;
        let stream =
            reader.into_file_stream(min, max.min(MAX_PUT_OBJECT_BYTES), checksum, err.clone());
        let m = handlers::put_object_stream(&cx, &bucket, &key, stream, &err).await?;
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if parts.extensions.get::<SecureTransport>().is_some() {
            "https"
        } else {
            "http"
        };
        let location = format!(
            "{scheme}://{host}/{}/{}",
            crate::http_util::uri_encode(&bucket, false),
            crate::http_util::uri_encode(&key, true)
        );
        Ok(success_response(
            &form,
            &location,
            &bucket,
            &key,
            &m.etag,
            &m.version_id,
        ))
    }

    /// Who signed the form: `(principal, true)` for a signed form (its policy must then be
    /// checked), `(anonymous, false)` for an unsigned one.
    async fn authenticate_form(
        &self,
        form: &Form,
        info: &mut ReqInfo,
    ) -> Result<(Principal, bool), S3Error> {
        let missing = |f: &str| {
            S3Error::InvalidArgument(format!("Bucket POST must contain a field named '{f}'."))
        };
        if form.get("x-amz-security-token").is_some() {
            return Err(S3Error::InvalidToken(
                "The provided token is malformed or otherwise invalid (Anode issues no session tokens)".into(),
            ));
        }
        let v4 = form.get("x-amz-signature").is_some() || form.get("x-amz-algorithm").is_some();
        let v2 = form.get("awsaccesskeyid").is_some() || form.get("signature").is_some();
        if !v4 && !v2 {
            if form.get("policy").is_some() {
                return Err(missing("AWSAccessKeyId"));
            }
            info.principal = Some("anonymous".into());
            return Ok((Principal::anonymous(), false));
        }
        let policy = form.get("policy").ok_or_else(|| missing("policy"))?;
        let now = Instant::now();
        let key = if v4 {
            let algorithm = form
                .get("x-amz-algorithm")
                .ok_or_else(|| missing("x-amz-algorithm"))?;
            if algorithm != sigv4::ALGORITHM {
                return Err(S3Error::InvalidArgument(
                    "x-amz-algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
                ));
            }
            let credential = form
                .get("x-amz-credential")
                .ok_or_else(|| missing("x-amz-credential"))?;
            form.get("x-amz-date")
                .ok_or_else(|| missing("x-amz-date"))?;
            let signature = form
                .get("x-amz-signature")
                .ok_or_else(|| missing("x-amz-signature"))?;
            let (ak, date, region, service) = sigv4::parse_credential(credential)
                .ok_or_else(|| S3Error::InvalidArgument("Invalid x-amz-credential".into()))?;
            info.access_key = Some(ak.clone());
            let key = self.keys.key(&*self.backend, &ak, now).await?;
            key.check_usable(unix_ms(&self.clock))?;
            let signing = sigv4::signing_key(&key.secret, &date, &region, &service);
            let expected = sigv4::signature(&signing, policy);
            if !sigv4::constant_time_eq(
                expected.as_bytes(),
                signature.trim().to_ascii_lowercase().as_bytes(),
            ) {
                return Err(S3Error::SignatureDoesNotMatch);
            }
            key
        } else {
            let ak = form
                .get("awsaccesskeyid")
                .ok_or_else(|| missing("AWSAccessKeyId"))?;
            let signature = form.get("signature").ok_or_else(|| missing("Signature"))?;
            info.access_key = Some(ak.to_string());
            let key = self.keys.key(&*self.backend, ak, now).await?;
            key.check_usable(unix_ms(&self.clock))?;
            sigv2::verify_policy(policy, signature, &key.secret)?;
            key
        };
        info.principal = Some(principal_label(&key.principal));
        Ok((key.principal, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            filename: None,
        }
    }

    #[test]
    fn fields_become_headers() {
        let f = form(&[
            ("key", "k"),
            ("acl", "public-read"),
            ("content-type", "text/plain"),
            ("x-amz-meta-a", "b"),
            ("x-amz-credential", "AK/20130524/us-east-1/s3/aws4_request"),
            ("policy", "p"),
            ("success_action_status", "201"),
        ]);
        let h = form_headers(&f).unwrap();
        assert_eq!(h.get("x-amz-acl").unwrap(), "public-read");
        assert_eq!(h.get("content-type").unwrap(), "text/plain");
        assert_eq!(h.get("x-amz-meta-a").unwrap(), "b");
        assert_eq!(h.len(), 3);
        let bad = form(&[("content-type", "a\nb")]);
        assert_eq!(
            form_headers(&bad).unwrap_err().aws_code(),
            "InvalidArgument"
        );
    }

    #[test]
    fn success_statuses() {
        let loc = "http://h/b/k";
        let r = success_response(&form(&[]), loc, "b", "k", "e", "");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers().get("etag").unwrap(), "\"e\"");
        assert_eq!(r.headers().get("location").unwrap(), loc);
        for (s, want) in [
            ("200", 200),
            ("201", 201),
            ("204", 204),
            ("404", 204),
            ("x", 204),
        ] {
            let r = success_response(
                &form(&[("success_action_status", s)]),
                loc,
                "b",
                "k",
                "e",
                "",
            );
            assert_eq!(r.status().as_u16(), want, "{s}");
        }
        let r = success_response(
            &form(&[
                ("success_action_redirect", "http://app/done?x=1"),
                ("success_action_status", "201"),
            ]),
            loc,
            "b",
            "a b",
            "e",
            "",
        );
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers().get("location").unwrap(),
            "http://app/done?x=1&bucket=b&key=a%20b&etag=%22e%22"
        );
    }
}
