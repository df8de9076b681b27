//! Fail point tests: real `anode` processes built with `--features failpoints`, each told by
//! its `FAILPOINTS` environment variable to fail or crash at one critical gap, then checked
//! for recovery. Run with `cargo test --features failpoints --test failpoints`.
//!
//! - `client::put::before_commit` (in this process): every chunk has R copies, the manifest
//!   is never committed. The object does not exist, the orphan copies are collected from
//!   every disk, a later put of the same key works.
//! - `master::node::after_persist_before_send` (leader, then a follower) and
//!   `master::store::before_persist` (a follower): a member dies between its synced raft
//!   write and the messages that depend on it, or just before that write. A new leader takes
//!   over, the crashed members restart from disk and catch up, every acknowledged write is on
//!   all 3 members.
//! - `chunkserver::put::before_rename` (error, then crash) and `chunkserver::put::after_rename`
//!   (crash): puts still succeed on other servers; a crash leaves no temp file after restart;
//!   a renamed blob survives the crash intact; every chunk ends at exactly R copies.
//! - `master::store::mid_snapshot_install` (crash): a lagging member crashes while installing
//!   the leader's snapshot, restarts, installs it and matches the leader.
//! - `master::service::put_applied_before_reply` (crash): the leader dies after applying a
//!   create-if-absent put and before answering; the client library retries it on the new
//!   leader with the same client session and gets the first application's answer (a second
//!   application would answer PreconditionFailed).
//!
//! A `panic` action aborts the process (the `anode` binary's panic hook), so each crash is a
//! real `SIGABRT` death with nothing flushed or cleaned up on the way out.
#![cfg(feature = "failpoints")]

#[path = "support/heal_cluster.rs"]
mod heal_cluster;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anode_client::{Client, ClientConfig, ClientError, ErrorCode, PutOptions};
use anode_proto::*;
use bytes::Bytes;
use futures::TryStreamExt;
use heal_cluster::*;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use support::*;

const CHUNK: usize = 1 << 20;
const SIGABRT: i32 = 6;

/// Every test holds the fail point scenario lock: tests run one at a time (the in-process
/// fail point registry is global, and each test runs a whole cluster).
fn scenario() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

fn failpoints(spec: &str) -> Vec<(String, String)> {
    vec![("FAILPOINTS".to_string(), spec.to_string())]
}

/// Wait until `p` exits by itself; returns its exit status (the process is then stopped, and
/// `start` runs it again).
async fn wait_exit(p: &mut Proc, what: &str, within: Duration) -> ExitStatus {
    let status = wait_for(what, within, || {
        let r = p.child.as_mut().map(|c| c.try_wait().unwrap());
        async move { r.flatten() }
    })
    .await;
    p.child = None;
    status
}

/// `p` died of `abort()` after the fail point `point` panicked.
async fn assert_crashed_at(p: &mut Proc, point: &str) {
    let st = wait_exit(
        p,
        &format!("{} to crash at {point}", p.name),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        st.signal(),
        Some(SIGABRT),
        "{} exited with {st:?}, not SIGABRT:\n{}",
        p.name,
        p.log_tail()
    );
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert!(
        log.contains(&format!("failpoint {point} panic")),
        "{} crashed, but not at {point}:\n{}",
        p.name,
        p.log_tail()
    );
}

// ---- data path clusters: 1 master, N chunkservers ----------------------------------------------

/// What only the fail point tests need of the shared healing cluster.
impl HealCluster {
    /// The registry entry of process `chunkserver-i`.
    async fn entry(&self, i: usize) -> Option<serde_json::Value> {
        let addr = self.addrs[&i].as_str();
        self.status().await?["chunkservers"]
            .as_array()?
            .iter()
            .find(|s| s["addr"] == addr)
            .cloned()
    }

    /// Restart chunkserver `i` (kill -9 if running) with `env`; returns once the new process
    /// has registered (a higher epoch: puts to the old epoch would be refused) and every
    /// server is alive.
    async fn restart(&mut self, i: usize, env: Vec<(String, String)>) {
        let old = self.entry(i).await.expect("registered")["epoch"]
            .as_u64()
            .unwrap();
        let p = self.cs.get_mut(&i).unwrap();
        p.kill9();
        p.env = env;
        p.start();
        wait_for(
            &format!("chunkserver-{i} registered again"),
            Duration::from_secs(30),
            || async {
                let e = self.entry(i).await?;
                (e["epoch"].as_u64()? > old && e["state"] == "alive").then_some(())
            },
        )
        .await;
        self.wait_alive(self.cs.len()).await;
    }

