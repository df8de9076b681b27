//! Shared support for the multi-process tests: start real `anode` processes on 127.0.0.1,
//! kill them by pid, wait for conditions with a deadline (no fixed sleeps).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released), below the kernel's ephemeral range
/// (32768+), so no outgoing connection of another test can take it before our server binds
/// it, and never handed out twice in one test binary.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 60) * 200;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (base + n % 12_000) as u16;
        let port = if port >= 32_000 { port - 12_000 } else { port };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(n < 100_000, "no free port");
    }
}

/// One child process with its log file.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub args: Vec<String>,
    pub log: PathBuf,
    /// Extra environment variables for the next `start` (e.g. `FAILPOINTS`).
    pub env: Vec<(String, String)>,
}

impl Proc {
    /// Spawn `anode ARGS...`, logging to `dir/NAME.log` (appending across restarts).
    pub fn spawn(dir: &Path, name: &str, args: Vec<String>) -> Proc {
        Proc::spawn_env(dir, name, args, Vec::new())
    }

    /// [`Proc::spawn`] with extra environment variables (kept for restarts until changed).
    pub fn spawn_env(
        dir: &Path,
        name: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let mut p = Proc {
            name: name.to_string(),
            child: None,
            args,
            log,
            env,
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_anode"))
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG")
                    .unwrap_or_else(|_| "info,anode_common=debug,anode_gateway=debug".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn anode");
        self.child = Some(child);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a signal by pid (SIGSTOP/SIGCONT/SIGTERM).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Poll `f` until it returns Some or `within` elapses.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A temp dir for one test cluster (printed); with `ANODE_KEEP=1` it is kept after the test
/// for a post-mortem of its logs and data (then the first item is `None`).
pub fn test_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    eprintln!("cluster dir {}", root.display());
    if std::env::var_os("ANODE_KEEP").is_some() {
        let _ = dir.keep();
        (None, root)
    } else {
        (Some(dir), root)
    }
}

/// The certs directory of `<role>-<id>` (`--certs-dir`), signed by this test binary's CA.
/// The CA and each certificate are made on first use and shared by the binary's tests, so
/// every process a test starts speaks mutual TLS.
pub fn certs_dir(role: anode_tls::Role, id: &str) -> PathBuf {
    use std::sync::{Mutex, OnceLock};
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("certs dir"));
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    anode_tls::certs::ensure_layout(root.path(), &[(role, id)])
        .expect("test certificates")
        .remove(0)
}

/// `--certs-dir DIR` for a process of `role` with `id`.
pub fn tls_args(role: anode_tls::Role, id: &str) -> Vec<String> {
    vec![
        "--certs-dir".into(),
        certs_dir(role, id).display().to_string(),
    ]
}

/// The loaded TLS setup of `<role>-<id>`.
pub fn tls(role: anode_tls::Role, id: &str) -> anode_tls::Tls {
    anode_tls::Tls::load(&certs_dir(role, id)).expect("load test certificates")
}

/// The masters at `addrs` as an operator (`admin-1`) calls them.
pub fn admin_masters(addrs: &[String]) -> anode_master::ctl::Masters {
    anode_master::ctl::Masters::new(addrs.to_vec(), tls(anode_tls::Role::Admin, "1"))
}

/// A client-library configuration with a `client-1` certificate.
pub fn client_config() -> anode_client::ClientConfig {
    anode_client::ClientConfig {
        tls: Some(tls(anode_tls::Role::Client, "1")),
        ..Default::default()
    }
}

/// A master API client on `addr` as `admin-1` (500 ms connect, 3 s per call), if it connects.
pub async fn master_client(
    addr: &str,
) -> Option<anode_proto::master_client::MasterClient<tonic::transport::Channel>> {
    let ep = tls(anode_tls::Role::Admin, "1")
        .endpoint(addr, anode_tls::Role::Master)
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3));
    Some(anode_proto::master_client::MasterClient::new(
        ep.connect().await.ok()?,
    ))
}

/// The member that answers as leader of its term among `addrs` (id -> address): its id and
/// address.
pub async fn leader_of(addrs: &std::collections::BTreeMap<u64, String>) -> Option<(u64, String)> {
    for addr in addrs.values() {
        if let Some(st) = status_of(addr).await {
            if st.leader_id != 0 && st.leader_id == st.id {
                return Some((st.id, addr.clone()));
            }
        }
    }
    None
}

