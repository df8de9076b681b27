//! The hyper driver: accept connections, and per request, in this order:
//! 1. assign a request id (`x-amz-request-id` on every response, field of the tracing span);
//! 2. take a concurrency permit or answer 503 SlowDown at once;
//! 3. resolve bucket and key (virtual-hosted or path style);
//! 4. authenticate (SigV4 or SigV2, header or presigned URL) and resolve the principal (the signing
//!    key's user; disabled and expired keys are refused; an unsigned request is anonymous);
//! 5. route to an [`S3Op`](crate::router::S3Op), authorize it ([`crate::authz::check`], once
//!    per bucket it touches: the target and a copy's source, with the bucket's cached access
//!    configuration and, when only an object ACL could allow it, the object's ACL), and run
//!    its handler with the body wrapped in the decoder the signature mode requires; a GET or
//!    HEAD of a missing key by a caller who may not list the bucket answers 403, not 404,
//!    as S3 does;
//! 6. render any error once as S3 XML (no body for HEAD and 304);
//! 7. when the response body is finished (or dropped), hand one [`audit::Record`] to the
//!    audit log, if one is configured (never blocking: see [`crate::audit`]).
//!
//! The permit and the in-flight gauge are held until the response body is finished, so
//! streaming GETs count against the limit. Shutdown stops accepting, lets connections finish
//! their current request (hyper graceful shutdown), bounded by a drain timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::audit::{self, AuditLog};
use crate::auth::KeyCache;
use crate::authz::{self, Principal};
use crate::aws_chunked::BodyDecoder;
use crate::backend::Backend;
use crate::body::{empty, full, RequestBody, RespBody};
use crate::bucket_cache::{BucketCache, BucketInfo};
use crate::error::S3Error;
use crate::handlers::{self, Ctx};
use crate::http_util::{decode_path, resolve_target, Query};
use crate::metrics::METRICS;
use crate::router;
use crate::sigv2;

#[path = "post_object.rs"]
pub mod post_object;
use crate::sigv4::{self, RequestParts, Verified};
use crate::stall::{MinRate, StallGuard};

/// How long a client may take to send request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The wall clock, injected so tests can pin it.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Gateway settings the request path needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Base domains for virtual-hosted-style requests (`<bucket>.<domain>`).
    pub domains: Vec<String>,
    /// Region reported by GetBucketLocation and HeadBucket.
    pub region: String,
    /// Most requests handled at once; more get 503 SlowDown.
    pub max_concurrency: usize,
    /// Minimum upload rate while a handler waits for body bytes (else `RequestTimeout`).
    pub min_rate: MinRate,
    /// How long a bucket's owner and access configuration are trusted
    /// ([`crate::bucket_cache`]).
    pub bucket_cache_ttl: Duration,
    /// Most ListenBucketNotification answers streaming at once; more get 503 SlowDown
    /// ([`crate::notify`]).
    pub max_listeners: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            domains: Vec::new(),
            region: "us-east-1".into(),
            max_concurrency: 1024,
            min_rate: MinRate::default(),
            bucket_cache_ttl: crate::bucket_cache::BUCKET_CACHE_TTL,
            max_listeners: crate::notify::DEFAULT_MAX_LISTENERS,
        }
    }
}

/// The S3 request handler (no sockets: see [`serve`] for the connection loop).
pub struct Gateway {
    backend: Arc<dyn Backend>,
    keys: KeyCache,
    buckets: Arc<BucketCache>,
    cfg: ServerConfig,
    permits: Arc<Semaphore>,
    listeners: Arc<Semaphore>,
    /// Turns true at shutdown: listen streams end then ([`Gateway::with_shutdown`]).
    shutdown: watch::Receiver<bool>,
    ids: RequestIds,
    clock: Clock,
    audit: Option<AuditLog>,
}

