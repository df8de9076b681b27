//! `anode-tools bench suite` and `anode-tools bench compare`: one benchmark matrix that runs
//! against any S3 endpoint with the same settings, and the cell-by-cell ratios of two result
//! files.
//!
//! The matrix (defaults; `--sizes`, `--concurrency` and `--only` narrow it):
//! - `put-SIZE-cN`, `get-SIZE-cN`: PUT then GET of 1 KiB, 64 KiB, 1 MiB and 16 MiB objects at
//!   16 and 64 in flight. Every object body is unique (`bench::object_body`), every PUT's ETag
//!   must be the body's MD5 and every GET body is compared byte for byte with what was put.
//! - `list-1000-cN`: ListObjectsV2 pages of 1,000 keys over a prefix of `--list-keys` keys;
//!   each op is one page, workers follow the continuation tokens and start over at the end,
//!   and every full pass must return every key.
//! - `ycsb-{a,b,c}-cN`: YCSB-style mixes on `--records` 1 KiB objects, keys drawn from a
//!   Zipfian distribution (constant 0.99, as YCSB's default): A is 50% read / 50% update,
//!   B 95/5, C read only. Reads check the length, the record's stamp and ETag = MD5(body).
//!
//! Each worker owns one keep-alive HTTP/1.1 connection (`crate::s3http::S3Conn`); requests
//! are signed with SigV4 like awscli's. A cell runs for `--seconds` or `--ops`; `--quick` is
//! a CI-sized preset. Per cell it prints ops/s, MB/s, p50/p99/p99.9 and errors by kind, and
//! the run is written as JSON (`--out`, format [`FORMAT_VERSION`]); `--append` adds the cells
//! of a further run to an existing file (a driver alternating systems, or several rounds:
//! `bench compare` takes the median of repeated cells).
//!
//! Architecture: matrix expansion, the Zipfian draw, percentiles, the JSON model and the
//! comparison are pure functions (unit tests below); [`run`] and the cell runner only move
//! bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::bench::{check_body, object_body, parse_size, percentile};
use crate::s3http::{CheckedError, PayloadHash, S3Conn, Signer};

/// Version of the JSON result file; [`SuiteFile::load`] refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// Keys per LIST page (`max-keys`).
pub const LIST_PAGE_KEYS: usize = 1000;

/// Size of the YCSB records.
pub const YCSB_RECORD_BYTES: usize = 1024;

/// Flags of `anode-tools bench suite`.
#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// The endpoint, its TLS trust and the signing credentials.
    #[command(flatten)]
    pub target: crate::s3http::S3Target,
    /// Bucket (created if missing; an existing bucket of the same owner is used as is).
    #[arg(long, env = "ANODE_BENCH_BUCKET", default_value = "bench-suite")]
    pub bucket: String,
    /// Object sizes of the PUT and GET cells.
    #[arg(long, value_delimiter = ',', value_parser = parse_size,
          default_value = "1KiB,64KiB,1MiB,16MiB")]
    pub sizes: Vec<usize>,
    /// Requests in flight (one worker and one connection each) of every cell.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub concurrency: Vec<usize>,
    /// Run only the cells whose name starts with one of these (`put-1KiB`, `get`, `list`,
    /// `ycsb-a-c64`, ...).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Run each cell for this many seconds (default 10; 0 with --ops).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Run each cell for this many operations instead of a duration.
    #[arg(long, conflicts_with = "seconds")]
    pub ops: Option<u64>,
    /// CI-sized preset: a few operations per cell (at most 8 MiB of PUT or GET per cell),
    /// 1,050 LIST keys, 100 YCSB records. Explicit --seconds/--ops/--list-keys/--records win.
    #[arg(long)]
    pub quick: bool,
    /// Keys under the LIST prefix (written once, before the first LIST cell; default 2,000).
    #[arg(long)]
    pub list_keys: Option<u64>,
    /// YCSB records (written once, before the first YCSB cell; default 1,000).
    #[arg(long)]
    pub records: Option<u64>,
    /// Give up on one request after this many seconds (counted as a `timeout` error).
    #[arg(long, default_value_t = 120)]
    pub op_timeout_secs: u64,
    /// `x-amz-content-sha256` of PUTs: `unsigned` (UNSIGNED-PAYLOAD) or `sha256`.
    #[arg(long, value_enum, default_value_t = PayloadHash::Unsigned)]
    pub payload: PayloadHash,
    /// Name of the system measured, kept in the JSON (`anode`, `garage`, ...).
    #[arg(long, default_value = "s3")]
    pub label: String,
    /// JSON result file.
    #[arg(long, default_value = "bench-suite.json")]
    pub out: PathBuf,
    /// Add this run's cells to `--out` if it exists (same label and format) instead of
    /// replacing it.
    #[arg(long)]
    pub append: bool,
}

/// Flags of `anode-tools bench compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Numerator (e.g. Anode's file).
    pub a: PathBuf,
    /// Denominator (e.g. the peer's file).
    pub b: PathBuf,
    /// Print the table as Markdown (for BENCHMARKS.md).
    #[arg(long)]
    pub markdown: bool,
}

// ---- the matrix (pure) ------------------------------------------------------------------------

/// YCSB-style workload mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mix {
    /// 50% reads, 50% updates.
    A,
    /// 95% reads, 5% updates.
    B,
    /// Reads only.
    C,
}

impl Mix {
    /// Percentage of operations that are reads.
    pub fn read_percent(self) -> u32 {
        match self {
            Mix::A => 50,
            Mix::B => 95,
            Mix::C => 100,
        }
    }

    fn letter(self) -> char {
        match self {
            Mix::A => 'a',
            Mix::B => 'b',
            Mix::C => 'c',
        }
    }
}

/// One cell of the matrix: a workload at one concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// PUT of new objects of `size` bytes.
    Put {
        /// Object size in bytes.
        size: usize,
        /// Requests in flight.
        conc: usize,
    },
    /// GET of objects of `size` bytes written earlier in the run.
    Get {
        /// Object size in bytes.
        size: usize,
        /// Requests in flight.
        conc: usize,
    },
    /// ListObjectsV2 pages of [`LIST_PAGE_KEYS`] keys.
    List {
        /// Requests in flight.
        conc: usize,
    },
    /// A YCSB mix on 1 KiB records.
    Ycsb {
        /// The mix.
        mix: Mix,
        /// Requests in flight.
        conc: usize,
    },
}

