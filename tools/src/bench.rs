//! `anode-tools bench`: the project's own load tools.
//!
//! - `anode-tools bench meta`: manifests committed per second through the master group
//!   (inline 1-byte manifests, so the figure is raft + RocksDB + gRPC, no chunk IO).
//! - `anode-tools bench client`: PUT then GET through the Rust client library.
//! - `anode-tools bench s3`: PUT then GET through an S3 endpoint, signed like a real client
//!   (SigV4 with the gateway crate's signing code, via `crate::s3http`), one keep-alive
//!   HTTP/1.1 connection per concurrent worker, every GET body verified.
//! - `anode-tools bench suite` / `bench compare`: see `crate::suite`.
//! - `anode-tools bench parquet`: a query engine's reads of a Parquet dataset, plain and
//!   through the pruned listing (`crate::bench_parquet`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_proto::*;

pub use crate::s3http::PayloadHash;
use crate::s3http::{header_str, S3Conn, Signer};

/// Flags of `anode-tools bench`.
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
        /// Mutual TLS (`--certs-dir`, a client certificate) or `--insecure-no-tls`.
        #[command(flatten)]
        tls: anode_tls::TlsArgs,
        /// Concurrent writers.
        #[arg(long, default_value_t = 1)]
        writers: usize,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Bucket to write into (created if missing).
        #[arg(long, default_value = "bench-meta")]
        bucket: String,
        /// Send every commit with a client session (as the client library does), to measure
        /// what the exactly-once bookkeeping costs.
        #[arg(long)]
        sessions: bool,
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
        /// Mutual TLS (`--certs-dir`, a client certificate) or `--insecure-no-tls`.
        #[command(flatten)]
        tls: anode_tls::TlsArgs,
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
    /// S3 endpoint throughput: signed PUT then GET of same-size objects (bodies verified).
    S3(S3BenchArgs),
    /// The benchmark matrix against any S3 endpoint, written as JSON (`crate::suite`).
    Suite(crate::suite::SuiteArgs),
    /// Ratios of two `bench suite` result files, cell by cell.
    Compare(crate::suite::CompareArgs),
    /// Build a large bucket of small inline objects (metadata at scale).
    Fill(crate::bench_scale::FillArgs),
    /// LIST page latency of a bucket built by `fill`, with or without a delimiter.
    List(crate::bench_scale::ListArgs),
    /// A query engine's reads of a Parquet dataset: plain S3 (footers, statistics, ranged
    /// GETs) against the pruned listing (`x-anode-where`), with the bytes each costs.
    Parquet(crate::bench_parquet::ParquetBenchArgs),
}

/// Run a benchmark and print its figures as one JSON line.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.cmd {
        BenchCmd::Meta {
            masters,
            tls,
            writers,
            seconds,
            bucket,
            sessions,
        } => {
            let tls = tls.load_as(anode_tls::Role::Client, None)?;
            meta(masters, tls, writers, seconds, bucket, sessions).await
        }
        BenchCmd::Client {
            masters,
            tls,
            size,
            concurrency,
            objects,
            bucket,
        } => {
            let tls = tls.load_as(anode_tls::Role::Client, None)?;
            client(masters, tls, size, concurrency, objects, bucket).await
        }
        BenchCmd::S3(a) => s3(a).await,
        BenchCmd::Suite(a) => crate::suite::run(a).await,
        BenchCmd::Compare(a) => crate::suite::compare_files(a),
        BenchCmd::Fill(a) => crate::bench_scale::fill(a).await,
        BenchCmd::List(a) => crate::bench_scale::list(a).await,
        BenchCmd::Parquet(a) => crate::bench_parquet::run(a).await,
    }
}

/// Create `bucket` with `replication` (0 = cluster default) unless it exists already.
pub(crate) async fn ensure_bucket(
    cl: &anode_client::Client,
    bucket: &str,
    replication: u32,
) -> anyhow::Result<()> {
    use anode_client::ErrorCode;
    match cl.create_bucket(bucket, replication, "").await {
        Ok(_) => Ok(()),
        Err(e) => match e.code() {
            ErrorCode::BucketAlreadyOwnedByYou | ErrorCode::BucketAlreadyExists => Ok(()),
            _ => Err(anyhow::anyhow!("create bucket: {e}")),
        },
    }
}

