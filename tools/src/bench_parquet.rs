//! `anode-tools bench parquet`: what Parquet awareness (issue 16) saves a query engine.
//!
//! Writes a dataset of `--files` Parquet files (`--rows` rows each in `--row-groups` row
//! groups; columns `ts` int64 rising across the files, `value` double, `city` string and `id`
//! int64, the last three pseudo-random), uploads it through S3, then answers two queries
//! (`count(*)` and `sum(ts)` of the matching rows) in two ways:
//!
//! - **plain**, as an engine does on any S3 store: list every object, read each file's footer
//!   with a ranged GET of its last `--footer-read` bytes (and one more GET when the footer is
//!   longer), keep the row groups whose statistics may match, and read the needed column
//!   chunks (`ts`, `value`) with ranged GETs, adjacent chunks in one request;
//! - **anode**, the pruned path: ListObjectsV2 with `x-anode-where` lists only the files whose
//!   statistics may match, with their row groups (`<AnodeRowGroups>`); then the same footer
//!   and column chunk reads for those.
//!
//! The queries: *selective*, a narrow `ts` range over about 1.5 % of the files; and
//! *non-selective*, `ts` over everything and `value > 0.5` (a column whose row-group
//! statistics prune nothing). Every answer is checked against the figures computed from the
//! generator, so a path that skips a file it needed fails the run.
//!
//! Per query and path: wall time (median of `--rounds`), objects listed, LIST and GET
//! requests, bytes received over S3 (response bodies), row groups read and, when their
//! `/metrics` URLs are given, the bytes the chunkservers read
//! (`anode_chunkserver_bytes_out_total`) and the gateway's footer hits and misses
//! (`anode_gateway_parquet_footer_{hits,misses}_total`), as deltas per round. `--peer-*` runs
//! the plain path against another S3 store too (its own copy of the dataset).
//!
//! The files are written without compression (the tools build `parquet` without codecs) and
//! with row-group statistics only (no page index): the footer holds what pruning needs.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use percent_encoding::utf8_percent_encode;

use crate::chaos_load::xml_values;
use crate::s3http::{PayloadHash, S3Conn, Signer, QUERY_UNRESERVED};

/// The most files a run writes.
pub const MAX_FILES: usize = 100_000;
/// The most rows in one file.
pub const MAX_ROWS: usize = 10_000_000;
/// The most row groups in one file.
pub const MAX_ROW_GROUPS: usize = 1_000;
/// The longest footer read (a footer length field above it is refused).
pub const MAX_FOOTER: u64 = 64 << 20;

/// Flags of `anode-tools bench parquet`.
#[derive(clap::Args, Debug, Clone)]
pub struct ParquetBenchArgs {
    /// The endpoint (Anode's gateway), its TLS trust and the signing credentials.
    #[command(flatten)]
    pub target: crate::s3http::S3Target,
    /// Bucket (created if missing), on the endpoint and on the peer.
    #[arg(long, default_value = "bench-parquet")]
    pub bucket: String,
    /// Files in the dataset.
    #[arg(long, default_value_t = 200)]
    pub files: usize,
    /// Rows per file.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Row groups per file.
    #[arg(long, default_value_t = 4)]
    pub row_groups: usize,
    /// Concurrent requests (one keep-alive connection each), for uploads and reads.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Times each query runs on each path (wall time: the median).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Bytes an engine reads from the end of a file to find its footer.
    #[arg(long, default_value_t = 64 * 1024)]
    pub footer_read: u64,
    /// Do not upload: the dataset of these flags is there from an earlier run.
    #[arg(long)]
    pub skip_upload: bool,
    /// The gateway's `/metrics` URL (`http://HOST:PORT/metrics`): footer hits and misses.
    #[arg(long)]
    pub gateway_metrics: Option<String>,
    /// Chunkservers' `/metrics` URLs, comma-separated (summed; with `anode dev` the three
    /// chunkservers share one process, so give one).
    #[arg(long, value_delimiter = ',')]
    pub chunkserver_metrics: Vec<String>,
    /// Another S3 store to run the plain path against (`http://HOST:PORT`).
    #[arg(long)]
    pub peer_endpoint: Option<String>,
    /// The peer's access key.
    #[arg(long, default_value = "")]
    pub peer_access_key: String,
    /// The peer's secret key.
    #[arg(long, default_value = "", hide_default_value = true)]
    pub peer_secret_key: String,
    /// The peer's region.
    #[arg(long, default_value = "us-east-1")]
    pub peer_region: String,
    /// The peer's name in the report.
    #[arg(long, default_value = "peer")]
    pub peer_name: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

// ---- the dataset (pure) -----------------------------------------------------------------------

/// Shape of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Files.
    pub files: usize,
    /// Rows per file.
    pub rows: usize,
    /// Row groups per file.
    pub row_groups: usize,
}

/// The cities of the `city` column.
const CITIES: [&str; 4] = ["Bergen", "Oslo", "Paris", "Tokyo"];

/// SplitMix64: the pseudo-random columns, a function of `ts` alone.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `value` of the row with this `ts`: uniform in [0, 1).
pub fn value_of(ts: i64) -> f64 {
    (mix(ts as u64) >> 11) as f64 / (1u64 << 53) as f64
}