    /// The registry id of process `chunkserver-i`.
    async fn id_of(&self, i: usize) -> u64 {
        wait_for("chunkserver id", Duration::from_secs(10), || async {
            self.entry(i).await?["id"].as_u64()
        })
        .await
    }

    /// Whether any file named `sha` (good or not) is left under any server's `blobs/`.
    fn any_file(&self, sha: &str) -> bool {
        self.cs
            .keys()
            .any(|i| blob_path(&self.cs_dir(*i), sha).is_some())
    }
}

/// Files in a chunkserver's `tmp/` (writes in progress, or left by a crash).
fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

async fn data_client(master: &str) -> Client {
    let cfg = ClientConfig {
        chunk_size_bytes: CHUNK,
        ..support::client_config()
    };
    Client::with_config(vec![master.to_string()], cfg)
        .await
        .unwrap()
}

async fn read_all(cl: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let (_, s) = cl.get_object(bucket, key, None).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

/// A single-chunk body (above the inline limit) that the master places on server `id`.
async fn body_placed_on(cl: &Client, bucket: &str, id: u64, seed: u64) -> Vec<u8> {
    for s in seed..seed + 64 {
        let b = body(200_000, s);
        let req = AllocateChunksRequest {
            bucket: bucket.into(),
            sha256: vec![Sha256::digest(&b).to_vec()],
            exclude: Vec::new(),
        };
        let alloc = cl
            .master()
            .call(|mut c| {
                let req = req.clone();
                async move { c.allocate_chunks(req).await }
            })
            .await
            .unwrap();
        if alloc.placements[0].servers.iter().any(|s| s.id == id) {
            return b;
        }
    }
    panic!("no body placed on server {id} in 64 tries");
}

/// (a) The writer stops after storing every chunk and before committing the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_stopping_before_commit_leaves_only_garbage() {
    let _s = scenario();
    let c = HealCluster::start(3, &[], &[]).await;
    let cl = data_client(&c.master).await;
    cl.create_bucket("fpb", R as u32, "").await.unwrap();

    let b = body(3 * CHUNK + 7, 1);
    let shas: Vec<String> = b.chunks(CHUNK).map(sha_hex).collect();
    fail::cfg("client::put::before_commit", "return").unwrap();
    let err = cl
        .put_object_bytes("fpb", "obj", Bytes::from(b.clone()), PutOptions::default())
        .await
        .unwrap_err();
    fail::remove("client::put::before_commit");
    assert!(
        err.to_string().contains("client::put::before_commit"),
        "put failed elsewhere: {err}"
    );
    // The fail point sits after the chunk writes: every chunk is on R disks.
    for s in &shas {
        assert_eq!(c.good_copies(s, &[1, 2, 3]), R, "chunk {s} not stored");
    }

    // No object: not by HEAD, not by GET, not in the listing.
    match cl.head_object("fpb", "obj").await {
        Err(ClientError::Remote {
            code: ErrorCode::NoSuchKey,
            ..
        }) => {}
        other => panic!("uncommitted object visible: {other:?}"),
    }
    assert!(cl.get_object("fpb", "obj", None).await.is_err());
    let list = cl
        .list_objects(ListObjectsRequest {
            bucket: "fpb".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(list.objects.is_empty(), "listed: {:?}", list.objects);

    // The orphan copies are garbage: deleted from every disk.
    wait_for(
        "orphan copies collected from every chunkserver",
        Duration::from_secs(60),
        || async { (!shas.iter().any(|s| c.any_file(s))).then_some(()) },
    )
    .await;

    // The same key (same content, so the same chunk ids) can be written afterwards.
    cl.put_object_bytes("fpb", "obj", Bytes::from(b.clone()), PutOptions::default())
        .await
        .unwrap();
    assert!(read_all(&cl, "fpb", "obj").await == b);
    c.wait_healthy(&shas, &[1, 2, 3], Duration::from_secs(30))
        .await;
}

/// (c) A chunkserver fails just before, or crashes just before or after, the rename that
/// makes a blob durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunkserver_failing_around_rename_recovers() {
    let _s = scenario();
    let mut c = HealCluster::start(4, &[], &[]).await;
    let cl = data_client(&c.master).await;
    cl.create_bucket("fpb", R as u32, "").await.unwrap();
    let mut objs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let others = |i: usize| (1..=4).filter(|j| *j != i).collect::<Vec<_>>();

    // 1. Server 1 answers every put with an error before the rename: the client writes the
    //    copy to a replacement; server 1 keeps neither the blob nor a temp file.
    c.restart(1, failpoints("chunkserver::put::before_rename=return"))
        .await;
    let b = body_placed_on(&cl, "fpb", c.id_of(1).await, 100).await;
    let sha = sha_hex(&b);
    cl.put_object_bytes("fpb", "one", Bytes::from(b.clone()), PutOptions::default())
        .await
        .expect("put with a failing target must go to a replacement");
    assert!(read_all(&cl, "fpb", "one").await == b);
    assert!(c.cs[&1].child.is_some(), "server 1 must not crash");
    assert!(blob_path(&c.cs_dir(1), &sha).is_none());
    assert_eq!(c.good_copies(&sha, &others(1)), R);
    assert_eq!(tmp_files(&c.cs_dir(1)), Vec::<PathBuf>::new());
    objs.insert("one".into(), b);
    c.restart(1, Vec::new()).await;

    // 2. Server 2 crashes after the temp file is written and fsynced, before the rename: the
    //    put still succeeds elsewhere, and the restart removes the temp file.
    c.restart(2, failpoints("chunkserver::put::before_rename=panic"))
        .await;
    let b = body_placed_on(&cl, "fpb", c.id_of(2).await, 200).await;
    let sha = sha_hex(&b);
    cl.put_object_bytes("fpb", "two", Bytes::from(b.clone()), PutOptions::default())
        .await
        .expect("put with a crashing target must go to a replacement");
    assert_crashed_at(c.cs.get_mut(&2).unwrap(), "chunkserver::put::before_rename").await;
    let left = tmp_files(&c.cs_dir(2));
    assert!(
        !left.is_empty(),
        "the crash before rename left no temp file"
    );
    assert!(blob_path(&c.cs_dir(2), &sha).is_none());
    assert_eq!(c.good_copies(&sha, &others(2)), R);
    c.restart(2, Vec::new()).await;
    assert_eq!(
        tmp_files(&c.cs_dir(2)),
        Vec::<PathBuf>::new(),
        "temp files survived the restart"
    );
    assert!(read_all(&cl, "fpb", "two").await == b);
    objs.insert("two".into(), b);

    // 3. Server 3 crashes right after the rename (and directory fsync), before answering: the
    //    client counts it as failed and uses a replacement; the blob on server 3 is intact
    //    and comes back with it as a surplus copy, which is trimmed.
    c.restart(3, failpoints("chunkserver::put::after_rename=panic"))
        .await;
    let b = body_placed_on(&cl, "fpb", c.id_of(3).await, 300).await;
    let sha = sha_hex(&b);
    cl.put_object_bytes(
        "fpb",
        "three",
        Bytes::from(b.clone()),
        PutOptions::default(),
    )
    .await
    .expect("put with a crashing target must go to a replacement");
    assert_crashed_at(c.cs.get_mut(&3).unwrap(), "chunkserver::put::after_rename").await;
    assert_eq!(
        c.good_copies(&sha, &[3]),
        1,
        "the renamed blob is not intact after the crash"
    );
    assert_eq!(c.good_copies(&sha, &others(3)), R);
    c.restart(3, Vec::new()).await;
    assert_eq!(tmp_files(&c.cs_dir(3)), Vec::<PathBuf>::new());
    objs.insert("three".into(), b);

    // Every chunk at exactly R good copies, every object reads back.
    let shas: Vec<String> = objs.values().map(|b| sha_hex(b)).collect();
    c.wait_healthy(&shas, &[1, 2, 3, 4], Duration::from_secs(60))
        .await;
    for (k, b) in &objs {
        assert!(read_all(&cl, "fpb", k).await == *b, "{k} differs");
    }
    for i in 1..=4 {
        assert_eq!(tmp_files(&c.cs_dir(i)), Vec::<PathBuf>::new(), "server {i}");
    }
}

// ---- master groups: 3 members, inline objects ---------------------------------------------------

struct Masters {
    _dir: Option<tempfile::TempDir>,
    procs: BTreeMap<u64, Proc>,
    addrs: BTreeMap<u64, String>,
    /// Set once [`MARKS_BUCKET`] exists.
    marks_bucket: tokio::sync::OnceCell<()>,
}

impl Masters {
    /// Start members 1..=3; `env[id]` is given to member `id`.
    fn start(mut env: BTreeMap<u64, Vec<(String, String)>>) -> Masters {
        let (dir, root) = test_dir();
        let ports: BTreeMap<u64, (u16, u16)> =
            (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
        let addrs: BTreeMap<u64, String> = ports
            .iter()
            .map(|(i, (p, _))| (*i, format!("127.0.0.1:{p}")))
            .collect();
        let peers = addrs
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        // master_args compacts the log past 50 entries, so a lagging member needs a snapshot.
        let procs = ports
            .iter()
            .map(|(i, (p, a))| {
                let args = master_args(*i, &root, *p, *a, &peers, false);
                let env = env.remove(i).unwrap_or_default();
                (
                    *i,
                    Proc::spawn_env(&root, &format!("master-{i}"), args, env),
                )
            })
            .collect();
        Masters {
            _dir: dir,
            procs,
            addrs,
            marks_bucket: tokio::sync::OnceCell::new(),
        }
    }

    fn all(&self) -> Vec<String> {
        self.addrs.values().cloned().collect()
    }

    fn without(&self, id: u64) -> Vec<String> {
        self.addrs
            .iter()
            .filter(|(i, _)| **i != id)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The member that says it leads (and its status), among those that answer.
    async fn leader(&self) -> Option<StatusResponse> {
        for addr in self.addrs.values() {
            if let Some(st) = status_of(addr).await {
                if st.leader_id != 0 && st.leader_id == st.id {
                    return Some(st);
                }
            }
        }
        None
    }

    async fn wait_leader(&self, what: &str) -> StatusResponse {
        wait_for(what, Duration::from_secs(30), || self.leader()).await
    }

    /// Wait until member `id` has applied every write acknowledged before this call, and
    /// return its applied index.
    ///
    /// A marker write goes through the leader first: it is proposed after every earlier
    /// acknowledgement, so it sits at a higher log index than all of them, and a member
    /// applies in log order. Once the member's own state (read locally, `allow_stale`) holds
    /// the marker, it holds everything acknowledged before. Comparing `Status` figures
    /// instead (the member's applied index against the leader's commit index) is racy: a
    /// member publishes its status after the whole raft ready is handled, one or more
    /// fsyncs after it has applied the entries and answered their writers, so right after
    /// the last acknowledgement the leader's status can still show the commit index from
    /// before it, and a member that has applied up to that stale index but not the last
    /// writes passes the check.
    async fn wait_caught_up(&self, id: u64) -> u64 {
        static MARKS: AtomicU64 = AtomicU64::new(0);
        let all = self.all();
        self.marks_bucket
            .get_or_init(|| create_bucket(&all, MARKS_BUCKET))
            .await;
        let key = format!("mark-{:06}", MARKS.fetch_add(1, Ordering::SeqCst));
        // Retried until acknowledged: the same put again is harmless.
        wait_for(
            &format!("marker write {key} acknowledged"),
            Duration::from_secs(60),
            || async { put(&all, MARKS_BUCKET, &key).await.ok() },
        )
        .await;
        let addr = self.addrs[&id].clone();
        wait_for(
            &format!("member {id} applied marker write {key}"),
            Duration::from_secs(60),
            || async {
                let mut c = master_client(&addr).await?;
                c.get_object(GetObjectRequest {
                    bucket: MARKS_BUCKET.into(),
                    key: key.clone(),
                    allow_stale: true,
                    ..Default::default()
                })
                .await
                .ok()?;
                Some(status_of(&addr).await?.applied_index)
            },
        )
        .await
    }
}

/// The bucket of [`Masters::wait_caught_up`]'s marker writes (kept out of the buckets the
/// tests compare).
const MARKS_BUCKET: &str = "caught-up-marks";

async fn create_bucket(addrs: &[String], name: &str) {
    let name = name.to_string();
    anode_master::ctl::call_leader(&support::admin_masters(addrs), |mut c| {
        let name = name.clone();
        async move {
            c.create_bucket(CreateBucketRequest {
                name,
                replication: 0,
                owner_access_key: String::new(),
                owner_user: String::new(),
                access: Vec::new(),
                session: None,
                ..Default::default()
            })
            .await
        }
    })
    .await
    .expect("create bucket");
}

/// Put an inline object whose bytes are its key, through whichever member leads; Ok only
/// when committed.
async fn put(addrs: &[String], bucket: &str, key: &str) -> Result<(), String> {
    let req = PutObjectRequest {
        parquet: None,
        parquet_copy: None,
        bucket: bucket.into(),
        key: key.into(),
        manifest: Some(Manifest {
            version: MANIFEST_VERSION,
            size: key.len() as u64,
            etag: format!("{:x}", key.len()),
            inline_data: key.as_bytes().to_vec(),
            ..Default::default()
        }),
        if_match_etag: None,
        session: None,
        source: String::new(),
    };
    let masters = support::admin_masters(addrs);
    let r = anode_master::ctl::call_leader(&masters, |mut c| {
        let req = req.clone();
        async move { c.put_object(req).await }
    });
    match tokio::time::timeout(Duration::from_secs(5), r).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".into()),
    }
}

/// Every key of `bucket` as member `addr` has it applied locally (`allow_stale`: no leader
/// involved), with the check that each object's inline bytes are its key.
async fn local_keys(addr: &str, bucket: &str) -> BTreeSet<String> {
    let mut c = master_client(addr).await.expect("member reachable");
    let mut keys = BTreeSet::new();
    let mut start_after = String::new();
    loop {
        let page = c
            .list_objects(ListObjectsRequest {
                bucket: bucket.into(),
                start_after: start_after.clone(),
                max_keys: 1000,
                allow_stale: true,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("list on {addr}: {e}"))
            .into_inner();
        let Some(last) = page.objects.last() else {
            break;
        };
        start_after = last.key.clone();
        keys.extend(page.objects.into_iter().map(|o| o.key));
    }
    // Spot-check contents through the member's local state.
    for k in keys.iter().step_by(97) {
        let m = c
            .get_object(GetObjectRequest {
                bucket: bucket.into(),
                key: k.clone(),
                allow_stale: true,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("get {k} on {addr}: {e}"))
            .into_inner()
            .manifest
            .unwrap_or_default();
        assert_eq!(m.inline_data, k.as_bytes(), "{k} on {addr}");
    }
    keys
}

/// (b) The leader, then a follower, dies after its raft write is synced and before the
/// messages that depend on it are sent; then another follower dies just before that write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_crashing_around_raft_persist_lose_no_ack() {
    let _s = scenario();
    const POINT: &str = "master::node::after_persist_before_send";
    // Member 1 passes the point 300 times (a few while following, most while leading under
    // the write load below), then panics.
    let mut m = Masters::start(BTreeMap::from([(
        1,
        failpoints(&format!("{POINT}=300*off->panic")),
    )]));
    let all = m.all();
    let first = m.wait_leader("first leader").await;
    if first.id != 1 {
        anode_master::ctl::call_leader(&support::admin_masters(&all), |mut c| async move {
            c.transfer_leader(TransferLeaderRequest { id: 1 }).await
        })
        .await
        .expect("transfer leadership to member 1");
    }
    wait_for("member 1 leads", Duration::from_secs(20), || async {
        m.leader().await.filter(|l| l.id == 1).map(|_| ())
    })
    .await;
    create_bucket(&all, "bkt").await;

    // What member 1 said about itself last, before it died.
    let last_seen: Arc<Mutex<Option<StatusResponse>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (last_seen, stop, a1) = (last_seen.clone(), stop.clone(), m.addrs[&1].clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(st) = status_of(&a1).await {
                    *last_seen.lock().unwrap() = Some(st);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Four writers recording every acknowledged key.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, all) = (acked.clone(), stop.clone(), all.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("w{w}-{i:06}");
                    if put(&all, "bkt", &key).await.is_ok() {
                        acked.lock().unwrap().push(key);
                    }
                    i += 1;
                }
            })
        })
        .collect();

    assert_crashed_at(m.procs.get_mut(&1).unwrap(), POINT).await;
    let at_crash = acked.lock().unwrap().len();
    let seen = last_seen
        .lock()
        .unwrap()
        .clone()
        .expect("member 1 answered");
    assert_eq!(
        seen.leader_id, 1,
        "member 1 was not leading when it crashed"
    );
    assert!(at_crash > 0, "no write acknowledged before the crash");

    // A new leader, and writes go on.
    let l2 = wait_for("a new leader", Duration::from_secs(20), || async {
        m.leader().await.filter(|l| l.id != 1 && l.term > seen.term)
    })
    .await;
    wait_for("writes after the crash", Duration::from_secs(20), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= at_crash + 50).then_some(()) }
    })
    .await;

    // Member 1 restarts from its disk (no fail points) and catches up under load.
    let p1 = m.procs.get_mut(&1).unwrap();
    p1.env.clear();
    p1.start();
    let a1 = m.addrs[&1].clone();
    wait_for("member 1 answers again", Duration::from_secs(20), || {
        status_of(&a1)
    })
    .await;
    let more = |what: String| {
        let acked = acked.clone();
        async move {
            let n = acked.lock().unwrap().len();
            wait_for(&what, Duration::from_secs(20), || {
                let m = acked.lock().unwrap().len();
                async move { (m >= n + 50).then_some(()) }
            })
            .await
        }
    };
    more("writes with member 1 back".into()).await;

    // Followers: one dies after syncing entries it has not acknowledged (the same point),
    // another just before syncing them (`master::store::before_persist`). The leader and its
    // term stay (so each crashed while following), writes go on, and each restarts from its
    // disk and catches up like member 1.
    for (n, point) in [POINT, "master::store::before_persist"]
        .into_iter()
        .enumerate()
    {
        let l = m.wait_leader("current leader").await;
        let followers: Vec<u64> = (1..=3).filter(|i| *i != l.id).collect();
        let f = followers[n % followers.len()];
        let pf = m.procs.get_mut(&f).unwrap();
        pf.kill9();
        pf.env = failpoints(&format!("{point}=20*off->panic"));
        pf.start();
        assert_crashed_at(pf, point).await;
        let l_after = m.wait_leader("leader after the follower crash").await;
        assert_eq!(
            (l_after.id, l_after.term),
            (l.id, l.term),
            "an election happened: member {f} may not have crashed as a follower"
        );
        more(format!("writes with member {f} down")).await;
        let pf = m.procs.get_mut(&f).unwrap();
        pf.env.clear();
        pf.start();
        more("writes with every member back".into()).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    watcher.await.unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged ({at_crash} before the crash); new leader {} in term {}",
        acked.len(),
        l2.id,
        l2.term
    );

    // Every member holds every acknowledged write, and they all hold the same keys.
    let mut lists = BTreeMap::new();
    for id in 1..=3 {
        let applied = m.wait_caught_up(id).await;
        let keys = local_keys(&m.addrs[&id], "bkt").await;
        // Each missing write with its place in the order of acknowledgements.
        let missing: Vec<(usize, &String)> = acked
            .iter()
            .enumerate()
            .filter(|(_, k)| !keys.contains(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "member {id} (applied {applied}) lost {} of {} acknowledged writes, e.g. (n-th \
             acknowledged, key) {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
        lists.insert(id, keys);
    }
    assert!(lists[&1] == lists[&2] && lists[&2] == lists[&3]);
}

/// (d) A lagging member crashes in the middle of installing the leader's snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_during_snapshot_install_recovers() {
    let _s = scenario();
    const POINT: &str = "master::store::mid_snapshot_install";
    let mut m = Masters::start(BTreeMap::new());
    let all = m.all();
    let leader = m.wait_leader("first leader").await;
    let f = (1..=3).find(|i| *i != leader.id).unwrap();
    create_bucket(&all, "bkt").await;
    for i in 0..20 {
        put(&all, "bkt", &format!("before-{i:03}")).await.unwrap();
    }
    m.wait_caught_up(f).await;

    // Member f stops; the others move 200 entries on, far past the compaction threshold (50),
    // so f can only catch up from a snapshot.
    m.procs.get_mut(&f).unwrap().kill9();
    let rest = m.without(f);
    for i in 0..200 {
        put(&rest, "bkt", &format!("while-down-{i:03}"))
            .await
            .unwrap();
    }

    // It comes back and dies while installing the snapshot ...
    let pf = m.procs.get_mut(&f).unwrap();
    pf.env = failpoints(&format!("{POINT}=panic"));
    pf.start();
    assert_crashed_at(pf, POINT).await;
    let log = std::fs::read_to_string(&pf.log).unwrap();
    assert!(!log.contains("installed raft snapshot"));

    // ... and once more without the fail point: it installs the snapshot and catches up.
    pf.env.clear();
    pf.start();
    let applied = m.wait_caught_up(f).await;
    // The log after the snapshot works too.
    for i in 0..10 {
        put(&all, "bkt", &format!("after-{i:03}")).await.unwrap();
    }
    m.wait_caught_up(f).await;

    let want: BTreeSet<String> = (0..20)
        .map(|i| format!("before-{i:03}"))
        .chain((0..200).map(|i| format!("while-down-{i:03}")))
        .chain((0..10).map(|i| format!("after-{i:03}")))
        .collect();
    let l = m.wait_leader("leader").await;
    for id in [l.id, f] {
        let got = local_keys(&m.addrs[&id], "bkt").await;
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "member {id}: {} keys missing (e.g. {:?}), {} extra (e.g. {:?})",
            missing.len(),
            &missing[..missing.len().min(3)],
            extra.len(),
            &extra[..extra.len().min(3)]
        );
    }
    let log = std::fs::read_to_string(&m.procs[&f].log).unwrap();
    assert!(
        log.contains("installed raft snapshot"),
        "member {f} caught up without a snapshot"
    );

    // `anode ctl status --json` agrees: all three members applied the same index, past the
    // writes made after the snapshot.
    let masters = all.join(",");
    let admin_certs = certs_dir(anode_tls::Role::Admin, "1");
    wait_for(
        "equal applied indexes in `anode ctl status --json`",
        Duration::from_secs(20),
        || async {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_anode"))
                .args(["ctl", "--masters", &masters, "status", "--json"])
                .arg("--certs-dir")
                .arg(&admin_certs)
                .output()
                .await
                .ok()?;
            let st: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let applied_all: Vec<u64> = st["members"]
                .as_array()?
                .iter()
                .filter_map(|x| x["applied_index"].as_u64())
                .collect();
            eprintln!("applied indexes {applied_all:?}");
            (applied_all.len() == 3
                && applied_all
                    .iter()
                    .all(|a| *a == applied_all[0] && *a > applied))
            .then_some(())
        },
    )
    .await;
}

