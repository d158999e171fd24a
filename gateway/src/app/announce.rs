//! The announcer of the LoadBalancer IPs this node takes traffic for (`--announce`), and its
//! `announcements` admin view.

use std::sync::Arc;

use anyhow::Context;
use portico_announce::{Announcements, AnnouncerKind, EdgeL2Config};

use super::parts::Parts;
use crate::cli::RunArgs;

/// Start the announcer `--announce` names. L2 runs when interfaces are given
/// (`--announce-iface`); standalone on loopback needs none.
pub(super) fn start(parts: &mut Parts, args: &RunArgs) {
    match args.announce {
        AnnouncerKind::L2 => start_l2(parts, args),
    }
}

fn start_l2(parts: &mut Parts, args: &RunArgs) {
    if args.announce_ifaces.is_empty() {
        return;
    }
    let cfg = EdgeL2Config {
        node: args.node_name.clone(),
        interfaces: args.announce_ifaces.clone(),
        gossip_listen: args.gossip_listen,
        peers: args.peers.clone(),
        discover_port: args.gossip_discover_port,
        timing: Default::default(),
    };
    let owned = view(parts);
    let (p, sd) = (parts.snapshots.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        portico_announce::run_edge(cfg, p, Some(owned), sd)
            .await
            .context("L2 announcer")
    });
}

/// The `announcements` admin view: the addresses this node announces. Returns where the
/// announcer publishes them.
fn view(parts: &mut Parts) -> tokio::sync::watch::Sender<Arc<Announcements>> {
    let (owned_tx, owned_rx) = tokio::sync::watch::channel(Arc::<Announcements>::default());
    parts.admin(|a| {
        a.with_view(
            "announcements",
            Arc::new(move || {
                let owned = owned_rx.borrow().clone();
                serde_json::Value::Array(
                    owned
                        .keys()
                        .map(|ip| serde_json::Value::String(ip.to_string()))
                        .collect(),
                )
            }),
        )
    });
    owned_tx
}
