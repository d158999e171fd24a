//! NDP (RFC 4861) for IPv6: neighbour solicitations in, neighbour advertisements out, encoded
//! as whole Ethernet frames with the ICMPv6 checksum computed here.

use std::net::Ipv6Addr;

use super::frame::{ETH_HEADER_LEN, ETHERTYPE_IPV6, EthHeader, Mac, Malformed, be16, need, pad};

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// NDP messages must arrive with the hop limit they were sent with (255), proving they were
/// not routed.
const NDP_HOP_LIMIT: u8 = 255;

const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// `ff02::1:ffXX:XXXX`: where solicitations for `ip` are sent.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address of an IPv6 multicast group: `33:33` and the group's last four bytes.
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A neighbour solicitation: "who has `target`?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solicitation {
    pub eth: EthHeader,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The source link-layer address option, absent in duplicate address detection.
    pub source_mac: Option<Mac>,
}

impl Solicitation {
    /// Decode an Ethernet frame carrying an ICMPv6 neighbour solicitation. Anything else (other
    /// IPv6 traffic, extension headers, bad hop limit or checksum) is refused.
    pub fn parse(frame: &[u8]) -> Result<Solicitation, Malformed> {
        let eth = EthHeader::parse(frame)?;
        if eth.ethertype != ETHERTYPE_IPV6 {
            return Err(Malformed::EtherType(eth.ethertype));
        }
        let ip = &frame[ETH_HEADER_LEN..];
        need(ip, IPV6_HEADER_LEN)?;
        if ip[0] >> 4 != 6 {
            return Err(Malformed::Unsupported {
                what: "IP version",
                value: (ip[0] >> 4).into(),
            });
        }
        if ip[6] != NEXT_HEADER_ICMPV6 {
            return Err(Malformed::Unsupported {
                what: "IPv6 next header",
                value: ip[6].into(),
            });
        }
        if ip[7] != NDP_HOP_LIMIT {
            return Err(Malformed::Unsupported {
                what: "NDP hop limit",
                value: ip[7].into(),
            });
        }
        let payload_len = usize::from(be16(ip, 4));
        let src = addr(&ip[8..24]);
        let dst = addr(&ip[24..40]);
        let icmp = &ip[IPV6_HEADER_LEN..];
        need(icmp, payload_len)?;
        let icmp = &icmp[..payload_len];
        need(icmp, 24)?;
        if icmp[0] != ICMPV6_NS || icmp[1] != 0 {
            return Err(Malformed::Unsupported {
                what: "ICMPv6 type",
                value: icmp[0].into(),
            });
        }
        if checksum(src, dst, icmp) != 0 {
            return Err(Malformed::Checksum);
        }
        let target = addr(&icmp[8..24]);
        let mut source_mac = None;
        let mut opts = &icmp[24..];
        while opts.len() >= 2 {
            let len = usize::from(opts[1]) * 8;
            if len == 0 || len > opts.len() {
                return Err(Malformed::Unsupported {
                    what: "NDP option length",
                    value: opts[1].into(),
                });
            }
            if opts[0] == OPT_SOURCE_LL && len == 8 {
                source_mac = Mac::from_slice(&opts[2..8]);
            }
            opts = &opts[len..];
        }
        Ok(Solicitation {
            eth,
            src,
            dst,
            target,
            source_mac,
        })
    }

