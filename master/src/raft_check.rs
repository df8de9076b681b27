//! Validation of raft messages from the network, before raft-rs `step` sees them.
//!
//! raft-rs trusts its peers: several inputs reach a `fatal!` (a panic, and with abort-on-panic
//! the end of the process) or corrupt its progress tracking. Each guard below names the path in
//! raft-rs 0.7 it closes:
//!
//! - `RaftLog::commit_to` panics when a heartbeat's `commit` is beyond the local last index
//!   (`handle_heartbeat`): a heartbeat may not commit past what this member holds (a leader
//!   sends `min(matched, committed)`, never more).
//! - `RaftLog::maybe_append` panics when an entry conflicts with a committed one, slices
//!   `ents[conflict - (index + 1)..]` and `append` computes `ents[0].index - 1`: entries of an
//!   append must be numbered `index + 1, index + 2, ...` (no overflow) with terms that never go
//!   down, never above the message's term, and never below `log_term`.
//! - `handle_append_entries`' rejection path panics when `find_conflict_by_term` walks below the
//!   first index (`term(..) must be valid`): `log_term` may not be below the term of the local
//!   committed entry (every later leader's log has it, with terms that only grow), in an append
//!   of the member's term or a later one (raft-rs answers an older term's append unread).
//! - `Raft::restore` panics when a snapshot's conf state cannot be restored or restores to
//!   something else (`unable to restore config`, `invalid restore`): a snapshot's conf state
//!   must restore exactly (checked with raft-rs's own `Changer`), its index and term be non-zero
//!   and its term not above the message's. Its data must decode as the store will decode it
//!   at install (a failed install stops the member).
//! - `step_leader` panics on an empty `MsgPropose` and indexes `entries[0]` of a `MsgReadIndex`:
//!   proposals and reads never travel between Anode masters (a member proposes and reads only
//!   while it leads), so both are refused, with every other local-only type (`MsgHup`,
//!   `MsgBeat`, `MsgUnreachable`, `MsgSnapStatus`, `MsgCheckQuorum`) and `MsgReadIndexResp`.
//! - A follower forwarding a `MsgTransferLeader` that carries a term panics in `Raft::send`
//!   (`term should not be set`), and every such message from the network carries one. Anode
//!   transfers leadership only on the leader (`Core` drops a transfer request once it no longer
//!   leads), so the type never travels and is refused.
//! - A leader takes an append response's index as the follower's match: an index beyond the
//!   local log makes it probe for entries that do not exist. Responses may not acknowledge or
//!   hint past the local last index.
//! - `MsgTimeoutNow` starts an election at once: only the known leader of the current term may
//!   send it.
//!
//! Caps: entries per message and their bytes ([`MAX_ENTRIES_PER_MESSAGE`],
//! [`MAX_ENTRY_BYTES_PER_MESSAGE`]). Entries only in `MsgAppend`, a snapshot only in
//! `MsgSnapshot`. The message must be addressed to this member, from another non-zero id, with
//! a non-zero term (a zero term marks a local message in raft-rs).
//!
//! Who may send raft messages at all (members of the configuration, identity from the TLS
//! certificate) is checked at the transport edge, not here. This function is pure: it looks at
//! the message and a [`LocalView`] of this member, nothing else.

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfState, Message, MessageType};
use raft::{Changer, ProgressTracker};

/// Most entries one raft message may carry. The leader's appends are capped by bytes
/// (`MAX_APPEND_BYTES`, 64 KiB); a command encodes to tens of bytes at least, so a legitimate
/// append carries a few thousand entries at most.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 16_384;

/// Largest index or term a message may name: 2^62. No log gets near it (a million commits a
/// second for 146,000 years), and it leaves raft-rs room for the `index + 1` arithmetic that
/// overflows at u64::MAX (a snapshot at index u64::MAX panicked a follower in
/// `log_unstable::restore`; found by the proptest below).
pub const MAX_RAFT_NUMBER: u64 = 1 << 62;

/// Most entry bytes (data + context) one raft message may carry: one command may exceed the
/// leader's 64 KiB append cap on its own (raft-rs always sends at least one entry), and a
/// command is bounded at the service edge (`service::MAX_COMMAND_BYTES`, 8 MiB), plus slack
/// for entry contexts.
pub const MAX_ENTRY_BYTES_PER_MESSAGE: usize = 9 << 20;

// A leader's largest append (one command, or entries up to raft's 64 KiB cap) must pass.
const _: () = assert!(
    crate::service::MAX_COMMAND_BYTES + (64 << 10) <= MAX_ENTRY_BYTES_PER_MESSAGE,
    "followers would refuse appends the leader sends"
);

