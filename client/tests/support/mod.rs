//! An in-process fake Anode cluster for client tests: one master and chunkservers that keep
//! blobs in memory and can be taken down, frozen, corrupted or slowed. Real gRPC over loopback
//! TCP.
//!
//! The master is the real metadata core without raft: the pure state machine over an in-memory
//! kv ([`anode_meta::state::MemState`], fixed clock [`NOW_MS`]) and the leader's decisions
//! ([`LeaderControl`]: placement, chunk locations, leases). Each RPC builds the `Command` the
//! master service builds for it (`master/src/service.rs`), applies it, and answers errors with
//! `ErrorDetail::to_status()` as that service does; reads are the state machine's queries. So
//! bucket names, conditions, multipart rules, listing and placement are the real ones, written
//! once in `anode-meta`.
//!
//! What only the fake does: answer as a follower naming a leader (`redirect_to`), count calls
//! per RPC (`calls`), keep bad-copy reports for inspection (`reports`), cap listing pages
//! (`list_page_max`), and never let leases expire (its monotonic clock stands still, so every
//! registered server stays alive; a "down" server is only down at the chunkserver). RPCs the
//! client does not use (membership, keys other than `GetKey`, heartbeats) answer UNIMPLEMENTED.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anode_client::chunker::sha256;
use anode_meta::control::{fresh_copies, HealConfig, LeaderControl};
use anode_meta::leases::LeaseConfig;
use anode_meta::state::{self, MemState, StateError};
use anode_proto::chunkserver_server::{Chunkserver, ChunkserverServer};
use anode_proto::command::Op;
use anode_proto::master_server::{Master, MasterServer};
use anode_proto::*;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

/// The fake master's clock: every command is stamped with it.
pub const NOW_MS: u64 = 1_700_000_000_000;

/// The leader's monotonic clock, standing still: leases granted at election never expire.
const MONO_MS: u64 = 0;

/// A status carrying an error detail, as the real master sends it.
pub fn coded(code: ErrorCode, msg: &str) -> Status {
    ErrorDetail::new(code, msg).to_status()
}

/// A state machine refusal, as the master service sends it.
fn refused(e: StateError) -> Status {
    e.detail().to_status()
}

/// The fake master's state, open for tests to inspect and tweak.
pub struct MasterState {
    /// The replicated state (buckets, objects, uploads, keys, chunk records, servers).
    pub sm: MemState,
    /// The leader's soft state and decisions (leases, placement, chunk locations).
    pub control: LeaderControl,
    /// Every `ReportBadChunk` received: (chunk, server).
    pub reports: Vec<(Vec<u8>, u64)>,
    /// Page size cap for ListObjects (0 = none beyond the master's 1000).
    pub list_page_max: u32,
    /// Calls per RPC (leader answers only).
    pub calls: BTreeMap<&'static str, usize>,
    /// Fault: the next `PutObject` is applied, then this write of another client, and then
    /// the put's answer is lost (UNAVAILABLE, as from a leader killed after the commit).
    pub lose_put_answer_then: Option<Op>,
    uploads_created: u64,
}

impl Default for MasterState {
    fn default() -> Self {
        let mut control = LeaderControl::new(LeaseConfig::default(), HealConfig::default());
        control.observe_leadership(1, MONO_MS);
        MasterState {
            sm: MemState::new(NOW_MS),
            control,
            reports: Vec::new(),
            list_page_max: 0,
            calls: BTreeMap::new(),
            lose_put_answer_then: None,
            uploads_created: 0,
        }
    }
}

impl MasterState {
    /// Apply one command; a refusal as the master service sends it.
    fn propose(&mut self, op: Op) -> Result<CommandResult, Status> {
        self.sm.propose(op).map_err(|e| e.to_status())
    }

    /// Commit a write whose chunk references name fresh copies, and learn those copies as
    /// locations (the service's `put_object` and `put_part`).
    fn propose_fresh(
        &mut self,
        session: Option<ClientSession>,
        op: Op,
        refs: &[ChunkRef],
    ) -> Result<CommandResult, Status> {
        let fresh = fresh_copies(refs.iter());
        let res = self.sm.propose_in(session, op).map_err(|e| e.to_status())?;
        self.control.learn_copies(&fresh);
        Ok(res)
    }

