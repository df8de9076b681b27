//! Property tests of `anode_meta::authz::authorize` over random bucket policies (written as
//! JSON and parsed, so the parser is on the path), ACLs, Object Ownership and
//! PublicAccessBlock settings, and of the wildcard matcher against a reference.
//!
//! Replay a failure with the seed proptest prints (`PROPTEST_RNG_SEED` / the persisted
//! regressions file), as in the crate's other property tests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anode_meta::authz::action::Level;
use anode_meta::authz::policy::{Effect, Principals};
use anode_meta::authz::{
    authorize, canonical_id, glob, user_arn, Acl, Action, AllowReason, BucketAccess,
    BucketAccessRecord, BucketView, CannedAcl, Context, Decision, DenyReason, Grant, Grantee,
    ObjectOwnership, Permission, Policy, Principal, PublicAccessBlock, Resource,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const BUCKET: &str = "photos";
const OWNER: &str = "alice";
const USERS: [&str; 4] = ["alice", "bob", "carol", "root"];
const KEYS: [&str; 6] = ["a", "a/b", "abc", "pub/x", "secret/y", "ph*to?"];

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::Anonymous),
        (0..USERS.len()).prop_map(|i| Principal::user(USERS[i], USERS[i] == "root")),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let actions: Vec<Action> = Action::ALL
        .iter()
        .copied()
        .filter(|a| a.level() != Level::Service)
        .collect();
    proptest::sample::select(actions)
}

fn resource_for(action: Action, key: &str) -> Resource {
    Resource {
        bucket: BUCKET.into(),
        key: (action.level() == Level::Object).then(|| key.to_string()),
    }
}

fn context() -> impl Strategy<Value = Context> {
    let ips = ["192.0.2.10", "198.51.100.7", "2001:db8::1", "10.0.0.1"];
    (
        proptest::option::of(proptest::sample::select(ips.to_vec())),
        any::<bool>(),
        proptest::option::of(proptest::sample::select(vec!["", "a", "pub/", "secret/"])),
        proptest::option::of(proptest::sample::select(vec!["public", "private"])),
    )
        .prop_map(|(ip, secure, prefix, class)| Context {
            source_ip: ip.map(|s| s.parse::<IpAddr>().unwrap()),
            secure_transport: secure,
            prefix: prefix.map(str::to_string),
            existing_object_tags: class
                .map(|c| BTreeMap::from([("class".to_string(), c.to_string())])),
            request_object_tags: None,
        })
}

fn principal_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": "*"})),
        proptest::sample::subsequence(USERS.to_vec(), 1..=3)
            .prop_map(|us| json!({"AWS": us.iter().map(|u| user_arn(u)).collect::<Vec<_>>()})),
        (0..USERS.len()).prop_map(|i| json!({"CanonicalUser": canonical_id(USERS[i])})),
    ]
}

fn action_patterns() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        proptest::sample::select(vec![
            "s3:*",
            "*",
            "s3:Get*",
            "s3:*Object",
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "s3:DeleteObject",
            "s3:?etObject",
            "s3:*Acl",
            "s3:*Policy",
            "s3:List*",
        ]),
        1..=3,
    )
}

fn resource_patterns() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        proptest::sample::select(vec![
            "*",
            "arn:aws:s3:::photos",
            "arn:aws:s3:::photos/*",
            "arn:aws:s3:::photos/pub/*",
            "arn:aws:s3:::photos/a?c",
            "arn:aws:s3:::ph*",
            "arn:aws:s3:::photos/secret/*",
        ]),
        1..=3,
    )
}

