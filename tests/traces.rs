//! Traces across processes: with `--otlp-endpoint` (here `ANODE_OTLP_ENDPOINT`) every role
//! exports its spans over OTLP/gRPC, and one S3 request is one trace: the gateway's request
//! span is the root (or the child of the S3 client's `traceparent`), and the master's and the
//! chunkservers' RPC spans are its children. The OTLP receiver is a tonic `TraceService`
//! server run by the test. Without an endpoint nothing is exported and no exporter runs.

#[path = "support/s3_cluster.rs"]
mod s3_cluster;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use parking_lot::Mutex;
use s3_cluster::{signed, S3Cluster};
use support::wait_for;

/// One span as received: its process's `service.name`, ids in hex, name and string attributes.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    attrs: HashMap<String, String>,
}

/// The OTLP receiver: every span of every export, and how many connections were accepted.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    exports: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

fn strings(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.exports.fetch_add(1, Ordering::SeqCst);
        let mut got = Vec::new();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| strings(&r.attributes).remove("service.name"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Got {
                        service: service.clone(),
                        trace: hex::encode(&s.trace_id),
                        id: hex::encode(&s.span_id),
                        parent: hex::encode(&s.parent_span_id),
                        name: s.name.clone(),
                        attrs: strings(&s.attributes),
                    });
                }
            }
        }
        self.spans.lock().extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serve on `listener` until the test ends, counting accepted connections.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let connections = self.connections.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let incoming = futures::StreamExt::inspect(incoming, move |c| {
            if c.is_ok() {
                connections.fetch_add(1, Ordering::SeqCst);
            }
        });
        let svc = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
                .expect("OTLP receiver");
        });
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().clone()
    }
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The trace of the S3 request `id` once it is complete: the gateway's `s3` span carrying the
/// id, and in its trace at least one master and one chunkserver RPC span (one whose path ends
/// with `rpc_suffix`, if given) that are children of a gateway span, every span's parent
/// known. Returns (gateway span, spans of its trace).
fn complete_trace(spans: &[Got], id: &str, rpc_suffix: Option<&str>) -> Option<(Got, Vec<Got>)> {
    let root = spans.iter().find(|s| {
        s.service == "anode-gateway"
            && s.name == "s3"
            && s.attrs.get("request_id").map(String::as_str) == Some(id)
    })?;
    let trace: Vec<Got> = spans
        .iter()
        .filter(|s| s.trace == root.trace)
        .cloned()
        .collect();
    let gateway_ids: Vec<&str> = trace
        .iter()
        .filter(|s| s.service == "anode-gateway")
        .map(|s| s.id.as_str())
        .collect();
    let child_of_gateway = |service: &str| {
        trace.iter().any(|s| {
            s.service == service
                && s.name == "rpc"
                && gateway_ids.contains(&s.parent.as_str())
                && rpc_suffix.is_none_or(|sfx| {
                    service != "anode-chunkserver"
                        || s.attrs.get("path").is_some_and(|p| p.ends_with(sfx))
                })
        })
    };
    let linked = trace
        .iter()
        .filter(|s| s.id != root.id)
        .all(|s| trace.iter().any(|p| p.id == s.parent));
    (child_of_gateway("anode-master") && child_of_gateway("anode-chunkserver") && linked)
        .then(|| (root.clone(), trace))
}