impl Shape {
    /// Check the caps.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_FILES).contains(&self.files),
            "--files must be 1..={MAX_FILES}"
        );
        anyhow::ensure!(
            (1..=MAX_ROWS).contains(&self.rows),
            "--rows must be 1..={MAX_ROWS}"
        );
        anyhow::ensure!(
            (1..=MAX_ROW_GROUPS.min(self.rows)).contains(&self.row_groups),
            "--row-groups must be 1..={} (and at most --rows)",
            MAX_ROW_GROUPS
        );
        Ok(())
    }

    /// Rows of the whole dataset.
    pub fn total(&self) -> i64 {
        (self.files * self.rows) as i64
    }

    /// The key prefix of this shape's dataset (so datasets of other shapes never mix).
    pub fn prefix(&self) -> String {
        format!("pq-{}x{}x{}/", self.files, self.rows, self.row_groups)
    }

    /// The key of file `i`.
    pub fn key(&self, i: usize) -> String {
        format!("{}part-{i:06}.parquet", self.prefix())
    }

    /// The bytes of file `i`.
    pub fn file(&self, i: usize) -> Result<Vec<u8>, parquet::errors::ParquetError> {
        let schema = Arc::new(parquet::schema::parser::parse_message_type(
            "message bench { required int64 ts; required double value; \
             required binary city (UTF8); required int64 id; }",
        )?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_statistics_enabled(EnabledStatistics::Chunk)
                .build(),
        );
        let mut w = SerializedFileWriter::new(Vec::new(), schema, props)?;
        let per_group = self.rows.div_ceil(self.row_groups);
        let first = (i * self.rows) as i64;
        for g in 0..self.row_groups {
            let lo = first + (g * per_group).min(self.rows) as i64;
            let hi = first + ((g + 1) * per_group).min(self.rows) as i64;
            let ts: Vec<i64> = (lo..hi).collect();
            let value: Vec<f64> = ts.iter().map(|t| value_of(*t)).collect();
            let city: Vec<ByteArray> = ts
                .iter()
                .map(|t| ByteArray::from(CITIES[(mix(*t as u64) % 4) as usize]))
                .collect();
            let id: Vec<i64> = ts
                .iter()
                .map(|t| (mix(mix(*t as u64)) >> 1) as i64)
                .collect();
            let mut rg = w.next_row_group()?;
            let mut n = 0;
            while let Some(mut col) = rg.next_column()? {
                match n {
                    0 => col.typed::<Int64Type>().write_batch(&ts, None, None)?,
                    1 => col.typed::<DoubleType>().write_batch(&value, None, None)?,
                    2 => col
                        .typed::<ByteArrayType>()
                        .write_batch(&city, None, None)?,
                    _ => col.typed::<Int64Type>().write_batch(&id, None, None)?,
                };
                col.close()?;
                n += 1;
            }
            rg.close()?;
        }
        w.into_inner()
    }
}

/// A query: `ts >= ts_lo AND ts < ts_hi [AND value > value_gt]`; its answer is the count and
/// the sum of `ts` of the matching rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Name in the report.
    pub name: &'static str,
    /// Lowest `ts`.
    pub ts_lo: i64,
    /// `ts` below this.
    pub ts_hi: i64,
    /// `value` above this, if set.
    pub value_gt: Option<f64>,
}

/// The answer to a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Matching rows.
    pub count: u64,
    /// Sum of their `ts`.
    pub sum_ts: i128,
}

impl Answer {
    fn add(&mut self, o: Answer) {
        self.count += o.count;
        self.sum_ts += o.sum_ts;
    }
}

impl Query {
    /// The selective and the non-selective query over a dataset.
    pub fn pair(shape: &Shape) -> [Query; 2] {
        let rows = shape.rows as i64;
        let total = shape.total();
        // About 1.5 % of the files, starting mid-file in the middle of the dataset.
        let span = ((shape.files as i64 * 15) / 1000).max(1) * rows;
        let lo = (shape.files as i64 / 2) * rows + rows / 2;
        [
            Query {
                name: "selective",
                ts_lo: lo.min(total - 1),
                ts_hi: (lo + span).min(total),
                value_gt: None,
            },
            Query {
                name: "non-selective",
                ts_lo: 0,
                ts_hi: total,
                value_gt: Some(0.5),
            },
        ]
    }

    /// The predicate as `x-anode-where` text.
    pub fn where_text(&self) -> String {
        let mut s = format!("ts >= {} AND ts < {}", self.ts_lo, self.ts_hi);
        if let Some(v) = self.value_gt {
            s.push_str(&format!(" AND value > {v:?}"));
        }
        s
    }

    /// Whether a row matches.
    pub fn matches(&self, ts: i64, value: f64) -> bool {
        ts >= self.ts_lo && ts < self.ts_hi && self.value_gt.is_none_or(|v| value > v)
    }

    /// Whether a row group may hold a matching row, by its `ts` and `value` bounds (`None`:
    /// no statistics, so it may).
    pub fn may_match(&self, ts: Option<(i64, i64)>, value: Option<(f64, f64)>) -> bool {
        let ts_ok = ts.is_none_or(|(min, max)| max >= self.ts_lo && min < self.ts_hi);
        let value_ok = match (self.value_gt, value) {
            (Some(v), Some((_, max))) => max.is_nan() || max > v,
            _ => true,
        };
        ts_ok && value_ok
    }

