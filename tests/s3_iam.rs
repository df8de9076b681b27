//! Users, bucket ownership and exact quotas (issue 19 part A) against a real multi-process
//! cluster (1 master, 3 chunkservers, 2 gateways): `tests/s3/iam_suite.py` makes users and keys
//! with `anode ctl`, then drives boto3 as three users and the administrator key: another user
//! gets 403 on every operation of a bucket, admins reach all, ListBuckets is filtered, disabled
//! and expired keys are refused, and a quota stops the crossing writes from both gateways at
//! once with exactly the quota committed. Needs `python3` with `boto3`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_ownership_and_quotas_through_boto3() {
    let c = S3Cluster::start(2).await;
    let admin_certs = support::certs_dir(anode_tls::Role::Admin, "1");
    let ctl_args = serde_json::json!([
        "--masters",
        c.master,
        "--certs-dir",
        admin_certs.display().to_string()
    ]);
    let env = [
        ("ANODE_BIN", env!("CARGO_BIN_EXE_anode").to_string()),
        ("ANODE_CTL_ARGS", ctl_args.to_string()),
    ];
    c.run_python_suite("iam_suite.py", "iam", &env, Duration::from_secs(300))
        .await;
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
