//! Durable directory creation: a directory entry survives power loss only once the directory
//! holding it has been fsynced, so creating `a/b/c` durably means syncing every level that was
//! created and the existing ancestor the first new level was created in.

use std::io;
use std::path::Path;

/// fsync a directory (makes the entries created, renamed or removed in it durable).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Create `path` and every missing ancestor like `std::fs::create_dir_all`, then fsync each
/// created directory and its parent, so the whole chain survives power loss once this
/// returns. Creates and syncs nothing when `path` already is a directory.
pub fn create_dir_all_durable(path: &Path) -> io::Result<()> {
    create_dir_all_durable_with(path, &fsync_dir).map(|_| ())
}

/// [`create_dir_all_durable`] with the directory sync supplied by the caller (production
/// passes [`fsync_dir`]; tests pass a recorder). Returns the created directories, topmost
/// first. A level that appears concurrently (`AlreadyExists`) is treated as created here and
/// synced too, as its creator may not have synced it yet.
pub fn create_dir_all_durable_with(
    path: &Path,
    sync: &dyn Fn(&Path) -> io::Result<()>,
) -> io::Result<Vec<std::path::PathBuf>> {
    // Missing levels, deepest first; `ancestors` ends with "" for a relative path (the
    // current directory, which exists).
    let mut missing = Vec::new();
    let mut existing = Path::new(".");
    for p in path.ancestors() {
        if p.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                existing = p;
                break;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", p.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p.to_path_buf()),
            Err(e) => return Err(e),
        }
    }
    missing.reverse();
    for dir in &missing {
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            r => r?,
        }
    }
    // Deepest first: each sync makes the entry of the level below durable; the last one
    // makes the topmost new level's entry in the existing ancestor durable.
    for dir in missing.iter().rev() {
        sync(dir)?;
    }
    if !missing.is_empty() {
        sync(existing)?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;

    fn recorded(path: &Path) -> (io::Result<Vec<PathBuf>>, Vec<PathBuf>) {
        let log = Mutex::new(Vec::new());
        let r = create_dir_all_durable_with(path, &|p: &Path| {
            log.lock().unwrap().push(p.to_path_buf());
            fsync_dir(p)
        });
        (r, log.into_inner().unwrap())
    }

    #[test]
    fn syncs_every_created_level_and_its_parent() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let (created, synced) = recorded(&r.join("a/b/c"));
        let created = created.unwrap();
        assert_eq!(created, vec![r.join("a"), r.join("a/b"), r.join("a/b/c")]);
        assert_eq!(
            synced,
            vec![r.join("a/b/c"), r.join("a/b"), r.join("a"), r.to_path_buf()]
        );
        for dir in &created {
            assert!(dir.is_dir());
            assert!(synced.contains(dir), "{} not synced", dir.display());
            let parent = dir.parent().unwrap().to_path_buf();
            assert!(synced.contains(&parent), "{} not synced", parent.display());
        }
    }

    #[test]
    fn existing_levels_are_neither_created_nor_synced() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("a")).unwrap();
        let (created, synced) = recorded(&r.join("a/b"));
        assert_eq!(created.unwrap(), vec![r.join("a/b")]);
        assert_eq!(synced, vec![r.join("a/b"), r.join("a")]);
        let (created, synced) = recorded(&r.join("a/b"));
        assert!(created.unwrap().is_empty());
        assert!(synced.is_empty());
        create_dir_all_durable(&r.join("a/b/c/d")).unwrap();
        assert!(r.join("a/b/c/d").is_dir());
    }

    #[test]
    fn a_file_in_the_way_or_a_failed_sync_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("f"), b"x").unwrap();
        assert!(create_dir_all_durable(&r.join("f")).is_err());
        assert!(create_dir_all_durable(&r.join("f/g")).is_err());
        let failing = |_: &Path| Err(io::Error::other("disk gone"));
        let e = create_dir_all_durable_with(&r.join("x/y"), &failing).unwrap_err();
        assert_eq!(e.to_string(), "disk gone");
    }
}
