//! Process plumbing shared by every Anode server process: the admin HTTP endpoint
//! (`GET /metrics`, `GET /health`, and the pages a role adds through [`AdminRoutes`]), logs
//! ([`logging`]: JSON or text, filter reloaded on SIGHUP), shutdown signals, and the start-up
//! steps of the binaries ([`cli`]: `--config FILE`, abort on panic).
//!
//! Architecture invariant: nothing here knows about S3, raft or chunks.

pub mod admin_html;
pub mod cli;
pub mod fsutil;
pub mod logging;
pub mod otel;

/// The tracing span of one incoming gRPC call (for tonic's `Server::trace_fn`): carries the
/// caller's `anode-request-id` (an S3 request id from a gateway), so every log line of the
/// call names it; a debug event marks each call. With traces on ([`otel`]) the span is a
/// child of the caller's W3C `traceparent` (the gateway's request span), or a new root.
pub fn rpc_span(req: &hyper::Request<()>) -> tracing::Span {
    let id = req
        .headers()
        .get("anode-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!("rpc", path = %req.uri().path(), request_id = %id);
    otel::set_parent_from_headers(&span, req.headers());
    span.in_scope(|| tracing::debug!("rpc"));
    span
}

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Errors of the shared plumbing.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    /// Binding the admin listener failed.
    #[error("admin listener on {addr}: {source}")]
    Bind {
        /// Address we tried to bind.
        addr: SocketAddr,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The `--config` file could not be read.
    #[error("read config {path}: {source}")]
    ReadConfig {
        /// Path given.
        path: String,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The `--config` file is not a TOML table.
    #[error("parse config {path}: {source}")]
    ParseConfig {
        /// Path given.
        path: String,
        /// Parse error.
        source: toml::de::Error,
    },
    /// The OTLP trace exporter could not be set up.
    #[error("traces to {endpoint}: {reason}")]
    Otel {
        /// The endpoint configured.
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// A log filter could not be parsed or installed.
    #[error("log filter {spec:?}: {reason}")]
    LogFilter {
        /// The filter asked for.
        spec: String,
        /// Why it was refused.
        reason: String,
    },
}

/// One answer of an extra admin route: status code, content type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPage {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl AdminPage {
    /// A 200 answer.
    pub fn ok(content_type: &'static str, body: String) -> Self {
        AdminPage {
            status: 200,
            content_type,
            body,
        }
    }
}

/// The pages a role adds to its admin port (the master's status page and JSON, every node's
/// `/`). Called for `GET` paths other than `/metrics` and `/health`, on a blocking thread, so
/// an implementation may read local state synchronously; `None` answers 404.
pub trait AdminRoutes: Send + Sync + 'static {
    /// The answer for `path` (without the query string).
    fn get(&self, path: &str) -> Option<AdminPage>;
}

/// No extra routes.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoutes;

impl AdminRoutes for NoRoutes {
    fn get(&self, _path: &str) -> Option<AdminPage> {
        None
    }
}

/// Health flag a process flips to `true` once it serves and back to `false` while draining.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<AtomicBool>);

impl Health {
    /// A new flag, initially not serving.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set whether the process serves.
    pub fn set(&self, serving: bool) {
        self.0.store(serving, Ordering::SeqCst);
    }
    /// Whether the process serves.
    pub fn is_serving(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serve `GET /metrics` (Prometheus text from the default registry) and `GET /health`
/// (200 when `health` is set, 503 otherwise) on `addr` until `shutdown` turns true.
/// Returns the bound address (useful with port 0).
pub async fn serve_admin(
    addr: SocketAddr,
    health: Health,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, CommonError> {
    serve_admin_with(addr, health, Arc::new(NoRoutes), shutdown).await
}

/// [`serve_admin`] plus the pages of `routes` (every other `GET` path).
pub async fn serve_admin_with(
    addr: SocketAddr,
    health: Health,
    routes: Arc<dyn AdminRoutes>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, CommonError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CommonError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let health = health.clone();
                    let routes = routes.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let health = health.clone();
                            let routes = routes.clone();
                            async move {
                                Ok::<_, Infallible>(admin_response(&req, &health, routes).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        }
    });
    Ok(local)
}

async fn admin_response(
    req: &Request<Incoming>,
    health: &Health,
    routes: Arc<dyn AdminRoutes>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let extra = match path.as_str() {
        "/metrics" | "/health" => None,
        _ if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD => None,
        _ => tokio::task::spawn_blocking(move || routes.get(&path))
            .await
            .ok()
            .flatten(),
    };
    if let Some(page) = extra {
        return page_response(
            StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            page.body,
            page.content_type,
        );
    }
    let (status, body, ctype) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics_text(), "text/plain; version=0.0.4"),
        "/health" if health.is_serving() => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
        "/health" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable\n".to_string(),
            "text/plain",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_string(),
            "text/plain",
        ),
    };
    page_response(status, body, ctype)
}

