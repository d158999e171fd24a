//! The userspace datapath: the frontends this node serves for a [`ServiceTable`], served by
//! the one L4 relay (`portico-l4`), reconciled at every sync.
//!
//! For every Service in the table, each TCP or UDP port is served on ClusterIP:port under the
//! internal traffic policy; NodePort and LoadBalancer Services are also served on
//! nodeIP:nodePort for each node IP under the external traffic policy. `Local` policies keep
//! to endpoints on this node. SCTP is not carried; LoadBalancer IPs are left to the gateway's
//! LoadBalancer listeners and externalIPs are not served (see the crate's documentation).
//! Endpoints are picked per connection from the current snapshot, not from the table.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_model::Snapshot;
use portico_model::service::TrafficPolicy;
use portico_runtime::Publisher;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use portico_l4::{Frontend, ListenerStatus, Protocol, Reconciler, Scope, Settings, Target};

use crate::table::ServiceTable;
use crate::{Datapath, NodeConfig};

/// The userspace datapath's configuration: the node, and the relay's tunables.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node: NodeConfig,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle: Duration,
    /// At most this many UDP flows per frontend.
    pub udp_max_flows: usize,
    /// One TCP connect attempt to a backend may take this long.
    pub connect_timeout: Duration,
}

impl AgentConfig {
    pub fn new(node_name: impl Into<String>, node_ips: Vec<std::net::IpAddr>) -> Self {
        let d = Settings::default();
        Self {
            node: NodeConfig::new(node_name, node_ips),
            udp_idle: d.udp_idle,
            udp_max_flows: d.udp_max_flows,
            connect_timeout: d.connect_timeout,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            connect_timeout: self.connect_timeout,
            udp_idle: self.udp_idle,
            udp_max_flows: self.udp_max_flows,
            ..Settings::default()
        }
    }
}

/// The relay's scope for a traffic policy on `node`.
fn scope(policy: TrafficPolicy, node: &str) -> Scope {
    match policy {
        TrafficPolicy::Cluster => Scope::Cluster,
        TrafficPolicy::Local => Scope::local(node),
    }
}

/// Two Services asking for the same frontend; the first (in key order) keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub frontend: Frontend,
    pub kept: Target,
    pub refused: Target,
}

/// The frontends this node should serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub frontends: BTreeMap<Frontend, Target>,
    pub conflicts: Vec<Conflict>,
}

impl Desired {
    fn add(&mut self, frontend: Frontend, target: Target) {
        match self.frontends.get(&frontend) {
            Some(kept) if *kept != target => {
                self.conflicts.push(Conflict {
                    frontend,
                    kept: kept.clone(),
                    refused: target,
                });
            }
            Some(_) => {}
            None => drop(self.frontends.insert(frontend, target)),
        }
    }
}

/// The frontends for `snapshot` on this node. Pure.
pub fn desired_frontends(snapshot: &Snapshot, cfg: &AgentConfig) -> Desired {
    frontends(&ServiceTable::of(snapshot, &cfg.node))
}

/// The frontends the relay serves for `table`. Pure.
pub fn frontends(table: &ServiceTable) -> Desired {
    let mut desired = Desired::default();
    for (key, svc) in &table.services {
        for port in &svc.ports {
            let Some(protocol) = Protocol::of_service(port.protocol) else {
                debug!(service = %key, port = %port.name, protocol = %port.protocol, "protocol not forwarded in user space");
                continue;
            };
            let internal = Target::new(
                key.clone(),
                port.name.clone(),
                scope(svc.internal_policy, &table.node_name),
            );
            for ip in &svc.cluster_ips {
                let frontend = Frontend {
                    addr: SocketAddr::new(*ip, port.port),
                    protocol,
                };
                desired.add(frontend, internal.clone());
            }
            if let Some(node_port) = port.node_port {
                let external = Target::new(
                    key.clone(),
                    port.name.clone(),
                    scope(svc.external_policy, &table.node_name),
                );
                for ip in &table.node_ips {
                    desired.add(
                        Frontend {
                            addr: SocketAddr::new(*ip, node_port),
                            protocol,
                        },
                        external.clone(),
                    );
                }
            }
        }
    }
    desired
}

/// A frontend that could not be bound, for the admin API.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BindFailure {
    pub frontend: Frontend,
    pub target: Target,
    pub error: String,
}

/// What the datapath is doing, for the admin API.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The snapshot generation last reconciled.
    pub generation: u64,
    pub listening: Vec<ListenerStatus>,
    pub bind_errors: Vec<BindFailure>,
    pub conflicts: Vec<Conflict>,
}

/// The userspace datapath of one node.
pub struct UserspaceDatapath {
    cfg: AgentConfig,
    listeners: Reconciler,
    status: Arc<Publisher<Status>>,
    last_conflicts: Vec<Conflict>,
}

impl UserspaceDatapath {
    /// Listeners pick endpoints from `snapshots` per connection; `shutdown` ends listeners
    /// *and* connections.
    pub fn new(
        cfg: AgentConfig,
        snapshots: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) -> Self {
        let listeners = Reconciler::new(snapshots, cfg.settings(), shutdown);
        Self {
            cfg,
            listeners,
            status: Publisher::new(Status::default()),
            last_conflicts: Vec::new(),
        }
    }

    /// The status, republished after every sync; the listeners' counters in it are live.
    pub fn status(&self) -> Arc<Publisher<Status>> {
        self.status.clone()
    }
}

impl Datapath for UserspaceDatapath {
    /// Bind failures are no error of the sync: they are in the status and retried.
    type Error = Infallible;

    fn node(&self) -> &NodeConfig {
        &self.cfg.node
    }

    async fn apply(&mut self, desired: &ServiceTable) -> Result<(), Infallible> {
        let Desired {
            frontends,
            conflicts,
        } = frontends(desired);
        if conflicts != self.last_conflicts {
            for c in &conflicts {
                warn!(frontend = %c.frontend, kept = %c.kept, refused = %c.refused, "two Services want one frontend");
            }
            self.last_conflicts.clone_from(&conflicts);
        }
        let errors = self.listeners.reconcile(&frontends);
        self.status.publish(Status {
            generation: desired.generation,
            listening: self.listeners.status(),
            bind_errors: errors
                .into_iter()
                .map(|e| BindFailure {
                    error: e.source.to_string(),
                    frontend: e.frontend,
                    target: e.target,
                })
                .collect(),
            conflicts,
        });
        debug!(
            generation = desired.generation,
            listeners = frontends.len(),
            "userspace datapath reconciled"
        );
        Ok(())
    }

    async fn close(mut self) {
        self.listeners.stop_all().await;
    }
}

#[cfg(test)]
mod tests;
