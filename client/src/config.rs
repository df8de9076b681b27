//! Client tuning knobs. Every limit has its unit in its name.

use std::time::Duration;

/// Default chunk size: 4 MiB. Bodies are cut into chunks of exactly this size (the last may be
/// shorter); each chunk is stored content-addressed by its SHA-256 on R chunkservers.
pub const DEFAULT_CHUNK_SIZE_BYTES: usize = 4 << 20;
/// Default inline limit: bodies of at most 16 KiB live inside the manifest, with no chunks.
pub const DEFAULT_INLINE_MAX_BYTES: usize = 16 << 10;
/// Default number of chunks held in memory per put (the one being filled counts).
pub const DEFAULT_PUT_PARALLELISM: usize = 4;
/// Default number of chunk writes (each to R chunkservers) in flight at once per client.
pub const DEFAULT_CHUNK_WRITES_MAX: usize = 16;
/// Default bound on connecting and on each message of a chunk transfer.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one attempt of one master RPC. Metadata calls answer in milliseconds; a
/// leader that stops answering (frozen, partitioned with its sockets open) costs this much before
/// the call moves on to the next master. Above the 2 s maximum election timeout, so a call does
/// not give up on a leader that is merely being elected.
pub const DEFAULT_MASTER_RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Default wait on a master call before the other masters are asked who leads (a frozen leader
/// is left for the new one within about this much after the election).
pub const DEFAULT_MASTER_PROBE_AFTER: Duration = Duration::from_secs(1);
/// Default floor of the hedging delays of chunk writes and reads.
pub const DEFAULT_HEDGE_AFTER: Duration = Duration::from_millis(500);
/// Default total time spent retrying master calls (leader changes, restarts).
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(15);
/// Default number of manifests kept in the LRU manifest cache.
pub const DEFAULT_MANIFEST_CACHE_ENTRIES: usize = 1024;
/// Default number of chunks a ranged or whole-object read fetches ahead of the consumer.
pub const DEFAULT_READ_AHEAD_CHUNKS: usize = 2;
/// Size of the data messages of a streamed PutChunk.
pub const PUT_MESSAGE_BYTES: usize = 256 << 10;

/// Tuning for a [`crate::Client`]. `ClientConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Size of the chunks a body is cut into (default 4 MiB).
    pub chunk_size_bytes: usize,
    /// Bodies of at most this many bytes are stored inline in the manifest (default 16 KiB).
    pub inline_max_bytes: usize,
    /// Chunks held in memory per put, counting the one being filled; the others are in flight
    /// to chunkservers (default 4).
    pub put_parallelism: usize,
    /// Chunk writes (each to R chunkservers) in flight at once across all puts of this client
    /// (default 16). Further chunks wait for a turn before their transfer timeout starts, so
    /// many concurrent puts queue instead of splitting the bandwidth until every transfer
    /// falls below the timeout's 1 MB/s floor.
    pub chunk_writes_max: usize,
    /// Bound on connecting to a chunkserver and on each message of a chunk transfer
    /// (default 10 s). A whole chunk transfer is bounded by this plus 1 ms per KiB.
    pub rpc_timeout: Duration,
    /// Bound on one attempt of one master RPC, and on connecting to a master (default 3 s);
    /// then the call tries the next master, within `retry_budget`.
    pub master_rpc_timeout: Duration,
    /// A master call unanswered this long makes the client ask the other masters who leads,
    /// and follow a new leader at once (default 1 s).
    pub master_probe_after: Duration,
    /// Hedging floor (default 500 ms): a chunk copy lagging this long (and at least twice the
    /// first copy's time) behind the first acknowledged copy is written to a replacement
    /// server too; a chunk read whose server has not started answering within this time is
    /// asked of the next replica too. The first to finish wins.
    pub hedge_after: Duration,
    /// Total time spent retrying a master call across masters (default 15 s).
    pub retry_budget: Duration,
    /// Entries of the manifest LRU cache (default 1024; 0 disables it).
    pub manifest_cache_entries: usize,
    /// Chunks fetched ahead of the reader (default 2; at least 1).
    pub read_ahead_chunks: usize,
    /// How to reach masters and chunkservers: mutual TLS with a certificate
    /// ([`anode_tls::TlsArgs::load`] or [`anode_tls::Tls::load`]) or, for experiments,
    /// [`anode_tls::Tls::insecure`]. Required: the default `None` is refused by
    /// [`ClientConfig::validate`].
    pub tls: Option<anode_tls::Tls>,
    /// Parquet indexing of written objects (issue 16; docs/parquet.md): the stored tail's
    /// window and caps. `None` turns it off (objects are stored plain).
    pub parquet: Option<anode_pqindex::Limits>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            inline_max_bytes: DEFAULT_INLINE_MAX_BYTES,
            put_parallelism: DEFAULT_PUT_PARALLELISM,
            chunk_writes_max: DEFAULT_CHUNK_WRITES_MAX,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
            master_rpc_timeout: DEFAULT_MASTER_RPC_TIMEOUT,
            master_probe_after: DEFAULT_MASTER_PROBE_AFTER,
            hedge_after: DEFAULT_HEDGE_AFTER,
            retry_budget: DEFAULT_RETRY_BUDGET,
            manifest_cache_entries: DEFAULT_MANIFEST_CACHE_ENTRIES,
            read_ahead_chunks: DEFAULT_READ_AHEAD_CHUNKS,
            tls: None,
            parquet: Some(anode_pqindex::Limits::default()),
        }
    }
}

