//! The `Master` gRPC API: turns requests into raft commands or linearizable reads.
//!
//! Writes become a versioned [`anode_proto::Command`] stamped with the leader's clock and are
//! answered after apply. Reads wait on a ReadIndex barrier, then read a RocksDB snapshot of
//! the applied state (`allow_stale` skips the barrier and may be served by any member).
//! A follower answers FAILED_PRECONDITION with `anode-leader: <addr>`; a state error carries
//! `anode-error-code` so clients can map it without parsing text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_proto::command::Op;
use anode_proto::master_server::Master;
use anode_proto::*;
use parking_lot::Mutex;
use prost::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use tonic::{Request, Response, Status};

use crate::kv::KvRead;
use crate::leases::{state_name, LeaseConfig, LeaseTable};
use crate::node::{NodeError, NodeHandle};
use crate::state;

/// How long a write or read may wait on raft before the caller gets UNAVAILABLE.
const RAFT_TIMEOUT: Duration = Duration::from_secs(10);
/// Commit a heartbeat's stats through raft at most this often per server (unless changed).
const STATS_COMMIT_INTERVAL_MS: u64 = 10_000;

type Rpc<T> = Result<Response<T>, Status>;

/// The master's gRPC service.
#[derive(Clone)]
pub struct MasterService {
    node: NodeHandle,
    leases: Arc<Mutex<LeaseTable>>,
    lease_cfg: LeaseConfig,
    started: Instant,
    last_leader_term: Arc<Mutex<u64>>,
    repairs: Arc<Mutex<crate::repair::RepairQueue>>,
}

/// Map a state machine error code to a gRPC status carrying `anode-error-code`.
pub fn status_for_code(code: &str, message: &str) -> Status {
    let grpc = match code {
        "NoSuchBucket" | "NoSuchKey" | "NoSuchUpload" | "NoSuchAccessKey"
        | "UnknownChunkserver" | "NotMember" => tonic::Code::NotFound,
        "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" | "AccessKeyExists" | "AlreadyMember" => {
            tonic::Code::AlreadyExists
        }
        "BucketNotEmpty" | "PreconditionFailed" | "StaleEpoch" | "WouldLoseQuorum" => {
            tonic::Code::FailedPrecondition
        }
        "InvalidBucketName" | "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall"
        | "InvalidArgument" | "BadCommand" | "UnsupportedVersion" => tonic::Code::InvalidArgument,
        "InsufficientServers" => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Internal,
    };
    let mut st = Status::new(grpc, message.to_string());
    if let Ok(v) = code.parse() {
        st.metadata_mut().insert(ERROR_CODE_METADATA_KEY, v);
    }
    st
}

fn state_status(e: state::StateError) -> Status {
    status_for_code(e.code(), &e.to_string())
}

impl MasterService {
    /// A service over `node`.
    pub fn new(node: NodeHandle, lease_cfg: LeaseConfig) -> Self {
        MasterService {
            node,
            leases: Arc::new(Mutex::new(LeaseTable::default())),
            lease_cfg,
            started: Instant::now(),
            last_leader_term: Arc::new(Mutex::new(0)),
            repairs: Arc::default(),
        }
    }

    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn node_status(&self, e: NodeError) -> Status {
        match e {
            NodeError::NotLeader { leader } => {
                let st = self.node.status();
                match st.members.get(&leader).filter(|_| leader != 0) {
                    Some(addr) => {
                        let mut s = Status::failed_precondition(format!(
                            "not the leader; leader is {leader} at {addr}"
                        ));
                        if let Ok(v) = addr.parse() {
                            s.metadata_mut().insert(LEADER_METADATA_KEY, v);
                        }
                        s
                    }
                    None => Status::unavailable("no raft leader known"),
                }
            }
            NodeError::Busy => Status::resource_exhausted("master busy"),
            other => Status::unavailable(other.to_string()),
        }
    }

