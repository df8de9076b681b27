//! The identity in a certificate: exactly one URI SAN `anode://<role>/<id>`.

use anode_meta::access::PeerIdentity;
use x509_parser::extensions::GeneralName;

use crate::TlsError;

/// The [`PeerIdentity`] of a DER certificate. The certificate must carry exactly one URI SAN
/// starting with `anode://`, and it must parse ([`PeerIdentity::from_uri`]). Call this only on
/// a certificate the TLS handshake verified against the cluster CA.
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Identity(format!("unparsable certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Identity(format!("bad subjectAltName: {e}")))?
        .ok_or_else(|| TlsError::Identity("no subjectAltName".into()))?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) if u.starts_with("anode://") => Some(*u),
        _ => None,
    });
    let uri = uris
        .next()
        .ok_or_else(|| TlsError::Identity("no anode:// URI SAN".into()))?;
    if uris.next().is_some() {
        return Err(TlsError::Identity("more than one anode:// URI SAN".into()));
    }
    Ok(PeerIdentity::from_uri(uri)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_meta::access::Role;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn identity_from_the_uri_san() {
        let der = cert_with(vec![
            SanType::DnsName("master.anode".try_into().unwrap()),
            uri("https://example.com/x"),
            uri("anode://master/7"),
        ]);
        let id = peer_identity(&der).unwrap();
        assert_eq!((id.role, id.id.as_str()), (Role::Master, "7"));
    }

    #[test]
    fn certificates_without_one_valid_identity_are_refused() {
        let cases = [
            vec![],
            vec![SanType::DnsName("master.anode".try_into().unwrap())],
            vec![uri("anode://master/1"), uri("anode://admin/1")],
            vec![uri("anode://root/1")],
            vec![uri("anode://master/zero")],
        ];
        for sans in cases {
            let der = cert_with(sans.clone());
            assert!(peer_identity(&der).is_err(), "{sans:?} accepted");
        }
        assert!(peer_identity(b"not a certificate").is_err());
        assert!(peer_identity(&[]).is_err());
    }
}
