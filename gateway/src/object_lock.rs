//! S3 object lock (issue 14): the bucket's ObjectLockConfiguration, a version's Retention and
//! LegalHold, the `x-amz-object-lock-*` headers of writes and reads, and the governance
//! bypass. The state machine enforces the locks (`anode_meta::state::versions::check_lock`)
//! for every caller, administrators included; these handlers map requests and answers.

use anode_client::{DefaultRetention, Manifest, SetObjectLockCmd};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, set_header, status_only, xml_ok, Ctx};
use crate::http_util::check_key;
use crate::xml::{self, XmlWriter};
use anode_meta::state::versions::{COMPLIANCE, GOVERNANCE};

/// Largest object lock request body (a few elements).
pub const MAX_LOCK_BODY_BYTES: usize = 16 << 10;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `x-amz-bucket-object-lock-enabled: true` on CreateBucket.
pub fn lock_enabled_on_create(h: &HeaderMap) -> Result<bool, S3Error> {
    match header(h, "x-amz-bucket-object-lock-enabled") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(S3Error::InvalidArgument(
            "x-amz-bucket-object-lock-enabled must be true or false".into(),
        )),
    }
}

/// Parse an ISO 8601 timestamp (`2030-01-01T00:00:00Z`, fractions allowed) to ms.
pub fn parse_iso8601_ms(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn mode(s: &str) -> Result<String, S3Error> {
    match s {
        GOVERNANCE | COMPLIANCE => Ok(s.to_string()),
        _ => Err(S3Error::InvalidArgument(format!(
            "Unknown wormMode directive: {s}"
        ))),
    }
}

/// The lock a write asks for: `x-amz-object-lock-mode` with
/// `x-amz-object-lock-retain-until-date` (both or neither; the date in the future), and
/// `x-amz-object-lock-legal-hold: ON|OFF`.
pub fn lock_from_headers(h: &HeaderMap, now_ms: u64) -> Result<(String, u64, bool), S3Error> {
    let m = header(h, "x-amz-object-lock-mode");
    let d = header(h, "x-amz-object-lock-retain-until-date");
    let (lock_mode, until) = match (m, d) {
        (None, None) => (String::new(), 0),
        (Some(m), Some(d)) => {
            let until = parse_iso8601_ms(d).ok_or_else(|| {
                S3Error::InvalidArgument(
                    "The retain until date must be provided in ISO 8601 format".into(),
                )
            })?;
            if until <= now_ms {
                return Err(S3Error::InvalidArgument(
                    "The retain until date must be in the future!".into(),
                ));
            }
            (mode(m)?, until)
        }
        _ => {
            return Err(S3Error::InvalidArgument(
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be \
                 supplied"
                    .into(),
            ))
        }
    };
    let hold = match header(h, "x-amz-object-lock-legal-hold") {
        None => false,
        Some("ON") => true,
        Some("OFF") => false,
        Some(_) => {
            return Err(S3Error::InvalidArgument(
                "Legal Hold must be either of 'ON' or 'OFF'".into(),
            ))
        }
    };
    Ok((lock_mode, until, hold))
}

/// The lock headers of a GET or HEAD answer.
pub fn lock_response_headers(r: &mut Response<RespBody>, m: &Manifest) {
    if !m.lock_mode.is_empty() {
        set_header(r, "x-amz-object-lock-mode", &m.lock_mode);
        set_header(
            r,
            "x-amz-object-lock-retain-until-date",
            &xml::iso8601_ms(m.retain_until_ms),
        );
    }
    if m.legal_hold {
        set_header(r, "x-amz-object-lock-legal-hold", "ON");
    }
}

/// Whether the request asks to bypass GOVERNANCE retention and may
/// (`s3:BypassGovernanceRetention` on the object).
pub fn bypass_governance(cx: &Ctx<'_>, bucket: &str, key: &str) -> bool {
    let asked = header(cx.headers, "x-amz-bypass-governance-retention")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    asked
        && cx
            .authz
            .allows(
                anode_meta::authz::Action::BypassGovernanceRetention,
                bucket,
                key,
            )
            .is_allowed()
}

fn no_lock_config() -> S3Error {
    S3Error::NoSuchConfiguration {
        code: "ObjectLockConfigurationNotFoundError",
        message: "Object Lock configuration does not exist for this bucket",
    }
}

/// GetObjectLockConfiguration.
pub async fn get_config(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    if !cfg.object_lock {
        return Err(no_lock_config());
    }
    let mut w = XmlWriter::new();
    w.open_root("ObjectLockConfiguration");
    w.elem("ObjectLockEnabled", "Enabled");
    if let Some(d) = cfg.default_retention.filter(|d| !d.mode.is_empty()) {
        w.open("Rule");
        w.open("DefaultRetention");
        w.elem("Mode", &d.mode);
        if d.days > 0 {
            w.elem("Days", &d.days.to_string());
        }
        if d.years > 0 {
            w.elem("Years", &d.years.to_string());
        }
        w.close("DefaultRetention");
        w.close("Rule");
    }
    w.close("ObjectLockConfiguration");
    Ok(xml_ok(w.finish()))
}

fn positive(node: Option<&xml::XmlNode>) -> Result<u32, S3Error> {
    match node {
        None => Ok(0),
        Some(n) => match n.text.trim().parse::<i64>() {
            Ok(v) if v > 0 => u32::try_from(v).map_err(|_| {
                S3Error::InvalidArgument("Default retention period is too large".into())
            }),
            Ok(_) => Err(S3Error::InvalidArgument(
                "Default retention period must be a positive integer value".into(),
            )),
            Err(_) => Err(S3Error::MalformedXML),
        },
    }
}

/// Parse an ObjectLockConfiguration body: the default retention (None: no rule).
pub fn parse_config(body: &[u8]) -> Result<Option<DefaultRetention>, S3Error> {
    let tree = xml::parse_tree(body)?;
    let root = xml::expect_root(&tree, "ObjectLockConfiguration")?;
    match root.child("ObjectLockEnabled").map(|e| e.text.trim()) {
        Some("Enabled") => {}
        _ => return Err(S3Error::MalformedXML),
    }
    let Some(rule) = root.child("Rule") else {
        return Ok(None);
    };
    let d = rule
        .child("DefaultRetention")
        .ok_or(S3Error::MalformedXML)?;
    let m = mode(d.child("Mode").ok_or(S3Error::MalformedXML)?.text.trim())
        .map_err(|_| S3Error::MalformedXML)?;
    let days = positive(d.child("Days"))?;
    let years = positive(d.child("Years"))?;
    if (days == 0) == (years == 0) {
        return Err(S3Error::MalformedXML);
    }
    let d = DefaultRetention {
        mode: m,
        days,
        years,
    };
    anode_meta::state::versions::check_default_retention(&d)
        .map_err(|e| S3Error::InvalidRetentionPeriod(e.to_string()))?;
    Ok(Some(d))
}

/// PutObjectLockConfiguration.
pub async fn put_config(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_LOCK_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let d = parse_config(&body)?;
    let done = cx
        .backend
        .set_bucket_object_lock(bucket, d)
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::OK))
}