/// One member's own `Status` answer, if it answers.
pub async fn status_of(addr: &str) -> Option<anode_proto::StatusResponse> {
    let mut c = master_client(addr).await?;
    Some(
        c.status(anode_proto::StatusRequest {})
            .await
            .ok()?
            .into_inner(),
    )
}

/// Arguments of a master process.
pub fn master_args(
    id: u64,
    dir: &Path,
    port: u16,
    admin: u16,
    peers: &str,
    join: bool,
) -> Vec<String> {
    let mut a = vec![
        "master".to_string(),
        "--id".into(),
        id.to_string(),
        "--data".into(),
        dir.join(format!("master-{id}")).display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin}"),
        "--peers".into(),
        peers.to_string(),
    ];
    // A small compaction threshold, so lagging and new members catch up from snapshots.
    a.push("--compact-threshold".into());
    a.push("50".into());
    if join {
        a.push("--join".into());
    }
    a.extend(tls_args(anode_tls::Role::Master, &id.to_string()));
    a
}

/// Arguments of chunkserver `i` (data in `root/chunkserver-i`, rack `rack-i`, 200 ms
/// heartbeats, a scrub pass every second), optionally with a capacity.
pub fn chunkserver_args(root: &Path, i: usize, master: &str, capacity: Option<u64>) -> Vec<String> {
    let mut a = vec![
        "chunkserver".to_string(),
        "--data".into(),
        root.join(format!("chunkserver-{i}")).display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--admin-listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--masters".into(),
        master.to_string(),
        "--rack".into(),
        format!("rack-{i}"),
        "--heartbeat-ms".into(),
        "200".into(),
        "--scrub-interval-secs".into(),
        "1".into(),
    ];
    if let Some(c) = capacity {
        a.push("--capacity".into());
        a.push(c.to_string());
    }
    a.extend(tls_args(anode_tls::Role::Chunkserver, &i.to_string()));
    a
}

/// Wait (up to `within`) until the master at `master` reports exactly `n` alive chunkservers.
pub async fn wait_alive(master: &str, n: usize, what: &str, within: Duration) {
    let ms = admin_masters(&[master.to_string()]);
    wait_for(what, within, || {
        let ms = ms.clone();
        async move {
            let st = anode_master::ctl::status(&ms).await.ok()?;
            let alive = st["chunkservers"]
                .as_array()?
                .iter()
                .filter(|c| c["state"] == "alive")
                .count();
            (alive == n).then_some(())
        }
    })
    .await;
}

// ---- restored groups (tests/backup_restore.rs, tests/metadata_rebuild.rs) -------------------

/// Chunk size of [`small_chunk_client`]: small, so modest bodies span several chunks.
pub const SMALL_CHUNK: usize = 64 << 10;

/// `len` pseudo-random bytes from `seed` (xorshift; the same seed gives the same body).
pub fn pattern_body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A client library instance with [`SMALL_CHUNK`] chunks.
pub async fn small_chunk_client(masters: &[String]) -> anode_client::Client {
    let cfg = anode_client::ClientConfig {
        chunk_size_bytes: SMALL_CHUNK,
        ..client_config()
    };
    anode_client::Client::with_config(masters.to_vec(), cfg)
        .await
        .unwrap()
}

/// The whole body of an object through the client library.
pub async fn read_object(
    cl: &anode_client::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    use futures::TryStreamExt;
    let (_, s) = cl
        .get_object(bucket, key, None)
        .await
        .map_err(|e| e.to_string())?;
    let parts: Vec<bytes::Bytes> = s.try_collect().await.map_err(|e| e.to_string())?;
    Ok(parts.concat())
}

/// A master group on the given (gRPC, admin) ports, each started with `extra` flags too.
pub fn master_group(
    root: &Path,
    ports: &std::collections::BTreeMap<u64, (u16, u16)>,
    extra: &[String],
) -> Vec<Proc> {
    let peers = ports
        .iter()
        .map(|(i, (p, _))| format!("{i}=127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .map(|(i, (p, a))| {
            let mut args = master_args(*i, root, *p, *a, &peers, false);
            args.extend(extra.iter().cloned());
            Proc::spawn(root, &format!("master-{i}"), args)
        })
        .collect()
}
