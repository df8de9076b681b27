//! S3 tagging (issue 15): Put/Get/DeleteObjectTagging (`?tagging` on an object, by version
//! with `versionId`), Put/Get/DeleteBucketTagging, the `x-amz-tagging` header of writes and
//! `x-amz-tagging-directive` of copies, and `x-amz-tagging-count` on GET/HEAD.
//!
//! The tag sets live in the version's manifest (`Manifest.tags`) and the bucket's record
//! (`BucketConfig.tags`), changed through raft (`SetObjectTagging`, `SetBucketTagging`);
//! tagging a version keeps its id, mtime and ETag. The limits are `anode_meta::tagging`'s,
//! answered as S3's `InvalidTag` here before anything is proposed.

use anode_client::{Manifest, Tag};
use anode_meta::tagging::{self as rules, TagError};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, set_header, status_only, xml_ok, Ctx};
use crate::http_util::check_key;
use crate::xml::{self, XmlWriter};

/// Largest tagging request body: 50 tags of 128 + 256 characters (4 bytes each at most) and
/// their elements fit well below this.
pub const MAX_TAGGING_BODY_BYTES: usize = 256 << 10;
/// Longest `x-amz-tagging` header value (10 tags of 128 + 256 characters, percent-encoded
/// 4-byte characters: 10 * 384 * 12 bytes, plus separators).
pub const MAX_TAGGING_HEADER_BYTES: usize = 48 << 10;

fn invalid(e: TagError) -> S3Error {
    S3Error::InvalidTag(e.to_string())
}

/// Parse a `Tagging` body (`<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>`)
/// into its tags, in document order, unchecked against the limits; reading stops after
/// `max + 1` tags (enough for the caller's check to refuse the set). A missing `TagSet`, a
/// `Tag` without exactly one `Key` and one `Value`, or another root is `MalformedXML`.
pub fn parse_tagging(body: &[u8], max: usize) -> Result<Vec<Tag>, S3Error> {
    let tree = xml::parse_tree(body)?;
    let root = xml::expect_root(&tree, "Tagging")?;
    let set = root.child("TagSet").ok_or(S3Error::MalformedXML)?;
    let mut tags = Vec::new();
    for t in set.children_named("Tag") {
        if tags.len() > max {
            break;
        }
        let one = |name: &str| -> Result<String, S3Error> {
            let mut it = t.children_named(name);
            match (it.next(), it.next()) {
                (Some(n), None) if n.children.is_empty() => Ok(n.text.clone()),
                _ => Err(S3Error::MalformedXML),
            }
        };
        tags.push(Tag {
            key: one("Key")?,
            value: one("Value")?,
        });
    }
    Ok(tags)
}

/// An object's tag set from a `Tagging` body, checked against S3's object limits.
pub fn parse_object_tagging(body: &[u8]) -> Result<Vec<Tag>, S3Error> {
    let tags = parse_tagging(body, rules::MAX_OBJECT_TAGS)?;
    rules::validate_object(&tags).map_err(invalid)?;
    Ok(tags)
}

/// A bucket's tag set from a `Tagging` body, checked against S3's bucket limits.
pub fn parse_bucket_tagging(body: &[u8]) -> Result<Vec<Tag>, S3Error> {
    let tags = parse_tagging(body, rules::MAX_BUCKET_TAGS)?;
    rules::validate_bucket(&tags).map_err(invalid)?;
    Ok(tags)
}

/// The `Tagging` document of a tag set, sorted by key (as RGW answers; S3 gives no order).
pub fn render_tagging(tags: &[Tag]) -> String {
    let mut sorted: Vec<&Tag> = tags.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut w = XmlWriter::new();
    w.open_root("Tagging");
    w.open("TagSet");
    for t in sorted {
        w.open("Tag");
        w.elem("Key", &t.key);
        w.elem("Value", &t.value);
        w.close("Tag");
    }
    w.close("TagSet");
    w.close("Tagging");
    w.finish()
}

fn header_error() -> S3Error {
    S3Error::InvalidArgument(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query \
         parameters without tag name duplicates."
            .into(),
    )
}

fn decode_component(s: &str) -> Result<String, S3Error> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| header_error())
}

