//! `anode ctl`: the operator CLI. Talks to the masters' gRPC API, follows leader redirects,
//! prints tables for people and `--json` for scripts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anode_proto::master_client::MasterClient;
use anode_proto::*;
use anyhow::Context;
use serde_json::{json, Value};
use tonic::transport::Channel;

/// Flags of `anode ctl`.
#[derive(clap::Args, Clone, Debug)]
pub struct CtlArgs {
    /// Master addresses, comma-separated.
    #[arg(
        long,
        env = "ANODE_MASTERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    pub masters: Vec<String>,
    /// Mutual TLS with an admin certificate (`--certs-dir`), or `--insecure-no-tls`. Not
    /// needed by `certs`.
    #[command(flatten)]
    pub tls: anode_tls::TlsArgs,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub cmd: CtlCommand,
}

/// `anode ctl` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum CtlCommand {
    /// The raft group, chunkservers and namespace counters.
    Status,
    /// Raft membership.
    Members {
        #[command(subcommand)]
        cmd: MembersCmd,
    },
    /// Raft leadership.
    Leader {
        #[command(subcommand)]
        cmd: LeaderCmd,
    },
    /// Chunkserver registry.
    Chunkservers {
        #[command(subcommand)]
        cmd: ChunkserversCmd,
    },
    /// S3 access keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Buckets.
    Buckets {
        #[command(subcommand)]
        cmd: BucketsCmd,
    },
    /// Users (own access keys and buckets; administrators reach every bucket).
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// Event notification targets: the webhooks buckets' notification rules may send events
    /// to (`arn:anode:sqs::NAME` in a rule).
    Notify {
        #[command(subcommand)]
        cmd: NotifyCmd,
    },
    /// Write a consistent copy of the metadata (taken on the leader while it serves, with
    /// its raft index and membership) to DIR: `manifest.json` and `metadata.pieces`.
    /// `anode master --restore DIR` starts a new group from it.
    Backup {
        /// The backup directory (created; must not hold a backup already).
        dir: std::path::PathBuf,
    },
    /// When every master's data is lost: fetch the newest metadata export that verifies
    /// from the chunkservers (no master is called) into OUT, in the format `backup` writes;
    /// `anode master --restore OUT` then starts a new group. Objects committed after that
    /// export are not in it (docs/operations.md, "Rebuild after losing every master").
    Rebuild {
        /// Chunkserver data API addresses, comma-separated.
        #[arg(
            long,
            env = "ANODE_REBUILD_CHUNKSERVERS",
            value_delimiter = ',',
            required = true
        )]
        chunkservers: Vec<String>,
        /// The backup directory to write (created; must not hold a backup already).
        #[arg(long, env = "ANODE_REBUILD_OUT")]
        out: std::path::PathBuf,
    },
    /// The cluster CA and node certificates (local files; no master is called).
    Certs {
        #[command(subcommand)]
        cmd: CertsCmd,
    },
}

/// `notify` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum NotifyCmd {
    /// Add a webhook target, or replace the URL of one (its queue stays).
    TargetAdd {
        /// The target's name ([a-z0-9_-], 1 to 64): rules name it as `arn:anode:sqs::NAME`.
        name: String,
        /// Where the leader POSTs each event (`http://` or `https://`).
        url: String,
        /// Sent as the `Authorization` header of every POST.
        #[arg(long, env = "ANODE_NOTIFY_AUTHORIZATION", default_value = "")]
        authorization: String,
    },
    /// Remove a target no bucket rule names; its queued events are dropped.
    TargetRm {
        /// The target's name.
        name: String,
    },
    /// The targets with their queues (events waiting, dropped because the queue was full,
    /// the next event id to deliver).
    Targets,
}

/// `certs` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum CertsCmd {
    /// Create a cluster CA: DIR/ca.crt and DIR/ca.key (refuses to overwrite).
    Init {
        /// The CA directory.
        dir: std::path::PathBuf,
    },
    /// Issue a node or operator certificate signed by the CA: OUT/ca.crt (the CA's, the
    /// trust bundle), OUT/node.crt, OUT/node.key.
    Issue {
        /// The CA directory (`certs init`).
        #[arg(long)]
        ca: std::path::PathBuf,
        /// master, chunkserver, gateway, client or admin.
        #[arg(long)]
        role: String,
        /// Id within the role (a master's raft id; any name of A-Z a-z 0-9 _ . - otherwise).
        #[arg(long)]
        id: String,
        /// Output directory (given to the node as --certs-dir).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Extra subject alternative name (DNS name or IP address); repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = anode_tls::certs::DEFAULT_NODE_VALIDITY_DAYS)]
        days: u32,
    },
}

/// The master group as `anode ctl` (and the tests) call it: addresses and the TLS setup.
#[derive(Clone, Debug)]
pub struct Masters {
    /// Master addresses (`host:port`).
    pub addrs: Vec<String>,
    /// How to connect.
    pub tls: anode_tls::Tls,
}

impl Masters {
    /// `addrs` reached with `tls`.
    pub fn new(addrs: Vec<String>, tls: anode_tls::Tls) -> Masters {
        Masters { addrs, tls }
    }
}

/// `members` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum MembersCmd {
    /// List members with role and progress.
    List,
    /// Add a member: joins as a learner, catches up, then becomes a voter.
    Add {
        /// New member id.
        id: u64,
        /// Its gRPC address.
        addr: String,
    },
    /// Remove a member (refused if it would lose quorum).
    Remove {
        /// Member id.
        id: u64,
    },
}

/// `leader` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum LeaderCmd {
    /// Hand leadership to a voter.
    Transfer {
        /// Target member id.
        id: u64,
    },
}

/// `chunkservers` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum ChunkserversCmd {
    /// List registered chunkservers.
    List,
    /// Mark a chunkserver draining (or stop draining with --cancel); with --wait, show
    /// progress until it is safe to remove.
    Drain {
        /// Chunkserver id.
        id: u64,
        /// Stop draining.
        #[arg(long)]
        cancel: bool,
        /// Wait (printing progress) until no copy on it is needed any more.
        #[arg(long)]
        wait: bool,
    },
}

