//! The LoadBalancer listener set follows the snapshots: [`desired`](super::desired) of each
//! publish is handed to the engine's one [`Reconciler`]; frontends that failed to bind are
//! tried again every [`RETRY`] while nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{L4Config, desired};
use crate::frontend::{Frontend, Target};
use crate::reconcile::{BindError, Reconciler};

/// How often frontends that failed to bind are tried again when nothing else changes.
const RETRY: Duration = Duration::from_secs(2);

/// One listener as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerView {
    pub frontend: Frontend,
    pub target: Target,
    pub accepted: u64,
    pub active: u64,
    pub no_upstream: u64,
    pub connect_failures: u64,
    pub dropped_datagrams: u64,
}

/// The LoadBalancer listeners of one gateway. Owned and driven by one task.
pub struct L4 {
    cfg: L4Config,
    snapshots: Arc<Publisher<Snapshot>>,
    listeners: Reconciler,
    shutdown: CancellationToken,
}

impl L4 {
    pub fn new(
        cfg: L4Config,
        snapshots: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) -> Self {
        let listeners = Reconciler::new(snapshots.clone(), cfg.settings(), shutdown.clone());
        Self {
            cfg,
            snapshots,
            listeners,
            shutdown,
        }
    }

    /// Make the listeners match the current snapshot. Must run within a tokio runtime. Returns
    /// the frontends that could not be bound (tried again at the next call).
    pub fn reconcile(&mut self) -> Vec<BindError> {
        let want = desired(&self.snapshots.current(), &self.cfg);
        self.listeners.reconcile(&want)
    }

    /// Every listener with its counters, in frontend order.
    pub fn listening(&self) -> Vec<ListenerView> {
        self.listeners
            .status()
            .into_iter()
            .map(|l| {
                let c = l.counters.values();
                ListenerView {
                    frontend: l.frontend,
                    target: l.target,
                    accepted: c.accepted,
                    active: c.active,
                    no_upstream: c.no_backend,
                    connect_failures: c.connect_failures,
                    dropped_datagrams: c.dropped_datagrams,
                }
            })
            .collect()
    }

    /// Follow the snapshots until shutdown, then close every listener. `views`, when given,
    /// receives the listener list after every change.
    pub async fn run(mut self, views: Option<watch::Sender<Vec<ListenerView>>>) {
        let mut versions = self.snapshots.subscribe();
        loop {
            let failed = !self.reconcile().is_empty();
            if let Some(v) = &views {
                v.send_replace(self.listening());
            }
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                r = versions.changed() => if r.is_err() { break },
                () = tokio::time::sleep(RETRY), if failed => {}
            }
        }
        self.listeners.stop_all().await;
    }
}
