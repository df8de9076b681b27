//! S3 event notifications (issue 15) on a real multi-process cluster: 3 masters (a raft
//! group), 3 chunkservers, 2 gateways.
//!
//! - `Client::watch` / `watch_with` of the client library against the cluster: live events
//!   with their names, filters, and errors; a watch open on the leader ends (with an error)
//!   when the leader is killed, as documented.
//! - `tests/s3/notify_suite.py` (boto3 and minio-py): notification configurations through the
//!   S3 API, a webhook receiver of its own registered with `anode ctl notify target-add`, event
//!   names and filters for puts, copies, POST Object, multipart, tagging and deletes, retries,
//!   and in the middle this test `kill -9`s the raft leader while events are queued and
//!   undelivered; the suite then checks every event arrives with one id. Finally
//!   ListenBucketNotification through minio-py.
//!
//! Needs `python3` with `boto3` and `minio` (scripts/setup.sh, scripts/test-tools.sh).

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use anode_client::{Client, NotificationEvent, WatchOptions};
use bytes::Bytes;
use futures::StreamExt;
use s3_cluster::S3Cluster;

/// The next event of a watch, within 20 s.
async fn next_event(s: &mut anode_client::EventStream) -> NotificationEvent {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("an event within 20 s")
        .expect("the watch goes on")
        .expect("an event, not an error")
}

/// Events through `Client::watch` on the real cluster; returns a watch left open (on the
/// leader) for the failover.
async fn client_watches(cl: &Client) -> anode_client::EventStream {
    cl.create_bucket("watched", 0, s3_cluster::ACCESS_KEY)
        .await
        .expect("bucket");
    let put = |key: &'static str| {
        let cl = cl.clone();
        async move {
            cl.put_object_bytes(
                "watched",
                key,
                Bytes::from_static(b"data"),
                Default::default(),
            )
            .await
            .expect("put")
        }
    };
    let mut all = cl.watch("watched", "").await.expect("watch");
    let mut under = cl.watch("watched", "w/").await.expect("watch w/");
    let mut removed = cl
        .watch_with(
            "watched",
            WatchOptions {
                suffix: ".log".into(),
                events: vec!["s3:ObjectRemoved:*".into()],
                ..Default::default()
            },
        )
        .await
        .expect("watch removals");
    put("x/1").await;
    put("w/a.log").await;
    cl.copy_object("watched", "w/a.log", "watched", "w/b.log", None)
        .await
        .expect("copy");
    cl.delete_object("watched", "w/a.log")
        .await
        .expect("delete");
    let names = |evs: &[NotificationEvent]| -> Vec<(String, String)> {
        evs.iter()
            .map(|e| (e.key.clone(), e.event_name.clone()))
            .collect()
    };
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut all).await);
    }
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        names(&got),
        pairs(&[
            ("x/1", "ObjectCreated:Put"),
            ("w/a.log", "ObjectCreated:Put"),
            ("w/b.log", "ObjectCreated:Copy"),
            ("w/a.log", "ObjectRemoved:Delete"),
        ])
    );
    assert!(got.windows(2).all(|w| w[0].id < w[1].id), "{got:?}");
    assert!(got.iter().all(|e| e.bucket == "watched" && e.time_ms > 0));
    assert_eq!((got[0].size, got[0].etag.is_empty()), (4, false));
    let mut w = Vec::new();
    for _ in 0..3 {
        w.push(next_event(&mut under).await);
    }
    assert_eq!(
        names(&w),
        pairs(&[
            ("w/a.log", "ObjectCreated:Put"),
            ("w/b.log", "ObjectCreated:Copy"),
            ("w/a.log", "ObjectRemoved:Delete"),
        ])
    );
    let r = next_event(&mut removed).await;
    assert_eq!(
        (r.key.as_str(), r.id.as_str()),
        ("w/a.log", got[3].id.as_str())
    );
    // Nothing else comes to the narrow watches (keep-alives are skipped).
    assert!(
        tokio::time::timeout(Duration::from_secs(6), removed.next())
            .await
            .is_err(),
        "no other removal"
    );
    // Errors of the opening call.
    match cl.watch("no-such-bucket", "").await {
        Err(e) => assert_eq!(e.code(), anode_client::ErrorCode::NoSuchBucket, "{e}"),
        Ok(_) => panic!("a watch of a missing bucket"),
    }
    let bad = WatchOptions {
        events: vec!["s3:ObjectAccessed:Get".into()],
        ..Default::default()
    };
    match cl.watch_with("watched", bad).await {
        Err(e) => assert_eq!(e.code(), anode_client::ErrorCode::InvalidArgument, "{e}"),
        Ok(_) => panic!("a watch of an unknown event"),
    }
    drop((under, removed));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_through_s3_webhooks_listen_watch_and_a_leader_failover() {
    let mut c = S3Cluster::start_group(3, 2, Vec::new()).await;
    let cl = Client::with_config(c.masters.clone(), support::client_config())
        .await
        .expect("client");
    let mut open_watch = client_watches(&cl).await;
    eprintln!("client watch: events, filters and errors ok");

    let dir = tempfile::tempdir().unwrap();
    let phase1 = dir.path().join("phase1.done");
    let failover = dir.path().join("failover.done");
    let mut ctl_args = vec![
        "ctl".to_string(),
        "--masters".to_string(),
        c.masters.join(","),
    ];
    ctl_args.extend(support::tls_args(anode_tls::Role::Admin, "1"));
    let env = [
        ("PHASE1_FILE", phase1.display().to_string()),
        ("FAILOVER_FILE", failover.display().to_string()),
        ("ANODE_BIN", env!("CARGO_BIN_EXE_anode").to_string()),
        ("ANODE_CTL_ARGS", serde_json::to_string(&ctl_args).unwrap()),
    ];
    let child = c.spawn_python_suite("notify_suite.py", &env);
    // Events are queued and the receiver refuses them: kill the leader.
    support::wait_for("phase 1 of the suite", Duration::from_secs(400), || {
        let done = phase1.exists();
        async move { done.then_some(()) }
    })
    .await;
    c.kill_leader().await;
    std::fs::write(&failover, b"1").unwrap();
    // The watch opened on the old leader ends (an error, or the end), as documented; a new
    // one sees events under the new leader.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match open_watch.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        }
    })
    .await
    .expect("the watch on the killed leader ends within 30 s");
    eprintln!("the old watch ended: {ended:?}");
    assert!(
        matches!(
            ended,
            None | Some(anode_client::ClientError::Unavailable(_))
        ),
        "{ended:?}"
    );
    let out = c
        .finish_python_suite(child, "notify", Duration::from_secs(400))
        .await;
    assert!(
        out.contains("failover: every queued event arrived"),
        "{out}"
    );
    assert!(out.contains("listen: minio-py heard"), "{out}");
    let mut again = support::wait_for(
        "a watch under the new leader",
        Duration::from_secs(30),
        || {
            let cl = cl.clone();
            async move { cl.watch("watched", "after/").await.ok() }
        },
    )
    .await;
    cl.put_object_bytes(
        "watched",
        "after/1",
        Bytes::from_static(b"1"),
        Default::default(),
    )
    .await
    .expect("put after the failover");
    let e = next_event(&mut again).await;
    assert_eq!(
        (e.key.as_str(), e.event_name.as_str()),
        ("after/1", "ObjectCreated:Put")
    );
}