    /// The answer over the generated data.
    pub fn expected(&self, shape: &Shape) -> Answer {
        let mut a = Answer::default();
        for ts in self.ts_lo.max(0)..self.ts_hi.min(shape.total()) {
            if self.matches(ts, value_of(ts)) {
                a.count += 1;
                a.sum_ts += i128::from(ts);
            }
        }
        a
    }
}

// ---- reading Parquet from ranges (pure) ---------------------------------------------------------

/// Why bytes read from a store are not the Parquet file they should be.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The tail does not end in `PAR1` or is too short.
    #[error("not a Parquet tail ({0} bytes)")]
    NotParquet(usize),
    /// The footer length field is over [`MAX_FOOTER`] or the file.
    #[error("footer of {0} bytes in a file of {1}")]
    BadFooterLength(u64, u64),
    /// The footer or a page does not decode.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The schema is not the benchmark's.
    #[error("unexpected schema: {0}")]
    Schema(String),
    /// A column chunk's range lies outside what was read.
    #[error("bytes {0}..{1} were not read")]
    NotRead(u64, u64),
    /// A column chunk holds another number of values than its row group's rows.
    #[error("column {0}: {1} values, want {2}")]
    Count(usize, usize, usize),
}

/// From the last bytes of a file of `size` bytes: the footer length when `tail` holds the
/// whole footer (`Ok(Ok(len))`), else how many bytes from the end are needed (`Ok(Err(n))`).
pub fn footer_len(tail: &[u8], size: u64) -> Result<Result<u64, u64>, FileError> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(FileError::NotParquet(n));
    }
    let len = u64::from(u32::from_le_bytes([
        tail[n - 8],
        tail[n - 7],
        tail[n - 6],
        tail[n - 5],
    ]));
    if len > MAX_FOOTER || len + 12 > size {
        return Err(FileError::BadFooterLength(len, size));
    }
    Ok(if len + 8 <= n as u64 {
        Ok(len)
    } else {
        Err(len + 8)
    })
}

/// Decode the footer at the end of `tail` (which holds it whole) and check the schema is the
/// benchmark's: `ts` int64 and `value` double first.
pub fn decode_footer(tail: &[u8], size: u64) -> Result<ParquetMetaData, FileError> {
    let len = match footer_len(tail, size)? {
        Ok(len) => len as usize,
        Err(need) => return Err(FileError::NotRead(size - need, size)),
    };
    let n = tail.len();
    let meta = ParquetMetaDataReader::decode_metadata(&tail[n - 8 - len..n - 8])?;
    let schema = meta.file_metadata().schema_descr();
    let ok = schema.num_columns() >= 2
        && schema.column(0).name() == "ts"
        && schema.column(0).physical_type() == PhysicalType::INT64
        && schema.column(1).name() == "value"
        && schema.column(1).physical_type() == PhysicalType::DOUBLE
        && schema.column(0).max_def_level() == 0
        && schema.column(1).max_def_level() == 0;
    if !ok {
        return Err(FileError::Schema(format!("{:?}", schema.columns())));
    }
    Ok(meta)
}

/// The `ts` and `value` bounds of a row group, where its statistics give them.
#[allow(clippy::type_complexity)]
pub fn bounds(rg: &RowGroupMetaData) -> (Option<(i64, i64)>, Option<(f64, f64)>) {
    let ts = match rg.column(0).statistics() {
        Some(Statistics::Int64(s)) => s.min_opt().copied().zip(s.max_opt().copied()),
        _ => None,
    };
    let value = match rg.column(1).statistics() {
        Some(Statistics::Double(s)) => s.min_opt().copied().zip(s.max_opt().copied()),
        _ => None,
    };
    (ts, value)
}

/// The byte ranges of columns 0 and 1 of the given row groups, adjacent ranges merged.
pub fn chunk_ranges(meta: &ParquetMetaData, groups: &[usize]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for &g in groups {
        for c in 0..2 {
            let (start, len) = meta.row_group(g).column(c).byte_range();
            match out.last_mut() {
                Some(last) if last.end == start => last.end = start + len,
                _ => out.push(start..start + len),
            }
        }
    }
    out
}

/// Pieces of a file read by range: a [`ChunkReader`] over them.
#[derive(Clone)]
pub struct Pieces {
    size: u64,
    pieces: Vec<(u64, Bytes)>,
}

impl Pieces {
    /// The pieces read of a file of `size` bytes (start offset, bytes).
    pub fn new(size: u64, pieces: Vec<(u64, Bytes)>) -> Pieces {
        Pieces { size, pieces }
    }

    fn find(&self, start: u64, len: u64) -> parquet::errors::Result<Bytes> {
        for (at, b) in &self.pieces {
            if start >= *at && start + len <= at + b.len() as u64 {
                let from = (start - at) as usize;
                return Ok(b.slice(from..from + len as usize));
            }
        }
        Err(parquet::errors::ParquetError::EOF(format!(
            "bytes {start}..{} were not read",
            start + len
        )))
    }
}

