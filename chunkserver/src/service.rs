//! The data API over tonic: streamed put, streamed (ranged) get, stat.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anode_proto::chunkserver_server::Chunkserver;
use anode_proto::*;
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ChunkError;
use crate::limits::{STREAM_IDLE_TIMEOUT, UNARY_TIMEOUT};
use crate::store::{check_id, BlobStore, READ_PIECE_BYTES};

/// The gRPC data service.
#[derive(Clone)]
pub struct DataService {
    store: BlobStore,
    epoch: Arc<AtomicU64>,
}

impl DataService {
    /// A service over `store`; `epoch` is this server's current registration epoch.
    pub fn new(store: BlobStore, epoch: Arc<AtomicU64>) -> Self {
        DataService { store, epoch }
    }
}

type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunkResponse, Status>> + Send>>;

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
        w.write_bytes(first.data).await?;
        while let Some(m) = next_idle_bounded(&mut s).await? {
            w.write_bytes(m.data).await?;
        }
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
        if r.verify && !full && !self.store.verify(&r.sha256).await? {
            self.store.quarantine(&r.sha256);
            return Err(ChunkError::Corrupt(hex::encode(&r.sha256)).into());
        }
        let (file, n, total) = self.store.read_range(&r.sha256, r.offset, r.length).await?;
        crate::metrics::GETS.inc();
        let store = self.store.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream_file(store, r.sha256, file, n, total, full, tx));
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

/// Send `n` bytes of `file` in pieces. A full read hashes as it goes and ends with DATA_LOSS
/// (and quarantines the copy) if the content does not match its id.
async fn stream_file(
    store: BlobStore,
    sha: Vec<u8>,
    mut file: tokio::fs::File,
    n: u64,
    total: u64,
    full: bool,
    tx: tokio::sync::mpsc::Sender<Result<GetChunkResponse, Status>>,
) {
    let mut left = n;
    let mut hasher = Sha256::new();
    let mut first = true;
    while left > 0 || first {
        let take = left.min(READ_PIECE_BYTES as u64) as usize;
        let mut buf = vec![0u8; take];
        if let Err(e) = file.read_exact(&mut buf).await {
            let _ = tx.send(Err(store.read_failed(&sha, e).into())).await;
            return;
        }
        left -= take as u64;
        if full {
            hasher.update(&buf);
            if left == 0 && hasher.clone().finalize().as_slice() != sha.as_slice() {
                store.quarantine(&sha);
                let _ = tx
                    .send(Err(ChunkError::Corrupt(hex::encode(&sha)).into()))
                    .await;
                return;
            }
        }
        crate::metrics::BYTES_OUT.inc_by(take as u64);
        let msg = GetChunkResponse {
            data: buf,
            total_length: if first { total } else { 0 },
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
