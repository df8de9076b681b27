//! Time one leader healing sweep (`LeaderControl::sweep`) over a realistic chunk table, and
//! how long the control lock is held for it.
//!
//! `cargo bench -p anode-master --bench sweep` (release profile). Sizes default to 100k and
//! 1M chunk records; `SWEEP_BENCH_CHUNKS=100000,1000000` overrides them. The state is built
//! with the real state machine (`state::apply` of PutObject commands, 1000 chunks per
//! object, replication 3) on a `MemKv`, then copied into a RocksDB `RaftStore` so the sweep
//! also runs over the production view (`RaftStore::view`). Ten chunkservers in five racks
//! hold three copies of every chunk and have sent full reports; 1% of the chunks miss one
//! reported copy, so the planner has repairs to plan.

use std::time::{Duration, Instant};

use anode_master::store::RaftStore;
use anode_meta::control::{ChunkTable, HealConfig, HeartbeatStep, LeaderControl};
use anode_meta::kv::{KvRead, MemKv, Mutation};
use anode_meta::leases::LeaseConfig;
use anode_meta::state;
use anode_proto::command::Op;
use anode_proto::*;
use sha2::{Digest, Sha256};

const SERVERS: u64 = 10;
const CHUNKS_PER_OBJECT: usize = 1000;
const ROUNDS: usize = 5;

fn apply(kv: &mut MemKv, index: u64, op: Op) -> CommandResult {
    let cmd = Command {
        version: COMMAND_VERSION,
        now_ms: 1,
        session: None,
        op: Some(op),
    };
    let (muts, res) = state::apply(kv, index, &cmd);
    assert!(res.error.is_none(), "{:?}", res.error);
    kv.apply(&muts);
    res
}

fn sha(i: usize) -> Vec<u8> {
    Sha256::digest((i as u64).to_le_bytes()).to_vec()
}

/// The state machine with `n` referenced chunk records, and each server's reported chunks.
fn build(n: usize) -> (MemKv, Vec<u64>, Vec<Vec<Vec<u8>>>) {
    let mut kv = MemKv::new();
    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };
    let mut ids = Vec::new();
    for s in 0..SERVERS {
        let res = apply(
            &mut kv,
            next(),
            Op::RegisterChunkserver(RegisterChunkserverCmd {
                addr: format!("cs-{s}:9000"),
                rack: format!("rack-{}", s % 5),
                capacity_bytes: 1 << 40,
                uuid: format!("uuid-{s}"),
            }),
        );
        ids.push(res.chunkserver_id);
    }
    apply(
        &mut kv,
        next(),
        Op::CreateBucket(CreateBucketCmd {
            config: Some(BucketConfig {
                version: RECORD_VERSION,
                name: "bkt".into(),
                replication: 3,
                ..Default::default()
            }),
        }),
    );
    let mut reported: Vec<Vec<Vec<u8>>> = vec![Vec::new(); ids.len()];
    let mut i = 0;
    let mut obj = 0;
    while i < n {
        let mut chunks = Vec::new();
        while chunks.len() < CHUNKS_PER_OBJECT && i < n {
            let s = sha(i);
            let holders: Vec<usize> = (0..3).map(|k| (i + k) % ids.len()).collect();
            for (k, h) in holders.iter().enumerate() {
                // 1% of the chunks miss their third copy: repairs to plan.
                if !(k == 2 && i % 100 == 0) {
                    reported[*h].push(s.clone());
                }
            }
            chunks.push(ChunkRef {
                sha256: s,
                length: 4 << 20,
                servers: holders.iter().map(|h| ids[*h]).collect(),
                uploaded_ms: 1,
            });
            i += 1;
        }
        let size = chunks.iter().map(|c| c.length).sum();
        apply(
            &mut kv,
            next(),
            Op::PutObject(PutObjectCmd {
                parquet: None,
                parquet_copy: None,
                bucket: "bkt".into(),
                key: format!("obj-{obj:08}"),
                manifest: Some(Manifest {
                    version: MANIFEST_VERSION,
                    size,
                    chunks,
                    ..Default::default()
                }),
                if_match_etag: None,
                source: String::new(),
            }),
        );
        obj += 1;
    }
    let per_server = (n as u64 * 3 / SERVERS) * (4 << 20);
    for id in &ids {
        apply(
            &mut kv,
            next(),
            Op::ChunkserverUpdate(ChunkserverUpdateCmd {
                id: *id,
                epoch: 1,
                capacity_bytes: 1 << 44,
                used_bytes: per_server,
                chunks: n as u64 * 3 / SERVERS,
                disk_full: false,
            }),
        );
    }
    (kv, ids, reported)
}

fn control(kv: &dyn KvRead, ids: &[u64], reported: &[Vec<Vec<u8>>]) -> LeaderControl {
    let mut c = LeaderControl::new(LeaseConfig::default(), HealConfig::default());
    c.observe_leadership(1, 0);
    for (id, chunks) in ids.iter().zip(reported) {
        let r = HeartbeatRequest {
            id: *id,
            epoch: 1,
            added: chunks.clone(),
            full_report: true,
            ..Default::default()
        };
        let HeartbeatStep::Accept { epoch, .. } = c.heartbeat_begin(kv, &r, 0, 0) else {
            panic!("heartbeat refused");
        };
        c.heartbeat_finish(kv, &r, epoch, 0);
    }
    c
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sweep `ROUNDS` times; print the median and max time the control lock is held.
fn measure(label: &str, n: usize, kv: &dyn KvRead, ids: &[u64], reported: &[Vec<Vec<u8>>]) {
    let mut c = control(kv, ids, reported);
    let mut locked = Vec::new();
    let mut total = Vec::new();
    let mut planned = 0;
    for round in 0..ROUNDS {
        let mono = 1 + round as u64;
        // As `MasterService::heal_once`: the scan without the lock, the rest under it.
        let t0 = Instant::now();
        let table = ChunkTable::scan(kv);
        let t1 = Instant::now();
        let out = c.sweep_scanned(kv, &table, mono, 2);
        let t2 = Instant::now();
        assert_eq!(table.len(), n);
        planned += out.tasks_planned;
        locked.push(t2 - t1);
        total.push(t2 - t0);
    }
    locked.sort();
    total.sort();
    println!(
        "{label:>8} {n:>8} chunks: lock held {:>8.1} ms (median of {ROUNDS}, max {:.1}), \
         whole sweep {:>8.1} ms; {planned} tasks planned",
        ms(locked[ROUNDS / 2]),
        ms(locked[ROUNDS - 1]),
        ms(total[ROUNDS / 2]),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: ignore arguments.
    let sizes: Vec<usize> = std::env::var("SWEEP_BENCH_CHUNKS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SWEEP_BENCH_CHUNKS: comma-separated counts")
        })
        .collect();
    for n in sizes {
        let t0 = Instant::now();
        let (kv, ids, reported) = build(n);
        let chunk_records = state::scan_chunks(&kv, &[], usize::MAX).len();
        assert_eq!(chunk_records, n);
        println!(
            "built {n} chunk records in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        measure("MemKv", n, &kv, &ids, &reported);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RaftStore::open(dir.path()).expect("open store");
        store.bootstrap(vec![1]).expect("bootstrap");
        let muts: Vec<Mutation> = kv
            .map
            .iter()
            .map(|(k, v)| Mutation::Put(k.clone(), v.clone()))
            .collect();
        store.commit_apply(&muts, 1, 1, None).expect("write state");
        drop(muts);
        measure("RocksDB", n, &store.view(), &ids, &reported);
    }
}
