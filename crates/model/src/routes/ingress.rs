//! Ingress (with ingress-nginx's annotations) -> [`Routes`]: pure and incremental.
//!
//! **Which Ingresses.** The translation takes the router's [`ClassConfig`] as input and
//! translates only the Ingresses of that class ([`ClassSelector`]: `spec.ingressClassName`,
//! else the legacy `kubernetes.io/ingress.class` annotation, else the default IngressClass).
//! Keeping every Ingress and letting the data plane filter would not do: Ingresses of one class
//! interact (the older wins a host and path, canaries attach to the main route of their host and
//! path, the oldest default backend wins, any served Ingress's TLS hosts redirect to HTTPS), and
//! another controller's Ingresses must not be reported nor touched.
//!
//! **What comes out.** Served Ingresses are taken oldest first (creation time, then
//! namespace/name); a conflict goes to the older one.
//! - Each path of a non-canary Ingress becomes a [`Route`] of its host; each host's routes are
//!   listed longest path first, then Exact, Prefix, ImplementationSpecific, then by age.
//! - A canary Ingress (`canary: "true"`) routes nothing itself: each of its paths becomes a
//!   [`Canary`](super::Canary) of the main route with the same host and path as written (the
//!   first such route of the oldest Ingress); one whose host and path no main route has is
//!   reported. Of two canaries of one host and path the older is kept.
//! - `spec.defaultBackend` of the oldest Ingress that has one catches what no route matched.
//! - `spec.tls` entries of every served non-canary Ingress (also of one whose routes failed)
//!   list TLS hosts and their Secrets; a route's `tls_host` says whether its host is among them.
//!
//! **Errors** come back in one list, in this order: per Ingress (oldest first) its unsupported
//! annotations and its first bad annotation value; missing TLS Secrets; canary backends that do
//! not resolve; per Ingress the first problem that leaves it out whole (a bad host, path, path
//! type, regex or backend: the others keep serving); unused canaries. A missing Service is not an
//! error (its routes answer 503 until it appears).
//!
//! **Incremental.** [`IngressCache`] keeps, per Ingress key, the `Arc` it parsed; an Ingress
//! whose `Arc` is the same and whose Services, TLS hosts and canaries did not change reuses its
//! routes, the same `Arc<Route>`s, so a data plane can reuse what it bound to them.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::invalid::{Invalid, InvalidReason};
use crate::key::ObjectKey;
use crate::service::Service;
use crate::snapshot::{Snapshot, TlsSecret};

use super::class::{ClassConfig, ClassSelector};
use super::matches::HostMatch;
use super::{Precedence, RankedRoute, Route, Routes, TlsEntry};

mod build;
mod cache;

pub use cache::IngressCache;

use build::{PendingCanary, Translation};
use cache::{Annotated, addr, same};

/// What Ingress translation reads: borrowed from a [`Snapshot`], or from the maps a snapshot is
/// being built from.
#[derive(Clone, Copy)]
pub struct IngressInputs<'a> {
    pub ingresses: &'a BTreeMap<ObjectKey, Arc<Ingress>>,
    /// By name.
    pub ingress_classes: &'a BTreeMap<String, Arc<IngressClass>>,
    /// For port names and numbers, and ExternalNames.
    pub services: &'a BTreeMap<ObjectKey, Arc<Service>>,
    /// The valid `kubernetes.io/tls` Secrets (a TLS entry naming another is reported).
    pub tls_secrets: &'a BTreeMap<ObjectKey, Arc<TlsSecret>>,
}

impl<'a> IngressInputs<'a> {
    pub fn of(snap: &'a Snapshot) -> Self {
        Self {
            ingresses: &snap.ingresses,
            ingress_classes: &snap.ingress_classes,
            services: &snap.services,
            tls_secrets: &snap.tls_secrets,
        }
    }
}

