//! Placement for the master: the cluster-wide pure placement function plus the replication
//! factor rule from DESIGN.md.

pub use anode_common::placement::{place, Candidate};

/// The replication factor of a bucket: its configured R, or min(3, live chunkservers).
pub fn effective_replication(configured: u32, live: usize) -> u32 {
    if configured > 0 {
        configured
    } else {
        live.min(3) as u32
    }
}
