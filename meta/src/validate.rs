//! The one validator of names and sizes S3 restricts: bucket names, object keys, upload ids,
//! part numbers and user metadata; and of the manifests and parts writers commit (chunk ids,
//! chunk lengths, sizes: [`manifest`], [`part`]). The gateway checks a request with it before anything is
//! sent; the state machine checks every command with it again (a client other than the gateway
//! may send anything), so both refuse exactly the same inputs.
//!
//! Pure: plain functions over strings and numbers.

use std::collections::HashMap;

use anode_proto::{ChunkRef, ErrorCode, ErrorDetail, Manifest, PartRecord, MAX_CHUNK_BYTES};

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

/// Largest object (S3's limit, 5 TiB).
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;
/// Largest part (S3's limit, 5 GiB).
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// Largest inline body. The client inlines up to 16 KiB by default
/// (`ClientConfig::inline_max_bytes`); the bound keeps raft entries small.
pub const MAX_INLINE_BYTES: usize = 1 << 20;
/// Length of a chunk id (SHA-256).
pub const CHUNK_ID_BYTES: usize = 32;

/// Most chunk ids one `AllocateChunks` may name. The client allocates one chunk at a time;
/// a batch API user gets room without letting one request hold the leader's control lock
/// for long (placement is O(servers) per chunk).
pub const MAX_ALLOCATE_CHUNKS: usize = 1024;
/// Most servers an `AllocateChunks` may exclude (more than any cluster has chunkservers).
pub const MAX_EXCLUDED_SERVERS: usize = 1024;
/// Most chunk ids one `LocateChunks` may name (the client asks 64 at a time,
/// `LOCATE_BATCH_CHUNKS`).
pub const MAX_LOCATE_CHUNKS: usize = 1024;
/// Most keys one `DeleteObjects` may name (S3's DeleteObjects limit).
pub const MAX_DELETE_KEYS: usize = 1000;
/// Most objects in one `PutObjects` (bulk) command.
pub const MAX_BULK_PUTS: usize = 1000;
/// Most chunk ids one heartbeat may report in each list (added, removed, corrupt). A full
/// report lists every chunk of a server: 4M chunks of 4 MiB are 16 TiB per server, and 4M ids
/// are ~140 MB on the wire, over the 64 MiB message limit, so the limit that binds today is
/// the message size; this cap bounds the work per heartbeat if that limit is raised.
pub const MAX_REPORT_CHUNKS: usize = 4 << 20;

/// What is wrong with a manifest or part a writer sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A chunk id that is not a 32-byte SHA-256.
    #[error("chunk {position}: id of {len} bytes, not {CHUNK_ID_BYTES}")]
    ChunkId {
        /// Position in the chunk list.
        position: usize,
        /// Its length.
        len: usize,
    },
    /// A chunk length of 0 or over `MAX_CHUNK_BYTES`.
    #[error("chunk {position}: length {length} outside 1..={MAX_CHUNK_BYTES}")]
    ChunkLength {
        /// Position in the chunk list.
        position: usize,
        /// Its length.
        length: u64,
    },
    /// Lengths (chunks, parts or inline data) that do not add up to the declared size
    /// (`None`: their sum overflows).
    #[error("{what} add up to {sum:?}, the size is {size}")]
    SizeMismatch {
        /// What was summed.
        what: &'static str,
        /// Their sum.
        sum: Option<u64>,
        /// The declared size.
        size: u64,
    },
    /// A size over its limit.
    #[error("{what} of {size} bytes is over {max}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Inline data and chunks together.
    #[error("a body is either inline or in chunks, not both")]
    InlineAndChunks,
}

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
    /// A manifest or part that cannot describe a body.
    #[error("bad manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// A request listing more items than its limit.
    #[error("{count} {what} in one request (max {max})")]
    TooMany {
        /// What is listed.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk id in a request that is not a 32-byte SHA-256.
    #[error("chunk id of {0} bytes, not {CHUNK_ID_BYTES}")]
    ChunkId(usize),
    /// Stored system headers over [`MAX_SYSTEM_METADATA_BYTES`] in total.
    #[error("system metadata (Content-Type and the stored headers) of {0} bytes is over {MAX_SYSTEM_METADATA_BYTES}")]
    SystemMetadataTooLarge(usize),
    /// A user name outside 1..=64 characters of `A-Z a-z 0-9 _ . -`.
    #[error("user name {0:?} is not 1 to {MAX_USER_NAME_BYTES} characters of A-Z a-z 0-9 _ . -")]
    InvalidUserName(String),
}

