//! End-to-end tests: the real API server on a free 127.0.0.1 port, a proxy in front of a
//! tokio echo server, driven by the `toxiproxy_rust` client (blocking reqwest, so tests are
//! plain `#[test]`s and the server runs on its own runtime thread) and by raw HTTP.
//!
//! Timing checks assert lower bounds only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_toxiproxy::{http, Registry};
use serde_json::{json, Value};
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::{Proxy, ProxyPack};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A running API server and echo upstream, both on one background runtime.
struct Harness {
    api: SocketAddr,
    echo: SocketAddr,
    /// An upstream that writes `bye` and closes 100 ms later.
    closer: SocketAddr,
    client: Client,
}

impl Harness {
    fn start() -> Harness {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addrs = [&api, &echo, &closer].map(|l| l.local_addr().unwrap());
                tx.send(addrs).unwrap();
                tokio::spawn(echo_server(echo));
                tokio::spawn(closing_server(closer));
                let (_keep_open, shutdown) = tokio::sync::watch::channel(false);
                http::serve(api, Arc::new(Registry::new(Some(7))), shutdown).await;
            });
        });
        let [api, echo, closer] = rx.recv().expect("server thread started");
        Harness {
            api,
            echo,
            closer,
            client: Client::new(api),
        }
    }

    /// Create proxy `name` on a free port in front of the echo server; returns it and its
    /// listen address.
    fn proxy(&self, name: &str) -> (Proxy, SocketAddr) {
        self.proxy_to(name, self.echo)
    }

    fn proxy_to(&self, name: &str, upstream: SocketAddr) -> (Proxy, SocketAddr) {
        let packs = vec![ProxyPack::new(
            name.into(),
            "127.0.0.1:0".into(),
            upstream.to_string(),
        )];
        let mut proxies = self.client.populate(packs).expect("populate");
        let proxy = proxies.pop().expect("one proxy back");
        let listen = proxy
            .proxy_pack
            .listen
            .parse()
            .expect("concrete listen address");
        (proxy, listen)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.api, path)
    }
}

async fn echo_server(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
        });
    }
}

async fn closing_server(listener: tokio::net::TcpListener) {
    use tokio::io::AsyncWriteExt;
    loop {
        if let Ok((mut stream, _)) = listener.accept().await {
            // Close 100 ms after writing: when the upstream writes and closes at once,
            // noxious 1.0.4 sometimes delivers EOF without the data (see the crate doc).
            tokio::spawn(async move {
                let _ = stream.write_all(b"bye").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to proxy");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Send `data` through the proxy (from a writer thread) and read the echo back; returns the
/// elapsed time. Panics if the echo differs.
fn roundtrip(addr: SocketAddr, data: &[u8]) -> Duration {
    let mut stream = connect(addr);
    let start = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let to_send = data.to_vec();
    let w = std::thread::spawn(move || writer.write_all(&to_send));
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).expect("echo read");
    let elapsed = start.elapsed();
    w.join().unwrap().expect("write");
    assert!(back == data, "echo differs");
    elapsed
}

/// Read until EOF or error; returns (bytes read, whether the stream ended rather than timed out).
fn read_to_end_or_timeout(stream: &mut TcpStream) -> (usize, bool) {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (total, false)
            }
            Err(_) => return (total, true),
        }
    }
}

#[test]
fn client_library_sees_a_toxiproxy_server() {
    let h = Harness::start();
    assert!(h.client.is_running());
    assert_eq!(h.client.version().unwrap(), http::API_VERSION);
    let (proxy, listen) = h.proxy("basics");
    assert!(proxy.proxy_pack.enabled);
    assert!(proxy.toxics().unwrap().is_empty());
    proxy.with_latency("upstream".into(), 5, 1, 1.0);
    let toxics = proxy.toxics().unwrap();
    assert_eq!(toxics.len(), 1);
    assert_eq!(toxics[0].name, "latency_upstream");
    assert_eq!(toxics[0].stream, "upstream");
    assert_eq!(toxics[0].attributes["latency"], 5);
    assert_eq!(toxics[0].attributes["jitter"], 1);
    let all = h.client.all().unwrap();
    assert_eq!(all["basics"].proxy_pack.listen, listen.to_string());
    assert_eq!(all["basics"].proxy_pack.toxics.len(), 1);
    let found = h.client.find_and_reset_proxy("basics").unwrap();
    assert!(found.toxics().unwrap().is_empty());
    roundtrip(listen, b"hello");
}

#[test]
fn latency_delays_each_direction() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("lat");
    let base = roundtrip(listen, b"ping");
    proxy.with_latency("downstream".into(), 300, 0, 1.0);
    let one = roundtrip(listen, b"ping");
    assert!(
        one >= Duration::from_millis(300),
        "downstream latency: {one:?}"
    );
    proxy.with_latency("upstream".into(), 200, 0, 1.0);
    let both = roundtrip(listen, b"ping");
    assert!(
        both >= Duration::from_millis(500),
        "both latencies: {both:?}"
    );
    proxy.delete_all_toxics().unwrap();
    roundtrip(listen, b"ping");
    eprintln!("latency: base {base:?}, +300ms {one:?}, +500ms {both:?}");
}

