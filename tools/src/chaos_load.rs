//! `anode-tools chaos-load`: the workload recorder of the chaos scenarios (issue 6).
//!
//! P client processes (tokio tasks) run random `put`/`get`/`delete` on a small key set against
//! one or more S3 endpoints, signed like awscli (`crate::s3http`), with a per-attempt timeout
//! and SDK-style retries (full-jitter exponential backoff). Every *attempt* is one operation of
//! the JSON Lines history that `anode-lincheck` checks:
//!
//! - `ok`: a definite answer (PUT/DELETE 2xx; GET 200 with the value, or 404 `NoSuchKey` = null).
//! - `fail`: surely no effect: no connection could be made, a 4xx on a write, or any failed
//!   read (a read has no effect, so dropping it is exact).
//! - `info`: unknown: a write that timed out, lost its connection after sending, or got a 5xx
//!   (a 5xx on PUT/DELETE may come after the commit, so it is never taken as "did not apply").
//!
//! Values are unique per put (`p3-17`); the body is the value, a newline and filler derived from
//! the value, so every GET is checked byte for byte (a mismatch is recorded as a read of
//! `CORRUPT-...`, which no put wrote, so the checker rejects it).
//!
//! `--unique N` writes N distinct keys once each instead (write bursts, crash tests) and
//! `--writes FILE` logs every logical PUT (key, SHA-256, size, acked/unknown/failed);
//! `--verify FILE` then checks such a log through every endpoint: acknowledged objects listed
//! and byte-identical everywhere, unknown ones absent or complete, failed ones absent.
//!
//! The summary (one JSON line on stdout) has attempts, ok/fail/info, logical requests and how
//! many failed after all retries, ok ops per second, latency p50/p99 of ok attempts, and the
//! longest window with no successful operation (`unavailable_ms`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sha2::Digest;

use crate::s3http::{endpoint_host, PayloadHash, S3Conn, SendError, Signer};

/// Flags of `anode-tools chaos-load`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosLoadArgs {
    /// S3 endpoints (`http://HOST:PORT`, comma-separated).
    #[arg(
        long,
        env = "ANODE_S3_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoints: Vec<String>,
    /// `round-robin`: each attempt goes to the next endpoint; `per-process`: process p uses
    /// endpoint p mod n and retries move on to the next one.
    #[arg(long, value_enum, default_value_t = Routing::RoundRobin)]
    pub routing: Routing,
    /// Signing credentials and region.
    #[command(flatten)]
    pub signer: crate::s3http::Signer,
    /// Bucket (created if missing).
    #[arg(long, default_value = "chaos")]
    pub bucket: String,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 5)]
    pub processes: u64,
    /// Keys of the random workload (`PREFIX0`..).
    #[arg(long, default_value_t = 10)]
    pub keys: u64,
    /// Key prefix.
    #[arg(long, default_value = "k")]
    pub key_prefix: String,
    /// Run for this many seconds (the unique mode also stops after N puts).
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// History file (JSON Lines, one event per line).
    #[arg(long, default_value = "history.jsonl")]
    pub history: PathBuf,
    /// Per-attempt timeout in milliseconds; an attempt past it is `info` (writes) or `fail`.
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
    /// Attempts per logical request (SDK "standard" mode: 3).
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Backoff base in ms: before retry i sleep uniform(0, min(cap, base * 2^i)).
    #[arg(long, default_value_t = 100)]
    pub backoff_ms: u64,
    /// Backoff cap in ms.
    #[arg(long, default_value_t = 5_000)]
    pub backoff_max_ms: u64,
    /// Weights of put,get,delete in the random workload.
    #[arg(long, default_value = "4,5,1")]
    pub mix: String,
    /// Body size in bytes (values above 16 KiB are stored in chunks, not inline).
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// Stop starting new requests once this file exists (besides `--seconds`).
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
    /// Pause of each process between logical requests, in ms.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Write-once mode: N PUTs of distinct keys (`PREFIX<p>-<seq>`) instead of the random mix.
    #[arg(long)]
    pub unique: Option<u64>,
    /// Log every logical PUT here: `key sha256 size acked|unknown|failed` (tab-separated).
    #[arg(long)]
    pub writes: Option<PathBuf>,
    /// Skip the final GET of every key through every endpoint (random mode).
    #[arg(long)]
    pub no_final_reads: bool,
    /// Instead of a load: verify a `--writes` log through every endpoint.
    #[arg(long)]
    pub verify: Option<PathBuf>,
    /// Also write the summary JSON here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// RNG seed (printed in the summary); default: from the clock.
    #[arg(long, env = "ANODE_SEED")]
    pub seed: Option<u64>,
}

