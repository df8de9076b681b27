//! The XML of S3 event notifications (issue 15): PutBucketNotificationConfiguration bodies
//! into a [`NotificationConfig`], and the GetBucketNotificationConfiguration document.
//!
//! Accepted (as S3 has it): `NotificationConfiguration` with any number of
//! `TopicConfiguration`, `QueueConfiguration` and `CloudFunctionConfiguration` elements, each
//! with an optional `Id` (generated when missing, as S3 does: here deterministically from the
//! rule, so a retried PUT stores the same ids), its ARN (`Topic`, `Queue`, `CloudFunction`),
//! one or more `Event`s and an optional `Filter/S3Key` of `FilterRule`s (`Name` `prefix` or
//! `suffix`, any case; one of each at most). An empty configuration removes every rule.
//!
//! Refused: a malformed document, unknown or repeated elements -> `MalformedXML`;
//! `EventBridgeConfiguration` -> `NotImplemented`; what S3 refuses in a well-formed
//! document -> `InvalidArgument`: an event name Anode does not make, an ARN naming no
//! target (`arn:anode:sqs::NAME`, `arn:minio:sqs::1:NAME`, `arn:aws:sqs:REGION:ACCOUNT:NAME`,
//! see [`anode_meta::notify::target_of_arn`]), a repeated prefix or suffix rule, an unknown
//! filter rule name, two rules with the same id, and two rules that overlap (a common event
//! type and filters that can both match one key, as S3 refuses). A target that does not exist
//! is refused by the master (`InvalidArgument` too).

use anode_meta::notify::{target_of_arn, validate_config, NotifyError};
use anode_proto::{NotificationConfig, NotificationRule};
use sha2::{Digest, Sha256};

use crate::error::S3Error;
use crate::xml::{expect_root, parse_tree, XmlNode, XmlWriter};

/// Largest PutBucketNotificationConfiguration body accepted (100 rules of a few hundred
/// bytes each fit many times over).
pub const MAX_NOTIFICATION_BODY_BYTES: usize = 256 << 10;

/// The rule elements, in the order of [`NotificationRule::kind`], with their ARN element.
const KINDS: [(&str, &str); 3] = [
    ("TopicConfiguration", "Topic"),
    ("QueueConfiguration", "Queue"),
    ("CloudFunctionConfiguration", "CloudFunction"),
];

/// Parse a PutBucketNotificationConfiguration body and validate it (see the module docs).
pub fn parse_notification(body: &[u8]) -> Result<NotificationConfig, S3Error> {
    if body.len() > MAX_NOTIFICATION_BODY_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "NotificationConfiguration")?;
    let mut rules = Vec::new();
    for (n, child) in root.children.iter().enumerate() {
        if child.name == "EventBridgeConfiguration" {
            return Err(S3Error::NotImplemented(
                "EventBridgeConfiguration is not supported; use QueueConfiguration, \
                 TopicConfiguration or CloudFunctionConfiguration with a notification target"
                    .into(),
            ));
        }
        let kind = KINDS
            .iter()
            .position(|(name, _)| *name == child.name)
            .ok_or(S3Error::MalformedXML)?;
        if rules.len() >= anode_meta::notify::MAX_RULES {
            return Err(invalid(NotifyError::TooManyRules));
        }
        rules.push(rule(child, kind as u32, n)?);
    }
    let cfg = NotificationConfig { rules };
    validate_config(&cfg).map_err(invalid)?;
    if let Some((a, b)) = overlapping(&cfg) {
        return Err(S3Error::InvalidArgument(format!(
            "Configurations overlap. Configurations on the same bucket cannot share a common \
             event type. ({a:?} and {b:?})"
        )));
    }
    Ok(cfg)
}

fn invalid(e: NotifyError) -> S3Error {
    S3Error::InvalidArgument(e.to_string())
}

/// The text of a leaf element (no children, no NUL), trimmed.
fn leaf(node: &XmlNode) -> Result<String, S3Error> {
    if node.children.is_empty() && !node.text.contains('\0') {
        Ok(node.text.trim().to_string())
    } else {
        Err(S3Error::MalformedXML)
    }
}

fn rule(node: &XmlNode, kind: u32, n: usize) -> Result<NotificationRule, S3Error> {
    let arn_elem = KINDS[kind as usize].1;
    if node
        .children
        .iter()
        .any(|c| !["Id", arn_elem, "Event", "Filter"].contains(&c.name.as_str()))
    {
        return Err(S3Error::MalformedXML);
    }
    let arn = match node.single_child(arn_elem)? {
        Some(a) => leaf(a)?,
        None => return Err(S3Error::MalformedXML),
    };
    let events = node
        .children_named("Event")
        .map(leaf)
        .collect::<Result<Vec<_>, _>>()?;
    if events.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    let (prefix, suffix) = match node.single_child("Filter")? {
        Some(f) => filter(f)?,
        None => (String::new(), String::new()),
    };
    let target = target_of_arn(&arn).map_err(invalid)?;
    let mut r = NotificationRule {
        id: String::new(),
        kind,
        arn,
        target,
        events,
        prefix,
        suffix,
    };
    r.id = match node.single_child("Id")? {
        Some(id) => leaf(id)?,
        None => String::new(),
    };
    if r.id.is_empty() {
        r.id = generated_id(&r, n);
    }
    Ok(r)
}

