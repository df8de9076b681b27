//! Anode node identity and mutual TLS.
//!
//! - [`certs`]: the cluster CA and node certificates (`anode ctl certs init|issue`), written
//!   crash-safely.
//! - [`identity`]: the [`PeerIdentity`] a certificate carries (URI SAN `anode://<role>/<id>`).
//! - [`config`]: the `--certs-dir` / `--insecure-no-tls` flags ([`TlsArgs`]) and the loaded
//!   [`Tls`] every gRPC server and client is built with. Servers require a client
//!   certificate signed by the cluster CA; clients check the server's role by connecting with
//!   the role's DNS name (`master.anode`, `chunkserver.anode`).
//! - [`authz`]: the tower layer that checks each RPC against
//!   [`anode_meta::access::allowed`] before any handler runs, and hands handlers the caller's
//!   [`PeerIdentity`] in the request extensions.
//!
//! Architecture invariant: identity comes only from a certificate the TLS handshake verified;
//! every RPC of a TLS server passes the role check once, at the edge.

pub mod authz;
pub mod certs;
pub mod config;
pub mod identity;
pub mod limits;

pub use anode_meta::access::{PeerIdentity, Role};
pub use authz::AuthzLayer;
pub use config::{Tls, TlsArgs};
pub use limits::ServerLimits;

use std::path::PathBuf;

/// Errors of certificate handling and TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Neither `--certs-dir` nor `--insecure-no-tls` was given.
    #[error(
        "no TLS configuration: pass --certs-dir DIR (env ANODE_CERTS_DIR) holding ca.crt, \
         node.crt and node.key, made with `anode ctl certs init CA_DIR` and `anode ctl certs \
         issue --ca CA_DIR --role ROLE --id N --out DIR`; or --insecure-no-tls for experiments \
         on a trusted machine (plain text, no authentication)"
    )]
    NotConfigured,
    /// Both `--certs-dir` and `--insecure-no-tls`.
    #[error("--certs-dir and --insecure-no-tls exclude each other")]
    Conflicting,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file that must not be overwritten exists.
    #[error("{0} exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// Certificate generation or CA parsing failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A certificate could not be parsed or carries no valid Anode identity.
    #[error("certificate identity: {0}")]
    Identity(String),
    /// A role or id the identity rules refuse.
    #[error(transparent)]
    BadIdentity(#[from] anode_meta::access::IdentityError),
    /// tonic refused the TLS or endpoint configuration.
    #[error("tls transport setup: {0}")]
    Transport(String),
}

impl TlsError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TlsError {
        let path = path.into();
        move |source| TlsError::Io { path, source }
    }
}