impl Cell {
    /// The cell's name in output and JSON: `put-1KiB-c16`, `list-1000-c64`, `ycsb-a-c16`.
    pub fn name(&self) -> String {
        match *self {
            Cell::Put { size, conc } => format!("put-{}-c{conc}", size_label(size)),
            Cell::Get { size, conc } => format!("get-{}-c{conc}", size_label(size)),
            Cell::List { conc } => format!("list-{LIST_PAGE_KEYS}-c{conc}"),
            Cell::Ycsb { mix, conc } => format!("ycsb-{}-c{conc}", mix.letter()),
        }
    }

    /// The operation kind (`put`, `get`, `list`, `ycsb-a`, ...).
    pub fn op(&self) -> String {
        match *self {
            Cell::Put { .. } => "put".into(),
            Cell::Get { .. } => "get".into(),
            Cell::List { .. } => "list".into(),
            Cell::Ycsb { mix, .. } => format!("ycsb-{}", mix.letter()),
        }
    }

    /// Requests in flight.
    pub fn concurrency(&self) -> usize {
        match *self {
            Cell::Put { conc, .. }
            | Cell::Get { conc, .. }
            | Cell::List { conc }
            | Cell::Ycsb { conc, .. } => conc,
        }
    }

    /// Bytes of object data one operation moves (0 for LIST).
    pub fn size(&self) -> usize {
        match *self {
            Cell::Put { size, .. } | Cell::Get { size, .. } => size,
            Cell::List { .. } => 0,
            Cell::Ycsb { .. } => YCSB_RECORD_BYTES,
        }
    }
}

/// `1KiB`, `16MiB`, `1GiB`, or bytes (`1000B`).
pub fn size_label(size: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if size >= unit && size.is_multiple_of(unit) {
            return format!("{}{name}", size / unit);
        }
    }
    format!("{size}B")
}

/// The cells of the matrix in run order: for each size, PUT at each concurrency then GET at
/// each (so GETs read what the PUTs wrote), then LIST, then YCSB A, B, C; keeping only the
/// cells whose name starts with one of `only` (all when empty).
pub fn expand(sizes: &[usize], concs: &[usize], only: &[String]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &size in sizes {
        cells.extend(concs.iter().map(|&conc| Cell::Put { size, conc }));
        cells.extend(concs.iter().map(|&conc| Cell::Get { size, conc }));
    }
    cells.extend(concs.iter().map(|&conc| Cell::List { conc }));
    for mix in [Mix::A, Mix::B, Mix::C] {
        cells.extend(concs.iter().map(|&conc| Cell::Ycsb { mix, conc }));
    }
    cells.retain(|c| {
        let name = c.name();
        only.is_empty() || only.iter().any(|p| name.starts_with(p.as_str()))
    });
    cells
}

/// How long a cell runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Start operations until this much time has passed (those in flight then finish).
    Seconds(f64),
    /// Run exactly this many operations.
    Ops(u64),
}

/// Settings of one run, resolved from the flags and the `--quick` preset.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Budget of every cell unless `quick` sets one per cell.
    pub budget: Option<Budget>,
    /// The `--quick` preset.
    pub quick: bool,
    /// Keys under the LIST prefix.
    pub list_keys: u64,
    /// YCSB records.
    pub records: u64,
}

impl Settings {
    /// Resolve the flags: explicit values win over `--quick`, which wins over the defaults.
    pub fn resolve(a: &SuiteArgs) -> Settings {
        let budget = match (a.ops, a.seconds) {
            (Some(n), _) => Some(Budget::Ops(n)),
            (None, Some(s)) => Some(Budget::Seconds(s)),
            (None, None) if a.quick => None,
            (None, None) => Some(Budget::Seconds(10.0)),
        };
        let (list_keys, records) = if a.quick { (1050, 100) } else { (2000, 1000) };
        Settings {
            budget,
            quick: a.quick,
            list_keys: a.list_keys.unwrap_or(list_keys),
            records: a.records.unwrap_or(records),
        }
    }

    /// The budget of `cell`: the run's, or the `--quick` preset's (at most 8 MiB of object
    /// data per PUT/GET cell, between 1 and 100 ops; 20 LIST pages; 200 YCSB ops).
    pub fn budget_of(&self, cell: &Cell) -> Budget {
        if let Some(b) = self.budget {
            return b;
        }
        let ops = match cell {
            Cell::Put { size, .. } | Cell::Get { size, .. } => {
                ((8usize << 20) / (*size).max(1)).clamp(1, 100) as u64
            }
            Cell::List { .. } => 20,
            Cell::Ycsb { .. } => 200,
        };
        Budget::Ops(ops)
    }
}

// ---- Zipfian keys (pure) ----------------------------------------------------------------------

/// Zipfian draw over `0..n` (item 0 the most popular), by the closed-form method of Gray et
/// al., "Quickly generating billion-record synthetic databases" (SIGMOD 1994), which YCSB
/// also uses; `theta` 0.99 is YCSB's default constant.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    /// A distribution over `0..n` (`n` ≥ 1) with constant `theta` in (0, 1).
    pub fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2.min(n));
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            1.0
        };
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// The item for a uniform draw `u` in [0, 1).
    pub fn item(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 || self.n == 1 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let x = self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (x as u64).min(self.n - 1)
    }
}

// ---- results (pure) ---------------------------------------------------------------------------

/// Figures of one cell, as written to the JSON file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// [`Cell::name`].
    pub name: String,
    /// [`Cell::op`].
    pub op: String,
    /// Object bytes per operation (0 for LIST).
    pub size_bytes: u64,
    /// Requests in flight.
    pub concurrency: u64,
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Failed operations by kind (`http_503`, `timeout`, `verify`, `io`, ...).
    pub error_kinds: BTreeMap<String, u64>,
    /// The first error's text.
    pub first_error: Option<String>,
    /// Wall time of the cell, from the first request to the last answer.
    pub seconds: f64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Object data of the successful operations (LIST: response bytes) in MB (10^6) per second.
    pub mb_per_sec: f64,
    /// Latency percentiles of the successful operations, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The machine's 1-minute load average when the cell started (0 where unknown).
    pub load1: f64,
}