/// `keys` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum KeysCmd {
    /// Create an access key (random unless given).
    Create {
        /// Human-readable name.
        #[arg(long, default_value = "")]
        name: String,
        /// Access key id.
        #[arg(long, default_value = "")]
        access_key: String,
        /// Secret key.
        #[arg(long, default_value = "")]
        secret_key: String,
        /// The user the key acts as (must exist). Without it the key is an administrator key.
        #[arg(long, default_value = "")]
        user: String,
        /// Expire the key after this long (`90s`, `30m`, `12h`, `7d`); never when absent.
        #[arg(long, value_parser = parse_duration_ms)]
        expires_in: Option<u64>,
    },
    /// List access keys.
    List,
    /// Delete an access key.
    Delete {
        /// Access key id.
        access_key: String,
    },
    /// Disable a key: gateways refuse it (within their key cache lifetime, 10 s).
    Disable {
        /// Access key id.
        access_key: String,
    },
    /// Enable a disabled key again.
    Enable {
        /// Access key id.
        access_key: String,
    },
}

/// `users` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum UsersCmd {
    /// Create a user.
    Create {
        /// User name (1 to 64 characters of A-Z a-z 0-9 _ . -).
        name: String,
        /// An administrator: reaches every bucket.
        #[arg(long)]
        admin: bool,
    },
    /// List users with their usage.
    List,
    /// Delete a user that owns no bucket and no key.
    Delete {
        /// User name.
        name: String,
    },
    /// Set a user's quota over all the buckets it owns (0 = no limit).
    Quota {
        /// User name.
        name: String,
        /// Most bytes of live objects.
        #[arg(long, default_value_t = 0)]
        max_bytes: u64,
        /// Most live objects.
        #[arg(long, default_value_t = 0)]
        max_objects: u64,
    },
}

/// `90s`, `30m`, `12h`, `7d` or a plain number of seconds, as milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit_ms) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1_000),
        Some((i, 'm')) => (&s[..i], 60_000),
        Some((i, 'h')) => (&s[..i], 3_600_000),
        Some((i, 'd')) => (&s[..i], 86_400_000),
        _ => (s, 1_000),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 12h or 7d"))?;
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!(
            "{s:?}: a duration must be positive and under 2^64 ms"
        )),
    }
}

/// `buckets` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BucketsCmd {
    /// List buckets.
    List,
    /// Create a bucket.
    Create {
        /// Bucket name.
        name: String,
        /// Replication factor (0 = min(3, live chunkservers)).
        #[arg(long, default_value_t = 0)]
        replication: u32,
    },
    /// Delete an empty bucket.
    Delete {
        /// Bucket name.
        name: String,
    },
    /// Set a bucket's quota (0 = no limit).
    Quota {
        /// Bucket name.
        name: String,
        /// Most bytes of live objects.
        #[arg(long, default_value_t = 0)]
        max_bytes: u64,
        /// Most live objects.
        #[arg(long, default_value_t = 0)]
        max_objects: u64,
    },
    /// A bucket's access configuration (policy, ACL, Object Ownership, PublicAccessBlock).
    Access {
        #[command(subcommand)]
        cmd: BucketAccessCmd,
    },
    /// A bucket's policy.
    Policy {
        #[command(subcommand)]
        cmd: BucketPolicyCmd,
    },
}

/// `buckets access` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BucketAccessCmd {
    /// Print the decoded access record (the default one when none was set).
    Get {
        /// Bucket name.
        name: String,
    },
}

/// `buckets policy` subcommands. The rest of the access record is kept; the change is a
/// compare-and-set against the record read, so a concurrent change (through S3) is refused
/// rather than overwritten: run the command again.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum BucketPolicyCmd {
    /// Set the policy from a JSON file (checked as S3's PutBucketPolicy checks it, including
    /// the bucket's BlockPublicPolicy setting).
    Set {
        /// Bucket name.
        name: String,
        /// The policy document (JSON).
        file: std::path::PathBuf,
    },
    /// Remove the policy (always allowed, whatever the policy says).
    Delete {
        /// Bucket name.
        name: String,
    },
}

const CALL_BUDGET: Duration = Duration::from_secs(30);

async fn connect(tls: &anode_tls::Tls, addr: &str) -> anyhow::Result<MasterClient<Channel>> {
    let ep = tls
        .endpoint(addr, anode_tls::Role::Master)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(150));
    // Bounded as a whole: `connect_timeout` covers the TCP connect only, and a stopped master
    // (SIGSTOP) accepts connections in its kernel backlog but never finishes the handshake.
    let ch = tokio::time::timeout(Duration::from_secs(5), ep.connect())
        .await
        .map_err(|_| anyhow::anyhow!("connect {addr}: no TLS handshake within 5 s"))?
        .with_context(|| format!("connect {addr}"))?;
    Ok(MasterClient::new(ch).max_decoding_message_size(64 << 20))
}

/// What [`call_leader`] does with a refused call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    /// A follower named the leader: call it at once.
    Redirect(String),
    /// No leader known, busy, unavailable or not reachable: try the next master later.
    Retry,
    /// A definite answer: report it.
    Fail(String),
}

/// Classify a refused call by its error detail (never by its text), with the decision the
/// client library uses ([`ErrorDetail::refusal`]); a status without a detail is a transport
/// failure, retried.
fn refusal(st: &tonic::Status) -> Refusal {
    let Some(d) = ErrorDetail::from_status(st) else {
        return Refusal::Retry;
    };
    match d.refusal() {
        anode_proto::Refusal::Redirect(leader) => Refusal::Redirect(leader),
        anode_proto::Refusal::TryNext => Refusal::Retry,
        anode_proto::Refusal::Final => Refusal::Fail(format!("{}: {}", d.code(), d.message)),
    }
}

