//! The data directory's format file: golden versions 1 and 2, initialisation, migration of a
//! directory from before the file and of a version 1 directory, and refusals (newer version,
//! unknown layout, malformed).

use std::path::{Path, PathBuf};

use anode_chunkserver::error::ChunkError;
use anode_chunkserver::format::{self, Format, FormatError, FORMAT_FILE};
use anode_chunkserver::store::BlobStore;
use sha2::{Digest, Sha256};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn open(root: &Path) -> Result<BlobStore, ChunkError> {
    BlobStore::open(&[root.to_path_buf()], 0)
}

fn format_error(r: Result<BlobStore, ChunkError>) -> FormatError {
    match r {
        Err(ChunkError::Format(e)) => e,
        Err(e) => panic!("not a format error: {e}"),
        Ok(_) => panic!("opened"),
    }
}

/// A blob at its version 1 place, as a chunkserver from before the format file wrote it.
fn old_blob(root: &Path, data: &[u8]) -> Vec<u8> {
    let sha = Sha256::digest(data).to_vec();
    let h = hex::encode(&sha);
    let dir = root.join("blobs").join(&h[0..2]).join(&h[2..4]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&h), data).unwrap();
    sha
}

/// Version 1 blobs have no block sums: opening migrates the file to the current version, and
/// the old blob stays readable, whole and by range (a ranged read hashes the whole blob).
#[tokio::test]
async fn golden_version_1_is_migrated_and_its_blobs_stay_readable() {
    let text = std::fs::read_to_string(golden("anode-format-v1")).unwrap();
    let f = format::parse(Path::new("anode-format-v1"), &text).unwrap();
    assert_eq!(
        f,
        Format {
            layout: "blobs-sha256-2x2".into(),
            version: 1
        }
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(golden("anode-format-v1"), tmp.path().join(FORMAT_FILE)).unwrap();
    let data = b"stored under version 1";
    let sha = old_blob(tmp.path(), data);
    assert_eq!(
        format::inspect(tmp.path()).unwrap(),
        format::Found::Older(1)
    );
    let s = open(tmp.path()).unwrap();
    assert!(s.locate(&sha).is_some());
    let now = std::fs::read_to_string(golden(&format!("anode-format-v{}", format::VERSION)));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(FORMAT_FILE)).unwrap(),
        now.unwrap(),
        "migrated to the current version"
    );
    assert_eq!(format::inspect(tmp.path()).unwrap(), format::Found::Current);
    let (f, n, total) = s.read_range(&sha, 3, 5).await.unwrap();
    assert_eq!((n, total), (5, data.len() as u64));
    assert_eq!(s.block_sums(&f.into_std().await, total), None, "no sums");
    assert!(s.verify(&sha).await.unwrap());
    // Reopening the migrated directory changes nothing.
    drop(s);
    let before = std::fs::read_to_string(tmp.path().join(FORMAT_FILE)).unwrap();
    open(tmp.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(FORMAT_FILE)).unwrap(),
        before
    );
}

#[test]
fn golden_version_2_reads_back() {
    let text = std::fs::read_to_string(golden("anode-format-v2")).unwrap();
    let f = format::parse(Path::new("anode-format-v2"), &text).unwrap();
    assert_eq!(f, Format::current());
    assert_eq!(f.version, 2);
}

#[test]
fn a_new_directory_is_initialised_with_the_current_format() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("new");
    open(&root).unwrap();
    assert_eq!(format::read(&root).unwrap(), Some(Format::current()));
    // The file written today is the checked-in golden of its version, byte for byte (a new
    // version needs a new golden file; the old ones stay and keep being read).
    let golden_now = golden(&format!("anode-format-v{}", format::VERSION));
    assert_eq!(
        std::fs::read_to_string(root.join(FORMAT_FILE)).unwrap(),
        std::fs::read_to_string(golden_now).unwrap()
    );
    for sub in ["blobs", "tmp", "corrupt"] {
        assert!(root.join(sub).is_dir(), "{sub}");
    }
    assert!(!root.join(format!("{FORMAT_FILE}.tmp")).exists());
    open(&root).unwrap();
}

#[test]
fn a_pre_versioning_directory_is_migrated() {
    let tmp = tempfile::tempdir().unwrap();
    let sha = old_blob(tmp.path(), b"written before anode-format existed");
    std::fs::create_dir_all(tmp.path().join("tmp")).unwrap();
    std::fs::write(tmp.path().join("uuid"), "0123").unwrap();
    assert_eq!(
        format::inspect(tmp.path()).unwrap(),
        format::Found::PreVersioning
    );
    let s = open(tmp.path()).unwrap();
    assert_eq!(format::read(tmp.path()).unwrap(), Some(Format::current()));
    assert_eq!(s.chunk_count(), 1);
    assert!(s.locate(&sha).is_some());
    assert_eq!(format::inspect(tmp.path()).unwrap(), format::Found::Current);
}

#[test]
fn a_newer_version_is_refused_naming_file_and_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FORMAT_FILE);
    std::fs::write(&file, "layout = \"blobs-sha256-2x2\"\nversion = 3\n").unwrap();
    let e = format_error(open(tmp.path()));
    assert!(
        matches!(e, FormatError::Newer { found: 3, supported: 2, ref path } if *path == file),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(
        msg.contains("version 3") && msg.contains("version 2"),
        "{msg}"
    );
    assert!(
        !tmp.path().join("blobs").exists(),
        "a refused directory is not touched"
    );
}

#[test]
fn an_unknown_layout_or_a_malformed_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FORMAT_FILE);
    std::fs::write(&file, "layout = \"blobs-blake3-1x3\"\nversion = 1\n").unwrap();
    let e = format_error(open(tmp.path()));
    assert!(
        matches!(&e, FormatError::UnknownLayout { layout, .. } if layout == "blobs-blake3-1x3"),
        "{e:?}"
    );
    assert!(e.to_string().contains("blobs-blake3-1x3"), "{e}");
    for bad in [
        "layout = \"blobs-sha256-2x2\"\n",
        "version = 1\n",
        "version = 0\nlayout = \"blobs-sha256-2x2\"\n",
        "not toml",
    ] {
        std::fs::write(&file, bad).unwrap();
        let e = format_error(open(tmp.path()));
        assert!(matches!(e, FormatError::Malformed { .. }), "{bad:?}: {e:?}");
    }
}

#[test]
fn blobs_in_another_layout_without_a_format_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("blobs/0f1e")).unwrap();
    let e = format_error(open(tmp.path()));
    assert!(matches!(e, FormatError::UnknownLayout { .. }), "{e:?}");
    assert!(!tmp.path().join(FORMAT_FILE).exists());
}
