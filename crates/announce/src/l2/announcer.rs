//! The L2 [`Announcer`]: from each published [`Snapshot`] and each change of the alive set,
//! compute the IPs this node owns ([`election::owned_by`]) and hand every interface's responder
//! its share. One responder task runs per interface.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::link::{Interface, LinkError};
use super::responder::{self, AnnounceTiming, OwnedIps};
use crate::announcement::{self, Announcement, Announcements, Announcer};
use crate::election;
use crate::membership::Alive;

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
    owned: &BTreeMap<IpAddr, Announcement>,
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

/// ARP/NDP answers from the elected owner of each address: one responder per interface, fed
/// the addresses this node wins among the `alive` members.
pub struct L2Announcer {
    cfg: AnnouncerConfig,
    alive: watch::Receiver<Alive>,
    alive_open: bool,
    senders: BTreeMap<String, watch::Sender<OwnedIps>>,
    responders: JoinSet<(String, Result<(), LinkError>)>,
    stop: CancellationToken,
}

impl L2Announcer {
    /// Look up every interface and start its responder (answering for nothing yet). The
    /// responders stop with `shutdown` or [`Announcer::stop`].
    pub async fn start(
        cfg: AnnouncerConfig,
        alive: watch::Receiver<Alive>,
        shutdown: &CancellationToken,
    ) -> Result<Self, AnnounceError> {
        let mut responders = JoinSet::new();
        let mut senders = BTreeMap::new();
        let stop = shutdown.child_token();
        for name in &cfg.interfaces {
            let iface = Interface::lookup(name).await?;
            let (tx, rx) = watch::channel(OwnedIps::default());
            senders.insert(name.clone(), tx);
            let name = name.clone();
            let stop = stop.clone();
            let timing = cfg.timing;
            responders.spawn(async move { (name, responder::run(iface, rx, timing, stop).await) });
        }
        Ok(Self {
            cfg,
            alive,
            alive_open: true,
            senders,
            responders,
            stop,
        })
    }
}

impl Announcer for L2Announcer {
    type Error = AnnounceError;

    fn desired(&self, snap: &Snapshot) -> Announcements {
        let members = self.alive.borrow().clone();
        election::owned_by(snap, &self.cfg.node, &members)
    }

    fn apply(&mut self, desired: &Announcements, generation: u64) {
        let node = &self.cfg.node;
        for (iface, ips) in per_interface(desired, &self.cfg.interfaces) {
            if let Some(tx) = self.senders.get(&iface) {
                tx.send_if_modified(|cur| {
                    let changed = **cur != ips;
                    if changed {
                        info!(%node, %iface, owned = ips.len(), generation, "announced set changed");
                        *cur = Arc::new(ips.clone());
                    }
                    changed
                });
            }
        }
    }

    async fn changed(&mut self) -> Result<(), AnnounceError> {
        tokio::select! {
            r = self.alive.changed(), if self.alive_open => {
                if r.is_err() {
                    self.alive_open = false;
                }
                Ok(())
            }
            Some(done) = self.responders.join_next() => {
                let iface = match done {
                    Ok((iface, Err(e))) => {
                        error!(%iface, error = %e, "responder failed");
                        return Err(e.into());
                    }
                    Ok((iface, Ok(()))) => iface,
                    Err(e) => {
                        error!(error = %e, "responder task panicked");
                        String::from("?")
                    }
                };
                self.stop.cancel();
                Err(AnnounceError::ResponderStopped { iface })
            }
            else => std::future::pending().await,
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        while self.responders.join_next().await.is_some() {}
    }
}

/// Run the L2 announcer until `shutdown`. `owned_out`, when given, receives the full ownership
/// view for admin pages and tests.
pub async fn run(
    cfg: AnnouncerConfig,
    snapshots: Arc<Publisher<Snapshot>>,
    alive: watch::Receiver<Alive>,
    owned_out: Option<watch::Sender<Arc<Announcements>>>,
    shutdown: CancellationToken,
) -> Result<(), AnnounceError> {
    let announcer = L2Announcer::start(cfg, alive, &shutdown).await?;
    announcement::run(announcer, snapshots, owned_out, shutdown).await
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
                Announcement {
                    interfaces: None,
                    services: BTreeSet::new(),
                },
            ),
            (
                ip("192.0.2.2"),
                Announcement {
                    interfaces: Some(["eth1".to_owned()].into()),
                    services: BTreeSet::new(),
                },
            ),
            (
                ip("192.0.2.3"),
                Announcement {
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
