//! `anode dev`: a whole cluster in one process (1 master, 3 chunkservers on 3 directories,
//! the S3 gateway on 127.0.0.1:9000) on one data directory. It keeps its data across
//! restarts; the first access key comes from `ANODE_ACCESS_KEY`/`ANODE_SECRET_KEY` or
//! printed development keys.
//!
//! gRPC between the in-process nodes uses mutual TLS: the first start makes a CA and one
//! certificate per node (plus `admin-1` for `anode ctl` and `client-1` for the tools) in
//! `DIR/certs/`, later starts reuse them. S3 stays plain HTTP on 127.0.0.1.

use std::path::PathBuf;
use std::time::Duration;

use anode_gateway::{DEV_ACCESS_KEY, DEV_SECRET_KEY};
use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;

/// Flags of `anode dev`.
#[derive(clap::Args, Debug, Clone)]
pub struct DevArgs {
    /// Data directory for the whole cluster.
    #[arg(long, env = "ANODE_DATA", default_value = "./anode-data")]
    pub data: PathBuf,
    /// S3 endpoint address.
    #[arg(long, env = "ANODE_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// First port of the internal services (master, then 3 chunkservers, then admin ports).
    #[arg(long, env = "ANODE_DEV_BASE_PORT", default_value_t = 7001)]
    pub base_port: u16,
    /// Plain-text, unauthenticated gRPC between the in-process nodes (for measuring the cost
    /// of TLS; logs a warning).
    #[arg(
        long,
        env = "ANODE_INSECURE_NO_TLS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure_no_tls: bool,
    /// Also serve S3 over HTTPS on this address (e.g. 127.0.0.1:9443), beside plain HTTP on
    /// `--listen`. Without `--s3-tls-cert`, a self-signed certificate for `localhost` and
    /// `127.0.0.1` is made once in `DATA/s3-tls/` (`cert.pem` is also the CA bundle to give
    /// clients).
    #[arg(long, env = "ANODE_DEV_S3_HTTPS_LISTEN")]
    pub s3_https_listen: Option<String>,
    /// Certificate (PEM) for `--s3-https-listen`.
    #[arg(long, env = "ANODE_DEV_S3_TLS_CERT", requires = "s3_tls_key")]
    pub s3_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--s3-tls-cert`.
    #[arg(long, env = "ANODE_DEV_S3_TLS_KEY", requires = "s3_tls_cert")]
    pub s3_tls_key: Option<PathBuf>,
    /// The gateway's S3 audit log (JSON lines; a file rotated at 100 MiB, or `-` for stdout).
    /// Off when unset.
    #[arg(long, env = "ANODE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
}

/// The TLS flags of each in-process node: `--certs-dir DIR/certs/<role>-<id>`, made on first
/// start (or `--insecure-no-tls`), for master-1, chunkserver-1..3, gateway-1, admin-1 (for
/// `anode ctl`) and client-1 (for `anode-tools bench` and programs using the client library).
fn node_tls(args: &DevArgs, data: &std::path::Path) -> anyhow::Result<Vec<anode_tls::TlsArgs>> {
    use anode_tls::Role;
    if args.insecure_no_tls {
        let insecure = anode_tls::TlsArgs {
            certs_dir: None,
            insecure_no_tls: true,
        };
        return Ok(vec![insecure; 7]);
    }
    let dirs = anode_tls::certs::ensure_layout(
        &data.join("certs"),
        &[
            (Role::Master, "1"),
            (Role::Chunkserver, "1"),
            (Role::Chunkserver, "2"),
            (Role::Chunkserver, "3"),
            (Role::Gateway, "1"),
            (Role::Admin, "1"),
            (Role::Client, "1"),
        ],
    )
    .context("make the development certificates")?;
    Ok(dirs.into_iter().map(anode_tls::TlsArgs::certs).collect())
}

#[derive(Parser)]
struct Wrap<T: clap::Args> {
    #[command(flatten)]
    inner: T,
}

fn parse_args<T: clap::Args>(args: &[String]) -> anyhow::Result<T> {
    let mut argv = vec!["anode".to_string()];
    argv.extend_from_slice(args);
    Ok(Wrap::<T>::try_parse_from(argv)?.inner)
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// Run the embedded cluster until a shutdown signal.
pub async fn run(args: DevArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    anode_common::fsutil::create_dir_all_durable(&args.data)
        .with_context(|| format!("create {}", args.data.display()))?;
    let data = args.data.canonicalize()?;
    let p = args.base_port;
    let master_addr = format!("127.0.0.1:{p}");
    let tls = node_tls(&args, &data)?;
    let mut m: anode_master::MasterArgs = parse_args(&[
        s("--id"),
        s("1"),
        s("--data"),
        s(data.join("master-1").display()),
        s("--listen"),
        master_addr.clone(),
        s("--peers"),
        format!("1={master_addr}"),
        s("--admin-listen"),
        format!("127.0.0.1:{}", p + 80),
    ])?;
    m.tls = tls[0].clone();
    let master = anode_master::start(m, shutdown.clone()).await?;
    let master_admin = master.admin_addr.to_string();
    let mut tasks = vec![master.done];
    for i in 1..=3u16 {
        let dir = data.join(format!("chunkserver-{i}"));
        let mut c: anode_chunkserver::ChunkserverArgs = parse_args(&[
            s("--data"),
            s(dir.display()),
            s("--listen"),
            format!("127.0.0.1:{}", p + 99 + i),
            s("--masters"),
            master_addr.clone(),
            s("--admin-listen"),
            format!("127.0.0.1:{}", p + 179 + i),
            s("--master-admin"),
            master_admin.clone(),
        ])?;
        c.tls = tls[usize::from(i)].clone();
        let sd = shutdown.clone();
        tasks.push(tokio::spawn(
            async move { anode_chunkserver::run(c, sd).await },
        ));
    }
    let masters = anode_master::ctl::Masters::new(vec![master_addr.clone()], tls[5].load()?);
    ensure_key(&masters).await?;
    let mut gateway_flags = vec![
        s("--listen"),
        args.listen.clone(),
        s("--masters"),
        master_addr.clone(),
        s("--admin-listen"),
        format!("127.0.0.1:{}", p + 2000),
        s("--master-admin"),
        master_admin.clone(),
    ];
    if let Some(path) = &args.audit_log {
        gateway_flags.extend([s("--audit-log"), path.display().to_string()]);
    }
    let https = s3_https_flags(&args, &data)?;
    if let Some((flags, _)) = &https {
        gateway_flags.extend(flags.iter().cloned());
    }
    let mut g: anode_gateway::GatewayArgs = parse_args(&gateway_flags)?;
    g.grpc_tls = tls[4].clone();
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move { anode_gateway::run(g, sd).await }));
    println!(
        "anode dev: S3 endpoint http://{}  data {}",
        args.listen,
        data.display()
    );
    println!("anode dev: status page http://{master_admin}/");
    match &tls[5].certs_dir {
        Some(dir) => println!(
            "anode dev: operator CLI: anode ctl --masters {master_addr} --certs-dir {} status",
            dir.display()
        ),
        None => println!(
            "anode dev: operator CLI: anode ctl --masters {master_addr} --insecure-no-tls status"
        ),
    }
    if let (Some((_, cert)), Some(addr)) = (&https, &args.s3_https_listen) {
        println!(
            "anode dev: S3 endpoint https://{addr}  certificate {}",
            cert.display()
        );
    }
    for t in tasks {
        t.await.context("task panicked")??;
    }
    Ok(())
}

/// The gateway flags for `--s3-https-listen` and the certificate it serves: the given pair,
/// else a self-signed one kept in `DATA/s3-tls/`.
fn s3_https_flags(
    args: &DevArgs,
    data: &std::path::Path,
) -> anyhow::Result<Option<(Vec<String>, PathBuf)>> {
    let Some(addr) = &args.s3_https_listen else {
        return Ok(None);
    };
    let (cert, key) = match (&args.s3_tls_cert, &args.s3_tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            anode_gateway::tls::ensure_self_signed(&data.join("s3-tls"), &names)?
        }
    };
    let flags = vec![
        s("--https-listen"),
        addr.clone(),
        s("--tls-cert"),
        s(cert.display()),
        s("--tls-key"),
        s(key.display()),
    ];
    Ok(Some((flags, cert)))
}

/// Make sure the configured (or development) access key exists.
async fn ensure_key(masters: &anode_master::ctl::Masters) -> anyhow::Result<()> {
    let (ak, sk) = match (
        std::env::var("ANODE_ACCESS_KEY"),
        std::env::var("ANODE_SECRET_KEY"),
    ) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => (a, s),
        _ => {
            eprintln!(
                "WARNING: ANODE_ACCESS_KEY/ANODE_SECRET_KEY not set; using development keys\n  AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY}\n  AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY}"
            );
            (DEV_ACCESS_KEY.to_string(), DEV_SECRET_KEY.to_string())
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let req = anode_proto::CreateKeyRequest {
            name: "default".into(),
            access_key: ak.clone(),
            secret_key: sk.clone(),
            user: String::new(),
            expires_ms: 0,
            session: None,
        };
        match anode_master::ctl::call_leader(masters, |mut c| {
            let req = req.clone();
            async move { c.create_key(req).await }
        })
        .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.to_string().starts_with("AccessKeyExists") => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
