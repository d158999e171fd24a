//! `compile`: the snapshot's routes in, a route table out. The routes say what users asked for
//! (translated, with their errors, before the snapshot was published); compiling only binds
//! them: backends to live endpoints, TLS hosts to parsed certificates, routes to their metrics.
//! Pure apart from the caches it is handed (endpoint states, parsed certificates, earlier
//! compiles), which only make a compile cheaper.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::uri::Authority;
use rustls::sign::CertifiedKey;

use portico_model::routes::{self, BackendTarget, Balance, HostMatch, PathMatch, Routes};
use portico_model::{Invalid, ObjectKey, Snapshot};

use super::cache::{CachedUpstream, CompileCache};
use super::options::CanaryRules;
use super::{Canary, HostRules, Matcher, Route, RouteTable};
use crate::metrics::{Metrics, RouteMetrics};
use crate::tls::{BrokenCert, CertCache};
use crate::upstream::{Endpoint, EndpointRegistry, Target, Upstream, cookie_value};

/// Caches a compile may reuse; all optional in effect (fresh ones give the same table).
pub struct CompileContext<'a> {
    pub registry: &'a EndpointRegistry,
    pub certs: &'a CertCache,
    pub metrics: Option<&'a Metrics>,
}

/// Compile `routes` (normally `snap.routes`) against the endpoints and Secrets of `snap`,
/// reusing from `cache` what earlier compiles bound and is still valid. The table is the one a
/// fresh cache gives; only the work differs.
pub fn compile(
    routes: &Arc<Routes>,
    snap: &Snapshot,
    ctx: &CompileContext<'_>,
    cache: &mut CompileCache,
) -> RouteTable {
    let t0 = std::time::Instant::now();
    let stale = cache.begin(snap);
    let (certs, wildcard_certs, cert_errors) = bind_certificates(routes, snap, ctx.certs);
    let t_tls = t0.elapsed();
    let mut c = Compiler { snap, ctx, cache };
    let mut table = RouteTable {
        generation: snap.generation,
        exact: HashMap::with_capacity(routes.hosts.len()),
        certs,
        wildcard_certs,
        routes: routes.clone(),
        cert_errors: cert_errors.into(),
        ..Default::default()
    };
    let mut count = 0usize;
    for (host, ranked) in &routes.hosts {
        let rules = HostRules {
            routes: ranked.iter().map(|r| c.route(&r.route, &stale)).collect(),
        };
        count += rules.routes.len();
        match host {
            HostMatch::Exact(h) => drop(table.exact.insert(h.clone(), rules)),
            HostMatch::Wildcard(h) => drop(table.wildcard.insert(h.clone(), rules)),
            HostMatch::Any => table.any_host = rules,
        }
    }
    table.default_backend = routes.default_backend.as_ref().map(|d| c.route(d, &stale));
    let reused = c.cache.reused;
    c.cache.finish();
    ctx.registry.prune();
    tracing::debug!(
        generation = snap.generation,
        routes = count,
        reused,
        tls_us = t_tls.as_micros() as u64,
        routes_us = (t0.elapsed() - t_tls).as_micros() as u64,
        "route table compiled"
    );
    table
}

type CertMap = HashMap<Box<str>, Arc<CertifiedKey>>;

/// Each TLS host's certificate: the first of its entries whose Secret parses (or once parsed:
/// a Secret edited into a broken one keeps its last good certificate). Secrets absent from the
/// snapshot were reported by the translation; only parse failures are reported here, on the
/// Ingress field that names the Secret.
fn bind_certificates(
    routes: &Routes,
    snap: &Snapshot,
    cache: &CertCache,
) -> (CertMap, CertMap, Vec<Invalid>) {
    let (mut certs, mut wildcard_certs, mut errors) = (CertMap::new(), CertMap::new(), Vec::new());
    for entry in &routes.tls {
        let Some(skey) = &entry.secret else { continue };
        let Some(secret) = snap.tls_secrets.get(skey) else {
            continue;
        };
        let field = format!("{}.secretName", entry.origin.field);
        let cert = match cache.get(skey, secret) {
            Ok(c) => c,
            Err(BrokenCert { error, last_good }) => {
                let then = match last_good {
                    Some(_) => "the last good certificate keeps serving",
                    None => "its hosts get the default certificate",
                };
                let msg = format!("Secret {skey}: {error}; {then}");
                errors.push(Invalid::new("Ingress", &entry.origin.object, field, msg));
                match last_good {
                    Some(c) => c,
                    None => continue,
                }
            }
        };
        for h in &entry.hosts {
            let (map, name) = match h {
                HostMatch::Exact(n) => (&mut certs, n),
                HostMatch::Wildcard(n) => (&mut wildcard_certs, n),
                HostMatch::Any => continue,
            };
            map.entry((**name).into()).or_insert_with(|| cert.clone());
        }
    }
    cache.retain(|k| snap.tls_secrets.contains_key(k));
    (certs, wildcard_certs, errors)
}

