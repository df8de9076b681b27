//! Reads on the real raft `Core` (3 members over RocksDB in temp dirs, messages moved by hand,
//! a clock set by the test): a leader holding a lease answers without any message; a lapsed
//! lease (a leader stopped while its clock ran on) needs a ReadIndex round; one round covers
//! every read queued when it left and none that came after; a leadership transfer ends the
//! lease; a member that just started refuses votes.

use std::collections::BTreeMap;
use std::sync::Arc;

use anode_master::node::{bootstrap_store, Core, NodeConfig, NodeError, Outbox};
use anode_master::store::RaftStore;
use parking_lot::Mutex;
use raft::eraftpb::{Message, MessageType};
use raft::StateRole;
use tokio::sync::oneshot;

#[derive(Default)]
struct Collect(Mutex<Vec<Message>>);

impl Outbox for Collect {
    fn send(&self, msgs: Vec<Message>, _members: &BTreeMap<u64, String>) {
        self.0.lock().extend(msgs);
    }
}

type ReadRx = oneshot::Receiver<Result<(), NodeError>>;

struct Cluster {
    cores: BTreeMap<u64, Core>,
    outboxes: BTreeMap<u64, Arc<Collect>>,
    /// Messages sent and not yet delivered.
    net: Vec<Message>,
    now_ms: u64,
    _dir: tempfile::TempDir,
}

fn peers() -> BTreeMap<u64, String> {
    (1..=3).map(|i| (i, format!("m-{i}"))).collect()
}

