//! S3 XML of a bucket's lifecycle configuration, both ways: the
//! PutBucketLifecycleConfiguration body into the stored [`LifecycleConfig`], and the
//! GetBucketLifecycleConfiguration document of a stored one. Pure functions; the rules'
//! meaning is [`anode_meta::lifecycle`], whose `validate` (which the state machine runs too)
//! [`parse_lifecycle`] also runs.
//!
//! Errors, as S3 answers them:
//! - `MalformedXML`: the body does not parse or does not follow the schema: another root, no
//!   rule or more than 1,000, an element this document does not have (so a misspelt
//!   `Expiraton` is never read as "no expiration"), an element given twice, a `Status` other
//!   than `Enabled` / `Disabled`, a day count or size that is not an integer, a date that is
//!   not an ISO 8601 date-time, a rule with both the legacy top-level `Prefix` and a `Filter`
//!   or with neither, a `Filter` with more than one condition outside `And`, an `Expiration`
//!   with none or more than one of `Days`, `Date` and `ExpiredObjectDeleteMarker`, a NUL in
//!   an id, prefix or tag (no XML character; it could not be written back).
//! - `InvalidArgument`: a well-formed value S3 refuses: a day count of 0 or below, a date that
//!   is not midnight UTC (or is not after 1970-01-01), `ObjectSizeLessThan` of 0, a tag over
//!   S3's key (128) or value (256) length, a tag key given twice, and everything
//!   [`anode_meta::lifecycle::validate`] refuses (an id over 255 characters, an id used twice,
//!   an empty size range, more than 10 tags, ...), as S3 answers `InvalidArgument` for those.
//! - `InvalidRequest`: a rule without any action ("At least one action needs to be specified
//!   in a rule", S3's answer).
//! - `NotImplemented`: `Transition` and `NoncurrentVersionTransition`. Anode has one storage
//!   class, so a transition to any class (valid on S3 or not) could never be carried out;
//!   accepting it would store a rule that silently does nothing, and `InvalidStorageClass`
//!   would wrongly say the class is the problem. 501 says the feature is missing.
//!
//! A rule without an `ID` gets `rule-N`, N its 1-based position in the document (with `-2`,
//! `-3`, ... appended while that collides with another rule's id): stable for a given body,
//! so putting the same document twice stores the same configuration (S3 makes up a random
//! id). The filter is stored flat (prefix, size bounds, tags) with `filter_form` saying how it
//! was given: 1 for the legacy top-level `<Prefix>`, written back the same way; 0 for
//! `<Filter>`, written back as the one condition it has, `<And>` for several, or an empty
//! `<Filter></Filter>`.

use anode_proto::{LifecycleConfig, LifecycleRule, LifecycleTag};

use crate::error::S3Error;
use crate::xml::{expect_root, iso8601_ms, parse_tree, XmlNode, XmlWriter};

/// Largest PutBucketLifecycleConfiguration body accepted. A configuration may hold 1,000
/// rules, each with a 255-character id, a prefix of up to 1,024 bytes and 10 tags (about
/// 4 KiB of XML at most, far less in practice); 1 MiB holds 1,000 ordinary rules several
/// times over while keeping one request's parse bounded.
pub const MAX_LIFECYCLE_BODY_BYTES: usize = 1 << 20;
/// Longest tag key in a filter (S3's limit, in characters).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value in a filter (S3's limit, in characters).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

const RULE_CHILDREN: &[&str] = &[
    "ID",
    "Status",
    "Prefix",
    "Filter",
    "Expiration",
    "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload",
    "Transition",
    "NoncurrentVersionTransition",
];
const FILTER_CONDITIONS: &[&str] = &[
    "Prefix",
    "Tag",
    "ObjectSizeGreaterThan",
    "ObjectSizeLessThan",
    "And",
];

fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::InvalidArgument(msg.into())
}

/// Refuse children of `node` not named in `allowed`.
fn only(node: &XmlNode, allowed: &[&str]) -> Result<(), S3Error> {
    if node
        .children
        .iter()
        .all(|c| allowed.contains(&c.name.as_str()))
    {
        Ok(())
    } else {
        Err(S3Error::MalformedXML)
    }
}

/// An integer element: not an integer is `MalformedXML`.
fn integer(node: &XmlNode) -> Result<i128, S3Error> {
    node.text
        .trim()
        .parse::<i128>()
        .map_err(|_| S3Error::MalformedXML)
}

/// A day count: a positive integer that fits a `u32`.
fn days(node: &XmlNode) -> Result<u32, S3Error> {
    let n = integer(node)?;
    if n <= 0 {
        return Err(invalid(format!(
            "'{}' must be a positive integer",
            node.name
        )));
    }
    u32::try_from(n).map_err(|_| invalid(format!("'{}' is too large", node.name)))
}