fn condition_json() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(proptest::sample::select(vec![
        json!({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
        json!({"IpAddress": {"aws:SourceIp": ["2001:db8::/32", "10.0.0.0/8"]}}),
        json!({"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}),
        json!({"Bool": {"aws:SecureTransport": "true"}}),
        json!({"Bool": {"aws:SecureTransport": false}}),
        json!({"StringLike": {"s3:prefix": "pub/*"}}),
        json!({"StringNotEquals": {"s3:prefix": "secret/"}}),
        json!({"StringEquals": {"s3:ExistingObjectTag/class": "public"}}),
        json!({"StringLikeIfExists": {"s3:prefix": "a*"}}),
        json!({"Null": {"s3:prefix": "true"}}),
        json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}, "Bool": {"aws:SecureTransport": "true"}}),
    ]))
}

/// A random statement (no Sid).
fn statement() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        principal_json(),
        action_patterns(),
        any::<bool>(),
        resource_patterns(),
        any::<bool>(),
        condition_json(),
    )
        .prop_map(|(allow, p, acts, not_act, res, not_res, cond)| {
            let mut s = json!({
                "Effect": if allow { "Allow" } else { "Deny" },
                "Principal": p,
            });
            s[if not_act { "NotAction" } else { "Action" }] = json!(acts);
            s[if not_res { "NotResource" } else { "Resource" }] = json!(res);
            if let Some(c) = cond {
                s["Condition"] = c;
            }
            s
        })
}

fn grant() -> impl Strategy<Value = Grant> {
    let grantees = prop_oneof![
        Just(Grantee::AllUsers),
        Just(Grantee::AuthenticatedUsers),
        (0..USERS.len()).prop_map(|i| Grantee::CanonicalUser {
            id: canonical_id(USERS[i])
        }),
    ];
    let perms = proptest::sample::select(vec![
        Permission::Read,
        Permission::Write,
        Permission::ReadAcp,
        Permission::WriteAcp,
        Permission::FullControl,
    ]);
    (grantees, perms).prop_map(|(grantee, permission)| Grant {
        grantee,
        permission,
    })
}

fn acl(owner: &'static str) -> impl Strategy<Value = Acl> {
    proptest::collection::vec(grant(), 0..4).prop_map(move |grants| Acl {
        owner: canonical_id(owner),
        grants,
    })
}

/// A bucket's stored configuration and an object's ACL.
#[derive(Clone, Debug)]
struct Setup {
    statements: Vec<Value>,
    record: BucketAccessRecord,
    object_acl: Option<Acl>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        proptest::collection::vec(statement(), 0..5),
        acl(OWNER),
        proptest::option::of(acl("bob")),
        proptest::sample::select(vec![
            ObjectOwnership::ObjectWriter,
            ObjectOwnership::BucketOwnerPreferred,
            ObjectOwnership::BucketOwnerEnforced,
        ]),
        any::<[bool; 4]>(),
    )
        .prop_map(|(statements, bucket_acl, object_acl, ownership, b)| {
            let mut record =
                BucketAccessRecord::new_bucket(&canonical_id(OWNER), CannedAcl::Private);
            record.acl = bucket_acl;
            record.object_ownership = ownership;
            record.public_access_block = PublicAccessBlock {
                block_public_acls: b[0],
                ignore_public_acls: b[1],
                block_public_policy: b[2],
                restrict_public_buckets: b[3],
            };
            Setup {
                statements,
                record,
                object_acl,
            }
        })
}

