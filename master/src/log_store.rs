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
        self.inner
            .install_snapshot(snap)
            .map_err(FaultyError::Inner)
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

#[cfg(test)]
mod tests {
    //! `Core` over a real RocksDB store behind a [`FaultyStore`]: what a failed disk write does
    //! to proposals (the acknowledged-write rule), and recovery after a restart.

    use std::path::Path;

    use anode_proto::command::Op;
    use anode_proto::{Command, CommandResult, CreateKeyCmd};
    use prost::Message as _;
    use raft::eraftpb::Message;
    use raft::StateRole;
    use tokio::sync::oneshot::{self, error::TryRecvError};

    use super::*;
    use crate::node::{bootstrap_store, Core, NodeConfig, NodeError, Outbox};
    use crate::store::RaftStore;

    type Faulty = FaultyStore<RaftStore>;
    type Rx = oneshot::Receiver<Result<CommandResult, NodeError>>;

    /// A one-member group sends no messages that matter.
    struct Discard;

    impl Outbox for Discard {
        fn send(&self, _msgs: Vec<Message>, _members: &BTreeMap<u64, String>) {}
    }

    fn peers() -> BTreeMap<u64, String> {
        BTreeMap::from([(1, "solo".to_string())])
    }

    /// Open the store in `dir` (bootstrapping a one-member group when it is new), faults off.
    fn open(dir: &Path) -> Faulty {
        let store = RaftStore::open(dir).expect("open store");
        if store.is_empty() {
            bootstrap_store(&store, &peers()).expect("bootstrap");
        }
        FaultyStore::new(store)
    }

    /// A core over `store`, ticked until it leads and has applied its first entry.
    fn leader(store: Faulty, nonce: u64) -> Core<Faulty> {
        let cfg = NodeConfig {
            id: 1,
            election_ticks: 10,
            min_election_ticks: 10,
            max_election_ticks: 11,
            heartbeat_ticks: 2,
            ..Default::default()
        };
        let mut core = Core::new(cfg, store, peers(), Arc::new(Discard), nonce).expect("core");
        for _ in 0..30 {
            core.tick();
            core.process().expect("process");
        }
        assert_eq!(core.raft().state, StateRole::Leader);
        assert_eq!(core.store().applied(), core.raft().raft_log.last_index());
        core
    }

    fn propose(core: &mut Core<Faulty>, access_key: &str) -> Rx {
        let cmd = Command {
            version: anode_proto::COMMAND_VERSION,
            now_ms: 1,
            session: None,
            op: Some(Op::CreateKey(CreateKeyCmd {
                key: Some(anode_proto::AccessKey {
                    version: 1,
                    access_key: access_key.into(),
                    secret_key: "s".into(),
                    ..Default::default()
                }),
            })),
        };
        let (tx, rx) = oneshot::channel();
        core.propose_bytes(cmd.encode_to_vec(), tx);
        rx
    }

    fn has_key(store: &impl LogStore, access_key: &str) -> bool {
        anode_meta::state::get_key(&store.view(), access_key).is_some()
    }

    fn assert_acked(rx: &mut Rx) {
        match rx.try_recv() {
            Ok(Ok(res)) => assert!(res.error.is_none(), "{:?}", res.error),
            other => panic!("not acknowledged: {other:?}"),
        }
    }

