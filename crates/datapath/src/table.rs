//! The desired Service table of one node: what a datapath must serve for a snapshot, as plain
//! `Eq` data computed by one pure function, so that an implementation can diff it against the
//! table it applied last and change only what differs.
//!
//! One entry per Service that has a ClusterIP (not headless, not ExternalName), with every
//! address it is reached on (ClusterIPs, externalIPs, LoadBalancer ingress IPs, node ports),
//! its policies (traffic policies, ClientIP affinity) and, per port, the endpoints each policy
//! sends to (the terminating fallback already decided), so that a kernel datapath needs nothing
//! but this table.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_l4::{Scope, ServiceKey, Target, candidates};
use portico_model::service::TrafficPolicy;
use portico_model::{Backend, Protocol, ServiceType, Snapshot};

use crate::NodeConfig;

/// What this node serves, for one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {
    /// The generation of the snapshot it was computed from.
    pub generation: u64,
    /// This node's name: `Local` policies keep to endpoints whose `nodeName` is this.
    pub node_name: String,
    /// The addresses node ports are served on: the configured ones, or else the addresses of
    /// this node's Node object.
    pub node_ips: Vec<IpAddr>,
    pub services: BTreeMap<ServiceKey, ServiceRules>,
}

/// One Service, as a datapath programs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRules {
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.externalIPs`: reached like a LoadBalancer IP, under the external traffic policy.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// Applies to ClusterIPs.
    pub internal_policy: TrafficPolicy,
    /// Applies to node ports, externalIPs and LoadBalancer IPs.
    pub external_policy: TrafficPolicy,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    pub ports: Vec<PortRules>,
}

/// One Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRules {
    /// The port's name (empty for a single unnamed port).
    pub name: String,
    /// SCTP included: whether a datapath carries it is the datapath's business.
    pub protocol: Protocol,
    pub port: u16,
    /// Only for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// Where `Cluster` policies send: the ready endpoints, or the serving-terminating ones when
    /// none is ready. Empty: new connections are rejected.
    pub cluster_endpoints: Arc<[Backend]>,
    /// Where `Local` policies send: this node's ready endpoints, or its serving-terminating ones
    /// when none is ready. Computed only when a policy of the Service is `Local`.
    pub local_endpoints: Arc<[Backend]>,
}

impl ServiceTable {
    /// The table `snapshot` asks of the node `node`. Pure.
    pub fn of(snapshot: &Snapshot, node: &NodeConfig) -> Self {
        let node_ips = if node.node_ips.is_empty() {
            snapshot
                .nodes
                .get(&node.node_name)
                .map(|n| n.addresses.clone())
                .unwrap_or_default()
        } else {
            node.node_ips.clone()
        };
        let services = snapshot
            .services
            .iter()
            .filter(|(_, svc)| {
                !svc.headless
                    && svc.type_ != ServiceType::ExternalName
                    && !svc.cluster_ips.is_empty()
            })
            .map(|(key, svc)| {
                let local = svc.internal_traffic_policy == TrafficPolicy::Local
                    || svc.external_traffic_policy == TrafficPolicy::Local;
                let node_ports =
                    matches!(svc.type_, ServiceType::NodePort | ServiceType::LoadBalancer);
                let ports = svc
                    .ports
                    .iter()
                    .map(|p| PortRules {
                        name: p.name.clone(),
                        protocol: p.protocol,
                        port: p.port,
                        node_port: p.node_port.filter(|_| node_ports),
                        cluster_endpoints: endpoints(snapshot, key, &p.name, Scope::Cluster),
                        local_endpoints: if local {
                            endpoints(snapshot, key, &p.name, Scope::local(&node.node_name))
                        } else {
                            Arc::from([])
                        },
                    })
                    .collect();
                let rules = ServiceRules {
                    cluster_ips: svc.cluster_ips.clone(),
                    external_ips: svc.external_ips.clone(),
                    load_balancer_ips: svc.load_balancer_ingress.clone(),
                    internal_policy: svc.internal_traffic_policy,
                    external_policy: svc.external_traffic_policy,
                    affinity: svc
                        .session_affinity_timeout
                        .map(|t| Duration::from_secs(u64::from(t))),
                    ports,
                };
                (key.clone(), rules)
            })
            .collect();
        Self {
            generation: snapshot.generation,
            node_name: node.node_name.clone(),
            node_ips,
            services,
        }
    }
}

/// The endpoints of one port within `scope`, by the relay's own rule (one rule for both).
fn endpoints(snapshot: &Snapshot, key: &ServiceKey, port: &str, scope: Scope) -> Arc<[Backend]> {
    candidates(snapshot, &Target::new(key.clone(), port, scope)).unwrap_or_else(|_| Arc::from([]))
}

#[cfg(test)]
mod tests;
