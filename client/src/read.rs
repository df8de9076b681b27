//! The read path: stream an object's bytes from chunkservers, verified, with bounded read-ahead.
//!
//! Order per read: plan the chunk spans of the range (pure, [`crate::range`]) -> per batch of
//! spans, `LocateChunks` (fall back to `ChunkRef.servers` through the server directory) -> fetch
//! up to `read_ahead_chunks` spans concurrently, yielding them in order. A whole-chunk fetch is
//! verified here (SHA-256 against the id); a partial fetch asks the chunkserver to verify
//! (`verify = true`). A failed or corrupt replica is skipped for the next one; a corrupt or
//! missing copy is reported to the master (best effort, in the background).
//!
//! Hedging: a replica that has not started answering within `hedge_after` (frozen, overloaded)
//! gets company: the next replica is asked too, and the first to deliver the whole span wins.
//! Once a replica has sent its first message it is trusted to finish (bounded per message by
//! `rpc_timeout`), so large chunks are not read twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anode_proto::{
    ChunkRef, ChunkserverInfo, GetChunkRequest, LocateChunksRequest, Manifest,
    ReportBadChunkRequest,
};
use bytes::{Bytes, BytesMut};
use futures::stream::{self, FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::chunker::sha256;
use crate::error::{ClientError, ErrorCode};
use crate::range::{clamp_range, plan_range, ChunkSpan};
use crate::{ByteStream, ClientInner};

/// Chunks located per `LocateChunks` call.
pub const LOCATE_BATCH_CHUNKS: usize = 64;

/// Why one replica could not serve a span.
enum ReplicaError {
    /// The copy is missing, corrupt or the wrong size: skip it and report it.
    Bad(String),
    /// The server could not be asked (down, timeout): skip it, do not report.
    Failed(ClientError),
}

/// One span to fetch with the replicas to try, in order.
struct Fetch {
    span: ChunkSpan,
    chunk: ChunkRef,
    servers: Vec<ChunkserverInfo>,
}

/// The stream of the bytes `range` (inclusive, clamped to the object) of `manifest`.
pub(crate) fn read_manifest(
    inner: Arc<ClientInner>,
    manifest: &Manifest,
    range: Option<(u64, u64)>,
) -> ByteStream {
    let Some((start, end)) = clamp_range(manifest.size, range) else {
        let msg = format!(
            "range {range:?} outside an object of {} bytes",
            manifest.size
        );
        return stream::once(async move { Err(ClientError::InvalidArgument(msg)) }).boxed();
    };
    if manifest.chunks.is_empty() {
        return read_inline(manifest, start, end);
    }
    let lengths: Vec<u64> = manifest.chunks.iter().map(|c| c.length).collect();
    let stored: u64 = lengths.iter().sum();
    if stored != manifest.size {
        let msg = format!(
            "manifest chunks hold {stored} bytes, size says {}",
            manifest.size
        );
        return stream::once(async move { Err(ClientError::Internal(msg)) }).boxed();
    }
    let spans = plan_range(&lengths, start, end);
    let chunks = Arc::new(manifest.chunks.clone());
    let batches: Vec<Vec<ChunkSpan>> = spans
        .chunks(LOCATE_BATCH_CHUNKS)
        .map(<[_]>::to_vec)
        .collect();
    let read_ahead = inner.cfg.read_ahead_chunks.max(1);
    let locate_inner = inner.clone();
    stream::iter(batches)
        .then(move |batch| {
            let inner = locate_inner.clone();
            let chunks = chunks.clone();
            async move { inner.locate(&chunks, batch).await }
        })
        .flat_map(stream::iter)
        .map(move |fetch| {
            let inner = inner.clone();
            async move { inner.fetch_span(fetch).await }
        })
        .buffered(read_ahead)
        .boxed()
}

fn read_inline(manifest: &Manifest, start: u64, end: u64) -> ByteStream {
    let data = &manifest.inline_data;
    if data.len() as u64 != manifest.size {
        let msg = format!(
            "inline manifest holds {} bytes, size says {}",
            data.len(),
            manifest.size
        );
        return stream::once(async move { Err(ClientError::Internal(msg)) }).boxed();
    }
    if start == end {
        return stream::empty().boxed();
    }
    let bytes = Bytes::copy_from_slice(&data[start as usize..end as usize]);
    stream::once(async move { Ok(bytes) }).boxed()
}

impl ClientInner {
    /// Replicas for each span of `batch`: the master's chunk table first, then the servers the
    /// manifest recorded (resolved through the directory). Never fails: without the master the
    /// manifest's servers are all there is.
    async fn locate(&self, chunks: &[ChunkRef], batch: Vec<ChunkSpan>) -> Vec<Fetch> {
        let req = LocateChunksRequest {
            sha256: batch
                .iter()
                .map(|s| chunks[s.index].sha256.clone())
                .collect(),
        };
        let located = self
            .master
            .call(|mut c| {
                let req = req.clone();
                async move { c.locate_chunks(req).await }
            })
            .await;
        let placements = match located {
            Ok(resp) => resp.placements,
            Err(e) => {
                tracing::warn!(error = %e, "LocateChunks failed; using the manifest's servers");
                Vec::new()
            }
        };
        self.pool
            .learn(placements.iter().flat_map(|p| p.servers.iter()));
        batch
            .into_iter()
            .map(|span| {
                let chunk = chunks[span.index].clone();
                let mut servers: Vec<ChunkserverInfo> = Vec::new();
                let from_master = placements
                    .iter()
                    .filter(|p| p.sha256 == chunk.sha256)
                    .flat_map(|p| p.servers.iter().cloned());
                let from_manifest = chunk.servers.iter().filter_map(|id| self.pool.lookup(*id));
                for s in from_master.chain(from_manifest) {
                    if !s.addr.is_empty() && !servers.iter().any(|o| o.id == s.id) {
                        servers.push(s);
                    }
                }
                Fetch {
                    span,
                    chunk,
                    servers,
                }
            })
            .collect()
    }

    /// The bytes of one span from the first replica that serves them verified: replicas are
    /// tried in order, the next one at once when one fails and after `hedge_after` when none
    /// has started answering yet (see the module docs).
    async fn fetch_span(self: Arc<Self>, fetch: Fetch) -> Result<Bytes, ClientError> {
        let sha_hex = hex::encode(&fetch.chunk.sha256);
        let answering = AtomicBool::new(false);
        let mut next = fetch.servers.iter();
        let mut racing = FuturesUnordered::new();
        let mut hedge_at = Instant::now();
        loop {
            let start_next = racing.is_empty()
                || (Instant::now() >= hedge_at && !answering.load(Ordering::SeqCst));
            if start_next {
                match next.next() {
                    Some(server) => {
                        let (this, fetch, answering) = (&self, &fetch, &answering);
                        racing.push(async move {
                            (server, this.fetch_from(server, fetch, answering).await)
                        });
                        hedge_at = Instant::now() + self.cfg.hedge_after;
                    }
                    None if racing.is_empty() => {
                        return Err(ClientError::ChunkUnavailable { sha256: sha_hex })
                    }
                    None => {}
                }
            }
            let more = next.len() > 0;
            tokio::select! {
                Some((server, res)) = racing.next() => match res {
                    Ok(bytes) => return Ok(bytes),
                    Err(ReplicaError::Failed(e)) => {
                        tracing::warn!(chunk = %sha_hex, server = server.id, error = %e, "replica unreachable; trying the next");
                    }
                    Err(ReplicaError::Bad(reason)) => {
                        tracing::warn!(chunk = %sha_hex, server = server.id, %reason, "bad replica; reporting it and trying the next");
                        self.report_bad(&fetch.chunk.sha256, server.id, reason);
                    }
                },
                _ = tokio::time::sleep_until(hedge_at), if more && !answering.load(Ordering::SeqCst) => {
                    tracing::debug!(chunk = %sha_hex, "replica slow to answer; asking the next too");
                }
            }
        }
    }

    /// One replica's bytes for the span; sets `answering` once the replica's first message
    /// arrived.
    async fn fetch_from(
        &self,
        server: &ChunkserverInfo,
        fetch: &Fetch,
        answering: &AtomicBool,
    ) -> Result<Bytes, ReplicaError> {
        let span = fetch.span;
        let full = span.is_full();
        let mut client = self
            .pool
            .client(&server.addr)
            .map_err(ReplicaError::Failed)?;
        let req = GetChunkRequest {
            sha256: fetch.chunk.sha256.clone(),
            offset: span.offset,
            length: span.length,
            verify: !full,
        };
        let timeout = self.cfg.rpc_timeout;
        let mut stream = match tokio::time::timeout(timeout, client.get_chunk(req)).await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => return Err(replica_error(&status)),
            Err(_) => {
                return Err(ReplicaError::Failed(ClientError::Timeout(
                    "GetChunk".into(),
                )))
            }
        };
        let mut buf = BytesMut::with_capacity(span.length as usize);
        let mut first = true;
        loop {
            let msg = match tokio::time::timeout(timeout, stream.message()).await {
                Ok(Ok(Some(msg))) => msg,
                Ok(Ok(None)) => break,
                Ok(Err(status)) => return Err(replica_error(&status)),
                Err(_) => {
                    return Err(ReplicaError::Failed(ClientError::Timeout(
                        "GetChunk stream".into(),
                    )))
                }
            };
            if first {
                answering.store(true, Ordering::SeqCst);
            }
            if first && msg.total_length != 0 && msg.total_length != span.chunk_length {
                return Err(ReplicaError::Bad(format!(
                    "length {} but the manifest says {}",
                    msg.total_length, span.chunk_length
                )));
            }
            first = false;
            if buf.len() + msg.data.len() > span.length as usize {
                return Err(ReplicaError::Bad("sent more bytes than asked".into()));
            }
            buf.extend_from_slice(&msg.data);
        }
        if buf.len() as u64 != span.length {
            return Err(ReplicaError::Bad(format!(
                "sent {} of {} bytes",
                buf.len(),
                span.length
            )));
        }
        let bytes = buf.freeze();
        if full {
            let for_hash = bytes.clone();
            let digest = tokio::task::spawn_blocking(move || sha256(&for_hash))
                .await
                .map_err(|e| ReplicaError::Failed(ClientError::Internal(e.to_string())))?;
            if digest[..] != fetch.chunk.sha256[..] {
                return Err(ReplicaError::Bad("SHA-256 mismatch".into()));
            }
        }
        Ok(bytes)
    }

    /// Tell the master a copy is bad, in the background; failures are only logged.
    fn report_bad(&self, sha: &[u8], server_id: u64, reason: String) {
        let master = self.master.clone();
        let req = ReportBadChunkRequest {
            sha256: sha.to_vec(),
            server_id,
            reason,
        };
        tokio::spawn(async move {
            let res = master
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.report_bad_chunk(req).await }
                })
                .await;
            if let Err(e) = res {
                tracing::debug!(error = %e, "ReportBadChunk failed");
            }
        });
    }
}

/// A chunkserver's refusal: `NoSuchChunk` and `CorruptChunk` mean the copy itself is bad.
fn replica_error(status: &tonic::Status) -> ReplicaError {
    match ClientError::from_status(status) {
        e @ ClientError::Remote {
            code: ErrorCode::NoSuchChunk | ErrorCode::CorruptChunk,
            ..
        } => ReplicaError::Bad(e.to_string()),
        e => ReplicaError::Failed(e),
    }
}
