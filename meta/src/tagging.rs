//! S3 tagging (issue 15): the limits of an object's or a bucket's tag set, checked the same way
//! by the gateway (which answers S3's `InvalidTag` with these messages) and by the state
//! machine (which refuses a command breaking them as `INVALID_ARGUMENT`), and the match of a
//! lifecycle rule's tag filter against a version's tags. Pure.

use anode_proto::{LifecycleTag, Tag};

/// Most tags on one object version (S3's limit).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on one bucket (S3's limit).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters (S3's limit).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (S3's limit).
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// The prefix S3 keeps for its own tags.
pub const RESERVED_PREFIX: &str = "aws:";

/// Why a tag set is refused. The messages are S3's (AWS words them this way for `InvalidTag`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// More tags than the limit of what is tagged.
    #[error("{what} tags cannot be greater than {max}")]
    TooMany {
        /// "Object" or "Bucket".
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// An empty key, or one over [`MAX_TAG_KEY_CHARS`].
    #[error("The TagKey you have provided is invalid")]
    InvalidKey,
    /// A value over [`MAX_TAG_VALUE_CHARS`].
    #[error("The TagValue you have provided is invalid")]
    InvalidValue,
    /// The same key twice.
    #[error("Cannot provide multiple Tags with the same key")]
    DuplicateKey,
    /// A key starting with `aws:`.
    #[error("Your TagKey cannot be prefixed with aws:")]
    Reserved,
}

/// Check an object's tag set: at most [`MAX_OBJECT_TAGS`].
pub fn validate_object(tags: &[Tag]) -> Result<(), TagError> {
    validate(tags, "Object", MAX_OBJECT_TAGS)
}

/// Check a bucket's tag set: at most [`MAX_BUCKET_TAGS`].
pub fn validate_bucket(tags: &[Tag]) -> Result<(), TagError> {
    validate(tags, "Bucket", MAX_BUCKET_TAGS)
}

fn validate(tags: &[Tag], what: &'static str, max: usize) -> Result<(), TagError> {
    if tags.len() > max {
        return Err(TagError::TooMany { what, max });
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tags {
        let key_chars = t.key.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
            return Err(TagError::InvalidKey);
        }
        if t.value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(TagError::InvalidValue);
        }
        // S3 allows letters, digits, spaces and `_ . : / = + - @`; control characters could
        // not even be written back in XML (a NUL, say), so they are refused here.
        if t.key.chars().any(char::is_control) {
            return Err(TagError::InvalidKey);
        }
        if t.value.chars().any(char::is_control) {
            return Err(TagError::InvalidValue);
        }
        if t.key.starts_with(RESERVED_PREFIX) {
            return Err(TagError::Reserved);
        }
        if !seen.insert(t.key.as_str()) {
            return Err(TagError::DuplicateKey);
        }
    }
    Ok(())
}

/// Does a version tagged `tags` match a lifecycle filter naming `wanted`? Every tag of the
/// filter must be on the version with an equal value (an empty filter matches everything).
pub fn filter_matches(wanted: &[LifecycleTag], tags: &[Tag]) -> bool {
    wanted
        .iter()
        .all(|w| tags.iter().any(|t| t.key == w.key && t.value == w.value))
}

/// A tag (shorthand for tests and callers building sets).
pub fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_string(),
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_s3s() {
        let ten: Vec<Tag> = (0..10).map(|i| tag(&i.to_string(), "v")).collect();
        assert_eq!(validate_object(&ten), Ok(()));
        let eleven: Vec<Tag> = (0..11).map(|i| tag(&i.to_string(), "v")).collect();
        assert_eq!(
            validate_object(&eleven),
            Err(TagError::TooMany {
                what: "Object",
                max: 10
            })
        );
        assert_eq!(validate_bucket(&eleven), Ok(()));
        let fifty_one: Vec<Tag> = (0..51).map(|i| tag(&i.to_string(), "v")).collect();
        assert!(validate_bucket(&fifty_one).is_err());
        // Characters, not bytes: 128 two-byte characters are a valid key.
        let k128 = "é".repeat(128);
        let v256 = "ü".repeat(256);
        assert_eq!(validate_object(&[tag(&k128, &v256)]), Ok(()));
        assert_eq!(
            validate_object(&[tag(&"a".repeat(129), "")]),
            Err(TagError::InvalidKey)
        );
        assert_eq!(
            validate_object(&[tag("k", &"a".repeat(257))]),
            Err(TagError::InvalidValue)
        );
        assert_eq!(validate_object(&[tag("", "v")]), Err(TagError::InvalidKey));
        assert_eq!(validate_object(&[tag("k", "")]), Ok(()));
        assert_eq!(
            validate_object(&[tag("k", "1"), tag("k", "2")]),
            Err(TagError::DuplicateKey)
        );
        assert_eq!(
            validate_object(&[tag("aws:x", "1")]),
            Err(TagError::Reserved)
        );
        assert_eq!(validate_object(&[tag("AWS:x", "1")]), Ok(()));
        // Control characters (a NUL could not be written back in XML).
        assert_eq!(
            validate_object(&[tag("k\0", "")]),
            Err(TagError::InvalidKey)
        );
        assert_eq!(
            validate_object(&[tag("k", "a\u{5}b")]),
            Err(TagError::InvalidValue)
        );
    }

    #[test]
    fn filters_need_every_tag_with_its_value() {
        let lt = |k: &str, v: &str| LifecycleTag {
            key: k.into(),
            value: v.into(),
        };
        let tags = [tag("a", "1"), tag("b", "2")];
        assert!(filter_matches(&[], &tags));
        assert!(filter_matches(&[], &[]));
        assert!(filter_matches(&[lt("a", "1")], &tags));
        assert!(filter_matches(&[lt("b", "2"), lt("a", "1")], &tags));
        assert!(!filter_matches(&[lt("a", "2")], &tags));
        assert!(!filter_matches(&[lt("a", "1"), lt("c", "")], &tags));
        assert!(!filter_matches(&[lt("a", "1")], &[]));
    }
}
