//! What one route-table build hands the next, so that a rebuild after a small change costs about
//! the change: parsed annotations per Ingress object, upstreams per Service port with the Service
//! and endpoints they were resolved from, and the routes of every Ingress that built cleanly.
//!
//! Reuse is decided by identity and equality only, never by time: an Ingress is the same when
//! its `Arc` is the same object (sources share unchanged objects from one snapshot to the next);
//! an upstream is the same when its Service and endpoints compare equal. A build with a warm
//! cache gives the same table as a build with an empty one (see the tests).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use portico_model::service::Service;
use portico_model::{Invalid, ObjectKey, ServiceEndpoints, Snapshot};

use super::Route;
use super::build::HostKey;
use crate::annotations::Options;
use crate::upstream::Upstream;

/// (Service, port name or number, EWMA, hashed): what an upstream is resolved from.
pub(super) type UpstreamKey = (ObjectKey, String, bool, bool);

/// Caches carried from one build to the next. Use one per [`super::BuildContext`]'s caches (the
/// endpoint registry and certificates): upstreams hold that registry's endpoint states.
#[derive(Default)]
pub struct BuildCache {
    pub(super) ingresses: HashMap<ObjectKey, CachedIngress>,
    pub(super) upstreams: HashMap<UpstreamKey, CachedUpstream>,
    /// Options by annotations, for annotation sets that parse cleanly: Ingresses annotated
    /// alike share one `Options` (10,000 copies were 3 MB) and are parsed once.
    pub(super) options: HashMap<BTreeMap<String, String>, Arc<Options>>,
    /// Builds so far; marks what the latest one saw.
    pub(super) build: u64,
    /// Routes the latest build reused rather than built.
    pub(super) reused: usize,
}

pub(super) struct CachedIngress {
    /// The object the rest was computed from.
    pub ing: Arc<Ingress>,
    /// Boxed: an `Invalid` is large and rare, and there is one entry per Ingress.
    pub options: Result<Arc<Options>, Box<Invalid>>,
    pub unsupported: Box<[Invalid]>,
    /// The routes of the latest build in which this Ingress was served without errors.
    pub routes: Option<Arc<Vec<CachedRoute>>>,
    pub seen: u64,
}

pub(super) struct CachedRoute {
    pub host: HostKey,
    /// Path length and rank (the order's first two parts; the third is the Ingress's age).
    pub order: (Reverse<usize>, u8),
    pub route: Arc<Route>,
}

pub(super) struct CachedUpstream {
    pub service: Option<Arc<Service>>,
    pub endpoints: Option<Arc<ServiceEndpoints>>,
    pub upstream: Arc<Upstream>,
}

/// Same object, or equal values.
fn same<T: PartialEq>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
        _ => false,
    }
}

impl BuildCache {
    /// Start a build: drop upstreams whose Service or endpoints changed, and return their
    /// addresses (a cached route that points at one of them must be rebuilt).
    pub(super) fn begin(&mut self, snap: &Snapshot) -> HashSet<usize> {
        self.build += 1;
        let mut stale = HashSet::new();
        self.upstreams.retain(|(svc, ..), u| {
            let keep = same(u.service.as_ref(), snap.service(svc))
                && same(u.endpoints.as_ref(), snap.endpoints_of(svc));
            if !keep {
                stale.insert(Arc::as_ptr(&u.upstream) as usize);
            }
            keep
        });
        stale
    }

    /// End a build: forget Ingresses it did not see, and upstreams no table uses any more (the
    /// cache's reference is then the only one).
    pub(super) fn finish(&mut self) {
        let build = self.build;
        self.ingresses.retain(|_, c| c.seen == build);
        self.upstreams
            .retain(|_, u| Arc::strong_count(&u.upstream) > 1);
        self.options.retain(|_, o| Arc::strong_count(o) > 1);
    }
}

#[cfg(test)]
mod tests;
