//! The client model: put, get and delete following the client library's protocol
//! (`client/src/write.rs`, `read.rs`, `master.rs`): allocate placement from the leader, write
//! each chunk to R chunkservers (replacing failed targets), touch copies older than half the
//! master's `touch_after_ms`, commit the manifest through raft; small bodies inline; reads take
//! the manifest from the leader (ReadIndex) and each chunk from a holder, SHA-256 verified,
//! reporting bad copies. Master calls follow leader hints and retry within a budget. Writes
//! carry the client session of `MasterConn::write`: this client's id and the write's sequence
//! number, the same on every retry (docs/architecture.md, "Client sessions").
//!
//! Each operation is an `async fn` polled by the simulation once per step; its RPCs complete
//! when the simulated network delivers the answer or the caller's timeout passes in
//! simulated time. Not simulated: tonic, the client library's own tasks and pools.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use anode_client::retry::WriteSessions;
use anode_client::write::{pick_targets, replication_of};
use anode_proto::*;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::body::{body_of, value_of};
use crate::net::*;

/// Until the master says otherwise (`DEFAULT_TOUCH_AFTER_MS` of the client library).
const DEFAULT_TOUCH_AFTER_MS: u64 = 300_000;

/// A client's view of the world: simulated time, its RPCs in flight, learned state.
pub struct ClientIo {
    /// Node id.
    pub node: u64,
    now: Cell<u64>,
    /// Wall clock offset from true time.
    pub wall_offset_ms: Cell<i64>,
    rpc_seq: Cell<u64>,
    out: RefCell<Out>,
    waiting: RefCell<BTreeMap<u64, (u64, Option<Reply>)>>,
    pub leader: Cell<u64>,
    pool: RefCell<BTreeMap<u64, ChunkserverInfo>>,
    touch_after_ms: Cell<u64>,
    /// The client session of this client's writes (`anode_client::retry::WriteSessions`).
    sessions: RefCell<WriteSessions>,
    /// Send writes without a session (to show what the sessions prevent).
    pub no_sessions: Cell<bool>,
}

impl ClientIo {
    /// A client at node `node`.
    pub fn new(node: u64) -> Rc<ClientIo> {
        Rc::new(ClientIo {
            node,
            now: Cell::new(0),
            wall_offset_ms: Cell::new(0),
            rpc_seq: Cell::new(0),
            out: RefCell::default(),
            waiting: RefCell::default(),
            leader: Cell::new(1),
            pool: RefCell::default(),
            touch_after_ms: Cell::new(DEFAULT_TOUCH_AFTER_MS),
            sessions: RefCell::new(WriteSessions::new(client_id(node))),
            no_sessions: Cell::new(false),
        })
    }

    /// Advance to `now_ms`: calls past their deadline time out.
    pub fn set_now(&self, now_ms: u64) {
        self.now.set(now_ms);
        for (deadline, slot) in self.waiting.borrow_mut().values_mut() {
            if slot.is_none() && now_ms >= *deadline {
                *slot = Some(Reply::Timeout);
            }
        }
    }

    /// An answer from the network.
    pub fn deliver(&self, rpc: u64, reply: Reply) {
        if let Some((_, slot)) = self.waiting.borrow_mut().get_mut(&rpc) {
            if slot.is_none() {
                *slot = Some(reply);
            }
        }
    }

    /// Requests to send.
    pub fn take_out(&self) -> Out {
        std::mem::take(&mut *self.out.borrow_mut())
    }

    /// Calls in flight (none once the operation finished).
    pub fn forget_calls(&self) {
        self.waiting.borrow_mut().clear();
    }

    fn now(&self) -> u64 {
        self.now.get()
    }

    fn wall(&self) -> u64 {
        (BASE_WALL_MS + self.now()).saturating_add_signed(self.wall_offset_ms.get())
    }

    fn next_rpc(&self) -> u64 {
        self.rpc_seq.set(self.rpc_seq.get() + 1);
        self.node * 1_000_000_000 + self.rpc_seq.get()
    }

