//! S3 event notifications (issue 15): validation of a bucket's notification rules and of the
//! cluster's notification targets, the one decision of which rules an event matches, event
//! ids, and the S3 event record (JSON) that webhooks and watchers receive.
//!
//! How events flow: the state machine ([`crate::sm`]) makes one [`NotificationEvent`] for
//! every object change it applies (created, removed, tagged, expired by lifecycle), with an
//! id derived from the raft index, so every member makes the same events with the same ids.
//! For each event and each target a matching rule names, it queues a copy under
//! `q/<target>\0<index><n>` in the same raft command. The leader's delivery worker POSTs the
//! queue in order and proposes [`AckNotificationsCmd`] for what the endpoint accepted; a new
//! leader resends what was not acknowledged, with the same ids (at least once; a consumer
//! deduplicates by id). Watchers get every event of the bucket as their member applies it
//! (not durable).

use anode_proto::*;

/// Most rules in one bucket configuration.
pub const MAX_RULES: usize = 100;
/// Most event names in one rule.
pub const MAX_EVENTS: usize = 20;
/// Longest rule id.
pub const MAX_ID_CHARS: usize = 255;
/// Longest prefix or suffix filter, bytes (S3's key limit).
pub const MAX_FILTER_BYTES: usize = 1024;
/// Longest target name.
pub const MAX_TARGET_NAME: usize = 64;
/// Longest target URL and authorization value, bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Events kept queued for one target: past this, new events for it are dropped and counted
/// (`x/nd/<target>`), so an endpoint that is down for long cannot grow the state without
/// bound. 100,000 events are about 30 MB of state.
pub const MAX_QUEUED_PER_TARGET: u64 = 100_000;
/// Most events one acknowledgement removes (the worker acknowledges in smaller batches).
pub const MAX_ACK: usize = 10_000;

/// The event names Anode makes, with the S3 wildcards that select them. Event names S3 knows
/// but Anode never makes (restore, replication, ACL changes, ...) are refused rather than
/// accepted and never sent.
pub const EVENT_NAMES: [&str; 14] = [
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
];

/// Why a configuration or target is refused (S3 answers `400 InvalidArgument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// More than [`MAX_RULES`] rules.
    #[error("more than {MAX_RULES} notification configurations")]
    TooManyRules,
    /// A rule without events, or with too many.
    #[error("a notification configuration needs 1 to {MAX_EVENTS} events")]
    BadEventCount,
    /// An event name Anode does not make.
    #[error("The event is not supported for notifications: {0}")]
    UnknownEvent(String),
    /// An ARN that names no target.
    #[error("Unable to validate the following destination configurations: {0}")]
    BadArn(String),
    /// A target name outside `[a-z0-9_-]{1,64}`.
    #[error("invalid notification target name {0:?} (1 to 64 of a-z, 0-9, '_' and '-')")]
    BadTargetName(String),
    /// A URL that is not http(s) or too long.
    #[error("invalid notification target URL {0:?} (http:// or https://, at most 2048 bytes)")]
    BadUrl(String),
    /// Two rules with the same id.
    #[error("two notification configurations have the id {0:?}")]
    DuplicateId(String),
    /// A field over its limit or with a control character.
    #[error("notification configuration field {0} is too long or holds a control character")]
    BadField(&'static str),
}

fn clean(s: &str, max: usize, field: &'static str) -> Result<(), NotifyError> {
    if s.len() > max || s.chars().any(char::is_control) {
        return Err(NotifyError::BadField(field));
    }
    Ok(())
}

/// Check a target name: `[a-z0-9_-]`, 1 to [`MAX_TARGET_NAME`] bytes.
pub fn validate_target_name(name: &str) -> Result<(), NotifyError> {
    let ok = (1..=MAX_TARGET_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NotifyError::BadTargetName(name.to_string()))
    }
}

