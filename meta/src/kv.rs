//! The narrow key-value interface the state machine reads through, and the mutations it emits.
//!
//! Architecture invariant: `state::apply` does no IO. It reads a [`KvRead`] view and returns a
//! list of [`Mutation`]s; the driver writes them, together with the applied index, in one
//! atomic RocksDB batch. [`MemKv`] is the in-memory implementation used by tests and models;
//! `anode_master::store::SmView` (a RocksDB snapshot of the `sm` column family) is the durable
//! one. Both pass the same suite, [`conformance::check`]: `MemKv` (and an [`Overlay`] over
//! it) in this crate's tests, `SmView` in `master/tests/kv_conformance.rs`.

use std::collections::BTreeMap;
use std::ops::Bound;

/// One change to the state machine's key space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Remove `key` (no-op if absent).
    Delete(Vec<u8>),
}

/// Read-only ordered view of the state machine's key space.
pub trait KvRead {
    /// The value at `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Up to `limit` entries with `start <= key < end` in ascending key order
    /// (`end = None`: unbounded). Implementations must return keys in byte order.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;

    /// Visit the entries with `start <= key < end` in ascending key order, one at a time;
    /// after each, `visit` says where to go: the next entry, the first entry at or after a
    /// later key ([`Step::Seek`], which skips everything between without reading it), or
    /// stop. Listing with a delimiter seeks past each common prefix this way, so a page costs
    /// about one read per entry it returns, however many keys each prefix holds.
    ///
    /// The default reads through [`KvRead::scan`] in small batches; a store with a native
    /// cursor (RocksDB) overrides it with one iterator per walk.
    fn walk(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> Step) {
        let mut cursor = start.to_vec();
        'batches: loop {
            if end.is_some_and(|e| cursor.as_slice() >= e) {
                return;
            }
            let rows = self.scan(&cursor, end, WALK_BATCH_ROWS);
            let full = rows.len() == WALK_BATCH_ROWS;
            for (k, v) in rows {
                let next = [k.as_slice(), &[0]].concat();
                match visit(&k, &v) {
                    Step::Next => cursor = next,
                    Step::Seek(to) => {
                        cursor = to.max(next);
                        continue 'batches;
                    }
                    Step::Stop => return,
                }
            }
            if !full {
                return;
            }
        }
    }
}

/// Rows per [`KvRead::scan`] call of the default [`KvRead::walk`].
pub const WALK_BATCH_ROWS: usize = 32;

/// What [`KvRead::walk`] does after visiting an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Visit the next entry.
    Next,
    /// Visit the first entry whose key is at or after this one (a key at or before the
    /// current one means [`Step::Next`]).
    Seek(Vec<u8>),
    /// End the walk.
    Stop,
}

/// In-memory [`KvRead`] over a `BTreeMap`; deterministic, for tests and models.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemKv {
    /// The entries.
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Apply mutations in order.
    pub fn apply(&mut self, muts: &[Mutation]) {
        for m in muts {
            match m {
                Mutation::Put(k, v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                Mutation::Delete(k) => {
                    self.map.remove(k);
                }
            }
        }
    }
}

impl KvRead for MemKv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let upper = match end {
            Some(e) if e <= start => return Vec::new(),
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        self.map
            .range((Bound::Included(start.to_vec()), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A write overlay on top of a [`KvRead`]: reads see the pending mutations, so one command
/// can read its own writes. `into_mutations` yields the batch to persist.
pub struct Overlay<'a> {
    base: &'a dyn KvRead,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The object events the staged writes make (`anode_meta::notify`), in order; the state
    /// machine numbers and queues them when the command applies.
    pub events: Vec<anode_proto::NotificationEvent>,
}

impl<'a> Overlay<'a> {
    /// A new overlay with no pending writes.
    pub fn new(base: &'a dyn KvRead) -> Self {
        Self {
            base,
            pending: BTreeMap::new(),
            events: Vec::new(),
        }
    }
    /// Stage a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }
    /// Stage a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.pending.insert(key, None);
    }
    /// Stage the writes of another overlay (one made on top of this one).
    pub fn apply_mutations(&mut self, muts: Vec<Mutation>) {
        for m in muts {
            match m {
                Mutation::Put(k, v) => self.put(k, v),
                Mutation::Delete(k) => self.delete(k),
            }
        }
    }
    /// The staged writes, in key order (deterministic).
    pub fn into_mutations(self) -> Vec<Mutation> {
        self.pending
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => Mutation::Put(k, v),
                None => Mutation::Delete(k),
            })
            .collect()
    }
}

impl KvRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.pending.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Merge the base scan with pending writes. Fetch enough base rows to cover deletions.
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let extra = self.pending.len();
        for (k, v) in self.base.scan(start, end, limit.saturating_add(extra)) {
            merged.insert(k, v);
        }
        let upper = match end {
            Some(e) if e <= start => return Vec::new(),
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        for (k, v) in self.pending.range((Bound::Included(start.to_vec()), upper)) {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        merged.into_iter().take(limit).collect()
    }
}

pub mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_reads_own_writes_and_hides_deletes() {
        let mut base = MemKv::new();
        base.apply(&[
            Mutation::Put(b"a".to_vec(), b"1".to_vec()),
            Mutation::Put(b"b".to_vec(), b"2".to_vec()),
            Mutation::Put(b"c".to_vec(), b"3".to_vec()),
        ]);
        let mut o = Overlay::new(&base);
        o.delete(b"b".to_vec());
        o.put(b"bb".to_vec(), b"x".to_vec());
        assert_eq!(o.get(b"b"), None);
        assert_eq!(o.get(b"bb"), Some(b"x".to_vec()));
        let keys: Vec<_> = o.scan(b"a", None, 10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"bb".to_vec(), b"c".to_vec()]);
        let keys: Vec<_> = o
            .scan(b"a", Some(b"c"), 2)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!(o.into_mutations().len(), 2);
    }

    #[test]
    fn memkv_conforms() {
        conformance::check(
            &mut |muts: &[Mutation], read: &mut dyn FnMut(&dyn KvRead)| {
                let mut kv = MemKv::new();
                kv.apply(muts);
                read(&kv);
            },
        );
    }

    #[test]
    fn overlay_conforms() {
        // Half the mutations in the base, half pending in the overlay: reads must not tell.
        conformance::check(
            &mut |muts: &[Mutation], read: &mut dyn FnMut(&dyn KvRead)| {
                let (first, second) = muts.split_at(muts.len() / 2);
                let mut base = MemKv::new();
                base.apply(first);
                let mut o = Overlay::new(&base);
                for m in second {
                    match m {
                        Mutation::Put(k, v) => o.put(k.clone(), v.clone()),
                        Mutation::Delete(k) => o.delete(k.clone()),
                    }
                }
                read(&o);
            },
        );
    }

    /// A store that ignores scan limits: the suite must reject it.
    struct NoLimit(MemKv);

    impl KvRead for NoLimit {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key)
        }
        fn scan(&self, start: &[u8], end: Option<&[u8]>, _limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0.scan(start, end, usize::MAX)
        }
    }

    #[test]
    #[should_panic(expected = "limit")]
    fn the_suite_rejects_a_store_that_ignores_limits() {
        conformance::check(
            &mut |muts: &[Mutation], read: &mut dyn FnMut(&dyn KvRead)| {
                let mut kv = MemKv::new();
                kv.apply(muts);
                read(&NoLimit(kv));
            },
        );
    }
}