/// The client's address, put into the request extensions by the connection loop (requests
/// built in tests and fuzz targets have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What the request path learned, for the error document, metrics, logs and the audit record.
struct ReqInfo {
    op: &'static str,
    resource: String,
    bucket: Option<String>,
    key: Option<String>,
    /// The access key id presented (claimed until authentication succeeds).
    access_key: Option<String>,
    /// Set once authenticated, or to `anonymous` for an unsigned request.
    principal: Option<String>,
    /// Authorization allowed the operation (its handler ran).
    allowed: bool,
    /// Why the request was refused, when a stage said so.
    reason: Option<String>,
}

/// Put into the request extensions by the connection loop of an HTTPS listener
/// (`aws:SecureTransport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecureTransport;

/// The audit label of a principal: its user, `admin-key:<id>` for a key without a user, or
/// `anonymous`.
fn principal_label(p: &Principal) -> String {
    if p.is_anonymous() {
        "anonymous".into()
    } else if p.user.is_empty() {
        format!("admin-key:{}", p.access_key)
    } else {
        p.user.clone()
    }
}

impl Gateway {
    /// A handler over `backend` using the system clock.
    pub fn new(backend: Arc<dyn Backend>, cfg: ServerConfig) -> Gateway {
        Gateway {
            backend,
            keys: KeyCache::default(),
            buckets: Arc::new(BucketCache::new(cfg.bucket_cache_ttl)),
            permits: Arc::new(Semaphore::new(cfg.max_concurrency)),
            listeners: crate::notify::listener_slots(cfg.max_listeners),
            shutdown: watch::channel(false).1,
            cfg,
            ids: RequestIds::new(rand::random()),
            clock: Arc::new(SystemTime::now),
            audit: None,
        }
    }

    /// Write one audit record per request to `log`.
    pub fn with_audit(mut self, log: AuditLog) -> Gateway {
        self.audit = Some(log);
        self
    }

