//! Metadata backups: `anode ctl backup DIR` writes one, `anode master --restore DIR` starts a
//! new group from it (docs/operations.md, "Backup and restore").
//!
//! A backup directory holds two files:
//! - [`PAYLOAD_FILE`]: the records of the state machine at one raft index, as the leader's
//!   streamed raft snapshot sends them (the `Master/Backup` RPC: each piece an encoded
//!   `SnapshotData` of version 3 holding the next records in key order, the same pieces a new
//!   member receives through `SendSnapshot`). Each piece is framed by its length (u32
//!   big-endian); nothing else is encoded here.
//! - [`MANIFEST_FILE`]: a small JSON [`Manifest`] (format version, raft index and term, the
//!   membership at that index, creation time, SHA-256 and size of the payload, record count
//!   and the snapshot stream's FNV checksum).
//!
//! Both are written crash-safely: a temporary file, fsync, rename, fsync of the directory;
//! the manifest last, so a directory with a manifest holds a whole backup.
//!
//! A restore checks the manifest's versions, the payload's size and SHA-256, then stages the
//! pieces into an empty store exactly as a streamed raft snapshot is staged (every record is
//! version-checked through `anode_meta::record`; the count and FNV checksum are checked at
//! the end) and switches it in with one synced batch. The new group's voters are `--peers`,
//! and the member address records (`r/`) of the old group are replaced by them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anode_meta::kv::Mutation;
use anode_proto::{BackupHeader, SNAPSHOT_VERSION, STORE_FORMAT_VERSION};
use raft::eraftpb::{ConfState, Snapshot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{self, RaftStore, StoreError};

/// The payload file in a backup directory.
pub const PAYLOAD_FILE: &str = "metadata.pieces";
/// The manifest file in a backup directory (written last).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "anode-metadata-backup";
/// The newest backup format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Errors of writing, checking or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The directory already holds a backup.
    #[error("{0} already holds a backup ({MANIFEST_FILE}); choose an empty directory")]
    Exists(PathBuf),
    /// The manifest does not parse or is not a backup manifest.
    #[error("{path}: not an anode metadata backup manifest: {detail}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A version this build does not read.
    #[error(
        "backup {what} version {found} is newer than this build reads ({supported}); restore \
         with a newer anode"
    )]
    TooNew {
        /// Which version.
        what: &'static str,
        /// The backup's.
        found: u32,
        /// This build's.
        supported: u32,
    },
    /// The payload is not the one the manifest describes.
    #[error("{path}: payload {what} mismatch: manifest says {want}, file has {got}")]
    Mismatch {
        /// The payload file.
        path: PathBuf,
        /// What differs (size, sha256).
        what: &'static str,
        /// The manifest's value.
        want: String,
        /// The file's value.
        got: String,
    },
    /// The stream from the leader was malformed or cut short.
    #[error("backup stream: {0}")]
    Stream(String),
    /// The store refused the payload (a record from a newer build, a bad piece, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory already holds a raft store.
    #[error(
        "{path} is already initialized (applied index {applied}, voters {voters:?}); --restore \
         only starts a new group in an empty data directory: move it away, or start without \
         --restore to keep it"
    )]
    AlreadyInitialized {
        /// The store's directory.
        path: PathBuf,
        /// Its applied index.
        applied: u64,
        /// Its voters.
        voters: Vec<u64>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest of a backup (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The backup format ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of the `SnapshotData` pieces in the payload.
    pub snapshot_version: u32,
    /// Store format of the build that wrote it (informational).
    pub store_format: u32,
    /// Raft index of the state.
    pub raft_index: u64,
    /// Raft term of the entry at that index.
    pub raft_term: u64,
    /// Voters at that index.
    pub voters: Vec<u64>,
    /// Learners at that index.
    pub learners: Vec<u64>,
    /// Member addresses known to the leader when the backup was taken.
    pub members: BTreeMap<u64, String>,
    /// The member that took it.
    pub leader_id: u64,
    /// When the backup finished, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The payload file name (in the same directory).
    pub payload: String,
    /// Payload size in bytes.
    pub payload_bytes: u64,
    /// Hex SHA-256 of the payload file.
    pub payload_sha256: String,
    /// State records in the payload.
    pub records: u64,
    /// FNV-1a 64 over the records in order (the raft snapshot stream's checksum).
    pub records_checksum: u64,
    /// The anode version that wrote it.
    pub anode_version: String,
}

/// What a finished backup wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The manifest (also in DIR/[`MANIFEST_FILE`]).
    pub manifest: Manifest,
    /// Pieces received.
    pub pieces: u64,
}