/// Call the leader: try masters in turn, follow `NotLeader` redirects (the leader's address
/// in the error detail), retry while no leader is known, for at most 30 s.
pub async fn call_leader<T, F, Fut>(masters: &Masters, mut f: F) -> anyhow::Result<T>
where
    F: FnMut(MasterClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = Instant::now() + CALL_BUDGET;
    let mut next: Option<String> = None;
    let mut i = 0usize;
    loop {
        let addr = next
            .take()
            .unwrap_or_else(|| masters.addrs[i % masters.addrs.len()].clone());
        let last_err = match connect(&masters.tls, &addr).await {
            Ok(c) => match f(c).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(st) => match refusal(&st) {
                    Refusal::Fail(e) => anyhow::bail!(e),
                    Refusal::Redirect(leader) => {
                        next = Some(leader);
                        continue;
                    }
                    Refusal::Retry => anyhow::anyhow!("{addr}: {}", st.message()),
                },
            },
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(last_err.context("no master leader answered within 30 s"));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Run one ctl command, printing its result.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    if let CtlCommand::Certs { cmd } = &args.cmd {
        return certs(cmd);
    }
    let out = if let CtlCommand::Rebuild { chunkservers, out } = &args.cmd {
        crate::rebuild::rebuild(&args.tls.load()?, chunkservers, out).await?
    } else {
        anyhow::ensure!(!args.masters.is_empty(), "--masters is empty");
        let masters = Masters::new(args.masters.clone(), args.tls.load()?);
        execute(&args, &masters).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_human(&args.cmd, &out);
    }
    Ok(())
}

/// Run one ctl command against the masters `args.masters`; its result as JSON.
async fn execute(args: &CtlArgs, m: &Masters) -> anyhow::Result<Value> {
    match &args.cmd {
        CtlCommand::Status => {
            let mut v = status(m).await?;
            v["usage"] = usage(m).await?;
            Ok(v)
        }
        CtlCommand::Members { cmd } => members(m, cmd).await,
        CtlCommand::Leader { cmd } => leader(m, cmd).await,
        CtlCommand::Chunkservers { cmd } => chunkservers(m, cmd).await,
        CtlCommand::Keys { cmd } => keys(m, cmd).await,
        CtlCommand::Buckets { cmd } => buckets(m, cmd).await,
        CtlCommand::Users { cmd } => users(m, cmd).await,
        CtlCommand::Notify { cmd } => notify(m, cmd).await,
        CtlCommand::Backup { dir } => backup(m, dir).await,
        CtlCommand::Certs { .. } | CtlCommand::Rebuild { .. } => {
            anyhow::bail!("certs and rebuild call no master")
        }
    }
}

/// `anode ctl backup DIR`: stream the leader's pinned snapshot into DIR (see
/// [`crate::backup`]); the JSON answer is the manifest plus the time taken.
pub async fn backup(m: &Masters, dir: &std::path::Path) -> anyhow::Result<Value> {
    use crate::backup::BackupWriter;
    use tokio_stream::StreamExt as _;
    let t0 = Instant::now();
    let mut w = BackupWriter::create(dir)?;
    let mut stream = call_leader(m, |mut c| async move { c.backup(BackupRequest {}).await })
        .await
        .context("start the backup on the leader")?;
    let mut trailer = None;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|st| anyhow::anyhow!("backup stream: {}", st.message()))?;
        if let Some(h) = piece.header {
            w.header(h)?;
        }
        if !piece.records.is_empty() {
            w.records(&piece.records)?;
        }
        if let Some(t) = piece.trailer {
            trailer = Some(t);
            break;
        }
    }
    let t = trailer.context("the backup stream ended without its trailer; nothing was kept")?;
    let written = tokio::task::spawn_blocking(move || w.finish(t.records, t.checksum))
        .await
        .context("backup writer")??;
    let mut v = serde_json::to_value(&written.manifest)?;
    v["dir"] = json!(dir.display().to_string());
    v["pieces"] = json!(written.pieces);
    v["seconds"] = json!(t0.elapsed().as_secs_f64());
    Ok(v)
}