/// The `x-amz-tagging` value of a tag set (each key and value percent-encoded).
pub fn header_value(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| {
            format!(
                "{}={}",
                crate::http_util::uri_encode(&t.key, false),
                crate::http_util::uri_encode(&t.value, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Parse an `x-amz-tagging` value: URL query parameters (`k1=v1&k2`, a key without `=` has
/// the empty value), percent-encoded UTF-8. Undecodable text is `InvalidArgument`; the
/// object limits are `InvalidTag`. An empty value is no tags.
pub fn parse_tagging_header(value: &str) -> Result<Vec<Tag>, S3Error> {
    if value.len() > MAX_TAGGING_HEADER_BYTES {
        return Err(S3Error::InvalidTag(format!(
            "Object tags cannot be greater than {}",
            rules::MAX_OBJECT_TAGS
        )));
    }
    let mut tags = Vec::new();
    for pair in value.split('&').filter(|p| !p.is_empty()) {
        if tags.len() > rules::MAX_OBJECT_TAGS {
            break; // refused below without decoding the rest
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push(Tag {
            key: decode_component(k)?,
            value: decode_component(v)?,
        });
    }
    rules::validate_object(&tags).map_err(|e| match e {
        TagError::DuplicateKey => header_error(),
        e => invalid(e),
    })?;
    Ok(tags)
}

/// The tags `x-amz-tagging` gives a write (none when absent).
pub fn tags_from_headers(h: &HeaderMap) -> Result<Vec<Tag>, S3Error> {
    match h.get("x-amz-tagging") {
        None => Ok(Vec::new()),
        Some(v) => parse_tagging_header(v.to_str().map_err(|_| header_error())?),
    }
}

/// What `x-amz-tagging-directive` asks of a copy: `Some(tags)` replaces the source's tags
/// (`REPLACE`, with the tags of `x-amz-tagging`), `None` keeps them (`COPY`, the default).
pub fn copy_tags(h: &HeaderMap) -> Result<Option<Vec<Tag>>, S3Error> {
    let directive = h
        .get("x-amz-tagging-directive")
        .map(|v| v.to_str().unwrap_or("").trim());
    match directive {
        None => Ok(None),
        Some(d) if d.eq_ignore_ascii_case("COPY") => Ok(None),
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => Ok(Some(tags_from_headers(h)?)),
        Some(_) => Err(S3Error::InvalidArgument(
            "Unknown tagging directive.".into(),
        )),
    }
}

/// `x-amz-tagging-count` on GET/HEAD when the version has tags.
pub fn count_header(r: &mut Response<RespBody>, m: &Manifest) {
    if !m.tags.is_empty() {
        set_header(r, "x-amz-tagging-count", &m.tags.len().to_string());
    }
}

fn version_header(r: &mut Response<RespBody>, m: &Manifest) {
    if !m.version_id.is_empty() {
        set_header(r, "x-amz-version-id", &m.version_id);
    }
}

/// GetObjectTagging: the tags of the current version, or of `versionId`.
pub async fn get_object(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let m = cx
        .backend
        .get_version(bucket, key, cx.query.get("versionId"), false)
        .await
        .map_err(ce)?;
    let mut r = xml_ok(render_tagging(&m.tags));
    version_header(&mut r, &m);
    Ok(r)
}

/// PutObjectTagging (`body` Some) or DeleteObjectTagging (None: an empty tag set, 204).
pub async fn put_object(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    body: Option<RequestBody>,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let delete = body.is_none();
    let tags = match body {
        Some(body) => {
            let body = body.collect(MAX_TAGGING_BODY_BYTES).await?;
            check_body_md5(cx.headers, &body)?;
            parse_object_tagging(&body)?
        }
        None => Vec::new(),
    };
    let m = cx
        .backend
        .set_object_tagging(bucket, key, cx.query.get("versionId"), tags)
        .await
        .map_err(ce)?;
    let mut r = status_only(if delete {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    });
    version_header(&mut r, &m);
    Ok(r)
}

/// GetBucketTagging: `NoSuchTagSet` (404) when the bucket has none.
pub async fn get_bucket(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    if cfg.tags.is_empty() {
        return Err(S3Error::NoSuchConfiguration {
            code: "NoSuchTagSet",
            message: "The TagSet does not exist",
        });
    }
    Ok(xml_ok(render_tagging(&cfg.tags)))
}

/// PutBucketTagging (`body` Some) or DeleteBucketTagging (None); both answer 204, as S3.
pub async fn put_bucket(
    cx: &Ctx<'_>,
    bucket: &str,
    body: Option<RequestBody>,
) -> Result<Response<RespBody>, S3Error> {
    let tags = match body {
        Some(body) => {
            let body = body.collect(MAX_TAGGING_BODY_BYTES).await?;
            check_body_md5(cx.headers, &body)?;
            parse_bucket_tagging(&body)?
        }
        None => Vec::new(),
    };
    let done = cx
        .backend
        .set_bucket_tagging(bucket, tags)
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_round_trip() {
        let tags = vec![
            Tag {
                key: "team".into(),
                value: "data eng".into(),
            },
            Tag {
                key: "k&2=x".into(),
                value: "a/b+c%".into(),
            },
        ];
        assert_eq!(parse_tagging_header(&header_value(&tags)).unwrap(), tags);
    }

    use super::*;
    use anode_meta::tagging::tag;

    fn body(tags: &[(&str, &str)]) -> String {
        let mut s =
            String::from("<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet>");
        for (k, v) in tags {
            s.push_str(&format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"));
        }
        s.push_str("</TagSet></Tagging>");
        s
    }

    #[test]
    fn bodies_parse_in_order() {
        let b = body(&[("b", "2"), ("a", ""), ("x &amp; y", "é")]);
        assert_eq!(
            parse_object_tagging(b.as_bytes()).unwrap(),
            vec![tag("b", "2"), tag("a", ""), tag("x & y", "é")]
        );
        assert_eq!(parse_object_tagging(body(&[]).as_bytes()).unwrap(), vec![]);
        let empty_value = "<Tagging><TagSet><Tag><Key>k</Key><Value/></Tag></TagSet></Tagging>";
        assert_eq!(
            parse_object_tagging(empty_value.as_bytes()).unwrap(),
            vec![tag("k", "")]
        );
    }

    #[test]
    fn bad_bodies_get_s3s_codes() {
        let code = |b: &str| parse_object_tagging(b.as_bytes()).unwrap_err().aws_code();
        assert_eq!(code("<Tagging>"), "MalformedXML");
        assert_eq!(code("<Tagging></Tagging>"), "MalformedXML");
        assert_eq!(code("<Other><TagSet/></Other>"), "MalformedXML");
        assert_eq!(
            code("<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>"),
            "MalformedXML"
        );
        assert_eq!(
            code("<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>"),
            "MalformedXML"
        );
        assert_eq!(
            code("<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key><Value/></Tag></TagSet></Tagging>"),
            "MalformedXML"
        );
        let eleven: Vec<(String, String)> =
            (0..11).map(|i| (i.to_string(), i.to_string())).collect();
        let eleven: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(code(&body(&eleven)), "InvalidTag");
        assert!(parse_bucket_tagging(body(&eleven).as_bytes()).is_ok());
        let k129 = "k".repeat(129);
        assert_eq!(code(&body(&[(&k129, "v")])), "InvalidTag");
        let v257 = "v".repeat(257);
        assert_eq!(code(&body(&[("k", &v257)])), "InvalidTag");
        assert_eq!(code(&body(&[("k", "1"), ("k", "2")])), "InvalidTag");
        assert_eq!(code(&body(&[("aws:k", "1")])), "InvalidTag");
        assert_eq!(code(&body(&[("", "1")])), "InvalidTag");
        let many: Vec<(String, String)> = (0..60).map(|i| (i.to_string(), String::new())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            parse_bucket_tagging(body(&many).as_bytes())
                .unwrap_err()
                .aws_code(),
            "InvalidTag"
        );
    }

    #[test]
    fn render_sorts_by_key_and_round_trips() {
        let tags = vec![tag("foo", "bar"), tag("bar", ""), tag("<&>", "\"'")];
        let doc = render_tagging(&tags);
        let mut back = parse_object_tagging(doc.as_bytes()).unwrap();
        assert_eq!(back[0].key, "<&>");
        back.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want = tags;
        want.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(back, want);
    }

    #[test]
    fn headers_are_url_query_parameters() {
        assert_eq!(
            parse_tagging_header("foo=bar&bar").unwrap(),
            vec![tag("foo", "bar"), tag("bar", "")]
        );
        assert_eq!(
            parse_tagging_header("a%20b=c+d&%C3%A9=%26").unwrap(),
            vec![tag("a b", "c d"), tag("é", "&")]
        );
        assert_eq!(parse_tagging_header("").unwrap(), vec![]);
        let code = |v: &str| parse_tagging_header(v).unwrap_err().aws_code();
        assert_eq!(code("a=1&a=2"), "InvalidArgument");
        assert_eq!(code("a=%FF"), "InvalidArgument");
        let eleven: Vec<String> = (0..11).map(|i| format!("{i}={i}")).collect();
        assert_eq!(code(&eleven.join("&")), "InvalidTag");
        assert_eq!(code(&format!("{}=v", "k".repeat(129))), "InvalidTag");
        assert_eq!(code("aws:x=1"), "InvalidTag");
        assert_eq!(
            code(&"a".repeat(MAX_TAGGING_HEADER_BYTES + 1)),
            "InvalidTag"
        );
    }

    #[test]
    fn copy_directives() {
        let mut h = HeaderMap::new();
        assert_eq!(copy_tags(&h).unwrap(), None);
        h.insert("x-amz-tagging", "a=1".parse().unwrap());
        assert_eq!(copy_tags(&h).unwrap(), None, "COPY is the default");
        h.insert("x-amz-tagging-directive", "REPLACE".parse().unwrap());
        assert_eq!(copy_tags(&h).unwrap(), Some(vec![tag("a", "1")]));
        h.remove("x-amz-tagging");
        assert_eq!(copy_tags(&h).unwrap(), Some(vec![]));
        h.insert("x-amz-tagging-directive", "copy".parse().unwrap());
        assert_eq!(copy_tags(&h).unwrap(), None);
        h.insert("x-amz-tagging-directive", "MERGE".parse().unwrap());
        assert_eq!(copy_tags(&h).unwrap_err().aws_code(), "InvalidArgument");
    }
}
