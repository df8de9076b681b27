//! Durable storage of one master: RocksDB with three column families.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `log` | raft index (u64 big-endian) | `eraftpb::Entry` (protobuf 2) |
//! | `meta` | `hard_state`, `conf_state`, `applied`, `truncated` | protobuf 2 / u64 pairs |
//! | `meta` | `format` | store format version (u32 big-endian) |
//! | `sm`, `sm2` | state machine keys (see [`anode_meta::state`]) | prost records |
//! | `meta` | `sm_cf` | which of `sm` / `sm2` holds the state (absent: `sm`) |
//!
//! The other state column family is the staging area of a streamed raft snapshot
//! ([`stream`]): a snapshot is written there piece by piece, and
//! [`RaftStore::install_snapshot`] switches it in by rewriting `sm_cf` with the applied
//! index, conf state and log truncation in one synced batch (a crash leaves the old state or
//! the new one). The staging area is cleared on every open.
//!
//! Versions (docs/architecture.md, "Persisted formats"): [`RaftStore::open`] reads `format`
//! and refuses a store newer than [`STORE_FORMAT_VERSION`]; a store without the key is format
//! 0, the pre-versioning layout, migrated by writing the key. State machine records are
//! version-checked on every read ([`anode_meta::record`]); a raft snapshot's payload and every
//! record in it are checked before [`RaftStore::install_snapshot`] writes anything.
//!
//! Invariant `applied-index-grows`: [`RaftStore::commit_apply`] and
//! [`RaftStore::install_snapshot`] refuse to move the applied index back, before writing.
//!
//! Durability order (the driver in [`crate::node`] relies on it):
//! 1. [`RaftStore::persist`] writes new log entries and the hard state in one batch with
//!    `sync = true` before any message that depends on them is sent.
//! 2. [`RaftStore::commit_apply`] writes the mutations of applied entries, the applied index
//!    and the conf state in one batch. It need not sync: RocksDB's WAL is a single ordered
//!    stream, so a later synced log write makes it durable, and a lost suffix is re-applied
//!    from the (synced) log on restart. It may land before the hard state that carries the
//!    same entries' commit index (the node applies before it persists); on open, a commit
//!    index behind the applied index is raised to it.
//! 3. Log compaction deletes entries below the applied index in one batch with the new
//!    truncation point.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use anode_meta::kv::{KvRead, Mutation, Step};
use anode_meta::record::RecordError;
use anode_proto::STORE_FORMAT_VERSION;

use crate::log_store::LogStore;

pub mod stream;
pub mod tuning;

pub use stream::{transfer_snapshot, PieceReceiver, Stager, StreamPiece};

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const CF_SM: &str = "sm";
const CF_SM2: &str = "sm2";
const KEY_SM_CF: &[u8] = b"sm_cf";
/// The key range of the state (every state key starts with a printable prefix such as `b/`).
const SM_RANGE_START: &[u8] = &[0u8];
const SM_RANGE_END: &[u8] = &[0xffu8; 64];
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_APPLIED: &[u8] = b"applied";
const KEY_TRUNCATED: &[u8] = b"truncated";
const KEY_FORMAT: &[u8] = b"format";

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored record did not decode.
    #[error("corrupt record {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// Creating the store's directory failed.
    #[error("create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The store was written by a newer build.
    #[error(
        "{path}: store format {found} (key `format` of column family `meta`) is newer than \
         this build supports ({supported}); run a newer anode"
    )]
    FormatTooNew {
        /// The store's directory.
        path: PathBuf,
        /// Format found.
        found: u32,
        /// Newest format this build reads.
        supported: u32,
    },
    /// A record (snapshot payload, state record, raft command) this build cannot read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A streamed snapshot stream or piece is unusable.
    #[error("snapshot stream: {0}")]
    SnapshotStream(String),
    /// The leader has no pinned view for this snapshot (expired or dropped for newer ones).
    #[error("no pinned snapshot at index {index} term {term}")]
    SnapshotNotPinned {
        /// Snapshot index.
        index: u64,
        /// Snapshot term.
        term: u64,
    },
    /// The staging area is in use.
    #[error("snapshot staging area busy: {0}")]
    StageBusy(&'static str),
    /// Raft asked to install a streamed snapshot that is not the one staged.
    #[error("snapshot at index {index} term {term} is not staged ({staged})")]
    NotStaged {
        /// Snapshot index.
        index: u64,
        /// Snapshot term.
        term: u64,
        /// What the staging area holds.
        staged: String,
    },
    /// Invariant `applied-index-grows` would break: nothing was written.
    #[error("applied index would move back from {from} to {to}; refusing to write")]
    AppliedWentBack {
        /// Applied index now.
        from: u64,
        /// Index asked for.
        to: u64,
    },
}

impl From<StoreError> for raft::Error {
    fn from(e: StoreError) -> Self {
        raft::Error::Store(StorageError::Other(Box::new(e)))
    }
}

