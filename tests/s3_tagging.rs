//! S3 tagging through boto3 (issue 15) on a real multi-process cluster: 3 masters (a raft
//! group), 3 chunkservers, 2 gateways. `tests/s3/tagging_suite.py` writes through one gateway
//! and reads through the other: object tags by version, S3's limits and error codes,
//! `x-amz-tagging` on PUT, CreateMultipartUpload and CopyObject (tagging directive),
//! `x-amz-tagging-count`, bucket tags, and a lifecycle tag filter expiring only the tagged
//! objects (a lifecycle day of 1 s here). Needs `python3` with `boto3`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_and_bucket_tagging_through_boto3() {
    let env = vec![
        ("ANODE_LIFECYCLE_DAY_SECS".to_string(), "1".to_string()),
        ("ANODE_LIFECYCLE_INTERVAL_SECS".to_string(), "1".to_string()),
    ];
    let c = S3Cluster::start_group(3, 2, env).await;
    c.run_python_suite("tagging_suite.py", "tagging", &[], Duration::from_secs(300))
        .await;
}
