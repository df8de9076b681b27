//! Bucket policies: the IAM JSON subset Anode supports, parsed once into a checked form
//! ([`Policy::parse`]) and evaluated per request ([`Policy::evaluate`]).
//!
//! Supported (everything else is refused with a typed [`PolicyError`], which the gateway
//! answers as `MalformedPolicy` 400, storing nothing):
//! - `Version` `2012-10-17` or `2008-10-17` (or absent), `Id`, `Statement` as one object or
//!   a non-empty array; statement ids (`Sid`) unique when present.
//! - `Effect` `Allow` / `Deny`.
//! - `Principal`: `"*"`, `{"AWS": "*"}`, `{"AWS": ARN or [ARN, ...]}` with user ARNs
//!   `arn:aws:iam::anode:user/NAME` ([`super::user_arn`]), `{"CanonicalUser": ID or [...]}`
//!   with canonical ids ([`super::canonical_id`]). `NotPrincipal`, account ids, roles,
//!   services and federated principals are refused (unsupported).
//! - `Action` / `NotAction`: `s3:` action names with `*` and `?`, case-insensitive; a name or
//!   pattern that matches no known action is refused.
//! - `Resource` / `NotResource`: `*`, `arn:aws:s3:::BUCKET`, `arn:aws:s3:::BUCKET/KEY-PATTERN`
//!   with `*` and `?`; every pattern must be able to match this bucket or an object in it.
//! - `Condition`: `IpAddress`, `NotIpAddress` (`aws:SourceIp`, IPv4/IPv6 CIDRs), `Bool`
//!   (`aws:SecureTransport`), `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike` (`s3:prefix`,
//!   `s3:ExistingObjectTag/<key>`), `Null` (any supported key), and the `...IfExists` form of
//!   each. Operators are ANDed, keys within an operator ANDed, values within a key ORed
//!   (a negated operator: the value matches none of them).
//! - Policy variables (`${aws:username}`) are refused rather than matched literally.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use super::action::{Action, Level};
use super::cidr::Cidr;
use super::{glob, Context, Principal, Resource};

/// Largest policy document, in bytes (S3's bucket policy limit is 20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// Most statements one policy holds.
pub const MAX_STATEMENTS: usize = 128;
/// Longest tag key in `s3:ExistingObjectTag/<key>` (S3's tag key limit).
pub const MAX_TAG_KEY_CHARS: usize = 128;

/// Why a policy document was refused. Every variant is S3's `MalformedPolicy` (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Over [`MAX_POLICY_BYTES`].
    #[error("policy is {bytes} bytes; at most {MAX_POLICY_BYTES} are allowed")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Not JSON.
    #[error("policy is not valid JSON: {0}")]
    BadJson(String),
    /// A field of a type it cannot have.
    #[error("{field} must be {expected}")]
    WrongType {
        /// Where.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A field the supported subset does not know.
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// A required field is missing.
    #[error("missing required field {0}")]
    MissingField(&'static str),
    /// Two fields of which exactly one must be present (`Action`/`NotAction`, ...).
    #[error("a statement needs exactly one of {0} and {1}")]
    ExactlyOne(&'static str, &'static str),
    /// A `Version` other than the two IAM versions.
    #[error("unsupported policy version {0:?} (2012-10-17 or 2008-10-17)")]
    BadVersion(String),
    /// An `Effect` other than `Allow` / `Deny`.
    #[error("invalid effect {0:?} (Allow or Deny)")]
    BadEffect(String),
    /// No statement.
    #[error("policy has no statement")]
    NoStatements,
    /// Over [`MAX_STATEMENTS`].
    #[error("policy has more than {MAX_STATEMENTS} statements")]
    TooManyStatements,
    /// Two statements with the same `Sid`.
    #[error("statement id {0:?} is used twice")]
    DuplicateSid(String),
    /// `NotPrincipal` (not supported).
    #[error("NotPrincipal is not supported")]
    NotPrincipalUnsupported,
    /// A principal that is not `*`, a user ARN or a canonical user id.
    #[error("unsupported or invalid principal {0:?}")]
    BadPrincipal(String),
    /// An action that is no known `s3:` action and no pattern matching one.
    #[error("invalid action {0:?}")]
    UnknownAction(String),
    /// A resource that is not `*` or an `arn:aws:s3:::` ARN.
    #[error("invalid resource {0:?}")]
    BadResource(String),
    /// A resource that can match neither this bucket nor an object in it.
    #[error("resource {0:?} is outside this bucket")]
    ResourceOutsideBucket(String),
    /// `${...}` in a resource or condition value.
    #[error("policy variables are not supported: {0:?}")]
    PolicyVariable(String),
    /// A condition operator outside the supported set.
    #[error("unknown or unsupported condition operator {0:?}")]
    UnknownConditionOperator(String),
    /// A condition key outside the supported set.
    #[error("unknown or unsupported condition key {0:?}")]
    UnknownConditionKey(String),
    /// An operator used with a key of another type (`IpAddress` on `s3:prefix`).
    #[error("condition operator {operator} cannot test key {key}")]
    OperatorKeyMismatch {
        /// The operator.
        operator: String,
        /// The key.
        key: String,
    },
    /// A condition value of the wrong form (a bad CIDR, a Bool that is not true/false).
    #[error("invalid value {value:?} for condition key {key}")]
    BadConditionValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

impl PolicyError {
    /// The S3 error code every policy error is answered with.
    pub const S3_CODE: &'static str = "MalformedPolicy";
}

/// `Allow` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, over any grant.
    Deny,
}

/// Who a statement is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principals {
    /// `*`: everyone, anonymous included.
    Any,
    /// Named users.
    Named {
        /// User names (from `arn:aws:iam::anode:user/NAME`).
        users: BTreeSet<String>,
        /// Canonical user ids.
        canonical_ids: BTreeSet<String>,
    },
}

