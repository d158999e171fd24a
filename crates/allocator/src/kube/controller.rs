//! One term of leadership: the allocator over the cluster state, and every write that brings
//! the API in line with its result (Service status and pool annotation, Events, pool status).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use portico_cluster::kube_source::status;
use portico_model::metallb::IPAddressPool;
use portico_model::{ClusterState, ObjectKey};
use serde_json::json;
use tracing::{info, warn};

use super::lease::Elector;
use crate::candidates::{Candidates, candidates};
use crate::standalone::{AllocationView, ServiceAllocation};
use crate::{
    ANNOTATION_ALLOCATED_FROM_POOL, Allocator, Assignment, PoolStatus, Reconciled, ServiceRequest,
};

/// The allocator and what was last reported, for one term of leadership.
pub(super) struct Controller {
    lb_class: Option<String>,
    allocator: Allocator,
    reported: BTreeMap<ObjectKey, String>,
    pool_errors: Vec<String>,
    waiting_for_pools: bool,
    /// The result of the last pass, for the admin API.
    pub(super) view: AllocationView,
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
    pub(super) fn new(lb_class: Option<String>) -> Self {
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
    pub(super) async fn sync(
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
        self.set_pools(state, events, elector).await;
        self.load_existing_once(state, &holding);
        let result = self.allocator.reconcile(&wanted);
        self.view = self.view_of(&result);
        let Some(mut ok) = self
            .write_outcomes(client, state, events, elector, &result)
            .await
        else {
            return false;
        };
        self.reported.retain(|k, _| result.outcomes.contains_key(k));
        // Services that stopped being eligible but still exist lose what this controller wrote.
        for (key, _) in &result.released {
            if let Some(svc) = state.services.get(key)
                && elector.is_leader()
            {
                ok &= write(client, key, svc, None).await;
            }
        }
        ok &= write_pool_status(client, state, elector, self.allocator.pool_status()).await;
        ok
    }

    /// Give the allocator the cluster's pools; report (once, as a Warning Event on the pool)
    /// every pool newly left out.
    async fn set_pools(
        &mut self,
        state: &ClusterState,
        events: &status::EventPublisher,
        elector: &Elector,
    ) {
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
    }

    /// Before the first allocation of this term: every address already in Service status.
    fn load_existing_once(&mut self, state: &ClusterState, holding: &[ServiceRequest]) {
        if self.allocator.is_loaded() {
            return;
        }
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

    /// The admin view of one pass.
    fn view_of(&self, result: &Reconciled) -> AllocationView {
        AllocationView {
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
        }
    }

    /// Write every Service's outcome (status, annotation, IPAllocated / AllocationFailed
    /// Events). `None` when leadership was lost on the way (nothing more may be written);
    /// otherwise whether every write succeeded.
    async fn write_outcomes(
        &mut self,
        client: &Client,
        state: &ClusterState,
        events: &status::EventPublisher,
        elector: &Elector,
        result: &Reconciled,
    ) -> Option<bool> {
        let mut ok = true;
        for (key, outcome) in &result.outcomes {
            let Some(svc) = state.services.get(key) else {
                continue;
            };
            if !elector.is_leader() {
                return None;
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
        Some(ok)
    }
}

/// Bring every IPAddressPool's status in line with the allocator's count (`statuses`).
async fn write_pool_status(
    client: &Client,
    state: &ClusterState,
    elector: &Elector,
    statuses: Vec<PoolStatus>,
) -> bool {
    let mut ok = true;
    for st in statuses {
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
