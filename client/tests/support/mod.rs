//! An in-process fake Anode cluster for client tests: one in-memory master that follows the
//! wire contract (error codes, leader redirects, placement answers) and chunkservers that keep
//! blobs in memory and can be taken down, corrupted or slowed. Real gRPC over loopback TCP.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anode_client::chunker::{multipart_etag, sha256};
use anode_proto::chunkserver_server::{Chunkserver, ChunkserverServer};
use anode_proto::master_server::{Master, MasterServer};
use anode_proto::*;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

/// A status carrying an error detail, as the real master sends it.
pub fn coded(code: ErrorCode, msg: &str) -> Status {
    ErrorDetail::new(code, msg).to_status()
}

/// The fake master's state, open for tests to inspect and tweak.
#[derive(Default)]
pub struct MasterState {
    pub buckets: BTreeMap<String, BucketConfig>,
    pub objects: BTreeMap<(String, String), Manifest>,
    pub chunks: HashMap<Vec<u8>, Vec<u64>>,
    pub servers: Vec<ChunkserverInfo>,
    pub reports: Vec<(Vec<u8>, u64)>,
    pub uploads: BTreeMap<String, (MultipartUpload, BTreeMap<u32, PartRecord>)>,
    pub keys: BTreeMap<String, AccessKey>,
    pub next_index: u64,
    /// Page size cap for ListObjects (0 = 1000).
    pub list_page_max: u32,
    pub calls: BTreeMap<&'static str, usize>,
}

impl MasterState {
    fn next_index(&mut self) -> u64 {
        self.next_index += 1;
        self.next_index
    }
    fn bucket(&self, name: &str) -> Result<&BucketConfig, Status> {
        self.buckets
            .get(name)
            .ok_or_else(|| coded(ErrorCode::NoSuchBucket, name))
    }
    fn commit(&mut self, bucket: &str, key: &str, mut m: Manifest) -> Manifest {
        m.object_version = self.next_index();
        m.mtime_ms = 1_700_000_000_000 + m.object_version;
        for c in &m.chunks {
            let e = self.chunks.entry(c.sha256.clone()).or_default();
            for s in &c.servers {
                if !e.contains(s) {
                    e.push(*s);
                }
            }
        }
        self.objects
            .insert((bucket.to_string(), key.to_string()), m.clone());
        m
    }
}

/// The fake master. With `redirect_to`, it behaves as a follower naming that leader.
#[derive(Clone)]
pub struct FakeMaster {
    pub state: Arc<Mutex<MasterState>>,
    pub redirect_to: Option<String>,
}

