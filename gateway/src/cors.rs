//! S3 CORS (issue 15): Get/Put/DeleteBucketCors, preflight `OPTIONS` requests answered from
//! the bucket's rules without a signature, and the CORS headers on actual responses (presigned
//! ones and errors included, as S3 sends them).
//!
//! The rules' meaning (which rule allows a request) is [`anode_meta::cors`]; this module is
//! the XML both ways and the HTTP around it.
//!
//! - Preflight (`OPTIONS` on a bucket or object): 400 `BadRequest` without `Origin` or without
//!   `Access-Control-Request-Method`; 403 `AccessForbidden` when the bucket has no rules or no
//!   rule allows the origin, method and every requested header; else 200 with
//!   `Access-Control-Allow-Origin` (the origin, or `*` when the rule allows `*`),
//!   `-Allow-Methods` (the rule's), `-Allow-Headers` (the requested ones), `-Expose-Headers`,
//!   `-Max-Age`, `-Allow-Credentials: true` (not with `*`) and `Vary`.
//! - Actual requests with an `Origin`: the first rule allowing the origin and the method (the
//!   request's, or the one `Access-Control-Request-Method` names, as RGW does) adds the same
//!   headers, whatever the response's status.
//!
//! Consistency: the rules come from the gateway's bucket cache, so a change made through
//! another gateway takes effect here within the cache's TTL (2 s by default).

use anode_meta::cors::{find_rule, split_header_list};
use anode_proto::{CorsConfig, CorsRule};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::{RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, status_only, xml_ok, Ctx};
use crate::xml::{expect_root, parse_tree, XmlNode, XmlWriter};

/// Largest PutBucketCors body accepted (S3's limit on a CORS configuration is 64 KB).
pub const MAX_CORS_BODY_BYTES: usize = 64 << 10;

const RULE_CHILDREN: &[&str] = &[
    "ID",
    "AllowedOrigin",
    "AllowedMethod",
    "AllowedHeader",
    "ExposeHeader",
    "MaxAgeSeconds",
];

/// Parse a PutBucketCors body (`CORSConfiguration` of `CORSRule`s) and validate it.
/// Malformed documents, unknown elements, a repeated `ID` or `MaxAgeSeconds`, a rule without
/// origin or method, and a non-integer `MaxAgeSeconds` are `MalformedXML`; what S3 refuses in
/// a well-formed rule (an unsupported method, two wildcards, over 100 rules) is
/// `InvalidRequest`.
pub fn parse_cors(body: &[u8]) -> Result<CorsConfig, S3Error> {
    if body.len() > MAX_CORS_BODY_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "CORSConfiguration")?;
    if root.children.iter().any(|c| c.name != "CORSRule") || root.children.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    let rules = root
        .children
        .iter()
        .map(rule)
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = CorsConfig { rules };
    anode_meta::cors::validate(&cfg).map_err(|e| match e {
        anode_meta::cors::CorsError::NoRules | anode_meta::cors::CorsError::Incomplete => {
            S3Error::MalformedXML
        }
        other => S3Error::InvalidRequest(other.to_string()),
    })?;
    Ok(cfg)
}

fn texts(node: &XmlNode, name: &str) -> Result<Vec<String>, S3Error> {
    node.children_named(name)
        .map(|c| {
            if c.children.is_empty() && !c.text.contains('\0') {
                Ok(c.text.trim().to_string())
            } else {
                Err(S3Error::MalformedXML)
            }
        })
        .collect()
}

fn rule(node: &XmlNode) -> Result<CorsRule, S3Error> {
    if node
        .children
        .iter()
        .any(|c| !RULE_CHILDREN.contains(&c.name.as_str()))
    {
        return Err(S3Error::MalformedXML);
    }
    let id = node
        .single_child("ID")?
        .map(|n| n.text.clone())
        .unwrap_or_default();
    if id.contains('\0') {
        return Err(S3Error::MalformedXML);
    }
    let max_age_seconds = match node.single_child("MaxAgeSeconds")? {
        None => None,
        Some(n) => Some(
            n.text
                .trim()
                .parse::<i64>()
                .map_err(|_| S3Error::MalformedXML)?,
        ),
    };
    Ok(CorsRule {
        id,
        allowed_origins: texts(node, "AllowedOrigin")?,
        allowed_methods: texts(node, "AllowedMethod")?,
        allowed_headers: texts(node, "AllowedHeader")?,
        expose_headers: texts(node, "ExposeHeader")?,
        max_age_seconds,
    })
}