/// An object size bound (bytes, at most `u64::MAX`).
fn size(node: &XmlNode) -> Result<u64, S3Error> {
    let n = integer(node)?;
    u64::try_from(n).map_err(|_| invalid(format!("'{}' must be a size in bytes", node.name)))
}

fn boolean(node: &XmlNode) -> Result<bool, S3Error> {
    match node.text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(S3Error::MalformedXML),
    }
}

/// An expiration date: an ISO 8601 date-time (`MalformedXML` otherwise) at midnight UTC
/// after the epoch (`InvalidArgument` otherwise), in milliseconds.
fn date_ms(node: &XmlNode) -> Result<u64, S3Error> {
    let t = time::OffsetDateTime::parse(
        node.text.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| S3Error::MalformedXML)?;
    let secs = t.unix_timestamp();
    if t.nanosecond() != 0 || secs.rem_euclid(86_400) != 0 {
        return Err(invalid("'Date' must be at midnight GMT"));
    }
    match u64::try_from(secs) {
        Ok(s) if s > 0 => Ok(s * 1000),
        _ => Err(invalid("'Date' must be after 1970-01-01")),
    }
}

/// The text of an element kept in the configuration (an id, a prefix, a tag key or value),
/// unescaped and untrimmed. NUL is refused: it is no XML character, and it would be written
/// back as `&#x0;`, which no client parses.
fn kept_text(node: &XmlNode) -> Result<String, S3Error> {
    if node.text.contains('\0') {
        return Err(S3Error::MalformedXML);
    }
    Ok(node.text.clone())
}

fn tag(node: &XmlNode) -> Result<LifecycleTag, S3Error> {
    only(node, &["Key", "Value"])?;
    let key = node.single_child("Key")?.ok_or(S3Error::MalformedXML)?;
    let key = kept_text(key)?;
    let value = node
        .single_child("Value")?
        .map(kept_text)
        .transpose()?
        .unwrap_or_default();
    if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
        return Err(invalid(format!(
            "a tag key has 1 to {MAX_TAG_KEY_CHARS} characters"
        )));
    }
    if value.chars().count() > MAX_TAG_VALUE_CHARS {
        return Err(invalid(format!(
            "a tag value has at most {MAX_TAG_VALUE_CHARS} characters"
        )));
    }
    Ok(LifecycleTag { key, value })
}

/// One filter condition (a child of `Filter` or `And`) into `r`.
fn condition(r: &mut LifecycleRule, c: &XmlNode) -> Result<(), S3Error> {
    match c.name.as_str() {
        "Prefix" => r.prefix = kept_text(c)?,
        "Tag" => {
            let t = tag(c)?;
            if r.tags.iter().any(|o| o.key == t.key) {
                return Err(invalid("Duplicate Tag Keys are not allowed"));
            }
            r.tags.push(t);
        }
        "ObjectSizeGreaterThan" => r.size_greater_than = size(c)?,
        "ObjectSizeLessThan" => {
            r.size_less_than = size(c)?;
            if r.size_less_than == 0 {
                return Err(invalid("'ObjectSizeLessThan' must be positive"));
            }
        }
        _ => return Err(S3Error::MalformedXML),
    }
    Ok(())
}

fn filter(r: &mut LifecycleRule, f: &XmlNode) -> Result<(), S3Error> {
    only(f, FILTER_CONDITIONS)?;
    match f.children.as_slice() {
        [] => Ok(()),
        [and] if and.name == "And" => {
            only(
                and,
                &[
                    "Prefix",
                    "Tag",
                    "ObjectSizeGreaterThan",
                    "ObjectSizeLessThan",
                ],
            )?;
            for name in ["Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"] {
                and.single_child(name)?;
            }
            and.children.iter().try_for_each(|c| condition(r, c))
        }
        [one] => condition(r, one),
        // Several conditions without `And`: AWS's schema wants `And`, but Ceph RGW (and the
        // s3-tests written against it, e.g. `Prefix` with `ObjectSizeGreaterThan`) accept them
        // as if they were in one; read them the same way, each at most once.
        several if several.iter().all(|c| c.name != "And") => {
            for name in ["Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"] {
                f.single_child(name)?;
            }
            several.iter().try_for_each(|c| condition(r, c))
        }
        _ => Err(S3Error::MalformedXML),
    }
}

