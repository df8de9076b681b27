//! The linearizability checker: Wing & Gong's search with Lowe's memoization, as in
//! Porcupine, applied per key (P-compositionality: a map history is linearizable iff each
//! key's sub-history is linearizable against a register model).
//!
//! Per key, calls and returns are laid out in one time-ordered doubly linked list (calls
//! before returns at equal times, so touching intervals count as concurrent). The search
//! walks the list: at a call it tries to linearize that operation now (the model must accept
//! it, and the pair (set of linearized operations, model state) must be new); at a return of
//! an operation not yet linearized it backtracks. Unknown operations return at +infinity, so
//! they may take effect at any point after their call or never.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Func, Operation, Outcome};

/// Search budget.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Maximum search steps over the whole history (each list visit is one step); past it
    /// the verdict is [`Verdict::Unknown`].
    pub steps_max: u64,
    /// Shrink a failing key's operations to a minimal failing set (removing reads only).
    pub shrink: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            steps_max: 50_000_000,
            shrink: true,
        }
    }
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable,
    /// This key's history has none.
    NotLinearizable {
        /// The key.
        key: String,
        /// Descriptions of a failing subset of the key's operations (writes plus the reads
        /// that cannot be dropped without the history becoming linearizable).
        ops: Vec<String>,
    },
    /// The step budget ran out first.
    Unknown {
        /// Keys checked completely before the budget ran out.
        keys_checked: usize,
    },
}

/// Model operation on one key; values interned: 0 = absent, v + 1 = value v.
#[derive(Clone, Copy, Debug)]
enum Step {
    Write(u32),
    Read(u32),
}

fn apply(state: u32, step: Step) -> Option<u32> {
    match step {
        Step::Write(v) => Some(v),
        Step::Read(v) if v == state => Some(state),
        Step::Read(_) => None,
    }
}

/// Check a paired history (see [`crate::History::operations`]).
pub fn check(ops: &[Operation], opts: Options) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    // A read with an unknown result constrains nothing (pairing already drops them).
    for op in ops
        .iter()
        .filter(|o| !(o.f == Func::Get && o.outcome == Outcome::Unknown))
    {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut budget = opts.steps_max;
    let mut unknown = false;
    let mut keys_checked = 0;
    for (key, key_ops) in &by_key {
        match check_key(key_ops, &mut budget) {
            Some(true) => keys_checked += 1,
            Some(false) => {
                let ops = if opts.shrink {
                    shrink(key_ops, &mut budget)
                } else {
                    key_ops.to_vec()
                };
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    ops: ops.iter().map(|o| o.describe()).collect(),
                };
            }
            None => unknown = true,
        }
    }
    if unknown {
        Verdict::Unknown { keys_checked }
    } else {
        Verdict::Linearizable
    }
}

/// Greedily drop reads while the rest stays non-linearizable. Dropping a read never turns a
/// linearizable history into a non-linearizable one, so what remains still fails for a
/// reason present in the original. Stops early (keeping what it has) if the budget runs out.
fn shrink<'a>(ops: &[&'a Operation], budget: &mut u64) -> Vec<&'a Operation> {
    let mut kept: Vec<&Operation> = ops.to_vec();
    let mut i = 0;
    while i < kept.len() {
        if kept[i].f != Func::Get {
            i += 1;
            continue;
        }
        let mut trial = kept.clone();
        trial.remove(i);
        match check_key(&trial, budget) {
            Some(false) => kept = trial,
            Some(true) => i += 1,
            None => break,
        }
    }
    kept
}

/// One node of the call/return list. Node 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// Operation index.
    op: usize,
    /// For a call node: index of its return node. `usize::MAX` for returns and the head.
    ret: usize,
}

const NONE: usize = usize::MAX;

/// Build the time-ordered list and the model steps of one key's operations.
fn build<'a>(ops: &[&'a Operation]) -> (Vec<Node>, Vec<Step>) {
    let mut values: HashMap<&'a str, u32> = HashMap::new();
    let mut intern = |v: &'a Option<String>| -> u32 {
        match v {
            None => 0,
            Some(s) => {
                let next = values.len() as u32 + 1;
                *values.entry(s.as_str()).or_insert(next)
            }
        }
    };
    let steps: Vec<Step> = ops
        .iter()
        .map(|op| match (op.f, &op.outcome) {
            (Func::Put, _) => Step::Write(intern(&op.input)),
            (Func::Delete, _) => Step::Write(0),
            (Func::Get, Outcome::Ok(v)) => Step::Read(intern(v)),
            (Func::Get, Outcome::Unknown) => unreachable!("filtered out by check()"),
        })
        .collect();
    // (time, 0 = call / 1 = return, op index)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call_ns, 0, i));
        events.push((op.return_ns, 1, i));
    }
    events.sort_unstable();
    let mut nodes = vec![Node {
        prev: NONE,
        next: NONE,
        op: NONE,
        ret: NONE,
    }];
    let mut call_node = vec![NONE; ops.len()];
    for &(_, kind, op) in &events {
        let id = nodes.len();
        let prev = id - 1;
        nodes[prev].next = id;
        nodes.push(Node {
            prev,
            next: NONE,
            op,
            ret: NONE,
        });
        if kind == 0 {
            call_node[op] = id;
        } else {
            nodes[call_node[op]].ret = id;
        }
    }
    (nodes, steps)
}

fn unlink(nodes: &mut [Node], id: usize) {
    let (p, n) = (nodes[id].prev, nodes[id].next);
    nodes[p].next = n;
    if n != NONE {
        nodes[n].prev = p;
    }
}

fn relink(nodes: &mut [Node], id: usize) {
    let (p, n) = (nodes[id].prev, nodes[id].next);
    nodes[p].next = id;
    if n != NONE {
        nodes[n].prev = id;
    }
}

/// `Some(true)` linearizable, `Some(false)` not, `None` budget exhausted.
fn check_key(ops: &[&Operation], budget: &mut u64) -> Option<bool> {
    let (mut nodes, steps) = build(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut cur = nodes[0].next;
    while nodes[0].next != NONE {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let node = nodes[cur];
        if node.ret == NONE {
            // A return whose operation is not linearized yet: undo the last choice.
            let Some((call, prev_state)) = stack.pop() else {
                return Some(false);
            };
            state = prev_state;
            let op = nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            let ret = nodes[call].ret;
            relink(&mut nodes, ret);
            relink(&mut nodes, call);
            cur = nodes[call].next;
            continue;
        }
        let Some(next_state) = apply(state, steps[node.op]) else {
            cur = node.next;
            continue;
        };
        let mut with = linearized.clone();
        with[node.op / 64] |= 1 << (node.op % 64);
        if !seen.insert((with.clone(), next_state)) {
            cur = node.next;
            continue;
        }
        stack.push((cur, state));
        state = next_state;
        linearized = with;
        unlink(&mut nodes, cur);
        unlink(&mut nodes, node.ret);
        cur = nodes[0].next;
    }
    Some(true)
}