    /// Send `call` to `to`; resolves with its answer or [`Reply::Timeout`].
    fn rpc(self: &Rc<Self>, to: u64, call: Call, timeout_ms: u64) -> RpcFuture {
        let rpc = self.next_rpc();
        self.out.borrow_mut().push((to, Payload::Req(rpc, call)));
        self.waiting
            .borrow_mut()
            .insert(rpc, (self.now() + timeout_ms, None));
        RpcFuture {
            io: self.clone(),
            rpc,
        }
    }

    /// Send without waiting for the answer (background reports).
    fn send(&self, to: u64, call: Call) {
        let rpc = self.next_rpc();
        self.out.borrow_mut().push((to, Payload::Req(rpc, call)));
    }

    fn sleep(self: &Rc<Self>, ms: u64) -> Sleep {
        Sleep {
            io: self.clone(),
            until: self.now() + ms,
        }
    }

    fn learn<'a>(&self, servers: impl Iterator<Item = &'a ChunkserverInfo>) {
        let mut pool = self.pool.borrow_mut();
        for s in servers {
            pool.insert(s.id, s.clone());
        }
    }

    fn lookup(&self, id: u64) -> Option<ChunkserverInfo> {
        self.pool.borrow().get(&id).cloned()
    }

    /// Start a logical write: the session every attempt of it carries.
    fn begin_write(&self) -> Option<ClientSession> {
        let mut s = self.sessions.borrow_mut();
        let seq = s.begin();
        let session = s.session(seq);
        // One operation at a time: the write is open until the next one begins.
        s.end(seq);
        (!self.no_sessions.get()).then_some(session)
    }
}

/// A fixed client id per simulated client (the library draws a random one per process).
fn client_id(node: u64) -> [u8; 16] {
    let mut id = [0xc1; 16];
    id[..8].copy_from_slice(&node.to_be_bytes());
    id
}

struct RpcFuture {
    io: Rc<ClientIo>,
    rpc: u64,
}