impl Length for Pieces {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Pieces {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        for (at, b) in &self.pieces {
            if start >= *at && start < at + b.len() as u64 {
                return Ok(b.slice((start - at) as usize..).reader());
            }
        }
        Err(parquet::errors::ParquetError::EOF(format!(
            "byte {start} was not read"
        )))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64)
    }
}

/// The answer of `q` over row group `g`, decoded from `data`.
pub fn answer_row_group(
    meta: &ParquetMetaData,
    g: usize,
    data: &Arc<Pieces>,
    q: &Query,
) -> Result<Answer, FileError> {
    let rg = meta.row_group(g);
    let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
    let schema = meta.file_metadata().schema_descr();
    let pages = |c: usize| -> Result<Box<SerializedPageReader<Pieces>>, FileError> {
        let col = rg.column(c);
        let (start, len) = col.byte_range();
        if data.find(start, len).is_err() {
            return Err(FileError::NotRead(start, start + len));
        }
        Ok(Box::new(SerializedPageReader::new(
            data.clone(),
            col,
            rows,
            None,
        )?))
    };
    let mut ts = Vec::with_capacity(rows);
    let mut r = ColumnReaderImpl::<Int64Type>::new(schema.column(0), pages(0)?);
    let (n, _, _) = r.read_records(rows, None, None, &mut ts)?;
    if n != rows || ts.len() != rows {
        return Err(FileError::Count(0, ts.len(), rows));
    }
    let mut value = Vec::with_capacity(rows);
    let mut r = ColumnReaderImpl::<DoubleType>::new(schema.column(1), pages(1)?);
    let (n, _, _) = r.read_records(rows, None, None, &mut value)?;
    if n != rows || value.len() != rows {
        return Err(FileError::Count(1, value.len(), rows));
    }
    let mut a = Answer::default();
    for (t, v) in ts.iter().zip(&value) {
        if q.matches(*t, *v) {
            a.count += 1;
            a.sum_ts += i128::from(*t);
        }
    }
    Ok(a)
}

/// One object of a listing: key, size and, from a listing with `x-anode-where`, the row
/// groups that may match (`None`: not indexed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// `<AnodeRowGroups>`.
    pub row_groups: Option<Vec<usize>>,
}

/// The objects of a ListObjectsV2 page (pure parse of its XML).
pub fn parse_listed(xml: &str) -> anyhow::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for c in xml_values(xml, "Contents") {
        let key = xml_values(&c, "Key")
            .into_iter()
            .next()
            .context("Contents without Key")?;
        let size = xml_values(&c, "Size")
            .first()
            .context("Contents without Size")?
            .parse()
            .context("Size")?;
        let row_groups = match xml_values(&c, "AnodeRowGroups").first() {
            None => None,
            Some(t) if t.is_empty() => Some(Vec::new()),
            Some(t) => Some(
                t.split(',')
                    .map(|g| g.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("AnodeRowGroups {t:?}"))?,
            ),
        };
        out.push(Listed {
            key,
            size,
            row_groups,
        });
    }
    Ok(out)
}

/// The samples of a Prometheus text exposition, summed by metric name (labels dropped).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(line[..name_end].to_string()).or_insert(0.0) += v;
    }
    out
}

// ---- IO ---------------------------------------------------------------------------------------

/// An S3 store the benchmark talks to.
#[derive(Clone)]
struct Store {
    name: String,
    host: String,
    tls: Option<crate::s3http::Tls>,
    signer: Signer,
    /// The pruned path is run against it (Anode).
    anode: bool,
}

/// What one query on one path cost.
#[derive(Clone, Debug, Default, serde::Serialize)]
struct Cost {
    store: String,
    path: String,
    query: String,
    wall_ms: f64,
    objects_listed: u64,
    list_requests: u64,
    get_requests: u64,
    bytes_fetched: u64,
    row_groups_read: u64,
    chunkserver_bytes_read: Option<f64>,
    footer_hits: Option<f64>,
    footer_misses: Option<f64>,
    rows_matched: u64,
}

/// Counters of a run, shared by its workers.
#[derive(Default)]
struct Counters {
    gets: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    row_groups: std::sync::atomic::AtomicU64,
}

impl Store {
    fn conn(&self) -> S3Conn {
        S3Conn::new(self.host.clone()).with_tls(self.tls.clone())
    }