impl Principals {
    fn matches(&self, p: &Principal) -> bool {
        match (self, p) {
            (Principals::Any, _) => true,
            (Principals::Named { .. }, Principal::Anonymous) => false,
            (
                Principals::Named {
                    users,
                    canonical_ids,
                },
                Principal::User {
                    name, canonical_id, ..
                },
            ) => users.contains(name) || canonical_ids.contains(canonical_id),
        }
    }
}

/// A key a condition tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionKey {
    /// `aws:SourceIp`.
    SourceIp,
    /// `aws:SecureTransport`.
    SecureTransport,
    /// `s3:prefix` (ListBucket's `prefix` parameter).
    Prefix,
    /// `s3:ExistingObjectTag/<key>`.
    ExistingObjectTag(String),
    /// `s3:RequestObjectTag/<key>`.
    RequestObjectTag(String),
}

impl ConditionKey {
    fn parse(s: &str) -> Result<ConditionKey, PolicyError> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "aws:sourceip" => ConditionKey::SourceIp,
            "aws:securetransport" => ConditionKey::SecureTransport,
            "s3:prefix" => ConditionKey::Prefix,
            _ => {
                let (prefix, make): (&str, fn(String) -> ConditionKey) =
                    if lower.starts_with("s3:existingobjecttag/") {
                        ("s3:existingobjecttag/", ConditionKey::ExistingObjectTag)
                    } else if lower.starts_with("s3:requestobjecttag/") {
                        ("s3:requestobjecttag/", ConditionKey::RequestObjectTag)
                    } else {
                        return Err(PolicyError::UnknownConditionKey(s.to_string()));
                    };
                // The tag key keeps its case (tags are case-sensitive).
                let tag = &s[prefix.len()..];
                if tag.is_empty() || tag.chars().count() > MAX_TAG_KEY_CHARS {
                    return Err(PolicyError::UnknownConditionKey(s.to_string()));
                }
                make(tag.to_string())
            }
        })
    }

    fn name(&self) -> String {
        match self {
            ConditionKey::SourceIp => "aws:SourceIp".into(),
            ConditionKey::SecureTransport => "aws:SecureTransport".into(),
            ConditionKey::Prefix => "s3:prefix".into(),
            ConditionKey::ExistingObjectTag(t) => format!("s3:ExistingObjectTag/{t}"),
            ConditionKey::RequestObjectTag(t) => format!("s3:RequestObjectTag/{t}"),
        }
    }
}

/// A condition test with its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// `IpAddress` (`negated`: `NotIpAddress`).
    Ip {
        /// NotIpAddress.
        negated: bool,
        /// The blocks.
        blocks: Vec<Cidr>,
    },
    /// `Bool`.
    Bool(Vec<bool>),
    /// The string operators.
    Str {
        /// `StringNot...`.
        negated: bool,
        /// `StringLike` / `StringNotLike`: values are wildcard patterns.
        like: bool,
        /// `...IgnoreCase`.
        ignore_case: bool,
        /// The values.
        values: Vec<String>,
    },
    /// `Null`: true = the key must be absent, false = present.
    Null(Vec<bool>),
}

