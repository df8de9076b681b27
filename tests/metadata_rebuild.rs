//! Metadata rebuild after losing every master, with real processes (docs/operations.md,
//! "Rebuild after losing every master"): a 3-master group exporting its metadata to 3
//! chunkservers every 2 s, objects in chunks and inline, then every master killed and its
//! data dir deleted; `anode ctl rebuild` fetches the newest export from the chunkservers
//! (skipping a copy corrupted on disk for a good one), `anode master --restore` starts a new
//! group from it, and every object written before that export reads back byte-identical.
//! Prints `REBUILD:` timings; `ANODE_REBUILD_FILL=N` sets the number of small inline objects
//! (bulk puts) for a timing at size.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anode_client::PutOptions;
use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::{ExportInfo, ListExportsRequest};
use bytes::Bytes;
use support::*;

/// The leader's address, as the member that leads reports it.
async fn leader_addr(addrs: &[String]) -> Option<String> {
    for a in addrs {
        if let Some(st) = status_of(a).await {
            if st.leader_id != 0 && st.leader_id == st.id {
                return Some(a.clone());
            }
        }
    }
    None
}

/// `anode ctl ARGS...` as `admin-1`: its exit status, stdout and stderr.
fn ctl(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anode"))
        .arg("ctl")
        .args(tls_args(anode_tls::Role::Admin, "1"))
        .args(args)
        .output()
        .expect("run anode ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn list_exports(addr: &str, role: anode_tls::Role) -> Result<Vec<ExportInfo>, tonic::Status> {
    let ep = tls(role, "1")
        .endpoint(addr, anode_tls::Role::Chunkserver)
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let ch = ep
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(ChunkserverClient::new(ch)
        .list_exports(ListExportsRequest {})
        .await?
        .into_inner()
        .exports)
}

/// One sample of the Prometheus text on admin address `admin` (the line starting with
/// `line_start`).
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

fn export_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("exports"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "export"));
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_master_lost_then_rebuilt_from_the_chunkservers_exports() {
    let (_keep, root) = test_dir();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
    let addrs: Vec<String> = ports
        .values()
        .map(|(p, _)| format!("127.0.0.1:{p}"))
        .collect();
    let export_every = ["--metadata-export-interval-secs".to_string(), "2".into()];
    let mut masters = master_group(&root, &ports, &export_every);
    let la = wait_for("a leader", Duration::from_secs(30), || leader_addr(&addrs)).await;
    let cs_args: Vec<Vec<String>> = (1..=3)
        .map(|i| chunkserver_args(&root, i, &addrs.join(","), None))
        .collect();
    let cs_addrs: Vec<String> = cs_args.iter().map(|a| a[4].clone()).collect();
    let mut chunkservers: Vec<Proc> = cs_args
        .iter()
        .enumerate()
        .map(|(i, a)| Proc::spawn(&root, &format!("chunkserver-{}", i + 1), a.clone()))
        .collect();
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
    let fill: u64 = std::env::var("ANODE_REBUILD_FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
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
    // Every write above is applied on the leader at or below this index.
    let la = wait_for("leader", Duration::from_secs(30), || leader_addr(&addrs)).await;
    let covered = status_of(&la).await.unwrap().applied_index;

    // Wait until every chunkserver holds an export covering them (3 copies by default).
    let t_wait = Instant::now();
    wait_for(
        "an export covering the writes on every chunkserver",
        Duration::from_secs(60),
        || {
            let cs = cs_addrs.clone();
            async move {
                for a in &cs {
                    let l = list_exports(a, anode_tls::Role::Admin).await.ok()?;
                    l.iter()
                        .find(|e| e.header.as_ref().is_some_and(|h| h.raft_index >= covered))?;
                }
                Some(())
            }
        },
    )
    .await;
    println!(
        "EXPORT: covering raft index {covered} on 3 chunkservers {:?} after the last write",
        t_wait.elapsed()
    );
    // The leader's metrics say so too (they are set once every copy answered).
    let admin = ports
        .values()
        .find(|(p, _)| la.ends_with(&format!(":{p}")))
        .map(|(_, a)| format!("127.0.0.1:{a}"))
        .unwrap();
    wait_for(
        "the leader's export metrics",
        Duration::from_secs(30),
        || {
            let admin = admin.clone();
            async move {
                let idx =
                    metric(&admin, "anode_master_metadata_export_last_success_index ").await?;
                let ok =
                    metric(&admin, "anode_master_metadata_exports_total{result=\"ok\"}").await?;
                let copies = metric(&admin, "anode_master_metadata_export_last_copies ").await?;
                let ts = metric(
                    &admin,
                    "anode_master_metadata_export_last_success_timestamp_seconds ",
                )
                .await?;
                (idx >= covered as f64 && ok >= 1.0 && copies == 3.0 && ts > 0.0).then_some(())
            }
        },
    )
    .await;
    // Exports are kept per disk, newest 3 only.
    assert!(export_files(&root.join("chunkserver-1")).len() <= 3);
    // Only masters write exports, and only admin (and masters) read them.
    let refused = list_exports(&cs_addrs[0], anode_tls::Role::Client)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Every master and its data is lost.
    for p in masters.iter_mut() {
        p.kill9();
    }
    for i in 1..=3 {
        std::fs::remove_dir_all(root.join(format!("master-{i}"))).unwrap();
    }
    drop(masters);

    // The newest export's copy on the chunkserver that sorts first (the first the rebuild
    // tries) rots on disk: one flipped payload byte.
    let newest: Vec<ExportInfo> = list_exports(&cs_addrs[0], anode_tls::Role::Admin)
        .await
        .unwrap();
    let top = newest[0].header.clone().unwrap();
    let mut holders: Vec<(String, usize)> = Vec::new();
    for (i, a) in cs_addrs.iter().enumerate() {
        let l = list_exports(a, anode_tls::Role::Admin).await.unwrap();
        if l.iter().any(|e| e.header.as_ref() == Some(&top)) {
            holders.push((a.clone(), i + 1));
        }
    }
    holders.sort();
    assert!(
        holders.len() >= 2,
        "the newest export has one copy: {holders:?}"
    );
    let (bad_addr, bad_i) = holders[0].clone();
    let bad_file = export_files(&root.join(format!("chunkserver-{bad_i}")))
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&bad_file).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x40;
    std::fs::write(&bad_file, bytes).unwrap();

    // The rebuild, through the real CLI, from the chunkservers alone.
    let out = root.join("rebuilt");
    let out_s = out.display().to_string();
    let cs_list = cs_addrs.join(",");
    let t0 = Instant::now();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let (out_s, cs_list) = (out_s.clone(), cs_list.clone());
        move || {
            ctl(&[
                "--json",
                "rebuild",
                "--chunkservers",
                &cs_list,
                "--out",
                &out_s,
            ])
        }
    })
    .await
    .unwrap();
    let rebuild_time = t0.elapsed();
    assert!(ok, "rebuild failed: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["raft_index"], top.raft_index);
    assert!(v["raft_index"].as_u64().unwrap() >= covered);
    assert_ne!(v["source"], bad_addr.as_str(), "{v}");
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["chunkserver"], bad_addr.as_str());
    assert!(
        skipped[0]["error"].as_str().unwrap().contains("sha256"),
        "{v}"
    );
    // The rotten copy was moved aside by its chunkserver.
    assert!(!bad_file.exists());
    // The directory is a backup as `anode ctl backup` writes it.
    let m = anode_master::backup::read_manifest(&out).unwrap();
    anode_master::backup::verify_payload(&out, &m).unwrap();
    assert_eq!(m.voters, vec![1, 2, 3]);
    println!(
        "REBUILD: {} records, {} B payload, raft index {}, export {:.1} s old, in {rebuild_time:?} (one corrupt copy skipped)",
        v["records"],
        v["payload_bytes"],
        v["raft_index"],
        v["age_secs"].as_f64().unwrap()
    );
    // The same for people: what it chose, from where, and how old it is.
    let out2 = root.join("rebuilt-2").display().to_string();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let cs_list = cs_list.clone();
        move || ctl(&["rebuild", "--chunkservers", &cs_list, "--out", &out2])
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("raft index {}", top.raft_index))
            && stdout.contains("s ago")
            && stdout.contains("anode master --restore"),
        "{stdout}"
    );
    println!("{stdout}");
    // A second rebuild into the same directory is refused.
    let (ok, _, stderr) = tokio::task::spawn_blocking({
        let (out_s, cs_list) = (out_s.clone(), cs_list.clone());
        move || ctl(&["rebuild", "--chunkservers", &cs_list, "--out", &out_s])
    })
    .await
    .unwrap();
    assert!(!ok && stderr.contains("already holds a backup"), "{stderr}");

    // A new group from it on the same addresses, then the same chunkservers.
    for p in chunkservers.iter_mut() {
        p.kill9();
    }
    let t1 = Instant::now();
    let restore = ["--restore".to_string(), out_s.clone()];
    let _masters = master_group(&root, &ports, &restore);
    let la = wait_for(
        "a leader of the rebuilt group",
        Duration::from_secs(60),
        || leader_addr(&addrs),
    )
    .await;
    for p in chunkservers.iter_mut() {
        p.start();
    }
    wait_alive(
        &la,
        3,
        "3 chunkservers alive again",
        Duration::from_secs(60),
    )
    .await;
    // The new leader knows where chunks are only from the chunkservers' full reports.
    let ms = admin_masters(std::slice::from_ref(&la));
    wait_for("every chunk report in", Duration::from_secs(60), || {
        let ms = ms.clone();
        async move {
            let st = anode_master::ctl::status(&ms).await.ok()?;
            (st["locations_complete"] == true).then_some(())
        }
    })
    .await;
    let cl = small_chunk_client(&addrs).await;
    for ((bucket, key), b) in &want {
        let got = read_object(&cl, bucket, key)
            .await
            .unwrap_or_else(|e| panic!("{bucket}/{key}: {e}"));
        assert!(got == *b, "{bucket}/{key} differs after the rebuild");
    }
    for i in (0..fill).step_by((fill as usize / 50).max(1)) {
        let key = format!("fill/{i:08}");
        let got = read_object(&cl, "more", &key).await.unwrap();
        assert_eq!(got, format!("fill object {i}").as_bytes());
    }
    println!(
        "RESTORE: every checked object readable {:?} after the new group started",
        t1.elapsed()
    );
    // The rebuilt group takes writes.
    cl.put_object_bytes(
        "data",
        "after",
        Bytes::from_static(b"new group"),
        PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        read_object(&cl, "data", "after").await.unwrap(),
        b"new group"
    );
}