impl FakeMaster {
    fn gate(&self, rpc: &'static str) -> Result<parking_lot::MutexGuard<'_, MasterState>, Status> {
        if let Some(leader) = &self.redirect_to {
            return Err(ErrorDetail::new(ErrorCode::NotLeader, "not the leader")
                .with_leader(0, leader.clone())
                .to_status());
        }
        let mut st = self.state.lock();
        *st.calls.entry(rpc).or_default() += 1;
        Ok(st)
    }
}

macro_rules! fake_master_impl {
    (implemented { $($body:tt)* } stubs { $($name:ident($req:ty) -> $resp:ty;)* }) => {
        #[tonic::async_trait]
        impl Master for FakeMaster {
            $($body)*
            $(
                async fn $name(&self, _r: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

fake_master_impl! {
implemented {
    async fn create_bucket(&self, r: Request<CreateBucketRequest>) -> Result<Response<CreateBucketResponse>, Status> {
        let mut st = self.gate("create_bucket")?;
        let r = r.into_inner();
        if st.buckets.contains_key(&r.name) {
            return Err(coded(ErrorCode::BucketAlreadyOwnedByYou, &r.name));
        }
        let config = BucketConfig {
            version: RECORD_VERSION,
            name: r.name.clone(),
            replication: r.replication,
            owner_access_key: r.owner_access_key,
            ..Default::default()
        };
        st.buckets.insert(r.name, config.clone());
        Ok(Response::new(CreateBucketResponse { config: Some(config) }))
    }
    async fn delete_bucket(&self, r: Request<DeleteBucketRequest>) -> Result<Response<DeleteBucketResponse>, Status> {
        let mut st = self.gate("delete_bucket")?;
        let name = r.into_inner().name;
        st.bucket(&name)?;
        if st.objects.keys().any(|(b, _)| *b == name) {
            return Err(coded(ErrorCode::BucketNotEmpty, &name));
        }
        st.buckets.remove(&name);
        Ok(Response::new(DeleteBucketResponse {}))
    }
    async fn list_buckets(&self, _r: Request<ListBucketsRequest>) -> Result<Response<ListBucketsResponse>, Status> {
        let st = self.gate("list_buckets")?;
        Ok(Response::new(ListBucketsResponse { buckets: st.buckets.values().cloned().collect() }))
    }
    async fn get_bucket(&self, r: Request<GetBucketRequest>) -> Result<Response<GetBucketResponse>, Status> {
        let st = self.gate("get_bucket")?;
        let config = st.bucket(&r.into_inner().name)?.clone();
        Ok(Response::new(GetBucketResponse { config: Some(config) }))
    }
    async fn put_object(&self, r: Request<PutObjectRequest>) -> Result<Response<PutObjectResponse>, Status> {
        let mut st = self.gate("put_object")?;
        let r = r.into_inner();
        st.bucket(&r.bucket)?;
        let m = r.manifest.ok_or_else(|| Status::invalid_argument("no manifest"))?;
        if let Some(want) = r.if_match_etag {
            let cur = st.objects.get(&(r.bucket.clone(), r.key.clone())).map(|m| m.etag.clone()).unwrap_or_default();
            if cur != want {
                return Err(coded(ErrorCode::PreconditionFailed, "etag"));
            }
        }
        let m = st.commit(&r.bucket, &r.key, m);
        Ok(Response::new(PutObjectResponse { manifest: Some(m) }))
    }
    async fn get_object(&self, r: Request<GetObjectRequest>) -> Result<Response<GetObjectResponse>, Status> {
        let st = self.gate("get_object")?;
        let r = r.into_inner();
        st.bucket(&r.bucket)?;
        let m = st.objects.get(&(r.bucket, r.key.clone())).cloned()
            .ok_or_else(|| coded(ErrorCode::NoSuchKey, &r.key))?;
        Ok(Response::new(GetObjectResponse { manifest: Some(m) }))
    }
    async fn delete_object(&self, r: Request<DeleteObjectRequest>) -> Result<Response<DeleteObjectResponse>, Status> {
        let mut st = self.gate("delete_object")?;
        let r = r.into_inner();
        st.bucket(&r.bucket)?;
        let existed = st.objects.remove(&(r.bucket, r.key)).is_some();
        Ok(Response::new(DeleteObjectResponse { existed }))
    }
    async fn delete_objects(&self, r: Request<DeleteObjectsRequest>) -> Result<Response<DeleteObjectsResponse>, Status> {
        let mut st = self.gate("delete_objects")?;
        let r = r.into_inner();
        st.bucket(&r.bucket)?;
        let deleted = r.keys.into_iter().filter(|k| st.objects.remove(&(r.bucket.clone(), k.clone())).is_some()).collect();
        Ok(Response::new(DeleteObjectsResponse { deleted }))
    }
    async fn list_objects(&self, r: Request<ListObjectsRequest>) -> Result<Response<ListObjectsResponse>, Status> {
        let st = self.gate("list_objects")?;
        let r = r.into_inner();
        st.bucket(&r.bucket)?;
        let cap = match (r.max_keys, st.list_page_max) { (0, 0) => 1000, (0, c) => c, (m, 0) => m.min(1000), (m, c) => m.min(c) } as usize;
        let mut objects: Vec<ObjectEntry> = st.objects.iter()
            .filter(|((b, k), _)| *b == r.bucket && k.starts_with(&r.prefix) && **k > *r.start_after)
            .map(|((_, k), m)| ObjectEntry { key: k.clone(), size: m.size, etag: m.etag.clone(), mtime_ms: m.mtime_ms })
            .take(cap + 1)
            .collect();
        let is_truncated = objects.len() > cap;
        objects.truncate(cap);
        let next_start_after = if is_truncated { objects.last().map(|o| o.key.clone()).unwrap_or_default() } else { String::new() };
        Ok(Response::new(ListObjectsResponse { objects, common_prefixes: vec![], is_truncated, next_start_after }))
    }
    async fn create_multipart(&self, r: Request<CreateMultipartRequest>) -> Result<Response<CreateMultipartResponse>, Status> {
        let mut st = self.gate("create_multipart")?;
        let mut up = r.into_inner().upload.ok_or_else(|| Status::invalid_argument("no upload"))?;
        st.bucket(&up.bucket)?;
        let upload_id = format!("up-{}", st.next_index());
        up.upload_id = upload_id.clone();
        st.uploads.insert(upload_id.clone(), (up, BTreeMap::new()));
        Ok(Response::new(CreateMultipartResponse { upload_id }))
    }
    async fn put_part(&self, r: Request<PutPartRequest>) -> Result<Response<PutPartResponse>, Status> {
        let mut st = self.gate("put_part")?;
        let r = r.into_inner();
        let part = r.part.ok_or_else(|| Status::invalid_argument("no part"))?;
        let (_, parts) = st.uploads.get_mut(&r.upload_id).ok_or_else(|| coded(ErrorCode::NoSuchUpload, &r.upload_id))?;
        parts.insert(part.part_number, part);
        Ok(Response::new(PutPartResponse {}))
    }
    async fn complete_multipart(&self, r: Request<CompleteMultipartRequest>) -> Result<Response<CompleteMultipartResponse>, Status> {
        let mut st = self.gate("complete_multipart")?;
        let r = r.into_inner();
        let (up, parts) = st.uploads.remove(&r.upload_id).ok_or_else(|| coded(ErrorCode::NoSuchUpload, &r.upload_id))?;
        let mut m = Manifest { version: MANIFEST_VERSION, content_type: up.content_type, user_metadata: up.user_metadata, system_metadata: up.system_metadata, ..Default::default() };
        let mut etags = Vec::new();
        for cp in &r.parts {
            let p = parts.get(&cp.part_number).filter(|p| p.etag == cp.etag)
                .ok_or_else(|| coded(ErrorCode::InvalidPart, "part"))?;
            m.size += p.size;
            m.chunks.extend(p.chunks.iter().cloned());
            m.part_sizes.push(p.size);
            etags.push(p.etag.clone());
        }
        m.etag = multipart_etag(&etags).unwrap();
        let m = st.commit(&r.bucket, &r.key, m);
        Ok(Response::new(CompleteMultipartResponse { manifest: Some(m) }))
    }
    async fn abort_multipart(&self, r: Request<AbortMultipartRequest>) -> Result<Response<AbortMultipartResponse>, Status> {
        let mut st = self.gate("abort_multipart")?;
        let r = r.into_inner();
        st.uploads.remove(&r.upload_id).ok_or_else(|| coded(ErrorCode::NoSuchUpload, &r.upload_id))?;
        Ok(Response::new(AbortMultipartResponse {}))
    }
    async fn list_parts(&self, r: Request<ListPartsRequest>) -> Result<Response<ListPartsResponse>, Status> {
        let st = self.gate("list_parts")?;
        let r = r.into_inner();
        let (up, parts) = st.uploads.get(&r.upload_id).ok_or_else(|| coded(ErrorCode::NoSuchUpload, &r.upload_id))?;
        Ok(Response::new(ListPartsResponse { upload: Some(up.clone()), parts: parts.values().cloned().collect(), is_truncated: false, next_part_number_marker: 0 }))
    }
    async fn list_multipart_uploads(&self, r: Request<ListMultipartUploadsRequest>) -> Result<Response<ListMultipartUploadsResponse>, Status> {
        let st = self.gate("list_multipart_uploads")?;
        let b = r.into_inner().bucket;
        Ok(Response::new(ListMultipartUploadsResponse { uploads: st.uploads.values().filter(|(u, _)| u.bucket == b).map(|(u, _)| u.clone()).collect(), is_truncated: false }))
    }
    async fn allocate_chunks(&self, r: Request<AllocateChunksRequest>) -> Result<Response<AllocateChunksResponse>, Status> {
        let st = self.gate("allocate_chunks")?;
        let r = r.into_inner();
        let bucket = st.bucket(&r.bucket)?;
        let live = st.servers.clone();
        let replication = match bucket.replication { 0 => live.len().min(3) as u32, n => n };
        let usable = live.iter().filter(|s| !r.exclude.contains(&s.id)).count();
        if usable < replication as usize {
            // As the real master answers: the numbers travel as fields.
            let msg = format!("need {replication} live chunkservers, have {usable}");
            return Err(ErrorDetail::new(ErrorCode::InsufficientServers, msg)
                .with_need_have(u64::from(replication), usable as u64)
                .to_status());
        }
        let placements = r.sha256.iter().map(|sha| {
            let mut servers: Vec<ChunkserverInfo> = live.iter().filter(|s| !r.exclude.contains(&s.id)).cloned().collect();
            let n = servers.len().max(1);
            servers.rotate_left(sha[0] as usize % n);
            servers.truncate(replication as usize);
            ChunkPlacement { sha256: sha.clone(), servers }
        }).collect();
        Ok(Response::new(AllocateChunksResponse { replication, placements, live, touch_after_ms: 0 }))
    }
    async fn locate_chunks(&self, r: Request<LocateChunksRequest>) -> Result<Response<LocateChunksResponse>, Status> {
        let st = self.gate("locate_chunks")?;
        let placements = r.into_inner().sha256.into_iter().map(|sha| {
            let ids = st.chunks.get(&sha).cloned().unwrap_or_default();
            let servers = ids.iter().filter_map(|id| st.servers.iter().find(|s| s.id == *id).cloned()).collect();
            ChunkPlacement { sha256: sha, servers }
        }).collect();
        Ok(Response::new(LocateChunksResponse { placements }))
    }
    async fn report_bad_chunk(&self, r: Request<ReportBadChunkRequest>) -> Result<Response<ReportBadChunkResponse>, Status> {
        let mut st = self.gate("report_bad_chunk")?;
        let r = r.into_inner();
        st.reports.push((r.sha256, r.server_id));
        Ok(Response::new(ReportBadChunkResponse {}))
    }
    async fn leader(&self, _r: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        Ok(Response::new(LeaderResponse {
            id: 1,
            term: 1,
            is_leader: self.redirect_to.is_none(),
            leader_id: 1,
            leader_addr: self.redirect_to.clone().unwrap_or_default(),
        }))
    }
    async fn get_key(&self, r: Request<GetKeyRequest>) -> Result<Response<GetKeyResponse>, Status> {
        let st = self.gate("get_key")?;
        let ak = r.into_inner().access_key;
        let key = st.keys.get(&ak).cloned().ok_or_else(|| coded(ErrorCode::NoSuchAccessKey, &ak))?;
        Ok(Response::new(GetKeyResponse { key: Some(key) }))
    }
}
stubs {
    register_chunkserver(RegisterChunkserverRequest) -> RegisterChunkserverResponse;
    heartbeat(HeartbeatRequest) -> HeartbeatResponse;
    create_key(CreateKeyRequest) -> CreateKeyResponse;
    list_keys(ListKeysRequest) -> ListKeysResponse;
    delete_key(DeleteKeyRequest) -> DeleteKeyResponse;
    status(StatusRequest) -> StatusResponse;
    add_member(AddMemberRequest) -> AddMemberResponse;
    remove_member(RemoveMemberRequest) -> RemoveMemberResponse;
    transfer_leader(TransferLeaderRequest) -> TransferLeaderResponse;
    drain_chunkserver(DrainChunkserverRequest) -> DrainChunkserverResponse;
}
}

/// Knobs and counters of one fake chunkserver.
#[derive(Default)]
pub struct CsState {
    pub blobs: Mutex<HashMap<Vec<u8>, Bytes>>,
    /// Answer UNAVAILABLE to everything.
    pub down: AtomicBool,
    /// Accept calls and never answer them, like a SIGSTOPped process.
    pub frozen: AtomicBool,
    /// Serve a corrupted copy (flip the first byte; DATA_LOSS when asked to verify).
    pub corrupt: AtomicBool,
    pub puts: AtomicUsize,
    pub gets: AtomicUsize,
    pub put_delay_ms: AtomicU64,
    /// Shared across the cluster: PutChunk calls in progress, and the most seen at once.
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub struct FakeChunkserver(pub Arc<CsState>);

type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunkResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Chunkserver for FakeChunkserver {
    async fn put_chunk(
        &self,
        r: Request<Streaming<PutChunkRequest>>,
    ) -> Result<Response<PutChunkResponse>, Status> {
        let st = &self.0;
        if st.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        if st.frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let res = async {
            let mut stream = r.into_inner();
            let first = stream
                .message()
                .await?
                .ok_or_else(|| Status::invalid_argument("empty"))?;
            let header = first
                .header
                .ok_or_else(|| Status::invalid_argument("no header"))?;
            let mut data = first.data;
            while let Some(m) = stream.message().await? {
                if m.header.is_some() {
                    return Err(Status::invalid_argument("second header"));
                }
                data.extend_from_slice(&m.data);
            }
            if data.len() as u64 != header.length || sha256(&data)[..] != header.sha256[..] {
                return Err(Status::invalid_argument("length or SHA-256 mismatch"));
            }
            let delay = st.put_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            st.puts.fetch_add(1, Ordering::SeqCst);
            let already_present = st
                .blobs
                .lock()
                .insert(header.sha256, Bytes::from(data))
                .is_some();
            Ok(Response::new(PutChunkResponse { already_present }))
        }
        .await;
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
        res
    }

    type GetChunkStream = GetStream;

    async fn get_chunk(&self, r: Request<GetChunkRequest>) -> Result<Response<GetStream>, Status> {
        let st = &self.0;
        if st.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        if st.frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        st.gets.fetch_add(1, Ordering::SeqCst);
        let r = r.into_inner();
        let blob = st
            .blobs
            .lock()
            .get(&r.sha256)
            .cloned()
            .ok_or_else(|| coded(ErrorCode::NoSuchChunk, "no such chunk"))?;
        let corrupt = st.corrupt.load(Ordering::SeqCst);
        if corrupt && r.verify {
            return Err(coded(ErrorCode::CorruptChunk, "checksum mismatch"));
        }
        let mut data = blob.to_vec();
        if corrupt {
            data[0] ^= 0xff;
        }
        let total = data.len() as u64;
        let end = if r.length == 0 {
            total
        } else {
            r.offset + r.length
        };
        if r.offset > total || end > total {
            return Err(Status::out_of_range("range"));
        }
        let body = Bytes::from(data).slice(r.offset as usize..end as usize);
        let pieces: Vec<Result<GetChunkResponse, Status>> = body
            .chunks(64 << 10)
            .enumerate()
            .map(|(i, p)| {
                Ok(GetChunkResponse {
                    data: p.to_vec(),
                    total_length: if i == 0 { total } else { 0 },
                })
            })
            .collect();
        Ok(Response::new(futures::stream::iter(pieces).boxed()))
    }

    async fn stat_chunk(
        &self,
        r: Request<StatChunkRequest>,
    ) -> Result<Response<StatChunkResponse>, Status> {
        let blob = self.0.blobs.lock().get(&r.into_inner().sha256).cloned();
        Ok(Response::new(StatChunkResponse {
            present: blob.is_some(),
            length: blob.map_or(0, |b| b.len() as u64),
        }))
    }
}

/// A running fake cluster.
pub struct Cluster {
    pub master: Arc<Mutex<MasterState>>,
    pub master_addr: String,
    pub servers: Vec<(u64, String, Arc<CsState>)>,
}

async fn listen() -> (String, TcpListenerStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (addr, TcpListenerStream::new(l))
}

/// Serve a fake master (a follower naming `redirect_to`, if given) on a fresh port.
pub async fn serve_master(state: Arc<Mutex<MasterState>>, redirect_to: Option<String>) -> String {
    let (addr, incoming) = listen().await;
    let svc = MasterServer::new(FakeMaster { state, redirect_to });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming),
    );
    addr
}

impl Cluster {
    /// A master, `n` chunkservers, and a bucket `b` with replication `r`.
    pub async fn start(n: usize, r: u32) -> Cluster {
        let master: Arc<Mutex<MasterState>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let mut servers = Vec::new();
        for i in 0..n {
            let st = Arc::new(CsState {
                in_flight: in_flight.clone(),
                max_in_flight: max_in_flight.clone(),
                ..Default::default()
            });
            let (addr, incoming) = listen().await;
            let svc = ChunkserverServer::new(FakeChunkserver(st.clone()));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(incoming),
            );
            let id = i as u64 + 1;
            master.lock().servers.push(ChunkserverInfo {
                id,
                addr: addr.clone(),
                rack: format!("rack{i}"),
                epoch: 1,
                state: ChunkserverState::Alive as i32,
            });
            servers.push((id, addr, st));
        }
        master.lock().buckets.insert(
            "b".into(),
            BucketConfig {
                version: 1,
                name: "b".into(),
                replication: r,
                ..Default::default()
            },
        );
        let master_addr = serve_master(master.clone(), None).await;
        Cluster {
            master,
            master_addr,
            servers,
        }
    }

    pub fn server(&self, id: u64) -> &CsState {
        &self.servers.iter().find(|s| s.0 == id).unwrap().2
    }

    pub fn total_puts(&self) -> usize {
        self.servers
            .iter()
            .map(|s| s.2.puts.load(Ordering::SeqCst))
            .sum()
    }
}