/// One `operator: {key: values}` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The key tested.
    pub key: ConditionKey,
    /// The test.
    pub test: Test,
    /// `...IfExists`: true when the key is absent.
    pub if_exists: bool,
}

/// A parsed statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`.
    pub principals: Principals,
    /// The actions `Action` names, or that `NotAction` leaves (already complemented).
    pub actions: BTreeSet<Action>,
    /// Resource patterns.
    pub resources: Vec<String>,
    /// `NotResource`: the statement applies to resources matching none of the patterns.
    pub not_resource: bool,
    /// `Condition` entries, all of which must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed, checked bucket policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// What a policy says about one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyVerdict {
    /// The first matching `Deny` statement's `Sid` (`Some(None)`: one without a Sid).
    pub denied_by: Option<Option<String>>,
    /// The first matching `Allow` statement: its `Sid` and whether it is public
    /// ([`Statement::is_public`]).
    pub allowed_by: Option<(Option<String>, bool)>,
}

impl Policy {
    /// Parse and check `json` as the policy of bucket `bucket`.
    pub fn parse(json: &str, bucket: &str) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge { bytes: json.len() });
        }
        let doc: Value =
            serde_json::from_str(json).map_err(|e| PolicyError::BadJson(e.to_string()))?;
        let top = doc.as_object().ok_or(PolicyError::WrongType {
            field: "policy".into(),
            expected: "a JSON object",
        })?;
        let mut statements = None;
        for (k, v) in top {
            match k.as_str() {
                "Version" => check_version(v)?,
                "Id" => {
                    v.as_str().ok_or_else(|| wrong("Id", "a string"))?;
                }
                "Statement" => statements = Some(v),
                _ => return Err(PolicyError::UnknownField(k.clone())),
            }
        }
        let raw = match statements.ok_or(PolicyError::MissingField("Statement"))? {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            v @ Value::Object(_) => vec![v],
            _ => return Err(wrong("Statement", "an object or an array of objects")),
        };
        if raw.is_empty() {
            return Err(PolicyError::NoStatements);
        }
        if raw.len() > MAX_STATEMENTS {
            return Err(PolicyError::TooManyStatements);
        }
        let mut sids = BTreeSet::new();
        let mut out = Vec::with_capacity(raw.len());
        for v in raw {
            let s = parse_statement(v, bucket)?;
            if let Some(sid) = &s.sid {
                if !sids.insert(sid.clone()) {
                    return Err(PolicyError::DuplicateSid(sid.clone()));
                }
            }
            out.push(s);
        }
        Ok(Policy { statements: out })
    }

    /// What the policy says about a request: the first matching Deny and Allow statements.
    /// A service-level action (`s3:ListAllMyBuckets`) is never in a bucket policy's reach.
    pub fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        ctx: &Context,
    ) -> PolicyVerdict {
        let mut verdict = PolicyVerdict::default();
        // The ARN follows the action: a bucket action is checked against the bucket's ARN
        // (whatever key the request names), an object action against the object's; an
        // object action without a key matches nothing.
        let arn = match (action.level(), &resource.key) {
            (Level::Service, _) | (Level::Object, None) => return verdict,
            (Level::Bucket, _) => bucket_arn(&resource.bucket),
            (Level::Object, Some(_)) => resource.arn(),
        };
        for s in &self.statements {
            if !s.matches(principal, action, &arn, ctx) {
                continue;
            }
            match s.effect {
                Effect::Deny if verdict.denied_by.is_none() => {
                    verdict.denied_by = Some(s.sid.clone());
                }
                Effect::Allow if verdict.allowed_by.is_none() => {
                    verdict.allowed_by = Some((s.sid.clone(), s.is_public()));
                }
                _ => {}
            }
        }
        verdict
    }

    /// Whether the policy is public as S3 defines it ("The meaning of public"): some Allow
    /// statement grants to every principal (`*`) without limiting the source to fixed CIDRs
    /// with `aws:SourceIp`. What GetBucketPolicyStatus reports, what BlockPublicPolicy
    /// refuses and what RestrictPublicBuckets restricts.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }
}