#[derive(Clone, Debug, Default)]
struct Cache {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry removed by compaction or covered by a snapshot.
    truncated_index: u64,
    truncated_term: u64,
    last_index: u64,
    applied: u64,
    /// The column family holding the state (`sm` or `sm2`); the other is the staging area.
    sm_cf: &'static str,
}

/// The raft log, hard state and state machine of one master, in RocksDB.
/// Cheap to clone; implements [`raft::Storage`] and [`LogStore`], the seam the raft
/// [`Core`](crate::node::Core) is generic over.
#[derive(Clone)]
pub struct RaftStore {
    db: Arc<DB>,
    cache: Arc<RwLock<Cache>>,
    /// Views pinned for streamed snapshots (leader side).
    pins: Arc<parking_lot::Mutex<stream::Pins>>,
    /// The staging area's state (member side).
    stage: Arc<parking_lot::Mutex<stream::Stage>>,
}

fn u64_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn pair_bytes(a: u64, b: u64) -> Vec<u8> {
    let mut v = a.to_be_bytes().to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v
}

fn decode_pair(v: &[u8]) -> Option<(u64, u64)> {
    if v.len() != 16 {
        return None;
    }
    let a = u64::from_be_bytes(v[..8].try_into().ok()?);
    let b = u64::from_be_bytes(v[8..].try_into().ok()?);
    Some((a, b))
}

fn other_sm_cf(cf: &str) -> &'static str {
    if cf == CF_SM {
        CF_SM2
    } else {
        CF_SM
    }
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

