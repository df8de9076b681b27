//! A real multi-process data cluster tuned for healing within seconds: 1 master (1 s leases,
//! dead after 3 s, sweeps every 200 ms, 500 ms GC grace) and N chunkservers (200 ms
//! heartbeats, full reports every 2 s), with helpers that count good blob files on disk.
//! Included by the healing and fail point tests with
//! `#[path = "support/heal_cluster.rs"] mod heal_cluster;` next to `mod support;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::{free_port, master_args, test_dir, wait_alive, wait_for, Proc};

/// Copies every chunk of the tests' buckets gets.
pub const R: usize = 3;

/// The running cluster; dropping it kills every process.
pub struct HealCluster {
    _dir: Option<tempfile::TempDir>,
    /// Where every process keeps its data and log.
    pub root: PathBuf,
    /// The master's address (`host:port`).
    pub master: String,
    _m: Proc,
    /// Chunkserver processes by index (`chunkserver-i`).
    pub cs: BTreeMap<usize, Proc>,
    /// Their data addresses.
    pub addrs: BTreeMap<usize, String>,
    /// Flags every chunkserver gets on top of the defaults.
    cs_extra: Vec<String>,
}

impl HealCluster {
    /// Start the master (with `extra_master` flags too) and chunkservers 1..=n (with
    /// `extra_cs` too); return once all n are alive.
    pub async fn start(n: usize, extra_master: &[&str], extra_cs: &[&str]) -> HealCluster {
        let (dir, root) = test_dir();
        let (mp, ma) = (free_port(), free_port());
        let master = format!("127.0.0.1:{mp}");
        let mut margs = master_args(1, &root, mp, ma, &format!("1={master}"), false);
        // Short leases, sweeps and garbage-collection delays, so healing and collection
        // happen within seconds.
        for a in [
            "--lease-ms",
            "1000",
            "--dead-after-ms",
            "3000",
            "--heal-interval-ms",
            "200",
            "--gc-grace-ms",
            "500",
            "--touch-after-ms",
            "2000",
            "--clock-skew-ms",
            "0",
        ]
        .iter()
        .chain(extra_master)
        {
            margs.push(a.to_string());
        }
        let m = Proc::spawn(&root, "master-1", margs);
        let mut c = HealCluster {
            _dir: dir,
            root,
            master,
            _m: m,
            cs: BTreeMap::new(),
            addrs: BTreeMap::new(),
            cs_extra: extra_cs.iter().map(|s| s.to_string()).collect(),
        };
        for i in 1..=n {
            c.add_chunkserver(i);
        }
        c.wait_alive(n).await;
        c
    }

    /// Data directory of `chunkserver-i`.
    pub fn cs_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("chunkserver-{i}"))
    }

    /// Start `chunkserver-i` (does not wait for it).
    pub fn add_chunkserver(&mut self, i: usize) {
        let addr = format!("127.0.0.1:{}", free_port());
        self.addrs.insert(i, addr.clone());
        let mut args: Vec<String> = [
            "chunkserver",
            "--data",
            &self.cs_dir(i).display().to_string(),
            "--listen",
            &addr,
            "--admin-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--masters",
            &self.master,
            "--rack",
            &format!("rack-{i}"),
            "--heartbeat-ms",
            "200",
            "--full-report-secs",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.cs_extra.iter().cloned());
        args.extend(crate::support::tls_args(
            anode_tls::Role::Chunkserver,
            &i.to_string(),
        ));
        let p = Proc::spawn(&self.root, &format!("chunkserver-{i}"), args);
        self.cs.insert(i, p);
    }

    /// `anode ctl status --json` of the master, if it answers.
    pub async fn status(&self) -> Option<serde_json::Value> {
        anode_master::ctl::status(&crate::support::admin_masters(std::slice::from_ref(
            &self.master,
        )))
        .await
        .ok()
    }

    /// Wait until exactly `n` chunkservers are alive.
    pub async fn wait_alive(&self, n: usize) {
        wait_alive(
            &self.master,
            n,
            "chunkservers alive",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Number of good on-disk copies of `sha` among chunkservers `among`.
    pub fn good_copies(&self, sha: &str, among: &[usize]) -> usize {
        among
            .iter()
            .filter(|i| {
                blob_path(&self.cs_dir(**i), sha)
                    .is_some_and(|p| std::fs::read(p).is_ok_and(|b| sha_hex(&b) == sha))
            })
            .count()
    }

    /// Wait until every chunk has exactly R good copies among `among` and the master agrees;
    /// returns how long that took.
    pub async fn wait_healthy(
        &self,
        shas: &[String],
        among: &[usize],
        within: Duration,
    ) -> Duration {
        let t0 = Instant::now();
        wait_for("every chunk at R copies", within, || async {
            let st = self.status().await?;
            let ok_master = st["under_replicated_chunks"] == 0
                && st["locations_complete"] == true
                && st["lost_chunks"] == 0;
            if !ok_master {
                return None;
            }
            let bad: Vec<(&String, usize)> = shas
                .iter()
                .map(|s| (s, self.good_copies(s, among)))
                .filter(|(_, n)| *n != R)
                .collect();
            if !bad.is_empty() {
                eprintln!("{} chunks not at {R} copies, e.g. {:?}", bad.len(), bad[0]);
                return None;
            }
            Some(())
        })
        .await;
        t0.elapsed()
    }
}

/// Hex SHA-256 of `b` (a chunk's id).
pub fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The blob file of `sha` under a chunkserver data dir (not in `corrupt/`), if present.
pub fn blob_path(dir: &Path, sha: &str) -> Option<PathBuf> {
    let p = dir
        .join("blobs")
        .join(&sha[0..2])
        .join(&sha[2..4])
        .join(sha);
    p.exists().then_some(p)
}
