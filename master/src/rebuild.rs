//! `anode ctl rebuild`: when every master's data is lost, turn the newest good metadata
//! export kept by the chunkservers ([`crate::export`]) back into a backup directory, in the
//! exact format `anode ctl backup` writes, for `anode master --restore DIR`
//! (docs/operations.md, "Rebuild after losing every master").
//!
//! No master is needed: the chunkservers named are asked directly (`ListExports`), the
//! exports are tried newest first (raft index, then term, then creation time) and each copy
//! of one export in turn; a copy whose payload does not hash to its SHA-256 (checked by the
//! chunkserver as it streams, and again here, and then by the backup checks) is skipped for
//! the next.

use std::path::Path;
use std::time::{Duration, Instant};

use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::{ExportInfo, GetExportRequest, ListExportsRequest};
use anyhow::Context;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backup::{self, BackupError};

/// One export as one chunkserver listed it.
#[derive(Clone, Debug)]
struct Found {
    source: String,
    info: ExportInfo,
}

impl Found {
    fn key(&self) -> (u64, u64, u64) {
        let h = self.info.header.clone().unwrap_or_default();
        (h.raft_index, h.raft_term, h.created_unix_ms)
    }
}

async fn client(
    tls: &anode_tls::Tls,
    addr: &str,
) -> anyhow::Result<ChunkserverClient<tonic::transport::Channel>> {
    let ep = tls
        .endpoint(addr, anode_tls::Role::Chunkserver)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(3600));
    Ok(ChunkserverClient::new(ep.connect().await?)
        .max_decoding_message_size(crate::limits::MAX_CLIENT_MESSAGE_BYTES))
}

async fn list(tls: &anode_tls::Tls, addr: &str) -> anyhow::Result<Vec<ExportInfo>> {
    let mut c = client(tls, addr).await?;
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        c.list_exports(ListExportsRequest {}),
    )
    .await
    .context("no answer within 30 s")?
    .map_err(|st| anyhow::anyhow!("{}", st.message()))?;
    Ok(r.into_inner().exports)
}

/// Fetch export `f` into `out` as a backup directory and check it as a restore will.
async fn fetch(tls: &anode_tls::Tls, f: &Found, out: &Path) -> anyhow::Result<backup::Manifest> {
    let want = f.info.header.clone().context("listed without a header")?;
    let mut c = client(tls, &f.source).await?;
    let mut s = c
        .get_export(GetExportRequest {
            name: f.info.name.clone(),
        })
        .await
        .map_err(|st| anyhow::anyhow!("{}", st.message()))?
        .into_inner();
    let tmp = out.join(format!("{}.tmp", backup::PAYLOAD_FILE));
    let mut file =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(&tmp).await?);
    let mut sha = Sha256::new();
    let mut bytes = 0u64;
    let mut header = None;
    while let Some(m) = s
        .message()
        .await
        .map_err(|st| anyhow::anyhow!("{}", st.message()))?
    {
        if let Some(h) = m.header {
            header = Some(h);
        }
        sha.update(&m.data);
        bytes += m.data.len() as u64;
        file.write_all(&m.data).await?;
    }
    let h = header.context("the export stream had no header")?;
    anyhow::ensure!(h == want, "the export's header changed since it was listed");
    anyhow::ensure!(
        bytes == h.size,
        "payload of {bytes} bytes, the export says {}",
        h.size
    );
    anyhow::ensure!(
        sha.finalize().as_slice() == h.sha256.as_slice(),
        "payload does not hash to the export's sha256"
    );
    file.flush().await?;
    file.get_ref().sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, out.join(backup::PAYLOAD_FILE)).await?;
    let (o, manifest) = (out.to_path_buf(), h.manifest.clone());
    let m = tokio::task::spawn_blocking(move || -> Result<backup::Manifest, BackupError> {
        anode_common::fsutil::fsync_dir(&o).map_err(|source| BackupError::Io {
            path: o.clone(),
            source,
        })?;
        backup::write_durably(&o, backup::MANIFEST_FILE, &manifest)?;
        let m = backup::read_manifest(&o)?;
        backup::verify_payload(&o, &m)?;
        Ok(m)
    })
    .await??;
    anyhow::ensure!(
        m.raft_index == h.raft_index
            && m.raft_term == h.raft_term
            && m.payload_sha256 == hex::encode(&h.sha256),
        "the manifest inside the export (index {}, term {}) is not the export's (index {}, term {})",
        m.raft_index,
        m.raft_term,
        h.raft_index,
        h.raft_term
    );
    Ok(m)
}

