//! Which upstream a new connection or UDP flow goes to, from the snapshot current when it
//! arrives: the candidates of the frontend's [`Scope`], then round-robin over them, or the
//! client's remembered one under ClientIP session affinity.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use portico_model::service::TrafficPolicy;
use portico_model::{Backend, Service, ServicePort, Snapshot};
use tokio::time::Instant;

use crate::affinity::AffinityTable;
use crate::frontend::{Scope, ServiceKey, Target};

/// Why a new connection has nowhere to go. It is dropped (TCP: reset), as kube-proxy drops it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoBackend {
    #[error("Service {service} does not exist")]
    NoService { service: ServiceKey },
    #[error("Service {service} has no port named {port:?}")]
    NoPort { service: ServiceKey, port: String },
    #[error("Service {service} port {port:?} has no usable endpoint")]
    NoEndpoints { service: ServiceKey, port: String },
    #[error(
        "Service {service} port {port:?} has no usable endpoint on node {node} (traffic policy Local)"
    )]
    NoLocalEndpoints {
        service: ServiceKey,
        port: String,
        node: String,
    },
    #[error("Service {service} port {port:?} has no nodePort")]
    NoNodePort { service: ServiceKey, port: String },
    #[error("Service {service}: no ready node{}", if *.local { " with a ready local endpoint (externalTrafficPolicy Local)" } else { "" })]
    NoNodes { service: ServiceKey, local: bool },
}

/// The Service of `target` and its port.
fn service_port<'s>(
    snapshot: &'s Snapshot,
    target: &Target,
) -> Result<(&'s Service, &'s ServicePort), NoBackend> {
    let svc = snapshot
        .service(&target.service)
        .ok_or_else(|| NoBackend::NoService {
            service: target.service.clone(),
        })?;
    let port = svc
        .port_named(&target.port)
        .ok_or_else(|| NoBackend::NoPort {
            service: target.service.clone(),
            port: target.port.clone(),
        })?;
    Ok((svc, port))
}

/// The endpoints `target` may send new connections to in `snapshot`: the usable ones (ready, or
/// serving-and-terminating when none is ready), restricted to this node for `Local` scope, where
/// the fallback to terminating endpoints is decided among the local ones alone. For `NodePorts`
/// scope: the Service's usable endpoints (those behind the node ports).
pub fn candidates(snapshot: &Snapshot, target: &Target) -> Result<Arc<[Backend]>, NoBackend> {
    let service = &target.service;
    service_port(snapshot, target)?;
    let port = snapshot
        .endpoints_of(service)
        .and_then(|e| e.port(&target.port));
    let found: Arc<[Backend]> = match (&target.scope, port) {
        (_, None) => Arc::from([]),
        (Scope::Cluster | Scope::NodePorts, Some(p)) => p.usable.clone(),
        (Scope::Local { node }, Some(p)) => {
            let local = |b: &&Backend| b.node_name.as_deref() == Some(node.as_str());
            let ready: Vec<Backend> = p
                .all
                .iter()
                .filter(local)
                .filter(|b| b.ready)
                .cloned()
                .collect();
            if ready.is_empty() {
                p.all
                    .iter()
                    .filter(local)
                    .filter(|b| b.serving && b.terminating)
                    .cloned()
                    .collect()
            } else {
                ready.into()
            }
        }
    };
    if found.is_empty() {
        return Err(match &target.scope {
            Scope::Local { node } => NoBackend::NoLocalEndpoints {
                service: service.clone(),
                port: target.port.clone(),
                node: node.clone(),
            },
            Scope::Cluster | Scope::NodePorts => NoBackend::NoEndpoints {
                service: service.clone(),
                port: target.port.clone(),
            },
        });
    }
    Ok(found)
}

/// Every upstream a target may use now, in a stable order; never empty.
#[derive(Debug, Clone)]
pub enum Upstreams {
    /// The candidate endpoints (shared with the snapshot, not copied).
    Endpoints(Arc<[Backend]>),
    /// `node:nodePort` addresses.
    Nodes(Vec<SocketAddr>),
}