/// Writes a backup as its pieces arrive: [`BackupWriter::create`], [`BackupWriter::header`],
/// [`BackupWriter::records`] per piece, [`BackupWriter::finish`] with the trailer.
pub struct BackupWriter {
    dir: PathBuf,
    tmp: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    sha: Sha256,
    bytes: u64,
    pieces: u64,
    header: Option<BackupHeader>,
    sum: store::stream::Checksum,
    records: u64,
}

impl BackupWriter {
    /// Create `dir` (durably) and the payload's temporary file. Refuses a directory that
    /// already holds a backup manifest.
    pub fn create(dir: &Path) -> Result<BackupWriter, BackupError> {
        anode_common::fsutil::create_dir_all_durable(dir).map_err(io_err(dir))?;
        if dir.join(MANIFEST_FILE).exists() {
            return Err(BackupError::Exists(dir.to_path_buf()));
        }
        let tmp = dir.join(format!("{PAYLOAD_FILE}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(BackupWriter {
            dir: dir.to_path_buf(),
            tmp,
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            sha: Sha256::new(),
            bytes: 0,
            pieces: 0,
            header: None,
            sum: Default::default(),
            records: 0,
        })
    }

    /// The stream's first piece.
    pub fn header(&mut self, h: BackupHeader) -> Result<(), BackupError> {
        if self.header.is_some() {
            return Err(BackupError::Stream("a second header".into()));
        }
        if h.snapshot_version > SNAPSHOT_VERSION {
            return Err(BackupError::TooNew {
                what: "snapshot",
                found: h.snapshot_version,
                supported: SNAPSHOT_VERSION,
            });
        }
        self.header = Some(h);
        Ok(())
    }

    /// One records piece: checked (decodes, every record readable by this build), counted
    /// into the stream checksum, then appended with its length.
    pub fn records(&mut self, piece: &[u8]) -> Result<(), BackupError> {
        if self.header.is_none() {
            return Err(BackupError::Stream("records before the header".into()));
        }
        if piece.len() > store::stream::MAX_PIECE_BYTES {
            return Err(BackupError::Stream(format!(
                "piece of {} bytes over the cap",
                piece.len()
            )));
        }
        let data = anode_meta::state::decode_snapshot(piece).map_err(StoreError::from)?;
        for p in &data.pairs {
            self.sum.add(&p.key, &p.value);
        }
        self.records += data.pairs.len() as u64;
        let len = (piece.len() as u32).to_be_bytes();
        for b in [&len[..], piece] {
            self.file.write_all(b).map_err(io_err(&self.tmp))?;
            self.sha.update(b);
            self.bytes += b.len() as u64;
        }
        self.pieces += 1;
        Ok(())
    }