/// Route a snapshot for `class`: its Ingresses are translated into [`Snapshot::routes`], and the
/// translation's errors join [`Snapshot::errors`] (after the objects' own), so that there is one
/// list of configuration errors, published with the snapshot. `cache` as for [`translate`].
pub fn route(snap: &mut Snapshot, class: &ClassConfig, cache: &mut IngressCache) {
    let (routes, errors) = translate(&IngressInputs::of(snap), class, cache);
    snap.routes = Arc::new(routes);
    if !errors.is_empty() {
        let mut all = snap.errors.to_vec();
        all.extend(errors);
        snap.errors = all.into();
    }
}

/// One served Ingress whose annotations parse.
struct Served<'a> {
    key: &'a ObjectKey,
    ing: &'a Arc<Ingress>,
    annotated: Arc<Annotated>,
    tls: Arc<[Arc<TlsEntry>]>,
}

fn creation(ing: &Ingress) -> (bool, Option<jiff::Timestamp>) {
    let ts = ing.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (ts.is_none(), ts)
}

/// Translate the Ingresses of `class` into routes, reusing from `cache` what earlier
/// translations built and is still valid (and leaving in it what the next may reuse). The
/// result is the one a fresh cache gives; only the work differs.
pub fn translate(
    inputs: &IngressInputs<'_>,
    class: &ClassConfig,
    cache: &mut IngressCache,
) -> (Routes, Vec<Invalid>) {
    cache.begin();
    let mut t = Translation::new(*inputs);
    let served = served(inputs, class, cache, &mut t.errors);
    let tls = t.tls(
        served
            .iter()
            .filter(|s| s.annotated.canary.is_none())
            .map(|s| &s.tls),
    );
    for s in served.iter().filter(|s| s.annotated.canary.is_some()) {
        t.collect_canaries(s.key, s.ing, &s.annotated);
    }

    let mut pending: Vec<(HostMatch, Precedence, Arc<Route>)> = Vec::new();
    let mut served_ok: Vec<ObjectKey> = served
        .iter()
        .filter(|s| s.annotated.canary.is_some())
        .map(|s| s.key.clone())
        .collect();
    for s in served.iter().filter(|s| s.annotated.canary.is_none()) {
        let Some(spec) = s.ing.spec.as_ref() else {
            continue;
        };
        let Some(entry) = cache.ingresses.get_mut(&addr(s.ing)) else {
            continue; // Unreachable: `served` put it there.
        };
        let no_default_backend = spec.default_backend.is_none();
        let fresh;
        let routes = match &entry.built {
            Some(built) if no_default_backend && reusable(&t, built) => {
                cache.reused += built.routes.len();
                &built.routes
            }
            _ => match t.main_routes(s.key, spec, &s.annotated) {
                // An Ingress whose default backend may change hands is built every time.
                Ok(built) if no_default_backend => &entry.built.insert(built).routes,
                Ok(built) => {
                    entry.built = None;
                    fresh = built;
                    &fresh.routes
                }
                Err(e) => {
                    t.errors.push(e);
                    entry.built = None;
                    continue;
                }
            },
        };
        for r in routes {
            let precedence = Precedence {
                path_len: r.route.path.len(),
                path_type: r.path_type,
                position: pending.len(),
            };
            pending.push((r.host.clone(), precedence, r.route.clone()));
        }
        served_ok.push(s.key.clone());
    }
    unused_canaries(std::mem::take(&mut t.canaries), &mut t.errors);
    cache.finish();
    served_ok.sort_unstable();
    let routes = Routes {
        hosts: by_host(pending),
        default_backend: t.default_backend.take().map(|c| c.route),
        tls,
        served: served_ok,
    };
    (routes, t.errors)
}

/// The served Ingresses oldest first, parsed (through the cache); unsupported annotations and
/// bad values are reported.
fn served<'a>(
    inputs: &IngressInputs<'a>,
    class: &ClassConfig,
    cache: &mut IngressCache,
    errors: &mut Vec<Invalid>,
) -> Vec<Served<'a>> {
    let selector = ClassSelector::new(class, inputs.ingress_classes);
    let mut ours: Vec<(&ObjectKey, &Arc<Ingress>)> = inputs
        .ingresses
        .iter()
        .filter(|(_, ing)| selector.serves(ing))
        .collect();
    ours.sort_by(|(ka, a), (kb, b)| (creation(a), *ka).cmp(&(creation(b), *kb)));
    let mut served = Vec::with_capacity(ours.len());
    for (key, ing) in ours {
        let entry = cache.entry(key, ing);
        errors.extend(entry.unsupported.iter().cloned());
        match &entry.annotated {
            Ok(annotated) => served.push(Served {
                key,
                ing,
                annotated: annotated.clone(),
                tls: entry.tls.clone(),
            }),
            Err(e) => errors.push((**e).clone()),
        }
    }
    served
}

