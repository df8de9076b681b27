//! One S3 request id, followed through the logs of every process it touched: the gateway
//! answers with `x-amz-request-id`, and the master and the chunkservers that stored the
//! object's chunk log the same id (the client library sends it as `anode-request-id` gRPC
//! metadata; servers put it in each call's span), also for the chunk reads of a GET, whose
//! body is streamed after the gateway's handler returned. The log files are JSON lines.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::time::Duration;

use s3_cluster::{signed, S3Cluster};
use support::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_reaches_master_and_chunkserver_logs() {
    let c = S3Cluster::start(1).await;
    let http = reqwest::Client::new();
    let ep = &c.endpoints[0];
    let r = signed(&http, ep, reqwest::Method::PUT, "/ids", Vec::new(), None).await;
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    // Larger than the inline limit, so the chunk goes to chunkservers.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = signed(&http, ep, reqwest::Method::PUT, "/ids/obj", body, None).await;
    assert!(r.status().is_success(), "put: {}", r.status());
    let id = r
        .headers()
        .get("x-amz-request-id")
        .expect("x-amz-request-id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id.is_empty());
    let logs: Vec<(String, std::path::PathBuf)> = c
        .procs
        .iter()
        .map(|p| (p.name.clone(), p.log.clone()))
        .collect();
    let seen_in = || {
        logs.iter()
            .filter(|(_, log)| std::fs::read_to_string(log).is_ok_and(|t| t.contains(&id)))
            .map(|(n, _)| n.clone())
            .collect::<Vec<String>>()
    };
    let names = wait_for(
        "request id in the logs",
        Duration::from_secs(20),
        || async {
            let names = seen_in();
            let master = names.iter().any(|n| n.starts_with("master"));
            let chunkservers = names
                .iter()
                .filter(|n| n.starts_with("chunkserver"))
                .count();
            let gateway = names.iter().any(|n| n.starts_with("gateway"));
            let ok = master && gateway && chunkservers == 3;
            if !ok {
                eprintln!("request {id} so far in {names:?}");
            }
            ok.then_some(names)
        },
    )
    .await;
    eprintln!("request {id} logged by {names:?}");

    // A GET: its body is streamed after the gateway's handler returned, and the chunk reads
    // behind it still carry its id. Logs are files here, so every line is JSON.
    let r = signed(
        &http,
        ep,
        reqwest::Method::GET,
        "/ids/obj",
        Vec::new(),
        None,
    )
    .await;
    assert!(r.status().is_success(), "get: {}", r.status());
    let get_id = r.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(r.bytes().await.unwrap().len(), 200_000);
    let chunk_reads = || {
        let mut n = 0;
        for (name, log) in &logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{name}: not a JSON line ({e}): {line}"));
                assert!(
                    v["timestamp"].is_string() && v["level"].is_string(),
                    "{line}"
                );
                let span = &v["span"];
                if span["request_id"] == get_id.as_str()
                    && span["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/GetChunk"))
                {
                    n += 1;
                }
            }
        }
        n
    };
    wait_for(
        "the GET's chunk reads logged with its id",
        Duration::from_secs(20),
        || async { (chunk_reads() > 0).then_some(()) },
    )
    .await;
}
