//! Listing the manifest files below a directory, telling "gone" apart from "could not look".

use std::io;
use std::path::{Path, PathBuf};

use portico_model::{Invalid, Origin};

use super::fs::{EntryKind, ManifestFs};
use super::is_manifest;

/// What a walk found.
#[derive(Default)]
pub(super) struct Walk {
    /// The manifest files, sorted.
    pub files: Vec<PathBuf>,
    pub errors: Vec<Invalid>,
    /// Directories (or entries) that could not be listed in full: what is known below them is
    /// kept as it was, never taken as deleted.
    pub unknown: Vec<PathBuf>,
}

impl Walk {
    /// Whether `path` lies below something that could not be listed.
    pub fn is_unknown(&self, path: &Path) -> bool {
        self.unknown.iter().any(|u| path.starts_with(u))
    }

    fn failed(&mut self, root: &Path, path: &Path, what: &str, e: &io::Error) {
        let shown = match path.strip_prefix(root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        };
        let origin = Origin {
            file: Some(shown),
            document: None,
        };
        self.errors.push(Invalid::unparsable(
            origin,
            format!("{what}: {e}; what was read from it before keeps serving"),
        ));
        self.unknown.push(path.to_owned());
    }
}

/// Every manifest file below `root`, hidden files and directories skipped.
pub(super) fn walk(fs: &dyn ManifestFs, root: &Path) -> Walk {
    let mut out = Walk::default();
    walk_dir(fs, root, root, &mut out);
    out.files.sort();
    out
}

fn walk_dir(fs: &dyn ManifestFs, root: &Path, dir: &Path, out: &mut Walk) {
    let entries = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir != root => return, // gone
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The directory itself is gone: so is everything it held.
            let origin = Origin {
                file: Some(dir.display().to_string()),
                document: None,
            };
            out.errors.push(Invalid::unparsable(
                origin,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
        Err(e) => return out.failed(root, dir, "cannot read directory", &e),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.failed(root, dir, "cannot list directory", &e);
                continue;
            }
        };
        let name = entry.name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        match entry.kind {
            Ok(EntryKind::Dir) => walk_dir(fs, root, &entry.path, out),
            Ok(EntryKind::Other) if is_manifest(&name) => out.files.push(entry.path),
            Ok(EntryKind::Other) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A manifest's own read reports its problem.
            Err(_) if is_manifest(&name) => out.files.push(entry.path),
            Err(e) => out.failed(root, &entry.path, "cannot stat", &e),
        }
    }
}