    /// A signed GET; `range` as a `Range` header value.
    async fn get(
        &self,
        conn: &mut S3Conn,
        path: &str,
        query: &str,
        range: Option<String>,
    ) -> anyhow::Result<Bytes> {
        let mut req = self.signer.request(
            &self.host,
            http::Method::GET,
            path,
            query,
            Bytes::new(),
            PayloadHash::Unsigned,
        )?;
        let ranged = range.is_some();
        if let Some(r) = range {
            req.headers_mut().insert(http::header::RANGE, r.parse()?);
        }
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(60), conn.send(req))
            .await
            .context("GET timed out")??;
        let want = if ranged {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        anyhow::ensure!(
            status == want,
            "{}: GET {path}?{query}: {status} {}",
            self.name,
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
        Ok(body)
    }

    /// Every object under `prefix`, with `x-anode-where` when `predicate` is set; the
    /// requests made and the bytes received.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        predicate: Option<&str>,
    ) -> anyhow::Result<(Vec<Listed>, u64, u64)> {
        let mut conn = self.conn();
        let (mut out, mut requests, mut bytes) = (Vec::new(), 0u64, 0u64);
        let mut token: Option<String> = None;
        loop {
            let enc = |s: &str| utf8_percent_encode(s, QUERY_UNRESERVED).to_string();
            let mut q = Vec::new();
            if let Some(t) = &token {
                q.push(format!("continuation-token={}", enc(t)));
            }
            q.push("list-type=2".to_string());
            q.push(format!("prefix={}", enc(prefix)));
            if let Some(p) = predicate {
                q.push(format!("x-anode-where={}", enc(p)));
            }
            let body = self
                .get(&mut conn, &format!("/{bucket}"), &q.join("&"), None)
                .await?;
            requests += 1;
            bytes += body.len() as u64;
            anyhow::ensure!(requests < 1_000_000, "listing does not end");
            let text = String::from_utf8_lossy(&body);
            out.extend(parse_listed(&text)?);
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if !text.contains("<IsTruncated>true</IsTruncated>") {
                break;
            }
            anyhow::ensure!(token.is_some(), "truncated listing without a token");
        }
        Ok((out, requests, bytes))
    }

    /// Read one file as an engine does: footer, then the needed column chunks of the row
    /// groups that `allowed` (or all) holds and whose statistics may match.
    async fn read_file(
        &self,
        conn: &mut S3Conn,
        bucket: &str,
        obj: &Listed,
        q: &Query,
        footer_read: u64,
        counters: &Counters,
    ) -> anyhow::Result<Answer> {
        let path = format!(
            "/{bucket}/{}",
            utf8_percent_encode(&obj.key, crate::s3http::PATH_UNRESERVED)
        );
        let count = |b: &Bytes| {
            counters.gets.fetch_add(1, Ordering::Relaxed);
            counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
        };
        let size = obj.size;
        // The smallest Parquet file: magic, an empty footer, its length and the magic again.
        anyhow::ensure!(size >= 12, "{}: {size} bytes is no Parquet file", obj.key);
        let n = footer_read.clamp(8, size);
        let mut tail = self
            .get(
                conn,
                &path,
                "",
                Some(format!("bytes={}-{}", size - n, size - 1)),
            )
            .await?;
        count(&tail);
        anyhow::ensure!(tail.len() as u64 == n, "{}: short footer read", obj.key);
        if let Err(need) = footer_len(&tail, size)? {
            let more = self
                .get(
                    conn,
                    &path,
                    "",
                    Some(format!("bytes={}-{}", size - need, size - n - 1)),
                )
                .await?;
            count(&more);
            anyhow::ensure!(more.len() as u64 == need - n, "{}: short read", obj.key);
            tail = [more, tail].concat().into();
        }
        let meta = decode_footer(&tail, size).with_context(|| obj.key.clone())?;
        let groups: Vec<usize> = (0..meta.num_row_groups())
            .filter(|g| obj.row_groups.as_ref().is_none_or(|rg| rg.contains(g)))
            .filter(|g| {
                let (ts, value) = bounds(meta.row_group(*g));
                q.may_match(ts, value)
            })
            .collect();
        let mut pieces = Vec::new();
        for r in chunk_ranges(&meta, &groups) {
            anyhow::ensure!(r.end <= size, "{}: column chunk past the end", obj.key);
            let b = self
                .get(
                    conn,
                    &path,
                    "",
                    Some(format!("bytes={}-{}", r.start, r.end - 1)),
                )
                .await?;
            count(&b);
            anyhow::ensure!(b.len() as u64 == r.end - r.start, "{}: short read", obj.key);
            pieces.push((r.start, b));
        }
        let data = Arc::new(Pieces::new(size, pieces));
        let mut a = Answer::default();
        for g in &groups {
            a.add(answer_row_group(&meta, *g, &data, q).with_context(|| obj.key.clone())?);
        }
        counters
            .row_groups
            .fetch_add(groups.len() as u64, Ordering::Relaxed);
        Ok(a)
    }
}

/// GET a `/metrics` page.
async fn scrape(url: &str) -> anyhow::Result<HashMap<String, f64>> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("metrics URL {url:?} must be http://HOST:PORT/PATH"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let req = http::Request::builder()
        .uri(path)
        .header(http::header::HOST, host)
        .body(http_body_util::Full::new(Bytes::new()))?;
    let (status, _, body) = S3Conn::new(host).send(req).await?;
    anyhow::ensure!(status.is_success(), "{url}: {status}");
    Ok(parse_metrics(&String::from_utf8_lossy(&body)))
}

/// The sum of `name` over `urls` (None when no URL is given or none has it).
async fn metric_sum(urls: &[String], name: &str) -> anyhow::Result<Option<f64>> {
    let mut total = None;
    for u in urls {
        if let Some(v) = scrape(u).await?.get(name) {
            *total.get_or_insert(0.0) += v;
        }
    }
    Ok(total)
}