/// Remove what a failed [`fetch`] left in `out`.
fn clean(out: &Path) {
    for f in [
        backup::MANIFEST_FILE.to_string(),
        backup::PAYLOAD_FILE.to_string(),
        format!("{}.tmp", backup::PAYLOAD_FILE),
        format!("{}.tmp", backup::MANIFEST_FILE),
    ] {
        let _ = std::fs::remove_file(out.join(f));
    }
}

/// `anode ctl rebuild --chunkservers ... --out DIR`: list every chunkserver's exports, fetch
/// the newest one that verifies into DIR. The JSON answer names the export chosen, where it
/// came from, its age (the recovery point), what was skipped and why.
pub async fn rebuild(
    tls: &anode_tls::Tls,
    chunkservers: &[String],
    out: &Path,
) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    anyhow::ensure!(!chunkservers.is_empty(), "--chunkservers is empty");
    anode_common::fsutil::create_dir_all_durable(out)
        .with_context(|| format!("create {}", out.display()))?;
    if out.join(backup::MANIFEST_FILE).exists() {
        return Err(BackupError::Exists(out.to_path_buf()).into());
    }
    let lists = futures::future::join_all(chunkservers.iter().map(|a| list(tls, a))).await;
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for (addr, r) in chunkservers.iter().zip(lists) {
        match r {
            Ok(l) => found.extend(l.into_iter().map(|info| Found {
                source: addr.clone(),
                info,
            })),
            Err(e) => {
                tracing::warn!(chunkserver = %addr, err = %format!("{e:#}"), "could not list exports");
                unreachable.push(json!({"chunkserver": addr, "error": format!("{e:#}")}));
            }
        }
    }
    if found.is_empty() {
        anyhow::bail!(
            "no metadata export found on any of the {} chunkservers asked ({}){}: was \
             --metadata-export-interval-secs 0 on the masters, or are these the right \
             chunkservers?",
            chunkservers.len(),
            chunkservers.join(", "),
            if unreachable.is_empty() {
                String::new()
            } else {
                format!("; {} did not answer: {unreachable:?}", unreachable.len())
            }
        );
    }
    // Newest first; copies of one export next to each other.
    found.sort_by(|a, b| b.key().cmp(&a.key()).then(a.source.cmp(&b.source)));
    let mut skipped = Vec::new();
    for f in &found {
        match fetch(tls, f, out).await {
            Ok(m) => {
                let h = f.info.header.clone().unwrap_or_default();
                let copies = found
                    .iter()
                    .filter(|o| o.info.header.as_ref().map(|x| &x.sha256) == Some(&h.sha256))
                    .count();
                let age_ms = anode_common::now_ms().saturating_sub(h.created_unix_ms);
                return Ok(json!({
                    "dir": out.display().to_string(),
                    "source": f.source,
                    "export": f.info.name,
                    "raft_index": m.raft_index,
                    "raft_term": m.raft_term,
                    "created_unix_ms": h.created_unix_ms,
                    "age_secs": age_ms as f64 / 1000.0,
                    "payload_bytes": m.payload_bytes,
                    "payload_sha256": m.payload_sha256,
                    "records": m.records,
                    "voters": m.voters,
                    "copies_listed": copies,
                    "exports_listed": found.len(),
                    "skipped": skipped,
                    "unreachable": unreachable,
                    "seconds": t0.elapsed().as_secs_f64(),
                }));
            }
            Err(e) => {
                clean(out);
                tracing::warn!(chunkserver = %f.source, export = %f.info.name, err = %format!("{e:#}"), "export copy skipped");
                skipped.push(json!({
                    "chunkserver": f.source,
                    "export": f.info.name,
                    "error": format!("{e:#}"),
                }));
            }
        }
    }
    anyhow::bail!(
        "none of the {} metadata exports listed verified: {}",
        found.len(),
        serde_json::to_string(&skipped).unwrap_or_default()
    )
}
