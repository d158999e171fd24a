//! The userspace ARP/NDP responder of one interface. It answers who-has requests and neighbour
//! solicitations for the IPs this node owns, announces each IP it newly owns with gratuitous
//! ARP or unsolicited neighbour advertisements (Override set) several times, and joins each
//! owned IPv6 address's solicited-node group. No address is added to the interface.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::arp::{Arp, Op};
use super::frame::Mac;
use super::link::{GroupMembership, Interface, LinkError, PacketSocket};
use super::ndp::{Advertisement, Solicitation, solicited_node};

/// The set of IPs to answer for on an interface; replaced whole on every change.
pub type OwnedIps = Arc<BTreeSet<IpAddr>>;

/// How a newly owned IP is announced: `repeats` announcements, `interval` apart, the first
/// at once (MetalLB sends for a few seconds so that a lost frame does not matter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceTiming {
    pub repeats: u32,
    pub interval: Duration,
}

impl Default for AnnounceTiming {
    fn default() -> Self {
        Self {
            repeats: 5,
            interval: Duration::from_secs(1),
        }
    }
}

/// Run the responder on `iface` until `shutdown`, answering for the IPs in `owned`.
pub async fn run(
    iface: Interface,
    mut owned: watch::Receiver<OwnedIps>,
    timing: AnnounceTiming,
    shutdown: CancellationToken,
) -> Result<(), LinkError> {
    let arp = PacketSocket::arp(&iface)?;
    let ns = PacketSocket::neighbour_solicitations(&iface)?;
    info!(iface = %iface.name, mac = %iface.mac, "L2 responder started");
    let mut state = State {
        iface,
        current: Arc::default(),
        groups: BTreeMap::new(),
        pending: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(timing.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut arp_buf = vec![0u8; 2048];
    let mut ns_buf = vec![0u8; 2048];
    let mut owned_open = true;
    let first = owned.borrow_and_update().clone();
    state.update(first, timing.repeats);
    state.announce_due(&arp, &ns).await;

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = arp.recv(&mut arp_buf) => match r {
                Ok(n) => state.on_arp(&arp, &arp_buf[..n]).await,
                Err(e) => recv_failed(&state.iface, "ARP", e).await,
            },
            r = ns.recv(&mut ns_buf) => match r {
                Ok(n) => state.on_solicitation(&ns, &ns_buf[..n]).await,
                Err(e) => recv_failed(&state.iface, "NDP", e).await,
            },
            changed = owned.changed(), if owned_open => {
                if changed.is_err() {
                    // The driver is gone: keep answering for what we have until shutdown.
                    owned_open = false;
                    continue;
                }
                let next = owned.borrow_and_update().clone();
                if state.update(next, timing.repeats) {
                    state.announce_due(&arp, &ns).await;
                    tick.reset();
                }
            }
            _ = tick.tick() => state.announce_due(&arp, &ns).await,
        }
    }
    info!(iface = %state.iface.name, "L2 responder stopped");
    Ok(())
}