/// How attempts pick an endpoint.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Every attempt goes to the next endpoint.
    RoundRobin,
    /// Process p sticks to endpoint p mod n; retries move on.
    PerProcess,
}

/// Run the load (or the verification) and print the summary.
pub async fn run(args: ChaosLoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.endpoints.is_empty(), "--endpoints is empty");
    anyhow::ensure!(args.attempts > 0, "--attempts must be positive");
    let hosts: Vec<String> = args
        .endpoints
        .iter()
        .map(|e| endpoint_host(e))
        .collect::<anyhow::Result<_>>()?;
    let ctx = Arc::new(Ctx {
        signer: args.signer.clone(),
        hosts,
        mix: parse_mix(&args.mix)?,
        rr: AtomicUsize::new(0),
        args,
    });
    if let Some(path) = ctx.args.verify.clone() {
        return verify(&ctx, &path).await;
    }
    create_bucket_retrying(&ctx).await?;
    load(ctx).await
}

/// Shared by every process.
struct Ctx {
    args: ChaosLoadArgs,
    signer: Signer,
    /// `HOST:PORT` of every endpoint.
    hosts: Vec<String>,
    /// put, get, delete weights.
    mix: [u32; 3],
    /// Round-robin cursor.
    rr: AtomicUsize,
}

impl Ctx {
    fn endpoint(&self, process: u64, attempt: u32) -> usize {
        let n = self.hosts.len();
        match self.args.routing {
            Routing::RoundRobin => self.rr.fetch_add(1, Ordering::Relaxed) % n,
            Routing::PerProcess => (process as usize + attempt as usize) % n,
        }
    }

    /// Whether processes may start another request.
    fn running(&self, deadline: Instant) -> bool {
        Instant::now() < deadline && !self.args.stop_file.as_ref().is_some_and(|f| f.exists())
    }

    fn key_path(&self, key: &str) -> String {
        format!("/{}/{key}", self.args.bucket)
    }

    /// Sleep before retry `attempt` (1-based): full jitter, exponential, capped.
    async fn backoff(&self, rng: &mut impl Rng, attempt: u32) {
        let ceiling = self
            .args
            .backoff_ms
            .saturating_mul(1 << attempt.min(20))
            .min(self.args.backoff_max_ms);
        let ms = rng.gen_range(0..=ceiling);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn parse_mix(s: &str) -> anyhow::Result<[u32; 3]> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--mix {s:?}: want PUT,GET,DELETE weights"))?;
    anyhow::ensure!(v.len() == 3, "--mix {s:?}: want three weights");
    anyhow::ensure!(v.iter().sum::<u32>() > 0, "--mix {s:?}: all weights are 0");
    Ok([v[0], v[1], v[2]])
}

// ---- bodies ---------------------------------------------------------------------------------

/// The body stored for `value`: the value, `\n`, then filler derived from the value, `size`
/// bytes in all (at least the value and the newline).
pub fn body_for(value: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(value.len() + 1));
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
    let mut block = 0u64;
    while out.len() < size {
        let mut h = sha2::Sha256::new();
        h.update(value.as_bytes());
        h.update(block.to_le_bytes());
        let d = h.finalize();
        let n = (size - out.len()).min(d.len());
        out.extend_from_slice(&d[..n]);
        block += 1;
    }
    out
}

/// The value a body holds, or `CORRUPT-<sha256 prefix>` when the body is not exactly what
/// [`body_for`] makes of its first line.
pub fn value_of(body: &[u8]) -> String {
    let corrupt = || format!("CORRUPT-{}", &hex::encode(sha2::Sha256::digest(body))[..16]);
    let Some(nl) = body.iter().position(|b| *b == b'\n') else {
        return corrupt();
    };
    let Ok(value) = std::str::from_utf8(&body[..nl]) else {
        return corrupt();
    };
    if body_for(value, body.len()) == body {
        value.to_string()
    } else {
        corrupt()
    }
}

// ---- history --------------------------------------------------------------------------------

#[derive(Serialize)]
struct Event<'a> {
    process: u64,
    op_id: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    f: &'static str,
    key: &'a str,
    value: Option<&'a str>,
    time_ns: u64,
}

/// The history file and the run's clock.
struct Recorder {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
    start: Instant,
    /// The same moment on the wall clock (ms since the Unix epoch), for scripts.
    start_unix_ms: u64,
    next_op: AtomicU64,
}

impl Recorder {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn write(&self, e: &Event<'_>) {
        let mut line = serde_json::to_vec(e).expect("events serialize");
        line.push(b'\n');
        let mut out = self.out.lock().expect("history lock");
        // A history that cannot be written is worthless: stop loudly.
        out.write_all(&line).expect("write history");
    }
}