/// Snapshot of the Anode metrics: chunkserver bytes read, footer hits, footer misses.
async fn anode_metrics(
    args: &ParquetBenchArgs,
) -> anyhow::Result<(Option<f64>, Option<f64>, Option<f64>)> {
    let gw: Vec<String> = args.gateway_metrics.iter().cloned().collect();
    Ok((
        metric_sum(
            &args.chunkserver_metrics,
            "anode_chunkserver_bytes_out_total",
        )
        .await?,
        metric_sum(&gw, "anode_gateway_parquet_footer_hits_total").await?,
        metric_sum(&gw, "anode_gateway_parquet_footer_misses_total").await?,
    ))
}

/// Upload the dataset to `store`.
async fn upload(store: &Store, args: &ParquetBenchArgs, shape: Shape) -> anyhow::Result<()> {
    crate::s3http::create_bucket_over(&store.signer, store.conn(), &args.bucket).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (store, next, bucket) = (store.clone(), next.clone(), args.bucket.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = store.conn();
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= shape.files {
                    return anyhow::Ok(bytes);
                }
                let body = tokio::task::spawn_blocking(move || shape.file(i)).await??;
                bytes += body.len() as u64;
                let path = format!("/{bucket}/{}", shape.key(i));
                crate::s3http::put_checked(
                    &mut conn,
                    &store.signer,
                    &path,
                    body.into(),
                    PayloadHash::Unsigned,
                )
                .await
                .with_context(|| format!("{}: PUT {path}", store.name))?;
            }
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    eprintln!(
        "bench parquet: {} files, {:.1} MB uploaded to {} in {:.1} s",
        shape.files,
        bytes as f64 / 1e6,
        store.name,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Run `q` once on `store` by the plain (`pruned` false) or the pruned path.
async fn run_query(
    store: &Store,
    args: &ParquetBenchArgs,
    shape: Shape,
    q: &Query,
    pruned: bool,
) -> anyhow::Result<(Cost, Answer)> {
    let start = Instant::now();
    let predicate = pruned.then(|| q.where_text());
    let (listed, list_requests, list_bytes) = store
        .list(&args.bucket, &shape.prefix(), predicate.as_deref())
        .await?;
    if !pruned {
        anyhow::ensure!(
            listed.len() == shape.files,
            "{}: {} objects under {}, want {} (upload first: drop --skip-upload)",
            store.name,
            listed.len(),
            shape.prefix(),
            shape.files
        );
    }
    let listed = Arc::new(listed);
    let counters = Arc::new(Counters::default());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (store, listed, counters, next) = (
            store.clone(),
            listed.clone(),
            counters.clone(),
            next.clone(),
        );
        let (q, bucket, footer_read) = (q.clone(), args.bucket.clone(), args.footer_read);
        tasks.push(tokio::spawn(async move {
            let mut conn = store.conn();
            let mut a = Answer::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(obj) = listed.get(i) else {
                    return anyhow::Ok(a);
                };
                a.add(
                    store
                        .read_file(&mut conn, &bucket, obj, &q, footer_read, &counters)
                        .await?,
                );
            }
        }));
    }
    let mut answer = Answer::default();
    for t in tasks {
        answer.add(t.await??);
    }
    let cost = Cost {
        store: store.name.clone(),
        path: if pruned { "anode" } else { "plain" }.into(),
        query: q.name.into(),
        wall_ms: start.elapsed().as_secs_f64() * 1e3,
        objects_listed: listed.len() as u64,
        list_requests,
        get_requests: counters.gets.load(Ordering::Relaxed),
        bytes_fetched: list_bytes + counters.bytes.load(Ordering::Relaxed),
        row_groups_read: counters.row_groups.load(Ordering::Relaxed),
        rows_matched: answer.count,
        ..Cost::default()
    };
    Ok((cost, answer))
}