/// `anode ctl certs ...`: local files only.
fn certs(cmd: &CertsCmd) -> anyhow::Result<()> {
    match cmd {
        CertsCmd::Init { dir } => {
            anode_tls::certs::init_ca(dir)?;
            println!(
                "created CA {}/ca.crt and {}/ca.key (keep ca.key offline)",
                dir.display(),
                dir.display()
            );
        }
        CertsCmd::Issue {
            ca,
            role,
            id,
            out,
            sans,
            days,
        } => {
            let role = anode_tls::Role::parse(role).with_context(|| {
                format!("unknown role {role:?} (master, chunkserver, gateway, client, admin)")
            })?;
            let identity = anode_tls::PeerIdentity::new(role, id)?;
            anode_tls::certs::issue(&anode_tls::certs::IssueRequest {
                ca_dir: ca.clone(),
                identity: identity.clone(),
                extra_sans: sans.clone(),
                days: *days,
                out: out.clone(),
            })?;
            println!(
                "issued {identity} in {} (pass --certs-dir {})",
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}

async fn members(m: &Masters, cmd: &MembersCmd) -> anyhow::Result<Value> {
    match cmd {
        MembersCmd::List => status(m).await,
        MembersCmd::Add { id, addr } => {
            let (id, addr) = (*id, addr.clone());
            call_leader(m, |mut c| {
                let addr = addr.clone();
                async move { c.add_member(AddMemberRequest { id, addr }).await }
            })
            .await?;
            Ok(json!({"added": id}))
        }
        MembersCmd::Remove { id } => {
            let id = *id;
            call_leader(m, |mut c| async move {
                c.remove_member(RemoveMemberRequest { id }).await
            })
            .await?;
            Ok(json!({"removed": id}))
        }
    }
}

async fn leader(m: &Masters, cmd: &LeaderCmd) -> anyhow::Result<Value> {
    match cmd {
        LeaderCmd::Transfer { id } => {
            let id = *id;
            call_leader(m, |mut c| async move {
                c.transfer_leader(TransferLeaderRequest { id }).await
            })
            .await?;
            Ok(json!({"leader": id}))
        }
    }
}

async fn chunkservers(m: &Masters, cmd: &ChunkserversCmd) -> anyhow::Result<Value> {
    match cmd {
        ChunkserversCmd::List => {
            let st = status(m).await?;
            Ok(st["chunkservers"].clone())
        }
        ChunkserversCmd::Drain { id, cancel, wait } => drain(m, *id, *cancel, *wait).await,
    }
}

/// Mark chunkserver `id` draining (or not, with `cancel`); with `wait`, print progress until it
/// is safe to remove.
async fn drain(m: &Masters, id: u64, cancel: bool, wait: bool) -> anyhow::Result<Value> {
    let session = one_write_session();
    call_leader(m, |mut c| {
        let session = session.clone();
        async move {
            c.drain_chunkserver(DrainChunkserverRequest {
                id,
                cancel,
                session: Some(session),
            })
            .await
        }
    })
    .await?;
    if wait && !cancel {
        loop {
            let st = status(m).await?;
            let cs = chunkserver_in(&st, id).unwrap_or_default();
            eprintln!(
                "draining {id}: {} copies left on it, {} chunks under-replicated, {} B/s",
                cs["reported_chunks"], st["under_replicated_chunks"], st["repair_bytes_per_sec"]
            );
            if cs["safe_to_remove"] == true {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let safe = if cancel {
        false
    } else {
        let st = status(m).await?;
        chunkserver_in(&st, id).is_some_and(|c| c["safe_to_remove"] == true)
    };
    Ok(json!({"id": id, "draining": !cancel, "safe_to_remove": safe}))
}

/// The client session of `anode ctl`'s one write: a fresh client id, write 1. Every retry of
/// the write (after a leader change) carries it, so it applies once (docs/architecture.md,
/// "Client sessions").
fn one_write_session() -> ClientSession {
    ClientSession {
        client_id: rand::random::<[u8; 16]>().to_vec(),
        seq: 1,
        first_unanswered: 1,
    }
}

/// Chunkserver `id`'s entry in a `status` answer.
fn chunkserver_in(status: &Value, id: u64) -> Option<Value> {
    status["chunkservers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id).cloned())
}

async fn notify(m: &Masters, cmd: &NotifyCmd) -> anyhow::Result<Value> {
    match cmd {
        NotifyCmd::TargetAdd {
            name,
            url,
            authorization,
        } => {
            let req = SetNotificationTargetRequest {
                name: name.clone(),
                target: Some(NotificationTarget {
                    name: name.clone(),
                    url: url.clone(),
                    authorization: authorization.clone(),
                    ..Default::default()
                }),
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_notification_target(req).await }
            })
            .await?;
            Ok(json!({"target": name, "url": url, "arn": format!("arn:anode:sqs::{name}")}))
        }
        NotifyCmd::TargetRm { name } => {
            let req = SetNotificationTargetRequest {
                name: name.clone(),
                target: None,
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_notification_target(req).await }
            })
            .await?;
            Ok(json!({"removed": name}))
        }
        NotifyCmd::Targets => {
            let r = call_leader(m, |mut c| async move {
                c.list_notification_targets(ListNotificationTargetsRequest {})
                    .await
            })
            .await?;
            Ok(Value::Array(r.targets.iter().map(target_json).collect()))
        }
    }
}

/// One target's row (`notify targets`); the authorization value is not shown.
fn target_json(s: &NotificationTargetStatus) -> Value {
    let t = s.target.clone().unwrap_or_default();
    json!({"name": t.name, "url": t.url, "arn": format!("arn:anode:sqs::{}", t.name),
        "authorization": !t.authorization.is_empty(), "created_ms": t.created_ms,
        "queued": s.queued, "dropped": s.dropped, "oldest_id": s.oldest_id})
}

async fn keys(m: &Masters, cmd: &KeysCmd) -> anyhow::Result<Value> {
    match cmd {
        KeysCmd::Create {
            name,
            access_key,
            secret_key,
            user,
            expires_in,
        } => {
            let req = CreateKeyRequest {
                name: name.clone(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                user: user.clone(),
                expires_ms: expires_in.map_or(0, |d| anode_common::now_ms().saturating_add(d)),
                session: Some(one_write_session()),
            };
            let r = call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.create_key(req).await }
            })
            .await?;
            let k = r.key.unwrap_or_default();
            Ok(
                json!({"access_key": k.access_key, "secret_key": k.secret_key, "name": k.name,
                    "user": k.user, "expires_ms": k.expires_ms}),
            )
        }
        KeysCmd::List => {
            let r = call_leader(
                m,
                |mut c| async move { c.list_keys(ListKeysRequest {}).await },
            )
            .await?;
            Ok(Value::Array(
                r.keys.iter().map(|k| json!({"access_key": k.access_key, "name": k.name, "created_ms": k.created_ms,
                    "user": k.user, "disabled": k.disabled, "expires_ms": k.expires_ms})).collect(),
            ))
        }
        KeysCmd::Delete { access_key } => {
            let req = DeleteKeyRequest {
                access_key: access_key.clone(),
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.delete_key(req).await }
            })
            .await?;
            Ok(json!({"deleted": access_key}))
        }
        KeysCmd::Disable { access_key } | KeysCmd::Enable { access_key } => {
            let disabled = matches!(cmd, KeysCmd::Disable { .. });
            let req = SetKeyDisabledRequest {
                access_key: access_key.clone(),
                disabled,
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_key_disabled(req).await }
            })
            .await?;
            Ok(json!({"access_key": access_key, "disabled": disabled}))
        }
    }
}

fn usage_json(u: Option<&Usage>) -> Value {
    let u = u.cloned().unwrap_or_default();
    json!({"objects": u.objects, "bytes": u.bytes})
}

fn user_json(u: &User, usage: Option<&Usage>) -> Value {
    json!({"name": u.name, "admin": u.admin, "created_ms": u.created_ms,
        "quota_bytes": u.quota_bytes, "quota_objects": u.quota_objects, "usage": usage_json(usage)})
}

pub(crate) fn bucket_json(b: &BucketConfig, usage: Option<&Usage>) -> Value {
    json!({"name": b.name, "replication": b.replication, "created_ms": b.created_ms,
        "owner": b.owner_user, "quota_bytes": b.quota_bytes, "quota_objects": b.quota_objects,
        "usage": usage_json(usage)})
}

/// Usage per bucket and per user (for `status`).
async fn usage(m: &Masters) -> anyhow::Result<Value> {
    let b = call_leader(m, |mut c| async move {
        c.list_buckets(ListBucketsRequest {}).await
    })
    .await?;
    let u = call_leader(
        m,
        |mut c| async move { c.list_users(ListUsersRequest {}).await },
    )
    .await?;
    let buckets: Vec<Value> = b
        .buckets
        .iter()
        .enumerate()
        .map(|(i, bc)| bucket_json(bc, b.usage.get(i)))
        .collect();
    let users: Vec<Value> = u
        .users
        .iter()
        .filter_map(|s| Some(user_json(s.user.as_ref()?, s.usage.as_ref())))
        .collect();
    Ok(json!({"buckets": buckets, "users": users}))
}