// ---- one attempt ----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Put,
    Get,
    Delete,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Put => "put",
            Func::Get => "get",
            Func::Delete => "delete",
        }
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// Definite success; a get's value (`None` = absent).
    Ok(Option<String>),
    /// Surely no effect.
    Fail { retry: bool, why: String },
    /// Unknown effect.
    Info { retry: bool, why: String },
}

/// Classify an HTTP answer (pure).
fn classify(f: Func, status: http::StatusCode, body: &[u8]) -> Attempt {
    let code = status.as_u16();
    let text = || {
        let t = String::from_utf8_lossy(body);
        format!("{code} {}", t.chars().take(200).collect::<String>())
    };
    let retryable = code >= 500 || code == 429 || code == 408;
    match f {
        Func::Get if code == 200 => Attempt::Ok(Some(value_of(body))),
        Func::Get if code == 404 && String::from_utf8_lossy(body).contains("NoSuchKey") => {
            Attempt::Ok(None)
        }
        Func::Get => Attempt::Fail {
            retry: retryable,
            why: text(),
        },
        Func::Put | Func::Delete if (200..300).contains(&code) => Attempt::Ok(None),
        // A write answered 5xx (or 408/429) may have committed before the error.
        Func::Put | Func::Delete if retryable => Attempt::Info {
            retry: true,
            why: text(),
        },
        Func::Put | Func::Delete => Attempt::Fail {
            retry: false,
            why: text(),
        },
    }
}

/// Classify a request that got no answer (pure).
fn classify_no_answer(f: Func, sent: bool, why: String) -> Attempt {
    if f == Func::Get || !sent {
        Attempt::Fail { retry: true, why }
    } else {
        Attempt::Info { retry: true, why }
    }
}

async fn attempt(ctx: &Ctx, conn: &mut S3Conn, f: Func, key: &str, body: &bytes::Bytes) -> Attempt {
    let (method, body) = match f {
        Func::Put => (http::Method::PUT, body.clone()),
        Func::Get => (http::Method::GET, bytes::Bytes::new()),
        Func::Delete => (http::Method::DELETE, bytes::Bytes::new()),
    };
    let host = conn.addr().to_string();
    let req = match ctx.signer.request(
        &host,
        method,
        &ctx.key_path(key),
        "",
        body,
        PayloadHash::Unsigned,
    ) {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Fail {
                retry: false,
                why: format!("build request: {e}"),
            }
        }
    };
    let timeout = Duration::from_millis(ctx.args.timeout_ms);
    match tokio::time::timeout(timeout, conn.send(req)).await {
        Err(_) => {
            conn.reset();
            classify_no_answer(f, true, format!("timeout after {} ms", ctx.args.timeout_ms))
        }
        Ok(Err(e @ SendError::Connect { .. })) => classify_no_answer(f, false, e.to_string()),
        Ok(Err(e @ SendError::Io { .. })) => classify_no_answer(f, true, e.to_string()),
        Ok(Ok((status, _, resp))) => classify(f, status, &resp),
    }
}

// ---- processes ------------------------------------------------------------------------------

/// Figures of one process.
#[derive(Default)]
struct Stats {
    attempts: u64,
    ok: u64,
    fail: u64,
    info: u64,
    requests: u64,
    requests_ok: u64,
    requests_failed: u64,
    corrupt_reads: u64,
    /// Completion times (ns since start) of ok attempts, with their latency in µs.
    ok_at: Vec<(u64, u64)>,
    first_error: Option<String>,
    /// Logical puts: (key, value, outcome).
    writes: Vec<(String, String, &'static str)>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.attempts += o.attempts;
        self.ok += o.ok;
        self.fail += o.fail;
        self.info += o.info;
        self.requests += o.requests;
        self.requests_ok += o.requests_ok;
        self.requests_failed += o.requests_failed;
        self.corrupt_reads += o.corrupt_reads;
        self.ok_at.extend(o.ok_at);
        self.first_error = self.first_error.take().or(o.first_error);
        self.writes.extend(o.writes);
    }
}

/// One client process: its connections, RNG and figures.
struct Process {
    id: u64,
    conns: Vec<S3Conn>,
    rng: rand_chacha::ChaCha8Rng,
    stats: Stats,
}

