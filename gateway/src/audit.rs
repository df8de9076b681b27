//! The S3 audit log: one JSON line per request the gateway answers (allowed, refused by
//! authorization, failed authentication, anonymous), written off the request path.
//!
//! The request path builds a [`Record`] and hands it to [`AuditLog::record`], which never
//! blocks: records go through a bounded channel ([`AUDIT_CHANNEL_RECORDS`]) to one writer
//! thread; when the channel is full the record is dropped and
//! `anode_gateway_audit_dropped_total` counts it. The writer encodes ([`encode`], pure),
//! batches (lingering [`WRITER_LINGER`] between batches), and writes to stdout or to a file rotated by size: past `max_bytes` the file is
//! renamed `PATH.1` (older ones shift to `PATH.2` ... `PATH.keep`, the oldest is overwritten)
//! and a fresh `PATH` is opened ([`rotation_renames`], pure). Write errors (disk full) lose the
//! batch, count in `anode_gateway_audit_write_errors_total` and are logged at most once per
//! [`ERROR_LOG_INTERVAL`]; the file is reopened on the next write.
//!
//! The line format is versioned (`"v"`, [`AUDIT_FORMAT_VERSION`]); fields are described in
//! docs/security.md ("Audit log").

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::METRICS;

/// Records queued between the request path and the writer at most; past it they are dropped.
pub const AUDIT_CHANNEL_RECORDS: usize = 8192;
/// Default of `--audit-log-max-bytes`: 100 MiB per file.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Default of `--audit-log-keep`: rotated files kept beside the current one.
pub const DEFAULT_KEEP: usize = 5;
/// The version of the line format (field `v`).
pub const AUDIT_FORMAT_VERSION: u32 = 1;
/// The writer writes once this many bytes are pending, or when the channel is empty.
pub const BATCH_MAX_BYTES: usize = 64 << 10;
/// How long the writer waits for more records after a batch before it parks.
pub const WRITER_LINGER: Duration = Duration::from_millis(2);
/// Write errors are logged at most once per this interval (all are counted).
pub const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Whether authorization let the request reach its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Authenticated (or a service call) and authorized: the handler ran.
    Allow,
    /// Refused before any handler: authentication, authorization, routing or throttling.
    Deny,
}

