//! Multi-process test of the master group with real `anode master` processes:
//! continuous writes, `kill -9` of the leader, failover, restart of all members, then
//! membership change (add a 4th member, remove an old one) and the data on the new member.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anode_proto::*;
use support::*;

/// The leader id and its address, as agreed by the members that answer.
async fn leader(addrs: &BTreeMap<u64, String>) -> Option<(u64, String)> {
    for addr in addrs.values() {
        if let Some(st) = status_of(addr).await {
            if st.leader_id != 0 && st.leader_id == st.id {
                return Some((st.id, addr.clone()));
            }
        }
    }
    None
}

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
        bucket: bucket.into(),
        key: key.into(),
        manifest: Some(manifest(body)),
        if_match_etag: None,
        session: None,
    };
    let r = anode_master::ctl::call_leader(addrs, |mut c| {
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
    };
    anode_master::ctl::call_leader(addrs, |mut c| {
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

    let (l1, _) = wait_for("first leader", Duration::from_secs(20), || leader(&addrs)).await;
    anode_master::ctl::call_leader(&all, |mut c| async move {
        c.create_bucket(CreateBucketRequest {
            name: "bkt".into(),
            replication: 0,
            owner_access_key: String::new(),
            session: None,
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
    let (l2, _) = wait_for("new leader", Duration::from_secs(10), || leader(&addrs)).await;
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
        leader(&addrs)
    })
    .await;
    for k in &acked {
        let m = get(&all, "bkt", k, false)
            .await
            .unwrap_or_else(|e| panic!("after restart {k} missing: {e}"));
        assert_eq!(m.inline_data, k.as_bytes());
    }
    let list = anode_master::ctl::call_leader(&all, |mut c| async move {
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
    anode_master::ctl::call_leader(&all4, |mut c| {
        let addr = a4.clone();
        async move { c.add_member(AddMemberRequest { id: 4, addr }).await }
    })
    .await
    .expect("add member 4");
    anode_master::ctl::call_leader(&all4, |mut c| async move {
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
                let (_, la) = leader(&addrs_without(&all4, 1)).await?;
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