async fn meta(
    masters: Vec<String>,
    tls: anode_tls::Tls,
    writers: usize,
    seconds: u64,
    bucket: String,
    sessions: bool,
) -> anyhow::Result<()> {
    let cl = anode_client::Client::connect(masters.clone(), tls.clone()).await?;
    ensure_bucket(&cl, &bucket, 0).await?;
    // Find the leader once; writers talk to it directly (one channel each).
    let masters = anode_master::ctl::Masters::new(masters, tls.clone());
    let leader = find_leader(&masters).await?;
    let counters = Arc::new(MetaCounters::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let writer = meta_writer(
                tls.clone(),
                leader.clone(),
                bucket.clone(),
                w,
                deadline,
                counters.clone(),
                sessions,
            );
            tokio::spawn(writer)
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let n = counters.ok.load(Ordering::Relaxed);
    let per_sec = n as f64 / seconds as f64;
    let mean_ms = if n > 0 {
        counters.lat_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
    } else {
        0.0
    };
    println!(
        "{{\"bench\":\"meta\",\"writers\":{writers},\"sessions\":{sessions},\"seconds\":{seconds},\"committed\":{n},\"errors\":{},\"per_sec\":{per_sec:.1},\"mean_latency_ms\":{mean_ms:.2}}}",
        counters.err.load(Ordering::Relaxed)
    );
    Ok(())
}

/// What the `bench meta` writers counted, summed over all of them.
#[derive(Default)]
struct MetaCounters {
    /// Commits acknowledged.
    ok: AtomicU64,
    /// Commits refused or failed.
    err: AtomicU64,
    /// Sum of the acknowledged commits' latencies, in microseconds.
    lat_us: AtomicU64,
}

/// One `bench meta` writer: commits 1-byte inline objects `w{w}/k{i}` to `bucket` over its own
/// channel to `leader` until `deadline`.
async fn meta_writer(
    tls: anode_tls::Tls,
    leader: String,
    bucket: String,
    w: usize,
    deadline: Instant,
    counters: Arc<MetaCounters>,
    sessions: bool,
) -> anyhow::Result<()> {
    let client_id: [u8; 16] = rand::random();
    let ch = tls
        .endpoint(&leader, anode_tls::Role::Master)?
        .connect()
        .await?;
    let mut c = anode_proto::master_client::MasterClient::new(ch);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let req = PutObjectRequest {
            parquet: None,
            parquet_copy: None,
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
            // One write at a time per writer: it is its own first unanswered write.
            session: sessions.then(|| ClientSession {
                client_id: client_id.to_vec(),
                seq: i + 1,
                first_unanswered: i + 1,
            }),
            source: String::new(),
        };
        let t = Instant::now();
        match c.put_object(req).await {
            Ok(_) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters
                    .lat_us
                    .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                counters.err.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
    }
    Ok(())
}

async fn find_leader(masters: &anode_master::ctl::Masters) -> anyhow::Result<String> {
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
    tls: anode_tls::Tls,
    size: usize,
    concurrency: usize,
    objects: usize,
    bucket: String,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let cl = anode_client::Client::connect(masters, tls).await?;
    ensure_bucket(&cl, &bucket, 3).await?;
    let body = bytes::Bytes::from((0..size).map(|i| (i * 7 + size) as u8).collect::<Vec<u8>>());
    // Unique content per object and run: no deduplication of the load.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
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
                                bytes::Bytes::from(object_body(&body, nonce, i as u64)),
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
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                eprintln!("{errors} of {objects} failed; first error: {e:#}");
            }
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

// ---- anode-tools bench s3 ---------------------------------------------------------------------

/// Flags of `anode-tools bench s3`.
#[derive(clap::Args, Debug, Clone)]
pub struct S3BenchArgs {
    /// The endpoint, its TLS trust and the signing credentials.
    #[command(flatten)]
    pub target: crate::s3http::S3Target,
    /// Bucket (created if missing).
    #[arg(long, default_value = "bench-s3")]
    pub bucket: String,
    /// Object size: bytes or with a binary suffix (`1KiB`, `16MiB`, `1GiB`; `K`/`M`/`G` too).
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    pub size: usize,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Objects to put, then get (ignored with --duration).
    #[arg(long, default_value_t = 200)]
    pub objects: usize,
    /// Run each phase for this many seconds instead of a fixed object count; the GET phase
    /// cycles over the objects the PUT phase wrote.
    #[arg(long)]
    pub duration: Option<u64>,
    /// `x-amz-content-sha256` of PUTs: `unsigned` (UNSIGNED-PAYLOAD) or `sha256` (the real
    /// payload hash, which the gateway then checks).
    #[arg(long, value_enum, default_value_t = PayloadHash::Unsigned)]
    pub payload: PayloadHash,
    /// Put this file's bytes (`--size` is ignored), e.g. a Parquet file: its first 4 bytes and
    /// last 64 KiB stay as they are (magic and footer), the stamps that keep objects unique go
    /// in between.
    #[arg(long)]
    pub body_file: Option<std::path::PathBuf>,
}

/// [`object_body`] that leaves the first 4 bytes and the end of `base` as they are: the last
/// 64 KiB, or the whole footer of a Parquet file when it is longer (a Parquet file stays one:
/// magic, footer and the offsets in it are untouched). A base too short to stamp between them
/// is returned as it is.
pub(crate) fn object_body_keeping_ends(base: &[u8], nonce: u64, idx: u64) -> Vec<u8> {
    let n = base.len();
    let footer = match base.get(n.saturating_sub(8)..) {
        Some(t) if n >= 8 && t.ends_with(b"PAR1") => {
            u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize + 8
        }
        _ => 0,
    };
    let keep = footer.max(64 * 1024);
    let mut v = base.to_vec();
    if n < 4 + 24 + keep {
        return v;
    }
    let end = n - keep;
    v[4..end].copy_from_slice(&object_body(&base[4..end], nonce, idx));
    v
}

/// Parse `4096`, `1KiB`, `16MiB`, `1GiB` (also `K`, `M`, `G`, `KB`..: all binary) into bytes.
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?} (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// The body of object `idx` of run `nonce`: `base` with (nonce, idx, block) stamped at the
/// start of every 64 KiB block, so no two objects (and no two chunks) share content and the
/// content-addressed chunk store cannot deduplicate the benchmark away.
pub(crate) fn object_body(base: &[u8], nonce: u64, idx: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    for (block, piece) in v.chunks_mut(64 * 1024).enumerate() {
        let mut tag = [0u8; 24];
        tag[..8].copy_from_slice(&nonce.to_le_bytes());
        tag[8..16].copy_from_slice(&idx.to_le_bytes());
        tag[16..].copy_from_slice(&(block as u64).to_le_bytes());
        let n = piece.len().min(tag.len());
        piece[..n].copy_from_slice(&tag[..n]);
    }
    v
}

/// Nearest-rank percentile (`q` in 0..=1) of sorted values.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What every worker shares: signing parameters and the run's fixed data.
struct S3Ctx {
    args: S3BenchArgs,
    signer: Signer,
    /// `host:port` of the endpoint.
    host: String,
    /// HTTPS settings for an `https://` endpoint.
    tls: Option<crate::s3http::Tls>,
    /// Key prefix of this run.
    prefix: String,
    nonce: u64,
    base: Vec<u8>,
}

impl S3Ctx {
    fn key_path(&self, idx: u64) -> String {
        format!("/{}/{}/{idx}", self.args.bucket, self.prefix)
    }

    /// The body of object `idx` of this run.
    fn body(&self, idx: u64) -> Vec<u8> {
        match self.args.body_file {
            Some(_) => object_body_keeping_ends(&self.base, self.nonce, idx),
            None => object_body(&self.base, self.nonce, idx),
        }
    }
}

/// Figures of one worker in one phase.
#[derive(Default)]
struct PhaseStats {
    latencies_us: Vec<u64>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    /// PUT: (object index, ETag) of every object written.
    written: Vec<(u64, String)>,
    /// Wall time of the whole phase (merged stats only).
    wall: Duration,
}

async fn s3(mut args: S3BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be positive");
    let host = crate::s3http::endpoint_host(&args.target.endpoint)?;
    let tls = crate::s3http::endpoint_tls(&args.target.endpoint, args.target.ca_bundle.as_deref())?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let mut seed = nonce | 1;
    let base = match &args.body_file {
        Some(path) => std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--body-file {}: {e}", path.display()))?,
        None => (0..args.size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect(),
    };
    // Sizes in the report are the bodies' own.
    args.size = base.len();
    let ctx = Arc::new(S3Ctx {
        signer: args.target.signer.clone(),
        prefix: format!("s{}-{nonce:x}", base.len()),
        host,
        tls,
        nonce,
        base,
        args,
    });
    let conn = S3Conn::new(ctx.host.clone()).with_tls(ctx.tls.clone());
    crate::s3http::create_bucket_over(&ctx.signer, conn, &ctx.args.bucket).await?;
    let put = s3_phase(ctx.clone(), None).await?;
    let mut written: Vec<(u64, String)> = put.written.clone();
    written.sort();
    s3_report(&ctx, "put", &put);
    anyhow::ensure!(!written.is_empty(), "no object was written");
    let get = s3_phase(ctx.clone(), Some(Arc::new(written))).await?;
    s3_report(&ctx, "get", &get);
    anyhow::ensure!(
        put.errors == 0 && get.errors == 0,
        "{} PUT and {} GET errors; first: {}",
        put.errors,
        get.errors,
        put.first_error.or(get.first_error).unwrap_or_default()
    );
    Ok(())
}

/// Run one phase on `concurrency` workers: PUT when `objects` is `None`, else GET of those
/// (index, ETag) pairs. Returns the merged figures.
async fn s3_phase(
    ctx: Arc<S3Ctx>,
    objects: Option<Arc<Vec<(u64, String)>>>,
) -> anyhow::Result<PhaseStats> {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = ctx
        .args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..ctx.args.concurrency {
        let (ctx, next, objects) = (ctx.clone(), next.clone(), objects.clone());
        tasks.push(tokio::spawn(async move {
            s3_worker(&ctx, &next, deadline, objects.as_deref()).await
        }));
    }
    let mut total = PhaseStats::default();
    for t in tasks {
        let s = t.await?;
        total.latencies_us.extend(s.latencies_us);
        total.bytes += s.bytes;
        total.errors += s.errors;
        total.first_error = total.first_error.or(s.first_error);
        total.written.extend(s.written);
    }
    total.latencies_us.sort_unstable();
    total.wall = start.elapsed();
    Ok(total)
}

async fn s3_worker(
    ctx: &S3Ctx,
    next: &AtomicU64,
    deadline: Option<Instant>,
    objects: Option<&Vec<(u64, String)>>,
) -> PhaseStats {
    let mut conn = S3Conn::new(ctx.host.clone()).with_tls(ctx.tls.clone());
    let mut stats = PhaseStats::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if i >= ctx.args.objects as u64 => break,
            _ => {}
        }
        let t = Instant::now();
        let result = match objects {
            None => s3_put(ctx, &mut conn, i).await.map(|etag| {
                stats.written.push((i, etag));
            }),
            Some(objs) => {
                let (idx, etag) = &objs[(i % objs.len() as u64) as usize];
                s3_get(ctx, &mut conn, *idx, etag).await
            }
        };
        match result {
            Ok(()) => {
                stats.latencies_us.push(t.elapsed().as_micros() as u64);
                stats.bytes += ctx.args.size as u64;
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    stats
}

/// PUT object `idx`; checks the answer's ETag is the body's MD5. Returns the ETag.
async fn s3_put(ctx: &S3Ctx, conn: &mut S3Conn, idx: u64) -> anyhow::Result<String> {
    let body = ctx.body(idx);
    let path = ctx.key_path(idx);
    Ok(crate::s3http::put_checked(conn, &ctx.signer, &path, body.into(), ctx.args.payload).await?)
}

/// GET object `idx`; checks status, length, ETag and every byte against the body it was
/// written with.
async fn s3_get(ctx: &S3Ctx, conn: &mut S3Conn, idx: u64, etag: &str) -> anyhow::Result<()> {
    let (headers, body) =
        crate::s3http::get_checked(conn, &ctx.signer, &ctx.key_path(idx), "").await?;
    Ok(check_body(&headers, &body, etag, &ctx.body(idx))?)
}

/// Check a GET answer against what was put: ETag, length and every byte.
pub(crate) fn check_body(
    headers: &http::HeaderMap,
    body: &[u8],
    etag: &str,
    want: &[u8],
) -> Result<(), crate::s3http::CheckedError> {
    use crate::s3http::CheckedError::Verify;
    if body.len() != want.len() {
        return Err(Verify(format!(
            "GET: {} bytes, want {}",
            body.len(),
            want.len()
        )));
    }
    let got = header_str(headers, "etag");
    if got != etag {
        return Err(Verify(format!("GET: ETag {got}, PUT said {etag}")));
    }
    if body != want {
        return Err(Verify("GET: body differs from what was put".into()));
    }
    Ok(())
}

/// Print one phase as one JSON line (`latencies_us` sorted).
fn s3_report(ctx: &S3Ctx, op: &str, s: &PhaseStats) {
    let lat = &s.latencies_us;
    let secs = s.wall.as_secs_f64().max(1e-9);
    let a = &ctx.args;
    println!(
        "{{\"bench\":\"s3\",\"op\":\"{op}\",\"size\":{},\"concurrency\":{},\"payload\":\"{:?}\",\"ops\":{},\"errors\":{},\"seconds\":{secs:.2},\"ops_per_sec\":{:.1},\"mb_per_sec\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        a.size,
        a.concurrency,
        a.payload,
        lat.len(),
        s.errors,
        lat.len() as f64 / secs,
        s.bytes as f64 / secs / 1e6,
        percentile(lat, 0.50) as f64 / 1000.0,
        percentile(lat, 0.99) as f64 / 1000.0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn bodies_differ_in_every_block() {
        let base = vec![0xabu8; 200 * 1024];
        let a = object_body(&base, 1, 0);
        let b = object_body(&base, 1, 1);
        let c = object_body(&base, 2, 0);
        assert_eq!(a.len(), base.len());
        for (x, y) in a.chunks(64 * 1024).zip(b.chunks(64 * 1024)) {
            assert_ne!(x, y);
        }
        assert_ne!(a, c);
        assert_eq!(a, object_body(&base, 1, 0));
        assert_eq!(object_body(&[1, 2, 3], 5, 5).len(), 3);
        let file: Vec<u8> = (0..300 * 1024).map(|i| (i % 253) as u8).collect();
        let (a, b) = (
            object_body_keeping_ends(&file, 1, 0),
            object_body_keeping_ends(&file, 1, 1),
        );
        assert_ne!(a, b);
        for v in [&a, &b] {
            assert_eq!((v.len(), &v[..4]), (file.len(), &file[..4]));
            assert_eq!(v[file.len() - 65536..], file[file.len() - 65536..]);
        }
        assert_eq!(object_body_keeping_ends(&file[..1000], 1, 0), file[..1000]);
        // A Parquet-like end with a 100 KiB footer keeps all of it.
        let mut pq = file.clone();
        let n = pq.len();
        pq[n - 8..n - 4].copy_from_slice(&(100u32 * 1024).to_le_bytes());
        pq[n - 4..].copy_from_slice(b"PAR1");
        let c = object_body_keeping_ends(&pq, 1, 2);
        assert_eq!(c[n - 100 * 1024 - 8..], pq[n - 100 * 1024 - 8..]);
        assert_ne!(c, pq);
    }
}
