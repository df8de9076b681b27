//! Authorization target: bucket policy documents (arbitrary bytes as the JSON text a
//! PutBucketPolicy request carries) through `anode_meta::authz::Policy::parse`, then the
//! parsed policy through `authorize` for a grid of requests; and the same bytes through the
//! bucket-access record decoder.

use std::collections::{BTreeMap, BTreeSet};

use anode_meta::authz::action::Level;
use anode_meta::authz::policy::{Effect, Principals, Statement, MAX_POLICY_BYTES};
use anode_meta::authz::{
    authorize, canonical_id, Action, AllowReason, BucketAccess, BucketAccessRecord, BucketView,
    CannedAcl, Context, Decision, DenyReason, Policy, PolicyError, Principal, Resource,
};

/// The bucket every fuzzed policy is for (seeds name it in their resources).
pub const BUCKET: &str = "fuzz-bucket";
const OWNER: &str = "alice";

fn requests() -> Vec<(Principal, Action, Resource, Context)> {
    let principals = [
        Principal::Anonymous,
        Principal::user(OWNER, false),
        Principal::user("bob", false),
        Principal::user("root", true),
    ];
    let actions = [
        Action::GetObject,
        Action::PutObject,
        Action::DeleteObject,
        Action::ListBucket,
        Action::PutBucketPolicy,
        Action::GetBucketAcl,
        Action::ListAllMyBuckets,
    ];
    let contexts = [
        Context::default(),
        Context {
            source_ip: Some("192.0.2.10".parse().expect("ip")),
            secure_transport: true,
            prefix: Some("home/".into()),
            existing_object_tags: Some(BTreeMap::from([("class".into(), "public".into())])),
            request_object_tags: Some(BTreeMap::from([("security".into(), "public".into())])),
        },
        Context {
            source_ip: Some("2001:db8::1".parse().expect("ip")),
            ..Context::default()
        },
    ];
    let mut out = Vec::new();
    for p in &principals {
        for &a in &actions {
            for key in ["home/a.txt", "x"] {
                for c in &contexts {
                    let resource = Resource {
                        bucket: BUCKET.into(),
                        key: (a.level() == Level::Object).then(|| key.to_string()),
                    };
                    out.push((p.clone(), a, resource, c.clone()));
                }
            }
        }
    }
    out
}

fn is_owner_or_admin(p: &Principal) -> bool {
    matches!(p, Principal::User { name, admin, .. } if *admin || name == OWNER)
}

/// Parse `data` as a policy for [`BUCKET`]. Properties: over [`MAX_POLICY_BYTES`] is always
/// `TooLarge`; parsing is deterministic; for a parsed policy, on every request of a grid:
/// no panic, the owner and admins are allowed unless explicitly denied (always when the
/// policy has no Deny), anonymous is allowed only by an Allow to `*`, and the same policy
/// with a deny-everything statement added denies every request except the policy actions
/// of the owner and admins. Bytes that decode as a bucket-access record re-encode to a
/// record that decodes equal.
pub fn authz_policy(data: &[u8]) {
    record_round_trip(data);
    let text = String::from_utf8_lossy(data);
    let parsed = Policy::parse(&text, BUCKET);
    if text.len() > MAX_POLICY_BYTES {
        assert!(
            matches!(parsed, Err(PolicyError::TooLarge { .. })),
            "{parsed:?}"
        );
        return;
    }
    assert_eq!(
        parsed,
        Policy::parse(&text, BUCKET),
        "parsing is deterministic"
    );
    let policy = match parsed {
        Ok(p) => p,
        Err(e) => {
            if crate::debug() {
                eprintln!("refused: {e}");
            }
            return;
        }
    };
    let _ = policy.is_public();
    check_grid(&policy);
    let mut deny_all = policy.clone();
    deny_all.statements.push(Statement {
        sid: None,
        effect: Effect::Deny,
        principals: Principals::Any,
        actions: Action::ALL.iter().copied().collect::<BTreeSet<_>>(),
        resources: vec!["*".into()],
        not_resource: false,
        conditions: Vec::new(),
    });
    let access = access_of(deny_all);
    for (p, a, r, c) in requests() {
        let d = authorize(&p, a, &r, &c, Some(&view(&access)));
        if a.level() == Level::Service || (is_owner_or_admin(&p) && a.is_policy_management()) {
            continue;
        }
        assert!(
            matches!(d, Decision::Deny(DenyReason::ExplicitDeny { .. })),
            "deny-all statement did not deny {p} {a:?} {r:?}: {d:?}"
        );
    }
}

fn access_of(policy: Policy) -> BucketAccess {
    let owner = canonical_id(OWNER);
    let rec = BucketAccessRecord::new_bucket(&owner, CannedAcl::Private);
    let mut access = BucketAccess::from_record(&rec, BUCKET).expect("no policy");
    access.policy_public = policy.is_public();
    access.policy = Some(policy);
    access
}

fn view(access: &BucketAccess) -> BucketView<'_> {
    BucketView {
        owner: OWNER,
        access,
        object_acl: None,
    }
}

fn check_grid(policy: &Policy) {
    let has_deny = policy.statements.iter().any(|s| s.effect == Effect::Deny);
    let has_public_allow = policy
        .statements
        .iter()
        .any(|s| s.effect == Effect::Allow && s.principals == Principals::Any);
    let access = access_of(policy.clone());
    for (p, a, r, c) in requests() {
        let d = authorize(&p, a, &r, &c, Some(&view(&access)));
        if crate::debug() {
            eprintln!("{p} {a:?} {r:?}: {d}");
        }
        if is_owner_or_admin(&p) {
            let explicit = matches!(d, Decision::Deny(DenyReason::ExplicitDeny { .. }));
            assert!(d.is_allowed() || explicit, "{p} {a:?}: {d:?}");
            assert!(
                d.is_allowed() || has_deny,
                "{p} {a:?}: {d:?} without a Deny"
            );
        }
        if p == Principal::Anonymous && d.is_allowed() {
            assert!(
                matches!(d, Decision::Allow(AllowReason::Policy { .. })) && has_public_allow,
                "anonymous {a:?} allowed: {d:?}"
            );
        }
    }
}

fn record_round_trip(data: &[u8]) {
    if let Ok(rec) = BucketAccessRecord::decode(data) {
        let again = BucketAccessRecord::decode(&rec.encode()).expect("re-encoded record decodes");
        assert_eq!(again, rec);
    }
}
