//! Parquet awareness (issue 16) as query engines use it, on a real multi-process cluster
//! (1 master, 3 chunkservers, 1 gateway): `tests/s3/parquet_suite.py` writes a dataset of
//! 200 Parquet files with pyarrow, uploads it with boto3, reads it back with
//! `pyarrow.dataset` over `pyarrow.fs.S3FileSystem` and with DataFusion's Python bindings
//! over its S3 object store, compares every result with the same read of the local files,
//! lists with `x-anode-where` (the pruned path) and reads only the listed row groups, and
//! checks the gateway's footer-hit counter. Needs `python3` with `boto3`, `pyarrow` and
//! `datafusion` (scripts/setup.sh, scripts/test-tools.sh).

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_datafusion_read_a_parquet_dataset_and_the_pruned_listing() {
    let c = S3Cluster::start(1).await;
    let env = [("GATEWAY_ADMIN", c.gateway_admins[0].clone())];
    let out = c
        .run_python_suite(
            "parquet_suite.py",
            "parquet",
            &env,
            Duration::from_secs(900),
        )
        .await;
    assert!(
        out.contains("(i) whole dataset through S3 equals local"),
        "{out}"
    );
    assert!(
        out.contains("(iv) datafusion over S3 equals pyarrow local"),
        "{out}"
    );
}