    /// End the long-lived answers (ListenBucketNotification) when `shutdown` turns true, so
    /// that a drain does not wait for listeners.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Gateway {
        self.shutdown = shutdown;
        self
    }

    /// Replace the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Gateway {
        self.clock = clock;
        self
    }

    /// Handle one request; never fails (errors become S3 error responses).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<RespBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let request_id = self.ids.next();
        let span = tracing::info_span!(
            "s3",
            request_id = %request_id,
            method = %req.method(),
            op = tracing::field::Empty,
        );
        // The S3 client's W3C `traceparent`, if any, is the parent; else a new trace.
        anode_common::otel::set_parent_from_headers(&span, req.headers());
        anode_client::trace::with_request_id(
            request_id.clone(),
            self.handle_in_span(req, request_id),
        )
        .instrument(span)
        .await
    }

    async fn handle_in_span<B>(&self, req: Request<B>, request_id: String) -> Response<RespBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let is_head = req.method() == Method::HEAD;
        // A request that announced a body: if it is refused, the body may be unread (and, with
        // `Expect: 100-continue`, may still be on its way), so the connection is closed after
        // the answer rather than parsing the late body bytes as the next request.
        let announced_body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
            || req.headers().contains_key(http::header::TRANSFER_ENCODING);
        let mut info = ReqInfo {
            op: "Unknown",
            resource: req.uri().path().to_string(),
            bucket: None,
            key: None,
            access_key: None,
            principal: None,
            allowed: false,
            reason: None,
        };
        let audit = self.audit.as_ref().map(|log| AuditStart {
            log: log.clone(),
            time_ms: unix_ms(&self.clock),
            source: req.extensions().get::<PeerAddr>().map(|p| p.0.to_string()),
            received: Arc::new(AtomicU64::new(0)),
        });
        let received = audit.as_ref().map(|a| a.received.clone());
        // CORS (crate::cors): what the request asks, for the headers of the actual response.
        let cors_ask = crate::cors::CorsAsk::from_headers(req.headers());
        let method = req.method().clone();
        let permit = self.permits.clone().try_acquire_owned().ok();
        let result = match permit {
            None => {
                METRICS.throttled.inc();
                Err(S3Error::SlowDown)
            }
            Some(_) => self.process(req, &mut info, received).await,
        };
        let mut error = None;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                log_error(&e, &info, &request_id);
                error = Some(e.aws_code());
                error_response(&e, &info.resource, &request_id, is_head)
            }
        };
        if let (Some(ask), Some(bucket)) = (&cors_ask, &info.bucket) {
            if method != Method::OPTIONS {
                self.add_cors_headers(ask, bucket, &method, &mut resp).await;
            }
        }
        let status = resp.status();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v.clone());
            resp.headers_mut().insert("x-amz-id-2", v);
        }
        resp.headers_mut()
            .insert("server", HeaderValue::from_static("Anode"));
        if error.is_some() && announced_body {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        METRICS
            .requests
            .with_label_values(&[info.op, status.as_str()])
            .inc();
        METRICS
            .duration_seconds
            .with_label_values(&[info.op])
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            op = info.op,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "s3 request"
        );
        let pending = audit.map(|a| a.finish(info, request_id, status, error, started));
        let mut guard = InFlight::new(permit, pending);
        resp.map(move |body| {
            body.map_frame(move |frame| {
                // The whole guard moves into the closure (not only the counter), so the
                // permit, the gauge and the audit record live as long as the body.
                let held = &mut guard;
                if let Some(data) = frame.data_ref() {
                    held.sent += data.len() as u64;
                }
                frame
            })
            .boxed_unsync()
        })
    }

    async fn process<B>(
        &self,
        req: Request<B>,
        info: &mut ReqInfo,
        received: Option<Arc<AtomicU64>>,
    ) -> Result<Response<RespBody>, S3Error>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let query = Query::parse(parts.uri.query().unwrap_or_default());
        let path = decode_path(parts.uri.path())?;
        info.resource = path.clone();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let target = resolve_target(host, &path, &self.cfg.domains);
        // POST Object (a browser form upload): authenticated by its fields, not its headers.
        if parts.method == Method::POST && target.key.is_none() && parts.uri.query().is_none() {
            if let (Some(bucket), Some(ct)) = (
                target.bucket.clone(),
                parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
            ) {
                if let Some(boundary) = crate::post_form::boundary(ct) {
                    info.bucket = Some(bucket.clone());
                    return self
                        .post_object(&parts, body, bucket, &boundary?, info, received)
                        .await;
                }
            }
        }
        // Routed before authentication so a refused request's audit record names its
        // operation; a routing error still answers only after authentication.
        let routed = router::route(
            &parts.method,
            target.bucket.as_deref(),
            target.key.as_deref(),
            &query,
            parts.headers.contains_key("x-amz-copy-source"),
        );
        info.bucket = target.bucket;
        info.key = target.key;
        if parts.method == Method::OPTIONS {
            // A CORS preflight: answered from the bucket's rules, without a signature.
            info.op = "PreflightCors";
            tracing::Span::current().record("op", info.op);
            return self.preflight(&parts.headers, info).await;
        }
        if let Ok(op) = &routed {
            info.op = op.name();
            tracing::Span::current().record("op", op.name());
        }
        let (verified, principal) = match self.authenticate(&parts, &query, info).await {
            Ok(v) => v,
            Err(e) => {
                if info.reason.is_none() {
                    info.reason = Some(format!("authentication: {}", e.aws_code()));
                }
                return Err(e);
            }
        };
        let op = routed?;
        let actx = authz::with_request_tags(
            authz::context(
                parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
                parts.extensions.get::<SecureTransport>().is_some(),
                query.get("prefix"),
            ),
            &parts.headers,
        );
        let target = self
            .authorize(
                &principal,
                &op,
                &parts.headers,
                &actx,
                query.get("versionId").is_some(),
                info,
            )
            .await?;
        // `x-amz-expected-bucket-owner`: refused unless it names the bucket's owner (its
        // canonical id), as S3 refuses a request to a bucket of another account.
        if let (Some(expected), Some(b)) = (
            parts.headers.get("x-amz-expected-bucket-owner"),
            target.as_deref(),
        ) {
            let owner = anode_meta::authz::canonical_id(&b.config.owner_user);
            if expected.as_bytes() != owner.as_bytes() {
                info.reason = Some("x-amz-expected-bucket-owner is not the bucket's owner".into());
                return Err(S3Error::AccessDenied("Access Denied".into()));
            }
        }
        info.allowed = true;
        let decoded_len = parts
            .headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let decoder = BodyDecoder::new(
            &verified.payload,
            verified.chunk_signer.clone(),
            decoded_len,
        )?;
        let cx = Ctx {
            backend: &*self.backend,
            headers: &parts.headers,
            query: &query,
            access_key: &verified.access_key,
            principal: &principal,
            region: &self.cfg.region,
            now_ms: unix_ms(&self.clock),
            buckets: &self.buckets,
            authz: authz::Authorizer {
                principal: &principal,
                ctx: &actx,
                bucket: target.clone(),
            },
            listeners: &self.listeners,
            shutdown: &self.shutdown,
        };
        let mut body = RequestBody::new(body, decoder).with_min_rate(self.cfg.min_rate);
        if let Some(counter) = received {
            body = body.with_received_counter(counter);
        }
        let hides_missing = matches!(
            op,
            router::S3Op::GetObject { .. } | router::S3Op::HeadObject { .. }
        );
        let bucket_name = op.bucket().unwrap_or_default().to_string();
        let is_delete_objects = matches!(op, router::S3Op::DeleteObjects { .. });
        match handlers::dispatch(&cx, op, body).await {
            Err(S3Error::NoSuchKey) if hides_missing => {
                // S3: without s3:ListBucket, a missing key is 403, so that keys cannot be
                // probed for existence.
                let list = authz::check(
                    &principal,
                    anode_meta::authz::Action::ListBucket,
                    &bucket_name,
                    None,
                    &actx,
                    target.as_deref(),
                    None,
                );
                if list.is_allowed() {
                    Err(S3Error::NoSuchKey)
                } else {
                    info.allowed = false;
                    info.reason = Some(format!("missing key, and {list} for s3:ListBucket"));
                    Err(S3Error::AccessDenied("Access Denied".into()))
                }
            }
            Err(S3Error::AccessDenied(m)) => {
                // A refusal after authorization (BlockPublicAcls, BlockPublicPolicy, a body's
                // Owner, DeleteObjects with every key refused): audited as a denial.
                info.allowed = false;
                info.reason = Some(if is_delete_objects {
                    "deny: s3:DeleteObject refused for every key".into()
                } else {
                    format!("deny: {m}")
                });
                Err(S3Error::AccessDenied(m))
            }
            other => other,
        }
    }

    /// Answer a CORS preflight (`OPTIONS`) from the rules of the bucket it names.
    async fn preflight(
        &self,
        headers: &http::HeaderMap,
        info: &mut ReqInfo,
    ) -> Result<Response<RespBody>, S3Error> {
        let ask = crate::cors::CorsAsk::from_headers(headers);
        let rules = match (&ask, &info.bucket) {
            (Some(_), Some(bucket)) => self
                .buckets
                .get(&*self.backend, bucket, Instant::now())
                .await?
                .and_then(|b| b.config.cors.clone()),
            _ => None,
        };
        let cors = crate::cors::preflight(rules.as_ref(), ask.as_ref())?;
        info.allowed = true;
        let mut r = Response::new(empty());
        r.headers_mut()
            .insert("content-length", HeaderValue::from_static("0"));
        r.headers_mut().extend(cors);
        Ok(r)
    }

    /// Add the CORS headers the bucket's rules give an actual request with an `Origin`. A
    /// bucket that cannot be read (missing, or the cluster unreachable) adds nothing.
    async fn add_cors_headers(
        &self,
        ask: &crate::cors::CorsAsk,
        bucket: &str,
        method: &Method,
        resp: &mut Response<RespBody>,
    ) {
        let info = match self
            .buckets
            .get(&*self.backend, bucket, Instant::now())
            .await
        {
            Ok(Some(info)) => info,
            _ => return,
        };
        if let Some(rules) = &info.config.cors {
            crate::cors::decorate(rules, ask, method.as_str(), resp.headers_mut());
        }
    }

    /// The signature check and the principal: the signing key's user (a presigned URL acts as
    /// its signing key). A disabled or expired key is refused like an unknown one.
    async fn authenticate(
        &self,
        parts: &http::request::Parts,
        query: &Query,
        info: &mut ReqInfo,
    ) -> Result<(Verified, Principal), S3Error> {
        // Session tokens come with temporary credentials (STS), which Anode does not issue:
        // a request carrying one is refused, not served as if it had none.
        let token = parts.headers.contains_key("x-amz-security-token")
            || query.get("X-Amz-Security-Token").is_some();
        if token {
            return Err(S3Error::InvalidToken(
                "The provided token is malformed or otherwise invalid (Anode issues no session tokens)".into(),
            ));
        }
        if let Some(v2) = sigv2::parse(&parts.headers, query)? {
            info.access_key = Some(v2.access_key.clone());
            let key = self
                .keys
                .key(&*self.backend, &v2.access_key, Instant::now())
                .await?;
            key.check_usable(unix_ms(&self.clock))?;
            let host = parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()));
            // Virtual-hosted: the bucket is in the host, and in front of the signed resource.
            let vhost_bucket = resolve_target(host, "/", &self.cfg.domains).bucket;
            let req = sigv2::V2Request {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                vhost_bucket: vhost_bucket.as_deref(),
                query,
                headers: &parts.headers,
            };
            let now = (unix_ms(&self.clock) / 1000) as i64;
            let verified = sigv2::verify(&req, &v2, &key.secret, now)?;
            info.principal = Some(principal_label(&key.principal));
            return Ok((verified, key.principal));
        }
        let Some(auth) = sigv4::parse_auth(&parts.headers, query)? else {
            info.principal = Some("anonymous".into());
            let verified = Verified {
                access_key: String::new(),
                payload: sigv4::PayloadMode::Unsigned,
                chunk_signer: None,
            };
            return Ok((verified, Principal::anonymous()));
        };
        info.access_key = Some(auth.access_key.clone());
        let key = self
            .keys
            .key(&*self.backend, &auth.access_key, Instant::now())
            .await?;
        key.check_usable(unix_ms(&self.clock))?;
        let req = RequestParts {
            method: parts.method.as_str(),
            raw_path: parts.uri.path(),
            query,
            headers: &parts.headers,
        };
        let now = (unix_ms(&self.clock) / 1000) as i64;
        let verified = sigv4::verify(&req, &auth, &key.secret, now)?;
        info.principal = Some(principal_label(&key.principal));
        Ok((verified, key.principal))
    }

    /// The one authorization point: [`authz::check`] for the bucket (or object) `op`
    /// addresses, and for a copy's source object (`s3:GetObject`). The buckets come from the
    /// cache; an object's ACL is read only when nothing else allows the request and the
    /// bucket honours ACLs. Returns the target bucket, when it exists, for the handler.
    async fn authorize(
        &self,
        p: &Principal,
        op: &router::S3Op,
        headers: &http::HeaderMap,
        actx: &anode_meta::authz::Context,
        versioned: bool,
        info: &mut ReqInfo,
    ) -> Result<Option<Arc<BucketInfo>>, S3Error> {
        let Some(action) = op.action_for(versioned) else {
            return Err(deny(
                p,
                op.name(),
                "operation not in the action table".into(),
                info,
            ));
        };
        let Some(bucket) = op.bucket() else {
            let d = authz::check(p, action, "", None, actx, None, None);
            if !d.is_allowed() {
                return Err(deny(p, op.name(), d.to_string(), info));
            }
            info.reason = Some(d.to_string());
            return Ok(None);
        };
        let target = self
            .buckets
            .get(&*self.backend, bucket, Instant::now())
            .await?;
        if matches!(op, router::S3Op::DeleteObjects { .. }) && target.is_some() {
            // s3:DeleteObject is decided per key by the handler (the keys are in the body);
            // refused keys are AccessDenied entries of its answer, as in S3.
            return Ok(target);
        }
        self.check_one(p, action, bucket, op.key(), target.as_deref(), actx, info)
            .await?;
        if op.copies() {
            if let Some(src) = headers
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
            {
                // A malformed source is the handler's to refuse (InvalidArgument).
                if let Ok((src_bucket, src_key)) = handlers::parse_copy_source(src) {
                    let source = self
                        .buckets
                        .get(&*self.backend, &src_bucket, Instant::now())
                        .await?;
                    let get = anode_meta::authz::Action::GetObject;
                    self.check_one(
                        p,
                        get,
                        &src_bucket,
                        Some(&src_key),
                        source.as_deref(),
                        actx,
                        info,
                    )
                    .await?;
                    // `x-amz-source-expected-bucket-owner`: as the target's, for the source.
                    if let (Some(expected), Some(b)) = (
                        headers.get("x-amz-source-expected-bucket-owner"),
                        source.as_deref(),
                    ) {
                        let owner = anode_meta::authz::canonical_id(&b.config.owner_user);
                        if expected.as_bytes() != owner.as_bytes() {
                            info.reason = Some(
                                "x-amz-source-expected-bucket-owner is not the source bucket's owner"
                                    .into(),
                            );
                            return Err(S3Error::AccessDenied("Access Denied".into()));
                        }
                    }
                }
            }
        }
        Ok(target)
    }

    /// One [`authz::check`], with a second try with the object's ACL when only that could
    /// allow it.
    #[allow(clippy::too_many_arguments)]
    async fn check_one(
        &self,
        p: &Principal,
        action: anode_meta::authz::Action,
        bucket: &str,
        key: Option<&str>,
        info_b: Option<&BucketInfo>,
        actx: &anode_meta::authz::Context,
        info: &mut ReqInfo,
    ) -> Result<(), S3Error> {
        // A policy testing s3:ExistingObjectTag needs the object's tags (current version).
        let tagged;
        let actx = match (info_b, key) {
            (Some(b), Some(k))
                if action.level() == anode_meta::authz::action::Level::Object
                    && authz::policy_reads_object_tags(b) =>
            {
                let tags = match self.backend.head_object(bucket, k).await {
                    Ok(m) => m.tags,
                    Err(e) if e.code() == anode_client::ErrorCode::NoSuchKey => Vec::new(),
                    Err(e) => return Err(handlers::ce(e)),
                };
                tagged = authz::with_object_tags(actx, &tags);
                &tagged
            }
            _ => actx,
        };
        let mut d = authz::check(p, action, bucket, key, actx, info_b, None);
        if let (Some(b), Some(k)) = (info_b, key) {
            if authz::object_acl_may_allow(&d, action, b) {
                match self.object_acl(bucket, k).await? {
                    ObjectAcl::Own(acl) => {
                        d = authz::check(p, action, bucket, key, actx, info_b, Some(&acl));
                    }
                    ObjectAcl::Default => {}
                    ObjectAcl::Missing => {
                        // No object: whoever may list the bucket learns that (404 from the
                        // handler); anyone else is refused below, as S3 does.
                        let list = anode_meta::authz::Action::ListBucket;
                        let l = authz::check(p, list, bucket, None, actx, info_b, None);
                        if l.is_allowed() {
                            d = l;
                        }
                    }
                }
            }
        }
        if d.is_allowed() {
            // The audit record says why (a copy: the target's reason, then the source's).
            info.reason = Some(match info.reason.take() {
                None => d.to_string(),
                Some(first) => format!("{first}; source {d}"),
            });
            return Ok(());
        }
        Err(deny(p, action.iam_name(), d.to_string(), info))
    }

    /// The stored ACL of an object.
    async fn object_acl(&self, bucket: &str, key: &str) -> Result<ObjectAcl, S3Error> {
        let manifest = match self.backend.head_object(bucket, key).await {
            Ok(m) => m,
            Err(e) if e.code() == anode_client::ErrorCode::NoSuchKey => {
                return Ok(ObjectAcl::Missing)
            }
            Err(e) => return Err(S3Error::from_client_error(&e)),
        };
        Ok(match crate::bucket_cache::object_acl(&manifest)? {
            Some(acl) => ObjectAcl::Own(acl),
            None => ObjectAcl::Default,
        })
    }
}

