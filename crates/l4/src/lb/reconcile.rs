//! The listener set follows the snapshots: bind what is new (before closing anything), swap
//! changed targets in place, close what is gone (its TCP connections go on).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::AffinityTable;
use arc_swap::ArcSwap;
use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::listener::{self, Counters, Ctx};
use super::select::Selector;
use super::{Frontend, L4Config, L4Target, Protocol, desired};

/// How often frontends that failed to bind are tried again when nothing else changes.
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("cannot bind {frontend} for {target}")]
pub struct BindError {
    pub frontend: Frontend,
    pub target: L4Target,
    #[source]
    pub source: io::Error,
}

/// One listener as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerView {
    pub frontend: Frontend,
    pub target: L4Target,
    pub accepted: u64,
    pub active: u64,
    pub no_upstream: u64,
    pub connect_failures: u64,
    pub dropped_datagrams: u64,
}

struct Running {
    ctx: Arc<Ctx>,
    task: JoinHandle<()>,
}

/// The LoadBalancer listeners of one gateway. Owned and driven by one task.
pub struct L4 {
    cfg: L4Config,
    snapshots: Arc<Publisher<Snapshot>>,
    affinity: Arc<AffinityTable>,
    running: BTreeMap<Frontend, Running>,
    shutdown: CancellationToken,
}

impl L4 {
    pub fn new(
        cfg: L4Config,
        snapshots: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            cfg,
            snapshots,
            affinity: Arc::new(AffinityTable::new()),
            running: BTreeMap::new(),
            shutdown,
        }
    }

    /// Make the listeners match the current snapshot. Must run within a tokio runtime. Returns
    /// the frontends that could not be bound (tried again at the next call).
    pub fn reconcile(&mut self) -> Vec<BindError> {
        let snap = self.snapshots.current();
        let want = desired(&snap, &self.cfg);
        let mut errors = Vec::new();
        for (frontend, target) in &want {
            match self.running.get(frontend) {
                Some(r) if *r.ctx.target.load_full() == *target => {}
                Some(r) => {
                    info!(%frontend, %target, "LoadBalancer listener retargeted");
                    r.ctx.target.store(Arc::new(target.clone()));
                }
                None => match self.start(*frontend, target.clone()) {
                    Ok(r) => {
                        info!(%frontend, %target, proxy_protocol = target.proxy_protocol, upstream = %self.cfg.upstream, "LoadBalancer listener bound");
                        self.running.insert(*frontend, r);
                    }
                    Err(source) => {
                        warn!(%frontend, %target, error = %source, "cannot bind LoadBalancer listener; will retry");
                        errors.push(BindError {
                            frontend: *frontend,
                            target: target.clone(),
                            source,
                        });
                    }
                },
            }
        }
        let gone: Vec<Frontend> = self
            .running
            .keys()
            .filter(|f| !want.contains_key(f))
            .copied()
            .collect();
        for frontend in gone {
            if let Some(r) = self.running.remove(&frontend) {
                info!(%frontend, active = r.ctx.counters.active.load(Relaxed), "LoadBalancer listener closed; open connections go on");
                r.ctx.stop.cancel();
            }
        }
        self.affinity.sweep(&snap, Instant::now());
        errors
    }

    fn start(&self, frontend: Frontend, target: L4Target) -> io::Result<Running> {
        let ctx = Arc::new(Ctx {
            frontend,
            target: ArcSwap::from_pointee(target),
            snapshots: self.snapshots.clone(),
            cfg: self.cfg.clone(),
            selector: Arc::new(Selector::new(
                self.affinity.clone(),
                self.cfg.connect_attempts,
            )),
            counters: Arc::new(Counters::default()),
            stop: CancellationToken::new(),
            shutdown: self.shutdown.clone(),
        });
        let task = match frontend.protocol {
            Protocol::Tcp => tokio::spawn(listener::serve_tcp(
                listener::bind_tcp(frontend.addr, self.cfg.backlog)?,
                ctx.clone(),
            )),
            Protocol::Udp => tokio::spawn(listener::serve_udp(
                listener::bind_udp(frontend.addr)?,
                ctx.clone(),
            )),
        };
        Ok(Running { ctx, task })
    }

    /// Every listener with its counters, in frontend order.
    pub fn listening(&self) -> Vec<ListenerView> {
        self.running
            .iter()
            .map(|(f, r)| {
                let c = &r.ctx.counters;
                ListenerView {
                    frontend: *f,
                    target: (*r.ctx.target.load_full()).clone(),
                    accepted: c.accepted.load(Relaxed),
                    active: c.active.load(Relaxed),
                    no_upstream: c.no_upstream.load(Relaxed),
                    connect_failures: c.connect_failures.load(Relaxed),
                    dropped_datagrams: c.dropped_datagrams.load(Relaxed),
                }
            })
            .collect()
    }

    /// Follow the snapshots until shutdown, then close every listener. `views`, when given,
    /// receives the listener list after every change.
    pub async fn run(mut self, views: Option<tokio::sync::watch::Sender<Vec<ListenerView>>>) {
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
        for (_, r) in std::mem::take(&mut self.running) {
            r.ctx.stop.cancel();
            if let Err(e) = r.task.await {
                warn!(error = %e, "LoadBalancer listener task failed");
            }
        }
    }
}