impl Statement {
    /// Whether this statement alone makes a policy public: an Allow to `*` with no
    /// `IpAddress` condition on `aws:SourceIp` (without `IfExists`) whose blocks are all
    /// narrower than the whole address space. Among the keys S3 counts as limiting, Anode
    /// supports only `aws:SourceIp`; `NotIpAddress`, `s3:prefix`, `aws:SecureTransport` and
    /// tag conditions do not limit who may ask.
    pub fn is_public(&self) -> bool {
        self.effect == Effect::Allow
            && self.principals == Principals::Any
            && !self.conditions.iter().any(|c| {
                c.key == ConditionKey::SourceIp
                    && !c.if_exists
                    && matches!(&c.test, Test::Ip { negated: false, blocks }
                        if !blocks.is_empty() && blocks.iter().all(|b| b.prefix_len() > 0))
            })
    }

    fn matches(&self, principal: &Principal, action: Action, arn: &str, ctx: &Context) -> bool {
        self.principals.matches(principal)
            && self.actions.contains(&action)
            && self.resources.iter().any(|p| glob::matches(p, arn)) != self.not_resource
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

impl Condition {
    /// Whether the condition holds for the request's context.
    pub fn holds(&self, ctx: &Context) -> bool {
        let present = match &self.key {
            ConditionKey::SourceIp => ctx.source_ip.is_some(),
            ConditionKey::SecureTransport => true,
            ConditionKey::Prefix => ctx.prefix.is_some(),
            ConditionKey::ExistingObjectTag(k) => ctx
                .existing_object_tags
                .as_ref()
                .is_some_and(|t| t.contains_key(k)),
            ConditionKey::RequestObjectTag(k) => ctx
                .request_object_tags
                .as_ref()
                .is_some_and(|t| t.contains_key(k)),
        };
        if let Test::Null(values) = &self.test {
            // Null: true asks "absent"; values ORed.
            return values.iter().any(|&want_absent| want_absent != present);
        }
        if !present {
            // IAM: an absent key fails a positive test and passes a negated one.
            let negated = matches!(
                self.test,
                Test::Ip { negated: true, .. } | Test::Str { negated: true, .. }
            );
            return self.if_exists || negated;
        }
        match &self.test {
            Test::Ip { negated, blocks } => {
                let hit = |ip: IpAddr| blocks.iter().any(|b| b.contains(ip));
                ctx.source_ip.is_some_and(hit) != *negated
            }
            Test::Bool(values) => values.contains(&ctx.secure_transport),
            Test::Str {
                negated,
                like,
                ignore_case,
                values,
            } => {
                let v = self.string_value(ctx).unwrap_or_default();
                let hit = values.iter().any(|want| match (*like, *ignore_case) {
                    (true, _) => glob::matches(want, v),
                    (false, true) => want.to_lowercase() == v.to_lowercase(),
                    (false, false) => want == v,
                });
                hit != *negated
            }
            // Answered before the presence check.
            Test::Null(_) => false,
        }
    }

    fn string_value<'c>(&self, ctx: &'c Context) -> Option<&'c str> {
        match &self.key {
            ConditionKey::Prefix => ctx.prefix.as_deref(),
            ConditionKey::ExistingObjectTag(k) => ctx
                .existing_object_tags
                .as_ref()
                .and_then(|t| t.get(k))
                .map(String::as_str),
            ConditionKey::RequestObjectTag(k) => ctx
                .request_object_tags
                .as_ref()
                .and_then(|t| t.get(k))
                .map(String::as_str),
            _ => None,
        }
    }
}

fn wrong(field: &str, expected: &'static str) -> PolicyError {
    PolicyError::WrongType {
        field: field.to_string(),
        expected,
    }
}

fn check_version(v: &Value) -> Result<(), PolicyError> {
    match v.as_str() {
        Some("2012-10-17" | "2008-10-17") => Ok(()),
        Some(other) => Err(PolicyError::BadVersion(other.to_string())),
        None => Err(wrong("Version", "a string")),
    }
}

/// A string or a non-empty array of strings.
fn strings(v: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    const EXPECTED: &str = "a string or a non-empty array of strings";
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong(field, EXPECTED))
            })
            .collect(),
        _ => Err(wrong(field, EXPECTED)),
    }
}