/// What this member knows of its own raft state when a message arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalView {
    /// This member's id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// Known leader of the current term (0 = none).
    pub leader_id: u64,
    /// Last index of the local log (stable or not).
    pub last_index: u64,
    /// Local commit index.
    pub committed: u64,
    /// Term of the entry at `committed` (0 when the log is empty).
    pub committed_term: u64,
}

impl LocalView {
    /// The view of a raft-rs member.
    pub fn of<S: raft::Storage>(r: &raft::Raft<S>) -> LocalView {
        let committed = r.raft_log.committed;
        LocalView {
            id: r.id,
            term: r.term,
            leader_id: r.leader_id,
            last_index: r.raft_log.last_index(),
            committed,
            committed_term: r.raft_log.term(committed).unwrap_or(0),
        }
    }
}

/// Why a raft message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftMessageError {
    /// A type raft-rs only creates locally (or that Anode never sends between members).
    #[error("{0:?} never comes from the network")]
    LocalOnly(MessageType),
    /// Addressed to another member.
    #[error("addressed to {to}, this is {id}")]
    WrongRecipient {
        /// The message's `to`.
        to: u64,
        /// This member.
        id: u64,
    },
    /// `from` is 0 or this member.
    #[error("bad sender id {0}")]
    BadSender(u64),
    /// Term 0 (raft-rs treats it as a local message).
    #[error("term 0 from the network")]
    ZeroTerm,
    /// An index or term over [`MAX_RAFT_NUMBER`].
    #[error("{field} {value} is over {MAX_RAFT_NUMBER}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// More entries than [`MAX_ENTRIES_PER_MESSAGE`].
    #[error("{count} entries (max {max})")]
    TooManyEntries {
        /// Entries carried.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// More entry bytes than [`MAX_ENTRY_BYTES_PER_MESSAGE`].
    #[error("{bytes} entry bytes (max {max})")]
    TooManyBytes {
        /// Bytes carried.
        bytes: usize,
        /// The cap.
        max: usize,
    },
    /// Entries or a snapshot on a type that carries none.
    #[error("{0:?} may not carry entries or a snapshot")]
    UnexpectedPayload(MessageType),
    /// A heartbeat committing beyond the local log.
    #[error("heartbeat commit {commit} beyond last index {last_index}")]
    CommitBeyondLog {
        /// The heartbeat's commit.
        commit: u64,
        /// The local last index.
        last_index: u64,
    },
    /// Append entries not numbered `index + 1, index + 2, ...`.
    #[error("entry {position} has index {found}, expected {expected}")]
    NotContiguous {
        /// Position in the message.
        position: usize,
        /// Index found.
        found: u64,
        /// Index expected.
        expected: u64,
    },
    /// The last index of an append overflows u64.
    #[error("append index overflows")]
    IndexOverflow,
    /// Entry terms going down, above the message term or below `log_term`.
    #[error("entry at {index} has term {term}, outside [{min}, {max}]")]
    EntryTerm {
        /// The entry's index.
        index: u64,
        /// Its term.
        term: u64,
        /// Lowest term allowed there.
        min: u64,
        /// Highest term allowed there.
        max: u64,
    },
    /// An append whose `log_term` is above the message term or below the committed term.
    #[error("append log_term {log_term} outside [{min}, {max}]")]
    LogTerm {
        /// The message's log_term.
        log_term: u64,
        /// Term of the local committed entry.
        min: u64,
        /// The message term.
        max: u64,
    },
    /// An append response acknowledging or hinting beyond the local log.
    #[error("response index {index} beyond last index {last_index}")]
    AckBeyondLog {
        /// The largest index in the response.
        index: u64,
        /// The local last index.
        last_index: u64,
    },
    /// A snapshot message without a usable snapshot.
    #[error("bad snapshot: {0}")]
    Snapshot(String),
    /// `MsgTimeoutNow` from a member that is not the current leader.
    #[error("timeout-now from {from}, leader is {leader}")]
    NotFromLeader {
        /// Sender.
        from: u64,
        /// Known leader.
        leader: u64,
    },
}

impl RaftMessageError {
    /// A short stable label (the Prometheus `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            RaftMessageError::LocalOnly(_) => "local_only",
            RaftMessageError::WrongRecipient { .. } => "wrong_recipient",
            RaftMessageError::BadSender(_) => "bad_sender",
            RaftMessageError::ZeroTerm => "zero_term",
            RaftMessageError::OutOfRange { .. } => "out_of_range",
            RaftMessageError::TooManyEntries { .. } => "too_many_entries",
            RaftMessageError::TooManyBytes { .. } => "too_many_bytes",
            RaftMessageError::UnexpectedPayload(_) => "unexpected_payload",
            RaftMessageError::CommitBeyondLog { .. } => "commit_beyond_log",
            RaftMessageError::NotContiguous { .. } => "not_contiguous",
            RaftMessageError::IndexOverflow => "index_overflow",
            RaftMessageError::EntryTerm { .. } => "entry_term",
            RaftMessageError::LogTerm { .. } => "log_term",
            RaftMessageError::AckBeyondLog { .. } => "ack_beyond_log",
            RaftMessageError::Snapshot(_) => "snapshot",
            RaftMessageError::NotFromLeader { .. } => "not_from_leader",
        }
    }
}

