//! Where a route sends traffic: Service ports (resolved against the Services, but not bound to
//! endpoints), and canaries beside them.

use std::fmt;
use std::sync::Arc;

use crate::key::ObjectKey;
use crate::service::{Service, ServiceType};

use super::RouteOrigin;
use super::matches::HeaderName;
use super::policy::Balance;

/// How Portico talks to a backend (`backend-protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    Grpc,
    Grpcs,
}

/// A Service port as the route names it. An Ingress backend with both a name and a number is
/// named by the name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// What a backend's Service port resolved to when the routes were translated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackendTarget {
    /// No such Service (yet): requests get 503 until it appears; not an error.
    NoService,
    /// A port of a Service with endpoints: `name` is how the endpoints key it (empty for a
    /// single unnamed port), `port` its Service port number.
    ServicePort { name: String, port: u16 },
    /// An ExternalName Service: connect to `host:port` (valid as an HTTP authority).
    External { host: String, port: u16 },
}

/// One backend of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    pub service: ObjectKey,
    pub port: PortRef,
    pub target: BackendTarget,
    /// Relative weight among a route's backends (Gateway API's `weight`). An Ingress route has
    /// one backend, of weight 1; its canary's share is in [`CanaryRules`].
    pub weight: u32,
    pub protocol: BackendProtocol,
}

/// Why a backend could not be resolved; the message for its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The Service has no such port (field `...service.port`).
    NoPort(String),
    /// An ExternalName that is not a host name (field `...backend`).
    BadExternalName(String),
}

/// Resolve a Service port. `name` wins over `number` when both are given; an ExternalName
/// Service without the named port uses `number`, else 80.
pub fn resolve(
    service: Option<&Arc<Service>>,
    key: &ObjectKey,
    name: Option<&str>,
    number: Option<i32>,
) -> Result<BackendTarget, ResolveError> {
    let Some(svc) = service else {
        return Ok(BackendTarget::NoService);
    };
    let sp = svc.ports.iter().find(|p| match (name, number) {
        (Some(n), _) => p.name == n,
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
            match format!("{ext}:{port}").parse::<http::uri::Authority>() {
                Ok(_) => Ok(BackendTarget::External { host: ext, port }),
                Err(_) => Err(ResolveError::BadExternalName(format!(
                    "ExternalName {ext:?} of Service {key} is not a host name"
                ))),
            }
        }
        (_, None) => {
            let desc = name.map_or_else(|| number.unwrap_or_default().to_string(), str::to_owned);
            Err(ResolveError::NoPort(format!(
                "Service {key} has no port {desc}"
            )))
        }
        (_, Some(sp)) => Ok(BackendTarget::ServicePort {
            name: sp.name.clone(),
            port: sp.port,
        }),
    }
}

/// When a canary takes a request (`canary-by-header`, `canary-by-cookie`, `canary-weight`),
/// checked in this order:
/// 1. the header, when present: equal to `by_header_value` when that is set (else the weight
///    decides); without a value, `always` sends to the canary and `never` to the main backend;
/// 2. the cookie, when present: `always` / `never` likewise;
/// 3. the weight: request n (counted per route) goes to the canary when
///    `n % weight_total < weight`, which spreads it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct CanaryRules {
    pub weight: u32,
    /// At least 1; `weight <= weight_total`.
    pub weight_total: u32,
    pub by_header: Option<HeaderName>,
    pub by_header_value: Option<String>,
    pub by_cookie: Option<String>,
}

/// A canary Ingress's backend, attached to the main route with the same host and path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Canary {
    /// The canary Ingress and its backend's field.
    pub origin: RouteOrigin,
    /// Its protocol is the main route's: the canary Ingress's other annotations do not apply.
    pub backend: Backend,
    pub rules: CanaryRules,
    /// How the canary's own endpoints are picked (the canary Ingress's `load-balance`), and
    /// whether it has `upstream-hash-by` (then its endpoints form a hash ring; the request's key
    /// is the route's [`super::Policy::hash_by`]).
    pub balance: Balance,
    pub hashed: bool,
}
