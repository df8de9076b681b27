//! Metadata backup and restore with real processes (docs/operations.md, "Backup and
//! restore"): a 3-master group with 3 chunkservers, objects in chunks and inline, `anode ctl
//! backup` while a writer keeps writing, then every process stopped, every master's data
//! dir deleted, and a new group started with `anode master --restore` on the same
//! chunkservers: every object acknowledged before the backup started reads back
//! byte-identical. Prints `BACKUP:` and `RESTORE:` timings; `ANODE_BACKUP_FILL=N` adds N
//! small inline objects (bulk puts) for a timing at size.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anode_client::PutOptions;
use anode_proto::*;
use bytes::Bytes;
use support::*;

/// Puts acknowledged by the writer, in order: key and body.
type Acked = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The leader's id, as a member that leads reports it.
async fn leader_of(addrs: &[String]) -> Option<u64> {
    for a in addrs {
        if let Some(st) = status_of(a).await {
            if st.leader_id != 0 && st.leader_id == st.id {
                return Some(st.id);
            }
        }
    }
    None
}

/// `anode ctl --json ARGS...` as `admin-1`; its JSON answer.
fn ctl_json(masters: &[String], args: &[&str]) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_anode"));
    cmd.arg("ctl")
        .arg("--masters")
        .arg(masters.join(","))
        .args(tls_args(anode_tls::Role::Admin, "1"))
        .arg("--json")
        .args(args);
    let out = cmd.output().expect("run anode ctl");
    assert!(
        out.status.success(),
        "anode ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctl JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_writes_then_restore_a_new_group_on_the_same_chunkservers() {
    let (_keep, root) = test_dir();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
    let addrs: Vec<String> = ports
        .values()
        .map(|(p, _)| format!("127.0.0.1:{p}"))
        .collect();
    let mut masters = master_group(&root, &ports, &[]);
    wait_for("a leader", Duration::from_secs(30), || leader_of(&addrs)).await;
    let cs_args: Vec<Vec<String>> = (1..=3)
        .map(|i| chunkserver_args(&root, i, &addrs.join(","), None))
        .collect();
    let mut chunkservers: Vec<Proc> = cs_args
        .iter()
        .enumerate()
        .map(|(i, a)| Proc::spawn(&root, &format!("chunkserver-{}", i + 1), a.clone()))
        .collect();
    let leader_addr = || async {
        for a in &addrs {
            if let Some(st) = status_of(a).await {
                if st.leader_id == st.id && st.id != 0 {
                    return Some(a.clone());
                }
            }
        }
        None
    };
    let la = wait_for("leader address", Duration::from_secs(30), leader_addr).await;
    wait_alive(&la, 3, "3 chunkservers alive", Duration::from_secs(30)).await;

    // The data: chunked objects in two buckets, small inline ones, and a bulk fill.
    let cl = small_chunk_client(&addrs).await;
    cl.create_bucket("data", 0, "").await.unwrap();
    cl.create_bucket("more", 0, "").await.unwrap();
    let mut want: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for i in 0..20u64 {
        let (bucket, len) = if i % 2 == 0 {
            ("data", 100_000 + i as usize * 7_001)
        } else {
            ("more", 3_000 + i as usize)
        };
        let key = format!("obj/{i:03}");
        let b = pattern_body(i, len);
        cl.put_object_bytes(bucket, &key, Bytes::from(b.clone()), PutOptions::default())
            .await
            .unwrap();
        want.insert((bucket.into(), key), b);
    }
    let fill: u64 = std::env::var("ANODE_BACKUP_FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let t_fill = Instant::now();
    for start in (0..fill).step_by(1000) {
        let objects: Vec<(String, Bytes)> = (start..(start + 1000).min(fill))
            .map(|i| {
                (
                    format!("fill/{i:08}"),
                    Bytes::from(format!("fill object {i}")),
                )
            })
            .collect();
        cl.put_small_objects("more", objects).await.unwrap();
    }
    println!("FILL: {fill} inline objects in {:?}", t_fill.elapsed());

    // A writer of chunked objects that records every acknowledged put, in order.
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, cl) = (acked.clone(), stop.clone(), cl.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("w/{i:06}");
                let b = pattern_body(1_000_000 + i, 70_000 + (i as usize % 5) * 1_000);
                let r = cl
                    .put_object_bytes("data", &key, Bytes::from(b.clone()), PutOptions::default())
                    .await;
                if r.is_ok() {
                    acked.lock().unwrap().push((key, b));
                }
                i += 1;
            }
        })
    };
    wait_for("writes before the backup", Duration::from_secs(30), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 10).then_some(()) }
    })
    .await;

    // The backup, through the real CLI, while the writer goes on.
    let before: Vec<(String, Vec<u8>)> = acked.lock().unwrap().clone();
    let bdir = root.join("backup-1");
    let t0 = Instant::now();
    let bdir_s = bdir.display().to_string();
    let addrs2 = addrs.clone();
    let manifest = tokio::task::spawn_blocking(move || ctl_json(&addrs2, &["backup", &bdir_s]))
        .await
        .unwrap();
    let backup_time = t0.elapsed();
    let during = acked.lock().unwrap().len() - before.len();
    let target = before.len() + during + 5;
    wait_for("writes after the backup", Duration::from_secs(30), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= target).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let all_acked: Vec<(String, Vec<u8>)> = acked.lock().unwrap().clone();
    let payload = std::fs::metadata(bdir.join(anode_master::backup::PAYLOAD_FILE))
        .unwrap()
        .len();
    println!(
        "BACKUP: {} records, {payload} B payload, raft index {} in {backup_time:?} ({during} writes acknowledged during it, {} before)",
        manifest["records"], manifest["raft_index"], before.len()
    );
    assert_eq!(manifest["payload_bytes"], payload);
    assert_eq!(manifest["voters"], serde_json::json!([1, 2, 3]));
    assert!(manifest["raft_index"].as_u64().unwrap() > 0);

    // Only the admin role may take a backup.
    let mut as_client = {
        let ep = tls(anode_tls::Role::Client, "1")
            .endpoint(&la, anode_tls::Role::Master)
            .unwrap();
        anode_proto::master_client::MasterClient::new(ep.connect().await.unwrap())
    };
    let Err(refused) = as_client.backup(BackupRequest {}).await else {
        panic!("a client certificate took a backup");
    };
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Stop everything; every master's data is lost.
    for p in masters.iter_mut().chain(chunkservers.iter_mut()) {
        p.kill9();
    }
    for i in 1..=3 {
        std::fs::remove_dir_all(root.join(format!("master-{i}"))).unwrap();
    }

    // A new group from the backup, on the same addresses, then the same chunkservers.
    let t1 = Instant::now();
    let restore = ["--restore".to_string(), bdir.display().to_string()];
    let mut masters = master_group(&root, &ports, &restore);
    wait_for(
        "a leader of the restored group",
        Duration::from_secs(60),
        || leader_of(&addrs),
    )
    .await;
    let to_leader = t1.elapsed();
    for p in chunkservers.iter_mut() {
        p.start();
    }
    let la = wait_for("leader address", Duration::from_secs(30), leader_addr).await;
    wait_alive(
        &la,
        3,
        "3 chunkservers alive again",
        Duration::from_secs(60),
    )
    .await;
    let st = status_of(&la).await.unwrap();
    assert_eq!(
        st.members.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(st.applied_index >= manifest["raft_index"].as_u64().unwrap());
    // The new leader knows where chunks are only from the chunkservers' full reports.
    wait_for("every chunk report in", Duration::from_secs(60), || {
        let la = la.clone();
        async move {
            let st = tokio::task::spawn_blocking(move || ctl_json(&[la], &["status"]))
                .await
                .ok()?;
            (st["locations_complete"] == true).then_some(())
        }
    })
    .await;

    // Every object written before the backup, byte-identical; the writer's puts acknowledged
    // before the backup started too. Puts acknowledged during or after it are either absent
    // or intact.
    let cl = small_chunk_client(&addrs).await;
    for ((bucket, key), b) in &want {
        let got = read_object(&cl, bucket, key)
            .await
            .unwrap_or_else(|e| panic!("{bucket}/{key}: {e}"));
        assert!(got == *b, "{bucket}/{key} differs after the restore");
    }
    for (key, b) in &before {
        let got = read_object(&cl, "data", key)
            .await
            .unwrap_or_else(|e| panic!("data/{key} acknowledged before the backup: {e}"));
        assert!(got == *b, "data/{key} differs after the restore");
    }
    let mut later_present = 0;
    for (key, b) in &all_acked[before.len()..] {
        if let Ok(got) = read_object(&cl, "data", key).await {
            assert!(got == *b, "data/{key} differs after the restore");
            later_present += 1;
        }
    }
    let readable = t1.elapsed();
    for i in (0..fill).step_by((fill as usize / 50).max(1)) {
        let key = format!("fill/{i:08}");
        let got = read_object(&cl, "more", &key).await.unwrap();
        assert_eq!(got, format!("fill object {i}").as_bytes());
    }
    let log = std::fs::read_to_string(root.join("master-1.log")).unwrap();
    let restore_ms = log
        .lines()
        .find(|l| l.contains("restored the metadata from a backup"))
        .map(|l| l.to_string())
        .expect("restore logged");
    println!(
        "RESTORE: leader {to_leader:?} after start, every checked object readable {readable:?} after start; {} of {} puts acknowledged after the backup started are in it; log: {restore_ms}",
        later_present,
        all_acked.len() - before.len()
    );

    // The new group takes writes, and a restart with the same --restore flag starts from the
    // data dir (a container's fixed arguments).
    cl.put_object_bytes(
        "data",
        "after",
        Bytes::from_static(b"new group"),
        PutOptions::default(),
    )
    .await
    .unwrap();
    masters[0].kill9();
    masters[0].start();
    wait_for("member 1 back", Duration::from_secs(30), || async {
        let st = status_of(&addrs[0]).await?;
        (st.leader_id != 0).then_some(())
    })
    .await;
    let log = std::fs::read_to_string(root.join("master-1.log")).unwrap();
    assert!(
        log.contains("already restored from this backup"),
        "restart with --restore did not start from the data dir"
    );
    assert_eq!(
        read_object(&cl, "data", "after").await.unwrap(),
        b"new group"
    );
}

/// A data dir that holds a store is never overwritten by `--restore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_an_initialized_data_dir_is_refused() {
    let (_keep, root) = test_dir();
    let (p, a) = (free_port(), free_port());
    let peers = format!("1=127.0.0.1:{p}");
    let mut m = Proc::spawn(
        &root,
        "master-1",
        master_args(1, &root, p, a, &peers, false),
    );
    let addr = format!("127.0.0.1:{p}");
    wait_for("leader", Duration::from_secs(30), || {
        leader_of(std::slice::from_ref(&addr))
    })
    .await;
    let bdir = root.join("b");
    let bdir_s = bdir.display().to_string();
    let a2 = vec![addr.clone()];
    tokio::task::spawn_blocking(move || ctl_json(&a2, &["backup", &bdir_s]))
        .await
        .unwrap();
    // A second backup into the same directory is refused by the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anode"))
        .args(["ctl", "--masters", &addr])
        .args(tls_args(anode_tls::Role::Admin, "1"))
        .args(["backup", &bdir.display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a backup"));
    m.kill9();
    let mut args = master_args(1, &root, p, a, &peers, false);
    args.extend(["--restore".to_string(), bdir.display().to_string()]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anode"))
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "restore over a store started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is already initialized"), "{err}");
}
