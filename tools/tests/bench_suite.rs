//! `anode-tools bench suite --quick` against a real `anode dev` (one process: 1 master,
//! 3 chunkservers, the gateway), then `bench compare` of the result with itself.
//!
//! The `anode` binary is the one built beside `anode-tools` (`cargo build --workspace`, as
//! CI does before testing; `ANODE_BIN` overrides it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "AKSUITETEST00001";
const SECRET_KEY: &str = "suite-test-secret-key-0001";

/// The `anode` binary next to this test's `anode-tools`.
fn anode_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ANODE_BIN") {
        return p.into();
    }
    let tools = PathBuf::from(env!("CARGO_BIN_EXE_anode-tools"));
    let anode = tools.with_file_name("anode");
    assert!(
        anode.exists(),
        "{} is missing: build it first (`cargo build --bin anode`) or set ANODE_BIN",
        anode.display()
    );
    anode
}

/// A base port whose whole `anode dev` set (base, +80, +100..=103, +180..=183, +2000) and the
/// S3 port (+900) are free now, below the ephemeral range.
fn free_base() -> u16 {
    let offsets = [0u16, 80, 100, 101, 102, 103, 180, 181, 182, 183, 900, 2000];
    let start = 21_000 + (std::process::id() % 40) as u16 * 100;
    (0..200u16)
        .map(|k| 21_000 + (start - 21_000 + k * 7) % 8_000)
        .find(|&b| {
            offsets
                .iter()
                .all(|o| TcpListener::bind(("127.0.0.1", b + o)).is_ok())
        })
        .expect("no free port range")
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `anode-tools ARGS` to completion within `limit`; returns (success, stdout + stderr).
fn tools(args: &[&str], limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anode-tools"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

#[test]
fn quick_suite_runs_every_cell_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let endpoint = format!("http://127.0.0.1:{}", base + 900);
    let log = std::fs::File::create(dir.path().join("dev.log")).unwrap();
    let _dev = Dev(Command::new(anode_bin())
        .args(["dev", "--data"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{}", base + 900)])
        .args(["--base-port", &base.to_string()])
        .env("ANODE_ACCESS_KEY", ACCESS_KEY)
        .env("ANODE_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn anode dev"));
    let keys = ["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY];
    // Ready when a signed PUT and GET go through (the chunkservers have registered).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut a = vec!["bench", "s3", "--endpoint", &endpoint, "--objects", "1"];
        a.extend(["--concurrency", "1", "--size", "1KiB"]);
        a.extend(keys);
        let (ok, out) = tools(&a, Duration::from_secs(10));
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "anode dev not ready: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let json = dir.path().join("quick.json");
    let json_s = json.to_str().unwrap();
    let mut a = vec!["bench", "suite", "--quick", "--endpoint", &endpoint];
    // The whole matrix, at smaller concurrency than the defaults' 16 and 64 (CI-sized).
    a.extend([
        "--concurrency",
        "2,8",
        "--label",
        "anode-dev",
        "--out",
        json_s,
    ]);
    a.extend(keys);
    // 96 s measured on a 2-core machine at load average 25 (four builds and a benchmark beside
    // it); the bound leaves room for a busy CI machine.
    let (ok, out) = tools(&a, Duration::from_secs(150));
    assert!(ok, "bench suite failed:\n{out}");
    for cell in [
        "put-16MiB-c8",
        "get-1KiB-c2",
        "list-1000-c8",
        "ycsb-a-c2",
        "ycsb-c-c8",
    ] {
        assert!(out.contains(cell), "no {cell} line in:\n{out}");
    }

    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(file["format"], 1);
    assert_eq!(file["label"], "anode-dev");
    let cells = file["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 24, "{file:#}");
    for c in cells {
        // No errors in any cell (issue 18: PUTs were shed with 503 when every chunkserver
        // was slow; that is fixed, so a 503 here is a regression).
        assert_eq!(c["errors"].as_u64().unwrap(), 0, "{c:#}");
        assert!(c["ops"].as_u64().unwrap() > 0, "{c:#}");
        assert!(c["p99_ms"].as_f64().unwrap() > 0.0, "{c:#}");
    }

    let (ok, out) = tools(
        &["bench", "compare", json_s, json_s],
        Duration::from_secs(10),
    );
    assert!(ok, "bench compare failed:\n{out}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 24, "{out}");
    assert!(rows.iter().all(|r| r.contains(" 1.00 ")), "{out}");
}