fn page_response(status: StatusCode, body: String, ctype: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    // A read-only status port: nothing here may be cached by a proxy or framed by a page.
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    resp.headers_mut().insert(
        hyper::header::X_FRAME_OPTIONS,
        hyper::header::HeaderValue::from_static("DENY"),
    );
    resp
}

/// Render the default Prometheus registry as text.
pub fn metrics_text() -> String {
    let families = prometheus::gather();
    prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .unwrap_or_default()
}

/// Install a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default `info`),
/// JSON unless stderr is a terminal ([`logging::init_logging`] with no flags). Safe to call
/// more than once (later calls are ignored).
pub fn init_tracing() {
    if let Err(e) = logging::init_logging(&logging::LogOptions::default()) {
        eprintln!("logging: {e}; using RUST_LOG=info");
        let _ = logging::init_logging(&logging::LogOptions {
            format: None,
            level: Some("info".into()),
            otel: None,
        });
    }
}

/// A shutdown controller: the first SIGTERM/SIGINT flips the returned watch to `true`
/// (graceful drain); a second signal exits the process at once with status 130.
pub fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_signal().await;
        tracing::info!("signal received: draining (a second signal exits at once)");
        let _ = tx.send(true);
        wait_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    rx
}

async fn wait_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we never drain gracefully; park forever.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Run `reload` on every SIGHUP until `shutdown` turns true (beside the log filter reload and
/// the gateway's certificate reload, which listen for the same signal). `reload` re-reads
/// what it can change at run time and logs what it did.
pub fn on_sighup<F>(mut shutdown: watch::Receiver<bool>, mut reload: F) -> std::io::Result<()>
where
    F: FnMut() + Send + 'static,
{
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() { return; }
                    reload();
                }
                changed = shutdown.changed() => {
                    // A dropped sender ends the loop too (no spinning on a closed channel).
                    if changed.is_err() || *shutdown.borrow() { return; }
                }
            }
        }
    });
    Ok(())
}

/// Milliseconds since the Unix epoch from the system clock. Only drivers call this; state
/// machines receive time inside commands.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET path` on `addr`; the whole response as text.
    async fn http_get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn admin_serves_health_and_metrics() {
        let health = Health::new();
        let (_tx, rx) = watch::channel(false);
        let addr = serve_admin("127.0.0.1:0".parse().unwrap(), health.clone(), rx)
            .await
            .unwrap();
        let get = |path: &'static str| http_get(addr, path);
        assert!(get("/health").await.starts_with("HTTP/1.1 503"));
        health.set(true);
        assert!(get("/health").await.starts_with("HTTP/1.1 200"));
        let c = prometheus::register_int_counter!("anode_test_counter", "test").unwrap();
        c.inc();
        assert!(get("/metrics").await.contains("anode_test_counter 1"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
    }

    struct Pages;
    impl AdminRoutes for Pages {
        fn get(&self, path: &str) -> Option<AdminPage> {
            match path {
                "/" => Some(AdminPage::ok("text/html", "<p>hi</p>".into())),
                "/health" => Some(AdminPage::ok("text/plain", "shadowed".into())),
                _ => None,
            }
        }
    }

    #[tokio::test]
    async fn admin_serves_extra_routes_without_shadowing_builtins() {
        let health = Health::new();
        let (_tx, rx) = watch::channel(false);
        let addr = serve_admin_with(
            "127.0.0.1:0".parse().unwrap(),
            health.clone(),
            Arc::new(Pages),
            rx,
        )
        .await
        .unwrap();
        let get = |path: &'static str| http_get(addr, path);
        let root = get("/?x=1").await;
        assert!(root.starts_with("HTTP/1.1 200"), "{root}");
        assert!(root.contains("content-type: text/html"), "{root}");
        assert!(root.contains("cache-control: no-store"), "{root}");
        assert!(root.ends_with("<p>hi</p>"), "{root}");
        assert!(get("/health").await.starts_with("HTTP/1.1 503"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
