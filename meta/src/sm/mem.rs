//! The state machine applied in order over an in-memory kv: what one master holds when every
//! command commits at once. The test fakes of the client and the gateway answer from it, so
//! they follow the real namespace rules instead of copies of them.

use anode_proto::command::Op;
use anode_proto::{
    ClientSession, Command, CommandResult, ErrorDetail, NotificationEvent, COMMAND_VERSION,
};

use super::{apply_with_events, check_invariants};
use crate::kv::MemKv;

/// A [`MemKv`] with the next raft index and a fixed clock. [`MemState::propose`] does what the
/// master's write path does with one command: stamp it, apply it, write its mutations.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    /// The state machine's keys (read them with the `state` query functions).
    pub kv: MemKv,
    /// The index of the last applied command.
    pub index: u64,
    /// The leader clock every command is stamped with (`Command::now_ms`).
    pub now_ms: u64,
    /// The object events of every applied command, in order (what watchers would get).
    pub events: Vec<NotificationEvent>,
}

impl MemState {
    /// An empty state whose commands carry `now_ms`.
    pub fn new(now_ms: u64) -> MemState {
        MemState {
            now_ms,
            ..MemState::default()
        }
    }

    /// Apply `op` as the next command. A refusal is the [`ErrorDetail`] the master would send
    /// (`CommandResult::error`) and changes nothing. The invariants (refcounts, counters) are
    /// checked after every command; a violation is a state machine bug and panics.
    pub fn propose(&mut self, op: Op) -> Result<CommandResult, ErrorDetail> {
        self.propose_in(None, op)
    }

    /// [`MemState::propose`] for a write of a client session (the request's
    /// `ClientSession`): a duplicate is answered with its recorded result, not applied.
    pub fn propose_in(
        &mut self,
        session: Option<ClientSession>,
        op: Op,
    ) -> Result<CommandResult, ErrorDetail> {
        self.index += 1;
        let cmd = Command {
            version: COMMAND_VERSION,
            now_ms: self.now_ms,
            session,
            op: Some(op),
        };
        let (muts, res, events) = apply_with_events(&self.kv, self.index, &cmd);
        self.kv.apply(&muts);
        self.events.extend(events);
        if let Err(e) = check_invariants(&self.kv) {
            panic!(
                "state machine invariant broken after command {}: {e}",
                self.index
            );
        }
        match res.error {
            Some(e) => Err(e),
            None => Ok(res),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_proto::*;

    #[test]
    fn commands_apply_in_order_and_refusals_change_nothing() {
        let mut st = MemState::new(42);
        let bucket = || {
            Op::CreateBucket(CreateBucketCmd {
                config: Some(BucketConfig {
                    name: "bkt".into(),
                    ..Default::default()
                }),
            })
        };
        st.propose(bucket()).unwrap();
        assert_eq!(crate::sm::get_bucket(&st.kv, "bkt").unwrap().created_ms, 42);
        let before = st.kv.clone();
        let err = st.propose(bucket()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BucketAlreadyOwnedByYou);
        assert_eq!(st.kv, before);
        assert_eq!(st.index, 2);
    }
}
