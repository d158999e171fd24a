//! The L2 [`Announcer`](crate::Announcer): ARP for IPv4, NDP for IPv6, answered by the one node
//! each address elects among the live edge members.
//!
//! - [`announcer`]: the implementation of the seam: the election's result split per interface.
//! - [`responder`]: one per interface (AF_PACKET), on [`arp`], [`ndp`], [`frame`] and [`link`].
//! - [`edge`]: the whole L2 side of an edge node: membership gossip plus the announcer.

pub mod announcer;
pub mod arp;
pub mod edge;
pub mod frame;
pub mod link;
pub mod ndp;
pub mod responder;

pub use announcer::{AnnounceError, AnnouncerConfig, L2Announcer};
pub use edge::{EdgeL2Config, EdgeL2Error, run_edge};
