//! Simulated time, node ids, the message types of the simulated network and the settings.

use anode_proto::*;

/// Simulated milliseconds per step (one raft tick, as in production).
pub const STEP_MS: u64 = 100;
/// Wall clocks read `BASE_WALL_MS + sim time + the node's offset`.
pub const BASE_WALL_MS: u64 = 1_700_000_000_000;
/// Masters (raft members).
pub const MASTERS: u64 = 3;
/// Chunkservers.
pub const CHUNKSERVERS: u64 = 5;
/// Clients issuing operations concurrently.
pub const CLIENTS: u64 = 3;
/// The replication factor of the bucket.
pub const R: u32 = 3;
/// The bucket every operation uses.
pub const BUCKET: &str = "sim";
/// The keys operations pick from (few keys: concurrent writes collide).
pub const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Chunk size of the simulated client (production: 4 MiB).
pub const CHUNK_BYTES: usize = 2048;
/// Bodies up to this size go inline in the manifest (production: 16 KiB).
pub const INLINE_MAX: usize = 256;
/// Capacity of each chunkserver (small enough that utilization differs: rebalance runs).
pub const CAPACITY_BYTES: u64 = 96 << 10;
/// Chunkserver heartbeat interval.
pub const HEARTBEAT_MS: u64 = 1_000;
/// Chunkserver periodic full report.
pub const FULL_REPORT_MS: u64 = 20_000;
/// Every chunkserver re-hashes one blob this often (the scrubber, at a low rate).
pub const SCRUB_EVERY_MS: u64 = 1_000;
/// Timeout of one master RPC attempt (client and chunkserver side).
pub const RPC_TIMEOUT_MS: u64 = 3_000;
/// Timeout of one chunk transfer.
pub const CHUNK_TIMEOUT_MS: u64 = 2_000;
/// A master RPC is retried (other members, leader hints) for this long.
pub const RETRY_BUDGET_MS: u64 = 4_000;
/// During chaos, this share (%) of the answers to committed writes is lost on the way to the
/// client, which then retries the write (the leader-failover case client sessions handle).
pub const LOSE_WRITE_ANSWER_PCT: u32 = 5;
/// The master answers a request still waiting on raft after this long (production 10 s).
pub const RAFT_TIMEOUT_MS: u64 = 10_000;

/// Lease settings of the masters (production: 3 s / 30 s).
pub const LEASE_MS: u64 = 3_000;
/// The masters' read-lease drift bound (`NodeConfig::lease_max_drift_ms`): with 10 election
/// ticks of 100 ms the lease is 700 ms.
pub const LEASE_MAX_DRIFT_MS: u64 = 200;
/// Bound of each master's monotonic clock rate error (ppm, either way): 2 %, far above real
/// crystals, well inside what the drift bound allows.
pub const MAX_DRIFT_PPM: i64 = 20_000;
/// Share of new client operations (during chaos) that start on a restarted gateway, which
/// guesses the leader anew.
pub const GATEWAY_RESTART_PCT: u32 = 5;
/// Longest stop (SIGSTOP) of a master, ms.
pub const MAX_PAUSE_MS: u64 = 4_000;
/// A chunkserver unheard for this long is dead.
pub const DEAD_AFTER_MS: u64 = 10_000;
/// GC: refcount 0 for this long -> tombstone (production 60 s).
pub const GC_GRACE_MS: u64 = 4_000;
/// GC: writers touch copies older than half this before commit (production 5 min).
pub const TOUCH_AFTER_MS: u64 = 10_000;
/// GC fences allow this much clock skew between any two nodes (production 30 s). Every wall
/// clock in the simulation stays within `CLOCK_SKEW_MS / 2` of true time, clock jumps
/// included, so any two clocks differ by at most `CLOCK_SKEW_MS`: the bound the design
/// assumes.
pub const CLOCK_SKEW_MS: u64 = 1_000;
/// Healing sweep interval (production 1 s; 500 ms in the chaos scripts' config).
pub const HEAL_INTERVAL_MS: u64 = 500;

