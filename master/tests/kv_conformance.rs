//! The durable state-machine view (a RocksDB snapshot of the `sm` column family) passes the
//! same `KvRead` conformance suite as the in-memory `MemKv` (anode_meta::kv::conformance).

use anode_master::store::RaftStore;
use anode_meta::kv::{conformance, KvRead, Mutation};

#[test]
fn rocksdb_view_conforms() {
    conformance::check(
        &mut |muts: &[Mutation], read: &mut dyn FnMut(&dyn KvRead)| {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = RaftStore::open(dir.path()).expect("open store");
            store.commit_apply(muts, 1, 1, None).expect("commit");
            read(&store.view());
        },
    );
}

#[test]
fn rocksdb_view_conforms_after_reopen() {
    conformance::check(
        &mut |muts: &[Mutation], read: &mut dyn FnMut(&dyn KvRead)| {
            let dir = tempfile::tempdir().expect("tempdir");
            {
                let store = RaftStore::open(dir.path()).expect("open store");
                store.commit_apply(muts, 1, 1, None).expect("commit");
            }
            let store = RaftStore::open(dir.path()).expect("reopen store");
            read(&store.view());
        },
    );
}
