//! Portico's Service datapath: which Service frontends (ClusterIP, NodePort, LoadBalancer ingress
//! IPs, externalIPs) a node serves, and the implementation that forwards them.
//!
//! - [`userspace`]: the frontends served by the one L4 relay (`portico-l4`), reconciled on every
//!   publish (kube-proxy's old userspace mode, without iptables).
//! - [`metrics`]: the datapath's counters and gauges.

pub mod metrics;
pub mod userspace;

pub use userspace::{AgentConfig, Datapath};