/// What an object's ACL lookup found.
enum ObjectAcl {
    /// No such object.
    Missing,
    /// The default ACL (private to the bucket owner, who needs no grant).
    Default,
    /// Its own ACL.
    Own(anode_meta::authz::Acl),
}

/// A denial: 403 AccessDenied (the reason is logged and audited, not sent).
fn deny(p: &Principal, action: &str, reason: String, info: &mut ReqInfo) -> S3Error {
    METRICS.authz_denied.inc();
    tracing::info!(
        user = %p.user,
        access_key = %p.access_key,
        anonymous = p.is_anonymous(),
        action,
        reason = %reason,
        "request refused by authorization"
    );
    info.reason = Some(reason);
    S3Error::AccessDenied("Access Denied".into())
}

fn unix_ms(clock: &Clock) -> u64 {
    clock()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Server-side failures are logged with their detail and the request id the client got (the
/// answer itself carries generic text, see [`S3Error::public_message`]).
fn log_error(e: &S3Error, info: &ReqInfo, request_id: &str) {
    if e.http_status().is_server_error() {
        tracing::warn!(
            request_id,
            op = info.op,
            code = e.aws_code(),
            resource = %info.resource,
            error = %e,
            "s3 request failed"
        );
    } else {
        tracing::debug!(op = info.op, code = e.aws_code(), "s3 request refused");
    }
}

/// The response for an error: the XML document, or only the status for HEAD and 304.
pub fn error_response(
    e: &S3Error,
    resource: &str,
    request_id: &str,
    head: bool,
) -> Response<RespBody> {
    let status = e.http_status();
    let mut r = if head || !e.has_body() {
        let mut r = Response::new(empty());
        if status != StatusCode::NOT_MODIFIED {
            r.headers_mut()
                .insert("content-length", HeaderValue::from_static("0"));
        }
        r
    } else {
        let doc = e.to_xml(resource, request_id);
        let len = doc.len();
        let mut r = Response::new(full(doc));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
        if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
            r.headers_mut().insert("content-length", v);
        }
        r
    };
    *r.status_mut() = status;
    for (name, value) in e.extra_headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

/// What the audit record needs from the start of a request.
struct AuditStart {
    log: AuditLog,
    time_ms: u64,
    source: Option<String>,
    received: Arc<AtomicU64>,
}

impl AuditStart {
    /// The record as far as the response headers; bytes and duration are filled in when the
    /// response body is done ([`InFlight`]'s drop).
    fn finish(
        self,
        info: ReqInfo,
        request_id: String,
        status: StatusCode,
        error: Option<&'static str>,
        started: Instant,
    ) -> PendingAudit {
        let decision = if info.allowed {
            audit::Decision::Allow
        } else {
            audit::Decision::Deny
        };
        // A refusal no stage explained (throttling, a malformed path): its S3 error code.
        let reason = match (&info.reason, info.allowed) {
            (None, false) => error.map(str::to_string),
            _ => info.reason,
        };
        PendingAudit {
            log: self.log,
            received: self.received,
            started,
            record: audit::Record {
                time_ms: self.time_ms,
                request_id,
                principal: info.principal,
                access_key: info.access_key,
                source: self.source,
                op: info.op,
                bucket: info.bucket,
                key: info.key,
                decision,
                reason,
                status: status.as_u16(),
                error,
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 0,
            },
        }
    }
}

/// An audit record waiting for its response body to finish.
struct PendingAudit {
    log: AuditLog,
    received: Arc<AtomicU64>,
    started: Instant,
    record: audit::Record,
}

/// Held by a response body until it is dropped: the concurrency permit, the in-flight gauge,
/// and the audit record (sent on drop with the bytes counted).
struct InFlight {
    _permit: Option<OwnedSemaphorePermit>,
    audit: Option<PendingAudit>,
    sent: u64,
}

impl InFlight {
    fn new(permit: Option<OwnedSemaphorePermit>, audit: Option<PendingAudit>) -> InFlight {
        METRICS.in_flight.inc();
        InFlight {
            _permit: permit,
            audit,
            sent: 0,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.in_flight.dec();
        if let Some(mut a) = self.audit.take() {
            a.record.bytes_in = a.received.load(Ordering::Relaxed);
            a.record.bytes_out = self.sent;
            a.record.duration_ms = a.started.elapsed().as_millis() as u64;
            a.log.record(a.record);
        }
    }
}

/// Request ids: 16 upper-case hex digits, a per-process random prefix and a counter.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new(prefix: u32) -> Self {
        RequestIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{:08X}", self.prefix, n as u32)
    }
}

/// Limits of the S3 listeners (shared by the plain and the HTTPS one).
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Open connections at most, over all listeners; past it new ones are closed at once.
    pub max_connections: usize,
    /// Most request headers (hyper answers 431 past it).
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Minimum response rate while a write is blocked on the client.
    pub min_rate: MinRate,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            min_rate: MinRate::default(),
        }
    }
}