async fn users(m: &Masters, cmd: &UsersCmd) -> anyhow::Result<Value> {
    match cmd {
        UsersCmd::Create { name, admin } => {
            let req = CreateUserRequest {
                name: name.clone(),
                admin: *admin,
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.create_user(req).await }
            })
            .await?;
            Ok(json!({"created": name, "admin": admin}))
        }
        UsersCmd::List => {
            let r = call_leader(
                m,
                |mut c| async move { c.list_users(ListUsersRequest {}).await },
            )
            .await?;
            Ok(Value::Array(
                r.users
                    .iter()
                    .filter_map(|s| Some(user_json(s.user.as_ref()?, s.usage.as_ref())))
                    .collect(),
            ))
        }
        UsersCmd::Delete { name } => {
            let req = DeleteUserRequest {
                name: name.clone(),
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.delete_user(req).await }
            })
            .await?;
            Ok(json!({"deleted": name}))
        }
        UsersCmd::Quota {
            name,
            max_bytes,
            max_objects,
        } => {
            let req = SetUserQuotaRequest {
                name: name.clone(),
                quota_bytes: *max_bytes,
                quota_objects: *max_objects,
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_user_quota(req).await }
            })
            .await?;
            Ok(json!({"user": name, "quota_bytes": max_bytes, "quota_objects": max_objects}))
        }
    }
}

async fn buckets(m: &Masters, cmd: &BucketsCmd) -> anyhow::Result<Value> {
    match cmd {
        BucketsCmd::List => {
            let r = call_leader(m, |mut c| async move {
                c.list_buckets(ListBucketsRequest {}).await
            })
            .await?;
            Ok(Value::Array(
                r.buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| bucket_json(b, r.usage.get(i)))
                    .collect(),
            ))
        }
        BucketsCmd::Create { name, replication } => {
            let req = CreateBucketRequest {
                name: name.clone(),
                replication: *replication,
                owner_access_key: String::new(),
                owner_user: String::new(),
                access: Vec::new(),
                session: Some(one_write_session()),
                ..Default::default()
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.create_bucket(req).await }
            })
            .await?;
            Ok(json!({"created": name}))
        }
        BucketsCmd::Delete { name } => {
            let req = DeleteBucketRequest {
                name: name.clone(),
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.delete_bucket(req).await }
            })
            .await?;
            Ok(json!({"deleted": name}))
        }
        BucketsCmd::Quota {
            name,
            max_bytes,
            max_objects,
        } => {
            let req = SetBucketQuotaRequest {
                name: name.clone(),
                quota_bytes: *max_bytes,
                quota_objects: *max_objects,
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_bucket_quota(req).await }
            })
            .await?;
            Ok(json!({"bucket": name, "quota_bytes": max_bytes, "quota_objects": max_objects}))
        }
        BucketsCmd::Access {
            cmd: BucketAccessCmd::Get { name },
        } => access_json(&get_bucket(m, name).await?),
        BucketsCmd::Policy { cmd } => {
            let (name, text) = match cmd {
                BucketPolicyCmd::Set { name, file } => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("read {}", file.display()))?;
                    (name, Some(text))
                }
                BucketPolicyCmd::Delete { name } => (name, None),
            };
            let b = get_bucket(m, name).await?;
            let access = with_policy(&b, text.as_deref())?;
            let req = SetBucketAccessRequest {
                name: name.clone(),
                access,
                expect_access: Some(b.access.clone()),
                session: Some(one_write_session()),
            };
            call_leader(m, |mut c| {
                let req = req.clone();
                async move { c.set_bucket_access(req).await }
            })
            .await
            .context("the access configuration may have changed meanwhile: run again")?;
            Ok(json!({"bucket": name, "policy": if text.is_some() { "set" } else { "deleted" }}))
        }
    }
}

async fn get_bucket(m: &Masters, name: &str) -> anyhow::Result<BucketConfig> {
    let req = GetBucketRequest {
        name: name.to_string(),
    };
    let r = call_leader(m, |mut c| {
        let req = req.clone();
        async move { c.get_bucket(req).await }
    })
    .await?;
    r.config
        .ok_or_else(|| anyhow::anyhow!("GetBucket answered without a config"))
}

/// Pure: bucket `b`'s access record as `buckets access get` prints it (the default record of
/// its owner when none was set: `"default": true`).
fn access_json(b: &BucketConfig) -> anyhow::Result<Value> {
    use anode_meta::authz::BucketAccessRecord;
    let rec = BucketAccessRecord::load(&b.access, &b.owner_user)
        .with_context(|| format!("bucket {}", b.name))?;
    let policy = match &rec.policy {
        None => Value::Null,
        // The text as stored; shown as JSON when it is (the state machine parsed it).
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
    };
    let grants: Vec<Value> = rec
        .acl
        .grants
        .iter()
        .map(|g| {
            let grantee = match &g.grantee {
                anode_meta::authz::Grantee::CanonicalUser { id } => json!({"canonical_user": id}),
                group => json!({"group": group.group_uri()}),
            };
            json!({"grantee": grantee, "permission": g.permission.as_str()})
        })
        .collect();
    let pab = rec.public_access_block;
    Ok(json!({
        "bucket": b.name,
        "owner": b.owner_user,
        "default": b.access.is_empty(),
        "policy": policy,
        "acl": {"owner": rec.acl.owner, "grants": grants},
        "object_ownership": rec.object_ownership.as_str(),
        "public_access_block": {
            "block_public_acls": pab.block_public_acls,
            "ignore_public_acls": pab.ignore_public_acls,
            "block_public_policy": pab.block_public_policy,
            "restrict_public_buckets": pab.restrict_public_buckets,
        },
    }))
}

