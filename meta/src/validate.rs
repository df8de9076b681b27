//! The one validator of names and sizes S3 restricts: bucket names, object keys, upload ids,
//! part numbers and user metadata. The gateway checks a request with it before anything is
//! sent; the state machine checks every command with it again (a client other than the gateway
//! may send anything), so both refuse exactly the same inputs.
//!
//! Pure: plain functions over strings and numbers.

use std::collections::HashMap;

use anode_proto::{ErrorCode, ErrorDetail};

/// Shortest bucket name.
pub const MIN_BUCKET_NAME_BYTES: usize = 3;
/// Longest bucket name.
pub const MAX_BUCKET_NAME_BYTES: usize = 63;
/// Longest object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest total of user-metadata names and values, in bytes of UTF-8.
pub const MAX_USER_METADATA_BYTES: usize = 2048;
/// Largest total of stored system headers (Content-Type, Cache-Control,
/// Content-Disposition, Content-Encoding, Content-Language, Expires), names and values, in
/// bytes: S3's 8 KiB limit on system-defined metadata.
pub const MAX_SYSTEM_METADATA_BYTES: usize = 8192;
/// Largest part number (the smallest is 1).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Length of an upload id: the master issues 16 random bytes as 32 lower-case hex digits.
pub const UPLOAD_ID_HEX_DIGITS: usize = 32;

/// Shortest access key id (AWS: 16).
pub const MIN_ACCESS_KEY_BYTES: usize = 16;
/// Longest access key id (AWS: 128).
pub const MAX_ACCESS_KEY_BYTES: usize = 128;

/// Why a name or size is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name {0:?}: {1}")]
    InvalidBucketName(String, &'static str),
    /// An empty object key.
    #[error("object keys must not be empty")]
    EmptyKey,
    /// An object key holding a NUL character (S3 clients and file systems cannot carry it).
    #[error("object keys must not contain NUL characters")]
    KeyHasNul,
    /// An object key over [`MAX_KEY_BYTES`].
    #[error("object key of {0} bytes is over {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    /// An upload id that could never have been issued (not 32 lower-case hex digits).
    #[error("upload id {0:?} is not valid")]
    InvalidUploadId(String),
    /// A part number outside 1..=10000 (S3's message, word for word).
    #[error("Part number must be an integer between 1 and 10000, inclusive")]
    InvalidPartNumber(u32),
    /// An access key id that could never be issued: not 16 to 128 characters of
    /// `A-Z a-z 0-9 _` (AWS's `[\w]+`; the master issues `AK` + 18 upper-case hex digits).
    #[error("access key id {0:?} is not 16 to 128 letters, digits or underscores")]
    InvalidAccessKey(String),
    /// User metadata over [`MAX_USER_METADATA_BYTES`] in total.
    #[error("user metadata of {0} bytes is over {MAX_USER_METADATA_BYTES}")]
    MetadataTooLarge(usize),
    /// Stored system headers over [`MAX_SYSTEM_METADATA_BYTES`] in total.
    #[error("system metadata (Content-Type and the stored headers) of {0} bytes is over {MAX_SYSTEM_METADATA_BYTES}")]
    SystemMetadataTooLarge(usize),
}

impl ValidationError {
    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::InvalidBucketName(..) => ErrorCode::InvalidBucketName,
            ValidationError::EmptyKey
            | ValidationError::KeyHasNul
            | ValidationError::InvalidPartNumber(_)
            | ValidationError::InvalidAccessKey(_) => ErrorCode::InvalidArgument,
            ValidationError::KeyTooLong(_) => ErrorCode::KeyTooLong,
            // S3 answers a malformed upload id as it answers an unknown one.
            ValidationError::InvalidUploadId(_) => ErrorCode::NoSuchUpload,
            ValidationError::MetadataTooLarge(_) | ValidationError::SystemMetadataTooLarge(_) => {
                ErrorCode::MetadataTooLarge
            }
        }
    }

    /// The error as it crosses a process.
    pub fn detail(&self) -> ErrorDetail {
        let d = ErrorDetail::new(self.code(), self.to_string());
        match self {
            ValidationError::InvalidBucketName(name, _) => d.with_resource(name.clone()),
            ValidationError::InvalidUploadId(id) => d.with_resource(id.clone()),
            ValidationError::InvalidAccessKey(_)
            | ValidationError::EmptyKey
            | ValidationError::KeyHasNul
            | ValidationError::KeyTooLong(_)
            | ValidationError::InvalidPartNumber(_)
            | ValidationError::MetadataTooLarge(_)
            | ValidationError::SystemMetadataTooLarge(_) => d,
        }
    }
}