    /// The trailer: check the leader's count and checksum, make the payload durable, then
    /// write the manifest the same way.
    pub fn finish(mut self, records: u64, checksum: u64) -> Result<Written, BackupError> {
        let h = self
            .header
            .take()
            .ok_or_else(|| BackupError::Stream("no header".into()))?;
        if records != self.records || checksum != self.sum.value() {
            return Err(BackupError::Stream(format!(
                "got {} records (checksum {:016x}), the leader sent {records} ({checksum:016x})",
                self.records,
                self.sum.value()
            )));
        }
        self.file.flush().map_err(io_err(&self.tmp))?;
        self.file.get_ref().sync_all().map_err(io_err(&self.tmp))?;
        let payload = self.dir.join(PAYLOAD_FILE);
        std::fs::rename(&self.tmp, &payload).map_err(io_err(&payload))?;
        anode_common::fsutil::fsync_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut voters = h.voters.clone();
        voters.sort_unstable();
        let mut learners = h.learners.clone();
        learners.sort_unstable();
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            snapshot_version: h.snapshot_version,
            store_format: STORE_FORMAT_VERSION,
            raft_index: h.index,
            raft_term: h.term,
            voters,
            learners,
            members: h.members.into_iter().collect(),
            leader_id: h.leader_id,
            created_unix_ms: anode_common::now_ms(),
            payload: PAYLOAD_FILE.into(),
            payload_bytes: self.bytes,
            payload_sha256: hex::encode(std::mem::take(&mut self.sha).finalize()),
            records: self.records,
            records_checksum: self.sum.value(),
            anode_version: env!("CARGO_PKG_VERSION").into(),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        write_durably(&self.dir, MANIFEST_FILE, &json)?;
        Ok(Written {
            manifest,
            pieces: self.pieces,
        })
    }
}

impl Drop for BackupWriter {
    /// An unfinished backup leaves no payload behind (the temporary file is removed; a
    /// finished one was renamed away).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Write `name` in `dir`: temporary file, fsync, rename, fsync of the directory.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    let to = dir.join(name);
    std::fs::rename(&tmp, &to).map_err(io_err(&to))?;
    anode_common::fsutil::fsync_dir(dir).map_err(io_err(dir))
}

/// Read and check a backup's manifest: its format name and versions.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let bad = |detail: String| BackupError::BadManifest {
        path: path.clone(),
        detail,
    };
    // The version first, so a newer manifest with fields this build does not know is
    // refused as newer rather than as malformed.
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if v["format"] != FORMAT_NAME {
        return Err(bad(format!(
            "format is {}, not {FORMAT_NAME:?}",
            v["format"]
        )));
    }
    let found = v["format_version"]
        .as_u64()
        .ok_or_else(|| bad("no format_version".into()))?;
    if found > u64::from(FORMAT_VERSION) {
        return Err(BackupError::TooNew {
            what: "format",
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: FORMAT_VERSION,
        });
    }
    let m: Manifest = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
    if m.snapshot_version > SNAPSHOT_VERSION {
        return Err(BackupError::TooNew {
            what: "snapshot",
            found: m.snapshot_version,
            supported: SNAPSHOT_VERSION,
        });
    }
    if m.payload.contains('/') || m.payload.contains('\\') || m.payload.starts_with('.') {
        return Err(bad(format!("payload name {:?}", m.payload)));
    }
    Ok(m)
}

/// The payload's pieces, read one at a time.
struct Pieces {
    path: PathBuf,
    file: std::io::BufReader<std::fs::File>,
}

impl Pieces {
    fn open(path: &Path) -> Result<Pieces, BackupError> {
        let f = std::fs::File::open(path).map_err(io_err(path))?;
        Ok(Pieces {
            path: path.to_path_buf(),
            file: std::io::BufReader::with_capacity(1 << 20, f),
        })
    }

    /// The next piece, or `None` at the end of the file.
    fn next_piece(&mut self) -> Result<Option<Vec<u8>>, BackupError> {
        let mut len = [0u8; 4];
        match self.file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&self.path)(e)),
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > store::stream::MAX_PIECE_BYTES {
            return Err(BackupError::Stream(format!(
                "piece of {n} bytes over the cap"
            )));
        }
        let mut buf = vec![0u8; n];
        self.file.read_exact(&mut buf).map_err(io_err(&self.path))?;
        Ok(Some(buf))
    }
}

/// Check that the payload has the manifest's size and SHA-256.
pub fn verify_payload(dir: &Path, m: &Manifest) -> Result<(), BackupError> {
    let path = dir.join(&m.payload);
    let mut f = std::fs::File::open(&path).map_err(io_err(&path))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(&path))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
    }
    if bytes != m.payload_bytes {
        return Err(BackupError::Mismatch {
            path,
            what: "size",
            want: m.payload_bytes.to_string(),
            got: bytes.to_string(),
        });
    }
    let got = hex::encode(sha.finalize());
    if got != m.payload_sha256 {
        return Err(BackupError::Mismatch {
            path,
            what: "sha256",
            want: m.payload_sha256.clone(),
            got,
        });
    }
    Ok(())
}

