//! The chunkserver's data API, served by the real tonic server (`ChunkserverServer` over
//! `DataService`) on a real `BlobStore` in a temporary directory: request bodies are gRPC
//! frames holding fuzz bytes that the server's prost codec decodes.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anode_chunkserver::service::DataService;
use anode_chunkserver::store::BlobStore;
use anode_proto::chunkserver_server::ChunkserverServer;
use anode_proto::{GetChunkRequest, PutChunkRequest, StatChunkRequest};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::codegen::Service;

use crate::input::Cursor;

/// Capacity of the fuzzed store, so a run cannot fill the disk.
const CAPACITY_BYTES: u64 = 256 << 20;
/// Most calls one input makes.
const MAX_CALLS: usize = 32;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    store: BlobStore,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // tmpfs when there is one: fsync is free there and the store fsyncs every put.
        let shm = PathBuf::from("/dev/shm");
        let parent = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        // A static is never dropped, so a fuzzing process leaves its directory behind: remove
        // those of processes that are gone, and name ours after our pid.
        remove_stale_dirs(&parent);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}.", std::process::id()))
            .tempdir_in(parent)
            .expect("a temporary directory");
        let store = BlobStore::open(&[dir.path().to_path_buf()], CAPACITY_BYTES)
            .expect("a blob store in a fresh directory");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Fixture {
            _dir: dir,
            store,
            rt,
        }
    })
}

/// Name prefix of the store directories: `anode-fuzz-chunkserver.<pid>.<random>`.
const DIR_PREFIX: &str = "anode-fuzz-chunkserver.";

/// Remove store directories left by processes that no longer run (Linux: `/proc/<pid>`).
fn remove_stale_dirs(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// One RPC: its method and the encoded request messages of its stream.
#[derive(Debug)]
enum Call {
    Put(Vec<Vec<u8>>),
    Get(Vec<u8>),
    Stat(Vec<u8>),
}

/// Input: records `[kind byte][u16 length][message bytes]`. Kind % 4: 0 starts a PutChunk
/// stream with that message, 1 appends a message to the current PutChunk stream, 2 is a
/// GetChunk, 3 a StatChunk. Message bytes are decoded by the server as the request type.
fn calls(data: &[u8]) -> Vec<Call> {
    let mut c = Cursor::new(data);
    let mut calls: Vec<Call> = Vec::new();
    while !c.is_empty() && calls.len() < MAX_CALLS {
        let kind = c.u8() % 4;
        let msg = c.chunk().to_vec();
        match (kind, calls.last_mut()) {
            (1, Some(Call::Put(stream))) => stream.push(msg),
            (0 | 1, _) => calls.push(Call::Put(vec![msg])),
            (2, _) => calls.push(Call::Get(msg)),
            _ => calls.push(Call::Stat(msg)),
        }
    }
    calls
}

fn grpc_body(messages: &[Vec<u8>]) -> Bytes {
    let mut b = BytesMut::new();
    for m in messages {
        b.put_u8(0);
        b.put_u32(m.len() as u32);
        b.put_slice(m);
    }
    b.freeze()
}

/// The answer to one call: gRPC status code and the response messages' bytes.
struct Answer {
    status: i32,
    messages: Vec<Bytes>,
}

async fn send(
    svc: &mut ChunkserverServer<DataService>,
    method: &str,
    messages: &[Vec<u8>],
) -> Answer {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://chunkserver/anode.v1.Chunkserver/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_body(messages)))
        .expect("a valid request");
    let resp = tokio::time::timeout(CALL_TIMEOUT, svc.call(req))
        .await
        .expect("the call answers in time")
        .expect("the service never fails (errors are statuses)");
    let headers = resp.headers().clone();
    let collected = tokio::time::timeout(CALL_TIMEOUT, resp.into_body().collect())
        .await
        .expect("the response body finishes in time")
        .expect("the response body is readable");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("every answer carries a grpc-status");
    if crate::debug() {
        eprintln!(
            "{method} -> grpc-status {status} {:?}",
            trailers.get("grpc-message")
        );
    }
    let mut body = collected.to_bytes();
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let n = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let _ = body.split_to(5);
        messages.push(body.split_to(n.min(body.len())));
    }
    Answer { status, messages }
}

/// Status codes the data API may answer to a malformed or unlucky request. `INTERNAL` (13)
/// and `UNKNOWN` (2) mean a handler failed in a way it should have checked for, except that
/// tonic answers INTERNAL to a message that does not decode (see [`check_status`]).
const ACCEPTABLE: [i32; 8] = [0, 3, 5, 6, 8, 9, 11, 15];

/// Whether `status` is a fine answer to `messages` of type `M`.
fn check_status<M: Message + Default>(what: &str, messages: &[Vec<u8>], status: i32) {
    let undecodable = messages.iter().any(|m| M::decode(m.as_slice()).is_err());
    assert!(
        ACCEPTABLE.contains(&status) || (undecodable && status == 13),
        "{what} -> grpc-status {status}"
    );
}

