//! `gateway announce-debug`: announce fixed IPs on given interfaces, with the real election,
//! membership gossip and responder, but no cluster. For labs and network-namespace tests:
//!
//! ```text
//! gateway announce-debug --iface eth0 --ip 192.0.2.10 --node edge-a \
//!     --gossip-listen 10.0.0.11:7946 --peer 10.0.0.12:7946
//! ```
//! Every IP is treated as one LoadBalancer Service in one pool advertised on every node, so
//! the nodes that see each other elect one owner per IP exactly as in a cluster.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use portico_model::metallb::{IPAddressPool, IPAddressPoolSpec, L2Advertisement};
use portico_model::state::Object;
use portico_model::{ClusterState, Origin, Snapshot, translate};
use portico_runtime::publisher::Publisher;
use tokio_util::sync::CancellationToken;

use crate::l2::edge::{EdgeL2Config, run_edge};
use crate::l2::responder::AnnounceTiming;

#[derive(clap::Args, Clone, Debug)]
pub struct AnnounceDebugArgs {
    /// Interface to answer ARP/NDP on (repeatable).
    #[arg(long = "iface", required = true)]
    pub interfaces: Vec<String>,
    /// IP to announce (repeatable).
    #[arg(long = "ip", required = true)]
    pub ips: Vec<IpAddr>,
    /// This node's name in the election.
    #[arg(long, default_value = "edge")]
    pub node: String,
    /// Where to receive membership heartbeats.
    #[arg(long, default_value = "0.0.0.0:7946")]
    pub gossip_listen: SocketAddr,
    /// Another edge node's gossip address (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Gratuitous announcements per newly owned IP.
    #[arg(long, default_value_t = 5)]
    pub repeats: u32,
    /// Milliseconds between announcements.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

pub use crate::l2::edge::EdgeL2Error as DebugError;

/// The snapshot `announce-debug` announces: one LoadBalancer Service holding `ips`, one pool
/// with exactly those addresses, one L2Advertisement for every node.
pub fn snapshot_for(ips: &[IpAddr]) -> Snapshot {
    let mut state = ClusterState::default();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some("portico-system".into()),
        ..Default::default()
    };
    let addresses = ips
        .iter()
        .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
        .collect();
    let pool = IPAddressPool {
        metadata: meta("announce-debug"),
        spec: IPAddressPoolSpec {
            addresses,
            ..Default::default()
        },
        status: None,
    };
    let adv = L2Advertisement {
        metadata: meta("announce-debug"),
        spec: Default::default(),
    };
    let svc = core::Service {
        metadata: meta("announce-debug"),
        spec: Some(core::ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| core::LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }),
    };
    state.insert(Object::IPAddressPool(pool), Origin::default());
    state.insert(Object::L2Advertisement(adv), Origin::default());
    state.insert(Object::Service(svc), Origin::default());
    translate(&state, 1)
}

/// Run until `shutdown`.
pub async fn run(args: AnnounceDebugArgs, shutdown: CancellationToken) -> Result<(), DebugError> {
    let snapshots = Publisher::new(Snapshot::default());
    snapshots.publish(snapshot_for(&args.ips));
    let cfg = EdgeL2Config {
        node: args.node,
        interfaces: args.interfaces,
        gossip_listen: args.gossip_listen,
        peers: args.peers,
        discover_port: None,
        timing: AnnounceTiming {
            repeats: args.repeats,
            interval: Duration::from_millis(args.interval_ms),
        },
    };
    run_edge(cfg, snapshots, None, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::election::owned_by;

    #[test]
    fn the_debug_snapshot_is_announced_by_exactly_one_member() {
        let ips: Vec<IpAddr> = vec![
            "192.0.2.10".parse().expect("literal"),
            "2001:db8::10".parse().expect("literal"),
        ];
        let snap = snapshot_for(&ips);
        assert!(snap.errors.is_empty(), "{:?}", snap.errors);
        let alive: BTreeSet<String> = ["edge-a".to_owned(), "edge-b".to_owned()].into();
        let a = owned_by(&snap, "edge-a", &alive);
        let b = owned_by(&snap, "edge-b", &alive);
        for ip in &ips {
            assert!(
                a.contains_key(ip) ^ b.contains_key(ip),
                "{ip} has exactly one owner"
            );
        }
        let alone: BTreeSet<String> = ["edge-a".to_owned()].into();
        assert_eq!(
            owned_by(&snap, "edge-a", &alone).len(),
            2,
            "a lone node owns everything"
        );
    }
}
