//! ARP (RFC 826) over Ethernet for IPv4: requests, replies and gratuitous announcements.

use std::net::Ipv4Addr;

use super::frame::{ETH_HEADER_LEN, ETHERTYPE_ARP, EthHeader, Mac, Malformed, be16, need, pad};

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
const ARP_LEN: usize = 28;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request,
    Reply,
}

/// One ARP packet for IPv4 over Ethernet, with the Ethernet header it came in or goes out with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub eth: EthHeader,
    pub op: Op,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Decode an Ethernet frame carrying ARP.
    pub fn parse(frame: &[u8]) -> Result<Arp, Malformed> {
        let eth = EthHeader::parse(frame)?;
        if eth.ethertype != ETHERTYPE_ARP {
            return Err(Malformed::EtherType(eth.ethertype));
        }
        let p = &frame[ETH_HEADER_LEN..];
        need(p, ARP_LEN)?;
        if be16(p, 0) != HTYPE_ETHERNET {
            return Err(Malformed::Unsupported {
                what: "ARP hardware type",
                value: be16(p, 0).into(),
            });
        }
        if be16(p, 2) != PTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return Err(Malformed::Unsupported {
                what: "ARP protocol type",
                value: be16(p, 2).into(),
            });
        }
        let op = match be16(p, 6) {
            1 => Op::Request,
            2 => Op::Reply,
            other => {
                return Err(Malformed::Unsupported {
                    what: "ARP operation",
                    value: other.into(),
                });
            }
        };
        let ip = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        Ok(Arp {
            eth,
            op,
            sender_mac: Mac::from_slice(&p[8..14]).expect("length checked"),
            sender_ip: ip(14),
            target_mac: Mac::from_slice(&p[18..24]).expect("length checked"),
            target_ip: ip(24),
        })
    }

    /// Encode as an Ethernet frame (padded to the 60-byte minimum).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(60);
        self.eth.write(&mut out);
        out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&PTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&(if self.op == Op::Request { 1u16 } else { 2 }).to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
        pad(out)
    }

    /// The reply `mac` gives to this request: "`target_ip` is at `mac`", sent straight back to the
    /// asker (whether the request was broadcast or unicast).
    pub fn reply(&self, mac: Mac) -> Arp {
        Arp {
            eth: EthHeader {
                dst: self.sender_mac,
                src: mac,
                ethertype: ETHERTYPE_ARP,
            },
            op: Op::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// A gratuitous ARP announcing that `ip` is at `mac`: a broadcast reply whose sender and
    /// target addresses are both `ip`, so every neighbour that caches `ip` updates its entry.
    pub fn gratuitous(mac: Mac, ip: Ipv4Addr) -> Arp {
        Arp {
            eth: EthHeader {
                dst: Mac::BROADCAST,
                src: mac,
                ethertype: ETHERTYPE_ARP,
            },
            op: Op::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::BROADCAST,
            target_ip: ip,
        }
    }

    /// A who-has request from (`mac`, `ip`) for `target`, broadcast.
    pub fn request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Arp {
        Arp {
            eth: EthHeader {
                dst: Mac::BROADCAST,
                src: mac,
                ethertype: ETHERTYPE_ARP,
            },
            op: Op::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKER: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const EDGE: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

    /// `arping -i veth 192.0.2.10` from 10.0.0.1, as captured on the wire.
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08,
        0x06, // ethernet
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00,
        0x01, // htype, ptype, hlen, plen, op=request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 0, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 10, // target
    ];

    #[test]
    fn decodes_a_broadcast_request() {
        let arp = Arp::parse(&REQUEST).expect("valid request");
        assert_eq!(arp.op, Op::Request);
        assert_eq!(arp.eth.dst, Mac::BROADCAST);
        assert_eq!(arp.sender_mac, ASKER);
        assert_eq!(arp.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(arp.target_ip, Ipv4Addr::new(192, 0, 2, 10));
    }

    #[test]
    fn request_encodes_to_the_captured_bytes_plus_padding() {
        let built = Arp::request(
            ASKER,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 0, 2, 10),
        )
        .encode();
        assert_eq!(built.len(), 60);
        assert_eq!(&built[..42], &REQUEST[..]);
        assert!(built[42..].iter().all(|b| *b == 0));
    }

    #[test]
    fn reply_goes_back_to_the_asker() {
        let reply = Arp::parse(&REQUEST).expect("valid").reply(EDGE).encode();
        let expected: [u8; 42] = [
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
            0x06, //
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // op=reply
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 10, // 192.0.2.10 is at EDGE
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 0, 1,
        ];
        assert_eq!(&reply[..42], &expected[..]);
        assert_eq!(Arp::parse(&reply).expect("round trip").op, Op::Reply);
    }

    #[test]
    fn gratuitous_arp_is_a_broadcast_reply_about_itself() {
        let g = Arp::gratuitous(EDGE, Ipv4Addr::new(192, 0, 2, 10)).encode();
        assert_eq!(&g[0..6], &[0xff; 6]);
        assert_eq!(&g[20..22], &[0, 2]);
        assert_eq!(&g[28..32], &[192, 0, 2, 10], "sender ip");
        assert_eq!(&g[38..42], &[192, 0, 2, 10], "target ip");
        let back = Arp::parse(&g).expect("round trip");
        assert_eq!(
            (back.sender_mac, back.sender_ip),
            (EDGE, Ipv4Addr::new(192, 0, 2, 10))
        );
    }

    #[test]
    fn garbage_is_refused_not_answered() {
        assert!(matches!(
            Arp::parse(&REQUEST[..30]),
            Err(Malformed::Truncated { .. })
        ));
        let mut ipv6 = REQUEST;
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(Arp::parse(&ipv6), Err(Malformed::EtherType(0x86dd)));
        let mut op = REQUEST;
        op[21] = 9;
        assert!(matches!(
            Arp::parse(&op),
            Err(Malformed::Unsupported {
                what: "ARP operation",
                value: 9
            })
        ));
        let mut token_ring = REQUEST;
        token_ring[15] = 6;
        assert!(matches!(
            Arp::parse(&token_ring),
            Err(Malformed::Unsupported { .. })
        ));
    }
}