    /// Fail fast with a redirect unless this member leads; refresh leases on a new term.
    fn require_leader(&self) -> Result<(), Status> {
        let st = self.node.status();
        if st.role != "leader" {
            return Err(self.node_status(NodeError::NotLeader {
                leader: st.leader_id,
            }));
        }
        let mut t = self.last_leader_term.lock();
        if *t != st.term {
            *t = st.term;
            self.leases.lock().became_leader(self.mono_ms());
        }
        Ok(())
    }

    async fn write(&self, op: Op) -> Result<CommandResult, Status> {
        self.require_leader()?;
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms: anode_common::now_ms(),
            op: Some(op),
        };
        let res = tokio::time::timeout(RAFT_TIMEOUT, self.node.propose(cmd.encode_to_vec()))
            .await
            .map_err(|_| Status::unavailable("timed out waiting for raft commit"))?
            .map_err(|e| self.node_status(e))?;
        if !res.error_code.is_empty() {
            return Err(status_for_code(&res.error_code, &res.error_message));
        }
        Ok(res)
    }

    async fn read<T>(
        &self,
        allow_stale: bool,
        f: impl FnOnce(&dyn KvRead) -> T,
    ) -> Result<T, Status> {
        if !allow_stale {
            self.require_leader()?;
            tokio::time::timeout(RAFT_TIMEOUT, self.node.read_barrier())
                .await
                .map_err(|_| Status::unavailable("timed out waiting for read index"))?
                .map_err(|e| self.node_status(e))?;
        }
        let view = self.node.store().view();
        Ok(f(&view))
    }

    fn live_servers(&self, kv: &dyn KvRead) -> Vec<(ChunkserverRecord, ChunkserverState)> {
        let now = self.mono_ms();
        let leases = self.leases.lock();
        state::list_chunkservers(kv)
            .into_iter()
            .map(|r| {
                let s = leases.state(&r, now, &self.lease_cfg);
                (r, s)
            })
            .collect()
    }

    fn info(rec: &ChunkserverRecord, s: ChunkserverState) -> ChunkserverInfo {
        ChunkserverInfo {
            id: rec.id,
            addr: rec.addr.clone(),
            rack: rec.rack.clone(),
            epoch: rec.epoch,
            state: s as i32,
        }
    }
}

/// Referenced chunks with fewer live copies than min(3, live servers): the default
/// replication target (per-bucket R is not tracked per chunk yet). Scans at most 1M chunks.
fn under_replicated(kv: &dyn KvRead, servers: &[(ChunkserverRecord, ChunkserverState)]) -> u64 {
    let alive: Vec<u64> = servers
        .iter()
        .filter(|(_, s)| matches!(s, ChunkserverState::Alive | ChunkserverState::Draining))
        .map(|(r, _)| r.id)
        .collect();
    let target = alive.len().min(3);
    let mut n = 0;
    let mut after = Vec::new();
    for _ in 0..1000 {
        let page = state::scan_chunks(kv, &after, 1000);
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        n += page
            .iter()
            .filter(|(_, c)| {
                c.refcount > 0 && c.servers.iter().filter(|s| alive.contains(s)).count() < target
            })
            .count() as u64;
    }
    n
}

