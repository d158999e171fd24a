//! The route model: what users asked the HTTP data plane to do, as plain data. No I/O, no
//! endpoints, no parsed certificates; nothing is bound yet.
//!
//! Shaped like Gateway API's HTTPRoute, where the migration tools map ingress-nginx too: hosts
//! ([`HostMatch`]) hold routes, each with a [`RouteMatch`] (path, and room for headers, query
//! and method), [`Filters`] (redirects, rewrite), a [`Backend`] (a Service port, resolved
//! against the Service but not bound to endpoints) with an optional [`Canary`], a [`Policy`]
//! (allow-list, body limit, balance, affinity, timeouts, tries) and a [`RouteOrigin`] naming the
//! object and field it came from.
//!
//! ```text
//! Ingress + IngressClass + Service -> ingress::translate -> Routes   (this module, pure)
//! Routes + Snapshot                -> the data plane's compile        (endpoints, certificates)
//! ```
//! Each host's routes are listed in the order a lookup tries them ([`RankedRoute::precedence`]
//! says why), so a data plane never re-derives precedence: it takes the first whose match
//! covers the request.
//!
//! What a data plane binds, and what it leaves as it is:
//! - [`Routes::hosts`]: exact hosts, wildcards (under their parent name) and `Any`, each list
//!   kept in order; [`Routes::default_backend`] after them; nothing found is 404.
//! - [`Route::backend`] and [`Canary::backend`]: Service and [`BackendTarget`] -> endpoints
//!   (`ServicePort` names the endpoints' port; `NoService` answers 503; `External` connects to
//!   the name). [`Policy::balance`] and [`Policy::hash_by`] say how the main backend's endpoints
//!   are picked, [`Canary::balance`] and [`Canary::hashed`] the canary's.
//! - [`Routes::tls`]: Secrets -> certificates, first usable entry per host; the translation
//!   already reported Secrets that are missing, the data plane reports ones that do not parse.
//! - Everything else ([`Filters`], [`Policy`], [`Route::tls_host`], [`Route::path`],
//!   [`RouteOrigin`]) is read per request as it is. Unchanged routes keep their `Arc`, so a
//!   binding can be reused by pointer while the endpoints it bound are unchanged.

pub mod annotations;
pub mod backend;
pub mod class;
pub mod filters;
pub mod ingress;
pub mod matches;
pub mod policy;

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::key::ObjectKey;

pub use backend::{Backend, BackendProtocol, BackendTarget, Canary, CanaryRules, PortRef};
pub use class::ClassConfig;
pub use filters::{Filters, HttpsRedirect, Redirect, UrlRewrite};
pub use ingress::{IngressCache, IngressInputs, translate};
pub use matches::{HeaderName, HostMatch, PathMatch, PathRegex, PathType, RouteMatch};
pub use policy::{Balance, CookieAffinity, HashKey, Policy, SameSite, Timeouts};

/// The kind of object a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Ingress,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The object and field a route, backend or TLS entry came from: for errors, status, metrics
/// and logs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteOrigin {
    pub kind: SourceKind,
    pub object: ObjectKey,
    /// A JSON path in the object (`spec.rules[0].http.paths[1]`, `spec.defaultBackend`).
    pub field: String,
}

impl fmt::Display for RouteOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.field)
    }
}

/// One route: requests its host and match cover go to its backend (or canary), after its
/// policy and filters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub origin: RouteOrigin,
    /// The path as written (`/` when absent, and for the default backend): the affinity
    /// cookie's default path, logs.
    pub path: String,
    pub matches: RouteMatch,
    pub filters: Arc<Filters>,
    pub policy: Arc<Policy>,
    pub backend: Backend,
    pub canary: Option<Arc<Canary>>,
    /// The route's host is listed in the `spec.tls` of some served Ingress (exactly, or by a
    /// wildcard covering it): HTTPS redirection and HSTS apply.
    pub tls_host: bool,
}

impl Route {
    /// Whether a plain-HTTP request to this route is redirected to HTTPS.
    pub fn redirects_to_https(&self) -> bool {
        match self.filters.https_redirect {
            HttpsRedirect::Never => false,
            HttpsRedirect::WhenTlsHost => self.tls_host,
            HttpsRedirect::Always => true,
        }
    }
}

/// Why a route comes where it does in its host's list: the longest path first, then Exact
/// before Prefix before ImplementationSpecific, then the older Ingress (by creation time, then
/// namespace/name) and its rules in order. `position` counts routes in that last order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Precedence {
    /// The length of the path as written.
    pub path_len: usize,
    pub path_type: PathType,
    pub position: usize,
}

impl Precedence {
    fn key(&self) -> (Reverse<usize>, PathType, usize) {
        (Reverse(self.path_len), self.path_type, self.position)
    }
}

impl Ord for Precedence {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Precedence {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A route in its host's list, with the reason for its place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RankedRoute {
    pub precedence: Precedence,
    /// Shared with the translation cache: an unchanged route is the same `Arc` from one
    /// translation to the next, so a data plane can reuse what it bound to it.
    pub route: Arc<Route>,
}

/// One `spec.tls` entry of a served Ingress: its hosts have TLS, with this Secret's certificate
/// when it is valid. A data plane takes, for each host, the first entry whose certificate it
/// can use. Shared with the translation cache, as routes are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsEntry {
    /// The Ingress and `spec.tls[i].secretName`.
    pub origin: RouteOrigin,
    /// Exact and wildcard hosts (invalid or empty ones are left out).
    pub hosts: Vec<HostMatch>,
    /// `None` when no `secretName` is given: the hosts get the default certificate. A Secret
    /// that is not among the snapshot's valid TLS Secrets was reported by the translation.
    pub secret: Option<ObjectKey>,
}

/// Every route of the served objects.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Routes {
    /// Each host's routes in lookup order. Lookups try the request's exact host, else its
    /// one-label wildcard, else [`HostMatch::Any`]; the first host found decides alone.
    pub hosts: BTreeMap<HostMatch, Vec<RankedRoute>>,
    /// What no route of the request's host matched goes here (the oldest Ingress's
    /// `spec.defaultBackend`); without one, 404.
    pub default_backend: Option<Arc<Route>>,
    /// In precedence order: the oldest Ingress's entries first.
    pub tls: Vec<Arc<TlsEntry>>,
    /// The objects served (in full; canaries included), sorted.
    pub served: Vec<ObjectKey>,
}

impl Routes {
    /// The routes of a normalized host (lower case, no port): its exact host's, else its
    /// wildcard's, else those without a host.
    pub fn host_routes(&self, host: &str) -> &[RankedRoute] {
        if let Some(r) = self.hosts.get(&HostMatch::Exact(host.into())) {
            return r;
        }
        if let Some(parent) = matches::wildcard_parent(host)
            && let Some(r) = self.hosts.get(&HostMatch::Wildcard(parent.into()))
        {
            return r;
        }
        self.hosts.get(&HostMatch::Any).map_or(&[], Vec::as_slice)
    }

    /// The route a request takes, by the reference semantics every data plane implements;
    /// `None`: 404. `host` must be normalized.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.host_routes(host)
            .iter()
            .map(|r| &r.route)
            .find(|r| r.matches.path.matches(path))
            .or(self.default_backend.as_ref())
    }

    /// Every route, host by host, in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = (&HostMatch, &Arc<Route>)> {
        self.hosts
            .iter()
            .flat_map(|(h, rs)| rs.iter().map(move |r| (h, &r.route)))
    }
}
