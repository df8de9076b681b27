//! Checker tests: hand-written histories with known verdicts, proptests over histories
//! produced by a real sequential map, and the 10,000-operation timing run (`--ignored`).

use std::collections::BTreeMap;

use anode_lincheck::{check_history, Event, EventType, Func, History, Options, Verdict};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Builds histories: `op(process, f, key, value_in, [call, ret], completion)`.
#[derive(Default)]
struct Builder {
    events: Vec<Event>,
    next_id: u64,
}

impl Builder {
    fn op(
        &mut self,
        process: u64,
        f: Func,
        key: &str,
        input: Option<&str>,
        (call, ret): (u64, u64),
        done: (EventType, Option<&str>),
    ) -> &mut Self {
        self.next_id += 1;
        let ev = |kind, value: Option<&str>, time_ns| Event {
            process,
            op_id: self.next_id,
            kind,
            f,
            key: key.to_string(),
            value: value.map(str::to_string),
            time_ns,
        };
        let invoke = ev(EventType::Invoke, input, call);
        let complete = ev(done.0, done.1, ret);
        self.events.push(invoke);
        self.events.push(complete);
        self
    }
    fn put(&mut self, p: u64, key: &str, v: &str, t: (u64, u64)) -> &mut Self {
        self.op(p, Func::Put, key, Some(v), t, (EventType::Ok, None))
    }
    fn put_as(&mut self, p: u64, key: &str, v: &str, t: (u64, u64), kind: EventType) -> &mut Self {
        self.op(p, Func::Put, key, Some(v), t, (kind, None))
    }
    fn get(&mut self, p: u64, key: &str, seen: Option<&str>, t: (u64, u64)) -> &mut Self {
        self.op(p, Func::Get, key, None, t, (EventType::Ok, seen))
    }
    fn delete(&mut self, p: u64, key: &str, t: (u64, u64)) -> &mut Self {
        self.op(p, Func::Delete, key, None, t, (EventType::Ok, None))
    }
    fn verdict(&self) -> Verdict {
        let mut events = self.events.clone();
        events.sort_by_key(|e| e.time_ns);
        check_history(&History { events }, Options::default()).unwrap()
    }
}

fn assert_violation(v: Verdict, key: &str) -> Vec<String> {
    match v {
        Verdict::NotLinearizable { key: k, ops } => {
            assert_eq!(k, key);
            ops
        }
        other => panic!("expected a violation on {key}, got {other:?}"),
    }
}

#[test]
fn sequential_and_concurrent_histories_are_accepted() {
    let mut b = Builder::default();
    b.get(1, "k", None, (0, 5))
        .put(1, "k", "a", (10, 20))
        .get(2, "k", Some("a"), (30, 40))
        // Concurrent puts: either order is fine for reads that overlap them.
        .put(1, "k", "b", (50, 100))
        .put(2, "k", "c", (50, 100))
        .get(3, "k", Some("c"), (60, 70))
        .get(3, "k", Some("b"), (80, 90))
        .delete(1, "k", (110, 120))
        .get(2, "k", None, (130, 140));
    assert_eq!(b.verdict(), Verdict::Linearizable);
}

#[test]
fn stale_read_after_acknowledged_write_is_rejected() {
    let mut b = Builder::default();
    b.put(1, "k", "1", (0, 10))
        .put(1, "k", "2", (20, 30))
        .get(2, "k", Some("1"), (40, 50));
    let ops = assert_violation(b.verdict(), "k");
    assert_eq!(ops.len(), 3, "{ops:?}");
}

#[test]
fn two_readers_seeing_writes_in_different_orders_is_rejected() {
    let mut b = Builder::default();
    b.put(1, "x", "1", (0, 1000))
        .put(2, "x", "2", (0, 1000))
        .get(3, "x", Some("1"), (10, 20))
        .get(3, "x", Some("2"), (30, 40))
        .get(4, "x", Some("2"), (10, 20))
        .get(4, "x", Some("1"), (30, 40));
    assert_violation(b.verdict(), "x");
    // Either reader alone is fine.
    let mut one = Builder::default();
    one.put(1, "x", "1", (0, 1000))
        .put(2, "x", "2", (0, 1000))
        .get(3, "x", Some("1"), (10, 20))
        .get(3, "x", Some("2"), (30, 40));
    assert_eq!(one.verdict(), Verdict::Linearizable);
}

#[test]
fn read_of_a_never_written_value_is_rejected_and_shrunk() {
    let mut b = Builder::default();
    b.put(1, "k", "a", (0, 10))
        .get(2, "k", Some("a"), (20, 30))
        .get(2, "k", Some("a"), (40, 50))
        .get(3, "k", Some("ghost"), (60, 70))
        .put(1, "other", "a", (0, 10));
    let ops = assert_violation(b.verdict(), "k");
    // The two good reads are dropped by shrinking; the write and the ghost read remain.
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(ops.iter().any(|o| o.contains("\"ghost\"")), "{ops:?}");
}