/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of `--max-headers` (hyper's own default).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default of `--max-header-bytes`: S3 allows 8 KiB of headers on a PUT; presigned URLs and
/// long keys make request lines long too.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One S3 listener: plain HTTP, or HTTPS with `tls`.
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// The TLS acceptor for HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serve `gateway` on `listener` until `shutdown` turns true, then drain (bounded by
/// `drain_timeout`). HTTP/1.1 with keep-alive. `connections` is shared by every listener and
/// holds `limits.max_connections` permits.
pub async fn serve(
    listener: Listener,
    gateway: Arc<Gateway>,
    limits: ConnLimits,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(limits.max_header_bytes);
    if limits.max_headers != DEFAULT_MAX_HEADERS {
        builder.max_headers(limits.max_headers);
    }
    let conn = ConnSetup {
        builder: Arc::new(builder),
        gateway,
        tls: listener.tls.clone(),
        min_rate: limits.min_rate,
    };
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    METRICS.connections_refused.inc();
                    tracing::debug!(%peer, "connection limit reached: closed");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                conn.spawn(stream, peer, permit, graceful.watcher());
            }
            _ = wait_for_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "gateway draining");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("gateway drained"),
        _ = tokio::time::sleep(drain_timeout) => tracing::warn!("gateway drain timed out"),
    }
    Ok(())
}

