//! LoadBalancer listeners: for every LoadBalancer Service with an assigned EXTERNAL-IP, the
//! gateway listens on `EXTERNAL-IP:port` (TCP and UDP) and forwards, as a cloud load balancer
//! does, either to the Service's ready endpoints (`--l4-upstream endpoints`) or to the nodes'
//! NodePorts (`--l4-upstream nodeport`).
//!
//! - `sessionAffinity: ClientIP` keeps a client on one upstream (the proxy agent's
//!   [`AffinityTable`](crate::AffinityTable), beside the snapshot).
//! - `externalTrafficPolicy: Local` in nodeport mode sends only to nodes with a ready local
//!   endpoint (a cloud load balancer's health check does the same); in endpoints mode traffic
//!   goes straight to the endpoints, so the question does not arise.
//! - With PROXY protocol v2 (globally, or per Service with the annotation
//!   `portico.dev/proxy-protocol: v2`; `none` turns it off) every TCP connection and UDP
//!   datagram towards the upstream starts with a header carrying the client's address.
//!
//! Sockets are bound with `IP_FREEBIND`, so an EXTERNAL-IP need not be on any interface to be
//! bound. For traffic to that IP to be *delivered* to the listener, the host must treat the
//! pools as local without owning them on a NIC, e.g. `ip route add local 192.0.2.0/24 dev lo`
//! together with `net.ipv4.conf.all.arp_ignore=1` so that only the announcer answers ARP (the
//! same "strict ARP" that kube-proxy needs under MetalLB). Addresses in 127.0.0.0/8 work as is.
//!
//! Listeners are reconciled against each published snapshot ([`L4::run`]): new frontends are
//! bound before gone ones are closed, a changed target is swapped in place, and open
//! connections go on.

mod driver;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use portico_model::{ServiceType, Snapshot};
use tracing::debug;

use crate::frontend::{Frontend, Protocol, Scope, Settings, Target};

pub use driver::{L4, ListenerView};

/// The Service annotation that turns PROXY protocol v2 on (`v2`) or off (`none`) per Service.
pub const PROXY_PROTOCOL_ANNOTATION: &str = "portico.dev/proxy-protocol";

/// Where LoadBalancer traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Upstream {
    /// Straight to the Service's ready endpoints.
    #[default]
    Endpoints,
    /// To `node:nodePort` of the ready nodes, as a cloud load balancer does.
    NodePort,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--l4-upstream: {0:?} is not one of endpoints, nodeport")]
pub struct InvalidUpstream(pub String);

impl FromStr for Upstream {
    type Err = InvalidUpstream;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "endpoints" => Ok(Upstream::Endpoints),
            "nodeport" => Ok(Upstream::NodePort),
            other => Err(InvalidUpstream(other.to_owned())),
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Upstream::Endpoints => "endpoints",
            Upstream::NodePort => "nodeport",
        })
    }
}

#[derive(Clone, Debug)]
pub struct L4Config {
    pub upstream: Upstream,
    /// Send PROXY protocol v2 to upstreams unless a Service's annotation says `none`.
    pub proxy_protocol: bool,
    pub connect_timeout: Duration,
    /// Upstreams a new TCP connection tries before it is reset.
    pub connect_attempts: usize,
    /// A UDP flow silent for this long is forgotten.
    pub udp_idle: Duration,
    /// At most this many UDP flows per listener.
    pub udp_max_flows: usize,
    /// The TCP listen backlog: the system's `net.core.somaxconn` by default.
    pub backlog: u32,
    /// `--max-connections`, shared with the Ingress listeners: open TCP connections count
    /// against it; at the limit the listeners stop accepting. `None`: no limit.
    pub connection_limit: Option<std::sync::Arc<portico_runtime::connections::ConnectionLimit>>,
}

impl Default for L4Config {
    fn default() -> Self {
        Self {
            upstream: Upstream::Endpoints,
            proxy_protocol: false,
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            udp_idle: Duration::from_secs(30),
            udp_max_flows: 4096,
            backlog: portico_runtime::limits::listen_backlog(),
            connection_limit: None,
        }
    }
}

impl L4Config {
    /// The engine's settings: FREEBIND listeners (an EXTERNAL-IP need not be on an interface).
    pub fn settings(&self) -> Settings {
        Settings {
            connect_timeout: self.connect_timeout,
            connect_attempts: self.connect_attempts,
            udp_idle: self.udp_idle,
            udp_max_flows: self.udp_max_flows,
            backlog: self.backlog,
            freebind: true,
            connection_limit: self.connection_limit.clone(),
        }
    }

    /// Which upstreams a LoadBalancer frontend uses.
    fn scope(&self) -> Scope {
        match self.upstream {
            Upstream::Endpoints => Scope::Cluster,
            Upstream::NodePort => Scope::NodePorts,
        }
    }
}

/// The listeners `snap` asks for: one per EXTERNAL-IP, port and protocol of every
/// LoadBalancer Service (SCTP is not carried). When two Services claim the same address, port
/// and protocol, the first by namespace/name keeps it. Pure.
pub fn desired(snap: &Snapshot, cfg: &L4Config) -> BTreeMap<Frontend, Target> {
    let mut out = BTreeMap::new();
    for svc in snap.services.values() {
        if svc.type_ != ServiceType::LoadBalancer {
            continue;
        }
        let proxy_protocol = match svc
            .annotations
            .get(PROXY_PROTOCOL_ANNOTATION)
            .map(String::as_str)
        {
            Some("v2") => true,
            Some("none") => false,
            _ => cfg.proxy_protocol,
        };
        for ip in &svc.load_balancer_ingress {
            for port in &svc.ports {
                let Some(protocol) = Protocol::of_service(port.protocol) else {
                    continue;
                };
                let frontend = Frontend {
                    addr: (*ip, port.port).into(),
                    protocol,
                };
                let target = Target {
                    service: svc.key.clone(),
                    port: port.name.clone(),
                    scope: cfg.scope(),
                    proxy_protocol,
                };
                if let Some(first) = out.get(&frontend) {
                    debug!(%frontend, kept = %first, refused = %target, "address shared by two Services");
                    continue;
                }
                out.insert(frontend, target);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
