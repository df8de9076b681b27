//! Raft messages between masters over tonic.
//!
//! One task per peer drains a bounded queue, batches what is waiting into one `RaftBatch` (at
//! most [`MAX_BATCH_MESSAGES`] messages, about [`BATCH_BYTES`]) and sends it with a timeout.
//! Snapshots travel apart over `SendSnapshot`, header (the raft message) first. A streamed
//! snapshot (the raft snapshot's data is a descriptor, `store::stream`) follows it with the
//! records the leader's pinned view reads, about 1 MiB per piece, and a trailer with their
//! count and checksum; the receiver stages each piece as it arrives (bounded memory on both
//! sides: the gRPC stream's flow control stops the leader's reader) and steps the message
//! into raft once everything is staged and checked. A version 2 snapshot (every pair in the
//! raft message, from an older leader) is reassembled up to [`MAX_SNAPSHOT_BYTES`]. No gRPC
//! message between masters exceeds [`MAX_RAFT_MESSAGE_BYTES`]. A full queue drops
//! messages (raft retransmits); a failed send reports the peer unreachable (and a failed
//! snapshot as failed) to the node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anode_meta::access::{check_raft_batch, PeerIdentity, Role};
use anode_proto::raft_transport_client::RaftTransportClient;
use anode_proto::raft_transport_server::RaftTransport;
use anode_proto::{ErrorCode, ErrorDetail, RaftAck, RaftBatch, SnapshotPiece, SnapshotTrailer};
use parking_lot::Mutex;
use protobuf::Message as PbMessage;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::node::{NodeHandle, Outbox};
use crate::store::{self, RaftStore, StoreError, StreamPiece};

/// Largest gRPC message between masters. A batch is cut at [`BATCH_BYTES`] plus one message;
/// one append carries at most one command over raft's 64 KiB cap, and commands are at most
/// `service::MAX_COMMAND_BYTES` (8 MiB); snapshots are streamed in pieces.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 16 << 20;
/// A batch stops taking messages once it holds this many bytes.
pub const BATCH_BYTES: usize = 4 << 20;
/// Snapshot data per `SnapshotPiece`.
pub const SNAPSHOT_PIECE_BYTES: usize = 1 << 20;
/// Largest whole (version 2, from an older leader) snapshot a member accepts (the default
/// cap of [`RaftService`]). Streamed snapshots have no total cap (each piece is capped).
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// A snapshot stream may take `SEND_TIMEOUT` plus its size at this rate before it is given up.
const SNAPSHOT_MIN_BYTES_PER_SEC: u64 = 1 << 20;
/// A receiver gives up on a snapshot stream silent for this long.
const SNAPSHOT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const PEER_QUEUE_BATCHES: usize = 1024;
/// Most raft messages in one batch.
pub const MAX_BATCH_MESSAGES: usize = 512;

/// Why a snapshot stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotStreamError {
    /// The first piece has no raft message.
    #[error("the first piece carries no raft message")]
    NoHeader,
    /// The header does not decode as a raft message.
    #[error("bad raft message: {0}")]
    BadMessage(String),
    /// The header is not a MsgSnapshot with a snapshot.
    #[error("the header is not a snapshot message")]
    NotSnapshot,
    /// The declared data length is over the cap.
    #[error("snapshot of {declared} bytes is over the cap of {max}")]
    TooLarge {
        /// Declared length.
        declared: u64,
        /// The cap.
        max: u64,
    },
    /// A streamed snapshot ended without its trailer.
    #[error("the snapshot stream ended without its trailer")]
    NoTrailer,
    /// A streamed snapshot's descriptor is unusable.
    #[error("bad snapshot descriptor: {0}")]
    BadDescriptor(String),
    /// More or fewer data bytes than declared.
    #[error("got {got} snapshot bytes, {declared} declared")]
    Length {
        /// Bytes received so far.
        got: u64,
        /// Declared length.
        declared: u64,
    },
}

