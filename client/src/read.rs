//! The read path: stream an object's bytes from chunkservers, verified, with bounded read-ahead.
//!
//! Order per read: plan the chunk spans of the range (pure, [`crate::range`]) -> per batch of
//! spans, the replicas: the manifest's `ChunkRef.servers` resolved through the server directory
//! when it knows them all freshly (no master call), else `LocateChunks` (plus the manifest's
//! servers); a span none of the manifest's servers serves asks `LocateChunks` then -> fetch
//! up to [`read_ahead_for`] spans concurrently (the request's chunks up to
//! [`READ_AHEAD_BYTES`], at least `read_ahead_chunks`), yielding their bytes in order. Each
//! fetch is its own task ([`SpawnedFetch`]): it drains its stream while the reader is busy.
//!
//! Integrity, once per byte: a whole-chunk fetch is verified here, end to end (SHA-256 against
//! the id, hashed as the pieces arrive; the chunkserver streams it unhashed); a partial fetch
//! asks the chunkserver to verify (`verify = true`), which checks only the blocks the range
//! covers against the blob's per-block CRC-32Cs. A failed or corrupt replica is skipped for the
//! next one; a corrupt or missing copy is reported to the master (best effort, in the
//! background). Bytes are released only once their span is verified.
//!
//! Copies: a piece of a chunk is the `Bytes` the chunkserver's response decoded into (prost
//! `bytes` for `GetChunkResponse.data`); the pieces are yielded as they are, never gathered
//! into one buffer.
//!
//! Replica choice ([`replica_order`]): live replicas before the others, then the one with the
//! fewest reads in flight from this client, ties broken by rotating the list by the span's
//! index, so the chunks of one object are fetched from different replicas.
//!
//! Hedging: a replica that has not started answering within `hedge_after` (frozen, overloaded)
//! gets company: the next replica is asked too, and the first to deliver the whole span wins.
//! Once a replica has sent its first message it is trusted to finish (bounded per message by
//! `rpc_timeout`), so large chunks are not read twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use anode_proto::{
    ChunkPlacement, ChunkRef, ChunkserverInfo, ChunkserverState, GetChunkRequest,
    LocateChunksRequest, Manifest, ReportBadChunkRequest,
};
use bytes::Bytes;
use futures::stream::{self, FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::error::{ClientError, ErrorCode};
use crate::range::{clamp_range, plan_range, ChunkSpan};
use crate::trace::RequestContext;
use crate::{ByteStream, ClientInner};

/// Chunks located per `LocateChunks` call.
pub const LOCATE_BATCH_CHUNKS: usize = 64;

/// Bytes of a read fetched ahead of the reader at most, unless `read_ahead_chunks` asks for
/// more: a 16 MiB GET of 4 MiB chunks fetches its 4 chunks at once.
pub const READ_AHEAD_BYTES: u64 = 16 << 20;

/// Spans fetched concurrently for a read of `spans` (pure): as many leading spans as fit in
/// [`READ_AHEAD_BYTES`] (at least one), and never fewer than `floor` (`read_ahead_chunks`).
pub fn read_ahead_for(spans: &[ChunkSpan], floor: usize) -> usize {
    let mut n = 0usize;
    let mut bytes = 0u64;
    for s in spans {
        if n > 0 && bytes.saturating_add(s.length) > READ_AHEAD_BYTES {
            break;
        }
        bytes = bytes.saturating_add(s.length);
        n += 1;
    }
    n.max(floor).max(1)
}

/// The order to try replicas in (pure), as indexes into `replicas`, each given as (not
/// suspect or dead, reads in flight): healthy ones first, then the least loaded, ties broken by rotating the
/// list by `rotate` (the span's index).
pub fn replica_order(replicas: &[(bool, usize)], rotate: usize) -> Vec<usize> {
    let n = replicas.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| {
        let (alive, load) = replicas[i];
        (!alive, load, (i + n - rotate % n.max(1)) % n.max(1))
    });
    order
}

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
    /// `servers` are the manifest's, resolved through the directory (the master not asked).
    from_manifest: bool,
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
    let read_ahead = read_ahead_for(&spans, inner.cfg.read_ahead_chunks);
    let locate_inner = inner.clone();
    // The stream is polled after the caller returns it (an S3 GET body is written by hyper
    // once the handler is done): its RPCs and logs keep the caller's request id and span.
    let ctx = RequestContext::current();
    let locate_ctx = ctx.clone();
    stream::iter(batches)
        .then(move |batch| {
            let inner = locate_inner.clone();
            let chunks = chunks.clone();
            locate_ctx
                .clone()
                .run(async move { inner.locate(&chunks, batch).await })
        })
        .flat_map(stream::iter)
        .map(move |fetch| SpawnedFetch::start(inner.clone(), fetch, ctx.clone()))
        .buffered(read_ahead)
        .flat_map(|fetched| {
            let items: Vec<Result<Bytes, ClientError>> = match fetched {
                Ok(pieces) => pieces.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        })
        .boxed()
}

