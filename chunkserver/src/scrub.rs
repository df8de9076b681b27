//! The scrubber: re-hashes every blob at a bounded rate; a mismatch is quarantined and
//! reported in the next heartbeat.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::BlobStore;

/// Seconds to wait before a blob of `len` bytes may be hashed at `rate` bytes/s (pure).
pub fn pause_for(len: u64, rate_bytes_per_sec: u64) -> Duration {
    if rate_bytes_per_sec == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(len as f64 / rate_bytes_per_sec as f64)
}

/// Run passes forever: each pass checks every blob once, then waits `interval`.
pub async fn run(
    store: BlobStore,
    rate: u64,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if rate == 0 {
        return;
    }
    loop {
        let list = store.list().unwrap_or_default();
        for (sha, len) in list {
            if *shutdown.borrow() {
                return;
            }
            match store.verify(&sha).await {
                Ok(true) => {}
                Ok(false) => {
                    crate::metrics::SCRUB_CORRUPT.inc();
                    store.quarantine(&sha);
                }
                // Quarantined and reported by `verify` (a read fault is a bad copy).
                Err(crate::error::ChunkError::Corrupt(_)) => crate::metrics::SCRUB_CORRUPT.inc(),
                Err(_) => {} // deleted meanwhile, or a resource shortage (next pass)
            }
            crate::metrics::SCRUBBED_BYTES.inc_by(len);
            tokio::select! {
                _ = tokio::time::sleep(pause_for(len, rate)) => {}
                _ = shutdown.changed() => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_scales_with_rate() {
        assert_eq!(pause_for(1 << 20, 1 << 20), Duration::from_secs(1));
        assert_eq!(pause_for(5, 0), Duration::ZERO);
    }
}