/// The GetBucketCors document of a stored configuration.
pub fn render_cors(cfg: &CorsConfig) -> String {
    let mut w = XmlWriter::new();
    w.open_root("CORSConfiguration");
    for r in &cfg.rules {
        w.open("CORSRule");
        if !r.id.is_empty() {
            w.elem("ID", &r.id);
        }
        for h in &r.allowed_headers {
            w.elem("AllowedHeader", h);
        }
        for m in &r.allowed_methods {
            w.elem("AllowedMethod", m);
        }
        for o in &r.allowed_origins {
            w.elem("AllowedOrigin", o);
        }
        for h in &r.expose_headers {
            w.elem("ExposeHeader", h);
        }
        if let Some(a) = r.max_age_seconds {
            w.elem("MaxAgeSeconds", &a.to_string());
        }
        w.close("CORSRule");
    }
    w.close("CORSConfiguration");
    w.finish()
}

fn no_config() -> S3Error {
    S3Error::NoSuchConfiguration {
        code: "NoSuchCORSConfiguration",
        message: "The CORS configuration does not exist",
    }
}

/// GetBucketCors (404 `NoSuchCORSConfiguration` without rules).
pub async fn get_cors(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    match cfg.cors.filter(|c| !c.rules.is_empty()) {
        Some(c) => Ok(xml_ok(render_cors(&c))),
        None => Err(no_config()),
    }
}

/// PutBucketCors.
pub async fn put_cors(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_CORS_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let cfg = parse_cors(&body)?;
    let done = cx
        .backend
        .set_bucket_cors(bucket, Some(cfg))
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::OK))
}

/// DeleteBucketCors (204, also when there were no rules).
pub async fn delete_cors(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let done = cx.backend.set_bucket_cors(bucket, None).await.map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// What a request asks of CORS: its `Origin`, the method to match, and the requested headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsAsk {
    /// The `Origin` header.
    pub origin: String,
    /// `Access-Control-Request-Method`, if given.
    pub request_method: Option<String>,
    /// `Access-Control-Request-Headers`, as given (one comma-separated value).
    pub request_headers: String,
}

impl CorsAsk {
    /// The CORS part of a request's headers (`None` without a usable `Origin`).
    pub fn from_headers(h: &HeaderMap) -> Option<CorsAsk> {
        let origin = h.get(http::header::ORIGIN)?.to_str().ok()?.to_string();
        let request_method = h
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let request_headers = h
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Some(CorsAsk {
            origin,
            request_method,
            request_headers,
        })
    }
}

/// Add the headers of `rule` for a request from `origin` (`requested`: the headers a
/// preflight asked for, echoed back).
fn add_rule_headers(h: &mut HeaderMap, rule: &CorsRule, origin: &str, requested: &[&str]) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let mut set = |name: http::header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    use http::header as hh;
    set(
        hh::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any { "*".into() } else { origin.to_string() },
    );
    set(
        hh::ACCESS_CONTROL_ALLOW_METHODS,
        rule.allowed_methods.join(", "),
    );
    if !requested.is_empty() {
        set(hh::ACCESS_CONTROL_ALLOW_HEADERS, requested.join(", "));
    }
    if !rule.expose_headers.is_empty() {
        set(
            hh::ACCESS_CONTROL_EXPOSE_HEADERS,
            rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set(hh::ACCESS_CONTROL_MAX_AGE, age.to_string());
    }
    if !any {
        set(hh::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".into());
    }
    set(
        hh::VARY,
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
    );
}

/// The answer to a preflight request on a bucket with `rules` (None: no configuration).
pub fn preflight(rules: Option<&CorsConfig>, ask: Option<&CorsAsk>) -> Result<HeaderMap, S3Error> {
    let Some(ask) = ask else {
        return Err(S3Error::BadRequest(
            "Insufficient information. Origin request header needed.".into(),
        ));
    };
    let Some(method) = ask.request_method.as_deref() else {
        return Err(S3Error::BadRequest(
            "Invalid Access-Control-Request-Method: null".into(),
        ));
    };
    let Some(cfg) = rules.filter(|c| !c.rules.is_empty()) else {
        return Err(S3Error::AccessForbidden(
            "CORSResponse: CORS is not enabled for this bucket.".into(),
        ));
    };
    let requested = split_header_list(&ask.request_headers);
    let Some(i) = find_rule(cfg, &ask.origin, method, &requested) else {
        return Err(S3Error::AccessForbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.".into(),
        ));
    };
    let mut h = HeaderMap::new();
    add_rule_headers(&mut h, &cfg.rules[i], &ask.origin, &requested);
    Ok(h)
}