fn policy_text(statements: &[Value]) -> Option<String> {
    (!statements.is_empty())
        .then(|| json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}

fn decide(
    setup: &Setup,
    statements: &[Value],
    p: &Principal,
    a: Action,
    key: &str,
    c: &Context,
) -> Decision {
    let mut rec = setup.record.clone();
    rec.policy = policy_text(statements);
    let access = BucketAccess::from_record(&rec, BUCKET)
        .unwrap_or_else(|e| panic!("generated policy refused: {e}\n{:?}", rec.policy));
    let view = BucketView {
        owner: OWNER,
        access: &access,
        object_acl: setup.object_acl.as_ref(),
    };
    authorize(p, a, &resource_for(a, key), c, Some(&view))
}

/// A Deny statement that matches exactly this request, in one of several spellings.
fn matching_deny(
    p: &Principal,
    a: Action,
    key: &str,
    c: &Context,
    pick: (u8, u8, u8, u8),
) -> Value {
    let principal = match (p, pick.0 % 3) {
        (Principal::Anonymous, _) | (_, 0) => json!("*"),
        (Principal::User { name, .. }, 1) => json!({"AWS": [user_arn("nobody"), user_arn(name)]}),
        (Principal::User { canonical_id, .. }, _) => json!({"CanonicalUser": canonical_id}),
    };
    let action = match pick.1 % 3 {
        0 => json!(a.iam_name()),
        1 => json!(["s3:*"]),
        _ => json!(a.iam_name().to_ascii_lowercase()),
    };
    let arn = resource_for(a, key).arn();
    let resource = match pick.2 % 2 {
        0 => json!(arn),
        _ => json!("*"),
    };
    let mut s = json!({"Sid": "the-deny", "Effect": "Deny", "Principal": principal,
        "Action": action, "Resource": resource});
    match (pick.3 % 3, c.source_ip) {
        (1, Some(ip)) => {
            let len = if ip.is_ipv4() { 32 } else { 128 };
            s["Condition"] = json!({"IpAddress": {"aws:SourceIp": format!("{ip}/{len}")}});
        }
        (2, _) => {
            s["Condition"] =
                json!({"Bool": {"aws:SecureTransport": c.secure_transport.to_string()}});
        }
        _ => {}
    }
    s
}

fn is_owner_or_admin(p: &Principal) -> bool {
    matches!(p, Principal::User { name, admin, .. } if *admin || name == OWNER)
}

/// The setup with every public grant taken away: `*` principals become a named user, AllUsers
/// grants are dropped (AuthenticatedUsers stays: it never covers anonymous requests).
fn without_public_grants(setup: &Setup) -> Setup {
    let mut s = setup.clone();
    for st in &mut s.statements {
        let p = &st["Principal"];
        if *p == json!("*") || *p == json!({"AWS": "*"}) {
            st["Principal"] = json!({"AWS": user_arn("carol")});
        }
    }
    let keep = |acl: &mut Acl| acl.grants.retain(|g| g.grantee != Grantee::AllUsers);
    keep(&mut s.record.acl);
    if let Some(a) = s.object_acl.as_mut() {
        keep(a);
    }
    s
}

/// Reference wildcard matcher: plain recursion over the definition.
fn reference(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => reference(rest, t) || (!t.is_empty() && reference(p, &t[1..])),
        Some((c, rest)) => !t.is_empty() && (*c == '?' || *c == t[0]) && reference(rest, &t[1..]),
    }
}