struct Compiler<'a, 'c> {
    snap: &'a Snapshot,
    ctx: &'a CompileContext<'a>,
    cache: &'c mut CompileCache,
}

fn matcher(m: &PathMatch) -> Matcher {
    match m {
        PathMatch::Exact(p) => Matcher::Exact(p.as_str().into()),
        PathMatch::Prefix(p) => Matcher::Prefix(p.as_str().into()),
        PathMatch::StringPrefix(p) => Matcher::StrPrefix(p.as_str().into()),
        PathMatch::RegularExpression(r) => Matcher::Regex(r.regex().clone()),
    }
}

impl Compiler<'_, '_> {
    /// The compiled form of one model route: the earlier one when it is still bound alike.
    fn route(&mut self, model: &Arc<routes::Route>, stale: &HashSet<usize>) -> Arc<Route> {
        if let Some(r) = self.cache.reuse(model, stale) {
            return r;
        }
        let ingress = &model.origin.object;
        let policy = &model.policy;
        let upstream = self.upstream(&model.backend, policy.balance, policy.hash_by.is_some());
        let canary = model.canary.as_ref().map(|c| {
            let upstream = self.upstream(&c.backend, c.balance, c.hashed);
            Canary {
                ingress: c.origin.object.clone(),
                rules: CanaryRules::compile(&c.rules),
                metrics: self.metrics(&c.origin.object, &upstream),
                upstream,
                counter: AtomicU64::new(0),
            }
        });
        let compiled = Arc::new(
            Route {
                model: model.clone(),
                matcher: matcher(&model.matches.path),
                options: self
                    .cache
                    .options
                    .get(policy, &model.filters, model.backend.protocol),
                metrics: self.metrics(ingress, &upstream),
                upstream,
                canary,
                tls_host: model.tls_host,
                features: Default::default(),
            }
            .compiled(),
        );
        self.cache.keep(model, &compiled);
        compiled
    }

    /// The upstream of a backend: shared by every route to the same Service port picked alike.
    fn upstream(&mut self, b: &routes::Backend, balance: Balance, hashed: bool) -> Arc<Upstream> {
        let key = (
            b.service.clone(),
            b.port.to_string(),
            balance == Balance::Ewma,
            hashed,
        );
        if let Some(u) = self.cache.upstreams.get(&key) {
            return u.upstream.clone();
        }
        let target = match &b.target {
            BackendTarget::NoService => Target::NoService,
            BackendTarget::External { host, port } => {
                match format!("{host}:{port}").parse::<Authority>() {
                    Ok(a) => Target::External(a),
                    // The translation checked it; were it wrong, 503 as for no endpoints.
                    Err(_) => Target::NoEndpoints,
                }
            }
            BackendTarget::ServicePort { name, .. } => self.endpoints(&b.service, name),
        };
        let cached = CachedUpstream {
            service: self.snap.service(&b.service).cloned(),
            endpoints: self.snap.endpoints_of(&b.service).cloned(),
            upstream: Arc::new(Upstream::new(b.service.clone(), target, balance, hashed)),
        };
        let u = cached.upstream.clone();
        self.cache.upstreams.insert(key, cached);
        u
    }

    /// The usable endpoints of a Service's port, with their shared states.
    fn endpoints(&self, service: &ObjectKey, port: &str) -> Target {
        let usable = self
            .snap
            .endpoints_of(service)
            .and_then(|e| e.port(port))
            .map(|p| p.usable.clone());
        let eps: Box<[Endpoint]> = usable
            .iter()
            .flat_map(|u| u.iter())
            .filter_map(|b| {
                let authority = b.addr.to_string().parse::<Authority>().ok()?;
                Some(Endpoint {
                    addr: b.addr,
                    authority,
                    cookie: cookie_value(service, b.addr).into(),
                    state: self.ctx.registry.state(b.addr),
                })
            })
            .collect();
        if eps.is_empty() {
            Target::NoEndpoints
        } else {
            Target::Endpoints(eps)
        }
    }

    fn metrics(&self, ingress: &ObjectKey, upstream: &Upstream) -> RouteMetrics {
        self.ctx
            .metrics
            .map(|m| m.route(&ingress.to_string(), &upstream.label))
            .unwrap_or_default()
    }
}