/// (e) Client sessions across a real leader crash: the leader applies a put and dies before
/// answering. The put is create-if-absent, so if the client library's retry applied again it
/// would fail with PreconditionFailed although the first copy created the object; with the
/// client session the new leader answers the retry with the first copy's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_applied_by_a_dying_leader_is_retried_and_applied_once() {
    let _s = scenario();
    const POINT: &str = "master::service::put_applied_before_reply";
    let mut m = Masters::start(BTreeMap::from([(1, failpoints(&format!("{POINT}=panic")))]));
    let all = m.all();
    let first = m.wait_leader("first leader").await;
    if first.id != 1 {
        anode_master::ctl::call_leader(&support::admin_masters(&all), |mut c| async move {
            c.transfer_leader(TransferLeaderRequest { id: 1 }).await
        })
        .await
        .expect("transfer leadership to member 1");
    }
    wait_for("member 1 leads", Duration::from_secs(20), || async {
        m.leader().await.filter(|l| l.id == 1).map(|_| ())
    })
    .await;
    create_bucket(&all, "bkt").await;
    let cl = Client::connect(all.clone(), support::tls(anode_tls::Role::Client, "1"))
        .await
        .expect("client");
    let create_if_absent = PutOptions {
        if_match_etag: Some(String::new()),
        ..Default::default()
    };
    let put = cl.put_object_bytes("bkt", "once", Bytes::from_static(b"once"), create_if_absent);
    let answer = tokio::time::timeout(Duration::from_secs(60), put)
        .await
        .expect("the put returns within 60 s");
    assert_crashed_at(m.procs.get_mut(&1).unwrap(), POINT).await;
    let answer = answer.expect("the retry is answered with the first application's result");
    assert_eq!(answer.inline_data, b"once");
    let stored = cl
        .head_object("bkt", "once")
        .await
        .expect("the object exists");
    assert_eq!(
        stored.object_version, answer.object_version,
        "applied once: the answer names the stored version"
    );
    // The crashed member comes back and agrees.
    m.procs.get_mut(&1).unwrap().start();
    let a1 = m.addrs[&1].clone();
    wait_for("member 1 answers", Duration::from_secs(30), || async {
        status_of(&a1).await.map(|_| ())
    })
    .await;
    wait_for(
        "member 1 has the object",
        Duration::from_secs(30),
        || async {
            local_keys(&m.addrs[&1], "bkt")
                .await
                .contains("once")
                .then_some(())
        },
    )
    .await;
}
