//! `RouteTable::build`: snapshot in, table and problems out. Pure apart from the caches it is
//! handed (endpoint states, parsed certificates), which only make a rebuild cheaper.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::uri::Authority;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use regex::Regex;
use rustls::sign::CertifiedKey;

use portico_model::service::ServiceType;
use portico_model::{Invalid, ObjectKey, Snapshot};

use super::{Canary, HostRules, Matcher, Route, RouteTable};
use crate::annotations::{self, Options};
use crate::class::{self, RouterConfig};
use crate::metrics::{Metrics, RouteMetrics};
use crate::tls::{BrokenCert, CertCache};
use crate::upstream::{Endpoint, EndpointRegistry, Target, Upstream, cookie_value};

use super::cache::{BuildCache, CachedIngress, CachedRoute, CachedUpstream, UpstreamKey};

/// Caches a build may reuse; all optional in effect (fresh ones give the same table).
pub struct BuildContext<'a> {
    pub registry: &'a EndpointRegistry,
    pub certs: &'a CertCache,
    pub metrics: Option<&'a Metrics>,
}

/// One served Ingress, parsed.
struct Served<'a> {
    key: &'a ObjectKey,
    ing: &'a Ingress,
    options: Arc<Options>,
}

/// Where a route goes: a host (exact or `*.`), or every host.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(super) enum HostKey {
    Exact(Arc<str>),
    Wildcard(Arc<str>),
    Any,
}

struct Pending {
    host: HostKey,
    /// Sort key: longest path first, Exact before Prefix before ImplementationSpecific, then age.
    order: (Reverse<usize>, u8, usize),
    route: Arc<Route>,
}

struct Builder<'a> {
    snap: &'a Snapshot,
    ctx: &'a BuildContext<'a>,
    errors: Vec<Invalid>,
    /// Upstreams by key: those of earlier builds still valid, and this build's new ones.
    upstreams: &'a mut HashMap<UpstreamKey, CachedUpstream>,
}

fn host_key(host: Option<&str>) -> Result<HostKey, String> {
    let Some(h) = host.filter(|h| !h.is_empty()) else {
        return Ok(HostKey::Any);
    };
    let h = h.to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix("*.") {
        if rest.is_empty() || rest.contains('*') {
            return Err(format!("{h:?} is not a valid wildcard host"));
        }
        return Ok(HostKey::Wildcard(rest.into()));
    }
    if h.contains('*') || h.contains(':') || h.contains('/') {
        return Err(format!(
            "{h:?} is not a valid host (no ports, paths or inner wildcards)"
        ));
    }
    Ok(HostKey::Exact(h.into()))
}

fn matcher(path: &str, path_type: &str, options: &Options) -> Result<(Matcher, u8), String> {
    let regex = options.use_regex || options.rewrite_target.is_some();
    if path_type != "ImplementationSpecific" && !path.starts_with('/') {
        return Err(format!("{path:?} must be an absolute path"));
    }
    Ok(match path_type {
        "Exact" => (Matcher::Exact(path.into()), 0),
        "Prefix" if regex => (compile(path)?, 1),
        "Prefix" => (Matcher::Prefix(path.trim_end_matches('/').into()), 1),
        "ImplementationSpecific" if regex => (compile(path)?, 2),
        "ImplementationSpecific" => (
            Matcher::StrPrefix(if path.is_empty() { "/" } else { path }.into()),
            2,
        ),
        other => {
            return Err(format!(
                "unsupported value {other:?}: expected Exact, Prefix or ImplementationSpecific"
            ));
        }
    })
}

fn compile(path: &str) -> Result<Matcher, String> {
    Regex::new(&format!("(?i)^{path}"))
        .map(Matcher::Regex)
        .map_err(|e| format!("{path:?} is not a valid regex: {e}"))
}

fn creation(ing: &Ingress) -> (bool, Option<jiff::Timestamp>) {
    let ts = ing.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (ts.is_none(), ts)
}

