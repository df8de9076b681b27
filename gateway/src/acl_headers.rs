//! The ACL request headers of PutObject, CopyObject, CreateMultipartUpload, CreateBucket,
//! PutBucketAcl and PutObjectAcl: `x-amz-acl` (a canned ACL) or the explicit
//! `x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp` and `-full-control` grants, and
//! CreateBucket's `x-amz-object-ownership`. Pure.
//!
//! A grant header holds a comma-separated list of `type=value` grantees, the value optionally
//! in double quotes: `id="<canonical id>"`, `uri="http://acs.amazonaws.com/groups/global/AllUsers"`
//! (or `.../AuthenticatedUsers`). `emailAddress=` is refused with
//! `UnresolvableGrantByEmailAddress` (Anode has no e-mail addresses), anything else that does
//! not parse with `InvalidArgument`. A canned ACL and grant headers together are
//! `InvalidRequest`, as in S3.

use anode_meta::authz::acl::MAX_GRANTS;
use anode_meta::authz::{Acl, AclError, CannedAcl, Grant, Grantee, ObjectOwnership, Permission};
use http::HeaderMap;

use crate::access_xml::{acl_error, parse_access_control_policy};
use crate::error::S3Error;

/// The canned ACL header.
pub const CANNED_ACL_HEADER: &str = "x-amz-acl";
/// CreateBucket's Object Ownership header.
pub const OBJECT_OWNERSHIP_HEADER: &str = "x-amz-object-ownership";
/// The grant headers and the permission each grants, in the order their grants are listed.
pub const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-full-control", Permission::FullControl),
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
];

/// The ACL a request's headers ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclHeaders {
    /// No ACL header.
    None,
    /// `x-amz-acl`.
    Canned(CannedAcl),
    /// `x-amz-grant-*`: the grants, header by header in [`GRANT_HEADERS`] order, each in the
    /// order written (at most [`MAX_GRANTS`]).
    Grants(Vec<Grant>),
}

impl AclHeaders {
    /// Whether no ACL header was given.
    pub fn is_none(&self) -> bool {
        matches!(self, AclHeaders::None)
    }

    /// The ACL the headers stand for, owned by `owner_id` (the object's owner for an object,
    /// the bucket's for a bucket) in a bucket owned by `bucket_owner_id`: a canned ACL
    /// expanded ([`CannedAcl::expand`]); explicit grants exactly as given (S3 adds no grant
    /// to the owner, who keeps READ_ACP and WRITE_ACP anyway). `None` without ACL headers.
    pub fn to_acl(&self, owner_id: &str, bucket_owner_id: &str) -> Result<Option<Acl>, S3Error> {
        let acl = match self {
            AclHeaders::None => return Ok(None),
            AclHeaders::Canned(c) => c.expand(owner_id, bucket_owner_id),
            AclHeaders::Grants(grants) => Acl {
                owner: owner_id.to_string(),
                grants: grants.clone(),
            },
        };
        acl.validate().map_err(|e| acl_error(&e))?;
        Ok(Some(acl))
    }
}

fn header_str<'a>(v: &'a http::HeaderValue, name: &str) -> Result<&'a str, S3Error> {
    v.to_str()
        .map_err(|_| S3Error::InvalidArgument(format!("{name}: argument format not recognized")))
}

/// The ACL headers of a request. A header given twice: its grant lists add up; two
/// `x-amz-acl` are `InvalidArgument`.
pub fn parse_acl_headers(headers: &HeaderMap) -> Result<AclHeaders, S3Error> {
    let mut canned = headers.get_all(CANNED_ACL_HEADER).iter();
    let canned = match (canned.next(), canned.next()) {
        (None, _) => None,
        (Some(v), None) => {
            let v = header_str(v, CANNED_ACL_HEADER)?;
            Some(CannedAcl::parse(v.trim()).map_err(|e| acl_error(&e))?)
        }
        (Some(_), Some(_)) => {
            return Err(S3Error::InvalidArgument(format!(
                "{CANNED_ACL_HEADER} given more than once"
            )))
        }
    };
    let mut grants = Vec::new();
    let mut any_grant_header = false;
    for (name, permission) in GRANT_HEADERS {
        for v in headers.get_all(name) {
            any_grant_header = true;
            parse_grant_list(header_str(v, name)?, permission, &mut grants)?;
        }
    }
    match (canned, any_grant_header) {
        (Some(_), true) => Err(S3Error::InvalidRequest(
            "Specifying both Canned ACLs and Header Grants is not allowed".into(),
        )),
        (Some(c), false) => Ok(AclHeaders::Canned(c)),
        (None, true) => Ok(AclHeaders::Grants(grants)),
        (None, false) => Ok(AclHeaders::None),
    }
}