fn expiration(r: &mut LifecycleRule, e: &XmlNode) -> Result<(), S3Error> {
    only(e, &["Days", "Date", "ExpiredObjectDeleteMarker"])?;
    let (d, date, marker) = (
        e.single_child("Days")?,
        e.single_child("Date")?,
        e.single_child("ExpiredObjectDeleteMarker")?,
    );
    match (d, date, marker) {
        (Some(d), None, None) => r.expiration_days = days(d)?,
        (None, Some(date), None) => r.expiration_date_ms = date_ms(date)?,
        (None, None, Some(m)) => r.expired_object_delete_marker = boolean(m)?,
        _ => return Err(S3Error::MalformedXML),
    }
    Ok(())
}

fn noncurrent_expiration(r: &mut LifecycleRule, n: &XmlNode) -> Result<(), S3Error> {
    only(n, &["NoncurrentDays", "NewerNoncurrentVersions"])?;
    let d = n
        .single_child("NoncurrentDays")?
        .ok_or(S3Error::MalformedXML)?;
    r.noncurrent_days = days(d)?;
    if let Some(newer) = n.single_child("NewerNoncurrentVersions")? {
        r.newer_noncurrent_versions = days(newer)?;
    }
    Ok(())
}

fn abort_multipart(r: &mut LifecycleRule, a: &XmlNode) -> Result<(), S3Error> {
    only(a, &["DaysAfterInitiation"])?;
    let d = a
        .single_child("DaysAfterInitiation")?
        .ok_or(S3Error::MalformedXML)?;
    r.abort_multipart_days = days(d)?;
    Ok(())
}

fn rule(node: &XmlNode) -> Result<LifecycleRule, S3Error> {
    only(node, RULE_CHILDREN)?;
    for name in RULE_CHILDREN {
        node.single_child(name)?;
    }
    let transitions =
        node.child("Transition").is_some() || node.child("NoncurrentVersionTransition").is_some();
    let mut r = LifecycleRule {
        id: node
            .child("ID")
            .map(kept_text)
            .transpose()?
            .unwrap_or_default(),
        ..Default::default()
    };
    r.enabled = match node.child("Status").map(|s| s.text.trim()) {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(S3Error::MalformedXML),
    };
    match (node.child("Prefix"), node.child("Filter")) {
        (Some(p), None) => {
            r.prefix = kept_text(p)?;
            r.filter_form = 1;
        }
        (None, Some(f)) => filter(&mut r, f)?,
        _ => return Err(S3Error::MalformedXML),
    }
    if let Some(e) = node.child("Expiration") {
        expiration(&mut r, e)?;
    }
    if let Some(n) = node.child("NoncurrentVersionExpiration") {
        noncurrent_expiration(&mut r, n)?;
    }
    if let Some(a) = node.child("AbortIncompleteMultipartUpload") {
        abort_multipart(&mut r, a)?;
    }
    // Refused after the rest of the rule is checked, so a rule that is wrong anyway gets its
    // own 400 (an invalid date beside a transition, as s3-tests expects).
    if transitions {
        return Err(S3Error::NotImplemented(
            "lifecycle transitions are not supported: Anode has one storage class".into(),
        ));
    }
    let acts = r.expiration_days > 0
        || r.expiration_date_ms > 0
        || r.expired_object_delete_marker
        || r.noncurrent_days > 0
        || r.abort_multipart_days > 0;
    if !acts {
        return Err(S3Error::InvalidRequest(
            "At least one action needs to be specified in a rule".into(),
        ));
    }
    Ok(r)
}

/// Give each rule without an id `rule-N` (N its 1-based position), suffixed `-2`, `-3`, ...
/// while that is another rule's id.
fn name_rules(rules: &mut [LifecycleRule]) {
    let mut taken: std::collections::BTreeSet<String> = rules
        .iter()
        .filter(|r| !r.id.is_empty())
        .map(|r| r.id.clone())
        .collect();
    for (i, r) in rules.iter_mut().enumerate() {
        if !r.id.is_empty() {
            continue;
        }
        let base = format!("rule-{}", i + 1);
        let mut id = base.clone();
        let mut n = 1;
        while taken.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        taken.insert(id.clone());
        r.id = id;
    }
}