impl RaftStore {
    /// Open (or create) the store under `dir`. The directory and its missing ancestors are
    /// created durably (fsynced with their parents); RocksDB fsyncs the files it creates in
    /// it. A store of a newer format is refused; an older one is migrated.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        anode_common::fsutil::create_dir_all_durable(dir).map_err(|source| {
            StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        let cache = rocksdb::Cache::new_lru_cache(tuning::BLOCK_CACHE_BYTES)?;
        let cfs = [
            ColumnFamilyDescriptor::new(CF_LOG, tuning::log_cf()),
            ColumnFamilyDescriptor::new(CF_META, tuning::meta_cf()),
            ColumnFamilyDescriptor::new(CF_SM, tuning::sm_cf(&cache)),
            ColumnFamilyDescriptor::new(CF_SM2, tuning::sm_cf(&cache)),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&tuning::db(), dir, cfs)?);
        let store = RaftStore {
            db,
            cache: Arc::new(RwLock::new(Cache::default())),
            pins: Arc::default(),
            stage: Arc::default(),
        };
        store.check_format(dir)?;
        store.load_cache()?;
        // A snapshot staged but not switched in when the process stopped is dropped; the
        // leader sends a new one.
        store.clear_staging()?;
        Ok(store)
    }

    /// The store's format version: 0 when the `format` key is absent (a store created before
    /// formats were versioned).
    pub fn format(&self) -> Result<u32, StoreError> {
        match self.db.get_cf(self.cf(CF_META), KEY_FORMAT)? {
            None => Ok(0),
            Some(v) => Ok(u32::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("format", "len"))?,
            )),
        }
    }

    /// Refuse a newer format; migrate an older one (formats 0-3 -> 4: the layout is
    /// unchanged, format 2 only added key kinds (client sessions), format 3 the staging
    /// column family `sm2` (created at open) and the `sm_cf` key (absent: `sm`), format 4 key
    /// kinds (users `i/`, usage counters `x/usage/`, which the state machine starts for an old
    /// bucket on its first write), format 5 fields of version 1 records (access configuration;
    /// absent = the default); the key is written). A new store gets the key here, at creation.
    fn check_format(&self, dir: &Path) -> Result<(), StoreError> {
        let found = self.format()?;
        if found > STORE_FORMAT_VERSION {
            return Err(StoreError::FormatTooNew {
                path: dir.to_path_buf(),
                found,
                supported: STORE_FORMAT_VERSION,
            });
        }
        if found == STORE_FORMAT_VERSION {
            return Ok(());
        }
        let has_data = self
            .db
            .iterator_cf(self.cf(CF_META), IteratorMode::Start)
            .next()
            .is_some();
        if has_data {
            tracing::info!(
                path = %dir.display(),
                from = found,
                to = STORE_FORMAT_VERSION,
                "migrating the raft store's format"
            );
        }
        self.write_format(STORE_FORMAT_VERSION)
    }

    fn write_format(&self, format: u32) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_META), KEY_FORMAT, format.to_be_bytes());
        self.db.write_opt(b, &wo)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn load_cache(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        let mut c = Cache {
            sm_cf: CF_SM,
            ..Cache::default()
        };
        if let Some(v) = self.db.get_cf(meta, KEY_SM_CF)? {
            c.sm_cf = match v.as_slice() {
                b"sm" => CF_SM,
                b"sm2" => CF_SM2,
                _ => return Err(corrupt("sm_cf", String::from_utf8_lossy(&v))),
            };
        }
        if let Some(v) = self.db.get_cf(meta, KEY_HARD_STATE)? {
            c.hard_state = HardState::parse_from_bytes(&v).map_err(|e| corrupt("hard_state", e))?;
        }
        if let Some(v) = self.db.get_cf(meta, KEY_CONF_STATE)? {
            c.conf_state = ConfState::parse_from_bytes(&v).map_err(|e| corrupt("conf_state", e))?;
        }
        if let Some(v) = self.db.get_cf(meta, KEY_APPLIED)? {
            c.applied = decode_pair(&v).ok_or_else(|| corrupt("applied", "len"))?.0;
        }
        if let Some(v) = self.db.get_cf(meta, KEY_TRUNCATED)? {
            let (i, t) = decode_pair(&v).ok_or_else(|| corrupt("truncated", "len"))?;
            c.truncated_index = i;
            c.truncated_term = t;
        }
        let mut it = self.db.iterator_cf(self.cf(CF_LOG), IteratorMode::End);
        c.last_index = match it.next() {
            Some(Ok((k, _))) => {
                u64::from_be_bytes(k[..8].try_into().map_err(|_| corrupt("log key", "len"))?)
            }
            Some(Err(e)) => return Err(e.into()),
            None => c.truncated_index,
        };
        c.last_index = c.last_index.max(c.truncated_index);
        if c.applied > c.hard_state.commit {
            // The node applies a Ready's committed entries before it persists the hard state
            // carrying their commit index (rule 2 above); a crash in between leaves the applied
            // index ahead. Applied entries were committed and are in the local log, so the
            // commit index is at least the applied index (raft-rs refuses applied > commit).
            tracing::warn!(
                applied = c.applied,
                commit = c.hard_state.commit,
                "persisted commit index behind the applied index (crash between apply and \
                 persist); raising it to the applied index"
            );
            c.hard_state.commit = c.applied;
        }
        *self.cache.write() = c;
        Ok(())
    }

    /// Whether this store has never been initialized (no conf state, no log, no snapshot).
    pub fn is_empty(&self) -> bool {
        let c = self.cache.read();
        c.conf_state.voters.is_empty()
            && c.conf_state.learners.is_empty()
            && c.last_index == 0
            && c.truncated_index == 0
    }

    /// Bootstrap a new group: persist the initial voter set.
    pub fn bootstrap(&self, voters: Vec<u64>) -> Result<(), StoreError> {
        let cs = ConfState {
            voters,
            ..Default::default()
        };
        let bytes = cs.write_to_bytes().map_err(|e| corrupt("conf_state", e))?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_META), KEY_CONF_STATE, bytes);
        self.db.write_opt(b, &wo)?;
        self.cache.write().conf_state = cs;
        Ok(())
    }

    /// The applied index persisted with the state machine.
    pub fn applied(&self) -> u64 {
        self.cache.read().applied
    }

    /// The conf state as of the applied index.
    pub fn conf_state(&self) -> ConfState {
        self.cache.read().conf_state.clone()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.cache.read().hard_state.clone()
    }

    /// First index still in the log.
    pub fn first_log_index(&self) -> u64 {
        self.cache.read().truncated_index + 1
    }

    /// Last index in the log.
    pub fn last_log_index(&self) -> u64 {
        self.cache.read().last_index
    }

    /// Durably append `entries` (truncating any conflicting suffix) and set the hard state.
    /// Synced before returning.
    pub fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        let log = self.cf(CF_LOG);
        let mut new_last = None;
        if let Some(first) = entries.first() {
            let last = entries.last().map(|e| e.index).unwrap_or(first.index);
            let old_last = self.cache.read().last_index;
            if old_last > last {
                b.delete_range_cf(log, u64_key(last + 1), u64_key(old_last + 1));
            }
            for e in entries {
                let bytes = e.write_to_bytes().map_err(|e| corrupt("entry", e))?;
                b.put_cf(log, u64_key(e.index), bytes);
            }
            new_last = Some(last);
        }
        if let Some(hs) = hs {
            let bytes = hs.write_to_bytes().map_err(|e| corrupt("hard_state", e))?;
            b.put_cf(self.cf(CF_META), KEY_HARD_STATE, bytes);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        fail::fail_point!("master::store::before_persist");
        self.db.write_opt(b, &wo)?;
        let mut c = self.cache.write();
        if let Some(l) = new_last {
            c.last_index = l;
        }
        if let Some(hs) = hs {
            c.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Update only the commit index of the hard state (after `advance`).
    pub fn set_commit(&self, commit: u64) -> Result<(), StoreError> {
        let mut hs = self.hard_state();
        if hs.commit >= commit {
            return Ok(());
        }
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }

    /// Atomically write state machine mutations, the new applied index and (optionally) a new
    /// conf state.
    pub fn commit_apply(
        &self,
        muts: &[Mutation],
        applied: u64,
        applied_term: u64,
        conf_state: Option<&ConfState>,
    ) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        let sm = self.cf(self.sm_cf_name());
        for m in muts {
            match m {
                Mutation::Put(k, v) => b.put_cf(sm, k, v),
                Mutation::Delete(k) => b.delete_cf(sm, k),
            }
        }
        let meta = self.cf(CF_META);
        b.put_cf(meta, KEY_APPLIED, pair_bytes(applied, applied_term));
        if let Some(cs) = conf_state {
            let bytes = cs.write_to_bytes().map_err(|e| corrupt("conf_state", e))?;
            b.put_cf(meta, KEY_CONF_STATE, bytes);
        }
        self.check_applied_grows(applied)?;
        self.db.write(b)?;
        let mut c = self.cache.write();
        c.applied = applied;
        if let Some(cs) = conf_state {
            c.conf_state = cs.clone();
        }
        Ok(())
    }

    /// Invariant `applied-index-grows`, checked before a batch that sets the applied index
    /// is written. The raft thread is the only writer, so the check cannot race.
    fn check_applied_grows(&self, to: u64) -> Result<(), StoreError> {
        let from = self.cache.read().applied;
        if to < from {
            return Err(StoreError::AppliedWentBack { from, to });
        }
        Ok(())
    }

    /// Drop log entries up to and including `index` (which must be applied).
    pub fn compact(&self, index: u64) -> Result<(), StoreError> {
        let (first, applied) = {
            let c = self.cache.read();
            (c.truncated_index + 1, c.applied)
        };
        if index < first || index > applied {
            return Ok(());
        }
        let term = raft::Storage::term(self, index).map_err(|e| corrupt("term", e))?;
        let mut b = WriteBatch::default();
        b.delete_range_cf(self.cf(CF_LOG), u64_key(0), u64_key(index + 1));
        b.put_cf(self.cf(CF_META), KEY_TRUNCATED, pair_bytes(index, term));
        // Synced: the file deletion below is durable at once (a MANIFEST edit), so the new
        // truncation point must be durable before it, or a crash could reopen a store whose
        // first log entries are gone while `truncated` still points before them. One fsync
        // per compaction window (tens of thousands of entries) costs nothing.
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(b, &wo)?;
        {
            let mut c = self.cache.write();
            c.truncated_index = index;
            c.truncated_term = term;
        }
        // SST files holding only compacted entries go now, not when compaction reaches the
        // range tombstone (which, for a CF written in index order, can take many flushes):
        // this keeps the log's disk use at about one compaction window.
        self.db
            .delete_file_in_range_cf(self.cf(CF_LOG), u64_key(0), u64_key(index))?;
        Ok(())
    }

    /// About how many bytes the state holds uncompressed (RocksDB's live data estimate of its
    /// column family, times 4 for compression, plus its memtables): bounds a snapshot
    /// transfer's duration.
    pub fn state_bytes_estimate(&self) -> u64 {
        let h = self.cf(self.sm_cf_name());
        let prop = |name: &str| {
            self.db
                .property_int_value_cf(h, name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        prop("rocksdb.estimate-live-data-size").saturating_mul(4)
            + prop("rocksdb.cur-size-all-mem-tables")
    }

    /// The column family holding the state.
    fn sm_cf_name(&self) -> &'static str {
        self.cache.read().sm_cf
    }

    /// The other state column family: the staging area of streamed snapshots.
    fn staging_cf_name(&self) -> &'static str {
        other_sm_cf(self.sm_cf_name())
    }

    /// Install a snapshot raft hands over: replace the whole state machine, the conf state,
    /// applied index and log, in one synced batch.
    ///
    /// A streamed snapshot (its data a descriptor) must be the one staged and sealed by a
    /// [`Stager`]: the staging column family is flushed (its writes skipped the WAL), then the
    /// batch names it as the state (`sm_cf`) and the old state becomes the staging area,
    /// cleared after the switch. A version 2 snapshot (every pair in its data; an older
    /// leader) writes its pairs into the staging area in the same batch. The payload's version
    /// and every record in it are checked first: a snapshot from a newer build is refused
    /// whole, before anything is written.
    pub fn install_snapshot(&self, snap: &Snapshot) -> Result<(), StoreError> {
        let md = snap.get_metadata();
        let data = anode_meta::state::decode_snapshot(snap.get_data())?;
        let streamed = stream::descriptor_of(snap)?.is_some();
        self.check_applied_grows(md.index)?;
        let mut stage = self.stage.lock();
        let (old, new) = (self.sm_cf_name(), self.staging_cf_name());
        let staging = self.cf(new);
        let mut b = WriteBatch::default();
        if streamed {
            match *stage {
                stream::Stage::Sealed { index, term, .. }
                    if (index, term) == (md.index, md.term) => {}
                other => {
                    return Err(StoreError::NotStaged {
                        index: md.index,
                        term: md.term,
                        staged: format!("{other:?}"),
                    })
                }
            }
            self.db.flush_cf(staging)?;
        } else {
            if matches!(*stage, stream::Stage::Receiving { .. }) {
                return Err(StoreError::StageBusy("another snapshot is being received"));
            }
            b.delete_range_cf(staging, SM_RANGE_START, SM_RANGE_END);
            for p in &data.pairs {
                b.put_cf(staging, &p.key, &p.value);
            }
        }
        let log = self.cf(CF_LOG);
        let last = self.cache.read().last_index;
        b.delete_range_cf(log, u64_key(0), u64_key(last.max(md.index) + 1));
        let meta = self.cf(CF_META);
        b.put_cf(meta, KEY_SM_CF, new.as_bytes());
        b.put_cf(meta, KEY_APPLIED, pair_bytes(md.index, md.term));
        b.put_cf(meta, KEY_TRUNCATED, pair_bytes(md.index, md.term));
        let cs_bytes = md
            .get_conf_state()
            .write_to_bytes()
            .map_err(|e| corrupt("conf_state", e))?;
        b.put_cf(meta, KEY_CONF_STATE, cs_bytes);
        let mut hs = self.hard_state();
        hs.commit = hs.commit.max(md.index);
        hs.term = hs.term.max(md.term);
        b.put_cf(
            meta,
            KEY_HARD_STATE,
            hs.write_to_bytes().map_err(|e| corrupt("hard_state", e))?,
        );
        fail::fail_point!("master::store::mid_snapshot_install");
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(b, &wo)?;
        {
            let mut c = self.cache.write();
            c.applied = md.index;
            c.truncated_index = md.index;
            c.truncated_term = md.term;
            c.last_index = md.index;
            c.conf_state = md.get_conf_state().clone();
            c.hard_state = hs;
            c.sm_cf = new;
        }
        *stage = stream::Stage::Idle;
        drop(stage);
        // The old state is now the staging area. Readers that took their view before the
        // switch keep reading it through their RocksDB snapshot (the range delete does not
        // touch what a snapshot sees). Unsynced: an open clears the staging area anyway.
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        let mut b = WriteBatch::default();
        b.delete_range_cf(self.cf(old), SM_RANGE_START, SM_RANGE_END);
        self.db.write_opt(b, &wo)?;
        Ok(())
    }

    /// A consistent read view of the state machine (a RocksDB snapshot). The column family
    /// and the snapshot are taken under the cache lock, so a view never pairs the old column
    /// family with a snapshot taken after a snapshot install cleared it.
    pub fn view(&self) -> SmView<'_> {
        let c = self.cache.read();
        let cf = self.cf(c.sm_cf);
        let snap = self.db.snapshot();
        drop(c);
        SmView { snap, cf }
    }

    /// A streamed raft snapshot of the applied state: pin a view of it and describe it.
    /// Called by raft-rs on the raft thread (the only writer), so the pinned view is exactly
    /// the state at the applied index.
    fn build_snapshot(&self) -> Result<Snapshot, StoreError> {
        let (applied, conf_state, cf) = {
            let c = self.cache.read();
            (c.applied, c.conf_state.clone(), c.sm_cf)
        };
        let term = raft::Storage::term(self, applied).map_err(|e| corrupt("term", e))?;
        self.pin(applied, term, cf)?;
        let mut snap = Snapshot::default();
        snap.set_data(stream::descriptor_data(applied, term).into());
        let md = snap.mut_metadata();
        md.index = applied;
        md.term = term;
        md.set_conf_state(conf_state);
        Ok(snap)
    }

    fn read_entry(&self, idx: u64) -> Result<Option<Entry>, StoreError> {
        match self.db.get_cf(self.cf(CF_LOG), u64_key(idx))? {
            Some(v) => Ok(Some(
                Entry::parse_from_bytes(&v).map_err(|e| corrupt("entry", e))?,
            )),
            None => Ok(None),
        }
    }
}

