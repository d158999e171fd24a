//! What one compile hands the next, so that a compile after a small change costs about the
//! change: compiled routes by the model route they came from, upstreams per Service port with
//! the Service and endpoints they were bound to, and shared options.
//!
//! Reuse is decided by identity and equality only, never by time: a model route is the same when
//! its `Arc` is the same object (the translation keeps an unchanged Ingress's routes); an
//! upstream is the same when its Service and endpoints compare equal. A compile with a warm
//! cache gives the same table as one with an empty cache (see the tests).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use portico_model::routes;
use portico_model::service::Service;
use portico_model::{ObjectKey, ServiceEndpoints, Snapshot};

use super::Route;
use super::options::OptionsCache;
use super::ptr::ByPtr;
use crate::upstream::Upstream;

/// (Service, port name or number, EWMA, hashed): what an upstream is bound from.
pub(super) type UpstreamKey = (ObjectKey, String, bool, bool);

/// Caches carried from one compile to the next. Use one per [`super::CompileContext`]'s caches
/// (the endpoint registry and certificates): upstreams hold that registry's endpoint states.
#[derive(Default)]
pub struct CompileCache {
    pub(super) routes: HashMap<ByPtr<routes::Route>, CachedRoute>,
    pub(super) upstreams: HashMap<UpstreamKey, CachedUpstream>,
    pub(super) options: OptionsCache,
    /// Compiles so far; marks what the latest one saw.
    pub(super) pass: u64,
    /// Routes the latest compile reused rather than compiled.
    pub reused: usize,
}

pub(super) struct CachedRoute {
    pub compiled: Arc<Route>,
    pub seen: u64,
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

impl CompileCache {
    /// Start a compile: drop upstreams whose Service or endpoints changed, and return their
    /// addresses (a cached route bound to one of them must be compiled again).
    pub(super) fn begin(&mut self, snap: &Snapshot) -> HashSet<usize> {
        self.pass += 1;
        self.reused = 0;
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

    /// The compiled form of `model` from an earlier compile, when the upstreams it was bound
    /// to are still valid.
    pub(super) fn reuse(
        &mut self,
        model: &Arc<routes::Route>,
        stale: &HashSet<usize>,
    ) -> Option<Arc<Route>> {
        let key = ByPtr(model.clone());
        let cached = self.routes.get_mut(&key)?;
        let c = &cached.compiled;
        let bound = std::iter::once(&c.upstream).chain(c.canary.as_ref().map(|c| &c.upstream));
        if bound
            .into_iter()
            .any(|u| stale.contains(&(Arc::as_ptr(u) as usize)))
        {
            return None;
        }
        cached.seen = self.pass;
        self.reused += 1;
        Some(c.clone())
    }

    pub(super) fn keep(&mut self, model: &Arc<routes::Route>, compiled: &Arc<Route>) {
        self.routes.insert(
            ByPtr(model.clone()),
            CachedRoute {
                compiled: compiled.clone(),
                seen: self.pass,
            },
        );
    }

    /// End a compile: forget routes it did not see, and upstreams and options no table uses any
    /// more (the cache's reference is then the only one).
    pub(super) fn finish(&mut self) {
        let pass = self.pass;
        self.routes.retain(|_, c| c.seen == pass);
        self.upstreams
            .retain(|_, u| Arc::strong_count(&u.upstream) > 1);
        self.options.prune();
    }
}

#[cfg(test)]
mod tests;
