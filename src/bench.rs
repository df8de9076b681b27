//! `anode bench`: the project's own load tools.
//!
//! - `anode bench meta`: manifests committed per second through the master group (inline
//!   1-byte manifests, so the figure is raft + RocksDB + gRPC, no chunk IO).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_proto::*;

/// Flags of `anode bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub cmd: BenchCmd,
}

/// Benchmarks.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCmd {
    /// Metadata write throughput: PutObject manifests committed per second.
    Meta {
        /// Master addresses.
        #[arg(
            long,
            env = "ANODE_MASTERS",
            value_delimiter = ',',
            default_value = "127.0.0.1:7001"
        )]
        masters: Vec<String>,
        /// Concurrent writers.
        #[arg(long, default_value_t = 1)]
        writers: usize,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Bucket to write into (created if missing).
        #[arg(long, default_value = "bench-meta")]
        bucket: String,
    },
    /// Client-library data throughput: PUT then GET of same-size objects.
    Client {
        /// Master addresses.
        #[arg(
            long,
            env = "ANODE_MASTERS",
            value_delimiter = ',',
            default_value = "127.0.0.1:7001"
        )]
        masters: Vec<String>,
        /// Object size in bytes.
        #[arg(long, default_value_t = 4096)]
        size: usize,
        /// Concurrent operations.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Objects to put (then get).
        #[arg(long, default_value_t = 200)]
        objects: usize,
        /// Bucket (created if missing), replication 3.
        #[arg(long, default_value = "bench-client")]
        bucket: String,
    },
}

/// Run a benchmark and print its figures as one JSON line.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.cmd {
        BenchCmd::Meta {
            masters,
            writers,
            seconds,
            bucket,
        } => meta(masters, writers, seconds, bucket).await,
        BenchCmd::Client {
            masters,
            size,
            concurrency,
            objects,
            bucket,
        } => client(masters, size, concurrency, objects, bucket).await,
    }
}

async fn meta(
    masters: Vec<String>,
    writers: usize,
    seconds: u64,
    bucket: String,
) -> anyhow::Result<()> {
    let b = bucket.clone();
    let created = anode_master::ctl::call_leader(&masters, |mut c| {
        let name = b.clone();
        async move {
            c.create_bucket(CreateBucketRequest {
                name,
                replication: 0,
                owner_access_key: String::new(),
            })
            .await
        }
    })
    .await;
    if let Err(e) = created {
        anyhow::ensure!(
            e.to_string().contains("BucketAlready"),
            "create bucket: {e}"
        );
    }
    // Find the leader once; writers talk to it directly (one channel each).
    let leader = find_leader(&masters).await?;
    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let lat_us = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (ok, err, lat_us, bucket, leader) = (
            ok.clone(),
            err.clone(),
            lat_us.clone(),
            bucket.clone(),
            leader.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{leader}"))?
                .connect()
                .await?;
            let mut c = anode_proto::master_client::MasterClient::new(ch);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let req = PutObjectRequest {
                    bucket: bucket.clone(),
                    key: format!("w{w}/k{i}"),
                    manifest: Some(Manifest {
                        version: MANIFEST_VERSION,
                        size: 1,
                        etag: "x".into(),
                        inline_data: vec![b'x'],
                        ..Default::default()
                    }),
                    if_match_etag: None,
                };
                let t = Instant::now();
                match c.put_object(req).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        lat_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        err.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = ok.load(Ordering::Relaxed);
    let per_sec = n as f64 / seconds as f64;
    let mean_ms = if n > 0 {
        lat_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
    } else {
        0.0
    };
    println!(
        "{{\"bench\":\"meta\",\"writers\":{writers},\"seconds\":{seconds},\"committed\":{n},\"errors\":{},\"per_sec\":{per_sec:.1},\"mean_latency_ms\":{mean_ms:.2}}}",
        err.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn find_leader(masters: &[String]) -> anyhow::Result<String> {
    let st = anode_master::ctl::status(masters).await?;
    let id = st["leader_id"].as_u64().unwrap_or(0);
    st["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"].as_u64() == Some(id))
        .and_then(|m| m["addr"].as_str().map(String::from))
        .ok_or_else(|| anyhow::anyhow!("no leader"))
}

async fn client(
    masters: Vec<String>,
    size: usize,
    concurrency: usize,
    objects: usize,
    bucket: String,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let cl = anode_client::Client::connect(masters).await?;
    if let Err(e) = cl.create_bucket(&bucket, 3, "").await {
        anyhow::ensure!(e.code().starts_with("BucketAlready"), "create bucket: {e}");
    }
    let body = bytes::Bytes::from((0..size).map(|i| (i * 7 + size) as u8).collect::<Vec<u8>>());
    let run = |get: bool| {
        let (cl, body, bucket) = (cl.clone(), body.clone(), bucket.clone());
        async move {
            let t = Instant::now();
            let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..objects)
                .map(|i| {
                    let (cl, body, bucket) = (cl.clone(), body.clone(), bucket.clone());
                    async move {
                        let key = format!("o{size}/{i}");
                        if get {
                            let (_, mut s) = cl.get_object(&bucket, &key, None).await?;
                            let mut n = 0;
                            while let Some(piece) = s.next().await {
                                n += piece?.len();
                            }
                            anyhow::ensure!(n == size, "short read");
                        } else {
                            cl.put_object_bytes(
                                &bucket,
                                &key,
                                body,
                                anode_client::PutOptions::default(),
                            )
                            .await?;
                        }
                        anyhow::Ok(())
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let errors = results.iter().filter(|r| r.is_err()).count();
            (t.elapsed(), errors)
        }
    };
    for (name, get) in [("put", false), ("get", true)] {
        let (took, errors) = run(get).await;
        let secs = took.as_secs_f64();
        println!(
            "{{\"bench\":\"client\",\"op\":\"{name}\",\"size\":{size},\"concurrency\":{concurrency},\"objects\":{objects},\"errors\":{errors},\"ops_per_sec\":{:.1},\"mb_per_sec\":{:.1}}}",
            objects as f64 / secs,
            (objects * size) as f64 / secs / 1e6
        );
    }
    Ok(())
}