impl ClientConfig {
    /// Check the knobs for values that cannot work.
    pub fn validate(&self) -> Result<(), crate::ClientError> {
        let bad = |m: &str| Err(crate::ClientError::InvalidArgument(m.to_string()));
        if self.chunk_size_bytes == 0 {
            return bad("chunk_size_bytes must be > 0");
        }
        if self.chunk_size_bytes as u64 > anode_proto::MAX_CHUNK_BYTES {
            return bad(
                "chunk_size_bytes exceeds the largest chunk a chunkserver accepts (64 MiB)",
            );
        }
        if self.put_parallelism == 0 {
            return bad("put_parallelism must be > 0");
        }
        if self.chunk_writes_max == 0 || self.chunk_writes_max > tokio::sync::Semaphore::MAX_PERMITS
        {
            return bad("chunk_writes_max must be > 0 and fit a semaphore");
        }
        if self.read_ahead_chunks == 0 {
            return bad("read_ahead_chunks must be > 0");
        }
        if self.rpc_timeout.is_zero() {
            return bad("rpc_timeout must be > 0");
        }
        if self.master_rpc_timeout.is_zero() {
            return bad("master_rpc_timeout must be > 0");
        }
        if self.hedge_after.is_zero() {
            return bad("hedge_after must be > 0");
        }
        if self.master_probe_after.is_zero() {
            return bad("master_probe_after must be > 0");
        }
        if self.tls.is_none() {
            return bad(&anode_tls::TlsError::NotConfigured.to_string());
        }
        Ok(())
    }

    /// Time bound for transferring one chunk of `len_bytes`: `rpc_timeout` plus 1 ms per KiB
    /// (a floor of about 1 MB/s).
    pub fn chunk_timeout(&self, len_bytes: u64) -> Duration {
        self.rpc_timeout + Duration::from_millis(len_bytes / 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_the_chunkservers_refuse_are_refused_up_front() {
        let with = |n: usize| ClientConfig {
            chunk_size_bytes: n,
            tls: Some(anode_tls::Tls::Insecure),
            ..ClientConfig::default()
        };
        assert!(with(0).validate().is_err());
        assert!(with(anode_proto::MAX_CHUNK_BYTES as usize)
            .validate()
            .is_ok());
        assert!(with(anode_proto::MAX_CHUNK_BYTES as usize + 1)
            .validate()
            .is_err());
        let with_tls = ClientConfig {
            tls: Some(anode_tls::Tls::Insecure),
            ..ClientConfig::default()
        };
        assert!(with_tls.validate().is_ok());
        assert!(ClientConfig::default().validate().is_err(), "no TLS setup");
    }
}