/// S3 bucket naming rules: 3 to 63 characters of `a-z`, `0-9`, `.` and `-`, starting and ending
/// with a letter or digit, no `..`, `.-` or `-.`, and not shaped like an IPv4 address.
pub fn bucket_name(name: &str) -> Result<(), ValidationError> {
    let bad = |why| Err(ValidationError::InvalidBucketName(name.to_string(), why));
    let b = name.as_bytes();
    if !(MIN_BUCKET_NAME_BYTES..=MAX_BUCKET_NAME_BYTES).contains(&b.len()) {
        return bad("must be 3 to 63 characters long");
    }
    let allowed = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-';
    if !b.iter().all(allowed) {
        return bad("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge(b[0]) || !edge(b[b.len() - 1]) {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("no two adjacent dots, and no dot next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not be formatted as an IP address");
    }
    Ok(())
}

/// Object keys: 1 to 1024 bytes of UTF-8 (a `&str` is UTF-8 already), no NUL. (S3 accepts
/// the other control characters, so they are accepted here too; listings escape them.)
pub fn object_key(key: &str) -> Result<(), ValidationError> {
    match key.len() {
        0 => Err(ValidationError::EmptyKey),
        n if n > MAX_KEY_BYTES => Err(ValidationError::KeyTooLong(n)),
        _ if key.contains('\0') => Err(ValidationError::KeyHasNul),
        _ => Ok(()),
    }
}

/// Upload ids: exactly what the master issues, 32 lower-case hex digits. S3 answers any other
/// id as an unknown one (NoSuchUpload), and so does this.
pub fn upload_id(id: &str) -> Result<(), ValidationError> {
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if id.len() != UPLOAD_ID_HEX_DIGITS || !id.bytes().all(hex) {
        return Err(ValidationError::InvalidUploadId(id.to_string()));
    }
    Ok(())
}

/// Access key ids: 16 to 128 characters of `A-Z a-z 0-9 _`. The gateway checks this before
/// any lookup (a malformed id costs no master call); the state machine refuses to create
/// anything else.
pub fn access_key(id: &str) -> Result<(), ValidationError> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let len_ok = (MIN_ACCESS_KEY_BYTES..=MAX_ACCESS_KEY_BYTES).contains(&id.len());
    if !len_ok || !id.bytes().all(word) {
        return Err(ValidationError::InvalidAccessKey(id.to_string()));
    }
    Ok(())
}

/// Part numbers: 1 to 10000.
pub fn part_number(n: u32) -> Result<(), ValidationError> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(ValidationError::InvalidPartNumber(n));
    }
    Ok(())
}

/// User metadata measured as S3 does: the sum of the UTF-8 bytes of every name and value.
pub fn user_metadata_bytes(total: usize) -> Result<(), ValidationError> {
    if total > MAX_USER_METADATA_BYTES {
        return Err(ValidationError::MetadataTooLarge(total));
    }
    Ok(())
}

/// [`user_metadata_bytes`] of a stored name -> value map.
pub fn user_metadata(meta: &HashMap<String, String>) -> Result<(), ValidationError> {
    user_metadata_bytes(meta.iter().map(|(k, v)| k.len() + v.len()).sum())
}

