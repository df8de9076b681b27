//! Multi-process test of the direct data path: 1 master + 4 real `anode chunkserver`
//! processes, the Rust client writing and reading objects of awkward sizes, a `kill -9` of a
//! chunkserver, a corrupted blob file on disk (whole and one flipped byte read by range), and a
//! full small-capacity server.

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

async fn start_cluster(n_cs: usize, small: Option<u64>, cs_extra: &[&str]) -> Cluster {
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
            let mut args = chunkserver_args(&root, i, &master, cap);
            args.extend(cs_extra.iter().map(|a| a.to_string()));
            Proc::spawn(&root, &format!("chunkserver-{i}"), args)
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
    let mut c = start_cluster(4, None, &[]).await;
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

/// Ranged reads are checked against per-block sums: with one byte flipped in two of three
/// copies, a range that does not cover the byte's block is served by every copy (the bad
/// copies stay where they are), a range that covers it fails over to the good copy with the
/// right bytes, and the bad copies are quarantined, reported and repaired through the master.
/// The scrubber is off, so only reads find the damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_byte_fails_only_the_ranges_over_its_block() {
    let c = start_cluster(3, None, &["--scrub-bytes-per-sec", "0"]).await;
    let cl = client(&c).await;
    cl.create_bucket("blocks", 3, "").await.unwrap();
    // Three identical chunks: one blob, and the spans of chunks 0, 1, 2 start on different
    // replicas (the reader rotates replicas by chunk index), so every copy gets asked first.
    let chunk = body(CHUNK, 42);
    let sha = hex::encode(Sha256::digest(&chunk));
    let object = chunk.repeat(3);
    cl.put_object_bytes(
        "blocks",
        "o",
        Bytes::from(object.clone()),
        PutOptions::default(),
    )
    .await
    .unwrap();
    let copies: Vec<PathBuf> = (1..=3)
        .flat_map(|i| find_blob(&c.root.join(format!("chunkserver-{i}")), &sha))
        .collect();
    assert_eq!(copies.len(), 3, "expected 3 copies of {sha}");
    let flip_at = 300_000u64; // block 4 of 64 KiB blocks
    for copy in &copies[..2] {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(copy).unwrap();
        f.write_at(&[chunk[flip_at as usize] ^ 0x10], flip_at)
            .unwrap();
        f.sync_all().unwrap();
    }
    let in_chunk = |i: u64, a: u64, b: u64| (i * CHUNK as u64 + a, i * CHUNK as u64 + b);
    // Blocks 0-3 and 5-: untouched, served by whichever copy is asked.
    for i in 0..3 {
        for (a, b) in [in_chunk(i, 10, 200_000), in_chunk(i, 400_000, 900_000)] {
            let got = read_all(&cl, "blocks", "o", Some((a, b))).await;
            assert!(got == object[a as usize..=b as usize], "range {a}-{b}");
        }
    }
    let still: Vec<PathBuf> = (1..=3)
        .flat_map(|i| find_blob(&c.root.join(format!("chunkserver-{i}")), &sha))
        .collect();
    assert_eq!(
        still.len(),
        3,
        "a range away from the bad block quarantined a copy"
    );
    // Ranges over block 4: the bad copies are refused, the good one serves (twice round, in
    // case the master's answer changed between reads).
    for i in [0, 1, 2, 0, 1, 2] {
        let (a, b) = in_chunk(i, flip_at - 5, flip_at + 5);
        let got = read_all(&cl, "blocks", "o", Some((a, b))).await;
        assert!(got == object[a as usize..=b as usize], "range {a}-{b}");
    }
    // Both bad copies were hit, moved out of blobs/ and reported; the master has them
    // copied back from the good one.
    let bad: Vec<PathBuf> = copies[..2].to_vec();
    wait_for("bad copies repaired", Duration::from_secs(30), || {
        let (bad, chunk) = (bad.clone(), chunk.clone());
        async move {
            bad.iter()
                .all(|p| std::fs::read(p).map(|d| d == chunk).unwrap_or(false))
                .then_some(())
        }
    })
    .await;
    for i in 1..=3 {
        let corrupt = c.root.join(format!("chunkserver-{i}")).join("corrupt");
        let n = std::fs::read_dir(&corrupt).map(|d| d.count()).unwrap_or(0);
        let was_bad = copies[..2]
            .iter()
            .any(|p| p.starts_with(c.root.join(format!("chunkserver-{i}"))));
        assert_eq!(n > 0, was_bad, "{}", corrupt.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_small_server_refuses_cleanly() {
    // 4 servers, the 4th capped at 3 MiB; R=3 on 4 servers, so writes still find 3 targets
    // when the small one is full, and nothing corrupt is ever read.
    let c = start_cluster(4, Some(3 << 20), &[]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_puts_land_whole_or_not_at_all() {
    // `PutObjects` through a real master: 1,000 inline objects in one command, read back
    // one by one; a batch the master refuses (one bad key) writes none of its objects.
    let c = start_cluster(1, None, &[]).await;
    let cl = client(&c).await;
    cl.create_bucket("bulk", 1, "").await.unwrap();
    let objects: Vec<(String, Bytes)> = (0..1000u32)
        .map(|i| {
            (
                format!("k{i:04}"),
                Bytes::from(body(i as usize % 700, i as u8)),
            )
        })
        .collect();
    assert_eq!(
        cl.put_small_objects("bulk", objects.clone()).await.unwrap(),
        1000
    );
    for (key, b) in objects.iter().step_by(97) {
        assert_eq!(read_all(&cl, "bulk", key, None).await, b.to_vec(), "{key}");
        let m = cl.head_object("bulk", key).await.unwrap();
        assert_eq!(
            m.etag,
            hex::encode(<md5::Md5 as sha2::Digest>::digest(b)),
            "{key}"
        );
    }
    let listed: Vec<_> = cl.list_all("bulk", "").try_collect().await.unwrap();
    assert_eq!(listed.len(), 1000);
    let bad = vec![
        ("new-1".to_string(), Bytes::from_static(b"x")),
        (String::new(), Bytes::from_static(b"y")),
    ];
    assert!(cl.put_small_objects("bulk", bad).await.is_err());
    assert!(
        cl.head_object("bulk", "new-1").await.is_err(),
        "nothing of a refused batch lands"
    );
    // Bodies over the inline limit are refused before anything is sent.
    let big = vec![("big".to_string(), Bytes::from(vec![0u8; 1 << 20]))];
    assert!(cl.put_small_objects("bulk", big).await.is_err());
}