fn cfg(id: u64) -> NodeConfig {
    NodeConfig {
        id,
        election_ticks: 10,
        // Member 1 times out first, so it leads.
        min_election_ticks: 10 + id as usize * 3,
        max_election_ticks: 11 + id as usize * 3,
        heartbeat_ticks: 2,
        ..Default::default()
    }
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            cores: BTreeMap::new(),
            outboxes: BTreeMap::new(),
            net: Vec::new(),
            now_ms: 0,
            _dir: dir,
        };
        for id in 1..=3 {
            let path = c._dir.path().join(format!("m{id}"));
            let store = RaftStore::open(&path).unwrap();
            bootstrap_store(&store, &peers()).unwrap();
            drop(store);
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: u64) {
        drop(self.cores.remove(&id)); // a restart: the old incarnation goes first
        let path = self._dir.path().join(format!("m{id}"));
        let store = RaftStore::open(&path).unwrap();
        let out = Arc::new(Collect::default());
        let mut core = Core::new(cfg(id), store, peers(), out.clone(), id * 7).unwrap();
        core.set_clock(self.now_ms);
        self.cores.insert(id, core);
        self.outboxes.insert(id, out);
    }

    fn collect(&mut self) {
        for out in self.outboxes.values() {
            self.net.extend(std::mem::take(&mut *out.0.lock()));
        }
    }

    /// Process every member (no tick) and collect what they send.
    fn process(&mut self) {
        for core in self.cores.values_mut() {
            core.set_clock(self.now_ms);
            core.process().unwrap();
        }
        self.collect();
    }

    /// Deliver everything in flight (to members in `up`) until the network is quiet.
    fn settle(&mut self, up: &[u64]) {
        for _ in 0..50 {
            self.process();
            if self.net.is_empty() {
                return;
            }
            for m in std::mem::take(&mut self.net) {
                if up.contains(&m.to) && up.contains(&m.from) {
                    let core = self.cores.get_mut(&m.to).unwrap();
                    core.set_clock(self.now_ms);
                    core.step(m);
                }
            }
        }
        panic!("network never settled");
    }

    /// One 100 ms tick of every member in `up`, then settle.
    fn tick(&mut self, up: &[u64]) {
        self.now_ms += 100;
        for id in up {
            let core = self.cores.get_mut(id).unwrap();
            core.set_clock(self.now_ms);
            core.tick();
        }
        self.settle(up);
    }

    fn leader(&self) -> Option<u64> {
        self.cores
            .iter()
            .find(|(_, c)| c.raft().state == StateRole::Leader)
            .map(|(id, _)| *id)
    }

    fn elect(&mut self) -> u64 {
        for _ in 0..100 {
            self.tick(&[1, 2, 3]);
            if let Some(l) = self.leader() {
                // Commit the leader's first entry of its term.
                for _ in 0..3 {
                    self.tick(&[1, 2, 3]);
                }
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn read(&mut self, id: u64) -> ReadRx {
        let (tx, rx) = oneshot::channel();
        let core = self.cores.get_mut(&id).unwrap();
        core.set_clock(self.now_ms);
        core.read_index(tx);
        rx
    }
}

fn answered(rx: &mut ReadRx) -> Option<Result<(), NodeError>> {
    rx.try_recv().ok()
}

/// Heartbeats carrying a read context (a ReadIndex round) in `msgs`.
fn round_heartbeats(msgs: &[Message]) -> usize {
    msgs.iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgHeartbeat && !m.context.is_empty())
        .count()
}

#[test]
fn a_leased_read_sends_nothing_and_a_lapsed_lease_needs_a_round() {
    let mut c = Cluster::new();
    let l = c.elect();
    // The first read pays a round (no lease yet); it confirms the lease.
    let mut first = c.read(l);
    c.settle(&[1, 2, 3]);
    assert!(answered(&mut first).is_some_and(|r| r.is_ok()));
    assert!(c.cores[&l].holds_lease());

    // Inside the lease: answered at once, nothing sent.
    let mut rx = c.read(l);
    c.process();
    assert!(answered(&mut rx).is_some_and(|r| r.is_ok()));
    assert_eq!(round_heartbeats(&c.net), 0, "a leased read sends no round");
    assert!(c.net.is_empty(), "nothing sent: {:?}", c.net);

    // The leader stops (no ticks, no messages) while its clock runs on past the lease.
    c.now_ms += 5_000;
    let mut late = c.read(l);
    c.process();
    assert!(
        answered(&mut late).is_none(),
        "a lapsed lease answers nothing"
    );
    assert_eq!(round_heartbeats(&c.net), 2, "one round to both followers");
    c.settle(&[1, 2, 3]);
    assert!(answered(&mut late).is_some_and(|r| r.is_ok()));
}

#[test]
fn one_round_covers_the_queued_reads_and_none_after_it() {
    let mut c = Cluster::new();
    let l = c.elect();
    c.now_ms += 10_000; // no lease
    let mut batch: Vec<ReadRx> = (0..20).map(|_| c.read(l)).collect();
    c.process();
    let sent = std::mem::take(&mut c.net);
    assert_eq!(round_heartbeats(&sent), 2, "twenty reads, one round");
    // A read arriving while the round is in flight waits for the next one.
    let mut later = c.read(l);
    c.process();
    assert_eq!(
        round_heartbeats(&c.net),
        0,
        "no second round while one is in flight"
    );
    // Deliver the first round's heartbeats and bring back the answers.
    for m in sent {
        c.cores.get_mut(&m.to).unwrap().step(m);
    }
    c.process();
    let acks = std::mem::take(&mut c.net);
    // The clock moves past any lease the round gave, so `later` cannot ride on it.
    c.now_ms += 10_000;
    for m in acks {
        c.cores.get_mut(&m.to).unwrap().step(m);
    }
    c.process();
    for rx in &mut batch {
        assert!(answered(rx).is_some_and(|r| r.is_ok()));
    }
    assert!(
        answered(&mut later).is_none(),
        "not answered by an earlier round"
    );
    assert_eq!(round_heartbeats(&c.net), 2, "the next round covers it");
    c.settle(&[1, 2, 3]);
    assert!(answered(&mut later).is_some_and(|r| r.is_ok()));
}

#[test]
fn leadership_transfer_ends_the_lease() {
    let mut c = Cluster::new();
    let l = c.elect();
    let mut first = c.read(l);
    c.settle(&[1, 2, 3]);
    assert!(answered(&mut first).is_some());
    assert!(c.cores[&l].holds_lease());
    let to = if l == 1 { 2 } else { 1 };
    // Transfer with the transferee cut off: the leader keeps leading, without a lease.
    c.cores.get_mut(&l).unwrap().transfer_leader(to);
    assert!(
        !c.cores[&l].holds_lease(),
        "a transfer ends the lease at once"
    );
    let up: Vec<u64> = (1..=3).filter(|i| *i != to).collect();
    for _ in 0..25 {
        c.tick(&up);
    }
    assert_eq!(c.leader(), Some(l), "transfer aborted, same leader");
    let mut rx = c.read(l);
    c.process();
    assert!(
        answered(&mut rx).is_none(),
        "no lease for the rest of the term"
    );
    assert_eq!(
        round_heartbeats(&c.net),
        2,
        "a ReadIndex round (one follower is cut off)"
    );
    c.settle(&up);
    assert!(answered(&mut rx).is_some_and(|r| r.is_ok()));
}

#[test]
fn a_member_that_just_started_refuses_votes() {
    let mut c = Cluster::new();
    let l = c.elect();
    let f = if l == 3 { 2 } else { 3 };
    c.start(f); // restart: forgets the leader
    let term = c.cores[&f].raft().term;
    let mut vote = Message::default();
    vote.set_msg_type(MessageType::MsgRequestPreVote);
    vote.from = if l == 1 { 2 } else { 1 };
    vote.to = f;
    vote.term = term + 1;
    vote.log_term = c.cores[&f].raft().raft_log.last_term();
    vote.index = c.cores[&f].raft().raft_log.last_index();
    c.cores.get_mut(&f).unwrap().step(vote.clone());
    c.process();
    let to_voter: Vec<_> = c.net.iter().filter(|m| m.to == vote.from).collect();
    assert!(
        to_voter.is_empty(),
        "refused without an answer: {to_voter:?}"
    );
    c.net.clear();
    // After an election timeout of ticks it answers (grants: the log is up to date).
    for _ in 0..10 {
        c.cores.get_mut(&f).unwrap().tick();
    }
    c.cores.get_mut(&f).unwrap().step(vote.clone());
    c.process();
    assert!(c
        .net
        .iter()
        .any(|m| m.to == vote.from && m.get_msg_type() == MessageType::MsgRequestPreVoteResponse));
}
