//! Streamed raft snapshots (docs/architecture.md, "Snapshots at scale").
//!
//! Leader side: [`RaftStore`]'s `raft::Storage::snapshot` pins a RocksDB snapshot of the
//! state at the applied index ([`Pins`]) and returns only a descriptor. The pin is owned by a
//! thread that holds an `Arc<DB>` clone and takes the RocksDB snapshot as a local borrowing
//! it, so no borrow outlives the database and no lifetime is forged. The transport asks the
//! pin for a stream ([`RaftStore::snapshot_stream`]); the pin's thread reads the records with
//! one iterator and sends them in pieces of about [`STREAM_PIECE_BYTES`] through a bounded
//! channel ([`STREAM_QUEUE_PIECES`]): a slow receiver stops the reader (bounded memory). A
//! pin lives while it is streaming and for [`PIN_IDLE`] after its last request; at most
//! [`MAX_PINS`] are kept (the oldest is dropped first).
//!
//! Member side: [`RaftStore::stage_snapshot`] clears the store's inactive state column family
//! and returns a [`Stager`] that writes every piece into it after checking the piece and
//! every record in it through `anode_meta::record` (a newer record refuses the snapshot
//! before anything is switched in). Staged writes skip the WAL (the staging area is cleared
//! on every open, and the install flushes it before the switch). [`Stager::finish`] checks
//! the record count and checksum the leader sent and seals the stage for its (index, term);
//! `RaftStore::install_snapshot` then switches the staged state in with one synced batch.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anode_proto::{KvPair, SnapshotData, SnapshotDescriptor, SNAPSHOT_VERSION};
use raft::eraftpb::Snapshot;
use rocksdb::{ReadOptions, WriteBatch, WriteOptions, DB};
use tokio::sync::mpsc;

use super::{RaftStore, StoreError};

/// Records per streamed piece, in key + value bytes (a piece may exceed it by one record).
pub const STREAM_PIECE_BYTES: usize = 1 << 20;
/// Pieces read ahead of the receiver (memory bound of one transfer on the leader).
pub const STREAM_QUEUE_PIECES: usize = 2;
/// Most pinned views kept at once.
pub const MAX_PINS: usize = 4;
/// A pin with no transfer running is dropped after this long.
pub const PIN_IDLE: Duration = Duration::from_secs(120);
/// A sealed stage that raft has not installed may be replaced by another after this long.
const SEALED_HOLD: Duration = Duration::from_secs(60);
/// Largest piece a member accepts (the gRPC cap between masters bounds it too).
pub const MAX_PIECE_BYTES: usize = 16 << 20;

/// What a pin's reader sends: the next records, or the end with what was sent.
#[derive(Debug)]
pub enum StreamPiece {
    /// An encoded [`SnapshotData`] (version 3, pairs only) holding the next records.
    Records(Vec<u8>),
    /// The last piece: how many records were sent and their [`Checksum`].
    End {
        /// Records sent.
        records: u64,
        /// Checksum over them in order.
        checksum: u64,
    },
}

/// The receiving end of a pinned snapshot's stream.
pub type PieceReceiver = mpsc::Receiver<Result<StreamPiece, StoreError>>;
type PieceSender = mpsc::Sender<Result<StreamPiece, StoreError>>;

/// FNV-1a 64 over the records of a snapshot in order: key length (u32 BE), key, value length
/// (u32 BE), value. Detects lost, repeated or altered records; not a defence against a
/// malicious leader (peers are authenticated by their certificates).
#[derive(Debug, Clone, Copy)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Add one record.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.bytes(&(key.len() as u32).to_be_bytes());
        self.bytes(key);
        self.bytes(&(value.len() as u32).to_be_bytes());
        self.bytes(value);
    }

    /// The checksum so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The staging area's state (one staging area per store).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Nothing staged (the inactive column family may hold leftovers; cleared before use).
    #[default]
    Idle,
    /// A stream is writing the snapshot at (index, term).
    Receiving { index: u64, term: u64 },
    /// The snapshot at (index, term) is staged whole and checked, waiting for raft.
    Sealed { index: u64, term: u64, at: Instant },
}