impl Upstreams {
    pub fn len(&self) -> usize {
        match self {
            Upstreams::Endpoints(b) => b.len(),
            Upstreams::Nodes(n) => n.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn addr(&self, i: usize) -> SocketAddr {
        match self {
            Upstreams::Endpoints(b) => b[i].addr,
            Upstreams::Nodes(n) => n[i],
        }
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        match self {
            Upstreams::Endpoints(b) => b.iter().any(|b| b.addr == addr),
            Upstreams::Nodes(n) => n.contains(&addr),
        }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        (0..self.len()).map(|i| self.addr(i)).collect()
    }
}

/// The upstreams of `target` for a client of `client`'s address family. Pure.
pub fn upstreams(
    snapshot: &Snapshot,
    target: &Target,
    client: IpAddr,
) -> Result<Upstreams, NoBackend> {
    if target.scope != Scope::NodePorts {
        return candidates(snapshot, target).map(Upstreams::Endpoints);
    }
    let service = &target.service;
    let (svc, port) = service_port(snapshot, target)?;
    let node_port = port.node_port.ok_or_else(|| NoBackend::NoNodePort {
        service: service.clone(),
        port: target.port.clone(),
    })?;
    let local = svc.external_traffic_policy == TrafficPolicy::Local;
    let allowed: Option<BTreeSet<String>> =
        local.then(|| snapshot.nodes_with_ready_endpoint(service));
    let nodes: Vec<SocketAddr> = snapshot
        .nodes
        .values()
        .filter(|n| n.ready && !n.exclude_from_lb)
        .filter(|n| allowed.as_ref().is_none_or(|a| a.contains(&n.name)))
        .filter_map(|n| {
            let same = n.addresses.iter().find(|a| a.is_ipv4() == client.is_ipv4());
            same.or(n.addresses.first())
                .map(|ip| SocketAddr::new(*ip, node_port))
        })
        .collect();
    if nodes.is_empty() {
        return Err(NoBackend::NoNodes {
            service: service.clone(),
            local,
        });
    }
    Ok(Upstreams::Nodes(nodes))
}

/// The upstreams a connection should try, in order: the chosen one first, then the next ones in
/// round-robin order (at most `attempts` in all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub backends: Vec<SocketAddr>,
    /// The first upstream came from the affinity table.
    pub sticky: bool,
    /// The Service's affinity timeout, when it asks for ClientIP affinity.
    pub affinity: Option<Duration>,
}

/// Chooses upstreams for one frontend: round-robin over the candidates (a counter per
/// frontend), or the client's remembered upstream under ClientIP session affinity.
#[derive(Debug)]
pub struct Picker {
    target: ArcSwap<Target>,
    next: AtomicUsize,
    affinity: Arc<AffinityTable>,
    attempts: usize,
}

impl Picker {
    pub fn new(target: Target, affinity: Arc<AffinityTable>, attempts: usize) -> Self {
        Self {
            target: ArcSwap::from_pointee(target),
            next: AtomicUsize::new(0),
            affinity,
            attempts: attempts.max(1),
        }
    }

    pub fn target(&self) -> Arc<Target> {
        self.target.load_full()
    }

    /// Whether connections and datagrams start with a PROXY v2 header now.
    pub fn proxy_protocol(&self) -> bool {
        self.target.load().proxy_protocol
    }

    /// Point the frontend at another target; connections already made are not affected.
    pub fn retarget(&self, target: Target) {
        self.target.store(Arc::new(target));
    }

    /// Choose upstreams for a new connection from `client` at `now`.
    pub fn pick(
        &self,
        snapshot: &Snapshot,
        client: IpAddr,
        now: Instant,
    ) -> Result<Pick, NoBackend> {
        let target = self.target.load();
        let found = upstreams(snapshot, &target, client)?;
        // Never zero: `upstreams` refuses an empty set with the reason.
        let n = found.len();
        let affinity = snapshot
            .service(&target.service)
            .and_then(|s| s.session_affinity_timeout)
            .map(|t| Duration::from_secs(u64::from(t)));
        if let Some(timeout) = affinity {
            let remembered = self.affinity.lookup(
                &target.service,
                &target.port,
                client,
                timeout,
                now,
                |addr| found.contains(addr),
            );
            if let Some(addr) = remembered {
                let rest = (0..n).map(|i| found.addr(i)).filter(|a| *a != addr);
                let backends = std::iter::once(addr)
                    .chain(rest)
                    .take(self.attempts)
                    .collect();
                return Ok(Pick {
                    backends,
                    sticky: true,
                    affinity,
                });
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let backends: Vec<SocketAddr> = (0..n.min(self.attempts))
            .map(|i| found.addr((start + i) % n))
            .collect();
        if affinity.is_some() {
            self.affinity
                .remember(&target.service, &target.port, client, backends[0], now);
        }
        Ok(Pick {
            backends,
            sticky: false,
            affinity,
        })
    }

    /// Record that `client` ended up on `backend` (after the first choice failed to connect), so
    /// that its next connections stick to the one that works.
    pub fn connected(&self, pick: &Pick, client: IpAddr, backend: SocketAddr, now: Instant) {
        if pick.affinity.is_some() && pick.backends.first() != Some(&backend) {
            let target = self.target.load();
            self.affinity
                .remember(&target.service, &target.port, client, backend, now);
        }
    }
}

#[cfg(test)]
mod tests;