/// The pieces of a snapshot message, header first (pure). `piece_bytes` > 0.
pub fn snapshot_pieces(
    from: u64,
    from_addr: &str,
    to: u64,
    mut m: Message,
    piece_bytes: usize,
) -> impl Iterator<Item = SnapshotPiece> + Send + 'static {
    let data = m.mut_snapshot().take_data();
    let header = SnapshotPiece {
        from,
        to,
        from_addr: from_addr.to_string(),
        message: m.write_to_bytes().unwrap_or_default(),
        data_bytes: data.len() as u64,
        data: Vec::new(),
        trailer: None,
    };
    let pieces = data.len().div_ceil(piece_bytes);
    std::iter::once(header).chain((0..pieces).map(move |i| {
        let hi = ((i + 1) * piece_bytes).min(data.len());
        SnapshotPiece {
            data: data[i * piece_bytes..hi].to_vec(),
            ..Default::default()
        }
    }))
}

/// The raft message of a snapshot stream's header piece: present, decodable, a MsgSnapshot.
fn header_message(first: &SnapshotPiece) -> Result<Message, SnapshotStreamError> {
    if first.message.is_empty() {
        return Err(SnapshotStreamError::NoHeader);
    }
    let message = Message::parse_from_bytes(&first.message)
        .map_err(|e| SnapshotStreamError::BadMessage(e.to_string()))?;
    if message.get_msg_type() != MessageType::MsgSnapshot || !message.has_snapshot() {
        return Err(SnapshotStreamError::NotSnapshot);
    }
    Ok(message)
}

/// The descriptor and raft message of a streamed snapshot's header piece; `None` for a whole
/// (version 2) snapshot's header, whose data follows in the pieces (pure).
pub fn streamed_header(
    first: &SnapshotPiece,
) -> Result<Option<(anode_proto::SnapshotDescriptor, Message)>, SnapshotStreamError> {
    let message = header_message(first)?;
    if message.get_snapshot().get_data().is_empty() {
        return Ok(None);
    }
    match store::stream::descriptor_of(message.get_snapshot()) {
        Ok(Some(d)) => Ok(Some((d, message))),
        Ok(None) => Err(SnapshotStreamError::BadDescriptor(
            "a whole snapshot's data in the header".into(),
        )),
        Err(e) => Err(SnapshotStreamError::BadDescriptor(e.to_string())),
    }
}

/// A snapshot message being reassembled from its pieces (pure).
#[derive(Debug)]
pub struct SnapshotAssembly {
    from: u64,
    from_addr: String,
    message: Message,
    declared: u64,
    data: Vec<u8>,
}

impl SnapshotAssembly {
    /// Start from the first piece; refuses a missing or bad header and data over `max_bytes`.
    pub fn start(first: SnapshotPiece, max_bytes: u64) -> Result<Self, SnapshotStreamError> {
        let message = header_message(&first)?;
        if first.data_bytes > max_bytes {
            return Err(SnapshotStreamError::TooLarge {
                declared: first.data_bytes,
                max: max_bytes,
            });
        }
        let mut a = SnapshotAssembly {
            from: first.from,
            from_addr: first.from_addr,
            message,
            declared: first.data_bytes,
            // Grown as data arrives: a header alone never makes the receiver allocate.
            data: Vec::new(),
        };
        a.push_data(&first.data)?;
        Ok(a)
    }

    /// Add the data of a following piece (its header fields are ignored).
    pub fn push(&mut self, piece: SnapshotPiece) -> Result<(), SnapshotStreamError> {
        self.push_data(&piece.data)
    }