/// Check a target as an operator sets it.
pub fn validate_target(t: &NotificationTarget) -> Result<(), NotifyError> {
    validate_target_name(&t.name)?;
    let scheme_ok = t.url.starts_with("http://") || t.url.starts_with("https://");
    let host = t.url.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok
        || host.is_empty()
        || t.url.len() > MAX_URL_BYTES
        || t.url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(NotifyError::BadUrl(t.url.clone()));
    }
    clean(&t.authorization, MAX_URL_BYTES, "authorization")
}

/// The target a rule's ARN names: the last of its `:`-separated fields (five, or six as AWS
/// and MinIO write them), for the services S3 notifies (`sqs`, `sns`, `lambda`), e.g.
/// `arn:anode:sqs::hooks`, `arn:minio:sqs::1:hooks` or
/// `arn:aws:sqs:us-east-1:123456789012:hooks`.
pub fn target_of_arn(arn: &str) -> Result<String, NotifyError> {
    let bad = || NotifyError::BadArn(arn.to_string());
    let parts: Vec<&str> = arn.split(':').collect();
    if !(5..=6).contains(&parts.len())
        || parts[0] != "arn"
        || !matches!(parts[2], "sqs" | "sns" | "lambda")
    {
        return Err(bad());
    }
    let name = parts[parts.len() - 1];
    validate_target_name(name).map_err(|_| bad())?;
    Ok(name.to_string())
}

/// Check a bucket's configuration (the gateway and the state machine both run this; the
/// state machine also checks that every target exists).
pub fn validate_config(cfg: &NotificationConfig) -> Result<(), NotifyError> {
    if cfg.rules.len() > MAX_RULES {
        return Err(NotifyError::TooManyRules);
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in &cfg.rules {
        if r.id.chars().count() > MAX_ID_CHARS {
            return Err(NotifyError::BadField("Id"));
        }
        clean(&r.id, MAX_ID_CHARS * 4, "Id")?;
        if !ids.insert(r.id.as_str()) {
            return Err(NotifyError::DuplicateId(r.id.clone()));
        }
        if r.kind > 2 {
            return Err(NotifyError::BadField("kind"));
        }
        if target_of_arn(&r.arn)? != r.target {
            return Err(NotifyError::BadArn(r.arn.clone()));
        }
        if r.events.is_empty() || r.events.len() > MAX_EVENTS {
            return Err(NotifyError::BadEventCount);
        }
        if let Some(e) = r.events.iter().find(|e| !EVENT_NAMES.contains(&e.as_str())) {
            return Err(NotifyError::UnknownEvent(e.clone()));
        }
        clean(&r.prefix, MAX_FILTER_BYTES, "prefix")?;
        clean(&r.suffix, MAX_FILTER_BYTES, "suffix")?;
    }
    Ok(())
}

/// Does the S3 event selector `selector` (`s3:ObjectCreated:*`, `s3:ObjectRemoved:Delete`)
/// select the event named `name` (as in records: `ObjectCreated:Put`)?
pub fn selects(selector: &str, name: &str) -> bool {
    let Some(sel) = selector.strip_prefix("s3:") else {
        return false;
    };
    match sel.strip_suffix('*') {
        Some(family) => name.starts_with(family) && family.ends_with(':'),
        None => sel == name,
    }
}

/// Does a watch or rule with these filters take the event `name` on `key`? Empty `events`
/// takes every event.
pub fn filter_matches(
    events: &[String],
    prefix: &str,
    suffix: &str,
    name: &str,
    key: &str,
) -> bool {
    (events.is_empty() || events.iter().any(|e| selects(e, name)))
        && key.starts_with(prefix)
        && key.ends_with(suffix)
}

/// The rules of `cfg` that take the event `name` on `key`, in order.
pub fn matching_rules<'a>(
    cfg: &'a NotificationConfig,
    name: &'a str,
    key: &'a str,
) -> impl Iterator<Item = &'a NotificationRule> + 'a {
    cfg.rules
        .iter()
        .filter(move |r| filter_matches(&r.events, &r.prefix, &r.suffix, name, key))
}