/// Initialize the empty store `store` (at `path`) from the backup in `dir` for a new group
/// whose voters and addresses are `peers`: check the manifest and payload, stage the pieces
/// as a streamed raft snapshot, switch them in at the backup's index and term, and replace
/// the old group's member addresses. Returns the manifest.
pub fn restore_store(
    store: &RaftStore,
    path: &Path,
    dir: &Path,
    peers: &BTreeMap<u64, String>,
) -> Result<Manifest, BackupError> {
    if !store.is_empty() {
        return Err(BackupError::AlreadyInitialized {
            path: path.to_path_buf(),
            applied: store.applied(),
            voters: store.conf_state().voters,
        });
    }
    let m = read_manifest(dir)?;
    verify_payload(dir, &m)?;
    let (index, term) = (m.raft_index, m.raft_term);
    let mut stager = store.stage_snapshot(index, term)?;
    let mut pieces = Pieces::open(&dir.join(&m.payload))?;
    while let Some(p) = pieces.next_piece()? {
        stager.push(&p)?;
    }
    stager.finish(m.records, m.records_checksum)?;
    let mut snap = Snapshot::default();
    snap.set_data(store::stream::descriptor_data(index, term).into());
    let md = snap.mut_metadata();
    md.index = index;
    md.term = term;
    let cs = ConfState {
        voters: peers.keys().copied().collect(),
        ..Default::default()
    };
    md.set_conf_state(cs.clone());
    store.install_snapshot(&snap)?;
    // The old group's member addresses go; the new group's are written at the same index
    // (every member of the new group restores the same backup with the same --peers, so
    // their states stay identical).
    let view = store.view();
    let mut muts: Vec<Mutation> = crate::node::read_members(&view)
        .into_keys()
        .map(|id| Mutation::Delete(crate::node::member_key(id)))
        .collect();
    drop(view);
    muts.extend(
        peers.iter().map(|(id, addr)| {
            Mutation::Put(crate::node::member_key(*id), addr.as_bytes().to_vec())
        }),
    );
    store.commit_apply(&muts, index, term, Some(&cs))?;
    Ok(m)
}

/// The marker a restore leaves in the data directory (the payload's SHA-256 and the index),
/// so a restart with the same `--restore` flag (a container's fixed arguments) starts from
/// the data directory instead of failing.
pub const RESTORED_MARKER: &str = "restored-from-backup.json";

/// Write [`RESTORED_MARKER`] in `data` for manifest `m`.
pub fn write_marker(data: &Path, m: &Manifest) -> Result<(), BackupError> {
    let v = serde_json::json!({
        "payload_sha256": m.payload_sha256,
        "raft_index": m.raft_index,
        "raft_term": m.raft_term,
        "restored_unix_ms": anode_common::now_ms(),
    });
    write_durably(data, RESTORED_MARKER, v.to_string().as_bytes())
}

