//! A real multi-process cluster behind S3 gateways for the S3 client tests: 1 master,
//! 3 chunkservers and N gateways, each a real `anode` process on free 127.0.0.1 ports.
//! Included by the S3 test files with `#[path = "support/s3_cluster.rs"] mod s3_cluster;`
//! next to `mod support;`.
#![allow(dead_code)]

use std::time::Duration;

use crate::support::{chunkserver_args, free_port, master_args, wait_alive, wait_for, Proc};

/// Access key the cluster's first key uses.
pub const ACCESS_KEY: &str = "AKIAANODES3TESTS0001";
/// Its secret.
pub const SECRET_KEY: &str = "s3tests/secret+key/0123456789abcdefghijkl";
/// Region the gateways report.
pub const REGION: &str = "us-east-1";

/// The running cluster; dropping it kills every process.
pub struct S3Cluster {
    /// Master address (`host:port`) of member 1; all of them in `masters`.
    pub master: String,
    /// Every master's address, by member id - 1.
    pub masters: Vec<String>,
    /// The master's admin HTTP address (`/metrics`, `/health`).
    pub master_admin: String,
    /// S3 endpoints (`http://127.0.0.1:PORT`), one per gateway.
    pub endpoints: Vec<String>,
    /// Each gateway's admin HTTP endpoint (`http://127.0.0.1:PORT`: `/metrics`, `/health`),
    /// in gateway order.
    pub gateway_admins: Vec<String>,
    /// Processes (master, chunkservers, gateways), killed on drop.
    pub procs: Vec<Proc>,
    /// Each gateway's audit log (`--audit-log`), in gateway order.
    pub audit_logs: Vec<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl S3Cluster {
    /// Start 1 master, 3 chunkservers and `gateways` gateways; return once the chunkservers
    /// are alive, the key exists and every gateway reports healthy.
    pub async fn start(gateways: usize) -> S3Cluster {
        S3Cluster::start_with_env(gateways, Vec::new()).await
    }

    /// [`S3Cluster::start`] with extra environment variables for every process.
    pub async fn start_with_env(gateways: usize, env: Vec<(String, String)>) -> S3Cluster {
        S3Cluster::start_group(1, gateways, env).await
    }

    /// [`S3Cluster::start_with_env`] with a raft group of `masters` members (processes
    /// `master-1`..); gateways and chunkservers know every master.
    pub async fn start_group(
        masters: usize,
        gateways: usize,
        env: Vec<(String, String)>,
    ) -> S3Cluster {
        // reqwest is built without a default TLS provider (the tests speak plain HTTP), but it
        // wants one installed before any client is built.
        #[allow(deprecated)] // see anode-gateway's `tls::provider`
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        eprintln!("s3 cluster dir {}", root.display());
        let ports: Vec<(u16, u16)> = (0..masters).map(|_| (free_port(), free_port())).collect();
        let addrs: Vec<String> = ports
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let peers = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let master = addrs.join(",");
        let ma = ports[0].1;
        let mut procs: Vec<Proc> = ports
            .iter()
            .enumerate()
            .map(|(i, (p, a))| {
                let id = i as u64 + 1;
                Proc::spawn_env(
                    &root,
                    &format!("master-{id}"),
                    master_args(id, &root, *p, *a, &peers, false),
                    env.clone(),
                )
            })
            .collect();
        for i in 1..=3 {
            procs.push(Proc::spawn_env(
                &root,
                &format!("chunkserver-{i}"),
                chunkserver_args(&root, i, &master, None),
                env.clone(),
            ));
        }
        create_key(&addrs).await;
        let mut endpoints = Vec::new();
        let mut admins = Vec::new();
        let mut audit_logs = Vec::new();
        for i in 1..=gateways {
            let audit = root.join(format!("gateway-{i}.audit.log"));
            let (sp, ap) = (free_port(), free_port());
            procs.push(Proc::spawn_env(
                &root,
                &format!("gateway-{i}"),
                vec![
                    "gateway".into(),
                    "--listen".into(),
                    format!("127.0.0.1:{sp}"),
                    "--admin-listen".into(),
                    format!("127.0.0.1:{ap}"),
                    "--masters".into(),
                    master.clone(),
                    "--region".into(),
                    REGION.into(),
                    "--audit-log".into(),
                    audit.display().to_string(),
                ]
                .into_iter()
                .chain(crate::support::tls_args(
                    anode_tls::Role::Gateway,
                    &i.to_string(),
                ))
                .collect(),
                env.clone(),
            ));
            endpoints.push(format!("http://127.0.0.1:{sp}"));
            admins.push(format!("http://127.0.0.1:{ap}"));
            audit_logs.push(audit);
        }
        let c = S3Cluster {
            master: addrs[0].clone(),
            masters: addrs,
            master_admin: format!("127.0.0.1:{ma}"),
            endpoints,
            gateway_admins: admins.clone(),
            procs,
            audit_logs,
            _dir: dir,
        };
        let health: Vec<String> = admins.iter().map(|a| format!("{a}/health")).collect();
        c.wait_ready(&health).await;
        c
    }

    async fn wait_ready(&self, health_urls: &[String]) {
        wait_alive(
            &self.master,
            3,
            "3 chunkservers alive",
            Duration::from_secs(60),
        )
        .await;
        let http = reqwest::Client::new();
        for url in health_urls {
            wait_for(url, Duration::from_secs(60), || {
                let req = http.get(url).timeout(Duration::from_secs(2)).send();
                async move { req.await.ok()?.status().is_success().then_some(()) }
            })
            .await;
        }
    }

    /// Last lines of every process log (for assertion messages).
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("== {}\n{}", p.name, p.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs the Python S3 suite `tests/s3/<script>` (boto3) against both gateways with the test
    /// key and `env` (and `AUDIT_LOGS`, a JSON list of the gateways' audit log paths), bounded
    /// by `timeout`; panics with its output and the cluster's logs unless
    /// it exits 0 and prints `<name> suite: ok`. Returns its stdout.
    pub async fn run_python_suite(
        &self,
        script: &str,
        name: &str,
        env: &[(&str, String)],
        timeout: Duration,
    ) -> String {
        let child = self.spawn_python_suite(script, env);
        self.finish_python_suite(child, name, timeout).await
    }

    /// The id of the member the answering masters name as leader (within 30 s).
    #[allow(dead_code)] // not every test binary that includes the support code kills leaders
    pub async fn leader(&self) -> u64 {
        wait_for("the leader", Duration::from_secs(30), || {
            let addrs = self.masters.clone();
            async move {
                for a in &addrs {
                    if let Some(st) = crate::support::status_of(a).await {
                        if st.leader_id != 0 {
                            return Some(st.leader_id);
                        }
                    }
                }
                None
            }
        })
        .await
    }

    /// `kill -9` the leader's process and wait (60 s) for another member to lead: the old
    /// and the new leader's ids.
    #[allow(dead_code)]
    pub async fn kill_leader(&mut self) -> (u64, u64) {
        let old = self.leader().await;
        let name = format!("master-{old}");
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .expect("the leader's process")
            .kill9();
        eprintln!("killed {name}");
        let rest: Vec<String> = self
            .masters
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 + 1 != old)
            .map(|(_, a)| a.clone())
            .collect();
        let new = wait_for("a new leader", Duration::from_secs(60), || {
            let rest = rest.clone();
            async move {
                for a in &rest {
                    if let Some(st) = crate::support::status_of(a).await {
                        if st.leader_id != 0 && st.leader_id != old {
                            return Some(st.leader_id);
                        }
                    }
                }
                None
            }
        })
        .await;
        eprintln!("new leader: member {new}");
        (old, new)
    }

    /// Start the Python S3 suite `tests/s3/<script>` (see [`S3Cluster::run_python_suite`])
    /// without waiting for it, for tests that act on the cluster while it runs.
    pub fn spawn_python_suite(
        &self,
        script: &str,
        env: &[(&str, String)],
    ) -> tokio::process::Child {
        let path = format!("{}/tests/s3/{script}", env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(&path)
            .env("S3_ENDPOINT", &self.endpoints[0])
            .env("S3_ENDPOINT_2", &self.endpoints[self.endpoints.len() - 1])
            .env(
                "AUDIT_LOGS",
                serde_json::to_string(&self.audit_logs).expect("paths are strings"),
            )
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run {python} (needed with boto3 for this test): {e}")
        })
    }