impl Future for RpcFuture {
    type Output = Reply;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Reply> {
        let mut w = self.io.waiting.borrow_mut();
        match w.get_mut(&self.rpc).and_then(|(_, s)| s.take()) {
            Some(r) => {
                w.remove(&self.rpc);
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

struct Sleep {
    io: Rc<ClientIo>,
    until: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.io.now() >= self.until {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What an operation returned, for the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect; a get's value (`None`: absent).
    Ok(Option<String>),
    /// Surely had no effect.
    Fail,
    /// May or may not have taken effect.
    Info,
}

/// A master call through the leader: redirects are followed, timeouts and lost requests
/// tried on the next member, within [`RETRY_BUDGET_MS`]. Returns the answer (or `None`
/// when the budget ran out) and whether an attempt may have taken effect unseen.
async fn master_call(io: &Rc<ClientIo>, call: Call) -> (Option<Reply>, bool) {
    let start = io.now();
    let mut ambiguous = false;
    loop {
        let to = io.leader.get();
        match io.rpc(to, call.clone(), RPC_TIMEOUT_MS).await {
            Reply::NotLeader(l) if l != 0 && l != to => io.leader.set(l),
            Reply::NotLeader(_) => io.leader.set(to % MASTERS + 1),
            Reply::Timeout | Reply::Lost => {
                ambiguous = true;
                io.leader.set(to % MASTERS + 1);
            }
            other => return (Some(other), ambiguous),
        }
        if io.now() >= start + RETRY_BUDGET_MS {
            return (None, ambiguous);
        }
        io.sleep(STEP_MS).await;
    }
}

/// Store one chunk on R servers; its reference, or `Err` (nothing committed).
async fn store_chunk(io: &Rc<ClientIo>, data: &[u8]) -> Result<ChunkRef, ()> {
    let sha = Sha256::digest(data).to_vec();
    let deadline = io.now() + RETRY_BUDGET_MS + CHUNK_TIMEOUT_MS;
    let (mut acked, mut failed): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    loop {
        let req = AllocateChunksRequest {
            bucket: BUCKET.into(),
            sha256: vec![sha.clone()],
            exclude: failed.clone(),
        };
        let Some(Reply::Allocated(alloc)) = master_call(io, Call::Allocate(req)).await.0 else {
            return Err(());
        };
        if alloc.touch_after_ms > 0 {
            io.touch_after_ms.set(alloc.touch_after_ms);
        }
        io.learn(alloc.live.iter());
        io.learn(alloc.placements.iter().flat_map(|p| p.servers.iter()));
        let r = replication_of(&alloc);
        let targets = pick_targets(&alloc, &sha, &acked, &failed);
        let need = r.saturating_sub(acked.len());
        if r == 0 || targets.len() < need {
            return Err(());
        }
        let writes = targets[..need].iter().map(|s| {
            let call = Call::PutChunk {
                sha: sha.clone(),
                data: data.to_vec(),
                epoch: s.epoch,
            };
            let node = cs_node(&s.addr).expect("chunkserver address");
            io.rpc(node, call, CHUNK_TIMEOUT_MS)
        });
        let results = futures::future::join_all(writes).await;
        for (s, r) in targets[..need].iter().zip(results) {
            match r {
                Reply::ChunkPut(Ok(())) => acked.push(s.id),
                _ => failed.push(s.id),
            }
        }
        if acked.len() >= r {
            return Ok(ChunkRef {
                sha256: sha,
                length: data.len() as u64,
                servers: acked,
                uploaded_ms: io.wall(),
            });
        }
        if io.now() >= deadline {
            return Err(());
        }
    }
}

/// `touch_old` in write.rs: copies written longer ago than half the master's touch-after
/// time are touched again; a vanished copy fails the put.
async fn touch_old(io: &Rc<ClientIo>, chunks: &mut [ChunkRef]) -> Result<(), ()> {
    let limit = io.touch_after_ms.get() / 2;
    for c in chunks.iter_mut() {
        if io.wall().saturating_sub(c.uploaded_ms) <= limit {
            continue;
        }
        for id in &c.servers {
            let info = io.lookup(*id).ok_or(())?;
            let node = cs_node(&info.addr).ok_or(())?;
            let call = Call::StatChunk {
                sha: c.sha256.clone(),
                touch: true,
            };
            match io.rpc(node, call, RPC_TIMEOUT_MS).await {
                Reply::ChunkStat(Ok(true)) => {}
                _ => return Err(()),
            }
        }
        c.uploaded_ms = io.wall();
    }
    Ok(())
}

/// Create the bucket with R copies, retrying until it exists.
pub async fn create_bucket(io: Rc<ClientIo>) -> Outcome {
    loop {
        let req = CreateBucketRequest {
            name: BUCKET.into(),
            replication: R,
            owner_user: String::new(),
            access: Vec::new(),
            session: io.begin_write(),
            ..Default::default()
        };
        match master_call(&io, Call::CreateBucket(req)).await.0 {
            Some(Reply::Created) => return Outcome::Ok(None),
            Some(Reply::Error(
                ErrorCode::BucketAlreadyOwnedByYou | ErrorCode::BucketAlreadyExists,
            )) => return Outcome::Ok(None),
            _ => io.sleep(STEP_MS).await,
        }
    }
}

/// Put `value`'s body at `key`; the body stalls for `stall_ms` after its first chunk.
pub async fn put(io: Rc<ClientIo>, key: String, value: String, stall_ms: u64) -> Outcome {
    let body = body_of(&value);
    let mut chunks = Vec::new();
    let mut inline_data = Vec::new();
    if body.len() <= INLINE_MAX {
        inline_data = body.clone();
    } else {
        for piece in body.chunks(CHUNK_BYTES) {
            match store_chunk(&io, piece).await {
                Ok(c) => chunks.push(c),
                Err(()) => return Outcome::Fail,
            }
            if chunks.len() == 1 && stall_ms > 0 {
                io.sleep(stall_ms).await;
            }
        }
        if touch_old(&io, &mut chunks).await.is_err() {
            return Outcome::Fail;
        }
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        size: body.len() as u64,
        etag: hex::encode(Md5::digest(&body)),
        chunks,
        inline_data,
        ..Default::default()
    };
    let req = PutObjectRequest {
        parquet: None,
        parquet_copy: None,
        bucket: BUCKET.into(),
        key,
        manifest: Some(manifest),
        if_match_etag: None,
        session: io.begin_write(),
        source: String::new(),
    };
    match master_call(&io, Call::PutObject(req)).await {
        (Some(Reply::Put), _) => Outcome::Ok(None),
        // Fresh uploads into an existing bucket: no state error is possible.
        (Some(other), _) => panic!("unexpected PutObject reply {other:?}"),
        (None, true) => Outcome::Info,
        (None, false) => Outcome::Fail,
    }
}

/// Delete `key`.
pub async fn delete(io: Rc<ClientIo>, key: String) -> Outcome {
    let req = DeleteObjectRequest {
        bucket: BUCKET.into(),
        key,
        session: io.begin_write(),
        ..Default::default()
    };
    match master_call(&io, Call::DeleteObject(req)).await {
        (Some(Reply::Deleted), _) => Outcome::Ok(None),
        (Some(other), _) => panic!("unexpected DeleteObject reply {other:?}"),
        (None, true) => Outcome::Info,
        (None, false) => Outcome::Fail,
    }
}

/// Read `key`: its value, checked byte for byte against the value's body.
pub async fn get(io: Rc<ClientIo>, key: String) -> Outcome {
    let req = GetObjectRequest {
        bucket: BUCKET.into(),
        key: key.clone(),
        allow_stale: false,
        ..Default::default()
    };
    let m = match master_call(&io, Call::GetObject(req)).await.0 {
        Some(Reply::Got(m)) => *m,
        Some(Reply::Error(ErrorCode::NoSuchKey)) => return Outcome::Ok(None),
        Some(Reply::Error(code)) => panic!("GetObject failed: {code}"),
        _ => return Outcome::Fail,
    };
    let body = if m.chunks.is_empty() {
        m.inline_data.clone()
    } else {
        match read_chunks(&io, &m).await {
            Some(b) => b,
            None => return Outcome::Fail,
        }
    };
    let value = value_of(&body).unwrap_or_else(|| {
        panic!(
            "read of {key} returned {} bytes that are no value's body",
            body.len()
        )
    });
    assert_eq!(value_of(&body).map(|v| body_of(&v)), Some(body));
    Outcome::Ok(Some(value))
}

async fn read_chunks(io: &Rc<ClientIo>, m: &Manifest) -> Option<Vec<u8>> {
    let req = LocateChunksRequest {
        sha256: m.chunks.iter().map(|c| c.sha256.clone()).collect(),
    };
    let placements = match master_call(io, Call::Locate(req)).await.0 {
        Some(Reply::Located(l)) => l.placements,
        // Without the master the manifest's servers are all there is.
        _ => Vec::new(),
    };
    io.learn(placements.iter().flat_map(|p| p.servers.iter()));
    let mut body = Vec::new();
    for c in &m.chunks {
        let mut servers: Vec<ChunkserverInfo> = Vec::new();
        let from_master = placements
            .iter()
            .filter(|p| p.sha256 == c.sha256)
            .flat_map(|p| p.servers.iter().cloned());
        let from_manifest = c.servers.iter().filter_map(|id| io.lookup(*id));
        for s in from_master.chain(from_manifest) {
            if !s.addr.is_empty() && !servers.iter().any(|o| o.id == s.id) {
                servers.push(s);
            }
        }
        body.extend(fetch_chunk(io, c, &servers).await?);
    }
    Some(body)
}

/// The chunk from the first replica that serves it verified; bad copies are reported.
async fn fetch_chunk(
    io: &Rc<ClientIo>,
    c: &ChunkRef,
    servers: &[ChunkserverInfo],
) -> Option<Vec<u8>> {
    for s in servers {
        let Some(node) = cs_node(&s.addr) else {
            continue;
        };
        let call = Call::GetChunk {
            sha: c.sha256.clone(),
        };
        let bad = match io.rpc(node, call, RPC_TIMEOUT_MS).await {
            Reply::ChunkGot(Ok(data)) => {
                if data.len() as u64 == c.length && Sha256::digest(&data).as_slice() == c.sha256 {
                    return Some(data);
                }
                true
            }
            Reply::ChunkGot(Err(ChunkFail::NotFound | ChunkFail::Corrupt)) => true,
            _ => false,
        };
        if bad {
            let report = ReportBadChunkRequest {
                sha256: c.sha256.clone(),
                server_id: s.id,
                reason: "bad replica".into(),
            };
            io.send(io.leader.get(), Call::ReportBad(report));
        }
    }
    None
}
