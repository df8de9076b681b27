//! The content-addressed blob store on local disks.
//!
//! Layout per data directory: `blobs/ab/cd/<64-hex sha256>`, `tmp/` for writes in progress,
//! `corrupt/` for copies that failed verification (kept as evidence), `uuid` (this
//! server's identity across restarts) and `anode-format` (the layout and its version, see
//! [`crate::format`]). A put streams into `tmp/`, hashing as bytes arrive; the blob is renamed
//! into place only after its length and SHA-256 match and the file is fsynced; the directory
//! is fsynced after the rename. Only then is the put acknowledged. Since data directory format
//! version 2 the blob's per-block CRC-32Cs ([`crate::blocksums`]) are computed as it streams
//! in and set as its extended attribute before that fsync, so they are durable with the blob;
//! a filesystem without user xattrs stores blobs without them (ranged reads then hash the
//! whole blob, as for blobs from version 1).
//!
//! Directories are durable before anything relies on them: the fan-out directories
//! `blobs/ab/cd` are created on a blob's first put with
//! [`anode_common::fsutil::create_dir_all_durable_with`] (each created level and its parent
//! fsynced), and every open fsyncs the existing skeleton (the root's parent, the root,
//! `blobs/`, `tmp/`, `corrupt/` and every `blobs/ab`), which covers directories created by a
//! process that crashed before syncing them and data directories from before this rule.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anode_common::fsutil;
use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::blocksums::{self, BlockSums, Summer};
use crate::direct::DirectFile;
use crate::error::ChunkError;
use crate::format::{self, Found};

/// Bytes read per message when streaming a blob out.
pub const READ_PIECE_BYTES: usize = 256 * 1024;

/// Free bytes a disk marked full must have again before it takes new blobs: two of the
/// largest chunks, so a disk at the edge does not flip between full and not full on every put.
pub const FULL_CLEAR_FREE_BYTES: u64 = 2 * anode_proto::MAX_CHUNK_BYTES;

/// Whether a failed read of a blob means the copy cannot be trusted: a media or file fault
/// (EIO, a blob that is not a regular file, no permission, ...), reported and repaired like a
/// checksum mismatch. Not: the blob is gone (NotFound, the caller's "no such chunk"), or this
/// process ran short of a resource (open files, memory, an interrupted call), which says
/// nothing about the copy.
pub fn is_bad_copy_error(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::NotFound {
        return false;
    }
    !matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
    )
}

/// Whether a disk marked full may take blobs again with `free` bytes free (pure).
pub fn space_returned(free: u64) -> bool {
    free >= FULL_CLEAR_FREE_BYTES
}

/// One data directory (disk).
#[derive(Debug)]
pub struct Disk {
    /// Root of the directory.
    pub path: PathBuf,
    /// Set when a write hit ENOSPC.
    pub full: std::sync::atomic::AtomicBool,
}

/// The wall clock that stamps blob mtimes (the GC fence compares them with the master's
/// clock). Production uses the system clock; simulations inject theirs.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// How the store fsyncs a directory. Production uses [`fsutil::fsync_dir`]; tests inject a
/// recorder to check which directories were synced, and when.
pub type DirSync = Arc<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;

/// The blob store over one or more disks.
#[derive(Clone)]
pub struct BlobStore {
    disks: Arc<Vec<Disk>>,
    capacity_bytes: u64,
    used: Arc<AtomicU64>,
    count: Arc<AtomicU64>,
    /// Bytes reserved by puts in progress (capacity accounting).
    reserved: Arc<AtomicU64>,
    events: Arc<Mutex<Events>>,
    /// Serializes "touch an existing blob" against "delete it if untouched" (GC fencing).
    gc_lock: Arc<Mutex<()>>,
    /// Stamps mtimes; `None` = the system clock.
    clock: Option<WallClock>,
    /// Every directory fsync goes through this.
    dir_sync: DirSync,
    /// Held while fan-out directories are created and synced, so no put finds a directory
    /// another put created but has not synced yet.
    dir_lock: Arc<Mutex<()>>,
    /// Write blobs with `O_DIRECT` where the filesystem allows ([`crate::direct`]).
    direct_io: bool,
}

/// Changes since the last heartbeat.
#[derive(Default, Debug)]
pub struct Events {
    /// Blobs added.
    pub added: Vec<Vec<u8>>,
    /// Blobs removed.
    pub removed: Vec<Vec<u8>>,
    /// Blobs found corrupt.
    pub corrupt: Vec<Vec<u8>>,
}

/// Parse a 64-hex file name.
pub fn parse_id(name: &str) -> Option<Vec<u8>> {
    (name.len() == 64).then(|| hex::decode(name).ok()).flatten()
}

/// Check a chunk id from the network: exactly [`anode_proto::CHUNK_ID_BYTES`] bytes.
pub fn check_id(sha: &[u8]) -> Result<(), ChunkError> {
    if sha.len() != anode_proto::CHUNK_ID_BYTES {
        return Err(ChunkError::BadRequest(format!(
            "a chunk id is {} bytes (SHA-256), got {}",
            anode_proto::CHUNK_ID_BYTES,
            sha.len()
        )));
    }
    Ok(())
}

/// `blobs/ab/cd/<hex>` for a checked id; `None` for an id of the wrong length.
fn rel_path(sha: &[u8]) -> Option<PathBuf> {
    check_id(sha).ok()?;
    let h = hex::encode(sha);
    Some(PathBuf::from("blobs").join(&h[0..2]).join(&h[2..4]).join(h))
}