impl Process {
    /// One logical request with retries; every attempt is recorded. Returns true when an
    /// attempt succeeded.
    async fn request(
        &mut self,
        ctx: &Ctx,
        rec: &Recorder,
        f: Func,
        key: &str,
        value: Option<&str>,
    ) -> bool {
        let body: bytes::Bytes = value
            .map(|v| body_for(v, ctx.args.value_bytes).into())
            .unwrap_or_default();
        self.stats.requests += 1;
        let mut unknown = false;
        for i in 0..ctx.args.attempts {
            if i > 0 {
                ctx.backoff(&mut self.rng, i).await;
            }
            let ep = ctx.endpoint(self.id, i);
            let op_id = rec.next_op.fetch_add(1, Ordering::Relaxed);
            let invoked = rec.now_ns();
            rec.write(&Event {
                process: self.id,
                op_id,
                kind: "invoke",
                f: f.name(),
                key,
                value: if f == Func::Put { value } else { None },
                time_ns: invoked,
            });
            let outcome = attempt(ctx, &mut self.conns[ep], f, key, &body).await;
            let done = rec.now_ns();
            self.stats.attempts += 1;
            let (kind, read, retry, why) = match &outcome {
                Attempt::Ok(v) => ("ok", v.as_deref(), false, None),
                Attempt::Fail { retry, why } => ("fail", None, *retry, Some(why)),
                Attempt::Info { retry, why } => ("info", None, *retry, Some(why)),
            };
            rec.write(&Event {
                process: self.id,
                op_id,
                kind,
                f: f.name(),
                key,
                value: read,
                time_ns: done,
            });
            if let Some(why) = why {
                self.stats.first_error.get_or_insert_with(|| {
                    format!("{} {key} via {}: {why}", f.name(), self.conns[ep].addr())
                });
            }
            match outcome {
                Attempt::Ok(v) => {
                    self.stats.ok += 1;
                    self.stats.ok_at.push((done, (done - invoked) / 1_000));
                    if v.as_deref().is_some_and(|v| v.starts_with("CORRUPT-")) {
                        self.stats.corrupt_reads += 1;
                    }
                    self.stats.requests_ok += 1;
                    self.note_write(f, key, value, "acked");
                    return true;
                }
                Attempt::Fail { .. } => self.stats.fail += 1,
                Attempt::Info { .. } => {
                    self.stats.info += 1;
                    unknown = true;
                }
            }
            if !retry {
                break;
            }
        }
        self.stats.requests_failed += 1;
        self.note_write(f, key, value, if unknown { "unknown" } else { "failed" });
        false
    }

    fn note_write(&mut self, f: Func, key: &str, value: Option<&str>, outcome: &'static str) {
        if let (Func::Put, Some(v)) = (f, value) {
            self.stats
                .writes
                .push((key.to_string(), v.to_string(), outcome));
        }
    }

    /// The random workload until the deadline.
    async fn run_random(&mut self, ctx: &Ctx, rec: &Recorder, deadline: Instant) {
        let total: u32 = ctx.mix.iter().sum();
        let mut seq = 0u64;
        while ctx.running(deadline) {
            let key = format!(
                "{}{}",
                ctx.args.key_prefix,
                self.rng.gen_range(0..ctx.args.keys)
            );
            let pick = self.rng.gen_range(0..total);
            let f = if pick < ctx.mix[0] {
                Func::Put
            } else if pick < ctx.mix[0] + ctx.mix[1] {
                Func::Get
            } else {
                Func::Delete
            };
            let value = (f == Func::Put).then(|| format!("p{}-{seq}", self.id));
            seq += 1;
            self.request(ctx, rec, f, &key, value.as_deref()).await;
            self.think(ctx).await;
        }
    }

    /// Write-once puts of distinct keys until `n` were issued (by all processes) or the
    /// deadline.
    async fn run_unique(
        &mut self,
        ctx: &Ctx,
        rec: &Recorder,
        deadline: Instant,
        issued: &AtomicU64,
        n: u64,
    ) {
        let mut seq = 0u64;
        while ctx.running(deadline) && issued.fetch_add(1, Ordering::Relaxed) < n {
            let key = format!("{}{}-{seq}", ctx.args.key_prefix, self.id);
            let value = format!("p{}-{seq}", self.id);
            seq += 1;
            self.request(ctx, rec, Func::Put, &key, Some(&value)).await;
            self.think(ctx).await;
        }
    }

    async fn think(&mut self, ctx: &Ctx) {
        if ctx.args.think_ms > 0 {
            tokio::time::sleep(Duration::from_millis(ctx.args.think_ms)).await;
        }
    }
}

fn new_process(ctx: &Ctx, id: u64, seed: u64) -> Process {
    Process {
        id,
        conns: ctx.hosts.iter().map(S3Conn::new).collect(),
        rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        stats: Stats::default(),
    }
}