/// Pure: the access record of bucket `b` with its policy replaced by `policy` (`None`:
/// removed), the rest kept. A policy must parse as a policy of this bucket and pass the
/// bucket's BlockPublicPolicy setting, as S3's PutBucketPolicy requires; removing one is
/// always allowed. A record equal to the owner's default is stored as empty bytes.
fn with_policy(b: &BucketConfig, policy: Option<&str>) -> anyhow::Result<Vec<u8>> {
    use anode_meta::authz::{check_put_policy, BucketAccessRecord, Policy};
    let mut rec = BucketAccessRecord::load(&b.access, &b.owner_user)
        .with_context(|| format!("bucket {}", b.name))?;
    rec.policy = match policy {
        None => None,
        Some(text) => {
            let parsed = Policy::parse(text, &b.name).context("MalformedPolicy")?;
            check_put_policy(&rec.public_access_block, &parsed)?;
            Some(text.to_string())
        }
    };
    if rec == BucketAccessRecord::default_for(&b.owner_user) {
        return Ok(Vec::new());
    }
    Ok(rec.encode())
}

/// Ask every reachable master for its status; the leader's answer is the base, each member's
/// own answer supplies its applied index.
pub async fn status(masters: &Masters) -> anyhow::Result<Value> {
    let mut answers: BTreeMap<u64, StatusResponse> = BTreeMap::new();
    let mut to_ask: Vec<String> = masters.addrs.clone();
    let mut asked: Vec<String> = Vec::new();
    while let Some(addr) = to_ask.pop() {
        if asked.contains(&addr) {
            continue;
        }
        asked.push(addr.clone());
        // One bound over connect, TLS handshake and call: a stopped master (SIGSTOP) accepts
        // the TCP connection in its kernel backlog and then never answers the handshake,
        // which `connect_timeout` (TCP only) does not cover.
        let ask = async {
            let mut c = connect(&masters.tls, &addr).await?;
            anyhow::Ok(c.status(StatusRequest {}).await?)
        };
        let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(3), ask).await else {
            continue;
        };
        let r = r.into_inner();
        for mem in &r.members {
            if !mem.addr.is_empty() && !asked.contains(&mem.addr) {
                to_ask.push(mem.addr.clone());
            }
        }
        answers.insert(r.id, r);
    }
    anyhow::ensure!(
        !answers.is_empty(),
        "no master answered at {}",
        masters.addrs.join(",")
    );
    Ok(merge_status(&answers))
}

/// Merge per-member status answers into one report (pure).
pub fn merge_status(answers: &BTreeMap<u64, StatusResponse>) -> Value {
    let leader = answers
        .values()
        .find(|a| a.leader_id == a.id && a.leader_id != 0);
    let base = leader
        .or_else(|| answers.values().max_by_key(|a| (a.term, a.applied_index)))
        .expect("non-empty");
    let members: Vec<Value> = base
        .members
        .iter()
        .map(|mem| {
            let own = answers.get(&mem.id);
            json!({
                "id": mem.id,
                "addr": mem.addr,
                "role": own.and_then(|o| o.members.iter().find(|x| x.id == mem.id)).map(|x| x.role.clone()).unwrap_or_else(|| mem.role.clone()),
                "applied_index": own.map(|o| o.applied_index).unwrap_or(0),
                "commit_index": own.map(|o| o.commit_index).unwrap_or(0),
                "match_index": mem.match_index,
                "lag": mem.lag,
                "reachable": own.is_some(),
                "admin_addr": own.map(|o| o.admin_addr.clone()).unwrap_or_default(),
            })
        })
        .collect();
    let chunkservers: Vec<Value> = base
        .chunkservers
        .iter()
        .map(|c| json!({"id": c.id, "addr": c.addr, "state": c.state, "used_bytes": c.used_bytes, "capacity_bytes": c.capacity_bytes, "chunks": c.chunks, "rack": c.rack, "epoch": c.epoch, "reported_chunks": c.reported_chunks, "safe_to_remove": c.safe_to_remove}))
        .collect();
    json!({
        "leader_id": leader.map(|l| l.id).unwrap_or(0),
        "term": base.term,
        "commit_index": base.commit_index,
        "last_index": base.last_index,
        "members": members,
        "chunkservers": chunkservers,
        "under_replicated_chunks": base.under_replicated_chunks,
        "missing_copies": base.missing_copies,
        "missing_bytes": base.missing_bytes,
        "lost_chunks": base.lost_chunks,
        "tasks_in_flight": base.tasks_in_flight,
        "repair_bytes_per_sec": base.repair_bytes_per_sec,
        "eta_secs": base.eta_secs,
        "locations_complete": base.locations_complete,
        "garbage_chunks": base.garbage_chunks,
        "rebalance_bytes_pending": base.rebalance_bytes_pending,
        "buckets": base.buckets,
        "objects": base.objects,
        "chunks": base.chunks,
        "logical_bytes": base.logical_bytes,
        "stored_bytes": base.stored_bytes,
        "lifecycle": base.lifecycle.iter().map(lifecycle_json).collect::<Vec<Value>>(),
    })
}

/// One bucket's lifecycle pass in `anode ctl status`: `state` is `not_started`, `running`
/// (`phase` `versions` or `uploads`, resuming after `after_key`) or `done` (at
/// `last_pass_done_ms`).
fn lifecycle_json(s: &BucketLifecycleStatus) -> Value {
    let p = s.progress.clone().unwrap_or_default();
    let state = if p.pass_done {
        "done"
    } else if p.pass_started_ms == 0 {
        "not_started"
    } else {
        "running"
    };
    json!({
        "bucket": s.bucket,
        "state": state,
        "phase": if p.phase == 0 { "versions" } else { "uploads" },
        "after_key": p.after_key,
        "pass_started_ms": p.pass_started_ms,
        "last_pass_done_ms": p.last_pass_done_ms,
        "passes": p.passes,
        "expired": p.expired,
        "noncurrent_deleted": p.noncurrent_deleted,
        "markers_removed": p.markers_removed,
        "uploads_aborted": p.uploads_aborted,
    })
}

