//! Raft messages between masters over tonic.
//!
//! One task per peer drains a bounded queue, batches what is waiting into one `RaftBatch` and
//! sends it with a timeout. A full queue drops messages (raft retransmits); a failed send
//! reports the peer unreachable (and a failed snapshot as failed) to the node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anode_meta::access::{check_raft_batch, PeerIdentity, Role};
use anode_proto::raft_transport_client::RaftTransportClient;
use anode_proto::raft_transport_server::RaftTransport;
use anode_proto::{RaftAck, RaftBatch};
use parking_lot::Mutex;
use protobuf::Message as PbMessage;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;

use crate::node::{NodeHandle, Outbox};

/// Largest gRPC message between masters (snapshots travel as one message).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 1 << 30;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const PEER_QUEUE_BATCHES: usize = 1024;
const MAX_BATCH_MESSAGES: usize = 512;

struct Peer {
    addr: String,
    tx: mpsc::Sender<Vec<Message>>,
}

/// The gRPC outbox: per-peer sender tasks.
pub struct GrpcOutbox {
    from: u64,
    tls: anode_tls::Tls,
    from_addr: String,
    rt: tokio::runtime::Handle,
    peers: Mutex<BTreeMap<u64, Peer>>,
    node: Arc<OnceLock<NodeHandle>>,
}

impl GrpcOutbox {
    /// A new outbox spawning its tasks on `rt`. Call [`Self::set_node`] once the node exists.
    pub fn new(
        from: u64,
        from_addr: String,
        rt: tokio::runtime::Handle,
        tls: anode_tls::Tls,
    ) -> Arc<Self> {
        Arc::new(GrpcOutbox {
            from,
            tls,
            from_addr,
            rt,
            peers: Mutex::new(BTreeMap::new()),
            node: Arc::new(OnceLock::new()),
        })
    }

    /// Connect the outbox to the node it reports delivery failures to.
    pub fn set_node(&self, node: NodeHandle) {
        let _ = self.node.set(node);
    }

    fn queue_for(&self, to: u64, addr: &str) -> mpsc::Sender<Vec<Message>> {
        let mut peers = self.peers.lock();
        if let Some(p) = peers.get(&to) {
            if p.addr == addr && !p.tx.is_closed() {
                return p.tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_BATCHES);
        let task = PeerTask {
            from: self.from,
            tls: self.tls.clone(),
            from_addr: self.from_addr.clone(),
            to,
            addr: addr.to_string(),
            node: self.node.clone(),
        };
        self.rt.spawn(task.run(rx));
        peers.insert(
            to,
            Peer {
                addr: addr.to_string(),
                tx: tx.clone(),
            },
        );
        tx
    }
}

impl Outbox for GrpcOutbox {
    fn send(&self, msgs: Vec<Message>, members: &BTreeMap<u64, String>) {
        let mut by_peer: BTreeMap<u64, Vec<Message>> = BTreeMap::new();
        for m in msgs {
            by_peer.entry(m.to).or_default().push(m);
        }
        for (to, batch) in by_peer {
            let Some(addr) = members.get(&to) else {
                tracing::debug!(to, "no address for raft peer; dropping messages");
                continue;
            };
            let tx = self.queue_for(to, addr);
            if tx.try_send(batch).is_err() {
                tracing::debug!(to, "raft peer queue full; dropping messages");
            }
        }
    }
}

struct PeerTask {
    from: u64,
    tls: anode_tls::Tls,
    from_addr: String,
    to: u64,
    addr: String,
    node: Arc<OnceLock<NodeHandle>>,
}

impl PeerTask {
    async fn run(self, mut rx: mpsc::Receiver<Vec<Message>>) {
        let endpoint = match self.tls.endpoint(&self.addr, Role::Master) {
            Ok(e) => e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true),
            Err(e) => {
                tracing::warn!(addr = %self.addr, error = %e, "bad raft peer address");
                return;
            }
        };
        let mut client = RaftTransportClient::new(endpoint.connect_lazy())
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        while let Some(mut msgs) = rx.recv().await {
            while msgs.len() < MAX_BATCH_MESSAGES {
                match rx.try_recv() {
                    Ok(more) => msgs.extend(more),
                    Err(_) => break,
                }
            }
            self.deliver(&mut client, msgs).await;
        }
    }

    async fn deliver(
        &self,
        client: &mut RaftTransportClient<tonic::transport::Channel>,
        msgs: Vec<Message>,
    ) {
        let snapshots = msgs
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
            .count();
        let batch = RaftBatch {
            from: self.from,
            from_addr: self.from_addr.clone(),
            to: self.to,
            messages: msgs
                .iter()
                .filter_map(|m| m.write_to_bytes().ok())
                .collect(),
        };
        let ok = matches!(
            tokio::time::timeout(SEND_TIMEOUT, client.send(batch)).await,
            Ok(Ok(_))
        );
        let Some(node) = self.node.get() else { return };
        if !ok {
            node.report_unreachable(self.to);
        }
        for _ in 0..snapshots {
            node.report_snapshot(self.to, ok);
        }
    }
}

/// The receiving side: steps every message of a batch into the node.
pub struct RaftService {
    node: NodeHandle,
}

impl RaftService {
    /// A service delivering into `node`.
    pub fn new(node: NodeHandle) -> Self {
        RaftService { node }
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn send(
        &self,
        req: tonic::Request<RaftBatch>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        let peer = req.extensions().get::<PeerIdentity>().cloned();
        let batch = req.into_inner();
        let mut msgs = Vec::with_capacity(batch.messages.len());
        for bytes in &batch.messages {
            let m = Message::parse_from_bytes(bytes)
                .map_err(|e| tonic::Status::invalid_argument(format!("bad raft message: {e}")))?;
            msgs.push(m);
        }
        self.admit(peer, &batch, &msgs)?;
        if !batch.from_addr.is_empty() {
            self.node.learn_peer(batch.from, batch.from_addr.clone());
        }
        for m in msgs {
            self.node
                .step(m)
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        }
        Ok(tonic::Response::new(RaftAck {}))
    }
}

impl RaftService {
    /// The sender check ([`anode_meta::access::check_raft_batch`]): the batch's and every
    /// message's `from` is the certificate's id (without TLS: the batch's `from`), a voter or
    /// learner of the current configuration, and every `to` is this member. A member whose
    /// configuration is still empty (started with `--join`, not yet caught up) takes messages
    /// from any master certificate. Nothing of a refused batch reaches raft or the peer map.
    fn admit(
        &self,
        peer: Option<PeerIdentity>,
        batch: &RaftBatch,
        msgs: &[Message],
    ) -> Result<(), tonic::Status> {
        let st = self.node.status();
        let members: BTreeSet<u64> = st.voters.iter().chain(&st.learners).copied().collect();
        let peer = match peer {
            Some(p) => p,
            None => PeerIdentity::new(Role::Master, &batch.from.to_string())
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?,
        };
        let mut members = members;
        if members.is_empty() {
            if let Some(id) = peer.master_id() {
                members.insert(id);
            }
        }
        let pairs =
            std::iter::once((batch.from, batch.to)).chain(msgs.iter().map(|m| (m.from, m.to)));
        check_raft_batch(&peer, st.id, &members, pairs).map_err(|e| {
            tracing::warn!(peer = %peer, reason = %e, "raft batch refused");
            anode_tls::authz::denied_status("/anode.v1.RaftTransport/Send", &e.to_string())
        })
    }
}
