//! S3 over HTTPS: the certificate and key come from PEM files, held in a [`ReloadingCert`]
//! that rustls asks for the certificate at every handshake. [`ReloadingCert::reload`] (run on
//! SIGHUP by [`spawn_sighup_reloader`]) reads the files again: new handshakes get the new
//! certificate, open connections keep the session they have, and a file that does not load
//! (missing, not PEM, key not matching the certificate) leaves the old certificate in place
//! and is logged.
//!
//! rustls with the `ring` provider, chosen per config (no process-wide default is installed,
//! so other TLS users in the process are unaffected). TLS 1.2 and 1.3, ALPN `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or holds no PEM item of the kind needed.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("certificate {cert} with key {key}: {source}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The refusal.
        source: rustls::Error,
    },
    /// The server configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// A self-signed certificate could not be made or written.
    #[error("self-signed certificate: {0}")]
    SelfSigned(String),
}

/// ring's provider. rustls 0.23.48 deprecates it (no post-quantum key exchange); the fuzz
/// workspace's lock already has that version, so the allowance keeps `-D warnings` builds
/// green until the choice of provider is revisited (TODO.md, Known gaps).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read a certificate chain (leaf first) and its private key from PEM files.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, what: String| TlsError::File {
        path: path.to_path_buf(),
        what,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| file_err(cert, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no CERTIFICATE in the file".into()));
    }
    let key_pem = std::fs::read(key).map_err(|e| file_err(key, e.to_string()))?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| file_err(key, format!("no private key: {e}")))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|source| TlsError::Key {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

/// The serving certificate, replaceable while the server runs.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Load `cert` and `key` (PEM); fails if either does not load.
    pub fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, TlsError> {
        let ck = load_certified_key(cert, key)?;
        Ok(ReloadingCert {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
        })
    }

    /// Read the files again and serve what they hold from the next handshake on. On error the
    /// old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
        Ok(())
    }

    /// The certificate chain served now (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The rustls server configuration over `cert` (no client certificates; ALPN `http/1.1`).
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Reload `cert` on every SIGHUP until `shutdown` turns true. A failed reload is logged and
/// the old certificate kept.
pub fn spawn_sighup_reloader(
    cert: Arc<ReloadingCert>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    anode_common::on_sighup(shutdown, move || reload_logged(&cert))
}

/// [`ReloadingCert::reload`] with the outcome logged.
pub fn reload_logged(cert: &ReloadingCert) {
    match cert.reload() {
        Ok(()) => tracing::info!(
            cert = %cert.cert_path.display(),
            "S3 TLS certificate reloaded"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "S3 TLS certificate reload failed; still serving the previous certificate"
        ),
    }
}

/// A self-signed certificate for `names` (DNS names or IP addresses): (certificate PEM, key
/// PEM). For development (`anode dev`) and tests only.
pub fn self_signed_pem(names: &[String]) -> Result<(String, String), TlsError> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// `DIR/cert.pem` and `DIR/key.pem`, made self-signed for `names` when either is missing
/// (the key file readable by the owner only).
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let io = |e: std::io::Error| TlsError::SelfSigned(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let (cert_pem, key_pem) = self_signed_pem(names)?;
    write_private(&key, key_pem.as_bytes()).map_err(io)?;
    std::fs::write(&cert, cert_pem).map_err(io)?;
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = self_signed_pem(&[name.to_string()]).unwrap();
        let (cp, kp) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cp, c).unwrap();
        std::fs::write(&kp, k).unwrap();
        (cp, kp)
    }

    #[test]
    fn bad_files_are_refused_and_a_bad_reload_keeps_the_old_cert() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = write_pair(dir.path(), "one.test");
        let (c2, k2) = write_pair(dir.path(), "two.test");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            load_certified_key(&junk, &k1),
            Err(TlsError::File { .. })
        ));
        assert!(matches!(
            load_certified_key(&c1, &missing),
            Err(TlsError::File { .. })
        ));
        // A key that is not the certificate's.
        assert!(matches!(
            load_certified_key(&c1, &k2),
            Err(TlsError::Key { .. })
        ));
        // Reload keeps serving the old certificate when the new files are bad.
        let live_c = dir.path().join("live.crt");
        let live_k = dir.path().join("live.key");
        std::fs::copy(&c1, &live_c).unwrap();
        std::fs::copy(&k1, &live_k).unwrap();
        let rc = ReloadingCert::load(&live_c, &live_k).unwrap();
        let first = rc.chain();
        std::fs::copy(&c2, &live_c).unwrap(); // cert replaced, key not yet: mismatch
        assert!(rc.reload().is_err());
        assert_eq!(rc.chain(), first);
        std::fs::write(&live_c, "garbage").unwrap();
        assert!(rc.reload().is_err());
        assert_eq!(rc.chain(), first);
        std::fs::copy(&c2, &live_c).unwrap();
        std::fs::copy(&k2, &live_k).unwrap();
        rc.reload().unwrap();
        assert_ne!(rc.chain(), first);
    }
}
