//! The `Master` gRPC API: turns requests into raft commands or linearizable reads.
//!
//! Writes become a versioned [`anode_proto::Command`] stamped with the leader's clock and are
//! answered after apply. Reads wait on a ReadIndex barrier, then read a RocksDB snapshot of
//! the applied state (`allow_stale` skips the barrier and may be served by any member).
//! Every refusal is an [`ErrorDetail`] in the gRPC status details (state, control, membership
//! and node errors each map to it once); a follower answers `NotLeader` naming the leader's id
//! and address, so clients redirect without parsing text.

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

use crate::node::{NodeError, NodeHandle};
use crate::store::StreamPiece;
use anode_meta::access::PeerIdentity;
pub use anode_meta::control::HealConfig;
use anode_meta::control::{fresh_copies, ChunkTable, HeartbeatStep, LeaderControl};
use anode_meta::healer::HealthFigures;
use anode_meta::kv::KvRead;
use anode_meta::leases::{state_name, LeaseConfig};
use anode_meta::locations::ChunkId;
use anode_meta::membership::{MembershipError, Role};
use anode_meta::state;
use anode_meta::validate;
use tokio_stream::StreamExt as _;

/// How long a write or read may wait on raft before the caller gets UNAVAILABLE.
pub const RAFT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest encoded command a member proposes. raft-rs sends at least one entry per append
/// whatever its size, so this bounds a raft message (`raft_check::MAX_ENTRY_BYTES_PER_MESSAGE`
/// is this plus slack) and every follower's apply batch. 8 MiB holds a manifest of ~200k
/// chunks (800 GiB at the default 4 MiB chunk size; larger objects use larger chunks or
/// multipart, whose parts are separate commands).
pub const MAX_COMMAND_BYTES: usize = 8 << 20;

/// A request refused at the edge, before anything is proposed or planned.
fn invalid(e: anode_meta::validate::ValidationError) -> Status {
    e.detail().to_status()
}

type Rpc<T> = Result<Response<T>, Status>;

fn invalid_notify(e: anode_meta::notify::NotifyError) -> Status {
    ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()).to_status()
}

/// The events of a `Watch` answer.
pub type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// Silence after which a watch stream sends a keep-alive (an answer without an event).
pub const WATCH_KEEPALIVE: Duration = Duration::from_secs(5);

/// The pieces of a `Backup` answer.
pub type BackupStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<BackupPiece, Status>> + Send>>;

/// The master's gRPC service.
#[derive(Clone)]
pub struct MasterService {
    node: NodeHandle,
    started: Instant,
    /// Leases, locations and healing: the pure leader-side decisions (`control.rs`).
    control: Arc<Mutex<LeaderControl>>,
    heal_interval: Duration,
    /// Disk health of each chunkserver's last heartbeat to this member (status page).
    disk_reports: Arc<Mutex<BTreeMap<u64, Vec<DiskHealth>>>>,
    /// This member's admin HTTP address (in `Status` answers), once bound.
    admin_addr: Arc<std::sync::OnceLock<String>>,
}

fn state_status(e: state::StateError) -> Status {
    e.detail().to_status()
}

fn membership_status(e: MembershipError) -> Status {
    e.detail().to_status()
}

/// The result of an applied command: its error detail as a status, or the result.
fn command_outcome(res: CommandResult) -> Result<CommandResult, Status> {
    match res.error {
        Some(e) => Err(e.to_status()),
        None => Ok(res),
    }
}

impl MasterService {
    /// A service over `node`.
    pub fn new(node: NodeHandle, lease_cfg: LeaseConfig) -> Self {
        Self::with_healing(node, lease_cfg, HealConfig::default())
    }

    /// A service with explicit healing settings.
    pub fn with_healing(node: NodeHandle, lease_cfg: LeaseConfig, heal_cfg: HealConfig) -> Self {
        MasterService {
            node,
            started: Instant::now(),
            heal_interval: heal_cfg.interval,
            control: Arc::new(Mutex::new(LeaderControl::new(lease_cfg, heal_cfg))),
            disk_reports: Arc::default(),
            admin_addr: Arc::default(),
        }
    }

    /// Replace the repair limits with what `f` makes of the current ones (a SIGHUP reload);
    /// returns `f`'s list of changes.
    pub fn reload_repair_limits<F>(&self, f: F) -> Result<Vec<String>, String>
    where
        F: FnOnce(
            &anode_meta::planner::Limits,
        ) -> Result<(anode_meta::planner::Limits, Vec<String>), String>,
    {
        let mut control = self.control.lock();
        let (next, changes) = f(&control.heal_cfg().limits)?;
        control.set_limits(next);
        Ok(changes)
    }

    /// Name this member's admin address in its `Status` answers (once).
    pub fn set_admin_addr(&self, addr: String) {
        let _ = self.admin_addr.set(addr);
    }

    /// This member's `Status` answer (what `anode ctl status` merges) and its own raft role
    /// (`leader`, `follower`, `candidate`, `learner`, ...).
    pub fn status_response_and_role(&self) -> (StatusResponse, String) {
        let st = self.node.status();
        let role = anode_meta::membership::member_status(&st, st.id).role;
        (self.build_status(), role)
    }

    /// The known leader's id and gRPC address, and this member's id.
    pub fn leader_and_self(&self) -> (u64, String, u64) {
        let st = self.node.status();
        let addr = st.members.get(&st.leader_id).cloned().unwrap_or_default();
        (st.leader_id, addr, st.id)
    }

    /// Every bucket with its usage from this member's applied state (the source of
    /// `ListBuckets`, read locally: on a follower it may lag the leader a little).
    pub fn local_buckets_with_usage(&self) -> Vec<(BucketConfig, Usage)> {
        let (buckets, usage) = buckets_with_usage(&self.node.store().view());
        buckets.into_iter().zip(usage).collect()
    }

    /// The disk health of each chunkserver's last heartbeat to this member.
    pub fn disk_reports(&self) -> BTreeMap<u64, Vec<DiskHealth>> {
        self.disk_reports.lock().clone()
    }

    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn node_status(&self, e: NodeError) -> Status {
        e.detail(&self.node.status().members).to_status()
    }

    /// See [`LeaderControl::learn_copies`].
    fn learn_copies(&self, copies: &[(u64, ChunkId)]) {
        if !copies.is_empty() {
            self.control.lock().learn_copies(copies);
        }
    }

    /// Fail fast with a redirect unless this member leads; refresh leases on a new term.
    fn require_leader(&self) -> Result<(), Status> {
        let st = self.node.status();
        if st.role != Role::Leader {
            return Err(self.node_status(NodeError::NotLeader {
                leader: st.leader_id,
            }));
        }
        self.control
            .lock()
            .observe_leadership(st.term, self.mono_ms());
        Ok(())
    }

