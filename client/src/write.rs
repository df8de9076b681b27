//! The write path: stream a body into chunks, store every chunk on R chunkservers, and only then
//! let the caller commit a manifest.
//!
//! Order per put: read the body piece by piece (MD5 as it streams) -> if it ends within
//! `inline_max_bytes`, return it for an inline manifest -> otherwise cut full chunks; for each,
//! SHA-256 (blocking pool) -> `AllocateChunks` -> `PutChunk` to the R targets in parallel ->
//! on a failed target, `AllocateChunks` again with `exclude` and write to a replacement until R
//! distinct servers acknowledged -> Content-MD5 check -> touch old copies -> fail point
//! `client::put::before_commit` -> (caller) commit. At most `put_parallelism` chunks are held
//! in memory, counting the one being filled.
//!
//! Hedging: once one copy of a chunk is acknowledged, the other targets get [`race::hedge_delay`] to
//! follow; a target still silent then (frozen, overloaded, partitioned with its sockets open) is
//! treated as slow and a replacement target is written at once, while the slow write keeps
//! running. The first R acknowledgements win and the rest are cancelled; a copy that lands
//! anyway is a surplus the master trims. Without hedging a frozen server costs every chunk
//! placed on it the whole transfer timeout. These decisions are a pure state machine,
//! [`race::ReplicaRace`], unit-tested without a network or a clock.

use std::time::Duration;

use anode_proto::{
    AllocateChunksRequest, AllocateChunksResponse, ChunkRef, ChunkserverInfo, PutChunkHeader,
    PutChunkRequest,
};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::Stream;
use tokio::time::Instant;

use crate::chunker::{sha256, Chunker};
use crate::config::PUT_MESSAGE_BYTES;
use crate::error::ClientError;
use crate::ClientInner;

pub mod race;

use race::{RaceFailure, ReplicaRace, Step};

/// How long the caller's body may stay silent before the put gives up.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A body stored (or kept inline), ready to be described by a manifest.
#[derive(Debug)]
pub(crate) struct StoredBody {
    pub size: u64,
    pub md5: [u8; 16],
    /// Ordered chunk references with the acknowledging servers; empty when inline.
    pub chunks: Vec<ChunkRef>,
    /// The whole body when it fit inline.
    pub inline: Option<Bytes>,
}

/// The next non-empty piece of the body, or `None` at its end; bounded by [`BODY_IDLE_TIMEOUT`].
async fn next_piece<S>(body: &mut S) -> Result<Option<Bytes>, ClientError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
{
    loop {
        let item = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.next())
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled")
            })?;
        match item {
            None => return Ok(None),
            Some(Err(e)) => return Err(ClientError::Io(e)),
            Some(Ok(b)) if b.is_empty() => continue,
            Some(Ok(b)) => return Ok(Some(b)),
        }
    }
}

/// Pure: the servers to write the next copies of `sha` to, in preference order. Takes the
/// master's placement for `sha` first, then the other live servers; skips servers that already
/// acknowledged or failed, and duplicates.
pub fn pick_targets(
    alloc: &AllocateChunksResponse,
    sha: &[u8],
    acked: &[u64],
    failed: &[u64],
) -> Vec<ChunkserverInfo> {
    let placed = alloc
        .placements
        .iter()
        .filter(|p| p.sha256 == sha)
        .flat_map(|p| p.servers.iter());
    let mut out: Vec<ChunkserverInfo> = Vec::new();
    for s in placed.chain(alloc.live.iter()) {
        let usable = !s.addr.is_empty()
            && !acked.contains(&s.id)
            && !failed.contains(&s.id)
            && !out.iter().any(|o| o.id == s.id);
        if usable {
            out.push(s.clone());
        }
    }
    out
}

/// The replication factor an allocation asks for: `replication`, or the number of targets of the
/// first placement when the master left it 0.
pub fn replication_of(alloc: &AllocateChunksResponse) -> usize {
    match alloc.replication {
        0 => alloc.placements.first().map_or(0, |p| p.servers.len()),
        r => r as usize,
    }
}