#[test]
fn violations_are_found_per_key() {
    let mut b = Builder::default();
    b.put(1, "a", "1", (0, 10))
        .get(1, "a", Some("1"), (20, 30))
        .put(2, "b", "1", (0, 10))
        .delete(2, "b", (20, 30))
        .get(3, "b", Some("1"), (40, 50));
    assert_violation(b.verdict(), "b");
}

#[test]
fn unknown_writes_may_or_may_not_take_effect() {
    // Took effect, later than its invoke.
    let mut took = Builder::default();
    took.put_as(1, "k", "a", (0, 5), EventType::Info)
        .get(2, "k", None, (10, 20))
        .get(2, "k", Some("a"), (1000, 1010));
    assert_eq!(took.verdict(), Verdict::Linearizable);
    // Never took effect.
    let mut never = Builder::default();
    never
        .put_as(1, "k", "a", (0, 5), EventType::Info)
        .get(2, "k", None, (1000, 1010));
    assert_eq!(never.verdict(), Verdict::Linearizable);
    // But once seen it cannot be undone.
    let mut flip = Builder::default();
    flip.put_as(1, "k", "a", (0, 5), EventType::Info)
        .get(2, "k", Some("a"), (10, 20))
        .get(2, "k", None, (30, 40));
    assert_violation(flip.verdict(), "k");
    // And it cannot take effect before its invoke.
    let mut early = Builder::default();
    early
        .get(2, "k", Some("a"), (0, 10))
        .put_as(1, "k", "a", (20, 30), EventType::Info);
    assert_violation(early.verdict(), "k");
}

#[test]
fn failed_writes_never_take_effect() {
    let mut b = Builder::default();
    b.put_as(1, "k", "a", (0, 10), EventType::Fail)
        .get(2, "k", Some("a"), (20, 30));
    assert_violation(b.verdict(), "k");
}

#[test]
fn a_tiny_budget_gives_unknown() {
    let mut events = generate(&mut ChaCha8Rng::seed_from_u64(3), 200, 2, 8, 0.0);
    events.sort_by_key(|e| e.time_ns);
    let h = History { events };
    let opts = Options {
        steps_max: 10,
        shrink: true,
    };
    assert!(matches!(
        check_history(&h, opts).unwrap(),
        Verdict::Unknown { .. }
    ));
    assert_eq!(
        check_history(&h, Options::default()).unwrap(),
        Verdict::Linearizable
    );
}

