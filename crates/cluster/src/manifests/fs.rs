//! The file system as the manifests source sees it: list a directory, stat a path, read a file
//! up to a limit. A trait so that tests can make any of these fail the way a real system does
//! (`Too many open files`, `Permission denied`, a file vanishing mid-read).

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a directory entry is, without following symlinks (as `DirEntry::file_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A file, a symlink or anything else that is not a directory.
    Other,
}

/// One entry of a directory listing.
#[derive(Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub name: OsString,
    pub kind: io::Result<EntryKind>,
}

/// What the source needs of a path's metadata (symlinks followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub is_dir: bool,
    pub modified: SystemTime,
    pub len: u64,
}

pub trait ManifestFs: Send + Sync {
    /// The entries of `dir`; an entry that could not be read is an `Err` in the list.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<Entry>>>;
    fn stat(&self, path: &Path) -> io::Result<Stat>;
    /// At most `limit` bytes of the file (a longer file gives exactly `limit + 1`, so that
    /// the caller can tell it is too long without holding all of it).
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl ManifestFs for RealFs {
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<io::Result<Entry>>> {
        Ok(std::fs::read_dir(dir)?
            .map(|e| {
                e.map(|e| Entry {
                    path: e.path(),
                    name: e.file_name(),
                    kind: e.file_type().map(|t| {
                        if t.is_dir() {
                            EntryKind::Dir
                        } else {
                            EntryKind::Other
                        }
                    }),
                })
            })
            .collect())
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let m = std::fs::metadata(path)?;
        Ok(Stat {
            is_dir: m.is_dir(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: m.len(),
        })
    }

    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::fs::File::open(path)?
            .take(limit.saturating_add(1))
            .read_to_end(&mut buf)?;
        Ok(buf)
    }
}
