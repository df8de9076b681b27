//! SigV2 (header and presigned), presigned SigV4 expiry edge cases and POST Object (browser
//! form uploads) of issue 15 on a real multi-process cluster: boto3 with
//! `signature_version='s3'`, `s3cmd signurl`, urllib-made multipart forms
//! (`tests/s3/auth_suite.py`). Needs `python3` with `boto3`, and `s3cmd`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_presigned_expiry_and_post_object() {
    let c = S3Cluster::start(1).await;
    c.run_python_suite("auth_suite.py", "auth", &[], Duration::from_secs(300))
        .await;
}
