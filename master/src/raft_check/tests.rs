use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, Raft};

use super::*;

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn term_at(i: u64) -> u64 {
    match i {
        0 => 0,
        1..=3 => 1,
        4..=6 => 2,
        _ => 3,
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![1, 2, 3].into(),
        ..Default::default()
    }
}

/// A streamed snapshot's descriptor at (index, term).
fn snapshot_data(index: u64, term: u64) -> Vec<u8> {
    crate::store::stream::descriptor_data(index, term)
}

/// Which member the message is stepped into.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// Member 2 following leader 1 in term 3; log 1..=10 (compacted below 3), committed 6.
    Follower,
    /// Member 1 leading in term 4 (its log ends with the empty entry 11, committed).
    Leader,
    /// Member 2 campaigning in term 4.
    Candidate,
}

fn member(who: Who) -> Raft<MemStorage> {
    let id = match who {
        Who::Leader => 1,
        Who::Follower | Who::Candidate => 2,
    };
    let storage = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
    {
        let mut w = storage.wl();
        let ents: Vec<Entry> = (1..=10).map(|i| entry(i, term_at(i))).collect();
        w.append(&ents).unwrap();
        w.set_hardstate(HardState {
            term: 3,
            vote: 1,
            commit: 6,
            ..Default::default()
        });
        w.compact(3).unwrap();
    }
    let cfg = Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 64 << 10,
        max_inflight_msgs: 16,
        ..Default::default()
    };
    let mut r = Raft::new(&cfg, storage, &logger()).unwrap();
    match who {
        Who::Follower => r.become_follower(3, 1),
        Who::Leader => {
            r.become_candidate();
            r.become_leader();
            // As if a quorum acknowledged the leader's empty entry (reads are served).
            let last = r.raft_log.last_index();
            r.raft_log.commit_to(last);
        }
        Who::Candidate => r.become_candidate(),
    }
    r
}