    /// The reply of a proposal caught in a failed batch: nothing while the core lives, and
    /// never `Ok` (dropped with the core).
    fn assert_never_acked(mut rx: Rx, core: Core<Faulty>) {
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        drop(core);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Closed)));
    }

    /// Winning the first election counts as an election started and a leader change seen
    /// (other tests in this binary may add to the counters at the same time).
    #[test]
    fn a_won_election_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (elections, changes) = (
            crate::metrics::RAFT_ELECTIONS.get(),
            crate::metrics::RAFT_LEADER_CHANGES.get(),
        );
        let _core = leader(open(dir.path()), 7);
        assert!(crate::metrics::RAFT_ELECTIONS.get() > elections);
        assert!(crate::metrics::RAFT_LEADER_CHANGES.get() > changes);
    }

    #[test]
    fn faults_fire_after_the_armed_successes_and_leave_the_inner_store_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let entry = |index| Entry {
            index,
            term: 1,
            ..Default::default()
        };
        store.fail_after(StoreOp::Persist, 2);
        store.persist(&[entry(1)], None).unwrap();
        store.persist(&[entry(2)], None).unwrap();
        let err = store.persist(&[entry(3)], None).unwrap_err();
        assert!(matches!(
            err,
            FaultyError::Injected {
                op: StoreOp::Persist,
                ..
            }
        ));
        assert!(
            err.to_string().contains("injected Persist failure"),
            "{err}"
        );
        assert!(store.persist(&[entry(3)], None).is_err(), "stays failed");
        assert_eq!(store.inner().last_log_index(), 2);
        assert_eq!(store.calls(StoreOp::Persist), 4);
        // Other operations are not affected; clearing lets persist through again.
        store.commit_apply(&[], 1, 1, None).unwrap();
        store.clear();
        store.persist(&[entry(3)], None).unwrap();
        assert_eq!(store.inner().last_log_index(), 3);
    }

    /// Acknowledged-write rule: a proposal whose entry was not persisted is never answered Ok,
    /// and `process` reports the failure. After a restart over the same directory the group
    /// serves again; the write that failed to persist is not there, the acknowledged one is.
    #[test]
    fn a_failed_persist_stops_the_core_and_answers_no_proposal_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut core = leader(store.clone(), 1);
        store.fail_after(StoreOp::Persist, 1);
        let mut a = propose(&mut core, "a");
        core.process().expect("one persist still succeeds");
        assert_acked(&mut a);
        let applied = store.applied();
        let last = store.last_log_index();
        let b = propose(&mut core, "b");
        let err = core.process().expect_err("persist failed");
        assert!(
            matches!(&err, NodeError::Store(m) if m.contains("injected Persist failure")),
            "{err}"
        );
        assert_eq!(store.applied(), applied);
        assert_eq!(store.last_log_index(), last, "b reached no disk");
        assert!(!has_key(&store, "b"));
        assert_never_acked(b, core);

        drop(store);
        let store = open(dir.path());
        let mut core = leader(store.clone(), 2);
        let mut c = propose(&mut core, "c");
        core.process().expect("process after restart");
        assert_acked(&mut c);
        assert!(has_key(&store, "a") && has_key(&store, "c"));
        assert!(!has_key(&store, "b"));
    }

    /// A failed apply batch stops apply: neither the store's nor raft's applied index moves,
    /// the proposal is not answered Ok. Its entry was committed and persisted, so after a
    /// restart it is applied from the log, and new writes succeed.
    #[test]
    fn a_failed_commit_apply_stops_apply_without_moving_the_applied_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut core = leader(store.clone(), 1);
        let applied = store.applied();
        let raft_applied = core.raft().raft_log.applied;
        store.fail_after(StoreOp::CommitApply, 0);
        let a = propose(&mut core, "a");
        let err = core.process().expect_err("commit_apply failed");
        assert!(
            matches!(&err, NodeError::Store(m) if m.contains("injected CommitApply failure")),
            "{err}"
        );
        assert_eq!(store.applied(), applied);
        assert_eq!(core.raft().raft_log.applied, raft_applied);
        assert!(core.raft().raft_log.committed > applied, "a was committed");
        assert!(!has_key(&store, "a"));
        assert_never_acked(a, core);

        drop(store);
        let store = open(dir.path());
        let mut core = leader(store.clone(), 2);
        assert!(store.applied() > applied);
        assert!(
            has_key(&store, "a"),
            "the committed entry applies on restart"
        );
        let mut b = propose(&mut core, "b");
        core.process().expect("process after restart");
        assert_acked(&mut b);
        assert!(has_key(&store, "b"));
    }

    /// A command over `MAX_COMMAND_BYTES` is refused before it enters the log (followers would
    /// refuse the append carrying it and the log would stall behind it); the next one commits.
    #[test]
    fn an_oversized_command_is_refused_before_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = leader(open(dir.path()), 9);
        let last = core.raft().raft_log.last_index();
        let (tx, mut rx) = oneshot::channel();
        core.propose_bytes(vec![0; crate::service::MAX_COMMAND_BYTES + 1], tx);
        let err = rx.try_recv().expect("answered at once").unwrap_err();
        assert!(matches!(err, NodeError::TooLarge(_)), "{err:?}");
        let code = err.detail(&BTreeMap::new()).code();
        assert_eq!(code, anode_proto::ErrorCode::InvalidArgument);
        core.process().expect("process");
        assert_eq!(core.raft().raft_log.last_index(), last);
        let mut ok = propose(&mut core, "after");
        core.process().expect("process");
        assert_acked(&mut ok);
    }
}
