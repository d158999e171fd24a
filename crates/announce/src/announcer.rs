//! The announcer: from each published [`Snapshot`] and each change of the alive set, compute
//! the IPs this node owns ([`election::owned_by`]) and hand every interface's responder its
//! share. One responder task runs per interface.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::election::{self, Assignment};
use super::link::{Interface, LinkError};
use super::membership::Alive;
use super::responder::{self, AnnounceTiming, OwnedIps};

#[derive(Clone, Debug)]
pub struct AnnouncerConfig {
    /// This node's name, as the election and membership know it.
    pub node: String,
    /// Interfaces to announce on; L2Advertisement `interfaces` narrow this per IP.
    pub interfaces: Vec<String>,
    pub timing: AnnounceTiming,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the responder of interface {iface:?} stopped unexpectedly")]
    ResponderStopped { iface: String },
}

/// Split what this node owns between its interfaces: an IP goes to every interface its
/// advertisements allow (all of them when they name none).
pub fn per_interface(
    owned: &BTreeMap<IpAddr, Assignment>,
    interfaces: &[String],
) -> BTreeMap<String, BTreeSet<IpAddr>> {
    interfaces
        .iter()
        .map(|iface| {
            let ips = owned
                .iter()
                .filter(|(_, a)| a.interfaces.as_ref().is_none_or(|set| set.contains(iface)))
                .map(|(ip, _)| *ip)
                .collect();
            (iface.clone(), ips)
        })
        .collect()
}

/// Run until `shutdown`. `owned_out`, when given, receives the full ownership view for admin
/// pages and tests.
pub async fn run(
    cfg: AnnouncerConfig,
    snapshots: Arc<Publisher<Snapshot>>,
    mut alive: watch::Receiver<Alive>,
    owned_out: Option<watch::Sender<Arc<BTreeMap<IpAddr, Assignment>>>>,
    shutdown: CancellationToken,
) -> Result<(), AnnounceError> {
    let mut tasks = JoinSet::new();
    let mut senders: BTreeMap<String, watch::Sender<OwnedIps>> = BTreeMap::new();
    let stop = shutdown.child_token();
    for name in &cfg.interfaces {
        let iface = Interface::lookup(name).await?;
        let (tx, rx) = watch::channel(OwnedIps::default());
        senders.insert(name.clone(), tx);
        let name = name.clone();
        let stop = stop.clone();
        let timing = cfg.timing;
        tasks.spawn(async move { (name, responder::run(iface, rx, timing, stop).await) });
    }
    let mut versions = snapshots.subscribe();
    let mut alive_open = true;
    loop {
        let snap = snapshots.current();
        let members = alive.borrow_and_update().clone();
        let owned = election::owned_by(&snap, &cfg.node, &members);
        for (iface, ips) in per_interface(&owned, &cfg.interfaces) {
            if let Some(tx) = senders.get(&iface) {
                tx.send_if_modified(|cur| {
                    let changed = **cur != ips;
                    if changed {
                        info!(node = %cfg.node, %iface, owned = ips.len(), generation = snap.generation, "announced set changed");
                        *cur = Arc::new(ips.clone());
                    }
                    changed
                });
            }
        }
        if let Some(out) = &owned_out {
            out.send_replace(Arc::new(owned));
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = versions.changed() => if r.is_err() { break },
            r = alive.changed(), if alive_open => if r.is_err() { alive_open = false },
            Some(done) = tasks.join_next() => {
                if shutdown.is_cancelled() {
                    break;
                }
                let iface = match done {
                    Ok((iface, Err(e))) => { error!(%iface, error = %e, "responder failed"); return Err(e.into()) }
                    Ok((iface, Ok(()))) => iface,
                    Err(e) => { error!(error = %e, "responder task panicked"); String::from("?") }
                };
                stop.cancel();
                return Err(AnnounceError::ResponderStopped { iface });
            }
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_goes_to_the_interfaces_its_advertisements_name() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("literal") };
        let ifaces = vec!["eth0".to_owned(), "eth1".to_owned()];
        let owned = BTreeMap::from([
            (
                ip("192.0.2.1"),
                Assignment {
                    interfaces: None,
                    services: BTreeSet::new(),
                },
            ),
            (
                ip("192.0.2.2"),
                Assignment {
                    interfaces: Some(["eth1".to_owned()].into()),
                    services: BTreeSet::new(),
                },
            ),
            (
                ip("192.0.2.3"),
                Assignment {
                    interfaces: Some(["bond9".to_owned()].into()),
                    services: BTreeSet::new(),
                },
            ),
        ]);
        let split = per_interface(&owned, &ifaces);
        assert_eq!(split["eth0"], BTreeSet::from([ip("192.0.2.1")]));
        assert_eq!(
            split["eth1"],
            BTreeSet::from([ip("192.0.2.1"), ip("192.0.2.2")])
        );
        assert!(
            !split.values().any(|s| s.contains(&ip("192.0.2.3"))),
            "an interface this node lacks"
        );
    }
}