/// Run the benchmark.
pub async fn run(args: ParquetBenchArgs) -> anyhow::Result<()> {
    let shape = Shape {
        files: args.files,
        rows: args.rows,
        row_groups: args.row_groups,
    };
    shape.check()?;
    anyhow::ensure!(
        (1..=1024).contains(&args.concurrency),
        "--concurrency must be 1..=1024"
    );
    anyhow::ensure!((1..=100).contains(&args.rounds), "--rounds must be 1..=100");
    anyhow::ensure!(
        (8..=MAX_FOOTER).contains(&args.footer_read),
        "--footer-read must be 8..={MAX_FOOTER}"
    );
    let mut stores = vec![Store {
        name: "anode".into(),
        host: crate::s3http::endpoint_host(&args.target.endpoint)?,
        tls: crate::s3http::endpoint_tls(&args.target.endpoint, args.target.ca_bundle.as_deref())?,
        signer: args.target.signer.clone(),
        anode: true,
    }];
    if let Some(ep) = &args.peer_endpoint {
        stores.push(Store {
            name: args.peer_name.clone(),
            host: crate::s3http::endpoint_host(ep)?,
            tls: crate::s3http::endpoint_tls(ep, args.target.ca_bundle.as_deref())?,
            signer: Signer {
                access_key: args.peer_access_key.clone(),
                secret_key: args.peer_secret_key.clone(),
                region: args.peer_region.clone(),
            },
            anode: false,
        });
    }
    if !args.skip_upload {
        for s in &stores {
            upload(s, &args, shape).await?;
        }
    }
    let queries = Query::pair(&shape);
    let expected: Vec<Answer> = queries.iter().map(|q| q.expected(&shape)).collect();
    // (store, path, query) -> costs of each round.
    let mut runs: Vec<((usize, bool, usize), Vec<Cost>)> = Vec::new();
    for (si, s) in stores.iter().enumerate() {
        for pruned in [false, true] {
            if pruned && !s.anode {
                continue;
            }
            for qi in 0..queries.len() {
                runs.push(((si, pruned, qi), Vec::new()));
            }
        }
    }
    for _ in 0..args.rounds {
        for ((si, pruned, qi), costs) in runs.iter_mut() {
            let s = &stores[*si];
            let before = if s.anode {
                Some(anode_metrics(&args).await?)
            } else {
                None
            };
            let (mut cost, answer) = run_query(s, &args, shape, &queries[*qi], *pruned).await?;
            anyhow::ensure!(
                answer == expected[*qi],
                "{} {} path, {} query: answered {answer:?}, want {:?}",
                s.name,
                cost.path,
                cost.query,
                expected[*qi]
            );
            if let Some((cs0, hit0, miss0)) = before {
                let (cs1, hit1, miss1) = anode_metrics(&args).await?;
                let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
                cost.chunkserver_bytes_read = delta(cs0, cs1);
                cost.footer_hits = delta(hit0, hit1);
                cost.footer_misses = delta(miss0, miss1);
            }
            costs.push(cost);
        }
    }
    let summary: Vec<Cost> = runs.iter().map(|(_, c)| summarize(c)).collect();
    if args.json {
        for c in &summary {
            println!("{}", serde_json::to_string(c)?);
        }
    } else {
        print!("{}", table(&shape, &queries, &summary));
    }
    Ok(())
}