/// Reference prefix matcher: `p` can match some text starting with `t`.
fn reference_prefix(p: &[char], t: &[char]) -> bool {
    if t.is_empty() {
        return true;
    }
    match p.split_first() {
        None => false,
        Some(('*', rest)) => reference_prefix(rest, t) || reference_prefix(p, &t[1..]),
        Some((c, rest)) => (*c == '?' || *c == t[0]) && reference_prefix(rest, &t[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No policy ever allows what an explicit Deny denies: a Deny matching the request,
    /// anywhere among random statements and under any ACL, ownership and PublicAccessBlock,
    /// denies it for every principal (the owner and admins too), except the policy actions
    /// the owner and admins always keep.
    #[test]
    fn explicit_deny_always_wins(
        setup in setup(),
        p in principal(),
        a in action(),
        key in proptest::sample::select(KEYS.to_vec()),
        c in context(),
        pick in any::<(u8, u8, u8, u8)>(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut statements = setup.statements.clone();
        let deny = matching_deny(&p, a, key, &c, pick);
        statements.insert(at.index(statements.len() + 1), deny);
        let d = decide(&setup, &statements, &p, a, key, &c);
        if is_owner_or_admin(&p) && a.is_policy_management() {
            prop_assert!(d.is_allowed(), "{d:?}");
        } else {
            // The first matching Deny is reported: ours or a random one before it.
            prop_assert!(matches!(d, Decision::Deny(DenyReason::ExplicitDeny { .. })), "{d:?}");
        }
    }

    /// Anonymous requests are allowed only through a grant to everyone: with every `*`
    /// principal and AllUsers grant taken away, anonymous is denied everything; and an
    /// anonymous Allow always names a public policy statement or an AllUsers grant.
    #[test]
    fn anonymous_only_through_public_grants(
        setup in setup(),
        a in action(),
        key in proptest::sample::select(KEYS.to_vec()),
        c in context(),
    ) {
        let stripped = without_public_grants(&setup);
        let d = decide(&stripped, &stripped.statements, &Principal::Anonymous, a, key, &c);
        prop_assert!(!d.is_allowed(), "{d:?}");
        match decide(&setup, &setup.statements, &Principal::Anonymous, a, key, &c) {
            Decision::Allow(AllowReason::Policy { .. }) => {
                let text = policy_text(&setup.statements).unwrap();
                // Some Allow statement is to `*` (it need not be public: an IP condition
                // can narrow it).
                let policy = Policy::parse(&text, BUCKET).unwrap();
                prop_assert!(policy
                    .statements
                    .iter()
                    .any(|s| s.effect == Effect::Allow && s.principals == Principals::Any));
            }
            Decision::Allow(AllowReason::Acl { grant, .. }) => {
                prop_assert_eq!(grant.grantee, Grantee::AllUsers);
                prop_assert!(!setup.record.public_access_block.ignore_public_acls);
                prop_assert!(setup.record.object_ownership != ObjectOwnership::BucketOwnerEnforced);
            }
            Decision::Allow(other) => prop_assert!(false, "anonymous allowed as {other:?}"),
            Decision::Deny(_) => {}
        }
    }

    /// The bucket owner and admins are allowed everything unless a Deny statement denies it;
    /// with no Deny statement at all, always.
    #[test]
    fn owner_and_admin_allowed_unless_explicitly_denied(
        setup in setup(),
        admin in any::<bool>(),
        a in action(),
        key in proptest::sample::select(KEYS.to_vec()),
        c in context(),
    ) {
        let p = if admin { Principal::user("root", true) } else { Principal::user(OWNER, false) };
        let d = decide(&setup, &setup.statements, &p, a, key, &c);
        let want = if admin { AllowReason::Admin } else { AllowReason::Owner };
        match d {
            Decision::Allow(r) => prop_assert_eq!(r, want),
            Decision::Deny(DenyReason::ExplicitDeny { .. }) => {}
            other => prop_assert!(false, "owner/admin got {other:?}"),
        }
        let allows_only: Vec<Value> = setup
            .statements
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .cloned()
            .collect();
        prop_assert!(decide(&setup, &allows_only, &p, a, key, &c).is_allowed());
    }

    /// Settings only ever take away: a signed user denied under no PublicAccessBlock and
    /// ObjectWriter is still denied with any settings.
    #[test]
    fn block_settings_never_grant(
        setup in setup(),
        p in principal(),
        a in action(),
        key in proptest::sample::select(KEYS.to_vec()),
        c in context(),
    ) {
        let mut open = setup.clone();
        open.record.public_access_block = PublicAccessBlock::default();
        open.record.object_ownership = ObjectOwnership::ObjectWriter;
        if !decide(&open, &open.statements, &p, a, key, &c).is_allowed() {
            prop_assert!(!decide(&setup, &setup.statements, &p, a, key, &c).is_allowed());
        }
    }

    /// The wildcard matcher agrees with the reference definition.
    #[test]
    fn wildcards_match_like_the_reference(
        pattern in "[abé/*?]{0,8}",
        text in "[abé/]{0,10}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(glob::matches(&pattern, &text), reference(&p, &t), "{:?} {:?}", pattern, text);
        prop_assert_eq!(glob::can_match_prefix(&pattern, &text), reference_prefix(&p, &t), "prefix {:?} {:?}", pattern, text);
    }
}