fn is_enospc(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

impl BlobStore {
    /// Open the disks: check each one's format (refusing a newer version or an unknown
    /// layout), initialise new ones and migrate ones from before the format file, remove
    /// leftovers in `tmp/`, make the directory skeleton durable, count existing blobs.
    pub fn open(dirs: &[PathBuf], capacity_bytes: u64) -> Result<BlobStore, ChunkError> {
        Self::open_with_dir_sync(dirs, capacity_bytes, Arc::new(fsutil::fsync_dir))
    }

    /// [`BlobStore::open`] with every directory fsync going through `dir_sync`.
    pub fn open_with_dir_sync(
        dirs: &[PathBuf],
        capacity_bytes: u64,
        dir_sync: DirSync,
    ) -> Result<BlobStore, ChunkError> {
        let mut disks = Vec::new();
        let (mut used, mut count) = (0u64, 0u64);
        for d in dirs {
            prepare_disk(d, &*dir_sync)?;
            for (_, len) in list_dir_blobs(d)? {
                used += len;
                count += 1;
            }
            disks.push(Disk {
                path: d.clone(),
                full: Default::default(),
            });
        }
        if disks.is_empty() {
            return Err(ChunkError::Config("no data directory".into()));
        }
        Ok(BlobStore {
            disks: Arc::new(disks),
            capacity_bytes,
            used: Arc::new(AtomicU64::new(used)),
            count: Arc::new(AtomicU64::new(count)),
            reserved: Arc::default(),
            events: Arc::default(),
            gc_lock: Arc::default(),
            clock: None,
            dir_sync,
            dir_lock: Arc::default(),
            direct_io: false,
        })
    }

    /// Write blobs through the page cache (`false`) or around it with `O_DIRECT` where the
    /// filesystem allows (`true`; [`crate::direct`]). Buffered is the default.
    pub fn with_direct_io(mut self, direct_io: bool) -> BlobStore {
        self.direct_io = direct_io;
        self
    }

    /// Stamp mtimes (writes and touches) with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: WallClock) -> BlobStore {
        self.clock = Some(clock);
        self
    }

    fn now(&self) -> SystemTime {
        self.clock.as_ref().map_or_else(SystemTime::now, |c| c())
    }

    /// The disks.
    pub fn disks(&self) -> &[Disk] {
        &self.disks
    }

    /// Bytes stored.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// Blobs stored.
    pub fn chunk_count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Configured capacity (0 = the disks' size, not enforced here).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Take the changes since the last call.
    pub fn take_events(&self) -> Events {
        std::mem::take(&mut *self.events.lock())
    }

    /// Where `sha` lives, if present.
    pub fn locate(&self, sha: &[u8]) -> Option<PathBuf> {
        let rel = rel_path(sha)?;
        self.disks
            .iter()
            .map(|d| d.path.join(&rel))
            .find(|p| p.exists())
    }

    /// Unmark disks marked full that have [`FULL_CLEAR_FREE_BYTES`] free again (space freed by
    /// deletes or by the operator). Called before a put picks a disk and on every heartbeat.
    pub fn refresh_full(&self) {
        for d in self.disks.iter().filter(|d| d.full.load(Ordering::SeqCst)) {
            let free = free_bytes(&d.path);
            if space_returned(free) {
                d.full.store(false, Ordering::SeqCst);
                tracing::info!(disk = %d.path.display(), free, "disk has space again; no longer full");
            }
        }
    }

    /// A read of blob `sha` failed with `e`. A fault of the copy ([`is_bad_copy_error`]) is
    /// handled as a checksum mismatch is: the copy is quarantined and reported for repair in
    /// the next heartbeat, and the reader gets `Corrupt` (it tries another replica).
    pub fn read_failed(&self, sha: &[u8], e: std::io::Error) -> ChunkError {
        if e.kind() == std::io::ErrorKind::NotFound {
            return ChunkError::NotFound(hex::encode(sha));
        }
        if !is_bad_copy_error(&e) {
            return ChunkError::Io(e);
        }
        tracing::warn!(chunk = %hex::encode(sha), error = %e, "read of a blob failed; copy marked bad");
        crate::metrics::READ_FAULTS.inc();
        self.quarantine(sha);
        ChunkError::Corrupt(hex::encode(sha))
    }

    /// Pick the disk for a new blob: not full, most free space.
    fn pick_disk(&self) -> Result<&Disk, ChunkError> {
        self.refresh_full();
        self.disks
            .iter()
            .filter(|d| !d.full.load(Ordering::SeqCst))
            .max_by_key(|d| free_bytes(&d.path))
            .ok_or(ChunkError::Full("every disk is full".into()))
    }

    /// Reserve `len` bytes against the capacity; released by the returned guard.
    fn reserve(&self, len: u64) -> Result<Reservation, ChunkError> {
        if self.capacity_bytes > 0 {
            let full = |used: u64| {
                ChunkError::Full(format!(
                    "capacity {} bytes reached ({used} used)",
                    self.capacity_bytes
                ))
            };
            // Checked arithmetic: a sum that overflows is over any capacity.
            let Ok(before) = self
                .reserved
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_add(len))
            else {
                return Err(full(self.used_bytes()));
            };
            let over = before
                .checked_add(len)
                .and_then(|r| r.checked_add(self.used_bytes()))
                .is_none_or(|total| total > self.capacity_bytes);
            if over {
                self.reserved.fetch_sub(len, Ordering::SeqCst);
                return Err(full(self.used_bytes()));
            }
        }
        Ok(Reservation {
            store: self.clone(),
            len: if self.capacity_bytes > 0 { len } else { 0 },
        })
    }

    /// Start writing blob `sha` of `len` bytes. Feed it with [`BlobWriter::write`], then
    /// [`BlobWriter::finish`], which verifies, fsyncs and renames.
    pub async fn begin(&self, sha: Vec<u8>, len: u64) -> Result<BlobWriter, ChunkError> {
        check_id(&sha)?;
        if len > anode_proto::MAX_CHUNK_BYTES {
            return Err(ChunkError::BadRequest(format!(
                "declared length {len} exceeds the largest chunk, {} bytes",
                anode_proto::MAX_CHUNK_BYTES
            )));
        }
        let reservation = self.reserve(len)?;
        let disk = self.pick_disk()?;
        let tmp =
            disk.path
                .join("tmp")
                .join(format!("{}.{}", hex::encode(&sha), rand::random::<u64>()));
        let (path, direct) = (tmp.clone(), self.direct_io);
        let file = tokio::task::spawn_blocking(move || DirectFile::create(&path, direct))
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))??;
        Ok(BlobWriter {
            store: self.clone(),
            disk_root: disk.path.clone(),
            sha,
            len,
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            sums: Summer::new(len),
            written: 0,
            _reservation: reservation,
        })
    }

    /// Read `[offset, offset+length)` of a blob (length 0 = to the end; a range past the end
    /// is cut at the end). An offset past the end or a range whose end overflows is refused;
    /// a blob that cannot be opened is a bad copy ([`Self::read_failed`]), as is one whose
    /// bytes cannot be read (the caller streaming them calls it).
    pub async fn read_range(
        &self,
        sha: &[u8],
        offset: u64,
        length: u64,
    ) -> Result<(tokio::fs::File, u64, u64), ChunkError> {
        use tokio::io::AsyncSeekExt;
        if offset.checked_add(length).is_none() {
            return Err(ChunkError::BadRequest(format!(
                "range {offset}+{length} overflows"
            )));
        }
        let path = self
            .locate(sha)
            .ok_or_else(|| ChunkError::NotFound(hex::encode(sha)))?;
        let bad = |e| self.read_failed(sha, e);
        let mut f = tokio::fs::File::open(&path).await.map_err(bad)?;
        let total = f.metadata().await.map_err(bad)?.len();
        if offset > total {
            return Err(ChunkError::BadRequest(format!(
                "offset {offset} past length {total}"
            )));
        }
        let n = if length == 0 {
            total - offset
        } else {
            length.min(total - offset)
        };
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(bad)?;
        Ok((f, n, total))
    }

    /// The block sums of an open blob of `total` bytes, when it has valid ones
    /// ([`crate::blocksums`]); `None` for a blob without (format version 1, a filesystem without
    /// user xattrs) or with sums that do not decode or do not fit its length, which readers
    /// then verify whole.
    pub fn block_sums(&self, file: &std::fs::File, total: u64) -> Option<BlockSums> {
        use std::os::fd::AsRawFd;
        let raw = match get_xattr(file.as_raw_fd(), blocksums::XATTR_NAME) {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "block sums unreadable; verifying whole blobs");
                return None;
            }
        };
        match BlockSums::decode(&raw) {
            Ok(s) if s.blob_len == total => Some(s),
            Ok(s) => {
                tracing::warn!(
                    sums_len = s.blob_len,
                    total,
                    "block sums of another length ignored"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "block sums ignored");
                None
            }
        }
    }

    /// Hash the whole blob; Ok(true) when it matches its name. A read fault is a bad copy
    /// ([`Self::read_failed`]: quarantined, reported, `Corrupt`).
    pub async fn verify(&self, sha: &[u8]) -> Result<bool, ChunkError> {
        let path = self
            .locate(sha)
            .ok_or_else(|| ChunkError::NotFound(hex::encode(sha)))?;
        let id = sha.to_vec();
        let hashed = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?;
        match hashed {
            Ok(h) => Ok(h == id),
            Err(ChunkError::Io(e)) => Err(self.read_failed(sha, e)),
            Err(e) => Err(e),
        }
    }

    /// Move a bad copy to `corrupt/` and record it for the next heartbeat.
    pub fn quarantine(&self, sha: &[u8]) {
        if let Some(path) = self.locate(sha) {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let root = path
                .ancestors()
                .nth(4)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let dest = root.join("corrupt").join(format!(
                "{}.{}",
                hex::encode(sha),
                rand::random::<u32>()
            ));
            if std::fs::rename(&path, &dest).is_ok() {
                // The move is evidence and ends the copy's life here: make both entries
                // durable, or a restart could bring the bad copy back into `blobs/`.
                for dir in [dest.parent(), path.parent()].into_iter().flatten() {
                    if let Err(e) = (self.dir_sync)(dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "fsync after quarantine failed");
                    }
                }
                self.used
                    .fetch_sub(len.min(self.used_bytes()), Ordering::SeqCst);
                self.count.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(chunk = %hex::encode(sha), to = %dest.display(), "quarantined corrupt blob");
            }
        }
        self.events.lock().corrupt.push(sha.to_vec());
    }

    /// Mark a present blob as written now (its mtime, fsync'd), so a garbage-collection
    /// delete fenced before now refuses it. Returns whether the blob is present.
    pub fn touch(&self, sha: &[u8]) -> Result<bool, ChunkError> {
        let _g = self.gc_lock.lock();
        let Some(path) = self.locate(sha) else {
            return Ok(false);
        };
        let f = std::fs::File::options().append(true).open(&path)?;
        f.set_modified(self.now())?;
        f.sync_all()?;
        Ok(true)
    }

    /// [`BlobStore::touch`] off the async threads (it fsyncs).
    pub async fn touch_async(&self, sha: Vec<u8>) -> Result<bool, ChunkError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.touch(&sha))
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?
    }

    /// Delete a blob on the master's order, unless it was written or touched at or after
    /// `not_touched_since_ms` (wall clock; 0 = unconditionally). `Ok(None)`: refused.
    pub fn delete_if_untouched(
        &self,
        sha: &[u8],
        not_touched_since_ms: u64,
    ) -> Result<Option<bool>, ChunkError> {
        let _g = self.gc_lock.lock();
        if not_touched_since_ms > 0 {
            if let Some(path) = self.locate(sha) {
                let mtime = std::fs::metadata(&path)?
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                if mtime >= not_touched_since_ms {
                    return Ok(None);
                }
            }
        }
        self.delete_locked(sha).map(Some)
    }

    /// Delete a blob unconditionally.
    pub fn delete(&self, sha: &[u8]) -> Result<bool, ChunkError> {
        let _g = self.gc_lock.lock();
        self.delete_locked(sha)
    }

    fn delete_locked(&self, sha: &[u8]) -> Result<bool, ChunkError> {
        let Some(path) = self.locate(sha) else {
            return Ok(false);
        };
        let len = std::fs::metadata(&path)?.len();
        std::fs::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            (self.dir_sync)(dir)?;
        }
        self.used
            .fetch_sub(len.min(self.used_bytes()), Ordering::SeqCst);
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.events.lock().removed.push(sha.to_vec());
        Ok(true)
    }

    /// Every blob id with its length.
    pub fn list(&self) -> Result<Vec<(Vec<u8>, u64)>, ChunkError> {
        let mut out = Vec::new();
        for d in self.disks.iter() {
            out.extend(list_dir_blobs(&d.path)?);
        }
        out.sort();
        Ok(out)
    }

    /// Rename the verified, fsynced temp file `tmp` to `dest`, creating `dest`'s fan-out
    /// directories durably first, then fsync `dest`'s directory. Blocking.
    fn place(&self, tmp: &Path, dest: &Path) -> Result<(), ChunkError> {
        let dir = dest.parent().expect("blob has a parent");
        self.create_fan_out(dir)?;
        std::fs::rename(tmp, dest)?;
        (self.dir_sync)(dir)?;
        Ok(())
    }

    /// Create `blobs/ab/cd` (and `blobs/ab`) with every created level and its parent
    /// fsynced. The leaf itself is left to the fsync that follows the rename in
    /// [`BlobStore::place`] (one fsync less per new directory; both happen before the put is
    /// answered). On failure the levels still empty are removed again (best effort), so a
    /// later put does not take an unsynced directory for a durable one.
    fn create_fan_out(&self, dir: &Path) -> Result<(), ChunkError> {
        let _g = self.dir_lock.lock();
        let sync = |p: &Path| match p == dir {
            true => Ok(()),
            false => (self.dir_sync)(p),
        };
        if let Err(e) = fsutil::create_dir_all_durable_with(dir, &sync) {
            for level in dir.ancestors().take(2) {
                let _ = std::fs::remove_dir(level);
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// Make data root `root` ready: refuse a format this build cannot read; create the root,
/// `blobs/`, `tmp/` and `corrupt/` durably; empty `tmp/`; fsync the skeleton; then, for a new
/// or pre-versioning directory, write the format file (last: its presence means the skeleton
/// is durable).
fn prepare_disk(
    root: &Path,
    sync: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Result<(), ChunkError> {
    let found = format::inspect(root)?;
    fsutil::create_dir_all_durable_with(root, sync)?;
    for sub in ["blobs", "tmp", "corrupt"] {
        fsutil::create_dir_all_durable_with(&root.join(sub), sync)?;
    }
    for e in std::fs::read_dir(root.join("tmp"))?.flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    sync_skeleton(root, sync)?;
    match found {
        Found::Current => {}
        Found::Fresh => {
            format::write(root, sync)?;
            tracing::info!(dir = %root.display(), layout = format::LAYOUT, version = format::VERSION, "initialised data directory");
        }
        Found::PreVersioning => {
            format::write(root, sync)?;
            tracing::warn!(dir = %root.display(), layout = format::LAYOUT, version = format::VERSION, "data directory had no format file: migrated (version 1 is its layout)");
        }
        Found::Older(from) => {
            format::write(root, sync)?;
            tracing::info!(dir = %root.display(), from, to = format::VERSION, "data directory format migrated (blobs without block sums are verified whole)");
        }
    }
    Ok(())
}

/// fsync the root's parent, the root, `blobs/`, `tmp/`, `corrupt/` and every `blobs/ab`
/// (whose entries are the `cd` levels), whoever created them.
fn sync_skeleton(
    root: &Path,
    sync: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Result<(), ChunkError> {
    let blobs = root.join("blobs");
    for e in std::fs::read_dir(&blobs)?.flatten() {
        if e.file_type()?.is_dir() {
            sync(&e.path())?;
        }
    }
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    for dir in [
        root.to_path_buf(),
        blobs,
        root.join("tmp"),
        root.join("corrupt"),
    ] {
        sync(&dir)?;
    }
    Ok(())
}

struct Reservation {
    store: BlobStore,
    len: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.store.reserved.fetch_sub(self.len, Ordering::SeqCst);
    }
}

/// An in-progress blob write. Dropping it without `finish` removes the temp file.
pub struct BlobWriter {
    store: BlobStore,
    disk_root: PathBuf,
    sha: Vec<u8>,
    len: u64,
    tmp: PathBuf,
    /// Written on the blocking pool ([`BlobWriter::write_bytes`]), around the page cache where
    /// the filesystem allows ([`crate::direct`]); `None` after `finish` (or after a failed
    /// blocking call).
    file: Option<DirectFile>,
    hasher: Sha256,
    sums: Summer,
    written: u64,
    _reservation: Reservation,
}

impl BlobWriter {
    /// Append bytes (copied once; [`BlobWriter::write_bytes`] takes owned bytes without a
    /// copy).
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ChunkError> {
        self.write_bytes(Bytes::copy_from_slice(data)).await
    }

    /// Append `data`: hashed and written in one call on the blocking pool, so neither the
    /// SHA-256 nor the write holds a runtime worker, and the bytes are not copied into a
    /// buffer of `tokio::fs::File` first (issue 18).
    pub async fn write_bytes(&mut self, data: Bytes) -> Result<(), ChunkError> {
        count_declared(&mut self.written, self.len, data.len())?;
        let file = self.file.take().ok_or_else(|| {
            ChunkError::Io(std::io::Error::other("blob writer used after a failure"))
        })?;
        let mut hasher = std::mem::take(&mut self.hasher);
        let mut sums = std::mem::replace(&mut self.sums, Summer::new(0));
        let (file, hasher, sums, res) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            hasher.update(&data);
            sums.update(&data);
            let res = file.append(&data);
            (file, hasher, sums, res)
        })
        .await
        .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?;
        self.file = Some(file);
        self.hasher = hasher;
        self.sums = sums;
        res.map_err(|e| self.io_error(e))
    }

    /// Move the writing onto one blocking-pool thread for the rest of the blob: the returned
    /// [`BlobPipe`] takes the pieces as they arrive, and the hash, block sums and (direct)
    /// writes of one piece overlap the receipt of the next, with one blocking-pool hop per
    /// blob instead of one per piece (issue 18). At most [`PIPE_PIECES`] pieces wait in
    /// between. End with [`BlobWriter::close`] (or drop the pipe to abandon the blob).
    pub fn pipe(&mut self) -> BlobPipe {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PIPE_PIECES);
        let file = self.file.take();
        let mut hasher = std::mem::take(&mut self.hasher);
        let mut sums = std::mem::replace(&mut self.sums, Summer::new(0));
        let task = tokio::task::spawn_blocking(move || {
            let Some(mut file) = file else {
                let e = std::io::Error::other("blob writer used after a failure");
                return (None, hasher, sums, Err(e));
            };
            while let Some(data) = rx.blocking_recv() {
                hasher.update(&data);
                sums.update(&data);
                if let Err(e) = file.append(&data) {
                    return (Some(file), hasher, sums, Err(e));
                }
            }
            (Some(file), hasher, sums, Ok(()))
        });
        BlobPipe {
            tx,
            task,
            written: self.written,
            len: self.len,
        }
    }

    /// Wait for the pipe's thread to write everything sent, and take the blob back for
    /// [`BlobWriter::finish`]. A write error (ENOSPC marks the disk full) is returned here.
    pub async fn close(&mut self, pipe: BlobPipe) -> Result<(), ChunkError> {
        let BlobPipe {
            tx, task, written, ..
        } = pipe;
        drop(tx);
        let (file, hasher, sums, res) = task
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?;
        self.file = file;
        self.hasher = hasher;
        self.sums = sums;
        self.written = written;
        res.map_err(|e| self.io_error(e))
    }

    /// A failed write: ENOSPC marks the disk full ([`ChunkError::Full`]), the rest is IO.
    fn io_error(&self, e: std::io::Error) -> ChunkError {
        if is_enospc(&e) {
            self.mark_full();
            return ChunkError::Full(format!("disk {} is full", self.disk_root.display()));
        }
        e.into()
    }

    fn mark_full(&self) {
        if let Some(d) = self.store.disks.iter().find(|d| d.path == self.disk_root) {
            d.full.store(true, Ordering::SeqCst);
        }
    }

    /// Verify length and hash, fsync, rename into place, fsync the directory.
    /// Returns true when the blob was already present.
    pub async fn finish(mut self) -> Result<bool, ChunkError> {
        if self.written != self.len {
            return Err(ChunkError::BadDigest(format!(
                "got {} bytes, declared {}",
                self.written, self.len
            )));
        }
        let got = std::mem::take(&mut self.hasher).finalize().to_vec();
        if got != self.sha {
            return Err(ChunkError::BadDigest(format!(
                "content hashes to {}, not {}",
                hex::encode(&got),
                hex::encode(&self.sha)
            )));
        }
        let f = self.file.take().ok_or_else(|| {
            ChunkError::Io(std::io::Error::other("blob writer used after a failure"))
        })?;
        let modified = self.store.clock.is_some().then(|| self.store.now());
        let sums = std::mem::replace(&mut self.sums, Summer::new(0)).finish();
        let direct_bytes = tokio::task::spawn_blocking(move || {
            let mut f = f;
            // The bytes still held in the aligned buffer (and the last partial block).
            f.finish()?;
            let direct_bytes = f.direct_bytes();
            let f = f.file();
            if let Some(sums) = sums {
                use std::os::fd::AsRawFd;
                // Set before the fsync below, so the sums are durable with the blob.
                set_xattr(f.as_raw_fd(), blocksums::XATTR_NAME, &sums.encode())?;
            }
            if let Some(t) = modified {
                f.set_modified(t)?;
            }
            // One fsync per blob: the data written with O_DIRECT (which may still sit in the
            // device's write cache), the buffered tail, the size and the xattr.
            f.sync_all()?;
            Ok::<_, std::io::Error>(direct_bytes)
        })
        .await
        .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?
        .map_err(|e| self.io_error(e))?;
        crate::metrics::BYTES_DIRECT.inc_by(direct_bytes);
        fail::fail_point!("chunkserver::put::before_rename", |_| Err(ChunkError::Io(
            std::io::Error::other("failpoint")
        )));
        if self.store.touch_async(self.sha.clone()).await? {
            // Same content already stored: kept, and marked touched (GC fencing).
            let _ = tokio::fs::remove_file(&self.tmp).await;
            return Ok(true);
        }
        let dest = self
            .disk_root
            .join(rel_path(&self.sha).expect("id checked by begin"));
        let (store, tmp) = (self.store.clone(), self.tmp.clone());
        tokio::task::spawn_blocking(move || store.place(&tmp, &dest))
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))??;
        fail::fail_point!("chunkserver::put::after_rename");
        self.store.used.fetch_add(self.len, Ordering::SeqCst);
        self.store.count.fetch_add(1, Ordering::SeqCst);
        self.store.events.lock().added.push(self.sha.clone());
        Ok(false)
    }
}