fn summary(trace: &[Got]) -> String {
    trace
        .iter()
        .map(|s| {
            format!(
                "{} {} {} parent={} {:?}",
                s.service,
                s.name,
                s.id,
                s.parent,
                s.attrs.get("path")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// OTLP export on: a PUT (no `traceparent` from the client: the gateway starts the trace) and
/// a GET (with one: the gateway's span continues the client's trace), each one trace across
/// the gateway, the master and the chunkservers, with parent links into the gateway's span,
/// delivered by the flush of a graceful stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_s3_request_across_processes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let rx = Receiver::default();
    rx.serve(listener);
    let mut c = S3Cluster::start_with_env(
        1,
        vec![
            ("ANODE_OTLP_ENDPOINT".into(), format!("http://{addr}")),
            // No export by timer within the test: what arrives is the flush on shutdown.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "600000".into()),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let ep = &c.endpoints[0];
    let r = signed(&http, ep, reqwest::Method::PUT, "/traced", Vec::new(), None).await;
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    // Larger than the inline limit, so the chunk goes to chunkservers.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let r = signed(&http, ep, reqwest::Method::PUT, "/traced/obj", body, None).await;
    assert!(r.status().is_success(), "put: {}", r.status());
    let put_id = request_id(&r);

    // The GET: the S3 client sends a traceparent; its body (and the chunk reads behind it) is
    // streamed after the gateway's handler returned, and still belongs to the trace.
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let tp = format!("00-{client_trace}-{client_span}-01");
    let r = signed(
        &http,
        ep,
        reqwest::Method::GET,
        "/traced/obj",
        Vec::new(),
        Some(&tp),
    )
    .await;
    assert!(r.status().is_success(), "get: {}", r.status());
    let get_id = request_id(&r);
    assert_eq!(r.bytes().await.unwrap().len(), 200_000);

    // The exporter's batch thread runs in every process; nothing was sent yet (the batch
    // delay is long), so what the receiver gets below is the flush of a graceful stop.
    for p in &c.procs {
        assert!(
            has_exporter_thread(p.pid().unwrap()),
            "{} has no exporter thread",
            p.name
        );
    }
    assert_eq!(rx.exports.load(Ordering::SeqCst), 0, "exported before stop");
    stop_all(&mut c).await;

    let (root, trace) = wait_for("the PUT's trace", Duration::from_secs(10), || async {
        complete_trace(&rx.spans(), &put_id, Some("/PutChunk"))
    })
    .await;
    eprintln!("PUT {put_id}: trace {}\n{}", root.trace, summary(&trace));
    assert_eq!(
        root.parent, "",
        "no traceparent sent: the gateway's span is a root"
    );
    assert_eq!(root.trace.len(), 32);
    let (groot, gtrace) = wait_for("the GET's trace", Duration::from_secs(10), || async {
        complete_trace(&rx.spans(), &get_id, Some("/GetChunk"))
    })
    .await;
    eprintln!("GET {get_id}: trace {}\n{}", groot.trace, summary(&gtrace));
    assert_eq!(groot.trace, client_trace, "the client's trace continues");
    assert_eq!(groot.parent, client_span, "the client's span is the parent");
    assert_ne!(groot.trace, root.trace);
    // Traces start only at S3 requests: the heartbeats the master served meanwhile, with no
    // traceparent, were not recorded.
    let roots: Vec<Got> = rx
        .spans()
        .into_iter()
        .filter(|s| s.parent.is_empty())
        .collect();
    assert!(
        roots
            .iter()
            .all(|s| s.service == "anode-gateway" && s.name == "s3"),
        "roots other than S3 requests:\n{}",
        summary(&roots)
    );
    // Every service reports under its default name.
    let services: std::collections::BTreeSet<String> =
        rx.spans().into_iter().map(|s| s.service).collect();
    for s in ["anode-gateway", "anode-master", "anode-chunkserver"] {
        assert!(services.contains(s), "{s} in {services:?}");
    }
}

/// Stop every process gracefully (SIGTERM, gateways first) and wait for each to exit.
async fn stop_all(c: &mut S3Cluster) {
    for p in c.procs.iter_mut().rev() {
        p.signal("TERM");
        let mut child = p.child.take().unwrap();
        let name = p.name.clone();
        wait_for(&format!("{name} exits"), Duration::from_secs(30), || {
            let done = child.try_wait().unwrap().is_some();
            async move { done.then_some(()) }
        })
        .await;
    }
}

/// Whether process `pid` runs the OpenTelemetry batch exporter thread (its name, cut to 15
/// bytes by the kernel, is `OpenTelemetry.T`).
fn has_exporter_thread(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .any(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|n| n.trim().starts_with("OpenTelemetry"))
        })
}

/// No endpoint: no exporter thread in any process, and a receiver on the OTLP default port
/// (where an exporter built without an endpoint would send) sees no connection, even after
/// requests and a graceful stop of every process (which flushes when traces are on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_exports_nothing() {
    // The standard port; if something else holds it here, only the thread check runs.
    let rx = Receiver::default();
    let on_default_port = match tokio::net::TcpListener::bind("127.0.0.1:4317").await {
        Ok(l) => {
            rx.serve(l);
            true
        }
        Err(e) => {
            eprintln!("127.0.0.1:4317 is taken ({e}): checking exporter threads only");
            false
        }
    };
    let mut c = S3Cluster::start_with_env(
        1,
        vec![
            // Whatever the environment of the test says, no endpoint.
            ("ANODE_OTLP_ENDPOINT".into(), String::new()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), String::new()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), String::new()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let ep = &c.endpoints[0];
    let r = signed(&http, ep, reqwest::Method::PUT, "/quiet", Vec::new(), None).await;
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let body: Vec<u8> = vec![7; 200_000];
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = signed(
        &http,
        ep,
        reqwest::Method::PUT,
        "/quiet/obj",
        body,
        Some(tp),
    )
    .await;
    assert!(r.status().is_success(), "put: {}", r.status());
    let r = signed(
        &http,
        ep,
        reqwest::Method::GET,
        "/quiet/obj",
        Vec::new(),
        None,
    )
    .await;
    assert_eq!(r.bytes().await.unwrap().len(), 200_000);
    for p in &c.procs {
        assert!(
            !has_exporter_thread(p.pid().unwrap()),
            "{} runs an exporter thread without an endpoint",
            p.name
        );
    }
    stop_all(&mut c).await;
    if on_default_port {
        assert_eq!(rx.connections.load(Ordering::SeqCst), 0, "connections");
        assert_eq!(rx.exports.load(Ordering::SeqCst), 0, "exports");
    }
}
