//! The TLS setup of a process: flags, the loaded certificates, and the tonic server and
//! endpoint configurations built from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anode_meta::access::{PeerIdentity, Role};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::certs::{CA_CERT, NODE_CERT, NODE_KEY};
use crate::TlsError;

/// Bound on a TLS handshake at a server.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS flags every command that speaks gRPC takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Directory with this node's `ca.crt` (trust bundle), `node.crt` and `node.key`
    /// (`anode ctl certs issue`). Every gRPC connection then uses mutual TLS.
    #[arg(long, env = "ANODE_CERTS_DIR", global = true)]
    pub certs_dir: Option<PathBuf>,
    /// Plain-text gRPC without authentication, for experiments on a trusted machine only.
    /// Logs a warning at every start. The environment variable takes 1/0, true/false, yes/no,
    /// on/off.
    #[arg(
        long,
        env = "ANODE_INSECURE_NO_TLS",
        global = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure_no_tls: bool,
}

impl TlsArgs {
    /// Flags naming `dir`.
    pub fn certs(dir: impl Into<PathBuf>) -> TlsArgs {
        TlsArgs {
            certs_dir: Some(dir.into()),
            insecure_no_tls: false,
        }
    }

    /// Load what the flags name. Neither flag (or both) is an error that says how to make
    /// certificates; `--insecure-no-tls` logs a warning.
    pub fn load(&self) -> Result<Tls, TlsError> {
        match (&self.certs_dir, self.insecure_no_tls) {
            (Some(_), true) => Err(TlsError::Conflicting),
            (Some(dir), false) => Tls::load(dir),
            (None, true) => Ok(Tls::insecure()),
            (None, false) => Err(TlsError::NotConfigured),
        }
    }

    /// [`TlsArgs::load`], then check that the certificate is of `role` (and, given `id`, of
    /// that id): a master must hold its own master certificate, a chunkserver a chunkserver
    /// one, and so on.
    pub fn load_as(&self, role: Role, id: Option<&str>) -> Result<Tls, TlsError> {
        let tls = self.load()?;
        if let Some(me) = tls.identity() {
            let id_ok = id.is_none_or(|id| id == me.id);
            if me.role != role || !id_ok {
                let want = id.map_or(role.to_string(), |id| format!("{role}-{id}"));
                return Err(TlsError::Identity(format!(
                    "this process runs as {want} but its certificate is {me}"
                )));
            }
        }
        Ok(tls)
    }
}

/// A loaded certs directory.
pub struct Material {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    identity: PeerIdentity,
    dir: PathBuf,
}

/// How a process speaks gRPC: mutual TLS with its certificate, or plain text.
#[derive(Clone)]
pub enum Tls {
    /// Mutual TLS with the certificates of a certs directory.
    Mutual(Arc<Material>),
    /// Plain text, no authentication (`--insecure-no-tls`).
    Insecure,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tls::Mutual(m) => write!(f, "Tls::Mutual({} from {})", m.identity, m.dir.display()),
            Tls::Insecure => f.write_str("Tls::Insecure"),
        }
    }
}

