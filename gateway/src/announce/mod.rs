//! Layer-2 announcement of LoadBalancer IPs: ARP for IPv4, NDP for IPv6.
pub mod arp;
pub mod election;
pub mod frame;
pub mod link;
pub mod membership;
pub mod ndp;
pub mod responder;
