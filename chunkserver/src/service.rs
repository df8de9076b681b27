//! The data API over tonic: streamed put, streamed (ranged) get, stat.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anode_proto::chunkserver_server::Chunkserver;
use anode_proto::*;
use futures::Stream;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};

use crate::blocksums::BlockSums;
use crate::error::ChunkError;
use crate::exports::ExportStore;
use crate::limits::{STREAM_IDLE_TIMEOUT, UNARY_TIMEOUT};
use crate::store::{check_id, BlobStore, READ_PIECE_BYTES};

/// The gRPC data service.
#[derive(Clone)]
pub struct DataService {
    store: BlobStore,
    epoch: Arc<AtomicU64>,
    exports: Option<ExportStore>,
}

impl DataService {
    /// A service over `store`; `epoch` is this server's current registration epoch.
    pub fn new(store: BlobStore, epoch: Arc<AtomicU64>) -> Self {
        DataService {
            store,
            epoch,
            exports: None,
        }
    }

    /// Keep the master's metadata exports in `exports` (without, the export calls are
    /// refused).
    pub fn with_exports(mut self, exports: ExportStore) -> Self {
        self.exports = Some(exports);
        self
    }

    fn exports(&self) -> Result<&ExportStore, ChunkError> {
        self.exports
            .as_ref()
            .ok_or_else(|| ChunkError::Config("this server keeps no metadata exports".into()))
    }
}

