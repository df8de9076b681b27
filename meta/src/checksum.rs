//! S3 additional checksums (issue 15): the algorithms, the checks of stored values, and the
//! checksum of a completed multipart upload. Pure; the state machine computes a completed
//! object's checksum from its parts' at apply time, and the gateway uses the same functions to
//! check what a client sends with CompleteMultipartUpload.
//!
//! - COMPOSITE: the algorithm over the concatenated binary part checksums, base64, then `-N`.
//! - FULL_OBJECT (CRCs only): the CRC of the whole body, combined from the part CRCs and part
//!   sizes (`crc_fast::checksum_combine`), base64.

use base64::Engine;
use crc_fast::CrcAlgorithm;
use sha1::Digest as _;

/// Largest stored checksum value: a base64 SHA-256 (44) plus `-10000`.
pub const MAX_CHECKSUM_VALUE_BYTES: usize = 64;

/// `Manifest.checksum_type` of a checksum of the whole body.
pub const FULL_OBJECT: &str = "FULL_OBJECT";
/// `Manifest.checksum_type` of a checksum of the part checksums.
pub const COMPOSITE: &str = "COMPOSITE";

/// A checksum algorithm S3 accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

/// Every algorithm, in S3's order.
pub const ALL: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

/// Why a checksum setting or value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// Not one of S3's algorithm names.
    #[error("unknown checksum algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// Not FULL_OBJECT or COMPOSITE, or not allowed with the algorithm.
    #[error("checksum type {0:?} is not supported with algorithm {1:?}")]
    BadType(String, String),
    /// Not base64 of the algorithm's digest length (with `-N` where composite).
    #[error("checksum value {0:?} is invalid for {1:?}")]
    BadValue(String, String),
}

impl Algorithm {
    /// S3's name (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm S3 names `name` (case-insensitive).
    pub fn parse(name: &str) -> Result<Algorithm, ChecksumError> {
        ALL.into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ChecksumError::UnknownAlgorithm(name.to_string()))
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// The checksum type an upload gets when CreateMultipartUpload names none: FULL_OBJECT
    /// for CRC64NVME (the only type S3 allows with it), COMPOSITE otherwise.
    pub fn default_type(self) -> &'static str {
        if self == Algorithm::Crc64Nvme {
            FULL_OBJECT
        } else {
            COMPOSITE
        }
    }

    /// Whether S3 allows `checksum_type` with this algorithm: COMPOSITE for all but
    /// CRC64NVME, FULL_OBJECT for the CRCs.
    pub fn allows_type(self, checksum_type: &str) -> bool {
        match checksum_type {
            COMPOSITE => self != Algorithm::Crc64Nvme,
            FULL_OBJECT => self.crc().is_some(),
            _ => false,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self.crc() {
            Some(c) => crc_bytes(self, crc_fast::checksum(c, data)),
            None if self == Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            None => sha2::Sha256::digest(data).to_vec(),
        }
    }
}

/// A CRC value as S3 sends it: big-endian, the algorithm's width.
fn crc_bytes(alg: Algorithm, v: u64) -> Vec<u8> {
    v.to_be_bytes()[8 - alg.digest_len()..].to_vec()
}

