//! Pure membership decisions: may a member be removed, who takes over, how a member looks
//! in `anode ctl status`.

use anode_proto::{ErrorCode, ErrorDetail, MemberStatus};

use std::collections::BTreeMap;

/// A member's raft role, as this member sees itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or has none yet).
    #[default]
    Follower,
    /// Campaigning.
    Candidate,
    /// Pre-vote campaign.
    PreCandidate,
    /// Leader of the current term.
    Leader,
    /// The node thread stopped (shutdown or a fatal store error).
    Stopped,
}

impl Role {
    /// The name shown in `anode ctl status` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "precandidate",
            Role::Leader => "leader",
            Role::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Role and progress of the group as seen by this member, refreshed by the node thread.
#[derive(Clone, Debug, Default)]
pub struct NodeStatus {
    /// This member's id.
    pub id: u64,
    /// Known leader (0 = none).
    pub leader_id: u64,
    /// Current term.
    pub term: u64,
    /// This member's role.
    pub role: Role,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// First log index still stored.
    pub first_index: u64,
    /// Voters of the current configuration.
    pub voters: Vec<u64>,
    /// Learners of the current configuration.
    pub learners: Vec<u64>,
    /// Leader only: matched index per member.
    pub matched: BTreeMap<u64, u64>,
    /// Leader only: members heard from within the election timeout.
    pub recent_active: BTreeMap<u64, bool>,
    /// Member addresses (from the replicated state, plus configured peers).
    pub members: BTreeMap<u64, String>,
}

/// A refused membership request; [`MembershipError::detail`] is its wire form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A member id of 0 or an empty address.
    #[error("member id must be non-zero and addr non-empty")]
    InvalidMember,
    /// The member to add already votes.
    #[error("{0} is already a voter")]
    AlreadyMember(u64),
    /// The member named is neither a voter nor a learner.
    #[error("{0} is not a member")]
    NotMember(u64),
    /// Leadership can only move to a voter.
    #[error("{0} is not a voter")]
    NotVoter(u64),
    /// The removal would leave the group without voters.
    #[error("removing {0} would leave no voters")]
    NoVotersLeft(u64),
    /// The removal would leave fewer reachable voters than a majority of the new set.
    #[error("removing {id} would lose quorum: {active} of the remaining {remaining} voters are reachable, {majority} needed")]
    WouldLoseQuorum {
        /// The member to remove.
        id: u64,
        /// Remaining voters recently heard from.
        active: usize,
        /// Remaining voters.
        remaining: usize,
        /// Voters a majority of the new set needs.
        majority: usize,
    },
    /// The leader was asked to remove itself and no voter can take over.
    #[error("no other voter can take over leadership")]
    NoSuccessor,
}

impl MembershipError {
    /// The error as it crosses a process (the member id as its resource).
    pub fn detail(&self) -> ErrorDetail {
        let (code, id) = match self {
            MembershipError::InvalidMember => (ErrorCode::InvalidArgument, None),
            MembershipError::AlreadyMember(id) => (ErrorCode::AlreadyMember, Some(*id)),
            MembershipError::NotMember(id) | MembershipError::NotVoter(id) => {
                (ErrorCode::NotMember, Some(*id))
            }
            MembershipError::NoVotersLeft(id) | MembershipError::WouldLoseQuorum { id, .. } => {
                (ErrorCode::WouldLoseQuorum, Some(*id))
            }
            MembershipError::NoSuccessor => (ErrorCode::WouldLoseQuorum, None),
        };
        let d = ErrorDetail::new(code, self.to_string());
        match id {
            Some(id) => d.with_resource(id.to_string()),
            None => d,
        }
    }
}

/// Refuse a removal that would leave the group without a working quorum: after removing
/// `id`, the voters this leader recently heard from must still form a majority of the new
/// voter set, and at least one voter must remain.
pub fn check_removal(st: &NodeStatus, id: u64) -> Result<(), MembershipError> {
    let remaining: Vec<u64> = st.voters.iter().copied().filter(|v| *v != id).collect();
    if st.learners.contains(&id) {
        return Ok(());
    }
    if remaining.is_empty() {
        return Err(MembershipError::NoVotersLeft(id));
    }
    let active = remaining
        .iter()
        .filter(|v| st.recent_active.get(v).copied().unwrap_or(false))
        .count();
    let majority = remaining.len() / 2 + 1;
    if active < majority {
        return Err(MembershipError::WouldLoseQuorum {
            id,
            active,
            remaining: remaining.len(),
            majority,
        });
    }
    Ok(())
}

/// The voter (other than the leader) with the highest matched index that is recently active.
pub fn best_successor(st: &NodeStatus) -> Option<u64> {
    st.voters
        .iter()
        .copied()
        .filter(|v| *v != st.id && st.recent_active.get(v).copied().unwrap_or(false))
        .max_by_key(|v| {
            (
                st.matched.get(v).copied().unwrap_or(0),
                std::cmp::Reverse(*v),
            )
        })
}

/// How member `id` appears in a status report from this member's point of view.
pub fn member_status(st: &NodeStatus, id: u64) -> MemberStatus {
    let role = if id == st.leader_id {
        "leader"
    } else if st.learners.contains(&id) {
        "learner"
    } else if id == st.id {
        st.role.as_str()
    } else {
        "follower"
    };
    let matched = st.matched.get(&id).copied().unwrap_or(0);
    MemberStatus {
        id,
        addr: st.members.get(&id).cloned().unwrap_or_default(),
        role: role.to_string(),
        applied_index: if id == st.id { st.applied } else { 0 },
        match_index: matched,
        lag: if st.matched.is_empty() {
            0
        } else {
            st.last_index.saturating_sub(matched)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(voters: &[u64], active: &[u64]) -> NodeStatus {
        let mut st = NodeStatus {
            id: 1,
            leader_id: 1,
            voters: voters.to_vec(),
            ..Default::default()
        };
        for v in voters {
            st.recent_active.insert(*v, active.contains(v));
            st.matched.insert(*v, 10 + v);
        }
        st
    }

    #[test]
    fn removal_quorum_table() {
        // (voters, active, remove, allowed)
        let cases: &[(&[u64], &[u64], u64, bool)] = &[
            (&[1, 2, 3], &[1, 2, 3], 3, true),
            (&[1, 2, 3], &[1, 2], 3, true),
            (&[1, 2, 3], &[1, 3], 2, true),
            (&[1, 2, 3], &[1], 2, false),
            (&[1, 2, 3, 4], &[1, 2], 3, true),
            (&[1, 2, 3, 4, 5], &[1, 2], 3, false),
            (&[1, 2, 3, 4], &[1, 2, 4], 3, true),
            (&[1], &[1], 1, false),
            (&[1, 2], &[1, 2], 2, true),
        ];
        for (voters, active, id, allowed) in cases {
            let st = status(voters, active);
            let got = check_removal(&st, *id);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "voters {voters:?} active {active:?} remove {id}"
            );
            if let Err(e) = got {
                assert_eq!(e.detail().code(), ErrorCode::WouldLoseQuorum);
                assert_eq!(e.detail().resource, id.to_string());
            }
        }
    }

    #[test]
    fn successor_is_most_caught_up_active_voter() {
        let st = status(&[1, 2, 3], &[1, 2, 3]);
        assert_eq!(best_successor(&st), Some(3));
        let st = status(&[1, 2, 3], &[1, 2]);
        assert_eq!(best_successor(&st), Some(2));
        let st = status(&[1], &[1]);
        assert_eq!(best_successor(&st), None);
    }
}
