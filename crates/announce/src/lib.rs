//! Announcement of LoadBalancer IPs: which node takes traffic for an address, and how it tells
//! the network. [`Announcer`] is the seam ([`announcement`]): the desired set of addresses per
//! snapshot, announced and withdrawn by an implementation. [`l2`] is the one written: ARP for
//! IPv4, NDP for IPv6, with MetalLB's behaviour; a BGP speaker is the next.
//!
//! ```text
//! membership (UDP heartbeats, --peer)  ─┐
//! Publisher<Snapshot> ──────────────────┼─> election::owned_by(snapshot, me, alive)
//!                                       │     sha256(node#ip), L2Advertisement pools/selectors/
//!                                       │     nodeSelectors/interfaces, exclude label, Local policy
//!                                       └─> announcer: per interface, a watch of owned IPs
//!                                              └─> responder (AF_PACKET): answer who-has and
//!                                                  neighbour solicitations, gratuitous ARP /
//!                                                  unsolicited NA (Override) 5 × 1 s on gaining
//!                                                  an IP, solicited-node group joined per IPv6
//! ```
//!
//! No address is added to any interface. The host must not answer ARP for the pools itself:
//! when the L4 listeners make them local (`ip route add local <pool> dev lo`), set
//! `net.ipv4.conf.all.arp_ignore=1` (see the `portico-l4` crate's `lb` module).
//!
//! Failover: a peer silent for 1 s is dead; the survivors re-run the election at once and the
//! new owner announces. Measured in network namespaces (`tests/announce_netns.rs`): 0.82–0.94 s
//! from SIGKILL of the owner to the client's first ARP answer from the new owner.
//!
//! Kube mode: [`run_edge`] with `discover_port` sends heartbeats to every Node an
//! L2Advertisement allows to announce (their addresses come from the snapshot), so no `--peer`
//! list is needed. A `coordination.k8s.io` Lease source (one Lease per edge node, renewed every
//! 200 ms, dead after 1 s) could feed the same alive-set channel but is not written: it costs
//! five API writes per second per edge node, and kubelet's own node Leases (renewed every
//! 10 s) are far too slow for a 2 s failover.
pub mod announcement;
pub mod debug;
pub mod election;
pub mod l2;
pub mod membership;

pub use announcement::{Announcement, Announcements, Announcer, AnnouncerKind};
pub use l2::{EdgeL2Config, EdgeL2Error, run_edge};
