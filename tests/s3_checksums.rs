//! Stored checksums, GetObjectAttributes, conditional writes and deletes, repeated
//! CompleteMultipartUpload and partNumber reads (issue 15) through boto3 on a real
//! multi-process cluster (`tests/s3/checksums_suite.py`). Needs `python3` with `boto3`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_attributes_and_conditional_writes_through_boto3() {
    let c = S3Cluster::start(1).await;
    let child = c.spawn_python_suite("checksums_suite.py", &[]);
    c.finish_python_suite(child, "checksums", Duration::from_secs(300))
        .await;
}
