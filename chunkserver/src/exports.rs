//! Metadata exports: copies of the master's metadata backup kept beside the blob store, so
//! `anode ctl rebuild` can start a new master group when every master's data is lost
//! (docs/operations.md, "Rebuild after losing every master").
//!
//! An export is opaque here: the chunkserver checks its declared size and SHA-256 when it
//! arrives and again whenever it is read, and never parses the payload.
//!
//! Layout per data directory: `exports/<index>-<term>-<created ms>-<sha prefix>.export`, each
//! file [`MAGIC`], the header's length (u32 big-endian), the encoded [`ExportHeader`], then
//! the payload. A put writes `exports/.tmp-*`, fsyncs, renames and fsyncs the directory, then
//! removes all but the newest `keep` exports of that directory. An open removes leftover
//! temporary files.

use std::path::{Path, PathBuf};

use anode_proto::ExportHeader;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ChunkError;

/// First bytes of an export file.
pub const MAGIC: &[u8; 8] = b"ANODEXP1";
/// Directory under each data root.
pub const DIR: &str = "exports";
/// Largest encoded header (the backup manifest is a few hundred bytes).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Exports kept per data directory by default.
pub const DEFAULT_KEEP: usize = 3;
/// Payload piece size of `GetExport`.
pub const PIECE_BYTES: usize = 1 << 20;

/// The exports of every data directory of one chunkserver.
#[derive(Clone, Debug)]
pub struct ExportStore {
    dirs: Vec<PathBuf>,
    keep: usize,
}

/// One stored export.
#[derive(Clone, Debug)]
pub struct Stored {
    /// File name (the id clients ask for).
    pub name: String,
    /// Its header.
    pub header: ExportHeader,
    /// The data directory holding it.
    pub disk: PathBuf,
}

/// The file name of an export: sorts by raft index, then term, then creation time.
pub fn file_name(h: &ExportHeader) -> String {
    let sha = hex::encode(&h.sha256);
    format!(
        "{:020}-{:020}-{:016}-{}.export",
        h.raft_index,
        h.raft_term,
        h.created_unix_ms,
        &sha[..sha.len().min(16)]
    )
}

