//! Users, bucket ownership and exact quotas (issue 19 part A) against a real multi-process
//! cluster (1 master, 3 chunkservers, 2 gateways): `tests/s3/iam_suite.py` makes users and keys
//! with `anode ctl`, then drives boto3 as three users and the administrator key: another user
//! gets 403 on every operation of a bucket, admins reach all, ListBuckets is filtered, disabled
//! and expired keys are refused, and a quota stops the crossing writes from both gateways at
//! once with exactly the quota committed. Needs `python3` with `boto3`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::process::Stdio;
use std::time::Duration;

use s3_cluster::{S3Cluster, ACCESS_KEY, SECRET_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_ownership_and_quotas_through_boto3() {
    let c = S3Cluster::start(2).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/iam_suite.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let admin_certs = support::certs_dir(anode_tls::Role::Admin, "1");
    let ctl_args = serde_json::json!([
        "--masters",
        c.master,
        "--certs-dir",
        admin_certs.display().to_string()
    ]);
    let child = tokio::process::Command::new(&python)
        .arg(script)
        .env("S3_ENDPOINT", &c.endpoints[0])
        .env("S3_ENDPOINT_2", &c.endpoints[1])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("ANODE_BIN", env!("CARGO_BIN_EXE_anode"))
        .env("ANODE_CTL_ARGS", ctl_args.to_string())
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
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("iam suite timed out\n{}", c.logs()))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("iam suite: ok"),
        "iam suite failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- cluster\n{}",
        out.status,
        c.logs()
    );
    eprintln!("{stdout}");
    // The leader publishes usage after its healing sweeps: the suite left 12 objects in
    // alice-quota and gave bob 5 MiB + 5 bytes.
    let url = format!("http://{}/metrics", c.master_admin);
    let http = reqwest::Client::new();
    support::wait_for("usage metrics", Duration::from_secs(30), || {
        let req = http.get(&url).timeout(Duration::from_secs(2)).send();
        async move {
            let text = req.await.ok()?.text().await.ok()?;
            let want = [
                r#"anode_bucket_usage{bucket="alice-quota",kind="objects"} 12"#.to_string(),
                format!(
                    r#"anode_user_usage{{kind="bytes",user="bob"}} {}"#,
                    (5 << 20) + 5
                ),
            ];
            want.iter().all(|w| text.contains(w.as_str())).then_some(())
        }
    })
    .await;
}
