//! One Ingress's routes, canaries and default backend, with what they depend on.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressSpec};

use crate::invalid::{Invalid, InvalidReason};
use crate::key::ObjectKey;
use crate::routes::backend::{
    self, Backend, BackendProtocol, BackendTarget, Canary, CanaryRules, PortRef, ResolveError,
};
use crate::routes::matches::{HostMatch, PathMatch, PathRegex, PathType, RouteMatch};
use crate::routes::policy::Balance;
use crate::routes::{Route, RouteOrigin, SourceKind};
use crate::service::Service;

use super::IngressInputs;
use super::cache::{Annotated, Built, BuiltRoute};

/// The state of one translation while it walks the served Ingresses.
pub(super) struct Translation<'a> {
    pub inputs: IngressInputs<'a>,
    pub errors: Vec<Invalid>,
    /// Canary backends not yet taken, by the host and path (as written) they shadow.
    pub canaries: HashMap<(HostMatch, String), PendingCanary>,
    pub default_backend: Option<Claim>,
    /// Exact and wildcard TLS hosts of the served non-canary Ingresses.
    pub tls_exact: HashSet<Arc<str>>,
    pub tls_wildcard: HashSet<Arc<str>>,
}

/// The default backend, and the Ingress that claimed it.
pub(super) struct Claim {
    pub ingress: ObjectKey,
    pub route: Arc<Route>,
}

/// A Service port that resolved.
struct Resolved {
    service: ObjectKey,
    port: PortRef,
    target: BackendTarget,
    /// The Service as it was looked up (`None`: absent).
    found: Option<Arc<Service>>,
}

impl Resolved {
    fn backend(self, protocol: BackendProtocol) -> Backend {
        Backend {
            service: self.service,
            port: self.port,
            target: self.target,
            weight: 1,
            protocol,
        }
    }
}

/// A canary Ingress's backend waiting for its main route.
pub(super) struct PendingCanary {
    pub origin: RouteOrigin,
    backend: Resolved,
    rules: CanaryRules,
    balance: Balance,
    hashed: bool,
}

impl PendingCanary {
    /// Attached to a main route, whose protocol it takes.
    fn attach(self, protocol: BackendProtocol) -> Arc<Canary> {
        Arc::new(Canary {
            origin: self.origin,
            backend: self.backend.backend(protocol),
            rules: self.rules,
            balance: self.balance,
            hashed: self.hashed,
        })
    }
}

/// A path's match and its precedence rank; the error is (cause, field under the path, message).
fn path_match(
    path: &str,
    path_type: &str,
    regex: bool,
) -> Result<(PathMatch, PathType), (InvalidReason, &'static str, String)> {
    let compile = |path_type| match PathRegex::new(path) {
        Ok(r) => Ok((PathMatch::RegularExpression(r), path_type)),
        Err(msg) => Err((InvalidReason::BadRegex, "path", msg)),
    };
    if path_type != "ImplementationSpecific" && !path.starts_with('/') {
        let msg = format!("{path:?} must be an absolute path");
        return Err((InvalidReason::BadPath, "path", msg));
    }
    match path_type {
        "Exact" => Ok((PathMatch::Exact(path.to_owned()), PathType::Exact)),
        "Prefix" if regex => compile(PathType::Prefix),
        "Prefix" => Ok((
            PathMatch::Prefix(path.trim_end_matches('/').to_owned()),
            PathType::Prefix,
        )),
        "ImplementationSpecific" if regex => compile(PathType::ImplementationSpecific),
        "ImplementationSpecific" => Ok((
            PathMatch::StringPrefix(if path.is_empty() { "/" } else { path }.to_owned()),
            PathType::ImplementationSpecific,
        )),
        other => Err((
            InvalidReason::BadPathType,
            "pathType",
            format!(
                "unsupported value {other:?}: expected Exact, Prefix or ImplementationSpecific"
            ),
        )),
    }
}

impl<'a> Translation<'a> {
    pub fn new(inputs: IngressInputs<'a>) -> Self {
        Self {
            inputs,
            errors: Vec::new(),
            canaries: HashMap::new(),
            default_backend: None,
            tls_exact: HashSet::new(),
            tls_wildcard: HashSet::new(),
        }
    }

    /// Whether a host is a TLS host: listed, or covered by a listed wildcard.
    pub fn host_has_tls(&self, h: &HostMatch) -> bool {
        match h {
            HostMatch::Exact(name) => {
                self.tls_exact.contains(name)
                    || name
                        .split_once('.')
                        .is_some_and(|(_, parent)| self.tls_wildcard.contains(parent))
            }
            HostMatch::Wildcard(name) => self.tls_wildcard.contains(name),
            HostMatch::Any => false,
        }
    }

    /// Resolve an Ingress backend against the Services.
    fn resolve(
        &self,
        ingress: &ObjectKey,
        b: &IngressBackend,
        field: &str,
    ) -> Result<Resolved, Invalid> {
        let bad = |reason, field: String, msg: String| {
            Invalid::because(reason, "Ingress", ingress, field, msg)
        };
        let Some(svc_ref) = &b.service else {
            let msg = "resource backends are not supported; use a Service".to_owned();
            return Err(bad(
                InvalidReason::UnsupportedBackend,
                field.to_owned(),
                msg,
            ));
        };
        let service = ObjectKey::new(ingress.namespace.clone(), svc_ref.name.clone());
        let port = svc_ref.port.as_ref();
        let (name, number) = (
            port.and_then(|p| p.name.as_deref()),
            port.and_then(|p| p.number),
        );
        let port = match (name, number) {
            (Some(n), _) => PortRef::Name(n.to_owned()),
            (None, Some(n)) => PortRef::Number(n),
            (None, None) => {
                let msg = "a port number or name is required".to_owned();
                let field = format!("{field}.service.port");
                return Err(bad(InvalidReason::MissingPort, field, msg));
            }
        };
        let svc = self.inputs.services.get(&service);
        match backend::resolve(svc, &service, name, number) {
            Ok(target) => Ok(Resolved {
                found: svc.cloned(),
                service,
                port,
                target,
            }),
            Err(ResolveError::NoPort(msg)) => {
                let field = format!("{field}.service.port");
                Err(bad(InvalidReason::MissingServicePort, field, msg))
            }
            Err(ResolveError::BadExternalName(msg)) => {
                Err(bad(InvalidReason::BadExternalName, field.to_owned(), msg))
            }
        }
    }