impl CellResult {
    /// The figures of `cell` from the merged worker statistics (latencies sorted).
    pub fn new(cell: &Cell, s: &CellStats, load1: f64) -> CellResult {
        let secs = s.wall.as_secs_f64().max(1e-9);
        let ms = |q| percentile(&s.latencies_us, q) as f64 / 1000.0;
        let ops = s.latencies_us.len() as u64;
        CellResult {
            name: cell.name(),
            op: cell.op(),
            size_bytes: cell.size() as u64,
            concurrency: cell.concurrency() as u64,
            ops,
            errors: s.error_kinds.values().sum(),
            error_kinds: s.error_kinds.clone(),
            first_error: s.first_error.clone(),
            seconds: secs,
            ops_per_sec: ops as f64 / secs,
            mb_per_sec: s.bytes as f64 / secs / 1e6,
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            load1,
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "{:<16} {:>10.1} ops/s {:>9.1} MB/s  p50 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2} ms  errors {}{}  load {:.1}",
            self.name,
            self.ops_per_sec,
            self.mb_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.errors,
            if self.error_kinds.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.error_kinds)
            },
            self.load1
        )
    }
}

/// One invocation of the suite, as written to the JSON file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// The budget (`10 s per cell`, `500 ops per cell`, `quick`).
    pub budget: String,
    /// Keys under the LIST prefix.
    pub list_keys: u64,
    /// YCSB records.
    pub records: u64,
    /// `/proc/loadavg` at the start (empty where unknown).
    pub loadavg: String,
}

/// A result file: the runs of one system and their cells (repeats allowed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteFile {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// `--label`.
    pub label: String,
    /// `--endpoint`.
    pub endpoint: String,
    /// One entry per invocation (`--append` adds one).
    pub runs: Vec<RunInfo>,
    /// Every cell of every run, in run order.
    pub cells: Vec<CellResult>,
}

/// Why a result file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Unreadable file.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a result file.
    #[error("parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// Written by another version of the tool.
    #[error("{path}: result format {found}, this tool reads {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its `format`.
        found: u32,
    },
}

impl SuiteFile {
    /// Parse a result file's text (checks the format version).
    pub fn parse(text: &str, path: &std::path::Path) -> Result<SuiteFile, FileError> {
        let f: SuiteFile = serde_json::from_str(text).map_err(|source| FileError::Parse {
            path: path.into(),
            source,
        })?;
        if f.format != FORMAT_VERSION {
            return Err(FileError::Version {
                path: path.into(),
                found: f.format,
            });
        }
        Ok(f)
    }

    /// Read and parse a result file.
    pub fn load(path: &std::path::Path) -> Result<SuiteFile, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.into(),
            source,
        })?;
        SuiteFile::parse(&text, path)
    }
}

/// One row of a comparison: a cell in both files, medians over its repeats.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// Cell name.
    pub name: String,
    /// Median ops/s in A.
    pub a_ops: f64,
    /// Median ops/s in B.
    pub b_ops: f64,
    /// `a_ops / b_ops` (infinite when B did nothing).
    pub ratio: f64,
    /// Median p99 in A, ms.
    pub a_p99: f64,
    /// Median p99 in B, ms.
    pub b_p99: f64,
    /// Errors summed over A's repeats.
    pub a_errors: u64,
    /// Errors summed over B's repeats.
    pub b_errors: u64,
    /// Repeats of the cell in A and in B.
    pub repeats: (usize, usize),
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The cells present in both files, in A's order, with A/B ratios of their median
/// throughput (cells run several times, by rounds or `--append`, count by their median).
pub fn compare(a: &SuiteFile, b: &SuiteFile) -> Vec<Ratio> {
    let mut names: Vec<&str> = Vec::new();
    for c in &a.cells {
        if !names.contains(&c.name.as_str()) {
            names.push(&c.name);
        }
    }
    let of = |f: &'_ SuiteFile, name: &str| -> Vec<CellResult> {
        f.cells.iter().filter(|c| c.name == name).cloned().collect()
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (ca, cb) = (of(a, name), of(b, name));
            if cb.is_empty() {
                return None;
            }
            let med =
                |v: &[CellResult], f: fn(&CellResult) -> f64| median(v.iter().map(f).collect());
            let (a_ops, b_ops) = (med(&ca, |c| c.ops_per_sec), med(&cb, |c| c.ops_per_sec));
            let ratio = if b_ops > 0.0 {
                a_ops / b_ops
            } else if a_ops > 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            };
            Some(Ratio {
                name: name.to_string(),
                a_ops,
                b_ops,
                ratio,
                a_p99: med(&ca, |c| c.p99_ms),
                b_p99: med(&cb, |c| c.p99_ms),
                a_errors: ca.iter().map(|c| c.errors).sum(),
                b_errors: cb.iter().map(|c| c.errors).sum(),
                repeats: (ca.len(), cb.len()),
            })
        })
        .collect()
}

/// The comparison as text (`markdown`: a Markdown table).
pub fn format_compare(a: &SuiteFile, b: &SuiteFile, rows: &[Ratio], markdown: bool) -> String {
    let (la, lb) = (&a.label, &b.label);
    let mut out = String::new();
    if markdown {
        out.push_str(&format!(
            "| cell | {la} ops/s | {lb} ops/s | {la}/{lb} | p99 {la} ms | p99 {lb} ms | errors {la}/{lb} |\n|---|---:|---:|---:|---:|---:|---:|\n"
        ));
    } else {
        out.push_str(&format!(
            "{:<16} {:>11} {:>11} {:>8} {:>11} {:>11}  errors\n",
            "cell",
            format!("{la} ops/s"),
            format!("{lb} ops/s"),
            "ratio",
            format!("p99 {la}"),
            format!("p99 {lb}")
        ));
    }
    for r in rows {
        if markdown {
            out.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {}/{} |\n",
                r.name, r.a_ops, r.b_ops, r.ratio, r.a_p99, r.b_p99, r.a_errors, r.b_errors
            ));
        } else {
            out.push_str(&format!(
                "{:<16} {:>11.1} {:>11.1} {:>8.2} {:>11.2} {:>11.2}  {}/{}\n",
                r.name, r.a_ops, r.b_ops, r.ratio, r.a_p99, r.b_p99, r.a_errors, r.b_errors
            ));
        }
    }
    out
}