    fn push_data(&mut self, data: &[u8]) -> Result<(), SnapshotStreamError> {
        let got = (self.data.len() as u64).saturating_add(data.len() as u64);
        if got > self.declared {
            return Err(SnapshotStreamError::Length {
                got,
                declared: self.declared,
            });
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    /// The sender's id and address and the whole snapshot message, once every byte arrived.
    pub fn finish(mut self) -> Result<(u64, String, Message), SnapshotStreamError> {
        if self.data.len() as u64 != self.declared {
            return Err(SnapshotStreamError::Length {
                got: self.data.len() as u64,
                declared: self.declared,
            });
        }
        self.message.mut_snapshot().set_data(self.data.into());
        Ok((self.from, self.from_addr, self.message))
    }
}

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
    store: RaftStore,
}

impl GrpcOutbox {
    /// A new outbox spawning its tasks on `rt`, streaming snapshots pinned in `store`. Call
    /// [`Self::set_node`] once the node exists.
    pub fn new(
        from: u64,
        from_addr: String,
        rt: tokio::runtime::Handle,
        tls: anode_tls::Tls,
        store: RaftStore,
    ) -> Arc<Self> {
        Arc::new(GrpcOutbox {
            from,
            tls,
            from_addr,
            rt,
            peers: Mutex::new(BTreeMap::new()),
            node: Arc::new(OnceLock::new()),
            store,
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
            store: self.store.clone(),
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
    store: RaftStore,
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
            let mut bytes: usize = msgs.iter().map(|m| m.compute_size() as usize).sum();
            while msgs.len() < MAX_BATCH_MESSAGES && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(more) => {
                        bytes += more
                            .iter()
                            .map(|m| m.compute_size() as usize)
                            .sum::<usize>();
                        msgs.extend(more);
                    }
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
        let (snapshots, msgs): (Vec<Message>, Vec<Message>) = msgs
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        if !msgs.is_empty() {
            self.send_batch(client, msgs).await;
        }
        for m in snapshots {
            // On its own task: a snapshot may take minutes, this peer's heartbeats may not wait
            // behind it (raft-rs has at most one snapshot in flight per peer).
            let (from, from_addr, to) = (self.from, self.from_addr.clone(), self.to);
            let (mut client, node) = (client.clone(), self.node.clone());
            let store = self.store.clone();
            tokio::spawn(async move {
                let ok = match store::stream::descriptor_of(m.get_snapshot()) {
                    Ok(Some(d)) => {
                        let sender = Sender {
                            from,
                            from_addr: &from_addr,
                            to,
                        };
                        sender.stream(&mut client, &store, d, m).await
                    }
                    Ok(None) => send_snapshot(&mut client, from, &from_addr, to, m).await,
                    Err(e) => {
                        tracing::warn!(to, error = %e, "raft snapshot not sent");
                        false
                    }
                };
                if let Some(node) = node.get() {
                    if !ok {
                        node.report_unreachable(to);
                    }
                    node.report_snapshot(to, ok);
                }
            });
        }
    }

    async fn send_batch(
        &self,
        client: &mut RaftTransportClient<tonic::transport::Channel>,
        msgs: Vec<Message>,
    ) {
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
    }
}

/// The sending end of one streamed snapshot.
struct Sender<'a> {
    from: u64,
    from_addr: &'a str,
    to: u64,
}

impl Sender<'_> {
    /// Send the header, then the records of the view pinned for `d` and the trailer; true
    /// when the receiver staged and took them. Pieces are read as the gRPC stream takes them.
    async fn stream(
        &self,
        client: &mut RaftTransportClient<tonic::transport::Channel>,
        store: &RaftStore,
        d: anode_proto::SnapshotDescriptor,
        m: Message,
    ) -> bool {
        let to = self.to;
        let rx = match store.snapshot_stream(d.index, d.term) {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(to, error = %e, "raft snapshot not sent");
                return false;
            }
        };
        let header = SnapshotPiece {
            from: self.from,
            to,
            from_addr: self.from_addr.to_string(),
            message: m.write_to_bytes().unwrap_or_default(),
            ..Default::default()
        };
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let body = tokio_stream::wrappers::ReceiverStream::new(rx).map_while(move |p| {
            let piece = stream_piece(p, to)?;
            counter.fetch_add(
                piece.data.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            Some(piece)
        });
        let pieces = tokio_stream::once(header).chain(body);
        let limit = SEND_TIMEOUT
            + Duration::from_secs(store.state_bytes_estimate() / SNAPSHOT_MIN_BYTES_PER_SEC);
        let started = std::time::Instant::now();
        let res = tokio::time::timeout(limit, client.send_snapshot(pieces)).await;
        let bytes = sent.load(std::sync::atomic::Ordering::Relaxed);
        let ms = started.elapsed().as_millis() as u64;
        match res {
            Ok(Ok(_)) => {
                tracing::info!(to, index = d.index, bytes, ms, "raft snapshot streamed");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(to, bytes, error = %e, "raft snapshot refused");
                false
            }
            Err(_) => {
                tracing::warn!(to, bytes, ms, "raft snapshot timed out");
                false
            }
        }
    }
}

/// The wire piece of one read result; `None` ends the stream early (a read error, logged):
/// the receiver then sees no trailer and refuses the snapshot.
fn stream_piece(p: Result<StreamPiece, StoreError>, to: u64) -> Option<SnapshotPiece> {
    match p {
        Ok(StreamPiece::Records(data)) => Some(SnapshotPiece {
            data,
            ..Default::default()
        }),
        Ok(StreamPiece::End { records, checksum }) => Some(SnapshotPiece {
            trailer: Some(SnapshotTrailer { records, checksum }),
            ..Default::default()
        }),
        Err(e) => {
            tracing::warn!(to, error = %e, "reading the pinned snapshot failed");
            None
        }
    }
}

/// Stream one whole (version 2) snapshot message in pieces; true when the receiver took it.
async fn send_snapshot(
    client: &mut RaftTransportClient<tonic::transport::Channel>,
    from: u64,
    from_addr: &str,
    to: u64,
    m: Message,
) -> bool {
    let bytes = m.get_snapshot().get_data().len() as u64;
    let pieces = snapshot_pieces(from, from_addr, to, m, SNAPSHOT_PIECE_BYTES);
    let limit = SEND_TIMEOUT + Duration::from_secs(bytes / SNAPSHOT_MIN_BYTES_PER_SEC);
    let sent =
        tokio::time::timeout(limit, client.send_snapshot(futures::stream::iter(pieces))).await;
    match sent {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(to, bytes, error = %e, "raft snapshot refused");
            false
        }
        Err(_) => {
            tracing::warn!(to, bytes, "raft snapshot timed out");
            false
        }
    }
}

