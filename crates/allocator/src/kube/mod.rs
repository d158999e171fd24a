//! Kube mode: the allocator as a controller, behind leader election.
//!
//! ```text
//! kube_source (reflectors) -> ClusterState ──┐
//! Lease (acquire / renew every 5 s) ─────────┴─> leader only: Allocator
//!     load existing from Service status -> reconcile -> status subresource, annotation, Events
//! ```
//! Each time this replica becomes the leader it starts from a fresh allocator and loads every
//! address already in Service status before allocating anything, so another replica's (or its
//! own earlier) assignments are never handed out twice. A replica that is not the leader, or whose
//! lease renewal is overdue, writes nothing.

mod controller;
pub mod lease;
pub mod metrics;
pub mod process;

use std::sync::Arc;

use kube::Client;
use portico_cluster::kube_source::{self, status};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::standalone::AllocationView;
use controller::Controller;
pub use lease::{ElectionError, Elector, LeaseConfig, default_identity};
use portico_runtime::Publisher;
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// Handle only Services with this `spec.loadBalancerClass` (`None`: Services without one).
    pub lb_class: Option<String>,
    pub lease: LeaseConfig,
}

/// Run until `shutdown`: reflect the cluster, take part in the election, allocate while leading.
pub async fn run(
    client: Client,
    cfg: KubeConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, rx) = portico_cluster::state_channel();
    let source_stop = shutdown.child_token();
    let source = tokio::spawn(kube_source::run_for(
        client.clone(),
        portico_cluster::rbac::Component::LbController,
        tx,
        source_stop.clone(),
    ));
    let elected = run_on(
        client,
        cfg,
        rx,
        Publisher::new(KubeView::default()),
        shutdown,
    )
    .await;
    source_stop.cancel();
    source.await??;
    Ok(elected?)
}

/// What the admin API shows in kube mode: whether this replica leads, and (while it does) the
/// pools and every Service's result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KubeView {
    pub identity: String,
    pub leader: bool,
    #[serde(flatten)]
    pub allocation: AllocationView,
}

/// The election and the controller on a state channel someone else feeds (the gateway's own
/// `kube_source`, for `gateway --allocate`). Returns at `shutdown`, having released the lease,
/// or at once with an error when the Lease's namespace does not exist (no retry mends that, and
/// a controller that retries forever leaves every Service `<pending>` without a word).
pub async fn run_on(
    client: Client,
    cfg: KubeConfig,
    rx: portico_cluster::StateRx,
    view: Arc<Publisher<KubeView>>,
    shutdown: CancellationToken,
) -> Result<(), ElectionError> {
    let events = status::EventPublisher::new(client.clone(), Some(cfg.lease.identity.clone()));
    let mut elector = Elector::new(client.clone(), cfg.lease.clone());
    loop {
        match elector.round().await? {
            Ok(true) => {
                lead(
                    &client,
                    &cfg,
                    &mut elector,
                    rx.clone(),
                    &events,
                    &view,
                    &shutdown,
                )
                .await;
                view.publish(KubeView {
                    identity: cfg.lease.identity.clone(),
                    ..KubeView::default()
                });
            }
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, lease = %cfg.lease.name, "lease not readable or writable; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(cfg.lease.renew_every) => {}
        }
    }
    if let Err(e) = elector.release().await {
        warn!(error = %e, "lease not released; another replica takes over when it expires");
    }
    Ok(())
}

/// Allocate while this replica holds the lease.
async fn lead(
    client: &Client,
    cfg: &KubeConfig,
    elector: &mut Elector,
    mut rx: portico_cluster::StateRx,
    events: &status::EventPublisher,
    view: &Publisher<KubeView>,
    shutdown: &CancellationToken,
) {
    let mut ctl = Controller::new(cfg.lb_class.clone());
    let publish = |allocation: AllocationView| {
        view.publish(KubeView {
            identity: cfg.lease.identity.clone(),
            leader: true,
            allocation,
        })
    };
    publish(AllocationView::default());
    let mut renew = tokio::time::interval(cfg.lease.renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.reset();
    let mut dirty = true;
    loop {
        let state = rx.borrow_and_update().clone();
        if dirty
            && elector.is_leader()
            && let Some(state) = state
        {
            dirty = !ctl.sync(client, &state, events, elector).await;
            publish(ctl.view.clone());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = rx.changed() => {
                if changed.is_err() { return }
                dirty = true;
            }
            _ = renew.tick() => {
                if let Err(e) = elector.try_acquire_or_renew().await {
                    warn!(error = %e, "lease renewal failed");
                }
                if !elector.is_leader() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
