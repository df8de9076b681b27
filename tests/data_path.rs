//! Multi-process test of the direct data path: 1 master + 4 real `anode chunkserver`
//! processes, the Rust client writing and reading objects of awkward sizes, a `kill -9` of a
//! chunkserver, a corrupted blob file on disk, and a full small-capacity server.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anode_client::{Client, ClientConfig, PutOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use support::*;

const CHUNK: usize = 1 << 20;

struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    master: String,
    _m: Proc,
    cs: Vec<Proc>,
}

async fn start_cluster(n_cs: usize, small: Option<u64>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    eprintln!("cluster dir {}", root.display());
    let (mp, ma) = (free_port(), free_port());
    let master = format!("127.0.0.1:{mp}");
    let mut margs = master_args(1, &root, mp, ma, &format!("1={master}"), false);
    margs.extend([
        "--lease-ms".into(),
        "1500".into(),
        "--dead-after-ms".into(),
        "4000".into(),
    ]);
    let m = Proc::spawn(&root, "master-1", margs);
    let cs = (1..=n_cs)
        .map(|i| {
            let cap = if i == n_cs { small } else { None };
            Proc::spawn(
                &root,
                &format!("chunkserver-{i}"),
                chunkserver_args(&root, i, &master, cap),
            )
        })
        .collect();
    let c = Cluster {
        _dir: dir,
        root,
        master,
        _m: m,
        cs,
    };
    wait_alive(
        &c.master,
        n_cs,
        "chunkservers registered and alive",
        Duration::from_secs(30),
    )
    .await;
    c
}

async fn client(c: &Cluster) -> Client {
    let cfg = ClientConfig {
        chunk_size_bytes: CHUNK,
        ..support::client_config()
    };
    Client::with_config(vec![c.master.clone()], cfg)
        .await
        .unwrap()
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

async fn read_all(cl: &Client, bucket: &str, key: &str, range: Option<(u64, u64)>) -> Vec<u8> {
    let (_, s) = cl.get_object(bucket, key, range).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

/// Blob files of `sha` under a chunkserver data dir (fan-out layout is the chunkserver's).
fn find_blob(dir: &Path, hex: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("corrupt") {
                    stack.push(p);
                }
            } else if p.file_name().and_then(|n| n.to_str()) == Some(hex) {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_ranges_kill_and_corruption() {
    let mut c = start_cluster(4, None).await;
    let cl = client(&c).await;
    cl.create_bucket("data", 3, "").await.unwrap();
    let sizes = [
        0usize,
        1,
        1024,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK + 7,
        100 << 20,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let b = body(n, i as u8);
        let key = format!("obj-{n}");
        let m = cl
            .put_object_bytes("data", &key, Bytes::from(b.clone()), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(m.size, n as u64);
        let got = read_all(&cl, "data", &key, None).await;
        assert!(got == b, "object of {n} bytes differs");
        if n > 10 {
            for (s, e) in [
                (0, 0),
                (1, n as u64 / 2),
                (n as u64 - 1, n as u64 - 1),
                (CHUNK as u64 / 2, (CHUNK as u64 * 2).min(n as u64 - 1)),
            ] {
                if s <= e && e < n as u64 {
                    let got = read_all(&cl, "data", &key, Some((s, e))).await;
                    assert_eq!(got, &b[s as usize..=e as usize], "range {s}-{e} of {n}");
                }
            }
        }
    }

    // kill -9 one chunkserver: every object still reads; new writes go to the others.
    c.cs[0].kill9();
    for (i, &n) in sizes.iter().enumerate().take(7) {
        let got = read_all(&cl, "data", &format!("obj-{n}"), None).await;
        assert!(
            got == body(n, i as u8),
            "after kill: object of {n} bytes differs"
        );
    }
    wait_alive(
        &c.master,
        3,
        "killed chunkserver declared not alive",
        Duration::from_secs(30),
    )
    .await;
    let b = body(3 * CHUNK, 99);
    cl.put_object_bytes(
        "data",
        "after-kill",
        Bytes::from(b.clone()),
        PutOptions::default(),
    )
    .await
    .unwrap();
    assert!(read_all(&cl, "data", "after-kill", None).await == b);

    // Corrupt one copy of a chunk on disk: the read still returns the right bytes.
    let b = body(CHUNK, 7);
    let sha = hex::encode(Sha256::digest(&b));
    cl.put_object_bytes(
        "data",
        "victim",
        Bytes::from(b.clone()),
        PutOptions::default(),
    )
    .await
    .unwrap();
    let copies: Vec<PathBuf> = (2..=4)
        .flat_map(|i| find_blob(&c.root.join(format!("chunkserver-{i}")), &sha))
        .collect();
    assert_eq!(copies.len(), 3, "expected 3 copies of {sha}");
    for copy in &copies[..2] {
        std::fs::write(copy, vec![0u8; CHUNK]).unwrap();
    }
    for _ in 0..3 {
        let got = read_all(&cl, "data", "victim", None).await;
        assert!(
            got == b,
            "read of a partly corrupted object returned wrong bytes"
        );
    }
    // Readers that hit a bad copy report it; the scrubber (1 s passes here) finds the rest.
    // The master orders repair through heartbeats and both files hold the right bytes again.
    let bad: Vec<PathBuf> = copies[..2].to_vec();
    wait_for("corrupted copies repaired", Duration::from_secs(30), || {
        let (bad, b) = (bad.clone(), b.clone());
        async move {
            bad.iter()
                .all(|p| std::fs::read(p).map(|d| d == b).unwrap_or(false))
                .then_some(())
        }
    })
    .await;
    if std::env::var_os("ANODE_KEEP_TEST_DIR").is_some() {
        std::mem::forget(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_small_server_refuses_cleanly() {
    // 4 servers, the 4th capped at 3 MiB; R=3 on 4 servers, so writes still find 3 targets
    // when the small one is full, and nothing corrupt is ever read.
    let c = start_cluster(4, Some(3 << 20)).await;
    let cl = client(&c).await;
    cl.create_bucket("fill", 3, "").await.unwrap();
    let mut stored = Vec::new();
    for i in 0..12u8 {
        let b = body(2 * CHUNK, i);
        let key = format!("f{i}");
        match cl
            .put_object_bytes("fill", &key, Bytes::from(b.clone()), PutOptions::default())
            .await
        {
            Ok(_) => stored.push((key, b)),
            Err(e) => panic!("put {key} failed although 3 servers have room: {e}"),
        }
    }
    for (key, b) in &stored {
        assert!(
            read_all(&cl, "fill", key, None).await == *b,
            "{key} differs"
        );
    }
    // The small server holds at most its capacity.
    let small = c.root.join("chunkserver-4");
    let used: u64 = walk_size(&small.join("blobs"));
    assert!(
        used <= 3 << 20,
        "small server stores {used} bytes, over its 3 MiB capacity"
    );
}

fn walk_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            n += walk_size(&path);
        } else {
            n += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    n
}