/// The id of the `n`th event of the command at raft index `index`: 16 + 4 upper-case hex
/// digits, so ids sort as the events happened.
pub fn event_id(index: u64, n: u32) -> String {
    format!("{index:016X}{n:04X}")
}

/// The raft index and place an id names (None for anything [`event_id`] does not make).
pub fn parse_event_id(id: &str) -> Option<(u64, u32)> {
    if id.len() != 20
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    let index = u64::from_str_radix(&id[..16], 16).ok()?;
    let n = u32::from_str_radix(&id[16..], 16).ok()?;
    Some((index, n))
}

/// S3's encoding of a key in event records: form encoding (space as `+`), keeping `/`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An RFC 3339 UTC time with milliseconds, as S3 writes `eventTime`.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The S3 event record (event structure version 2.1) of one event, as a JSON value.
pub fn record_json(e: &NotificationEvent, region: &str) -> serde_json::Value {
    let mut object = serde_json::json!({
        "key": encode_key(&e.key),
        "sequencer": e.id,
    });
    if e.event_name.starts_with("ObjectCreated:") {
        object["size"] = e.size.into();
        object["eTag"] = e.etag.clone().into();
    }
    if !e.version_id.is_empty() {
        object["versionId"] = e.version_id.clone().into();
    }
    serde_json::json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": rfc3339_ms(e.time_ms),
        "eventName": e.event_name,
        "eventId": e.id,
        "userIdentity": {"principalId": "anode"},
        "requestParameters": {"sourceIPAddress": ""},
        "responseElements": {"x-amz-request-id": e.id, "x-amz-id-2": ""},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": e.configuration_id,
            "bucket": {
                "name": e.bucket,
                "ownerIdentity": {"principalId": "anode"},
                "arn": format!("arn:aws:s3:::{}", e.bucket),
            },
            "object": object,
        },
    })
}