/// One request, as the request path knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Arrival, ms since the Unix epoch (the gateway's clock).
    pub time_ms: u64,
    /// The `x-amz-request-id` the client got.
    pub request_id: String,
    /// The user name, `admin-key:<access key id>` for a key without a user, `anonymous` for an
    /// unsigned request; `None` when a signature was presented but did not authenticate.
    pub principal: Option<String>,
    /// The access key id the request was signed with (claimed, when authentication failed).
    pub access_key: Option<String>,
    /// The client's address (`ip:port`), when the request came over a socket.
    pub source: Option<String>,
    /// The S3 operation name ([`crate::router::S3Op::name`]); `Unknown` when it did not route.
    pub op: &'static str,
    /// The bucket addressed.
    pub bucket: Option<String>,
    /// The object key addressed.
    pub key: Option<String>,
    /// Allowed or refused.
    pub decision: Decision,
    /// Why it was allowed (`allow: bucket owner`, `allow: policy statement <Sid>`,
    /// `allow: object ACL grant READ to AllUsers`, ...) or refused (`deny: policy statement
    /// <Sid>`, `deny: nothing allows it`, `authentication: <S3 code>`, or the S3 error code of
    /// an earlier refusal).
    pub reason: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The S3 error code of an error answer.
    pub error: Option<&'static str>,
    /// Request body bytes read from the client (as sent, including aws-chunked framing).
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// From arrival until the response body was finished or dropped.
    pub duration_ms: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    time: String,
    request_id: &'a str,
    principal: Option<&'a str>,
    access_key: Option<&'a str>,
    source: Option<&'a str>,
    op: &'a str,
    bucket: Option<&'a str>,
    key: Option<&'a str>,
    decision: Decision,
    reason: Option<&'a str>,
    status: u16,
    error: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: u64,
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds (`2026-12-06T18:23:39.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

/// One JSON line (with its `\n`) for `r`. Pure.
pub fn encode(r: &Record) -> Vec<u8> {
    let line = Line {
        v: AUDIT_FORMAT_VERSION,
        time: rfc3339_ms(r.time_ms),
        request_id: &r.request_id,
        principal: r.principal.as_deref(),
        access_key: r.access_key.as_deref(),
        source: r.source.as_deref(),
        op: r.op,
        bucket: r.bucket.as_deref(),
        key: r.key.as_deref(),
        decision: r.decision,
        reason: r.reason.as_deref(),
        status: r.status,
        error: r.error,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        duration_ms: r.duration_ms,
    };
    // Serializing plain strings and numbers cannot fail.
    let mut out = serde_json::to_vec(&line).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The renames that rotate `path` keeping `keep` old files, in the order to run them:
/// `PATH.(keep-1)` -> `PATH.keep`, ..., `PATH.1` -> `PATH.2`, `PATH` -> `PATH.1`. Empty when
/// `keep` is 0 (the file is removed instead). Pure.
pub fn rotation_renames(path: &Path, keep: usize) -> Vec<(PathBuf, PathBuf)> {
    let numbered = |i: usize| {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    };
    let mut renames: Vec<(PathBuf, PathBuf)> = (1..keep)
        .rev()
        .map(|i| (numbered(i), numbered(i + 1)))
        .collect();
    if keep > 0 {
        renames.push((path.to_path_buf(), numbered(1)));
    }
    renames
}

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output (no rotation).
    Stdout,
    /// A file rotated by size.
    File {
        /// The current file.
        path: PathBuf,
        /// Rotate before a write would take it past this many bytes.
        max_bytes: u64,
        /// Rotated files kept (`PATH.1` newest ... `PATH.keep` oldest).
        keep: usize,
    },
}

impl Target {
    /// The target of `--audit-log VALUE` (`-` is stdout).
    pub fn from_flag(value: &Path, max_bytes: u64, keep: usize) -> Target {
        if value == Path::new("-") {
            Target::Stdout
        } else {
            Target::File {
                path: value.to_path_buf(),
                max_bytes,
                keep,
            }
        }
    }
}

/// Counters of one [`AuditLog`] (the process-wide Prometheus counters are bumped as well).
#[derive(Debug, Default)]
pub struct Stats {
    /// Records written.
    pub written: AtomicU64,
    /// Records dropped because the channel was full or the writer gone.
    pub dropped: AtomicU64,
    /// Failed writes, rotations or opens.
    pub write_errors: AtomicU64,
}

enum Msg {
    Record(Box<Record>),
    Flush(mpsc::Sender<()>),
}

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Msg>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("stats", &self.stats)
            .finish()
    }
}

impl AuditLog {
    /// Open `target` (a file is created now, so a bad path fails at startup) and start the
    /// writer thread with a channel of [`AUDIT_CHANNEL_RECORDS`].
    pub fn start(target: Target) -> std::io::Result<AuditLog> {
        let out = match target {
            Target::Stdout => Output::Stdout,
            Target::File {
                path,
                max_bytes,
                keep,
            } => Output::File(RotatingFile::open(path, max_bytes, keep)?),
        };
        AuditLog::spawn(out, AUDIT_CHANNEL_RECORDS)
    }

    /// Start a writer over any `Write` (tests: a writer that stalls) with `capacity` queued
    /// records at most.
    pub fn with_writer(w: Box<dyn Write + Send>, capacity: usize) -> std::io::Result<AuditLog> {
        AuditLog::spawn(Output::Other(w), capacity)
    }

    fn spawn(out: Output, capacity: usize) -> std::io::Result<AuditLog> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            out,
            pending: Vec::new(),
            pending_records: 0,
            stats: stats.clone(),
            last_error_log: None,
        };
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(AuditLog { tx, stats })
    }

    /// Queue `r` for the writer; when the queue is full, drop it and count the drop.
    pub fn record(&self, r: Record) {
        match self.tx.try_send(Msg::Record(Box::new(r))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                METRICS.audit_dropped.inc();
            }
        }
    }

    /// Block until every record queued before this call is written (or `timeout` passed);
    /// true when it was. For shutdown and tests; never on the request path.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::channel();
        let deadline = Instant::now() + timeout;
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// This log's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

enum Output {
    Stdout,
    File(RotatingFile),
    Other(Box<dyn Write + Send>),
}

/// The current file, its size, and the rotation rule.
struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<RotatingFile> {
        let mut f = RotatingFile {
            path,
            max_bytes,
            keep,
            file: None,
            size: 0,
        };
        f.ensure_open()?;
        Ok(f)
    }

    fn ensure_open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Would a line of `add` bytes, after `pending` bytes not yet written, take a non-empty
    /// file past the bound?
    fn must_rotate_before(&self, pending: u64, add: u64) -> bool {
        let used = self.size.saturating_add(pending);
        used > 0 && used.saturating_add(add) > self.max_bytes
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let result = self.ensure_open()?.write_all(buf);
        match result {
            Ok(()) => {
                self.size += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Reopen (and re-read the size) on the next write.
                self.file = None;
                Err(e)
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.size = 0;
        if self.keep == 0 {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        for (from, to) in rotation_renames(&self.path, self.keep) {
            match std::fs::rename(&from, &to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.ensure_open().map(|_| ())
    }
}

struct Writer {
    out: Output,
    pending: Vec<u8>,
    pending_records: u64,
    stats: Arc<Stats>,
    last_error_log: Option<Instant>,
}

impl Writer {
    /// Until every [`AuditLog`] handle is gone: take what is queued, write it in batches.
    ///
    /// After each batch the writer lingers [`WRITER_LINGER`] before it parks: under load more
    /// records are queued by then and it never parks, so requests do not pay a wake-up (a
    /// futex call) each to hand over their record; when idle it parks after one linger.
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.take(msg);
            loop {
                while let Ok(msg) = rx.try_recv() {
                    self.take(msg);
                }
                self.write_pending();
                std::thread::sleep(WRITER_LINGER);
                match rx.try_recv() {
                    Ok(msg) => self.take(msg),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
        }
        self.write_pending();
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Record(r) => self.push(&encode(&r)),
            Msg::Flush(ack) => {
                self.write_pending();
                let _ = ack.send(());
            }
        }
    }

    fn push(&mut self, line: &[u8]) {
        let pending = self.pending.len() as u64;
        let rotate = matches!(&self.out, Output::File(f) if f.must_rotate_before(pending, line.len() as u64));
        if rotate {
            self.write_pending();
            if let Output::File(f) = &mut self.out {
                let r = f.rotate();
                self.count_error(r, "rotating the audit log");
            }
        }
        self.pending.extend_from_slice(line);
        self.pending_records += 1;
        if self.pending.len() >= BATCH_MAX_BYTES {
            self.write_pending();
        }
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let result = match &mut self.out {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.pending).and_then(|()| out.flush())
            }
            Output::File(f) => f.write_all(&self.pending),
            Output::Other(w) => w.write_all(&self.pending).and_then(|()| w.flush()),
        };
        if result.is_ok() {
            self.stats
                .written
                .fetch_add(self.pending_records, Ordering::Relaxed);
            METRICS.audit_records.inc_by(self.pending_records);
        }
        self.count_error(result, "writing the audit log");
        self.pending.clear();
        self.pending_records = 0;
    }

    fn count_error(&mut self, result: std::io::Result<()>, what: &str) {
        let Err(e) = result else { return };
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        METRICS.audit_write_errors.inc();
        let now = Instant::now();
        let quiet = self
            .last_error_log
            .is_some_and(|at| now.duration_since(at) < ERROR_LOG_INTERVAL);
        if !quiet {
            self.last_error_log = Some(now);
            tracing::error!(error = %e, "{what} failed: records lost (logged at most once a minute; see anode_gateway_audit_write_errors_total)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> Record {
        Record {
            time_ms: 1_765_045_419_123 + i,
            request_id: format!("00000001{i:08X}"),
            principal: Some("alice".into()),
            access_key: Some("AKALICE000000001".into()),
            source: Some("127.0.0.1:50000".into()),
            op: "GetObject",
            bucket: Some("photos".into()),
            key: Some("a \"quoted\"\nkey".into()),
            decision: Decision::Allow,
            reason: None,
            status: 200,
            error: None,
            bytes_in: 0,
            bytes_out: 1024,
            duration_ms: 3,
        }
    }

    #[test]
    fn a_record_is_one_json_line_with_every_field() {
        let line = String::from_utf8(encode(&record(0))).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"v":1,"time":"2025-12-06T18:23:39.123Z","request_id":"0000000100000000","#,
                r#""principal":"alice","access_key":"AKALICE000000001","source":"127.0.0.1:50000","#,
                r#""op":"GetObject","bucket":"photos","key":"a \"quoted\"\nkey","decision":"allow","#,
                r#""reason":null,"status":200,"error":null,"bytes_in":0,"bytes_out":1024,"#,
                r#""duration_ms":3}"#,
                "\n"
            )
        );
        let denied = Record {
            principal: None,
            decision: Decision::Deny,
            reason: Some("authentication: SignatureDoesNotMatch".into()),
            status: 403,
            error: Some("SignatureDoesNotMatch"),
            ..record(1)
        };
        let v: serde_json::Value = serde_json::from_slice(&encode(&denied)).unwrap();
        assert_eq!(v["principal"], serde_json::Value::Null);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["reason"], "authentication: SignatureDoesNotMatch");
        assert_eq!(v["time"], "2025-12-06T18:23:39.124Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rotation_renames_oldest_first() {
        let p = Path::new("/x/audit.log");
        let names = |v: Vec<(PathBuf, PathBuf)>| {
            v.into_iter()
                .map(|(a, b)| format!("{}>{}", a.display(), b.display()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(rotation_renames(p, 3)),
            [
                "/x/audit.log.2>/x/audit.log.3",
                "/x/audit.log.1>/x/audit.log.2",
                "/x/audit.log>/x/audit.log.1"
            ]
        );
        assert_eq!(
            names(rotation_renames(p, 1)),
            ["/x/audit.log>/x/audit.log.1"]
        );
        assert!(rotation_renames(p, 0).is_empty());
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn files_rotate_at_the_size_bound_and_keep_count_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line_len = encode(&record(0)).len() as u64;
        // Three lines fit in a file; the fourth rotates.
        let max_bytes = 3 * line_len + line_len / 2;
        let keep = 2;
        let log = AuditLog::start(Target::File {
            path: path.clone(),
            max_bytes,
            keep,
        })
        .unwrap();
        for i in 0..14 {
            log.record(record(i));
        }
        assert!(log.flush(Duration::from_secs(10)));
        assert_eq!(log.stats().written.load(Ordering::Relaxed), 14);
        assert_eq!(log.stats().write_errors.load(Ordering::Relaxed), 0);
        // 14 lines: files of 3,3,3,3,2; the current file holds the last 2, PATH.1 and
        // PATH.2 the three before each, older ones are gone.
        let ids = |p: &Path| {
            lines(p)
                .iter()
                .map(|v| v["request_id"].as_str().unwrap()[8..].to_string())
                .collect::<Vec<_>>()
        };
        let numbered = |i: usize| dir.path().join(format!("audit.log.{i}"));
        assert_eq!(ids(&path), ["0000000C", "0000000D"]);
        assert_eq!(ids(&numbered(1)), ["00000009", "0000000A", "0000000B"]);
        assert_eq!(ids(&numbered(2)), ["00000006", "00000007", "00000008"]);
        assert!(!numbered(3).exists());
        for p in [path.clone(), numbered(1), numbered(2)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= max_bytes, "{p:?}");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);

        // A restart appends to the current file and counts its size.
        drop(log);
        let log = AuditLog::start(Target::File {
            path: path.clone(),
            max_bytes,
            keep,
        })
        .unwrap();
        log.record(record(14));
        log.record(record(15));
        assert!(log.flush(Duration::from_secs(10)));
        assert_eq!(ids(&path), ["0000000F"]);
        assert_eq!(ids(&numbered(1)), ["0000000C", "0000000D", "0000000E"]);
    }

    #[test]
    fn keep_zero_starts_over_and_an_unwritable_path_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line_len = encode(&record(0)).len() as u64;
        let log = AuditLog::start(Target::File {
            path: path.clone(),
            max_bytes: line_len,
            keep: 0,
        })
        .unwrap();
        for i in 0..3 {
            log.record(record(i));
        }
        assert!(log.flush(Duration::from_secs(10)));
        assert_eq!(lines(&path).len(), 1);
        assert!(!dir.path().join("audit.log.1").exists());
        let bad = Target::File {
            path: dir.path().join("missing-dir").join("audit.log"),
            max_bytes: 1000,
            keep: 1,
        };
        assert!(AuditLog::start(bad).is_err());
    }

    /// A writer that blocks in `write` until released, telling when it got there.
    struct Stalled {
        entered: mpsc::Sender<()>,
        release: Receiver<()>,
        out: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let capacity = 4;
        let log = AuditLog::with_writer(
            Box::new(Stalled {
                entered: entered_tx,
                release: release_rx,
                out: out.clone(),
            }),
            capacity,
        )
        .unwrap();
        let dropped_before = METRICS.audit_dropped.get();
        log.record(record(0));
        // The writer took record 0 and is stuck writing it: the channel is empty.
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Capacity plus three more on another thread: a blocking `record` would never finish.
        let (done_tx, done_rx) = mpsc::channel();
        let producer = log.clone();
        std::thread::spawn(move || {
            for i in 1..=(capacity as u64 + 3) {
                producer.record(record(i));
            }
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("record blocked on a full queue");
        assert_eq!(log.stats().dropped.load(Ordering::Relaxed), 3);
        assert!(METRICS.audit_dropped.get() >= dropped_before + 3);
        // Released, the writer writes record 0 and the four queued ones.
        for _ in 0..10 {
            let _ = release_tx.send(());
        }
        drop(release_tx);
        assert!(log.flush(Duration::from_secs(10)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1 + capacity);
        assert_eq!(
            log.stats().written.load(Ordering::Relaxed),
            1 + capacity as u64
        );
    }
}