/// The receiving side: steps every message of a batch (or a reassembled snapshot) into the
/// node.
pub struct RaftService {
    node: NodeHandle,
    store: RaftStore,
    max_snapshot_bytes: u64,
}

impl RaftService {
    /// A service delivering into `node`, staging streamed snapshots in `store` and taking
    /// whole ones up to [`MAX_SNAPSHOT_BYTES`].
    pub fn new(node: NodeHandle, store: RaftStore) -> Self {
        Self::with_snapshot_cap(node, store, MAX_SNAPSHOT_BYTES)
    }

    /// A service delivering into `node`, taking whole snapshots up to `max_snapshot_bytes`.
    pub fn with_snapshot_cap(node: NodeHandle, store: RaftStore, max_snapshot_bytes: u64) -> Self {
        RaftService {
            node,
            store,
            max_snapshot_bytes,
        }
    }

    /// Stage the records that follow a streamed snapshot's header, piece by piece, and check
    /// them against the trailer. Nothing reaches raft unless every record arrived and passed.
    async fn stage_stream(
        &self,
        s: &mut tonic::Streaming<SnapshotPiece>,
        d: &anode_proto::SnapshotDescriptor,
    ) -> Result<(), tonic::Status> {
        let store = self.store.clone();
        let (index, term) = (d.index, d.term);
        let mut stager = blocking(move || store.stage_snapshot(index, term)).await?;
        while let Some(p) = next_piece(s).await? {
            if let Some(t) = p.trailer {
                return blocking(move || stager.finish(t.records, t.checksum)).await;
            }
            stager = blocking(move || stager.push(&p.data).map(|()| stager)).await?;
        }
        Err(invalid_stream(SnapshotStreamError::NoTrailer))
    }
}

/// Run store IO off the async workers; a store error is the peer's bad input or our disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, tonic::Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "raft snapshot stream refused");
            Err(ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()).to_status())
        }
        Err(e) => Err(tonic::Status::internal(e.to_string())),
    }
}

fn invalid_stream(e: SnapshotStreamError) -> tonic::Status {
    ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()).to_status()
}