    /// Propose `op` (of the client `session` when the request carried one: a retry of a write
    /// that already applied is answered with its recorded result) and wait for its result.
    async fn write_in(
        &self,
        session: Option<ClientSession>,
        op: Op,
    ) -> Result<CommandResult, Status> {
        self.require_leader()?;
        let cmd = Command {
            version: state::command_version_for(&op),
            now_ms: anode_common::now_ms(),
            session,
            op: Some(op),
        };
        let bytes = cmd.encode_to_vec();
        validate::at_most("command bytes", bytes.len(), MAX_COMMAND_BYTES).map_err(invalid)?;
        let res = tokio::time::timeout(RAFT_TIMEOUT, self.node.propose(bytes))
            .await
            .map_err(|_| raft_timeout("timed out waiting for raft commit"))?
            .map_err(|e| self.node_status(e))?;
        command_outcome(res)
    }

    /// [`MasterService::write_in`] for the master's own commands (no client session).
    async fn write(&self, op: Op) -> Result<CommandResult, Status> {
        self.write_in(None, op).await
    }

    /// Wait until this member may answer a linearizable read (unless `allow_stale`).
    async fn read_barrier(&self, allow_stale: bool) -> Result<(), Status> {
        if !allow_stale {
            // No `require_leader` here: the barrier itself answers `NotLeader` (with the
            // leader's id) and a read needs none of the leader decisions it refreshes.
            tokio::time::timeout(RAFT_TIMEOUT, self.node.read_barrier())
                .await
                .map_err(|_| raft_timeout("timed out waiting for read index"))?
                .map_err(|e| self.node_status(e))?;
        }
        Ok(())
    }

    async fn read<T>(
        &self,
        allow_stale: bool,
        f: impl FnOnce(&dyn KvRead) -> T,
    ) -> Result<T, Status> {
        self.read_barrier(allow_stale).await?;
        let view = self.node.store().view();
        Ok(f(&view))
    }

    /// [`MasterService::read`] for reads that walk many keys (listings): the walk runs on
    /// tokio's blocking pool, so a long page never holds a runtime worker (and with it the
    /// point reads and raft traffic queued behind it).
    async fn read_blocking<T: Send + 'static>(
        &self,
        allow_stale: bool,
        f: impl FnOnce(&dyn KvRead) -> T + Send + 'static,
    ) -> Result<T, Status> {
        self.read_barrier(allow_stale).await?;
        let store = self.node.store().clone();
        tokio::task::spawn_blocking(move || f(&store.view()))
            .await
            .map_err(|e| {
                ErrorDetail::new(ErrorCode::Internal, format!("listing task failed: {e}"))
                    .to_status()
            })
    }

    /// A view pinned on the raft thread at the applied index: the backup header and the
    /// stream of its records (what `Backup` sends and the metadata exports store). The
    /// caller checks leadership (and takes a read barrier when it must cover every write
    /// acknowledged before the call).
    pub async fn pin_backup(
        &self,
    ) -> Result<(BackupHeader, crate::store::stream::PieceReceiver), Status> {
        let snap = tokio::time::timeout(RAFT_TIMEOUT, self.node.pin_snapshot())
            .await
            .map_err(|_| raft_timeout("timed out pinning a snapshot"))?
            .map_err(|e| self.node_status(e))?;
        let md = snap.get_metadata();
        let (index, term) = (md.index, md.term);
        let cs = md.get_conf_state();
        let st = self.node.status();
        let header = BackupHeader {
            index,
            term,
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            members: st.members.clone().into_iter().collect(),
            leader_id: st.id,
            snapshot_version: SNAPSHOT_VERSION,
        };
        let rx = self
            .node
            .store()
            .snapshot_stream(index, term)
            .map_err(|e| ErrorDetail::new(ErrorCode::Unavailable, e.to_string()).to_status())?;
        Ok((header, rx))
    }

    /// Whether this member leads now.
    pub fn is_leader(&self) -> bool {
        let st = self.node.status();
        st.role == Role::Leader
    }

    /// Every bucket with lifecycle rules and the worker's stored progress on it, by name,
    /// from this member's applied state.
    pub fn lifecycle_buckets(&self) -> Vec<(String, LifecycleProgress)> {
        lifecycle_statuses(&self.node.store().view())
            .into_iter()
            .map(|s| (s.bucket, s.progress.unwrap_or_default()))
            .collect()
    }

    /// The lifecycle worker's next batch for `bucket` ([`state::lifecycle_plan`] over the
    /// applied state), planned on tokio's blocking pool: a batch examines up to `max_keys`
    /// keys.
    pub async fn plan_lifecycle(
        &self,
        bucket: String,
        now_ms: u64,
        limits: crate::lifecycle::PlanLimits,
    ) -> Result<Option<LifecycleBatchCmd>, Status> {
        let store = self.node.store().clone();
        tokio::task::spawn_blocking(move || {
            state::lifecycle_plan(
                &store.view(),
                &bucket,
                now_ms,
                limits.day_ms,
                limits.pass_interval_ms,
                limits.max_keys,
                limits.max_actions,
            )
        })
        .await
        .map_err(|e| {
            ErrorDetail::new(
                ErrorCode::Internal,
                format!("lifecycle planning failed: {e}"),
            )
            .to_status()
        })
    }

    /// Propose one lifecycle batch as the master itself and wait for its result.
    /// Every notification target with its queue figures, from this member's applied state.
    pub fn notification_targets(&self) -> Vec<NotificationTargetStatus> {
        state::list_targets(&self.node.store().view())
    }

    /// Up to `limit` queued events of `target` after `after_id`, from this member's applied
    /// state.
    pub fn queued_events(
        &self,
        target: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Vec<NotificationEvent> {
        state::queued_events(&self.node.store().view(), target, after_id, limit)
    }

    /// Propose that `target`'s events up to `up_to_id` were delivered.
    pub async fn propose_ack(&self, target: &str, up_to_id: &str) -> Result<(), Status> {
        self.write(Op::AckNotifications(AckNotificationsCmd {
            target: target.to_string(),
            up_to_id: up_to_id.to_string(),
        }))
        .await
        .map(|_| ())
    }

    pub async fn propose_lifecycle(
        &self,
        batch: LifecycleBatchCmd,
    ) -> Result<CommandResult, Status> {
        self.write(Op::LifecycleBatch(batch)).await
    }

    /// The live (alive, not draining) chunkservers as the leader sees them: id, address, rack.
    pub fn live_chunkservers(&self) -> Vec<(u64, String, String)> {
        let view = self.node.store().view();
        self.live_servers(&view)
            .into_iter()
            .filter(|(_, s)| *s == ChunkserverState::Alive)
            .map(|(r, _)| (r.id, r.addr, r.rack))
            .collect()
    }

    fn live_servers(&self, kv: &dyn KvRead) -> Vec<(ChunkserverRecord, ChunkserverState)> {
        self.control.lock().server_states(kv, self.mono_ms())
    }
}

/// Sweeps take at most this share of the leader's time: a sweep is O(chunks) (about 1.6 s at
/// 1M chunks, `cargo bench -p anode-master --bench sweep`), so with a fixed 500 ms interval
/// they would run back to back and keep a core and the control lock busy.
const SWEEP_DUTY_DIVISOR: u32 = 5;

