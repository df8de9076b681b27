//! The seam between the raft [`Core`](crate::node::Core) and its durable storage.
//!
//! [`LogStore`] is exactly what `Core` does to its store: the raft log and hard state
//! (`persist`, `set_commit`, `compact`, the [`raft::Storage`] reads raft-rs makes itself), the
//! state machine (`commit_apply`, `view`, `install_snapshot`) and the indexes it reports.
//! Production uses [`RaftStore`](crate::store::RaftStore) (RocksDB); [`FaultyStore`] wraps any
//! store and fails chosen operations on demand, for tests of what `Core` does when its disk
//! fails.
//!
//! The durability contract every implementation keeps (the driver in [`crate::node`] relies
//! on it; `store.rs` explains how RocksDB meets it):
//! - `persist` is durable when it returns `Ok`; nothing that depends on it is sent before.
//! - `commit_apply` writes the mutations, the applied index and the conf state atomically; it
//!   refuses to move the applied index back.
//! - an `Err` from any write means nothing of that call may be relied on: `Core` stops (its
//!   `process` returns the error) and answers no proposal of that batch with success.

use std::collections::BTreeMap;
use std::sync::Arc;

use anode_meta::kv::{KvRead, Mutation};
use parking_lot::Mutex;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};

/// The storage operations of one raft member, as [`crate::node::Core`] performs them.
/// Implementations are cheap handles (`Clone` shares the store: raft-rs holds one copy, `Core`
/// another).
pub trait LogStore: raft::Storage + Clone {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A consistent read view of the state machine.
    type View<'a>: KvRead
    where
        Self: 'a;

    /// The applied index persisted with the state machine.
    fn applied(&self) -> u64;
    /// First index still in the log.
    fn first_log_index(&self) -> u64;
    /// Last index in the log.
    fn last_log_index(&self) -> u64;
    /// Durably append `entries` (truncating any conflicting suffix) and set the hard state.
    fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), Self::Error>;
    /// Raise the persisted commit index to `commit` (no-op when it is not higher).
    fn set_commit(&self, commit: u64) -> Result<(), Self::Error>;
    /// Atomically write state machine mutations, the applied index and term, and (optionally)
    /// a new conf state. Refuses to move the applied index back.
    fn commit_apply(
        &self,
        muts: &[Mutation],
        applied: u64,
        applied_term: u64,
        conf_state: Option<&ConfState>,
    ) -> Result<(), Self::Error>;
    /// Drop log entries up to and including `index` (ignored unless applied and in the log).
    fn compact(&self, index: u64) -> Result<(), Self::Error>;
    /// Replace the state machine, conf state, applied index and log with a leader's snapshot.
    fn install_snapshot(&self, snap: &Snapshot) -> Result<(), Self::Error>;
    /// A consistent read view of the state machine.
    fn view(&self) -> Self::View<'_>;
}

/// A write operation of [`LogStore`] that [`FaultyStore`] can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreOp {
    /// [`LogStore::persist`].
    Persist,
    /// [`LogStore::set_commit`].
    SetCommit,
    /// [`LogStore::commit_apply`].
    CommitApply,
    /// [`LogStore::compact`].
    Compact,
    /// [`LogStore::install_snapshot`].
    InstallSnapshot,
}

/// Errors of a [`FaultyStore`].
#[derive(Debug, thiserror::Error)]
pub enum FaultyError<E: std::error::Error + 'static> {
    /// A fault armed with [`FaultyStore::fail_after`]; the inner store was not called.
    #[error("injected fault in {op:?}: {source}")]
    Injected {
        /// The operation that failed.
        op: StoreOp,
        /// The IO error it reports.
        source: std::io::Error,
    },
    /// The inner store failed on its own.
    #[error(transparent)]
    Inner(E),
}

#[derive(Default)]
struct Faults {
    /// Armed operations: how many more calls succeed before every call fails.
    armed: BTreeMap<StoreOp, u64>,
    /// Calls made per operation (failed ones included).
    calls: BTreeMap<StoreOp, u64>,
}

/// A [`LogStore`] for tests: forwards every call to `inner`, and fails the operations armed
/// with [`FaultyStore::fail_after`] with an IO error, before the inner store is touched (the
/// inner store is left as it was: a write that never happened). Clones share the faults, so
/// a test keeps one clone to arm and clear them while `Core` holds the others.
#[derive(Clone)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Mutex<Faults>>,
}

impl<S: LogStore> FaultyStore<S> {
    /// Wrap `inner` with no fault armed.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            faults: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Let the next `successes` calls of `op` through, then fail every later call until
    /// [`Self::clear`].
    pub fn fail_after(&self, op: StoreOp, successes: u64) {
        self.faults.lock().armed.insert(op, successes);
    }

    /// Disarm every fault.
    pub fn clear(&self) {
        self.faults.lock().armed.clear();
    }

    /// Calls of `op` made so far (failed ones included).
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.faults.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// Count a call of `op` and decide whether it fails.
    fn check(&self, op: StoreOp) -> Result<(), FaultyError<S::Error>> {
        let mut f = self.faults.lock();
        *f.calls.entry(op).or_default() += 1;
        match f.armed.get_mut(&op) {
            None => Ok(()),
            Some(0) => Err(FaultyError::Injected {
                op,
                source: std::io::Error::other(format!("injected {op:?} failure")),
            }),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
        }
    }
}

impl<S: LogStore> LogStore for FaultyStore<S> {
    type Error = FaultyError<S::Error>;
    type View<'a>
        = S::View<'a>
    where
        Self: 'a;

    fn applied(&self) -> u64 {
        self.inner.applied()
    }
    fn first_log_index(&self) -> u64 {
        self.inner.first_log_index()
    }
    fn last_log_index(&self) -> u64 {
        self.inner.last_log_index()
    }
    fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), Self::Error> {
        self.check(StoreOp::Persist)?;
        self.inner.persist(entries, hs).map_err(FaultyError::Inner)
    }
    fn set_commit(&self, commit: u64) -> Result<(), Self::Error> {
        self.check(StoreOp::SetCommit)?;
        self.inner.set_commit(commit).map_err(FaultyError::Inner)
    }
    fn commit_apply(
        &self,
        muts: &[Mutation],
        applied: u64,
        applied_term: u64,
        conf_state: Option<&ConfState>,
    ) -> Result<(), Self::Error> {
        self.check(StoreOp::CommitApply)?;
        self.inner
            .commit_apply(muts, applied, applied_term, conf_state)
            .map_err(FaultyError::Inner)
    }
    fn compact(&self, index: u64) -> Result<(), Self::Error> {
        self.check(StoreOp::Compact)?;
        self.inner.compact(index).map_err(FaultyError::Inner)
    }
    fn install_snapshot(&self, snap: &Snapshot) -> Result<(), Self::Error> {
        self.check(StoreOp::InstallSnapshot)?;
        self.inner.install_snapshot(snap).map_err(FaultyError::Inner)
    }
    fn view(&self) -> Self::View<'_> {
        self.inner.view()
    }
}

impl<S: LogStore> raft::Storage for FaultyStore<S> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.inner.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.inner.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.inner.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.inner.snapshot(request_index, to)
    }
}
