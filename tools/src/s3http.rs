//! A small signed S3 HTTP/1.1 client shared by `anode-tools bench s3` and `anode-tools
//! chaos-load`: requests are signed with the gateway crate's SigV4 code
//! (`anode_gateway::sigv4`), as awscli would sign them, and sent over one keep-alive
//! connection per worker.

use anyhow::Context;

/// How PUT bodies are signed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadHash {
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// The hex SHA-256 of the body.
    Sha256,
}

/// Where an S3 endpoint is, which certificates to trust for it and how to sign: the flags
/// `bench s3` and `bench suite` share.
#[derive(clap::Args, Debug, Clone)]
pub struct S3Target {
    /// S3 endpoint (`http://HOST:PORT` or `https://HOST:PORT`; path-style requests).
    #[arg(
        long,
        env = "ANODE_S3_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint: String,
    /// PEM certificates to trust for an `https://` endpoint.
    #[arg(long)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Signing credentials and region.
    #[command(flatten)]
    pub signer: Signer,
}

/// Credentials and region for signing; also the `--access-key`, `--secret-key` and `--region`
/// flags of the commands that sign.
#[derive(clap::Args, Clone, Debug)]
pub struct Signer {
    /// Access key id.
    #[arg(long, env = "ANODE_ACCESS_KEY", default_value = anode_gateway::DEV_ACCESS_KEY)]
    pub access_key: String,
    /// Secret key.
    #[arg(
        long,
        env = "ANODE_SECRET_KEY",
        default_value = anode_gateway::DEV_SECRET_KEY,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub secret_key: String,
    /// Region of the signature scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// A request ready to send.
pub type S3Request = http::Request<http_body_util::Full<bytes::Bytes>>;

/// Status, headers and the whole body of a response.
pub type S3Response = (http::StatusCode, http::HeaderMap, bytes::Bytes);

impl Signer {
    /// A signed request to `host` (`HOST:PORT`) for `path` (already URI-encoded) and
    /// `query` (already encoded, as it will be sent; may be empty).
    pub fn request(
        &self,
        host: &str,
        method: http::Method,
        path: &str,
        query: &str,
        body: bytes::Bytes,
        payload: PayloadHash,
    ) -> anyhow::Result<S3Request> {
        use anode_gateway::sigv4;
        use sha2::Digest;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, host.parse()?);
        let payload_hash = match payload {
            PayloadHash::Sha256 => hex::encode(sha2::Sha256::digest(&body)),
            PayloadHash::Unsigned if body.is_empty() => sigv4::EMPTY_SHA256.to_string(),
            PayloadHash::Unsigned => sigv4::UNSIGNED_PAYLOAD.to_string(),
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let amz_date = sigv4::format_amz_date(now.as_secs() as i64);
        let params = sigv4::SignParams {
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            region: &self.region,
            amz_date: &amz_date,
        };
        sigv4::sign_request(
            method.as_str(),
            path,
            query,
            &mut headers,
            &payload_hash,
            &params,
        );
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        // Content-Length even for an empty PUT body (hyper leaves it out, and S3 endpoints
        // answer 411 Length Required without it); unsigned, as awscli sends it.
        let sized = method == http::Method::PUT || method == http::Method::POST;
        let len = body.len();
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(http_body_util::Full::new(body))?;
        *req.headers_mut() = headers;
        if sized {
            req.headers_mut()
                .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        }
        Ok(req)
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: the request was surely never sent.
    #[error("connect {addr}: {source}")]
    Connect {
        /// Endpoint.
        addr: String,
        /// Cause.
        source: anyhow::Error,
    },
    /// The request may have been sent (in part or whole); its effect is unknown.
    #[error("request to {addr}: {source}")]
    Io {
        /// Endpoint.
        addr: String,
        /// Cause.
        source: anyhow::Error,
    },
}

/// HTTPS to an endpoint: the connector (trusting a CA bundle) and the name to verify.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

/// TLS settings for `endpoint`: `None` for `http://`, a connector trusting the PEM
/// certificates in `ca_bundle` (required) for `https://`.
pub fn endpoint_tls(
    endpoint: &str,
    ca_bundle: Option<&std::path::Path>,
) -> anyhow::Result<Option<Tls>> {
    if !endpoint.starts_with("https://") {
        return Ok(None);
    }
    use rustls::pki_types::pem::PemObject;
    let ca = ca_bundle.context("an https:// endpoint needs --ca-bundle")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("read {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parse {}", ca.display()))?)?;
    }
    #[allow(deprecated)] // see anode-gateway's `tls::provider`
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = endpoint_host(endpoint)?;
    let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(name.trim_matches(['[', ']']).to_string())?;
    Ok(Some(Tls {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)),
        name,
    }))
}