/// A name a client may ask for: no path separators, no leading dot, `.export` at the end.
fn valid_name(name: &str) -> bool {
    name.ends_with(".export")
        && !name.starts_with('.')
        && name.len() < 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn corrupt(name: &str, what: impl std::fmt::Display) -> ChunkError {
    ChunkError::Corrupt(format!("export {name}: {what}"))
}

impl ExportStore {
    /// The export directories of `roots` (created durably), keeping the newest `keep` per
    /// directory; leftover temporary files are removed.
    pub fn open(roots: &[PathBuf], keep: usize) -> Result<ExportStore, ChunkError> {
        if keep == 0 {
            return Err(ChunkError::Config(
                "--exports-keep must be at least 1".into(),
            ));
        }
        let mut dirs = Vec::new();
        for r in roots {
            let d = r.join(DIR);
            anode_common::fsutil::create_dir_all_durable(&d)?;
            for e in std::fs::read_dir(&d)?.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            dirs.push(d);
        }
        Ok(ExportStore { dirs, keep })
    }

    /// Store one export whose payload arrives through `next` (`None` at the end): written to
    /// a temporary file in the first directory that takes it, checked against the header's
    /// size and SHA-256, made durable and renamed; then older exports beyond `keep` go.
    /// Returns the exports kept in that directory.
    pub async fn put<S>(&self, h: ExportHeader, mut pieces: S) -> Result<usize, ChunkError>
    where
        S: futures::Stream<Item = Result<Vec<u8>, tonic::Status>> + Unpin,
    {
        if h.sha256.len() != 32 {
            return Err(ChunkError::BadRequest(
                "export sha256 must be 32 bytes".into(),
            ));
        }
        let head = h.encode_to_vec();
        if head.len() > MAX_HEADER_BYTES {
            return Err(ChunkError::BadRequest(format!(
                "export header of {} bytes",
                head.len()
            )));
        }
        let dir = self
            .dirs
            .first()
            .ok_or_else(|| ChunkError::Config("no data directory".into()))?
            .clone();
        let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let r = self.write(&h, &head, &tmp, &mut pieces).await;
        if r.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        r?;
        let dest = dir.join(file_name(&h));
        let keep = self.keep;
        tokio::task::spawn_blocking(move || -> Result<usize, ChunkError> {
            std::fs::rename(&tmp, &dest)?;
            anode_common::fsutil::fsync_dir(&dir)?;
            prune(&dir, keep)
        })
        .await
        .map_err(|e| ChunkError::Io(std::io::Error::other(e)))?
    }

    async fn write<S>(
        &self,
        h: &ExportHeader,
        head: &[u8],
        tmp: &Path,
        pieces: &mut S,
    ) -> Result<(), ChunkError>
    where
        S: futures::Stream<Item = Result<Vec<u8>, tonic::Status>> + Unpin,
    {
        use futures::StreamExt;
        let mut f = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(tmp).await.map_err(full_or_io)?,
        );
        f.write_all(MAGIC).await.map_err(full_or_io)?;
        f.write_all(&(head.len() as u32).to_be_bytes())
            .await
            .map_err(full_or_io)?;
        f.write_all(head).await.map_err(full_or_io)?;
        let mut sha = Sha256::new();
        let mut n = 0u64;
        loop {
            let piece = tokio::time::timeout(crate::limits::STREAM_IDLE_TIMEOUT, pieces.next())
                .await
                .map_err(|_| ChunkError::BadRequest("export stream went idle".into()))?;
            let Some(data) = piece else { break };
            let data = data
                .map_err(|st| ChunkError::BadRequest(format!("export stream: {}", st.message())))?;
            n += data.len() as u64;
            if n > h.size {
                return Err(ChunkError::BadDigest(format!(
                    "export longer than its declared {} bytes",
                    h.size
                )));
            }
            sha.update(&data);
            f.write_all(&data).await.map_err(full_or_io)?;
        }
        if n != h.size {
            return Err(ChunkError::BadDigest(format!(
                "export of {n} bytes, declared {}",
                h.size
            )));
        }
        if sha.finalize().as_slice() != h.sha256.as_slice() {
            return Err(ChunkError::BadDigest(
                "export payload does not hash to its sha256".into(),
            ));
        }
        f.flush().await.map_err(full_or_io)?;
        f.get_ref().sync_all().await.map_err(full_or_io)?;
        Ok(())
    }

    /// Every stored export, newest first (an unreadable file is logged and left out).
    pub fn list(&self) -> Result<Vec<Stored>, ChunkError> {
        let mut out = Vec::new();
        for d in &self.dirs {
            for e in std::fs::read_dir(d)?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !valid_name(&name) {
                    continue;
                }
                match read_header(&e.path(), &name) {
                    Ok((header, _)) => out.push(Stored {
                        name,
                        header,
                        disk: d.parent().unwrap_or(d).to_path_buf(),
                    }),
                    Err(err) => {
                        tracing::warn!(file = %e.path().display(), %err, "unreadable metadata export")
                    }
                }
            }
        }
        out.sort_by(|a, b| b.name.cmp(&a.name));
        Ok(out)
    }

    /// The path of export `name`, if stored.
    pub fn locate(&self, name: &str) -> Result<PathBuf, ChunkError> {
        if !valid_name(name) {
            return Err(ChunkError::BadRequest(format!("bad export name {name:?}")));
        }
        self.dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| ChunkError::NotFound(format!("export {name}")))
    }

    /// Open export `name`: its header, and the file positioned at the payload.
    pub async fn open_export(
        &self,
        name: &str,
    ) -> Result<(ExportHeader, tokio::fs::File, PathBuf), ChunkError> {
        let path = self.locate(name)?;
        let (p, n) = (path.clone(), name.to_string());
        let (h, offset) = tokio::task::spawn_blocking(move || read_header(&p, &n))
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))??;
        let mut f = tokio::fs::File::open(&path).await?;
        let len = f.metadata().await?.len();
        if len != offset + h.size {
            return Err(corrupt(
                name,
                format!("file of {len} bytes, header says {}", offset + h.size),
            ));
        }
        tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(offset)).await?;
        Ok((h, f, path))
    }

    /// Move a corrupt export aside (`<name>.corrupt`: no longer listed).
    pub fn quarantine(path: &Path) {
        let mut to = path.as_os_str().to_owned();
        to.push(".corrupt");
        match std::fs::rename(path, &to) {
            Ok(()) => {
                tracing::error!(file = %path.display(), "corrupt metadata export moved aside")
            }
            Err(e) => {
                tracing::error!(file = %path.display(), %e, "corrupt metadata export could not be moved")
            }
        }
    }
}

fn full_or_io(e: std::io::Error) -> ChunkError {
    if e.raw_os_error() == Some(28) {
        ChunkError::Full(format!("metadata export: {e}"))
    } else {
        ChunkError::Io(e)
    }
}

/// Read an export file's header: the header and the payload's offset.
fn read_header(path: &Path, name: &str) -> Result<(ExportHeader, u64), ChunkError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut fixed = [0u8; 12];
    f.read_exact(&mut fixed)
        .map_err(|e| corrupt(name, format!("short header: {e}")))?;
    if &fixed[..8] != MAGIC {
        return Err(corrupt(name, "not an export file"));
    }
    let hlen = u32::from_be_bytes(fixed[8..12].try_into().expect("4 bytes")) as usize;
    if hlen > MAX_HEADER_BYTES {
        return Err(corrupt(name, format!("header length {hlen}")));
    }
    let mut head = vec![0u8; hlen];
    f.read_exact(&mut head)
        .map_err(|e| corrupt(name, format!("short header: {e}")))?;
    let h = ExportHeader::decode(head.as_slice()).map_err(|e| corrupt(name, e))?;
    Ok((h, 12 + hlen as u64))
}

