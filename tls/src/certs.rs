//! The cluster CA and node certificates.
//!
//! A CA directory holds `ca.crt` and `ca.key` ([`init_ca`]). A node's certs directory holds
//! `ca.crt` (the trust bundle: one or more CA certificates), `node.crt` and `node.key`
//! ([`issue`]). Keys are ECDSA P-256, written 0600. Every file is written crash-safely: a
//! temporary file, fsync, rename, fsync of the directory.
//!
//! A node certificate carries CN `<role>-<id>`, the URI SAN `anode://<role>/<id>` (its
//! identity), the DNS SAN `<role>.anode` (clients connect to a role by that name, so a server
//! is checked for its role whatever its address) and any extra DNS or IP SANs the operator
//! asks for; it is good for both server and client authentication.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anode_meta::access::{PeerIdentity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::TlsError;

/// The CA certificate (and, in a node's certs directory, the trust bundle).
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key (only in the CA directory).
pub const CA_KEY: &str = "ca.key";
/// A node's certificate.
pub const NODE_CERT: &str = "node.crt";
/// A node's private key.
pub const NODE_KEY: &str = "node.key";
/// Validity of a new CA.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Default validity of a node certificate.
pub const DEFAULT_NODE_VALIDITY_DAYS: u32 = 365;
/// Certificates start to be valid this long before they are made (clock skew).
const BACKDATE: Duration = Duration::hours(1);

/// Write `bytes` to `path` crash-safely: temporary file in the same directory, fsync, rename,
/// fsync of the directory. `mode` sets the Unix permissions of the new file.
pub fn write_file_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(TlsError::io(&tmp))?;
    f.write_all(bytes).map_err(TlsError::io(&tmp))?;
    f.sync_all().map_err(TlsError::io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(TlsError::io(path))?;
    anode_common::fsutil::fsync_dir(dir).map_err(TlsError::io(dir))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(TlsError::io(path))
}

fn refuse_existing(paths: &[PathBuf]) -> Result<(), TlsError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(TlsError::Exists(p.clone())),
        None => Ok(()),
    }
}

/// Create a new cluster CA in `dir` (`ca.crt`, `ca.key`). Refuses to overwrite either file.
pub fn init_ca(dir: &Path) -> Result<(), TlsError> {
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&[cert.clone(), key.clone()])?;
    anode_common::fsutil::create_dir_all_durable(dir).map_err(TlsError::io(dir))?;
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        format!("anode-ca-{}", now.unix_timestamp()),
    );
    p.distinguished_name
        .push(DnType::OrganizationName, "Anode cluster");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(CA_VALIDITY_DAYS.into());
    let kp = KeyPair::generate()?;
    let ca = p.self_signed(&kp)?;
    write_file_durable(&key, kp.serialize_pem().as_bytes(), 0o600)?;
    write_file_durable(&cert, ca.pem().as_bytes(), 0o644)
}

/// What [`issue`] makes.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The CA directory (`ca.crt`, `ca.key`).
    pub ca_dir: PathBuf,
    /// The identity to certify.
    pub identity: PeerIdentity,
    /// Extra SANs (an IP address or a DNS name each).
    pub extra_sans: Vec<String>,
    /// Validity in days.
    pub days: u32,
    /// The output directory (`ca.crt`, `node.crt`, `node.key`).
    pub out: PathBuf,
}

/// Issue a node certificate: writes `OUT/ca.crt` (a copy of the CA's `ca.crt`, which may be a
/// bundle of several CAs), `OUT/node.crt` and `OUT/node.key` (0600). Refuses to overwrite
/// `node.crt` or `node.key`.
pub fn issue(req: &IssueRequest) -> Result<(), TlsError> {
    let (cert_path, key_path) = (req.out.join(NODE_CERT), req.out.join(NODE_KEY));
    refuse_existing(&[cert_path.clone(), key_path.clone()])?;
    let ca_pem = read(&req.ca_dir.join(CA_CERT))?;
    let ca_key = KeyPair::from_pem(&read(&req.ca_dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let params = node_params(&req.identity, &req.extra_sans, req.days)?;
    let kp = KeyPair::generate()?;
    let cert = params.signed_by(&kp, &issuer)?;
    anode_common::fsutil::create_dir_all_durable(&req.out).map_err(TlsError::io(&req.out))?;
    write_file_durable(&key_path, kp.serialize_pem().as_bytes(), 0o600)?;
    write_file_durable(&cert_path, cert.pem().as_bytes(), 0o644)?;
    write_file_durable(&req.out.join(CA_CERT), ca_pem.as_bytes(), 0o644)
}

fn node_params(
    id: &PeerIdentity,
    extra_sans: &[String],
    days: u32,
) -> Result<CertificateParams, TlsError> {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, id.common_name());
    p.subject_alt_names = vec![
        SanType::URI(id.uri().try_into()?),
        SanType::DnsName(id.role.dns_name().try_into()?),
    ];
    for s in extra_sans {
        p.subject_alt_names.push(match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.clone().try_into()?),
        });
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(days.max(1).into());
    Ok(p)
}

/// Make a whole test or development layout under `dir`: a CA in `dir/ca` and one certs
/// directory per `(role, id)` in `dir/<role>-<id>` (reused when it already has a certificate).
/// Returns `dir/<role>-<id>` for each entry, in order.
pub fn ensure_layout(dir: &Path, nodes: &[(Role, &str)]) -> Result<Vec<PathBuf>, TlsError> {
    let ca_dir = dir.join("ca");
    if !ca_dir.join(CA_KEY).exists() {
        init_ca(&ca_dir)?;
    }
    let mut out = Vec::new();
    for (role, id) in nodes {
        let identity = PeerIdentity::new(*role, id)?;
        let node_dir = dir.join(identity.common_name());
        if !node_dir.join(NODE_CERT).exists() {
            issue(&IssueRequest {
                ca_dir: ca_dir.clone(),
                identity,
                extra_sans: vec![],
                days: DEFAULT_NODE_VALIDITY_DAYS,
                out: node_dir.clone(),
            })?;
        }
        out.push(node_dir);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_then_issue_writes_the_files_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init_ca(&ca).unwrap();
        assert!(matches!(init_ca(&ca), Err(TlsError::Exists(_))));
        let mode = std::fs::metadata(ca.join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let req = IssueRequest {
            ca_dir: ca.clone(),
            identity: PeerIdentity::new(Role::Master, "2").unwrap(),
            extra_sans: vec!["10.0.0.2".into(), "m2.example".into()],
            days: 30,
            out: dir.path().join("m2"),
        };
        issue(&req).unwrap();
        assert!(matches!(issue(&req), Err(TlsError::Exists(_))));
        let key_mode = std::fs::metadata(req.out.join(NODE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let pem = std::fs::read_to_string(req.out.join(NODE_CERT)).unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let id = crate::identity::peer_identity(&der).unwrap();
        assert_eq!(id, req.identity);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap());
        for want in ["master.anode", "m2.example", "anode://master/2"] {
            assert!(sans.contains(want), "{want} missing from {sans}");
        }
        assert_eq!(
            std::fs::read(req.out.join(CA_CERT)).unwrap(),
            std::fs::read(ca.join(CA_CERT)).unwrap()
        );
    }
}