/// A rebuild from chunkservers that hold no export fails with a clear error and writes no
/// backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_with_no_exports_anywhere_fails_clearly() {
    let (_keep, root) = test_dir();
    // Chunkservers whose masters never answer: they serve their data API all the same.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let cs_args: Vec<Vec<String>> = (1..=2)
        .map(|i| chunkserver_args(&root, i, &nowhere, None))
        .collect();
    let cs_addrs: Vec<String> = cs_args.iter().map(|a| a[4].clone()).collect();
    let _cs: Vec<Proc> = cs_args
        .iter()
        .enumerate()
        .map(|(i, a)| Proc::spawn(&root, &format!("chunkserver-{}", i + 1), a.clone()))
        .collect();
    wait_for("chunkservers serving", Duration::from_secs(30), || {
        let cs = cs_addrs.clone();
        async move {
            for a in &cs {
                list_exports(a, anode_tls::Role::Admin).await.ok()?;
            }
            Some(())
        }
    })
    .await;
    let out = root.join("rebuilt");
    let (ok, _, stderr) = ctl(&[
        "rebuild",
        "--chunkservers",
        &cs_addrs.join(","),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!ok, "a rebuild with no exports succeeded");
    assert!(
        stderr.contains("no metadata export found on any of the 2 chunkservers"),
        "{stderr}"
    );
    assert!(!out.join(anode_master::backup::MANIFEST_FILE).exists());
}
