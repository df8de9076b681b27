//! Multi-process tests of the trust boundary (issue 12): real `anode` processes with mutual
//! TLS. Strangers (no certificate, plain text, a certificate of another CA) are refused on every
//! gRPC port; each role may call only what the access table grants; forged raft messages (from
//! a non-member, or a member lying about its id) are refused and the group keeps committing;
//! listings carry no secrets.

mod support;

use std::time::Duration;

use anode_proto::chunkserver_client::ChunkserverClient;
use anode_proto::master_client::MasterClient;
use anode_proto::raft_transport_client::RaftTransportClient;
use anode_proto::*;
use anode_tls::Role;
use protobuf::Message as _;
use support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The whole test is bounded.
const TEST_BOUND: Duration = Duration::from_secs(180);
/// One call is bounded.
const CALL: Duration = Duration::from_secs(5);

struct Cluster {
    masters: Vec<String>,
    chunkserver: String,
    procs: Vec<Proc>,
    _dir: Option<tempfile::TempDir>,
    root: std::path::PathBuf,
}

/// 3 masters and 1 chunkserver; returns once a leader exists and the chunkserver is alive.
async fn start() -> Cluster {
    let (dir, root) = test_dir();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let masters: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{}", p.0)).collect();
    let peers = (1..=3)
        .map(|i| format!("{i}={}", masters[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: Vec<Proc> = (1..=3u64)
        .map(|i| {
            let (p, a) = ports[i as usize - 1];
            Proc::spawn(
                &root,
                &format!("master-{i}"),
                master_args(i, &root, p, a, &peers, false),
            )
        })
        .collect();
    let cs_args = chunkserver_args(&root, 1, &masters.join(","), None);
    let chunkserver = cs_args[4].clone();
    procs.push(Proc::spawn(&root, "chunkserver-1", cs_args));
    wait_alive(&masters[0], 1, "chunkserver alive", Duration::from_secs(60)).await;
    Cluster {
        masters,
        chunkserver,
        procs,
        _dir: dir,
        root,
    }
}

/// An endpoint trusting the real CA for a server of `role`, presenting `identity` (or none).
fn endpoint(addr: &str, role: Role, identity: Option<&std::path::Path>) -> Endpoint {
    let ca = std::fs::read(certs_dir(Role::Admin, "1").join("ca.crt")).unwrap();
    let mut cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(role.dns_name());
    if let Some(dir) = identity {
        let (cert, key) = (
            std::fs::read(dir.join("node.crt")).unwrap(),
            std::fs::read(dir.join("node.key")).unwrap(),
        );
        cfg = cfg.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(cfg)
        .unwrap()
        .connect_timeout(CALL)
        .timeout(CALL)
}

/// A channel as `<role>-<id>` of the test CA to the server of `server` at `addr`.
async fn as_role(role: Role, id: &str, addr: &str, server: Role) -> Channel {
    tls(role, id)
        .endpoint(addr, server)
        .unwrap()
        .connect_timeout(CALL)
        .timeout(CALL)
        .connect()
        .await
        .expect("connect with a valid certificate")
}

/// Every way of calling each port's services, with one kind of bad credentials; all must fail.
async fn strangers_fail(c: &Cluster, label: &str, ep: impl Fn(&str, Role) -> Option<Endpoint>) {
    let master = &c.masters[0];
    if let Some(e) = ep(master, Role::Master) {
        if let Ok(ch) = e.connect().await {
            let r = MasterClient::new(ch.clone()).status(StatusRequest {}).await;
            assert!(r.is_err(), "{label}: master Status answered");
            let r = RaftTransportClient::new(ch)
                .send(RaftBatch::default())
                .await;
            assert!(r.is_err(), "{label}: raft Send answered");
        }
    }
    if let Some(e) = ep(&c.chunkserver, Role::Chunkserver) {
        if let Ok(ch) = e.connect().await {
            let r = ChunkserverClient::new(ch)
                .stat_chunk(StatChunkRequest {
                    sha256: vec![0; 32],
                    touch: false,
                })
                .await;
            assert!(r.is_err(), "{label}: chunkserver StatChunk answered");
        }
    }
}

fn code_of(st: &tonic::Status) -> ErrorCode {
    ErrorDetail::from_status(st).map_or(ErrorCode::Unspecified, |d| d.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_and_wrong_roles_are_refused_on_every_port() {
    tokio::time::timeout(TEST_BOUND, async {
        let c = start().await;
        // Sanity: with a valid certificate every port answers.
        let mut m = MasterClient::new(as_role(Role::Admin, "1", &c.masters[0], Role::Master).await);
        m.status(StatusRequest {}).await.expect("admin Status");
        let mut cs = ChunkserverClient::new(
            as_role(Role::Client, "1", &c.chunkserver, Role::Chunkserver).await,
        );
        let r = cs
            .stat_chunk(StatChunkRequest {
                sha256: vec![0; 32],
                touch: false,
            })
            .await
            .expect("client StatChunk");
        assert!(!r.into_inner().present);

        // No certificate; plain text; a certificate of another CA (the server must refuse it
        // although the client trusts the real CA).
        strangers_fail(&c, "no client certificate", |a, r| {
            Some(endpoint(a, r, None))
        })
        .await;
        strangers_fail(&c, "plain text", |a, _| {
            Some(
                Endpoint::from_shared(format!("http://{a}"))
                    .unwrap()
                    .connect_timeout(CALL)
                    .timeout(CALL),
            )
        })
        .await;
        let other = tempfile::tempdir().unwrap();
        let foreign = anode_tls::certs::ensure_layout(
            other.path(),
            &[
                (Role::Admin, "1"),
                (Role::Master, "2"),
                (Role::Gateway, "1"),
            ],
        )
        .unwrap();
        for dir in &foreign {
            strangers_fail(&c, "certificate of another CA", |a, r| {
                Some(endpoint(a, r, Some(dir)))
            })
            .await;
        }

        // A gateway certificate cannot change membership or list keys; a chunkserver cannot
        // commit manifests; a client cannot read a secret.
        let gw = as_role(Role::Gateway, "1", &c.masters[0], Role::Master).await;
        let st = MasterClient::new(gw.clone())
            .add_member(AddMemberRequest {
                id: 9,
                addr: "127.0.0.1:1".into(),
            })
            .await
            .expect_err("gateway AddMember");
        assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied);
        let st = MasterClient::new(gw.clone())
            .list_keys(ListKeysRequest {})
            .await
            .expect_err("gateway ListKeys");
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied);
        let csc = as_role(Role::Chunkserver, "1", &c.masters[0], Role::Master).await;
        let st = MasterClient::new(csc)
            .put_object(PutObjectRequest::default())
            .await
            .expect_err("chunkserver PutObject");
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied);
        let cl = as_role(Role::Client, "1", &c.masters[0], Role::Master).await;
        let st = MasterClient::new(cl)
            .get_key(GetKeyRequest {
                access_key: "x".into(),
            })
            .await
            .expect_err("client GetKey");
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied);
        // A gateway certificate cannot call the raft transport either.
        let st = RaftTransportClient::new(gw)
            .send(RaftBatch::default())
            .await
            .expect_err("gateway raft Send");
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied);
        // A client cannot connect to a master as if it were a chunkserver: the server's
        // certificate names its role.
        let wrong = tls(Role::Client, "1")
            .endpoint(&c.masters[0], Role::Chunkserver)
            .unwrap()
            .connect_timeout(CALL)
            .timeout(CALL);
        if let Ok(ch) = wrong.connect().await {
            let r = ChunkserverClient::new(ch)
                .stat_chunk(StatChunkRequest {
                    sha256: vec![0; 32],
                    touch: false,
                })
                .await;
            assert!(r.is_err(), "a master passed as a chunkserver");
        }
        // An operator call (any answer: this member may not lead) is audited.
        let admin = as_role(Role::Admin, "1", &c.masters[0], Role::Master).await;
        let _ = MasterClient::new(admin).list_keys(ListKeysRequest {}).await;
        let log = std::fs::read_to_string(c.root.join("master-1.log")).unwrap();
        assert!(
            log.contains("permission denied") && log.contains("gateway-1 may not call"),
            "refusals are logged with the peer identity"
        );
        let admin_line = log
            .lines()
            .find(|l| l.contains("admin rpc") && l.contains("ListKeys"))
            .unwrap_or_else(|| panic!("no audit line for the operator's ListKeys:\n{log}"));
        assert!(
            admin_line.contains("admin-1") && admin_line.contains("audit"),
            "{admin_line}"
        );
        drop(c.procs);
    })
    .await
    .expect("test bounded in time");
}

/// A raft message `from` -> `to` that would crash or rewrite a member if it were stepped: a
/// heartbeat of a far higher term committing everything.
fn forged(from: u64, to: u64) -> Vec<u8> {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = 1_000_000;
    m.commit = u64::MAX;
    m.write_to_bytes().unwrap()
}

async fn send_as(cert_id: &str, addr: &str, batch: RaftBatch) -> tonic::Status {
    let ch = as_role(Role::Master, cert_id, addr, Role::Master).await;
    RaftTransportClient::new(ch)
        .send(batch)
        .await
        .expect_err("forged raft batch accepted")
}

async fn put(masters: &anode_master::ctl::Masters, key: &str) -> anyhow::Result<()> {
    let req = PutObjectRequest {
        parquet: None,
        parquet_copy: None,
        bucket: "tls".into(),
        key: key.into(),
        manifest: Some(Manifest {
            version: MANIFEST_VERSION,
            size: 1,
            etag: "x".into(),
            inline_data: vec![b'x'],
            ..Default::default()
        }),
        if_match_etag: None,
        session: None,
        source: String::new(),
    };
    anode_master::ctl::call_leader(masters, |mut c| {
        let req = req.clone();
        async move { c.put_object(req).await }
    })
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_raft_messages_are_refused_and_the_group_keeps_committing() {
    tokio::time::timeout(TEST_BOUND, async {
        let c = start().await;
        let admin = admin_masters(&c.masters);
        anode_master::ctl::call_leader(&admin, |mut cl| async move {
            cl.create_bucket(CreateBucketRequest {
                name: "tls".into(),
                replication: 1,
                owner_access_key: String::new(),
                owner_user: String::new(),
                access: Vec::new(),
                session: None,
                ..Default::default()
            })
            .await
        })
        .await
        .expect("create bucket");
        put(&admin, "before").await.expect("put before");
        let target = &c.masters[0];
        let batch = |from: u64, to: u64, msgs: Vec<Vec<u8>>| RaftBatch {
            from,
            from_addr: "127.0.0.1:1".into(),
            to,
            messages: msgs,
        };
        // A master certificate of a non-member (id 9), telling the truth about its id.
        let st = send_as("9", target, batch(9, 1, vec![forged(9, 1)])).await;
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied, "{st:?}");
        // A member (2) claiming to be member 3, in the batch or only in a message.
        let st = send_as("2", target, batch(3, 1, vec![forged(3, 1)])).await;
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied, "{st:?}");
        let st = send_as("2", target, batch(2, 1, vec![forged(2, 1), forged(3, 1)])).await;
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied, "{st:?}");
        // A member's message for another member.
        let st = send_as("2", target, batch(2, 3, vec![forged(2, 3)])).await;
        assert_eq!(code_of(&st), ErrorCode::PermissionDenied, "{st:?}");

        // Nothing reached raft: every member is up, no term jumped, and writes still commit.
        for i in 0..3 {
            let st = status_of(&c.masters[i]).await.expect("member answers");
            assert!(
                st.term < 1_000_000,
                "a forged term reached raft: {}",
                st.term
            );
        }
        for k in 0..20 {
            put(&admin, &format!("after-{k}")).await.expect("put after");
        }
        let log = std::fs::read_to_string(c.root.join("master-1.log")).unwrap();
        assert!(log.contains("raft batch refused"), "refusal logged");
        assert!(
            log.contains("master-9"),
            "the refused peer's identity is logged"
        );
        drop(c.procs);
    })
    .await
    .expect("test bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_manages_members_and_keys_and_listings_carry_no_secret() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut c = start().await;
        let admin = admin_masters(&c.masters);
        let created = anode_master::ctl::call_leader(&admin, |mut cl| async move {
            cl.create_key(CreateKeyRequest {
                name: "k".into(),
                access_key: "AKTLSTEST0000001".into(),
                secret_key: String::new(),
                user: String::new(),
                expires_ms: 0,
                session: None,
            })
            .await
        })
        .await
        .expect("admin CreateKey")
        .key
        .unwrap();
        assert!(
            !created.secret_key.is_empty(),
            "CreateKey shows the secret once"
        );
        let listed = anode_master::ctl::call_leader(&admin, |mut cl| async move {
            cl.list_keys(ListKeysRequest {}).await
        })
        .await
        .expect("admin ListKeys");
        let k = listed
            .keys
            .iter()
            .find(|k| k.access_key == "AKTLSTEST0000001")
            .expect("listed");
        assert_eq!(k.secret_key, "", "ListKeys must not carry secrets");
        // The gateway fetches one secret over mutual TLS.
        let gw = anode_master::ctl::Masters::new(c.masters.clone(), tls(Role::Gateway, "1"));
        let got = anode_master::ctl::call_leader(&gw, |mut cl| async move {
            cl.get_key(GetKeyRequest {
                access_key: "AKTLSTEST0000001".into(),
            })
            .await
        })
        .await
        .expect("gateway GetKey");
        assert_eq!(got.key.unwrap().secret_key, created.secret_key);
        let err = anode_master::ctl::call_leader(&admin, |mut cl| async move {
            cl.get_key(GetKeyRequest {
                access_key: "AKTLSTEST0000001".into(),
            })
            .await
        })
        .await
        .expect_err("admin GetKey");
        assert!(err.to_string().starts_with("PermissionDenied"), "{err}");

        // Admin adds a 4th member (started with --join and its own certificate): its empty
        // configuration takes the leader's messages, and it becomes a voter.
        let (p, a) = (free_port(), free_port());
        let addr4 = format!("127.0.0.1:{p}");
        c.procs.push(Proc::spawn(
            &c.root,
            "master-4",
            master_args(4, &c.root, p, a, "", true),
        ));
        let a4 = addr4.clone();
        anode_master::ctl::call_leader(&admin, |mut cl| {
            let addr = a4.clone();
            async move { cl.add_member(AddMemberRequest { id: 4, addr }).await }
        })
        .await
        .expect("admin AddMember");
        wait_for("member 4 votes", Duration::from_secs(60), || {
            let a = addr4.clone();
            async move {
                let st = status_of(&a).await?;
                st.members
                    .iter()
                    .any(|m| m.id == 4 && (m.role == "follower" || m.role == "leader"))
                    .then_some(())
            }
        })
        .await;
        drop(c.procs);
    })
    .await
    .expect("test bounded in time");
}