fn ok<T>(v: T) -> Rpc<T> {
    Ok(Response::new(v))
}

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn create_bucket(&self, req: Request<CreateBucketRequest>) -> Rpc<CreateBucketResponse> {
        let r = req.into_inner();
        let config = BucketConfig {
            version: RECORD_VERSION,
            name: r.name,
            replication: r.replication,
            owner_access_key: r.owner_access_key,
            ..Default::default()
        };
        self.write(Op::CreateBucket(CreateBucketCmd {
            config: Some(config.clone()),
        }))
        .await?;
        let name = config.name.clone();
        let cfg = self.read(true, |kv| state::get_bucket(kv, &name)).await?;
        ok(CreateBucketResponse {
            config: cfg.or(Some(config)),
        })
    }

    async fn delete_bucket(&self, req: Request<DeleteBucketRequest>) -> Rpc<DeleteBucketResponse> {
        let r = req.into_inner();
        self.write(Op::DeleteBucket(DeleteBucketCmd { name: r.name }))
            .await?;
        ok(DeleteBucketResponse {})
    }

    async fn list_buckets(&self, _req: Request<ListBucketsRequest>) -> Rpc<ListBucketsResponse> {
        let buckets = self.read(false, state::list_buckets).await?;
        ok(ListBucketsResponse { buckets })
    }

    async fn get_bucket(&self, req: Request<GetBucketRequest>) -> Rpc<GetBucketResponse> {
        let name = req.into_inner().name;
        let b = self.read(false, |kv| state::get_bucket(kv, &name)).await?;
        match b {
            Some(config) => ok(GetBucketResponse {
                config: Some(config),
            }),
            None => Err(status_for_code(
                "NoSuchBucket",
                &format!("no bucket {name}"),
            )),
        }
    }

    async fn put_object(&self, req: Request<PutObjectRequest>) -> Rpc<PutObjectResponse> {
        let r = req.into_inner();
        let res = self
            .write(Op::PutObject(PutObjectCmd {
                bucket: r.bucket,
                key: r.key,
                manifest: r.manifest,
                if_match_etag: r.if_match_etag,
            }))
            .await?;
        ok(PutObjectResponse {
            manifest: res.manifest,
        })
    }

    async fn get_object(&self, req: Request<GetObjectRequest>) -> Rpc<GetObjectResponse> {
        let r = req.into_inner();
        let m = self
            .read(r.allow_stale, |kv| state::get_object(kv, &r.bucket, &r.key))
            .await?
            .map_err(state_status)?;
        ok(GetObjectResponse { manifest: Some(m) })
    }

    async fn delete_object(&self, req: Request<DeleteObjectRequest>) -> Rpc<DeleteObjectResponse> {
        let r = req.into_inner();
        let res = self
            .write(Op::DeleteObject(DeleteObjectCmd {
                bucket: r.bucket,
                key: r.key,
            }))
            .await?;
        ok(DeleteObjectResponse {
            existed: !res.deleted_keys.is_empty(),
        })
    }

    async fn delete_objects(
        &self,
        req: Request<DeleteObjectsRequest>,
    ) -> Rpc<DeleteObjectsResponse> {
        let r = req.into_inner();
        let res = self
            .write(Op::DeleteObjects(DeleteObjectsCmd {
                bucket: r.bucket,
                keys: r.keys,
            }))
            .await?;
        ok(DeleteObjectsResponse {
            deleted: res.deleted_keys,
        })
    }

    async fn list_objects(&self, req: Request<ListObjectsRequest>) -> Rpc<ListObjectsResponse> {
        let r = req.into_inner();
        let resp = self
            .read(r.allow_stale, |kv| state::list_objects(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn create_multipart(
        &self,
        req: Request<CreateMultipartRequest>,
    ) -> Rpc<CreateMultipartResponse> {
        let mut upload = req.into_inner().upload.unwrap_or_default();
        upload.version = RECORD_VERSION;
        upload.upload_id = random_hex(16);
        let id = upload.upload_id.clone();
        self.write(Op::CreateMultipart(CreateMultipartCmd {
            upload: Some(upload),
        }))
        .await?;
        ok(CreateMultipartResponse { upload_id: id })
    }

    async fn put_part(&self, req: Request<PutPartRequest>) -> Rpc<PutPartResponse> {
        let r = req.into_inner();
        self.write(Op::PutPart(PutPartCmd {
            bucket: r.bucket,
            key: r.key,
            upload_id: r.upload_id,
            part: r.part,
        }))
        .await?;
        ok(PutPartResponse {})
    }

    async fn complete_multipart(
        &self,
        req: Request<CompleteMultipartRequest>,
    ) -> Rpc<CompleteMultipartResponse> {
        let r = req.into_inner();
        let res = self
            .write(Op::CompleteMultipart(CompleteMultipartCmd {
                bucket: r.bucket,
                key: r.key,
                upload_id: r.upload_id,
                parts: r.parts,
                if_match_etag: r.if_match_etag,
            }))
            .await?;
        ok(CompleteMultipartResponse {
            manifest: res.manifest,
        })
    }

    async fn abort_multipart(
        &self,
        req: Request<AbortMultipartRequest>,
    ) -> Rpc<AbortMultipartResponse> {
        let r = req.into_inner();
        self.write(Op::AbortMultipart(AbortMultipartCmd {
            bucket: r.bucket,
            key: r.key,
            upload_id: r.upload_id,
        }))
        .await?;
        ok(AbortMultipartResponse {})
    }

    async fn list_parts(&self, req: Request<ListPartsRequest>) -> Rpc<ListPartsResponse> {
        let r = req.into_inner();
        let resp = self
            .read(false, |kv| state::list_parts(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn list_multipart_uploads(
        &self,
        req: Request<ListMultipartUploadsRequest>,
    ) -> Rpc<ListMultipartUploadsResponse> {
        let r = req.into_inner();
        let resp = self
            .read(false, |kv| state::list_uploads(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn allocate_chunks(
        &self,
        req: Request<AllocateChunksRequest>,
    ) -> Rpc<AllocateChunksResponse> {
        let r = req.into_inner();
        self.require_leader()?;
        let (bucket, servers) = self
            .read(true, |kv| {
                (state::get_bucket(kv, &r.bucket), self.live_servers(kv))
            })
            .await?;
        let bucket = bucket
            .ok_or_else(|| status_for_code("NoSuchBucket", &format!("no bucket {}", r.bucket)))?;
        let alive: Vec<(ChunkserverRecord, ChunkserverState)> = servers
            .into_iter()
            .filter(|(rec, s)| *s == ChunkserverState::Alive && !rec.disk_full)
            .collect();
        let replication = crate::placement::effective_replication(bucket.replication, alive.len());
        let usable: Vec<&(ChunkserverRecord, ChunkserverState)> = alive
            .iter()
            .filter(|(rec, _)| !r.exclude.contains(&rec.id))
            .collect();
        if usable.len() < replication as usize || replication == 0 {
            return Err(status_for_code(
                "InsufficientServers",
                &format!(
                    "need {replication} live chunkservers, have {}",
                    usable.len()
                ),
            ));
        }
        let cands: Vec<crate::placement::Candidate> = usable
            .iter()
            .map(|(rec, _)| crate::placement::Candidate::new(rec.id, rec.rack.clone()))
            .collect();
        let placements = r
            .sha256
            .iter()
            .map(|sha| {
                let ids = crate::placement::place(sha, &cands, replication as usize);
                let servers = ids
                    .iter()
                    .filter_map(|id| usable.iter().find(|(rec, _)| rec.id == *id))
                    .map(|(rec, s)| Self::info(rec, *s))
                    .collect();
                ChunkPlacement {
                    sha256: sha.clone(),
                    servers,
                }
            })
            .collect();
        let live = alive.iter().map(|(rec, s)| Self::info(rec, *s)).collect();
        ok(AllocateChunksResponse {
            replication,
            placements,
            live,
        })
    }

    async fn locate_chunks(&self, req: Request<LocateChunksRequest>) -> Rpc<LocateChunksResponse> {
        let r = req.into_inner();
        let placements = self
            .read(true, |kv| {
                let servers = self.live_servers(kv);
                r.sha256
                    .iter()
                    .map(|sha| {
                        let ids = state::get_chunk(kv, sha)
                            .map(|c| c.servers)
                            .unwrap_or_default();
                        let mut found: Vec<ChunkserverInfo> = ids
                            .iter()
                            .filter_map(|id| servers.iter().find(|(rec, _)| rec.id == *id))
                            .map(|(rec, s)| Self::info(rec, *s))
                            .collect();
                        // Live copies first; dead ones last (still worth a try).
                        found.sort_by_key(|i| i.state != ChunkserverState::Alive as i32);
                        ChunkPlacement {
                            sha256: sha.clone(),
                            servers: found,
                        }
                    })
                    .collect()
            })
            .await?;
        ok(LocateChunksResponse { placements })
    }

    async fn report_bad_chunk(
        &self,
        req: Request<ReportBadChunkRequest>,
    ) -> Rpc<ReportBadChunkResponse> {
        let r = req.into_inner();
        tracing::warn!(chunk = %hex::encode(&r.sha256), server = r.server_id, reason = %r.reason, "bad chunk copy reported");
        crate::metrics::BAD_CHUNK_REPORTS.inc();
        self.require_leader()?;
        self.repairs.lock().report_bad(r.server_id, r.sha256);
        ok(ReportBadChunkResponse {})
    }

    async fn register_chunkserver(
        &self,
        req: Request<RegisterChunkserverRequest>,
    ) -> Rpc<RegisterChunkserverResponse> {
        let r = req.into_inner();
        let res = self
            .write(Op::RegisterChunkserver(RegisterChunkserverCmd {
                addr: r.addr.clone(),
                rack: r.rack,
                capacity_bytes: r.capacity_bytes,
                uuid: r.uuid,
            }))
            .await?;
        self.leases.lock().seen(res.chunkserver_id, self.mono_ms());
        tracing::info!(id = res.chunkserver_id, epoch = res.chunkserver_epoch, addr = %r.addr, "chunkserver registered");
        ok(RegisterChunkserverResponse {
            id: res.chunkserver_id,
            epoch: res.chunkserver_epoch,
        })
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Rpc<HeartbeatResponse> {
        let r = req.into_inner();
        self.require_leader()?;
        let rec = self
            .read(true, |kv| state::get_chunkserver(kv, r.id))
            .await?;
        let Some(rec) = rec.filter(|rec| rec.epoch == r.epoch) else {
            return ok(HeartbeatResponse {
                reregister: true,
                ..Default::default()
            });
        };
        self.leases.lock().seen(r.id, self.mono_ms());
        let disk_full = !r.disks.is_empty() && r.disks.iter().all(|d| d.full || d.failed);
        let changed = rec.used_bytes != r.used_bytes
            || rec.chunks != r.chunks
            || rec.capacity_bytes != r.capacity_bytes
            || rec.disk_full != disk_full;
        let stale =
            anode_common::now_ms().saturating_sub(rec.last_heartbeat_ms) > STATS_COMMIT_INTERVAL_MS;
        if changed || stale {
            self.write(Op::ChunkserverUpdate(ChunkserverUpdateCmd {
                id: r.id,
                epoch: r.epoch,
                capacity_bytes: r.capacity_bytes,
                used_bytes: r.used_bytes,
                chunks: r.chunks,
                disk_full,
            }))
            .await?;
        }
        if !r.corrupt.is_empty() {
            let mut q = self.repairs.lock();
            for sha in &r.corrupt {
                q.report_bad(r.id, sha.clone());
            }
        }
        self.repairs.lock().done(r.id, &r.done_commands);
        let commands = self.repair_commands(r.id).await?;
        ok(HeartbeatResponse {
            lease_ms: self.lease_cfg.lease_ms,
            epoch: rec.epoch,
            commands,
            reregister: false,
        })
    }

    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Rpc<CreateKeyResponse> {
        let r = req.into_inner();
        let key = AccessKey {
            version: RECORD_VERSION,
            access_key: if r.access_key.is_empty() {
                format!("AK{}", random_hex(9).to_uppercase())
            } else {
                r.access_key
            },
            secret_key: if r.secret_key.is_empty() {
                random_hex(20)
            } else {
                r.secret_key
            },
            name: r.name,
            created_ms: anode_common::now_ms(),
        };
        self.write(Op::CreateKey(CreateKeyCmd {
            key: Some(key.clone()),
        }))
        .await?;
        ok(CreateKeyResponse { key: Some(key) })
    }

    async fn list_keys(&self, _req: Request<ListKeysRequest>) -> Rpc<ListKeysResponse> {
        let keys = self.read(false, state::list_keys).await?;
        ok(ListKeysResponse { keys })
    }

    async fn delete_key(&self, req: Request<DeleteKeyRequest>) -> Rpc<DeleteKeyResponse> {
        let r = req.into_inner();
        self.write(Op::DeleteKey(DeleteKeyCmd {
            access_key: r.access_key,
        }))
        .await?;
        ok(DeleteKeyResponse {})
    }

    async fn get_key(&self, req: Request<GetKeyRequest>) -> Rpc<GetKeyResponse> {
        let ak = req.into_inner().access_key;
        match self.read(false, |kv| state::get_key(kv, &ak)).await? {
            Some(key) => ok(GetKeyResponse { key: Some(key) }),
            None => Err(status_for_code(
                "NoSuchAccessKey",
                &format!("no access key {ak}"),
            )),
        }
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Rpc<StatusResponse> {
        ok(self.build_status())
    }

    async fn add_member(&self, req: Request<AddMemberRequest>) -> Rpc<AddMemberResponse> {
        let r = req.into_inner();
        self.require_leader()?;
        let st = self.node.status();
        if r.id == 0 || r.addr.is_empty() {
            return Err(status_for_code(
                "InvalidArgument",
                "member id must be non-zero and addr non-empty",
            ));
        }
        if st.voters.contains(&r.id) {
            return Err(status_for_code(
                "AlreadyMember",
                &format!("{} is already a voter", r.id),
            ));
        }
        if !st.learners.contains(&r.id) {
            self.conf_change(ConfChangeType::AddLearnerNode, r.id, &r.addr)
                .await?;
        }
        self.wait_caught_up(r.id).await?;
        self.conf_change(ConfChangeType::AddNode, r.id, &r.addr)
            .await?;
        tracing::info!(id = r.id, addr = %r.addr, "member added as voter");
        ok(AddMemberResponse {})
    }

    async fn remove_member(&self, req: Request<RemoveMemberRequest>) -> Rpc<RemoveMemberResponse> {
        let id = req.into_inner().id;
        self.require_leader()?;
        let st = self.node.status();
        if !st.voters.contains(&id) && !st.learners.contains(&id) {
            return Err(status_for_code(
                "NotMember",
                &format!("{id} is not a member"),
            ));
        }
        crate::membership::check_removal(&st, id)
            .map_err(|m| status_for_code("WouldLoseQuorum", &m))?;
        if id == st.id {
            return Err(self.step_down_for_removal(&st).await);
        }
        self.conf_change(ConfChangeType::RemoveNode, id, "").await?;
        tracing::info!(id, "member removed");
        ok(RemoveMemberResponse {})
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Rpc<TransferLeaderResponse> {
        let id = req.into_inner().id;
        self.require_leader()?;
        let st = self.node.status();
        if !st.voters.contains(&id) {
            return Err(status_for_code(
                "NotMember",
                &format!("{id} is not a voter"),
            ));
        }
        if id == st.id {
            return ok(TransferLeaderResponse {});
        }
        self.node
            .transfer_leader(id)
            .map_err(|e| self.node_status(e))?;
        if self.wait_leader(id, Duration::from_secs(5)).await {
            ok(TransferLeaderResponse {})
        } else {
            Err(Status::unavailable(format!(
                "leadership did not move to {id} within 5 s"
            )))
        }
    }

    async fn drain_chunkserver(
        &self,
        req: Request<DrainChunkserverRequest>,
    ) -> Rpc<DrainChunkserverResponse> {
        let r = req.into_inner();
        self.write(Op::SetDraining(SetDrainingCmd {
            id: r.id,
            draining: !r.cancel,
        }))
        .await?;
        ok(DrainChunkserverResponse {})
    }
}

impl MasterService {
    /// Read-repair commands for `server`: fetch a good copy from another live holder.
    async fn repair_commands(&self, server: u64) -> Result<Vec<ChunkCommand>, Status> {
        if self.repairs.lock().pending() == 0 {
            return Ok(Vec::new());
        }
        let now = self.mono_ms();
        self.read(true, |kv| {
            let live = self.live_servers(kv);
            let mut q = self.repairs.lock();
            let snapshot = |sha: &[u8]| -> Vec<(u64, String)> {
                let holders = state::get_chunk(kv, sha)
                    .map(|c| c.servers)
                    .unwrap_or_default();
                live.iter()
                    .filter(|(rec, s)| {
                        rec.id != server
                            && *s == ChunkserverState::Alive
                            && holders.contains(&rec.id)
                    })
                    .map(|(rec, _)| (rec.id, rec.addr.clone()))
                    .collect()
            };
            let candidates: BTreeMap<Vec<u8>, Vec<(u64, String)>> = q
                .shas_for(server)
                .into_iter()
                .map(|sha| {
                    let c: Vec<(u64, String)> = snapshot(&sha)
                        .into_iter()
                        .filter(|(id, _)| !q.is_pending(*id, &sha))
                        .collect();
                    (sha, c)
                })
                .collect();
            q.commands_for(server, now, |sha, attempt| {
                let c = candidates.get(sha)?;
                (!c.is_empty()).then(|| c[(attempt as usize) % c.len()].clone())
            })
        })
        .await
    }

    async fn conf_change(&self, t: ConfChangeType, id: u64, addr: &str) -> Result<(), Status> {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(t);
        single.node_id = id;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        let ctx = MemberChangeContext {
            version: RECORD_VERSION,
            id,
            addr: addr.to_string(),
        };
        cc.set_context(ctx.encode_to_vec().into());
        let res = tokio::time::timeout(RAFT_TIMEOUT, self.node.conf_change(cc))
            .await
            .map_err(|_| Status::unavailable("timed out waiting for membership change"))?
            .map_err(|e| self.node_status(e))?;
        if !res.error_code.is_empty() {
            return Err(status_for_code(&res.error_code, &res.error_message));
        }
        Ok(())
    }

    async fn wait_caught_up(&self, id: u64) -> Result<(), Status> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let st = self.node.status();
            if st.role != "leader" {
                return Err(self.node_status(NodeError::NotLeader {
                    leader: st.leader_id,
                }));
            }
            let matched = st.matched.get(&id).copied().unwrap_or(0);
            if matched + 10 >= st.commit && matched > 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded(format!(
                    "learner {id} did not catch up (matched {matched} of {})",
                    st.commit
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_leader(&self, id: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.node.status().leader_id == id {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The leader is asked to remove itself: hand leadership to the most caught-up voter and
    /// redirect the caller there (the client retries the removal on the new leader).
    async fn step_down_for_removal(&self, st: &crate::node::NodeStatus) -> Status {
        let Some(target) = crate::membership::best_successor(st) else {
            return status_for_code("WouldLoseQuorum", "no other voter can take over leadership");
        };
        if let Err(e) = self.node.transfer_leader(target) {
            return self.node_status(e);
        }
        if self.wait_leader(target, Duration::from_secs(5)).await {
            self.node_status(NodeError::NotLeader { leader: target })
        } else {
            Status::unavailable("leadership transfer before self-removal did not finish; retry")
        }
    }

    fn build_status(&self) -> StatusResponse {
        let st = self.node.status();
        let view = self.node.store().view();
        let stats = state::stats(&view);
        let is_leader = st.role == "leader";
        let servers = self.live_servers(&view);
        let mut members: Vec<MemberStatus> = st
            .voters
            .iter()
            .chain(st.learners.iter())
            .map(|id| crate::membership::member_status(&st, *id))
            .collect();
        members.sort_by_key(|m| m.id);
        StatusResponse {
            id: st.id,
            leader_id: st.leader_id,
            term: st.term,
            commit_index: st.commit,
            applied_index: st.applied,
            last_index: st.last_index,
            members,
            chunkservers: servers
                .iter()
                .map(|(rec, s)| ChunkserverStatus {
                    id: rec.id,
                    addr: rec.addr.clone(),
                    state: if is_leader {
                        state_name(*s).to_string()
                    } else {
                        "unknown".to_string()
                    },
                    used_bytes: rec.used_bytes,
                    capacity_bytes: rec.capacity_bytes,
                    chunks: rec.chunks,
                    rack: rec.rack.clone(),
                    epoch: rec.epoch,
                })
                .collect(),
            under_replicated_chunks: if is_leader {
                under_replicated(&view, &servers)
            } else {
                0
            },
            buckets: stats.buckets,
            objects: stats.objects,
            chunks: stats.chunks,
            logical_bytes: stats.logical_bytes,
            stored_bytes: stats.stored_bytes,
        }
    }
}
