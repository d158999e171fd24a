//! The route table: the snapshot's routes (hosts and paths in lookup order, translated from the
//! served Ingresses before the snapshot was published) compiled for the request path, with
//! backends bound to endpoints and certificates parsed. Compiled by one function from a
//! snapshot ([`compile`]); published whole; read without locks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use regex::Regex;
use rustls::sign::CertifiedKey;

use portico_model::routes::{self, Routes};
use portico_model::{Invalid, ObjectKey};

use super::metrics::RouteMetrics;
use super::request::Features;
use super::upstream::Upstream;

mod cache;
mod compile;
pub mod options;
mod ptr;
#[cfg(test)]
pub(crate) mod tests;

pub use cache::CompileCache;
pub use compile::{CompileContext, compile};
pub use options::{CanaryRules, HashKey, Options};

/// How a path rule matches.
#[derive(Debug)]
pub enum Matcher {
    /// `pathType: Exact`.
    Exact(Box<str>),
    /// `pathType: Prefix`, element-wise; stored without its trailing slash (`""` for `/`).
    Prefix(Box<str>),
    /// `ImplementationSpecific` as ingress-nginx treats it without regex: a string prefix.
    StrPrefix(Box<str>),
    /// `use-regex` (or `rewrite-target`): a case-insensitive regex anchored at the start.
    Regex(Regex),
}

impl Matcher {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => path == &**p,
            Matcher::Prefix(p) => {
                path.starts_with(&**p)
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            Matcher::StrPrefix(p) => path.starts_with(&**p),
            Matcher::Regex(r) => r.is_match(path),
        }
    }
}

/// A canary backend attached to a route.
#[derive(Debug)]
pub struct Canary {
    pub ingress: ObjectKey,
    pub rules: CanaryRules,
    pub upstream: Arc<Upstream>,
    pub metrics: RouteMetrics,
    /// Spreads weighted traffic exactly: request n goes to the canary when n mod total < weight.
    pub counter: AtomicU64,
}

/// What one route sends traffic to, with its options.
#[derive(Debug)]
pub struct Route {
    /// The model route this was compiled from (shared with the snapshot, not copied): its
    /// Ingress and its path as written ([`Route::ingress`], [`Route::path`]).
    pub model: Arc<routes::Route>,
    pub matcher: Matcher,
    pub options: Arc<Options>,
    pub upstream: Arc<Upstream>,
    pub canary: Option<Canary>,
    /// The route's host is listed in some served Ingress's `spec.tls`.
    pub tls_host: bool,
    pub metrics: RouteMetrics,
    /// What the route uses, to choose an engine that implements all of it ([`Route::compiled`]).
    pub features: Features,
}

impl Route {
    /// The Ingress the route came from.
    pub fn ingress(&self) -> &ObjectKey {
        &self.model.origin.object
    }

    /// The rule's path as written (cookie path default, logs).
    pub fn path(&self) -> &str {
        &self.model.path
    }
}

/// The rules of one host (or of every host), most specific first.
#[derive(Debug, Default)]
pub struct HostRules {
    pub routes: Vec<Arc<Route>>,
}

impl HostRules {
    fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matcher.matches(path))
    }
}

/// What a lookup found.
pub enum Lookup<'a> {
    Route(&'a Arc<Route>),
    NotFound,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// The snapshot generation this table was built from.
    pub generation: u64,
    pub(super) exact: HashMap<Arc<str>, HostRules>,
    /// `*.example.com` is stored under `example.com`.
    pub(super) wildcard: HashMap<Arc<str>, HostRules>,
    pub(super) any_host: HostRules,
    pub(super) default_backend: Option<Arc<Route>>,
    pub(super) certs: HashMap<Box<str>, Arc<CertifiedKey>>,
    pub(super) wildcard_certs: HashMap<Box<str>, Arc<CertifiedKey>>,
    /// The routes compiled (shared with the snapshot): the Ingresses served, for status and views.
    pub(super) routes: Arc<Routes>,
    /// TLS Secrets that do not parse, reported on the Ingress fields that name them: the one
    /// kind of problem found while compiling (the translation's are in the snapshot's errors).
    pub cert_errors: Arc<[Invalid]>,
}

/// `Host` header or authority to the name matched: port stripped (IPv6 brackets kept), lower case.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |i| &host[..=i])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// `a.example.com` -> `example.com`: the key its one-label wildcard is stored under.
fn wildcard_parent(host: &str) -> Option<&str> {
    host.split_once('.')
        .map(|(_, rest)| rest)
        .filter(|r| !r.is_empty())
}

impl RouteTable {
    /// The hosts' rules for a normalized host name: exact, else the one-label wildcard, else the
    /// rules without a host.
    fn host_rules(&self, host: &str) -> &HostRules {
        if let Some(h) = self.exact.get(host) {
            return h;
        }
        if let Some(h) = wildcard_parent(host).and_then(|p| self.wildcard.get(p)) {
            return h;
        }
        &self.any_host
    }

    /// Find the route for a request. `host` must be normalized ([`normalize_host`]).
    pub fn lookup(&self, host: &str, path: &str) -> Lookup<'_> {
        match self
            .host_rules(host)
            .find(path)
            .or(self.default_backend.as_ref())
        {
            Some(r) => Lookup::Route(r),
            None => Lookup::NotFound,
        }
    }

    /// The certificate for an SNI name, when some served Ingress has a valid one for it.
    pub fn cert_for(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize_host(sni);
        if let Some(c) = self.certs.get(&*name) {
            return Some(c.clone());
        }
        wildcard_parent(&name)
            .and_then(|p| self.wildcard_certs.get(p))
            .cloned()
    }

    /// The Ingresses served (canaries included), sorted: for status and views.
    pub fn served(&self) -> &[ObjectKey] {
        &self.routes.served
    }

    /// Whether a host has a certificate of its own (not the default).
    pub fn has_cert(&self, host: &str) -> bool {
        self.cert_for(host).is_some()
    }
}