async fn recv_failed(iface: &Interface, what: &str, e: std::io::Error) {
    // The interface may be going down or be renamed; keep trying without spinning.
    warn!(iface = %iface.name, proto = what, error = %e, "receive failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

struct State {
    iface: Interface,
    current: OwnedIps,
    groups: BTreeMap<IpAddr, GroupMembership>,
    /// Announcements still to send per newly owned IP.
    pending: BTreeMap<IpAddr, u32>,
}

impl State {
    /// Take a new owned set; returns whether an IP was gained.
    fn update(&mut self, next: OwnedIps, repeats: u32) -> bool {
        let mut gained = false;
        for ip in next.difference(&self.current) {
            info!(iface = %self.iface.name, %ip, "ownership won: announcing");
            if let IpAddr::V6(v6) = ip {
                match GroupMembership::join(solicited_node(*v6), &self.iface) {
                    Ok(m) => drop(self.groups.insert(*ip, m)),
                    Err(e) => {
                        warn!(iface = %self.iface.name, %ip, error = %e, "cannot join solicited-node group")
                    }
                }
            }
            if repeats > 0 {
                self.pending.insert(*ip, repeats);
            }
            gained = true;
        }
        for ip in self.current.difference(&next) {
            info!(iface = %self.iface.name, %ip, "ownership lost: no longer answering");
            self.groups.remove(ip);
            self.pending.remove(ip);
        }
        self.current = next;
        gained
    }

    async fn announce_due(&mut self, arp: &PacketSocket, ns: &PacketSocket) {
        let mac = self.iface.mac;
        for (ip, left) in &mut self.pending {
            let (sock, frame) = match ip {
                IpAddr::V4(v4) => (arp, Arp::gratuitous(mac, *v4).encode()),
                IpAddr::V6(v6) => (ns, Advertisement::unsolicited(mac, *v6).encode()),
            };
            if let Err(e) = sock.send(&frame).await {
                warn!(iface = %self.iface.name, %ip, error = %e, "announcement not sent");
            }
            *left -= 1;
        }
        self.pending.retain(|_, left| *left > 0);
    }

    async fn on_arp(&self, sock: &PacketSocket, frame: &[u8]) {
        let Some((ip, reply)) = answer_arp(&self.current, self.iface.mac, frame) else {
            return;
        };
        debug!(iface = %self.iface.name, %ip, "answering who-has");
        if let Err(e) = sock.send(&reply).await {
            warn!(iface = %self.iface.name, %ip, error = %e, "ARP reply not sent");
        }
    }

    async fn on_solicitation(&self, sock: &PacketSocket, frame: &[u8]) {
        let Some((ip, reply)) = answer_solicitation(&self.current, self.iface.mac, frame) else {
            return;
        };
        debug!(iface = %self.iface.name, %ip, "answering neighbour solicitation");
        if let Err(e) = sock.send(&reply).await {
            warn!(iface = %self.iface.name, %ip, error = %e, "neighbour advertisement not sent");
        }
    }
}

/// The reply `mac` sends to an ARP frame, if any: only to requests for an owned IP, never to
/// our own frames, nor to another host's gratuitous ARP (sender and target IP alike).
pub fn answer_arp(owned: &BTreeSet<IpAddr>, mac: Mac, frame: &[u8]) -> Option<(IpAddr, Vec<u8>)> {
    let req = Arp::parse(frame).ok()?;
    let ip = IpAddr::V4(req.target_ip);
    let wanted = req.op == Op::Request
        && req.eth.src != mac
        && req.sender_ip != req.target_ip
        && owned.contains(&ip);
    wanted.then(|| (ip, req.reply(mac).encode()))
}

/// The advertisement `mac` sends for a neighbour solicitation frame, if any.
pub fn answer_solicitation(
    owned: &BTreeSet<IpAddr>,
    mac: Mac,
    frame: &[u8],
) -> Option<(IpAddr, Vec<u8>)> {
    let ns = Solicitation::parse(frame).ok()?;
    let ip = IpAddr::V6(ns.target);
    (ns.eth.src != mac && owned.contains(&ip)).then(|| (ip, ns.answer(mac).encode()))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::l2::frame::{ETHERTYPE_IPV6, EthHeader};
    use crate::l2::ndp::multicast_mac;

    const EDGE: Mac = Mac([2, 0x77, 0, 0, 0, 1]);
    const CLIENT: Mac = Mac([2, 0x77, 0, 0, 0, 0xc]);

    fn owned() -> BTreeSet<IpAddr> {
        [
            "192.0.2.10".parse().expect("literal"),
            "2001:db8::10".parse().expect("literal"),
        ]
        .into()
    }

    #[test]
    fn who_has_an_owned_ip_is_answered_broadcast_or_unicast() {
        let vip = Ipv4Addr::new(192, 0, 2, 10);
        let mut req = Arp::request(CLIENT, Ipv4Addr::new(192, 0, 2, 1), vip);
        let (ip, reply) = answer_arp(&owned(), EDGE, &req.encode()).expect("answered");
        assert_eq!(ip, IpAddr::V4(vip));
        let reply = Arp::parse(&reply).expect("valid");
        assert_eq!(
            (reply.op, reply.sender_mac, reply.sender_ip, reply.eth.dst),
            (Op::Reply, EDGE, vip, CLIENT)
        );
        req.eth.dst = EDGE; // a unicast refresh
        assert!(answer_arp(&owned(), EDGE, &req.encode()).is_some());
    }

    #[test]
    fn other_arp_traffic_is_left_alone() {
        let vip = Ipv4Addr::new(192, 0, 2, 10);
        let not_ours = Arp::request(
            CLIENT,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 11),
        );
        assert!(
            answer_arp(&owned(), EDGE, &not_ours.encode()).is_none(),
            "not owned"
        );
        let mine = Arp::request(EDGE, Ipv4Addr::new(192, 0, 2, 1), vip);
        assert!(
            answer_arp(&owned(), EDGE, &mine.encode()).is_none(),
            "our own frame"
        );
        let claim = Arp::request(CLIENT, vip, vip);
        assert!(
            answer_arp(&owned(), EDGE, &claim.encode()).is_none(),
            "someone's gratuitous ARP"
        );
        let reply = Arp::request(CLIENT, Ipv4Addr::new(192, 0, 2, 1), vip).reply(CLIENT);
        assert!(
            answer_arp(&owned(), EDGE, &reply.encode()).is_none(),
            "a reply"
        );
        assert!(answer_arp(&owned(), EDGE, &[0u8; 10]).is_none(), "garbage");
    }

    #[test]
    fn solicitations_for_owned_addresses_are_answered() {
        let vip: Ipv6Addr = "2001:db8::10".parse().expect("literal");
        let group = crate::l2::ndp::solicited_node(vip);
        let ns = Solicitation {
            eth: EthHeader {
                dst: multicast_mac(group),
                src: CLIENT,
                ethertype: ETHERTYPE_IPV6,
            },
            src: "fe80::1".parse().expect("literal"),
            dst: group,
            target: vip,
            source_mac: Some(CLIENT),
        };
        let (_, na) = answer_solicitation(&owned(), EDGE, &ns.encode()).expect("answered");
        let na = crate::l2::ndp::Advertisement::parse(&na).expect("valid");
        assert_eq!(
            (na.target, na.mac, na.eth.dst, na.solicited, na.override_),
            (vip, EDGE, CLIENT, true, true)
        );
        let other = Solicitation {
            target: "2001:db8::11".parse().expect("literal"),
            ..ns
        };
        assert!(answer_solicitation(&owned(), EDGE, &other.encode()).is_none());
    }
}