/// The version a retention or legal hold request addresses.
async fn version(cx: &Ctx<'_>, bucket: &str, key: &str) -> Result<Manifest, S3Error> {
    check_key(key)?;
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    if !cfg.object_lock {
        return Err(S3Error::InvalidRequest(
            "Bucket is missing Object Lock Configuration".into(),
        ));
    }
    cx.backend
        .get_version(bucket, key, cx.query.get("versionId"), false)
        .await
        .map_err(ce)
}

/// GetObjectRetention.
pub async fn get_retention(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    let m = version(cx, bucket, key).await?;
    if m.lock_mode.is_empty() {
        return Err(S3Error::NoSuchConfiguration {
            code: "NoSuchObjectLockConfiguration",
            message: "The specified object does not have a ObjectLock configuration",
        });
    }
    let mut w = XmlWriter::new();
    w.open_root("Retention");
    w.elem("Mode", &m.lock_mode);
    w.elem("RetainUntilDate", &xml::iso8601_ms(m.retain_until_ms));
    w.close("Retention");
    Ok(xml_ok(w.finish()))
}

/// Parse a Retention body: (mode, until ms); an empty `Retention` clears it.
pub fn parse_retention(body: &[u8]) -> Result<(String, u64), S3Error> {
    let tree = xml::parse_tree(body)?;
    let root = xml::expect_root(&tree, "Retention")?;
    let m = root.child("Mode").map(|m| m.text.trim().to_string());
    let d = root
        .child("RetainUntilDate")
        .map(|d| d.text.trim().to_string());
    match (m, d) {
        (None, None) => Ok((String::new(), 0)),
        (Some(m), Some(d)) => {
            let until = parse_iso8601_ms(&d).ok_or(S3Error::MalformedXML)?;
            Ok((mode(&m).map_err(|_| S3Error::MalformedXML)?, until))
        }
        _ => Err(S3Error::MalformedXML),
    }
}

