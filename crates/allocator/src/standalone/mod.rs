//! Standalone allocation (`gateway --manifests`): a [`StateHook`] that runs the allocator over
//! every state the manifests source produces, writes the result into the Services (status and the
//! `metallb.io/ip-allocated-from-pool` annotation) and keeps it in a state file so that a restart
//! hands every Service the same address.
//!
//! The state file is read when the hook is built and loaded into the allocator on the first state,
//! before anything is allocated. It is written (atomically) before the snapshot carrying a new
//! address is published, so an address is never announced before it is durable.

pub mod state_file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use portico_cluster::StateHook;
use portico_model::{ClusterState, Invalid, ObjectKey};
use portico_runtime::Publisher;
use serde::Serialize;
use tracing::{info, warn};

use crate::candidates::{Candidates, candidates};
use crate::{
    ANNOTATION_ALLOCATED_FROM_POOL, Allocator, Assignment, BadRequest, PoolStatus, Reconciled,
    ServiceRequest,
};
pub use state_file::StateFileError;

#[derive(Clone, Debug, Default)]
pub struct HookConfig {
    /// Where `lb-allocations.json` lives; `None` keeps allocations in memory only.
    pub state_dir: Option<PathBuf>,
    /// Handle only Services with this `spec.loadBalancerClass` (`None`: Services without one).
    pub lb_class: Option<String>,
}

/// One Service, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub ips: Vec<std::net::IpAddr>,
    /// Why the Service has no (or not the wanted) address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

/// Everything the admin API shows about allocation, published whole after every pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AllocationView {
    pub pools: Vec<PoolStatus>,
    pub services: Vec<ServiceAllocation>,
    /// Pools left out, and why.
    #[serde(rename = "poolErrors")]
    pub pool_errors: Vec<String>,
}

pub struct AllocateHook {
    allocator: Allocator,
    cfg: HookConfig,
    /// Read from the state file at construction; loaded into the allocator on the first state.
    restored: Option<state_file::Saved>,
    /// What the state file holds now.
    saved: state_file::Saved,
    /// The last write failed: try again on the next pass even without a change.
    dirty: bool,
    view: Arc<Publisher<AllocationView>>,
    /// Last reported problem per Service, to log each one once.
    reported: BTreeMap<ObjectKey, String>,
    /// The last pass found no pool at all and kept the assignments as they were.
    holding_without_pools: bool,
}

impl AllocateHook {
    /// Build the hook, reading `<state_dir>/lb-allocations.json` if there is one.
    pub fn new(cfg: HookConfig) -> Result<Self, StateFileError> {
        let saved = match &cfg.state_dir {
            Some(dir) => state_file::load(&state_file::path_in(dir))?,
            None => state_file::Saved::default(),
        };
        if !saved.assignments.is_empty() {
            info!(
                assignments = saved.assignments.len(),
                "LoadBalancer allocations restored from the state file"
            );
        }
        Ok(Self {
            allocator: Allocator::new(),
            cfg,
            restored: Some(saved.clone()),
            saved,
            dirty: false,
            view: Publisher::new(AllocationView::default()),
            reported: BTreeMap::new(),
            holding_without_pools: false,
        })
    }

    /// Pools with their counters, as of the last pass.
    pub fn pool_status(&self) -> Vec<PoolStatus> {
        self.allocator.pool_status()
    }

    /// A handle on the allocation view that stays valid after the hook moves into the pipeline.
    pub fn view(&self) -> Arc<Publisher<AllocationView>> {
        self.view.clone()
    }

    fn holds_anything(&self) -> bool {
        !self.allocator.assignments().is_empty()
            || self
                .restored
                .as_ref()
                .is_some_and(|r| !r.assignments.is_empty())
    }

    fn state_path(&self) -> Option<PathBuf> {
        self.cfg.state_dir.as_deref().map(state_file::path_in)
    }

    fn persist(&mut self) {
        let now = state_file::Saved {
            pools: self.allocator.pools().map(|p| p.name.clone()).collect(),
            assignments: self.allocator.assignments(),
        };
        if now.assignments == self.saved.assignments && !self.dirty {
            return;
        }
        let Some(path) = self.state_path() else {
            self.saved = now;
            return;
        };
        let write = || state_file::store(&path, &now);
        // The pipeline calls hooks from async code: a short blocking write, off the scheduler's
        // back when the runtime allows it.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            _ => write(),
        };
        match result {
            Ok(()) => {
                info!(path = %path.display(), assignments = now.assignments.len(), "allocation state written");
                self.saved = now;
                self.dirty = false;
            }
            Err(e) => {
                warn!(error = %e, source = %std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default(), "allocation state not written; will retry");
                self.dirty = true;
            }
        }
    }
}