#[test]
fn latency_reaches_an_open_connection() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("live");
    let mut s = connect(listen);
    let mut buf = [0u8; 4];
    s.write_all(b"abcd").unwrap();
    s.read_exact(&mut buf).unwrap();
    proxy.with_latency("downstream".into(), 250, 0, 1.0);
    let start = Instant::now();
    s.write_all(b"efgh").unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"efgh");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bandwidth_limits_throughput() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("bw");
    // 100 KB at 50 KB/s downstream: at least 2 s minus the first 100 ms piece in flight.
    proxy.with_bandwidth("downstream".into(), 50, 1.0);
    let data = payload(100_000);
    let took = roundtrip(listen, &data);
    assert!(
        took >= Duration::from_millis(1_800),
        "100 KB at 50 KB/s took {took:?}"
    );
    eprintln!("bandwidth: 100 KB at 50 KB/s in {took:?}");
}

#[test]
fn timeout_zero_holds_data_until_removed() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("hold");
    proxy.with_timeout("downstream".into(), 0, 1.0);
    let mut s = connect(listen);
    s.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    s.write_all(b"lost in the void").unwrap();
    let (got, ended) = read_to_end_or_timeout(&mut s);
    assert_eq!((got, ended), (0, false), "timeout 0 must block, not close");
    proxy.delete_all_toxics().unwrap();
    roundtrip(listen, b"back again");
}

#[test]
fn timeout_closes_after_the_delay() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("tmo");
    proxy.with_timeout("downstream".into(), 300, 1.0);
    let start = Instant::now();
    let mut s = connect(listen);
    s.write_all(b"x").unwrap();
    let (got, ended) = read_to_end_or_timeout(&mut s);
    assert_eq!((got, ended), (0, true));
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn limit_data_closes_after_n_bytes() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("limit");
    proxy.with_limit_data("downstream".into(), 1000, 1.0);
    let mut s = connect(listen);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&payload(5000));
    });
    let (got, ended) = read_to_end_or_timeout(&mut s);
    let _ = writer.join();
    assert_eq!(got, 1000, "exactly the byte budget goes through");
    assert!(ended, "connection closed after the budget");
}

#[test]
fn slicer_delays_every_piece() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("slice");
    // 200 bytes in 10-byte pieces with 10 ms before each: at least 20 sleeps of 10 ms.
    proxy.with_slicer("downstream".into(), 10, 0, 10_000, 1.0);
    let took = roundtrip(listen, &payload(200));
    assert!(took >= Duration::from_millis(200), "{took:?}");
}

#[test]
fn slow_close_delays_the_close() {
    let h = Harness::start();
    let (_plain, plain_listen) = h.proxy_to("fastclose", h.closer);
    let (proxy, listen) = h.proxy_to("slowclose", h.closer);
    proxy.with_slow_close("downstream".into(), 400, 1.0);
    for (addr, delayed) in [(plain_listen, false), (listen, true)] {
        let start = Instant::now();
        let mut s = connect(addr);
        let mut buf = [0u8; 3];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"bye");
        let (got, ended) = read_to_end_or_timeout(&mut s);
        assert_eq!((got, ended), (0, true));
        if delayed {
            assert!(
                start.elapsed() >= Duration::from_millis(400),
                "{:?}",
                start.elapsed()
            );
        }
    }
}

