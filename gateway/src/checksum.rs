//! S3 flexible checksums on uploads (PutObject, UploadPart): the client declares
//! `x-amz-checksum-ALG` as a header, or names it in `x-amz-trailer` and sends it as an
//! `aws-chunked` trailer; the gateway computes the same checksum over the decoded payload and
//! fails the body with `BadDigest` on a mismatch, so nothing is committed. Pure (no IO).
//!
//! Over HTTPS, SDKs (boto3 since 1.36, the AWS SDKs) send `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
//! bodies whose only integrity check is this trailer checksum.

use base64::Engine;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use http::HeaderMap;
use sha1::Digest as _;

use anode_client::{ChecksumCell, StoredChecksum};

use crate::error::S3Error;

/// A checksum algorithm S3 accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

const ALL: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

impl Algorithm {
    /// The header (and trailer) name carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// S3's name of the algorithm (`CRC32`, ...), as stored in manifests.
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
    pub fn from_name(name: &str) -> Option<Algorithm> {
        ALL.into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The XML element of this checksum in S3 documents (`ChecksumCRC32`, ...).
    pub fn xml_name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "ChecksumCRC32",
            Algorithm::Crc32c => "ChecksumCRC32C",
            Algorithm::Crc64Nvme => "ChecksumCRC64NVME",
            Algorithm::Sha1 => "ChecksumSHA1",
            Algorithm::Sha256 => "ChecksumSHA256",
        }
    }

    fn from_header(name: &str) -> Option<Algorithm> {
        ALL.into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn hasher(self) -> Hasher {
        match self {
            Algorithm::Crc32 => Hasher::Crc(CrcDigest::new(CrcAlgorithm::Crc32IsoHdlc)),
            Algorithm::Crc32c => Hasher::Crc(CrcDigest::new(CrcAlgorithm::Crc32Iscsi)),
            Algorithm::Crc64Nvme => Hasher::Crc(CrcDigest::new(CrcAlgorithm::Crc64Nvme)),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
}

/// Headers of the `x-amz-checksum-` family that are not a checksum value.
const CHECKSUM_SETTINGS: [&str; 3] = [
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
    "x-amz-checksum-mode",
];

/// A checksum header of an algorithm Anode does not compute (S3's newer SHA512, MD5 and
/// XXHASH ones) is refused rather than ignored: the client asked for an integrity check that
/// would not happen.
fn refuse_unsupported(h: &HeaderMap) -> Result<(), S3Error> {
    let unknown = h.keys().map(|k| k.as_str()).find(|k| {
        k.starts_with("x-amz-checksum-")
            && !CHECKSUM_SETTINGS.contains(k)
            && Algorithm::from_header(k).is_none()
    });
    match unknown {
        Some(k) => Err(S3Error::InvalidRequest(format!(
            "The checksum {k} is not supported (CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 are)"
        ))),
        None => Ok(()),
    }
}

enum Hasher {
    Crc(CrcDigest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Where the expected value comes from.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Header(Vec<u8>),
    Trailer,
    /// Nothing to check: `x-amz-sdk-checksum-algorithm` only asks the server to compute it.
    Compute,
}

/// The checksum one upload declared, being computed over its payload.
pub struct PayloadChecksum {
    alg: Algorithm,
    expected: Expected,
    hasher: Hasher,
    cell: ChecksumCell,
}

impl std::fmt::Debug for PayloadChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadChecksum")
            .field("alg", &self.alg)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl PayloadChecksum {
    /// The checksum the request declares: an `x-amz-checksum-ALG` header, else one named in
    /// `x-amz-trailer`, else one `x-amz-sdk-checksum-algorithm` asks the server to compute;
    /// `None` when it declares none. More than one declared checksum, a header value that is
    /// not base64 of the algorithm's length, or an unknown algorithm is `InvalidRequest`.
    pub fn from_headers(h: &HeaderMap) -> Result<Option<PayloadChecksum>, S3Error> {
        refuse_unsupported(h)?;
        let mut declared = ALL.into_iter().filter_map(|a| {
            h.get(a.header())
                .map(|v| (a, v.to_str().unwrap_or_default().to_string()))
        });
        let first = declared.next();
        if declared.next().is_some() {
            return Err(S3Error::InvalidRequest(
                "Expecting a single x-amz-checksum- header".into(),
            ));
        }
        if let Some((alg, value)) = first {
            let expected = decode(alg, &value)?;
            return Ok(Some(PayloadChecksum::new(alg, Expected::Header(expected))));
        }
        let trailer = match h
            .get("x-amz-trailer")
            .map(|v| v.to_str().unwrap_or_default())
        {
            Some(t) if t.trim().to_ascii_lowercase().starts_with("x-amz-checksum-") => {
                Some(Algorithm::from_header(t).ok_or_else(|| {
                    S3Error::InvalidRequest(format!(
                        "The checksum {} in x-amz-trailer is not supported (CRC32, CRC32C, \
                         CRC64NVME, SHA1 and SHA256 are)",
                        t.trim()
                    ))
                })?)
            }
            _ => None,
        };
        if let Some(alg) = trailer {
            return Ok(Some(PayloadChecksum::new(alg, Expected::Trailer)));
        }
        match h.get("x-amz-sdk-checksum-algorithm") {
            None => Ok(None),
            Some(v) => {
                let alg = v
                    .to_str()
                    .ok()
                    .and_then(Algorithm::from_name)
                    .ok_or_else(|| {
                        S3Error::InvalidRequest(
                            "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
                        )
                    })?;
                Ok(Some(PayloadChecksum::new(alg, Expected::Compute)))
            }
        }
    }

    fn new(alg: Algorithm, expected: Expected) -> PayloadChecksum {
        PayloadChecksum {
            alg,
            expected,
            hasher: alg.hasher(),
            cell: ChecksumCell::default(),
        }
    }

    /// A checksum to compute only (nothing expected), e.g. over a copy's source.
    pub fn compute(alg: Algorithm) -> PayloadChecksum {
        PayloadChecksum::new(alg, Expected::Compute)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Where the verified checksum is recorded when the payload ends (for the manifest).
    pub fn cell(&self) -> ChecksumCell {
        self.cell.clone()
    }

    /// The header or trailer name of the declared checksum.
    pub fn name(&self) -> &'static str {
        self.alg.header()
    }

    /// Feed the next payload piece.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Crc(d) => d.update(data),
            Hasher::Sha1(d) => d.update(data),
            Hasher::Sha256(d) => d.update(data),
        }
    }

    /// The payload ended: compare with the declared value (`trailer` is the trailer's value
    /// when the checksum was announced as a trailer). A mismatch is `BadDigest`.
    pub fn finish(self, trailer: Option<&str>) -> Result<(), S3Error> {
        let expected = match self.expected {
            Expected::Header(v) => Some(v),
            Expected::Compute => None,
            Expected::Trailer => {
                let value = trailer.ok_or_else(|| {
                    S3Error::InvalidRequest(format!(
                        "x-amz-trailer announced {} but the body has no such trailer",
                        self.alg.header()
                    ))
                })?;
                Some(decode(self.alg, value)?)
            }
        };
        let got = match self.hasher {
            Hasher::Crc(d) => {
                let v = d.finalize().to_be_bytes();
                v[8 - self.alg.digest_len()..].to_vec()
            }
            Hasher::Sha1(d) => d.finalize().to_vec(),
            Hasher::Sha256(d) => d.finalize().to_vec(),
        };
        if expected.is_some_and(|e| e != got) {
            return Err(S3Error::BadDigest);
        }
        self.cell.set(StoredChecksum {
            algorithm: self.alg.name().to_string(),
            value: base64::engine::general_purpose::STANDARD.encode(&got),
            checksum_type: anode_meta::checksum::FULL_OBJECT.to_string(),
        });
        Ok(())
    }
}

fn decode(alg: Algorithm, value: &str) -> Result<Vec<u8>, S3Error> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .filter(|v| v.len() == alg.digest_len())
        .ok_or_else(|| {
            S3Error::InvalidRequest(format!("Value for {} header is invalid.", alg.header()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(v)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn check(
        pairs: &[(&'static str, &str)],
        body: &[u8],
        trailer: Option<&str>,
    ) -> Result<(), S3Error> {
        let mut c = PayloadChecksum::from_headers(&headers(pairs))?.expect("declared");
        for piece in body.chunks(3) {
            c.update(piece);
        }
        c.finish(trailer)
    }

    #[test]
    fn known_vectors() {
        // The standard check values over "123456789".
        let body = b"123456789";
        let cases: [(&'static str, Vec<u8>); 5] = [
            (
                "x-amz-checksum-crc32",
                0xCBF4_3926u32.to_be_bytes().to_vec(),
            ),
            (
                "x-amz-checksum-crc32c",
                0xE306_9283u32.to_be_bytes().to_vec(),
            ),
            (
                "x-amz-checksum-crc64nvme",
                0xAE8B_1486_0A79_9888u64.to_be_bytes().to_vec(),
            ),
            (
                "x-amz-checksum-sha1",
                hex::decode("f7c3bc1d808e04732adf679965ccc34ca7ae3441").unwrap(),
            ),
            (
                "x-amz-checksum-sha256",
                hex::decode("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225")
                    .unwrap(),
            ),
        ];
        for (name, want) in cases {
            check(&[(name, &b64(&want))], body, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut bad = want.clone();
            bad[0] ^= 1;
            assert_eq!(
                check(&[(name, &b64(&bad))], body, None),
                Err(S3Error::BadDigest),
                "{name}"
            );
        }
    }

    #[test]
    fn trailers_and_invalid_values() {
        let crc = b64(&0xCBF4_3926u32.to_be_bytes());
        let t = [("x-amz-trailer", "x-amz-checksum-crc32")];
        check(&t, b"123456789", Some(&crc)).unwrap();
        assert_eq!(check(&t, b"12345678", Some(&crc)), Err(S3Error::BadDigest));
        assert!(matches!(
            check(&t, b"1", None),
            Err(S3Error::InvalidRequest(_))
        ));
        assert!(matches!(
            check(&t, b"1", Some("AAAA")),
            Err(S3Error::InvalidRequest(_))
        ));
        for (k, v) in [
            ("x-amz-checksum-sha512", "AAAA"),
            ("x-amz-checksum-xxhash64", "AAAAAAAAAAA="),
            ("x-amz-trailer", "x-amz-checksum-md5"),
        ] {
            assert!(
                matches!(
                    PayloadChecksum::from_headers(&headers(&[(k, v)])),
                    Err(S3Error::InvalidRequest(m)) if m.contains("not supported")
                ),
                "{k}"
            );
        }
        // Settings of the family are no checksum values.
        assert!(
            PayloadChecksum::from_headers(&headers(&[("x-amz-checksum-mode", "ENABLED")]))
                .unwrap()
                .is_none()
        );
        let bad_header = headers(&[("x-amz-checksum-crc32", "not base64!")]);
        assert!(matches!(
            PayloadChecksum::from_headers(&bad_header),
            Err(S3Error::InvalidRequest(_))
        ));
        let two = headers(&[
            ("x-amz-checksum-crc32", &crc),
            ("x-amz-checksum-crc32c", &crc),
        ]);
        assert!(matches!(
            PayloadChecksum::from_headers(&two),
            Err(S3Error::InvalidRequest(_))
        ));
        assert!(
            PayloadChecksum::from_headers(&headers(&[("x-amz-trailer", "x-amz-meta-x")]))
                .unwrap()
                .is_none()
        );
        assert!(PayloadChecksum::from_headers(&HeaderMap::new())
            .unwrap()
            .is_none());
    }
}