    /// Register a chunkserver as the service does; its id.
    pub fn register_server(&mut self, addr: &str, rack: &str) -> u64 {
        let res = self
            .propose(Op::RegisterChunkserver(RegisterChunkserverCmd {
                addr: addr.into(),
                rack: rack.into(),
                capacity_bytes: 1 << 40,
                uuid: format!("fake-{addr}"),
            }))
            .expect("registration is accepted");
        self.control.registered(res.chunkserver_id, MONO_MS);
        res.chunkserver_id
    }

    /// Create a bucket as the service does.
    pub fn create_bucket(
        &mut self,
        name: &str,
        replication: u32,
        owner_access_key: &str,
        access: Vec<u8>,
    ) -> Result<BucketConfig, Status> {
        let config = BucketConfig {
            version: RECORD_VERSION,
            name: name.into(),
            replication,
            owner_access_key: owner_access_key.into(),
            access,
            ..Default::default()
        };
        self.propose(Op::CreateBucket(CreateBucketCmd {
            config: Some(config.clone()),
        }))?;
        Ok(state::get_bucket(&self.sm.kv, name).unwrap_or(config))
    }

    /// The chunkservers the master names for a chunk, in the order readers try them.
    pub fn locate(&self, sha256: &[u8]) -> Vec<u64> {
        let found = self
            .control
            .locate(&self.sm.kv, &[sha256.to_vec()], MONO_MS);
        found[0].servers.iter().map(|s| s.id).collect()
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

type Rpc<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Rpc<T> {
    Ok(Response::new(v))
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
    type BackupStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<BackupPiece, Status>> + Send>>;
    async fn backup(&self, _r: Request<BackupRequest>) -> Rpc<Self::BackupStream> {
        Err(Status::unimplemented("backup"))
    }
    type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<WatchResponse, Status>> + Send>>;
    async fn watch(&self, _r: Request<WatchRequest>) -> Rpc<Self::WatchStream> {
        Err(Status::unimplemented("watch"))
    }
    async fn create_bucket(&self, r: Request<CreateBucketRequest>) -> Rpc<CreateBucketResponse> {
        let mut st = self.gate("create_bucket")?;
        let r = r.into_inner();
        let config = st.create_bucket(&r.name, r.replication, &r.owner_access_key, r.access)?;
        ok(CreateBucketResponse { config: Some(config) })
    }
    async fn delete_bucket(&self, r: Request<DeleteBucketRequest>) -> Rpc<DeleteBucketResponse> {
        let mut st = self.gate("delete_bucket")?;
        st.propose(Op::DeleteBucket(DeleteBucketCmd { name: r.into_inner().name }))?;
        ok(DeleteBucketResponse {})
    }
    async fn list_buckets(&self, _r: Request<ListBucketsRequest>) -> Rpc<ListBucketsResponse> {
        let st = self.gate("list_buckets")?;
        ok(ListBucketsResponse { buckets: state::list_buckets(&st.sm.kv), usage: Vec::new() })
    }
    async fn get_bucket(&self, r: Request<GetBucketRequest>) -> Rpc<GetBucketResponse> {
        let st = self.gate("get_bucket")?;
        let name = r.into_inner().name;
        let config = state::get_bucket(&st.sm.kv, &name).ok_or_else(|| refused(StateError::NoSuchBucket(name)))?;
        ok(GetBucketResponse { config: Some(config) })
    }
    async fn put_object(&self, r: Request<PutObjectRequest>) -> Rpc<PutObjectResponse> {
        let mut st = self.gate("put_object")?;
        let r = r.into_inner();
        let refs = r.manifest.as_ref().map(|m| m.chunks.clone()).unwrap_or_default();
        let op = Op::PutObject(PutObjectCmd { bucket: r.bucket, key: r.key, manifest: r.manifest, parquet: r.parquet, parquet_copy: r.parquet_copy, if_match_etag: r.if_match_etag, source: r.source });
        let res = st.propose_fresh(r.session, op, &refs)?;
        if let Some(other) = st.lose_put_answer_then.take() {
            st.propose(other)?;
            return Err(coded(ErrorCode::Unavailable, "leader lost before answering"));
        }
        ok(PutObjectResponse { manifest: res.manifest })
    }
    async fn set_bucket_access(&self, r: Request<SetBucketAccessRequest>) -> Rpc<SetBucketAccessResponse> {
        let mut st = self.gate("set_bucket_access")?;
        let r = r.into_inner();
        let op = Op::SetBucketAccess(SetBucketAccessCmd { name: r.name, access: r.access, expect_access: r.expect_access });
        st.sm.propose_in(r.session, op).map_err(|e| e.to_status())?;
        ok(SetBucketAccessResponse {})
    }
    async fn set_object_acl(&self, r: Request<SetObjectAclRequest>) -> Rpc<SetObjectAclResponse> {
        let mut st = self.gate("set_object_acl")?;
        let r = r.into_inner();
        let op = Op::SetObjectAcl(SetObjectAclCmd { bucket: r.bucket, key: r.key, acl: r.acl, expect_object_version: r.expect_object_version });
        st.sm.propose_in(r.session, op).map_err(|e| e.to_status())?;
        ok(SetObjectAclResponse {})
    }
    async fn get_object(&self, r: Request<GetObjectRequest>) -> Rpc<GetObjectResponse> {
        let st = self.gate("get_object")?;
        let r = r.into_inner();
        let m = state::get_object(&st.sm.kv, &r.bucket, &r.key).map_err(refused)?;
        ok(GetObjectResponse { manifest: Some(m), ..Default::default() })
    }
    async fn delete_object(&self, r: Request<DeleteObjectRequest>) -> Rpc<DeleteObjectResponse> {
        let mut st = self.gate("delete_object")?;
        let r = r.into_inner();
        let op = Op::DeleteObject(DeleteObjectCmd { bucket: r.bucket, key: r.key, ..Default::default() });
        let res = st.sm.propose_in(r.session, op).map_err(|e| e.to_status())?;
        ok(DeleteObjectResponse { existed: !res.deleted_keys.is_empty(), outcome: res.deletions.into_iter().next() })
    }
    async fn delete_objects(&self, r: Request<DeleteObjectsRequest>) -> Rpc<DeleteObjectsResponse> {
        let mut st = self.gate("delete_objects")?;
        let r = r.into_inner();
        let res = st.propose(Op::DeleteObjects(DeleteObjectsCmd { bucket: r.bucket, keys: r.keys, ..Default::default() }))?;
        ok(DeleteObjectsResponse { deleted: res.deleted_keys, outcomes: res.deletions })
    }
    async fn put_objects(&self, r: Request<PutObjectsRequest>) -> Rpc<PutObjectsResponse> {
        let mut st = self.gate("put_objects")?;
        let r = r.into_inner();
        let res = st.propose(Op::PutObjects(PutObjectsCmd { bucket: r.bucket, objects: r.objects }))?;
        ok(PutObjectsResponse { written: res.written })
    }
    async fn list_objects(&self, r: Request<ListObjectsRequest>) -> Rpc<ListObjectsResponse> {
        let st = self.gate("list_objects")?;
        let mut r = r.into_inner();
        if st.list_page_max > 0 {
            r.max_keys = match r.max_keys { 0 => st.list_page_max, m => m.min(st.list_page_max) };
        }
        ok(state::list_objects(&st.sm.kv, &r).map_err(refused)?)
    }
    async fn create_multipart(&self, r: Request<CreateMultipartRequest>) -> Rpc<CreateMultipartResponse> {
        let mut st = self.gate("create_multipart")?;
        let mut upload = r.into_inner().upload.unwrap_or_default();
        st.uploads_created += 1;
        upload.version = RECORD_VERSION;
        upload.upload_id = format!("{:032x}", st.uploads_created);
        let upload_id = upload.upload_id.clone();
        st.propose(Op::CreateMultipart(CreateMultipartCmd { upload: Some(upload) }))?;
        ok(CreateMultipartResponse { upload_id })
    }
    async fn put_part(&self, r: Request<PutPartRequest>) -> Rpc<PutPartResponse> {
        let mut st = self.gate("put_part")?;
        let r = r.into_inner();
        let refs = r.part.as_ref().map(|p| p.chunks.clone()).unwrap_or_default();
        let op = Op::PutPart(PutPartCmd { bucket: r.bucket, key: r.key, upload_id: r.upload_id, part: r.part });
        st.propose_fresh(r.session, op, &refs)?;
        ok(PutPartResponse {})
    }
    async fn complete_multipart(&self, r: Request<CompleteMultipartRequest>) -> Rpc<CompleteMultipartResponse> {
        let mut st = self.gate("complete_multipart")?;
        let r = r.into_inner();
        let res = st.propose(Op::CompleteMultipart(CompleteMultipartCmd {
            bucket: r.bucket, key: r.key, upload_id: r.upload_id, parts: r.parts, if_match_etag: r.if_match_etag,
        }))?;
        ok(CompleteMultipartResponse { manifest: res.manifest })
    }
    async fn abort_multipart(&self, r: Request<AbortMultipartRequest>) -> Rpc<AbortMultipartResponse> {
        let mut st = self.gate("abort_multipart")?;
        let r = r.into_inner();
        st.propose(Op::AbortMultipart(AbortMultipartCmd { bucket: r.bucket, key: r.key, upload_id: r.upload_id }))?;
        ok(AbortMultipartResponse {})
    }
    async fn list_parts(&self, r: Request<ListPartsRequest>) -> Rpc<ListPartsResponse> {
        let st = self.gate("list_parts")?;
        ok(state::list_parts(&st.sm.kv, &r.into_inner()).map_err(refused)?)
    }
    async fn list_multipart_uploads(&self, r: Request<ListMultipartUploadsRequest>) -> Rpc<ListMultipartUploadsResponse> {
        let st = self.gate("list_multipart_uploads")?;
        ok(state::list_uploads(&st.sm.kv, &r.into_inner()).map_err(refused)?)
    }
    async fn allocate_chunks(&self, r: Request<AllocateChunksRequest>) -> Rpc<AllocateChunksResponse> {
        let st = self.gate("allocate_chunks")?;
        let resp = st.control.allocate(&st.sm.kv, &r.into_inner(), MONO_MS).map_err(|e| e.detail().to_status())?;
        ok(resp)
    }
    async fn locate_chunks(&self, r: Request<LocateChunksRequest>) -> Rpc<LocateChunksResponse> {
        let st = self.gate("locate_chunks")?;
        let placements = st.control.locate(&st.sm.kv, &r.into_inner().sha256, MONO_MS);
        ok(LocateChunksResponse { placements })
    }
    async fn report_bad_chunk(&self, r: Request<ReportBadChunkRequest>) -> Rpc<ReportBadChunkResponse> {
        let mut st = self.gate("report_bad_chunk")?;
        let r = r.into_inner();
        st.control.report_bad(r.server_id, &r.sha256);
        st.reports.push((r.sha256, r.server_id));
        ok(ReportBadChunkResponse {})
    }
    async fn leader(&self, _r: Request<LeaderRequest>) -> Rpc<LeaderResponse> {
        ok(LeaderResponse {
            id: 1,
            term: 1,
            is_leader: self.redirect_to.is_none(),
            leader_id: 1,
            leader_addr: self.redirect_to.clone().unwrap_or_default(),
        })
    }
    async fn get_key(&self, r: Request<GetKeyRequest>) -> Rpc<GetKeyResponse> {
        let st = self.gate("get_key")?;
        let ak = r.into_inner().access_key;
        let key = state::get_key(&st.sm.kv, &ak).ok_or_else(|| refused(StateError::NoSuchAccessKey(ak)))?;
        ok(GetKeyResponse { key: Some(key), user: None })
    }
}
stubs {
    set_parquet_index(SetParquetIndexRequest) -> SetParquetIndexResponse;
    list_object_versions(ListObjectVersionsRequest) -> ListObjectVersionsResponse;
    set_bucket_versioning(SetBucketVersioningRequest) -> SetBucketVersioningResponse;
    set_bucket_object_lock(SetBucketObjectLockRequest) -> SetBucketObjectLockResponse;
    set_bucket_lifecycle(SetBucketLifecycleRequest) -> SetBucketLifecycleResponse;
    set_bucket_cors(SetBucketCorsRequest) -> SetBucketCorsResponse;
    set_bucket_notification(SetBucketNotificationRequest) -> SetBucketNotificationResponse;
    set_notification_target(SetNotificationTargetRequest) -> SetNotificationTargetResponse;
    list_notification_targets(ListNotificationTargetsRequest) -> ListNotificationTargetsResponse;
    set_object_lock(SetObjectLockRequest) -> SetObjectLockResponse;
    set_object_tagging(SetObjectTaggingRequest) -> SetObjectTaggingResponse;
    set_bucket_tagging(SetBucketTaggingRequest) -> SetBucketTaggingResponse;
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
    set_key_disabled(SetKeyDisabledRequest) -> SetKeyDisabledResponse;
    create_user(CreateUserRequest) -> CreateUserResponse;
    delete_user(DeleteUserRequest) -> DeleteUserResponse;
    list_users(ListUsersRequest) -> ListUsersResponse;
    get_user(GetUserRequest) -> GetUserResponse;
    set_user_quota(SetUserQuotaRequest) -> SetUserQuotaResponse;
    set_bucket_quota(SetBucketQuotaRequest) -> SetBucketQuotaResponse;
    join_group(JoinGroupRequest) -> JoinGroupResponse;
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
    /// The `anode-request-id` of every GetChunk call ("" when absent).
    pub get_request_ids: Mutex<Vec<String>>,
    pub put_delay_ms: AtomicU64,
    /// Shared across the cluster: PutChunk calls in progress, and the most seen at once.
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub struct FakeChunkserver(pub Arc<CsState>);

type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunkResponse, Status>> + Send>>;
type ExportStream = Pin<Box<dyn Stream<Item = Result<GetExportResponse, Status>> + Send>>;

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
            let mut data = first.data.to_vec();
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
        let id = r
            .metadata()
            .get(anode_client::trace::REQUEST_ID_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        st.get_request_ids.lock().push(id);
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
                    data: Bytes::copy_from_slice(p),
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

    async fn put_export(
        &self,
        _r: Request<Streaming<PutExportRequest>>,
    ) -> Result<Response<PutExportResponse>, Status> {
        Err(Status::unimplemented("put_export"))
    }

    async fn list_exports(
        &self,
        _r: Request<ListExportsRequest>,
    ) -> Result<Response<ListExportsResponse>, Status> {
        Err(Status::unimplemented("list_exports"))
    }

    type GetExportStream = ExportStream;

    async fn get_export(
        &self,
        _r: Request<GetExportRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        Err(Status::unimplemented("get_export"))
    }
}

/// The bucket every [`Cluster`] starts with.
pub const BUCKET: &str = "bkt";

/// A running fake cluster.
pub struct Cluster {
    pub master: Arc<Mutex<MasterState>>,
    pub master_addr: String,
    pub servers: Vec<(u64, String, Arc<CsState>)>,
}

/// The TLS setup of `<role>-<id>`, signed by this test binary's CA (made on first use in a
/// temporary directory shared by the binary's tests): the fakes serve mutual TLS with the
/// role check, as the real servers do.
pub fn tls(role: anode_tls::Role, id: &str) -> anode_tls::Tls {
    use std::sync::OnceLock;
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("certs dir"));
    let _g = LOCK.lock();
    let dirs = anode_tls::certs::ensure_layout(root.path(), &[(role, id)]).expect("certificates");
    anode_tls::Tls::load(&dirs[0]).expect("load certificates")
}

/// A tonic server of `role` with mutual TLS and the role check.
fn server(
    role: anode_tls::Role,
) -> tonic::transport::server::Router<anode_tls::authz::ServerLayers> {
    let tls = tls(role, "1");
    tls.server_builder()
        .expect("tls server")
        .layer(tls.authz_layer())
        .add_routes(Default::default())
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
        server(anode_tls::Role::Master)
            .add_service(svc)
            .serve_with_incoming(incoming),
    );
    addr
}

impl Cluster {
    /// A master, `n` chunkservers (ids 1 to `n`, one rack each), and the bucket [`BUCKET`] with
    /// replication `r`.
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
                server(anode_tls::Role::Chunkserver)
                    .add_service(svc)
                    .serve_with_incoming(incoming),
            );
            let id = master.lock().register_server(&addr, &format!("rack{i}"));
            servers.push((id, addr, st));
        }
        master
            .lock()
            .create_bucket(BUCKET, r, "", Vec::new())
            .expect("the test bucket is created");
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
