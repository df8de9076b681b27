//! Event notifications on a real master group (three `anode master` processes): webhook
//! delivery from the raft-kept queue to an HTTP receiver run by the test, filters, the
//! `Watch` stream, retries while the endpoint fails, and at-least-once delivery with stable
//! ids across a `kill -9` of the leader while events are queued.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anode_proto::*;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One POST the receiver got: the `x-anode-event-id` header and the parsed body.
#[derive(Clone, Debug)]
struct Got {
    header_id: String,
    authorization: String,
    body: serde_json::Value,
}

/// A webhook endpoint on 127.0.0.1: answers 500 while `failing`, else 200, and records
/// every request it answered 200.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    failing: AtomicBool,
    refused: AtomicUsize,
}

impl Receiver {
    async fn start() -> (Arc<Receiver>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let me = Arc::new(Receiver::default());
        let r = me.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_conn(r.clone(), sock));
            }
        });
        (me, url)
    }

    fn ids(&self) -> BTreeSet<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.header_id.clone())
            .collect()
    }
}

/// HTTP/1.1 with keep-alive, Content-Length bodies only (what reqwest sends here).
async fn serve_conn(r: Arc<Receiver>, sock: tokio::net::TcpStream) {
    let mut rd = BufReader::new(sock);
    loop {
        let mut headers = BTreeMap::new();
        let mut line = String::new();
        if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if rd.read_exact(&mut body).await.is_err() {
            return;
        }
        let status = if r.failing.load(Ordering::SeqCst) {
            r.refused.fetch_add(1, Ordering::SeqCst);
            "500 Internal Server Error"
        } else {
            r.got.lock().unwrap().push(Got {
                header_id: headers.get("x-anode-event-id").cloned().unwrap_or_default(),
                authorization: headers.get("authorization").cloned().unwrap_or_default(),
                body: serde_json::from_slice(&body).unwrap_or_default(),
            });
            "200 OK"
        };
        let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if rd.get_mut().write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn put(all: &[String], bucket: &str, key: &str) -> Result<Manifest, String> {
    let body = key.as_bytes();
    let req = PutObjectRequest {
        bucket: bucket.into(),
        key: key.into(),
        manifest: Some(Manifest {
            version: MANIFEST_VERSION,
            size: body.len() as u64,
            etag: format!("{:032x}", body.len()),
            inline_data: body.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let masters = admin_masters(all);
    let r = anode_master::ctl::call_leader(&masters, |mut c| {
        let req = req.clone();
        async move { c.put_object(req).await }
    });
    match tokio::time::timeout(Duration::from_secs(10), r).await {
        Ok(Ok(r)) => Ok(r.manifest.unwrap_or_default()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".into()),
    }
}

async fn delete(all: &[String], bucket: &str, key: &str) {
    let req = DeleteObjectRequest {
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    };
    anode_master::ctl::call_leader(&admin_masters(all), |mut c| {
        let req = req.clone();
        async move { c.delete_object(req).await }
    })
    .await
    .expect("delete");
}

fn rule(id: &str, target: &str, events: &[&str], prefix: &str) -> NotificationRule {
    NotificationRule {
        id: id.into(),
        kind: 1,
        arn: format!("arn:anode:sqs::{target}"),
        target: target.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        prefix: prefix.into(),
        suffix: String::new(),
    }
}

async fn set_notification(all: &[String], cfg: Option<NotificationConfig>) -> anyhow::Result<()> {
    let req = SetBucketNotificationRequest {
        name: "bkt".into(),
        config: cfg,
        session: None,
    };
    anode_master::ctl::call_leader(&admin_masters(all), |mut c| {
        let req = req.clone();
        async move { c.set_bucket_notification(req).await }
    })
    .await
    .map(|_| ())
}

/// The gRPC code of a failed call (`call_leader` keeps it as the message's first word).
fn code(e: &anyhow::Error) -> String {
    e.to_string()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn set_target(all: &[String], name: &str, url: Option<&str>) -> anyhow::Result<()> {
    let req = SetNotificationTargetRequest {
        name: name.into(),
        target: url.map(|u| NotificationTarget {
            name: name.into(),
            url: u.into(),
            authorization: "Bearer s3cret".into(),
            ..Default::default()
        }),
        session: None,
    };
    anode_master::ctl::call_leader(&admin_masters(all), |mut c| {
        let req = req.clone();
        async move { c.set_notification_target(req).await }
    })
    .await
    .map(|_| ())
}

async fn queued(all: &[String]) -> Option<u64> {
    anode_master::ctl::call_leader(&admin_masters(all), |mut c| async move {
        c.list_notification_targets(ListNotificationTargetsRequest {})
            .await
    })
    .await
    .ok()
    .map(|r| r.targets.iter().map(|t| t.queued).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_and_watch_with_a_leader_kill() {
    let (_keep, root) = test_dir();
    let ports: BTreeMap<u64, (u16, u16)> =
        (1..=3).map(|i| (i, (free_port(), free_port()))).collect();
    let extra = ["--notify-retry-max-ms".to_string(), "300".to_string()];
    let mut procs = master_group(&root, &ports, &extra);
    let addrs: BTreeMap<u64, String> = ports
        .iter()
        .map(|(i, (p, _))| (*i, format!("127.0.0.1:{p}")))
        .collect();
    let all: Vec<String> = addrs.values().cloned().collect();
    let (_, leader_addr) =
        wait_for("a leader", Duration::from_secs(30), || leader_of(&addrs)).await;
    anode_master::ctl::call_leader(&admin_masters(&all), |mut c| async move {
        c.create_bucket(CreateBucketRequest {
            name: "bkt".into(),
            ..Default::default()
        })
        .await
    })
    .await
    .expect("create bucket");

    let (rx, url) = Receiver::start().await;
    // A rule naming a target that does not exist is refused by the state machine.
    let cfg = NotificationConfig {
        rules: vec![
            rule("created", "hooks", &["s3:ObjectCreated:*"], "logs/"),
            rule("removed", "hooks", &["s3:ObjectRemoved:*"], ""),
        ],
    };
    let err = set_notification(&all, Some(cfg.clone())).await.unwrap_err();
    assert_eq!(code(&err), "InvalidArgument", "{err:?}");
    set_target(&all, "hooks", Some(&url))
        .await
        .expect("add target");
    set_notification(&all, Some(cfg.clone()))
        .await
        .expect("set rules");
    // Unknown event names are refused at the edge.
    let mut bad = cfg.clone();
    bad.rules[0].events = vec!["s3:ObjectRestore:Completed".into()];
    let err = set_notification(&all, Some(bad)).await.unwrap_err();
    assert_eq!(code(&err), "InvalidArgument", "{err:?}");
    // A target in use is not removed.
    let err = set_target(&all, "hooks", None).await.unwrap_err();
    assert_eq!(code(&err), "InvalidBucketState", "{err:?}");

    // A watcher on the leader, for `logs/`.
    let mut mc = master_client(&leader_addr).await.expect("leader client");
    let mut watch = mc
        .watch(WatchRequest {
            bucket: "bkt".into(),
            prefix: "logs/".into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();

    // Phase 1: the endpoint works.
    for i in 0..20 {
        put(&all, "bkt", &format!("logs/{i:03} a.txt"))
            .await
            .unwrap();
    }
    for i in 0..5 {
        put(&all, "bkt", &format!("other/{i}")).await.unwrap(); // no rule takes these
    }
    for i in 0..3 {
        delete(&all, "bkt", &format!("logs/{i:03} a.txt")).await;
    }
    wait_for("23 events delivered", Duration::from_secs(30), || {
        let n = rx.ids().len();
        async move { (n >= 23).then_some(()) }
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(rx.ids().len(), 23, "only the filtered events: {got:?}");
    let mut last = String::new();
    for g in &got {
        let rec = &g.body["Records"][0];
        assert_eq!(g.body["Records"].as_array().unwrap().len(), 1);
        assert_eq!(rec["eventId"], g.header_id.as_str());
        assert_eq!(rec["s3"]["object"]["sequencer"], g.header_id.as_str());
        assert_eq!(rec["s3"]["bucket"]["name"], "bkt");
        assert_eq!(g.authorization, "Bearer s3cret");
        assert!(g.header_id > last, "ids increase in delivery order");
        last = g.header_id.clone();
        let key = rec["s3"]["object"]["key"].as_str().unwrap();
        match rec["eventName"].as_str().unwrap() {
            "ObjectCreated:Put" => {
                assert!(key.starts_with("logs/") && key.ends_with("+a.txt"), "{key}");
                assert_eq!(rec["s3"]["configurationId"], "created");
                assert_eq!(rec["s3"]["object"]["size"], key.len() as u64);
            }
            "ObjectRemoved:Delete" => assert_eq!(rec["s3"]["configurationId"], "removed"),
            other => panic!("unexpected event {other}"),
        }
    }
    // The watcher saw the same `logs/` events (created and removed), with the same ids.
    let mut watched = Vec::new();
    while watched.len() < 23 {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch event in time")
            .expect("watch stream")
            .expect("watch open");
        if let Some(e) = next.event {
            watched.push(e);
        }
    }
    let watched_ids: BTreeSet<String> = watched.iter().map(|e| e.id.clone()).collect();
    assert_eq!(watched_ids, rx.ids());
    assert!(watched.iter().all(|e| e.key.starts_with("logs/")));

    // Phase 2: the endpoint fails while 30 more events queue, and the leader is killed.
    rx.failing.store(true, Ordering::SeqCst);
    let mut keys = Vec::new();
    for i in 0..30 {
        let key = format!("logs/b{i:03}");
        put(&all, "bkt", &key).await.unwrap();
        keys.push(key);
    }
    wait_for("failed attempts", Duration::from_secs(20), || {
        let n = rx.refused.load(Ordering::SeqCst);
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let (old_leader, _) = leader_of(&addrs).await.expect("leader");
    procs[(old_leader - 1) as usize].kill9();
    let rest: BTreeMap<u64, String> = addrs
        .iter()
        .filter(|(i, _)| **i != old_leader)
        .map(|(i, a)| (*i, a.clone()))
        .collect();
    wait_for("a new leader", Duration::from_secs(30), || leader_of(&rest)).await;
    rx.failing.store(false, Ordering::SeqCst);
    wait_for(
        "every event after the failover",
        Duration::from_secs(60),
        || {
            let n = rx.ids().len();
            async move { (n >= 53).then_some(()) }
        },
    )
    .await;
    // Every key of phase 2 arrived; an id always names the same event (redeliveries repeat
    // it, never make a new one).
    let got = rx.got.lock().unwrap().clone();
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for g in &got {
        let key = g.body["Records"][0]["s3"]["object"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        let prev = by_id
            .entry(g.header_id.clone())
            .or_insert_with(|| key.clone());
        assert_eq!(*prev, key, "id {} named two events", g.header_id);
    }
    let delivered: BTreeSet<&String> = by_id.values().collect();
    for k in &keys {
        assert!(delivered.contains(k), "{k} never delivered");
    }
    assert_eq!(by_id.len(), 53);
    // The queue drains (acknowledged through raft).
    let rest_addrs: Vec<String> = rest.values().cloned().collect();
    wait_for("queue drained", Duration::from_secs(30), || {
        let a = rest_addrs.clone();
        async move { (queued(&a).await == Some(0)).then_some(()) }
    })
    .await;

    // The killed member comes back and catches up; rules off, then the target goes.
    procs[(old_leader - 1) as usize].start();
    set_notification(&all, None).await.expect("rules off");
    set_target(&all, "hooks", None)
        .await
        .expect("target removed");
    put(&all, "bkt", "logs/after").await.unwrap();
    assert_eq!(queued(&all).await, Some(0));
}
