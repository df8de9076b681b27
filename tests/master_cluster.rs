//! Multi-process test of the master group with real `anode master` processes:
//! continuous writes, `kill -9` of the leader, failover, restart of all members, then
//! membership change (add a 4th member, remove an old one) and the data on the new member.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anode_proto::*;
use support::*;

fn manifest(body: &[u8]) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        size: body.len() as u64,
        etag: format!("{:x}", body.len()),
        inline_data: body.to_vec(),
        ..Default::default()
    }
}

/// Put through whichever member leads, following redirects; Ok only when committed.
async fn put(addrs: &[String], bucket: &str, key: &str, body: &[u8]) -> Result<(), String> {
    let req = PutObjectRequest {
        parquet: None,
        parquet_copy: None,
        bucket: bucket.into(),
        key: key.into(),
        manifest: Some(manifest(body)),
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

async fn get(addrs: &[String], bucket: &str, key: &str, stale: bool) -> Result<Manifest, String> {
    let req = GetObjectRequest {
        bucket: bucket.into(),
        key: key.into(),
        allow_stale: stale,
        ..Default::default()
    };
    anode_master::ctl::call_leader(&support::admin_masters(addrs), |mut c| {
        let req = req.clone();
        async move { c.get_object(req).await }
    })
    .await
    .map(|r| r.manifest.unwrap_or_default())
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_group_failover_restart_and_membership() {
    let dir = tempfile::tempdir().unwrap();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=4).map(|i| (i, (free_port(), free_port()))).collect();
    let addr = |i: u64| format!("127.0.0.1:{}", ports[&i].0);
    let peers = (1..=3)
        .map(|i| format!("{i}={}", addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: BTreeMap<u64, Proc> = (1..=3)
        .map(|i| {
            (
                i,
                Proc::spawn(
                    dir.path(),
                    &format!("master-{i}"),
                    master_args(i, dir.path(), ports[&i].0, ports[&i].1, &peers, false),
                ),
            )
        })
        .collect();
    let mut addrs: BTreeMap<u64, String> = (1..=3).map(|i| (i, addr(i))).collect();
    let all: Vec<String> = addrs.values().cloned().collect();

    let (l1, _) = wait_for("first leader", Duration::from_secs(20), || {
        leader_of(&addrs)
    })
    .await;
    anode_master::ctl::call_leader(&support::admin_masters(&all), |mut c| async move {
        c.create_bucket(CreateBucketRequest {
            name: "bkt".into(),
            replication: 0,
            owner_access_key: String::new(),
            owner_user: String::new(),
            access: Vec::new(),
            session: None,
            ..Default::default()
        })
        .await
    })
    .await
    .expect("create bucket");

    // A writer that records every acknowledged key.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop, all) = (acked.clone(), stop.clone(), all.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("k{i:06}");
                if put(&all, "bkt", &key, key.as_bytes()).await.is_ok() {
                    acked.lock().unwrap().push(key);
                }
                i += 1;
            }
        })
    };
    wait_for("some acknowledged writes", Duration::from_secs(20), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 50).then_some(()) }
    })
    .await;

    // kill -9 the leader and time how long until a write commits again.
    let before = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    procs.get_mut(&l1).unwrap().kill9();
    wait_for("a write after failover", Duration::from_secs(20), || {
        let n = acked.lock().unwrap().len();
        async move { (n > before + 1).then_some(()) }
    })
    .await;
    let failover = killed_at.elapsed();
    let (l2, _) = wait_for("new leader", Duration::from_secs(10), || leader_of(&addrs)).await;
    assert_ne!(l1, l2);
    println!("FAILOVER: first write committed {failover:?} after kill -9 of leader {l1}; new leader {l2}");
    assert!(
        failover < Duration::from_secs(10),
        "failover took {failover:?}"
    );

    wait_for(
        "more writes on the new leader",
        Duration::from_secs(20),
        || {
            let n = acked.lock().unwrap().len();
            async move { (n > before + 50).then_some(()) }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    println!("acknowledged writes: {}", acked.len());
    for k in &acked {
        let m = get(&all, "bkt", k, false)
            .await
            .unwrap_or_else(|e| panic!("acked {k} missing: {e}"));
        assert_eq!(m.inline_data, k.as_bytes());
    }

    // Restart the killed member, then kill -9 all three and restart: state intact.
    procs.get_mut(&l1).unwrap().start();
    for p in procs.values_mut() {
        p.kill9();
    }
    for p in procs.values_mut() {
        p.start();
    }
    wait_for("leader after full restart", Duration::from_secs(30), || {
        leader_of(&addrs)
    })
    .await;
    for k in &acked {
        let m = get(&all, "bkt", k, false)
            .await
            .unwrap_or_else(|e| panic!("after restart {k} missing: {e}"));
        assert_eq!(m.inline_data, k.as_bytes());
    }
    let list = anode_master::ctl::call_leader(&support::admin_masters(&all), |mut c| async move {
        c.list_objects(ListObjectsRequest {
            bucket: "bkt".into(),
            max_keys: 1000,
            ..Default::default()
        })
        .await
    })
    .await
    .unwrap();
    assert!(list.objects.len() >= acked.len().min(1000));

    // Add member 4 (learner -> voter), then remove member 1 (maybe the leader).
    procs.insert(
        4,
        Proc::spawn(
            dir.path(),
            "master-4",
            master_args(4, dir.path(), ports[&4].0, ports[&4].1, "", true),
        ),
    );
    addrs.insert(4, addr(4));
    let all4: Vec<String> = addrs.values().cloned().collect();
    let a4 = addr(4);
    anode_master::ctl::call_leader(&support::admin_masters(&all4), |mut c| {
        let addr = a4.clone();
        async move { c.add_member(AddMemberRequest { id: 4, addr }).await }
    })
    .await
    .expect("add member 4");
    anode_master::ctl::call_leader(&support::admin_masters(&all4), |mut c| async move {
        c.remove_member(RemoveMemberRequest { id: 1 }).await
    })
    .await
    .expect("remove member 1");
    let st = wait_for(
        "4 voters -> 3 voters without 1",
        Duration::from_secs(20),
        || {
            let all4 = all4.clone();
            async move {
                let (_, la) = leader_of(&addrs_without(&all4, 1)).await?;
                let st = status_of(&la).await?;
                let ids: Vec<u64> = st.members.iter().map(|m| m.id).collect();
                (ids == vec![2, 3, 4]).then_some(st)
            }
        },
    )
    .await;
    procs.get_mut(&1).unwrap().kill9();
    // The new member holds the data: read locally from member 4 without the leader.
    let target = st.commit_index;
    wait_for("member 4 applied", Duration::from_secs(20), || {
        let a4 = addr(4);
        async move { (status_of(&a4).await?.applied_index >= target).then_some(()) }
    })
    .await;
    let only4 = vec![addr(4)];
    for k in &acked {
        let m = get(&only4, "bkt", k, true)
            .await
            .unwrap_or_else(|e| panic!("member 4 lacks {k}: {e}"));
        assert_eq!(m.inline_data, k.as_bytes());
    }
    // With a 50-entry compaction threshold the leader no longer has the early log, so the
    // new member must have caught up from a snapshot.
    let log4 = std::fs::read_to_string(&procs[&4].log).unwrap();
    assert!(
        log4.contains("installed raft snapshot"),
        "member 4 did not install a snapshot"
    );
    // And the group of 2,3,4 still commits writes.
    let rest: Vec<String> = vec![addr(2), addr(3), addr(4)];
    put(&rest, "bkt", "after-membership", b"x")
        .await
        .expect("write after membership change");
    for p in procs.values() {
        if p.pid().is_some() {
            println!("--- {} log tail ---\n{}", p.name, p.log_tail());
            break;
        }
    }
}

fn addrs_without(all: &[String], _id: u64) -> BTreeMap<u64, String> {
    all.iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, a.clone()))
        .collect()
}

