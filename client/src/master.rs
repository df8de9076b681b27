//! [`MasterConn`]: calls to the master group that follow the leader.
//!
//! Order of one [`MasterConn::call`]: try the last known leader (or the first master); on a
//! follower's redirect (error detail `NotLeader` with the leader's address) go there at once; on
//! UNAVAILABLE, a connect error, a timeout, `Busy` or `NotLeader` without an address back off
//! (jittered, 10 ms .. 500 ms) and try the next master; stop when the retry budget is spent. Any
//! other error code is a definite answer and returns at once (as [`ClientError::Remote`], or
//! the structured variant of its code). The policy itself is pure and lives in [`crate::retry`].
//!
//! A leader that stops answering (SIGSTOPped, its sockets still open) would cost every call the
//! whole attempt timeout, and callers that give up sooner (an S3 client with a 2 s timeout
//! dropping the gateway's request) would never move the hint at all. So when an attempt has
//! waited `probe_after` (and every quarter of it after that), a detached probe asks the other
//! masters who leads (`Leader`, answered without raft). If one of them leads in the highest term
//! seen, the hint moves there and every attempt still waiting on the old leader is redirected at
//! once.
//!
//! Writes go through [`MasterConn::write`]: an attempt whose answer is lost (the leader crashed
//! after the entry committed) is retried like any other, and the retry carries the same
//! [`ClientSession`] (this connection's random client id, the write's sequence number), so the
//! state machine answers it with the recorded result instead of applying it again
//! (docs/architecture.md, "Client sessions").

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anode_proto::master_client::MasterClient;
use anode_proto::{ClientSession, LeaderRequest};
use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::config::{DEFAULT_MASTER_PROBE_AFTER, DEFAULT_MASTER_RPC_TIMEOUT, DEFAULT_RETRY_BUDGET};
use crate::error::ClientError;
use crate::retry::{classify, Backoff, Disposition, WriteSessions};
use crate::trace::{Traced, TracedChannel};

/// Largest gRPC message accepted from or sent to a master (listings, manifests with inline data).
pub const MASTER_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Consecutive leader redirects followed without backing off.
const MAX_IMMEDIATE_REDIRECTS: u32 = 3;

/// Time bounds of a [`MasterConn`].
#[derive(Clone, Debug)]
pub struct MasterConnOptions {
    /// Bound on one attempt of one RPC (and on connecting).
    pub rpc_timeout: Duration,
    /// Total time one [`MasterConn::call`] spends retrying.
    pub retry_budget: Duration,
    /// An attempt unanswered this long makes the other masters be asked who leads (see the
    /// module docs).
    pub probe_after: Duration,
}

impl Default for MasterConnOptions {
    fn default() -> Self {
        MasterConnOptions {
            rpc_timeout: DEFAULT_MASTER_RPC_TIMEOUT,
            retry_budget: DEFAULT_RETRY_BUDGET,
            probe_after: DEFAULT_MASTER_PROBE_AFTER,
        }
    }
}

/// A handle on the master group: lazily connected, pooled channels per master, and the last known
/// leader. Cheap to clone; clones share channels and the leader hint.
#[derive(Clone)]
pub struct MasterConn {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<String>,
    tls: anode_tls::Tls,
    opts: MasterConnOptions,
    state: Mutex<State>,
    /// Bumped whenever the leader hint changes, so waiting attempts can follow it.
    hint_changed: tokio::sync::watch::Sender<u64>,
    /// The client session of this connection's writes.
    sessions: Mutex<WriteSessions>,
}

#[derive(Default)]
struct State {
    leader: Option<String>,
    channels: HashMap<String, Channel>,
    /// A leader probe is running (one at a time per connection).
    probing: bool,
}

/// One member's answer to `Leader`, as the probe weighs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderClaim {
    /// The address the probe called.
    pub addr: String,
    pub term: u64,
    pub is_leader: bool,
}

