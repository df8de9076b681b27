//! Limits of the master's gRPC server (metadata API and raft transport on one port): what one
//! connection or one message may hold.
//!
//! There is no server-wide request timeout: `SendSnapshot` is a stream that legitimately runs
//! as long as a snapshot takes (it has its own idle guard and the sender a minimum rate). Every
//! unary handler bounds its own waits (`service::RAFT_TIMEOUT` on raft, 5 s on leadership
//! moves), and a client's `grpc-timeout` is honoured.

use std::time::Duration;

/// Largest message of the metadata API. A chunkserver's full chunk report lists every chunk
/// it holds (~36 bytes each: 64 MiB is about 1.8M chunks, 7 TiB at 4 MiB chunks); commands
/// built from a request are capped lower (`service::MAX_COMMAND_BYTES`).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 << 20;

/// HTTP/2 streams (requests) one connection may have open: a gateway or client multiplexes
/// all its calls to the leader on one connection (writers: `put_parallelism` x puts).
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Requests served at once per connection; the rest wait on the connection.
pub const CONCURRENCY_LIMIT_PER_CONNECTION: usize = 1024;

/// HTTP/2 keepalive: a peer gone without closing (power loss, partition) is dropped after
/// interval + timeout instead of holding streams and memory.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`HTTP2_KEEPALIVE_INTERVAL`].
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The limits of the master's gRPC listener (the constants above).
pub const LIMITS: anode_tls::ServerLimits = anode_tls::ServerLimits {
    max_concurrent_streams: MAX_CONCURRENT_STREAMS,
    concurrency_per_connection: CONCURRENCY_LIMIT_PER_CONNECTION,
    http2_keepalive_interval: HTTP2_KEEPALIVE_INTERVAL,
    http2_keepalive_timeout: HTTP2_KEEPALIVE_TIMEOUT,
};