type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunkResponse, Status>> + Send>>;
type ExportStream = Pin<Box<dyn Stream<Item = Result<GetExportResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Chunkserver for DataService {
    async fn put_chunk(
        &self,
        req: Request<Streaming<PutChunkRequest>>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        let mut s = req.into_inner();
        let first = s
            .message()
            .await?
            .ok_or_else(|| ChunkError::BadRequest("empty put stream".into()))?;
        let h = first
            .header
            .ok_or_else(|| ChunkError::BadRequest("first message must carry the header".into()))?;
        let current = self.epoch.load(Ordering::SeqCst);
        if h.epoch != 0 && current != 0 && h.epoch != current {
            return Err(ChunkError::StaleEpoch {
                got: h.epoch,
                current,
            }
            .into());
        }
        let mut w = self.store.begin(h.sha256, h.length).await?;
        // One blocking-pool thread hashes and writes while the next messages arrive.
        let mut pipe = w.pipe();
        let mut sent = pipe.send(first.data).await;
        while sent.is_ok() {
            match next_idle_bounded(&mut s).await? {
                Some(m) => sent = pipe.send(m.data).await,
                None => break,
            }
        }
        // A write error on the thread closes the pipe; `close` returns the real one (ENOSPC
        // marks the disk full).
        let closed = w.close(pipe).await;
        closed?;
        sent?;
        let already_present = w.finish().await?;
        crate::metrics::PUTS.inc();
        crate::metrics::BYTES_IN.inc_by(h.length);
        Ok(Response::new(PutChunkResponse { already_present }))
    }

    type GetChunkStream = GetStream;

    async fn get_chunk(
        &self,
        req: Request<GetChunkRequest>,
    ) -> Result<Response<GetStream>, Status> {
        let r = req.into_inner();
        check_id(&r.sha256)?;
        let full = r.offset == 0 && r.length == 0;
        let (file, n, total) = self.store.read_range(&r.sha256, r.offset, r.length).await?;
        let file = file.into_std().await;
        let check = match (r.verify, full) {
            (false, _) => Check::None,
            (true, true) => Check::WholeHash,
            (true, false) => match self.store.block_sums(&file, total) {
                Some(sums) => Check::Blocks(sums),
                None => {
                    // A blob without block sums: the whole blob is hashed first.
                    crate::metrics::WHOLE_VERIFIES.inc();
                    if !self.store.verify(&r.sha256).await? {
                        self.store.quarantine(&r.sha256);
                        return Err(ChunkError::Corrupt(hex::encode(&r.sha256)).into());
                    }
                    Check::None
                }
            },
        };
        crate::metrics::GETS.inc();
        let plan = ReadPlan::new(r.offset, n, total, check);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream_file(self.store.clone(), r.sha256, file, plan, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn put_export(
        &self,
        req: Request<Streaming<PutExportRequest>>,
    ) -> Result<Response<PutExportResponse>, Status> {
        let exports = self.exports()?.clone();
        let mut s = req.into_inner();
        let first = s
            .message()
            .await?
            .ok_or_else(|| ChunkError::BadRequest("empty export stream".into()))?;
        let h = first
            .header
            .ok_or_else(|| ChunkError::BadRequest("first message must carry the header".into()))?;
        let (index, size) = (h.raft_index, h.size);
        let first_piece: Result<Vec<u8>, Status> = Ok(first.data);
        let pieces = futures::StreamExt::chain(
            futures::stream::iter([first_piece]),
            futures::StreamExt::map(s, |m| m.map(|m| m.data)),
        );
        let kept = exports.put(h, pieces).await?;
        tracing::info!(
            raft_index = index,
            bytes = size,
            kept,
            "metadata export stored"
        );
        Ok(Response::new(PutExportResponse { kept: kept as u32 }))
    }

    async fn list_exports(
        &self,
        _req: Request<ListExportsRequest>,
    ) -> Result<Response<ListExportsResponse>, Status> {
        let exports = self.exports()?.clone();
        let list = tokio::task::spawn_blocking(move || exports.list())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(ListExportsResponse {
            exports: list
                .into_iter()
                .map(|e| ExportInfo {
                    name: e.name,
                    header: Some(e.header),
                    disk: e.disk.display().to_string(),
                })
                .collect(),
        }))
    }

    type GetExportStream = ExportStream;

    async fn get_export(
        &self,
        req: Request<GetExportRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let name = req.into_inner().name;
        let (h, file, path) = self.exports()?.open_export(&name).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let first = GetExportResponse {
            header: Some(h.clone()),
            data: Vec::new(),
        };
        tx.send(Ok(first))
            .await
            .map_err(|_| Status::cancelled("reader went away"))?;
        tokio::spawn(crate::exports::stream_payload(
            name,
            path,
            h,
            file,
            |data| GetExportResponse { header: None, data },
            tx,
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn stat_chunk(
        &self,
        req: Request<StatChunkRequest>,
    ) -> Result<Response<StatChunkResponse>, Status> {
        let r = req.into_inner();
        check_id(&r.sha256)?;
        let sha = r.sha256;
        if r.touch {
            // A touch fsyncs: bounded, so a stuck disk cannot hold the call for ever.
            tokio::time::timeout(UNARY_TIMEOUT, self.store.touch_async(sha.clone()))
                .await
                .map_err(|_| {
                    ErrorDetail::new(ErrorCode::Timeout, "touch did not finish in time").to_status()
                })??;
        }
        let resp = match self.store.locate(&sha) {
            Some(p) => StatChunkResponse {
                present: true,
                length: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            },
            None => StatChunkResponse::default(),
        };
        Ok(Response::new(resp))
    }
}

/// The next message of a put stream; a client silent for [`STREAM_IDLE_TIMEOUT`] ends the put
/// (its reservation and temp file are released).
async fn next_idle_bounded(
    s: &mut Streaming<PutChunkRequest>,
) -> Result<Option<PutChunkRequest>, Status> {
    match tokio::time::timeout(STREAM_IDLE_TIMEOUT, s.message()).await {
        Ok(m) => m,
        Err(_) => Err(ErrorDetail::new(
            ErrorCode::Timeout,
            format!("no chunk data for {} s", STREAM_IDLE_TIMEOUT.as_secs()),
        )
        .to_status()),
    }
}

/// How a read checks the bytes before they leave.
#[derive(Debug, PartialEq)]
pub enum Check {
    /// Not here: the reader verifies (a full read checks the SHA-256 end to end), or the whole
    /// blob was hashed before streaming.
    None,
    /// Hash the whole blob as it streams; the last piece is sent only if it matches the id.
    WholeHash,
    /// Check every block read against the blob's block sums before sending from it.
    Blocks(BlockSums),
}

/// What to read of a blob and what to send of it (pure).
#[derive(Debug, PartialEq)]
pub struct ReadPlan {
    /// Bytes `[read.0, read.1)` are read: the requested bytes, widened to whole blocks when
    /// they are checked against block sums.
    pub read: (u64, u64),
    /// Bytes `[send.0, send.1)` are sent (within `read`).
    pub send: (u64, u64),
    /// Length of the blob (sent in the first message).
    pub total: u64,
    /// Bytes per read (a whole number of blocks when blocks are checked).
    pub piece_bytes: u64,
    /// The check.
    pub check: Check,
}

impl ReadPlan {
    /// The plan for `n` bytes from `offset` of a blob of `total` bytes.
    pub fn new(offset: u64, n: u64, total: u64, check: Check) -> ReadPlan {
        let send = (offset, offset + n);
        let (read, piece_bytes) = match &check {
            Check::Blocks(sums) => {
                let piece = (READ_PIECE_BYTES as u64).div_ceil(sums.block_bytes) * sums.block_bytes;
                (sums.covering(offset, n), piece)
            }
            Check::None | Check::WholeHash => (send, READ_PIECE_BYTES as u64),
        };
        ReadPlan {
            read,
            send,
            total,
            piece_bytes,
            check,
        }
    }
}

/// Read `len` bytes at `pos` of `file` off the async threads, into a fresh buffer that then
/// goes into the message without a copy.
async fn read_piece(
    file: Arc<std::fs::File>,
    pos: u64,
    len: usize,
) -> std::io::Result<bytes::Bytes> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, pos)?;
        Ok(bytes::Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Send the planned bytes of `file` in pieces, checking them as planned. A failed check
/// quarantines the copy and ends the stream with CORRUPT_CHUNK before any unchecked byte of
/// the failing piece is sent.
async fn stream_file(
    store: BlobStore,
    sha: Vec<u8>,
    file: std::fs::File,
    plan: ReadPlan,
    tx: tokio::sync::mpsc::Sender<Result<GetChunkResponse, Status>>,
) {
    let file = Arc::new(file);
    let mut hasher = Sha256::new();
    let mut pos = plan.read.0;
    let mut first = true;
    while pos < plan.read.1 || first {
        let take = (plan.read.1 - pos).min(plan.piece_bytes);
        let piece = match read_piece(file.clone(), pos, take as usize).await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(store.read_failed(&sha, e).into())).await;
                return;
            }
        };
        let good = match &plan.check {
            Check::None => true,
            Check::WholeHash => {
                hasher.update(&piece);
                pos + take < plan.read.1 || hasher.clone().finalize().as_slice() == sha.as_slice()
            }
            Check::Blocks(sums) => match sums.check(pos, &piece) {
                Ok(()) => true,
                Err(block) => {
                    tracing::warn!(chunk = %hex::encode(&sha), block, "block sum mismatch");
                    false
                }
            },
        };
        if !good {
            store.quarantine(&sha);
            let _ = tx
                .send(Err(ChunkError::Corrupt(hex::encode(&sha)).into()))
                .await;
            return;
        }
        let lo = plan.send.0.clamp(pos, pos + take) - pos;
        let hi = plan.send.1.clamp(pos + lo, pos + take) - pos;
        let data = piece.slice(lo as usize..hi as usize);
        pos += take;
        crate::metrics::BYTES_OUT.inc_by(data.len() as u64);
        let msg = GetChunkResponse {
            data,
            total_length: if first { plan.total } else { 0 },
        };
        first = false;
        // A reader that takes nothing for STREAM_IDLE_TIMEOUT is dropped (file closed).
        if !matches!(
            tokio::time::timeout(STREAM_IDLE_TIMEOUT, tx.send(Ok(msg))).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn service() -> (tempfile::TempDir, DataService) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&[dir.path().to_path_buf()], 0).expect("open");
        (dir, DataService::new(store, Arc::new(AtomicU64::new(0))))
    }

    fn refused_as_invalid(st: Status) {
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
        let d = ErrorDetail::from_status(&st).expect("detail");
        assert_eq!(d.code(), ErrorCode::InvalidArgument);
    }

    /// Ids of the wrong length (0, 1, 31, 33 bytes) are refused at the edge with a typed
    /// error; before the check, a 0- or 1-byte id panicked the chunkserver.
    #[tokio::test]
    async fn malformed_chunk_ids_are_refused_not_panicked_on() {
        let (_dir, svc) = service();
        for len in [0usize, 1, 31, 33] {
            let get = GetChunkRequest {
                sha256: vec![7; len],
                ..Default::default()
            };
            let Err(st) = svc.get_chunk(Request::new(get)).await else {
                panic!("a {len}-byte id was accepted");
            };
            refused_as_invalid(st);
            let stat = StatChunkRequest {
                sha256: vec![7; len],
                touch: true,
            };
            let Err(st) = svc.stat_chunk(Request::new(stat)).await else {
                panic!("a {len}-byte id was accepted");
            };
            refused_as_invalid(st);
            assert!(svc.store.locate(&[7u8; 33][..len]).is_none());
        }
    }

    async fn put(svc: &DataService, data: &[u8]) -> Vec<u8> {
        let sha = Sha256::digest(data).to_vec();
        let mut w = svc
            .store
            .begin(sha.clone(), data.len() as u64)
            .await
            .unwrap();
        for piece in data.chunks(100_000) {
            w.write(piece).await.unwrap();
        }
        w.finish().await.unwrap();
        sha
    }

    /// The bytes of a GetChunk, or its error.
    async fn get(svc: &DataService, req: GetChunkRequest) -> Result<Vec<u8>, Status> {
        let mut s = svc.get_chunk(Request::new(req)).await?.into_inner();
        let mut out = Vec::new();
        while let Some(m) = futures::StreamExt::next(&mut s).await {
            out.extend_from_slice(&m?.data);
        }
        Ok(out)
    }

    fn ranged(sha: &[u8], offset: u64, length: u64) -> GetChunkRequest {
        GetChunkRequest {
            sha256: sha.to_vec(),
            offset,
            length,
            verify: true,
        }
    }

    fn flip(svc: &DataService, sha: &[u8], at: u64) {
        use std::os::unix::fs::FileExt;
        let p = svc.store.locate(sha).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_at(&[b[0] ^ 1], at).unwrap();
    }

    /// A blob written now has block sums; a verified ranged read checks only the blocks it
    /// covers: a flipped byte fails the ranges over its block (the copy is quarantined and
    /// reported) and not the others. Without `verify`, a full read streams unhashed (the
    /// reader checks), with it the damage is found at the end.
    #[tokio::test]
    async fn ranged_reads_check_only_their_blocks() {
        let (_dir, svc) = service();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        let sha = put(&svc, &data).await;
        let (f, _, total) = svc.store.read_range(&sha, 0, 0).await.unwrap();
        let sums = svc
            .store
            .block_sums(&f.into_std().await, total)
            .expect("sums");
        assert_eq!(sums.sums.len(), 16);
        for (a, n) in [
            (0u64, 1u64),
            (65_535, 2),
            (100, 700_000),
            (999_999, 5),
            (0, 1 << 30),
        ] {
            let got = get(&svc, ranged(&sha, a, n)).await.unwrap();
            let end = (a + n).min(data.len() as u64) as usize;
            assert!(got == data[a as usize..end], "range {a}+{n}");
        }
        flip(&svc, &sha, 300_000); // block 4
        let full = GetChunkRequest {
            sha256: sha.clone(),
            ..Default::default()
        };
        let unverified = get(&svc, full.clone()).await.unwrap();
        assert_eq!(unverified.len(), data.len());
        assert_ne!(
            unverified, data,
            "streamed as stored; the reader's hash finds it"
        );
        for (a, n) in [(0u64, 262_144u64), (327_680, 600_000)] {
            let got = get(&svc, ranged(&sha, a, n)).await.unwrap();
            assert!(
                got == data[a as usize..(a + n) as usize],
                "range {a}+{n} away from it"
            );
        }
        assert!(svc.store.take_events().corrupt.is_empty());
        let verified_full = GetChunkRequest {
            verify: true,
            ..full
        };
        let st = get(&svc, verified_full).await.unwrap_err();
        assert_eq!(
            ErrorDetail::from_status(&st).unwrap().code(),
            ErrorCode::CorruptChunk
        );
        assert!(svc.store.locate(&sha).is_none(), "quarantined");
        assert_eq!(svc.store.take_events().corrupt, vec![sha.clone()]);

        let sha = put(&svc, &data).await;
        flip(&svc, &sha, 300_000);
        let st = get(&svc, ranged(&sha, 299_990, 20)).await.unwrap_err();
        assert_eq!(
            ErrorDetail::from_status(&st).unwrap().code(),
            ErrorCode::CorruptChunk
        );
        assert!(svc.store.locate(&sha).is_none(), "quarantined");
        assert_eq!(svc.store.take_events().corrupt, vec![sha.clone()]);
    }

    /// A blob without block sums (written under format version 1) is read by range with the
    /// whole-blob check: a flipped byte anywhere fails every verified range.
    #[tokio::test]
    async fn a_blob_without_sums_is_verified_whole() {
        let (_dir, svc) = service();
        let data = vec![9u8; 200_000];
        let sha = put(&svc, &data).await;
        let path = svc.store.locate(&sha).unwrap();
        let name = std::ffi::CString::new(crate::blocksums::XATTR_NAME).unwrap();
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: both are valid NUL-terminated strings.
        assert_eq!(unsafe { libc::removexattr(c.as_ptr(), name.as_ptr()) }, 0);
        assert_eq!(
            get(&svc, ranged(&sha, 10, 10)).await.unwrap(),
            vec![9u8; 10]
        );
        flip(&svc, &sha, 150_000);
        let st = get(&svc, ranged(&sha, 10, 10)).await.unwrap_err();
        assert_eq!(
            ErrorDetail::from_status(&st).unwrap().code(),
            ErrorCode::CorruptChunk
        );
        assert!(svc.store.locate(&sha).is_none(), "quarantined");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_chunk_limit_is_refused() {
        let (_dir, svc) = service();
        let over = svc.store.begin(vec![1; 32], MAX_CHUNK_BYTES + 1).await;
        assert!(matches!(over, Err(ChunkError::BadRequest(_))));
        let wrapping = svc.store.begin(vec![1; 32], u64::MAX).await;
        assert!(matches!(wrapping, Err(ChunkError::BadRequest(_))));
        assert!(svc.store.begin(vec![1; 32], MAX_CHUNK_BYTES).await.is_ok());
    }
}