impl ClientInner {
    /// Stream `body` into chunks stored with R copies each (or keep it inline when
    /// `allow_inline` and it is small). Checks `content_md5` before returning. Commits nothing.
    pub(crate) async fn store_body<S>(
        &self,
        bucket: &str,
        mut body: S,
        allow_inline: bool,
        content_md5: Option<[u8; 16]>,
    ) -> Result<StoredBody, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let mut chunker = Chunker::new(self.cfg.chunk_size_bytes);
        if allow_inline {
            let limit = self.cfg.inline_max_bytes as u64;
            while chunker.total_bytes() <= limit {
                match next_piece(&mut body).await? {
                    Some(piece) => chunker.push(piece),
                    None => {
                        let data = chunker.take_all();
                        let tail = chunker.finish();
                        check_md5(content_md5, &tail.md5)?;
                        return Ok(StoredBody {
                            size: tail.total_bytes,
                            md5: tail.md5,
                            chunks: Vec::new(),
                            inline: Some(data),
                        });
                    }
                }
            }
        }
        self.store_chunks(bucket, body, chunker, content_md5).await
    }

    async fn store_chunks<S>(
        &self,
        bucket: &str,
        mut body: S,
        mut chunker: Chunker,
        content_md5: Option<[u8; 16]>,
    ) -> Result<StoredBody, ClientError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let max_in_flight = self.cfg.put_parallelism.saturating_sub(1).max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut refs: Vec<Option<ChunkRef>> = Vec::new();
        let mut body_done = false;
        loop {
            while let Some(chunk) = chunker.next_chunk() {
                while in_flight.len() >= max_in_flight {
                    record(&mut refs, in_flight.next().await)?;
                }
                refs.push(None);
                in_flight.push(self.store_chunk(bucket, refs.len() - 1, chunk));
            }
            if body_done {
                break;
            }
            tokio::select! {
                biased;
                done = in_flight.next(), if !in_flight.is_empty() => record(&mut refs, done)?,
                piece = next_piece(&mut body) => match piece? {
                    Some(piece) => chunker.push(piece),
                    None => body_done = true,
                },
            }
        }
        let tail = chunker.finish();
        if let Some(last) = tail.last {
            refs.push(None);
            in_flight.push(self.store_chunk(bucket, refs.len() - 1, last));
        }
        while let Some(done) = in_flight.next().await {
            record(&mut refs, Some(done))?;
        }
        check_md5(content_md5, &tail.md5)?;
        let mut chunks: Vec<ChunkRef> = refs.into_iter().flatten().collect();
        self.touch_old(&mut chunks).await?;
        let stored: u64 = chunks.iter().map(|c| c.length).sum();
        if stored != tail.total_bytes {
            return Err(ClientError::Internal(format!(
                "stored {stored} bytes of a {} byte body",
                tail.total_bytes
            )));
        }
        // Every chunk has R durable (and touched) copies; the caller's manifest or part commit
        // comes next. A writer that dies here leaves orphan copies for garbage collection
        // (tests/failpoints.rs: `return` simulates the writer giving up, `panic` a crash).
        fail::fail_point!("client::put::before_commit", |_| Err(
            ClientError::Internal(
                "failpoint client::put::before_commit: stopped before the commit".into()
            )
        ));
        Ok(StoredBody {
            size: tail.total_bytes,
            md5: tail.md5,
            chunks,
            inline: None,
        })
    }

    /// The garbage-collection fence (docs/architecture.md): copies written longer ago than
    /// half the master's touch-after time are touched again before the caller commits, so no
    /// chunkserver deletes them as unreferenced in the meantime. A copy that vanished fails
    /// the write (retryable).
    async fn touch_old(&self, chunks: &mut [ChunkRef]) -> Result<(), ClientError> {
        let limit = self
            .touch_after_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            / 2;
        for c in chunks.iter_mut() {
            if now_ms().saturating_sub(c.uploaded_ms) <= limit {
                continue;
            }
            for id in &c.servers {
                let info = self.pool.lookup(*id).ok_or_else(|| {
                    ClientError::Unavailable(format!("chunkserver {id} unknown; retry the write"))
                })?;
                let mut client = self.pool.client(&info.addr)?;
                let r = client
                    .stat_chunk(anode_proto::StatChunkRequest {
                        sha256: c.sha256.clone(),
                        touch: true,
                    })
                    .await
                    .map_err(|e| ClientError::Unavailable(format!("touch chunk: {e}")))?
                    .into_inner();
                if !r.present {
                    return Err(ClientError::Unavailable(format!(
                        "chunk {} vanished from server {id} before commit; retry the write",
                        hex::encode(&c.sha256)
                    )));
                }
            }
            c.uploaded_ms = now_ms();
        }
        Ok(())
    }

    /// Hash one chunk and store it with R copies. Returns its index and reference.
    async fn store_chunk(
        &self,
        bucket: &str,
        index: usize,
        data: Bytes,
    ) -> Result<(usize, ChunkRef), ClientError> {
        let for_hash = data.clone();
        let sha = tokio::task::spawn_blocking(move || sha256(&for_hash))
            .await
            .map_err(|e| ClientError::Internal(format!("hashing task: {e}")))?;
        let servers = {
            // Wait for a turn before the transfer deadline starts (see `chunk_writes_max`).
            let _turn = self
                .chunk_writes
                .acquire()
                .await
                .map_err(|_| ClientError::Internal("chunk write limiter closed".into()))?;
            self.replicate(bucket, &sha, &data).await?
        };
        Ok((
            index,
            ChunkRef {
                sha256: sha.to_vec(),
                length: data.len() as u64,
                servers,
                uploaded_ms: now_ms(),
            },
        ))
    }

    /// Write `data` (whose SHA-256 is `sha`) to R distinct chunkservers; returns their ids in
    /// the order their writes started (the placement's preference order, which readers follow,
    /// then replacements), whatever order they acknowledged in. Failed targets are replaced at
    /// once, slow ones after [`race::hedge_delay`] (see the module docs). The decisions are
    /// [`ReplicaRace`]'s: this loop performs its steps and feeds it what happened.
    async fn replicate(
        &self,
        bucket: &str,
        sha: &[u8; 32],
        data: &Bytes,
    ) -> Result<Vec<u64>, ClientError> {
        let start = Instant::now();
        let deadline = self.cfg.retry_budget + self.cfg.chunk_timeout(data.len() as u64);
        let mut race = ReplicaRace::new(self.cfg.hedge_after, deadline);
        // Writes in flight, slow ones included (they may still win).
        let mut pending = FuturesUnordered::new();
        // The targets of the last placement, in which the race's choices are looked up.
        let mut ranked: Vec<ChunkserverInfo> = Vec::new();
        let mut last_err: Option<ClientError> = None;
        let mut step = race.begin();
        loop {
            step = match step {
                Step::Allocate { exclude, lagging } => {
                    if !lagging.is_empty() {
                        tracing::info!(servers = ?lagging, chunk = %hex::encode(sha), "chunk write lagging; hedging to a replacement");
                    }
                    match self.allocate(bucket, sha, &exclude).await {
                        Ok(alloc) => {
                            ranked = pick_targets(&alloc, sha, &[], &[]);
                            let ids: Vec<u64> = ranked.iter().map(|s| s.id).collect();
                            race.on_placement(replication_of(&alloc), &ids)
                        }
                        // With writes in flight the race waits for them; with none, the
                        // master's answer is the put's.
                        Err(e) => {
                            tracing::info!(chunk = %hex::encode(sha), error = %e, "no new chunk write target; waiting for the writes in flight");
                            race.on_refused(e)?
                        }
                    }
                }
                Step::Write(ids) => {
                    for id in ids {
                        let Some(s) = ranked.iter().find(|s| s.id == id).cloned() else {
                            return Err(ClientError::Internal(format!(
                                "chunk write target {id} is not in the placement"
                            )));
                        };
                        pending.push(async move {
                            let res = self.put_chunk_to(&s, sha, data).await;
                            (s.id, res)
                        });
                    }
                    race.waiting()
                }
                Step::Wait { until } => tokio::select! {
                    Some((id, res)) = pending.next() => match res {
                        Ok(()) => race.on_ack(id, start.elapsed()),
                        Err(e) => {
                            tracing::warn!(server = id, chunk = %hex::encode(sha), error = %e, "chunk write failed; trying a replacement");
                            last_err = Some(e);
                            race.on_error(id)
                        }
                    },
                    // The timer fired, so at least `until` has passed.
                    _ = tokio::time::sleep_until(start + until) => race.on_timer(start.elapsed().max(until)),
                },
                Step::Done(servers) => return Ok(servers),
                Step::Fail(RaceFailure::TooFewServers { need, have }) => {
                    return Err(ClientError::InsufficientServers { need, have })
                }
                Step::Fail(RaceFailure::Deadline { acked, r }) => {
                    let e = last_err.map_or_else(|| "deadline".to_string(), |e| e.to_string());
                    return Err(ClientError::Unavailable(format!(
                        "chunk {}: {acked} of {r} copies written: {e}",
                        hex::encode(sha),
                    )));
                }
            };
        }
    }

    async fn allocate(
        &self,
        bucket: &str,
        sha: &[u8; 32],
        exclude: &[u64],
    ) -> Result<AllocateChunksResponse, ClientError> {
        let req = AllocateChunksRequest {
            bucket: bucket.to_string(),
            sha256: vec![sha.to_vec()],
            exclude: exclude.to_vec(),
        };
        let alloc = self
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.allocate_chunks(req).await }
            })
            .await?;
        if alloc.touch_after_ms > 0 {
            self.touch_after_ms
                .store(alloc.touch_after_ms, std::sync::atomic::Ordering::Relaxed);
        }
        self.pool.learn(alloc.live.iter());
        self.pool
            .learn(alloc.placements.iter().flat_map(|p| p.servers.iter()));
        Ok(alloc)
    }

    /// One streamed PutChunk: the header (with the server's epoch) rides on the first message,
    /// data follows in [`PUT_MESSAGE_BYTES`] pieces. Bounded by `chunk_timeout`.
    async fn put_chunk_to(
        &self,
        server: &ChunkserverInfo,
        sha: &[u8; 32],
        data: &Bytes,
    ) -> Result<(), ClientError> {
        let mut client = self.pool.client(&server.addr)?;
        let header = PutChunkHeader {
            sha256: sha.to_vec(),
            length: data.len() as u64,
            epoch: server.epoch,
        };
        let messages = put_messages(header, data.clone());
        let timeout = self.cfg.chunk_timeout(data.len() as u64);
        match tokio::time::timeout(timeout, client.put_chunk(messages)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(ClientError::from_status(&status)),
            Err(_) => Err(ClientError::Timeout(format!(
                "PutChunk to {} took over {timeout:?}",
                server.addr
            ))),
        }
    }
}