/// Step `m` into a fresh member; Err when raft-rs panicked.
fn step_into(who: Who, m: Message) -> Result<(), String> {
    let mut r = member(who);
    catch_unwind(AssertUnwindSafe(move || {
        let _ = r.step(m);
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// The attack of issue 12: a heartbeat from a higher term committing u64::MAX. raft-rs aborts
/// on it (so this test documents why the check exists); the check refuses it.
#[test]
fn a_forged_heartbeat_kills_raft_rs_and_is_refused() {
    let mut m = msg(MessageType::MsgHeartbeat, 3, 2, 99);
    m.commit = u64::MAX;
    let panic = step_into(Who::Follower, m.clone()).unwrap_err();
    assert!(panic.contains("out of range"), "{panic}");
    let view = LocalView::of(&member(Who::Follower));
    assert_eq!(
        validate_raft_message(&m, &view),
        Err(RaftMessageError::CommitBeyondLog {
            commit: u64::MAX,
            last_index: 10
        })
    );
    // The same heartbeat with a commit the member holds is fine.
    m.commit = 10;
    assert_eq!(validate_raft_message(&m, &view), Ok(()));
    step_into(Who::Follower, m).unwrap();
}

/// One case per rule: (who, message, expected refusal reason or None).
#[test]
fn each_rule_refuses_its_case_and_passes_the_legal_one() {
    use MessageType::*;
    let app = |index: u64, log_term: u64, ents: &[(u64, u64)]| {
        let mut m = msg(MsgAppend, 1, 2, 3);
        m.index = index;
        m.log_term = log_term;
        m.commit = 6;
        m.set_entries(
            ents.iter()
                .map(|(i, t)| entry(*i, *t))
                .collect::<Vec<_>>()
                .into(),
        );
        m
    };
    let resp = |index: u64, reject_hint: u64| {
        let mut m = msg(MsgAppendResponse, 2, 1, 4);
        m.index = index;
        m.reject_hint = reject_hint;
        m.reject = reject_hint != 0;
        m
    };
    let snap = |index: u64, term: u64, voters: Vec<u64>, learners: Vec<u64>| {
        let mut m = msg(MsgSnapshot, 1, 2, 3);
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata().mut_conf_state().voters = voters;
        s.mut_metadata().mut_conf_state().learners = learners;
        s.set_data(snapshot_data(index, term).into());
        m.set_snapshot(s);
        m
    };
    let cases: Vec<(&str, Who, Message, Option<&str>)> = vec![
        (
            "snapshot at index u64::MAX",
            Who::Follower,
            snap(u64::MAX, 1, vec![1, 2, 3], vec![]),
            Some("out_of_range"),
        ),
        (
            "heartbeat of term 2^63",
            Who::Follower,
            msg(MsgHeartbeat, 1, 2, 1 << 63),
            Some("out_of_range"),
        ),
        (
            "hup",
            Who::Follower,
            msg(MsgHup, 1, 2, 3),
            Some("local_only"),
        ),
        (
            "empty propose",
            Who::Leader,
            msg(MsgPropose, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "read index",
            Who::Leader,
            msg(MsgReadIndex, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "read index resp",
            Who::Follower,
            msg(MsgReadIndexResp, 1, 2, 3),
            Some("local_only"),
        ),
        (
            "check quorum",
            Who::Leader,
            msg(MsgCheckQuorum, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "beat",
            Who::Leader,
            msg(MsgBeat, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "unreachable",
            Who::Leader,
            msg(MsgUnreachable, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "snap status",
            Who::Leader,
            msg(MsgSnapStatus, 2, 1, 4),
            Some("local_only"),
        ),
        (
            "transfer leader",
            Who::Follower,
            msg(MsgTransferLeader, 3, 2, 3),
            Some("local_only"),
        ),
        (
            "to another",
            Who::Follower,
            msg(MsgHeartbeat, 1, 3, 3),
            Some("wrong_recipient"),
        ),
        (
            "from zero",
            Who::Follower,
            msg(MsgHeartbeat, 0, 2, 3),
            Some("bad_sender"),
        ),
        (
            "from self",
            Who::Follower,
            msg(MsgHeartbeat, 2, 2, 3),
            Some("bad_sender"),
        ),
        (
            "term zero",
            Who::Follower,
            msg(MsgHeartbeat, 1, 2, 0),
            Some("zero_term"),
        ),
        ("heartbeat", Who::Follower, msg(MsgHeartbeat, 1, 2, 3), None),
        (
            "append",
            Who::Follower,
            app(10, 3, &[(11, 3), (12, 3)]),
            None,
        ),
        (
            "append gap",
            Who::Follower,
            app(10, 3, &[(12, 3)]),
            Some("not_contiguous"),
        ),
        (
            "append old",
            Who::Follower,
            app(6, 2, &[(1, 3)]),
            Some("not_contiguous"),
        ),
        (
            "append down",
            Who::Follower,
            app(10, 3, &[(11, 3), (12, 2)]),
            Some("entry_term"),
        ),
        (
            "append above",
            Who::Follower,
            app(10, 3, &[(11, 4)]),
            Some("entry_term"),
        ),
        (
            "append below log term",
            Who::Follower,
            app(10, 3, &[(11, 2)]),
            Some("entry_term"),
        ),
        (
            "append log term 0",
            Who::Follower,
            app(9, 0, &[]),
            Some("log_term"),
        ),
        (
            "append log term high",
            Who::Follower,
            app(9, 4, &[]),
            Some("log_term"),
        ),
        (
            // A deposed leader's append, below a commit it never learned of: raft-rs answers
            // a lower-term append without reading it, so its log_term is no danger (the
            // whole-cluster simulation sends these after partitions heal).
            "stale append from an older term",
            Who::Candidate,
            app(7, 1, &[]),
            None,
        ),
        (
            "append overflow",
            Who::Follower,
            app(u64::MAX, 3, &[(0, 3)]),
            Some("index_overflow"),
        ),
        (
            "entries on heartbeat",
            Who::Follower,
            {
                let mut m = msg(MsgHeartbeat, 1, 2, 3);
                m.set_entries(vec![entry(11, 3)].into());
                m
            },
            Some("unexpected_payload"),
        ),
        ("ack", Who::Leader, resp(11, 0), None),
        (
            "ack beyond",
            Who::Leader,
            resp(12, 0),
            Some("ack_beyond_log"),
        ),
        (
            "hint beyond",
            Who::Leader,
            resp(11, u64::MAX),
            Some("ack_beyond_log"),
        ),
        (
            "snapshot",
            Who::Follower,
            snap(12, 3, vec![1, 2, 3], vec![]),
            None,
        ),
        (
            "snapshot index 0",
            Who::Follower,
            snap(0, 3, vec![1, 2, 3], vec![]),
            Some("snapshot"),
        ),
        (
            "snapshot term above",
            Who::Follower,
            snap(12, 4, vec![1, 2, 3], vec![]),
            Some("snapshot"),
        ),
        (
            "snapshot voter and learner",
            Who::Follower,
            snap(12, 3, vec![1, 2], vec![2]),
            Some("snapshot"),
        ),
        (
            "snapshot only learners",
            Who::Follower,
            snap(12, 3, vec![], vec![2]),
            Some("snapshot"),
        ),
        (
            "snapshot bad data",
            Who::Follower,
            {
                let mut m = snap(12, 3, vec![1, 2, 3], vec![]);
                m.mut_snapshot().set_data(vec![0xff; 7].into());
                m
            },
            Some("snapshot"),
        ),
        (
            "timeout-now from leader",
            Who::Follower,
            msg(MsgTimeoutNow, 1, 2, 3),
            None,
        ),
        (
            "timeout-now from other",
            Who::Follower,
            msg(MsgTimeoutNow, 3, 2, 3),
            Some("not_from_leader"),
        ),
        (
            "vote",
            Who::Candidate,
            msg(MsgRequestVoteResponse, 1, 2, 4),
            None,
        ),
    ];
    for (name, who, m, want) in cases {
        let view = LocalView::of(&member(who));
        let got = validate_raft_message(&m, &view).err().map(|e| e.reason());
        assert_eq!(got, want, "{name}");
        if want.is_none() {
            step_into(who, m).unwrap_or_else(|p| panic!("{name}: raft-rs panicked: {p}"));
        }
    }
}

/// Each refused case that reaches a raft-rs panic without the check (so the rules are not
/// cosmetic).
#[test]
fn the_refused_fatal_cases_do_panic_raft_rs() {
    use MessageType::*;
    let mut prop = msg(MsgPropose, 2, 1, 0);
    prop.term = 0;
    let mut read = msg(MsgReadIndex, 2, 1, 0);
    read.term = 0;
    let mut snap = msg(MsgSnapshot, 1, 2, 3);
    let mut s = Snapshot::default();
    s.mut_metadata().index = 12;
    s.mut_metadata().term = 3;
    s.mut_metadata().mut_conf_state().voters = vec![1, 2];
    s.mut_metadata().mut_conf_state().learners = vec![2];
    snap.set_snapshot(s);
    let mut old = msg(MsgAppend, 1, 2, 3);
    old.index = 6;
    old.log_term = 2;
    old.set_entries(vec![entry(5, 3)].into());
    let mut low = msg(MsgAppend, 1, 2, 3);
    low.index = 9;
    low.log_term = 0;
    let transfer = msg(MsgTransferLeader, 3, 2, 3);
    let mut max_snap = msg(MsgSnapshot, 1, 2, 3);
    let mut s = Snapshot::default();
    s.mut_metadata().index = u64::MAX;
    s.mut_metadata().term = 1;
    s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    max_snap.set_snapshot(s);
    for (name, who, m) in [
        ("snapshot at index u64::MAX", Who::Follower, max_snap),
        (
            "forwarded transfer-leader at a follower",
            Who::Follower,
            transfer,
        ),
        ("empty propose", Who::Leader, prop),
        ("read index without entries", Who::Leader, read),
        ("voter and learner snapshot", Who::Follower, snap),
        ("append conflicting with committed", Who::Follower, old),
        ("append with log term 0", Who::Follower, low),
    ] {
        assert!(step_into(who, m).is_err(), "{name} did not panic raft-rs");
    }
}

fn any_type() -> impl Strategy<Value = MessageType> {
    (0i32..19).prop_map(|v| {
        <MessageType as protobuf::ProtobufEnum>::from_i32(v).unwrap_or(MessageType::MsgHup)
    })
}

fn num() -> impl Strategy<Value = u64> {
    prop_oneof![16 => 0u64..14, 1 => Just(u64::MAX), 1 => Just(u64::MAX - 1)]
}

fn id_of(who: Who) -> u64 {
    match who {
        Who::Leader => 1,
        Who::Follower | Who::Candidate => 2,
    }
}

/// Entries: contiguous from `index + 1` with non-decreasing terms most of the time, arbitrary
/// otherwise.
fn any_entries() -> impl Strategy<Value = (bool, Vec<(u64, u64)>)> {
    (any::<bool>(), prop::collection::vec((num(), 0u64..6), 0..4))
}

/// Messages near the legal ones: addressed to the member under test, from members 1-3, in
/// terms around its own, with plausible entries, and every field sometimes arbitrary.
fn any_message(who: Who) -> impl Strategy<Value = Message> {
    let me = id_of(who);
    let ids = prop_oneof![6 => 1u64..4, 1 => 0u64..5, 1 => Just(u64::MAX)];
    let to = prop_oneof![4 => Just(me), 1 => 0u64..5];
    let snap = prop::option::of((
        num(),
        0u64..6,
        prop::collection::vec(0u64..5, 0..4),
        prop::collection::vec(0u64..5, 0..3),
        prop::collection::vec(0u64..5, 0..3),
        prop::collection::vec(0u64..5, 0..2),
    ));
    (
        (any_type(), ids, to, prop_oneof![3 => 2u64..6, 1 => 0u64..7]),
        (num(), 0u64..6, num(), num(), num(), any::<bool>()),
        (
            any_entries(),
            snap,
            prop::collection::vec(any::<u8>(), 0..3),
            0u8..10,
        ),
    )
        .prop_map(
            |((t, from, to, term), nums, ((contiguous, ents), snap, ctx, noise))| {
                let (index, log_term, commit, hint, req_snap, reject) = nums;
                let mut m = msg(t, from, to, term);
                // Mostly, payloads only where they belong.
                let ents = if noise == 0 || t == MessageType::MsgAppend {
                    ents
                } else {
                    Vec::new()
                };
                let snap = if noise == 0 || t == MessageType::MsgSnapshot {
                    snap
                } else {
                    None
                };
                m.index = index;
                m.log_term = log_term;
                m.commit = commit;
                m.reject_hint = hint;
                m.request_snapshot = req_snap;
                m.reject = reject;
                m.context = ctx.into();
                let mut min_term = log_term;
                let ents: Vec<Entry> = ents
                    .iter()
                    .enumerate()
                    .map(|(i, (idx, t))| {
                        if contiguous {
                            min_term = min_term.max(*t).min(term);
                            entry(index.wrapping_add(1 + i as u64), min_term)
                        } else {
                            entry(*idx, *t)
                        }
                    })
                    .collect();
                m.set_entries(ents.into());
                if let Some((i, st, voters, learners, out, next)) = snap {
                    let mut s = Snapshot::default();
                    s.mut_metadata().index = i;
                    s.mut_metadata().term = st;
                    let cs = s.mut_metadata().mut_conf_state();
                    cs.voters = voters;
                    cs.learners = learners;
                    cs.voters_outgoing = out;
                    cs.learners_next = next;
                    s.set_data(snapshot_data(i, st).into());
                    m.set_snapshot(s);
                }
                m
            },
        )
}

fn any_who() -> impl Strategy<Value = Who> {
    prop_oneof![Just(Who::Follower), Just(Who::Leader), Just(Who::Candidate)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any message the check lets through is stepped by raft-rs without a panic.
    #[test]
    fn validated_messages_never_panic_raft_rs(
        (who, m) in any_who().prop_flat_map(|w| (Just(w), any_message(w)))
    ) {
        let view = LocalView::of(&member(who));
        if validate_raft_message(&m, &view).is_ok() {
            let r = step_into(who, m.clone());
            prop_assert!(r.is_ok(), "{:?} panicked raft-rs: {:?}\n{:?}", who, r, m);
        }
    }
}

/// The generator reaches messages the check accepts, for every role (else the property above
/// proves nothing).
#[test]
fn the_generator_reaches_accepted_messages() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut accepted = [0usize; 3];
    for (n, who) in [Who::Follower, Who::Leader, Who::Candidate]
        .into_iter()
        .enumerate()
    {
        let view = LocalView::of(&member(who));
        for _ in 0..1000 {
            let m = any_message(who).new_tree(&mut runner).unwrap().current();
            if validate_raft_message(&m, &view).is_ok() {
                accepted[n] += 1;
            }
        }
    }
    // At least a tenth of the messages reach raft-rs for every role.
    assert!(accepted.iter().all(|n| *n >= 100), "{accepted:?}");
}