/// Add the CORS headers of the first rule allowing an actual request (`method`) to `resp`'s
/// headers; nothing when no rule does.
pub fn decorate(rules: &CorsConfig, ask: &CorsAsk, method: &str, resp: &mut HeaderMap) {
    let method = ask.request_method.as_deref().unwrap_or(method);
    if let Some(i) = find_rule(rules, &ask.origin, method, &[]) {
        add_rule_headers(resp, &rules.rules[i], &ask.origin, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <CORSRule><ID>web</ID><AllowedOrigin>https://*.example.com</AllowedOrigin>
        <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>
        <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>
        <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>
      <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
    </CORSConfiguration>"#;

    fn ask(origin: &str, method: Option<&str>, headers: &str) -> CorsAsk {
        CorsAsk {
            origin: origin.into(),
            request_method: method.map(str::to_string),
            request_headers: headers.into(),
        }
    }

    #[test]
    fn parses_renders_and_parses_again_to_the_same_rules() {
        let cfg = parse_cors(DOC.as_bytes()).unwrap();
        assert_eq!(cfg.rules.len(), 2);
        assert_eq!(cfg.rules[0].id, "web");
        assert_eq!(cfg.rules[0].allowed_methods, ["GET", "PUT"]);
        assert_eq!(cfg.rules[0].max_age_seconds, Some(3000));
        assert_eq!(cfg.rules[1].max_age_seconds, None);
        assert_eq!(parse_cors(render_cors(&cfg).as_bytes()).unwrap(), cfg);
    }

    #[test]
    fn refuses_bad_documents_with_s3_codes() {
        let code = |doc: &str| parse_cors(doc.as_bytes()).unwrap_err().aws_code();
        assert_eq!(code("<CORSConfiguration/>"), "MalformedXML");
        assert_eq!(code("<Other><CORSRule/></Other>"), "MalformedXML");
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>"),
            "MalformedXML"
        );
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>"),
            "InvalidRequest"
        );
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><Bogus/></CORSRule></CORSConfiguration>"),
            "MalformedXML"
        );
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>x</MaxAgeSeconds></CORSRule></CORSConfiguration>"),
            "MalformedXML"
        );
        let big = format!(
            "<CORSConfiguration>{}</CORSConfiguration>",
            "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
                .repeat(101)
        );
        assert_eq!(code(&big), "InvalidRequest");
    }

    #[test]
    fn preflight_answers_as_s3() {
        let cfg = parse_cors(DOC.as_bytes()).unwrap();
        let code = |r: Result<HeaderMap, S3Error>| r.unwrap_err().aws_code();
        assert_eq!(code(preflight(Some(&cfg), None)), "BadRequest");
        assert_eq!(
            code(preflight(
                Some(&cfg),
                Some(&ask("https://a.example.com", None, ""))
            )),
            "BadRequest"
        );
        assert_eq!(
            code(preflight(
                None,
                Some(&ask("https://a.example.com", Some("GET"), ""))
            )),
            "AccessForbidden"
        );
        let h = preflight(
            Some(&cfg),
            Some(&ask(
                "https://a.example.com",
                Some("PUT"),
                "X-Amz-Date, content-type",
            )),
        )
        .unwrap();
        assert_eq!(h["access-control-allow-origin"], "https://a.example.com");
        assert_eq!(h["access-control-allow-methods"], "GET, PUT");
        assert_eq!(
            h["access-control-allow-headers"],
            "X-Amz-Date, content-type"
        );
        assert_eq!(h["access-control-expose-headers"], "ETag");
        assert_eq!(h["access-control-max-age"], "3000");
        assert_eq!(h["access-control-allow-credentials"], "true");
        // Another origin: only the second rule (GET, any origin) can allow it.
        assert_eq!(
            code(preflight(
                Some(&cfg),
                Some(&ask("https://evil.test", Some("PUT"), ""))
            )),
            "AccessForbidden"
        );
        let h = preflight(Some(&cfg), Some(&ask("https://evil.test", Some("GET"), ""))).unwrap();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(!h.contains_key("access-control-allow-credentials"));
        // A header the matching rule does not allow.
        assert_eq!(
            code(preflight(
                Some(&cfg),
                Some(&ask("https://evil.test", Some("GET"), "x-amz-meta-a"))
            )),
            "AccessForbidden"
        );
    }

    #[test]
    fn actual_responses_get_the_headers_of_the_rule_for_their_method() {
        let cfg = parse_cors(DOC.as_bytes()).unwrap();
        let mut h = HeaderMap::new();
        decorate(&cfg, &ask("https://a.example.com", None, ""), "PUT", &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://a.example.com");
        let mut h = HeaderMap::new();
        decorate(&cfg, &ask("https://evil.test", None, ""), "PUT", &mut h);
        assert!(h.is_empty());
        // Access-Control-Request-Method names the method to match, as RGW does.
        let mut h = HeaderMap::new();
        decorate(
            &cfg,
            &ask("https://evil.test", Some("GET"), ""),
            "PUT",
            &mut h,
        );
        assert_eq!(h["access-control-allow-origin"], "*");
    }
}