/// The body S3 sends for events: `{"Records":[...]}`.
pub fn records_body(events: &[NotificationEvent], region: &str) -> String {
    let records: Vec<serde_json::Value> = events.iter().map(|e| record_json(e, region)).collect();
    serde_json::json!({ "Records": records }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(target: &str, events: &[&str], prefix: &str, suffix: &str) -> NotificationRule {
        NotificationRule {
            id: format!("r-{target}"),
            kind: 1,
            arn: format!("arn:anode:sqs::{target}"),
            target: target.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    #[test]
    fn selectors_and_filters() {
        assert!(selects("s3:ObjectCreated:*", "ObjectCreated:Put"));
        assert!(selects("s3:ObjectCreated:Copy", "ObjectCreated:Copy"));
        assert!(!selects("s3:ObjectCreated:Put", "ObjectCreated:Copy"));
        assert!(!selects("s3:ObjectCreated:*", "ObjectRemoved:Delete"));
        assert!(!selects("ObjectCreated:*", "ObjectCreated:Put"));
        let cfg = NotificationConfig {
            rules: vec![
                rule("a", &["s3:ObjectCreated:*"], "logs/", ".gz"),
                rule("b", &["s3:ObjectRemoved:*", "s3:ObjectCreated:Put"], "", ""),
            ],
        };
        let names = |name, key| -> Vec<String> {
            matching_rules(&cfg, name, key)
                .map(|r| r.target.clone())
                .collect()
        };
        assert_eq!(names("ObjectCreated:Put", "logs/x.gz"), ["a", "b"]);
        assert_eq!(names("ObjectCreated:Copy", "logs/x.gz"), ["a"]);
        assert_eq!(
            names("ObjectCreated:Copy", "logs/x.txt"),
            Vec::<String>::new()
        );
        assert_eq!(names("ObjectRemoved:DeleteMarkerCreated", "z"), ["b"]);
    }

    #[test]
    fn validation() {
        let ok = NotificationConfig {
            rules: vec![rule("hooks", &["s3:ObjectCreated:*"], "", "")],
        };
        validate_config(&ok).unwrap();
        let mut bad = ok.clone();
        bad.rules[0].events = vec!["s3:ObjectRestore:Post".into()];
        assert!(matches!(
            validate_config(&bad),
            Err(NotifyError::UnknownEvent(_))
        ));
        let mut bad = ok.clone();
        bad.rules[0].events.clear();
        assert_eq!(validate_config(&bad), Err(NotifyError::BadEventCount));
        let mut bad = ok.clone();
        bad.rules[0].target = "other".into();
        assert!(matches!(validate_config(&bad), Err(NotifyError::BadArn(_))));
        let mut bad = ok.clone();
        bad.rules.push(ok.rules[0].clone());
        assert!(matches!(
            validate_config(&bad),
            Err(NotifyError::DuplicateId(_))
        ));
        let mut bad = ok.clone();
        bad.rules[0].prefix = "a\0b".into();
        assert!(matches!(
            validate_config(&bad),
            Err(NotifyError::BadField(_))
        ));
        assert_eq!(
            target_of_arn("arn:aws:sqs:us-east-1:123456789012:my-q").unwrap(),
            "my-q"
        );
        assert!(target_of_arn("arn:aws:s3:::bucket").is_err());
        assert!(target_of_arn("arn:anode:sqs::Upper").is_err());
        assert!(target_of_arn("nonsense").is_err());
        let t = |url: &str| NotificationTarget {
            name: "t".into(),
            url: url.into(),
            ..Default::default()
        };
        validate_target(&t("http://127.0.0.1:9000/hook")).unwrap();
        validate_target(&t("https://example.com/x")).unwrap();
        for url in ["ftp://x", "http://", "http://a b", "file:///etc/passwd"] {
            assert!(validate_target(&t(url)).is_err(), "{url}");
        }
    }

    #[test]
    fn record_shape() {
        let e = NotificationEvent {
            id: event_id(0x1234, 2),
            bucket: "photos".into(),
            key: "a b/c+d.jpg".into(),
            event_name: "ObjectCreated:Put".into(),
            size: 42,
            etag: "abc".into(),
            time_ms: 1_700_000_000_123,
            configuration_id: "cfg".into(),
            ..Default::default()
        };
        let v = record_json(&e, "us-east-1");
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["s3"]["object"]["key"], "a+b/c%2Bd.jpg");
        assert_eq!(v["s3"]["object"]["size"], 42);
        assert_eq!(v["s3"]["object"]["sequencer"], "00000000000012340002");
        assert_eq!(v["s3"]["configurationId"], "cfg");
        let body: serde_json::Value =
            serde_json::from_str(&records_body(std::slice::from_ref(&e), "r")).unwrap();
        assert_eq!(body["Records"][0]["eventName"], "ObjectCreated:Put");
        let removed = NotificationEvent {
            event_name: "ObjectRemoved:Delete".into(),
            ..e
        };
        assert!(record_json(&removed, "r")["s3"]["object"]
            .get("size")
            .is_none());
    }

    proptest! {
        #[test]
        fn event_ids_round_trip_and_sort(a in any::<u64>(), n in any::<u16>(), b in any::<u64>(), m in any::<u16>()) {
            let (x, y) = (event_id(a, n.into()), event_id(b, m.into()));
            prop_assert_eq!(parse_event_id(&x), Some((a, u32::from(n))));
            prop_assert_eq!(x.cmp(&y), (a, n).cmp(&(b, m)));
        }

        #[test]
        fn time_formatting_matches_days(ms in 0u64..4_102_444_800_000) {
            let s = rfc3339_ms(ms);
            prop_assert_eq!(s.len(), 24);
            // Consecutive days differ in the date part only.
            let next = rfc3339_ms(ms + 86_400_000);
            prop_assert_eq!(&s[10..], &next[10..]);
            prop_assert_ne!(&s[..10], &next[..10]);
        }
    }
}
