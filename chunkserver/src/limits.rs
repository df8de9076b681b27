//! Limits of the data API server (tonic): what one connection or one request may hold.
//!
//! Chunk transfers are streams that can legitimately run long (64 MiB at a slow link), so
//! there is no whole-request timeout; an idle guard ends a put whose client stops sending and
//! a get whose client stops reading.

use std::time::Duration;

// The largest message is `crate::MAX_MESSAGE_BYTES` (set per service in `run`).

/// HTTP/2 streams (requests) one connection may have open. A client has at most
/// `chunk_writes_max` (16) writes plus its reads in flight per chunkserver; a gateway serving
/// many S3 requests shares one connection, hence the headroom.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// HTTP/2 flow-control window of one PutChunk stream: what a client may send ahead of what the
/// chunkserver has taken (hyper's default is 1 MiB). Four 256 KiB messages wait in the
/// blob's pipe (`store::PIPE_PIECES`) while its thread writes; this lets the next ones arrive
/// meanwhile.
pub const STREAM_WINDOW_BYTES: u32 = 2 << 20;

/// HTTP/2 flow-control window of one connection, shared by all its streams (hyper's default
/// is 1 MiB). A gateway writes up to `chunk_writes_max` (16) chunks at once over one
/// connection per chunkserver; with 1 MiB, one stream whose blob thread was busy with a disk
/// write held the window of all the others (issue 18). Bounds what one connection buffers.
pub const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// Requests served at once per connection (others wait in the connection's queue).
pub const CONCURRENCY_LIMIT_PER_CONNECTION: usize = 256;

/// HTTP/2 keepalive pings: a peer that vanished without closing (power loss, partition) is
/// dropped after interval + timeout instead of holding its streams for ever.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`HTTP2_KEEPALIVE_INTERVAL`].
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A put whose client sends nothing for this long is abandoned (its reservation and temp
/// file released); a get whose client reads nothing for this long is ended.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound of the unary `StatChunk` (a touch fsyncs the blob).
pub const UNARY_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits of the chunkserver's gRPC listener (the constants above).
pub const LIMITS: anode_tls::ServerLimits = anode_tls::ServerLimits {
    max_concurrent_streams: MAX_CONCURRENT_STREAMS,
    concurrency_per_connection: CONCURRENCY_LIMIT_PER_CONNECTION,
    http2_keepalive_interval: HTTP2_KEEPALIVE_INTERVAL,
    http2_keepalive_timeout: HTTP2_KEEPALIVE_TIMEOUT,
};

/// The server builder every chunkserver listener starts from (plain; tests).
pub fn server() -> tonic::transport::Server {
    windows(LIMITS.apply(tonic::transport::Server::builder()))
}

/// `builder` with the chunkserver's flow-control windows ([`STREAM_WINDOW_BYTES`],
/// [`CONNECTION_WINDOW_BYTES`]).
pub fn windows(builder: tonic::transport::Server) -> tonic::transport::Server {
    builder
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
}
