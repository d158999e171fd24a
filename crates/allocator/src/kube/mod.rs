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

pub mod lease;
pub mod metrics;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use portico_cluster::kube_source::{self, status};
use portico_model::metallb::IPAddressPool;
use portico_model::{ClusterState, ObjectKey};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::candidates::{Candidates, candidates};
use crate::standalone::{AllocationView, ServiceAllocation};
use crate::{ANNOTATION_ALLOCATED_FROM_POOL, Allocator, Assignment, ServiceRequest};
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

/// The allocator and what was last reported, for one term of leadership.
struct Controller {
    lb_class: Option<String>,
    allocator: Allocator,
    reported: BTreeMap<ObjectKey, String>,
    pool_errors: Vec<String>,
    waiting_for_pools: bool,
    /// The result of the last pass, for the admin API.
    view: AllocationView,
}

fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| x.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn pool_annotation(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

impl Controller {
    fn new(lb_class: Option<String>) -> Self {
        Self {
            lb_class,
            allocator: Allocator::new(),
            reported: BTreeMap::new(),
            pool_errors: Vec::new(),
            waiting_for_pools: false,
            view: AllocationView::default(),
        }
    }

    /// One pass over the whole state. Returns whether every write succeeded.
    async fn sync(
        &mut self,
        client: &Client,
        state: &Arc<ClusterState>,
        events: &status::EventPublisher,
        elector: &Elector,
    ) -> bool {
        if state.ip_address_pools.is_empty() {
            // No pool at all (MetalLB's CRDs not installed yet, or every pool deleted): a missing
            // configuration is not an order to clear every Service's status. Wait for pools.
            if !self.waiting_for_pools {
                warn!(
                    "no IPAddressPool: not allocating, and leaving every Service status as it is"
                );
                self.waiting_for_pools = true;
            }
            return true;
        }
        self.waiting_for_pools = false;
        let Candidates {
            wanted, holding, ..
        } = candidates(state, self.lb_class.as_deref());
        self.allocator
            .set_pools(state.ip_address_pools.values().map(|p| p.as_ref()));
        let pool_errors: Vec<String> = self
            .allocator
            .pool_errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        let fresh: Vec<_> = self
            .allocator
            .pool_errors()
            .iter()
            .filter(|e| !self.pool_errors.contains(&e.to_string()))
            .cloned()
            .collect();
        for e in fresh {
            warn!(error = %e, "address pool left out");
            if let Some(key) = &e.object
                && elector.is_leader()
            {
                let regarding = status::object_ref::<IPAddressPool>(key);
                let note = format!("{}: {}; the pool is not used", e.field, e.message);
                report(
                    events
                        .publish(
                            &regarding,
                            status::EventType::Warning,
                            "InvalidAddressPool",
                            &note,
                        )
                        .await,
                );
            }
        }
        self.pool_errors = pool_errors;
        if !self.allocator.is_loaded() {
            let existing: Vec<(ServiceRequest, Vec<IpAddr>)> = holding
                .iter()
                .filter_map(|r| {
                    state
                        .services
                        .get(&r.key)
                        .map(|s| (r.clone(), status_ips(s)))
                })
                .filter(|(_, ips)| !ips.is_empty())
                .collect();
            info!(
                services = existing.len(),
                "existing assignments loaded from Service status"
            );
            for (key, e) in self.allocator.load_existing(&existing) {
                warn!(service = %key, error = %e, "address in status dropped; the Service gets a new one");
            }
        }
        let result = self.allocator.reconcile(&wanted);
        let mut ok = true;
        self.view = AllocationView {
            pools: self.allocator.pool_status(),
            services: result
                .outcomes
                .iter()
                .map(|(key, o)| ServiceAllocation {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    pool: o.current.as_ref().map(|a| a.pool.clone()),
                    ips: o
                        .current
                        .as_ref()
                        .map(|a| a.ips.clone())
                        .unwrap_or_default(),
                    pending: o.error.as_ref().map(ToString::to_string),
                })
                .collect(),
            pool_errors: self.pool_errors.clone(),
        };

        for (key, outcome) in &result.outcomes {
            let Some(svc) = state.services.get(key) else {
                continue;
            };
            if !elector.is_leader() {
                return false;
            }
            ok &= write(client, key, svc, outcome.current.as_ref()).await;
            let regarding = status::object_ref::<Service>(key);
            if outcome.changed()
                && let Some(a) = &outcome.current
            {
                let note = format!(
                    "Assigned IP {:?} from pool {}",
                    a.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    a.pool
                );
                ok &= report(
                    events
                        .publish(&regarding, status::EventType::Normal, "IPAllocated", &note)
                        .await,
                );
            }
            match &outcome.error {
                Some(e) if self.reported.get(key) != Some(&e.to_string()) => {
                    let note = format!("Failed to allocate IP for {key}: {e}");
                    warn!(service = %key, reason = %e, "AllocationFailed");
                    if report(
                        events
                            .publish(
                                &regarding,
                                status::EventType::Warning,
                                "AllocationFailed",
                                &note,
                            )
                            .await,
                    ) {
                        self.reported.insert(key.clone(), e.to_string());
                    } else {
                        ok = false;
                    }
                }
                Some(_) => {}
                None => drop(self.reported.remove(key)),
            }
        }
        self.reported.retain(|k, _| result.outcomes.contains_key(k));
        // Services that stopped being eligible but still exist lose what this controller wrote.
        for (key, _) in &result.released {
            if let Some(svc) = state.services.get(key)
                && elector.is_leader()
            {
                ok &= write(client, key, svc, None).await;
            }
        }
        for st in self.allocator.pool_status() {
            let key = ObjectKey::new(st.namespace.clone(), st.name.clone());
            let Some(obj) = state.ip_address_pools.get(&key) else {
                continue;
            };
            let want = st.to_crd_status();
            if obj.status.as_ref() == Some(&want) || !elector.is_leader() {
                continue;
            }
            let api = Api::<IPAddressPool>::namespaced(client.clone(), &key.namespace);
            let patch = Patch::Merge(json!({ "status": want }));
            if let Err(e) = api
                .patch_status(&key.name, &PatchParams::default(), &patch)
                .await
            {
                warn!(pool = %key, error = %e, "pool status not written");
                ok = false;
            }
        }
        ok
    }
}

fn report(r: Result<(), status::WriteError>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, source = %std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default(), "write failed; retrying on the next pass");
            false
        }
    }
}

/// Bring one Service's status and pool annotation in line with `current`; no write when they
/// already are. The annotation goes first when an address is given and last when one is taken
/// away, so whoever sees an address in status also sees the pool it came from.
async fn write(
    client: &Client,
    key: &ObjectKey,
    svc: &Service,
    current: Option<&Assignment>,
) -> bool {
    let want_ips = current.map(|a| a.ips.clone()).unwrap_or_default();
    let want_pool = current.map(|a| a.pool.as_str());
    let status_stale = status_ips(svc) != want_ips;
    let annotation_stale = pool_annotation(svc) != want_pool;
    let mut ok = true;
    if let (true, Some(p)) = (annotation_stale, want_pool) {
        ok &=
            report(status::annotate_service(client, key, ANNOTATION_ALLOCATED_FROM_POOL, p).await);
    }
    if status_stale && ok {
        ok &= report(status::patch_service_lb_status(client, key, &want_ips).await);
    }
    if annotation_stale && want_pool.is_none() && ok {
        ok &= report(
            status::remove_service_annotation(client, key, ANNOTATION_ALLOCATED_FROM_POOL).await,
        );
    }
    ok
}

#[cfg(test)]
mod tests;