impl Tls {
    /// Load `dir/ca.crt`, `dir/node.crt`, `dir/node.key` and read the identity of the
    /// certificate.
    pub fn load(dir: &Path) -> Result<Tls, TlsError> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(TlsError::io(p))
        };
        let (ca_pem, cert_pem, key_pem) = (read(CA_CERT)?, read(NODE_CERT)?, read(NODE_KEY)?);
        let der = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|e| TlsError::Identity(format!("{}: {e}", dir.join(NODE_CERT).display())))?
            .1
            .contents;
        let identity = crate::identity::peer_identity(&der)?;
        tracing::info!(%identity, certs_dir = %dir.display(), "mutual TLS on gRPC");
        Ok(Tls::Mutual(Arc::new(Material {
            ca_pem,
            cert_pem,
            key_pem,
            identity,
            dir: dir.to_path_buf(),
        })))
    }

    /// Plain text; logs a warning.
    pub fn insecure() -> Tls {
        tracing::warn!(
            "--insecure-no-tls: gRPC is plain text and unauthenticated; anyone who can reach \
             the ports can read and change everything. Never use this on a shared network."
        );
        Tls::Insecure
    }

    /// This node's identity (`None` without TLS).
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match self {
            Tls::Mutual(m) => Some(&m.identity),
            Tls::Insecure => None,
        }
    }

    /// Whether gRPC is encrypted and authenticated.
    pub fn is_mutual(&self) -> bool {
        matches!(self, Tls::Mutual(_))
    }

    /// The server side: this node's certificate, and a client certificate signed by one of
    /// the CAs of the trust bundle required of every caller. `None` without TLS.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        match self {
            Tls::Mutual(m) => Some(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(&m.cert_pem, &m.key_pem))
                    .client_ca_root(Certificate::from_pem(&m.ca_pem))
                    .timeout(HANDSHAKE_TIMEOUT),
            ),
            Tls::Insecure => None,
        }
    }

    /// A tonic server builder with this TLS setup applied.
    pub fn server_builder(&self) -> Result<tonic::transport::Server, TlsError> {
        let builder = tonic::transport::Server::builder();
        match self.server_config() {
            Some(cfg) => builder
                .tls_config(cfg)
                .map_err(|e| TlsError::Transport(e.to_string())),
            None => Ok(builder),
        }
    }

    /// The authorization layer for this node's servers ([`crate::authz`]).
    pub fn authz_layer(&self) -> crate::AuthzLayer {
        crate::AuthzLayer::new(self.is_mutual())
    }

    /// An endpoint for a server of `role` at `addr` (`host:port`, any `scheme://` is dropped).
    /// With TLS: `https://`, this node's certificate, the trust bundle, and the server must
    /// present a certificate for `<role>.anode`; without: `http://`.
    pub fn endpoint(&self, addr: &str, role: Role) -> Result<Endpoint, TlsError> {
        let hostport = addr.trim();
        let hostport = hostport
            .split_once("://")
            .map_or(hostport, |(_, rest)| rest);
        let bad = |e: tonic::transport::Error| TlsError::Transport(format!("{addr:?}: {e}"));
        match self {
            Tls::Mutual(m) => {
                let cfg = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&m.ca_pem))
                    .identity(Identity::from_pem(&m.cert_pem, &m.key_pem))
                    .domain_name(role.dns_name());
                Endpoint::from_shared(format!("https://{hostport}"))
                    .map_err(bad)?
                    .tls_config(cfg)
                    .map_err(bad)
            }
            Tls::Insecure => Endpoint::from_shared(format!("http://{hostport}")).map_err(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_silent_plain_text_and_the_certificate_must_match_the_process() {
        let none = TlsArgs::default();
        let err = none.load().unwrap_err();
        assert!(matches!(err, TlsError::NotConfigured));
        assert!(err.to_string().contains("anode ctl certs init"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let m1 = crate::certs::ensure_layout(dir.path(), &[(Role::Master, "1")])
            .unwrap()
            .remove(0);
        let both = TlsArgs {
            certs_dir: Some(m1.clone()),
            insecure_no_tls: true,
        };
        assert!(matches!(both.load(), Err(TlsError::Conflicting)));
        let args = TlsArgs::certs(&m1);
        let tls = args.load_as(Role::Master, Some("1")).unwrap();
        assert_eq!(tls.identity().unwrap().to_string(), "master-1");
        assert!(args.load_as(Role::Master, Some("2")).is_err(), "wrong id");
        assert!(args.load_as(Role::Chunkserver, None).is_err(), "wrong role");
        let insecure = TlsArgs {
            certs_dir: None,
            insecure_no_tls: true,
        };
        assert!(!insecure
            .load_as(Role::Master, Some("1"))
            .unwrap()
            .is_mutual());
        assert!(TlsArgs::certs(dir.path().join("missing")).load().is_err());
    }

    #[test]
    fn endpoints_use_https_with_tls_and_drop_any_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::certs::ensure_layout(dir.path(), &[(Role::Client, "1")])
            .unwrap()
            .remove(0);
        let tls = Tls::load(&c).unwrap();
        for addr in [
            "127.0.0.1:7001",
            "http://127.0.0.1:7001",
            " https://127.0.0.1:7001 ",
        ] {
            let ep = tls.endpoint(addr, Role::Master).unwrap();
            assert_eq!(ep.uri().to_string(), "https://127.0.0.1:7001/");
            let ep = Tls::Insecure.endpoint(addr, Role::Master).unwrap();
            assert_eq!(ep.uri().to_string(), "http://127.0.0.1:7001/");
        }
    }
}