/// What a ListObjectsV2 page says (pure parse of its XML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Keys on the page.
    pub keys: usize,
    /// `IsTruncated`.
    pub truncated: bool,
    /// `NextContinuationToken`.
    pub next: Option<String>,
}

/// Parse a ListObjectsV2 answer.
pub fn parse_list_page(xml: &str) -> ListPage {
    use crate::chaos_load::xml_values;
    ListPage {
        keys: xml_values(xml, "Key").len(),
        truncated: xml_values(xml, "IsTruncated").first().map(String::as_str) == Some("true"),
        next: xml_values(xml, "NextContinuationToken").into_iter().next(),
    }
}

// ---- running (IO) -----------------------------------------------------------------------------

/// Merged figures of a cell's workers.
#[derive(Default, Debug)]
pub struct CellStats {
    /// Latencies of the successful operations (sorted after merging), µs.
    pub latencies_us: Vec<u64>,
    /// Object bytes moved by the successful operations.
    pub bytes: u64,
    /// Failed operations by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// The first error's text.
    pub first_error: Option<String>,
    /// Wall time of the cell.
    pub wall: Duration,
    /// PUT: (index, ETag) of every object written.
    pub written: Vec<(u64, String)>,
}

impl CellStats {
    fn merge(&mut self, o: CellStats) {
        self.latencies_us.extend(o.latencies_us);
        self.bytes += o.bytes;
        for (k, n) in o.error_kinds {
            *self.error_kinds.entry(k).or_default() += n;
        }
        self.first_error = self.first_error.take().or(o.first_error);
        self.written.extend(o.written);
    }

    fn error(&mut self, kind: String, text: String) {
        *self.error_kinds.entry(kind).or_default() += 1;
        self.first_error.get_or_insert(text);
    }
}

/// What all workers of a run share.
struct Ctx {
    signer: Signer,
    host: String,
    tls: Option<crate::s3http::Tls>,
    bucket: String,
    payload: PayloadHash,
    op_timeout: Duration,
    /// Unique per run: stamped into every body, and the key prefix.
    nonce: u64,
    /// Random bytes as long as the largest object; bodies are stamped copies of a prefix.
    base: Vec<u8>,
}

impl Ctx {
    fn path(&self, space: &str, idx: u64) -> String {
        format!("/{}/suite-{:x}/{space}/{idx:08}", self.bucket, self.nonce)
    }

    fn body(&self, size: usize, stamp: u64, idx: u64) -> Vec<u8> {
        object_body(&self.base[..size], stamp, idx)
    }

    /// A checked PUT of `body` at `path`, signed and hashed as this run says; its ETag.
    async fn put(
        &self,
        conn: &mut S3Conn,
        path: &str,
        body: Vec<u8>,
    ) -> Result<String, CheckedError> {
        crate::s3http::put_checked(conn, &self.signer, path, body.into(), self.payload).await
    }

    /// A checked GET of `path` with `query`, signed as this run says.
    async fn get(
        &self,
        conn: &mut S3Conn,
        path: &str,
        query: &str,
    ) -> Result<(http::HeaderMap, bytes::Bytes), CheckedError> {
        crate::s3http::get_checked(conn, &self.signer, path, query).await
    }
}

/// One operation kind as the workers run it.
#[derive(Clone)]
enum Work {
    /// PUT new objects `space/next..` of `size` bytes.
    Put {
        size: usize,
        space: String,
        next: Arc<AtomicU64>,
    },
    /// GET of these (index, ETag) objects of `space`, in turn.
    Get {
        size: usize,
        space: String,
        objects: Arc<Vec<(u64, String)>>,
    },
    /// LIST pages over `space` holding `keys` keys.
    List { space: String, keys: u64 },
    /// A YCSB mix over `records` records in `space`.
    Ycsb {
        mix: Mix,
        zipf: Arc<Zipf>,
        version: Arc<AtomicU64>,
    },
}

/// One worker's state across its operations.
struct Worker {
    conn: S3Conn,
    rng: rand_chacha::ChaCha8Rng,
    /// LIST: continuation token of the next page, keys seen in this pass.
    token: Option<String>,
    pass_keys: u64,
    stats: CellStats,
}

const YCSB_SPACE: &str = "ycsb";
const LIST_SPACE: &str = "list";

/// Run the suite.
pub async fn run(args: SuiteArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.concurrency.iter().all(|&c| c > 0),
        "--concurrency values must be positive"
    );
    let settings = Settings::resolve(&args);
    let cells = expand(&args.sizes, &args.concurrency, &args.only);
    anyhow::ensure!(!cells.is_empty(), "no cell matches --only {:?}", args.only);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let nonce = started.as_nanos() as u64;
    let max_size = args
        .sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(YCSB_RECORD_BYTES);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(nonce);
    let mut base = vec![0u8; max_size];
    rng.fill(&mut base[..]);
    let ctx = Arc::new(Ctx {
        signer: args.target.signer.clone(),
        host: crate::s3http::endpoint_host(&args.target.endpoint)?,
        tls: crate::s3http::endpoint_tls(&args.target.endpoint, args.target.ca_bundle.as_deref())?,
        bucket: args.bucket.clone(),
        payload: args.payload,
        op_timeout: Duration::from_secs(args.op_timeout_secs),
        nonce,
        base,
    });
    let conn = S3Conn::new(ctx.host.clone()).with_tls(ctx.tls.clone());
    crate::s3http::create_bucket_over(&ctx.signer, conn, &ctx.bucket).await?;
    let mut file = match (args.append, args.out.exists()) {
        (true, true) => SuiteFile::load(&args.out)?,
        _ => SuiteFile {
            format: FORMAT_VERSION,
            label: args.label.clone(),
            endpoint: args.target.endpoint.clone(),
            runs: Vec::new(),
            cells: Vec::new(),
        },
    };
    anyhow::ensure!(
        file.label == args.label,
        "{} holds results of {:?}, not {:?}",
        args.out.display(),
        file.label,
        args.label
    );
    file.runs.push(RunInfo {
        started_unix: started.as_secs(),
        budget: match settings.budget {
            Some(Budget::Seconds(s)) => format!("{s} s per cell"),
            Some(Budget::Ops(n)) => format!("{n} ops per cell"),
            None => "quick".into(),
        },
        list_keys: settings.list_keys,
        records: settings.records,
        loadavg: loadavg().trim().to_string(),
    });
    println!(
        "bench suite: {} at {} ({} cells, {})",
        args.label,
        args.target.endpoint,
        cells.len(),
        file.runs.last().map_or("", |r| r.budget.as_str())
    );
    let mut state = RunState::default();
    for cell in &cells {
        let result = run_cell(&ctx, &settings, &mut state, cell).await?;
        println!("{}", result.line());
        file.cells.push(result);
    }
    let json = serde_json::to_string_pretty(&file)?;
    // Whole or not at all: a run that dies mid-write leaves the previous file (`--append`).
    let tmp = args.out.with_extension("json.tmp");
    std::fs::write(&tmp, json.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &args.out))
        .map_err(|e| anyhow::anyhow!("write {}: {e}", args.out.display()))?;
    println!("bench suite: results in {}", args.out.display());
    Ok(())
}