/// The human line of one bucket's lifecycle pass.
fn lifecycle_line(l: &Value) -> String {
    let when = match l["state"].as_str() {
        Some("done") => format!("done at {} ms", l["last_pass_done_ms"]),
        Some("running") => format!(
            "running since {} ms, {} after {:?}",
            l["pass_started_ms"],
            l["phase"].as_str().unwrap_or(""),
            l["after_key"].as_str().unwrap_or("")
        ),
        _ => "not started".to_string(),
    };
    format!(
        "lifecycle {}: {}; passes {}, expired {}, noncurrent deleted {}, markers removed {}, uploads aborted {}",
        l["bucket"].as_str().unwrap_or(""),
        when,
        l["passes"],
        l["expired"],
        l["noncurrent_deleted"],
        l["markers_removed"],
        l["uploads_aborted"]
    )
}

fn print_human(cmd: &CtlCommand, v: &Value) {
    match cmd {
        CtlCommand::Notify {
            cmd: NotifyCmd::Targets,
        } => {
            println!(
                "{:<20} {:>8} {:>8} {:<22} URL",
                "NAME", "QUEUED", "DROPPED", "NEXT"
            );
            for t in v.as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:>8} {:>8} {:<22} {}",
                    t["name"].as_str().unwrap_or(""),
                    t["queued"].to_string(),
                    t["dropped"].to_string(),
                    t["oldest_id"].as_str().unwrap_or(""),
                    t["url"].as_str().unwrap_or("")
                );
            }
        }
        CtlCommand::Status
        | CtlCommand::Members {
            cmd: MembersCmd::List,
        } => {
            println!(
                "leader {}  term {}  commit {}  last {}",
                v["leader_id"], v["term"], v["commit_index"], v["last_index"]
            );
            println!(
                "{:>4}  {:<22} {:<10} {:>10} {:>10} {:>6}",
                "ID", "ADDR", "ROLE", "APPLIED", "MATCH", "LAG"
            );
            for m in v["members"].as_array().into_iter().flatten() {
                println!(
                    "{:>4}  {:<22} {:<10} {:>10} {:>10} {:>6}",
                    m["id"].to_string(),
                    m["addr"].as_str().unwrap_or(""),
                    m["role"].as_str().unwrap_or(""),
                    m["applied_index"].to_string(),
                    m["match_index"].to_string(),
                    m["lag"].to_string()
                );
            }
            if matches!(cmd, CtlCommand::Status) {
                print_chunkservers(&v["chunkservers"]);
                println!(
                    "buckets {}  objects {}  chunks {}  logical {} B  stored {} B",
                    v["buckets"], v["objects"], v["chunks"], v["logical_bytes"], v["stored_bytes"]
                );
                println!(
                    "health: under-replicated {} chunks ({} copies, {} B missing), lost {}, tasks in flight {}, repair {} B/s, eta {} s, garbage {}, rebalance pending {} B{}",
                    v["under_replicated_chunks"], v["missing_copies"], v["missing_bytes"], v["lost_chunks"],
                    v["tasks_in_flight"], v["repair_bytes_per_sec"], v["eta_secs"], v["garbage_chunks"],
                    v["rebalance_bytes_pending"],
                    if v["locations_complete"] == true { "" } else { "  (waiting for chunk reports)" }
                );
                for l in v["lifecycle"].as_array().into_iter().flatten() {
                    println!("{}", lifecycle_line(l));
                }
            }
        }
        CtlCommand::Chunkservers {
            cmd: ChunkserversCmd::List,
        } => print_chunkservers(v),
        CtlCommand::Backup { .. } => println!(
            "backup of raft index {} (term {}) written to {}: {} records, {} B, sha256 {}, {:.1} s",
            v["raft_index"],
            v["raft_term"],
            v["dir"].as_str().unwrap_or(""),
            v["records"],
            v["payload_bytes"],
            v["payload_sha256"].as_str().unwrap_or(""),
            v["seconds"].as_f64().unwrap_or(0.0)
        ),
        CtlCommand::Rebuild { .. } => {
            for s in v["skipped"].as_array().into_iter().flatten() {
                println!(
                    "skipped export {} on {}: {}",
                    s["export"].as_str().unwrap_or(""),
                    s["chunkserver"].as_str().unwrap_or(""),
                    s["error"].as_str().unwrap_or("")
                );
            }
            for s in v["unreachable"].as_array().into_iter().flatten() {
                println!(
                    "chunkserver {} did not answer: {}",
                    s["chunkserver"].as_str().unwrap_or(""),
                    s["error"].as_str().unwrap_or("")
                );
            }
            println!(
                "rebuilt from export {} on {} ({} copies listed): raft index {} (term {}), taken {:.0} s ago \
                 (objects committed after it are not in the rebuilt namespace), {} records, {} B, sha256 {}; \
                 written to {} in {:.1} s. Start the new group with `anode master --restore {}`.",
                v["export"].as_str().unwrap_or(""),
                v["source"].as_str().unwrap_or(""),
                v["copies_listed"],
                v["raft_index"],
                v["raft_term"],
                v["age_secs"].as_f64().unwrap_or(0.0),
                v["records"],
                v["payload_bytes"],
                v["payload_sha256"].as_str().unwrap_or(""),
                v["dir"].as_str().unwrap_or(""),
                v["seconds"].as_f64().unwrap_or(0.0),
                v["dir"].as_str().unwrap_or(""),
            );
        }
        _ => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