/// `Filter/S3Key/FilterRule*`: the prefix and suffix ("" = none).
fn filter(node: &XmlNode) -> Result<(String, String), S3Error> {
    if node.children.iter().any(|c| c.name != "S3Key") || node.children.len() > 1 {
        return Err(S3Error::MalformedXML);
    }
    let (mut prefix, mut suffix) = (None, None);
    let Some(key) = node.children.first() else {
        return Ok((String::new(), String::new()));
    };
    for fr in &key.children {
        if fr.name != "FilterRule"
            || fr
                .children
                .iter()
                .any(|c| c.name != "Name" && c.name != "Value")
        {
            return Err(S3Error::MalformedXML);
        }
        let name = fr
            .single_child("Name")?
            .map(leaf)
            .transpose()?
            .ok_or(S3Error::MalformedXML)?;
        // The value is kept as sent (a key prefix may hold spaces).
        let value = match fr.single_child("Value")? {
            Some(v) if v.children.is_empty() && !v.text.contains('\0') => v.text.clone(),
            Some(_) => return Err(S3Error::MalformedXML),
            None => String::new(),
        };
        let slot = if name.eq_ignore_ascii_case("prefix") {
            &mut prefix
        } else if name.eq_ignore_ascii_case("suffix") {
            &mut suffix
        } else {
            return Err(S3Error::InvalidArgument(
                "filter rule name must be either prefix or suffix".into(),
            ));
        };
        if slot.replace(value).is_some() {
            return Err(S3Error::InvalidArgument(format!(
                "Cannot specify more than one {} rule in a filter.",
                name.to_ascii_lowercase()
            )));
        }
    }
    Ok((prefix.unwrap_or_default(), suffix.unwrap_or_default()))
}

/// The id S3 would make up for a rule without one: here a digest of the rule and its place,
/// so the same document always stores the same ids.
fn generated_id(r: &NotificationRule, n: usize) -> String {
    let mut h = Sha256::new();
    h.update((n as u64).to_be_bytes());
    for part in [r.arn.as_str(), &r.prefix, &r.suffix]
        .into_iter()
        .chain(r.events.iter().map(String::as_str))
    {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("notification-{hex}")
}

/// Do two event selectors (`s3:ObjectCreated:*`, `s3:ObjectCreated:Put`) share an event?
fn selectors_overlap(a: &str, b: &str) -> bool {
    let family = |s: &str| s.strip_suffix('*').map(str::to_string);
    match (family(a), family(b)) {
        (Some(fa), Some(fb)) => fa == fb,
        (Some(fa), None) => b.starts_with(&fa),
        (None, Some(fb)) => a.starts_with(&fb),
        (None, None) => a == b,
    }
}

/// The ids of the first two rules that S3 would call overlapping: a common event type, and
/// key filters that one key can match both of (each prefix extends the other, and each
/// suffix ends the other).
pub fn overlapping(cfg: &NotificationConfig) -> Option<(String, String)> {
    for (i, a) in cfg.rules.iter().enumerate() {
        for b in &cfg.rules[i + 1..] {
            let events = a
                .events
                .iter()
                .any(|x| b.events.iter().any(|y| selectors_overlap(x, y)));
            let prefixes = a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix);
            let suffixes = a.suffix.ends_with(&b.suffix) || b.suffix.ends_with(&a.suffix);
            if events && prefixes && suffixes {
                return Some((a.id.clone(), b.id.clone()));
            }
        }
    }
    None
}