/// Parse a PutBucketLifecycleConfiguration body into the stored form (see the module
/// documentation for the errors and the ids given to rules without one).
pub fn parse_lifecycle(body: &[u8]) -> Result<LifecycleConfig, S3Error> {
    if body.len() > MAX_LIFECYCLE_BODY_BYTES {
        return Err(S3Error::EntityTooLarge);
    }
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "LifecycleConfiguration")?;
    only(root, &["Rule"])?;
    if root.children.is_empty() || root.children.len() > anode_meta::lifecycle::MAX_RULES {
        return Err(S3Error::MalformedXML);
    }
    let mut rules = root
        .children
        .iter()
        .map(rule)
        .collect::<Result<Vec<_>, _>>()?;
    // Ids that are too long or repeated are refused by `validate` before naming: a generated
    // id never makes a given one collide.
    let given = LifecycleConfig {
        rules: rules.clone(),
    };
    anode_meta::lifecycle::validate(&given).map_err(|e| {
        tracing::debug!(error = %e, "lifecycle configuration refused");
        invalid(e.0)
    })?;
    name_rules(&mut rules);
    let cfg = LifecycleConfig { rules };
    anode_meta::lifecycle::validate(&cfg).map_err(|e| invalid(e.0))?;
    Ok(cfg)
}

fn write_filter(w: &mut XmlWriter, r: &LifecycleRule) {
    let conditions = usize::from(!r.prefix.is_empty())
        + r.tags.len()
        + usize::from(r.size_greater_than > 0)
        + usize::from(r.size_less_than > 0);
    w.open("Filter");
    let and = conditions > 1;
    if and {
        w.open("And");
    }
    if !r.prefix.is_empty() {
        w.elem("Prefix", &r.prefix);
    }
    for t in &r.tags {
        w.open("Tag");
        w.elem("Key", &t.key);
        w.elem("Value", &t.value);
        w.close("Tag");
    }
    if r.size_greater_than > 0 {
        w.elem("ObjectSizeGreaterThan", &r.size_greater_than.to_string());
    }
    if r.size_less_than > 0 {
        w.elem("ObjectSizeLessThan", &r.size_less_than.to_string());
    }
    if and {
        w.close("And");
    }
    w.close("Filter");
}

