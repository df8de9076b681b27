//! Cost of one `authz::authorize` decision (plus parsing the policy), for docs/security.md:
//! `cargo run --release -p anode-meta --example authz_cost`. Prints nanoseconds per decision
//! for a bucket without a policy, a typical two-statement policy, and an adversarial 20 KiB
//! policy of wildcard-heavy resource patterns that never match (the worst case a bucket owner
//! can make their own requests pay).

use std::hint::black_box;
use std::time::Instant;

use anode_meta::authz::{
    authorize, canonical_id, Action, BucketAccess, BucketAccessRecord, BucketView, CannedAcl,
    Context, Policy, Principal, Resource,
};

const BUCKET: &str = "photos";

fn access(policy: Option<String>) -> BucketAccess {
    let mut rec = BucketAccessRecord::new_bucket(&canonical_id("alice"), CannedAcl::Private);
    rec.policy = policy;
    BucketAccess::from_record(&rec, BUCKET).expect("parses")
}

fn time(name: &str, access: &BucketAccess, p: &Principal, key: &str) {
    let view = BucketView {
        owner: "alice",
        access,
        object_acl: None,
    };
    let r = Resource {
        bucket: BUCKET.into(),
        key: Some(key.into()),
    };
    let ctx = Context {
        source_ip: Some("192.0.2.10".parse().expect("ip")),
        secure_transport: true,
        ..Context::default()
    };
    let n = 20_000u32;
    let start = Instant::now();
    let mut allowed = 0;
    for _ in 0..n {
        let d = authorize(black_box(p), Action::GetObject, &r, &ctx, Some(&view));
        allowed += usize::from(d.is_allowed());
    }
    let per = start.elapsed() / n;
    println!("{name}: {per:?} per decision (allowed {allowed}/{n})");
}

fn main() {
    let key = "some/fairly/long/key/name/of/about/sixty/bytes/0123456789.jpg";
    let bob = Principal::user("bob", false);
    time(
        "no policy, owner",
        &access(None),
        &Principal::user("alice", false),
        key,
    );
    time("no policy, other user", &access(None), &bob, key);
    let typical = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"bob-reads","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::anode:user/bob"},
       "Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]},
      {"Sid":"tls-only","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos/*",
       "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
    time(
        "typical policy, bob",
        &access(Some(typical.into())),
        &bob,
        key,
    );
    // Patterns `arn:aws:s3:::photos/*a*a*...*b` (never matching a key without `b` at the end).
    let mut patterns = Vec::new();
    let mut len = 0;
    while len < 19_000 {
        let p = format!("arn:aws:s3:::photos/{}b", "*s".repeat(60));
        len += p.len() + 3;
        patterns.push(p);
    }
    let worst = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": patterns}]})
    .to_string();
    let start = Instant::now();
    let policy = Policy::parse(&worst, BUCKET).expect("worst case parses");
    println!(
        "adversarial policy: {} bytes, {} patterns, parsed in {:?}",
        worst.len(),
        policy.statements[0].resources.len(),
        start.elapsed()
    );
    time("adversarial policy, bob", &access(Some(worst)), &bob, key);
}
