//! Per-connection limits of a gRPC server, one shape for the master and the chunkserver
//! listeners (each crate names its own values and says why, in its `limits` module).

use std::time::Duration;

/// What one connection to a gRPC server may hold, and how a vanished peer is noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// HTTP/2 streams (requests) one connection may have open.
    pub max_concurrent_streams: u32,
    /// Requests served at once per connection; the rest wait on the connection.
    pub concurrency_per_connection: usize,
    /// HTTP/2 keepalive ping interval: a peer gone without closing (power loss, partition)
    /// is dropped after interval + timeout instead of holding streams and memory.
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 keepalive timeout (see the interval).
    pub http2_keepalive_timeout: Duration,
}

/// TCP keepalive of every server connection.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

impl ServerLimits {
    /// `builder` (e.g. one with TLS set, `Tls::server_builder`) with these limits.
    pub fn apply(&self, builder: tonic::transport::Server) -> tonic::transport::Server {
        builder
            .max_concurrent_streams(self.max_concurrent_streams)
            .concurrency_limit_per_connection(self.concurrency_per_connection)
            .http2_keepalive_interval(Some(self.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(self.http2_keepalive_timeout))
            .tcp_keepalive(Some(TCP_KEEPALIVE))
    }
}
