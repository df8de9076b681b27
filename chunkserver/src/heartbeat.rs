//! Registration and heartbeats to the master leader, and the commands in their replies.
//!
//! After registering (id, epoch) the first heartbeat carries a full chunk report; later
//! ones carry what was added, removed or found corrupt since. A reply whose epoch is not
//! ours is ignored (fencing); `reregister` makes us register again (the epoch rises).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anode_client::{MasterConn, MasterConnOptions};
use anode_proto::chunk_command::Op;
use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::*;
use tokio::sync::watch;

use crate::store::{disk_size, free_bytes, BlobStore, Events};

/// What the heartbeat loop needs.
pub struct Heartbeat {
    /// Blob store.
    pub store: BlobStore,
    /// Master connection.
    pub masters: MasterConn,
    /// Address clients dial.
    pub advertise: String,
    /// Rack label.
    pub rack: String,
    /// Stable identity.
    pub uuid: String,
    /// Interval.
    pub interval: Duration,
    /// Period of full chunk reports.
    pub full_report_every: Duration,
    /// Current epoch, shared with the data service.
    pub epoch: Arc<AtomicU64>,
    /// The id the master gave at registration (0 until then), shared with the admin page.
    pub id: Arc<AtomicU64>,
    /// How to reach other chunkservers (replication).
    pub tls: anode_tls::Tls,
}

/// Build a heartbeat request from the store's state and pending events (pure apart from
/// reading counters).
pub fn build_request(
    store: &BlobStore,
    id: u64,
    epoch: u64,
    ev: &Events,
    full: Option<Vec<Vec<u8>>>,
    results: &Results,
) -> HeartbeatRequest {
    store.refresh_full();
    let disks = store
        .disks()
        .iter()
        .map(|d| DiskHealth {
            path: d.path.display().to_string(),
            capacity_bytes: disk_size(&d.path),
            used_bytes: disk_size(&d.path).saturating_sub(free_bytes(&d.path)),
            full: d.full.load(Ordering::SeqCst),
            failed: false,
            error: String::new(),
        })
        .collect();
    let capacity = if store.capacity_bytes() > 0 {
        store.capacity_bytes()
    } else {
        store.disks().iter().map(|d| disk_size(&d.path)).sum()
    };
    let full_report = full.is_some();
    HeartbeatRequest {
        id,
        epoch,
        capacity_bytes: capacity,
        used_bytes: store.used_bytes(),
        chunks: store.chunk_count(),
        disks,
        added: full.unwrap_or_else(|| ev.added.clone()),
        removed: ev.removed.clone(),
        full_report,
        corrupt: ev.corrupt.clone(),
        done_commands: results.done.clone(),
        failed_commands: results.failed.clone(),
    }
}

/// Outcomes of master commands, reported in the next heartbeat.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// Finished.
    pub done: Vec<u64>,
    /// Failed or refused.
    pub failed: Vec<u64>,
}

/// Commands run in the background (bounded), so a slow copy never delays heartbeats.
#[derive(Clone)]
struct Executor {
    results: Arc<parking_lot::Mutex<Results>>,
    running: Arc<parking_lot::Mutex<std::collections::HashSet<u64>>>,
    /// Signalled when the last running command finished: report at once, so the master can
    /// hand out the next batch without waiting a whole heartbeat interval.
    idle: Arc<tokio::sync::Notify>,
    permits: Arc<tokio::sync::Semaphore>,
    /// How to reach the chunkservers copies are replicated from.
    tls: anode_tls::Tls,
}

/// Copies and deletions run at once per server.
const COMMAND_CONCURRENCY: usize = 4;

impl Executor {
    fn new(tls: anode_tls::Tls) -> Executor {
        Executor {
            tls,
            results: Arc::default(),
            running: Arc::default(),
            idle: Arc::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(COMMAND_CONCURRENCY)),
        }
    }

    /// Run `c` in the background unless a command with its id is already running (a
    /// re-sent command); its outcome goes into the next heartbeat.
    fn start(&self, store: BlobStore, c: ChunkCommand) {
        if !self.running.lock().insert(c.id) {
            return;
        }
        let exec = self.clone();
        tokio::spawn(async move {
            let _p = exec.permits.clone().acquire_owned().await;
            let id = c.id;
            let ok = execute(&store, &exec.tls, c).await;
            let mut r = exec.results.lock();
            if ok {
                r.done.push(id)
            } else {
                r.failed.push(id)
            }
            drop(r);
            let mut running = exec.running.lock();
            running.remove(&id);
            if running.is_empty() {
                exec.idle.notify_one();
            }
        });
    }
}

impl Heartbeat {
    async fn register(&self) -> Option<(u64, u64)> {
        let req = RegisterChunkserverRequest {
            addr: self.advertise.clone(),
            rack: self.rack.clone(),
            capacity_bytes: self.store.capacity_bytes(),
            uuid: self.uuid.clone(),
        };
        let r = self
            .masters
            .call(|mut c| {
                let req = req.clone();
                async move { c.register_chunkserver(req).await }
            })
            .await;
        match r {
            Ok(r) => {
                tracing::info!(id = r.id, epoch = r.epoch, "registered with the master");
                Some((r.id, r.epoch))
            }
            Err(e) => {
                tracing::warn!(error = %e, "registration failed; retrying");
                None
            }
        }
    }