/// Pure: the pause before the next sweep, `interval` or long enough that the last sweep
/// (`took`) is at most 1/[`SWEEP_DUTY_DIVISOR`] of the time.
/// The governance bypass is for callers that check `s3:BypassGovernanceRetention` themselves
/// (the gateway, for the S3 principal) and for operators; a data client (`Client` role)
/// asking for it is refused. Without TLS (`--insecure-no-tls`) there is no identity to check.
fn check_bypass<T>(req: &Request<T>, bypass: bool) -> Result<(), Status> {
    use anode_meta::access::Role;
    let role = req.extensions().get::<PeerIdentity>().map(|p| p.role);
    match role {
        Some(Role::Client) if bypass => Err(ErrorDetail::new(
            ErrorCode::PermissionDenied,
            "a client certificate may not bypass governance retention",
        )
        .to_status()),
        _ => Ok(()),
    }
}

fn next_sweep_delay(interval: Duration, took: Duration) -> Duration {
    interval.max(took * (SWEEP_DUTY_DIVISOR - 1))
}

/// Raft did not answer within [`RAFT_TIMEOUT`]: the outcome is unknown, the caller may retry.
fn raft_timeout(what: &str) -> Status {
    ErrorDetail::new(ErrorCode::Unavailable, what).to_status()
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
            name: r.name.clone(),
            replication: r.replication,
            owner_access_key: r.owner_access_key,
            owner_user: r.owner_user,
            access: r.access,
            object_lock: r.object_lock,
            versioning_state: if r.object_lock {
                anode_meta::state::versions::ENABLED
            } else {
                anode_meta::state::versions::UNVERSIONED
            },
            ..Default::default()
        };
        self.write_in(
            r.session,
            Op::CreateBucket(CreateBucketCmd {
                config: Some(config.clone()),
            }),
        )
        .await?;
        let name = config.name.clone();
        let cfg = self.read(true, |kv| state::get_bucket(kv, &name)).await?;
        ok(CreateBucketResponse {
            config: cfg.or(Some(config)),
        })
    }

    async fn delete_bucket(&self, req: Request<DeleteBucketRequest>) -> Rpc<DeleteBucketResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::DeleteBucket(DeleteBucketCmd { name: r.name }),
        )
        .await?;
        ok(DeleteBucketResponse {})
    }

    async fn list_buckets(&self, _req: Request<ListBucketsRequest>) -> Rpc<ListBucketsResponse> {
        let (buckets, usage) = self.read_blocking(false, buckets_with_usage).await?;
        ok(ListBucketsResponse { buckets, usage })
    }

    async fn get_bucket(&self, req: Request<GetBucketRequest>) -> Rpc<GetBucketResponse> {
        let name = req.into_inner().name;
        let b = self.read(false, |kv| state::get_bucket(kv, &name)).await?;
        match b {
            Some(config) => ok(GetBucketResponse {
                config: Some(config),
            }),
            None => Err(state_status(state::StateError::NoSuchBucket(name))),
        }
    }

    /// The state machine decodes the record (and parses its policy) before storing it:
    /// `InvalidArgument` otherwise, `PreconditionFailed` when `expect_access` is not the
    /// current record.
    async fn set_bucket_access(
        &self,
        req: Request<SetBucketAccessRequest>,
    ) -> Rpc<SetBucketAccessResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetBucketAccess(SetBucketAccessCmd {
                name: r.name,
                access: r.access,
                expect_access: r.expect_access,
            }),
        )
        .await?;
        ok(SetBucketAccessResponse {})
    }

    async fn set_object_acl(&self, req: Request<SetObjectAclRequest>) -> Rpc<SetObjectAclResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetObjectAcl(SetObjectAclCmd {
                bucket: r.bucket,
                key: r.key,
                acl: r.acl,
                expect_object_version: r.expect_object_version,
            }),
        )
        .await?;
        ok(SetObjectAclResponse {})
    }

    async fn put_object(&self, req: Request<PutObjectRequest>) -> Rpc<PutObjectResponse> {
        let r = req.into_inner();
        if let Some(m) = &r.manifest {
            validate::manifest(m).map_err(invalid)?;
            if let Some(ix) = &r.parquet {
                state::check_parquet_index(ix, m.size).map_err(state_status)?;
            }
        }
        let fresh = fresh_copies(r.manifest.iter().flat_map(|m| m.chunks.iter()));
        let res = self
            .write_in(
                r.session,
                Op::PutObject(PutObjectCmd {
                    bucket: r.bucket,
                    key: r.key,
                    manifest: r.manifest,
                    if_match_etag: r.if_match_etag,
                    source: r.source,
                    parquet: r.parquet,
                    parquet_copy: r.parquet_copy,
                }),
            )
            .await?;
        // Applied, not yet answered: the leader dying here leaves the client unsure.
        fail::fail_point!("master::service::put_applied_before_reply");
        self.learn_copies(&fresh);
        ok(PutObjectResponse {
            manifest: res.manifest,
        })
    }

    async fn put_objects(&self, req: Request<PutObjectsRequest>) -> Rpc<PutObjectsResponse> {
        let r = req.into_inner();
        validate::at_most("objects", r.objects.len(), validate::MAX_BULK_PUTS).map_err(invalid)?;
        for m in r.objects.iter().filter_map(|p| p.manifest.as_ref()) {
            validate::manifest(m).map_err(invalid)?;
        }
        let fresh = fresh_copies(
            r.objects
                .iter()
                .filter_map(|p| p.manifest.as_ref())
                .flat_map(|m| m.chunks.iter()),
        );
        let res = self
            .write_in(
                r.session,
                Op::PutObjects(PutObjectsCmd {
                    bucket: r.bucket,
                    objects: r.objects,
                }),
            )
            .await?;
        self.learn_copies(&fresh);
        ok(PutObjectsResponse {
            written: res.written,
        })
    }

    async fn get_object(&self, req: Request<GetObjectRequest>) -> Rpc<GetObjectResponse> {
        let r = req.into_inner();
        // One read for the version and (issue 16) the part of its stored Parquet tail that
        // answers the caller's range.
        let (m, tail) = self
            .read(r.allow_stale, |kv| {
                let m = state::versions::get_version(
                    kv,
                    &r.bucket,
                    &r.key,
                    r.version_id.as_deref(),
                    r.include_delete_markers,
                )?;
                let tail = match (&r.tail_range, &m.parquet) {
                    (Some(range), Some(_)) => {
                        state::get_parquet_tail(kv, &r.bucket, &r.key, m.object_version)
                            .and_then(|t| state::tail_slice(&m, &t, range))
                    }
                    _ => None,
                };
                Ok((m, tail))
            })
            .await?
            .map_err(state_status)?;
        let (tail_slice_start, tail_slice) = match tail {
            Some((start, bytes)) => (start, Some(bytes)),
            None => (0, None),
        };
        ok(GetObjectResponse {
            manifest: Some(m),
            tail_slice,
            tail_slice_start,
        })
    }

    async fn set_parquet_index(
        &self,
        req: Request<SetParquetIndexRequest>,
    ) -> Rpc<SetParquetIndexResponse> {
        let r = req.into_inner();
        let bad = |m: &str| state_status(state::StateError::BadCommand(m.into()));
        let cmd = r.cmd.ok_or_else(|| bad("no command"))?;
        let ix = cmd.index.as_ref().ok_or_else(|| bad("no index"))?;
        // The object's size is checked when the command applies; here only the shape.
        state::check_parquet_index(ix, u64::MAX).map_err(state_status)?;
        let res = self.write_in(r.session, Op::SetParquetIndex(cmd)).await?;
        ok(SetParquetIndexResponse {
            applied: res.written == 1,
        })
    }

    async fn delete_object(&self, req: Request<DeleteObjectRequest>) -> Rpc<DeleteObjectResponse> {
        check_bypass(&req, req.get_ref().bypass_governance)?;
        let r = req.into_inner();
        let res = self
            .write_in(
                r.session,
                Op::DeleteObject(DeleteObjectCmd {
                    bucket: r.bucket,
                    key: r.key,
                    version_id: r.version_id,
                    bypass_governance: r.bypass_governance,
                    if_match_etag: r.if_match_etag,
                    if_match_last_modified_ms: r.if_match_last_modified_ms,
                    if_match_size: r.if_match_size,
                }),
            )
            .await?;
        let outcome = res.deletions.into_iter().next();
        ok(DeleteObjectResponse {
            existed: outcome.as_ref().is_some_and(|o| o.existed),
            outcome,
        })
    }

    async fn delete_objects(
        &self,
        req: Request<DeleteObjectsRequest>,
    ) -> Rpc<DeleteObjectsResponse> {
        check_bypass(&req, req.get_ref().bypass_governance)?;
        let r = req.into_inner();
        validate::at_most(
            "keys",
            r.keys.len() + r.objects.len(),
            validate::MAX_DELETE_KEYS,
        )
        .map_err(invalid)?;
        let res = self
            .write_in(
                r.session,
                Op::DeleteObjects(DeleteObjectsCmd {
                    bucket: r.bucket,
                    keys: r.keys,
                    objects: r.objects,
                    bypass_governance: r.bypass_governance,
                }),
            )
            .await?;
        ok(DeleteObjectsResponse {
            deleted: res.deleted_keys,
            outcomes: res.deletions,
        })
    }

    async fn list_object_versions(
        &self,
        req: Request<ListObjectVersionsRequest>,
    ) -> Rpc<ListObjectVersionsResponse> {
        let r = req.into_inner();
        let resp = self
            .read_blocking(r.allow_stale, move |kv| state::list_object_versions(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn set_bucket_versioning(
        &self,
        req: Request<SetBucketVersioningRequest>,
    ) -> Rpc<SetBucketVersioningResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetBucketVersioning(SetBucketVersioningCmd {
                name: r.name,
                state: r.state,
            }),
        )
        .await?;
        ok(SetBucketVersioningResponse {})
    }

    async fn set_bucket_object_lock(
        &self,
        req: Request<SetBucketObjectLockRequest>,
    ) -> Rpc<SetBucketObjectLockResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetBucketObjectLock(SetBucketObjectLockCmd {
                name: r.name,
                default_retention: r.default_retention,
            }),
        )
        .await?;
        ok(SetBucketObjectLockResponse {})
    }

    async fn set_bucket_lifecycle(
        &self,
        req: Request<SetBucketLifecycleRequest>,
    ) -> Rpc<SetBucketLifecycleResponse> {
        let r = req.into_inner();
        if let Some(cfg) = &r.config {
            anode_meta::lifecycle::validate(cfg).map_err(|e| {
                ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()).to_status()
            })?;
        }
        self.write_in(
            r.session,
            Op::SetBucketLifecycle(SetBucketLifecycleCmd {
                name: r.name,
                config: r.config,
            }),
        )
        .await?;
        ok(SetBucketLifecycleResponse {})
    }

    async fn set_bucket_cors(
        &self,
        req: Request<SetBucketCorsRequest>,
    ) -> Rpc<SetBucketCorsResponse> {
        let r = req.into_inner();
        if let Some(cfg) = &r.config {
            anode_meta::cors::validate(cfg).map_err(|e| {
                ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()).to_status()
            })?;
        }
        self.write_in(
            r.session,
            Op::SetBucketCors(SetBucketCorsCmd {
                name: r.name,
                config: r.config,
            }),
        )
        .await?;
        ok(SetBucketCorsResponse {})
    }

    async fn set_bucket_notification(
        &self,
        req: Request<SetBucketNotificationRequest>,
    ) -> Rpc<SetBucketNotificationResponse> {
        let r = req.into_inner();
        if let Some(cfg) = &r.config {
            anode_meta::notify::validate_config(cfg).map_err(invalid_notify)?;
        }
        self.write_in(
            r.session,
            Op::SetBucketNotification(SetBucketNotificationCmd {
                name: r.name,
                config: r.config,
            }),
        )
        .await?;
        ok(SetBucketNotificationResponse {})
    }

    async fn set_notification_target(
        &self,
        req: Request<SetNotificationTargetRequest>,
    ) -> Rpc<SetNotificationTargetResponse> {
        let r = req.into_inner();
        anode_meta::notify::validate_target_name(&r.name).map_err(invalid_notify)?;
        if let Some(t) = &r.target {
            anode_meta::notify::validate_target(t).map_err(invalid_notify)?;
        }
        self.write_in(
            r.session,
            Op::SetNotificationTarget(SetNotificationTargetCmd {
                name: r.name,
                target: r.target,
            }),
        )
        .await?;
        ok(SetNotificationTargetResponse {})
    }

    async fn list_notification_targets(
        &self,
        _req: Request<ListNotificationTargetsRequest>,
    ) -> Rpc<ListNotificationTargetsResponse> {
        let targets = self.read(false, state::list_targets).await?;
        ok(ListNotificationTargetsResponse { targets })
    }

    type WatchStream = WatchStream;

    /// Subscribe first, then check the bucket (so no event applied after the check is
    /// missed), then stream the matching events with a keep-alive every
    /// [`WATCH_KEEPALIVE`] of silence.
    async fn watch(&self, req: Request<WatchRequest>) -> Rpc<WatchStream> {
        let r = req.into_inner();
        if let Some(e) = r
            .events
            .iter()
            .find(|e| !anode_meta::notify::EVENT_NAMES.contains(&e.as_str()))
        {
            return Err(invalid_notify(
                anode_meta::notify::NotifyError::UnknownEvent(e.clone()),
            ));
        }
        let rx = self.node.subscribe_events();
        let name = r.bucket.clone();
        if self
            .read(true, |kv| state::get_bucket(kv, &name))
            .await?
            .is_none()
        {
            return Err(state_status(state::StateError::NoSuchBucket(r.bucket)));
        }
        crate::metrics::WATCHERS.inc();
        let guard = WatcherGauge;
        // The keep-alive counts from the last answer sent: events of other buckets (filtered
        // out) do not delay it.
        let state = (rx, r, guard, tokio::time::Instant::now());
        let stream = futures::stream::unfold(state, |(mut rx, r, guard, sent)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let due = sent + WATCH_KEEPALIVE;
                let now = tokio::time::Instant::now;
                match tokio::time::timeout_at(due, rx.recv()).await {
                    Err(_) => {
                        let keep = Ok(WatchResponse { event: None });
                        return Some((keep, (rx, r, guard, now())));
                    }
                    Ok(Ok(e)) => {
                        let take = e.bucket == r.bucket
                            && anode_meta::notify::filter_matches(
                                &r.events,
                                &r.prefix,
                                &r.suffix,
                                &e.event_name,
                                &e.key,
                            );
                        if take {
                            let event = Some((*e).clone());
                            return Some((Ok(WatchResponse { event }), (rx, r, guard, now())));
                        }
                    }
                    Ok(Err(RecvError::Lagged(n))) => {
                        let msg = format!("the watcher fell {n} events behind; watch again");
                        let status = ErrorDetail::new(ErrorCode::Busy, msg).to_status();
                        return Some((Err(status), (rx, r, guard, now())));
                    }
                    Ok(Err(RecvError::Closed)) => return None,
                }
            }
        });
        // After an error (a lagged watcher) the stream ends.
        let mut failed = false;
        let stream = stream.take_while(move |item| {
            let go = !failed;
            failed |= item.is_err();
            go
        });
        ok(Box::pin(stream) as WatchStream)
    }

    async fn set_object_lock(
        &self,
        req: Request<SetObjectLockRequest>,
    ) -> Rpc<SetObjectLockResponse> {
        let r = req.into_inner();
        let cmd = r.cmd.ok_or_else(|| {
            ErrorDetail::new(ErrorCode::InvalidArgument, "no command").to_status()
        })?;
        let res = self.write_in(r.session, Op::SetObjectLock(cmd)).await?;
        ok(SetObjectLockResponse {
            manifest: res.manifest,
        })
    }

    async fn set_object_tagging(
        &self,
        req: Request<SetObjectTaggingRequest>,
    ) -> Rpc<SetObjectTaggingResponse> {
        let r = req.into_inner();
        let cmd = r.cmd.ok_or_else(|| {
            ErrorDetail::new(ErrorCode::InvalidArgument, "no command").to_status()
        })?;
        let res = self.write_in(r.session, Op::SetObjectTagging(cmd)).await?;
        ok(SetObjectTaggingResponse {
            manifest: res.manifest,
        })
    }

    async fn set_bucket_tagging(
        &self,
        req: Request<SetBucketTaggingRequest>,
    ) -> Rpc<SetBucketTaggingResponse> {
        let r = req.into_inner();
        let cmd = r.cmd.ok_or_else(|| {
            ErrorDetail::new(ErrorCode::InvalidArgument, "no command").to_status()
        })?;
        self.write_in(r.session, Op::SetBucketTagging(cmd)).await?;
        ok(SetBucketTaggingResponse {})
    }

    async fn list_objects(&self, req: Request<ListObjectsRequest>) -> Rpc<ListObjectsResponse> {
        let r = req.into_inner();
        let resp = self
            .read_blocking(r.allow_stale, move |kv| state::list_objects(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn create_multipart(
        &self,
        req: Request<CreateMultipartRequest>,
    ) -> Rpc<CreateMultipartResponse> {
        let r = req.into_inner();
        let mut upload = r.upload.unwrap_or_default();
        upload.version = RECORD_VERSION;
        upload.upload_id = random_hex(16);
        let res = self
            .write_in(
                r.session,
                Op::CreateMultipart(CreateMultipartCmd {
                    upload: Some(upload),
                }),
            )
            .await?;
        // The id the state machine recorded: a retry's answer names its first copy's upload.
        ok(CreateMultipartResponse {
            upload_id: res.upload_id,
        })
    }

    async fn put_part(&self, req: Request<PutPartRequest>) -> Rpc<PutPartResponse> {
        let r = req.into_inner();
        if let Some(p) = &r.part {
            validate::part(p).map_err(invalid)?;
        }
        let fresh = fresh_copies(r.part.iter().flat_map(|p| p.chunks.iter()));
        self.write_in(
            r.session,
            Op::PutPart(PutPartCmd {
                bucket: r.bucket,
                key: r.key,
                upload_id: r.upload_id,
                part: r.part,
            }),
        )
        .await?;
        self.learn_copies(&fresh);
        ok(PutPartResponse {})
    }

    async fn complete_multipart(
        &self,
        req: Request<CompleteMultipartRequest>,
    ) -> Rpc<CompleteMultipartResponse> {
        let r = req.into_inner();
        let res = self
            .write_in(
                r.session,
                Op::CompleteMultipart(CompleteMultipartCmd {
                    bucket: r.bucket,
                    key: r.key,
                    upload_id: r.upload_id,
                    parts: r.parts,
                    if_match_etag: r.if_match_etag,
                }),
            )
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
        self.write_in(
            r.session,
            Op::AbortMultipart(AbortMultipartCmd {
                bucket: r.bucket,
                key: r.key,
                upload_id: r.upload_id,
            }),
        )
        .await?;
        ok(AbortMultipartResponse {})
    }

    async fn list_parts(&self, req: Request<ListPartsRequest>) -> Rpc<ListPartsResponse> {
        let r = req.into_inner();
        let resp = self
            .read_blocking(false, move |kv| state::list_parts(kv, &r))
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
            .read_blocking(false, move |kv| state::list_uploads(kv, &r))
            .await?
            .map_err(state_status)?;
        ok(resp)
    }

    async fn allocate_chunks(
        &self,
        req: Request<AllocateChunksRequest>,
    ) -> Rpc<AllocateChunksResponse> {
        let r = req.into_inner();
        validate::chunk_ids("chunks", &r.sha256, validate::MAX_ALLOCATE_CHUNKS).map_err(invalid)?;
        validate::at_most(
            "excluded servers",
            r.exclude.len(),
            validate::MAX_EXCLUDED_SERVERS,
        )
        .map_err(invalid)?;
        self.require_leader()?;
        let resp = self
            .read(true, |kv| {
                self.control.lock().allocate(kv, &r, self.mono_ms())
            })
            .await?
            .map_err(|e| e.detail().to_status())?;
        ok(resp)
    }

    async fn locate_chunks(&self, req: Request<LocateChunksRequest>) -> Rpc<LocateChunksResponse> {
        let r = req.into_inner();
        validate::chunk_ids("chunks", &r.sha256, validate::MAX_LOCATE_CHUNKS).map_err(invalid)?;
        let placements = self
            .read(true, |kv| {
                self.control.lock().locate(kv, &r.sha256, self.mono_ms())
            })
            .await?;
        ok(LocateChunksResponse { placements })
    }

    async fn report_bad_chunk(
        &self,
        req: Request<ReportBadChunkRequest>,
    ) -> Rpc<ReportBadChunkResponse> {
        let r = req.into_inner();
        validate::chunk_ids("chunks", std::slice::from_ref(&r.sha256), 1).map_err(invalid)?;
        tracing::warn!(chunk = %hex::encode(&r.sha256), server = r.server_id, reason = %r.reason, "bad chunk copy reported");
        crate::metrics::BAD_CHUNK_REPORTS.inc();
        self.require_leader()?;
        self.control.lock().report_bad(r.server_id, &r.sha256);
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
        self.control
            .lock()
            .registered(res.chunkserver_id, self.mono_ms());
        tracing::info!(id = res.chunkserver_id, epoch = res.chunkserver_epoch, addr = %r.addr, "chunkserver registered");
        ok(RegisterChunkserverResponse {
            id: res.chunkserver_id,
            epoch: res.chunkserver_epoch,
        })
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Rpc<HeartbeatResponse> {
        let r = req.into_inner();
        // Counts only: a malformed id is skipped by the location table (`chunk_id`), and
        // refusing the whole heartbeat for it would let one stray file make a server look dead.
        for (what, n) in [
            ("added chunks", r.added.len()),
            ("removed chunks", r.removed.len()),
            ("corrupt chunks", r.corrupt.len()),
            (
                "finished commands",
                r.done_commands.len() + r.failed_commands.len(),
            ),
        ] {
            validate::at_most(what, n, validate::MAX_REPORT_CHUNKS).map_err(invalid)?;
        }
        self.require_leader()?;
        crate::metrics::observe_heartbeat_disks(r.id, &r.disks);
        let step = self
            .read(true, |kv| {
                self.control
                    .lock()
                    .heartbeat_begin(kv, &r, self.mono_ms(), anode_common::now_ms())
            })
            .await?;
        if !r.disks.is_empty() {
            self.disk_reports.lock().insert(r.id, r.disks.clone());
        }
        let HeartbeatStep::Accept { epoch, update } = step else {
            return ok(HeartbeatResponse {
                reregister: true,
                ..Default::default()
            });
        };
        if let Some(update) = update {
            self.write(Op::ChunkserverUpdate(update)).await?;
        }
        let view = self.node.store().view();
        let resp = self
            .control
            .lock()
            .heartbeat_finish(&view, &r, epoch, self.mono_ms());
        ok(resp)
    }

    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Rpc<CreateKeyResponse> {
        let r = req.into_inner();
        let key = AccessKey {
            version: RECORD_VERSION,
            access_key: if r.access_key.is_empty() {
                format!("AK{}", random_hex(9).to_uppercase())
            } else {
                r.access_key.clone()
            },
            secret_key: if r.secret_key.is_empty() {
                random_hex(20)
            } else {
                r.secret_key.clone()
            },
            name: r.name.clone(),
            created_ms: anode_common::now_ms(),
            user: r.user.clone(),
            disabled: false,
            expires_ms: r.expires_ms,
        };
        // Only ids the gateway will accept (it refuses other shapes before any lookup).
        anode_meta::validate::access_key(&key.access_key).map_err(|e| e.detail().to_status())?;
        let res = self
            .write_in(
                r.session,
                Op::CreateKey(CreateKeyCmd {
                    key: Some(key.clone()),
                }),
            )
            .await?;
        // The key the state machine recorded: a retry's answer names its first copy's key,
        // whose secret (never in a result) is read from the state.
        let recorded = res
            .access_key
            .map_or(key.access_key.clone(), |k| k.access_key);
        if recorded == key.access_key {
            return ok(CreateKeyResponse { key: Some(key) });
        }
        let first = self.read(true, |kv| state::get_key(kv, &recorded)).await?;
        ok(CreateKeyResponse { key: first })
    }

    async fn list_keys(&self, _req: Request<ListKeysRequest>) -> Rpc<ListKeysResponse> {
        // Secrets never leave the group in a listing: `CreateKey` shows a secret once to the
        // admin who made it, and `GetKey` (gateways only) returns one key's secret.
        let mut keys = self.read(false, state::list_keys).await?;
        for k in &mut keys {
            k.secret_key.clear();
        }
        ok(ListKeysResponse { keys })
    }

    async fn delete_key(&self, req: Request<DeleteKeyRequest>) -> Rpc<DeleteKeyResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::DeleteKey(DeleteKeyCmd {
                access_key: r.access_key,
            }),
        )
        .await?;
        ok(DeleteKeyResponse {})
    }

    async fn get_key(&self, req: Request<GetKeyRequest>) -> Rpc<GetKeyResponse> {
        let ak = req.into_inner().access_key;
        let found = self
            .read(false, |kv| {
                state::get_key(kv, &ak).map(|k| {
                    let user = (!k.user.is_empty())
                        .then(|| state::get_user(kv, &k.user))
                        .flatten();
                    (k, user)
                })
            })
            .await?;
        match found {
            Some((key, user)) => ok(GetKeyResponse {
                key: Some(key),
                user,
            }),
            None => Err(state_status(state::StateError::NoSuchAccessKey(ak))),
        }
    }

    async fn set_key_disabled(
        &self,
        req: Request<SetKeyDisabledRequest>,
    ) -> Rpc<SetKeyDisabledResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetKeyDisabled(SetKeyDisabledCmd {
                access_key: r.access_key,
                disabled: r.disabled,
            }),
        )
        .await?;
        ok(SetKeyDisabledResponse {})
    }

    async fn create_user(&self, req: Request<CreateUserRequest>) -> Rpc<CreateUserResponse> {
        let r = req.into_inner();
        validate::user_name(&r.name).map_err(invalid)?;
        let user = User {
            version: RECORD_VERSION,
            name: r.name.clone(),
            admin: r.admin,
            ..Default::default()
        };
        self.write_in(
            r.session,
            Op::CreateUser(CreateUserCmd {
                user: Some(user.clone()),
            }),
        )
        .await?;
        let got = self.read(true, |kv| state::get_user(kv, &r.name)).await?;
        ok(CreateUserResponse {
            user: got.or(Some(user)),
        })
    }

    async fn delete_user(&self, req: Request<DeleteUserRequest>) -> Rpc<DeleteUserResponse> {
        let r = req.into_inner();
        self.write_in(r.session, Op::DeleteUser(DeleteUserCmd { name: r.name }))
            .await?;
        ok(DeleteUserResponse {})
    }

    async fn list_users(&self, _req: Request<ListUsersRequest>) -> Rpc<ListUsersResponse> {
        let users = self
            .read_blocking(false, |kv| {
                state::list_users(kv)
                    .into_iter()
                    .map(|u| UserStatus {
                        usage: Some(state::user_usage(kv, &u.name)),
                        user: Some(u),
                    })
                    .collect()
            })
            .await?;
        ok(ListUsersResponse { users })
    }

    async fn get_user(&self, req: Request<GetUserRequest>) -> Rpc<GetUserResponse> {
        let name = req.into_inner().name;
        let found = self
            .read(false, |kv| {
                state::get_user(kv, &name).map(|u| (u, state::user_usage(kv, &name)))
            })
            .await?;
        match found {
            Some((user, usage)) => ok(GetUserResponse {
                user: Some(user),
                usage: Some(usage),
            }),
            None => Err(state_status(state::StateError::NoSuchUser(name))),
        }
    }

    async fn set_user_quota(&self, req: Request<SetUserQuotaRequest>) -> Rpc<SetUserQuotaResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetUserQuota(SetUserQuotaCmd {
                name: r.name,
                quota_bytes: r.quota_bytes,
                quota_objects: r.quota_objects,
            }),
        )
        .await?;
        ok(SetUserQuotaResponse {})
    }

    async fn set_bucket_quota(
        &self,
        req: Request<SetBucketQuotaRequest>,
    ) -> Rpc<SetBucketQuotaResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetBucketQuota(SetBucketQuotaCmd {
                name: r.name,
                quota_bytes: r.quota_bytes,
                quota_objects: r.quota_objects,
            }),
        )
        .await?;
        ok(SetBucketQuotaResponse {})
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Rpc<StatusResponse> {
        ok(self.build_status())
    }

    async fn leader(&self, _req: Request<LeaderRequest>) -> Rpc<LeaderResponse> {
        let st = self.node.status();
        let leader_addr = st.members.get(&st.leader_id).cloned().unwrap_or_default();
        ok(LeaderResponse {
            id: st.id,
            term: st.term,
            is_leader: st.role == Role::Leader,
            leader_id: st.leader_id,
            leader_addr,
        })
    }

    async fn add_member(&self, req: Request<AddMemberRequest>) -> Rpc<AddMemberResponse> {
        let r = req.into_inner();
        self.require_leader()?;
        let st = self.node.status();
        if r.id == 0 || r.addr.is_empty() {
            return Err(membership_status(MembershipError::InvalidMember));
        }
        if st.voters.contains(&r.id) {
            return Err(membership_status(MembershipError::AlreadyMember(r.id)));
        }
        self.add_voter(r.id, &r.addr).await?;
        ok(AddMemberResponse {})
    }

    type BackupStream = BackupStream;

    /// On the leader: a read barrier (the state then covers every write acknowledged before
    /// this call), a view pinned on the raft thread at the applied index, then its records
    /// in the raft snapshot stream's pieces.
    async fn backup(&self, _req: Request<BackupRequest>) -> Rpc<BackupStream> {
        self.require_leader()?;
        self.read_barrier(false).await?;
        let (header, rx) = self.pin_backup().await?;
        let (index, term) = (header.index, header.term);
        tracing::info!(index, term, "backup: streaming the metadata at this index");
        let first = BackupPiece {
            header: Some(header),
            ..Default::default()
        };
        let rest = tokio_stream::wrappers::ReceiverStream::new(rx).map(|p| match p {
            Ok(StreamPiece::Records(records)) => Ok(BackupPiece {
                records,
                ..Default::default()
            }),
            Ok(StreamPiece::End { records, checksum }) => Ok(BackupPiece {
                trailer: Some(SnapshotTrailer { records, checksum }),
                ..Default::default()
            }),
            Err(e) => Err(ErrorDetail::new(ErrorCode::Unavailable, e.to_string()).to_status()),
        });
        let stream = tokio_stream::once(Ok(first)).chain(rest);
        ok(Box::pin(stream))
    }

    /// A master asks to be added (its certificate names the id it asks for); a voter already
    /// is answered at once.
    async fn join_group(&self, req: Request<JoinGroupRequest>) -> Rpc<JoinGroupResponse> {
        let peer = req.extensions().get::<PeerIdentity>().cloned();
        let r = req.into_inner();
        if let Some(p) = &peer {
            if p.master_id() != Some(r.id) {
                tracing::warn!(peer = %p, id = r.id, "join refused: certificate names another member");
                return Err(ErrorDetail::new(
                    ErrorCode::PermissionDenied,
                    format!("{p} may not join as member {}", r.id),
                )
                .with_resource(r.id.to_string())
                .to_status());
            }
        }
        self.require_leader()?;
        if r.id == 0 || r.addr.is_empty() {
            return Err(membership_status(MembershipError::InvalidMember));
        }
        if self.node.status().voters.contains(&r.id) {
            return ok(JoinGroupResponse {
                already_voter: true,
            });
        }
        tracing::info!(id = r.id, addr = %r.addr, "member asks to join");
        self.add_voter(r.id, &r.addr).await?;
        ok(JoinGroupResponse {
            already_voter: false,
        })
    }

    async fn remove_member(&self, req: Request<RemoveMemberRequest>) -> Rpc<RemoveMemberResponse> {
        let id = req.into_inner().id;
        self.require_leader()?;
        let st = self.node.status();
        if !st.voters.contains(&id) && !st.learners.contains(&id) {
            return Err(membership_status(MembershipError::NotMember(id)));
        }
        anode_meta::membership::check_removal(&st, id).map_err(membership_status)?;
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
            return Err(membership_status(MembershipError::NotVoter(id)));
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
            Err(ErrorDetail::new(
                ErrorCode::Timeout,
                format!("leadership did not move to {id} within 5 s"),
            )
            .to_status())
        }
    }

    async fn drain_chunkserver(
        &self,
        req: Request<DrainChunkserverRequest>,
    ) -> Rpc<DrainChunkserverResponse> {
        let r = req.into_inner();
        self.write_in(
            r.session,
            Op::SetDraining(SetDrainingCmd {
                id: r.id,
                draining: !r.cancel,
            }),
        )
        .await?;
        ok(DrainChunkserverResponse {})
    }
}

