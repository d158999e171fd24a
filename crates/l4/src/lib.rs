//! A reusable L4 forwarding engine: listeners on [`Frontend`]s, each sending new connections
//! (TCP) or flows (UDP) to a backend chosen from the *current* snapshot by a [`Picker`].
//!
//! The engine does not care where it listens: the proxy agent computes ClusterIP and NodePort
//! frontends, the gateway computes LoadBalancer ones, and both hand the desired set to a
//! [`Reconciler`], which starts what is new, stops what is gone and leaves the rest alone.
//!
//! ```text
//! desired: BTreeMap<Frontend, Target>  --Reconciler::reconcile-->  one task per listener
//! new connection: publisher.current() -> Picker::pick -> connect (<= 3 tries) -> copy both ways
//! ```
//! Connections run in their own tasks: stopping a listener never cuts them; only the engine's
//! shutdown token does.

mod affinity;
mod bind;
mod picker;
mod reconciler;
mod tcp;
mod udp;

pub mod lb;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use portico_model::{ObjectKey, Snapshot};
use portico_runtime::Publisher;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use affinity::AffinityTable;
pub use picker::{NoBackend, Pick, Picker, candidates};
pub use reconciler::{BindError, ListenerStatus, Plan, Reconciler, plan};

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
    /// userspace datapath does not carry.
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

/// Which endpoints a frontend may use: every usable one, or only this node's (traffic policy
/// `Local`; none there means the connection is dropped, as kube-proxy drops it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    Cluster,
    Local { node: String },
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
        }
    }
}

/// What a frontend forwards to: one port of one Service, within a scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub service: ServiceKey,
    /// The Service port's name (empty for a single unnamed port).
    pub port: String,
    pub scope: Scope,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{} ({})", self.service, self.scope)
        } else {
            write!(f, "{}:{} ({})", self.service, self.port, self.scope)
        }
    }
}

/// Tunables of the engine; the defaults are kube-proxy's userspace mode's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long one TCP connect to a backend may take.
    pub connect_timeout: Duration,
    /// How many backends a new TCP connection tries before it is given up.
    pub connect_attempts: usize,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle: Duration,
    /// At most this many UDP flows per frontend; datagrams that would open more are dropped.
    pub udp_max_flows: usize,
    /// The TCP listen backlog: the system's `net.core.somaxconn` by default.
    pub backlog: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            connect_attempts: 3,
            udp_idle: Duration::from_secs(30),
            udp_max_flows: 4096,
            backlog: portico_runtime::limits::listen_backlog(),
        }
    }
}

/// What a listener task needs.
pub(crate) struct Listener {
    pub(crate) frontend: Frontend,
    pub(crate) picker: Arc<Picker>,
    pub(crate) snapshots: Arc<Publisher<Snapshot>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) settings: Settings,
    /// Stops accepting; connections already made go on.
    pub(crate) stop: CancellationToken,
    /// Ends everything, connections included.
    pub(crate) shutdown: CancellationToken,
}

/// Per-listener counters, shown by the admin API (read live when serialized). Bounded: one set
/// per frontend.
#[derive(Debug, Default)]
pub struct Counters {
    /// TCP connections accepted, or UDP flows opened.
    pub accepted: AtomicU64,
    /// TCP connections or UDP flows open now.
    pub active: AtomicU64,
    /// New connections or flows dropped because no endpoint was usable.
    pub no_backend: AtomicU64,
    /// TCP connect attempts to a backend that failed or timed out.
    pub connect_failures: AtomicU64,
    /// UDP datagrams dropped (flow table full, socket buffer full).
    pub dropped_datagrams: AtomicU64,
}

/// Keeps `Counters::active` right however a connection task ends.
struct ActiveGuard(Arc<Counters>);

impl ActiveGuard {
    fn new(counters: Arc<Counters>) -> Self {
        counters.accepted.fetch_add(1, Relaxed);
        counters.active.fetch_add(1, Relaxed);
        Self(counters)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// The values of [`Counters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterValues {
    pub accepted: u64,
    pub active: u64,
    pub no_backend: u64,
    pub connect_failures: u64,
    pub dropped_datagrams: u64,
}

impl Counters {
    pub fn values(&self) -> CounterValues {
        CounterValues {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            no_backend: self.no_backend.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            dropped_datagrams: self.dropped_datagrams.load(Relaxed),
        }
    }
}

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}