/// The registry of pinned views, keyed by (index, term).
#[derive(Default)]
pub(super) struct Pins {
    map: std::collections::BTreeMap<(u64, u64), std_mpsc::Sender<PieceSender>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Dropped with the last handle of the store: every pin is released and its thread joined
/// (after the streams it runs end), so the database is closed when the store is gone and
/// can be opened again at once (the simulations restart members in one process).
impl Drop for Pins {
    fn drop(&mut self) {
        self.map.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The streamed-snapshot descriptor in a raft snapshot's data, if it is one (a version 2
/// payload holding every pair gives `None`). The payload is checked through
/// `anode_meta::record` (newer refused).
pub fn descriptor_of(snap: &Snapshot) -> Result<Option<SnapshotDescriptor>, StoreError> {
    let data = anode_meta::state::decode_snapshot(snap.get_data())?;
    let Some(d) = data.descriptor else {
        return Ok(None);
    };
    let md = snap.get_metadata();
    if !data.pairs.is_empty() || d.index != md.index || d.term != md.term {
        return Err(StoreError::SnapshotStream(format!(
            "descriptor ({}, {}) with {} pairs does not match the snapshot ({}, {})",
            d.index,
            d.term,
            data.pairs.len(),
            md.index,
            md.term
        )));
    }
    Ok(Some(d))
}

/// The raft snapshot data of a streamed snapshot at (index, term).
pub fn descriptor_data(index: u64, term: u64) -> Vec<u8> {
    prost::Message::encode_to_vec(&SnapshotData {
        version: SNAPSHOT_VERSION,
        pairs: Vec::new(),
        descriptor: Some(SnapshotDescriptor { index, term }),
    })
}

impl RaftStore {
    /// Pin the state as it is now (the caller holds it at `index`, `term`: the raft thread,
    /// the only writer, inside `Storage::snapshot`). Returns once the view is pinned.
    pub(super) fn pin(&self, index: u64, term: u64, cf: &'static str) -> Result<(), StoreError> {
        let (req_tx, req_rx) = std_mpsc::channel::<PieceSender>();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel::<()>(1);
        let db = self.db.clone();
        let thread = std::thread::Builder::new()
            .name(format!("snapshot-pin-{index}"))
            .spawn(move || pin_thread(&db, cf, ready_tx, req_rx))
            .map_err(|e| StoreError::SnapshotStream(format!("spawn pin thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| StoreError::SnapshotStream("pin thread died".into()))?;
        let mut pins = self.pins.lock();
        pins.map.insert((index, term), req_tx);
        while pins.map.len() > MAX_PINS {
            pins.map.pop_first();
        }
        pins.threads.retain(|t| !t.is_finished());
        pins.threads.push(thread);
        Ok(())
    }

    /// How many views are pinned (some may have expired and not been dropped yet).
    pub fn pinned_snapshots(&self) -> usize {
        self.pins.lock().map.len()
    }

    /// Stream the records of the snapshot pinned at (index, term). Fails when it is not pinned
    /// (never, or expired, or dropped for newer ones): raft then asks for a new snapshot.
    pub fn snapshot_stream(&self, index: u64, term: u64) -> Result<PieceReceiver, StoreError> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE_PIECES);
        let mut pins = self.pins.lock();
        let sent = pins
            .map
            .get(&(index, term))
            .is_some_and(|p| p.send(tx).is_ok());
        if !sent {
            pins.map.remove(&(index, term));
            return Err(StoreError::SnapshotNotPinned { index, term });
        }
        Ok(rx)
    }

    /// Start staging the snapshot at (index, term): clears the staging area. Refused while
    /// another stream is receiving, or while another checked snapshot waits for raft (for
    /// [`SEALED_HOLD`], unless raft has moved past it).
    pub fn stage_snapshot(&self, index: u64, term: u64) -> Result<Stager, StoreError> {
        let mut stage = self.stage.lock();
        let (applied, commit) = {
            let c = self.cache.read();
            (c.applied, c.hard_state.commit)
        };
        match *stage {
            Stage::Idle => {}
            Stage::Receiving { .. } => return Err(StoreError::StageBusy(stage_desc(&stage))),
            Stage::Sealed {
                index: i,
                term: t,
                at,
            } => {
                let stale = i <= applied.max(commit) || at.elapsed() > SEALED_HOLD;
                if !stale && (i, t) != (index, term) {
                    return Err(StoreError::StageBusy(stage_desc(&stage)));
                }
            }
        }
        *stage = Stage::Receiving { index, term };
        drop(stage);
        let cleared = self.clear_staging();
        if let Err(e) = cleared {
            *self.stage.lock() = Stage::Idle;
            return Err(e);
        }
        Ok(Stager {
            store: self.clone(),
            index,
            term,
            records: 0,
            bytes: 0,
            started: Instant::now(),
            sum: Checksum::default(),
            done: false,
        })
    }

    /// Empty the inactive state column family (the staging area). Unsynced: it is cleared
    /// again on open.
    pub(super) fn clear_staging(&self) -> Result<(), StoreError> {
        let cf = self.staging_cf_name();
        let h = self.cf(cf);
        let empty = self
            .db
            .iterator_cf(h, rocksdb::IteratorMode::Start)
            .next()
            .is_none();
        if empty {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        let mut b = WriteBatch::default();
        b.delete_range_cf(h, super::SM_RANGE_START, super::SM_RANGE_END);
        self.db.write_opt(b, &wo)?;
        Ok(())
    }
}

fn stage_desc(s: &Stage) -> &'static str {
    match s {
        Stage::Idle => "idle",
        Stage::Receiving { .. } => "another snapshot is being received",
        Stage::Sealed { .. } => "another snapshot waits to be installed",
    }
}

/// Writes a streamed snapshot's pieces into the staging area (see the module docs).
pub struct Stager {
    store: RaftStore,
    index: u64,
    term: u64,
    records: u64,
    /// Bytes of keys and values staged so far.
    bytes: u64,
    /// When the stage was opened (for `anode_master_raft_snapshot_duration_seconds`).
    started: Instant,
    sum: Checksum,
    done: bool,
}

impl Stager {
    /// Check one piece (an encoded version 3 [`SnapshotData`] with pairs only) and every record
    /// in it, then write it to the staging area.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), StoreError> {
        if piece.len() > MAX_PIECE_BYTES {
            return Err(StoreError::SnapshotStream(format!(
                "piece of {} bytes over the cap of {MAX_PIECE_BYTES}",
                piece.len()
            )));
        }
        let data = anode_meta::state::decode_snapshot(piece)?;
        if data.descriptor.is_some() {
            return Err(StoreError::SnapshotStream(
                "a records piece carries a descriptor".into(),
            ));
        }
        let h = self.store.cf(self.store.staging_cf_name());
        let mut b = WriteBatch::default();
        for p in &data.pairs {
            self.sum.add(&p.key, &p.value);
            self.bytes += (p.key.len() + p.value.len()) as u64;
            b.put_cf(h, &p.key, &p.value);
        }
        self.records += data.pairs.len() as u64;
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.store.db.write_opt(b, &wo)?;
        Ok(())
    }

    /// Records staged so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Check the leader's count and checksum and seal the stage for raft to install.
    pub fn finish(mut self, records: u64, checksum: u64) -> Result<(), StoreError> {
        if records != self.records || checksum != self.sum.value() {
            return Err(StoreError::SnapshotStream(format!(
                "got {} records (checksum {:016x}), the leader sent {records} ({checksum:016x})",
                self.records,
                self.sum.value()
            )));
        }
        self.done = true;
        record_snapshot_metrics("received", self.bytes, self.started.elapsed());
        *self.store.stage.lock() = Stage::Sealed {
            index: self.index,
            term: self.term,
            at: Instant::now(),
        };
        Ok(())
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut stage = self.store.stage.lock();
        if *stage
            == (Stage::Receiving {
                index: self.index,
                term: self.term,
            })
        {
            *stage = Stage::Idle;
        }
    }
}

/// Move a streamed snapshot from `from`'s pin into `to`'s staging area, in the calling
/// thread: what the gRPC transport does, for the deterministic simulations and tests. A
/// version 2 snapshot (pairs in the raft snapshot) needs no transfer.
pub fn transfer_snapshot(
    from: &RaftStore,
    to: &RaftStore,
    snap: &Snapshot,
) -> Result<(), StoreError> {
    let Some(d) = descriptor_of(snap)? else {
        return Ok(());
    };
    let mut rx = from.snapshot_stream(d.index, d.term)?;
    let mut stager = to.stage_snapshot(d.index, d.term)?;
    while let Some(piece) = rx.blocking_recv() {
        match piece? {
            StreamPiece::Records(b) => stager.push(&b)?,
            StreamPiece::End { records, checksum } => return stager.finish(records, checksum),
        }
    }
    Err(StoreError::SnapshotStream(
        "the stream ended without its last piece".into(),
    ))
}

/// The pin's thread: owns the database handle and the RocksDB snapshot borrowing it, and
/// serves each stream request on a scoped thread until no request came for [`PIN_IDLE`] or the
/// registry dropped the pin (then after the running streams end).
fn pin_thread(
    db: &DB,
    cf: &'static str,
    ready: std_mpsc::SyncSender<()>,
    requests: std_mpsc::Receiver<PieceSender>,
) {
    let snap = db.snapshot();
    let _ = ready.send(());
    std::thread::scope(|s| {
        while let Ok(out) = requests.recv_timeout(PIN_IDLE) {
            let snap = &snap;
            s.spawn(move || stream_records(db, snap, cf, &out));
        }
    });
}

/// Read every record of `cf` in `snap` and send them in pieces, then the end. Stops when the
/// receiver is gone.
fn stream_records(db: &DB, snap: &rocksdb::Snapshot<'_>, cf: &'static str, out: &PieceSender) {
    let Some(h) = db.cf_handle(cf) else {
        let _ = out.blocking_send(Err(StoreError::SnapshotStream(format!(
            "no column family {cf}"
        ))));
        return;
    };
    let mut ro = ReadOptions::default();
    ro.fill_cache(false);
    ro.set_readahead_size(2 << 20);
    let mut it = snap.raw_iterator_cf_opt(h, ro);
    it.seek_to_first();
    let (mut sum, mut records) = (Checksum::default(), 0u64);
    let (mut pairs, mut bytes) = (Vec::new(), 0usize);
    let (started, mut total) = (Instant::now(), 0u64);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        sum.add(k, v);
        records += 1;
        bytes += k.len() + v.len();
        total += (k.len() + v.len()) as u64;
        pairs.push(KvPair {
            key: k.to_vec(),
            value: v.to_vec(),
        });
        if bytes >= STREAM_PIECE_BYTES {
            if out
                .blocking_send(Ok(records_piece(std::mem::take(&mut pairs))))
                .is_err()
            {
                return;
            }
            bytes = 0;
        }
        it.next();
    }
    if let Err(e) = it.status() {
        let _ = out.blocking_send(Err(e.into()));
        return;
    }
    if !pairs.is_empty() && out.blocking_send(Ok(records_piece(pairs))).is_err() {
        return;
    }
    // Recorded before the last piece leaves, so a receiver that has it sees the figures.
    record_snapshot_metrics("sent", total, started.elapsed());
    let _ = out.blocking_send(Ok(StreamPiece::End {
        records,
        checksum: sum.value(),
    }));
}

/// Size and duration of a whole snapshot stream, `sent` or `received`.
fn record_snapshot_metrics(direction: &str, bytes: u64, took: std::time::Duration) {
    crate::metrics::SNAPSHOT_BYTES
        .with_label_values(&[direction])
        .set(bytes as i64);
    crate::metrics::SNAPSHOT_SECONDS
        .with_label_values(&[direction])
        .observe(took.as_secs_f64());
}

fn records_piece(pairs: Vec<KvPair>) -> StreamPiece {
    StreamPiece::Records(prost::Message::encode_to_vec(&SnapshotData {
        version: SNAPSHOT_VERSION,
        pairs,
        descriptor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CF_SM, CF_SM2};
    use anode_meta::kv::{KvRead, Mutation};
    use raft::eraftpb::Entry;
    use raft::Storage;

    /// A store at applied index `applied` (term 1) holding `n` objects of `size` bytes under
    /// `prefix`, plus the objects counter.
    fn filled(dir: &std::path::Path, prefix: &str, n: u64, size: usize, applied: u64) -> RaftStore {
        let s = RaftStore::open(dir).unwrap();
        s.bootstrap(vec![1]).unwrap();
        let ents: Vec<Entry> = (1..=applied)
            .map(|i| Entry {
                index: i,
                term: 1,
                ..Default::default()
            })
            .collect();
        s.persist(&ents, None).unwrap();
        let mut muts: Vec<Mutation> = (0..n)
            .map(|i| {
                let inline_data: Vec<u8> = (0..size).map(|j| (i as usize * 31 + j) as u8).collect();
                let m = anode_proto::Manifest {
                    version: anode_proto::MANIFEST_VERSION,
                    size: size as u64,
                    inline_data,
                    ..Default::default()
                };
                let v = prost::Message::encode_to_vec(&m);
                Mutation::Put(format!("o/b\0{prefix}{i:08}").into_bytes(), v)
            })
            .collect();
        muts.push(Mutation::Put(
            b"x/stat/objects".to_vec(),
            n.to_be_bytes().to_vec(),
        ));
        s.commit_apply(&muts, applied, 1, None).unwrap();
        s
    }

    fn all(s: &RaftStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        s.view().scan(b"", None, usize::MAX)
    }

    fn staging_len(s: &RaftStore) -> usize {
        let h = s.cf(s.staging_cf_name());
        s.db.iterator_cf(h, rocksdb::IteratorMode::Start).count()
    }

    fn apply_one(s: &RaftStore, index: u64, key: &[u8]) {
        let e = Entry {
            index,
            term: 1,
            ..Default::default()
        };
        s.persist(&[e], None).unwrap();
        let m = Mutation::Put(key.to_vec(), vec![7; 8]);
        s.commit_apply(&[m], index, 1, None).unwrap();
    }

    #[test]
    fn a_streamed_snapshot_round_trips_between_two_stores() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // 3,000 x 1 KiB: about 3 pieces.
        let leader = filled(ld.path(), "new", 3_000, 1024, 40);
        let want = all(&leader);
        let follower = filled(fd.path(), "old", 500, 100, 7);
        let snap = leader.snapshot(0, 2).unwrap();
        assert!(
            snap.get_data().len() < 64,
            "the raft snapshot is only a descriptor"
        );
        let d = descriptor_of(&snap).unwrap().unwrap();
        assert_eq!((d.index, d.term), (40, 1));
        // The leader's state moves on; the pinned view does not.
        apply_one(&leader, 41, b"u/later");
        let mut rx = leader.snapshot_stream(40, 1).unwrap();
        let mut pieces = 0;
        while let Some(p) = rx.blocking_recv() {
            if let StreamPiece::Records(b) = p.unwrap() {
                assert!(b.len() < STREAM_PIECE_BYTES + (64 << 10), "{}", b.len());
                pieces += 1;
            }
        }
        assert!(pieces >= 3, "{pieces} pieces");
        let streams = |dir: &str| {
            crate::metrics::SNAPSHOT_SECONDS
                .with_label_values(&[dir])
                .get_sample_count()
        };
        let (sent, received) = (streams("sent"), streams("received"));
        transfer_snapshot(&leader, &follower, &snap).unwrap();
        // Both ends timed their stream (other tests may add more at the same time).
        assert!(streams("sent") > sent && streams("received") > received);
        // Staged, not yet switched in: the follower still reads its old state.
        let old_key = b"o/b\0old00000001";
        assert!(follower.view().get(old_key).is_some());
        follower.install_snapshot(&snap).unwrap();
        assert_eq!(all(&follower), want);
        assert_eq!(follower.sm_cf_name(), CF_SM2);
        assert_eq!(staging_len(&follower), 0, "the old state is cleared");
        drop(follower);
        let follower = RaftStore::open(fd.path()).unwrap();
        assert_eq!(all(&follower), want);
        assert_eq!((follower.applied(), follower.first_log_index()), (40, 41));
        assert_eq!(follower.conf_state().voters, vec![1]);
        // The next snapshot is staged in the first column family and switched back.
        let snap = leader.snapshot(0, 2).unwrap();
        assert_eq!(snap.get_metadata().index, 41);
        transfer_snapshot(&leader, &follower, &snap).unwrap();
        follower.install_snapshot(&snap).unwrap();
        assert_eq!(follower.sm_cf_name(), CF_SM);
        assert_eq!(all(&follower), all(&leader));
        assert_eq!(follower.view().get(b"u/later"), Some(vec![7; 8]));
        // Pins are bounded.
        for i in 42..50 {
            apply_one(&leader, i, b"u/later");
            leader.snapshot(0, 2).unwrap();
        }
        assert_eq!(leader.pinned_snapshots(), MAX_PINS);
        assert!(matches!(
            leader.snapshot_stream(40, 1),
            Err(StoreError::SnapshotNotPinned { index: 40, term: 1 })
        ));
    }

    /// The first records piece of the snapshot pinned at (index, 1).
    fn first_piece(leader: &RaftStore, index: u64) -> Vec<u8> {
        let mut rx = leader.snapshot_stream(index, 1).unwrap();
        match rx.blocking_recv().unwrap().unwrap() {
            StreamPiece::Records(b) => b,
            StreamPiece::End { .. } => panic!("no records"),
        }
    }

    #[test]
    fn a_stream_cut_in_the_middle_leaves_the_old_state_and_reopen_clears_staging() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = filled(ld.path(), "new", 3_000, 1024, 40);
        let follower = filled(fd.path(), "old", 500, 100, 7);
        let old = all(&follower);
        let snap = leader.snapshot(0, 2).unwrap();
        let mut stager = follower.stage_snapshot(40, 1).unwrap();
        // A second stream is refused while one is receiving.
        assert!(matches!(
            follower.stage_snapshot(40, 1),
            Err(StoreError::StageBusy(_))
        ));
        stager.push(&first_piece(&leader, 40)).unwrap();
        assert!(stager.records() > 500);
        assert!(staging_len(&follower) > 500);
        drop(stager); // the stream broke
        let err = follower.install_snapshot(&snap).unwrap_err();
        assert!(
            matches!(err, StoreError::NotStaged { index: 40, .. }),
            "{err}"
        );
        // A wrong count or checksum refuses the stage too.
        let mut stager = follower.stage_snapshot(40, 1).unwrap();
        stager.push(&first_piece(&leader, 40)).unwrap();
        let n = stager.records();
        let err = stager.finish(n + 1, 0).unwrap_err();
        assert!(matches!(err, StoreError::SnapshotStream(_)), "{err}");
        assert!(follower.install_snapshot(&snap).is_err());
        assert_eq!(all(&follower), old);
        assert_eq!(follower.applied(), 7);
        drop(follower);
        // Reopen: the staging area is emptied, the old state is intact.
        let follower = RaftStore::open(fd.path()).unwrap();
        assert_eq!(staging_len(&follower), 0);
        assert_eq!(all(&follower), old);
        assert_eq!(follower.applied(), 7);
    }

    /// A crash before the switch (everything staged, sealed and flushed; the process dies
    /// before the synced batch, as at the `mid_snapshot_install` failpoint) leaves the old
    /// state; a crash right after the batch (before the old state is cleared) leaves the new
    /// one. The batch is one RocksDB write, so there is no point in between.
    #[test]
    fn a_crash_around_the_switch_leaves_the_old_or_the_new_state() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = filled(ld.path(), "new", 2_000, 512, 40);
        let want = all(&leader);
        let follower = filled(fd.path(), "old", 500, 100, 7);
        let old = all(&follower);
        let snap = leader.snapshot(0, 2).unwrap();
        transfer_snapshot(&leader, &follower, &snap).unwrap();
        follower.db.flush_cf(follower.cf(CF_SM2)).unwrap();
        drop(follower); // crash before the switch
        let follower = RaftStore::open(fd.path()).unwrap();
        assert_eq!((all(&follower), follower.applied()), (old.clone(), 7));
        assert_eq!(staging_len(&follower), 0);
        // The member asks again; this time the switch is written, then the process dies
        // before clearing the old state: put it back as it was to stand for that.
        transfer_snapshot(&leader, &follower, &snap).unwrap();
        follower.install_snapshot(&snap).unwrap();
        let h = follower.cf(CF_SM);
        for (k, v) in &old {
            follower.db.put_cf(h, k, v).unwrap();
        }
        drop(follower);
        let follower = RaftStore::open(fd.path()).unwrap();
        assert_eq!((all(&follower), follower.applied()), (want, 40));
        assert_eq!(staging_len(&follower), 0);
    }

