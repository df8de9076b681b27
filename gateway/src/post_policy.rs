//! The POST Object policy document, as pure functions: [`parse_policy`] reads the base64
//! JSON document, [`check_policy`] decides a form against it.
//!
//! The document is `{"expiration": "<ISO 8601>", "conditions": [...]}` (both keys required,
//! case-sensitive). A condition is one of:
//! - `{"field": "value"}` or `["eq", "$field", "value"]`: the form's value equals `value`;
//! - `["starts-with", "$field", "prefix"]`: the value starts with `prefix` (`""` allows any);
//! - `["content-length-range", min, max]`: the file's size is within `[min, max]`.
//!
//! Operator and field names are case-insensitive; values are not. A field missing from the
//! form has the value `""`; `bucket` is the bucket the form is posted to. Every form field
//! must be named by a condition except the exempt ones ([`is_exempt`]: `file`, `policy`,
//! the signature fields, `x-ignore-*`): otherwise 403 AccessDenied, as S3 answers.

use base64::Engine;
use serde_json::Value;

use crate::error::S3Error;

/// Most conditions in one document.
pub const MAX_CONDITIONS: usize = 256;

/// One policy condition (field names lower-case, without `$`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The value equals.
    Eq {
        /// Field.
        field: String,
        /// Value.
        value: String,
    },
    /// The value starts with.
    StartsWith {
        /// Field.
        field: String,
        /// Prefix.
        prefix: String,
    },
    /// The file size is in `min..=max`.
    LengthRange {
        /// Smallest size.
        min: u64,
        /// Largest size.
        max: u64,
    },
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Expiration, Unix milliseconds.
    pub expiration_ms: i64,
    /// Conditions.
    pub conditions: Vec<Condition>,
}

fn bad(m: impl Into<String>) -> S3Error {
    S3Error::InvalidPolicyDocument(m.into())
}

/// Parse the base64 policy (the form's `policy` field).
pub fn parse_policy(b64: &str) -> Result<Policy, S3Error> {
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| bad("Invalid Policy: Invalid 'Policy' encoding."))?;
    parse_policy_json(&raw)
}

