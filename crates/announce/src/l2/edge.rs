//! The whole L2 side of an edge node in one call: membership gossip plus the announcer,
//! following a snapshot publisher. What `gateway` runs, and what `announce-debug` runs with a
//! fixed snapshot.

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use portico_model::Snapshot;
use portico_model::selector::label_selector_matches;
use portico_runtime::publisher::Publisher;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::announcer::{self, AnnounceError, AnnouncerConfig};
use super::responder::AnnounceTiming;
use crate::announcement::Announcements;
use crate::membership::{self, Alive, MembershipConfig};

#[derive(Clone, Debug)]
pub struct EdgeL2Config {
    /// This node's name (the Node object's name in kube mode).
    pub node: String,
    /// Interfaces to answer ARP/NDP on.
    pub interfaces: Vec<String>,
    /// Where membership heartbeats are received.
    pub gossip_listen: SocketAddr,
    /// The other edge nodes' gossip addresses.
    pub peers: Vec<SocketAddr>,
    /// Also send heartbeats to this port on every Node (from the snapshot) that an
    /// L2Advertisement allows to announce: peer discovery in kube mode.
    pub discover_port: Option<u16>,
    pub timing: AnnounceTiming,
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeL2Error {
    #[error("cannot bind the membership socket on {addr}")]
    Gossip {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Announce(#[from] AnnounceError),
}

/// Gossip addresses of the other Nodes that may announce: those matching the `nodeSelectors`
/// of some L2Advertisement (all Nodes when an advertisement has none) and not excluded from
/// load balancers, at their first address, on `port`. Pure.
pub fn discovered_peers(snap: &Snapshot, me: &str, port: u16) -> Vec<SocketAddr> {
    let selectors: Vec<&[LabelSelector]> = snap
        .l2_advertisements
        .values()
        .map(|a| a.spec.node_selectors.as_deref().unwrap_or_default())
        .collect();
    snap.nodes
        .values()
        .filter(|n| n.name != me && !n.exclude_from_lb)
        .filter(|n| {
            selectors.iter().any(|sel| {
                sel.is_empty()
                    || sel
                        .iter()
                        .any(|s| label_selector_matches(s, Some(&n.labels)))
            })
        })
        .filter_map(|n| n.addresses.first().map(|ip| SocketAddr::new(*ip, port)))
        .collect()
}

/// Run membership and the announcer until `shutdown` (or until a responder fails). `owned`,
/// when given, receives what this node announces after every change (for the admin API).
pub async fn run_edge(
    cfg: EdgeL2Config,
    snapshots: Arc<Publisher<Snapshot>>,
    owned: Option<watch::Sender<Arc<Announcements>>>,
    shutdown: CancellationToken,
) -> Result<(), EdgeL2Error> {
    let socket =
        UdpSocket::bind(cfg.gossip_listen)
            .await
            .map_err(|source| EdgeL2Error::Gossip {
                addr: cfg.gossip_listen,
                source,
            })?;
    let stop = shutdown.child_token();
    let (alive_tx, alive_rx) = watch::channel(Alive::default());
    let (peers_tx, peers_rx) = watch::channel(Arc::<[SocketAddr]>::from([]));
    let gossip = tokio::spawn(membership::run_with_discovery(
        MembershipConfig::new(cfg.node.clone(), cfg.peers.clone()),
        peers_rx,
        socket,
        alive_tx,
        stop.clone(),
    ));
    if let Some(port) = cfg.discover_port {
        let (snapshots, me, stop) = (snapshots.clone(), cfg.node.clone(), stop.clone());
        tokio::spawn(async move {
            let mut versions = snapshots.subscribe();
            loop {
                let found: Arc<[SocketAddr]> =
                    discovered_peers(&snapshots.current(), &me, port).into();
                peers_tx.send_if_modified(|cur| {
                    let changed = **cur != *found;
                    *cur = found.clone();
                    changed
                });
                tokio::select! {
                    () = stop.cancelled() => break,
                    r = versions.changed() => if r.is_err() { break },
                }
            }
        });
    }
    let announcer_cfg = AnnouncerConfig {
        node: cfg.node,
        interfaces: cfg.interfaces,
        timing: cfg.timing,
    };
    let result = announcer::run(announcer_cfg, snapshots, alive_rx, owned, stop.clone()).await;
    stop.cancel();
    if let Err(e) = gossip.await {
        warn!(error = %e, "membership task ended abnormally");
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portico_model::ObjectKey;
    use portico_model::metallb::{L2Advertisement, L2AdvertisementSpec};
    use portico_model::snapshot::Node;

    use super::*;

    fn node(name: &str, ip: &str, labels: &[(&str, &str)], exclude: bool) -> (String, Arc<Node>) {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let addresses = vec![ip.parse().expect("literal")];
        (
            name.into(),
            Arc::new(Node {
                name: name.into(),
                labels,
                addresses,
                ready: true,
                exclude_from_lb: exclude,
            }),
        )
    }

    #[test]
    fn peers_are_the_other_nodes_an_advertisement_allows() {
        let mut snap = Snapshot::default();
        snap.nodes.extend([
            node("edge-a", "10.0.0.1", &[("edge", "true")], false),
            node("edge-b", "10.0.0.2", &[("edge", "true")], false),
            node("edge-c", "10.0.0.3", &[("edge", "true")], true),
            node("worker", "10.0.0.9", &[], false),
        ]);
        assert!(
            discovered_peers(&snap, "edge-a", 7946).is_empty(),
            "no advertisement, nobody announces"
        );
        let sel = LabelSelector {
            match_labels: Some([("edge".to_owned(), "true".to_owned())].into()),
            match_expressions: None,
        };
        let adv = L2Advertisement {
            metadata: Default::default(),
            spec: L2AdvertisementSpec {
                node_selectors: Some(vec![sel]),
                ..Default::default()
            },
        };
        snap.l2_advertisements
            .insert(ObjectKey::new("ns", "edges"), Arc::new(adv));
        let sa = |s: &str| -> SocketAddr { s.parse().expect("literal") };
        assert_eq!(
            discovered_peers(&snap, "edge-a", 7946),
            vec![sa("10.0.0.2:7946")]
        );
        let all = L2Advertisement {
            metadata: Default::default(),
            spec: L2AdvertisementSpec::default(),
        };
        snap.l2_advertisements
            .insert(ObjectKey::new("ns", "all"), Arc::new(all));
        assert_eq!(
            discovered_peers(&snap, "edge-a", 7946),
            vec![sa("10.0.0.2:7946"), sa("10.0.0.9:7946")]
        );
    }
}