/// Read options of a bounded scan of `sm`.
///
/// - `iterate_upper_bound`: the iterator stops at `end` inside RocksDB instead of reading the
///   next key past it (which may sit in another file), and skips tombstones up to the bound
///   only.
/// - Readahead for scans that will read many blocks (a LIST page of 1,000 keys is about
///   1 MiB of 1 KiB inline manifests): one 256 KiB read instead of a 16 KiB read per block
///   when the blocks are not cached. A short scan keeps RocksDB's adaptive readahead.
fn scan_options(end: Option<&[u8]>, limit: usize) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(e) = end {
        ro.set_iterate_upper_bound(e.to_vec());
    }
    if limit >= LONG_SCAN_ROWS {
        ro.set_readahead_size(SCAN_READAHEAD_BYTES);
    }
    ro
}

/// A scan of at least this many rows is a long scan (see [`scan_options`]).
const LONG_SCAN_ROWS: usize = 256;
/// Readahead of a long scan.
const SCAN_READAHEAD_BYTES: usize = 256 << 10;

/// A consistent snapshot view of the state machine column family.
pub struct SmView<'a> {
    snap: rocksdb::Snapshot<'a>,
    cf: &'a rocksdb::ColumnFamily,
}

impl KvRead for SmView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A read error here is a disk failure: there is no correct answer to give.
        self.snap
            .get_cf(self.cf, key)
            .expect("rocksdb read failed (disk error)")
    }
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mode = IteratorMode::From(start, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self
            .snap
            .iterator_cf_opt(self.cf, scan_options(end, limit), mode)
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.expect("rocksdb scan failed (disk error)");
            if let Some(e) = end {
                if &k[..] >= e {
                    break;
                }
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        out
    }

    /// One RocksDB iterator for the whole walk: a [`Step::Seek`] is a seek inside it, so a
    /// delimiter listing skips a common prefix without reading (or copying) its keys.
    fn walk(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> Step) {
        let mut ro = ReadOptions::default();
        if let Some(e) = end {
            ro.set_iterate_upper_bound(e.to_vec());
        }
        let mut it = self.snap.raw_iterator_cf_opt(self.cf, ro);
        it.seek(start);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            match visit(k, v) {
                Step::Next => it.next(),
                Step::Seek(to) if to.as_slice() > k => it.seek(&to),
                Step::Seek(_) => it.next(),
                Step::Stop => return,
            }
        }
        // A read error here is a disk failure: there is no correct answer to give.
        it.status().expect("rocksdb walk failed (disk error)");
    }
}

