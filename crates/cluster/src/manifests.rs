//! The manifests source: every `*.yaml`, `*.yml` and `*.json` below a directory, multi-document,
//! watched for changes (debounced). Hidden files and directories are skipped.
//!
//! Bad input never takes anything down: a document that fails to parse is reported with its file,
//! document number and field; if the same document parsed before, its last good version keeps
//! serving, otherwise it is left out. Files are re-read only when their size or mtime changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use portico_model::manifest::{Parsed, parse_file};
use portico_model::{ClusterState, Invalid, Object, Origin};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::StateTx;

#[derive(Clone, Debug)]
pub struct ManifestsConfig {
    pub dir: PathBuf,
    /// Quiet time after a change before the directory is re-read.
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

#[derive(Clone)]
struct FileEntry {
    stamp: (SystemTime, u64),
    /// Per document (1-based order): the outcome of the latest parse, and the last good object.
    docs: Vec<(Origin, Parsed)>,
}

/// Parsed files, and the last good object of every (file, document).
#[derive(Default)]
pub struct ManifestCache {
    files: BTreeMap<PathBuf, FileEntry>,
    last_good: BTreeMap<(PathBuf, usize), Object>,
    scanned: bool,
}

impl ManifestCache {
    /// Re-read what changed below `dir` and build the state. Blocking (file I/O): call it from
    /// `spawn_blocking`.
    /// The flag says whether anything changed since the previous scan.
    pub fn scan(&mut self, dir: &Path) -> (ClusterState, bool) {
        let mut paths = Vec::new();
        let mut walk_errors = Vec::new();
        walk(dir, &mut paths, &mut walk_errors);
        paths.sort();
        let before = self.files.len();
        self.files.retain(|p, _| paths.binary_search(p).is_ok());
        let mut changed = self.files.len() != before
            || self.files.is_empty() && paths.is_empty() && !self.scanned;
        self.scanned = true;
        self.last_good
            .retain(|(p, _), _| paths.binary_search(p).is_ok());
        let mut state = ClusterState::default();
        state.invalid.extend(walk_errors);
        for path in &paths {
            let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
            let stamp = match std::fs::metadata(path) {
                Ok(m) => (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()),
                Err(_) => continue, // vanished between the walk and now
            };
            let fresh = self.files.get(path).is_some_and(|e| e.stamp == stamp);
            if !fresh {
                changed = true;
                let docs = match std::fs::read_to_string(path) {
                    Ok(text) => parse_file(&shown, &text),
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
                self.files.insert(path.clone(), FileEntry { stamp, docs });
            }
            let entry = &self.files[path];
            for (i, (origin, parsed)) in entry.docs.iter().enumerate() {
                match parsed {
                    Ok(obj) => {
                        self.last_good.insert((path.clone(), i), obj.clone());
                        state.insert(obj.clone(), origin.clone());
                    }
                    Err(inv) => {
                        let mut inv = inv.clone();
                        if let Some(prev) = self.last_good.get(&(path.clone(), i)) {
                            inv.message
                                .push_str("; the last good version keeps serving");
                            state.insert(prev.clone(), origin.clone());
                        }
                        state.invalid.push(inv);
                    }
                }
            }
        }
        (state, changed)
    }
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
        } else if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
            out.push(path);
        }
    }
}

/// Read `cfg.dir`, send the state, and keep sending it after every change until shutdown.
pub async fn run(
    cfg: ManifestsConfig,
    tx: StateTx,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading a file (including our own scans) is not a change.
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = ev_tx.send(());
            }
        }
    })?;
    watcher.watch(&cfg.dir, RecursiveMode::Recursive)?;
    info!(dir = %cfg.dir.display(), "watching manifests");

    let mut cache = ManifestCache::default();
    loop {
        let dir = cfg.dir.clone();
        let (c, (state, changed)) = tokio::task::spawn_blocking(move || {
            let r = cache.scan(&dir);
            (cache, r)
        })
        .await?;
        cache = c;
        if changed || tx.borrow().is_none() {
            tx.send_replace(Some(Arc::new(state)));
        }
        // Wait for a notification (or the periodic re-scan), then for quiet.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            ev = ev_rx.recv() => if ev.is_none() { warn!("manifest watcher stopped"); return Ok(()) },
            _ = tokio::time::sleep(cfg.rescan_every) => {}
        }
        // Quiet for `debounce`, but never wait longer than `max_delay` in all: a directory that
        // keeps changing (a log file inside it, say) must not postpone reloads indefinitely.
        let deadline = tokio::time::Instant::now() + cfg.max_delay;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ev = ev_rx.recv() => if ev.is_none() { return Ok(()) },
                _ = tokio::time::sleep(cfg.debounce) => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests;
