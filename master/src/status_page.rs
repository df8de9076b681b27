//! The master's status page on its admin port: `GET /` (HTML, with a little inline script that
//! reads the JSON every 2 s) and `GET /api/status` (JSON).
//!
//! The JSON is built by [`status_json`], a pure function of what the member knows: its own
//! `Status` answer (the one `anode ctl status` merges, [`MasterService::status_response`]),
//! the buckets with their usage (the source of `ctl buckets list`), the disk reports of the
//! last heartbeats and the recent events. Events come from [`diff_events`], also pure: a
//! background loop ([`record_events`]) observes the member once a second and logs what
//! changed (leader, term, membership, chunkserver states, healing progress) in a ring of the
//! last [`EVENT_CAPACITY`].
//!
//! A follower answers with its own view (chunkserver states and healing are leader-only
//! knowledge, shown as unknown) and the leader's id and gRPC address. Nothing here is secret:
//! no key, no certificate, no user credential is read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anode_common::{AdminPage, AdminRoutes};
use anode_proto::{BucketConfig, DiskHealth, StatusResponse, Usage};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::service::MasterService;

/// Events kept in memory (per process; a restart starts an empty ring).
pub const EVENT_CAPACITY: usize = 200;

/// Buckets listed on the page at most (the largest by bytes stored).
pub const MAX_BUCKETS_SHOWN: usize = 500;

/// The page: plain HTML, inline CSS and script, no external asset.
pub const STATUS_HTML: &str = include_str!("status_page.html");

/// One thing that happened, as this member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Wall clock, ms since the Unix epoch.
    pub time_ms: u64,
    /// `leader`, `membership`, `chunkserver`, `healing`.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
}

/// A bounded ring of events, newest last.
#[derive(Debug)]
pub struct EventLog {
    ring: Mutex<VecDeque<Event>>,
    capacity: usize,
}

impl EventLog {
    /// An empty ring of `capacity` events.
    pub fn new(capacity: usize) -> Self {
        EventLog {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
        }
    }

    /// Record an event (the oldest goes when the ring is full).
    pub fn push(&self, e: Event) {
        let mut r = self.ring.lock();
        while r.len() >= self.capacity {
            r.pop_front();
        }
        r.push_back(e);
    }

    /// The events, newest first.
    pub fn newest_first(&self) -> Vec<Event> {
        self.ring.lock().iter().rev().cloned().collect()
    }
}

/// What [`diff_events`] compares between two observations of a member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Raft term.
    pub term: u64,
    /// Known leader (0 = none).
    pub leader_id: u64,
    /// This member leads: chunkserver states and healing figures are meaningful.
    pub is_leader: bool,
    /// Voters.
    pub voters: BTreeSet<u64>,
    /// Learners.
    pub learners: BTreeSet<u64>,
    /// Chunkserver id -> state name (leader only).
    pub servers: BTreeMap<u64, String>,
    /// Under-replicated chunks (leader only).
    pub under_replicated: u64,
    /// Missing copies (leader only).
    pub missing_copies: u64,
    /// Referenced chunks without a live copy (leader only).
    pub lost: u64,
    /// Every live server sent its full chunk report: the healing figures are real (a new
    /// leader counts every chunk as missing until the reports arrive).
    pub locations_complete: bool,
}

impl Observed {
    /// The observation of a member's `Status` answer (pure).
    pub fn of(s: &StatusResponse) -> Self {
        let is_leader = s.leader_id == s.id && s.id != 0;
        let (learners, voters): (Vec<_>, Vec<_>) =
            s.members.iter().partition(|m| m.role == "learner");
        Observed {
            term: s.term,
            leader_id: s.leader_id,
            is_leader,
            voters: voters.iter().map(|m| m.id).collect(),
            learners: learners.iter().map(|m| m.id).collect(),
            servers: if is_leader {
                s.chunkservers
                    .iter()
                    .map(|c| (c.id, c.state.clone()))
                    .collect()
            } else {
                BTreeMap::new()
            },
            under_replicated: s.under_replicated_chunks,
            missing_copies: s.missing_copies,
            lost: s.lost_chunks,
            locations_complete: s.locations_complete,
        }
    }
}