/// The stored system headers with the content type, measured like user metadata (names and
/// values): at most [`MAX_SYSTEM_METADATA_BYTES`].
pub fn system_metadata(
    content_type: &str,
    meta: &HashMap<String, String>,
) -> Result<(), ValidationError> {
    let total: usize = "content-type".len()
        + content_type.len()
        + meta.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if total > MAX_SYSTEM_METADATA_BYTES {
        return Err(ValidationError::SystemMetadataTooLarge(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let table: &[(&str, bool)] = &[
            ("abc", true),
            ("my-bucket.1", true),
            ("1bucket", true),
            ("a-b-c", true),
            ("a.b.c", true),
            ("192.168.1.1x", true),
            ("1.2.3", true),
            (&long, true),
            ("ab", false),
            ("", false),
            (&too_long, false),
            ("Abc", false),
            ("abC", false),
            ("a_b", false),
            ("a b", false),
            ("a\0b", false),
            ("ab\u{e9}", false),
            ("-abc", false),
            ("abc-", false),
            (".abc", false),
            ("abc.", false),
            ("a..b", false),
            ("a.-b", false),
            ("a-.b", false),
            ("192.168.1.1", false),
            ("10.0.0.255", false),
        ];
        for (name, ok) in table {
            let got = bucket_name(name);
            assert_eq!(got.is_ok(), *ok, "{name:?}: {got:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), ErrorCode::InvalidBucketName);
                assert_eq!(e.detail().resource, *name);
            }
        }
    }

    #[test]
    fn object_keys() {
        let table: &[(String, Result<(), ValidationError>)] = &[
            ("k".into(), Ok(())),
            ("a/b/../c d\u{e9}".into(), Ok(())),
            ("k".repeat(1024), Ok(())),
            // 512 two-byte characters: 1024 bytes.
            ("\u{e9}".repeat(512), Ok(())),
            (String::new(), Err(ValidationError::EmptyKey)),
            ("k".repeat(1025), Err(ValidationError::KeyTooLong(1025))),
            ("\u{e9}".repeat(513), Err(ValidationError::KeyTooLong(1026))),
            ("a\0b".into(), Err(ValidationError::KeyHasNul)),
            ("\0".into(), Err(ValidationError::KeyHasNul)),
            ("tab\tnewline\n\u{1}".into(), Ok(())),
        ];
        for (key, want) in table {
            assert_eq!(&object_key(key), want, "{} bytes", key.len());
        }
        assert_eq!(
            ValidationError::KeyTooLong(1025).code(),
            ErrorCode::KeyTooLong
        );
        assert_eq!(ValidationError::EmptyKey.code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn upload_ids() {
        let table: &[(String, bool)] = &[
            ("0123456789abcdef0123456789abcdef".into(), true),
            (format!("{:032x}", 1), true),
            ("0123456789ABCDEF0123456789abcdef".into(), false),
            ("0123456789abcdef0123456789abcde".into(), false),
            ("0123456789abcdef0123456789abcdef0".into(), false),
            ("0123456789abcdeg0123456789abcdef".into(), false),
            ("u1".into(), false),
            ("abc1234def".into(), false),
            ("56788".into(), false),
            (String::new(), false),
            ("a/b".into(), false),
            ("a\0b".into(), false),
        ];
        for (id, ok) in table {
            let got = upload_id(id);
            assert_eq!(got.is_ok(), *ok, "{id:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), ErrorCode::NoSuchUpload);
            }
        }
    }

    #[test]
    fn access_keys() {
        let table: &[(String, bool)] = &[
            ("AK0123456789ABCDEF01".into(), true),
            ("anodedevaccesskey".into(), true),
            ("AKIAIOSFODNN7EXAMPLE".into(), true),
            ("a_b_c_d_e_f_g_h_".into(), true),
            ("k".repeat(128), true),
            ("k".repeat(15), false),
            ("k".repeat(129), false),
            (String::new(), false),
            ("AKIAIOSFODNN7EXAMPL/".into(), false),
            ("AKIAIOSFODNN7EXAMP-E".into(), false),
            ("AKIAIOSFODNN7EXAMP\0E".into(), false),
            ("AKIAIOSFODNN7EXAMP\u{e9}".into(), false),
        ];
        for (id, ok) in table {
            let got = access_key(id);
            assert_eq!(got.is_ok(), *ok, "{id:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), ErrorCode::InvalidArgument);
            }
        }
    }

    #[test]
    fn part_numbers() {
        for (n, ok) in [
            (0, false),
            (1, true),
            (5000, true),
            (10_000, true),
            (10_001, false),
        ] {
            assert_eq!(part_number(n).is_ok(), ok, "{n}");
        }
        assert_eq!(
            part_number(0).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn metadata_sizes() {
        let meta = |pairs: &[(&str, usize)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), "v".repeat(*n)))
                .collect()
        };
        let table = [
            (meta(&[]), Ok(())),
            (meta(&[("a", 2047)]), Ok(())),
            (meta(&[("a", 1000), ("bb", 1045)]), Ok(())),
            (
                meta(&[("a", 2048)]),
                Err(ValidationError::MetadataTooLarge(2049)),
            ),
            (
                meta(&[("a", 1000), ("bb", 1047)]),
                Err(ValidationError::MetadataTooLarge(2050)),
            ),
        ];
        for (m, want) in table {
            assert_eq!(user_metadata(&m), want, "{m:?}");
        }
        assert_eq!(
            ValidationError::MetadataTooLarge(3000).code(),
            ErrorCode::MetadataTooLarge
        );
    }

    #[test]
    fn system_metadata_sizes() {
        let one = |k: &str, n: usize| HashMap::from([(k.to_string(), "v".repeat(n))]);
        // "content-type" (12) + "text/plain" (10) + "cache-control" (13) = 35 bytes besides.
        let fits = 8192 - 35;
        assert_eq!(
            system_metadata("text/plain", &one("cache-control", fits)),
            Ok(())
        );
        assert_eq!(
            system_metadata("text/plain", &one("cache-control", fits + 1)),
            Err(ValidationError::SystemMetadataTooLarge(8193))
        );
        let long_type = "t".repeat(8180);
        assert_eq!(system_metadata(&long_type, &HashMap::new()), Ok(()));
        assert!(system_metadata(&"t".repeat(8181), &HashMap::new()).is_err());
        assert_eq!(
            ValidationError::SystemMetadataTooLarge(9000).code(),
            ErrorCode::MetadataTooLarge
        );
    }
}
