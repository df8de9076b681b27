//! boto3 (a SigV4 client we did not write) against a real multi-process cluster: 1 master,
//! 3 chunkservers and 2 gateways, each an `anode` process. The script,
//! `tests/s3/boto3_suite.py`, covers every S3 operation Anode implements and its errors. It
//! needs `python3` with `boto3` (`scripts/setup.sh` installs it); without them this test fails.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::process::Stdio;
use std::time::Duration;

use s3_cluster::{S3Cluster, ACCESS_KEY, SECRET_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite() {
    let c = S3Cluster::start(2).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/boto3_suite.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let child = tokio::process::Command::new(&python)
        .arg(script)
        .env("S3_ENDPOINT", &c.endpoints[0])
        .env("S3_ENDPOINT_2", &c.endpoints[1])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (needed with boto3 for this test): {e}"));
    let out = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("boto3 suite timed out\n{}", c.logs()))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("boto3 suite: ok"),
        "boto3 suite failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- cluster\n{}",
        out.status,
        c.logs()
    );
    eprintln!("{stdout}");
}
