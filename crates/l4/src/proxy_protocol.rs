//! The PROXY protocol version 2 header (haproxy's `proxy-protocol.txt`, section 2.2), sent
//! first on every connection (TCP) or datagram (UDP) towards a backend so that it learns the
//! client's address.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

const VERSION_2_PROXY: u8 = 0x21;
const AF_INET: u8 = 0x10;
const AF_INET6: u8 = 0x20;
const STREAM: u8 = 0x01;
const DGRAM: u8 = 0x02;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// The header for a connection from `client` to `local` (the LoadBalancer address). When the
/// two differ in family, both are given as IPv6 (IPv4-mapped).
pub fn header(transport: Transport, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let proto = match transport {
        Transport::Stream => STREAM,
        Transport::Datagram => DGRAM,
    };
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_2_PROXY);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(AF_INET | proto);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(AF_INET6 | proto);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(src).octets());
            out.extend_from_slice(&v6(dst).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

/// Parse a v2 header at the start of `buf`: the addresses and the header's length. For tests
/// and for backends written in Rust; `None` when `buf` does not start with a valid header.
pub fn parse(buf: &[u8]) -> Option<(SocketAddr, SocketAddr, usize)> {
    if buf.len() < 16 || buf[..12] != SIGNATURE || buf[12] != VERSION_2_PROXY {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let body = buf.get(16..16 + len)?;
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let (src, dst) = match buf[13] & 0xf0 {
        AF_INET if len >= 12 => {
            let ip =
                |at: usize| IpAddr::from(<[u8; 4]>::try_from(&body[at..at + 4]).expect("4 bytes"));
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        AF_INET6 if len >= 36 => {
            let ip = |at: usize| {
                IpAddr::from(<[u8; 16]>::try_from(&body[at..at + 16]).expect("16 bytes"))
            };
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        _ => return None,
    };
    Some((src, dst, 16 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test literal")
    }

    #[test]
    fn tcp_over_ipv4_matches_the_spec_bytes() {
        let h = header(
            Transport::Stream,
            sa("203.0.113.7:51000"),
            sa("192.0.2.10:443"),
        );
        let expected: Vec<u8> = [
            &SIGNATURE[..],
            &[0x21, 0x11, 0x00, 0x0c], // v2 PROXY, TCP over IPv4, 12 bytes follow
            &[203, 0, 113, 7, 192, 0, 2, 10], // source, destination
            &[0xc7, 0x38, 0x01, 0xbb], // 51000, 443
        ]
        .concat();
        assert_eq!(h, expected);
        assert_eq!(
            parse(&h),
            Some((sa("203.0.113.7:51000"), sa("192.0.2.10:443"), 28))
        );
    }

    #[test]
    fn udp_over_ipv6() {
        let h = header(
            Transport::Datagram,
            sa("[2001:db8::7]:5353"),
            sa("[2001:db8::10]:53"),
        );
        assert_eq!(
            &h[12..16],
            &[0x21, 0x22, 0x00, 0x24],
            "v2 PROXY, UDP over IPv6, 36 bytes"
        );
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(
            &h[16..32],
            &sa("[2001:db8::7]:0")
                .ip()
                .to_string()
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .octets()
        );
        assert_eq!(&h[48..52], &[0x14, 0xe9, 0x00, 0x35]);
        assert_eq!(
            parse(&h),
            Some((sa("[2001:db8::7]:5353"), sa("[2001:db8::10]:53"), 52))
        );
    }

    #[test]
    fn mixed_families_are_sent_as_mapped_ipv6() {
        let h = header(
            Transport::Stream,
            sa("203.0.113.7:1"),
            sa("[2001:db8::10]:80"),
        );
        assert_eq!(h[13], 0x21);
        let (src, _, _) = parse(&h).expect("valid");
        assert_eq!(src, sa("[::ffff:203.0.113.7]:1"));
    }

    #[test]
    fn not_a_header() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), None);
        let mut h = header(Transport::Stream, sa("203.0.113.7:1"), sa("192.0.2.1:2"));
        h.truncate(20);
        assert_eq!(parse(&h), None, "truncated");
    }
}
