//! The leader's lifecycle worker with real `anode master` processes and a 1-second lifecycle
//! day (`--lifecycle-day-secs 1`): current versions under a prefix expire (delete markers in
//! a versioned bucket), noncurrent versions past `newer_noncurrent_versions` are deleted, and
//! a `kill -9` of the leader in the middle of the work does not stop it (the new leader resumes
//! from the progress in raft) nor make it delete a version that should stay.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anode_client::{Client, PutOptions};
use anode_proto::*;
use bytes::Bytes;
use futures::StreamExt;
use support::*;

/// Keys whose current version expires (rule `tmp`).
const TMP_KEYS: usize = 400;
/// Keys with [`HIST_VERSIONS`] versions whose oldest noncurrent ones go (rule `hist`).
const HIST_KEYS: usize = 40;
const HIST_VERSIONS: usize = 5;
/// Noncurrent versions the `hist` rule keeps.
const KEEP_NONCURRENT: usize = 2;

/// The client library as an operator (`admin-1`): bucket versioning and lifecycle rules are
/// set by gateways and operators only.
fn operator_config() -> anode_client::ClientConfig {
    anode_client::ClientConfig {
        tls: Some(tls(anode_tls::Role::Admin, "1")),
        ..Default::default()
    }
}

fn rules() -> LifecycleConfig {
    LifecycleConfig {
        rules: vec![
            LifecycleRule {
                id: "tmp".into(),
                enabled: true,
                prefix: "tmp/".into(),
                expiration_days: 1,
                ..Default::default()
            },
            LifecycleRule {
                id: "hist".into(),
                enabled: true,
                prefix: "hist/".into(),
                noncurrent_days: 1,
                newer_noncurrent_versions: KEEP_NONCURRENT as u32,
                ..Default::default()
            },
        ],
    }
}

/// Every version of the bucket, per key, newest first.
async fn all_versions(cl: &Client, bucket: &str) -> BTreeMap<String, Vec<VersionEntry>> {
    let mut out: BTreeMap<String, Vec<VersionEntry>> = BTreeMap::new();
    let (mut key_marker, mut version_id_marker) = (String::new(), String::new());
    loop {
        let page = cl
            .list_object_versions(ListObjectVersionsRequest {
                bucket: bucket.into(),
                key_marker: key_marker.clone(),
                version_id_marker: version_id_marker.clone(),
                ..Default::default()
            })
            .await
            .expect("list object versions");
        for v in page.versions {
            out.entry(v.key.clone()).or_default().push(v);
        }
        if !page.is_truncated {
            return out;
        }
        key_marker = page.next_key_marker;
        version_id_marker = page.next_version_id_marker;
    }
}

/// Put `bodies` (key, body) with a few requests in flight; each put must succeed.
async fn put_all(cl: &Client, bucket: &str, bodies: Vec<(String, Vec<u8>)>) -> Vec<String> {
    futures::stream::iter(bodies)
        .map(|(key, body)| async move {
            let m = cl
                .put_object_bytes(bucket, &key, Bytes::from(body), PutOptions::default())
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
            format!("{key}@{}", m.version_id)
        })
        .buffered(16)
        .collect()
        .await
}