/// Run `n` random operations against a real sequential map. Each operation gets an interval
/// [call, ret] on its process (processes never overlap themselves) and a linearization point
/// inside it; results come from applying the operations to a `BTreeMap` in linearization
/// order. A fraction `unknown_frac` of writes complete as `info` (applied or not at random,
/// with a late or missing completion), some writes `fail` (not applied).
fn generate(
    rng: &mut impl Rng,
    n: usize,
    keys: usize,
    procs: u64,
    unknown_frac: f64,
) -> Vec<Event> {
    struct Planned {
        process: u64,
        f: Func,
        key: String,
        value: Option<String>,
        call: u64,
        lin: u64,
        ret: u64,
        kind: EventType,
        applied: bool,
    }
    let mut free_at = vec![0u64; procs as usize];
    let mut planned = Vec::with_capacity(n);
    for i in 0..n {
        let process = rng.gen_range(0..procs);
        let call = free_at[process as usize] + rng.gen_range(0..20);
        let lin = call + rng.gen_range(0..50);
        let ret = lin + rng.gen_range(0..50);
        free_at[process as usize] = ret + 1;
        let f = match rng.gen_range(0..10) {
            0..=3 => Func::Put,
            4 => Func::Delete,
            _ => Func::Get,
        };
        let (kind, applied) = match f {
            Func::Get => (EventType::Ok, true),
            _ if rng.gen_bool(unknown_frac) => (EventType::Info, rng.gen_bool(0.5)),
            _ if rng.gen_bool(0.05) => (EventType::Fail, false),
            _ => (EventType::Ok, true),
        };
        planned.push(Planned {
            process,
            f,
            key: format!("k{}", rng.gen_range(0..keys)),
            value: (f == Func::Put).then(|| format!("v{i}")),
            call,
            // Unique linearization points: ties broken by index.
            lin: lin * n as u64 + i as u64,
            ret,
            kind,
            applied,
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| planned[i].lin);
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut read = vec![None; n];
    for i in order {
        let p = &planned[i];
        match (p.f, p.applied) {
            (Func::Put, true) => {
                map.insert(p.key.clone(), p.value.clone().unwrap_or_default());
            }
            (Func::Delete, true) => {
                map.remove(&p.key);
            }
            (Func::Get, _) => read[i] = map.get(&p.key).cloned(),
            _ => {}
        }
    }
    let mut events = Vec::with_capacity(2 * n);
    for (i, p) in planned.into_iter().enumerate() {
        let ev = |kind, value, time_ns| Event {
            process: p.process,
            op_id: i as u64,
            kind,
            f: p.f,
            key: p.key.clone(),
            value,
            time_ns,
        };
        events.push(ev(EventType::Invoke, p.value.clone(), p.call));
        let value = if p.f == Func::Get {
            read[i].clone()
        } else {
            None
        };
        // Unknown writes sometimes never complete at all (client crashed).
        if p.kind != EventType::Info || i % 2 == 0 {
            events.push(ev(p.kind, value, p.ret));
        }
    }
    events
}

fn seeded(seed: u64, n: usize, keys: usize, procs: u64, unknown: f64) -> History {
    let mut events = generate(
        &mut ChaCha8Rng::seed_from_u64(seed),
        n,
        keys,
        procs,
        unknown,
    );
    events.sort_by_key(|e| e.time_ns);
    History { events }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn histories_of_a_real_map_are_linearizable(
        seed in any::<u64>(), n in 1usize..120, keys in 1usize..4, procs in 1u64..8,
    ) {
        let h = seeded(seed, n, keys, procs, 0.2);
        // Serialization is part of the path chaos scripts use.
        let h = History::parse(&h.to_jsonl()).unwrap();
        prop_assert_eq!(check_history(&h, Options::default()).unwrap(), Verdict::Linearizable);
    }

    #[test]
    fn an_injected_impossible_read_is_rejected(
        seed in any::<u64>(), n in 2usize..60, keys in 1usize..4, procs in 1u64..8,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut h = seeded(seed, n, keys, procs, 0.2);
        let reads = ok_reads(&h);
        prop_assume!(!reads.is_empty());
        let target = reads[pick.index(reads.len())];
        h.events[target].value = Some("never-written".to_string());
        let key = h.events[target].key.clone();
        let ops = expect_violation(&h, &key)?;
        prop_assert!(ops.iter().any(|o| o.contains("never-written")));
    }

    #[test]
    fn a_read_from_the_future_is_rejected(
        seed in any::<u64>(), n in 2usize..60, procs in 1u64..8,
        pick in any::<prop::sample::Index>(),
    ) {
        // One key so that later writes exist; the read is given the value of a put that is
        // invoked only after the read returned.
        let mut h = seeded(seed, n, 1, procs, 0.2);
        let mut candidates = Vec::new();
        for r in ok_reads(&h) {
            let read_ret = completion_time(&h, h.events[r].op_id);
            let future_put = h.events.iter().find(|e| {
                e.f == Func::Put && e.kind == EventType::Invoke && e.time_ns > read_ret
            });
            if let Some(put) = future_put {
                candidates.push((r, put.value.clone()));
            }
        }
        prop_assume!(!candidates.is_empty());
        let (r, value) = candidates[pick.index(candidates.len())].clone();
        h.events[r].value = value;
        expect_violation(&h, "k0")?;
    }
}

fn ok_reads(h: &History) -> Vec<usize> {
    h.events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.f == Func::Get && e.kind == EventType::Ok)
        .map(|(i, _)| i)
        .collect()
}

fn completion_time(h: &History, op_id: u64) -> u64 {
    h.events
        .iter()
        .find(|e| e.op_id == op_id && e.kind != EventType::Invoke)
        .map_or(u64::MAX, |e| e.time_ns)
}

/// Check without shrinking (shrinking is covered by the unit tests) and expect a violation.
fn expect_violation(h: &History, key: &str) -> Result<Vec<String>, TestCaseError> {
    let opts = Options {
        shrink: false,
        ..Options::default()
    };
    match check_history(h, opts).unwrap() {
        Verdict::NotLinearizable { key: k, ops } => {
            prop_assert_eq!(k, key);
            Ok(ops)
        }
        other => Err(TestCaseError::fail(format!(
            "accepted an impossible read: {other:?}"
        ))),
    }
}

/// 10,000 operations over 100 keys from 20 processes: the size chaos runs produce.
fn big_history() -> History {
    seeded(42, 10_000, 100, 20, 0.05)
}

#[test]
fn big_history_is_linearizable() {
    let h = big_history();
    assert_eq!(
        h.events
            .iter()
            .filter(|e| e.kind == EventType::Invoke)
            .count(),
        10_000
    );
    assert_eq!(
        check_history(&h, Options::default()).unwrap(),
        Verdict::Linearizable
    );
}

/// `cargo test -p anode-lincheck --release --test checker -- --ignored --nocapture`
#[test]
#[ignore = "timing report; run in release with --nocapture"]
fn time_big_history() {
    let h = big_history();
    let text = h.to_jsonl();
    let start = std::time::Instant::now();
    let parsed = History::parse(&text).unwrap();
    let parse_time = start.elapsed();
    let verdict = check_history(&parsed, Options::default()).unwrap();
    let total = start.elapsed();
    println!(
        "10,000 ops / 100 keys / 20 processes: parse {parse_time:?}, parse+check {total:?}, {verdict:?}"
    );
    assert_eq!(verdict, Verdict::Linearizable);
}
