//! Anode's pure metadata core: everything the master group decides, as plain functions and
//! state machines over plain data. No async runtime, no network, no storage engine, no clock:
//! time comes in as arguments (`now_ms` in a command, `Duration`s from the caller).
//!
//! Architecture invariant: this crate does no IO, and Cargo enforces it. Its normal dependency
//! tree has no tokio, tonic, hyper or rocksdb (`scripts/check-purity.sh` checks `cargo tree`).
//! The IO shell (`anode-master`: raft driver, RocksDB store, gRPC service) depends on it, and so
//! do the test fakes of the client and the gateway, so there is one state machine, not copies.
//!
//! Code map:
//! - [`access`]: node roles and identities, the authorization table of every RPC, the raft
//!   sender check.
//! - [`authz`]: authorization of S3 requests (bucket policies, ACLs, PublicAccessBlock):
//!   the one decision [`authz::authorize`] and the versioned bucket-access record.
//! - [`kv`]: the narrow key-value view the state machine reads, and its mutations.
//! - [`sm`] (also [`state`]): the deterministic state machine (`apply`), its read queries, and
//!   [`sm::MemState`], the state machine over a `MemKv` that backs the test fakes.
//! - [`record`]: the versioned decode step every persisted record is read through.
//! - [`control`]: the leader's decisions (leases, placement, heartbeats, healing sweep).
//! - [`leases`], [`locations`], [`planner`], [`healer`]: chunkserver liveness, where chunk
//!   copies are, the repair plan, and the task book that executes it.
//! - [`placement`]: rendezvous placement of chunks on chunkservers.
//! - [`membership`]: raft membership decisions (safe removal, successor, status rows).
//! - [`tagging`]: S3 tag set limits and lifecycle tag filters.
//! - [`notify`]: S3 event notification rules, targets, event ids and event records.
//! - [`validate`]: the one validator of bucket names, keys, upload ids, part numbers and
//!   metadata sizes, shared with the S3 gateway.
//!
//! Errors leave this crate as `anode_proto::ErrorDetail` ([`sm::StateError::detail`],
//! [`control::ControlError::detail`], [`membership::MembershipError::detail`]).

pub mod access;
pub mod authz;
pub mod checksum;
pub mod control;
pub mod cors;
pub mod healer;
pub mod kv;
pub mod leases;
pub mod lifecycle;
pub mod locations;
pub mod membership;
pub mod notify;
pub mod placement;
pub mod planner;
pub mod pq;
pub mod record;
pub mod sm;
pub mod tagging;
pub mod validate;
/// The state machine under its documented name.
pub use sm as state;
