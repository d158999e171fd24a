//! Watching the manifests directory: events reduced to the paths they name, debounced, and
//! turned into states sent down the pipeline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{ManifestCache, ManifestsConfig, is_hidden, is_manifest};
use crate::StateTx;

/// What the watcher saw, reduced to what the source needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Change {
    /// Paths to look at again.
    pub(super) paths: BTreeSet<PathBuf>,
    /// The event named no usable path, or events were lost: walk the whole directory.
    pub(super) full: bool,
    /// The change is complete (a file renamed into place, closed after writing, or removed):
    /// no need to wait for the directory to be quiet.
    pub(super) settled: bool,
}

impl Change {
    fn merge(&mut self, other: Change) {
        self.paths.extend(other.paths);
        self.full |= other.full;
        // The burst is settled when its latest event is.
        self.settled = other.settled;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.full
    }
}

/// Classify one watcher event. Reads, hidden files and files the source does not read (a log
/// file written next to the manifests) are nothing; a path that may be a directory is kept.
pub(super) fn classify(dir: &Path, ev: &notify::Event) -> Change {
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
///
/// The directory is made canonical once, here: the watcher reports absolute paths, and a
/// relative `--manifests DIR` must match them (else only the periodic re-scan sees an edit).
pub async fn run(
    cfg: ManifestsConfig,
    tx: StateTx,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Change>();
    let root = tokio::fs::canonicalize(&cfg.dir)
        .await
        .with_context(|| format!("manifests directory {}", cfg.dir.display()))?;
    let watched = root.clone();
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
    watcher.watch(&root, RecursiveMode::Recursive)?;
    info!(dir = %root.display(), given = %cfg.dir.display(), "watching manifests");

    let mut cache = ManifestCache::default();
    // The first read is a full one.
    let mut pending = Change {
        full: true,
        ..Change::default()
    };
    loop {
        let dir = root.clone();
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