/// The chunkserver data API: PutChunk streams, GetChunk and StatChunk of arbitrary decoded
/// messages. Never a panic, never INTERNAL/UNKNOWN; a put that succeeded reads back as bytes
/// hashing to its id, and stats as present with its length.
pub fn chunkserver_rpc(data: &[u8]) {
    let f = fixture();
    let svc = DataService::new(f.store.clone(), Arc::new(AtomicU64::new(0)));
    let mut svc = ChunkserverServer::new(svc);
    f.rt.block_on(async {
        for call in calls(data) {
            match call {
                Call::Put(stream) => put(&mut svc, &stream).await,
                Call::Get(m) => {
                    let m = [m];
                    let a = send(&mut svc, "GetChunk", &m).await;
                    check_status::<GetChunkRequest>("GetChunk", &m, a.status);
                }
                Call::Stat(m) => {
                    let m = [m];
                    let a = send(&mut svc, "StatChunk", &m).await;
                    check_status::<StatChunkRequest>("StatChunk", &m, a.status);
                }
            }
        }
    });
}

async fn put(svc: &mut ChunkserverServer<DataService>, stream: &[Vec<u8>]) {
    let a = send(svc, "PutChunk", stream).await;
    check_status::<PutChunkRequest>("PutChunk", stream, a.status);
    if a.status != 0 {
        return;
    }
    // It succeeded, so the stream decoded: the header names the id and length.
    let first = PutChunkRequest::decode(stream[0].as_slice()).expect("the server decoded it");
    let h = first.header.expect("the server required a header");
    let stat = StatChunkRequest {
        sha256: h.sha256.clone(),
        touch: false,
    };
    let s = send(svc, "StatChunk", &[stat.encode_to_vec()]).await;
    assert_eq!(s.status, 0);
    let resp = anode_proto::StatChunkResponse::decode(s.messages[0].as_ref()).expect("stat");
    assert!(resp.present, "a stored chunk is present");
    assert_eq!(resp.length, h.length);
    let get = GetChunkRequest {
        sha256: h.sha256.clone(),
        ..Default::default()
    };
    let g = send(svc, "GetChunk", &[get.encode_to_vec()]).await;
    assert_eq!(g.status, 0, "a stored chunk reads back");
    let mut hasher = Sha256::new();
    for m in &g.messages {
        let piece = anode_proto::GetChunkResponse::decode(m.as_ref()).expect("get piece");
        hasher.update(&piece.data);
    }
    assert_eq!(hasher.finalize().as_slice(), h.sha256.as_slice());
}

/// Target `blocksums`: the block-sum xattr value (`anode_chunkserver::blocksums`), which a
/// chunkserver reads back from disk, where a media fault or a copied file can put anything.
/// The input is two `u64`s (an offset and a length) and a value; the value is decoded as it
/// is and with its trailer recomputed (so mutations reach the field checks behind the CRC).
/// Properties: a value that decodes re-encodes to one that decodes equal; `covering` of any
/// range lies within the blob and on block boundaries (or at its end); `check` of any start
/// and any bytes (up to 1 MiB) answers without panicking, and accepts the blocks the sums
/// were made from.
pub fn blocksums(data: &[u8]) {
    use anode_chunkserver::blocksums::{crc32c, BlockSums};
    let mut c = Cursor::new(data);
    let (offset, len) = (c.u64(), c.u64());
    let value = c.rest();
    let mut fixed = value.to_vec();
    fixed.extend_from_slice(&crc32c(value).to_le_bytes());
    for v in [value, &fixed[..]] {
        let Ok(s) = BlockSums::decode(v) else {
            continue;
        };
        let again = BlockSums::decode(&s.encode()).expect("a decoded value re-encodes");
        assert_eq!(again, s, "re-encoded sums decode equal");
        let (a, b) = s.covering(offset, len);
        assert!(
            a <= b && b <= s.blob_len,
            "covering {a}..{b} of {}",
            s.blob_len
        );
        assert_eq!(a % s.block_bytes, 0, "covering starts on a block");
        assert!(
            b % s.block_bytes == 0 || b == s.blob_len,
            "covering ends on a block"
        );
        // Bytes to check: zeros, at most 1 MiB, from any start (block-aligned or not).
        let n = ((b - a).min(1 << 20)) as usize;
        let _ = s.check(offset, &vec![0u8; n]);
        let _ = s.check(a, &vec![0u8; n]);
        // Sums made from real bytes accept them.
        if s.blob_len <= 1 << 20 {
            let blob: Vec<u8> = (0..s.blob_len).map(|i| i as u8).collect();
            let made = BlockSums {
                block_bytes: s.block_bytes,
                blob_len: s.blob_len,
                sums: blob.chunks(s.block_bytes as usize).map(crc32c).collect(),
            };
            let (a, b) = made.covering(offset, len);
            assert_eq!(made.check(a, &blob[a as usize..b as usize]), Ok(()));
        }
    }
}