/// Objects and data sets made so far in this run.
#[derive(Default)]
struct RunState {
    /// Per size: the objects of that size.
    objects: BTreeMap<usize, SizeObjects>,
    list_ready: bool,
    ycsb: Option<(Arc<Zipf>, Arc<AtomicU64>)>,
}

/// The objects of one size written in a run.
#[derive(Default)]
struct SizeObjects {
    /// Next free object index.
    next: Arc<AtomicU64>,
    /// (index, ETag) of every object written.
    written: Vec<(u64, String)>,
}

/// Prepare what `cell` needs (untimed), run it, and return its figures.
async fn run_cell(
    ctx: &Arc<Ctx>,
    settings: &Settings,
    state: &mut RunState,
    cell: &Cell,
) -> anyhow::Result<CellResult> {
    let conc = cell.concurrency();
    let budget = settings.budget_of(cell);
    let work = match *cell {
        Cell::Put { size, .. } => put_work(state, size),
        Cell::Get { size, .. } => {
            // As many objects as requests in flight (or ops in the cell, if fewer).
            let want = match budget {
                Budget::Ops(n) => (conc as u64).min(n),
                Budget::Seconds(_) => conc as u64,
            };
            let have = state
                .objects
                .get(&size)
                .map_or(0, |o| o.written.len() as u64);
            if have < want {
                let w = put_work(state, size);
                let s = prepare(ctx, w, Budget::Ops(want - have), conc).await?;
                state
                    .objects
                    .entry(size)
                    .or_default()
                    .written
                    .extend(s.written);
            }
            let mut objects = state
                .objects
                .get(&size)
                .map(|o| o.written.clone())
                .unwrap_or_default();
            objects.sort();
            Work::Get {
                size,
                space: size_label(size),
                objects: Arc::new(objects),
            }
        }
        Cell::List { .. } => {
            if !state.list_ready {
                let w = Work::Put {
                    size: 0,
                    space: LIST_SPACE.into(),
                    next: Arc::default(),
                };
                prepare(ctx, w, Budget::Ops(settings.list_keys), 64).await?;
                state.list_ready = true;
            }
            Work::List {
                space: LIST_SPACE.into(),
                keys: settings.list_keys,
            }
        }
        Cell::Ycsb { mix, .. } => {
            let (zipf, version) = match &state.ycsb {
                Some(y) => y.clone(),
                None => {
                    let w = Work::Put {
                        size: YCSB_RECORD_BYTES,
                        space: YCSB_SPACE.into(),
                        next: Arc::default(),
                    };
                    prepare(ctx, w, Budget::Ops(settings.records), 64).await?;
                    let y = (Arc::new(Zipf::new(settings.records, 0.99)), Arc::default());
                    state.ycsb = Some(y.clone());
                    y
                }
            };
            Work::Ycsb { mix, zipf, version }
        }
    };
    let load1 = loadavg()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    let stats = run_workers(ctx, &work, budget, conc, 1).await;
    if let Cell::Put { size, .. } = cell {
        let objects = &mut state.objects.entry(*size).or_default().written;
        objects.extend(stats.written.iter().cloned());
    }
    Ok(CellResult::new(cell, &stats, load1))
}

/// The PUT work of objects of `size`, continuing this run's numbering for that size.
fn put_work(state: &mut RunState, size: usize) -> Work {
    let next = state.objects.entry(size).or_default().next.clone();
    Work::Put {
        size,
        space: size_label(size),
        next,
    }
}

/// Run `work` untimed as set-up; any error fails the run (a data set with holes would make
/// the timed cells wrong).
async fn prepare(ctx: &Arc<Ctx>, work: Work, n: Budget, conc: usize) -> anyhow::Result<CellStats> {
    let s = run_workers(ctx, &work, n, conc, SETUP_ATTEMPTS).await;
    let errors: u64 = s.error_kinds.values().sum();
    anyhow::ensure!(
        errors == 0,
        "set-up: {errors} errors; first: {}",
        s.first_error.unwrap_or_default()
    );
    Ok(s)
}

/// Tries of one set-up operation before the run fails (a busy endpoint may shed load).
const SETUP_ATTEMPTS: u32 = 5;

/// Run `work` on `conc` workers for `budget`, each operation tried up to `attempts` times;
/// returns the merged figures.
async fn run_workers(
    ctx: &Arc<Ctx>,
    work: &Work,
    budget: Budget,
    conc: usize,
    attempts: u32,
) -> CellStats {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = match budget {
        Budget::Seconds(s) => Some(start + Duration::from_secs_f64(s.max(0.0))),
        Budget::Ops(_) => None,
    };
    let limit = match budget {
        Budget::Ops(n) => n,
        Budget::Seconds(_) => u64::MAX,
    };
    let workers = conc
        .min(usize::try_from(limit).unwrap_or(usize::MAX))
        .max(1);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (ctx, work, next) = (ctx.clone(), work.clone(), next.clone());
            tokio::spawn(async move {
                let mut worker = Worker {
                    conn: S3Conn::new(ctx.host.clone()).with_tls(ctx.tls.clone()),
                    rng: rand_chacha::ChaCha8Rng::seed_from_u64(ctx.nonce ^ (w as u64 + 1)),
                    token: None,
                    pass_keys: 0,
                    stats: CellStats::default(),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    // PUTs take the next free object index, other work cycles with `i`.
                    let idx = match &work {
                        Work::Put { next, .. } => next.fetch_add(1, Ordering::Relaxed),
                        _ => i,
                    };
                    one_op(&ctx, &work, &mut worker, idx, attempts).await;
                }
                worker.stats
            })
        })
        .collect();
    let mut total = CellStats::default();
    for t in tasks {
        match t.await {
            Ok(s) => total.merge(s),
            Err(e) => total.error("panic".into(), e.to_string()),
        }
    }
    total.latencies_us.sort_unstable();
    total.wall = start.elapsed();
    total
}