/// What changed from `prev` to `next` (pure). The first observation (`prev` = `None`) only
/// names the leader. Chunkserver and healing events need both observations to be the
/// leader's: a new leader re-learns leases and locations, and its first figures are not news;
/// healing events also need complete chunk locations in both (until every live server sent
/// its full report, every chunk looks under-replicated).
pub fn diff_events(prev: Option<&Observed>, next: &Observed) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(prev) = prev else {
        if next.leader_id != 0 {
            out.push((
                "leader",
                format!("leader is {} (term {})", next.leader_id, next.term),
            ));
        }
        return out;
    };
    if (prev.leader_id, prev.term) != (next.leader_id, next.term) {
        let msg = match (prev.leader_id, next.leader_id) {
            (_, 0) => format!("no leader: election in term {}", next.term),
            (0, l) => format!("leader elected: {l} (term {})", next.term),
            (a, b) if a == b => format!("leader {b} re-elected in term {}", next.term),
            (a, b) => format!("leader changed: {a} -> {b} (term {})", next.term),
        };
        out.push(("leader", msg));
    }
    for id in next.voters.difference(&prev.voters) {
        let how = if prev.learners.contains(id) {
            "promoted from learner to voter"
        } else {
            "added as voter"
        };
        out.push(("membership", format!("member {id} {how}")));
    }
    for id in next.learners.difference(&prev.learners) {
        out.push(("membership", format!("member {id} added as learner")));
    }
    for id in prev.voters.union(&prev.learners) {
        if !next.voters.contains(id) && !next.learners.contains(id) {
            out.push(("membership", format!("member {id} removed")));
        }
    }
    if !(prev.is_leader && next.is_leader) {
        return out;
    }
    for (id, state) in &next.servers {
        match prev.servers.get(id) {
            None => out.push((
                "chunkserver",
                format!("chunkserver {id} registered ({state})"),
            )),
            Some(old) if old != state => {
                let back = state == "alive" && (old == "suspect" || old == "dead");
                let msg = if back {
                    format!("chunkserver {id} is back: {old} -> {state}")
                } else {
                    format!("chunkserver {id}: {old} -> {state}")
                };
                out.push(("chunkserver", msg));
            }
            Some(_) => {}
        }
    }
    for id in prev.servers.keys() {
        if !next.servers.contains_key(id) {
            out.push(("chunkserver", format!("chunkserver {id} removed")));
        }
    }
    if !(prev.locations_complete && next.locations_complete) {
        return out;
    }
    if prev.under_replicated == 0 && next.under_replicated > 0 {
        out.push((
            "healing",
            format!(
                "healing started: {} chunks under-replicated, {} copies missing",
                next.under_replicated, next.missing_copies
            ),
        ));
    } else if next.missing_copies < prev.missing_copies {
        let restored = prev.missing_copies - next.missing_copies;
        let msg = if next.under_replicated == 0 {
            format!("repair done: {restored} copies restored, every chunk has its copies")
        } else {
            format!(
                "repair batch: {restored} copies restored, {} missing in {} chunks",
                next.missing_copies, next.under_replicated
            )
        };
        out.push(("healing", msg));
    }
    if next.lost > prev.lost {
        out.push(("healing", format!("{} chunks have no live copy", next.lost)));
    }
    out
}

/// A server's disk health from its last heartbeat (pure): `ok`, `full`, `failed: N of M`, or
/// `unknown` without a report.
pub fn disk_health(disks: Option<&Vec<DiskHealth>>) -> String {
    let Some(d) = disks.filter(|d| !d.is_empty()) else {
        return "unknown".into();
    };
    let failed = d.iter().filter(|x| x.failed).count();
    let full = d.iter().filter(|x| x.full).count();
    if failed > 0 {
        format!("failed: {failed} of {}", d.len())
    } else if full > 0 {
        format!("full: {full} of {}", d.len())
    } else {
        "ok".into()
    }
}

