//! Portico's Service datapath: which Service frontends (ClusterIP, NodePort, LoadBalancer
//! ingress IPs, externalIPs) a node serves, and the implementations that serve them.
//!
//! ```text
//! snapshot --ServiceTable::of (pure)--> desired ServiceTable --Datapath::apply--> served
//! ```
//! - [`table`]: the desired state, plain `Eq` data computed from a snapshot alone.
//! - [`Datapath`]: the seam. An implementation keeps what it applied in memory and applies only
//!   the difference; [`Datapath::run`] calls it for every publish, at most once per
//!   `min_sync_period` and at least once per `sync_period` (to retry what failed).
//! - [`userspace`]: frontends served by the one L4 relay (`portico-l4`), kube-proxy's old
//!   userspace mode without iptables. The only [`Kind`] today; an nftables datapath (one table
//!   per family, the diff per sync in one transaction) is the next.
//! - [`metrics`]: the userspace datapath's counters and gauges.
//!
//! ## LoadBalancer IPs: the gateway's listeners are not part of this table's serving
//! The table *lists* every Service's LoadBalancer ingress IPs and externalIPs, because a kernel
//! datapath programs them as kube-proxy does (DNAT on the node that receives the packet).
//! The gateway's LoadBalancer listeners (`portico_l4::lb`) are a separate user of the relay,
//! not a [`Datapath`]: they are the *load balancer* in front of the nodes (what a cloud
//! provides), with what no datapath rule can do: FREEBIND sockets on addresses the announcer
//! answers for, PROXY protocol v2 towards upstreams, `--l4-upstream nodeport` (a hop to the
//! nodes' NodePorts), and `--max-connections` shared with the Ingress listeners. The userspace
//! datapath therefore serves ClusterIPs and node ports only, as before, and leaves the
//! LoadBalancer IPs to those listeners (binding them twice would fail); externalIPs are listed
//! but not served in user space. An nftables datapath must likewise skip the LoadBalancer IPs
//! the gateway proxies (`ipMode: Proxy` in Kubernetes terms) once the model carries `ipMode`;
//! it will also need `healthCheckNodePort`, which the model does not carry yet.

pub mod metrics;
mod sync;
pub mod table;
pub mod userspace;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use portico_model::Snapshot;
use portico_runtime::Publisher;
use tokio_util::sync::CancellationToken;

pub use table::ServiceTable;
pub use userspace::{AgentConfig, UserspaceDatapath};

/// The node a datapath serves, and how often it syncs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's name: `Local` traffic policies keep to endpoints whose `nodeName` is this.
    pub node_name: String,
    /// Addresses NodePorts are served on. Empty: the addresses of this node's Node object.
    pub node_ips: Vec<IpAddr>,
    /// Apply at most once per this period (bursts of publishes are applied as one); zero:
    /// apply every publish at once.
    pub min_sync_period: Duration,
    /// Apply at least once per this period even without a publish (retry what failed).
    pub sync_period: Duration,
}

impl NodeConfig {
    pub fn new(node_name: impl Into<String>, node_ips: Vec<IpAddr>) -> Self {
        Self {
            node_name: node_name.into(),
            node_ips,
            min_sync_period: Duration::ZERO,
            sync_period: Duration::from_secs(5),
        }
    }
}

/// A Service datapath: serves the desired [`ServiceTable`] of this node.
pub trait Datapath: Send + Sized + 'static {
    /// A failure of one apply; logged, and the next sync tries again.
    type Error: std::error::Error + Send + Sync + 'static;

    fn node(&self) -> &NodeConfig;

    /// Serve `desired`, changing only what differs from what was applied last (kept in memory,
    /// never re-read from the kernel). What could not be applied is tried again at the next
    /// call.
    fn apply(
        &mut self,
        desired: &ServiceTable,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stop serving; called once, at shutdown.
    fn close(self) -> impl Future<Output = ()> + Send;

    /// Apply the table of every publish of `snapshots` until `shutdown`, then close.
    fn run(
        self,
        snapshots: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send {
        sync::run(self, snapshots, shutdown)
    }
}

/// Which datapath implementation serves the Services (`--datapath`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// The L4 relay in user space ([`UserspaceDatapath`]).
    #[default]
    Userspace,
}

/// A `--datapath` value that names no implementation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a datapath; the one there is: userspace")]
pub struct UnknownDatapath(pub String);

impl FromStr for Kind {
    type Err = UnknownDatapath;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "userspace" => Ok(Kind::Userspace),
            other => Err(UnknownDatapath(other.to_owned())),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Userspace => "userspace",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datapath_kind_parses_with_a_clear_error() {
        assert_eq!("userspace".parse::<Kind>(), Ok(Kind::Userspace));
        assert_eq!(Kind::Userspace.to_string(), "userspace");
        let e = "nftables".parse::<Kind>().expect_err("not there yet");
        assert_eq!(
            e.to_string(),
            "\"nftables\" is not a datapath; the one there is: userspace"
        );
    }
}