/// Split `s` at the commas outside double quotes; an unclosed quote is `None`.
fn split_outside_quotes(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// One grantee of a grant header: `type=value` or `type="value"`.
fn parse_grantee(item: &str) -> Result<Grantee, S3Error> {
    let bad = || S3Error::InvalidArgument(format!("argument format not recognized: {item:?}"));
    let (kind, value) = item.split_once('=').ok_or_else(bad)?;
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(bad)?,
        None => value,
    };
    if value.is_empty() || value.contains('"') {
        return Err(bad());
    }
    let kind = kind.trim();
    if kind.eq_ignore_ascii_case("id") {
        Grantee::canonical_user(value).map_err(|e| acl_error(&e))
    } else if kind.eq_ignore_ascii_case("uri") {
        Grantee::from_group_uri(value).map_err(|e| acl_error(&e))
    } else if kind.eq_ignore_ascii_case("emailAddress") {
        Err(S3Error::UnresolvableGrantByEmailAddress)
    } else {
        Err(bad())
    }
}

/// Parse one grant header's value, granting `permission` to each grantee listed, onto
/// `grants`. More than [`MAX_GRANTS`] grants in all is `MalformedACLError`.
pub fn parse_grant_list(
    value: &str,
    permission: Permission,
    grants: &mut Vec<Grant>,
) -> Result<(), S3Error> {
    let items = split_outside_quotes(value).ok_or_else(|| {
        S3Error::InvalidArgument(format!("argument format not recognized: {value:?}"))
    })?;
    for item in items {
        if grants.len() >= MAX_GRANTS {
            return Err(acl_error(&AclError::TooManyGrants(grants.len() + 1)));
        }
        grants.push(Grant {
            grantee: parse_grantee(item)?,
            permission,
        });
    }
    Ok(())
}

/// The ACL a PutBucketAcl or PutObjectAcl request sets on what `owner_id` owns, in a bucket
/// owned by `bucket_owner_id`: from its headers or from its body
/// ([`parse_access_control_policy`]), never both (`UnexpectedContent`, as S3 answers a body
/// beside ACL headers); neither is `MissingSecurityHeader`. A body of whitespace only counts
/// as none.
pub fn acl_for_put(
    headers: &AclHeaders,
    body: &[u8],
    owner_id: &str,
    bucket_owner_id: &str,
) -> Result<Acl, S3Error> {
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    match (headers.to_acl(owner_id, bucket_owner_id)?, has_body) {
        (Some(_), true) => Err(S3Error::UnexpectedContent),
        (Some(acl), false) => Ok(acl),
        (None, true) => parse_access_control_policy(body, owner_id),
        (None, false) => Err(S3Error::MissingSecurityHeader(CANNED_ACL_HEADER.into())),
    }
}

/// CreateBucket's `x-amz-object-ownership`: `None` when absent; a value other than
/// `BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`, or the header given
/// twice, is `InvalidArgument`.
pub fn parse_object_ownership(headers: &HeaderMap) -> Result<Option<ObjectOwnership>, S3Error> {
    let mut values = headers.get_all(OBJECT_OWNERSHIP_HEADER).iter();
    let (v, extra) = (values.next(), values.next());
    let Some(v) = v else {
        return Ok(None);
    };
    let invalid = || S3Error::InvalidArgument("Invalid x-amz-object-ownership header".into());
    if extra.is_some() {
        return Err(invalid());
    }
    let v = v.to_str().map_err(|_| invalid())?;
    ObjectOwnership::parse(v.trim())
        .map(Some)
        .ok_or_else(invalid)
}

