//! Metadata exports to chunkservers, for the worst case where every master's data is lost
//! (docs/operations.md, "Rebuild after losing every master").
//!
//! Every `--metadata-export-interval-secs` the leader takes the same pinned snapshot a backup
//! takes ([`MasterService::pin_backup`]), writes it as a backup directory with the backup
//! writer ([`crate::backup::BackupWriter`]: `manifest.json` + `metadata.pieces`) under
//! `DATA/export-staging/`, and sends the payload with the manifest as its header to
//! `--metadata-export-copies` live chunkservers on distinct racks where possible
//! (`Chunkserver/PutExport`). `anode ctl rebuild` ([`crate::rebuild`]) fetches the newest
//! good one back into a backup directory for `anode master --restore`.
//!
//! The export covers the state applied at its raft index: objects committed later are not in
//! a namespace rebuilt from it (that is the recovery point; the interval is the knob).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::{ExportHeader, PutExportRequest};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::backup::{self, BackupError, BackupWriter};
use crate::service::MasterService;
use crate::store::StreamPiece;

/// The staging directory under the master's data directory.
pub const STAGING_DIR: &str = "export-staging";
/// Payload bytes per `PutExport` message.
const PIECE_BYTES: usize = 1 << 20;

/// What a failed export ran into.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The snapshot could not be pinned (not the leader any more, raft busy).
    #[error("pin the snapshot: {0}")]
    Snapshot(String),
    /// Writing the staging copy failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// No chunkserver is alive.
    #[error("no live chunkserver to store the export on")]
    NoChunkservers,
    /// Every chunkserver asked refused or failed.
    #[error("no chunkserver stored the export: {0}")]
    AllFailed(String),
    /// A task of the export panicked or was cancelled.
    #[error("export task: {0}")]
    Task(String),
}

/// How often and how widely exports are made.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Between two exports (zero: no exports).
    pub interval: Duration,
    /// Chunkservers that get a copy of each export.
    pub copies: usize,
}

/// One finished export.
#[derive(Clone, Debug)]
pub struct Exported {
    /// Raft index of the state.
    pub raft_index: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// The chunkservers that stored it.
    pub stored_on: Vec<String>,
    /// The ones that failed, with why.
    pub failed: Vec<(String, String)>,
}

/// Pure: up to `n` of `servers` (`(id, addr, rack)`), distinct racks first, starting at a
/// position that moves with `rotate` so successive exports spread over the servers.
pub fn pick_targets(mut servers: Vec<(u64, String, String)>, n: usize, rotate: u64) -> Vec<String> {
    if servers.is_empty() || n == 0 {
        return Vec::new();
    }
    servers.sort_by_key(|s| s.0);
    let k = (rotate % servers.len() as u64) as usize;
    servers.rotate_left(k);
    let mut racks = std::collections::BTreeSet::new();
    let mut picked = Vec::new();
    let mut rest = Vec::new();
    for (_, addr, rack) in servers {
        if picked.len() < n && racks.insert(rack) {
            picked.push(addr);
        } else {
            rest.push(addr);
        }
    }
    picked.extend(rest.into_iter().take(n - picked.len()));
    picked
}

/// Run exports on this member while it leads, every `cfg.interval`, until `shutdown`.
pub async fn export_loop(
    service: MasterService,
    data: PathBuf,
    tls: anode_tls::Tls,
    cfg: ExportConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    crate::metrics::METADATA_EXPORT_INTERVAL.set(cfg.interval.as_secs() as i64);
    if cfg.interval.is_zero() {
        tracing::info!("metadata exports are off (--metadata-export-interval-secs 0)");
        return;
    }
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut round = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if !service.is_leader() {
            continue;
        }
        round += 1;
        let t0 = Instant::now();
        match export_once(&service, &data, &tls, cfg.copies, round).await {
            Ok(e) => {
                let took = t0.elapsed();
                crate::metrics::METADATA_EXPORTS
                    .with_label_values(&["ok"])
                    .inc();
                crate::metrics::METADATA_EXPORT_SECONDS.observe(took.as_secs_f64());
                crate::metrics::METADATA_EXPORT_BYTES.inc_by(e.bytes * e.stored_on.len() as u64);
                crate::metrics::METADATA_EXPORT_LAST_INDEX.set(e.raft_index as i64);
                crate::metrics::METADATA_EXPORT_LAST_TIME
                    .set((anode_common::now_ms() / 1000) as i64);
                crate::metrics::METADATA_EXPORT_LAST_COPIES.set(e.stored_on.len() as i64);
                if e.stored_on.len() < cfg.copies {
                    tracing::warn!(
                        raft_index = e.raft_index,
                        stored_on = ?e.stored_on,
                        failed = ?e.failed,
                        wanted = cfg.copies,
                        "metadata export stored on fewer chunkservers than asked"
                    );
                } else {
                    tracing::info!(
                        raft_index = e.raft_index,
                        bytes = e.bytes,
                        stored_on = ?e.stored_on,
                        ms = took.as_millis() as u64,
                        "metadata export stored"
                    );
                }
            }
            Err(err) => {
                crate::metrics::METADATA_EXPORTS
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(%err, "metadata export failed");
            }
        }
    }
}

