//! The Toxiproxy 2.x HTTP API on hyper: routing, body parsing, status codes.
//! All decisions live in [`crate::registry::Registry`]; this module only moves JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::model::{PopulateBody, ProxyCreate, ProxyUpdate, ToxicRequest};
use crate::registry::Registry;

/// The version `GET /version` reports: the Toxiproxy API level this server follows.
pub const API_VERSION: &str = "2.12.0";

/// Largest request body accepted.
const BODY_BYTES_MAX: usize = 1 << 20;

/// A reply body.
enum Body {
    Json(Value),
    Text(&'static str),
    Empty,
}

/// A successful reply: status and body.
type Reply = (StatusCode, Body);

/// Serve the API on `listener` until `shutdown` turns true; then stop every proxy.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let registry = registry.clone();
                tokio::spawn(serve_connection(stream, peer, registry));
            }
        }
    }
    registry.shutdown().await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    registry: Arc<Registry>,
) {
    let _ = stream.set_nodelay(true);
    let svc = hyper::service::service_fn(move |req| {
        let registry = registry.clone();
        async move { Ok::<_, Infallible>(handle(&registry, req).await) }
    });
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await
    {
        tracing::debug!(%peer, %err, "api connection ended");
    }
}

/// Answer one request: route it, then render the result or the error as JSON.
pub async fn handle(registry: &Registry, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = match read_body(req).await {
        Ok(body) => route(registry, &method, &path, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((status, body)) => respond(status, body),
        Err(err) => {
            tracing::debug!(%method, %path, %err, "api error");
            let status =
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            respond(status, Body::Json(err.to_json()))
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::BadRequest(format!("reading body: {e}")))
}

async fn route(
    registry: &Registry,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is_update = *method == Method::POST || *method == Method::PATCH;
    let ok = |v: Value| Ok((StatusCode::OK, Body::Json(v)));
    match (segments.as_slice(), method) {
        (["version"], &Method::GET) => Ok((StatusCode::OK, Body::Text(API_VERSION))),
        (["reset"], &Method::POST) => {
            registry.reset().await?;
            Ok((StatusCode::NO_CONTENT, Body::Empty))
        }
        (["populate"], &Method::POST) => {
            let list = parse::<PopulateBody>(body)?.into_list();
            Ok((
                StatusCode::CREATED,
                Body::Json(registry.populate(list).await?),
            ))
        }
        (["proxies"], &Method::GET) => ok(registry.list().await),
        (["proxies"], &Method::POST) => {
            let created = registry.create(parse::<ProxyCreate>(body)?).await?;
            Ok((StatusCode::CREATED, Body::Json(created)))
        }
        (["proxies", name], &Method::GET) => ok(registry.get(name).await?),
        (["proxies", name], _) if is_update => {
            ok(registry.update(name, parse::<ProxyUpdate>(body)?).await?)
        }
        (["proxies", name], &Method::DELETE) => {
            registry.delete(name).await?;
            Ok((StatusCode::NO_CONTENT, Body::Empty))
        }
        (["proxies", name, "toxics"], &Method::GET) => ok(registry.toxics(name).await?),
        (["proxies", name, "toxics"], &Method::POST) => ok(registry
            .add_toxic(name, parse::<ToxicRequest>(body)?)
            .await?),
        (["proxies", name, "toxics", toxic], &Method::GET) => {
            ok(registry.toxic(name, toxic).await?)
        }
        (["proxies", name, "toxics", toxic], _) if is_update => {
            let req = parse::<ToxicRequest>(body)?;
            ok(registry.update_toxic(name, toxic, req).await?)
        }
        (["proxies", name, "toxics", toxic], &Method::DELETE) => {
            registry.remove_toxic(name, toxic).await?;
            Ok((StatusCode::NO_CONTENT, Body::Empty))
        }
        _ => Err(ApiError::NoRoute),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))
}

/// `GET /version` answers plain text (as Toxiproxy 2.x before 2.6 did, and as
/// `toxiproxy_rust::Client::version` reads it); everything else JSON.
fn respond(status: StatusCode, body: Body) -> Response<Full<Bytes>> {
    let (bytes, ctype) = match body {
        Body::Text(t) => (Bytes::from_static(t.as_bytes()), "text/plain"),
        Body::Empty => (Bytes::new(), "application/json"),
        Body::Json(v) => (Bytes::from(v.to_string()), "application/json"),
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
