//! The conformance suite every [`KvRead`] implementation passes: one set of cases, run against
//! [`MemKv`](super::MemKv), an [`Overlay`](super::Overlay) and the master's RocksDB view, so
//! the state machine reads the same answers from each.
//!
//! The caller supplies `setup(mutations, read)`: build a fresh store, apply `mutations` in
//! order, and call `read` once with a view of the result. Each case panics (with the case
//! name) on a wrong answer.

use super::{KvRead, Mutation, Step};

/// A store factory: apply the mutations to a fresh store, then hand a view of it to `read`.
pub type Setup<'a> = dyn FnMut(&[Mutation], &mut dyn FnMut(&dyn KvRead)) + 'a;

fn put(k: &[u8], v: &[u8]) -> Mutation {
    Mutation::Put(k.to_vec(), v.to_vec())
}

fn del(k: &[u8]) -> Mutation {
    Mutation::Delete(k.to_vec())
}

fn keys(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    rows.iter().map(|(k, _)| k.clone()).collect()
}

fn v(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|i| i.to_vec()).collect()
}

/// Run every case against the store `setup` builds.
pub fn check(setup: &mut Setup<'_>) {
    empty_store(setup);
    put_get_overwrite_delete(setup);
    scan_is_byte_ordered(setup);
    scan_bounds_and_limits(setup);
    scan_after_deletes(setup);
    walk_steps_seeks_and_stops(setup);
}

fn empty_store(setup: &mut Setup<'_>) {
    setup(&[], &mut |kv| {
        assert_eq!(kv.get(b"a"), None, "empty: get");
        assert!(kv.scan(b"", None, 10).is_empty(), "empty: scan");
    });
}

fn put_get_overwrite_delete(setup: &mut Setup<'_>) {
    let muts = [
        put(b"a", b"1"),
        put(b"b", b"2"),
        put(b"a", b"3"),
        del(b"b"),
        del(b"never-there"),
        put(b"", b"empty key"),
        put(b"c", b""),
    ];
    setup(&muts, &mut |kv| {
        assert_eq!(
            kv.get(b"a"),
            Some(b"3".to_vec()),
            "overwrite: last put wins"
        );
        assert_eq!(kv.get(b"b"), None, "delete removes");
        assert_eq!(kv.get(b"never-there"), None, "delete of absent key");
        assert_eq!(kv.get(b""), Some(b"empty key".to_vec()), "empty key");
        assert_eq!(kv.get(b"c"), Some(Vec::new()), "empty value is present");
    });
}

fn scan_is_byte_ordered(setup: &mut Setup<'_>) {
    // Inserted out of order; includes NUL, 0xFF and prefix relations.
    let muts = [
        put(b"o/b\xff", b"4"),
        put(b"o/b\x00k", b"2"),
        put(b"o/a", b"1"),
        put(b"o/b", b"x"),
        put(b"o/b\x00", b"y"),
        put(b"p", b"5"),
        put(b"\xff\xff", b"6"),
    ];
    setup(&muts, &mut |kv| {
        let all = kv.scan(b"", None, 100);
        let want: &[&[u8]] = &[
            b"o/a",
            b"o/b",
            b"o/b\x00",
            b"o/b\x00k",
            b"o/b\xff",
            b"p",
            b"\xff\xff",
        ];
        assert_eq!(keys(&all), v(want), "byte order");
        assert_eq!(all[0].1, b"1".to_vec(), "values follow their keys");
    });
}