/// The production [`LogStore`]: each method is the inherent method of the same name.
impl LogStore for RaftStore {
    type Error = StoreError;
    type View<'a> = SmView<'a>;

    fn applied(&self) -> u64 {
        RaftStore::applied(self)
    }
    fn first_log_index(&self) -> u64 {
        RaftStore::first_log_index(self)
    }
    fn last_log_index(&self) -> u64 {
        RaftStore::last_log_index(self)
    }
    fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), StoreError> {
        RaftStore::persist(self, entries, hs)
    }
    fn set_commit(&self, commit: u64) -> Result<(), StoreError> {
        RaftStore::set_commit(self, commit)
    }
    fn commit_apply(
        &self,
        muts: &[Mutation],
        applied: u64,
        applied_term: u64,
        conf_state: Option<&ConfState>,
    ) -> Result<(), StoreError> {
        RaftStore::commit_apply(self, muts, applied, applied_term, conf_state)
    }
    fn compact(&self, index: u64) -> Result<(), StoreError> {
        RaftStore::compact(self, index)
    }
    fn install_snapshot(&self, snap: &Snapshot) -> Result<(), StoreError> {
        RaftStore::install_snapshot(self, snap)
    }
    fn view(&self) -> SmView<'_> {
        RaftStore::view(self)
    }
}