/// Pieces waiting for a [`BlobPipe`]'s thread (1 MiB of 256 KiB messages): bounds what one put
/// holds in memory beyond tonic's buffers, and keeps the stream's flow-control window moving
/// while the thread writes.
pub const PIPE_PIECES: usize = 4;

/// What a [`BlobPipe`]'s thread hands back: the file, the running digests, and how the writes
/// went.
type PipeEnd = (
    Option<DirectFile>,
    Sha256,
    Summer,
    Result<(), std::io::Error>,
);

/// The receiving end of a blob being written on its own blocking-pool thread
/// ([`BlobWriter::pipe`]).
pub struct BlobPipe {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    task: tokio::task::JoinHandle<PipeEnd>,
    written: u64,
    len: u64,
}

/// Add `n` bytes to `written`; refuses bytes past the declared length `len` (shared by
/// [`BlobWriter::write_bytes`] and [`BlobPipe::send`]).
fn count_declared(written: &mut u64, len: u64, n: usize) -> Result<(), ChunkError> {
    *written = written.saturating_add(n as u64);
    if *written > len {
        return Err(ChunkError::BadDigest(format!(
            "more than the declared {len} bytes"
        )));
    }
    Ok(())
}

impl BlobPipe {
    /// Queue `data` (waits while [`PIPE_PIECES`] pieces are queued). Refuses bytes past the
    /// declared length; a failed write on the thread surfaces here as a closed pipe and in
    /// full from [`BlobWriter::close`].
    pub async fn send(&mut self, data: Bytes) -> Result<(), ChunkError> {
        count_declared(&mut self.written, self.len, data.len())?;
        self.tx.send(data).await.map_err(|_| {
            ChunkError::Io(std::io::Error::other(
                "blob write failed (the writer thread stopped)",
            ))
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Whether the filesystem refused user extended attributes (then blobs go without block sums).
fn xattr_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM))
}

/// Set extended attribute `name` of open file `fd`. A filesystem without user xattrs is not an
/// error (logged once): its blobs are stored without block sums.
fn set_xattr(fd: std::os::fd::RawFd, name: &str, value: &[u8]) -> std::io::Result<()> {
    let name = std::ffi::CString::new(name).expect("no NUL in xattr names");
    // SAFETY: `name` is NUL-terminated and `value` valid for `value.len()` bytes.
    let rc = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if xattr_unsupported(&e) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| tracing::warn!(error = %e, "no user extended attributes here: blobs are stored without block sums (ranged reads hash whole blobs)"));
        return Ok(());
    }
    Err(e)
}

