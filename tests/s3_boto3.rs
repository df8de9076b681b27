//! boto3 (a SigV4 client we did not write) against a real multi-process cluster: 1 master,
//! 3 chunkservers and 2 gateways, each an `anode` process. The script,
//! `tests/s3/boto3_suite.py`, covers every S3 operation Anode implements and its errors. It
//! needs `python3` with `boto3` (`scripts/setup.sh` installs it); without them this test fails.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite() {
    let c = S3Cluster::start(2).await;
    c.run_python_suite("boto3_suite.py", "boto3", &[], Duration::from_secs(600))
        .await;
}
