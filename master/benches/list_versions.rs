//! ListObjects of current versions, before and after object versioning (issue 14): 1,000-key
//! pages from a bucket of `LIST_BENCH_KEYS` keys (default 1,000,000) in a RocksDB `RaftStore`,
//! once unversioned (each key one `o/` record, as before versioning) and once with
//! `LIST_BENCH_VERSIONS` versions per key (default 3: the current one under `o/`, the older
//! ones and a delete marker on every tenth key under `v/`). The listing reads `o/` only, so
//! the two should match; the versions listing (`list_object_versions`) is timed beside them.
//!
//! `cargo bench -p anode-master --bench list_versions` (release profile). Prints per-page
//! median and p99 for pages from 200 random start keys and for 200 consecutive pages.

use std::time::{Duration, Instant};

use anode_master::store::RaftStore;
use anode_meta::kv::Mutation;
use anode_meta::state;
use anode_proto::*;
use prost::Message;

const PAGES: usize = 200;

fn key(i: usize) -> String {
    format!("dir{:03}/object-{i:08}.bin", i % 1000)
}

fn manifest(i: usize, seq: u64, version_id: String, marker: bool) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        size: if marker { 0 } else { 4096 + i as u64 },
        etag: if marker {
            String::new()
        } else {
            format!("{:032x}", i)
        },
        content_type: "application/octet-stream".into(),
        mtime_ms: 1_700_000_000_000 + seq,
        object_version: seq >> 16,
        version_seq: seq,
        version_id,
        delete_marker: marker,
        chunks: if marker {
            Vec::new()
        } else {
            vec![ChunkRef {
                sha256: vec![(i % 251) as u8; 32],
                length: 4096,
                servers: vec![1, 2, 3],
                uploaded_ms: 0,
            }]
        },
        ..Default::default()
    }
}

/// A store holding bucket `bench` with `keys` keys of `versions` versions each.
fn build(dir: &std::path::Path, keys: usize, versions: usize) -> RaftStore {
    let store = RaftStore::open(dir).expect("open store");
    store.bootstrap(vec![1]).expect("bootstrap");
    let bucket = BucketConfig {
        version: RECORD_VERSION,
        name: "bench".into(),
        versioning_state: u32::from(versions > 1),
        ..Default::default()
    };
    let mut muts = vec![Mutation::Put(b"b/bench".to_vec(), bucket.encode_to_vec())];
    let started = Instant::now();
    for i in 0..keys {
        let k = key(i);
        for v in 0..versions {
            // Version v of the key: seq grows with v; the last one is current.
            let seq = ((v as u64 + 1) << 32) | i as u64;
            let current = v + 1 == versions;
            let marker = versions > 1 && !current && v == versions - 2 && i % 10 == 0;
            let vid = if versions > 1 {
                format!("{seq:016x}")
            } else {
                String::new()
            };
            let m = manifest(i, seq, vid, marker);
            let rk = if current {
                [b"o/bench\0".as_slice(), k.as_bytes()].concat()
            } else {
                [
                    b"v/bench\0".as_slice(),
                    k.as_bytes(),
                    b"\0",
                    &(!seq).to_be_bytes(),
                ]
                .concat()
            };
            muts.push(Mutation::Put(rk, m.encode_to_vec()));
        }
        if muts.len() >= 100_000 {
            store.commit_apply(&muts, 1, 1, None).expect("write");
            muts.clear();
        }
    }
    store.commit_apply(&muts, 1, 1, None).expect("write");
    eprintln!(
        "built {keys} keys x {versions} versions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store
}

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    format!(
        "median {:.2} ms, p99 {:.2} ms",
        ms(d[d.len() / 2]),
        ms(d[(d.len() * 99 / 100).min(d.len() - 1)])
    )
}

fn measure(store: &RaftStore, keys: usize, label: &str) {
    let view = store.view();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let page = |start_after: String| ListObjectsRequest {
        bucket: "bench".into(),
        start_after,
        max_keys: 1000,
        ..Default::default()
    };
    // Random start keys.
    let mut random = Vec::new();
    for _ in 0..PAGES {
        let start = key(next() as usize % keys);
        let t = Instant::now();
        let r = state::list_objects(&view, &page(start)).expect("list");
        random.push(t.elapsed());
        assert!(!r.objects.is_empty());
    }
    // Consecutive pages from the start.
    let mut seq = Vec::new();
    let mut after = String::new();
    for _ in 0..PAGES {
        let t = Instant::now();
        let r = state::list_objects(&view, &page(after.clone())).expect("list");
        seq.push(t.elapsed());
        assert_eq!(r.objects.len(), 1000);
        after = r.next_start_after;
    }
    // The versions listing, consecutive pages.
    let mut vers = Vec::new();
    let (mut km, mut vm) = (String::new(), String::new());
    for _ in 0..PAGES {
        let req = ListObjectVersionsRequest {
            bucket: "bench".into(),
            key_marker: km.clone(),
            version_id_marker: vm.clone(),
            max_keys: 1000,
            ..Default::default()
        };
        let t = Instant::now();
        let r = state::list_object_versions(&view, &req).expect("versions");
        vers.push(t.elapsed());
        km = r.next_key_marker;
        vm = r.next_version_id_marker;
    }
    println!(
        "{label}: ListObjects 1000-key pages, random starts: {}",
        stats(random)
    );
    println!(
        "{label}: ListObjects 1000-key pages, consecutive:   {}",
        stats(seq)
    );
    println!(
        "{label}: ListObjectVersions 1000-entry pages:        {}",
        stats(vers)
    );
}

fn main() {
    let keys: usize = std::env::var("LIST_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let versions: usize = std::env::var("LIST_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let before = tempfile::tempdir().expect("tempdir");
    let s = build(before.path(), keys, 1);
    measure(&s, keys, "unversioned (before)");
    drop(s);
    let after = tempfile::tempdir().expect("tempdir");
    let s = build(after.path(), keys, versions);
    measure(&s, keys, &format!("{versions} versions per key (after)"));
}
