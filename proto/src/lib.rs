//! Anode's wire types. Architecture invariant: only this crate defines types that cross a
//! process boundary or are persisted (raft commands, manifests, registry records).

/// Version 1 of the Anode protocol (`anode.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/anode.v1.rs"));
}

pub use v1::*;

pub mod error;
#[cfg(feature = "grpc")]
pub use error::grpc::grpc_code;

/// Current encoding version of [`v1::Command`].
pub const COMMAND_VERSION: u32 = 1;
/// Current encoding version of [`v1::Manifest`].
pub const MANIFEST_VERSION: u32 = 1;
/// Current encoding version of records in the master state (buckets, keys, registry, chunks).
pub const RECORD_VERSION: u32 = 1;
