//! The whole L2 side of an edge node in one call: membership gossip plus the announcer,
//! following a snapshot publisher. What `gateway` runs, and what `announce-debug` runs with a
//! fixed snapshot.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::announcer::{self, AnnounceError, AnnouncerConfig};
use super::election::Assignment;
use super::membership::{self, Alive, MembershipConfig};
use super::responder::AnnounceTiming;

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

/// Run membership and the announcer until `shutdown` (or until a responder fails). `owned`,
/// when given, receives what this node announces after every change (for the admin API).
pub async fn run_edge(
    cfg: EdgeL2Config,
    snapshots: Arc<Publisher<Snapshot>>,
    owned: Option<watch::Sender<Arc<BTreeMap<IpAddr, Assignment>>>>,
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
    let gossip = tokio::spawn(membership::run(
        MembershipConfig::new(cfg.node.clone(), cfg.peers.clone()),
        socket,
        alive_tx,
        stop.clone(),
    ));
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