fn write_status(svc: &mut core::Service, current: Option<&Assignment>) {
    let ingress: Vec<core::LoadBalancerIngress> = current
        .map(|a| {
            a.ips
                .iter()
                .map(|ip| core::LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let status = svc.status.get_or_insert_with(Default::default);
    status.load_balancer = Some(core::LoadBalancerStatus {
        ingress: (!ingress.is_empty()).then_some(ingress),
    });
    let annotations = svc
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match current {
        Some(a) => {
            drop(annotations.insert(ANNOTATION_ALLOCATED_FROM_POOL.to_owned(), a.pool.clone()))
        }
        None => drop(annotations.remove(ANNOTATION_ALLOCATED_FROM_POOL)),
    }
}

impl StateHook for AllocateHook {
    fn name(&self) -> &'static str {
        "loadbalancer-allocation"
    }

    fn apply(&mut self, state: &mut ClusterState) {
        let Candidates {
            wanted,
            holding,
            invalid,
        } = candidates(state, self.cfg.lb_class.as_deref());
        if state.ip_address_pools.is_empty() && self.holds_anything() {
            self.hold_without_pools(state, &wanted);
            return;
        }
        self.holding_without_pools = false;
        self.load_pools(state, &holding);
        let result = self.allocator.reconcile(&wanted);
        for (key, a) in &result.released {
            info!(service = %key, ips = ?a.ips, "LoadBalancer address released");
        }
        self.report_pool_errors(state);
        let services_view = self.write_outcomes(state, &wanted, &invalid, &result);
        // Services that stopped being eligible (type changed, other class) lose their status.
        for (key, _) in &result.released {
            if let Some(raw) = state.services.get_mut(key) {
                write_status(Arc::make_mut(raw), None);
            }
        }
        self.reported.retain(|k, _| result.outcomes.contains_key(k));

        self.persist();
        self.view.publish(AllocationView {
            pools: self.allocator.pool_status(),
            services: services_view,
            pool_errors: self
                .allocator
                .pool_errors()
                .iter()
                .map(ToString::to_string)
                .collect(),
        });
    }
}

/// The steps of one [`StateHook::apply`] pass.
impl AllocateHook {
    /// No pool at all is a missing configuration (a file being rewritten, a bad reload), not an
    /// order to take every address away: hold what is assigned until pools return.
    fn hold_without_pools(
        &mut self,
        state: &mut ClusterState,
        wanted: &[Result<ServiceRequest, BadRequest>],
    ) {
        if !self.holding_without_pools {
            warn!(
                "no IPAddressPool: keeping the existing LoadBalancer assignments until pools return"
            );
            self.holding_without_pools = true;
        }
        for w in wanted {
            let key = match w {
                Ok(r) => &r.key,
                Err(b) => &b.key,
            };
            let current = self.allocator.assignment(key).or_else(|| {
                self.restored
                    .as_ref()
                    .and_then(|r| r.assignments.get(key).cloned())
            });
            if let Some(raw) = state.services.get_mut(key) {
                write_status(Arc::make_mut(raw), current.as_ref());
            }
        }
    }

    /// Give the allocator the pools and, on the first pass, what each Service held before the
    /// restart (before anything is allocated).
    fn load_pools(&mut self, state: &ClusterState, holding: &[ServiceRequest]) {
        if let Some(restored) = &self.restored {
            // Pools accepted before the restart win overlaps again.
            self.allocator
                .remember_pools(restored.pools.iter().cloned());
        }
        self.allocator
            .set_pools(state.ip_address_pools.values().map(|p| p.as_ref()));
        if let Some(restored) = self.restored.take() {
            // Before anything is allocated: what each Service held before the restart.
            let existing: Vec<(ServiceRequest, Vec<std::net::IpAddr>)> = holding
                .iter()
                .filter_map(|r| {
                    restored
                        .assignments
                        .get(&r.key)
                        .map(|a| (r.clone(), a.ips.clone()))
                })
                .collect();
            for (key, e) in self.allocator.load_existing(&existing) {
                warn!(service = %key, error = %e, "restored allocation dropped");
            }
        }
    }

    /// Pools left out are reported and removed from the state, so nothing downstream uses them.
    fn report_pool_errors(&self, state: &mut ClusterState) {
        for e in self.allocator.pool_errors() {
            if let Some(k) = &e.object {
                state.ip_address_pools.remove(k);
            }
            let origin = e
                .object
                .as_ref()
                .map(|k| state.origin("IPAddressPool", k))
                .unwrap_or_default();
            state.invalid.push(e.clone().with_origin(origin));
        }
    }

    /// Write each Service's outcome into its status, report the ones that get no address (once
    /// per reason) and return the admin view's rows.
    fn write_outcomes(
        &mut self,
        state: &mut ClusterState,
        wanted: &[Result<ServiceRequest, BadRequest>],
        invalid: &BTreeSet<ObjectKey>,
        result: &Reconciled,
    ) -> Vec<ServiceAllocation> {
        let mut services_view = Vec::new();
        for w in wanted {
            let req_key = match w {
                Ok(r) => r.key.clone(),
                Err(b) => b.key.clone(),
            };
            let Some(outcome) = result.outcomes.get(&req_key) else {
                continue;
            };
            if let Some(raw) = state.services.get_mut(&req_key) {
                write_status(Arc::make_mut(raw), outcome.current.as_ref());
            }
            let pending = outcome.error.as_ref().map(|e| {
                let field = match w {
                    Ok(r) => e.field(r),
                    Err(b) => b.field.clone(),
                };
                // A Service that failed validation is reported by translate already.
                if !invalid.contains(&req_key) {
                    let origin = state.origin("Service", &req_key);
                    state.invalid.push(
                        Invalid::new("Service", &req_key, field, e.to_string()).with_origin(origin),
                    );
                }
                e.to_string()
            });
            match &pending {
                Some(msg) if self.reported.get(&req_key) != Some(msg) => {
                    warn!(service = %req_key, reason = %msg, "AllocationFailed");
                    self.reported.insert(req_key.clone(), msg.clone());
                }
                Some(_) => {}
                None => drop(self.reported.remove(&req_key)),
            }
            services_view.push(ServiceAllocation {
                namespace: req_key.namespace.clone(),
                name: req_key.name.clone(),
                pool: outcome.current.as_ref().map(|a| a.pool.clone()),
                ips: outcome
                    .current
                    .as_ref()
                    .map(|a| a.ips.clone())
                    .unwrap_or_default(),
                pending,
            });
        }
        services_view
    }
}

#[cfg(test)]
mod tests;
