//! Anode master: one member of the raft group that replicates the namespace, bucket configs,
//! access keys, the chunkserver registry and chunk locations.
//!
//! Code map (the pure parts, the key-value view, state machine and leader decisions, are in
//! `anode_meta`; this crate is the IO shell around them):
//! - `store`: RocksDB column families: raft log, hard state, state machine, applied index.
//! - `log_store`: the `LogStore` trait `node::Core` is generic over, and `FaultyStore` (tests).
//! - `node`: the raft-rs `RawNode` driver (ready loop), proposals and ReadIndex reads.
//! - `read_lease`: the leader's read lease (pure), how long a leader may read without a round.
//! - `raft_check`: validation of raft messages from peers before raft-rs steps them.
//! - `transport`: raft messages between masters over tonic.
//! - `service`: the `Master` gRPC API.
//! - `limits`: the gRPC server's limits (message sizes, streams, keepalive).
//! - `backup`: metadata backups (`anode ctl backup`) and restores (`anode master --restore`).
//! - `export`: the leader's periodic metadata exports to chunkservers; `rebuild`: `anode ctl
//!   rebuild`, a backup directory from the newest good export when every master is lost.
//! - `lifecycle`: the leader's lifecycle worker (batches of expirations through raft).
//! - `notify`: the leader's event delivery worker (webhook POSTs of the raft-kept queues).
//! - `join`: discovery of the group by a starting member (`--join-seeds`, `--join-dns`).
//! - `ctl`: the operator CLI (`anode ctl`).
//! - `status_page`: the status page and `/api/status` on the admin port, and its event ring.

pub mod backup;
pub mod ctl;
pub mod export;
pub mod join;
pub mod lifecycle;
pub mod limits;
pub mod log_store;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod raft_check;
pub mod read_lease;
pub mod rebuild;
pub mod reload;
pub mod server;
pub mod service;
pub mod slog_tracing;
pub mod status_page;
pub mod store;
pub mod transport;

pub use server::{run, start, MasterArgs, RunningMaster};