/// The GetBucketLifecycleConfiguration document of a stored configuration: each rule as it
/// was given (ID, the legacy `Prefix` or a `Filter` per `filter_form`, Status, actions), dates
/// as `2030-01-01T00:00:00.000Z`.
pub fn render_lifecycle(cfg: &LifecycleConfig) -> String {
    let mut w = XmlWriter::new();
    w.open_root("LifecycleConfiguration");
    for r in &cfg.rules {
        w.open("Rule");
        if !r.id.is_empty() {
            w.elem("ID", &r.id);
        }
        if r.filter_form == 1 {
            w.elem("Prefix", &r.prefix);
        } else {
            write_filter(&mut w, r);
        }
        w.elem("Status", if r.enabled { "Enabled" } else { "Disabled" });
        if r.expiration_days > 0 || r.expiration_date_ms > 0 || r.expired_object_delete_marker {
            w.open("Expiration");
            if r.expiration_days > 0 {
                w.elem("Days", &r.expiration_days.to_string());
            } else if r.expiration_date_ms > 0 {
                w.elem("Date", &iso8601_ms(r.expiration_date_ms));
            } else {
                w.elem("ExpiredObjectDeleteMarker", "true");
            }
            w.close("Expiration");
        }
        if r.noncurrent_days > 0 {
            w.open("NoncurrentVersionExpiration");
            w.elem("NoncurrentDays", &r.noncurrent_days.to_string());
            if r.newer_noncurrent_versions > 0 {
                w.elem(
                    "NewerNoncurrentVersions",
                    &r.newer_noncurrent_versions.to_string(),
                );
            }
            w.close("NoncurrentVersionExpiration");
        }
        if r.abort_multipart_days > 0 {
            w.open("AbortIncompleteMultipartUpload");
            w.elem("DaysAfterInitiation", &r.abort_multipart_days.to_string());
            w.close("AbortIncompleteMultipartUpload");
        }
        w.close("Rule");
    }
    w.close("LifecycleConfiguration");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::S3_XMLNS;
    use proptest::prelude::*;

    fn doc(rules: &str) -> String {
        format!("<LifecycleConfiguration xmlns=\"{S3_XMLNS}\">{rules}</LifecycleConfiguration>")
    }

    fn parse(rules: &str) -> Result<LifecycleConfig, S3Error> {
        parse_lifecycle(doc(rules).as_bytes())
    }

    fn one(rule: &str) -> Result<LifecycleRule, S3Error> {
        parse(&format!("<Rule>{rule}</Rule>")).map(|mut c| c.rules.remove(0))
    }

    fn code(r: Result<impl std::fmt::Debug, S3Error>) -> &'static str {
        r.expect_err("refused").aws_code()
    }

    #[test]
    fn legacy_prefix_rules_round_trip_as_given() {
        // test_lifecycle_get: what GET answers must equal what was put.
        let body = "<Rule><ID>test1/</ID><Expiration><Days>31</Days></Expiration>\
                    <Prefix>test1/</Prefix><Status>Enabled</Status></Rule>\
                    <Rule><ID>test2/</ID><Prefix>test2/</Prefix><Status>Disabled</Status>\
                    <Expiration><Days>120</Days></Expiration></Rule>";
        let cfg = parse(body).unwrap();
        assert_eq!(
            cfg.rules[0],
            LifecycleRule {
                id: "test1/".into(),
                enabled: true,
                prefix: "test1/".into(),
                expiration_days: 31,
                filter_form: 1,
                ..Default::default()
            }
        );
        assert!(!cfg.rules[1].enabled);
        assert_eq!(
            render_lifecycle(&cfg),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
                doc(
                    "<Rule><ID>test1/</ID><Prefix>test1/</Prefix><Status>Enabled</Status>\
                     <Expiration><Days>31</Days></Expiration></Rule>\
                     <Rule><ID>test2/</ID><Prefix>test2/</Prefix><Status>Disabled</Status>\
                     <Expiration><Days>120</Days></Expiration></Rule>"
                )
            )
        );
    }

    #[test]
    fn filters_every_form() {
        let r = one("<ID>a</ID><Filter><Prefix>foo</Prefix></Filter><Status>Enabled</Status>\
                     <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>")
        .unwrap();
        assert_eq!((r.prefix.as_str(), r.filter_form), ("foo", 0));
        assert!(r.expired_object_delete_marker);
        for empty in ["<Filter/>", "<Filter></Filter>", "<Filter>\n </Filter>"] {
            let r = one(&format!(
                "<ID>a</ID>{empty}<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
            ))
            .unwrap();
            assert_eq!((r.prefix.as_str(), r.filter_form, r.tags.len()), ("", 0, 0));
        }
        let r = one(
            "<ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
                     <Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
        )
        .unwrap();
        assert_eq!(
            r.tags,
            vec![LifecycleTag {
                key: "k".into(),
                value: "v".into()
            }]
        );
        let r = one(
            "<ID>a</ID><Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></Filter>\
                     <Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
        )
        .unwrap();
        assert_eq!(r.size_greater_than, 5);
        let r = one(
            "<ID>a</ID><Filter><ObjectSizeLessThan>9</ObjectSizeLessThan></Filter>\
                     <Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
        )
        .unwrap();
        assert_eq!(r.size_less_than, 9);
        let r = one("<ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k1</Key><Value>v1</Value></Tag>\
                     <Tag><Key>k2</Key><Value></Value></Tag><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan>\
                     <ObjectSizeLessThan>100</ObjectSizeLessThan></And></Filter>\
                     <Status>Enabled</Status><Expiration><Days>1</Days></Expiration>")
        .unwrap();
        assert_eq!(r.prefix, "p/");
        assert_eq!(r.tags.len(), 2);
        assert_eq!((r.size_greater_than, r.size_less_than), (1, 100));
        let xml = render_lifecycle(&LifecycleConfig {
            rules: vec![r.clone()],
        });
        assert!(
            xml.contains("<Filter><And><Prefix>p/</Prefix><Tag><Key>k1</Key>"),
            "{xml}"
        );
        assert_eq!(parse_lifecycle(xml.as_bytes()).unwrap().rules, vec![r]);
    }

    #[test]
    fn filter_errors() {
        let acts = "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>";
        let malformed = [
            // Both the legacy prefix and a filter, or neither.
            "<Prefix>a</Prefix><Filter><Prefix>a</Prefix></Filter>",
            "",
            // A condition twice without And, and And beside another condition.
            "<Filter><Prefix>a</Prefix><Prefix>b</Prefix></Filter>",
            "<Filter><Prefix>a</Prefix><And><Prefix>b</Prefix></And></Filter>",
            "<Filter><Bogus/></Filter>",
            "<Filter><And><Prefix>a</Prefix><Prefix>b</Prefix></And></Filter>",
            "<Filter><Tag><Value>v</Value></Tag></Filter>",
            "<Filter><ObjectSizeGreaterThan>big</ObjectSizeGreaterThan></Filter>",
        ];
        for f in malformed {
            assert_eq!(
                code(one(&format!("<ID>a</ID>{f}{acts}"))),
                "MalformedXML",
                "{f}"
            );
        }
        let invalid = [
            "<Filter><ObjectSizeLessThan>0</ObjectSizeLessThan></Filter>",
            "<Filter><ObjectSizeGreaterThan>-1</ObjectSizeGreaterThan></Filter>",
            "<Filter><And><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan>\
             <ObjectSizeLessThan>10</ObjectSizeLessThan></And></Filter>",
            "<Filter><And><Tag><Key>k</Key></Tag><Tag><Key>k</Key></Tag></And></Filter>",
            "<Filter><Tag><Key></Key></Tag></Filter>",
        ];
        for f in invalid {
            assert_eq!(
                code(one(&format!("<ID>a</ID>{f}{acts}"))),
                "InvalidArgument",
                "{f}"
            );
        }
        let long_key = format!("<Filter><Tag><Key>{}</Key></Tag></Filter>", "k".repeat(129));
        assert_eq!(
            code(one(&format!("<ID>a</ID>{long_key}{acts}"))),
            "InvalidArgument"
        );
        let eleven: String = (0..11)
            .map(|i| format!("<Tag><Key>k{i}</Key></Tag>"))
            .collect();
        let f = format!("<Filter><And>{eleven}</And></Filter>");
        assert_eq!(
            code(one(&format!("<ID>a</ID>{f}{acts}"))),
            "InvalidArgument"
        );
    }

    #[test]
    fn status_must_be_enabled_or_disabled() {
        for s in ["enabled", "disabled", "invalid", ""] {
            let r = one(&format!(
                "<ID>a</ID><Prefix/><Status>{s}</Status><Expiration><Days>1</Days></Expiration>"
            ));
            assert_eq!(code(r), "MalformedXML", "{s}");
        }
        assert_eq!(
            code(one(
                "<ID>a</ID><Prefix/><Expiration><Days>1</Days></Expiration>"
            )),
            "MalformedXML"
        );
    }

    #[test]
    fn ids_too_long_repeated_or_made_up() {
        let rule = |id: &str, p: &str| {
            format!(
                "<Rule>{id}<Prefix>{p}</Prefix><Status>Enabled</Status>\
                 <Expiration><Days>2</Days></Expiration></Rule>"
            )
        };
        let long = format!("<ID>{}</ID>", "a".repeat(256));
        assert_eq!(code(parse(&rule(&long, "x"))), "InvalidArgument");
        let ok = format!("<ID>{}</ID>", "a".repeat(255));
        assert!(parse(&rule(&ok, "x")).is_ok());
        let same = rule("<ID>rule1</ID>", "a") + &rule("<ID>rule1</ID>", "b");
        assert_eq!(code(parse(&same)), "InvalidArgument");
        // No id: rule-N by position, avoiding ids given to other rules; stable.
        let body = rule("", "a") + &rule("<ID>rule-3</ID>", "b") + &rule("", "c");
        let cfg = parse(&body).unwrap();
        let ids: Vec<&str> = cfg.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["rule-1", "rule-3", "rule-3-2"]);
        assert_eq!(parse(&body).unwrap(), cfg);
        assert!(render_lifecycle(&cfg).contains("<ID>rule-1</ID>"));
    }

    #[test]
    fn nul_is_refused_other_characters_round_trip() {
        let rule = |prefix: &str, id: &str| {
            doc(&format!(
                "<Rule><ID>{id}</ID><Filter><Tag><Key>k{id}</Key><Value>{id}</Value></Tag></Filter>\
                 <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>\
                 <Rule><Prefix>{prefix}</Prefix><Status>Enabled</Status>\
                 <Expiration><Days>1</Days></Expiration></Rule>"
            ))
        };
        // A raw NUL would be stored and then rendered as `&#x0;`, which no parser reads back.
        for (prefix, id) in [("a\u{0}b", "i"), ("a", "i\u{0}"), ("a", "&#x0;")] {
            let got = parse_lifecycle(rule(prefix, id).as_bytes());
            assert_eq!(code(got), "MalformedXML", "{prefix:?} {id:?}");
        }
        for c in ["\u{1}", "&#x1;", "\r", "&#xD;", "\u{7f}", " "] {
            let cfg =
                parse_lifecycle(rule(&format!("a{c}b"), &format!("i{c}")).as_bytes()).unwrap();
            let again = parse_lifecycle(render_lifecycle(&cfg).as_bytes());
            assert_eq!(again, Ok(cfg), "{c:?}");
        }
    }

    #[test]
    fn rule_counts() {
        assert_eq!(code(parse("")), "MalformedXML");
        let r =
            "<Rule><Prefix/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>";
        assert_eq!(parse(&r.repeat(1000)).unwrap().rules.len(), 1000);
        assert_eq!(code(parse(&r.repeat(1001))), "MalformedXML");
        assert_eq!(code(parse(&format!("{r}<Other/>"))), "MalformedXML");
        assert_eq!(
            code(parse_lifecycle(b"<Lifecycle><Rule/></Lifecycle>")),
            "MalformedXML"
        );
        assert_eq!(code(parse_lifecycle(b"not xml")), "MalformedXML");
        let huge = vec![b' '; MAX_LIFECYCLE_BODY_BYTES + 1];
        assert_eq!(code(parse_lifecycle(&huge)), "EntityTooLarge");
    }

    fn action(a: &str) -> Result<LifecycleRule, S3Error> {
        one(&format!("<ID>a</ID><Filter/><Status>Enabled</Status>{a}"))
    }

    #[test]
    fn days() {
        assert_eq!(
            action("<Expiration><Days> 7 </Days></Expiration>")
                .unwrap()
                .expiration_days,
            7
        );
        for bad in ["0", "-1"] {
            let a = format!("<Expiration><Days>{bad}</Days></Expiration>");
            assert_eq!(code(action(&a)), "InvalidArgument", "{bad}");
            let a = format!("<AbortIncompleteMultipartUpload><DaysAfterInitiation>{bad}</DaysAfterInitiation></AbortIncompleteMultipartUpload>");
            assert_eq!(code(action(&a)), "InvalidArgument", "{bad}");
            let a = format!("<NoncurrentVersionExpiration><NoncurrentDays>{bad}</NoncurrentDays></NoncurrentVersionExpiration>");
            assert_eq!(code(action(&a)), "InvalidArgument", "{bad}");
        }
        for bad in [
            "1.5",
            "two",
            "",
            "99999999999999999999999999999999999999999",
        ] {
            let a = format!("<Expiration><Days>{bad}</Days></Expiration>");
            assert_eq!(code(action(&a)), "MalformedXML", "{bad}");
        }
        let a = "<Expiration><Days>4294967296</Days></Expiration>";
        assert_eq!(code(action(a)), "InvalidArgument");
    }

    #[test]
    fn dates_must_be_midnight_utc() {
        for ok in [
            "2030-01-01T00:00:00.000Z",
            "2030-01-01T00:00:00Z",
            "2017-09-27T00:00:00+00:00",
        ] {
            let r = action(&format!("<Expiration><Date>{ok}</Date></Expiration>")).unwrap();
            assert_eq!(iso8601_ms(r.expiration_date_ms)[..10], ok[..10]);
        }
        let r = action("<Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>").unwrap();
        assert!(render_lifecycle(&LifecycleConfig { rules: vec![r] })
            .contains("<Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration>"));
        for bad in [
            "2030-01-01T01:00:00Z",
            "2030-01-01T00:00:00.5Z",
            "2030-01-01T00:00:00+01:00",
            "1970-01-01T00:00:00Z",
            "1969-12-31T00:00:00Z",
        ] {
            let a = format!("<Expiration><Date>{bad}</Date></Expiration>");
            assert_eq!(code(action(&a)), "InvalidArgument", "{bad}");
        }
        for bad in ["20200101", "2030-01-01", "yesterday"] {
            let a = format!("<Expiration><Date>{bad}</Date></Expiration>");
            assert_eq!(code(action(&a)), "MalformedXML", "{bad}");
        }
    }

    #[test]
    fn expiration_forms() {
        let r = action(
            "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
        )
        .unwrap();
        assert!(r.expired_object_delete_marker);
        for bad in [
            "<Expiration></Expiration>",
            "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
            "<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>",
            "<Expiration><ExpiredObjectDeleteMarker>yes</ExpiredObjectDeleteMarker></Expiration>",
            "<Expiration><Days>1</Days></Expiration><Expiration><Days>2</Days></Expiration>",
            "<Expiraton><Days>1</Days></Expiraton>",
        ] {
            assert_eq!(code(action(bad)), "MalformedXML", "{bad}");
        }
        // A marker set to false and nothing else: no action.
        let a =
            "<Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration>";
        assert_eq!(code(action(a)), "InvalidRequest");
        assert_eq!(code(action("")), "InvalidRequest");
    }

    #[test]
    fn noncurrent_and_multipart() {
        let r = action("<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>\
                        <NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration>\
                        <AbortIncompleteMultipartUpload><DaysAfterInitiation>4</DaysAfterInitiation>\
                        </AbortIncompleteMultipartUpload>")
        .unwrap();
        assert_eq!(
            (
                r.noncurrent_days,
                r.newer_noncurrent_versions,
                r.abort_multipart_days
            ),
            (2, 3, 4)
        );
        let a = "<NoncurrentVersionExpiration><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration>";
        assert_eq!(code(action(a)), "MalformedXML");
        let a = "<AbortIncompleteMultipartUpload></AbortIncompleteMultipartUpload>";
        assert_eq!(code(action(a)), "MalformedXML");
    }

    #[test]
    fn transitions_are_not_implemented() {
        for t in [
            "<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>",
            "<NoncurrentVersionTransition><NoncurrentDays>1</NoncurrentDays>\
             <StorageClass>STANDARD_IA</StorageClass></NoncurrentVersionTransition>",
        ] {
            let a = format!("<Expiration><Days>1</Days></Expiration>{t}");
            assert_eq!(code(action(&a)), "NotImplemented", "{t}");
        }
    }

    fn arb_rule() -> impl Strategy<Value = LifecycleRule> {
        let text = "[a-zA-Z0-9/ _.<>&'\"é-]{0,20}";
        let tag = ("[a-zA-Z0-9<&]{1,10}", "[a-z &>]{0,10}")
            .prop_map(|(key, value)| LifecycleTag { key, value });
        let filter = prop_oneof![
            // Legacy top-level prefix.
            text.prop_map(|p| (p, 0u64, 0u64, vec![], 1u32)),
            (
                text,
                0u64..1000,
                prop_oneof![Just(0u64), 1000u64..u64::MAX],
                proptest::collection::btree_map("[a-z]{1,8}", "[a-z]{0,8}", 0..=10),
            )
                .prop_map(|(p, gt, lt, tags)| {
                    let tags = tags
                        .into_iter()
                        .map(|(key, value)| LifecycleTag { key, value })
                        .collect();
                    (p, gt, lt, tags, 0u32)
                }),
            tag.prop_map(|t| (String::new(), 0, 0, vec![t], 0)),
        ];
        let expiration = prop_oneof![
            Just((0u32, 0u64, false)),
            (1u32..=u32::MAX).prop_map(|d| (d, 0, false)),
            (1u64..100_000).prop_map(|d| (0, d * 86_400_000, false)),
            Just((0, 0, true)),
        ];
        let noncurrent = prop_oneof![
            Just((0u32, 0u32)),
            (1u32..1000, prop_oneof![Just(0u32), 1u32..100]),
        ];
        (
            "[a-zA-Z0-9 &<-]{1,30}",
            any::<bool>(),
            filter,
            expiration,
            noncurrent,
            prop_oneof![Just(0u32), 1u32..1000],
        )
            .prop_filter_map(
                "a rule needs an action",
                |(
                    id,
                    enabled,
                    (prefix, gt, lt, tags, form),
                    (days, date, marker),
                    (nd, newer),
                    abort,
                )| {
                    let r = LifecycleRule {
                        id,
                        enabled,
                        prefix,
                        size_greater_than: gt,
                        size_less_than: lt,
                        tags,
                        expiration_days: days,
                        expiration_date_ms: date,
                        expired_object_delete_marker: marker,
                        noncurrent_days: nd,
                        newer_noncurrent_versions: newer,
                        abort_multipart_days: abort,
                        filter_form: form,
                    };
                    let acts = days > 0 || date > 0 || marker || nd > 0 || abort > 0;
                    acts.then_some(r)
                },
            )
    }

    fn arb_config() -> impl Strategy<Value = LifecycleConfig> {
        proptest::collection::vec(arb_rule(), 1..8).prop_map(|mut rules| {
            // Unique ids.
            for (i, r) in rules.iter_mut().enumerate() {
                r.id = format!("{i}:{}", r.id);
            }
            LifecycleConfig { rules }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any valid stored configuration renders to a document that parses back to it.
        #[test]
        fn round_trips(cfg in arb_config()) {
            prop_assert!(anode_meta::lifecycle::validate(&cfg).is_ok());
            let xml = render_lifecycle(&cfg);
            prop_assert_eq!(parse_lifecycle(xml.as_bytes()), Ok(cfg), "{}", xml);
        }

        /// A valid document with one byte replaced or cut short never panics the parser, and
        /// what still parses validates and round-trips.
        #[test]
        fn mutated_documents(cfg in arb_config(), at in any::<proptest::sample::Index>(), byte: u8, cut: bool) {
            let mut xml = render_lifecycle(&cfg).into_bytes();
            let i = at.index(xml.len());
            if cut {
                xml.truncate(i);
            } else {
                xml[i] = byte;
            }
            if let Ok(got) = parse_lifecycle(&xml) {
                prop_assert!(anode_meta::lifecycle::validate(&got).is_ok());
                let again = render_lifecycle(&got);
                prop_assert_eq!(parse_lifecycle(again.as_bytes()), Ok(got));
            }
        }

        /// Arbitrary bytes never panic the parser, and what parses validates.
        #[test]
        fn arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(cfg) = parse_lifecycle(&body) {
                prop_assert!(anode_meta::lifecycle::validate(&cfg).is_ok());
            }
        }
    }
}