async fn create_bucket_retrying(ctx: &Ctx) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0usize;
    loop {
        let host = &ctx.hosts[i % ctx.hosts.len()];
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            crate::s3http::create_bucket(&ctx.signer, host, &ctx.args.bucket),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timeout")));
        match r {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e.context("create bucket")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        i += 1;
    }
}

async fn load(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let seed = ctx.args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let file = std::fs::File::create(&ctx.args.history)
        .with_context(|| format!("create {}", ctx.args.history.display()))?;
    let rec = Arc::new(Recorder {
        out: Mutex::new(std::io::BufWriter::new(file)),
        start: Instant::now(),
        start_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        next_op: AtomicU64::new(0),
    });
    let deadline = rec.start + Duration::from_secs_f64(ctx.args.seconds.max(0.0));
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for id in 0..ctx.args.processes {
        let (ctx, rec, issued) = (ctx.clone(), rec.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = new_process(&ctx, id, seed);
            match ctx.args.unique {
                Some(n) => p.run_unique(&ctx, &rec, deadline, &issued, n).await,
                None => p.run_random(&ctx, &rec, deadline).await,
            }
            p.stats
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await?);
    }
    let load_end_ns = rec.now_ns();
    let mut window_stats = std::mem::take(&mut stats.ok_at);
    window_stats.sort_unstable();
    if ctx.args.unique.is_none() && !ctx.args.no_final_reads {
        stats.merge(final_reads(&ctx, &rec, seed).await);
    }
    rec.out.lock().expect("history lock").flush()?;
    if let Some(path) = &ctx.args.writes {
        write_writes_log(&ctx, path, &stats.writes)?;
    }
    let summary = summarize(
        &ctx,
        seed,
        rec.start_unix_ms,
        &stats,
        &window_stats,
        load_end_ns,
    );
    let line = serde_json::to_string(&summary)?;
    println!("{line}");
    if let Some(path) = &ctx.args.summary {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// After the load: one GET of every key through every endpoint (processes 1000 + endpoint),
/// so the history pins the final state each gateway serves.
async fn final_reads(ctx: &Ctx, rec: &Recorder, seed: u64) -> Stats {
    let mut stats = Stats::default();
    for (e, host) in ctx.hosts.iter().enumerate() {
        let mut p = new_process(ctx, 1000 + e as u64, seed);
        p.conns = vec![S3Conn::new(host.clone())];
        // Retries stay on this endpoint.
        let one = Ctx {
            args: ChaosLoadArgs {
                routing: Routing::PerProcess,
                ..ctx.args.clone()
            },
            signer: ctx.signer.clone(),
            hosts: vec![host.clone()],
            mix: ctx.mix,
            rr: AtomicUsize::new(0),
        };
        for k in 0..ctx.args.keys {
            let key = format!("{}{k}", ctx.args.key_prefix);
            p.request(&one, rec, Func::Get, &key, None).await;
        }
        stats.merge(p.stats);
    }
    // Final reads do not count towards the load's ok figures.
    stats.ok_at.clear();
    stats
}

fn write_writes_log(
    ctx: &Ctx,
    path: &std::path::Path,
    writes: &[(String, String, &'static str)],
) -> anyhow::Result<()> {
    let mut out = String::new();
    for (key, value, outcome) in writes {
        let body = body_for(value, ctx.args.value_bytes);
        let sha = hex::encode(sha2::Sha256::digest(&body));
        out.push_str(&format!("{key}\t{sha}\t{}\t{outcome}\n", body.len()));
    }
    std::fs::write(path, out).with_context(|| format!("write {}", path.display()))
}

#[derive(Serialize)]
struct Summary {
    tool: &'static str,
    mode: &'static str,
    seed: u64,
    /// Wall-clock time of the history's time 0 (ms since the Unix epoch).
    start_unix_ms: u64,
    endpoints: usize,
    processes: u64,
    keys: u64,
    seconds: f64,
    ops: u64,
    ok: u64,
    fail: u64,
    info: u64,
    requests: u64,
    requests_ok: u64,
    requests_failed: u64,
    puts_acked: usize,
    puts_unknown: usize,
    puts_failed: usize,
    corrupt_reads: u64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    unavailable_ms: f64,
    unavailable_from_ms: f64,
    first_error: Option<String>,
    history: String,
}

fn summarize(
    ctx: &Ctx,
    seed: u64,
    start_unix_ms: u64,
    stats: &Stats,
    ok_at: &[(u64, u64)],
    load_end_ns: u64,
) -> Summary {
    let mut lat: Vec<u64> = ok_at.iter().map(|(_, l)| *l).collect();
    lat.sort_unstable();
    let times: Vec<u64> = ok_at.iter().map(|(t, _)| *t).collect();
    let (gap, from) = longest_gap(&times, load_end_ns);
    let secs = load_end_ns as f64 / 1e9;
    let count = |o: &str| stats.writes.iter().filter(|w| w.2 == o).count();
    Summary {
        tool: "chaos-load",
        mode: if ctx.args.unique.is_some() {
            "unique"
        } else {
            "random"
        },
        seed,
        start_unix_ms,
        endpoints: ctx.hosts.len(),
        processes: ctx.args.processes,
        keys: ctx.args.keys,
        seconds: round2(secs),
        ops: stats.attempts,
        ok: stats.ok,
        fail: stats.fail,
        info: stats.info,
        requests: stats.requests,
        requests_ok: stats.requests_ok,
        requests_failed: stats.requests_failed,
        puts_acked: count("acked"),
        puts_unknown: count("unknown"),
        puts_failed: count("failed"),
        corrupt_reads: stats.corrupt_reads,
        ops_per_sec: round2(ok_at.len() as f64 / secs.max(1e-9)),
        p50_ms: round2(crate::bench::percentile(&lat, 0.50) as f64 / 1000.0),
        p99_ms: round2(crate::bench::percentile(&lat, 0.99) as f64 / 1000.0),
        unavailable_ms: round2(gap as f64 / 1e6),
        unavailable_from_ms: round2(from as f64 / 1e6),
        first_error: stats.first_error.clone(),
        history: ctx.args.history.display().to_string(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The longest stretch of `[0, end]` with no time in `sorted`: (length, start).
fn longest_gap(sorted: &[u64], end: u64) -> (u64, u64) {
    let mut best = (0, 0);
    let mut prev = 0u64;
    for &t in sorted.iter().chain(std::iter::once(&end)) {
        let t = t.min(end);
        if t.saturating_sub(prev) > best.0 {
            best = (t - prev, prev);
        }
        prev = prev.max(t);
    }
    best
}

// ---- verification of a writes log -----------------------------------------------------------

#[derive(Default, Serialize)]
struct VerifyReport {
    tool: &'static str,
    endpoints: usize,
    acked: usize,
    unknown: usize,
    failed: usize,
    /// Acked objects missing (404) on some endpoint.
    acked_missing: usize,
    /// Acked objects whose bytes differ on some endpoint.
    acked_corrupt: usize,
    /// Acked objects absent from some endpoint's listing.
    acked_unlisted: usize,
    unknown_present: usize,
    unknown_absent: usize,
    /// Unknown objects present but not byte-identical, or present on one endpoint only.
    unknown_bad: usize,
    /// Definitely failed puts that are nevertheless present.
    failed_present: usize,
    /// Objects no endpoint could answer for.
    unreadable: usize,
    listed: Vec<usize>,
    examples: Vec<String>,
}

/// What one endpoint holds for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Held {
    Absent,
    Sha(String),
    Unreadable(String),
}

async fn verify(ctx: &Ctx, path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(f.len() == 4, "{}:{}: want 4 fields", path.display(), n + 1);
        entries.push((f[0].into(), f[1].into(), f[3].into()));
    }
    let mut keys: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    keys.sort_unstable();
    let dups = keys.windows(2).filter(|w| w[0] == w[1]).count();
    anyhow::ensure!(dups == 0, "--verify needs write-once keys; {dups} repeated");
    let mut rep = VerifyReport {
        tool: "chaos-load-verify",
        endpoints: ctx.hosts.len(),
        ..Default::default()
    };
    let mut listings = Vec::new();
    for host in &ctx.hosts {
        let l = list_keys(ctx, host).await?;
        rep.listed.push(l.len());
        listings.push(l);
    }
    let mut conns: Vec<S3Conn> = ctx.hosts.iter().map(S3Conn::new).collect();
    for (key, sha, outcome) in &entries {
        let mut held = Vec::new();
        for c in conns.iter_mut() {
            held.push(get_sha(ctx, c, key).await);
        }
        let unlisted = listings.iter().any(|l| l.binary_search(key).is_err());
        judge(&mut rep, key, sha, outcome, &held, unlisted);
    }
    let bad = rep.acked_missing
        + rep.acked_corrupt
        + rep.acked_unlisted
        + rep.unknown_bad
        + rep.failed_present
        + rep.unreadable;
    println!("{}", serde_json::to_string(&rep)?);
    if let Some(p) = &ctx.args.summary {
        std::fs::write(p, format!("{}\n", serde_json::to_string(&rep)?))?;
    }
    anyhow::ensure!(bad == 0, "verification found {bad} bad objects");
    Ok(())
}

/// Judge one logged put against what every endpoint holds (pure).
fn judge(
    rep: &mut VerifyReport,
    key: &str,
    sha: &str,
    outcome: &str,
    held: &[Held],
    unlisted: bool,
) {
    let example = |rep: &mut VerifyReport, what: &str| {
        if rep.examples.len() < 10 {
            rep.examples
                .push(format!("{key} ({outcome}): {what} {held:?}"));
        }
    };
    if held.iter().any(|h| matches!(h, Held::Unreadable(_))) {
        rep.unreadable += 1;
        example(rep, "unreadable");
        return;
    }
    let all_ok = held.iter().all(|h| *h == Held::Sha(sha.to_string()));
    let all_absent = held.iter().all(|h| *h == Held::Absent);
    match outcome {
        "acked" => {
            rep.acked += 1;
            if held.contains(&Held::Absent) {
                rep.acked_missing += 1;
                example(rep, "missing");
            } else if !all_ok {
                rep.acked_corrupt += 1;
                example(rep, "corrupt");
            } else if unlisted {
                rep.acked_unlisted += 1;
                example(rep, "unlisted");
            }
        }
        "unknown" => {
            rep.unknown += 1;
            if all_absent {
                rep.unknown_absent += 1;
            } else if all_ok {
                rep.unknown_present += 1;
            } else {
                rep.unknown_bad += 1;
                example(rep, "partial or differing");
            }
        }
        _ => {
            rep.failed += 1;
            if !all_absent {
                rep.failed_present += 1;
                example(rep, "present although failed");
            }
        }
    }
}

/// GET `key`: its SHA-256, absent, or unreadable after retries.
async fn get_sha(ctx: &Ctx, conn: &mut S3Conn, key: &str) -> Held {
    let mut last = String::new();
    for i in 0..ctx.args.attempts.max(5) {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(200 << i.min(4))).await;
        }
        let host = conn.addr().to_string();
        let req = match ctx.signer.request(
            &host,
            http::Method::GET,
            &ctx.key_path(key),
            "",
            bytes::Bytes::new(),
            PayloadHash::Unsigned,
        ) {
            Ok(r) => r,
            Err(e) => return Held::Unreadable(e.to_string()),
        };
        let timeout = Duration::from_millis(ctx.args.timeout_ms.max(5_000));
        match tokio::time::timeout(timeout, conn.send(req)).await {
            Ok(Ok((s, _, body))) if s == http::StatusCode::OK => {
                return Held::Sha(hex::encode(sha2::Sha256::digest(&body)))
            }
            Ok(Ok((s, _, body)))
                if s == http::StatusCode::NOT_FOUND
                    && String::from_utf8_lossy(&body).contains("NoSuchKey") =>
            {
                return Held::Absent
            }
            Ok(Ok((s, _, _))) => last = format!("status {s}"),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {
                conn.reset();
                last = "timeout".into();
            }
        }
    }
    Held::Unreadable(last)
}

/// Every key under `--key-prefix` in the bucket, sorted (ListObjectsV2, all pages).
async fn list_keys(ctx: &Ctx, host: &str) -> anyhow::Result<Vec<String>> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let mut conn = S3Conn::new(host);
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = String::new();
        if let Some(t) = &token {
            query.push_str(&format!(
                "continuation-token={}&",
                utf8_percent_encode(t, UNRESERVED)
            ));
        }
        query.push_str(&format!(
            "list-type=2&prefix={}",
            utf8_percent_encode(&ctx.args.key_prefix, UNRESERVED)
        ));
        let req = ctx.signer.request(
            host,
            http::Method::GET,
            &format!("/{}", ctx.args.bucket),
            &query,
            bytes::Bytes::new(),
            PayloadHash::Unsigned,
        )?;
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(30), conn.send(req))
            .await
            .context("list timed out")??;
        let text = String::from_utf8_lossy(&body).to_string();
        anyhow::ensure!(status.is_success(), "list via {host}: {status} {text}");
        keys.extend(xml_values(&text, "Key"));
        token = xml_values(&text, "NextContinuationToken")
            .into_iter()
            .next();
        if !text.contains("<IsTruncated>true</IsTruncated>") || token.is_none() {
            break;
        }
    }
    keys.sort();
    Ok(keys)
}

