//! CORS (issue 15) through boto3, raw HTTP and headless Chromium on a real multi-process
//! cluster (1 master, 3 chunkservers, 2 gateways): `tests/s3/cors_suite.py` sets the rules
//! through one gateway, checks preflights and actual responses through both, and has a real
//! browser make cross-origin requests from a page served on another port. Needs `python3` with
//! `boto3` and `chromium` (installed by scripts/test-tools.sh).

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_rules_preflights_and_a_real_browser() {
    let c = S3Cluster::start(2).await;
    let out = c
        .run_python_suite("cors_suite.py", "cors", &[], Duration::from_secs(300))
        .await;
    assert!(
        out.contains("browser: cross-origin PUT + GET allowed"),
        "{out}"
    );
}