/// Check a raft message from a peer against this member's view; `Ok` means raft-rs may step it.
pub fn validate_raft_message(m: &Message, v: &LocalView) -> Result<(), RaftMessageError> {
    use MessageType::*;
    let t = m.get_msg_type();
    match t {
        MsgHup | MsgBeat | MsgPropose | MsgUnreachable | MsgSnapStatus | MsgCheckQuorum
        | MsgReadIndex | MsgReadIndexResp | MsgTransferLeader => {
            return Err(RaftMessageError::LocalOnly(t))
        }
        MsgAppend
        | MsgAppendResponse
        | MsgRequestVote
        | MsgRequestVoteResponse
        | MsgSnapshot
        | MsgHeartbeat
        | MsgHeartbeatResponse
        | MsgTimeoutNow
        | MsgRequestPreVote
        | MsgRequestPreVoteResponse => {}
    }
    check_envelope(m, v)?;
    match t {
        MsgAppend => check_append(m, v)?,
        MsgHeartbeat if m.commit > v.last_index => {
            return Err(RaftMessageError::CommitBeyondLog {
                commit: m.commit,
                last_index: v.last_index,
            })
        }
        MsgAppendResponse => check_append_response(m, v)?,
        MsgSnapshot => check_snapshot(m)?,
        MsgTimeoutNow if m.from != v.leader_id || m.term != v.term => {
            return Err(RaftMessageError::NotFromLeader {
                from: m.from,
                leader: v.leader_id,
            })
        }
        _ => {}
    }
    // Last, so the specific rules above name what they catch.
    check_numbers(m)
}

/// Addressing, term and payload rules every remote message follows.
fn check_envelope(m: &Message, v: &LocalView) -> Result<(), RaftMessageError> {
    if m.to != v.id {
        return Err(RaftMessageError::WrongRecipient { to: m.to, id: v.id });
    }
    if m.from == 0 || m.from == v.id {
        return Err(RaftMessageError::BadSender(m.from));
    }
    if m.term == 0 {
        return Err(RaftMessageError::ZeroTerm);
    }
    let t = m.get_msg_type();
    let has_entries = !m.entries.is_empty();
    let has_snapshot = m.has_snapshot();
    if (has_entries && t != MessageType::MsgAppend)
        || (has_snapshot && t != MessageType::MsgSnapshot)
    {
        return Err(RaftMessageError::UnexpectedPayload(t));
    }
    if m.entries.len() > MAX_ENTRIES_PER_MESSAGE {
        return Err(RaftMessageError::TooManyEntries {
            count: m.entries.len(),
            max: MAX_ENTRIES_PER_MESSAGE,
        });
    }
    let bytes = m.entries.iter().fold(0usize, |n, e| {
        n.saturating_add(e.data.len())
            .saturating_add(e.context.len())
    });
    if bytes > MAX_ENTRY_BYTES_PER_MESSAGE {
        return Err(RaftMessageError::TooManyBytes {
            bytes,
            max: MAX_ENTRY_BYTES_PER_MESSAGE,
        });
    }
    Ok(())
}

/// Every index and term the message names is at most [`MAX_RAFT_NUMBER`].
fn check_numbers(m: &Message) -> Result<(), RaftMessageError> {
    let meta = m.get_snapshot().get_metadata();
    let fields = [
        ("term", m.term),
        ("log_term", m.log_term),
        ("index", m.index),
        ("commit", m.commit),
        ("commit_term", m.commit_term),
        ("reject_hint", m.reject_hint),
        ("request_snapshot", m.request_snapshot),
        ("snapshot index", meta.index),
        ("snapshot term", meta.term),
    ];
    let entries = m
        .entries
        .iter()
        .flat_map(|e| [("entry index", e.index), ("entry term", e.term)]);
    match fields
        .into_iter()
        .chain(entries)
        .find(|(_, v)| *v > MAX_RAFT_NUMBER)
    {
        Some((field, value)) => Err(RaftMessageError::OutOfRange { field, value }),
        None => Ok(()),
    }
}