fn scan_bounds_and_limits(setup: &mut Setup<'_>) {
    let muts: Vec<Mutation> = (0u8..10).map(|i| put(&[b'k', b'0' + i], &[i])).collect();
    setup(&muts, &mut |kv| {
        let rows = kv.scan(b"k3", Some(b"k6"), 100);
        assert_eq!(keys(&rows), v(&[b"k3", b"k4", b"k5"]), "start in, end out");
        let rows = kv.scan(b"k25", Some(b"k6"), 100);
        assert_eq!(keys(&rows), v(&[b"k3", b"k4", b"k5"]), "start between keys");
        let rows = kv.scan(b"k0", None, 2);
        assert_eq!(keys(&rows), v(&[b"k0", b"k1"]), "limit");
        assert!(kv.scan(b"k0", None, 0).is_empty(), "limit 0");
        assert!(kv.scan(b"k5", Some(b"k5"), 10).is_empty(), "empty range");
        assert!(
            kv.scan(b"k6", Some(b"k3"), 10).is_empty(),
            "start after end"
        );
        assert!(kv.scan(b"l", None, 10).is_empty(), "start past the end");
        assert_eq!(kv.scan(b"", None, usize::MAX).len(), 10, "unbounded limit");
    });
}

fn scan_after_deletes(setup: &mut Setup<'_>) {
    let mut muts: Vec<Mutation> = (0u8..6).map(|i| put(&[b'd', b'0' + i], b"v")).collect();
    muts.extend([del(b"d0"), del(b"d1"), del(b"d3"), put(b"d1", b"back")]);
    setup(&muts, &mut |kv| {
        let rows = kv.scan(b"d", None, 3);
        assert_eq!(
            keys(&rows),
            v(&[b"d1", b"d2", b"d4"]),
            "deleted keys skipped"
        );
        assert_eq!(rows[0].1, b"back".to_vec(), "re-put after delete");
    });
}

/// Walk with `plan`: for each visited key, the step to take (keys not in `plan`: next).
fn walk_keys(
    kv: &dyn KvRead,
    start: &[u8],
    end: Option<&[u8]>,
    plan: &[(&[u8], Step)],
) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    kv.walk(start, end, &mut |k, _| {
        seen.push(k.to_vec());
        assert!(seen.len() <= 1000, "walk: runaway");
        plan.iter()
            .find(|(pk, _)| *pk == k)
            .map(|(_, s)| s.clone())
            .unwrap_or(Step::Next)
    });
    seen
}

fn walk_steps_seeks_and_stops(setup: &mut Setup<'_>) {
    // 100 keys: more than one batch of the default walk.
    let mut muts: Vec<Mutation> = (0u32..100)
        .map(|i| put(format!("w{i:03}").as_bytes(), &i.to_be_bytes()))
        .collect();
    muts.push(del(b"w050"));
    muts.push(put(b"x", b"after"));
    setup(&muts, &mut |kv| {
        let all = walk_keys(kv, b"w", Some(b"x"), &[]);
        assert_eq!(
            all.len(),
            99,
            "walk: every key in range, deleted skipped, end out"
        );
        assert!(all.windows(2).all(|w| w[0] < w[1]), "walk: byte order");
        let mut values = Vec::new();
        kv.walk(b"w098", None, &mut |k, v| {
            values.push((k.to_vec(), v.to_vec()));
            Step::Next
        });
        assert_eq!(
            values,
            vec![
                (b"w098".to_vec(), 98u32.to_be_bytes().to_vec()),
                (b"w099".to_vec(), 99u32.to_be_bytes().to_vec()),
                (b"x".to_vec(), b"after".to_vec()),
            ],
            "walk: values follow keys, unbounded end"
        );
        let plan: &[(&[u8], Step)] = &[
            (b"w001", Step::Seek(b"w040".to_vec())),
            (b"w041", Step::Seek(b"w0405".to_vec())),
            (b"w042", Step::Seek(b"w0505".to_vec())),
            (b"w052", Step::Stop),
        ];
        let got = walk_keys(kv, b"w000", None, plan);
        let want: &[&[u8]] = &[
            b"w000", b"w001", b"w040", b"w041", b"w042", b"w051", b"w052",
        ];
        assert_eq!(
            got,
            v(want),
            "walk: seek forward skips, seek backward is next, stop ends"
        );
        let got = walk_keys(
            kv,
            b"w",
            Some(b"w003"),
            &[(b"w000", Step::Seek(b"z".to_vec()))],
        );
        assert_eq!(got, v(&[b"w000"]), "walk: seek past the end ends");
        assert!(
            walk_keys(kv, b"y", None, &[]).is_empty(),
            "walk: empty range"
        );
    });
}