/// The statement's fields, by name, before checking.
#[derive(Default)]
struct RawStatement<'a> {
    sid: Option<&'a Value>,
    effect: Option<&'a Value>,
    principal: Option<&'a Value>,
    action: Option<(&'a Value, bool)>,
    resource: Option<(&'a Value, bool)>,
    condition: Option<&'a Value>,
}

fn split_statement(v: &Value) -> Result<RawStatement<'_>, PolicyError> {
    let obj = v
        .as_object()
        .ok_or_else(|| wrong("Statement", "an object or an array of objects"))?;
    let mut r = RawStatement::default();
    for (k, v) in obj {
        match k.as_str() {
            "Sid" => r.sid = Some(v),
            "Effect" => r.effect = Some(v),
            "Principal" => r.principal = Some(v),
            "NotPrincipal" => return Err(PolicyError::NotPrincipalUnsupported),
            "Action" | "NotAction" if r.action.is_some() => {
                return Err(PolicyError::ExactlyOne("Action", "NotAction"))
            }
            "Action" => r.action = Some((v, false)),
            "NotAction" => r.action = Some((v, true)),
            "Resource" | "NotResource" if r.resource.is_some() => {
                return Err(PolicyError::ExactlyOne("Resource", "NotResource"))
            }
            "Resource" => r.resource = Some((v, false)),
            "NotResource" => r.resource = Some((v, true)),
            "Condition" => r.condition = Some(v),
            _ => return Err(PolicyError::UnknownField(k.clone())),
        }
    }
    Ok(r)
}

fn parse_statement(v: &Value, bucket: &str) -> Result<Statement, PolicyError> {
    let r = split_statement(v)?;
    let sid = match r.sid {
        None => None,
        Some(s) => Some(
            s.as_str()
                .ok_or_else(|| wrong("Sid", "a string"))?
                .to_string(),
        ),
    };
    let effect = match r.effect.ok_or(PolicyError::MissingField("Effect"))? {
        Value::String(s) if s == "Allow" => Effect::Allow,
        Value::String(s) if s == "Deny" => Effect::Deny,
        other => return Err(PolicyError::BadEffect(other.to_string())),
    };
    let principals = parse_principal(r.principal.ok_or(PolicyError::MissingField("Principal"))?)?;
    let (action_v, not_action) = r
        .action
        .ok_or(PolicyError::ExactlyOne("Action", "NotAction"))?;
    let actions = parse_actions(action_v, not_action)?;
    let (res_v, not_resource) = r
        .resource
        .ok_or(PolicyError::ExactlyOne("Resource", "NotResource"))?;
    let resources = parse_resources(res_v, bucket)?;
    let conditions = match r.condition {
        None => Vec::new(),
        Some(c) => parse_conditions(c)?,
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions,
        resources,
        not_resource,
        conditions,
    })
}

fn parse_principal(v: &Value) -> Result<Principals, PolicyError> {
    let obj = match v {
        Value::String(s) if s == "*" => return Ok(Principals::Any),
        Value::Object(o) if !o.is_empty() => o,
        other => return Err(PolicyError::BadPrincipal(other.to_string())),
    };
    let mut users = BTreeSet::new();
    let mut canonical_ids = BTreeSet::new();
    let mut any = false;
    for (kind, v) in obj {
        for p in strings(v, "Principal")? {
            match kind.as_str() {
                "AWS" if p == "*" => any = true,
                "AWS" => match super::parse_user_arn(&p) {
                    Some(name) => {
                        users.insert(name.to_string());
                    }
                    None => return Err(PolicyError::BadPrincipal(p)),
                },
                "CanonicalUser" if super::is_canonical_id(&p) => {
                    canonical_ids.insert(p);
                }
                _ => return Err(PolicyError::BadPrincipal(format!("{kind}: {p}"))),
            }
        }
    }
    Ok(if any {
        Principals::Any
    } else {
        Principals::Named {
            users,
            canonical_ids,
        }
    })
}

fn parse_actions(v: &Value, not_action: bool) -> Result<BTreeSet<Action>, PolicyError> {
    let mut named = BTreeSet::new();
    for pattern in strings(v, if not_action { "NotAction" } else { "Action" })? {
        let hits = Action::matching(&pattern);
        if hits.is_empty() {
            return Err(PolicyError::UnknownAction(pattern));
        }
        named.extend(hits);
    }
    Ok(if not_action {
        Action::ALL
            .iter()
            .copied()
            .filter(|a| !named.contains(a))
            .collect()
    } else {
        named
    })
}

/// The ARN of bucket `bucket`.
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

