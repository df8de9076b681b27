//! The versioned layout of a chunkserver data directory.
//!
//! A small TOML file at the data root, [`FORMAT_FILE`], names the blob layout and its
//! version. It is written crash-safely (temp file, fsync, rename, fsync of the root) as the
//! last step of initialising a directory, so its presence means the directory skeleton is
//! durable. Version 1 is the layout every data directory had before the file existed
//! (`blobs/ab/cd/<sha256 hex>`), so a directory with blobs and no file is migrated by writing
//! the file. A reader refuses a newer version or an unknown layout instead of guessing.
//!
//! Versions:
//! - 1: `blobs/ab/cd/<sha256 hex>`, the blob's bytes and nothing else.
//! - 2: the same, and a blob written by version 2 carries its per-block CRC-32Cs in the
//!   extended attribute `user.anode.blocksums` ([`crate::blocksums`]), set before the blob is
//!   fsynced and renamed into place. Blobs without it (written under version 1, or on a
//!   filesystem without user xattrs) stay readable: ranged reads of them hash the whole blob.
//!   A version 1 directory is migrated by rewriting the format file (nothing else changes).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the format file at the data root.
pub const FORMAT_FILE: &str = "anode-format";
/// The one blob layout this build knows: `blobs/<hex[0..2]>/<hex[2..4]>/<64 hex of sha256>`.
pub const LAYOUT: &str = "blobs-sha256-2x2";
/// The newest layout version this build reads and the one it writes (2: blobs carry block
/// sums; see the module docs).
pub const VERSION: u64 = 2;

/// The contents of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    /// Layout name.
    pub layout: String,
    /// Layout version.
    pub version: u64,
}

impl Format {
    /// The format this build writes.
    pub fn current() -> Format {
        Format {
            layout: LAYOUT.to_string(),
            version: VERSION,
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "# Anode chunkserver data directory. Written once at initialisation; do not edit.\n\
             layout = \"{}\"\nversion = {}\n",
            self.layout, self.version
        )
    }
}

/// Why a data directory's format is refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by a newer Anode.
    #[error(
        "{}: data directory format version {found} is newer than this anode supports \
         (version {supported}); run a newer anode on this directory",
        .path.display()
    )]
    Newer {
        /// The format file.
        path: PathBuf,
        /// Version in the file.
        found: u64,
        /// Newest version this build reads.
        supported: u64,
    },
    /// A layout this build does not know.
    #[error(
        "{}: unknown blob layout {layout:?} (this anode knows {known:?})",
        .path.display()
    )]
    UnknownLayout {
        /// The format file, or the directory that does not match the layout.
        path: PathBuf,
        /// Layout found.
        layout: String,
        /// Layout this build knows.
        known: &'static str,
    },
    /// Not a format file this build can parse.
    #[error("{}: malformed format file: {reason}", .path.display())]
    Malformed {
        /// The format file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FormatError + '_ {
    move |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parse a format file's text (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Format, FormatError> {
    let malformed = |reason: String| FormatError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let table: toml::Table = text.parse().map_err(|e| malformed(format!("{e}")))?;
    let layout = match table.get("layout") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => return Err(malformed(format!("layout is {v}, not a string"))),
        None => return Err(malformed("no layout".into())),
    };
    let version = match table.get("version") {
        Some(toml::Value::Integer(v)) if *v >= 1 => *v as u64,
        Some(v) => return Err(malformed(format!("version is {v}, not an integer >= 1"))),
        None => return Err(malformed("no version".into())),
    };
    Ok(Format { layout, version })
}

/// Accept `f` only when this build reads it: its version is not newer than [`VERSION`]
/// and its layout is [`LAYOUT`].
pub fn check(path: &Path, f: &Format) -> Result<(), FormatError> {
    if f.version > VERSION {
        return Err(FormatError::Newer {
            path: path.to_path_buf(),
            found: f.version,
            supported: VERSION,
        });
    }
    if f.layout != LAYOUT {
        return Err(FormatError::UnknownLayout {
            path: path.to_path_buf(),
            layout: f.layout.clone(),
            known: LAYOUT,
        });
    }
    Ok(())
}

/// Read and parse the format file of data root `root`; `None` when there is none.
pub fn read(root: &Path) -> Result<Option<Format>, FormatError> {
    let path = root.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Write the current format file into `root` crash-safely: temp file, fsync, rename, then
/// `sync_dir(root)` makes the new entry durable.
pub fn write(root: &Path, sync_dir: &dyn Fn(&Path) -> io::Result<()>) -> Result<(), FormatError> {
    let path = root.join(FORMAT_FILE);
    let tmp = root.join(format!("{FORMAT_FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(Format::current().render().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(root).map_err(io_err(root))
}

/// What a data directory holds before it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A format file of the version this build writes.
    Current,
    /// A format file of an older version this build reads and migrates by rewriting the file
    /// (version 1 to 2: blobs without block sums stay readable as they are).
    Older(u64),
    /// No format file and no `blobs/`: a new directory to initialise.
    Fresh,
    /// No format file but a `blobs/` directory in the version 1 layout: a data directory from
    /// before the format file, migrated by writing it.
    PreVersioning,
}

/// Inspect data root `root` (which may not exist yet) and refuse what this build cannot
/// read. Changes nothing on disk.
pub fn inspect(root: &Path) -> Result<Found, FormatError> {
    if let Some(f) = read(root)? {
        check(&root.join(FORMAT_FILE), &f)?;
        if f.version < VERSION {
            return Ok(Found::Older(f.version));
        }
        return Ok(Found::Current);
    }
    let blobs = root.join("blobs");
    let entries = match std::fs::read_dir(&blobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Fresh),
        Err(e) => return Err(io_err(&blobs)(e)),
    };
    for e in entries {
        let e = e.map_err(io_err(&blobs))?;
        let name = e.file_name();
        let fan_out = name.to_str().is_some_and(|n| {
            n.len() == 2
                && n.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !fan_out || !e.path().is_dir() {
            return Err(FormatError::UnknownLayout {
                path: e.path(),
                layout: format!("no {FORMAT_FILE}, and blobs/ holds {name:?}"),
                known: LAYOUT,
            });
        }
    }
    Ok(Found::PreVersioning)
}