    /// Encode a solicitation (used by tests and probes).
    pub fn encode(&self) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_NS, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.source_mac {
            icmp.extend_from_slice(&[OPT_SOURCE_LL, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        frame(self.eth, self.src, self.dst, icmp)
    }

    /// The solicited advertisement `mac` answers with: sent back to the asker with the
    /// Solicited and Override flags, or to all nodes when the asker has no address yet (DAD).
    pub fn answer(&self, mac: Mac) -> Advertisement {
        let asker_mac = self.source_mac.unwrap_or(self.eth.src);
        if self.src.is_unspecified() {
            Advertisement::unsolicited(mac, self.target)
        } else {
            Advertisement {
                eth: EthHeader {
                    dst: asker_mac,
                    src: mac,
                    ethertype: ETHERTYPE_IPV6,
                },
                src: self.target,
                dst: self.src,
                target: self.target,
                mac,
                solicited: true,
                override_: true,
            }
        }
    }
}

/// A neighbour advertisement: "`target` is at `mac`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advertisement {
    pub eth: EthHeader,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// Carried in the target link-layer address option.
    pub mac: Mac,
    pub solicited: bool,
    pub override_: bool,
}

impl Advertisement {
    /// An unsolicited advertisement to all nodes with the Override flag, so that every cache
    /// holding `target` switches to `mac`.
    pub fn unsolicited(mac: Mac, target: Ipv6Addr) -> Advertisement {
        Advertisement {
            eth: EthHeader {
                dst: multicast_mac(ALL_NODES),
                src: mac,
                ethertype: ETHERTYPE_IPV6,
            },
            src: target,
            dst: ALL_NODES,
            target,
            mac,
            solicited: false,
            override_: true,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.solicited {
            flags |= FLAG_SOLICITED;
        }
        if self.override_ {
            flags |= FLAG_OVERRIDE;
        }
        let mut icmp = vec![ICMPV6_NA, 0, 0, 0, flags, 0, 0, 0];
        icmp.extend_from_slice(&self.target.octets());
        icmp.extend_from_slice(&[OPT_TARGET_LL, 1]);
        icmp.extend_from_slice(&self.mac.0);
        frame(self.eth, self.src, self.dst, icmp)
    }

    /// Decode an advertisement (for tests and monitoring).
    pub fn parse(frame: &[u8]) -> Result<Advertisement, Malformed> {
        let eth = EthHeader::parse(frame)?;
        if eth.ethertype != ETHERTYPE_IPV6 {
            return Err(Malformed::EtherType(eth.ethertype));
        }
        let ip = &frame[ETH_HEADER_LEN..];
        need(ip, IPV6_HEADER_LEN + 24)?;
        let icmp = &ip[IPV6_HEADER_LEN..];
        let (src, dst) = (addr(&ip[8..24]), addr(&ip[24..40]));
        let len = usize::from(be16(ip, 4));
        need(icmp, len)?;
        if ip[6] != NEXT_HEADER_ICMPV6 || icmp[0] != ICMPV6_NA {
            return Err(Malformed::Unsupported {
                what: "ICMPv6 type",
                value: icmp[0].into(),
            });
        }
        if checksum(src, dst, &icmp[..len]) != 0 {
            return Err(Malformed::Checksum);
        }
        let mac = if len >= 32 && icmp[24] == OPT_TARGET_LL {
            Mac::from_slice(&icmp[26..32])
        } else {
            None
        };
        Ok(Advertisement {
            eth,
            src,
            dst,
            target: addr(&icmp[8..24]),
            mac: mac.unwrap_or(eth.src),
            solicited: icmp[4] & FLAG_SOLICITED != 0,
            override_: icmp[4] & FLAG_OVERRIDE != 0,
        })
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let o: [u8; 16] = b.try_into().expect("callers pass 16 bytes");
    Ipv6Addr::from(o)
}

/// Build Ethernet + IPv6 + ICMPv6 with the checksum filled in.
fn frame(eth: EthHeader, src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let sum = checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut out = Vec::with_capacity(ETH_HEADER_LEN + IPV6_HEADER_LEN + icmp.len());
    eth.write(&mut out);
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(
        &u16::try_from(icmp.len())
            .expect("NDP messages are small")
            .to_be_bytes(),
    );
    out.extend_from_slice(&[NEXT_HEADER_ICMPV6, NDP_HOP_LIMIT]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&icmp);
    pad(out)
}

/// The ICMPv6 checksum (RFC 4443 §2.3) over the pseudo-header and `icmp`. Computed over a
/// message whose checksum field is filled in, it yields 0 when the checksum is right.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map(u32::from).unwrap_or(0);
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::try_from(icmp.len()).expect("small").to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(icmp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