/// A raft message from `from` to `to` in `term`.
fn raft_msg(
    t: raft::eraftpb::MessageType,
    from: u64,
    to: u64,
    term: u64,
) -> raft::eraftpb::Message {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Forged raft messages an attacker (or a buggy peer) could send to member `to`, claiming to
/// come from member `from`: each reached a raft-rs panic (the process aborts) or an election.
fn forged_messages(from: u64, to: u64, term: u64) -> Vec<raft::eraftpb::Message> {
    use raft::eraftpb::{Entry, MessageType::*, Snapshot};
    let mut heartbeat = raft_msg(MsgHeartbeat, from, to, term + 100);
    heartbeat.commit = u64::MAX;
    let propose = raft_msg(MsgPropose, from, to, 0);
    let read = raft_msg(MsgReadIndex, from, to, 0);
    let hup = raft_msg(MsgHup, from, to, 0);
    let transfer = raft_msg(MsgTransferLeader, from, to, term);
    let mut append = raft_msg(MsgAppend, from, to, term);
    append.index = 2;
    append.log_term = 1;
    append.set_entries(
        vec![Entry {
            index: 1,
            term,
            ..Default::default()
        }]
        .into(),
    );
    let mut snapshot = raft_msg(MsgSnapshot, from, to, term + 100);
    let mut s = Snapshot::default();
    s.mut_metadata().index = u64::MAX;
    s.mut_metadata().term = term + 100;
    s.mut_metadata().mut_conf_state().voters = vec![from, to];
    s.mut_metadata().mut_conf_state().learners = vec![to];
    snapshot.set_snapshot(s);
    vec![heartbeat, propose, read, hup, transfer, append, snapshot]
}

/// One counter of the master's Prometheus text on its admin port.
async fn metric(admin: &str, line_start: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find(|l| l.starts_with(line_start))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Issue 12: forged raft messages sent to every member of a real 3-master group (a heartbeat
/// from a higher term committing u64::MAX, which used to abort the process, an empty proposal,
/// a read index without entries, an append conflicting with committed entries, a snapshot
/// with an impossible configuration, MsgHup, MsgTransferLeader) are refused and counted; no
/// member stops, the term does not move and writes keep committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_raft_messages_are_refused_and_the_group_keeps_committing() {
    use protobuf::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
    let addr = |i: u64| format!("127.0.0.1:{}", ports[&i].0);
    let peers = (1..=3)
        .map(|i| format!("{i}={}", addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: BTreeMap<u64, Proc> = (1..=3)
        .map(|i| {
            let args = master_args(i, dir.path(), ports[&i].0, ports[&i].1, &peers, false);
            (i, Proc::spawn(dir.path(), &format!("master-{i}"), args))
        })
        .collect();
    let addrs: BTreeMap<u64, String> = (1..=3).map(|i| (i, addr(i))).collect();
    let all: Vec<String> = addrs.values().cloned().collect();
    let (leader_id, _) = wait_for("a leader", Duration::from_secs(20), || leader_of(&addrs)).await;
    anode_master::ctl::call_leader(&support::admin_masters(&all), |mut c| async move {
        c.create_bucket(CreateBucketRequest {
            name: "bkt".into(),
            replication: 0,
            owner_access_key: String::new(),
            owner_user: String::new(),
            access: Vec::new(),
            session: None,
            ..Default::default()
        })
        .await
    })
    .await
    .expect("create bucket");
    put(&all, "bkt", "before", b"before")
        .await
        .expect("put before");
    let term = status_of(&addr(leader_id)).await.expect("status").term;

    for to in 1..=3u64 {
        let from = if to == leader_id {
            to % 3 + 1
        } else {
            leader_id
        };
        let batch = RaftBatch {
            from,
            from_addr: addr(from),
            to,
            messages: forged_messages(from, to, term)
                .iter()
                .map(|m| m.write_to_bytes().unwrap())
                .collect(),
        };
        // Sent with the real certificate of member `from` (so the sender check of issue 12's
        // mutual TLS passes): the content checks are what is under test here.
        let ep = support::tls(anode_tls::Role::Master, &from.to_string())
            .endpoint(&addr(to), anode_tls::Role::Master)
            .unwrap()
            .timeout(Duration::from_secs(3));
        let mut c = raft_transport_client::RaftTransportClient::new(ep.connect().await.unwrap());
        c.send(batch).await.expect("the transport takes the batch");
    }

    for k in 0..20 {
        let key = format!("after-{k}");
        put(&all, "bkt", &key, key.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("put after the forgery: {e}"));
    }
    // Every member refused (and counted) the forged heartbeat, and every one still serves.
    for (i, p) in procs.iter_mut() {
        let exited = p.child.as_mut().unwrap().try_wait().unwrap();
        assert!(exited.is_none(), "master-{i} stopped:\n{}", p.log_tail());
        let admin = format!("127.0.0.1:{}", ports[i].1);
        let refused = wait_for("the refusal counted", Duration::from_secs(10), || {
            let admin = admin.clone();
            async move {
                metric(
                    &admin,
                    "anode_master_raft_messages_refused_total{reason=\"commit_beyond_log\"}",
                )
                .await
                .filter(|n| *n >= 1.0)
            }
        })
        .await;
        assert_eq!(refused, 1.0, "master-{i}");
    }
    for (i, a) in &addrs {
        let st = status_of(a)
            .await
            .unwrap_or_else(|| panic!("master-{i} answers"));
        assert_eq!(st.term, term, "master-{i}: the forged term was not taken");
        assert_eq!(st.leader_id, leader_id, "master-{i}: no election happened");
        let p = procs.get_mut(i).unwrap();
        assert!(p.child.as_mut().unwrap().try_wait().unwrap().is_none());
    }
    requests_over_limits_are_refused_at_the_edge(&addr(leader_id)).await;
    access_configuration_through_the_leader(&addr(leader_id)).await;
}

/// Issue 19: a gateway sets a bucket's access record (compare-and-set on the bytes it read)
/// and an object's ACL through the real service and raft; GetBucket / GetObject return them,
/// the object keeps its version; bad records are INVALID_ARGUMENT; the client role is refused.
async fn access_configuration_through_the_leader(leader: &str) {
    // The stored JSON forms (`anode_meta::authz::record`), written out: this crate does not
    // link anode-meta, and the master must take them as any writer sends them.
    let (alice, bob) = ("a".repeat(64), "b".repeat(64));
    let record = format!(
        r#"{{"version":1,"policy":null,"acl":{{"owner":"{alice}","grants":[{{"grantee":{{"type":"AllUsers"}},"permission":"READ"}}]}},"object_ownership":"ObjectWriter","public_access_block":{{"block_public_acls":false,"ignore_public_acls":false,"block_public_policy":false,"restrict_public_buckets":false}}}}"#
    )
    .into_bytes();
    let acl = format!(
        r#"{{"version":1,"owner":"{bob}","grants":[{{"grantee":{{"type":"CanonicalUser","id":"{alice}"}},"permission":"READ"}}]}}"#
    )
    .into_bytes();
    let connect = |role: anode_tls::Role| {
        let ep = support::tls(role, "1")
            .endpoint(leader, anode_tls::Role::Master)
            .unwrap()
            .timeout(Duration::from_secs(5));
        async move { anode_proto::master_client::MasterClient::new(ep.connect().await.unwrap()) }
    };
    let mut gw = connect(anode_tls::Role::Gateway).await;
    let bucket = |c: &mut anode_proto::master_client::MasterClient<_>| {
        let mut c = c.clone();
        async move {
            c.get_bucket(GetBucketRequest { name: "bkt".into() })
                .await
                .unwrap()
                .into_inner()
                .config
                .unwrap()
        }
    };
    let before = bucket(&mut gw).await;
    assert!(before.access.is_empty());
    let set = |access: Vec<u8>, expect: Option<Vec<u8>>| SetBucketAccessRequest {
        name: "bkt".into(),
        access,
        expect_access: expect,
        session: None,
    };
    gw.set_bucket_access(set(record.clone(), Some(Vec::new())))
        .await
        .expect("set the record");
    assert_eq!(bucket(&mut gw).await.access, record.clone());
    let stale = gw
        .set_bucket_access(set(Vec::new(), Some(Vec::new())))
        .await
        .expect_err("a stale compare-and-set");
    let d = ErrorDetail::from_status(&stale).expect("an error detail");
    assert_eq!(d.code(), ErrorCode::PreconditionFailed, "{stale:?}");
    assert_invalid(
        gw.set_bucket_access(set(b"{".to_vec(), None)).await,
        "a record that does not decode",
    );
    assert_eq!(bucket(&mut gw).await.access, record.clone());

    let get = GetObjectRequest {
        bucket: "bkt".into(),
        key: "before".into(),
        allow_stale: false,
        ..Default::default()
    };
    let m = gw
        .get_object(get.clone())
        .await
        .unwrap()
        .into_inner()
        .manifest
        .unwrap();
    let set_acl = SetObjectAclRequest {
        bucket: "bkt".into(),
        key: "before".into(),
        acl: acl.clone(),
        expect_object_version: Some(m.object_version),
        session: None,
    };
    gw.set_object_acl(set_acl.clone())
        .await
        .expect("set the object ACL");
    let after = gw
        .get_object(get)
        .await
        .unwrap()
        .into_inner()
        .manifest
        .unwrap();
    assert_eq!(after.acl, acl);
    assert_eq!(
        (after.object_version, after.mtime_ms),
        (m.object_version, m.mtime_ms)
    );
    let mut client = connect(anode_tls::Role::Client).await;
    let denied = client
        .set_object_acl(set_acl)
        .await
        .expect_err("client role");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>, what: &str) {
    let st = r.expect_err(what);
    assert_eq!(st.code(), tonic::Code::InvalidArgument, "{what}: {st:?}");
    let d = ErrorDetail::from_status(&st).expect("an error detail");
    assert_eq!(d.code(), ErrorCode::InvalidArgument, "{what}");
}

/// Issue 12: the leader refuses, with INVALID_ARGUMENT and before proposing or planning
/// anything, requests over their limits (batch sizes, command bytes) and manifests or parts
/// that cannot describe a body; a good request still succeeds afterwards.
async fn requests_over_limits_are_refused_at_the_edge(leader: &str) {
    // As a client library (`client-1`): the data-path calls, ReportBadChunk included.
    let ep = support::tls(anode_tls::Role::Client, "1")
        .endpoint(leader, anode_tls::Role::Master)
        .unwrap()
        .timeout(Duration::from_secs(3));
    let mut c = anode_proto::master_client::MasterClient::new(ep.connect().await.unwrap())
        .max_encoding_message_size(64 << 20);
    let id = |i: u32| -> Vec<u8> {
        let mut v = vec![0u8; 32];
        v[..4].copy_from_slice(&i.to_be_bytes());
        v
    };
    let alloc = |n: u32, len: usize| AllocateChunksRequest {
        bucket: "bkt".into(),
        sha256: (0..n).map(|i| id(i)[..len].to_vec()).collect(),
        exclude: vec![],
    };
    assert_invalid(c.allocate_chunks(alloc(1025, 32)).await, "1025 allocations");
    assert_invalid(
        c.allocate_chunks(alloc(1, 31)).await,
        "a 31-byte id to allocate",
    );
    let locate = LocateChunksRequest {
        sha256: (0..1025).map(id).collect(),
    };
    assert_invalid(c.locate_chunks(locate).await, "1025 locations");
    let delete = DeleteObjectsRequest {
        bucket: "bkt".into(),
        keys: (0..1001).map(|i| format!("k{i}")).collect(),
        session: None,
        ..Default::default()
    };
    assert_invalid(c.delete_objects(delete).await, "1001 deletes");
    let report = ReportBadChunkRequest {
        sha256: vec![1],
        server_id: 1,
        reason: String::new(),
    };
    assert_invalid(
        c.report_bad_chunk(report).await,
        "a 1-byte bad chunk report",
    );

    let chunk = |i: u32, length: u64| ChunkRef {
        sha256: id(i),
        length,
        servers: vec![],
        uploaded_ms: 1,
    };
    let put = |m: Manifest| PutObjectRequest {
        parquet: None,
        parquet_copy: None,
        bucket: "bkt".into(),
        key: "edge".into(),
        manifest: Some(m),
        if_match_etag: None,
        session: None,
        source: String::new(),
    };
    let chunked = |chunks: Vec<ChunkRef>, size: u64| Manifest {
        version: MANIFEST_VERSION,
        size,
        etag: "e".into(),
        chunks,
        ..Default::default()
    };
    let mut short = chunk(1, 5);
    short.sha256.truncate(1);
    for (what, m) in [
        ("a 1-byte chunk id", chunked(vec![short], 5)),
        ("a zero-length chunk", chunked(vec![chunk(1, 0)], 0)),
        (
            "a chunk over 64 MiB",
            chunked(vec![chunk(1, MAX_CHUNK_BYTES + 1)], MAX_CHUNK_BYTES + 1),
        ),
        (
            "lengths not adding up",
            chunked(vec![chunk(1, 5), chunk(2, 5)], 11),
        ),
    ] {
        assert_invalid(c.put_object(put(m)).await, what);
    }
    // A valid manifest whose command is over 8 MiB (300,000 one-byte chunks).
    let huge = chunked((0..300_000).map(|i| chunk(i, 1)).collect(), 300_000);
    assert_invalid(c.put_object(put(huge)).await, "a command over 8 MiB");
    let part = PutPartRequest {
        bucket: "bkt".into(),
        key: "edge".into(),
        upload_id: "u".into(),
        part: Some(PartRecord {
            part_number: 1,
            etag: "0123456789abcdef0123456789abcdef".into(),
            size: 6,
            chunks: vec![chunk(1, 5)],
            ..Default::default()
        }),
        session: None,
    };
    assert_invalid(
        c.put_part(part).await,
        "a part whose chunks are not its size",
    );
    // Still serving.
    let inline = Manifest {
        version: MANIFEST_VERSION,
        size: 4,
        etag: "e".into(),
        inline_data: b"edge".to_vec(),
        ..Default::default()
    };
    c.put_object(put(inline)).await.expect("a good put");
}