/// Whether the routes of the latest clean translation of an Ingress can be reused: nothing they
/// depend on changed (the same Services, no canary before or now, the same TLS hosts). An
/// Ingress with a default backend is never reused (whether it claims the default depends on the
/// others); the caller checks that.
fn reusable(t: &Translation<'_>, built: &cache::Built) -> bool {
    let services_same = built.routes.iter().all(|r| {
        same(
            r.service.as_ref(),
            t.inputs.services.get(&r.route.backend.service),
        )
    });
    let routes_same = built.routes.iter().all(|r| {
        r.route.canary.is_none()
            && r.route.tls_host == t.host_has_tls(&r.host)
            && (t.canaries.is_empty()
                || !t
                    .canaries
                    .contains_key(&(r.host.clone(), r.route.path.clone())))
    });
    services_same && routes_same
}

/// Canaries no main route took, reported in a stable order (by Ingress, then field).
fn unused_canaries(
    canaries: HashMap<(HostMatch, String), PendingCanary>,
    errors: &mut Vec<Invalid>,
) {
    let mut unused: Vec<_> = canaries.into_iter().collect();
    unused.sort_by(|(_, a), (_, b)| {
        (&a.origin.object, &a.origin.field).cmp(&(&b.origin.object, &b.origin.field))
    });
    for ((host, path), c) in unused {
        let msg = format!(
            "no served Ingress has host {host:?} and path {path:?}; the canary is not used"
        );
        errors.push(Invalid::because(
            InvalidReason::UnusedCanary,
            "Ingress",
            &c.origin.object,
            c.origin.field,
            msg,
        ));
    }
}

/// Routes in lookup order, grouped by host.
fn by_host(
    mut pending: Vec<(HostMatch, Precedence, Arc<Route>)>,
) -> BTreeMap<HostMatch, Vec<RankedRoute>> {
    pending.sort_unstable_by_key(|(_, p, _)| *p);
    let mut hosts: BTreeMap<HostMatch, Vec<RankedRoute>> = BTreeMap::new();
    for (host, precedence, route) in pending {
        // Most hosts have one route: no room for more until a second comes.
        hosts
            .entry(host)
            .or_insert_with(|| Vec::with_capacity(1))
            .push(RankedRoute { precedence, route });
    }
    hosts
}

impl Translation<'_> {
    /// TLS entries of the served non-canary Ingresses, oldest first; their hosts are the TLS
    /// hosts. A Secret that is not a valid TLS Secret is reported (its hosts still have TLS,
    /// with the default certificate).
    fn tls<'s>(
        &mut self,
        entries: impl Iterator<Item = &'s Arc<[Arc<TlsEntry>]>>,
    ) -> Vec<Arc<TlsEntry>> {
        let mut tls = Vec::new();
        for entry in entries.flat_map(|e| e.iter()) {
            for h in &entry.hosts {
                match h {
                    HostMatch::Exact(n) => drop(self.tls_exact.insert(n.clone())),
                    HostMatch::Wildcard(n) => drop(self.tls_wildcard.insert(n.clone())),
                    HostMatch::Any => {}
                }
            }
            if let Some(secret) = &entry.secret
                && !self.inputs.tls_secrets.contains_key(secret)
            {
                self.errors.push(Invalid::because(
                    InvalidReason::MissingSecret,
                    "Ingress",
                    &entry.origin.object,
                    format!("{}.secretName", entry.origin.field),
                    format!(
                        "Secret {secret} is missing or not a valid kubernetes.io/tls Secret; its hosts get the default certificate"
                    ),
                ));
            }
            tls.push(entry.clone());
        }
        tls
    }
}

#[cfg(test)]
mod backend_tests;
#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;