/// One row from the rounds of a run: the median wall time, the metric deltas' mean, the
/// rest from the last round (they are the same every round).
fn summarize(rounds: &[Cost]) -> Cost {
    let mut out = rounds.last().cloned().unwrap_or_default();
    let mut walls: Vec<f64> = rounds.iter().map(|c| c.wall_ms).collect();
    walls.sort_by(f64::total_cmp);
    out.wall_ms = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
    let mean = |f: fn(&Cost) -> Option<f64>| {
        let v: Vec<f64> = rounds.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    out.chunkserver_bytes_read = mean(|c| c.chunkserver_bytes_read);
    out.footer_hits = mean(|c| c.footer_hits);
    out.footer_misses = mean(|c| c.footer_misses);
    out
}

/// The report as a text table.
fn table(shape: &Shape, queries: &[Query], rows: &[Cost]) -> String {
    let mut out = format!(
        "bench parquet: {} files x {} rows, {} row groups each\n",
        shape.files, shape.rows, shape.row_groups
    );
    for q in queries {
        out.push_str(&format!("  {:<14} where {}\n", q.name, q.where_text()));
    }
    out.push_str(&format!(
        "{:<10} {:<6} {:<14} {:>9} {:>7} {:>5} {:>6} {:>11} {:>6} {:>11} {:>7} {:>7}\n",
        "store",
        "path",
        "query",
        "wall_ms",
        "listed",
        "lists",
        "gets",
        "bytes",
        "rgs",
        "cs_bytes",
        "f_hits",
        "f_miss"
    ));
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    for c in rows {
        out.push_str(&format!(
            "{:<10} {:<6} {:<14} {:>9.1} {:>7} {:>5} {:>6} {:>11} {:>6} {:>11} {:>7} {:>7}\n",
            c.store,
            c.path,
            c.query,
            c.wall_ms,
            c.objects_listed,
            c.list_requests,
            c.get_requests,
            c.bytes_fetched,
            c.row_groups_read,
            opt(c.chunkserver_bytes_read),
            opt(c.footer_hits),
            opt(c.footer_misses),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Shape {
        Shape {
            files: 10,
            rows: 1000,
            row_groups: 3,
        }
    }

    /// A file read back whole through [`Pieces`] (as if every byte were fetched).
    fn whole(b: &[u8]) -> (ParquetMetaData, Arc<Pieces>) {
        let size = b.len() as u64;
        let meta = decode_footer(b, size).unwrap();
        let data = Arc::new(Pieces::new(size, vec![(0, Bytes::copy_from_slice(b))]));
        (meta, data)
    }

    #[test]
    fn files_hold_the_generated_rows_and_their_statistics() {
        let s = small();
        let b = s.file(3).unwrap();
        assert_eq!(&b[..4], b"PAR1");
        let (meta, data) = whole(&b);
        assert_eq!(meta.num_row_groups(), 3);
        let all = Query {
            name: "all",
            ts_lo: 0,
            ts_hi: s.total(),
            value_gt: None,
        };
        let mut a = Answer::default();
        let mut next_lo = 3000;
        for g in 0..3 {
            let (ts, value) = bounds(meta.row_group(g));
            let (lo, hi) = ts.unwrap();
            assert_eq!(lo, next_lo, "row groups follow each other");
            next_lo = hi + 1;
            let (vmin, vmax) = value.unwrap();
            assert!((0.0..1.0).contains(&vmin) && vmin <= vmax && vmax < 1.0);
            a.add(answer_row_group(&meta, g, &data, &all).unwrap());
        }
        assert_eq!(next_lo, 4000);
        assert_eq!(a.count, 1000);
        assert_eq!(a.sum_ts, (3000..4000).map(i128::from).sum::<i128>());
    }

    #[test]
    fn answers_from_ranges_equal_the_expected_ones() {
        let s = small();
        for q in Query::pair(&s) {
            let mut got = Answer::default();
            let mut groups_read = 0;
            for i in 0..s.files {
                let b = s.file(i).unwrap();
                let size = b.len() as u64;
                // The footer from a short tail: the length says how much more to read.
                let tail = &b[b.len() - 8..];
                let need = footer_len(tail, size).unwrap().unwrap_err();
                let meta = decode_footer(&b[b.len() - need as usize..], size).unwrap();
                let groups: Vec<usize> = (0..meta.num_row_groups())
                    .filter(|g| {
                        let (ts, v) = bounds(meta.row_group(*g));
                        q.may_match(ts, v)
                    })
                    .collect();
                groups_read += groups.len();
                let pieces = chunk_ranges(&meta, &groups)
                    .into_iter()
                    .map(|r| {
                        (
                            r.start,
                            Bytes::copy_from_slice(&b[r.start as usize..r.end as usize]),
                        )
                    })
                    .collect();
                let data = Arc::new(Pieces::new(size, pieces));
                for g in groups {
                    got.add(answer_row_group(&meta, g, &data, &q).unwrap());
                }
            }
            assert_eq!(got, q.expected(&s), "{}", q.name);
            assert!(got.count > 0, "{}", q.name);
            if q.name == "selective" {
                assert!(
                    groups_read < 3 * s.files / 2,
                    "{groups_read} row groups read"
                );
            } else {
                assert_eq!(groups_read, 3 * s.files);
            }
        }
    }

    #[test]
    fn a_column_chunk_not_read_is_an_error_not_a_panic() {
        let b = small().file(0).unwrap();
        let size = b.len() as u64;
        let meta = decode_footer(&b, size).unwrap();
        let data = Arc::new(Pieces::new(size, Vec::new()));
        let q = &Query::pair(&small())[1];
        assert!(matches!(
            answer_row_group(&meta, 0, &data, q),
            Err(FileError::NotRead(..))
        ));
        assert!(matches!(
            footer_len(b"abcPAR", 10),
            Err(FileError::NotParquet(6))
        ));
        let mut bad = b[b.len() - 8..].to_vec();
        bad[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            footer_len(&bad, size),
            Err(FileError::BadFooterLength(..))
        ));
        assert!(decode_footer(b"PAR1\x04\0\0\0PAR1", 12).is_err());
    }

    #[test]
    fn queries_and_their_text() {
        let s = Shape {
            files: 200,
            rows: 100_000,
            row_groups: 4,
        };
        let [sel, all] = Query::pair(&s);
        assert_eq!(sel.where_text(), "ts >= 10050000 AND ts < 10350000");
        assert_eq!(
            all.where_text(),
            "ts >= 0 AND ts < 20000000 AND value > 0.5"
        );
        assert!(sel.may_match(Some((10_000_000, 10_099_999)), None));
        assert!(!sel.may_match(Some((10_350_000, 10_400_000)), None));
        assert!(!sel.may_match(Some((0, 10_049_999)), None));
        assert!(!all.may_match(Some((0, 10)), Some((0.1, 0.5))));
        assert!(all.may_match(Some((0, 10)), Some((0.1, 0.6))));
        assert!(all.may_match(None, None));
        assert!(s.check().is_ok());
        assert!(Shape { files: 0, ..s }.check().is_err());
        assert!(Shape {
            row_groups: 100_001,
            ..s
        }
        .check()
        .is_err());
    }

    #[test]
    fn listings_and_metrics_parse() {
        let x = "<ListBucketResult><Contents><Key>a</Key><Size>10</Size>\
                 <AnodeRowGroups>0,3,4</AnodeRowGroups></Contents>\
                 <Contents><Key>b&amp;c</Key><Size>7</Size></Contents></ListBucketResult>";
        assert_eq!(
            parse_listed(x).unwrap(),
            vec![
                Listed {
                    key: "a".into(),
                    size: 10,
                    row_groups: Some(vec![0, 3, 4])
                },
                Listed {
                    key: "b&c".into(),
                    size: 7,
                    row_groups: None
                }
            ]
        );
        assert!(parse_listed("<Contents><Key>a</Key><Size>x</Size></Contents>").is_err());
        assert!(parse_listed(
            "<Contents><Key>a</Key><Size>1</Size><AnodeRowGroups>1,z</AnodeRowGroups></Contents>"
        )
        .is_err());
        let m = parse_metrics(
            "# HELP x y\n# TYPE x counter\nx 3\nx{a=\"1\"} 4\ny_total 1e3\nbad line\n",
        );
        assert_eq!(m.get("x"), Some(&7.0));
        assert_eq!(m.get("y_total"), Some(&1000.0));
        assert_eq!(m.get("bad"), None);
    }
}