fn crc_value(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Base64 (standard, padded), as S3 sends checksums.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The digest a plain (not composite) base64 value holds, if it is one of `alg`'s length.
pub fn decode(alg: Algorithm, value: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .filter(|v| v.len() == alg.digest_len())
}

/// Check a stored checksum: a known algorithm, a type it allows, and a value that is base64
/// of its length (ending in `-N` when COMPOSITE and `composite_parts` is Some(N)). Empty
/// algorithm: no checksum, and then value and type must be empty too.
pub fn check_stored(
    algorithm: &str,
    value: &str,
    checksum_type: &str,
    composite_parts: Option<usize>,
) -> Result<(), ChecksumError> {
    if algorithm.is_empty() {
        if value.is_empty() && checksum_type.is_empty() {
            return Ok(());
        }
        return Err(ChecksumError::UnknownAlgorithm(String::new()));
    }
    let alg = Algorithm::parse(algorithm)?;
    if algorithm != alg.name() {
        return Err(ChecksumError::UnknownAlgorithm(algorithm.to_string()));
    }
    // A whole body's checksum (a single PUT, a recomputed copy) is FULL_OBJECT with any
    // algorithm; an upload's type is checked against the algorithm when it starts.
    let whole = checksum_type == FULL_OBJECT && composite_parts.is_none();
    if !checksum_type.is_empty() && !whole && !alg.allows_type(checksum_type) {
        return Err(ChecksumError::BadType(
            checksum_type.to_string(),
            algorithm.to_string(),
        ));
    }
    let bad = || ChecksumError::BadValue(value.to_string(), algorithm.to_string());
    if value.len() > MAX_CHECKSUM_VALUE_BYTES {
        return Err(bad());
    }
    let digest = match (checksum_type, composite_parts) {
        (COMPOSITE, Some(n)) => value.strip_suffix(&format!("-{n}")).ok_or_else(bad)?,
        _ => value,
    };
    decode(alg, digest).map(|_| ()).ok_or_else(bad)
}

/// The COMPOSITE checksum of parts with these checksums (base64 each): the algorithm over
/// their concatenated digests, base64, `-N`. None when a value is not of the algorithm.
pub fn composite(alg: Algorithm, part_values: &[&str]) -> Option<String> {
    let mut all = Vec::with_capacity(part_values.len() * alg.digest_len());
    for v in part_values {
        all.extend_from_slice(&decode(alg, v)?);
    }
    Some(format!("{}-{}", b64(&alg.digest(&all)), part_values.len()))
}

/// The FULL_OBJECT checksum of the concatenation of parts with these CRCs (base64 each) and
/// sizes. None for a non-CRC algorithm or a value not of the algorithm.
pub fn full_object(alg: Algorithm, parts: &[(&str, u64)]) -> Option<String> {
    let crc = alg.crc()?;
    let mut acc: Option<u64> = None;
    for (value, size) in parts {
        let v = crc_value(&decode(alg, value)?);
        acc = Some(match acc {
            None => v,
            Some(a) => crc_fast::checksum_combine(crc, a, v, *size),
        });
    }
    // No parts: the CRC of nothing.
    let v = acc.unwrap_or_else(|| crc_fast::checksum(crc, b""));
    Some(b64(&crc_bytes(alg, v)))
}

/// The checksum of a completed upload of type `checksum_type` from its parts' (value, size),
/// in part order. None when a part's value is not of the algorithm.
pub fn of_parts(alg: Algorithm, checksum_type: &str, parts: &[(&str, u64)]) -> Option<String> {
    if checksum_type == FULL_OBJECT {
        full_object(alg, parts)
    } else {
        let values: Vec<&str> = parts.iter().map(|(v, _)| *v).collect();
        composite(alg, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors_and_names() {
        let body = b"123456789";
        assert_eq!(Algorithm::Crc32.digest(body), 0xCBF4_3926u32.to_be_bytes());
        assert_eq!(Algorithm::Crc32c.digest(body), 0xE306_9283u32.to_be_bytes());
        assert_eq!(
            Algorithm::Crc64Nvme.digest(body),
            0xAE8B_1486_0A79_9888u64.to_be_bytes()
        );
        for a in ALL {
            assert_eq!(Algorithm::parse(&a.name().to_lowercase()), Ok(a));
            assert_eq!(a.digest(b"x").len(), a.digest_len());
        }
        assert!(Algorithm::parse("MD5").is_err());
        assert_eq!(Algorithm::Crc64Nvme.default_type(), FULL_OBJECT);
        assert_eq!(Algorithm::Sha256.default_type(), COMPOSITE);
        assert!(!Algorithm::Crc64Nvme.allows_type(COMPOSITE));
        assert!(!Algorithm::Sha1.allows_type(FULL_OBJECT));
        assert!(Algorithm::Crc32.allows_type(FULL_OBJECT));
    }

    #[test]
    fn stored_values_are_checked() {
        let v = b64(&Algorithm::Crc32.digest(b"a"));
        assert_eq!(check_stored("", "", "", None), Ok(()));
        assert!(check_stored("", &v, "", None).is_err());
        assert_eq!(check_stored("CRC32", &v, "FULL_OBJECT", None), Ok(()));
        assert!(check_stored("crc32", &v, "", None).is_err());
        assert!(check_stored("CRC32C", "AAAA", "", None).is_err());
        assert!(check_stored("SHA1", &v, "", None).is_err());
        let sha = b64(&Algorithm::Sha1.digest(b"a"));
        assert_eq!(check_stored("SHA1", &sha, FULL_OBJECT, None), Ok(()));
        assert!(check_stored("SHA1", &sha, "PARTIAL", None).is_err());
        assert!(check_stored("CRC64NVME", &v, "COMPOSITE", None).is_err());
        let c = composite(Algorithm::Crc32, &[&v, &v]).unwrap();
        assert!(c.ends_with("-2"));
        assert_eq!(check_stored("CRC32", &c, "COMPOSITE", Some(2)), Ok(()));
        assert!(check_stored("CRC32", &c, "COMPOSITE", Some(3)).is_err());
        assert!(check_stored("CRC32", &"A".repeat(100), "", None).is_err());
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        let a = Algorithm::Sha256;
        let (p1, p2) = (a.digest(b"hello "), a.digest(b"world"));
        let want = format!("{}-2", b64(&a.digest(&[p1.clone(), p2.clone()].concat())));
        assert_eq!(composite(a, &[&b64(&p1), &b64(&p2)]), Some(want));
        assert_eq!(composite(a, &["AAAA"]), None);
    }

    proptest! {
        /// Combining part CRCs gives the CRC of the concatenated parts.
        #[test]
        fn full_object_crc_equals_crc_of_concatenation(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            which in 0usize..3,
        ) {
            let alg = [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme][which];
            let values: Vec<String> = parts.iter().map(|p| b64(&alg.digest(p))).collect();
            let pairs: Vec<(&str, u64)> = values
                .iter()
                .zip(&parts)
                .map(|(v, p)| (v.as_str(), p.len() as u64))
                .collect();
            let whole = b64(&alg.digest(&parts.concat()));
            prop_assert_eq!(full_object(alg, &pairs), Some(whole.clone()));
            prop_assert_eq!(of_parts(alg, FULL_OBJECT, &pairs), Some(whole));
            prop_assert_eq!(full_object(Algorithm::Sha1, &pairs), None);
        }
    }
}