impl raft::Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.cache.read();
        Ok(RaftState::new(c.hard_state.clone(), c.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        let (first, last) = {
            let c = self.cache.read();
            (c.truncated_index + 1, c.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        for idx in low..high {
            let e = self
                .read_entry(idx)?
                .ok_or(raft::Error::Store(StorageError::Unavailable))?;
            size += u64::from(e.compute_size());
            if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let (ti, tt, last) = {
            let c = self.cache.read();
            (c.truncated_index, c.truncated_term, c.last_index)
        };
        if idx == ti {
            return Ok(tt);
        }
        if idx < ti {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        match self.read_entry(idx)? {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().last_index)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Always the current applied state: its index is >= any index a follower can need
        // from a snapshot, because the leader only compacts applied entries. raft-rs aborts
        // on any error but "temporarily unavailable" (it then tries again later), so a pin
        // that could not be made is reported as that.
        self.build_snapshot().map_err(|e| {
            tracing::warn!(error = %e, "raft snapshot not pinned; raft will ask again");
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Default::default()
        }
    }

    #[test]
    fn log_survives_reopen_and_truncates_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RaftStore::open(dir.path()).unwrap();
            assert!(s.is_empty());
            s.bootstrap(vec![1, 2, 3]).unwrap();
            let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
            let hs = HardState {
                term: 1,
                commit: 3,
                ..Default::default()
            };
            s.persist(&ents, Some(&hs)).unwrap();
            // A new leader overwrites 4..5 with one entry at term 2.
            s.persist(&[entry(4, 2)], None).unwrap();
            assert_eq!(s.last_index().unwrap(), 4);
        }
        let s = RaftStore::open(dir.path()).unwrap();
        assert!(!s.is_empty());
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(4).unwrap(), 2);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 3);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
        assert_eq!(
            s.entries(1, 5, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn applied_ahead_of_the_persisted_commit_reopens() {
        // The node applies a Ready's committed entries (unsynced batch) before it persists the
        // hard state carrying their commit index; a crash in between leaves applied > commit
        // on disk, and raft-rs refuses to start with applied > committed.
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RaftStore::open(dir.path()).unwrap();
            s.bootstrap(vec![1]).unwrap();
            let ents: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
            let hs = HardState {
                term: 1,
                commit: 3,
                ..Default::default()
            };
            s.persist(&ents, Some(&hs)).unwrap();
            s.commit_apply(&[], 5, 1, None).unwrap();
        }
        let s = RaftStore::open(dir.path()).unwrap();
        assert_eq!(s.applied(), 5);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 5);
        let cfg = raft::Config {
            id: 1,
            applied: s.applied(),
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = raft::RawNode::new(&cfg, s, &logger).unwrap();
        assert_eq!(node.raft.raft_log.committed, 5);
    }

    #[test]
    fn entries_stop_at_the_append_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = RaftStore::open(dir.path()).unwrap();
        s.bootstrap(vec![1]).unwrap();
        let ents: Vec<_> = (1..=2_000)
            .map(|i| Entry {
                data: vec![7u8; 1000].into(),
                ..entry(i, 1)
            })
            .collect();
        s.persist(&ents, None).unwrap();
        let max = crate::node::MAX_APPEND_BYTES;
        let got = s
            .entries(1, 2_001, Some(max), GetEntriesContext::empty(false))
            .unwrap();
        let bytes: u64 = got.iter().map(|e| u64::from(e.compute_size())).sum();
        assert!(
            bytes <= max && got.len() > 1,
            "{} entries, {bytes} B",
            got.len()
        );
        assert!(
            max <= 64 << 10,
            "appends re-read per heartbeat response must stay small"
        );
        // At least one entry even when it alone exceeds the bound.
        let one = s
            .entries(1, 2_001, Some(1), GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn compaction_and_snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = RaftStore::open(dir.path()).unwrap();
        s.bootstrap(vec![1]).unwrap();
        let ents: Vec<_> = (1..=10).map(|i| entry(i, 1)).collect();
        s.persist(&ents, None).unwrap();
        let muts = vec![Mutation::Put(
            b"x/stat/objects".to_vec(),
            1u64.to_be_bytes().to_vec(),
        )];
        s.commit_apply(&muts, 8, 1, None).unwrap();
        s.compact(6).unwrap();
        assert_eq!(s.first_index().unwrap(), 7);
        assert!(matches!(
            s.entries(5, 8, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.term(6).unwrap(), 1);
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!(snap.get_metadata().index, 8);

        let dir2 = tempfile::tempdir().unwrap();
        let f = RaftStore::open(dir2.path()).unwrap();
        transfer_snapshot(&s, &f, &snap).unwrap();
        f.install_snapshot(&snap).unwrap();
        drop(f);
        let f = RaftStore::open(dir2.path()).unwrap();
        assert_eq!(f.applied(), 8);
        assert_eq!(f.first_index().unwrap(), 9);
        assert_eq!(f.last_index().unwrap(), 8);
        assert_eq!(
            f.view().get(b"x/stat/objects"),
            Some(1u64.to_be_bytes().to_vec())
        );
        assert_eq!(f.conf_state().voters, vec![1]);
    }

    #[test]
    fn the_format_is_written_at_creation_and_a_pre_versioning_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        // Missing ancestors are created (RocksDB alone creates only the last directory).
        let path = dir.path().join("data/raft");
        {
            let s = RaftStore::open(&path).unwrap();
            assert_eq!(s.format().unwrap(), STORE_FORMAT_VERSION);
            s.bootstrap(vec![1, 2, 3]).unwrap();
            // Make it a store as written before formats were versioned.
            s.db.delete_cf(s.cf(CF_META), KEY_FORMAT).unwrap();
            assert_eq!(s.format().unwrap(), 0);
        }
        let s = RaftStore::open(&path).unwrap();
        assert_eq!(s.format().unwrap(), STORE_FORMAT_VERSION);
        assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
    }

    /// Formats 1 (before client sessions), 2 (before the staging column family), 3 (before
    /// users and usage counters), 4 (before access configuration), 5 (before versions) and 6
    /// (before CORS, tags and stored checksums), 7 (before event notifications) and 8 (before
    /// Parquet indexes) have the layout of format 9 without session keys / with the state in
    /// `sm` / without users and counters / without access fields / without versions / without
    /// issue 15's fields / without notification targets and queues / without `f/` and `g/`.
    #[test]
    fn formats_1_to_8_are_migrated_to_9() {
        for old in [1, 2, 3, 4, 5, 6, 7, 8] {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = RaftStore::open(dir.path()).unwrap();
                s.bootstrap(vec![1]).unwrap();
                s.commit_apply(&[Mutation::Put(b"u/a".to_vec(), vec![0; 8])], 0, 0, None)
                    .unwrap();
                s.write_format(old).unwrap();
            }
            let s = RaftStore::open(dir.path()).unwrap();
            assert_eq!((s.format().unwrap(), STORE_FORMAT_VERSION), (9, 9));
            assert_eq!(s.conf_state().voters, vec![1]);
            assert_eq!(
                (s.sm_cf_name(), s.view().get(b"u/a")),
                (CF_SM, Some(vec![0; 8]))
            );
        }
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        RaftStore::open(dir.path())
            .unwrap()
            .write_format(STORE_FORMAT_VERSION + 1)
            .unwrap();
        let err = RaftStore::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::FormatTooNew { found, .. }
            if found == STORE_FORMAT_VERSION + 1));
        let msg = err.to_string();
        let want = format!(
            "{}: store format {} (key `format` of column family `meta`) is newer than this \
             build supports ({STORE_FORMAT_VERSION})",
            dir.path().display(),
            STORE_FORMAT_VERSION + 1
        );
        assert!(msg.starts_with(&want), "{msg}");
    }

    fn snapshot_at(index: u64, data: &anode_proto::SnapshotData) -> Snapshot {
        let mut snap = Snapshot::default();
        snap.set_data(prost::Message::encode_to_vec(data).into());
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().mut_conf_state().voters = vec![1];
        snap
    }

    #[test]
    fn a_snapshot_from_a_newer_build_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let s = RaftStore::open(dir.path()).unwrap();
        let pair = anode_proto::KvPair {
            key: b"x/stat/objects".to_vec(),
            value: 1u64.to_be_bytes().to_vec(),
        };
        let newer = anode_proto::SnapshotData {
            version: anode_proto::SNAPSHOT_VERSION + 1,
            pairs: vec![pair.clone()],
            descriptor: None,
        };
        let err = s.install_snapshot(&snapshot_at(5, &newer)).unwrap_err();
        assert!(
            matches!(err, StoreError::Record(RecordError::TooNew { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("SnapshotData"), "{err}");
        // A current snapshot holding a record from a newer build: refused too.
        let bucket = anode_proto::BucketConfig {
            version: anode_proto::RECORD_VERSION + 1,
            ..Default::default()
        };
        let mixed = anode_proto::SnapshotData {
            version: anode_proto::SNAPSHOT_VERSION,
            pairs: vec![
                pair.clone(),
                anode_proto::KvPair {
                    key: b"b/x".to_vec(),
                    value: prost::Message::encode_to_vec(&bucket),
                },
            ],
            descriptor: None,
        };
        let err = s.install_snapshot(&snapshot_at(5, &mixed)).unwrap_err();
        assert!(err.to_string().contains("BucketConfig at b/x"), "{err}");
        assert_eq!(s.applied(), 0);
        assert_eq!(s.view().get(b"x/stat/objects"), None);
        // The current form installs.
        let ok = anode_proto::SnapshotData {
            version: anode_proto::SNAPSHOT_VERSION,
            pairs: vec![pair],
            descriptor: None,
        };
        s.install_snapshot(&snapshot_at(5, &ok)).unwrap();
        assert_eq!(s.applied(), 5);
    }

    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    }

    /// The WAL stays near `MAX_TOTAL_WAL_BYTES` under the master's write pattern (synced log
    /// appends, unsynced state batches with the applied index, log compaction). With
    /// RocksDB's defaults `meta` pinned every WAL file and the WAL grew with everything written.
    #[test]
    fn the_wal_stays_bounded_under_sustained_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = RaftStore::open(dir.path()).unwrap();
        s.bootstrap(vec![1]).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut body = move || {
            (0..2048)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>()
        };
        let (batches, per_batch) = (800u64, 100u64);
        let mut max_wal = 0;
        for b in 0..batches {
            let first = b * per_batch + 1;
            let ents: Vec<Entry> = (first..first + per_batch)
                .map(|i| Entry {
                    data: body().into(),
                    ..entry(i, 1)
                })
                .collect();
            s.persist(&ents, None).unwrap();
            let muts: Vec<Mutation> = (first..first + per_batch)
                .map(|i| Mutation::Put(format!("o/b\0k{i:08}").into_bytes(), body()))
                .collect();
            let last = first + per_batch - 1;
            s.commit_apply(&muts, last, 1, None).unwrap();
            if last - s.first_log_index() > 40_000 {
                s.compact(last - 20_000).unwrap();
            }
            max_wal = max_wal.max(wal_bytes(dir.path()));
        }
        let written = 2 * batches * per_batch * 2048;
        // The cap, plus what is written while the flush it forces runs.
        let bound = tuning::MAX_TOTAL_WAL_BYTES + tuning::LOG_WRITE_BUFFER_BYTES as u64;
        assert!(
            written > 3 * bound,
            "the run must write well past the bound"
        );
        assert!(
            max_wal < bound,
            "WAL reached {max_wal} B after writing {written} B"
        );
        assert_eq!(s.first_log_index(), 40_201);
        assert!(s.view().get(b"o/b\0k00000001").is_some());
    }

    #[test]
    fn the_applied_index_never_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RaftStore::open(dir.path()).unwrap();
            s.bootstrap(vec![1]).unwrap();
            let ents: Vec<_> = (1..=6).map(|i| entry(i, 1)).collect();
            s.persist(&ents, None).unwrap();
            s.commit_apply(&[], 5, 1, None).unwrap();
            let muts = vec![Mutation::Put(
                b"x/stat/objects".to_vec(),
                2u64.to_be_bytes().to_vec(),
            )];
            let err = s.commit_apply(&muts, 4, 1, None).unwrap_err();
            assert!(matches!(
                err,
                StoreError::AppliedWentBack { from: 5, to: 4 }
            ));
            let empty = anode_proto::SnapshotData {
                version: anode_proto::SNAPSHOT_VERSION,
                pairs: Vec::new(),
                descriptor: None,
            };
            let err = s.install_snapshot(&snapshot_at(3, &empty)).unwrap_err();
            assert!(matches!(
                err,
                StoreError::AppliedWentBack { from: 5, to: 3 }
            ));
        }
        // Nothing of the refused batches reached the disk.
        let s = RaftStore::open(dir.path()).unwrap();
        assert_eq!(s.applied(), 5);
        assert_eq!(s.view().get(b"x/stat/objects"), None);
        assert_eq!(s.last_log_index(), 6);
    }
}
