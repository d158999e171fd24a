//! The userspace datapath: which frontends this node serves for a snapshot, and the task that
//! keeps the listeners in step with every publish.
//!
//! For every Service that has a ClusterIP (not headless, not ExternalName), each TCP or UDP port
//! is served on ClusterIP:port under the internal traffic policy; NodePort and LoadBalancer
//! Services are also served on nodeIP:nodePort for each node IP under the external traffic
//! policy. `Local` policies keep to endpoints on this node.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portico_model::service::TrafficPolicy;
use portico_model::{ServiceType, Snapshot};
use portico_runtime::Publisher;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use portico_l4::{Frontend, ListenerStatus, Protocol, Reconciler, Scope, Settings, Target};

/// This node's part in the datapath.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name: `Local` traffic policies keep to endpoints whose `nodeName` is this.
    pub node_name: String,
    /// Addresses NodePorts are served on. Empty: the addresses of this node's Node object.
    pub node_ips: Vec<IpAddr>,
    /// A UDP flow with no datagram either way for this long is forgotten.
    pub udp_idle: Duration,
    /// At most this many UDP flows per frontend.
    pub udp_max_flows: usize,
    /// One TCP connect attempt to a backend may take this long.
    pub connect_timeout: Duration,
    /// Frontends that failed to bind are retried this often even without a new snapshot.
    pub retry_every: Duration,
}

impl AgentConfig {
    pub fn new(node_name: impl Into<String>, node_ips: Vec<IpAddr>) -> Self {
        let d = Settings::default();
        Self {
            node_name: node_name.into(),
            node_ips,
            udp_idle: d.udp_idle,
            udp_max_flows: d.udp_max_flows,
            connect_timeout: d.connect_timeout,
            retry_every: Duration::from_secs(5),
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

    fn scope(&self, policy: TrafficPolicy) -> Scope {
        match policy {
            TrafficPolicy::Cluster => Scope::Cluster,
            TrafficPolicy::Local => Scope::local(self.node_name.clone()),
        }
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
    let node_ips: Vec<IpAddr> = if cfg.node_ips.is_empty() {
        snapshot
            .nodes
            .get(&cfg.node_name)
            .map(|n| n.addresses.clone())
            .unwrap_or_default()
    } else {
        cfg.node_ips.clone()
    };
    let mut desired = Desired::default();
    for (key, svc) in &snapshot.services {
        if svc.headless || svc.type_ == ServiceType::ExternalName || svc.cluster_ips.is_empty() {
            continue;
        }
        let node_ports = matches!(svc.type_, ServiceType::NodePort | ServiceType::LoadBalancer);
        for port in &svc.ports {
            let Some(protocol) = Protocol::of_service(port.protocol) else {
                debug!(service = %key, port = %port.name, protocol = %port.protocol, "protocol not forwarded in user space");
                continue;
            };
            let internal = Target::new(
                key.clone(),
                port.name.clone(),
                cfg.scope(svc.internal_traffic_policy),
            );
            for ip in &svc.cluster_ips {
                let frontend = Frontend {
                    addr: SocketAddr::new(*ip, port.port),
                    protocol,
                };
                desired.add(frontend, internal.clone());
            }
            if let (true, Some(node_port)) = (node_ports, port.node_port) {
                let external = Target::new(
                    key.clone(),
                    port.name.clone(),
                    cfg.scope(svc.external_traffic_policy),
                );
                for ip in &node_ips {
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
pub struct Datapath {
    cfg: AgentConfig,
    status: Arc<Publisher<Status>>,
}

impl Datapath {
    pub fn new(cfg: AgentConfig) -> Self {
        Self {
            cfg,
            status: Publisher::new(Status::default()),
        }
    }

    /// The status, republished after every reconcile; the listeners' counters in it are live.
    pub fn status(&self) -> Arc<Publisher<Status>> {
        self.status.clone()
    }

    /// Reconcile the listeners on every publish until `shutdown`; then close them all (open
    /// connections end with `shutdown` too).
    pub async fn run(self, snapshots: Arc<Publisher<Snapshot>>, shutdown: CancellationToken) {
        let mut versions = snapshots.subscribe();
        let mut reconciler =
            Reconciler::new(snapshots.clone(), self.cfg.settings(), shutdown.clone());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = snapshots.ready() => {}
        }
        let mut retry = tokio::time::interval(self.cfg.retry_every);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_conflicts: Vec<Conflict> = Vec::new();
        loop {
            versions.borrow_and_update();
            let snapshot = snapshots.current();
            let desired = desired_frontends(&snapshot, &self.cfg);
            if desired.conflicts != last_conflicts {
                for c in &desired.conflicts {
                    warn!(frontend = %c.frontend, kept = %c.kept, refused = %c.refused, "two Services want one frontend");
                }
                last_conflicts = desired.conflicts.clone();
            }
            let errors = reconciler.reconcile(&desired.frontends);
            self.status.publish(Status {
                generation: snapshot.generation,
                listening: reconciler.status(),
                bind_errors: errors
                    .into_iter()
                    .map(|e| BindFailure {
                        error: e.source.to_string(),
                        frontend: e.frontend,
                        target: e.target,
                    })
                    .collect(),
                conflicts: desired.conflicts,
            });
            debug!(
                generation = snapshot.generation,
                listeners = reconciler.current().len(),
                "datapath reconciled"
            );
            drop(snapshot);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = versions.changed() => if changed.is_err() { break },
                _ = retry.tick() => {
                    // Retry failed binds, refresh counters and expire affinity even when quiet.
                }
            }
        }
        reconciler.stop_all().await;
    }
}

/// Run the userspace datapath for this node until `shutdown`.
pub async fn run(
    cfg: AgentConfig,
    publisher: Arc<Publisher<Snapshot>>,
    shutdown: CancellationToken,
) {
    Datapath::new(cfg).run(publisher, shutdown).await
}

#[cfg(test)]
mod tests;