/// Parse the decoded JSON document.
pub fn parse_policy_json(raw: &[u8]) -> Result<Policy, S3Error> {
    let doc: Value =
        serde_json::from_slice(raw).map_err(|_| bad("Invalid Policy: Invalid JSON."))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("Invalid Policy: Invalid JSON."))?;
    let expiration = obj
        .get("expiration")
        .ok_or_else(|| bad("Invalid Policy: Policy missing expiration."))?
        .as_str()
        .ok_or_else(|| bad("Invalid Policy: Invalid 'expiration' value."))?;
    let expiration_ms = parse_iso8601_ms(expiration).ok_or_else(|| {
        bad(format!(
            "Invalid Policy: Invalid 'expiration' value: '{expiration}'"
        ))
    })?;
    let list = obj
        .get("conditions")
        .ok_or_else(|| bad("Invalid Policy: Policy missing conditions."))?
        .as_array()
        .ok_or_else(|| bad("Invalid Policy: Invalid 'conditions' value."))?;
    if list.len() > MAX_CONDITIONS {
        return Err(bad("Invalid Policy: too many conditions."));
    }
    let conditions = list
        .iter()
        .map(parse_condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        expiration_ms,
        conditions,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field_name(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let name = s.strip_prefix('$')?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn length(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_condition(c: &Value) -> Result<Condition, S3Error> {
    let invalid = || bad(format!("Invalid Policy: Invalid Condition: {c}"));
    match c {
        Value::Object(m) => {
            if m.len() != 1 {
                return Err(invalid());
            }
            let (k, v) = m.iter().next().ok_or_else(invalid)?;
            Ok(Condition::Eq {
                field: k.to_ascii_lowercase(),
                value: scalar(v).ok_or_else(invalid)?,
            })
        }
        Value::Array(a) => {
            let op = a
                .first()
                .and_then(Value::as_str)
                .ok_or_else(invalid)?
                .to_ascii_lowercase();
            if a.len() != 3 {
                return Err(invalid());
            }
            match op.as_str() {
                "eq" => Ok(Condition::Eq {
                    field: field_name(&a[1]).ok_or_else(invalid)?,
                    value: scalar(&a[2]).ok_or_else(invalid)?,
                }),
                "starts-with" => Ok(Condition::StartsWith {
                    field: field_name(&a[1]).ok_or_else(invalid)?,
                    prefix: scalar(&a[2]).ok_or_else(invalid)?,
                }),
                "content-length-range" => {
                    let min = length(&a[1]).ok_or_else(invalid)?;
                    let max = length(&a[2]).ok_or_else(invalid)?;
                    if min > max {
                        return Err(invalid());
                    }
                    Ok(Condition::LengthRange { min, max })
                }
                _ => Err(invalid()),
            }
        }
        _ => Err(invalid()),
    }
}

/// `2026-12-07T12:00:00Z` or `2026-12-07T12:00:00.000Z` -> Unix milliseconds.
pub fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    if !s.ends_with('Z') {
        return None;
    }
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Form fields no condition needs to name (lower-case names).
pub fn is_exempt(name: &str) -> bool {
    matches!(
        name,
        "file" | "policy" | "signature" | "awsaccesskeyid" | "x-amz-signature"
    ) || name.starts_with("x-ignore-")
}

/// Decide `fields` (lower-case name, value; the key with `${filename}` already replaced)
/// posted to `bucket` at `now_ms` against `policy`. Returns the allowed file size range.
pub fn check_policy(
    policy: &Policy,
    fields: &[(String, String)],
    bucket: &str,
    now_ms: i64,
) -> Result<(u64, u64), S3Error> {
    if now_ms > policy.expiration_ms {
        return Err(S3Error::AccessDenied(
            "Invalid according to Policy: Policy expired.".into(),
        ));
    }
    let value = |name: &str| -> &str {
        if name == "bucket" {
            return bucket;
        }
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let mut range = (0, u64::MAX);
    for c in &policy.conditions {
        let ok = match c {
            Condition::Eq { field, value: want } => value(field) == want,
            Condition::StartsWith { field, prefix } => value(field).starts_with(prefix.as_str()),
            Condition::LengthRange { min, max } => {
                range = (*min, *max);
                true
            }
        };
        if !ok {
            return Err(S3Error::AccessDenied(format!(
                "Invalid according to Policy: Policy Condition failed: {}",
                describe(c)
            )));
        }
    }
    for (name, _) in fields {
        if is_exempt(name) {
            continue;
        }
        let covered = policy.conditions.iter().any(|c| match c {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
            Condition::LengthRange { .. } => false,
        });
        if !covered {
            return Err(S3Error::AccessDenied(format!(
                "Invalid according to Policy: Extra input fields: {name}"
            )));
        }
    }
    Ok(range)
}

fn describe(c: &Condition) -> String {
    match c {
        Condition::Eq { field, value } => format!("[\"eq\", \"${field}\", \"{value}\"]"),
        Condition::StartsWith { field, prefix } => {
            format!("[\"starts-with\", \"${field}\", \"{prefix}\"]")
        }
        Condition::LengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXP: &str = "2030-01-01T00:00:00Z";

    fn doc(conditions: &str) -> Policy {
        parse_policy_json(
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":{conditions}}}").as_bytes(),
        )
        .unwrap()
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_documents() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!(
            "{{\"expiration\":\"{EXP}\",\"conditions\":[{{\"bUcKeT\":\"b\"}},[\"StArTs-WiTh\",\"$KeY\",\"user/\"],[\"content-length-range\",1,\"10\"],[\"eq\",\"$success_action_status\",201]]}}"
        ));
        let p = parse_policy(&b64).unwrap();
        assert_eq!(p.expiration_ms, 1_893_456_000_000);
        assert_eq!(
            p.conditions,
            vec![
                Condition::Eq {
                    field: "bucket".into(),
                    value: "b".into()
                },
                Condition::StartsWith {
                    field: "key".into(),
                    prefix: "user/".into()
                },
                Condition::LengthRange { min: 1, max: 10 },
                Condition::Eq {
                    field: "success_action_status".into(),
                    value: "201".into()
                },
            ]
        );
        assert_eq!(
            parse_iso8601_ms("2030-01-01T00:00:00.500Z"),
            Some(1_893_456_000_500)
        );
    }

    #[test]
    fn invalid_documents_are_invalid_policy_document() {
        let bad_docs = [
            "not json".to_string(),
            "[]".into(),
            "{\"conditions\":[]}".to_string(),
            format!("{{\"EXPIRATION\":\"{EXP}\",\"conditions\":[]}}"),
            format!("{{\"expiration\":\"{EXP}\"}}"),
            format!("{{\"expiration\":\"{EXP}\",\"CONDITIONS\":[]}}"),
            "{\"expiration\":\"2030-01-01 00:00:00\",\"conditions\":[]}".into(),
            "{\"expiration\":\"2030-01-01T00:00:00+01:00\",\"conditions\":[]}".into(),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[{{}}]}}"),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[{{\"a\":\"x\",\"b\":\"y\"}}]}}"),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[[\"content-length-range\",0]]}}"),
            format!(
                "{{\"expiration\":\"{EXP}\",\"conditions\":[[\"content-length-range\",-1,0]]}}"
            ),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[[\"content-length-range\",5,1]]}}"),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[[\"eq\",\"key\",\"x\"]]}}"),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[[\"matches\",\"$key\",\"x\"]]}}"),
            format!("{{\"expiration\":\"{EXP}\",\"conditions\":[\"key\"]}}"),
        ];
        for d in bad_docs {
            assert_eq!(
                parse_policy_json(d.as_bytes()).unwrap_err().aws_code(),
                "InvalidPolicyDocument",
                "{d}"
            );
        }
        assert_eq!(
            parse_policy("!!!").unwrap_err().aws_code(),
            "InvalidPolicyDocument"
        );
    }

    #[test]
    fn decisions() {
        let p = doc(
            r#"[{"bucket":"b"},["starts-with","$key","user/"],{"acl":"private"},["starts-with","$Content-Type",""],["content-length-range",0,1024]]"#,
        );
        let now = 1_800_000_000_000;
        let ok = f(&[
            ("key", "user/a"),
            ("acl", "private"),
            ("content-type", "text/plain"),
            ("policy", "x"),
            ("awsaccesskeyid", "AK"),
            ("signature", "s"),
            ("x-ignore-me", "1"),
        ]);
        assert_eq!(check_policy(&p, &ok, "b", now), Ok((0, 1024)));
        // Wrong bucket, key, acl; an extra field; expired.
        let code = |fields: &[(String, String)], bucket: &str, now: i64| {
            check_policy(&p, fields, bucket, now).unwrap_err()
        };
        assert_eq!(code(&ok, "c", now).aws_code(), "AccessDenied");
        let mut k = ok.clone();
        k[0].1 = "other/a".into();
        assert_eq!(code(&k, "b", now).aws_code(), "AccessDenied");
        let mut extra = ok.clone();
        extra.push(("x-amz-meta-foo".into(), "bar".into()));
        assert_eq!(
            code(&extra, "b", now),
            S3Error::AccessDenied(
                "Invalid according to Policy: Extra input fields: x-amz-meta-foo".into()
            )
        );
        assert_eq!(
            code(&ok, "b", 1_893_456_000_001),
            S3Error::AccessDenied("Invalid according to Policy: Policy expired.".into())
        );
        // A missing field is "": eq "" passes, starts-with "bar" fails.
        let p2 = doc(r#"[["eq","$x-amz-meta-a",""],["starts-with","$x-amz-meta-b","bar"]]"#);
        assert_eq!(code_of(&p2, &f(&[])), "AccessDenied");
        let p3 = doc(r#"[["eq","$x-amz-meta-a",""]]"#);
        assert_eq!(check_policy(&p3, &f(&[]), "b", now), Ok((0, u64::MAX)));
    }

    fn code_of(p: &Policy, fields: &[(String, String)]) -> &'static str {
        check_policy(p, fields, "b", 0).unwrap_err().aws_code()
    }

    proptest! {
        /// starts-with decides exactly by prefix, and eq exactly by equality.
        #[test]
        fn starts_with_and_eq(prefix in "[a-z/]{0,6}", value in "[a-z/]{0,8}") {
            let p = Policy {
                expiration_ms: i64::MAX,
                conditions: vec![Condition::StartsWith { field: "key".into(), prefix: prefix.clone() }],
            };
            let fields = vec![("key".to_string(), value.clone())];
            prop_assert_eq!(check_policy(&p, &fields, "b", 0).is_ok(), value.starts_with(&prefix));
            let p = Policy {
                expiration_ms: i64::MAX,
                conditions: vec![Condition::Eq { field: "key".into(), value: prefix.clone() }],
            };
            prop_assert_eq!(check_policy(&p, &fields, "b", 0).is_ok(), value == prefix);
        }

        /// Any bytes: an error or a policy, never a panic.
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_policy_json(&data);
            let _ = parse_policy(&String::from_utf8_lossy(&data));
        }
    }
}