/// Node ids: masters `1..=MASTERS`, chunkservers `CS_BASE + i`, clients `CLIENT_BASE + i`.
pub const CS_BASE: u64 = 100;
/// First client id minus one.
pub const CLIENT_BASE: u64 = 200;

/// Whether `n` is a master.
pub fn is_master(n: u64) -> bool {
    (1..=MASTERS).contains(&n)
}

/// The data address a chunkserver registers (clients and peers dial it).
pub fn cs_addr(node: u64) -> String {
    format!("cs-{node}")
}

/// The node behind a chunkserver address.
pub fn cs_node(addr: &str) -> Option<u64> {
    addr.strip_prefix("cs-")?.parse().ok()
}

/// A request over the simulated network.
// Simulated messages are moved a few times each; their size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Call {
    /// Master: create the bucket.
    CreateBucket(CreateBucketRequest),
    /// Master: targets for new chunks.
    Allocate(AllocateChunksRequest),
    /// Master: holders of chunks.
    Locate(LocateChunksRequest),
    /// Master: commit a manifest.
    PutObject(PutObjectRequest),
    /// Master: read a manifest (linearizable).
    GetObject(GetObjectRequest),
    /// Master: delete an object.
    DeleteObject(DeleteObjectRequest),
    /// Master: a reader found a bad copy.
    ReportBad(ReportBadChunkRequest),
    /// Master: chunkserver registration.
    Register(RegisterChunkserverRequest),
    /// Master: chunkserver heartbeat.
    Heartbeat(HeartbeatRequest),
    /// Chunkserver: store a chunk (header epoch, bytes).
    PutChunk {
        /// Chunk id.
        sha: Vec<u8>,
        /// Bytes.
        data: Vec<u8>,
        /// The writer's view of the server's epoch.
        epoch: u64,
    },
    /// Chunkserver: a full, verified read.
    GetChunk {
        /// Chunk id.
        sha: Vec<u8>,
    },
    /// Chunkserver: presence, optionally touching the blob.
    StatChunk {
        /// Chunk id.
        sha: Vec<u8>,
        /// Touch (GC fence).
        touch: bool,
    },
}

/// Why a chunkserver refused a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkFail {
    /// No such blob (NOT_FOUND).
    NotFound,
    /// The copy does not hash to its id (DATA_LOSS; quarantined).
    Corrupt,
    /// Anything else.
    Other(String),
}

/// A response over the simulated network.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Not the leader (no effect); the known leader, 0 = none.
    NotLeader(u64),
    /// The request reached raft but its outcome is unknown (leadership lost, timeout).
    Lost,
    /// A state error code (no effect).
    Error(ErrorCode),
    /// CreateBucket done.
    Created,
    /// Placement.
    Allocated(AllocateChunksResponse),
    /// Holders.
    Located(LocateChunksResponse),
    /// Committed.
    Put,
    /// A manifest read.
    Got(Box<Manifest>),
    /// Delete done.
    Deleted,
    /// Acknowledged without payload.
    Ack,
    /// Registration: id and epoch.
    Registered(u64, u64),
    /// Heartbeat reply.
    Heartbeat(HeartbeatResponse),
    /// PutChunk outcome.
    ChunkPut(Result<(), String>),
    /// GetChunk outcome.
    ChunkGot(Result<Vec<u8>, ChunkFail>),
    /// StatChunk outcome: present.
    ChunkStat(Result<bool, String>),
    /// No answer within the caller's timeout (made up by the caller, never sent).
    Timeout,
}

/// What travels between nodes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Payload {
    /// A raft message between masters.
    Raft(raft::eraftpb::Message),
    /// A request with its RPC id.
    Req(u64, Call),
    /// The response to RPC id.
    Resp(u64, Reply),
}

/// One message in flight.
#[derive(Debug)]
pub struct Envelope {
    /// Delivery step time (ms).
    pub at_ms: u64,
    /// Sender.
    pub from: u64,
    /// Receiver.
    pub to: u64,
    /// Contents.
    pub payload: Payload,
}

/// Messages a node wants sent this step: (to, payload).
pub type Out = Vec<(u64, Payload)>;