    #[test]
    fn a_record_from_a_newer_build_refuses_the_streamed_snapshot() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = filled(ld.path(), "new", 10, 100, 40);
        let follower = filled(fd.path(), "old", 10, 100, 7);
        let old = all(&follower);
        let snap = leader.snapshot(0, 2).unwrap();
        let bucket = anode_proto::BucketConfig {
            version: anode_proto::RECORD_VERSION + 1,
            ..Default::default()
        };
        let newer = prost::Message::encode_to_vec(&SnapshotData {
            version: SNAPSHOT_VERSION,
            pairs: vec![KvPair {
                key: b"b/x".to_vec(),
                value: prost::Message::encode_to_vec(&bucket),
            }],
            descriptor: None,
        });
        let mut stager = follower.stage_snapshot(40, 1).unwrap();
        stager.push(&first_piece(&leader, 40)).unwrap();
        let err = stager.push(&newer).unwrap_err();
        assert!(err.to_string().contains("BucketConfig at b/x"), "{err}");
        drop(stager);
        // A piece of a newer snapshot version is refused the same way.
        let mut stager = follower.stage_snapshot(40, 1).unwrap();
        let piece = prost::Message::encode_to_vec(&SnapshotData {
            version: SNAPSHOT_VERSION + 1,
            pairs: Vec::new(),
            descriptor: None,
        });
        let err = stager.push(&piece).unwrap_err();
        assert!(matches!(err, StoreError::Record(_)), "{err}");
        drop(stager);
        assert!(follower.install_snapshot(&snap).is_err());
        assert_eq!((all(&follower), follower.applied()), (old, 7));
    }
}
