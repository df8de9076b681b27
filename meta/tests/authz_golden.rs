//! Golden encoding of the bucket-access record (`anode_meta::authz::record`), the same rules
//! as `golden.rs`: the file `tests/golden/bucket_access.v1.json` is never edited; a new
//! version adds `bucket_access.v<N>.json` and keeps this test's row decoding (migrated).
//!
//! Regenerate a *missing* file (never an existing one) with
//! `ANODE_BLESS_GOLDEN=1 cargo test -p anode-meta --test authz_golden`.

use std::path::PathBuf;

use anode_meta::authz::{
    canonical_id, BucketAccessRecord, CannedAcl, Grant, Grantee, ObjectOwnership, Permission,
    PublicAccessBlock, RecordError, BUCKET_ACCESS_VERSION,
};

fn golden_v1() -> BucketAccessRecord {
    let owner = canonical_id("alice");
    // Spelled out (not `CannedAcl::expand`, whose grant order may change): the record as the
    // golden file holds it.
    let mut acl = anode_meta::authz::Acl {
        owner: owner.clone(),
        grants: vec![
            Grant {
                grantee: Grantee::CanonicalUser { id: owner.clone() },
                permission: Permission::FullControl,
            },
            Grant {
                grantee: Grantee::AllUsers,
                permission: Permission::Read,
            },
        ],
    };
    acl.grants.push(Grant {
        grantee: Grantee::CanonicalUser {
            id: canonical_id("bob"),
        },
        permission: Permission::Write,
    });
    acl.grants.push(Grant {
        grantee: Grantee::AuthenticatedUsers,
        permission: Permission::ReadAcp,
    });
    BucketAccessRecord {
        version: 1,
        policy: Some(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"r","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}]}"#
                .into(),
        ),
        acl,
        object_ownership: ObjectOwnership::BucketOwnerPreferred,
        public_access_block: PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: false,
            block_public_policy: true,
            restrict_public_buckets: false,
        },
    }
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[test]
fn bucket_access_v1_decodes_and_is_still_written() {
    let path = golden_path("bucket_access.v1.json");
    let expected = golden_v1();
    if !path.exists() && std::env::var_os("ANODE_BLESS_GOLDEN").is_some() {
        let mut bytes = expected.encode();
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
    }
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bytes = text.strip_suffix(b"\n").unwrap_or(&text);
    let got = BucketAccessRecord::decode(bytes).expect("golden v1 decodes");
    assert_eq!(got, expected);
    // This build writes version 1: exactly these bytes.
    assert_eq!(BUCKET_ACCESS_VERSION, 1);
    assert_eq!(
        String::from_utf8(expected.encode()).unwrap(),
        String::from_utf8(bytes.to_vec()).unwrap(),
        "this build no longer writes golden bucket_access.v1: add a new version"
    );
}

#[test]
fn a_newer_bucket_access_record_is_refused() {
    let bytes = golden_v1().encode();
    let newer = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"version\":1", "\"version\":2", 1);
    assert_eq!(
        BucketAccessRecord::decode(newer.as_bytes()),
        Err(RecordError::Newer {
            found: 2,
            supported: 1
        })
    );
}

/// An object ACL as stored in `Manifest.acl`: two owners' grants and both groups.
fn golden_object_acl_v1() -> anode_meta::authz::Acl {
    let owner = canonical_id("bob");
    let mut acl = CannedAcl::BucketOwnerFullControl.expand(&owner, &canonical_id("alice"));
    acl.grants.push(Grant {
        grantee: Grantee::AllUsers,
        permission: Permission::Read,
    });
    acl.grants.push(Grant {
        grantee: Grantee::AuthenticatedUsers,
        permission: Permission::ReadAcp,
    });
    acl
}

#[test]
fn object_acl_v1_decodes_and_is_still_written() {
    use anode_meta::authz::{decode_acl, encode_acl, OBJECT_ACL_VERSION};
    let path = golden_path("object_acl.v1.json");
    let expected = golden_object_acl_v1();
    if !path.exists() && std::env::var_os("ANODE_BLESS_GOLDEN").is_some() {
        let mut bytes = encode_acl(&expected);
        bytes.push(b'\n');
        std::fs::write(&path, bytes).unwrap();
    }
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bytes = text.strip_suffix(b"\n").unwrap_or(&text);
    assert_eq!(decode_acl(bytes), Ok(Some(expected.clone())));
    assert_eq!(OBJECT_ACL_VERSION, 1);
    assert_eq!(
        String::from_utf8(encode_acl(&expected)).unwrap(),
        String::from_utf8(bytes.to_vec()).unwrap(),
        "this build no longer writes golden object_acl.v1: add a new version"
    );
}
