//! Versioning, object lock and lifecycle configuration through boto3 (issue 14) on a real
//! multi-process cluster: 3 masters (a raft group), 3 chunkservers, 2 gateways.
//! `tests/s3/versions_suite.py` writes through one gateway and reads through the other; in the
//! middle this test `kill -9`s the raft leader, and the suite then checks that every version
//! it recorded reads the same through both gateways, lists the same, and that writes, deletes
//! and locks keep working under the new leader. Needs `python3` with `boto3`.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::S3Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_locks_and_lifecycle_across_gateways_and_a_leader_failover() {
    let mut c = S3Cluster::start_group(3, 2, Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let phase1 = dir.path().join("phase1.done");
    let failover = dir.path().join("failover.done");
    let env = [
        ("PHASE1_FILE", phase1.display().to_string()),
        ("FAILOVER_FILE", failover.display().to_string()),
    ];
    let child = c.spawn_python_suite("versions_suite.py", &env);
    // The suite has written its versions: kill the leader.
    support::wait_for("phase 1 of the suite", Duration::from_secs(300), || {
        let done = phase1.exists();
        async move { done.then_some(()) }
    })
    .await;
    c.kill_leader().await;
    std::fs::write(&failover, b"1").unwrap();
    c.finish_python_suite(child, "versions", Duration::from_secs(300))
        .await;
}