/// One span's fetch running as its own task, so it drains its chunkserver stream (and frees
/// that connection's HTTP/2 window) and keeps its hedging clock whether or not the reader is
/// polling: a reader whose own socket is full must not stall other reads sharing the
/// connection to that chunkserver, nor make every fetch hedge at once when it polls again.
/// Aborted when dropped (the reader went away). At most the read-ahead of a read runs.
struct SpawnedFetch(tokio::task::JoinHandle<Result<Vec<Bytes>, ClientError>>);

impl SpawnedFetch {
    fn start(inner: Arc<ClientInner>, fetch: Fetch, ctx: RequestContext) -> Self {
        SpawnedFetch(tokio::spawn(ctx.run(inner.fetch_span(fetch))))
    }
}

impl Future for SpawnedFetch {
    type Output = Result<Vec<Bytes>, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(ClientError::Internal(format!("chunk fetch task: {e}"))))
        })
    }
}

impl Drop for SpawnedFetch {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    /// Replicas for each span of `batch`. When the directory knows every server the manifest
    /// lists for every span of the batch (learned from the master less than
    /// [`crate::pool::DIRECTORY_FRESH_FOR`] ago, at least one alive per span), those are used
    /// and the master is not asked: one master read per GET (the manifest). Otherwise
    /// `LocateChunks` (see [`ClientInner::located`]). A span read from the manifest's servers
    /// that none of them serves asks the master then ([`ClientInner::fetch_span`]).
    async fn locate(&self, chunks: &[ChunkRef], batch: Vec<ChunkSpan>) -> Vec<Fetch> {
        let known: Option<Vec<Vec<ChunkserverInfo>>> = batch
            .iter()
            .map(|s| self.pool.lookup_fresh(&chunks[s.index].servers))
            .collect();
        if let Some(known) = known {
            return batch
                .into_iter()
                .zip(known)
                .map(|(span, servers)| Fetch {
                    span,
                    chunk: chunks[span.index].clone(),
                    servers,
                    from_manifest: true,
                })
                .collect();
        }
        let shas = batch
            .iter()
            .map(|s| chunks[s.index].sha256.clone())
            .collect();
        let placements = self.located(shas).await;
        batch
            .into_iter()
            .map(|span| {
                let chunk = chunks[span.index].clone();
                let servers = self.replicas(&chunk, &placements);
                Fetch {
                    span,
                    chunk,
                    servers,
                    from_manifest: false,
                }
            })
            .collect()
    }

    /// `LocateChunks` for `sha256`, its servers learned into the directory. Never fails:
    /// without the master the manifest's servers are all there is (an empty answer).
    async fn located(&self, sha256: Vec<Vec<u8>>) -> Vec<ChunkPlacement> {
        let req = LocateChunksRequest { sha256 };
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
        placements
    }

    /// The replicas of `chunk`: the master's placements first, then the servers the manifest
    /// recorded (resolved through the directory), each once.
    fn replicas(&self, chunk: &ChunkRef, placements: &[ChunkPlacement]) -> Vec<ChunkserverInfo> {
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
        servers
    }