/// The text of every `<tag>...</tag>` element, XML entities decoded (pure).
pub(crate) fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_corruption_is_seen() {
        for size in [0, 5, 6, 64, 1000, 40_000] {
            let b = body_for("p3-17", size);
            assert_eq!(b.len(), size.max(6));
            assert_eq!(value_of(&b), "p3-17");
            let mut bad = b.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(value_of(&bad).starts_with("CORRUPT-"), "size {size}");
        }
        assert!(value_of(b"no newline").starts_with("CORRUPT-"));
        assert_ne!(body_for("p1-1", 100), body_for("p1-2", 100));
    }

    #[test]
    fn writes_are_unknown_unless_surely_not_applied() {
        use http::StatusCode as S;
        assert_eq!(classify(Func::Put, S::OK, b""), Attempt::Ok(None));
        assert_eq!(
            classify(Func::Delete, S::NO_CONTENT, b""),
            Attempt::Ok(None)
        );
        for s in [
            S::SERVICE_UNAVAILABLE,
            S::INTERNAL_SERVER_ERROR,
            S::TOO_MANY_REQUESTS,
        ] {
            assert!(matches!(
                classify(Func::Put, s, b""),
                Attempt::Info { retry: true, .. }
            ));
            assert!(matches!(
                classify(Func::Delete, s, b""),
                Attempt::Info { retry: true, .. }
            ));
            assert!(matches!(
                classify(Func::Get, s, b""),
                Attempt::Fail { retry: true, .. }
            ));
        }
        assert!(matches!(
            classify(Func::Put, S::FORBIDDEN, b"SignatureDoesNotMatch"),
            Attempt::Fail { retry: false, .. }
        ));
        assert!(matches!(
            classify_no_answer(Func::Put, true, "t".into()),
            Attempt::Info { .. }
        ));
        assert!(matches!(
            classify_no_answer(Func::Put, false, "refused".into()),
            Attempt::Fail { .. }
        ));
        assert!(matches!(
            classify_no_answer(Func::Get, true, "t".into()),
            Attempt::Fail { .. }
        ));
    }

    #[test]
    fn gets_read_values_and_absence() {
        use http::StatusCode as S;
        let body = body_for("p0-3", 64);
        assert_eq!(
            classify(Func::Get, S::OK, &body),
            Attempt::Ok(Some("p0-3".into()))
        );
        assert_eq!(
            classify(Func::Get, S::NOT_FOUND, b"<Code>NoSuchKey</Code>"),
            Attempt::Ok(None)
        );
        assert!(matches!(
            classify(Func::Get, S::NOT_FOUND, b"<Code>NoSuchBucket</Code>"),
            Attempt::Fail { .. }
        ));
    }

    #[test]
    fn longest_gap_covers_both_ends() {
        assert_eq!(longest_gap(&[], 100), (100, 0));
        assert_eq!(longest_gap(&[10, 20, 70, 80], 100), (50, 20));
        assert_eq!(longest_gap(&[10, 20], 100), (80, 20));
        assert_eq!(longest_gap(&[60, 70], 100), (60, 0));
    }

    #[test]
    fn verdicts_on_logged_writes() {
        let sha = "ab".to_string();
        let ok = || Held::Sha("ab".into());
        let mut r = VerifyReport::default();
        judge(&mut r, "k", &sha, "acked", &[ok(), ok()], false);
        judge(&mut r, "k", &sha, "acked", &[ok(), Held::Absent], false);
        judge(
            &mut r,
            "k",
            &sha,
            "acked",
            &[ok(), Held::Sha("cd".into())],
            false,
        );
        judge(&mut r, "k", &sha, "acked", &[ok(), ok()], true);
        judge(
            &mut r,
            "k",
            &sha,
            "unknown",
            &[Held::Absent, Held::Absent],
            false,
        );
        judge(&mut r, "k", &sha, "unknown", &[ok(), ok()], false);
        judge(&mut r, "k", &sha, "unknown", &[ok(), Held::Absent], false);
        judge(&mut r, "k", &sha, "failed", &[ok(), ok()], false);
        assert_eq!(
            (r.acked, r.acked_missing, r.acked_corrupt, r.acked_unlisted),
            (4, 1, 1, 1)
        );
        assert_eq!(
            (r.unknown_absent, r.unknown_present, r.unknown_bad),
            (1, 1, 1)
        );
        assert_eq!((r.failed, r.failed_present), (1, 1));
    }

    #[test]
    fn list_xml_is_parsed() {
        let x = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        assert_eq!(xml_values(x, "Key"), vec!["a&b", "c"]);
        assert_eq!(xml_values(x, "NextContinuationToken"), vec!["t1"]);
        assert_eq!(parse_mix("4,5,1").unwrap(), [4, 5, 1]);
        assert!(parse_mix("1,2").is_err());
        assert!(parse_mix("0,0,0").is_err());
    }
}