/// Extended attribute `name` of open file `fd`; `None` when absent or unsupported.
fn get_xattr(fd: std::os::fd::RawFd, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let name = std::ffi::CString::new(name).expect("no NUL in xattr names");
    let mut buf = vec![0u8; 4096];
    // SAFETY: `name` is NUL-terminated and `buf` valid for `buf.len()` bytes.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        buf.truncate(n as usize);
        return Ok(Some(buf));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENODATA) || xattr_unsupported(&e) {
        return Ok(None);
    }
    Err(e)
}

/// SHA-256 of a file's contents.
pub fn hash_file(path: &Path) -> Result<Vec<u8>, ChunkError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_vec())
}

fn list_dir_blobs(root: &Path) -> Result<Vec<(Vec<u8>, u64)>, ChunkError> {
    let mut out = Vec::new();
    let blobs = root.join("blobs");
    for a in std::fs::read_dir(&blobs)?.flatten() {
        for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                let name = f.file_name();
                if let Some(id) = name.to_str().and_then(parse_id) {
                    out.push((id, f.metadata()?.len()));
                }
            }
        }
    }
    Ok(out)
}

/// Free bytes of the filesystem holding `path` (0 when unknown).
pub fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    (s.f_bavail as u64).saturating_mul(s.f_frsize as u64)
}

