//! The scrubber: re-hashes every blob at a bounded rate; a mismatch is quarantined and
//! reported in the next heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// Run passes forever: each pass checks every blob once, then waits `interval`. The rate is
/// read before every blob (SIGHUP can change it: [`spawn_rate_reloader`]); at 0 the scrubber
/// idles, checking again every `interval`.
pub async fn run(
    store: BlobStore,
    rate: Arc<AtomicU64>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let list = if rate.load(Ordering::Relaxed) == 0 {
            Vec::new()
        } else {
            store.list().unwrap_or_default()
        };
        for (sha, len) in list {
            if *shutdown.borrow() {
                return;
            }
            let rate = rate.load(Ordering::Relaxed);
            if rate == 0 {
                break;
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

/// On every SIGHUP: read `scrub-bytes-per-sec` again from the `--config` file (when it has
/// the key) and log what it became.
pub fn spawn_rate_reloader(
    rate: Arc<AtomicU64>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let Some(path) = anode_common::cli::config_file() else {
        return Ok(());
    };
    anode_common::on_sighup(shutdown, move || {
        let next = anode_common::cli::read_config_table(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| anode_common::cli::config_u64(&t, "scrub-bytes-per-sec"));
        match next {
            Ok(Some(v)) => {
                let old = rate.swap(v, Ordering::Relaxed);
                tracing::info!(config = %path.display(), old, new = v, "SIGHUP: scrub-bytes-per-sec reloaded");
            }
            Ok(None) => {
                tracing::info!(config = %path.display(), "SIGHUP: scrub-bytes-per-sec unchanged (not in the file)");
            }
            Err(e) => tracing::warn!(error = %e, "SIGHUP: scrub-bytes-per-sec unchanged"),
        }
    })
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