/// Keep the newest `keep` exports of `dir` (by name: index, term, time); returns how many
/// are kept.
fn prune(dir: &Path, keep: usize) -> Result<usize, ChunkError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| valid_name(n))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    if names.len() > keep {
        for n in &names[keep..] {
            std::fs::remove_file(dir.join(n))?;
            tracing::debug!(export = %n, "older metadata export removed");
        }
        anode_common::fsutil::fsync_dir(dir)?;
    }
    Ok(names.len().min(keep))
}

/// Stream an open export's payload into `tx` in [`PIECE_BYTES`] pieces, hashing as it goes;
/// the last piece is sent only once the whole payload hashed to the header's SHA-256, else
/// the stream ends with a corrupt-copy error and the file is moved aside.
pub async fn stream_payload<T>(
    name: String,
    path: PathBuf,
    h: ExportHeader,
    mut f: tokio::fs::File,
    mut make: impl FnMut(Vec<u8>) -> T,
    tx: tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
) {
    let mut sha = Sha256::new();
    let mut left = h.size;
    let mut held: Option<Vec<u8>> = None;
    while left > 0 {
        let mut buf = vec![0u8; (left as usize).min(PIECE_BYTES)];
        if let Err(e) = f.read_exact(&mut buf).await {
            let _ = tx.send(Err(ChunkError::Io(e).into())).await;
            return;
        }
        left -= buf.len() as u64;
        sha.update(&buf);
        if let Some(prev) = held.replace(buf) {
            if tx.send(Ok(make(prev))).await.is_err() {
                return;
            }
        }
    }
    if sha.finalize().as_slice() != h.sha256.as_slice() {
        ExportStore::quarantine(&path);
        let _ = tx
            .send(Err(
                corrupt(&name, "payload does not hash to its sha256").into()
            ))
            .await;
        return;
    }
    if let Some(last) = held {
        let _ = tx.send(Ok(make(last))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(index: u64, payload: &[u8]) -> ExportHeader {
        ExportHeader {
            raft_index: index,
            raft_term: 2,
            created_unix_ms: 1_000 + index,
            sha256: Sha256::digest(payload).to_vec(),
            size: payload.len() as u64,
            voters: vec![1, 2, 3],
            leader_id: 1,
            manifest: b"{}".to_vec(),
        }
    }

    async fn put(s: &ExportStore, h: ExportHeader, payload: &[u8]) -> Result<usize, ChunkError> {
        let pieces: Vec<Result<Vec<u8>, tonic::Status>> =
            payload.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        s.put(h, futures::stream::iter(pieces)).await
    }

    async fn get(s: &ExportStore, name: &str) -> Result<Vec<u8>, tonic::Status> {
        let (h, f, path) = s.open_export(name).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(stream_payload(name.into(), path, h, f, |d| d, tx));
        let mut out = Vec::new();
        while let Some(p) = rx.recv().await {
            out.extend(p?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn exports_round_trip_keep_the_newest_and_refuse_bad_bytes() {
        let d = tempfile::tempdir().unwrap();
        let s = ExportStore::open(&[d.path().to_path_buf()], 2).unwrap();
        let payload: Vec<u8> = (0..5_000u32).map(|i| i as u8).collect();
        for i in 1..=3 {
            let kept = put(&s, header(i * 10, &payload), &payload).await.unwrap();
            assert_eq!(kept, (i as usize).min(2));
        }
        let l = s.list().unwrap();
        assert_eq!(
            l.iter().map(|e| e.header.raft_index).collect::<Vec<_>>(),
            vec![30, 20]
        );
        assert_eq!(get(&s, &l[0].name).await.unwrap(), payload);
        // A wrong SHA-256 or size is refused and leaves nothing behind.
        let mut bad = header(40, &payload);
        bad.sha256[0] ^= 1;
        assert!(matches!(
            put(&s, bad, &payload).await,
            Err(ChunkError::BadDigest(_))
        ));
        let mut short = header(41, &payload);
        short.size -= 1;
        assert!(put(&s, short, &payload).await.is_err());
        assert_eq!(s.list().unwrap().len(), 2);
        assert_eq!(std::fs::read_dir(d.path().join(DIR)).unwrap().count(), 2);
        // Path tricks are refused.
        assert!(matches!(
            s.locate("../x.export"),
            Err(ChunkError::BadRequest(_))
        ));
        // One flipped payload byte at rest: the read ends with an error instead of its last
        // piece, and the file is moved aside.
        let path = s.locate(&l[0].name).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = get(&s, &l[0].name).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