/// What each accepted connection needs.
struct ConnSetup {
    builder: Arc<hyper::server::conn::http1::Builder>,
    gateway: Arc<Gateway>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    min_rate: MinRate,
}

impl ConnSetup {
    /// Serve one connection on its own task (after the TLS handshake for HTTPS), holding
    /// `permit` until it closes.
    fn spawn(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let builder = self.builder.clone();
        let gateway = self.gateway.clone();
        let tls = self.tls.clone();
        let min_rate = self.min_rate;
        tokio::spawn(async move {
            let _permit = permit;
            METRICS.connections.inc();
            let _open = scopeguard(|| METRICS.connections.dec());
            let result = match tls {
                None => serve_io(&builder, watcher, stream, peer, min_rate, gateway, false).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            serve_io(&builder, watcher, tls_stream, peer, min_rate, gateway, true)
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn serve_io<S>(
    builder: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: S,
    peer: SocketAddr,
    min_rate: MinRate,
    gateway: Arc<Gateway>,
    secure: bool,
) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        if secure {
            req.extensions_mut().insert(SecureTransport);
        }
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle(req).await) }
    });
    let io = StallGuard::new(io, min_rate);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    watcher.watch(conn).await
}

/// Run `f` when dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// Resolve once the watch holds `true` (never, if its sender is gone without saying so).
pub async fn wait_for_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