/// Total bytes of the filesystem holding `path` (0 when unknown).
pub fn disk_size(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    (s.f_blocks as u64).saturating_mul(s.f_frsize as u64)
}

/// Read (or create once, crash-safely) this server's uuid in the first data directory.
pub fn load_uuid(dir: &Path) -> Result<String, ChunkError> {
    let p = dir.join("uuid");
    if let Ok(s) = std::fs::read_to_string(&p) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    let tmp = dir.join("uuid.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p)?;
    fsutil::fsync_dir(dir)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(d: &[u8]) -> Vec<u8> {
        Sha256::digest(d).to_vec()
    }

    async fn put(s: &BlobStore, data: &[u8]) -> Result<bool, ChunkError> {
        let mut w = s.begin(sha(data), data.len() as u64).await?;
        for piece in data.chunks(1000) {
            w.write(piece).await?;
        }
        w.finish().await
    }

    /// A [`DirSync`] that really fsyncs and records each synced directory with whether the
    /// watched path existed at that moment; it fails on the directory `fail_on` names.
    #[derive(Clone, Default)]
    struct Recorder {
        log: Arc<Mutex<Vec<(PathBuf, bool)>>>,
        watch: Arc<Mutex<PathBuf>>,
        fail_on: Arc<Mutex<Option<PathBuf>>>,
    }

    impl Recorder {
        fn sync(&self) -> DirSync {
            let r = self.clone();
            Arc::new(move |dir: &Path| {
                if r.fail_on.lock().as_deref() == Some(dir) {
                    return Err(std::io::Error::other("injected fsync failure"));
                }
                let present = r.watch.lock().exists();
                r.log.lock().push((dir.to_path_buf(), present));
                fsutil::fsync_dir(dir)
            })
        }
        fn take(&self) -> Vec<(PathBuf, bool)> {
            std::mem::take(&mut *self.log.lock())
        }
        fn watch(&self, p: PathBuf) {
            *self.watch.lock() = p;
        }
    }

    fn assert_synced_with_parent(log: &[(PathBuf, bool)], dirs: &[&Path]) {
        let synced = |p: &Path| log.iter().any(|(d, _)| d == p);
        for d in dirs {
            assert!(synced(d), "{} not fsynced: {log:?}", d.display());
            let parent = d.parent().unwrap();
            assert!(
                synced(parent),
                "parent {} not fsynced: {log:?}",
                parent.display()
            );
        }
    }

    #[tokio::test]
    async fn open_and_first_put_sync_every_created_dir_and_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let rec = Recorder::default();
        rec.watch(root.join(format::FORMAT_FILE));
        let s = BlobStore::open_with_dir_sync(std::slice::from_ref(&root), 0, rec.sync()).unwrap();
        let log = rec.take();
        let skeleton = ["", "blobs", "tmp", "corrupt"].map(|d| root.join(d));
        assert_synced_with_parent(
            &log,
            &skeleton.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
        );
        let last_root_sync = log.iter().rev().find(|(d, _)| *d == root).unwrap();
        assert!(
            last_root_sync.1,
            "root synced after the format file appeared: {log:?}"
        );

        let data = b"the first chunk under a fresh fan-out";
        let dest = root.join(rel_path(&sha(data)).unwrap());
        let (cd, ab) = (
            dest.parent().unwrap(),
            dest.parent().unwrap().parent().unwrap(),
        );
        assert!(!ab.exists());
        rec.watch(dest.clone());
        assert!(!put(&s, data).await.unwrap());
        // The put is acknowledged: everything it needed is in the log already.
        let log = rec.take();
        assert_synced_with_parent(&log, &[ab, cd]);
        assert!(
            log.iter().any(|(d, present)| d == cd && *present),
            "the blob's directory was fsynced after the rename: {log:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_directory_sync_fails_the_put_and_leaves_no_unsynced_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::default();
        let s = BlobStore::open_with_dir_sync(&[tmp.path().to_path_buf()], 0, rec.sync()).unwrap();
        let data = b"a chunk whose directory cannot be synced";
        let dest = tmp.path().join(rel_path(&sha(data)).unwrap());
        let ab = dest.parent().unwrap().parent().unwrap().to_path_buf();
        *rec.fail_on.lock() = Some(ab.clone());
        put(&s, data).await.unwrap_err();
        assert!(s.locate(&sha(data)).is_none());
        assert!(!ab.exists(), "the unsynced fan-out directory was removed");
        assert_eq!((s.chunk_count(), tmp_files(tmp.path())), (0, 0));
        *rec.fail_on.lock() = None;
        rec.take();
        assert!(!put(&s, data).await.unwrap());
        assert_synced_with_parent(&rec.take(), &[&ab, dest.parent().unwrap()]);
    }

    #[tokio::test]
    async fn open_syncs_the_fan_out_of_a_pre_versioning_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let data = b"written before the format file existed";
        let dest = root.join(rel_path(&sha(data)).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, data).unwrap();
        let rec = Recorder::default();
        let s = BlobStore::open_with_dir_sync(&[root.to_path_buf()], 0, rec.sync()).unwrap();
        let cd = dest.parent().unwrap();
        // The `cd` entry lives in `ab`, and `ab`'s in `blobs`: both synced.
        assert_synced_with_parent(&rec.take(), &[cd.parent().unwrap()]);
        assert_eq!(s.chunk_count(), 1);
        assert!(root.join(format::FORMAT_FILE).exists());
    }

    fn tmp_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn put_get_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        let data = vec![7u8; 5000];
        assert!(!put(&s, &data).await.unwrap());
        assert!(put(&s, &data).await.unwrap(), "second put finds it present");
        assert_eq!((s.used_bytes(), s.chunk_count()), (5000, 1));
        assert!(s.verify(&sha(&data)).await.unwrap());
        let (_, n, total) = s.read_range(&sha(&data), 100, 50).await.unwrap();
        assert_eq!((n, total), (50, 5000));
        let uuid = load_uuid(dir.path()).unwrap();
        drop(s);
        std::fs::write(dir.path().join("tmp/leftover"), b"x").unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        assert_eq!(load_uuid(dir.path()).unwrap(), uuid);
        assert_eq!(tmp_files(dir.path()), 0, "tmp cleaned at open");
        assert_eq!(s.chunk_count(), 1);
        assert!(s.delete(&sha(&data)).unwrap());
        assert_eq!(s.chunk_count(), 0);
        assert_eq!(s.take_events().removed.len(), 1);
    }

    #[tokio::test]
    async fn wrong_hash_or_length_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        let mut w = s.begin(sha(b"abc"), 3).await.unwrap();
        w.write(b"abd").await.unwrap();
        assert!(matches!(w.finish().await, Err(ChunkError::BadDigest(_))));
        let mut w = s.begin(sha(b"abc"), 3).await.unwrap();
        w.write(b"ab").await.unwrap();
        assert!(matches!(w.finish().await, Err(ChunkError::BadDigest(_))));
        assert_eq!(tmp_files(dir.path()), 0);
        assert!(s.locate(&sha(b"abc")).is_none());
    }

    /// The pipelined path the PutChunk service uses: pieces of a multi-MiB blob (so the
    /// O_DIRECT buffer fills several times) land whole, with their block sums, under their id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_piped_blob_is_stored_whole_with_its_sums() {
        for direct in [false, true] {
            piped_blob_round_trip(direct).await;
        }
    }

    async fn piped_blob_round_trip(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0)
            .unwrap()
            .with_direct_io(direct);
        let data: Vec<u8> = (0..(3 << 20) + 12_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut w = s.begin(sha(&data), data.len() as u64).await.unwrap();
        let mut pipe = w.pipe();
        for piece in data.chunks(256 << 10) {
            pipe.send(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.close(pipe).await.unwrap();
        assert!(!w.finish().await.unwrap());
        let path = s.locate(&sha(&data)).expect("stored");
        assert!(std::fs::read(&path).unwrap() == data);
        let f = std::fs::File::open(&path).unwrap();
        let sums = s.block_sums(&f, data.len() as u64).expect("block sums set");
        let block = blocksums::block_bytes_for(data.len() as u64);
        let want: Vec<u32> = data.chunks(block as usize).map(blocksums::crc32c).collect();
        assert_eq!(sums.sums, want);
        assert_eq!(tmp_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_piped_blob_refuses_extra_bytes_and_a_wrong_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        let mut w = s.begin(sha(b"abc"), 3).await.unwrap();
        let mut pipe = w.pipe();
        pipe.send(Bytes::from_static(b"ab")).await.unwrap();
        assert!(matches!(
            pipe.send(Bytes::from_static(b"cd")).await,
            Err(ChunkError::BadDigest(_))
        ));
        drop(pipe);
        drop(w);
        let mut w = s.begin(sha(b"abc"), 3).await.unwrap();
        let mut pipe = w.pipe();
        pipe.send(Bytes::from_static(b"abd")).await.unwrap();
        w.close(pipe).await.unwrap();
        assert!(matches!(w.finish().await, Err(ChunkError::BadDigest(_))));
        assert_eq!(tmp_files(dir.path()), 0);
        assert!(s.locate(&sha(b"abc")).is_none());
    }

    #[tokio::test]
    async fn capacity_refuses_without_partial_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 10_000).unwrap();
        put(&s, &[1u8; 6000]).await.unwrap();
        let e = put(&s, &[2u8; 6000]).await.unwrap_err();
        assert!(matches!(e, ChunkError::Full(_)), "{e}");
        assert_eq!(s.chunk_count(), 1);
        assert_eq!(tmp_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn quarantine_moves_bad_copy() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        let data = vec![3u8; 100];
        put(&s, &data).await.unwrap();
        std::fs::write(s.locate(&sha(&data)).unwrap(), vec![4u8; 100]).unwrap();
        assert!(!s.verify(&sha(&data)).await.unwrap());
        s.quarantine(&sha(&data));
        assert!(s.locate(&sha(&data)).is_none());
        assert_eq!(s.take_events().corrupt, vec![sha(&data)]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("corrupt"))
                .unwrap()
                .count(),
            1
        );
    }

    /// Replace a stored blob by a directory: every read of it then fails with a real IO error
    /// (EISDIR), as a read of a failing disk does with EIO (tests may run as root, where a
    /// file without read permission still reads).
    fn break_blob(s: &BlobStore, sha: &[u8]) {
        let p = s.locate(sha).expect("stored");
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
    }

    #[test]
    fn which_read_errors_mark_a_copy_bad() {
        use std::io::{Error, ErrorKind};
        for (e, bad) in [
            (Error::from_raw_os_error(libc::EIO), true),
            (Error::from_raw_os_error(libc::EISDIR), true),
            (Error::from_raw_os_error(libc::EACCES), true),
            (Error::from(ErrorKind::UnexpectedEof), true),
            (Error::from_raw_os_error(libc::ENOENT), false),
            (Error::from(ErrorKind::NotFound), false),
            (Error::from_raw_os_error(libc::EMFILE), false),
            (Error::from_raw_os_error(libc::ENOMEM), false),
            (Error::from_raw_os_error(libc::EINTR), false),
        ] {
            assert_eq!(is_bad_copy_error(&e), bad, "{e:?}");
        }
        assert!(!space_returned(FULL_CLEAR_FREE_BYTES - 1));
        assert!(space_returned(FULL_CLEAR_FREE_BYTES));
    }

    /// Issue 12: a copy whose bytes cannot be read is handled like a checksum mismatch (moved
    /// to `corrupt/`, reported in the next heartbeat, `Corrupt` to the reader), by a verified
    /// read and by the scrubber's `verify`; before, it was an internal error and the scrubber
    /// skipped it.
    #[tokio::test]
    async fn a_blob_that_cannot_be_read_is_quarantined_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        let (a, b) = (b"first blob".to_vec(), b"second blob".to_vec());
        put(&s, &a).await.unwrap();
        put(&s, &b).await.unwrap();
        let _ = s.take_events();
        break_blob(&s, &sha(&a));
        let got = s.verify(&sha(&a)).await;
        assert!(matches!(got, Err(ChunkError::Corrupt(_))), "{got:?}");
        assert!(s.locate(&sha(&a)).is_none(), "still in blobs/");
        assert_eq!(s.take_events().corrupt, vec![sha(&a)]);
        // Gone now: a later read is NotFound, not another report.
        assert!(matches!(
            s.verify(&sha(&a)).await,
            Err(ChunkError::NotFound(_))
        ));
        // A read error of a streamed read takes the same path.
        break_blob(&s, &sha(&b));
        let (_f, _n, _total) = s.read_range(&sha(&b), 0, 0).await.unwrap();
        let e = std::io::Error::from_raw_os_error(libc::EISDIR);
        assert!(matches!(s.read_failed(&sha(&b), e), ChunkError::Corrupt(_)));
        assert!(s.locate(&sha(&b)).is_none());
        assert_eq!(s.take_events().corrupt, vec![sha(&b)]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("corrupt"))
                .unwrap()
                .count(),
            2
        );
        // A resource shortage says nothing about the copy: nothing is quarantined.
        put(&s, &a).await.unwrap();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert!(matches!(s.read_failed(&sha(&a), e), ChunkError::Io(_)));
        assert!(s.locate(&sha(&a)).is_some());
    }

    /// Issue 12: a disk marked full (ENOSPC) takes blobs again once it has space; before, the
    /// mark stayed until a restart.
    #[tokio::test]
    async fn a_disk_marked_full_takes_blobs_again_when_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            space_returned(free_bytes(dir.path())),
            "the test needs {FULL_CLEAR_FREE_BYTES} bytes free"
        );
        let s = BlobStore::open(&[dir.path().to_path_buf()], 0).unwrap();
        s.disks()[0].full.store(true, Ordering::SeqCst);
        put(&s, b"after the disk had space again").await.unwrap();
        assert!(!s.disks()[0].full.load(Ordering::SeqCst));
    }

    /// Capacity accounting with checked arithmetic: reservations that would pass u64::MAX are
    /// refused and leave the count as it was (the old `fetch_add` wrapped and let them in).
    #[test]
    fn reservations_never_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(&[dir.path().to_path_buf()], u64::MAX).unwrap();
        s.reserved.store(u64::MAX - 10, Ordering::SeqCst);
        assert!(matches!(s.reserve(64), Err(ChunkError::Full(_))));
        assert_eq!(s.reserved.load(Ordering::SeqCst), u64::MAX - 10);
        s.reserved.store(0, Ordering::SeqCst);
        let r = s.reserve(64).unwrap();
        assert_eq!(s.reserved.load(Ordering::SeqCst), 64);
        drop(r);
        assert_eq!(s.reserved.load(Ordering::SeqCst), 0);
    }
}
