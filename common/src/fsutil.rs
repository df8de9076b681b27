//! Durable filesystem helpers.
//!
//! A directory created with `mkdir` exists after a power loss only once the directory that
//! holds its entry (its parent) has been fsynced; `std::fs::create_dir_all` fsyncs nothing. A
//! file written and fsynced inside a directory whose own entry was never made durable can
//! vanish with it. [`create_dir_all_durable`] creates the missing directories of a path and
//! fsyncs each new one and the existing directory it was created in.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The directory operations [`create_dir_all_durable_with`] performs; [`RealDirOps`] is the
/// filesystem, tests substitute a recorder.
pub trait DirOps {
    /// Whether `path` exists and is a directory (following symlinks).
    fn is_dir(&self, path: &Path) -> bool;
    /// Create one directory (its parent exists).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Make the directory's entries durable (fsync the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// [`DirOps`] on the real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDirOps;

impl DirOps for RealDirOps {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// Create `path` and every missing ancestor, like `std::fs::create_dir_all`, and make them
/// durable: every directory this call creates is fsynced, and so is the existing directory the
/// first of them was created in, before it returns. A path that already exists is left alone
/// (directories that exist are taken to be durable), so calling it on a hot path costs one
/// `stat`.
pub fn create_dir_all_durable(path: &Path) -> io::Result<()> {
    create_dir_all_durable_with(&RealDirOps, path)
}

/// [`create_dir_all_durable`] over the given [`DirOps`].
pub fn create_dir_all_durable_with(ops: &dyn DirOps, path: &Path) -> io::Result<()> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    // Missing directories, deepest first, and the existing directory they hang from.
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = path;
    let anchor = loop {
        if ops.is_dir(cur) {
            break cur.to_path_buf();
        }
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            // A relative path's first component hangs from the working directory.
            _ => break PathBuf::from("."),
        }
    };
    if missing.is_empty() {
        return Ok(());
    }
    for dir in missing.iter().rev() {
        match ops.create_dir(dir) {
            Ok(()) => {}
            // Created concurrently: still ours to make durable before returning.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && ops.is_dir(dir) => {}
            Err(e) => return Err(e),
        }
    }
    for dir in missing.iter().chain(std::iter::once(&anchor)) {
        ops.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Real operations, recorded; `fail_sync` makes syncing that directory fail.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        fail_sync: Option<PathBuf>,
    }

    impl Recorder {
        fn take(&self, root: &Path) -> Vec<String> {
            let strip = |s: &str| s.replace(&root.display().to_string(), "ROOT");
            self.log
                .lock()
                .unwrap()
                .drain(..)
                .map(|s| strip(&s))
                .collect()
        }
    }

    impl DirOps for Recorder {
        fn is_dir(&self, path: &Path) -> bool {
            RealDirOps.is_dir(path)
        }
        fn create_dir(&self, path: &Path) -> io::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("mkdir {}", path.display()));
            RealDirOps.create_dir(path)
        }
        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("fsync {}", path.display()));
            if self.fail_sync.as_deref() == Some(path) {
                return Err(io::Error::other("injected fsync failure"));
            }
            RealDirOps.sync_dir(path)
        }
    }

    #[test]
    fn every_created_directory_and_its_parent_is_synced() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let rec = Recorder::default();
        create_dir_all_durable_with(&rec, &root.join("a/b/c")).unwrap();
        assert!(root.join("a/b/c").is_dir());
        assert_eq!(
            rec.take(root),
            [
                "mkdir ROOT/a",
                "mkdir ROOT/a/b",
                "mkdir ROOT/a/b/c",
                "fsync ROOT/a/b/c",
                "fsync ROOT/a/b",
                "fsync ROOT/a",
                "fsync ROOT",
            ]
        );
        // Part of the path exists: only the new part and the directory it hangs from.
        create_dir_all_durable_with(&rec, &root.join("a/x/y")).unwrap();
        assert_eq!(
            rec.take(root),
            [
                "mkdir ROOT/a/x",
                "mkdir ROOT/a/x/y",
                "fsync ROOT/a/x/y",
                "fsync ROOT/a/x",
                "fsync ROOT/a",
            ]
        );
        // All of it exists: nothing to do.
        create_dir_all_durable_with(&rec, &root.join("a/b/c")).unwrap();
        assert!(rec.take(root).is_empty());
    }

    #[test]
    fn errors_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join("file"), b"x").unwrap();
        // A file in the way is an error, as with create_dir_all.
        assert!(create_dir_all_durable(&root.join("file/sub")).is_err());
        assert!(create_dir_all_durable(&root.join("file")).is_err());
        assert!(root.join("file").is_file());
        let rec = Recorder {
            fail_sync: Some(root.to_path_buf()),
            ..Default::default()
        };
        let err = create_dir_all_durable_with(&rec, &root.join("d")).unwrap_err();
        assert_eq!(err.to_string(), "injected fsync failure");
    }

    #[test]
    fn the_real_helper_creates_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("blobs/ab/cd");
        create_dir_all_durable(&p).unwrap();
        assert!(p.is_dir());
        create_dir_all_durable(&p).unwrap();
    }
}