/// Whether `data` was initialized by a restore of the backup whose manifest is `m`.
pub fn restored_from(data: &Path, m: &Manifest) -> bool {
    std::fs::read(data.join(RESTORED_MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["payload_sha256"] == m.payload_sha256.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StreamPiece;
    use anode_meta::kv::KvRead;
    use raft::eraftpb::Entry;

    /// A 3-voter store at applied index 40 (term 2) with `n` objects of 1 KiB, member
    /// addresses and the objects counter.
    fn filled(dir: &Path, n: u64) -> RaftStore {
        let s = RaftStore::open(dir).unwrap();
        let old: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("old-{i}:7001"))).collect();
        crate::node::bootstrap_store(&s, &old).unwrap();
        let ents: Vec<Entry> = (1..=40)
            .map(|i| Entry {
                index: i,
                term: 2,
                ..Default::default()
            })
            .collect();
        s.persist(&ents, None).unwrap();
        let mut muts: Vec<Mutation> = (0..n)
            .map(|i| {
                let m = anode_proto::Manifest {
                    version: anode_proto::MANIFEST_VERSION,
                    size: 1024,
                    inline_data: vec![i as u8; 1024],
                    ..Default::default()
                };
                let v = prost::Message::encode_to_vec(&m);
                Mutation::Put(format!("o/b\0k{i:08}").into_bytes(), v)
            })
            .collect();
        muts.push(Mutation::Put(
            b"x/stat/objects".to_vec(),
            n.to_be_bytes().to_vec(),
        ));
        s.commit_apply(&muts, 40, 2, None).unwrap();
        s
    }

    fn all(s: &RaftStore) -> Vec<(Vec<u8>, Vec<u8>)> {
        s.view().scan(b"", None, usize::MAX)
    }

    /// What `anode ctl backup` does with the leader's stream, in one thread.
    fn take_backup(s: &RaftStore, dir: &Path) -> Written {
        let snap = raft::Storage::snapshot(s, 0, 0).unwrap();
        let md = snap.get_metadata();
        let mut w = BackupWriter::create(dir).unwrap();
        w.header(BackupHeader {
            index: md.index,
            term: md.term,
            voters: md.get_conf_state().voters.clone(),
            learners: Vec::new(),
            members: Default::default(),
            leader_id: 1,
            snapshot_version: SNAPSHOT_VERSION,
        })
        .unwrap();
        let mut rx = s.snapshot_stream(md.index, md.term).unwrap();
        while let Some(p) = rx.blocking_recv() {
            match p.unwrap() {
                StreamPiece::Records(b) => w.records(&b).unwrap(),
                StreamPiece::End { records, checksum } => {
                    return w.finish(records, checksum).unwrap()
                }
            }
        }
        panic!("stream ended without its end");
    }

    fn new_peers() -> BTreeMap<u64, String> {
        (1..=3).map(|i| (i, format!("new-{i}:7001"))).collect()
    }

    #[test]
    fn a_backup_restores_into_an_empty_store_with_the_new_members() {
        let (sd, bd, rd) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let src = filled(sd.path(), 3_000);
        let bdir = bd.path().join("b1");
        let w = take_backup(&src, &bdir);
        assert!(w.pieces >= 3, "{} pieces", w.pieces);
        assert_eq!((w.manifest.raft_index, w.manifest.raft_term), (40, 2));
        assert_eq!(w.manifest.voters, vec![1, 2, 3]);
        assert_eq!(w.manifest.records, all(&src).len() as u64);
        assert_eq!(read_manifest(&bdir).unwrap(), w.manifest);
        // Only the two files are left (no temporary files).
        let mut names: Vec<String> = std::fs::read_dir(&bdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![MANIFEST_FILE, PAYLOAD_FILE]);
        // A second backup into the same directory is refused.
        assert!(matches!(
            BackupWriter::create(&bdir),
            Err(BackupError::Exists(_))
        ));

        let dst = RaftStore::open(rd.path()).unwrap();
        let m = restore_store(&dst, rd.path(), &bdir, &new_peers()).unwrap();
        assert_eq!(m.raft_index, 40);
        let want: Vec<_> = all(&src)
            .into_iter()
            .filter(|(k, _)| !k.starts_with(crate::node::MEMBER_PREFIX))
            .collect();
        let got: Vec<_> = all(&dst)
            .into_iter()
            .filter(|(k, _)| !k.starts_with(crate::node::MEMBER_PREFIX))
            .collect();
        assert_eq!(got, want);
        assert_eq!(crate::node::read_members(&dst.view()), new_peers());
        drop(dst);
        let dst = RaftStore::open(rd.path()).unwrap();
        assert_eq!((dst.applied(), dst.first_log_index()), (40, 41));
        assert_eq!(dst.hard_state().term, 2);
        assert_eq!(dst.conf_state().voters, vec![1, 2, 3]);
        assert_eq!(crate::node::read_members(&dst.view()), new_peers());
        // An initialized store is refused, with nothing written.
        let err = restore_store(&dst, rd.path(), &bdir, &new_peers()).unwrap_err();
        assert!(
            matches!(err, BackupError::AlreadyInitialized { applied: 40, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("already initialized"), "{err}");
    }

    #[test]
    fn a_damaged_or_newer_backup_is_refused_before_anything_is_written() {
        let (sd, bd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = filled(sd.path(), 500);
        let bdir = bd.path().join("b");
        take_backup(&src, &bdir);
        let payload = bdir.join(PAYLOAD_FILE);
        let good = std::fs::read(&payload).unwrap();
        let try_restore = || {
            let rd = tempfile::tempdir().unwrap();
            let dst = RaftStore::open(rd.path()).unwrap();
            let r = restore_store(&dst, rd.path(), &bdir, &new_peers());
            assert!(dst.is_empty() || r.is_ok(), "a refused restore wrote");
            r
        };
        // One flipped byte: the SHA-256 differs.
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 1;
        std::fs::write(&payload, &bad).unwrap();
        let err = try_restore().unwrap_err();
        assert!(
            matches!(err, BackupError::Mismatch { what: "sha256", .. }),
            "{err}"
        );
        // Cut short: the size differs.
        std::fs::write(&payload, &good[..good.len() - 10]).unwrap();
        let err = try_restore().unwrap_err();
        assert!(
            matches!(err, BackupError::Mismatch { what: "size", .. }),
            "{err}"
        );
        std::fs::write(&payload, &good).unwrap();
        try_restore().unwrap();
        // A manifest of a newer format.
        let mpath = bdir.join(MANIFEST_FILE);
        let orig = std::fs::read(&mpath).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&orig).unwrap();
        v["format_version"] = (FORMAT_VERSION + 1).into();
        v["a_field_from_the_future"] = 1.into();
        std::fs::write(&mpath, v.to_string()).unwrap();
        let err = try_restore().unwrap_err();
        assert!(
            matches!(err, BackupError::TooNew { what: "format", .. }),
            "{err}"
        );
        // Pieces of a newer snapshot version.
        let mut v: serde_json::Value = serde_json::from_slice(&orig).unwrap();
        v["snapshot_version"] = (SNAPSHOT_VERSION + 1).into();
        std::fs::write(&mpath, v.to_string()).unwrap();
        let err = try_restore().unwrap_err();
        assert!(
            matches!(
                err,
                BackupError::TooNew {
                    what: "snapshot",
                    ..
                }
            ),
            "{err}"
        );
        // Not a backup manifest at all.
        std::fs::write(&mpath, b"{\"format\":\"something\"}").unwrap();
        let err = try_restore().unwrap_err();
        assert!(matches!(err, BackupError::BadManifest { .. }), "{err}");
    }

    #[test]
    fn a_stream_with_a_wrong_trailer_leaves_no_backup() {
        let (sd, bd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = filled(sd.path(), 100);
        let snap = raft::Storage::snapshot(&src, 0, 0).unwrap();
        let md = snap.get_metadata();
        let bdir = bd.path().join("b");
        let mut w = BackupWriter::create(&bdir).unwrap();
        assert!(w.records(b"").is_err(), "records before the header");
        w.header(BackupHeader {
            index: md.index,
            term: md.term,
            snapshot_version: SNAPSHOT_VERSION,
            ..Default::default()
        })
        .unwrap();
        let mut rx = src.snapshot_stream(md.index, md.term).unwrap();
        let mut end = None;
        while let Some(p) = rx.blocking_recv() {
            match p.unwrap() {
                StreamPiece::Records(b) => w.records(&b).unwrap(),
                StreamPiece::End { records, checksum } => end = Some((records, checksum)),
            }
        }
        let (records, checksum) = end.unwrap();
        let err = w.finish(records + 1, checksum).unwrap_err();
        assert!(matches!(err, BackupError::Stream(_)), "{err}");
        assert_eq!(std::fs::read_dir(&bdir).unwrap().count(), 0);
    }
}