#[test]
fn reset_peer_closes_the_connection() {
    let h = Harness::start();
    let (_proxy, listen) = h.proxy("rst");
    let http = reqwest::blocking::Client::new();
    let body = json!({"name": "rst", "type": "reset_peer", "stream": "downstream",
                      "attributes": {"timeout": 300}});
    let resp = http
        .post(h.url("/proxies/rst/toxics"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().unwrap()["attributes"]["timeout"], 300);
    let start = Instant::now();
    let mut s = connect(listen);
    s.write_all(b"doomed").unwrap();
    let (got, ended) = read_to_end_or_timeout(&mut s);
    assert_eq!((got, ended), (0, true));
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn disable_refuses_and_closes_then_enable_restores() {
    let h = Harness::start();
    let (proxy, listen) = h.proxy("down");
    let mut open = connect(listen);
    open.write_all(b"1234").unwrap();
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).unwrap();

    proxy.disable().unwrap();
    let err = TcpStream::connect(listen).expect_err("disabled proxy must refuse");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let (got, ended) = read_to_end_or_timeout(&mut open);
    assert_eq!((got, ended), (0, true), "open connection closed by disable");
    assert!(!h.client.find_proxy("down").unwrap().proxy_pack.enabled);

    proxy.enable().unwrap();
    roundtrip(listen, b"alive");
    assert!(h.client.find_proxy("down").unwrap().proxy_pack.enabled);
}

#[test]
fn reset_removes_toxics_and_enables_everything() {
    let h = Harness::start();
    let (a, la) = h.proxy("a");
    let (_b, lb) = h.proxy("b");
    a.with_timeout("downstream".into(), 0, 1.0);
    a.with_latency("upstream".into(), 100, 0, 1.0);
    h.client.find_proxy("b").unwrap().disable().unwrap();
    assert!(TcpStream::connect(lb).is_err());

    h.client.reset().unwrap();
    for name in ["a", "b"] {
        let p = h.client.find_proxy(name).unwrap();
        assert!(p.proxy_pack.enabled, "{name} enabled");
        assert!(p.proxy_pack.toxics.is_empty(), "{name} has no toxics");
    }
    // The timeout toxic would hold this echo forever if it were still there.
    roundtrip(la, b"free");
    roundtrip(lb, b"free");
}

#[test]
fn raw_http_api_status_codes_and_bodies() {
    let h = Harness::start();
    let http = reqwest::blocking::Client::new();
    let get = |p: &str| http.get(h.url(p)).send().unwrap();
    let post = |p: &str, b: Value| http.post(h.url(p)).json(&b).send().unwrap();
    let delete = |p: &str| http.delete(h.url(p)).send().unwrap();

    let missing = get("/proxies/nope");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().unwrap(),
        json!({"error": "proxy not found", "status": 404})
    );
    let spec = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": h.echo.to_string()});
    let created = post("/proxies", spec.clone());
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["toxics"], json!([]));
    let listen: SocketAddr = created["listen"].as_str().unwrap().parse().unwrap();
    assert_ne!(listen.port(), 0);
    assert_eq!(post("/proxies", spec).status(), 409);
    let no_upstream = post("/proxies", json!({"name": "q", "listen": "127.0.0.1:0"}));
    assert_eq!(no_upstream.status(), 400);
    assert_eq!(no_upstream.json::<Value>().unwrap()["status"], 400);
    assert_eq!(
        post("/proxies/p/toxics", json!({"type": "nope"})).status(),
        400
    );
    assert_eq!(
        post("/proxies/zz/toxics", json!({"type": "latency"})).status(),
        404
    );

    let toxic = json!({"name": "lag", "type": "latency", "stream": "upstream",
                       "toxicity": 1.0, "attributes": {"latency": 20, "jitter": 5}});
    assert_eq!(post("/proxies/p/toxics", toxic.clone()).status(), 200);
    assert_eq!(post("/proxies/p/toxics", toxic).status(), 409);
    let updated: Value = post(
        "/proxies/p/toxics/lag",
        json!({"attributes": {"latency": 40}}),
    )
    .json()
    .unwrap();
    assert_eq!(updated["attributes"], json!({"latency": 40, "jitter": 5}));
    assert_eq!(
        get("/proxies/p/toxics/lag").json::<Value>().unwrap(),
        updated
    );
    assert_eq!(
        get("/proxies/p/toxics").json::<Value>().unwrap(),
        json!([updated])
    );
    assert_eq!(get("/proxies/p/toxics/other").status(), 404);
    let list: Value = get("/proxies").json().unwrap();
    assert_eq!(list["p"]["toxics"][0]["name"], "lag");
    assert_eq!(delete("/proxies/p/toxics/lag").status(), 204);
    assert_eq!(delete("/proxies/p/toxics/lag").status(), 404);

    let disabled: Value = post("/proxies/p", json!({"enabled": false}))
        .json()
        .unwrap();
    assert_eq!(disabled["enabled"], false);
    assert!(TcpStream::connect(listen).is_err());
    assert_eq!(post("/proxies/p", json!({"enabled": true})).status(), 200);
    roundtrip(listen, b"raw");
    assert_eq!(delete("/proxies/p").status(), 204);
    assert_eq!(delete("/proxies/p").status(), 404);
    assert!(TcpStream::connect(listen).is_err());
    assert_eq!(get("/nowhere").status(), 404);
    assert_eq!(post("/reset", json!({})).status(), 204);
    assert_eq!(get("/version").text().unwrap(), http::API_VERSION);
}

#[test]
fn proxy_created_disabled_does_not_listen() {
    let h = Harness::start();
    let http = reqwest::blocking::Client::new();
    let resp: Value = http
        .post(h.url("/proxies"))
        .json(&json!({"name": "off", "listen": "127.0.0.1:0",
                      "upstream": h.echo.to_string(), "enabled": false}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["enabled"], false);
    let listen: SocketAddr = resp["listen"].as_str().unwrap().parse().unwrap();
    assert!(TcpStream::connect(listen).is_err());
    // A toxic added while disabled is applied once the proxy is enabled.
    let toxic = json!({"type": "latency", "attributes": {"latency": 200}});
    assert_eq!(
        http.post(h.url("/proxies/off/toxics"))
            .json(&toxic)
            .send()
            .unwrap()
            .status(),
        200
    );
    h.client.find_proxy("off").unwrap().enable().unwrap();
    let took = roundtrip(listen, b"late");
    assert!(took >= Duration::from_millis(200), "{took:?}");
}