fn check_append(m: &Message, v: &LocalView) -> Result<(), RaftMessageError> {
    if m.index.checked_add(m.entries.len() as u64).is_none() {
        return Err(RaftMessageError::IndexOverflow);
    }
    // raft-rs answers an append of a lower term than its own without reading it (a deposed
    // leader's, which may not know of later commits): the lower bound is for current ones.
    let current = m.term >= v.term;
    if m.log_term > m.term || (current && m.index >= v.committed && m.log_term < v.committed_term) {
        return Err(RaftMessageError::LogTerm {
            log_term: m.log_term,
            min: v.committed_term,
            max: m.term,
        });
    }
    let mut min_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        let expected = m.index + 1 + i as u64;
        if e.index != expected {
            return Err(RaftMessageError::NotContiguous {
                position: i,
                found: e.index,
                expected,
            });
        }
        if e.term < min_term || e.term > m.term {
            return Err(RaftMessageError::EntryTerm {
                index: e.index,
                term: e.term,
                min: min_term,
                max: m.term,
            });
        }
        min_term = e.term;
    }
    Ok(())
}

fn check_append_response(m: &Message, v: &LocalView) -> Result<(), RaftMessageError> {
    let index = m.index.max(m.reject_hint).max(m.request_snapshot);
    if index > v.last_index {
        return Err(RaftMessageError::AckBeyondLog {
            index,
            last_index: v.last_index,
        });
    }
    Ok(())
}

fn check_snapshot(m: &Message) -> Result<(), RaftMessageError> {
    if !m.has_snapshot() {
        return Err(RaftMessageError::Snapshot("no snapshot".into()));
    }
    let snap = m.get_snapshot();
    let md = snap.get_metadata();
    if md.index == 0 || md.term == 0 {
        return Err(RaftMessageError::Snapshot(format!(
            "index {} term {}",
            md.index, md.term
        )));
    }
    if md.term > m.term {
        return Err(RaftMessageError::Snapshot(format!(
            "snapshot term {} above message term {}",
            md.term, m.term
        )));
    }
    check_conf_state(md.get_conf_state(), md.index).map_err(RaftMessageError::Snapshot)?;
    // The store decodes and checks the data again when it installs it; a failure there stops
    // the member, so a snapshot it would refuse never reaches raft-rs. A streamed snapshot's
    // descriptor must name the snapshot's own index and term (the staged one is checked
    // against it at install).
    crate::store::stream::descriptor_of(snap)
        .map(|_| ())
        .map_err(|e| RaftMessageError::Snapshot(e.to_string()))
}

/// Restore `cs` the way raft-rs's `confchange::restore` does (with its public `Changer`) and
/// check the result is `cs` itself; raft-rs panics on either failure.
pub fn check_conf_state(cs: &ConfState, index: u64) -> Result<(), String> {
    let add = |id: u64, t: ConfChangeType| {
        let mut c = ConfChangeSingle {
            node_id: id,
            ..Default::default()
        };
        c.set_change_type(t);
        c
    };
    let mut outgoing = Vec::new();
    let mut incoming = Vec::new();
    for id in cs.get_voters_outgoing() {
        outgoing.push(add(*id, ConfChangeType::AddNode));
        incoming.push(add(*id, ConfChangeType::RemoveNode));
    }
    for id in cs.get_voters() {
        incoming.push(add(*id, ConfChangeType::AddNode));
    }
    for id in cs.get_learners().iter().chain(cs.get_learners_next()) {
        incoming.push(add(*id, ConfChangeType::AddLearnerNode));
    }
    let mut tracker = ProgressTracker::new(1);
    let next = index.saturating_add(1);
    let err = |e: raft::Error| format!("conf state {cs:?}: {e}");
    if outgoing.is_empty() {
        for cc in incoming {
            let (cfg, changes) = Changer::new(&tracker).simple(&[cc]).map_err(err)?;
            tracker.apply_conf(cfg, changes, next);
        }
    } else {
        for cc in outgoing {
            let (cfg, changes) = Changer::new(&tracker).simple(&[cc]).map_err(err)?;
            tracker.apply_conf(cfg, changes, next);
        }
        let (cfg, changes) = Changer::new(&tracker)
            .enter_joint(cs.auto_leave, &incoming)
            .map_err(err)?;
        tracker.apply_conf(cfg, changes, next);
    }
    let restored = tracker.conf().to_conf_state();
    if !same_conf(cs, &restored) {
        return Err(format!("conf state {cs:?} restores as {restored:?}"));
    }
    Ok(())
}

/// raft-rs's `conf_state_eq`: the same sets, in any order.
fn same_conf(a: &ConfState, b: &ConfState) -> bool {
    fn set(v: &[u64]) -> std::collections::BTreeSet<u64> {
        v.iter().copied().collect()
    }
    let lists = |c: &ConfState| {
        [
            set(c.get_voters()),
            set(c.get_learners()),
            set(c.get_voters_outgoing()),
            set(c.get_learners_next()),
        ]
    };
    lists(a) == lists(b) && a.auto_leave == b.auto_leave
}

#[cfg(test)]
mod tests;
