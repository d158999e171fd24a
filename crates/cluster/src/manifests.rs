//! The manifests source: every `*.yaml`, `*.yml` and `*.json` below a directory, multi-document,
//! watched for changes. Hidden files and directories are skipped.
//!
//! Bad input never takes anything down: a document that fails to parse is reported with its file,
//! document number and field; if the same document parsed before, its last good version keeps
//! serving, otherwise it is left out. Files are re-read only when their size or mtime changed.
//!
//! A failed read never deletes anything: a directory that cannot be listed or a file that cannot
//! be read (permissions, `Too many open files`) keeps what it held, and the error names the
//! path; only a file that is not found loses its objects. A file over 8 MiB is refused whole,
//! unread, and likewise keeps its last good objects.
//!
//! A change is picked up from the watcher's event: only the files it names are looked at (a
//! directory appearing, or a lost event, means a full re-scan). A file renamed into place or
//! closed after writing is complete, so it is read at once; other events wait for the directory
//! to be quiet (debounced). A full re-scan also runs periodically, as a safety net.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_model::manifest::parse_file_shared;
use portico_model::{ClusterState, Invalid, Origin, SharedObject};
use tracing::{debug, warn};

mod file;
pub mod fs;
mod walk;
mod watch;

use file::{FileEntry, FileProblem, MAX_FILE_BYTES};
use fs::{ManifestFs, RealFs};
#[cfg(test)]
use watch::classify;
pub use watch::run;

#[derive(Clone, Debug)]
pub struct ManifestsConfig {
    pub dir: PathBuf,
    /// Quiet time after a change before the directory is re-read (not waited for when the
    /// change is a file renamed into place or closed after writing: that file is complete).
    pub debounce: Duration,
    /// The longest a change waits for the directory to become quiet.
    pub max_delay: Duration,
    /// A full re-scan (stat only) even without notifications, as a safety net.
    pub rescan_every: Duration,
}

impl ManifestsConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            debounce: Duration::from_millis(15),
            max_delay: Duration::from_millis(100),
            rescan_every: Duration::from_secs(5),
        }
    }
}

/// Parsed files, with the last good object of every document.
pub struct ManifestCache {
    fs: Arc<dyn ManifestFs>,
    files: BTreeMap<PathBuf, FileEntry>,
    /// Problems of the last full walk (unreadable directories).
    walk_errors: Vec<Invalid>,
    scanned: bool,
    /// The state of the cached files, kept up to date file by file by [`ManifestCache::update`].
    /// `None` when it must be assembled anew: after a full scan, and whenever objects clash
    /// (a duplicate or a missing name: which object wins then depends on every file).
    assembled: Option<ClusterState>,
}

impl Default for ManifestCache {
    fn default() -> Self {
        Self::with_fs(Arc::new(RealFs))
    }
}