    /// A canary Ingress's paths, as canaries of the host and path they name. Paths of a bad
    /// host are skipped; backends that do not resolve are reported.
    pub fn collect_canaries(&mut self, key: &ObjectKey, ing: &Ingress, a: &Annotated) {
        let Some(rules) = &a.canary else {
            return;
        };
        for (ri, rule) in ing
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .enumerate()
        {
            let Ok(host) = HostMatch::parse(rule.host.as_deref()) else {
                continue;
            };
            for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}].backend");
                match self.resolve(key, &p.backend, &field) {
                    Ok(backend) => {
                        let path = p.path.clone().unwrap_or_else(|| "/".into());
                        let origin = RouteOrigin {
                            kind: SourceKind::Ingress,
                            object: key.clone(),
                            field,
                        };
                        // Of two canaries of one host and path, the older one.
                        self.canaries
                            .entry((host.clone(), path))
                            .or_insert(PendingCanary {
                                origin,
                                backend,
                                rules: rules.clone(),
                                balance: a.policy.balance,
                                hashed: a.policy.hash_by.is_some(),
                            });
                    }
                    Err(e) => self.errors.push(e),
                }
            }
        }
    }

    /// A non-canary Ingress's routes, or the first problem that leaves it out whole. It claims
    /// the default backend when it has one and no older Ingress claimed it; a default backend
    /// that does not resolve is the problem unless a rule has one too (then the rule's is
    /// reported). An Ingress left out gives the default backend up again.
    pub fn main_routes(
        &mut self,
        key: &ObjectKey,
        spec: &IngressSpec,
        a: &Annotated,
    ) -> Result<Built, Invalid> {
        let mut failed = None;
        let mut claimed = false;
        if let Some(def) = &spec.default_backend
            && self.default_backend.is_none()
        {
            match self.resolve(key, def, "spec.defaultBackend") {
                Ok(r) => {
                    let route = default_route(key, a, r);
                    self.default_backend = Some(Claim {
                        ingress: key.clone(),
                        route: Arc::new(route),
                    });
                    claimed = true;
                }
                Err(e) => failed = Some(e),
            }
        }
        let mut routes = Vec::new();
        if let Err(e) = self.rules(key, spec, a, &mut routes) {
            failed = Some(e);
        }
        match failed {
            Some(e) => {
                if claimed
                    && self
                        .default_backend
                        .as_ref()
                        .is_some_and(|c| c.ingress == *key)
                {
                    self.default_backend = None;
                }
                Err(e)
            }
            None => Ok(Built {
                routes: routes.into(),
            }),
        }
    }

    /// Every path of every rule, in order, up to the first problem. A canary taken by a route
    /// of an Ingress that then fails is not offered to later ones.
    fn rules(
        &mut self,
        key: &ObjectKey,
        spec: &IngressSpec,
        a: &Annotated,
        routes: &mut Vec<BuiltRoute>,
    ) -> Result<(), Invalid> {
        for (ri, rule) in spec.rules.iter().flatten().enumerate() {
            let host = HostMatch::parse(rule.host.as_deref()).map_err(|msg| {
                let field = format!("spec.rules[{ri}].host");
                Invalid::because(InvalidReason::BadHost, "Ingress", key, field, msg)
            })?;
            for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                let path = p.path.clone().unwrap_or_else(|| "/".into());
                let (m, path_type) = path_match(&path, &p.path_type, a.regex_paths).map_err(
                    |(reason, f, msg)| {
                        Invalid::because(reason, "Ingress", key, format!("{field}.{f}"), msg)
                    },
                )?;
                let backend = self.resolve(key, &p.backend, &format!("{field}.backend"))?;
                let service = backend.found.clone();
                let canary = if self.canaries.is_empty() {
                    None
                } else {
                    let shadowed = (host.clone(), path.clone());
                    self.canaries
                        .remove(&shadowed)
                        .map(|c| c.attach(a.protocol))
                };
                let route = Route {
                    origin: RouteOrigin {
                        kind: SourceKind::Ingress,
                        object: key.clone(),
                        field,
                    },
                    path,
                    matches: RouteMatch::path(m),
                    filters: a.filters.clone(),
                    policy: a.policy.clone(),
                    backend: backend.backend(a.protocol),
                    canary,
                    tls_host: self.host_has_tls(&host),
                };
                routes.push(BuiltRoute {
                    host: host.clone(),
                    path_type,
                    route: Arc::new(route),
                    service,
                });
            }
        }
        Ok(())
    }
}

/// `spec.defaultBackend` as a route: every path, no TLS host.
fn default_route(key: &ObjectKey, a: &Annotated, r: Resolved) -> Route {
    Route {
        origin: RouteOrigin {
            kind: SourceKind::Ingress,
            object: key.clone(),
            field: "spec.defaultBackend".into(),
        },
        path: "/".into(),
        matches: RouteMatch::path(PathMatch::StringPrefix("/".into())),
        filters: a.filters.clone(),
        policy: a.policy.clone(),
        backend: r.backend(a.protocol),
        canary: None,
        tls_host: false,
    }
}
