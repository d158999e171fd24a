//! Layer-2 announcement of LoadBalancer IPs: ARP for IPv4, NDP for IPv6.
pub mod announcer;
pub mod arp;
pub mod debug;
pub mod election;
pub mod frame;
pub mod link;
pub mod membership;
pub mod ndp;
pub mod responder;