/// The address to link for a member's admin page (pure): its `admin` address, with the host
/// of its gRPC address `grpc` when the admin port is bound to every interface (`0.0.0.0`,
/// `[::]`). `None` for an empty or unusable address.
pub fn admin_link_addr(grpc: &str, admin: &str) -> Option<String> {
    let sa: std::net::SocketAddr = admin.parse().ok()?;
    if !sa.ip().is_unspecified() {
        return Some(admin.to_string());
    }
    let host = grpc
        .rsplit_once(':')
        .map(|(h, _)| h)
        .filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", sa.port()))
}

/// Where a follower keeps the leader's admin address: `(leader id, address)`.
pub type LeaderAdmin = Arc<Mutex<Option<(u64, String)>>>;

/// On a follower, every 2 s until `shutdown`: when the leader changed since the last answer,
/// ask it for its `Status` (masters may call it) and keep its admin address in `cache`, so
/// this member's status page can link to the leader's. Bounded: one call at a time, 4 s each.
pub async fn track_leader_admin(
    service: MasterService,
    tls: anode_tls::Tls,
    cache: LeaderAdmin,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (leader_id, leader_addr, me) = service.leader_and_self();
        if leader_id == 0 || leader_id == me || leader_addr.is_empty() {
            continue;
        }
        if cache
            .lock()
            .as_ref()
            .is_some_and(|(id, _)| *id == leader_id)
        {
            continue;
        }
        if let Some(admin) = ask_admin_addr(&tls, &leader_addr).await {
            *cache.lock() = Some((leader_id, admin));
        }
    }
}

async fn ask_admin_addr(tls: &anode_tls::Tls, addr: &str) -> Option<String> {
    let ep = tls
        .endpoint(addr, anode_tls::Role::Master)
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let ask = async {
        let ch = ep.connect().await.ok()?;
        let r = anode_proto::master_client::MasterClient::new(ch)
            .status(anode_proto::StatusRequest {})
            .await
            .ok()?;
        Some(r.into_inner().admin_addr).filter(|a| !a.is_empty())
    };
    tokio::time::timeout(Duration::from_secs(4), ask)
        .await
        .ok()
        .flatten()
}

/// Everything the JSON is made of.
#[derive(Clone, Debug, Default)]
pub struct StatusInputs {
    /// This member's `Status` answer.
    pub status: StatusResponse,
    /// This member's own raft role (`leader`, `follower`, `candidate`, `learner`, ...).
    pub role: String,
    /// The buckets with their usage, as `ctl buckets list` gets them.
    pub buckets: Vec<(BucketConfig, Usage)>,
    /// Disk reports of the last heartbeat per chunkserver (leader only).
    pub disks: BTreeMap<u64, Vec<DiskHealth>>,
    /// Recent events, newest first.
    pub events: Vec<Event>,
    /// When the view was taken (ms since the epoch).
    pub now_ms: u64,
    /// The leader's admin address as `(leader id, address)`, learned from its `Status`
    /// answer ([`track_leader_admin`]); followers only.
    pub leader_admin: Option<(u64, String)>,
}