/// The next piece of a snapshot stream, bounded by [`SNAPSHOT_IDLE_TIMEOUT`].
async fn next_piece(
    s: &mut tonic::Streaming<SnapshotPiece>,
) -> Result<Option<SnapshotPiece>, tonic::Status> {
    match tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, s.message()).await {
        Ok(p) => p,
        Err(_) => Err(ErrorDetail::new(ErrorCode::Timeout, "snapshot stream idle").to_status()),
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
        let pairs =
            std::iter::once((batch.from, batch.to)).chain(msgs.iter().map(|m| (m.from, m.to)));
        self.admit(
            peer.as_ref(),
            batch.from,
            "/anode.v1.RaftTransport/Send",
            pairs,
        )?;
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

    async fn send_snapshot(
        &self,
        req: tonic::Request<tonic::Streaming<SnapshotPiece>>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        const PATH: &str = "/anode.v1.RaftTransport/SendSnapshot";
        let peer = req.extensions().get::<PeerIdentity>().cloned();
        let mut s = req.into_inner();
        let first = next_piece(&mut s)
            .await?
            .ok_or(SnapshotStreamError::NoHeader)
            .map_err(invalid_stream)?;
        // The sender is checked on the header, before any snapshot data is taken in.
        self.admit(
            peer.as_ref(),
            first.from,
            PATH,
            std::iter::once((first.from, first.to)),
        )?;
        if let Some((d, m)) = streamed_header(&first).map_err(invalid_stream)? {
            self.stage_stream(&mut s, &d).await?;
            self.admit(
                peer.as_ref(),
                first.from,
                PATH,
                std::iter::once((m.from, m.to)),
            )?;
            if !first.from_addr.is_empty() {
                self.node.learn_peer(first.from, first.from_addr);
            }
            self.node
                .step(m)
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            return Ok(tonic::Response::new(RaftAck {}));
        }
        let mut asm =
            SnapshotAssembly::start(first, self.max_snapshot_bytes).map_err(invalid_stream)?;
        while let Some(p) = next_piece(&mut s).await? {
            asm.push(p).map_err(invalid_stream)?;
        }
        let (from, from_addr, m) = asm.finish().map_err(invalid_stream)?;
        self.admit(peer.as_ref(), from, PATH, std::iter::once((m.from, m.to)))?;
        if !from_addr.is_empty() {
            self.node.learn_peer(from, from_addr);
        }
        self.node
            .step(m)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
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
        peer: Option<&PeerIdentity>,
        from: u64,
        path: &str,
        pairs: impl Iterator<Item = (u64, u64)>,
    ) -> Result<(), tonic::Status> {
        let st = self.node.status();
        let members: BTreeSet<u64> = st.voters.iter().chain(&st.learners).copied().collect();
        let peer = match peer {
            Some(p) => p.clone(),
            None => PeerIdentity::new(Role::Master, &from.to_string())
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?,
        };
        let mut members = members;
        if members.is_empty() {
            if let Some(id) = peer.master_id() {
                members.insert(id);
            }
        }
        check_raft_batch(&peer, st.id, &members, pairs).map_err(|e| {
            tracing::warn!(peer = %peer, method = path, reason = %e, "raft batch refused");
            anode_tls::authz::denied_status(path, &e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Snapshot;

    fn snapshot_msg(data: Vec<u8>) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        m.from = 1;
        m.to = 2;
        m.term = 3;
        let mut s = Snapshot::default();
        s.mut_metadata().index = 10;
        s.mut_metadata().term = 3;
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.set_data(data.into());
        m.set_snapshot(s);
        m
    }

    #[test]
    fn a_snapshot_survives_its_pieces() {
        for len in [0usize, 1, 999, 1000, 1001, 4500] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let m = snapshot_msg(data.clone());
            let pieces: Vec<SnapshotPiece> =
                snapshot_pieces(1, "a:1", 2, m.clone(), 1000).collect();
            assert_eq!(pieces.len(), 1 + len.div_ceil(1000), "{len}");
            assert!(pieces.iter().all(|p| p.data.len() <= 1000));
            let mut it = pieces.into_iter();
            let mut a = SnapshotAssembly::start(it.next().unwrap(), 1 << 20).unwrap();
            for p in it {
                a.push(p).unwrap();
            }
            let (from, addr, back) = a.finish().unwrap();
            assert_eq!((from, addr.as_str()), (1, "a:1"));
            assert_eq!(back, m, "{len}");
        }
    }

    #[test]
    fn a_streamed_header_is_told_from_a_whole_one() {
        use SnapshotStreamError as E;
        let header = |data: Vec<u8>| SnapshotPiece {
            from: 1,
            to: 2,
            message: snapshot_msg(data).write_to_bytes().unwrap(),
            ..Default::default()
        };
        // The descriptor of the snapshot's own (index, term) = (10, 3).
        let (d, m) = streamed_header(&header(store::stream::descriptor_data(10, 3)))
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.index, d.term, m.get_msg_type()),
            (10, 3, MessageType::MsgSnapshot)
        );
        // A whole snapshot's header has its data stripped: reassembled as before.
        assert!(streamed_header(&header(Vec::new())).unwrap().is_none());
        // A descriptor of another snapshot, or a whole snapshot's data left in the header.
        let other = header(store::stream::descriptor_data(11, 3));
        assert!(matches!(streamed_header(&other), Err(E::BadDescriptor(_))));
        let whole = anode_proto::SnapshotData {
            version: anode_proto::SNAPSHOT_VERSION,
            pairs: Vec::new(),
            descriptor: None,
        };
        let whole = header(prost::Message::encode_to_vec(&whole));
        assert!(matches!(streamed_header(&whole), Err(E::BadDescriptor(_))));
        assert_eq!(
            streamed_header(&SnapshotPiece::default()).unwrap_err(),
            E::NoHeader
        );
        // The last read result becomes the trailer; a read error ends the stream early.
        let end = stream_piece(
            Ok(StreamPiece::End {
                records: 5,
                checksum: 9,
            }),
            2,
        )
        .unwrap();
        assert_eq!(
            end.trailer,
            Some(SnapshotTrailer {
                records: 5,
                checksum: 9
            })
        );
        assert!(stream_piece(Err(StoreError::StageBusy("x")), 2).is_none());
    }

    #[test]
    fn bad_snapshot_streams_are_refused() {
        use SnapshotStreamError as E;
        let m = snapshot_msg(vec![7; 3000]);
        let pieces: Vec<SnapshotPiece> = snapshot_pieces(1, "", 2, m.clone(), 1000).collect();
        let start = |p: &SnapshotPiece, max| SnapshotAssembly::start(p.clone(), max).map(|_| ());
        assert_eq!(start(&pieces[1], 1 << 20), Err(E::NoHeader));
        let garbage = SnapshotPiece {
            message: vec![0xff; 9],
            ..pieces[0].clone()
        };
        assert!(matches!(start(&garbage, 1 << 20), Err(E::BadMessage(_))));
        let mut hb = m.clone();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.clear_snapshot();
        let not_snap = SnapshotPiece {
            message: hb.write_to_bytes().unwrap(),
            ..pieces[0].clone()
        };
        assert_eq!(start(&not_snap, 1 << 20), Err(E::NotSnapshot));
        assert_eq!(
            start(&pieces[0], 2999),
            Err(E::TooLarge {
                declared: 3000,
                max: 2999
            })
        );
        // Short and long streams.
        let mut a = SnapshotAssembly::start(pieces[0].clone(), 1 << 20).unwrap();
        a.push(pieces[1].clone()).unwrap();
        assert_eq!(
            a.finish().unwrap_err(),
            E::Length {
                got: 1000,
                declared: 3000
            }
        );
        let mut a = SnapshotAssembly::start(pieces[0].clone(), 1 << 20).unwrap();
        for p in &pieces[1..] {
            a.push(p.clone()).unwrap();
        }
        assert_eq!(
            a.push(pieces[1].clone()).unwrap_err(),
            E::Length {
                got: 4000,
                declared: 3000
            }
        );
    }
}
