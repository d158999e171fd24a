//! The one reconciler: listeners follow the desired set of frontends. New ones are bound before
//! gone ones are closed (their connections go on), a changed target is swapped in place, the
//! rest are left untouched. Whoever computes the desired set (the Service datapath, the
//! gateway's LoadBalancer frontends) hands it to [`Reconciler::reconcile`].

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use portico_model::Snapshot;
use portico_runtime::Publisher;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::affinity::AffinityTable;
use crate::counters::Counters;
use crate::frontend::{Frontend, Settings, Target};
use crate::listener::{self, Listener};
use crate::select::Picker;

/// What to change to go from the current listeners to the desired ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Frontends to bind.
    pub start: Vec<(Frontend, Target)>,
    /// Frontends that stay but forward to another target.
    pub retarget: Vec<(Frontend, Target)>,
    /// Frontends to close.
    pub stop: Vec<Frontend>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.retarget.is_empty() && self.stop.is_empty()
    }

    /// Replay the plan on `current` (what the reconciler does, minus the sockets).
    pub fn apply(&self, current: &mut BTreeMap<Frontend, Target>) {
        for f in &self.stop {
            current.remove(f);
        }
        for (f, t) in self.start.iter().chain(&self.retarget) {
            current.insert(*f, t.clone());
        }
    }
}

/// The difference between `current` and `desired`. Pure.
pub fn plan(current: &BTreeMap<Frontend, Target>, desired: &BTreeMap<Frontend, Target>) -> Plan {
    let mut p = Plan::default();
    for (f, t) in desired {
        match current.get(f) {
            None => p.start.push((*f, t.clone())),
            Some(old) if old != t => p.retarget.push((*f, t.clone())),
            Some(_) => {}
        }
    }
    p.stop = current
        .keys()
        .filter(|f| !desired.contains_key(f))
        .copied()
        .collect();
    p
}

/// A frontend that could not be bound; retried at the next reconcile.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {frontend} for {target}")]
pub struct BindError {
    pub frontend: Frontend,
    pub target: Target,
    #[source]
    pub source: io::Error,
}

/// One listener, for the admin API. The counters are live: read when serialized.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub frontend: Frontend,
    pub target: Target,
    #[serde(flatten)]
    pub counters: Arc<Counters>,
}

struct Running {
    picker: Arc<Picker>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Owns the listeners of one engine. Owned and driven by one task.
pub struct Reconciler {
    snapshots: Arc<Publisher<Snapshot>>,
    affinity: Arc<AffinityTable>,
    settings: Settings,
    running: BTreeMap<Frontend, Running>,
    /// The last bind error of each frontend that failed, so a lasting failure is logged once.
    failing: BTreeMap<Frontend, String>,
    shutdown: CancellationToken,
}

impl Reconciler {
    /// Listeners pick backends from `snapshots`; `shutdown` ends listeners *and* connections.
    pub fn new(
        snapshots: Arc<Publisher<Snapshot>>,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            snapshots,
            affinity: Arc::new(AffinityTable::new()),
            settings,
            running: BTreeMap::new(),
            failing: BTreeMap::new(),
            shutdown,
        }
    }

    pub fn affinity(&self) -> &Arc<AffinityTable> {
        &self.affinity
    }

    /// The frontends listening now, and their targets.
    pub fn current(&self) -> BTreeMap<Frontend, Target> {
        self.running
            .iter()
            .map(|(f, r)| (*f, (*r.picker.target()).clone()))
            .collect()
    }

    /// Make the listeners match `desired`. New sockets are bound before old ones are closed.
    /// Must be called within a tokio runtime. Returns the frontends that could not be bound;
    /// they are tried again at the next call.
    pub fn reconcile(&mut self, desired: &BTreeMap<Frontend, Target>) -> Vec<BindError> {
        let plan = plan(&self.current(), desired);
        let mut errors = Vec::new();
        self.failing.retain(|f, _| desired.contains_key(f));
        for (frontend, target) in plan.start {
            match self.start(frontend, target.clone()) {
                Ok(running) => {
                    let retried = self.failing.remove(&frontend).is_some();
                    info!(%frontend, %target, retried, "listening");
                    self.running.insert(frontend, running);
                }
                Err(source) => {
                    let e = BindError {
                        frontend,
                        target,
                        source,
                    };
                    let text = e.source.to_string();
                    // A lasting failure is logged once, not at every retry.
                    if self.failing.get(&frontend) != Some(&text) {
                        warn!(%frontend, target = %e.target, error = %text, "cannot bind; retrying at the next update");
                        self.failing.insert(frontend, text);
                    }
                    errors.push(e);
                }
            }
        }
        for (frontend, target) in plan.retarget {
            if let Some(r) = self.running.get(&frontend) {
                info!(%frontend, %target, "target changed");
                r.picker.retarget(target);
            }
        }
        for frontend in plan.stop {
            if let Some(r) = self.running.remove(&frontend) {
                info!(%frontend, active = r.counters.active.load(Relaxed), "stopped listening; open connections go on");
                r.stop.cancel();
            }
        }
        self.affinity.sweep(&self.snapshots.peek(), Instant::now());
        errors
    }

    fn start(&self, frontend: Frontend, target: Target) -> io::Result<Running> {
        let picker = Arc::new(Picker::new(
            target,
            self.affinity.clone(),
            self.settings.connect_attempts,
        ));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = listener::start(Listener {
            frontend,
            picker: picker.clone(),
            snapshots: self.snapshots.clone(),
            counters: counters.clone(),
            settings: self.settings.clone(),
            stop: stop.clone(),
            shutdown: self.shutdown.clone(),
        })?;
        Ok(Running {
            picker,
            counters,
            stop,
            task,
        })
    }

    /// Every listener and its (live) counters, in frontend order.
    pub fn status(&self) -> Vec<ListenerStatus> {
        self.running
            .iter()
            .map(|(f, r)| ListenerStatus {
                frontend: *f,
                target: (*r.picker.target()).clone(),
                counters: r.counters.clone(),
            })
            .collect()
    }

    /// Close every listener and wait for the listener tasks to end (connections end with the
    /// engine's shutdown token, not here).
    pub async fn stop_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.stop.cancel();
            if let Err(e) = r.task.await {
                warn!(error = %e, "listener task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