    /// Run until shutdown. Never exits on master errors.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut reg: Option<(u64, u64)> = None;
        let mut pending = Events::default();
        let exec = Executor::new(self.tls.clone());
        let mut send_full = true;
        let mut last_full = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = exec.idle.notified() => {}
                _ = shutdown.changed() => return,
            }
            let Some((id, epoch)) = reg else {
                reg = self.register().await;
                if let Some((i, e)) = reg {
                    self.id.store(i, Ordering::SeqCst);
                    self.epoch.store(e, Ordering::SeqCst);
                    send_full = true;
                }
                continue;
            };
            let ev = self.store.take_events();
            pending.added.extend(ev.added);
            pending.removed.extend(ev.removed);
            pending.corrupt.extend(ev.corrupt);
            if last_full.elapsed() >= self.full_report_every {
                send_full = true;
            }
            let full = if send_full {
                last_full = tokio::time::Instant::now();
                self.store
                    .list()
                    .ok()
                    .map(|l| l.into_iter().map(|(s, _)| s).collect())
            } else {
                None
            };
            let results = std::mem::take(&mut *exec.results.lock());
            let req = build_request(&self.store, id, epoch, &pending, full, &results);
            let r = self.masters.call(|mut c| {
                let req = req.clone();
                async move { c.heartbeat(req).await }
            });
            match r.await {
                Ok(resp) if resp.reregister => {
                    tracing::warn!("master asked to re-register");
                    reg = None;
                }
                Ok(resp) => {
                    pending = Events::default();
                    send_full = resp.send_full_report;
                    crate::metrics::USED_BYTES.set(self.store.used_bytes() as i64);
                    crate::metrics::CHUNKS.set(self.store.chunk_count() as i64);
                    if resp.epoch == epoch {
                        for c in resp.commands {
                            exec.start(self.store.clone(), c);
                        }
                    } else {
                        tracing::warn!(
                            ours = epoch,
                            theirs = resp.epoch,
                            "ignoring commands for another epoch"
                        );
                    }
                }
                Err(e) => {
                    // Report these outcomes next time.
                    let mut r = exec.results.lock();
                    r.done.extend(results.done);
                    r.failed.extend(results.failed);
                    tracing::debug!(error = %e, "heartbeat failed");
                }
            }
        }
    }
}

/// Run one master command; true when done, false when failed or refused.
async fn execute(store: &BlobStore, tls: &anode_tls::Tls, c: ChunkCommand) -> bool {
    match c.op {
        Some(Op::Delete(d)) => {
            let s = store.clone();
            let sha = d.sha256.clone();
            let r = tokio::task::spawn_blocking(move || {
                s.delete_if_untouched(&sha, d.not_touched_since_ms)
            })
            .await;
            match r {
                Ok(Ok(Some(_))) => true,
                Ok(Ok(None)) => {
                    tracing::info!(chunk = %hex::encode(&d.sha256), "delete refused: blob touched after the fence");
                    false
                }
                Ok(Err(e)) => {
                    tracing::warn!(chunk = %hex::encode(&d.sha256), error = %e, "delete failed");
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "delete task failed");
                    false
                }
            }
        }
        Some(Op::Replicate(r)) => match replicate(store, tls, &r).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(chunk = %hex::encode(&r.sha256), error = %e, "replicate failed");
                false
            }
        },
        None => true,
    }
}

/// Copy a chunk from a peer, replacing a missing or corrupt local copy.
pub async fn replicate(
    store: &BlobStore,
    tls: &anode_tls::Tls,
    r: &ReplicateChunkOp,
) -> Result<(), String> {
    if store.locate(&r.sha256).is_some() {
        if store.verify(&r.sha256).await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        store.quarantine(&r.sha256);
    }
    let ep = tls
        .endpoint(&r.source_addr, anode_tls::Role::Chunkserver)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(300));
    let mut c = ChunkserverClient::new(ep.connect().await.map_err(|e| e.to_string())?);
    let mut s = c
        .get_chunk(GetChunkRequest {
            sha256: r.sha256.clone(),
            offset: 0,
            length: 0,
            verify: true,
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let first = s
        .message()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("empty stream")?;
    let mut w = store
        .begin(r.sha256.clone(), first.total_length)
        .await
        .map_err(|e| e.to_string())?;
    w.write(&first.data).await.map_err(|e| e.to_string())?;
    while let Some(m) = s.message().await.map_err(|e| e.to_string())? {
        w.write(&m.data).await.map_err(|e| e.to_string())?;
    }
    w.finish().await.map_err(|e| e.to_string())?;
    tracing::info!(chunk = %hex::encode(&r.sha256), from = %r.source_addr, "replicated chunk");
    Ok(())
}

/// A master connection tuned for heartbeats (short budget: the next tick retries).
pub fn master_conn(addrs: Vec<String>, tls: anode_tls::Tls) -> MasterConn {
    MasterConn::with_options(
        addrs,
        MasterConnOptions {
            rpc_timeout: Duration::from_secs(3),
            retry_budget: Duration::from_secs(2),
            probe_after: Duration::from_millis(500),
        },
        tls,
    )
}