/// The `/api/status` document (pure).
pub fn status_json(i: &StatusInputs) -> Value {
    let s = &i.status;
    let is_leader = s.leader_id == s.id && s.id != 0;
    let leader_addr = s
        .members
        .iter()
        .find(|m| m.id == s.leader_id)
        .map(|m| m.addr.clone())
        .unwrap_or_default();
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "addr": m.addr,
                "voter": m.role != "learner",
                "role": m.role,
                // Match index and lag are known by the leader only.
                "match_index": is_leader.then_some(m.match_index),
                "lag": is_leader.then_some(m.lag),
                "applied_index": (m.id == s.id).then_some(s.applied_index),
            })
        })
        .collect();
    let chunkservers: Vec<Value> = s
        .chunkservers
        .iter()
        .map(|c| {
            let disks = i.disks.get(&c.id);
            json!({
                "id": c.id,
                "addr": c.addr,
                "rack": c.rack,
                "state": c.state,
                "capacity_bytes": c.capacity_bytes,
                "used_bytes": c.used_bytes,
                "chunks": c.chunks,
                "reported_chunks": c.reported_chunks,
                "epoch": c.epoch,
                "safe_to_remove": c.safe_to_remove,
                "disk_health": if is_leader { disk_health(disks) } else { "unknown".into() },
                "disks": disks.map(|d| d.iter().map(|x| json!({
                    "path": x.path,
                    "capacity_bytes": x.capacity_bytes,
                    "used_bytes": x.used_bytes,
                    "full": x.full,
                    "failed": x.failed,
                    "error": x.error,
                })).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    let leader_admin = if is_leader {
        Some(s.admin_addr.clone()).filter(|a| !a.is_empty())
    } else {
        i.leader_admin
            .as_ref()
            .filter(|(id, _)| *id == s.leader_id && s.leader_id != 0)
            .and_then(|(_, a)| admin_link_addr(&leader_addr, a))
    };
    let mut buckets: Vec<&(BucketConfig, Usage)> = i.buckets.iter().collect();
    buckets.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.name.cmp(&b.0.name)));
    let shown: Vec<Value> = buckets
        .iter()
        .take(MAX_BUCKETS_SHOWN)
        .map(|(b, u)| crate::ctl::bucket_json(b, Some(u)))
        .collect();
    let events: Vec<Value> = i
        .events
        .iter()
        .map(|e| json!({"time_ms": e.time_ms, "kind": e.kind, "message": e.message}))
        .collect();
    json!({
        "id": s.id,
        "role": i.role,
        "is_leader": is_leader,
        "term": s.term,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_index": s.last_index,
        "leader_id": s.leader_id,
        "leader_addr": leader_addr,
        "leader_admin_addr": leader_admin,
        "admin_addr": s.admin_addr,
        "generated_ms": i.now_ms,
        "view": if is_leader {
            "leader"
        } else {
            "follower: chunkserver states, disk health and healing are known by the leader only"
        },
        "members": members,
        "chunkservers": chunkservers,
        "healing": {
            "known": is_leader,
            "under_replicated_chunks": s.under_replicated_chunks,
            "missing_copies": s.missing_copies,
            "missing_bytes": s.missing_bytes,
            "lost_chunks": s.lost_chunks,
            "tasks_in_flight": s.tasks_in_flight,
            "repair_bytes_per_sec": s.repair_bytes_per_sec,
            "eta_secs": s.eta_secs,
            "locations_complete": s.locations_complete,
            "garbage_chunks": s.garbage_chunks,
            "rebalance_bytes_pending": s.rebalance_bytes_pending,
        },
        "totals": {
            "buckets": s.buckets,
            "objects": s.objects,
            "chunks": s.chunks,
            "logical_bytes": s.logical_bytes,
            "stored_bytes": s.stored_bytes,
        },
        "buckets": shown,
        "buckets_truncated": i.buckets.len() > MAX_BUCKETS_SHOWN,
        "events": events,
    })
}

/// The admin routes of a master: `/` and `/api/status`.
pub struct MasterAdmin {
    service: MasterService,
    events: Arc<EventLog>,
    leader_admin: LeaderAdmin,
}

impl MasterAdmin {
    /// Routes over `service`, showing `events` and the leader's admin address in
    /// `leader_admin` (kept by [`track_leader_admin`]).
    pub fn new(service: MasterService, events: Arc<EventLog>, leader_admin: LeaderAdmin) -> Self {
        MasterAdmin {
            service,
            events,
            leader_admin,
        }
    }

    /// The inputs of [`status_json`] now.
    pub fn inputs(&self) -> StatusInputs {
        let (status, role) = self.service.status_response_and_role();
        StatusInputs {
            status,
            role,
            buckets: self.service.local_buckets_with_usage(),
            disks: self.service.disk_reports(),
            events: self.events.newest_first(),
            now_ms: anode_common::now_ms(),
            leader_admin: self.leader_admin.lock().clone(),
        }
    }
}

impl AdminRoutes for MasterAdmin {
    fn get(&self, path: &str) -> Option<AdminPage> {
        match path {
            "/" | "/index.html" => Some(AdminPage::ok(
                "text/html; charset=utf-8",
                STATUS_HTML.to_string(),
            )),
            "/api/status" => Some(AdminPage::ok(
                "application/json",
                serde_json::to_string(&status_json(&self.inputs())).unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

/// Observe `service` every `every` until `shutdown`, logging what changed into `events` (and
/// as log lines).
pub async fn record_events(
    service: MasterService,
    events: Arc<EventLog>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut prev: Option<Observed> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let svc = service.clone();
        let Ok((status, _)) =
            tokio::task::spawn_blocking(move || svc.status_response_and_role()).await
        else {
            continue;
        };
        let next = Observed::of(&status);
        let now = anode_common::now_ms();
        for (kind, message) in diff_events(prev.as_ref(), &next) {
            tracing::info!(kind, event = %message, "cluster event");
            events.push(Event {
                time_ms: now,
                kind,
                message,
            });
        }
        prev = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_proto::{ChunkserverStatus, MemberStatus};

    fn member(id: u64, role: &str) -> MemberStatus {
        MemberStatus {
            id,
            addr: format!("127.0.0.1:700{id}"),
            role: role.into(),
            applied_index: 0,
            match_index: 40 + id,
            lag: 3 - id.min(3),
        }
    }

    fn server(id: u64, state: &str) -> ChunkserverStatus {
        ChunkserverStatus {
            id,
            addr: format!("127.0.0.1:710{id}"),
            state: state.into(),
            used_bytes: 100 * id,
            capacity_bytes: 1000,
            chunks: id,
            rack: format!("rack-{id}"),
            ..Default::default()
        }
    }

    fn leader_status() -> StatusResponse {
        StatusResponse {
            id: 1,
            leader_id: 1,
            term: 5,
            commit_index: 42,
            applied_index: 42,
            last_index: 43,
            members: vec![
                member(1, "leader"),
                member(2, "follower"),
                member(3, "learner"),
            ],
            chunkservers: vec![server(1, "alive"), server(2, "suspect")],
            under_replicated_chunks: 7,
            missing_bytes: 7 << 20,
            eta_secs: 12,
            locations_complete: true,
            admin_addr: "127.0.0.1:7081".into(),
            ..Default::default()
        }
    }

    #[test]
    fn status_json_on_the_leader() {
        let disks = BTreeMap::from([(
            2,
            vec![
                DiskHealth {
                    path: "/d1".into(),
                    failed: true,
                    error: "EIO".into(),
                    ..Default::default()
                },
                DiskHealth::default(),
            ],
        )]);
        let usage = |objects, bytes| Usage { objects, bytes };
        let v = status_json(&StatusInputs {
            status: leader_status(),
            role: "leader".into(),
            buckets: vec![
                (
                    BucketConfig {
                        name: "small".into(),
                        ..Default::default()
                    },
                    usage(1, 10),
                ),
                (
                    BucketConfig {
                        name: "big".into(),
                        ..Default::default()
                    },
                    usage(2, 900),
                ),
            ],
            disks,
            events: vec![Event {
                time_ms: 9,
                kind: "leader",
                message: "leader is 1".into(),
            }],
            now_ms: 10,
            leader_admin: None,
        });
        assert_eq!(v["id"], 1);
        assert_eq!(v["role"], "leader");
        assert_eq!(v["is_leader"], true);
        assert_eq!(v["leader_addr"], "127.0.0.1:7001");
        assert_eq!(v["admin_addr"], "127.0.0.1:7081");
        assert_eq!(v["leader_admin_addr"], "127.0.0.1:7081");
        assert_eq!(v["members"][2]["voter"], false);
        assert_eq!(v["members"][1]["lag"], 1);
        assert_eq!(v["members"][0]["applied_index"], 42);
        assert!(v["members"][1]["applied_index"].is_null());
        assert_eq!(v["chunkservers"][1]["rack"], "rack-2");
        assert_eq!(v["chunkservers"][1]["state"], "suspect");
        assert_eq!(v["chunkservers"][0]["disk_health"], "unknown");
        assert_eq!(v["chunkservers"][1]["disk_health"], "failed: 1 of 2");
        assert_eq!(v["chunkservers"][1]["disks"][0]["error"], "EIO");
        assert_eq!(v["healing"]["under_replicated_chunks"], 7);
        assert_eq!(v["healing"]["eta_secs"], 12);
        assert_eq!(v["buckets"][0]["name"], "big");
        assert_eq!(v["buckets"][0]["usage"]["bytes"], 900);
        assert_eq!(v["buckets"][1]["usage"]["objects"], 1);
        assert_eq!(v["events"][0]["message"], "leader is 1");
        // Nothing that looks like a credential.
        let text = v.to_string();
        assert!(
            !text.contains("secret") && !text.contains("access_key"),
            "{text}"
        );
    }

    #[test]
    fn status_json_on_a_follower_points_at_the_leader() {
        let mut s = leader_status();
        s.id = 2;
        s.members[1].role = "follower".into();
        let v = status_json(&StatusInputs {
            status: s.clone(),
            role: "follower".into(),
            ..Default::default()
        });
        assert!(v["leader_admin_addr"].is_null());
        // Learned from the leader: linked, with the gRPC host for a wildcard bind.
        let learned = |id: u64, a: &str| StatusInputs {
            status: s.clone(),
            role: "follower".into(),
            leader_admin: Some((id, a.into())),
            ..Default::default()
        };
        let v2 = status_json(&learned(1, "0.0.0.0:7081"));
        assert_eq!(v2["leader_admin_addr"], "127.0.0.1:7081");
        // Learned from an earlier leader: not shown.
        assert!(status_json(&learned(3, "10.0.0.3:7083"))["leader_admin_addr"].is_null());
        assert_eq!(v["is_leader"], false);
        assert_eq!(v["leader_id"], 1);
        assert_eq!(v["leader_addr"], "127.0.0.1:7001");
        assert!(v["members"][1]["lag"].is_null());
        assert_eq!(v["chunkservers"][0]["disk_health"], "unknown");
        assert_eq!(v["healing"]["known"], false);
        assert!(v["view"].as_str().unwrap().starts_with("follower"));
    }

    #[test]
    fn admin_link_addresses() {
        assert_eq!(
            admin_link_addr("10.0.0.1:7001", "10.0.0.1:7081").as_deref(),
            Some("10.0.0.1:7081")
        );
        assert_eq!(
            admin_link_addr("m1.example:7001", "0.0.0.0:7081").as_deref(),
            Some("m1.example:7081")
        );
        assert_eq!(
            admin_link_addr("[fd00::1]:7001", "[::]:7081").as_deref(),
            Some("[fd00::1]:7081")
        );
        assert_eq!(admin_link_addr("x:1", ""), None);
        assert_eq!(admin_link_addr("", "0.0.0.0:7081"), None);
    }

    #[test]
    fn disk_health_names_the_worst() {
        assert_eq!(disk_health(None), "unknown");
        assert_eq!(disk_health(Some(&vec![])), "unknown");
        let ok = DiskHealth::default();
        let full = DiskHealth {
            full: true,
            ..Default::default()
        };
        assert_eq!(disk_health(Some(&vec![ok.clone()])), "ok");
        assert_eq!(disk_health(Some(&vec![ok, full])), "full: 1 of 2");
    }

    #[test]
    fn first_observation_names_the_leader_only() {
        let o = Observed::of(&leader_status());
        assert!(o.is_leader);
        assert_eq!(o.learners, BTreeSet::from([3]));
        let ev = diff_events(None, &o);
        assert_eq!(ev, vec![("leader", "leader is 1 (term 5)".to_string())]);
        assert!(diff_events(Some(&o), &o).is_empty());
    }

    #[test]
    fn leader_and_membership_changes() {
        let a = Observed::of(&leader_status());
        let mut b = a.clone();
        b.leader_id = 0;
        b.term = 6;
        b.is_leader = false;
        assert_eq!(
            diff_events(Some(&a), &b),
            vec![("leader", "no leader: election in term 6".to_string())]
        );
        let mut c = b.clone();
        c.leader_id = 2;
        assert_eq!(diff_events(Some(&b), &c)[0].1, "leader elected: 2 (term 6)");
        let mut d = a.clone();
        d.leader_id = 2;
        d.term = 6;
        d.learners.clear();
        d.voters.insert(3);
        d.voters.remove(&2);
        d.voters.insert(4);
        let msgs: Vec<String> = diff_events(Some(&a), &d).into_iter().map(|e| e.1).collect();
        assert_eq!(
            msgs,
            vec![
                "leader changed: 1 -> 2 (term 6)",
                "member 3 promoted from learner to voter",
                "member 4 added as voter",
                "member 2 removed",
            ]
        );
    }

    #[test]
    fn chunkserver_and_healing_events_only_between_leader_views() {
        let a = Observed::of(&leader_status());
        let mut b = a.clone();
        b.servers.insert(1, "suspect".into());
        b.servers.insert(2, "alive".into());
        b.servers.insert(3, "alive".into());
        b.under_replicated = 2;
        b.missing_copies = 3;
        let mut a0 = a.clone();
        a0.under_replicated = 5;
        a0.missing_copies = 9;
        let msgs: Vec<String> = diff_events(Some(&a0), &b)
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(
            msgs,
            vec![
                "chunkserver 1: alive -> suspect",
                "chunkserver 2 is back: suspect -> alive",
                "chunkserver 3 registered (alive)",
                "repair batch: 6 copies restored, 3 missing in 2 chunks",
            ]
        );
        let mut c = b.clone();
        c.under_replicated = 0;
        c.missing_copies = 0;
        c.servers.remove(&3);
        c.lost = 1;
        let msgs: Vec<String> = diff_events(Some(&b), &c).into_iter().map(|e| e.1).collect();
        assert_eq!(
            msgs,
            vec![
                "chunkserver 3 removed",
                "repair done: 3 copies restored, every chunk has its copies",
                "1 chunks have no live copy",
            ]
        );
        let msgs: Vec<String> = diff_events(Some(&c), &a0)
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert!(
            msgs[msgs.len() - 1].starts_with("healing started: 5 chunks"),
            "{msgs:?}"
        );
        // Before the full reports arrive the figures are not news.
        let mut early = a0.clone();
        early.locations_complete = false;
        let mut early2 = early.clone();
        early2.under_replicated = 0;
        early2.missing_copies = 0;
        early2.lost = 3;
        assert!(diff_events(Some(&early), &early2).is_empty());
        let healing = |p: &Observed, n: &Observed| {
            diff_events(Some(p), n)
                .into_iter()
                .filter(|e| e.0 == "healing")
                .count()
        };
        assert_eq!(healing(&early2, &c), 0);
        assert_eq!(healing(&b, &c), 2);
        // A follower's view (or a new leader's first one) says nothing about servers.
        let mut f = b.clone();
        f.is_leader = false;
        f.servers.clear();
        assert!(diff_events(Some(&a), &f).is_empty());
        assert!(diff_events(Some(&f), &b).is_empty());
    }

    #[test]
    fn event_ring_is_bounded_newest_first() {
        let log = EventLog::new(3);
        for i in 0..5 {
            log.push(Event {
                time_ms: i,
                kind: "leader",
                message: format!("e{i}"),
            });
        }
        let got: Vec<u64> = log.newest_first().iter().map(|e| e.time_ms).collect();
        assert_eq!(got, vec![4, 3, 2]);
    }

    #[test]
    fn page_is_self_contained() {
        assert!(STATUS_HTML.contains("/api/status"));
        for id in [
            "id=\"leader\"",
            "id=\"members\"",
            "id=\"chunkservers\"",
            "id=\"healing\"",
            "id=\"buckets\"",
            "id=\"events\"",
        ] {
            assert!(STATUS_HTML.contains(id), "{id}");
        }
        // No external asset: no absolute URL in a src or href.
        for bad in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!STATUS_HTML.contains(bad), "{bad}");
        }
    }
}
