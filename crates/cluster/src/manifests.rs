//! The manifests source: every `*.yaml`, `*.yml` and `*.json` below a directory, multi-document,
//! watched for changes. Hidden files and directories are skipped.
//!
//! Bad input never takes anything down: a document that fails to parse is reported with its file,
//! document number and field; if the same document parsed before, its last good version keeps
//! serving, otherwise it is left out. Files are re-read only when their size or mtime changed.
//!
//! A change is picked up from the watcher's event: only the files it names are looked at (a
//! directory appearing, or a lost event, means a full re-scan). A file renamed into place or
//! closed after writing is complete, so it is read at once; other events wait for the directory
//! to be quiet (debounced). A full re-scan also runs periodically, as a safety net.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind};
use notify::{RecursiveMode, Watcher};
use portico_model::manifest::parse_file_shared;
use portico_model::{ClusterState, Invalid, Origin, SharedObject};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::StateTx;

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

/// One document's outcome, with its object shared (cheap to clone, compared by pointer later).
type Doc = (Origin, Result<SharedObject, Invalid>);

struct FileEntry {
    stamp: (SystemTime, u64),
    /// Per document (1-based order): the outcome of the latest parse.
    docs: Vec<Doc>,
    /// Per document: the last object that parsed, kept across edits of the file.
    last_good: Vec<Option<SharedObject>>,
}

impl FileEntry {
    fn last_good(&self, doc: usize) -> Option<&SharedObject> {
        self.last_good.get(doc).and_then(Option::as_ref)
    }
}

/// Parsed files, with the last good object of every document.
#[derive(Default)]
pub struct ManifestCache {
    files: BTreeMap<PathBuf, FileEntry>,
    /// Problems of the last full walk (unreadable directories).
    walk_errors: Vec<Invalid>,
    scanned: bool,
    /// The state of the cached files, kept up to date file by file by [`ManifestCache::update`].
    /// `None` when it must be assembled anew: after a full scan, and whenever objects clash
    /// (a duplicate or a missing name: which object wins then depends on every file).
    assembled: Option<ClusterState>,
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
    /// Re-read what changed below `dir` and build the state. Blocking (file I/O): call it from
    /// `spawn_blocking`.
    /// The flag says whether anything changed since the previous scan.
    pub fn scan(&mut self, dir: &Path) -> (ClusterState, bool) {
        let started = Instant::now();
        let mut paths = Vec::new();
        let mut walk_errors = Vec::new();
        walk(dir, &mut paths, &mut walk_errors);
        paths.sort();
        let walked = started.elapsed();
        let before = self.files.len();
        self.files.retain(|p, _| paths.binary_search(p).is_ok());
        let mut changed = self.files.len() != before
            || self.files.is_empty() && paths.is_empty() && !self.scanned
            || walk_errors != self.walk_errors;
        self.scanned = true;
        self.walk_errors = walk_errors;
        let mut parsed = 0usize;
        for path in &paths {
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
            files = paths.len(),
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
            let meta = std::fs::metadata(path);
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                // A directory moved in (or replaced): what it holds is unknown.
                let (state, changed) = self.scan(dir);
                return changed.then_some(state);
            }
            let name = path.file_name().map(|n| n.to_string_lossy());
            if meta.is_ok() && name.is_some_and(|n| is_manifest(&n)) {
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
            } else if meta.is_err() {
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

    /// Re-read one file if its size or mtime changed.
    fn refresh(&mut self, dir: &Path, path: &Path) -> Refresh {
        let stamp = match std::fs::metadata(path) {
            Ok(m) => (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
            Err(_) => return Refresh::Gone, // vanished between the walk (or event) and now
        };
        if self.files.get(path).is_some_and(|e| e.stamp == stamp) {
            return Refresh::Unchanged;
        }
        let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let docs: Vec<Doc> = match std::fs::read_to_string(path) {
            Ok(text) => parse_file_shared(&shown, &text),
            Err(e) => {
                let origin = Origin {
                    file: Some(shown.clone()),
                    document: None,
                };
                let inv = Invalid::unparsable(origin.clone(), format!("cannot read: {e}"));
                vec![(origin, Err(inv))]
            }
        };
        debug!(file = %shown, documents = docs.len(), "parsed");
        let mut last_good = self
            .files
            .remove(path)
            .map(|e| e.last_good)
            .unwrap_or_default();
        if last_good.len() < docs.len() {
            last_good.resize(docs.len(), None);
        }
        for (i, (_, parsed)) in docs.iter().enumerate() {
            if let Ok(obj) = parsed {
                last_good[i] = Some(obj.clone());
            }
        }
        self.files.insert(
            path.to_owned(),
            FileEntry {
                stamp,
                docs,
                last_good,
            },
        );
        Refresh::Parsed
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
            for (i, (origin, parsed)) in entry.docs.iter().enumerate() {
                let shared = match parsed {
                    Ok(obj) => Some(obj),
                    Err(_) => entry.last_good(i),
                };
                if let Some(obj) = shared {
                    let before = state.invalid.len();
                    state.insert_shared(obj.clone(), origin.clone());
                    // Refused (a duplicate, no name): later edits need a whole assembly.
                    clean &= state.invalid.len() == before;
                }
                if let Err(inv) = parsed {
                    state.invalid.push(kept_or_not(inv, shared.is_some()));
                }
            }
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
            for (i, (_, parsed)) in entry.docs.iter().enumerate() {
                if let Err(inv) = parsed {
                    let kept = entry.last_good(i).is_some();
                    invalid.push(kept_or_not(inv, kept));
                }
            }
        }
        state.invalid = invalid;
        state.clone()
    }

    /// What a file puts in the state: each document's object, or its last good version.
    fn contributions(&self, path: &Path) -> Vec<(SharedObject, Origin)> {
        let Some(entry) = self.files.get(path) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entry.docs.len());
        for (i, (origin, parsed)) in entry.docs.iter().enumerate() {
            let obj = match parsed {
                Ok(obj) => Some(obj),
                Err(_) => entry.last_good(i),
            };
            if let Some(obj) = obj {
                out.push((obj.clone(), origin.clone()));
            }
        }
        out
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

/// A document's error, saying whether its last good version keeps serving.
fn kept_or_not(inv: &Invalid, kept: bool) -> Invalid {
    let mut inv = inv.clone();
    if kept {
        inv.message
            .push_str("; the last good version keeps serving");
    }
    inv
}

enum Refresh {
    Unchanged,
    Parsed,
    Gone,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Invalid>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let origin = Origin {
                file: Some(dir.display().to_string()),
                document: None,
            };
            errors.push(Invalid::unparsable(
                origin,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(&path, out, errors);
        } else if is_manifest(&name) {
            out.push(path);
        }
    }
}

/// What the watcher saw, reduced to what the source needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Change {
    /// Paths to look at again.
    paths: BTreeSet<PathBuf>,
    /// The event named no usable path, or events were lost: walk the whole directory.
    full: bool,
    /// The change is complete (a file renamed into place, closed after writing, or removed):
    /// no need to wait for the directory to be quiet.
    settled: bool,
}

impl Change {
    fn merge(&mut self, other: Change) {
        self.paths.extend(other.paths);
        self.full |= other.full;
        // The burst is settled when its latest event is.
        self.settled = other.settled;
    }

    fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.full
    }
}

/// Classify one watcher event. Reads, hidden files and files the source does not read (a log
/// file written next to the manifests) are nothing; a path that may be a directory is kept.
fn classify(dir: &Path, ev: &notify::Event) -> Change {
    let may_be_dir = matches!(
        ev.kind,
        EventKind::Create(CreateKind::Folder | CreateKind::Any | CreateKind::Other)
            | EventKind::Remove(RemoveKind::Folder | RemoveKind::Any | RemoveKind::Other)
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Any
            | EventKind::Other
    );
    let mut change = Change::default();
    match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return change,
        _ => {}
    }
    if ev.need_rescan() || ev.paths.is_empty() {
        change.full = true;
        return change;
    }
    for p in &ev.paths {
        if is_hidden(dir, p) {
            continue;
        }
        let manifest = p
            .file_name()
            .is_some_and(|n| is_manifest(&n.to_string_lossy()));
        if manifest || may_be_dir {
            change.paths.insert(p.clone());
        }
    }
    change.settled = matches!(
        ev.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Remove(_)
    );
    change
}