impl ValidationError {
    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::InvalidBucketName(..) => ErrorCode::InvalidBucketName,
            ValidationError::EmptyKey
            | ValidationError::KeyHasNul
            | ValidationError::InvalidPartNumber(_)
            | ValidationError::InvalidAccessKey(_)
            | ValidationError::Manifest(_)
            | ValidationError::TooMany { .. }
            | ValidationError::ChunkId(_)
            | ValidationError::InvalidUserName(_) => ErrorCode::InvalidArgument,
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
            ValidationError::InvalidUploadId(id) | ValidationError::InvalidUserName(id) => {
                d.with_resource(id.clone())
            }
            ValidationError::InvalidAccessKey(_)
            | ValidationError::EmptyKey
            | ValidationError::KeyHasNul
            | ValidationError::KeyTooLong(_)
            | ValidationError::InvalidPartNumber(_)
            | ValidationError::MetadataTooLarge(_)
            | ValidationError::Manifest(_)
            | ValidationError::TooMany { .. }
            | ValidationError::ChunkId(_)
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

/// Longest user name.
pub const MAX_USER_NAME_BYTES: usize = 64;

/// User names: 1 to 64 characters of `A-Z a-z 0-9 _ . -` (they appear in logs, in the S3
/// `Owner` element and on the command line, so nothing that needs escaping).
pub fn user_name(name: &str) -> Result<(), ValidationError> {
    let ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > MAX_USER_NAME_BYTES || !name.bytes().all(ok) {
        return Err(ValidationError::InvalidUserName(name.to_string()));
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

/// A list of `count` items `what` holds at most `max`.
pub fn at_most(what: &'static str, count: usize, max: usize) -> Result<(), ValidationError> {
    if count > max {
        return Err(ValidationError::TooMany { what, count, max });
    }
    Ok(())
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

/// Chunk ids of a request: at most `max`, each 32 bytes.
pub fn chunk_ids(what: &'static str, ids: &[Vec<u8>], max: usize) -> Result<(), ValidationError> {
    at_most(what, ids.len(), max)?;
    match ids.iter().find(|id| id.len() != CHUNK_ID_BYTES) {
        Some(id) => Err(ValidationError::ChunkId(id.len())),
        None => Ok(()),
    }
}

/// Every chunk reference: a 32-byte id and a length in 1..=`MAX_CHUNK_BYTES`. Returns the
/// sum of the lengths (`None` on overflow).
fn chunk_refs(chunks: &[ChunkRef]) -> Result<Option<u64>, ManifestError> {
    let mut sum = Some(0u64);
    for (position, c) in chunks.iter().enumerate() {
        if c.sha256.len() != CHUNK_ID_BYTES {
            return Err(ManifestError::ChunkId {
                position,
                len: c.sha256.len(),
            });
        }
        if c.length == 0 || c.length > MAX_CHUNK_BYTES {
            return Err(ManifestError::ChunkLength {
                position,
                length: c.length,
            });
        }
        sum = sum.and_then(|s| s.checked_add(c.length));
    }
    Ok(sum)
}

fn too_large(what: &'static str, size: u64, max: u64) -> Result<(), ManifestError> {
    if size > max {
        return Err(ManifestError::TooLarge { what, size, max });
    }
    Ok(())
}

fn sums_to(what: &'static str, sum: Option<u64>, size: u64) -> Result<(), ManifestError> {
    if sum != Some(size) {
        return Err(ManifestError::SizeMismatch { what, sum, size });
    }
    Ok(())
}

/// A manifest a writer commits: its body is inline (at most [`MAX_INLINE_BYTES`], exactly
/// `size` bytes) or in chunks (valid [`ChunkRef`]s whose lengths add up to `size`), or empty
/// (size 0); at most [`MAX_OBJECT_BYTES`]; part sizes, when present, at most 10000 of at most
/// [`MAX_PART_BYTES`] each, adding up to `size`; user metadata within S3's limit.
pub fn manifest(m: &Manifest) -> Result<(), ValidationError> {
    user_metadata(&m.user_metadata)?;
    too_large("object", m.size, MAX_OBJECT_BYTES)?;
    let inline = m.inline_data.len();
    too_large("inline body", inline as u64, MAX_INLINE_BYTES as u64)?;
    let sum = chunk_refs(&m.chunks)?;
    if inline > 0 && !m.chunks.is_empty() {
        return Err(ManifestError::InlineAndChunks.into());
    }
    if inline > 0 {
        sums_to("inline bytes", Some(inline as u64), m.size)?;
    } else {
        sums_to("chunk lengths", sum, m.size)?;
    }
    if !m.part_sizes.is_empty() {
        too_large(
            "part list",
            m.part_sizes.len() as u64,
            MAX_PART_NUMBER as u64,
        )?;
        let mut parts = Some(0u64);
        for p in &m.part_sizes {
            too_large("part", *p, MAX_PART_BYTES)?;
            parts = parts.and_then(|s| s.checked_add(*p));
        }
        sums_to("part sizes", parts, m.size)?;
    }
    Ok(())
}

/// A part a writer commits: a valid part number, no inline body, valid [`ChunkRef`]s whose
/// lengths add up to its size, at most [`MAX_PART_BYTES`].
pub fn part(p: &PartRecord) -> Result<(), ValidationError> {
    part_number(p.part_number)?;
    too_large("part", p.size, MAX_PART_BYTES)?;
    if !p.inline_data.is_empty() {
        return Err(ManifestError::InlineAndChunks.into());
    }
    let sum = chunk_refs(&p.chunks)?;
    sums_to("chunk lengths", sum, p.size)?;
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

    fn cref(len: u64) -> ChunkRef {
        ChunkRef {
            sha256: vec![7; 32],
            length: len,
            ..Default::default()
        }
    }

    fn chunked(lens: &[u64]) -> Manifest {
        Manifest {
            version: 1,
            size: lens.iter().sum(),
            chunks: lens.iter().map(|l| cref(*l)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn manifests() {
        use ManifestError as E;
        let bad_id = {
            let mut m = chunked(&[5]);
            m.chunks[0].sha256 = vec![1];
            m
        };
        let inline = |n: usize, size: u64| Manifest {
            size,
            inline_data: vec![1; n],
            ..Default::default()
        };
        let table: Vec<(&str, Manifest, Result<(), ManifestError>)> = vec![
            ("empty object", Manifest::default(), Ok(())),
            ("chunks", chunked(&[MAX_CHUNK_BYTES, 1]), Ok(())),
            ("inline", inline(10, 10), Ok(())),
            (
                "bad id",
                bad_id,
                Err(E::ChunkId {
                    position: 0,
                    len: 1,
                }),
            ),
            (
                "zero chunk",
                chunked(&[3, 0]),
                Err(E::ChunkLength {
                    position: 1,
                    length: 0,
                }),
            ),
            (
                "huge chunk",
                chunked(&[MAX_CHUNK_BYTES + 1]),
                Err(E::ChunkLength {
                    position: 0,
                    length: MAX_CHUNK_BYTES + 1,
                }),
            ),
            (
                "size differs",
                Manifest {
                    size: 9,
                    ..chunked(&[5])
                },
                Err(E::SizeMismatch {
                    what: "chunk lengths",
                    sum: Some(5),
                    size: 9,
                }),
            ),
            (
                "size without body",
                Manifest {
                    size: 1,
                    ..Default::default()
                },
                Err(E::SizeMismatch {
                    what: "chunk lengths",
                    sum: Some(0),
                    size: 1,
                }),
            ),
            (
                "inline size differs",
                inline(10, 11),
                Err(E::SizeMismatch {
                    what: "inline bytes",
                    sum: Some(10),
                    size: 11,
                }),
            ),
            (
                "inline and chunks",
                Manifest {
                    inline_data: vec![1],
                    ..chunked(&[1])
                },
                Err(E::InlineAndChunks),
            ),
            (
                "inline too large",
                inline(MAX_INLINE_BYTES + 1, MAX_INLINE_BYTES as u64 + 1),
                Err(E::TooLarge {
                    what: "inline body",
                    size: MAX_INLINE_BYTES as u64 + 1,
                    max: MAX_INLINE_BYTES as u64,
                }),
            ),
            (
                "object too large",
                Manifest {
                    size: MAX_OBJECT_BYTES + 1,
                    ..Default::default()
                },
                Err(E::TooLarge {
                    what: "object",
                    size: MAX_OBJECT_BYTES + 1,
                    max: MAX_OBJECT_BYTES,
                }),
            ),
            (
                "parts",
                Manifest {
                    part_sizes: vec![4, 3],
                    ..chunked(&[5, 2])
                },
                Ok(()),
            ),
            (
                "parts differ",
                Manifest {
                    part_sizes: vec![4, 4],
                    ..chunked(&[5, 2])
                },
                Err(E::SizeMismatch {
                    what: "part sizes",
                    sum: Some(8),
                    size: 7,
                }),
            ),
            (
                "parts overflow",
                Manifest {
                    part_sizes: vec![u64::MAX, 8],
                    ..chunked(&[5, 2])
                },
                Err(E::TooLarge {
                    what: "part",
                    size: u64::MAX,
                    max: MAX_PART_BYTES,
                }),
            ),
        ];
        for (name, m, want) in table {
            assert_eq!(manifest(&m), want.map_err(ValidationError::from), "{name}");
        }
        // Lengths whose sum overflows u64 never match a size.
        let many: Vec<u64> = vec![MAX_CHUNK_BYTES; 300_000];
        let mut m = chunked(&many[..1]);
        m.chunks = many.iter().map(|l| cref(*l)).collect();
        m.size = MAX_OBJECT_BYTES;
        assert!(matches!(
            manifest(&m),
            Err(ValidationError::Manifest(E::SizeMismatch { .. }))
        ));
        assert_eq!(
            ValidationError::from(E::InlineAndChunks).code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn request_lists() {
        let ids = |n: usize, len: usize| vec![vec![0u8; len]; n];
        assert_eq!(chunk_ids("chunks", &ids(3, 32), 3), Ok(()));
        assert_eq!(chunk_ids("chunks", &[], 3), Ok(()));
        assert_eq!(
            chunk_ids("chunks", &ids(4, 32), 3),
            Err(ValidationError::TooMany {
                what: "chunks",
                count: 4,
                max: 3
            })
        );
        assert_eq!(
            chunk_ids("chunks", &ids(1, 31), 3),
            Err(ValidationError::ChunkId(31))
        );
        assert_eq!(
            chunk_ids("chunks", &ids(1, 0), 3),
            Err(ValidationError::ChunkId(0))
        );
        assert_eq!(
            at_most("keys", 1001, MAX_DELETE_KEYS).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(at_most("keys", 1000, MAX_DELETE_KEYS), Ok(()));
    }

    #[test]
    fn parts() {
        let p = |n: u32, lens: &[u64], size: u64| PartRecord {
            part_number: n,
            size,
            chunks: lens.iter().map(|l| cref(*l)).collect(),
            ..Default::default()
        };
        assert_eq!(part(&p(1, &[3, 4], 7)), Ok(()));
        assert_eq!(part(&p(1, &[], 0)), Ok(()));
        assert_eq!(
            part(&p(0, &[3], 3)),
            Err(ValidationError::InvalidPartNumber(0))
        );
        assert!(part(&p(1, &[3], 4)).is_err());
        assert!(part(&p(1, &[0], 0)).is_err());
        assert!(part(&p(2, &[MAX_CHUNK_BYTES; 81], 81 * MAX_CHUNK_BYTES)).is_err());
        let mut inline = p(1, &[], 1);
        inline.inline_data = vec![1];
        assert!(part(&inline).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use prost::Message;

        fn any_len() -> impl Strategy<Value = u64> {
            prop_oneof![
                16 => 1u64..100,
                1 => Just(0u64),
                1 => Just(MAX_CHUNK_BYTES),
                1 => Just(MAX_CHUNK_BYTES + 1),
                1 => Just(u64::MAX),
            ]
        }

        fn any_manifest() -> impl Strategy<Value = Manifest> {
            let chunk = (prop_oneof![16 => Just(32usize), 1 => 0usize..40], any_len());
            (
                prop::collection::vec(chunk, 0..5),
                prop_oneof![
                    6 => Just(None),
                    1 => any::<u64>().prop_map(Some),
                    1 => (0u64..400).prop_map(Some)
                ],
                prop_oneof![3 => Just(0usize), 1 => 0usize..50],
                prop::collection::vec(prop_oneof![any::<u64>(), 0u64..100], 0..3),
                (
                    any::<bool>(),
                    prop_oneof![5 => Just(false), 1 => Just(true)],
                ),
            )
                .prop_map(|(chunks, size, inline, parts, (fix_parts, mix))| {
                    // Mostly a body either inline or in chunks.
                    let chunks = if inline > 0 && !mix {
                        Vec::new()
                    } else {
                        chunks
                    };
                    let chunks: Vec<ChunkRef> = chunks
                        .into_iter()
                        .map(|(n, len)| ChunkRef {
                            sha256: vec![3; n],
                            length: len,
                            ..Default::default()
                        })
                        .collect();
                    // Mostly the size the body has (wrapping: overflowing sums too).
                    let natural = if inline > 0 {
                        inline as u64
                    } else {
                        chunks.iter().fold(0u64, |s, c| s.wrapping_add(c.length))
                    };
                    let size = size.unwrap_or(natural);
                    let mut part_sizes = parts;
                    if fix_parts && !part_sizes.is_empty() {
                        part_sizes = vec![size];
                    }
                    Manifest {
                        version: 1,
                        size,
                        etag: "e".into(),
                        chunks,
                        inline_data: vec![9; inline],
                        part_sizes,
                        ..Default::default()
                    }
                })
        }

        proptest! {
            /// Any manifest validates or is refused (never a panic); a valid one survives its
            /// encoding and stays valid.
            #[test]
            fn manifests_validate_or_are_refused(m in any_manifest()) {
                if manifest(&m).is_ok() {
                    // What readers rely on: well-formed chunks whose lengths are the body.
                    prop_assert!(m.size <= MAX_OBJECT_BYTES);
                    prop_assert!(m.chunks.iter().all(|c| c.sha256.len() == 32
                        && (1..=MAX_CHUNK_BYTES).contains(&c.length)));
                    let body = m.chunks.iter().map(|c| c.length as u128).sum::<u128>()
                        + m.inline_data.len() as u128;
                    prop_assert_eq!(body, m.size as u128);
                    let back = Manifest::decode(m.encode_to_vec().as_slice()).unwrap();
                    prop_assert_eq!(&back, &m);
                    prop_assert_eq!(manifest(&back), Ok(()));
                }
            }
        }

        /// The generator reaches valid manifests (else the property proves little).
        #[test]
        fn the_generator_reaches_valid_manifests() {
            use proptest::strategy::ValueTree;
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let valid = (0..1000)
                .filter(|_| {
                    let m = any_manifest().new_tree(&mut runner).unwrap().current();
                    manifest(&m).is_ok()
                })
                .count();
            assert!(valid >= 300, "{valid}");
        }
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
