//! Issue 12: malformed data API requests sent to a real chunkserver service on a socket are
//! refused with INVALID_ARGUMENT (never a panic), and the server keeps serving.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anode_chunkserver::service::DataService;
use anode_chunkserver::store::BlobStore;
use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::chunkserver_server::ChunkserverServer;
use anode_proto::*;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

async fn serve(dir: &std::path::Path) -> ChunkserverClient<Channel> {
    let store = BlobStore::open(&[dir.to_path_buf()], 0).unwrap();
    let svc = ChunkserverServer::new(DataService::new(store, Arc::new(AtomicU64::new(0))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        anode_chunkserver::limits::server()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(5));
    ChunkserverClient::new(ep.connect().await.unwrap())
}

fn invalid(r: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let st = r.expect_err(what);
    assert_eq!(st.code(), tonic::Code::InvalidArgument, "{what}: {st:?}");
    let d = ErrorDetail::from_status(&st).expect("detail");
    assert_eq!(d.code(), ErrorCode::InvalidArgument, "{what}");
}

async fn put(
    c: &mut ChunkserverClient<Channel>,
    msgs: Vec<PutChunkRequest>,
) -> Result<PutChunkResponse, tonic::Status> {
    c.put_chunk(futures::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

fn header(sha256: Vec<u8>, length: u64) -> Option<PutChunkHeader> {
    Some(PutChunkHeader {
        sha256,
        length,
        epoch: 0,
    })
}

async fn get(
    c: &mut ChunkserverClient<Channel>,
    req: GetChunkRequest,
) -> Result<Vec<u8>, tonic::Status> {
    let mut s = c.get_chunk(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.extend_from_slice(&m.data);
    }
    Ok(out)
}

#[tokio::test]
async fn malformed_requests_are_refused_and_the_server_keeps_serving() {
    let run = async {
        let dir = tempfile::tempdir().unwrap();
        let mut c = serve(dir.path()).await;
        let body = b"a chunk that is really stored".to_vec();
        let sha = Sha256::digest(&body).to_vec();
        let good = |data: Vec<u8>| PutChunkRequest {
            header: header(sha.clone(), body.len() as u64),
            data: data.into(),
        };
        put(&mut c, vec![good(body.clone())]).await.unwrap();

        for len in [0usize, 1, 31, 33, 1000] {
            let bad = vec![9u8; len];
            let req = GetChunkRequest {
                sha256: bad.clone(),
                ..Default::default()
            };
            invalid(get(&mut c, req).await, &format!("get, {len}-byte id"));
            let stat = StatChunkRequest {
                sha256: bad.clone(),
                touch: true,
            };
            invalid(c.stat_chunk(stat).await, &format!("stat, {len}-byte id"));
            let p = PutChunkRequest {
                header: header(bad, 1),
                data: vec![1].into(),
            };
            invalid(put(&mut c, vec![p]).await, &format!("put, {len}-byte id"));
        }
        for (offset, length, what) in [
            (u64::MAX, 2, "offset + length overflows"),
            (1, u64::MAX, "length overflows the offset"),
            (body.len() as u64 + 1, 1, "offset past the end"),
            (u64::MAX, 0, "offset u64::MAX"),
        ] {
            for verify in [false, true] {
                let req = GetChunkRequest {
                    sha256: sha.clone(),
                    offset,
                    length,
                    verify,
                };
                invalid(get(&mut c, req).await, what);
            }
        }
        for length in [anode_proto::MAX_CHUNK_BYTES + 1, u64::MAX] {
            let p = PutChunkRequest {
                header: header(sha.clone(), length),
                data: body.clone().into(),
            };
            invalid(
                put(&mut c, vec![p]).await,
                &format!("declared length {length}"),
            );
        }
        let headless = PutChunkRequest {
            header: None,
            data: body.clone().into(),
        };
        invalid(put(&mut c, vec![headless]).await, "no header");
        invalid(put(&mut c, vec![]).await, "empty put stream");

        // Still serving: a put, a full read, a range read cut at the end, a stat.
        let other = b"another chunk".to_vec();
        let other_sha = Sha256::digest(&other).to_vec();
        let p = PutChunkRequest {
            header: header(other_sha.clone(), other.len() as u64),
            data: other.clone().into(),
        };
        assert!(!put(&mut c, vec![p]).await.unwrap().already_present);
        let full = GetChunkRequest {
            sha256: other_sha.clone(),
            ..Default::default()
        };
        assert_eq!(get(&mut c, full).await.unwrap(), other);
        let range = GetChunkRequest {
            sha256: sha.clone(),
            offset: 2,
            length: 1 << 40,
            verify: true,
        };
        assert_eq!(get(&mut c, range).await.unwrap(), body[2..].to_vec());
        let stat = StatChunkRequest {
            sha256: sha.clone(),
            touch: false,
        };
        let st = c.stat_chunk(stat).await.unwrap().into_inner();
        assert!(st.present);
        assert_eq!(st.length, body.len() as u64);
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("test finished in time");
}

/// Issue 12: a copy that cannot be read (here a blob replaced by a directory: reads fail with
/// EISDIR, a real IO error) answers a full GetChunk with CORRUPT_CHUNK (so the client tries
/// the next replica and reports it), is moved out of `blobs/` for repair, and the server keeps
/// serving its other chunks.
#[tokio::test]
async fn an_unreadable_copy_is_reported_corrupt_over_the_wire() {
    let run = async {
        let dir = tempfile::tempdir().unwrap();
        let mut c = serve(dir.path()).await;
        let mut shas = Vec::new();
        for body in [b"one".to_vec(), b"two".to_vec()] {
            let sha = Sha256::digest(&body).to_vec();
            let p = PutChunkRequest {
                header: header(sha.clone(), body.len() as u64),
                data: body.into(),
            };
            put(&mut c, vec![p]).await.unwrap();
            shas.push(sha);
        }
        let hex = hex::encode(&shas[0]);
        let path = dir
            .path()
            .join("blobs")
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(&hex);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let req = GetChunkRequest {
            sha256: shas[0].clone(),
            ..Default::default()
        };
        let st = get(&mut c, req).await.expect_err("an unreadable copy");
        let d = ErrorDetail::from_status(&st).expect("detail");
        assert_eq!(d.code(), ErrorCode::CorruptChunk, "{st:?}");
        assert!(!path.exists(), "the bad copy left blobs/");
        assert_eq!(
            std::fs::read_dir(dir.path().join("corrupt"))
                .unwrap()
                .count(),
            1
        );
        let req = GetChunkRequest {
            sha256: shas[1].clone(),
            ..Default::default()
        };
        assert_eq!(get(&mut c, req).await.unwrap(), b"two".to_vec());
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("test finished in time");
}