/// Read `cfg.dir`, send the state, and keep sending it after every change until shutdown.
pub async fn run(
    cfg: ManifestsConfig,
    tx: StateTx,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Change>();
    let watched = cfg.dir.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let change = match res {
            Ok(ev) => classify(&watched, &ev),
            // An error from the watcher may mean lost events.
            Err(_) => Change {
                full: true,
                ..Change::default()
            },
        };
        if !change.is_empty() {
            // The receiver is gone only when the source is shutting down.
            let _ = ev_tx.send(change);
        }
    })?;
    watcher.watch(&cfg.dir, RecursiveMode::Recursive)?;
    info!(dir = %cfg.dir.display(), "watching manifests");

    let mut cache = ManifestCache::default();
    // The first read is a full one.
    let mut pending = Change {
        full: true,
        ..Change::default()
    };
    loop {
        let dir = cfg.dir.clone();
        let work = std::mem::take(&mut pending);
        let started = Instant::now();
        let first = tx.borrow().is_none();
        let (c, state) = tokio::task::spawn_blocking(move || {
            let state = if work.full || first {
                let (state, changed) = cache.scan(&dir);
                (changed || first).then_some(state)
            } else {
                cache.update(&dir, &work.paths)
            };
            (cache, state)
        })
        .await?;
        cache = c;
        if let Some(state) = state {
            tx.send_replace(Some(Arc::new(state)));
            debug!(
                took_us = started.elapsed().as_micros() as u64,
                "manifest state sent"
            );
        }

        // Wait for a notification (or the periodic re-scan)...
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            ev = ev_rx.recv() => match ev {
                Some(c) => pending.merge(c),
                None => { warn!("manifest watcher stopped"); return Ok(()) }
            },
            _ = tokio::time::sleep(cfg.rescan_every) => pending.full = true,
        }
        // ...then, unless the change is complete, for quiet: `debounce` without events, but
        // never longer than `max_delay` in all, so that a directory that keeps changing cannot
        // postpone reloads indefinitely.
        let deadline = tokio::time::Instant::now() + cfg.max_delay;
        while !pending.settled {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ev = ev_rx.recv() => match ev {
                    Some(c) => pending.merge(c),
                    None => return Ok(()),
                },
                _ = tokio::time::sleep(cfg.debounce) => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Whatever else is already queued goes into the same read.
        while let Ok(c) = ev_rx.try_recv() {
            pending.merge(c);
        }
    }
}

#[cfg(test)]
mod tests;