/// Whether a file name is one the source reads.
fn is_manifest(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// Whether `path` (below `dir`) is hidden: it or a directory it is in starts with a dot.
fn is_hidden(dir: &Path, path: &Path) -> bool {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

impl ManifestCache {
    /// A cache reading through `fs` (tests make it fail on purpose).
    pub fn with_fs(fs: Arc<dyn ManifestFs>) -> Self {
        Self {
            fs,
            files: BTreeMap::new(),
            walk_errors: Vec::new(),
            scanned: false,
            assembled: None,
        }
    }

    /// Re-read what changed below `dir` and build the state. Blocking (file I/O): call it from
    /// `spawn_blocking`.
    /// The flag says whether anything changed since the previous scan.
    ///
    /// Only a file that is really gone (not found) loses its objects: a directory that cannot
    /// be listed, or a file that cannot be read, keeps what it held before, with the error.
    pub fn scan(&mut self, dir: &Path) -> (ClusterState, bool) {
        let started = Instant::now();
        let found = walk::walk(&*self.fs, dir);
        let walked = started.elapsed();
        let before = self.files.len();
        self.files
            .retain(|p, _| found.files.binary_search(p).is_ok() || found.is_unknown(p));
        let mut changed = self.files.len() != before
            || self.files.is_empty() && found.files.is_empty() && !self.scanned
            || found.errors != self.walk_errors;
        self.scanned = true;
        self.walk_errors = found.errors;
        let mut parsed = 0usize;
        for path in &found.files {
            match self.refresh(dir, path) {
                Refresh::Unchanged => {}
                Refresh::Parsed => {
                    changed = true;
                    parsed += 1;
                }
                Refresh::Gone => changed |= self.forget(path),
            }
        }
        let refreshed = started.elapsed();
        let state = if changed {
            self.assemble()
        } else {
            self.current()
        };
        debug!(
            files = found.files.len(),
            parsed,
            walk_us = walked.as_micros() as u64,
            refresh_us = (refreshed - walked).as_micros() as u64,
            assemble_us = (started.elapsed() - refreshed).as_micros() as u64,
            "manifests scanned"
        );
        (state, changed)
    }

    /// Look again at `paths` only (what the watcher reported), then build the state; `None` when
    /// nothing changed. A path that is a directory, or a cache that has never walked `dir`, makes
    /// this a full [`scan`]. Blocking.
    ///
    /// [`scan`]: ManifestCache::scan
    pub fn update(&mut self, dir: &Path, paths: &BTreeSet<PathBuf>) -> Option<ClusterState> {
        if !self.scanned {
            return Some(self.scan(dir).0);
        }
        let started = Instant::now();
        let mut changed = false;
        let mut parsed = 0usize;
        for path in paths {
            if !path.starts_with(dir) || is_hidden(dir, path) {
                continue;
            }
            let manifest = path
                .file_name()
                .is_some_and(|n| is_manifest(&n.to_string_lossy()));
            match self.fs.stat(path) {
                Ok(stat) if stat.is_dir => {
                    // A directory moved in (or replaced): what it holds is unknown.
                    let (state, changed) = self.scan(dir);
                    return changed.then_some(state);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Gone: a file, or a directory with everything below it.
                    let under: Vec<PathBuf> = self
                        .files
                        .range(path.clone()..)
                        .map(|(p, _)| p)
                        .take_while(|p| p.starts_with(path))
                        .cloned()
                        .collect();
                    for p in under {
                        let before = self.contributions(&p);
                        if self.forget(&p) {
                            changed = true;
                            self.patch(before, Vec::new());
                        }
                    }
                }
                // A manifest, or one that cannot be looked at: its own read tells which.
                _ if manifest => {
                    let before = self.contributions(path);
                    let refreshed = match self.refresh(dir, path) {
                        Refresh::Unchanged => false,
                        Refresh::Parsed => {
                            parsed += 1;
                            true
                        }
                        Refresh::Gone => self.forget(path),
                    };
                    if refreshed {
                        changed = true;
                        let after = self.contributions(path);
                        self.patch(before, after);
                    }
                }
                Ok(_) => {}
                // Something that cannot be looked at, perhaps a directory: the walk reports it.
                Err(_) => {
                    let (state, changed) = self.scan(dir);
                    return changed.then_some(state);
                }
            }
        }
        let refreshed = started.elapsed();
        let state = changed.then(|| self.current());
        debug!(
            paths = paths.len(),
            parsed,
            refresh_us = refreshed.as_micros() as u64,
            assemble_us = (started.elapsed() - refreshed).as_micros() as u64,
            "manifests updated"
        );
        state
    }

    /// Re-read one file if its size or mtime changed (or its last read failed). A file that
    /// cannot be read keeps its objects; only one that is not found is `Gone`.
    fn refresh(&mut self, dir: &Path, path: &Path) -> Refresh {
        let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let stat = match self.fs.stat(path) {
            Ok(stat) => stat,
            // Vanished between the walk (or event) and now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Refresh::Gone,
            Err(e) => return self.failed(path, &shown, None, FileProblem::Unreadable(e)),
        };
        let stamp = (stat.modified, stat.len);
        if self.files.get(path).is_some_and(|e| e.stamp == Some(stamp)) {
            return Refresh::Unchanged;
        }
        if stat.len > MAX_FILE_BYTES {
            let problem = FileProblem::TooLarge { len: stat.len };
            return self.failed(path, &shown, Some(stamp), problem);
        }
        let bytes = match self.fs.read(path, MAX_FILE_BYTES) {
            Ok(b) if b.len() as u64 > MAX_FILE_BYTES => {
                // Grew past the limit since the stat.
                let problem = FileProblem::TooLarge {
                    len: b.len() as u64,
                };
                return self.failed(path, &shown, None, problem);
            }
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Refresh::Gone,
            Err(e) => return self.failed(path, &shown, None, FileProblem::Unreadable(e)),
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return self.failed(path, &shown, Some(stamp), FileProblem::NotUtf8(e)),
        };
        let docs = parse_file_shared(&shown, &text);
        debug!(file = %shown, documents = docs.len(), "parsed");
        self.files
            .entry(path.to_owned())
            .or_default()
            .take_in(stamp, docs);
        Refresh::Parsed
    }

    /// A file that could not be taken in keeps what it held, with the problem reported.
    fn failed(
        &mut self,
        path: &Path,
        shown: &str,
        stamp: Option<(std::time::SystemTime, u64)>,
        problem: FileProblem,
    ) -> Refresh {
        warn!(file = %shown, error = %problem, "manifest file not taken in");
        let origin = Origin {
            file: Some(shown.to_owned()),
            document: None,
        };
        let entry = self.files.entry(path.to_owned()).or_default();
        if entry.failed(stamp, origin, &problem) {
            Refresh::Parsed
        } else {
            Refresh::Unchanged
        }
    }

    /// Drop a file and its last good objects; whether it was known.
    fn forget(&mut self, path: &Path) -> bool {
        self.files.remove(path).is_some()
    }

    /// The state of every cached file, in path order (which decides duplicates), assembled anew.
    /// Objects are shared with the cache, not copied.
    fn assemble(&mut self) -> ClusterState {
        let mut state = ClusterState::default();
        state.invalid.extend(self.walk_errors.iter().cloned());
        let mut clean = true;
        for entry in self.files.values() {
            let before = state.invalid.len();
            for (obj, origin) in &entry.served {
                state.insert_shared(obj.clone(), origin.clone());
            }
            // Refused (a duplicate, no name): later edits need a whole assembly.
            clean &= state.invalid.len() == before;
            state.invalid.extend(entry.errors().cloned());
        }
        self.assembled = clean.then(|| state.clone());
        state
    }

    /// The kept state with its errors brought up to date (or a new assembly).
    fn current(&mut self) -> ClusterState {
        let Some(state) = &mut self.assembled else {
            return self.assemble();
        };
        let mut invalid = self.walk_errors.clone();
        for entry in self.files.values() {
            invalid.extend(entry.errors().cloned());
        }
        state.invalid = invalid;
        state.clone()
    }

    /// What a file puts in the state: each document's object, or its last good version.
    fn contributions(&self, path: &Path) -> Vec<(SharedObject, Origin)> {
        self.files
            .get(path)
            .map(|e| e.served.clone())
            .unwrap_or_default()
    }

    /// Replace one file's objects in the kept state. An object that clashes with another (or
    /// one that was not in the state as expected) drops the kept state: it is assembled anew.
    fn patch(&mut self, before: Vec<(SharedObject, Origin)>, after: Vec<(SharedObject, Origin)>) {
        let Some(state) = &mut self.assembled else {
            return;
        };
        let mut ok = true;
        for (obj, origin) in before {
            let (kind, key) = (obj.kind(), obj.key());
            if state.origins.get(&(kind, key.clone())) != Some(&origin) {
                ok = false;
                break;
            }
            state.remove(kind, &key);
        }
        for (obj, origin) in after.into_iter().take_while(|_| ok) {
            let (kind, key) = (obj.kind(), obj.key());
            if key.name.is_empty() || state.origins.contains_key(&(kind, key)) {
                ok = false;
                break;
            }
            state.insert_shared(obj, origin);
        }
        if !ok {
            self.assembled = None;
        }
    }
}

enum Refresh {
    Unchanged,
    Parsed,
    Gone,
}

#[cfg(test)]
mod tests;