impl<'a> Builder<'a> {
    fn upstream(
        &mut self,
        ns: &str,
        b: &IngressBackend,
        options: &Options,
        field: &str,
    ) -> Result<Arc<Upstream>, Invalid> {
        let Some(svc_ref) = &b.service else {
            return Err(invalid_field(
                ns,
                field,
                "resource backends are not supported; use a Service",
            ));
        };
        let svc_key = ObjectKey::new(ns, svc_ref.name.clone());
        let port = svc_ref.port.as_ref();
        let (number, name) = (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.clone()),
        );
        if number.is_none() && name.is_none() {
            return Err(invalid_field(
                ns,
                &format!("{field}.service.port"),
                "a port number or name is required",
            ));
        }
        let port_desc = name
            .clone()
            .unwrap_or_else(|| number.unwrap_or_default().to_string());
        let hashed = options.hash_by.is_some();
        let ukey = (
            svc_key.clone(),
            port_desc.clone(),
            options.balance == annotations::Balance::Ewma,
            hashed,
        );
        if let Some(u) = self.upstreams.get(&ukey) {
            return Ok(u.upstream.clone());
        }
        let target = match self.snap.service(&svc_key) {
            None => Target::NoService,
            Some(svc) => {
                let sp = svc.ports.iter().find(|p| match (&name, number) {
                    (Some(n), _) => &p.name == n,
                    (None, Some(n)) => i32::from(p.port) == n,
                    _ => false,
                });
                match (svc.type_, sp) {
                    (ServiceType::ExternalName, _) => {
                        let port = sp
                            .map(|p| p.port)
                            .or_else(|| number.and_then(|n| u16::try_from(n).ok()))
                            .unwrap_or(80);
                        let ext = svc.external_name.clone().unwrap_or_default();
                        match format!("{ext}:{port}").parse::<Authority>() {
                            Ok(a) => Target::External(a),
                            Err(_) => {
                                return Err(invalid_field(
                                    ns,
                                    field,
                                    format!(
                                        "ExternalName {ext:?} of Service {svc_key} is not a host name"
                                    ),
                                ));
                            }
                        }
                    }
                    (_, None) => {
                        return Err(invalid_field(
                            ns,
                            &format!("{field}.service.port"),
                            format!("Service {svc_key} has no port {port_desc}"),
                        ));
                    }
                    (_, Some(sp)) => {
                        let usable = self
                            .snap
                            .endpoints_of(&svc_key)
                            .and_then(|e| e.port(&sp.name))
                            .map(|p| p.usable.clone());
                        let eps: Box<[Endpoint]> = usable
                            .iter()
                            .flat_map(|u| u.iter())
                            .filter_map(|b| {
                                let authority = b.addr.to_string().parse::<Authority>().ok()?;
                                Some(Endpoint {
                                    addr: b.addr,
                                    authority,
                                    cookie: cookie_value(&svc_key, b.addr).into(),
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
                }
            }
        };
        let cached = CachedUpstream {
            service: self.snap.service(&svc_key).cloned(),
            endpoints: self.snap.endpoints_of(&svc_key).cloned(),
            upstream: Arc::new(Upstream::new(svc_key, target, options.balance, hashed)),
        };
        let u = cached.upstream.clone();
        self.upstreams.insert(ukey, cached);
        Ok(u)
    }

    fn metrics(&self, ingress: &ObjectKey, upstream: &Upstream) -> RouteMetrics {
        self.ctx
            .metrics
            .map(|m| m.route(&ingress.to_string(), &upstream.label))
            .unwrap_or_default()
    }
}

/// A placeholder error whose object is filled in by the caller.
fn invalid_field(ns: &str, field: &str, msg: impl Into<String>) -> Invalid {
    Invalid::new("Ingress", &ObjectKey::new(ns, ""), field, msg)
}

fn on_ingress(mut e: Invalid, key: &ObjectKey) -> Invalid {
    e.object = Some(key.clone());
    e
}

impl RouteTable {
    /// Build with fresh caches and no metrics: the pure form, for tests and views.
    pub fn build(snap: &Snapshot, cfg: &RouterConfig) -> (RouteTable, Vec<Invalid>) {
        let registry = EndpointRegistry::default();
        let certs = CertCache::default();
        Self::build_with(
            snap,
            cfg,
            &BuildContext {
                registry: &registry,
                certs: &certs,
                metrics: None,
            },
        )
    }

    /// Build with the given caches, from scratch.
    pub fn build_with(
        snap: &Snapshot,
        cfg: &RouterConfig,
        ctx: &BuildContext<'_>,
    ) -> (RouteTable, Vec<Invalid>) {
        Self::build_incremental(snap, cfg, ctx, &mut BuildCache::default())
    }

    /// Build, reusing from `cache` what the previous builds computed and is still valid (and
    /// leaving in it what the next build may reuse). The table is the one
    /// [`RouteTable::build_with`] gives; only the work differs.
    pub fn build_incremental(
        snap: &Snapshot,
        cfg: &RouterConfig,
        ctx: &BuildContext<'_>,
        cache: &mut BuildCache,
    ) -> (RouteTable, Vec<Invalid>) {
        let t0 = std::time::Instant::now();
        let stale = cache.begin(snap);
        let build = cache.build;
        let BuildCache {
            ingresses: cached,
            upstreams,
            options: shared_options,
            ..
        } = cache;
        let mut b = Builder {
            snap,
            ctx,
            errors: Vec::new(),
            upstreams,
        };

        // Served Ingresses, oldest first (conflicts go to the older one).
        let mut ours: Vec<(&ObjectKey, &Arc<Ingress>)> = snap
            .ingresses
            .iter()
            .filter(|(_, ing)| class::is_ours(snap, cfg, ing))
            .collect();
        ours.sort_by(|(ka, a), (kb, b)| (creation(a), *ka).cmp(&(creation(b), *kb)));
        let mut served = Vec::new();
        for (key, ing) in ours {
            let entry = match cached.get_mut(key) {
                Some(c) if Arc::ptr_eq(&c.ing, ing) => c,
                _ => {
                    let none = BTreeMap::new();
                    let ann = ing.metadata.annotations.as_ref().unwrap_or(&none);
                    let (options, unsupported) = match shared_options.get(ann) {
                        Some(o) => (Ok(o.clone()), Box::default()),
                        None => {
                            let parsed = annotations::parse(key, ann);
                            let options = parsed.options.map(Arc::new).map_err(Box::new);
                            if let Ok(o) = &options
                                && parsed.unsupported.is_empty()
                            {
                                shared_options.insert(ann.clone(), o.clone());
                            }
                            (options, parsed.unsupported.into_boxed_slice())
                        }
                    };
                    cached.insert(
                        key.clone(),
                        CachedIngress {
                            ing: ing.clone(),
                            options,
                            unsupported,
                            routes: None,
                            seen: build,
                        },
                    );
                    cached.get_mut(key).expect("just inserted")
                }
            };
            entry.seen = build;
            b.errors.extend(entry.unsupported.iter().cloned());
            match &entry.options {
                Ok(options) => served.push(Served {
                    key,
                    ing,
                    options: options.clone(),
                }),
                Err(e) => b.errors.push((**e).clone()),
            }
        }

        let t_served = t0.elapsed();
        // TLS: which hosts have TLS, and their certificates (the oldest Ingress's wins).
        let mut tls_hosts: BTreeSet<HostKey> = BTreeSet::new();
        let mut certs: HashMap<Box<str>, Arc<CertifiedKey>> = HashMap::new();
        let mut wildcard_certs: HashMap<Box<str>, Arc<CertifiedKey>> = HashMap::new();
        for s in served.iter().filter(|s| s.options.canary.is_none()) {
            for (i, tls) in s
                .ing
                .spec
                .iter()
                .flat_map(|sp| sp.tls.iter().flatten())
                .enumerate()
            {
                let hosts: Vec<HostKey> = tls
                    .hosts
                    .iter()
                    .flatten()
                    .filter_map(|h| host_key(Some(h)).ok())
                    .collect();
                tls_hosts.extend(hosts.iter().cloned());
                let Some(secret) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let skey = ObjectKey::new(s.key.namespace.clone(), secret);
                let field = format!("spec.tls[{i}].secretName");
                let cert = match snap.tls_secrets.get(&skey) {
                    None => {
                        let msg = format!(
                            "Secret {skey} is missing or not a valid kubernetes.io/tls Secret; its hosts get the default certificate"
                        );
                        b.errors.push(Invalid::new("Ingress", s.key, field, msg));
                        continue;
                    }
                    Some(secret) => match ctx.certs.get(&skey, secret) {
                        Ok(c) => c,
                        // Edited into a broken certificate: its hosts keep the last good one.
                        Err(BrokenCert {
                            error,
                            last_good: Some(c),
                        }) => {
                            let msg = format!(
                                "Secret {skey}: {error}; the last good certificate keeps serving"
                            );
                            b.errors.push(Invalid::new("Ingress", s.key, field, msg));
                            c
                        }
                        Err(BrokenCert {
                            error,
                            last_good: None,
                        }) => {
                            let msg = format!(
                                "Secret {skey}: {error}; its hosts get the default certificate"
                            );
                            b.errors.push(Invalid::new("Ingress", s.key, field, msg));
                            continue;
                        }
                    },
                };
                for h in hosts {
                    match h {
                        HostKey::Exact(h) => {
                            certs.entry((*h).into()).or_insert_with(|| cert.clone());
                        }
                        HostKey::Wildcard(h) => {
                            wildcard_certs
                                .entry((*h).into())
                                .or_insert_with(|| cert.clone());
                        }
                        HostKey::Any => {}
                    }
                }
            }
        }
        ctx.certs.retain(|k| snap.tls_secrets.contains_key(k));
        let (tls_exact, tls_wildcard): (HashSet<&str>, HashSet<&str>) = (
            tls_hosts
                .iter()
                .filter_map(|h| match h {
                    HostKey::Exact(n) => Some(&**n),
                    _ => None,
                })
                .collect(),
            tls_hosts
                .iter()
                .filter_map(|h| match h {
                    HostKey::Wildcard(n) => Some(&**n),
                    _ => None,
                })
                .collect(),
        );
        let host_has_tls = |h: &HostKey| match h {
            HostKey::Exact(name) => {
                tls_exact.contains(&**name)
                    || name
                        .split_once('.')
                        .is_some_and(|(_, p)| tls_wildcard.contains(p))
            }
            HostKey::Wildcard(name) => tls_wildcard.contains(&**name),
            HostKey::Any => false,
        };

        let t_tls = t0.elapsed();
        // Canary backends, keyed by the host and path they shadow.
        let mut canaries: HashMap<(HostKey, String), (Canary, String)> = HashMap::new();
        for s in served.iter().filter(|s| s.options.canary.is_some()) {
            let Some(rules) = s.options.canary.clone() else {
                continue;
            };
            for (ri, rule) in s
                .ing
                .spec
                .iter()
                .flat_map(|sp| sp.rules.iter().flatten())
                .enumerate()
            {
                let Ok(host) = host_key(rule.host.as_deref()) else {
                    continue;
                };
                for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                    let field = format!("spec.rules[{ri}].http.paths[{pi}].backend");
                    match b.upstream(&s.key.namespace, &p.backend, &s.options, &field) {
                        Ok(upstream) => {
                            let metrics = b.metrics(s.key, &upstream);
                            let path = p.path.clone().unwrap_or_else(|| "/".into());
                            let c = Canary {
                                ingress: (*s.key).clone(),
                                rules: rules.clone(),
                                upstream,
                                metrics,
                                counter: AtomicU64::new(0),
                            };
                            canaries.entry((host.clone(), path)).or_insert((c, field));
                        }
                        Err(e) => b.errors.push(on_ingress(e, s.key)),
                    }
                }
            }
        }

        // Main routes.
        let mut pending: Vec<Pending> = Vec::new();
        let mut default_backend = None;
        let mut seq = 0usize;
        let mut reused = 0usize;
        let mut served_ok: Vec<ObjectKey> = served
            .iter()
            .filter(|s| s.options.canary.is_some())
            .map(|s| (*s.key).clone())
            .collect();
        for s in served.iter().filter(|s| s.options.canary.is_none()) {
            let Some(spec) = s.ing.spec.as_ref() else {
                continue;
            };
            // The same object as in an earlier build, whose routes still resolve alike: reuse.
            if spec.default_backend.is_none()
                && let Some(routes) = cached.get(s.key).and_then(|c| c.routes.clone())
                && routes.iter().all(|c| {
                    c.route.canary.is_none()
                        && !stale.contains(&(Arc::as_ptr(&c.route.upstream) as usize))
                        && c.route.tls_host == host_has_tls(&c.host)
                        && (canaries.is_empty()
                            || !canaries.contains_key(&(c.host.clone(), c.route.path.to_string())))
                })
            {
                for c in routes.iter() {
                    seq += 1;
                    pending.push(Pending {
                        host: c.host.clone(),
                        order: (c.order.0, c.order.1, seq),
                        route: c.route.clone(),
                    });
                }
                reused += routes.len();
                served_ok.push((*s.key).clone());
                continue;
            }
            let mut routes_of_this: Vec<Pending> = Vec::new();
            let mut failed = None;
            if let Some(def) = &spec.default_backend
                && default_backend.is_none()
            {
                match b.upstream(&s.key.namespace, def, &s.options, "spec.defaultBackend") {
                    Ok(upstream) => {
                        let metrics = b.metrics(s.key, &upstream);
                        default_backend = Some(Arc::new(
                            Route {
                                ingress: (*s.key).clone(),
                                path: "/".into(),
                                matcher: Matcher::StrPrefix("/".into()),
                                options: s.options.clone(),
                                upstream,
                                canary: None,
                                tls_host: false,
                                metrics,
                                features: Default::default(),
                            }
                            .compiled(),
                        ));
                    }
                    Err(e) => failed = Some(on_ingress(e, s.key)),
                }
            }
            'rules: for (ri, rule) in spec.rules.iter().flatten().enumerate() {
                let host = match host_key(rule.host.as_deref()) {
                    Ok(h) => h,
                    Err(msg) => {
                        failed = Some(Invalid::new(
                            "Ingress",
                            s.key,
                            format!("spec.rules[{ri}].host"),
                            msg,
                        ));
                        break;
                    }
                };
                for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                    let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                    let path = p.path.clone().unwrap_or_else(|| "/".into());
                    let (m, rank) = match matcher(&path, &p.path_type, &s.options) {
                        Ok(m) => m,
                        Err(msg) => {
                            let f = if msg.starts_with("unsupported") {
                                "pathType"
                            } else {
                                "path"
                            };
                            failed =
                                Some(Invalid::new("Ingress", s.key, format!("{field}.{f}"), msg));
                            break 'rules;
                        }
                    };
                    let upstream = match b.upstream(
                        &s.key.namespace,
                        &p.backend,
                        &s.options,
                        &format!("{field}.backend"),
                    ) {
                        Ok(u) => u,
                        Err(e) => {
                            failed = Some(on_ingress(e, s.key));
                            break 'rules;
                        }
                    };
                    let canary = if canaries.is_empty() {
                        None
                    } else {
                        canaries
                            .remove(&(host.clone(), path.clone()))
                            .map(|(c, _)| c)
                    };
                    let metrics = b.metrics(s.key, &upstream);
                    seq += 1;
                    routes_of_this.push(Pending {
                        order: (Reverse(path.len()), rank, seq),
                        route: Arc::new(
                            Route {
                                ingress: (*s.key).clone(),
                                path: path.into(),
                                matcher: m,
                                options: s.options.clone(),
                                upstream,
                                canary,
                                tls_host: host_has_tls(&host),
                                metrics,
                                features: Default::default(),
                            }
                            .compiled(),
                        ),
                        host: host.clone(),
                    });
                }
            }
            match failed {
                // A broken Ingress is left out whole; the others keep serving.
                Some(e) => {
                    if default_backend
                        .as_ref()
                        .is_some_and(|d| d.ingress == *s.key)
                    {
                        default_backend = None;
                    }
                    b.errors.push(e);
                    if let Some(c) = cached.get_mut(s.key) {
                        c.routes = None;
                    }
                }
                None => {
                    if let Some(c) = cached.get_mut(s.key) {
                        c.routes = spec.default_backend.is_none().then(|| {
                            Arc::new(
                                routes_of_this
                                    .iter()
                                    .map(|p| CachedRoute {
                                        host: p.host.clone(),
                                        order: (p.order.0, p.order.1),
                                        route: p.route.clone(),
                                    })
                                    .collect(),
                            )
                        });
                    }
                    pending.extend(routes_of_this);
                    served_ok.push((*s.key).clone());
                }
            }
        }
        // In a stable order (the map's is random): the same snapshot gives the same errors.
        let mut unused: Vec<_> = canaries.into_iter().collect();
        unused.sort_by(|(_, (a, fa)), (_, (b, fb))| (&a.ingress, fa).cmp(&(&b.ingress, fb)));
        for ((host, path), (c, field)) in unused {
            let msg = format!(
                "no served Ingress has host {host:?} and path {path:?}; the canary is not used"
            );
            b.errors
                .push(Invalid::new("Ingress", &c.ingress, field, msg));
        }

        let t_routes = t0.elapsed();
        pending.sort_unstable_by_key(|p| p.order);
        let exact_hosts = pending
            .iter()
            .filter(|p| matches!(p.host, HostKey::Exact(_)))
            .count();
        let mut table = RouteTable {
            exact: HashMap::with_capacity(exact_hosts),
            generation: snap.generation,
            default_backend,
            certs,
            wildcard_certs,
            ..Default::default()
        };
        for p in pending {
            let rules: &mut HostRules = match p.host {
                HostKey::Exact(h) => table.exact.entry(h).or_default(),
                HostKey::Wildcard(h) => table.wildcard.entry(h).or_default(),
                HostKey::Any => &mut table.any_host,
            };
            rules.routes.push(p.route);
        }
        served_ok.sort_unstable();
        table.served = served_ok;
        let errors = b.errors;
        cache.reused = reused;
        cache.finish();
        ctx.registry.prune();
        table.errors = errors.clone().into();
        tracing::debug!(
            generation = snap.generation,
            routes = seq,
            reused,
            served_us = t_served.as_micros() as u64,
            tls_us = (t_tls - t_served).as_micros() as u64,
            routes_us = (t_routes - t_tls).as_micros() as u64,
            assemble_us = (t0.elapsed() - t_routes).as_micros() as u64,
            "route table built"
        );
        (table, errors)
    }
}

impl PartialOrd for HostKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HostKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let k = |h: &HostKey| -> (u8, Arc<str>) {
            match h {
                HostKey::Exact(s) => (0, s.clone()),
                HostKey::Wildcard(s) => (1, s.clone()),
                HostKey::Any => (2, Arc::from("")),
            }
        };
        k(self).cmp(&k(other))
    }
}