/// The value of a grant header listing `grantees` (the inverse of [`parse_grant_list`]):
/// `id="..."` and `uri="..."`, comma separated.
pub fn grant_header_value<'a>(grantees: impl IntoIterator<Item = &'a Grantee>) -> String {
    grantees
        .into_iter()
        .map(|g| match (g, g.group_uri()) {
            (Grantee::CanonicalUser { id }, _) => format!("id=\"{id}\""),
            (_, Some(uri)) => format!("uri=\"{uri}\""),
            (_, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_meta::authz::acl::{ALL_USERS_URI, AUTHENTICATED_USERS_URI};
    use anode_meta::authz::canonical_id;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn user(name: &str, permission: Permission) -> Grant {
        Grant {
            grantee: Grantee::CanonicalUser {
                id: canonical_id(name),
            },
            permission,
        }
    }

    fn code(r: Result<AclHeaders, S3Error>) -> &'static str {
        match r {
            Ok(_) => "OK",
            Err(e) => e.aws_code(),
        }
    }

    #[test]
    fn none_canned_and_grants() {
        assert_eq!(parse_acl_headers(&headers(&[])), Ok(AclHeaders::None));
        assert!(AclHeaders::None.is_none());
        assert_eq!(
            parse_acl_headers(&headers(&[("x-amz-acl", "public-read")])),
            Ok(AclHeaders::Canned(CannedAcl::PublicRead))
        );
        let (a, b) = (canonical_id("alice"), canonical_id("bob"));
        // The S3 reference example's form, with Anode ids.
        let h = headers(&[
            (
                "x-amz-grant-read",
                &format!("id=\"{a}\", uri=\"{ALL_USERS_URI}\""),
            ),
            ("x-amz-grant-full-control", &format!("id={b}")),
            (
                "x-amz-grant-write-acp",
                &format!("ID = \"{a}\" ,uri={AUTHENTICATED_USERS_URI}"),
            ),
            ("x-amz-grant-read", &format!("id=\"{b}\"")),
        ]);
        assert_eq!(
            parse_acl_headers(&h),
            Ok(AclHeaders::Grants(vec![
                user("bob", Permission::FullControl),
                user("alice", Permission::Read),
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read
                },
                user("bob", Permission::Read),
                user("alice", Permission::WriteAcp),
                Grant {
                    grantee: Grantee::AuthenticatedUsers,
                    permission: Permission::WriteAcp
                },
            ]))
        );
    }

    #[test]
    fn refusals() {
        let a = canonical_id("alice");
        let id = format!("id=\"{a}\"");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("x-amz-acl", "public")], "InvalidArgument"),
            (&[("x-amz-acl", "log-delivery-write")], "InvalidArgument"),
            (
                &[("x-amz-acl", "private"), ("x-amz-acl", "private")],
                "InvalidArgument",
            ),
            (
                &[("x-amz-acl", "private"), ("x-amz-grant-read", &id)],
                "InvalidRequest",
            ),
            (&[("x-amz-grant-read", "")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=\"\"")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=\"abc")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=abc\"")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=a\"b\"c")], "InvalidArgument"),
            (&[("x-amz-grant-read", "alice")], "InvalidArgument"),
            (&[("x-amz-grant-read", "id=alice")], "InvalidArgument"),
            (&[("x-amz-grant-read", "name=\"alice\"")], "InvalidArgument"),
            (
                &[("x-amz-grant-read", &format!("{id},"))],
                "InvalidArgument",
            ),
            (
                &[(
                    "x-amz-grant-read",
                    "uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"",
                )],
                "InvalidArgument",
            ),
            (
                &[("x-amz-grant-write", "emailAddress=\"a@example.com\"")],
                "UnresolvableGrantByEmailAddress",
            ),
            (
                &[(
                    "x-amz-grant-write",
                    &format!("{id}, emailaddress=a@example.com"),
                )],
                "UnresolvableGrantByEmailAddress",
            ),
            (&[("x-amz-grant-read", &format!("{id}, {id}"))], "OK"),
        ];
        for (h, want) in cases {
            assert_eq!(code(parse_acl_headers(&headers(h))), *want, "{h:?}");
        }
        // Non-UTF-8 values.
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-grant-read",
            http::HeaderValue::from_bytes(b"id=\xff").unwrap(),
        );
        assert_eq!(code(parse_acl_headers(&h)), "InvalidArgument");
        let mut h = HeaderMap::new();
        h.insert("x-amz-acl", http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(code(parse_acl_headers(&h)), "InvalidArgument");
    }

    #[test]
    fn grant_limit() {
        let a = canonical_id("alice");
        let list = |n: usize| vec![format!("id=\"{a}\""); n].join(",");
        let ok = parse_acl_headers(&headers(&[("x-amz-grant-read", &list(MAX_GRANTS))]));
        assert!(matches!(ok, Ok(AclHeaders::Grants(g)) if g.len() == MAX_GRANTS));
        let split = headers(&[
            ("x-amz-grant-read", &list(MAX_GRANTS / 2)),
            ("x-amz-grant-write", &list(MAX_GRANTS / 2 + 1)),
        ]);
        assert_eq!(code(parse_acl_headers(&split)), "MalformedACLError");
    }

    #[test]
    fn to_acl_expands_or_keeps_grants() {
        let (a, b) = (canonical_id("alice"), canonical_id("bob"));
        assert_eq!(AclHeaders::None.to_acl(&a, &b), Ok(None));
        assert_eq!(
            AclHeaders::Canned(CannedAcl::BucketOwnerFullControl).to_acl(&a, &b),
            Ok(Some(CannedAcl::BucketOwnerFullControl.expand(&a, &b)))
        );
        let grants = vec![user("bob", Permission::Read)];
        assert_eq!(
            AclHeaders::Grants(grants.clone()).to_acl(&a, &b),
            Ok(Some(Acl {
                owner: a.clone(),
                grants
            }))
        );
        // An owner id that is no canonical id is refused, not stored.
        assert_eq!(
            AclHeaders::Canned(CannedAcl::Private)
                .to_acl("alice", "alice")
                .map_err(|e| e.aws_code()),
            Err("InvalidArgument")
        );
    }

    #[test]
    fn put_acl_takes_headers_or_body() {
        let a = canonical_id("alice");
        let body = b"<AccessControlPolicy><AccessControlList/></AccessControlPolicy>";
        let canned = AclHeaders::Canned(CannedAcl::PublicRead);
        assert_eq!(
            acl_for_put(&canned, b"", &a, &a),
            Ok(CannedAcl::PublicRead.expand(&a, &a))
        );
        assert_eq!(
            acl_for_put(&canned, b" \r\n", &a, &a),
            Ok(CannedAcl::PublicRead.expand(&a, &a))
        );
        assert_eq!(
            acl_for_put(&AclHeaders::None, body, &a, &a),
            Ok(Acl {
                owner: a.clone(),
                grants: vec![]
            })
        );
        let code = |r: Result<Acl, S3Error>| r.map_err(|e| e.aws_code()).err();
        assert_eq!(
            code(acl_for_put(&canned, body, &a, &a)),
            Some("UnexpectedContent")
        );
        assert_eq!(
            code(acl_for_put(&AclHeaders::None, b"", &a, &a)),
            Some("MissingSecurityHeader")
        );
        assert_eq!(
            code(acl_for_put(&AclHeaders::None, b"<x/>", &a, &a)),
            Some("MalformedACLError")
        );
    }

    #[test]
    fn object_ownership_header() {
        assert_eq!(parse_object_ownership(&headers(&[])), Ok(None));
        for o in [
            ObjectOwnership::BucketOwnerEnforced,
            ObjectOwnership::BucketOwnerPreferred,
            ObjectOwnership::ObjectWriter,
        ] {
            assert_eq!(
                parse_object_ownership(&headers(&[("x-amz-object-ownership", o.as_str())])),
                Ok(Some(o))
            );
        }
        for bad in [
            &[("x-amz-object-ownership", "objectwriter")][..],
            &[("x-amz-object-ownership", "")],
            &[
                ("x-amz-object-ownership", "ObjectWriter"),
                ("x-amz-object-ownership", "ObjectWriter"),
            ],
        ] {
            assert_eq!(
                parse_object_ownership(&headers(bad)).map_err(|e| e.aws_code()),
                Err("InvalidArgument"),
                "{bad:?}"
            );
        }
    }

    fn arb_grantee() -> impl Strategy<Value = Grantee> {
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|id| Grantee::CanonicalUser { id }),
            Just(Grantee::AllUsers),
            Just(Grantee::AuthenticatedUsers),
        ]
    }

    proptest! {
        /// Grants written as headers (grantees per permission, at most 100 in all) parse back
        /// to the same grants, in header order.
        #[test]
        fn grant_headers_round_trip(
            lists in proptest::collection::vec(proptest::collection::vec(arb_grantee(), 0..20), 5),
        ) {
            let mut h = HeaderMap::new();
            let mut want = Vec::new();
            for ((name, permission), list) in GRANT_HEADERS.iter().zip(&lists) {
                if list.is_empty() {
                    continue;
                }
                h.insert(*name, grant_header_value(list).parse().unwrap());
                want.extend(list.iter().map(|g| Grant { grantee: g.clone(), permission: *permission }));
            }
            let got = parse_acl_headers(&h);
            if want.is_empty() {
                prop_assert_eq!(got, Ok(AclHeaders::None));
            } else {
                prop_assert_eq!(got, Ok(AclHeaders::Grants(want)));
            }
        }
    }
}
