//! Multi-process self-healing tests: real `anode master` and `anode chunkserver` processes,
//! objects written with the Rust client, and the blob files on disk as the judge (a chunk is
//! healthy when R chunkservers' data directories hold a file whose bytes hash to its name).
//!
//! - `kill -9` one of 5 chunkservers, then a second: every chunk is back to 3 live copies and
//!   every object reads back byte-identical; the dead servers return and surplus copies go.
//! - Corrupt two blob files and delete a third: the scrubber and full reports find them and
//!   they are repaired.
//! - New chunkservers receive data until used space is within the spread; a drained server is
//!   emptied under a concurrent read/write load with no client error and no chunk below R.

#[path = "support/heal_cluster.rs"]
mod heal_cluster;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anode_client::{Client, ClientConfig, PutOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use heal_cluster::*;
use rand::{Rng, SeedableRng};
use support::*;

/// Master flags of these tests on top of the cluster's: more repair work in flight.
const HEALING_MASTER: [&str; 4] = ["--repair-per-server", "16", "--repair-total", "128"];

/// Chunkserver flags of these tests: a scrub pass every second and `capacity`.
fn cs_flags(capacity: &str) -> [&str; 4] {
    ["--scrub-interval-secs", "1", "--capacity", capacity]
}

async fn client(master: &str) -> Client {
    let cfg = ClientConfig {
        chunk_size_bytes: 1 << 20,
        ..support::client_config()
    };
    Client::with_config(vec![master.to_string()], cfg)
        .await
        .unwrap()
}

/// Write `n` single-chunk objects (between the inline limit and the chunk size); returns
/// key -> body. Each body's SHA-256 is its chunk id.
async fn write_objects(
    cl: &Client,
    bucket: &str,
    n: usize,
    seed: u64,
) -> BTreeMap<String, Vec<u8>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for i in 0..n {
        let len = rng.gen_range(20_000..200_000);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let key = format!("obj-{seed}-{i:04}");
        cl.put_object_bytes(
            bucket,
            &key,
            Bytes::from(body.clone()),
            PutOptions::default(),
        )
        .await
        .unwrap();
        out.insert(key, body);
    }
    out
}

fn shas(objs: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    objs.values().map(|b| sha_hex(b)).collect()
}