impl MasterService {
    /// Add `id` at `addr` as a learner (unless it is one), wait until it caught up, then make
    /// it a voter.
    async fn add_voter(&self, id: u64, addr: &str) -> Result<(), Status> {
        if !self.node.status().learners.contains(&id) {
            self.conf_change(ConfChangeType::AddLearnerNode, id, addr)
                .await?;
        }
        self.wait_caught_up(id).await?;
        self.conf_change(ConfChangeType::AddNode, id, addr).await?;
        tracing::info!(id, addr = %addr, "member added as voter");
        Ok(())
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
            .map_err(|_| raft_timeout("timed out waiting for membership change"))?
            .map_err(|e| self.node_status(e))?;
        command_outcome(res).map(|_| ())
    }

    async fn wait_caught_up(&self, id: u64) -> Result<(), Status> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let st = self.node.status();
            if st.role != Role::Leader {
                return Err(self.node_status(NodeError::NotLeader {
                    leader: st.leader_id,
                }));
            }
            let matched = st.matched.get(&id).copied().unwrap_or(0);
            if matched + 10 >= st.commit && matched > 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ErrorDetail::new(
                    ErrorCode::Timeout,
                    format!(
                        "learner {id} did not catch up (matched {matched} of {})",
                        st.commit
                    ),
                )
                .with_resource(id.to_string())
                .to_status());
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
        let Some(target) = anode_meta::membership::best_successor(st) else {
            return membership_status(MembershipError::NoSuccessor);
        };
        if let Err(e) = self.node.transfer_leader(target) {
            return self.node_status(e);
        }
        if self.wait_leader(target, Duration::from_secs(5)).await {
            self.node_status(NodeError::NotLeader { leader: target })
        } else {
            ErrorDetail::new(
                ErrorCode::Unavailable,
                "leadership transfer before self-removal did not finish; retry",
            )
            .to_status()
        }
    }

    fn build_status(&self) -> StatusResponse {
        let st = self.node.status();
        let view = self.node.store().view();
        let stats = state::stats(&view);
        let is_leader = st.role == Role::Leader;
        let servers = self.live_servers(&view);
        let ids: Vec<u64> = servers.iter().map(|(r, _)| r.id).collect();
        let (fig, reported): (HealthFigures, BTreeMap<u64, u64>) =
            self.control.lock().figures(&ids);
        let mut members: Vec<MemberStatus> = st
            .voters
            .iter()
            .chain(st.learners.iter())
            .map(|id| anode_meta::membership::member_status(&st, *id))
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
                    reported_chunks: reported.get(&rec.id).copied().unwrap_or(0),
                    safe_to_remove: is_leader
                        && rec.draining
                        && fig.locations_complete
                        && fig.summary.drain_needed.get(&rec.id) == Some(&0),
                })
                .collect(),
            under_replicated_chunks: if is_leader {
                fig.summary.under_replicated
            } else {
                0
            },
            missing_copies: fig.summary.missing_copies,
            lost_chunks: fig.summary.lost,
            tasks_in_flight: fig.in_flight,
            repair_bytes_per_sec: fig.bytes_per_sec,
            eta_secs: if fig.bytes_per_sec > 0 {
                fig.summary.missing_bytes.div_ceil(fig.bytes_per_sec)
            } else {
                0
            },
            missing_bytes: fig.summary.missing_bytes,
            locations_complete: is_leader && fig.locations_complete,
            garbage_chunks: fig.summary.garbage,
            rebalance_bytes_pending: fig.summary.rebalance_bytes_pending,
            buckets: stats.buckets,
            objects: stats.objects,
            chunks: stats.chunks,
            logical_bytes: stats.logical_bytes,
            stored_bytes: stats.stored_bytes,
            admin_addr: self.admin_addr.get().cloned().unwrap_or_default(),
            lifecycle: lifecycle_statuses(&view),
        }
    }
}