    /// The bytes of one span (see [`ClientInner::try_replicas`]). When the replicas came from
    /// the manifest alone and none served the span, the master is asked where the chunk is
    /// (`LocateChunks`) and the replicas it names that were not tried yet are tried.
    async fn fetch_span(self: Arc<Self>, fetch: Fetch) -> Result<Vec<Bytes>, ClientError> {
        let err = match self.try_replicas(&fetch, &fetch.servers).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e,
        };
        if !fetch.from_manifest {
            return Err(err);
        }
        let placements = self.located(vec![fetch.chunk.sha256.clone()]).await;
        let untried: Vec<ChunkserverInfo> = self
            .replicas(&fetch.chunk, &placements)
            .into_iter()
            .filter(|s| {
                !fetch
                    .servers
                    .iter()
                    .any(|t| t.id == s.id && t.addr == s.addr)
            })
            .collect();
        if untried.is_empty() {
            return Err(err);
        }
        tracing::debug!(chunk = %hex::encode(&fetch.chunk.sha256), "the manifest's replicas failed; trying the ones the master names");
        self.try_replicas(&fetch, &untried).await
    }

    /// The bytes of one span from the first of `servers` that serves them verified: replicas
    /// are tried in order, the next one at once when one fails and after `hedge_after` when
    /// none has started answering yet (see the module docs).
    async fn try_replicas(
        &self,
        fetch: &Fetch,
        servers: &[ChunkserverInfo],
    ) -> Result<Vec<Bytes>, ClientError> {
        let sha_hex = hex::encode(&fetch.chunk.sha256);
        let answering = AtomicBool::new(false);
        let loads: Vec<(bool, usize)> = servers
            .iter()
            .map(|s| {
                let down = [ChunkserverState::Suspect, ChunkserverState::Dead]
                    .iter()
                    .any(|d| s.state == *d as i32);
                (!down, self.pool.read_load(s.id))
            })
            .collect();
        let order = replica_order(&loads, fetch.span.index);
        let mut next = order.iter().map(|&i| &servers[i]);
        let mut racing = FuturesUnordered::new();
        let mut hedge_at = Instant::now();
        loop {
            let start_next = racing.is_empty()
                || (Instant::now() >= hedge_at && !answering.load(Ordering::SeqCst));
            if start_next {
                match next.next() {
                    Some(server) => {
                        let answering = &answering;
                        racing.push(async move {
                            (server, self.fetch_from(server, fetch, answering).await)
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
                        self.pool.mark_suspect(server.id);
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
    ) -> Result<Vec<Bytes>, ReplicaError> {
        let _load = self.pool.reading(server.id);
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
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut received = 0u64;
        let mut hasher = full.then(Sha256::new);
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
            received += msg.data.len() as u64;
            if received > span.length {
                return Err(ReplicaError::Bad("sent more bytes than asked".into()));
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&msg.data);
            }
            if !msg.data.is_empty() {
                pieces.push(msg.data);
            }
        }
        if received != span.length {
            return Err(ReplicaError::Bad(format!(
                "sent {received} of {} bytes",
                span.length
            )));
        }
        if let Some(h) = hasher {
            if h.finalize()[..] != fetch.chunk.sha256[..] {
                return Err(ReplicaError::Bad("SHA-256 mismatch".into()));
            }
        }
        Ok(pieces)
    }

    /// Tell the master a copy is bad, in the background; failures are only logged.
    fn report_bad(&self, sha: &[u8], server_id: u64, reason: String) {
        let master = self.master.clone();
        let req = ReportBadChunkRequest {
            sha256: sha.to_vec(),
            server_id,
            reason,
        };
        tokio::spawn(RequestContext::current().run(async move {
            let res = master
                .call(|mut c| {
                    let req = req.clone();
                    async move { c.report_bad_chunk(req).await }
                })
                .await;
            if let Err(e) = res {
                tracing::debug!(error = %e, "ReportBadChunk failed");
            }
        }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spans(lengths: &[u64]) -> Vec<ChunkSpan> {
        lengths
            .iter()
            .enumerate()
            .map(|(index, &length)| ChunkSpan {
                index,
                offset: 0,
                length,
                chunk_length: length,
            })
            .collect()
    }

    #[test]
    fn read_ahead_is_sized_by_the_request() {
        let mib = 1u64 << 20;
        // A 16 MiB GET of 4 MiB chunks: all 4 at once.
        assert_eq!(read_ahead_for(&spans(&[4 * mib; 4]), 2), 4);
        // A 1 GiB GET: 16 MiB ahead.
        assert_eq!(read_ahead_for(&spans(&[4 * mib; 256]), 2), 4);
        // Small requests keep the configured floor; huge chunks still fetch one.
        assert_eq!(read_ahead_for(&spans(&[mib]), 2), 2);
        assert_eq!(read_ahead_for(&spans(&[64 * mib; 3]), 1), 1);
        assert_eq!(read_ahead_for(&spans(&[64 * mib; 3]), 3), 3);
        assert_eq!(read_ahead_for(&[], 0), 1);
    }

    #[test]
    fn replicas_are_ordered_by_health_then_load_then_rotation() {
        let idle = [(true, 0), (true, 0), (true, 0)];
        assert_eq!(replica_order(&idle, 0), vec![0, 1, 2]);
        assert_eq!(replica_order(&idle, 1), vec![1, 2, 0]);
        assert_eq!(replica_order(&idle, 5), vec![2, 0, 1]);
        assert_eq!(
            replica_order(&[(true, 2), (true, 0), (true, 1)], 0),
            vec![1, 2, 0]
        );
        assert_eq!(
            replica_order(&[(false, 0), (true, 9), (true, 9)], 0),
            vec![1, 2, 0]
        );
        assert!(replica_order(&[], 3).is_empty());
    }

    proptest! {
        /// Every replica appears once; no healthy replica comes after an unhealthy one, nor a
        /// more loaded one before a less loaded one of the same health.
        #[test]
        fn replica_order_is_a_sorted_permutation(
            replicas in proptest::collection::vec((any::<bool>(), 0usize..4), 0..6),
            rotate in 0usize..20,
        ) {
            let order = replica_order(&replicas, rotate);
            let mut seen = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..replicas.len()).collect::<Vec<_>>());
            for w in order.windows(2) {
                let (a, b) = (replicas[w[0]], replicas[w[1]]);
                prop_assert!((!a.0, a.1) <= (!b.0, b.1));
            }
        }
    }
}