/// One export: pin, stage, copy to the chosen chunkservers, remove the staging copy.
pub async fn export_once(
    service: &MasterService,
    data: &Path,
    tls: &anode_tls::Tls,
    copies: usize,
    round: u64,
) -> Result<Exported, ExportError> {
    let (header, mut rx) = service
        .pin_backup()
        .await
        .map_err(|st| ExportError::Snapshot(st.message().to_string()))?;
    let staging = data.join(STAGING_DIR);
    let st = staging.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<backup::Written, ExportError> {
        match std::fs::remove_dir_all(&st) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BackupError::Io {
                    path: st.clone(),
                    source,
                }
                .into())
            }
        }
        let mut w = BackupWriter::create(&st)?;
        w.header(header)?;
        while let Some(p) = rx.blocking_recv() {
            match p.map_err(BackupError::from)? {
                StreamPiece::Records(b) => w.records(&b)?,
                StreamPiece::End { records, checksum } => return Ok(w.finish(records, checksum)?),
            }
        }
        Err(BackupError::Stream("the snapshot stream ended without its end".into()).into())
    })
    .await
    .map_err(|e| ExportError::Task(e.to_string()))??;
    let r = send_copies(service, &staging, tls, copies, round, &written).await;
    let _ = tokio::fs::remove_dir_all(&staging).await;
    r
}

async fn send_copies(
    service: &MasterService,
    staging: &Path,
    tls: &anode_tls::Tls,
    copies: usize,
    round: u64,
    written: &backup::Written,
) -> Result<Exported, ExportError> {
    let m = &written.manifest;
    let manifest_path = staging.join(backup::MANIFEST_FILE);
    let manifest = tokio::fs::read(&manifest_path)
        .await
        .map_err(|source| BackupError::Io {
            path: manifest_path,
            source,
        })?;
    let header = ExportHeader {
        raft_index: m.raft_index,
        raft_term: m.raft_term,
        created_unix_ms: m.created_unix_ms,
        sha256: hex::decode(&m.payload_sha256).map_err(|e| ExportError::Task(e.to_string()))?,
        size: m.payload_bytes,
        voters: m.voters.clone(),
        leader_id: m.leader_id,
        manifest,
    };
    let targets = pick_targets(service.live_chunkservers(), copies, round);
    if targets.is_empty() {
        return Err(ExportError::NoChunkservers);
    }
    let payload = staging.join(&m.payload);
    let results = futures::future::join_all(
        targets
            .iter()
            .map(|addr| put_export(tls, addr, header.clone(), &payload)),
    )
    .await;
    let mut out = Exported {
        raft_index: m.raft_index,
        bytes: m.payload_bytes,
        stored_on: Vec::new(),
        failed: Vec::new(),
    };
    for (addr, r) in targets.into_iter().zip(results) {
        match r {
            Ok(()) => out.stored_on.push(addr),
            Err(e) => out.failed.push((addr, e)),
        }
    }
    if out.stored_on.is_empty() {
        return Err(ExportError::AllFailed(
            out.failed
                .iter()
                .map(|(a, e)| format!("{a}: {e}"))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    Ok(out)
}

/// Send one export to the chunkserver at `addr`.
async fn put_export(
    tls: &anode_tls::Tls,
    addr: &str,
    header: ExportHeader,
    payload: &Path,
) -> Result<(), String> {
    let ep = tls
        .endpoint(addr, anode_tls::Role::Chunkserver)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(600));
    let mut c = ChunkserverClient::new(ep.connect().await.map_err(|e| e.to_string())?)
        .max_encoding_message_size(2 * PIECE_BYTES + (1 << 20));
    let mut file = tokio::fs::File::open(payload)
        .await
        .map_err(|e| format!("{}: {e}", payload.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let first = PutExportRequest {
            header: Some(header),
            data: Vec::new(),
        };
        if tx.send(first).await.is_err() {
            return Ok(());
        }
        loop {
            let mut buf = vec![0u8; PIECE_BYTES];
            let mut n = 0;
            while n < buf.len() {
                let k = file.read(&mut buf[n..]).await?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            let piece = PutExportRequest {
                header: None,
                data: buf,
            };
            if tx.send(piece).await.is_err() {
                return Ok(());
            }
        }
    });
    let r = c
        .put_export(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let read: std::io::Result<()> = reader.await.map_err(|e| e.to_string())?;
    read.map_err(|e| format!("read {}: {e}", payload.display()))?;
    r.map(|_| ()).map_err(|st| st.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u64, rack: &str) -> (u64, String, String) {
        (id, format!("cs-{id}"), rack.to_string())
    }

    #[test]
    fn targets_prefer_distinct_racks_and_rotate() {
        let servers = vec![s(3, "b"), s(1, "a"), s(2, "a"), s(4, "c")];
        assert_eq!(
            pick_targets(servers.clone(), 3, 0),
            vec!["cs-1", "cs-3", "cs-4"]
        );
        // Rotated by one: starts at cs-2 (rack a), then b and c.
        assert_eq!(
            pick_targets(servers.clone(), 3, 1),
            vec!["cs-2", "cs-3", "cs-4"]
        );
        // More copies than racks: filled from the rest.
        assert_eq!(pick_targets(servers.clone(), 4, 0).len(), 4);
        // Fewer servers than copies, or none.
        assert_eq!(pick_targets(servers[..1].to_vec(), 3, 7), vec!["cs-3"]);
        assert!(pick_targets(Vec::new(), 3, 0).is_empty());
        // One rack: still n distinct servers.
        let one = vec![s(1, ""), s(2, ""), s(3, ""), s(4, "")];
        assert_eq!(pick_targets(one, 3, 0), vec!["cs-1", "cs-2", "cs-3"]);
    }
}