/// The member to follow after a probe: one that leads in the highest term any member reported,
/// other than `suspect` (the master that stopped answering). `None` keeps the current hint.
pub(crate) fn pick_leader(claims: &[LeaderClaim], suspect: &str) -> Option<String> {
    let top = claims.iter().map(|c| c.term).max()?;
    claims
        .iter()
        .find(|c| c.is_leader && c.term == top && c.addr != suspect)
        .map(|c| c.addr.clone())
}

impl std::fmt::Debug for MasterConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterConn")
            .field("addrs", &self.inner.addrs)
            .field("leader", &self.leader_hint())
            .finish()
    }
}

/// `host:port` -> `http://host:port`; addresses with a scheme are kept.
pub(crate) fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A lazily connecting channel to the server of `role` at `addr`, over `tls` (which checks the
/// server's certificate is of `role`); needs a tokio runtime.
pub(crate) fn lazy_channel(
    addr: &str,
    connect_timeout: Duration,
    tls: &anode_tls::Tls,
    role: anode_tls::Role,
) -> Result<Channel, ClientError> {
    let endpoint: Endpoint = tls
        .endpoint(addr, role)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(false);
    Ok(endpoint.connect_lazy())
}

impl MasterConn {
    /// A handle on the masters at `addrs` ("127.0.0.1:7001" style; `http://` is added), reached
    /// over `tls`, with the default time bounds. Connects lazily: nothing is dialed until the
    /// first call.
    pub fn new(addrs: Vec<String>, tls: anode_tls::Tls) -> Self {
        Self::with_options(addrs, MasterConnOptions::default(), tls)
    }

    /// Like [`MasterConn::new`] with explicit time bounds.
    pub fn with_options(addrs: Vec<String>, opts: MasterConnOptions, tls: anode_tls::Tls) -> Self {
        let mut norm: Vec<String> = Vec::new();
        for a in addrs.iter().flat_map(|a| a.split(',')) {
            let a = normalize_addr(a);
            if a != "http://" && !norm.contains(&a) {
                norm.push(a);
            }
        }
        MasterConn {
            inner: Arc::new(Inner {
                addrs: norm,
                tls,
                opts,
                state: Mutex::new(State::default()),
                hint_changed: tokio::sync::watch::Sender::new(0),
                sessions: Mutex::new(WriteSessions::new(rand::random())),
            }),
        }
    }

    /// The configured master addresses (normalized with `http://`).
    pub fn addrs(&self) -> &[String] {
        &self.inner.addrs
    }

    /// The last known leader (normalized address), if any.
    pub fn leader_hint(&self) -> Option<String> {
        self.inner.state.lock().leader.clone()
    }

    /// Call the leader: `f` gets a client on one master and issues one RPC; it is called again for
    /// every retry, so it must be able to rebuild its request. See the module docs for the order.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(MasterClient<TracedChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let addrs = &self.inner.addrs;
        if addrs.is_empty() {
            return Err(ClientError::InvalidArgument("no master addresses".into()));
        }
        let deadline = Instant::now() + self.inner.opts.retry_budget;
        let mut backoff = Backoff::default();
        let mut target = self.leader_hint().unwrap_or_else(|| addrs[0].clone());
        let mut next_idx = addrs.iter().position(|a| *a == target).map_or(0, |i| i + 1);
        let mut redirects = 0u32;
        loop {
            let err = match self.attempt(&target, &mut f).await {
                Ok(v) => {
                    self.set_leader(Some(&target));
                    return Ok(v);
                }
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Redirect(leader)) => {
                    let leader = normalize_addr(&leader);
                    self.set_leader(Some(&leader));
                    redirects += 1;
                    let fresh = leader != target;
                    target = leader;
                    if fresh && redirects <= MAX_IMMEDIATE_REDIRECTS {
                        continue;
                    }
                    ClientError::NoLeader
                }
                Err(Attempt::TryNext(e)) => {
                    self.forget_leader(&target);
                    target = addrs[next_idx % addrs.len()].clone();
                    next_idx += 1;
                    e
                }
            };
            let delay = backoff.next_delay(&mut rand::thread_rng());
            if Instant::now() + delay >= deadline {
                tracing::debug!(error = %err, "master retry budget spent");
                return Err(err);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Call the leader with a write: like [`MasterConn::call`], and `f` also gets the
    /// [`ClientSession`] to put into the request. Every attempt of this one logical write
    /// carries the same sequence number, so a retry of an attempt that was applied (its
    /// answer lost) is answered with the recorded result, not applied again.
    pub async fn write<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(MasterClient<TracedChannel>, ClientSession) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let write = OpenWrite::begin(&self.inner);
        self.call(|c| f(c, write.session())).await
    }

    /// [`MasterConn::write`] of a request that carries its client session in a `session`
    /// field ([`Sessioned`]): `req` is sent with this write's session on every attempt.
    pub async fn write_req<R, T, F, Fut>(&self, req: R, mut f: F) -> Result<T, ClientError>
    where
        R: Sessioned,
        F: FnMut(MasterClient<TracedChannel>, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.write(|c, session| f(c, req.clone().with_session(session)))
            .await
    }

    async fn attempt<T, F, Fut>(&self, target: &str, f: &mut F) -> Result<T, Attempt>
    where
        F: FnMut(MasterClient<TracedChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client(target).map_err(Attempt::TryNext)?;
        let timeout = self.inner.opts.rpc_timeout;
        let mut hint = self.inner.hint_changed.subscribe();
        let call = tokio::time::timeout(timeout, f(client));
        tokio::pin!(call);
        let probe_after = self.inner.opts.probe_after;
        let probe = tokio::time::sleep(probe_after);
        tokio::pin!(probe);
        let outcome = loop {
            tokio::select! {
                biased;
                outcome = &mut call => break outcome,
                _ = &mut probe => {
                    self.spawn_probe(target);
                    // Ask again while still waiting: the election may not be over yet.
                    probe.as_mut().reset(Instant::now() + probe_after / 4);
                }
                Ok(()) = hint.changed() => {
                    if let Some(leader) = self.leader_hint().filter(|l| l != target) {
                        tracing::debug!(from = target, to = %leader, "leader moved while waiting; redirecting");
                        return Err(Attempt::Redirect(leader));
                    }
                }
            }
        };
        match outcome {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(match classify(&status) {
                Disposition::Redirect(addr) => Attempt::Redirect(addr),
                Disposition::TryNext => Attempt::TryNext(retry_error(&status, target)),
                Disposition::Fail => Attempt::Fail(ClientError::from_status(&status)),
            }),
            Err(_) => Err(Attempt::TryNext(ClientError::Timeout(format!(
                "master {target} did not answer within {timeout:?}"
            )))),
        }
    }

    fn client(&self, addr: &str) -> Result<MasterClient<TracedChannel>, ClientError> {
        let channel = self.channel(addr)?;
        Ok(MasterClient::new(Traced(channel))
            .max_decoding_message_size(MASTER_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MASTER_MAX_MESSAGE_BYTES))
    }

    /// Ask every master but `suspect` who leads, in the background (it outlives the caller's
    /// call, which may be dropped), and move the hint if [`pick_leader`] names someone.
    fn spawn_probe(&self, suspect: &str) {
        {
            let mut state = self.inner.state.lock();
            if state.probing {
                return;
            }
            state.probing = true;
        }
        let conn = self.clone();
        let suspect = suspect.to_string();
        tokio::spawn(async move {
            let timeout = conn.inner.opts.rpc_timeout;
            let asks = conn
                .inner
                .addrs
                .iter()
                .filter(|a| **a != suspect)
                .map(|addr| {
                    let conn = conn.clone();
                    async move {
                        let mut c = conn.client(addr).ok()?;
                        let r = tokio::time::timeout(timeout, c.leader(LeaderRequest {}))
                            .await
                            .ok()?
                            .ok()?
                            .into_inner();
                        Some(LeaderClaim {
                            addr: addr.clone(),
                            term: r.term,
                            is_leader: r.is_leader,
                        })
                    }
                });
            let claims: Vec<LeaderClaim> = futures::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect();
            if let Some(leader) = pick_leader(&claims, &suspect) {
                tracing::info!(suspect = %suspect, leader = %leader, "master stopped answering; following the leader the others report");
                conn.set_leader(Some(&leader));
            }
            conn.inner.state.lock().probing = false;
        });
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut state = self.inner.state.lock();
        if let Some(ch) = state.channels.get(addr) {
            return Ok(ch.clone());
        }
        let ch = lazy_channel(
            addr,
            self.inner.opts.rpc_timeout,
            &self.inner.tls,
            anode_tls::Role::Master,
        )?;
        state.channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    fn set_leader(&self, addr: Option<&str>) {
        let mut state = self.inner.state.lock();
        if state.leader.as_deref() != addr {
            tracing::debug!(leader = ?addr, "master leader hint");
            state.leader = addr.map(str::to_string);
            self.inner.hint_changed.send_modify(|g| *g += 1);
        }
    }

    fn forget_leader(&self, addr: &str) {
        let mut state = self.inner.state.lock();
        if state.leader.as_deref() == Some(addr) {
            state.leader = None;
        }
    }
}

/// A logical write in progress: its sequence number stays open (and keeps the master's answer
/// for it) until this is dropped, whether the write finished or its caller gave up on it.
struct OpenWrite<'a> {
    inner: &'a Inner,
    seq: u64,
}

impl<'a> OpenWrite<'a> {
    fn begin(inner: &'a Inner) -> Self {
        let seq = inner.sessions.lock().begin();
        OpenWrite { inner, seq }
    }

    fn session(&self) -> ClientSession {
        self.inner.sessions.lock().session(self.seq)
    }
}

impl Drop for OpenWrite<'_> {
    fn drop(&mut self) {
        self.inner.sessions.lock().end(self.seq);
    }
}

