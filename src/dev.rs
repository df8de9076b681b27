//! `anode dev`: a whole cluster in one process (1 master, 3 chunkservers on 3 directories,
//! the S3 gateway on 127.0.0.1:9000) on one data directory. It keeps its data across
//! restarts; the first access key comes from `ANODE_ACCESS_KEY`/`ANODE_SECRET_KEY` or
//! printed development keys.

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
    let m: anode_master::MasterArgs = parse_args(&[
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
    let master = anode_master::start(m, shutdown.clone()).await?;
    let mut tasks = vec![master.done];
    for i in 1..=3u16 {
        let dir = data.join(format!("chunkserver-{i}"));
        let c: anode_chunkserver::ChunkserverArgs = parse_args(&[
            s("--data"),
            s(dir.display()),
            s("--listen"),
            format!("127.0.0.1:{}", p + 99 + i),
            s("--masters"),
            master_addr.clone(),
            s("--admin-listen"),
            format!("127.0.0.1:{}", p + 179 + i),
        ])?;
        let sd = shutdown.clone();
        tasks.push(tokio::spawn(
            async move { anode_chunkserver::run(c, sd).await },
        ));
    }
    ensure_key(&master_addr).await?;
    let g: anode_gateway::GatewayArgs = parse_args(&[
        s("--listen"),
        args.listen.clone(),
        s("--masters"),
        master_addr.clone(),
        s("--admin-listen"),
        format!("127.0.0.1:{}", p + 2000),
    ])?;
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move { anode_gateway::run(g, sd).await }));
    println!(
        "anode dev: S3 endpoint http://{}  data {}",
        args.listen,
        data.display()
    );
    for t in tasks {
        t.await.context("task panicked")??;
    }
    Ok(())
}

/// Make sure the configured (or development) access key exists.
async fn ensure_key(master: &str) -> anyhow::Result<()> {
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
    let masters = vec![master.to_string()];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let req = anode_proto::CreateKeyRequest {
            name: "default".into(),
            access_key: ak.clone(),
            secret_key: sk.clone(),
            session: None,
        };
        match anode_master::ctl::call_leader(&masters, |mut c| {
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