/// One timed operation, tried up to `attempts` times (with a short back-off): counted as a
/// latency (of the last try) and its bytes, or as an error of the last try's kind.
async fn one_op(ctx: &Ctx, work: &Work, w: &mut Worker, i: u64, attempts: u32) {
    for attempt in 1..=attempts {
        let t = Instant::now();
        let result = tokio::time::timeout(ctx.op_timeout, op(ctx, work, w, i)).await;
        let failure = match result {
            Ok(Ok(bytes)) => {
                w.stats.latencies_us.push(t.elapsed().as_micros() as u64);
                w.stats.bytes += bytes;
                return;
            }
            Ok(Err(e)) => (e.kind(), e.to_string()),
            Err(_) => {
                w.conn.reset();
                let text = format!("no answer within {:?}", ctx.op_timeout);
                ("timeout".to_string(), text)
            }
        };
        if attempt == attempts {
            // An endpoint that refuses connections would otherwise be hammered in a tight
            // loop (and count thousands of errors a second).
            let refused = failure.0 == "connect";
            w.stats.error(failure.0, failure.1);
            if refused {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }
}

/// Operation `i` of `work` (PUT: object index `i`); returns the bytes it moved.
async fn op(ctx: &Ctx, work: &Work, w: &mut Worker, i: u64) -> Result<u64, CheckedError> {
    match work {
        Work::Put { size, space, .. } => {
            let idx = i;
            let body = ctx.body(*size, ctx.nonce, idx);
            let path = ctx.path(space, idx);
            let etag = ctx.put(&mut w.conn, &path, body).await?;
            w.stats.written.push((idx, etag));
            Ok(*size as u64)
        }
        Work::Get {
            size,
            space,
            objects,
        } => {
            let (idx, etag) = &objects[(i % objects.len() as u64) as usize];
            let path = ctx.path(space, *idx);
            let (headers, body) = ctx.get(&mut w.conn, &path, "").await?;
            check_body(&headers, &body, etag, &ctx.body(*size, ctx.nonce, *idx))?;
            Ok(*size as u64)
        }
        Work::List { space, keys } => list_page(ctx, w, space, *keys).await,
        Work::Ycsb { mix, zipf, version } => {
            let idx = zipf.item(w.rng.gen::<f64>());
            let read = w.rng.gen_range(0..100) < mix.read_percent();
            let path = ctx.path(YCSB_SPACE, idx);
            if read {
                let (headers, body) = ctx.get(&mut w.conn, &path, "").await?;
                check_record(&headers, &body, idx)?;
            } else {
                // A new stamp per update: every version of every record is a unique body.
                let v = version.fetch_add(1, Ordering::Relaxed) + 1;
                let body = ctx.body(YCSB_RECORD_BYTES, ctx.nonce.wrapping_add(v), idx);
                ctx.put(&mut w.conn, &path, body).await?;
            }
            Ok(YCSB_RECORD_BYTES as u64)
        }
    }
}

/// A YCSB read: 1 KiB, stamped with its record index (bytes 8..16 of `object_body`), and
/// the ETag is the body's MD5 (whichever version was read).
fn check_record(headers: &http::HeaderMap, body: &[u8], idx: u64) -> Result<(), CheckedError> {
    use md5::Digest;
    let verify = |m: String| Err(CheckedError::Verify(m));
    if body.len() != YCSB_RECORD_BYTES {
        return verify(format!("record {idx}: {} bytes", body.len()));
    }
    if body[8..16] != idx.to_le_bytes() {
        return verify(format!("record {idx}: body of another record"));
    }
    let md5 = format!("\"{}\"", hex::encode(md5::Md5::digest(body)));
    let etag = crate::s3http::header_str(headers, "etag");
    if etag != md5 {
        return verify(format!("record {idx}: ETag {etag}, body MD5 {md5}"));
    }
    Ok(())
}

/// One LIST page: the next page of this worker's pass over `space` (the first page after the
/// last). A full pass must see `keys` keys; a truncated page must be full.
async fn list_page(ctx: &Ctx, w: &mut Worker, space: &str, keys: u64) -> Result<u64, CheckedError> {
    use percent_encoding::utf8_percent_encode;
    let enc = |s: &str| utf8_percent_encode(s, crate::s3http::QUERY_UNRESERVED).to_string();
    let prefix = format!("suite-{:x}/{space}/", ctx.nonce);
    let mut query = format!(
        "list-type=2&max-keys={LIST_PAGE_KEYS}&prefix={}",
        enc(&prefix)
    );
    if let Some(t) = &w.token {
        query.push_str(&format!("&continuation-token={}", enc(t)));
    }
    let path = format!("/{}", ctx.bucket);
    let (_, body) = ctx.get(&mut w.conn, &path, &query).await?;
    let page = parse_list_page(&String::from_utf8_lossy(&body));
    w.pass_keys += page.keys as u64;
    let verify = |m: String| Err(CheckedError::Verify(m));
    if page.truncated {
        w.token = page.next;
        if page.keys != LIST_PAGE_KEYS || w.token.is_none() {
            w.token = None;
            w.pass_keys = 0;
            return verify(format!("LIST: truncated page of {} keys", page.keys));
        }
    } else {
        let seen = std::mem::take(&mut w.pass_keys);
        w.token = None;
        if seen != keys {
            return verify(format!("LIST: a pass saw {seen} keys, want {keys}"));
        }
    }
    Ok(body.len() as u64)
}

/// `/proc/loadavg` (empty where there is none).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

/// `anode-tools bench compare A.json B.json`: print the A/B ratios cell by cell.
pub fn compare_files(args: CompareArgs) -> anyhow::Result<()> {
    let a = SuiteFile::load(&args.a)?;
    let b = SuiteFile::load(&args.b)?;
    let rows = compare(&a, &b);
    anyhow::ensure!(
        !rows.is_empty(),
        "{} and {} have no cell in common",
        args.a.display(),
        args.b.display()
    );
    print!("{}", format_compare(&a, &b, &rows, args.markdown));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SuiteArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: SuiteArgs,
        }
        let mut v = vec!["suite"];
        v.extend_from_slice(extra);
        P::try_parse_from(v).unwrap().a
    }

    #[test]
    fn the_default_matrix_is_the_issue_18_one() {
        let a = args(&[]);
        let cells = expand(&a.sizes, &a.concurrency, &a.only);
        let names: Vec<String> = cells.iter().map(Cell::name).collect();
        assert_eq!(
            names,
            [
                "put-1KiB-c16",
                "put-1KiB-c64",
                "get-1KiB-c16",
                "get-1KiB-c64",
                "put-64KiB-c16",
                "put-64KiB-c64",
                "get-64KiB-c16",
                "get-64KiB-c64",
                "put-1MiB-c16",
                "put-1MiB-c64",
                "get-1MiB-c16",
                "get-1MiB-c64",
                "put-16MiB-c16",
                "put-16MiB-c64",
                "get-16MiB-c16",
                "get-16MiB-c64",
                "list-1000-c16",
                "list-1000-c64",
                "ycsb-a-c16",
                "ycsb-a-c64",
                "ycsb-b-c16",
                "ycsb-b-c64",
                "ycsb-c-c16",
                "ycsb-c-c64",
            ]
        );
        assert_eq!(cells[0].size(), 1024);
        assert_eq!(cells[16].size(), 0);
        assert_eq!(cells[18].size(), YCSB_RECORD_BYTES);
        assert_eq!(cells[23].op(), "ycsb-c");
        assert_eq!(cells[23].concurrency(), 64);
    }

    #[test]
    fn only_keeps_cells_by_name_prefix() {
        let names = |only: &[&str]| -> Vec<String> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            expand(&[1024, 16 << 20], &[16, 64], &only)
                .iter()
                .map(Cell::name)
                .collect()
        };
        assert_eq!(
            names(&["put-16MiB", "list-1000-c64"]),
            ["put-16MiB-c16", "put-16MiB-c64", "list-1000-c64"]
        );
        assert_eq!(names(&["ycsb-b"]), ["ycsb-b-c16", "ycsb-b-c64"]);
        assert!(names(&["nothing"]).is_empty());
        assert_eq!(names(&[]).len(), 2 * 4 + 2 + 6);
    }

    #[test]
    fn sizes_label_in_binary_units() {
        assert_eq!(size_label(1024), "1KiB");
        assert_eq!(size_label(64 << 10), "64KiB");
        assert_eq!(size_label(16 << 20), "16MiB");
        assert_eq!(size_label(1 << 30), "1GiB");
        assert_eq!(size_label(1536), "1536B");
        assert_eq!(size_label(0), "0B");
    }

    #[test]
    fn settings_resolve_flags_over_quick_over_defaults() {
        let s = Settings::resolve(&args(&[]));
        assert_eq!(s.budget, Some(Budget::Seconds(10.0)));
        assert_eq!((s.list_keys, s.records), (2000, 1000));
        let q = Settings::resolve(&args(&["--quick"]));
        assert_eq!(q.budget, None);
        assert_eq!((q.list_keys, q.records), (1050, 100));
        assert_eq!(
            q.budget_of(&Cell::Put {
                size: 1024,
                conc: 64
            }),
            Budget::Ops(100)
        );
        assert_eq!(
            q.budget_of(&Cell::Get {
                size: 1 << 20,
                conc: 16
            }),
            Budget::Ops(8)
        );
        assert_eq!(
            q.budget_of(&Cell::Put {
                size: 16 << 20,
                conc: 16
            }),
            Budget::Ops(1)
        );
        assert_eq!(
            q.budget_of(&Cell::Put {
                size: 1 << 30,
                conc: 16
            }),
            Budget::Ops(1)
        );
        assert_eq!(q.budget_of(&Cell::List { conc: 16 }), Budget::Ops(20));
        let o = Settings::resolve(&args(&["--quick", "--ops", "7", "--records", "9"]));
        assert_eq!(o.budget_of(&Cell::List { conc: 16 }), Budget::Ops(7));
        assert_eq!((o.list_keys, o.records), (1050, 9));
        let t = Settings::resolve(&args(&["--seconds", "2.5"]));
        assert_eq!(t.budget_of(&Cell::List { conc: 16 }), Budget::Seconds(2.5));
    }

    #[test]
    fn zipf_stays_in_range_and_favours_the_first_items() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
        let mut counts = vec![0u64; 1000];
        for _ in 0..100_000 {
            counts[z.item(rng.gen::<f64>()) as usize] += 1;
        }
        // Item 0 takes about 1/zeta(1000) of the draws (13% at theta 0.99).
        let share0 = counts[0] as f64 / 100_000.0;
        assert!((share0 - 1.0 / z.zetan).abs() < 0.01, "{share0}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        assert!(
            counts.iter().filter(|&&c| c > 0).count() > 500,
            "the tail is drawn too"
        );
        assert_eq!(z.item(0.0), 0);
        assert!(z.item(0.999_999_9) < 1000);
        let one = Zipf::new(1, 0.99);
        assert_eq!(one.item(0.5), 0);
        assert_eq!(one.item(0.99), 0);
        let two = Zipf::new(2, 0.99);
        assert!((0..100).all(|i| two.item(i as f64 / 100.0) < 2));
    }

    #[test]
    fn mixes_read_as_ycsb_defines_them() {
        assert_eq!(Mix::A.read_percent(), 50);
        assert_eq!(Mix::B.read_percent(), 95);
        assert_eq!(Mix::C.read_percent(), 100);
    }

    fn cell(name: &str, ops_per_sec: f64, p99: f64, errors: u64) -> CellResult {
        CellResult {
            name: name.into(),
            op: "put".into(),
            size_bytes: 1024,
            concurrency: 16,
            ops: 10,
            errors,
            error_kinds: if errors > 0 {
                [("http_503".to_string(), errors)].into()
            } else {
                BTreeMap::new()
            },
            first_error: None,
            seconds: 1.0,
            ops_per_sec,
            mb_per_sec: 0.0,
            p50_ms: 1.0,
            p99_ms: p99,
            p999_ms: p99,
            load1: 1.5,
        }
    }

    fn file(label: &str, cells: Vec<CellResult>) -> SuiteFile {
        SuiteFile {
            format: FORMAT_VERSION,
            label: label.into(),
            endpoint: "http://127.0.0.1:9000".into(),
            runs: vec![RunInfo {
                started_unix: 1,
                budget: "quick".into(),
                list_keys: 1050,
                records: 100,
                loadavg: "1.0 1.0 1.0 1/1 1".into(),
            }],
            cells,
        }
    }

    #[test]
    fn compare_takes_medians_of_repeats_in_a_order() {
        let a = file(
            "anode",
            vec![
                cell("put-1KiB-c16", 100.0, 5.0, 0),
                cell("get-1KiB-c16", 50.0, 9.0, 0),
                cell("put-1KiB-c16", 300.0, 7.0, 1),
                cell("put-1KiB-c16", 200.0, 6.0, 0),
                cell("only-in-a", 1.0, 1.0, 0),
            ],
        );
        let b = file(
            "garage",
            vec![
                cell("get-1KiB-c16", 0.0, 0.0, 3),
                cell("put-1KiB-c16", 50.0, 40.0, 2),
                cell("put-1KiB-c16", 150.0, 60.0, 0),
            ],
        );
        let rows = compare(&a, &b);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "put-1KiB-c16");
        assert_eq!((rows[0].a_ops, rows[0].b_ops), (200.0, 100.0));
        assert_eq!(rows[0].ratio, 2.0);
        assert_eq!((rows[0].a_p99, rows[0].b_p99), (6.0, 50.0));
        assert_eq!((rows[0].a_errors, rows[0].b_errors), (1, 2));
        assert_eq!(rows[0].repeats, (3, 2));
        assert_eq!(rows[1].name, "get-1KiB-c16");
        assert!(rows[1].ratio.is_infinite(), "B did nothing");
        assert_eq!(rows[1].b_errors, 3);
        let text = format_compare(&a, &b, &rows, false);
        assert!(text.contains("anode ops/s"), "{text}");
        assert!(text.contains("put-1KiB-c16"), "{text}");
        assert!(text.contains("2.00"), "{text}");
        let md = format_compare(&a, &b, &rows, true);
        assert!(
            md.starts_with("| cell | anode ops/s | garage ops/s | anode/garage |"),
            "{md}"
        );
        assert!(
            md.contains("| put-1KiB-c16 | 200.0 | 100.0 | 2.00 | 6.0 | 50.0 | 1/2 |"),
            "{md}"
        );
        let same = compare(&a, &a);
        assert!(same.iter().all(|r| r.ratio == 1.0));
    }

    #[test]
    fn result_files_round_trip_and_refuse_other_versions() {
        let f = file("anode", vec![cell("put-1KiB-c16", 1.0, 2.0, 3)]);
        let text = serde_json::to_string_pretty(&f).unwrap();
        let p = std::path::Path::new("x.json");
        assert_eq!(SuiteFile::parse(&text, p).unwrap(), f);
        let mut v2 = f.clone();
        v2.format = FORMAT_VERSION + 1;
        let text = serde_json::to_string(&v2).unwrap();
        assert!(matches!(
            SuiteFile::parse(&text, p),
            Err(FileError::Version { found, .. }) if found == FORMAT_VERSION + 1
        ));
        assert!(matches!(
            SuiteFile::parse("{", p),
            Err(FileError::Parse { .. })
        ));
    }

    #[test]
    fn cell_results_come_from_sorted_latencies() {
        let stats = CellStats {
            latencies_us: (1..=1000).map(|i| i * 1000).collect(),
            bytes: 2_000_000,
            error_kinds: [("timeout".to_string(), 2)].into(),
            first_error: Some("no answer".into()),
            wall: Duration::from_secs(2),
            written: Vec::new(),
        };
        let r = CellResult::new(
            &Cell::Get {
                size: 2000,
                conc: 16,
            },
            &stats,
            0.5,
        );
        assert_eq!(r.name, "get-2000B-c16");
        assert_eq!((r.ops, r.errors), (1000, 2));
        assert_eq!(r.ops_per_sec, 500.0);
        assert_eq!(r.mb_per_sec, 1.0);
        assert_eq!((r.p50_ms, r.p99_ms, r.p999_ms), (500.0, 990.0, 999.0));
        assert!(
            r.line().contains("errors 2 {\"timeout\": 2}"),
            "{}",
            r.line()
        );
    }

    #[test]
    fn list_pages_parse() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key></Contents>\
                   <Contents><Key>b&amp;c</Key></Contents><NextContinuationToken>t+1/=</NextContinuationToken></ListBucketResult>";
        assert_eq!(
            parse_list_page(xml),
            ListPage {
                keys: 2,
                truncated: true,
                next: Some("t+1/=".into())
            }
        );
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>";
        assert_eq!(
            parse_list_page(last),
            ListPage {
                keys: 0,
                truncated: false,
                next: None
            }
        );
    }

    #[test]
    fn records_are_checked_by_stamp_length_and_md5() {
        use md5::Digest;
        let base = vec![7u8; YCSB_RECORD_BYTES];
        let body = object_body(&base, 99, 5);
        let mut h = http::HeaderMap::new();
        let md5 = format!("\"{}\"", hex::encode(md5::Md5::digest(&body)));
        h.insert("etag", md5.parse().unwrap());
        assert!(check_record(&h, &body, 5).is_ok());
        assert!(check_record(&h, &body, 6).is_err(), "another record's body");
        assert!(check_record(&h, &body[..100], 5).is_err(), "short");
        let mut bad = body.clone();
        bad[500] ^= 1;
        assert!(matches!(
            check_record(&h, &bad, 5),
            Err(CheckedError::Verify(_))
        ));
    }
}