/// The outcome of one failed attempt, as the driver acts on it.
enum Attempt {
    Redirect(String),
    TryNext(ClientError),
    Fail(ClientError),
}

/// The error to report if a retried failure turns out to be the last one.
fn retry_error(status: &tonic::Status, target: &str) -> ClientError {
    match ClientError::from_status(status) {
        ClientError::NoLeader => ClientError::NoLeader,
        ClientError::Status { code, message } => {
            ClientError::Unavailable(format!("master {target}: {code:?}: {message}"))
        }
        ClientError::Timeout(m) | ClientError::Unavailable(m) => {
            ClientError::Unavailable(format!("master {target}: {m}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_and_deduplicated() {
        let m = MasterConn::new(
            vec![
                "127.0.0.1:7001".into(),
                "http://127.0.0.1:7001".into(),
                "127.0.0.1:7002,127.0.0.1:7003".into(),
                "".into(),
            ],
            anode_tls::Tls::Insecure,
        );
        assert_eq!(
            m.addrs(),
            [
                "http://127.0.0.1:7001",
                "http://127.0.0.1:7002",
                "http://127.0.0.1:7003"
            ]
        );
        assert_eq!(m.leader_hint(), None);
    }

    #[test]
    fn probe_follows_a_leader_of_the_highest_term_only() {
        let claim = |addr: &str, term, is_leader| LeaderClaim {
            addr: addr.into(),
            term,
            is_leader,
        };
        // The others elected b in term 3 while a (suspect) was frozen.
        let claims = [claim("b", 3, true), claim("c", 3, false)];
        assert_eq!(pick_leader(&claims, "a"), Some("b".into()));
        // Nobody leads yet: keep waiting on the current hint.
        assert_eq!(
            pick_leader(&[claim("b", 3, false), claim("c", 3, false)], "a"),
            None
        );
        // A stale leader of an older term is not followed.
        assert_eq!(
            pick_leader(&[claim("b", 2, true), claim("c", 3, false)], "a"),
            None
        );
        // The suspect itself is never picked, and no answers means no move.
        assert_eq!(pick_leader(&[claim("a", 5, true)], "a"), None);
        assert_eq!(pick_leader(&[], "a"), None);
    }

    #[tokio::test]
    async fn unreachable_masters_exhaust_the_budget() {
        // Port 1 on loopback refuses connections; the call must give up within the budget.
        let m = MasterConn::with_options(
            vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            MasterConnOptions {
                rpc_timeout: Duration::from_millis(200),
                retry_budget: Duration::from_millis(300),
                probe_after: Duration::from_millis(100),
            },
            anode_tls::Tls::Insecure,
        );
        let start = std::time::Instant::now();
        let r = m
            .call(|mut c| async move { c.list_buckets(anode_proto::ListBucketsRequest {}).await })
            .await;
        let err = r.expect_err("nothing listens there");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    /// Chaos finding (test_scripts/sigstop.sh): a SIGSTOPped leader keeps its sockets open and
    /// never answers, and every S3 request waited the whole 10 s chunk-transfer timeout on it
    /// although a new leader was elected in ~1.3 s. Master calls are bounded by
    /// `master_rpc_timeout` (3 s by default) and then move on to the next master.
    #[tokio::test]
    async fn a_frozen_master_costs_one_master_timeout_not_the_transfer_timeout() {
        let frozen = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = frozen.local_addr().unwrap().to_string();
        // Accept and hold every connection without ever answering, like a stopped process
        // (whose kernel still completes handshakes).
        let held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = frozen.accept().await {
                socks.push(s);
            }
        });
        // With TLS on, the frozen master holds the handshake instead of the request.
        let certs = tempfile::tempdir().unwrap();
        let dirs = anode_tls::certs::ensure_layout(certs.path(), &[(anode_tls::Role::Client, "1")])
            .unwrap();
        let cfg = crate::ClientConfig {
            tls: Some(anode_tls::Tls::load(&dirs[0]).unwrap()),
            rpc_timeout: Duration::from_secs(60),
            master_rpc_timeout: Duration::from_millis(300),
            retry_budget: Duration::from_millis(800),
            ..Default::default()
        };
        let client = crate::Client::with_config(vec![addr], cfg).await.unwrap();
        let start = std::time::Instant::now();
        let err = client.list_buckets().await.expect_err("nobody answers");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "master call waited {:?}",
            start.elapsed()
        );
        assert!(crate::ClientConfig::default().master_rpc_timeout <= Duration::from_secs(3));
        held.abort();
    }
}

/// A master request with a client session field (`session = 15`), for
/// [`MasterConn::write_req`].
pub trait Sessioned: Clone {
    /// The request with `session` set.
    fn with_session(self, session: ClientSession) -> Self;
}

macro_rules! sessioned {
    ($($t:ty),* $(,)?) => {$(
        impl Sessioned for $t {
            fn with_session(mut self, session: ClientSession) -> Self {
                self.session = Some(session);
                self
            }
        }
    )*};
}

sessioned!(
    anode_proto::DeleteObjectRequest,
    anode_proto::DeleteObjectsRequest,
    anode_proto::SetBucketVersioningRequest,
    anode_proto::SetBucketObjectLockRequest,
    anode_proto::SetBucketLifecycleRequest,
    anode_proto::SetBucketCorsRequest,
    anode_proto::SetBucketNotificationRequest,
    anode_proto::SetObjectLockRequest,
    anode_proto::SetObjectTaggingRequest,
    anode_proto::SetBucketTaggingRequest,
    anode_proto::SetParquetIndexRequest,
    anode_proto::PutObjectRequest,
    anode_proto::PutPartRequest,
    anode_proto::CompleteMultipartRequest,
);