/// The lifecycle progress of every bucket that has lifecycle rules, by bucket name.
fn lifecycle_statuses(kv: &dyn KvRead) -> Vec<BucketLifecycleStatus> {
    state::list_buckets(kv)
        .into_iter()
        .filter(|b| b.lifecycle.is_some())
        .map(|b| BucketLifecycleStatus {
            progress: Some(state::lifecycle_progress(kv, &b.name)),
            bucket: b.name,
        })
        .collect()
}

/// Every bucket and its usage, in the same order (for `ListBuckets` and the status page).
pub(crate) fn buckets_with_usage(kv: &dyn KvRead) -> (Vec<BucketConfig>, Vec<Usage>) {
    let buckets = state::list_buckets(kv);
    let usage = buckets
        .iter()
        .map(|b| state::bucket_usage(kv, &b.name))
        .collect();
    (buckets, usage)
}

impl MasterService {
    /// The leader's healing loop: every interval, sweep the chunk table, plan and queue
    /// repair, trim, drain, rebalance and garbage tasks, and commit GC bookkeeping.
    pub async fn heal_loop(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut wait = self.heal_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = self.heal_interval;
            if self.require_leader().is_err() {
                crate::metrics::clear_leader_only();
                continue;
            }
            let started = Instant::now();
            if let Err(e) = self.heal_once().await {
                tracing::debug!(error = %e, "healing sweep failed");
            }
            wait = next_sweep_delay(self.heal_interval, started.elapsed());
        }
    }

    /// One sweep (public for tests): plan from the applied state, then commit the GC
    /// bookkeeping it asks for, in order, stopping at the first failure.
    pub async fn heal_once(&self) -> Result<(), Status> {
        let out = {
            let view = self.node.store().view();
            // The pass over the chunk table (a consistent snapshot) needs no control state:
            // writes, reads and heartbeats wait on the lock, so it is read without it.
            let table = ChunkTable::scan(&view);
            let mut c = self.control.lock();
            let out = c.sweep_scanned(&view, &table, self.mono_ms(), anode_common::now_ms());
            publish_heal_metrics(&c.healer().figures());
            let servers = c.server_states(&view, self.mono_ms());
            drop(c);
            publish_chunkserver_metrics(&servers);
            publish_usage_metrics(&view);
            out
        };
        if out.tasks_planned > 0 {
            tracing::info!(tasks = out.tasks_planned, "healing tasks planned");
        }
        if !out.to_tombstone.is_empty() {
            tracing::info!(
                chunks = out.to_tombstone.len(),
                "tombstoning unreferenced chunks"
            );
        }
        for op in out.ops() {
            self.write(op).await?;
        }
        Ok(())
    }
}