async fn read_back(cl: &Client, bucket: &str, objs: &BTreeMap<String, Vec<u8>>) {
    for (k, want) in objs {
        let (_, s) = cl.get_object(bucket, k, None).await.unwrap();
        let got: Vec<Bytes> = s.try_collect().await.unwrap();
        assert!(got.concat() == *want, "{k} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_servers_and_bad_copies_are_healed() {
    let mut c = HealCluster::start(5, &HEALING_MASTER, &cs_flags(&(1u64 << 30).to_string())).await;
    let cl = client(&c.master).await;
    cl.create_bucket("heal", 3, "").await.unwrap();
    let objs = write_objects(&cl, "heal", 150, 1).await;
    let shas = shas(&objs);
    c.wait_healthy(&shas, &[1, 2, 3, 4, 5], Duration::from_secs(30))
        .await;

    // One server dies for good: its copies are re-made on the other four.
    c.cs.get_mut(&5).unwrap().kill9();
    let t = c
        .wait_healthy(&shas, &[1, 2, 3, 4], Duration::from_secs(90))
        .await;
    eprintln!("healed after losing 1 of 5 in {t:?}");
    read_back(&cl, "heal", &objs).await;

    // A second one: three servers left, each holds everything.
    c.cs.get_mut(&4).unwrap().kill9();
    let t = c
        .wait_healthy(&shas, &[1, 2, 3], Duration::from_secs(90))
        .await;
    eprintln!("healed after losing 2 of 5 in {t:?}");
    read_back(&cl, "heal", &objs).await;

    // Both come back with their old copies: surplus copies are trimmed to exactly R.
    c.cs.get_mut(&4).unwrap().start();
    c.cs.get_mut(&5).unwrap().start();
    c.wait_alive(5).await;
    c.wait_healthy(&shas, &[1, 2, 3, 4, 5], Duration::from_secs(90))
        .await;

    // Corrupt two blob files and delete a third: the scrubber and the next full report
    // notice, and the copies are made good again.
    let mut damaged = 0;
    for (n, sha) in shas.iter().enumerate().take(40) {
        let holders: Vec<usize> = (1..=5)
            .filter(|i| blob_path(&c.cs_dir(*i), sha).is_some())
            .collect();
        let Some(&h) = holders.first() else { continue };
        let path = blob_path(&c.cs_dir(h), sha).unwrap();
        match damaged {
            0 | 1 => {
                let mut b = std::fs::read(&path).unwrap();
                let at = n % b.len();
                b[at] ^= 0xff;
                b[0] ^= 0x01;
                std::fs::write(&path, b).unwrap();
            }
            _ => std::fs::remove_file(&path).unwrap(),
        }
        damaged += 1;
        if damaged == 3 {
            break;
        }
    }
    assert_eq!(damaged, 3);
    c.wait_healthy(&shas, &[1, 2, 3, 4, 5], Duration::from_secs(90))
        .await;
    read_back(&cl, "heal", &objs).await;

    // Deleted objects' chunks are collected from every server.
    let doomed: Vec<String> = objs.keys().take(20).cloned().collect();
    for k in &doomed {
        cl.delete_object("heal", k).await.unwrap();
    }
    let gone: Vec<String> = doomed.iter().map(|k| sha_hex(&objs[k])).collect();
    wait_for("garbage collected", Duration::from_secs(60), || async {
        gone.iter()
            .all(|s| c.good_copies(s, &[1, 2, 3, 4, 5]) == 0)
            .then_some(())
    })
    .await;
    let kept: BTreeMap<String, Vec<u8>> = objs
        .into_iter()
        .filter(|(k, _)| !doomed.contains(k))
        .collect();
    read_back(&cl, "heal", &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_servers_fill_and_drain_keeps_r_under_load() {
    let capacity: u64 = 64 << 20;
    let mut c = HealCluster::start(
        4,
        &[HEALING_MASTER.as_slice(), &["--rebalance-spread", "0.05"]].concat(),
        &cs_flags(&capacity.to_string()),
    )
    .await;
    let cl = client(&c.master).await;
    cl.create_bucket("bal", 3, "").await.unwrap();
    let objs = write_objects(&cl, "bal", 120, 2).await;
    let all = shas(&objs);

    // Two new servers join; data moves onto them until the spread is within 5 %.
    c.add_chunkserver(5);
    c.add_chunkserver(6);
    c.wait_alive(6).await;
    wait_for(
        "rebalanced within the spread",
        Duration::from_secs(120),
        || async {
            let st = c.status().await?;
            let used: Vec<f64> = st["chunkservers"]
                .as_array()?
                .iter()
                .map(|s| s["used_bytes"].as_u64().unwrap_or(0) as f64 / capacity as f64)
                .collect();
            let (lo, hi) = used
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), u| (lo.min(*u), hi.max(*u)));
            eprintln!("utilization {used:.3?}");
            (hi - lo <= 0.05 + 0.01 && lo > 0.0 && st["under_replicated_chunks"] == 0).then_some(())
        },
    )
    .await;
    c.wait_healthy(&all, &[1, 2, 3, 4, 5, 6], Duration::from_secs(60))
        .await;

    // Drain server 1 while clients read and write.
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
    let load = {
        let (stop, errors, written) = (stop.clone(), errors.clone(), written.clone());
        let cl = client(&c.master).await;
        let objs = objs.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            let keys: Vec<&String> = objs.keys().collect();
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = vec![(i % 251) as u8; 30_000 + (i as usize % 1000)];
                let key = format!("load-{i}");
                match cl
                    .put_object_bytes(
                        "bal",
                        &key,
                        Bytes::from(body.clone()),
                        PutOptions::default(),
                    )
                    .await
                {
                    Ok(_) => {
                        written.lock().insert(key, body);
                    }
                    Err(e) => {
                        eprintln!("load put failed: {e}");
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let k = keys[i as usize % keys.len()];
                match cl.get_object("bal", k, None).await {
                    Ok((_, s)) => match s.try_collect::<Vec<Bytes>>().await {
                        Ok(b) if b.concat() == objs[k] => {}
                        other => {
                            eprintln!("load get of {k} bad: {:?}", other.map(|b| b.len()));
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    },
                    Err(e) => {
                        eprintln!("load get failed: {e}");
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    // The registry id of process chunkserver-1 (ids follow registration order).
    let id_of_1 = {
        let st = c.status().await.unwrap();
        st["chunkservers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["addr"] == c.addrs[&1].as_str())
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anode"))
        .args([
            "ctl",
            "--masters",
            &c.master,
            "chunkservers",
            "drain",
            &id_of_1.to_string(),
            "--json",
        ])
        .arg("--certs-dir")
        .arg(certs_dir(anode_tls::Role::Admin, "1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("server 1 drained", Duration::from_secs(120), || async {
        let st = c.status().await?;
        let s = st["chunkservers"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == id_of_1)?
            .clone();
        (s["safe_to_remove"] == true && s["state"] == "draining").then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "client errors during the drain"
    );
    let written = written.lock().clone();
    assert!(!written.is_empty());
    let mut every = all.clone();
    every.extend(shas(&written));
    // Every chunk has R good copies on the servers that stay.
    c.wait_healthy(&every, &[2, 3, 4, 5, 6], Duration::from_secs(60))
        .await;
    // The drained server can go.
    c.cs.get_mut(&1).unwrap().kill9();
    read_back(&cl, "bal", &objs).await;
    read_back(&cl, "bal", &written).await;
}