/// The GetBucketNotificationConfiguration document (`<NotificationConfiguration/>` with no
/// rules).
pub fn render_notification(cfg: Option<&NotificationConfig>) -> String {
    let mut w = XmlWriter::new();
    w.open_root("NotificationConfiguration");
    for r in cfg.map(|c| c.rules.as_slice()).unwrap_or_default() {
        let (elem, arn_elem) = KINDS.get(r.kind as usize).copied().unwrap_or(KINDS[1]);
        w.open(elem);
        w.elem("Id", &r.id);
        w.elem(arn_elem, &r.arn);
        for e in &r.events {
            w.elem("Event", e);
        }
        if !r.prefix.is_empty() || !r.suffix.is_empty() {
            w.open("Filter");
            w.open("S3Key");
            for (name, value) in [("Prefix", &r.prefix), ("Suffix", &r.suffix)] {
                if !value.is_empty() {
                    w.open("FilterRule");
                    w.elem("Name", name);
                    w.elem("Value", value);
                    w.close("FilterRule");
                }
            }
            w.close("S3Key");
            w.close("Filter");
        }
        w.close(elem);
    }
    w.close("NotificationConfiguration");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<NotificationConfig, S3Error>) -> &'static str {
        r.expect_err("refused").aws_code()
    }

    #[test]
    fn parses_every_kind_with_filters_and_generated_ids() {
        let body = br#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <QueueConfiguration>
              <Id>images</Id>
              <Queue>arn:aws:sqs:us-east-1:123456789012:hooks</Queue>
              <Event>s3:ObjectCreated:*</Event>
              <Event>s3:ObjectRemoved:Delete</Event>
              <Filter><S3Key>
                <FilterRule><Name>prefix</Name><Value>images/</Value></FilterRule>
                <FilterRule><Name>Suffix</Name><Value>.jpg</Value></FilterRule>
              </S3Key></Filter>
            </QueueConfiguration>
            <TopicConfiguration>
              <Topic>arn:minio:sqs::1:other</Topic>
              <Event>s3:ObjectTagging:*</Event>
            </TopicConfiguration>
            <CloudFunctionConfiguration>
              <CloudFunction>arn:anode:lambda::fn_1</CloudFunction>
              <Event>s3:ObjectRemoved:*</Event>
              <Filter><S3Key><FilterRule><Name>prefix</Name><Value>logs/</Value></FilterRule></S3Key></Filter>
            </CloudFunctionConfiguration>
        </NotificationConfiguration>"#;
        let cfg = parse_notification(body).unwrap();
        assert_eq!(cfg.rules.len(), 3);
        let q = &cfg.rules[0];
        assert_eq!(
            (q.kind, q.id.as_str(), q.target.as_str()),
            (1, "images", "hooks")
        );
        assert_eq!((q.prefix.as_str(), q.suffix.as_str()), ("images/", ".jpg"));
        assert_eq!(q.events, ["s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"]);
        let t = &cfg.rules[1];
        assert_eq!((t.kind, t.target.as_str()), (0, "other"));
        assert!(t.id.starts_with("notification-"), "{}", t.id);
        // Generated ids are stable and distinct.
        let again = parse_notification(body).unwrap();
        assert_eq!(again.rules[1].id, t.id);
        assert_ne!(cfg.rules[2].id, t.id);
        assert_eq!(cfg.rules[2].kind, 2);
    }

    #[test]
    fn round_trips_through_the_get_document() {
        let body = br#"<NotificationConfiguration><QueueConfiguration><Id>a &amp; b</Id><Queue>arn:anode:sqs::hooks</Queue><Event>s3:ObjectCreated:Put</Event><Filter><S3Key><FilterRule><Name>suffix</Name><Value> x.gz</Value></FilterRule></S3Key></Filter></QueueConfiguration><TopicConfiguration><Id>t</Id><Topic>arn:anode:sns::hooks</Topic><Event>s3:ObjectRemoved:*</Event></TopicConfiguration></NotificationConfiguration>"#;
        let cfg = parse_notification(body).unwrap();
        let doc = render_notification(Some(&cfg));
        assert_eq!(
            doc,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <QueueConfiguration><Id>a &amp; b</Id><Queue>arn:anode:sqs::hooks</Queue><Event>s3:ObjectCreated:Put</Event>\
             <Filter><S3Key><FilterRule><Name>Suffix</Name><Value> x.gz</Value></FilterRule></S3Key></Filter></QueueConfiguration>\
             <TopicConfiguration><Id>t</Id><Topic>arn:anode:sns::hooks</Topic><Event>s3:ObjectRemoved:*</Event></TopicConfiguration>\
             </NotificationConfiguration>"
        );
        assert_eq!(parse_notification(doc.as_bytes()).unwrap(), cfg);
        let empty = render_notification(None);
        assert!(empty.ends_with("<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></NotificationConfiguration>"), "{empty}");
        assert_eq!(
            parse_notification(empty.as_bytes()).unwrap(),
            NotificationConfig::default()
        );
        assert_eq!(
            parse_notification(b"<NotificationConfiguration/>").unwrap(),
            NotificationConfig::default()
        );
    }

    #[test]
    fn refusals() {
        let q = |inner: &str| {
            format!("<NotificationConfiguration><QueueConfiguration>{inner}</QueueConfiguration></NotificationConfiguration>")
        };
        let arn = "<Queue>arn:anode:sqs::hooks</Queue>";
        let ev = "<Event>s3:ObjectCreated:*</Event>";
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "MalformedXML"),
            ("<NotificationConfiguration>".into(), "MalformedXML"),
            ("<Other/>".into(), "MalformedXML"),
            ("<NotificationConfiguration><Bogus/></NotificationConfiguration>".into(), "MalformedXML"),
            ("<NotificationConfiguration><EventBridgeConfiguration/></NotificationConfiguration>".into(), "NotImplemented"),
            (q(ev), "MalformedXML"),
            (q(arn), "MalformedXML"),
            (q(&format!("{arn}{arn}{ev}")), "MalformedXML"),
            (q(&format!("<Topic>arn:anode:sqs::hooks</Topic>{ev}")), "MalformedXML"),
            (q(&format!("{arn}<Event>s3:ObjectRestore:Post</Event>")), "InvalidArgument"),
            (q(&format!("{arn}<Event>s3:*</Event>")), "InvalidArgument"),
            (q(&format!("<Queue>arn:aws:s3:::bucket</Queue>{ev}")), "InvalidArgument"),
            (q(&format!("<Queue>arn:anode:sqs::Bad.Name</Queue>{ev}")), "InvalidArgument"),
            (q(&format!("{arn}{ev}<Filter><S3Key><FilterRule><Name>prefix</Name><Value>a</Value></FilterRule><FilterRule><Name>Prefix</Name><Value>b</Value></FilterRule></S3Key></Filter>")), "InvalidArgument"),
            (q(&format!("{arn}{ev}<Filter><S3Key><FilterRule><Name>middle</Name><Value>a</Value></FilterRule></S3Key></Filter>")), "InvalidArgument"),
            (q(&format!("{arn}{ev}<Filter><Other/></Filter>")), "MalformedXML"),
            (q(&format!("{arn}{ev}<Filter><S3Key><FilterRule><Value>a</Value></FilterRule></S3Key></Filter>")), "MalformedXML"),
            (q(&format!("<Id>x</Id><Id>y</Id>{arn}{ev}")), "MalformedXML"),
            (q(&format!("<Id>a\u{1}b</Id>{arn}{ev}")), "InvalidArgument"),
        ];
        for (body, want) in cases {
            assert_eq!(code(parse_notification(body.as_bytes())), want, "{body}");
        }
        let big = vec![b' '; MAX_NOTIFICATION_BODY_BYTES + 1];
        assert_eq!(code(parse_notification(&big)), "EntityTooLarge");
    }

    #[test]
    fn duplicate_ids_and_overlaps_are_refused() {
        let rule = |id: &str, ev: &str, prefix: &str, suffix: &str| {
            format!(
                "<QueueConfiguration><Id>{id}</Id><Queue>arn:anode:sqs::hooks</Queue><Event>{ev}</Event>\
                 <Filter><S3Key><FilterRule><Name>prefix</Name><Value>{prefix}</Value></FilterRule>\
                 <FilterRule><Name>suffix</Name><Value>{suffix}</Value></FilterRule></S3Key></Filter></QueueConfiguration>"
            )
        };
        let doc = |rules: &[String]| {
            format!(
                "<NotificationConfiguration>{}</NotificationConfiguration>",
                rules.concat()
            )
        };
        let ok = [
            // Disjoint events.
            vec![
                rule("a", "s3:ObjectCreated:*", "", ""),
                rule("b", "s3:ObjectRemoved:*", "", ""),
            ],
            // Disjoint prefixes.
            vec![
                rule("a", "s3:ObjectCreated:*", "x/", ""),
                rule("b", "s3:ObjectCreated:Put", "y/", ""),
            ],
            // Disjoint suffixes.
            vec![
                rule("a", "s3:ObjectCreated:Put", "", ".jpg"),
                rule("b", "s3:ObjectCreated:Put", "", ".png"),
            ],
            // Different events of one family.
            vec![
                rule("a", "s3:ObjectCreated:Put", "", ""),
                rule("b", "s3:ObjectCreated:Copy", "", ""),
            ],
        ];
        for rules in ok {
            parse_notification(doc(&rules).as_bytes()).unwrap();
        }
        let bad = [
            vec![
                rule("a", "s3:ObjectCreated:*", "", ""),
                rule("a", "s3:ObjectRemoved:*", "", ""),
            ],
            vec![
                rule("a", "s3:ObjectCreated:*", "x/", ""),
                rule("b", "s3:ObjectCreated:Put", "x/y", ""),
            ],
            vec![
                rule("a", "s3:ObjectCreated:*", "", ".gz"),
                rule("b", "s3:ObjectCreated:*", "", ""),
            ],
            vec![
                rule("a", "s3:ObjectRemoved:Delete", "", ""),
                rule("b", "s3:ObjectRemoved:Delete", "", ""),
            ],
        ];
        for rules in bad {
            assert_eq!(
                code(parse_notification(doc(&rules).as_bytes())),
                "InvalidArgument"
            );
        }
    }
}