fn print_chunkservers(v: &Value) {
    println!(
        "{:>4}  {:<22} {:<9} {:>14} {:>14} {:>8}  RACK",
        "ID", "ADDR", "STATE", "USED", "CAPACITY", "CHUNKS"
    );
    for c in v.as_array().into_iter().flatten() {
        println!(
            "{:>4}  {:<22} {:<9} {:>14} {:>14} {:>8}  {}",
            c["id"].to_string(),
            c["addr"].as_str().unwrap_or(""),
            c["state"].as_str().unwrap_or(""),
            c["used_bytes"].to_string(),
            c["capacity_bytes"].to_string(),
            c["chunks"].to_string(),
            c["rack"].as_str().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_status_names_the_pass_state() {
        let st = |p: LifecycleProgress| BucketLifecycleStatus {
            bucket: "logs".into(),
            progress: Some(p),
        };
        let v = lifecycle_json(&st(LifecycleProgress::default()));
        assert_eq!(v["state"], "not_started");
        let v = lifecycle_json(&st(LifecycleProgress {
            pass_started_ms: 1000,
            phase: 0,
            after_key: "tmp/b".into(),
            expired: 4,
            ..Default::default()
        }));
        assert_eq!(v["state"], "running");
        assert_eq!(v["after_key"], "tmp/b");
        assert_eq!(v["expired"], 4);
        assert!(lifecycle_line(&v).contains(r#"versions after "tmp/b""#));
        let v = lifecycle_json(&st(LifecycleProgress {
            pass_started_ms: 1000,
            pass_done: true,
            last_pass_done_ms: 2500,
            passes: 3,
            ..Default::default()
        }));
        assert_eq!(v["state"], "done");
        assert!(lifecycle_line(&v).starts_with("lifecycle logs: done at 2500 ms; passes 3"));
        let mut answers = BTreeMap::new();
        answers.insert(
            1,
            StatusResponse {
                id: 1,
                leader_id: 1,
                lifecycle: vec![st(LifecycleProgress::default())],
                ..Default::default()
            },
        );
        assert_eq!(merge_status(&answers)["lifecycle"][0]["bucket"], "logs");
    }

    #[test]
    fn refusals_follow_the_detail() {
        let not_leader = |addr: &str| {
            ErrorDetail::new(ErrorCode::NotLeader, "not the leader")
                .with_leader(2, addr)
                .to_status()
        };
        let table = [
            (
                not_leader("10.0.0.2:7001"),
                Refusal::Redirect("10.0.0.2:7001".into()),
            ),
            (not_leader(""), Refusal::Retry),
            (
                ErrorDetail::new(ErrorCode::Busy, "busy").to_status(),
                Refusal::Retry,
            ),
            (
                tonic::Status::unavailable("connection refused"),
                Refusal::Retry,
            ),
            (
                ErrorDetail::new(ErrorCode::WouldLoseQuorum, "removing 3 would lose quorum")
                    .to_status(),
                Refusal::Fail("WouldLoseQuorum: removing 3 would lose quorum".into()),
            ),
            (
                ErrorDetail::new(ErrorCode::NotMember, "9 is not a member").to_status(),
                Refusal::Fail("NotMember: 9 is not a member".into()),
            ),
        ];
        for (status, want) in table {
            assert_eq!(refusal(&status), want, "{status:?}");
        }
    }

    fn policy(bucket: &str, principal: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        )
    }

    #[test]
    fn policy_edits_keep_the_rest_of_the_record() {
        use anode_meta::authz::{canonical_id, BucketAccessRecord, CannedAcl, PublicAccessBlock};
        let mut b = BucketConfig {
            name: "photos".into(),
            owner_user: "alice".into(),
            ..Default::default()
        };
        // Set on a bucket with the default record, then delete: back to empty bytes.
        let public = policy("photos", r#""*""#);
        let set = with_policy(&b, Some(&public)).unwrap();
        let rec = BucketAccessRecord::decode(&set).unwrap();
        assert_eq!(rec.policy.as_deref(), Some(public.as_str()));
        assert_eq!(rec.acl, BucketAccessRecord::default_for("alice").acl);
        b.access = set;
        assert_eq!(with_policy(&b, None).unwrap(), Vec::<u8>::new());
        // The ACL and PublicAccessBlock are kept; BlockPublicPolicy refuses a public policy
        // but not a private one, and never a removal.
        let mut rec = BucketAccessRecord::new_bucket(&canonical_id("alice"), CannedAcl::PublicRead);
        rec.public_access_block = PublicAccessBlock {
            block_public_policy: true,
            ..Default::default()
        };
        b.access = rec.encode();
        let err = with_policy(&b, Some(&public)).unwrap_err();
        assert!(err.to_string().contains("BlockPublicPolicy"), "{err:#}");
        let private = policy("photos", r#"{"AWS":"arn:aws:iam::anode:user/bob"}"#);
        let kept = BucketAccessRecord::decode(&with_policy(&b, Some(&private)).unwrap()).unwrap();
        assert_eq!(kept.acl, rec.acl);
        assert_eq!(kept.public_access_block, rec.public_access_block);
        assert_eq!(kept.policy.as_deref(), Some(private.as_str()));
        assert_eq!(with_policy(&b, None).unwrap(), rec.encode());
        // A policy of another bucket, or no JSON, is refused.
        let err = with_policy(&b, Some(&policy("other", r#""*""#))).unwrap_err();
        assert!(format!("{err:#}").contains("MalformedPolicy"), "{err:#}");
        assert!(with_policy(&b, Some("{")).is_err());
    }

    #[test]
    fn the_access_record_prints_decoded() {
        use anode_meta::authz::{canonical_id, BucketAccessRecord, CannedAcl};
        let mut b = BucketConfig {
            name: "photos".into(),
            owner_user: "alice".into(),
            ..Default::default()
        };
        let v = access_json(&b).unwrap();
        assert_eq!(v["default"], true);
        assert_eq!(v["policy"], Value::Null);
        assert_eq!(v["object_ownership"], "ObjectWriter");
        assert_eq!(v["acl"]["owner"], canonical_id("alice"));
        assert_eq!(
            v["acl"]["grants"],
            json!([{"grantee": {"canonical_user": canonical_id("alice")}, "permission": "FULL_CONTROL"}])
        );
        let mut rec = BucketAccessRecord::new_bucket(&canonical_id("alice"), CannedAcl::PublicRead);
        rec.policy = Some(policy("photos", r#""*""#));
        rec.public_access_block.ignore_public_acls = true;
        b.access = rec.encode();
        let v = access_json(&b).unwrap();
        assert_eq!(v["default"], false);
        assert_eq!(v["policy"]["Statement"][0]["Action"], "s3:GetObject");
        assert_eq!(
            v["acl"]["grants"][0],
            json!({"grantee": {"group": "http://acs.amazonaws.com/groups/global/AllUsers"}, "permission": "READ"})
        );
        assert_eq!(v["public_access_block"]["ignore_public_acls"], true);
        b.access = b"{".to_vec();
        assert!(access_json(&b).is_err());
    }

    #[test]
    fn durations_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_duration_ms("12h"), Ok(43_200_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        for bad in ["", "0s", "-1h", "1w", "h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }
}