/// The lifecycle section of the merged `anode ctl status` for `bucket`.
async fn lifecycle_status(addrs: &[String], bucket: &str) -> Option<serde_json::Value> {
    let st = anode_master::ctl::status(&admin_masters(addrs))
        .await
        .ok()?;
    st["lifecycle"]
        .as_array()?
        .iter()
        .find(|l| l["bucket"] == bucket)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_worker_expires_and_survives_a_leader_failover() {
    let (_dir, root) = test_dir();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
    let addrs: Vec<String> = ports
        .values()
        .map(|(p, _)| format!("127.0.0.1:{p}"))
        .collect();
    let extra: Vec<String> = [
        "--lifecycle-day-secs",
        "1",
        "--lifecycle-batches-per-sec",
        "2",
    ]
    .map(String::from)
    .to_vec();
    let mut procs = master_group(&root, &ports, &extra);
    let by_addr = |a: &str| addrs.iter().position(|x| x == a).expect("a member");
    wait_for("a leader", Duration::from_secs(30), || async {
        let st = anode_master::ctl::status(&admin_masters(&addrs))
            .await
            .ok()?;
        (st["leader_id"].as_u64()? != 0).then_some(())
    })
    .await;

    let cl = Client::with_config(addrs.clone(), operator_config())
        .await
        .unwrap();
    cl.create_bucket("lc-bucket", 1, "").await.unwrap();
    cl.set_bucket_versioning("lc-bucket", 1).await.unwrap();
    let tmp: Vec<(String, Vec<u8>)> = (0..TMP_KEYS)
        .map(|i| (format!("tmp/{i:04}"), pattern_body(i as u64, 100)))
        .collect();
    put_all(&cl, "lc-bucket", tmp).await;
    // Versions of one key go one after another (their order is the point).
    for v in 0..HIST_VERSIONS {
        let hist = (0..HIST_KEYS)
            .map(|i| {
                (
                    format!("hist/{i:03}"),
                    pattern_body((i * 10 + v) as u64, 50),
                )
            })
            .collect();
        put_all(&cl, "lc-bucket", hist).await;
    }
    for v in 0..3 {
        put_all(
            &cl,
            "lc-bucket",
            vec![("keep/a".into(), pattern_body(v, 30))],
        )
        .await;
    }
    let before = all_versions(&cl, "lc-bucket").await;
    assert_eq!(before.len(), TMP_KEYS + HIST_KEYS + 1);
    cl.set_bucket_lifecycle("lc-bucket", Some(rules()))
        .await
        .unwrap();

    // Kill the leader once the first pass has done some of the work, not all.
    let leader = wait_for("the first batches", Duration::from_secs(60), || async {
        let l = lifecycle_status(&addrs, "lc-bucket").await?;
        let expired = l["expired"].as_u64()?;
        (expired > 0 && expired < TMP_KEYS as u64).then_some(())?;
        let st = anode_master::ctl::status(&admin_masters(&addrs))
            .await
            .ok()?;
        let id = st["leader_id"].as_u64()?;
        st["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .and_then(|m| m["addr"].as_str().map(str::to_string))
    })
    .await;
    let killed = by_addr(&leader);
    procs[killed].kill9();
    let rest: Vec<String> = addrs.iter().filter(|a| **a != leader).cloned().collect();

    // The new leader finishes the work: the exact counts, in raft.
    let done = wait_for("the work finished", Duration::from_secs(90), || async {
        let l = lifecycle_status(&rest, "lc-bucket").await?;
        let want_noncurrent = (HIST_KEYS * (HIST_VERSIONS - 1 - KEEP_NONCURRENT)) as u64;
        (l["expired"] == TMP_KEYS as u64 && l["noncurrent_deleted"] == want_noncurrent).then_some(l)
    })
    .await;
    assert_eq!(done["markers_removed"], 0);

    // A later full pass changes nothing more.
    let passes = done["passes"].as_u64().unwrap();
    let again = wait_for("a later pass", Duration::from_secs(30), || async {
        let l = lifecycle_status(&rest, "lc-bucket").await?;
        (l["passes"].as_u64()? >= passes + 2).then_some(l)
    })
    .await;
    assert_eq!(again["expired"], done["expired"]);
    assert_eq!(again["noncurrent_deleted"], done["noncurrent_deleted"]);

    let cl = Client::with_config(rest.clone(), operator_config())
        .await
        .unwrap();
    let after = all_versions(&cl, "lc-bucket").await;
    assert_eq!(after.len(), before.len());
    for (key, old) in &before {
        let new = &after[key];
        let ids = |vs: &[VersionEntry]| vs.iter().map(|v| v.version_id.clone()).collect::<Vec<_>>();
        if key.starts_with("tmp/") {
            // A delete marker on top of the one version, which is kept.
            assert_eq!(new.len(), 2, "{key}: {new:?}");
            assert!(new[0].is_latest && new[0].delete_marker, "{key}: {new:?}");
            assert_eq!(ids(&new[1..]), ids(old), "{key}");
        } else if key.starts_with("hist/") {
            // The current version and the newest two noncurrent ones.
            assert_eq!(ids(new), ids(&old[..1 + KEEP_NONCURRENT]), "{key}");
            assert!(!new[0].delete_marker);
        } else {
            assert_eq!(ids(new), ids(old), "{key}");
        }
    }

    // The survivors' metrics: the batches were counted by whichever led.
    let mut batches = 0.0;
    for (i, (_, admin)) in ports.values().enumerate() {
        if i != killed {
            batches += metric(
                &format!("127.0.0.1:{admin}"),
                "anode_master_lifecycle_batches_total",
            )
            .await
            .expect("metrics of a survivor");
        }
    }
    assert!(
        batches >= 1.0,
        "no lifecycle batch counted on the survivors"
    );
}

/// The value of the unlabelled series `name` on a master's `/metrics` (admin `host:port`), if
/// it answers.
async fn metric(admin: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {admin}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
