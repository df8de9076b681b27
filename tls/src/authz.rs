//! The role check at the service edge: a tower layer on every tonic server.
//!
//! For each RPC it reads the peer certificate the TLS handshake verified
//! (`TlsConnectInfo::peer_certs`), derives the [`PeerIdentity`], checks
//! [`anode_meta::access::allowed`] for the method's path, and either answers
//! `PERMISSION_DENIED` (with an `ErrorDetail`, logged with the identity and the method) or puts
//! the identity into the request extensions and calls the service. Without TLS the layer
//! passes every call through and handlers see no identity.
//!
//! Audit: every call by the operator role ([`Role::Admin`], `anode ctl`) and every refused
//! call is logged on the tracing target `audit` with the peer, the method, the decision and,
//! for admin calls, the gRPC status of the answer (when the handler failed, the status is in
//! the response headers; `0` means the handler answered, a streamed error would come later in
//! the trailers). Without TLS there is no identity, so nothing is audited here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use anode_meta::access::{allowed, PeerIdentity, Role};
use anode_proto::{ErrorCode, ErrorDetail};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The layer stack of a tonic server built with [`crate::Tls::server_builder`] and
/// `.layer(tls.authz_layer())` (the type its `Router` carries).
pub type ServerLayers = tower::layer::util::Stack<AuthzLayer, tower::layer::util::Identity>;

/// The layer; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct AuthzLayer {
    enforce: bool,
}

impl AuthzLayer {
    /// A layer that checks every call (`enforce`, with TLS) or passes them through.
    pub fn new(enforce: bool) -> Self {
        AuthzLayer { enforce }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz {
            inner,
            enforce: self.enforce,
        }
    }
}

/// The service [`AuthzLayer`] wraps around a server's routes.
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    enforce: bool,
}

/// Why a call was refused, for the log and the status message.
fn decide<B>(req: &http::Request<B>) -> Result<PeerIdentity, String> {
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|c| c.peer_certs())
        .ok_or_else(|| "no client certificate".to_string())?;
    let leaf = certs
        .first()
        .ok_or_else(|| "no client certificate".to_string())?;
    let id = crate::identity::peer_identity(leaf).map_err(|e| e.to_string())?;
    let path = req.uri().path();
    if allowed(id.role, path) {
        Ok(id)
    } else {
        Err(format!("{id} may not call {path}"))
    }
}

/// The PERMISSION_DENIED answer for `path` with `why`.
pub fn denied_status(path: &str, why: &str) -> tonic::Status {
    ErrorDetail::new(ErrorCode::PermissionDenied, why.to_string())
        .with_resource(path)
        .to_status()
}

/// The `grpc-status` of a trailers-only answer (a handler's error), else 0.
fn grpc_status_of(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authz<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if !self.enforce {
            return Box::pin(self.inner.call(req));
        }
        match decide(&req) {
            Ok(id) => {
                tracing::trace!(peer = %id, method = req.uri().path(), "authorized");
                let audited = (id.role == Role::Admin)
                    .then(|| (id.to_string(), req.uri().path().to_string()));
                req.extensions_mut().insert(id);
                let call = self.inner.call(req);
                let Some((peer, method)) = audited else {
                    return Box::pin(call);
                };
                Box::pin(async move {
                    let started = std::time::Instant::now();
                    let resp = call.await;
                    let grpc_status = match &resp {
                        Ok(r) => grpc_status_of(r.headers()),
                        Err(_) => -1,
                    };
                    tracing::info!(
                        target: "audit",
                        peer = %peer,
                        method = %method,
                        decision = "allow",
                        grpc_status,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "admin rpc"
                    );
                    resp
                })
            }
            Err(why) => {
                let path = req.uri().path().to_string();
                tracing::warn!(
                    target: "audit",
                    method = %path,
                    decision = "deny",
                    reason = %why,
                    "permission denied"
                );
                let resp = denied_status(&path, &why).into_http();
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}