/// The PutChunk request stream for one chunk: header on the first message, data in
/// [`PUT_MESSAGE_BYTES`] pieces (at least one message, even for empty data).
pub(crate) fn put_messages(
    header: PutChunkHeader,
    data: Bytes,
) -> impl Stream<Item = PutChunkRequest> + Send + 'static {
    let pieces = data.len().div_ceil(PUT_MESSAGE_BYTES).max(1);
    futures::stream::iter((0..pieces).map(move |i| {
        let lo = (i * PUT_MESSAGE_BYTES).min(data.len());
        let hi = ((i + 1) * PUT_MESSAGE_BYTES).min(data.len());
        PutChunkRequest {
            header: (i == 0).then(|| header.clone()),
            data: data.slice(lo..hi),
        }
    }))
}

fn record(
    refs: &mut [Option<ChunkRef>],
    done: Option<Result<(usize, ChunkRef), ClientError>>,
) -> Result<(), ClientError> {
    let (index, chunk) =
        done.ok_or_else(|| ClientError::Internal("no chunk write in flight".into()))??;
    refs[index] = Some(chunk);
    Ok(())
}

fn check_md5(expected: Option<[u8; 16]>, actual: &[u8; 16]) -> Result<(), ClientError> {
    match expected {
        Some(want) if want != *actual => Err(ClientError::BadDigest),
        _ => Ok(()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_proto::ChunkPlacement;

    fn info(id: u64) -> ChunkserverInfo {
        ChunkserverInfo {
            id,
            addr: format!("127.0.0.1:{}", 7100 + id),
            rack: String::new(),
            epoch: 1,
            state: 1,
        }
    }

    #[test]
    fn targets_prefer_placement_then_live_and_skip_used() {
        let sha = [1u8; 32];
        let alloc = AllocateChunksResponse {
            touch_after_ms: 0,
            replication: 3,
            placements: vec![
                ChunkPlacement {
                    sha256: vec![2u8; 32],
                    servers: vec![info(9)],
                },
                ChunkPlacement {
                    sha256: sha.to_vec(),
                    servers: vec![info(3), info(1), info(2)],
                },
            ],
            live: vec![info(1), info(2), info(3), info(4), info(5)],
        };
        let ids = |v: Vec<ChunkserverInfo>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(pick_targets(&alloc, &sha, &[], &[])), [3, 1, 2, 4, 5]);
        assert_eq!(ids(pick_targets(&alloc, &sha, &[3], &[1])), [2, 4, 5]);
        assert_eq!(replication_of(&alloc), 3);
        let mut no_r = alloc.clone();
        no_r.replication = 0;
        assert_eq!(replication_of(&no_r), 1);
    }

    #[test]
    fn put_messages_carry_header_once_and_all_bytes() {
        let data = Bytes::from(
            (0..(2 * PUT_MESSAGE_BYTES + 5))
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let header = PutChunkHeader {
            sha256: vec![0; 32],
            length: data.len() as u64,
            epoch: 7,
        };
        let msgs: Vec<PutChunkRequest> =
            futures::executor::block_on(put_messages(header.clone(), data.clone()).collect());
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].header.as_ref(), Some(&header));
        assert!(msgs[1..].iter().all(|m| m.header.is_none()));
        let joined: Vec<u8> = msgs.iter().flat_map(|m| m.data.iter().copied()).collect();
        assert_eq!(&joined[..], &data[..]);
        let empty: Vec<PutChunkRequest> =
            futures::executor::block_on(put_messages(header, Bytes::new()).collect());
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn md5_check() {
        assert!(check_md5(None, &[0; 16]).is_ok());
        assert!(check_md5(Some([0; 16]), &[0; 16]).is_ok());
        assert!(matches!(
            check_md5(Some([1; 16]), &[0; 16]),
            Err(ClientError::BadDigest)
        ));
    }
}