    /// Wait for a suite started by [`S3Cluster::spawn_python_suite`]: panics with its output
    /// and the cluster's logs unless it exits 0 within `timeout` and prints
    /// `<name> suite: ok`. Returns its stdout.
    pub async fn finish_python_suite(
        &self,
        child: tokio::process::Child,
        name: &str,
        timeout: Duration,
    ) -> String {
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} suite timed out\n{}", self.logs()))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(&format!("{name} suite: ok")),
            "{name} suite failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- cluster\n{}",
            out.status,
            self.logs()
        );
        eprintln!("{stdout}");
        stdout
    }
}

/// Create the test key through the raft leader, retrying while the master elects itself.
async fn create_key(addrs: &[String]) {
    let masters = crate::support::admin_masters(addrs);
    wait_for("access key created", Duration::from_secs(60), || {
        let masters = masters.clone();
        async move {
            let req = anode_proto::CreateKeyRequest {
                name: "s3tests".into(),
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
                user: String::new(),
                expires_ms: 0,
                session: None,
            };
            let r = anode_master::ctl::call_leader(&masters, |mut c| {
                let req = req.clone();
                async move { c.create_key(req).await }
            })
            .await;
            match r {
                Ok(_) => Some(()),
                Err(e) if e.to_string().starts_with("AccessKeyExists") => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;
}

/// A request to `endpoint` signed with the cluster's key (SigV4, unsigned payload), with a
/// W3C `traceparent` header when given.
pub async fn signed(
    http: &reqwest::Client,
    endpoint: &str,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
    traceparent: Option<&str>,
) -> reqwest::Response {
    let host = endpoint.trim_start_matches("http://");
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, host.parse().unwrap());
    if let Some(tp) = traceparent {
        headers.insert("traceparent", tp.parse().unwrap());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let amz_date = anode_gateway::sigv4::format_amz_date(now.as_secs() as i64);
    let params = anode_gateway::sigv4::SignParams {
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        region: REGION,
        amz_date: &amz_date,
    };
    anode_gateway::sigv4::sign_request(
        method.as_str(),
        path,
        "",
        &mut headers,
        anode_gateway::sigv4::UNSIGNED_PAYLOAD,
        &params,
    );
    let mut req = http.request(method, format!("{endpoint}{path}")).body(body);
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.to_str().unwrap());
    }
    req.send().await.unwrap()
}