/// One keep-alive HTTP/1.1 connection to an endpoint (reconnects after an error).
pub struct S3Conn {
    addr: String,
    tls: Option<Tls>,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>,
}

impl S3Conn {
    /// A connection to `addr` (`HOST:PORT`), made on the first request.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            tls: None,
            sender: None,
        }
    }

    /// Speak HTTPS with `tls` (`None`: plain HTTP).
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// `HOST:PORT` of the endpoint.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Drop the connection (after a timeout left it mid-request).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .context("tcp connect")?;
        tcp.set_nodelay(true)?;
        let sender = match &self.tls {
            None => {
                let io = hyper_util::rt::TokioIo::new(tcp);
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                sender
            }
            Some(tls) => {
                let stream = tls.connector.connect(tls.name.clone(), tcp).await?;
                let io = hyper_util::rt::TokioIo::new(stream);
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                sender
            }
        };
        self.sender = Some(sender);
        Ok(())
    }

    /// Send a request and read the whole response.
    pub async fn send(&mut self, req: S3Request) -> Result<S3Response, SendError> {
        use http_body_util::BodyExt;
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await.map_err(|source| SendError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        }
        let result = async {
            let sender = self.sender.as_mut().expect("connected above");
            sender.ready().await?;
            let (parts, body) = sender.send_request(req).await?.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok((parts.status, parts.headers, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result.map_err(|source| SendError::Io {
            addr: self.addr.clone(),
            source,
        })
    }
}

/// A header's value as a string (empty when absent or not ASCII).
pub fn header_str(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `HOST:PORT` of an `http://HOST:PORT` (or `https://HOST:PORT`) endpoint.
pub fn endpoint_host(endpoint: &str) -> anyhow::Result<String> {
    let host = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint:?} must be http://HOST:PORT"))?
        .trim_end_matches('/');
    anyhow::ensure!(!host.is_empty(), "endpoint {endpoint:?} has no host");
    Ok(host.to_string())
}

/// Create `bucket` through `host`; an existing bucket is fine.
pub async fn create_bucket(signer: &Signer, host: &str, bucket: &str) -> anyhow::Result<()> {
    create_bucket_over(signer, S3Conn::new(host), bucket).await
}

/// [`create_bucket`] over a given connection (HTTPS with [`S3Conn::with_tls`]).
pub async fn create_bucket_over(
    signer: &Signer,
    mut conn: S3Conn,
    bucket: &str,
) -> anyhow::Result<()> {
    let host = conn.addr().to_string();
    let host = host.as_str();
    let path = format!("/{bucket}");
    let req = signer.request(
        host,
        http::Method::PUT,
        &path,
        "",
        bytes::Bytes::new(),
        PayloadHash::Unsigned,
    )?;
    let (status, _, body) = conn.send(req).await?;
    let text = String::from_utf8_lossy(&body);
    // Another user's bucket is fine too: the signing user may write into it through a bucket
    // policy or an ACL grant (scripts/bench-authz.sh); if not, the first PUT says so.
    anyhow::ensure!(
        status.is_success()
            || text.contains("BucketAlreadyOwnedByYou")
            || text.contains("BucketAlreadyExists"),
        "create bucket {bucket}: {status} {text}"
    );
    Ok(())
}

/// The characters a query value keeps unencoded (SigV4's unreserved set).
pub const QUERY_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The characters a path segment keeps unencoded: the unreserved set and `/` (keys are sent
/// as they are, each other byte percent-encoded).
pub const PATH_UNRESERVED: &percent_encoding::AsciiSet = &QUERY_UNRESERVED.remove(b'/');

/// Why a checked request ([`put_checked`], [`get_checked`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckedError {
    /// No response (connection refused or broken mid-request).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The request could not be built or signed.
    #[error("sign: {0}")]
    Sign(anyhow::Error),
    /// The endpoint answered with an unexpected status.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// Method of the request.
        method: http::Method,
        /// Path of the request.
        path: String,
        /// The status.
        status: http::StatusCode,
        /// Start of the body (the S3 error document).
        body: String,
    },
    /// The answer arrived but is wrong (ETag, length or content).
    #[error("{0}")]
    Verify(String),
}

impl CheckedError {
    /// A short class for counting (`http_503`, `io`, `verify`, ...).
    pub fn kind(&self) -> String {
        match self {
            Self::Send(SendError::Connect { .. }) => "connect".into(),
            Self::Send(SendError::Io { .. }) => "io".into(),
            Self::Sign(_) => "sign".into(),
            Self::Status { status, .. } => format!("http_{}", status.as_u16()),
            Self::Verify(_) => "verify".into(),
        }
    }

    fn status(method: http::Method, path: &str, status: http::StatusCode, body: &[u8]) -> Self {
        let body = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Self::Status {
            method,
            path: path.to_string(),
            status,
            body,
        }
    }
}

/// PUT `body` at `path` (already URI-encoded) over `conn`; checks the answer's ETag is the
/// body's MD5 (true of every single-part PUT on S3 and its clones). Returns the ETag.
pub async fn put_checked(
    conn: &mut S3Conn,
    signer: &Signer,
    path: &str,
    body: bytes::Bytes,
    payload: PayloadHash,
) -> Result<String, CheckedError> {
    use md5::Digest;
    let want = format!("\"{}\"", hex::encode(md5::Md5::digest(&body)));
    let req = signer
        .request(conn.addr(), http::Method::PUT, path, "", body, payload)
        .map_err(CheckedError::Sign)?;
    let (status, headers, resp) = conn.send(req).await?;
    if !status.is_success() {
        return Err(CheckedError::status(http::Method::PUT, path, status, &resp));
    }
    let etag = header_str(&headers, "etag");
    if etag != want {
        return Err(CheckedError::Verify(format!(
            "PUT {path}: ETag {etag}, body MD5 {want}"
        )));
    }
    Ok(etag)
}

/// GET `path` (already URI-encoded, `query` already encoded) over `conn`; anything but
/// 200 OK is an error. Returns the headers and the whole body.
pub async fn get_checked(
    conn: &mut S3Conn,
    signer: &Signer,
    path: &str,
    query: &str,
) -> Result<(http::HeaderMap, bytes::Bytes), CheckedError> {
    let req = signer
        .request(
            conn.addr(),
            http::Method::GET,
            path,
            query,
            bytes::Bytes::new(),
            PayloadHash::Unsigned,
        )
        .map_err(CheckedError::Sign)?;
    let (status, headers, body) = conn.send(req).await?;
    if status != http::StatusCode::OK {
        return Err(CheckedError::status(http::Method::GET, path, status, &body));
    }
    Ok((headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_verify_with_the_gateway_code() {
        let s = Signer {
            access_key: "AKTEST".into(),
            secret_key: "secret".into(),
            region: "us-east-1".into(),
        };
        let req = s
            .request(
                "127.0.0.1:9000",
                http::Method::GET,
                "/b",
                "list-type=2&prefix=k",
                bytes::Bytes::new(),
                PayloadHash::Unsigned,
            )
            .unwrap();
        assert_eq!(req.uri(), "/b?list-type=2&prefix=k");
        let auth = header_str(req.headers(), "authorization");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKTEST/"),
            "{auth}"
        );
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
        assert_eq!(
            endpoint_host("http://127.0.0.1:9000/").unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            endpoint_host("https://localhost:9443").unwrap(),
            "localhost:9443"
        );
        assert!(endpoint_host("ftp://x").is_err());
        assert!(endpoint_tls("http://x:1", None).unwrap().is_none());
        assert!(
            endpoint_tls("https://x:1", None).is_err(),
            "needs a CA bundle"
        );
    }
}
