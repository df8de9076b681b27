//! Stale multipart uploads: aborted after `--multipart-stale-hours` so their parts' chunks
//! become garbage. Every gateway may run the sweep; aborting an upload twice is harmless
//! (`NoSuchUpload` is ignored).

use std::sync::Arc;
use std::time::Duration;

use anode_client::{ClientError, ErrorCode, ListMultipartUploadsRequest};
use anode_proto::MultipartUpload;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::metrics::METRICS;
use crate::server::wait_for_true;

/// Uploads listed per page while sweeping.
const SWEEP_PAGE_UPLOADS: u32 = 1000;

/// Pure: the uploads initiated more than `max_age_ms` before `now_ms`.
pub fn stale_uploads(
    uploads: &[MultipartUpload],
    now_ms: u64,
    max_age_ms: u64,
) -> Vec<&MultipartUpload> {
    uploads
        .iter()
        .filter(|u| now_ms.saturating_sub(u.initiated_ms) > max_age_ms)
        .collect()
}

/// Pure: time between sweeps for a stale age: a quarter of it, between 1 minute and 1 hour.
pub fn sweep_interval(max_age: Duration) -> Duration {
    (max_age / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600))
}

/// One pass over every bucket; returns how many uploads were aborted.
pub async fn sweep_once(
    backend: &dyn Backend,
    now_ms: u64,
    max_age_ms: u64,
) -> Result<usize, ClientError> {
    let mut aborted = 0;
    for bucket in backend.list_buckets().await? {
        let mut req = ListMultipartUploadsRequest {
            bucket: bucket.name.clone(),
            max_uploads: SWEEP_PAGE_UPLOADS,
            ..Default::default()
        };
        loop {
            let page = match backend.list_multipart_uploads(req.clone()).await {
                Ok(p) => p,
                Err(e) if e.code() == ErrorCode::NoSuchBucket => break,
                Err(e) => return Err(e),
            };
            for u in stale_uploads(&page.uploads, now_ms, max_age_ms) {
                match backend
                    .abort_multipart(&u.bucket, &u.key, &u.upload_id)
                    .await
                {
                    Ok(()) => aborted += 1,
                    Err(e) if e.code() == ErrorCode::NoSuchUpload => {}
                    Err(e) => return Err(e),
                }
            }
            match (page.is_truncated, page.uploads.last()) {
                (true, Some(last)) => {
                    req.key_marker = last.key.clone();
                    req.upload_id_marker = last.upload_id.clone();
                }
                _ => break,
            }
        }
    }
    METRICS.stale_uploads_aborted.inc_by(aborted as u64);
    Ok(aborted)
}

/// Run sweeps until `shutdown` turns true.
pub fn spawn(backend: Arc<dyn Backend>, max_age: Duration, mut shutdown: watch::Receiver<bool>) {
    let interval = sweep_interval(max_age);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wait_for_true(&mut shutdown) => return,
            }
            let now_ms = anode_common::now_ms();
            match sweep_once(&*backend, now_ms, max_age.as_millis() as u64).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(aborted = n, "aborted stale multipart uploads"),
                Err(e) => tracing::warn!(error = %e, "stale upload sweep failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let up = |ms| MultipartUpload {
            initiated_ms: ms,
            ..Default::default()
        };
        let ups = [up(0), up(500), up(1000)];
        let stale = stale_uploads(&ups, 1000, 400);
        assert_eq!(
            stale.iter().map(|u| u.initiated_ms).collect::<Vec<_>>(),
            [0, 500]
        );
        assert!(stale_uploads(&ups, 1000, 1000).is_empty());
        assert_eq!(
            sweep_interval(Duration::from_secs(24 * 3600)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }
}