/// PutObjectRetention.
pub async fn put_retention(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_LOCK_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let (lock_mode, until) = parse_retention(&body)?;
    if !lock_mode.is_empty() && until <= cx.now_ms {
        return Err(S3Error::InvalidArgument(
            "The retain until date must be in the future!".into(),
        ));
    }
    let m = version(cx, bucket, key).await?;
    let cmd = SetObjectLockCmd {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: Some(anode_meta::state::versions::version_id_of(&m).to_string()),
        set_retention: true,
        mode: lock_mode,
        retain_until_ms: until,
        bypass_governance: bypass_governance(cx, bucket, key),
        ..Default::default()
    };
    cx.backend.set_object_lock(cmd).await.map_err(ce)?;
    Ok(status_only(StatusCode::OK))
}

/// GetObjectLegalHold.
pub async fn get_legal_hold(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    let m = version(cx, bucket, key).await?;
    let mut w = XmlWriter::new();
    w.open_root("LegalHold");
    w.elem("Status", if m.legal_hold { "ON" } else { "OFF" });
    w.close("LegalHold");
    Ok(xml_ok(w.finish()))
}

/// PutObjectLegalHold.
pub async fn put_legal_hold(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_LOCK_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let tree = xml::parse_tree(&body)?;
    let root = xml::expect_root(&tree, "LegalHold")?;
    let on = match root.child("Status").map(|s| s.text.trim()) {
        Some("ON") => true,
        Some("OFF") => false,
        _ => return Err(S3Error::MalformedXML),
    };
    let m = version(cx, bucket, key).await?;
    let cmd = SetObjectLockCmd {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: Some(anode_meta::state::versions::version_id_of(&m).to_string()),
        set_legal_hold: true,
        legal_hold: on,
        ..Default::default()
    };
    cx.backend.set_object_lock(cmd).await.map_err(ce)?;
    Ok(status_only(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_configuration_bodies() {
        let ok = b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
            <Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>2</Days></DefaultRetention>\
            </Rule></ObjectLockConfiguration>";
        assert_eq!(
            parse_config(ok).unwrap(),
            Some(DefaultRetention {
                mode: "GOVERNANCE".into(),
                days: 2,
                years: 0
            })
        );
        let bare = b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
            </ObjectLockConfiguration>";
        assert_eq!(parse_config(bare).unwrap(), None);
        for bad in [
            &b"<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>"[..],
            b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule></ObjectLockConfiguration>",
            b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>FOO</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
        ] {
            assert_eq!(parse_config(bad).unwrap_err().aws_code(), "MalformedXML");
        }
        let zero = b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>0</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(
            parse_config(zero).unwrap_err().aws_code(),
            "InvalidArgument"
        );
    }

    #[test]
    fn retention_bodies_and_headers() {
        let (m, until) = parse_retention(
            b"<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>",
        )
        .unwrap();
        assert_eq!((m.as_str(), until), ("COMPLIANCE", 1_893_456_000_000));
        assert_eq!(
            parse_retention(b"<Retention/>").unwrap(),
            (String::new(), 0)
        );
        assert!(parse_retention(b"<Retention><Mode>GOVERNANCE</Mode></Retention>").is_err());

        let mut h = HeaderMap::new();
        h.insert("x-amz-object-lock-mode", "GOVERNANCE".parse().unwrap());
        h.insert(
            "x-amz-object-lock-retain-until-date",
            "2030-01-01T00:00:00.000Z".parse().unwrap(),
        );
        h.insert("x-amz-object-lock-legal-hold", "ON".parse().unwrap());
        assert_eq!(
            lock_from_headers(&h, 0).unwrap(),
            ("GOVERNANCE".into(), 1_893_456_000_000, true)
        );
        assert_eq!(
            lock_from_headers(&h, 1_893_456_000_000)
                .unwrap_err()
                .aws_code(),
            "InvalidArgument"
        );
        h.remove("x-amz-object-lock-mode");
        assert!(lock_from_headers(&h, 0).is_err());
    }
}