fn parse_resources(v: &Value, bucket: &str) -> Result<Vec<String>, PolicyError> {
    let arn = bucket_arn(bucket);
    let objects = format!("{arn}/");
    let mut out = Vec::new();
    for r in strings(v, "Resource")? {
        if r.contains("${") {
            return Err(PolicyError::PolicyVariable(r));
        }
        if r != "*" && !r.starts_with("arn:aws:s3:::") {
            return Err(PolicyError::BadResource(r));
        }
        if !glob::matches(&r, &arn) && !glob::can_match_prefix(&r, &objects) {
            return Err(PolicyError::ResourceOutsideBucket(r));
        }
        out.push(r);
    }
    Ok(out)
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let ops = v
        .as_object()
        .ok_or_else(|| wrong("Condition", "an object"))?;
    let mut out = Vec::new();
    for (op, keys) in ops {
        let keys = keys
            .as_object()
            .ok_or_else(|| wrong(&format!("Condition.{op}"), "an object"))?;
        let (base, if_exists) = match op.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op.as_str(), false),
        };
        for (key, values) in keys {
            let key = ConditionKey::parse(key)?;
            let test = parse_test(base, op, &key, values)?;
            out.push(Condition {
                key,
                test,
                if_exists,
            });
        }
    }
    Ok(out)
}

/// Condition values: strings, booleans or numbers (as IAM takes them), one or a list.
fn condition_values(v: &Value, key: &ConditionKey) -> Result<Vec<String>, PolicyError> {
    let one = |x: &Value| match x {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(PolicyError::BadConditionValue {
            key: key.name(),
            value: other.to_string(),
        }),
    };
    let vals = match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        Value::Array(_) => {
            return Err(PolicyError::BadConditionValue {
                key: key.name(),
                value: "[]".into(),
            })
        }
        x => vec![one(x)?],
    };
    if let Some(bad) = vals.iter().find(|s| s.contains("${")) {
        return Err(PolicyError::PolicyVariable(bad.clone()));
    }
    Ok(vals)
}

fn parse_bools(vals: &[String], key: &ConditionKey) -> Result<Vec<bool>, PolicyError> {
    vals.iter()
        .map(|s| match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(PolicyError::BadConditionValue {
                key: key.name(),
                value: s.clone(),
            }),
        })
        .collect()
}

fn parse_test(
    base: &str,
    op: &str,
    key: &ConditionKey,
    values: &Value,
) -> Result<Test, PolicyError> {
    let mismatch = || PolicyError::OperatorKeyMismatch {
        operator: op.to_string(),
        key: key.name(),
    };
    let vals = condition_values(values, key)?;
    let is_string_key = matches!(
        key,
        ConditionKey::Prefix
            | ConditionKey::ExistingObjectTag(_)
            | ConditionKey::RequestObjectTag(_)
    );
    let string_test = |negated: bool, like: bool, ignore_case: bool| {
        if is_string_key {
            Ok(Test::Str {
                negated,
                like,
                ignore_case,
                values: vals.clone(),
            })
        } else {
            Err(mismatch())
        }
    };
    match base {
        "IpAddress" | "NotIpAddress" if *key == ConditionKey::SourceIp => {
            let blocks = vals
                .iter()
                .map(|s| {
                    Cidr::parse(s).ok_or_else(|| PolicyError::BadConditionValue {
                        key: key.name(),
                        value: s.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Test::Ip {
                negated: base == "NotIpAddress",
                blocks,
            })
        }
        "IpAddress" | "NotIpAddress" => Err(mismatch()),
        "Bool" if *key == ConditionKey::SecureTransport => Ok(Test::Bool(parse_bools(&vals, key)?)),
        "Bool" => Err(mismatch()),
        "Null" if op == "Null" => Ok(Test::Null(parse_bools(&vals, key)?)),
        "StringEquals" => string_test(false, false, false),
        "StringNotEquals" => string_test(true, false, false),
        "StringEqualsIgnoreCase" => string_test(false, false, true),
        "StringNotEqualsIgnoreCase" => string_test(true, false, true),
        "StringLike" => string_test(false, true, false),
        "StringNotLike" => string_test(true, true, false),
        _ => Err(PolicyError::UnknownConditionOperator(op.to_string())),
    }
}

/// Tags of an object for `s3:ExistingObjectTag/<key>`.
pub type Tags = BTreeMap<String, String>;