/// Usage per bucket and per user, the largest `--metrics-max-buckets` of each with their own
/// series and the rest summed (`crate::metrics::publish_usage`).
fn publish_usage_metrics(kv: &dyn KvRead) {
    use crate::metrics::{publish_usage, UsageFigures, BUCKET_USAGE, USER_USAGE};
    let figures = |u: Usage| UsageFigures {
        objects: u.objects,
        bytes: u.bytes,
    };
    let buckets = state::list_buckets(kv)
        .into_iter()
        .filter_map(|b| state::tracked_bucket_usage(kv, &b.name).map(|u| (b.name, figures(u))))
        .collect();
    publish_usage(&BUCKET_USAGE, buckets);
    let users = state::list_users(kv)
        .into_iter()
        .map(|user| {
            let u = state::user_usage(kv, &user.name);
            (user.name, figures(u))
        })
        .collect();
    publish_usage(&USER_USAGE, users);
}

/// The leader's view of every registered chunkserver (state, rack, space, disks).
fn publish_chunkserver_metrics(servers: &[(ChunkserverRecord, ChunkserverState)]) {
    let figures: Vec<crate::metrics::ChunkserverFigures> = servers
        .iter()
        .map(|(r, s)| crate::metrics::ChunkserverFigures {
            id: r.id,
            rack: r.rack.clone(),
            state: state_name(*s),
            used_bytes: r.used_bytes,
            capacity_bytes: r.capacity_bytes,
        })
        .collect();
    crate::metrics::publish_chunkservers(&figures);
}

fn publish_heal_metrics(f: &HealthFigures) {
    crate::metrics::UNDER_REPLICATED.set(f.summary.under_replicated as i64);
    crate::metrics::MISSING_COPIES.set(f.summary.missing_copies as i64);
    crate::metrics::LOST_CHUNKS.set(f.summary.lost as i64);
    crate::metrics::TASKS_IN_FLIGHT.set(f.in_flight as i64);
    crate::metrics::REPAIR_BYTES_PER_SEC.set(f.bytes_per_sec as i64);
    crate::metrics::GARBAGE_CHUNKS.set(f.summary.garbage as i64);
}

/// Counts an open watch stream in `anode_master_watchers` while it lives.
struct WatcherGauge;

impl Drop for WatcherGauge {
    fn drop(&mut self) {
        crate::metrics::WATCHERS.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_pause_for_at_least_four_times_their_length() {
        let interval = Duration::from_millis(500);
        assert_eq!(
            next_sweep_delay(interval, Duration::from_millis(20)),
            interval
        );
        assert_eq!(
            next_sweep_delay(interval, Duration::from_millis(1600)),
            Duration::from_millis(6400)
        );
    }
}
