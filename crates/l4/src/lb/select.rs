//! Which upstream a new connection or UDP flow goes to.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{AffinityTable, NoBackend, Scope, Target, candidates};
use portico_model::service::TrafficPolicy;
use portico_model::{ObjectKey, Snapshot};
use tokio::time::Instant;

use super::{L4Target, Upstream};

/// Why a new connection has nowhere to go (it is reset, or the datagram dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoUpstream {
    #[error(transparent)]
    Endpoints(#[from] NoBackend),
    #[error("Service {service} port {port:?} has no nodePort")]
    NoNodePort { service: ObjectKey, port: String },
    #[error("Service {service}: no ready node{}", if *.local { " with a ready local endpoint (externalTrafficPolicy Local)" } else { "" })]
    NoNodes { service: ObjectKey, local: bool },
}

/// Every upstream `target` may use now, in a stable order. Pure.
pub fn upstreams(
    snap: &Snapshot,
    target: &L4Target,
    mode: Upstream,
    family: IpAddr,
) -> Result<Vec<SocketAddr>, NoUpstream> {
    let t = Target {
        service: target.service.clone(),
        port: target.port.clone(),
        scope: Scope::Cluster,
    };
    match mode {
        Upstream::Endpoints => Ok(candidates(snap, &t)?.iter().map(|b| b.addr).collect()),
        Upstream::NodePort => {
            let svc = snap
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
            let node_port = port.node_port.ok_or_else(|| NoUpstream::NoNodePort {
                service: target.service.clone(),
                port: target.port.clone(),
            })?;
            let local = svc.external_traffic_policy == TrafficPolicy::Local;
            let allowed: Option<BTreeSet<String>> =
                local.then(|| snap.nodes_with_ready_endpoint(&target.service));
            let out: Vec<SocketAddr> = snap
                .nodes
                .values()
                .filter(|n| n.ready && !n.exclude_from_lb)
                .filter(|n| allowed.as_ref().is_none_or(|a| a.contains(&n.name)))
                .filter_map(|n| {
                    let same = n.addresses.iter().find(|a| a.is_ipv4() == family.is_ipv4());
                    same.or(n.addresses.first())
                        .map(|ip| SocketAddr::new(*ip, node_port))
                })
                .collect();
            if out.is_empty() {
                return Err(NoUpstream::NoNodes {
                    service: target.service.clone(),
                    local,
                });
            }
            Ok(out)
        }
    }
}

/// Round-robin over the upstreams, or the client's remembered one under ClientIP affinity.
#[derive(Debug)]
pub struct Selector {
    next: AtomicUsize,
    affinity: Arc<AffinityTable>,
    attempts: usize,
}

/// The upstreams a connection should try, in order, and whether affinity applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub upstreams: Vec<SocketAddr>,
    pub affinity: Option<Duration>,
}

impl Selector {
    pub fn new(affinity: Arc<AffinityTable>, attempts: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            affinity,
            attempts: attempts.max(1),
        }
    }

    pub fn choose(
        &self,
        snap: &Snapshot,
        target: &L4Target,
        mode: Upstream,
        client: IpAddr,
        now: Instant,
    ) -> Result<Choice, NoUpstream> {
        let all = upstreams(snap, target, mode, client)?;
        let n = all.len();
        let affinity = snap
            .service(&target.service)
            .and_then(|s| s.session_affinity_timeout)
            .map(|t| Duration::from_secs(u64::from(t)));
        if let Some(timeout) = affinity {
            let remembered =
                self.affinity
                    .lookup(&target.service, &target.port, client, timeout, now, |a| {
                        all.contains(&a)
                    });
            if let Some(first) = remembered {
                let rest = all.iter().copied().filter(|a| *a != first);
                return Ok(Choice {
                    upstreams: std::iter::once(first)
                        .chain(rest)
                        .take(self.attempts)
                        .collect(),
                    affinity,
                });
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let upstreams: Vec<SocketAddr> = (0..n.min(self.attempts))
            .map(|i| all[(start + i) % n])
            .collect();
        if affinity.is_some() {
            self.affinity
                .remember(&target.service, &target.port, client, upstreams[0], now);
        }
        Ok(Choice {
            upstreams,
            affinity,
        })
    }

    /// The connection ended up on `upstream` (maybe not the first choice): remember it.
    pub fn connected(
        &self,
        target: &L4Target,
        choice: &Choice,
        client: IpAddr,
        upstream: SocketAddr,
        now: Instant,
    ) {
        if choice.affinity.is_some() && choice.upstreams.first() != Some(&upstream) {
            self.affinity
                .remember(&target.service, &target.port, client, upstream, now);
        }
    }
}
