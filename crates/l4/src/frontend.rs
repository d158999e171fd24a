//! What a listener is: where it listens ([`Frontend`]), what it forwards to ([`Target`]: one
//! Service port, which upstreams count, whether a PROXY v2 header goes first), and the engine's
//! tunables ([`Settings`]). Everything that differs between the engine's users is here, as data.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_model::ObjectKey;
use portico_runtime::connections::ConnectionLimit;
use serde::Serialize;

/// The identity of a Service: `namespace/name`.
pub type ServiceKey = ObjectKey;

/// The transport a frontend listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The forwarding protocol for a Service port's protocol; `None` for SCTP, which the
    /// relay does not carry.
    pub fn of_service(p: portico_model::Protocol) -> Option<Self> {
        match p {
            portico_model::Protocol::TCP => Some(Protocol::Tcp),
            portico_model::Protocol::UDP => Some(Protocol::Udp),
            portico_model::Protocol::SCTP => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// Where a listener listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Frontend {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

impl Frontend {
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            addr,
            protocol: Protocol::Tcp,
        }
    }

    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            addr,
            protocol: Protocol::Udp,
        }
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.addr)
    }
}

/// Which upstreams a frontend may use.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Every usable endpoint of the Service port.
    Cluster,
    /// Only this node's endpoints (traffic policy `Local`; none there means the connection is
    /// dropped, as kube-proxy drops it).
    Local { node: String },
    /// `node:nodePort` of the ready nodes not excluded from load balancers, as a cloud load
    /// balancer sends; under `externalTrafficPolicy: Local` only the nodes with a ready local
    /// endpoint (a cloud load balancer's health check does the same).
    NodePorts,
}

impl Scope {
    pub fn local(node: impl Into<String>) -> Self {
        Scope::Local { node: node.into() }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => f.write_str("Cluster"),
            Scope::Local { node } => write!(f, "Local({node})"),
            Scope::NodePorts => f.write_str("NodePorts"),
        }
    }
}

/// What a frontend forwards to: one port of one Service, within a scope. Swapped in place when
/// it changes (the socket stays).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub service: ServiceKey,
    /// The Service port's name (empty for a single unnamed port).
    pub port: String,
    pub scope: Scope,
    /// Every TCP connection and UDP datagram towards the upstream starts with a PROXY protocol
    /// v2 header carrying the client's address.
    #[serde(skip_serializing_if = "std::ops::Not::not", rename = "proxyProtocol")]
    pub proxy_protocol: bool,
}

impl Target {
    /// A target without PROXY protocol.
    pub fn new(service: ServiceKey, port: impl Into<String>, scope: Scope) -> Self {
        Self {
            service,
            port: port.into(),
            scope,
            proxy_protocol: false,
        }
    }

    /// `namespace/name[:port]`, without the scope.
    pub fn service_port(&self) -> ServicePort<'_> {
        ServicePort(self)
    }
}

/// [`Target::service_port`].
pub struct ServicePort<'a>(&'a Target);

impl fmt::Display for ServicePort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.service)?;
        if !self.0.port.is_empty() {
            write!(f, ":{}", self.0.port)?;
        }
        Ok(())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.service_port(), self.scope)?;
        if self.proxy_protocol {
            f.write_str(" with PROXY v2")?;
        }
        Ok(())
    }
}

/// Tunables of one engine (every listener a [`Reconciler`](crate::Reconciler) owns); the
/// defaults are kube-proxy's userspace mode's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long one TCP connect to an upstream may take.
    pub connect_timeout: Duration,
    /// How many upstreams a new TCP connection tries before it is given up.
    pub connect_attempts: usize,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle: Duration,
    /// At most this many UDP flows per frontend; datagrams that would open more are dropped.
    pub udp_max_flows: usize,
    /// The TCP listen backlog: the system's `net.core.somaxconn` by default.
    pub backlog: u32,
    /// Bind with `IP_FREEBIND`: the address need not be on any interface yet (LoadBalancer
    /// EXTERNAL-IPs that an announcer answers for).
    pub freebind: bool,
    /// Open TCP connections count against this limit; at the limit the listeners stop
    /// accepting (new connections wait in the backlog). `None`: no limit.
    pub connection_limit: Option<Arc<ConnectionLimit>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            udp_idle: Duration::from_secs(30),
            udp_max_flows: 4096,
            backlog: portico_runtime::limits::listen_backlog(),
            freebind: false,
            connection_limit: None,
        }
    }
}
