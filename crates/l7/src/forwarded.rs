//! Who a request is from, and which forwarding headers a client may set: the one decision both
//! engines follow (the fast path's `codec::write_upstream_head`, the general path's
//! `engine::hyper::headers::forwarded` and its allow-list and access log).
//!
//! ingress-nginx's rules, with `--trust-forwarded-from` in the role of `proxy-real-ip-cidr` +
//! `use-forwarded-headers`:
//! - a peer NOT in the trusted ranges (the default: none are): the client's `X-Forwarded-For`,
//!   `X-Real-IP`, `X-Forwarded-Proto/-Host/-Port` and `Forwarded` are discarded and replaced by
//!   what the connection says (`X-Forwarded-For` is the peer alone; no `Forwarded` is sent);
//! - a trusted peer: its `X-Forwarded-For` is kept with the peer appended; the client is the
//!   right-most entry not in the trusted ranges (nginx `real_ip_recursive on`), which becomes
//!   `X-Real-IP` and what allow-lists and the access log see; its `X-Forwarded-Proto/-Host/-Port`
//!   and `Forwarded` are passed on (Portico's own value fills in an absent one).
//!
//! Pure and allocation-free: the fast path calls it on every request.

use std::net::IpAddr;

use ipnet::IpNet;

use super::framing::trim;

/// The address ranges whose `X-Forwarded-*` headers are believed (`--trust-forwarded-from`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A `--trust-forwarded-from` value that is neither a CIDR nor an address.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a CIDR (such as 10.0.0.0/8) or an IP address")]
pub struct BadRange {
    pub value: String,
}

/// Parse one range: a CIDR, or a single address (a /32 or /128).
pub fn parse_range(s: &str) -> Result<IpNet, BadRange> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| BadRange { value: s.into() })
}

/// An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`; ranges name it as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` is a proxy whose forwarding headers are believed.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return false;
        }
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client a request is from. `peer` is the connection's remote address; `xff` the
    /// request's `X-Forwarded-For` header values in the order they arrived. For an untrusted
    /// peer that is the peer, whatever the headers say. For a trusted one the list is walked
    /// from the right past trusted entries: the first untrusted entry is the client; when every
    /// entry is trusted, the left-most; an entry that is not an address ends the walk and the
    /// last address walked past is the client (nginx's `real_ip_recursive on`).
    pub fn client<'v, I>(&self, peer: IpAddr, xff: I) -> IpAddr
    where
        I: DoubleEndedIterator<Item = &'v [u8]>,
    {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in xff.rev() {
            for entry in value.rsplit(|b| *b == b',') {
                let entry = trim(entry);
                if entry.is_empty() {
                    continue;
                }
                let Some(ip) = parse_entry(entry) else {
                    return client;
                };
                if !self.trusts(ip) {
                    return canonical(ip);
                }
                client = canonical(ip);
            }
        }
        client
    }
}

/// What becomes of a request header the client sent, given whether its peer is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Not a forwarding header: forwarded as any other.
    Other,
    /// Removed; the proxy sets its own value.
    Drop,
    /// Forwarded unchanged (a trusted peer's `X-Forwarded-Proto/-Host/-Port`, `Forwarded`).
    Pass,
    /// `X-Forwarded-For`: the proxy writes the chain itself (the trusted peer's entries, then
    /// the peer; for an untrusted peer the peer alone).
    Chain,
}

/// The rule for header `name` (any case).
pub fn inbound(name: &str, trusted_peer: bool) -> Inbound {
    let is = |h: &str| name.eq_ignore_ascii_case(h);
    if name.len() < 9 || !(name.as_bytes()[0] | 0x20 == b'x' || is("forwarded")) {
        // Fast exit for the common headers (`host`, `accept`, `cookie`, ...).
        return Inbound::Other;
    }
    if is("x-forwarded-for") {
        Inbound::Chain
    } else if is("x-real-ip") {
        Inbound::Drop
    } else if is("x-forwarded-proto")
        || is("x-forwarded-host")
        || is("x-forwarded-port")
        || is("forwarded")
    {
        if trusted_peer {
            Inbound::Pass
        } else {
            Inbound::Drop
        }
    } else {
        Inbound::Other
    }
}

/// An `X-Forwarded-For` entry: an address, optionally `[v6]`, `[v6]:port` or `v4:port`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal")
    }

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            ranges
                .iter()
                .map(|r| parse_range(r).expect("literal"))
                .collect(),
        )
    }

    fn client(t: &TrustedProxies, peer: &str, xff: &[&str]) -> IpAddr {
        t.client(ip(peer), xff.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn by_default_nobody_is_trusted_and_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert!(!none.trusts(ip("127.0.0.1")));
        assert_eq!(
            client(&none, "127.0.0.1", &["6.6.6.6"]),
            ip("127.0.0.1"),
            "a spoofed X-Forwarded-For names nobody"
        );
    }

    #[test]
    fn a_trusted_peer_names_the_right_most_untrusted_entry() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.1"]);
        // (peer, X-Forwarded-For values, client)
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer's headers are ignored even when they name trusted ranges.
            ("203.0.113.5", &["10.1.1.1"], "203.0.113.5"),
            // A trusted peer without the header: the peer.
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &["198.51.100.7"], "198.51.100.7"),
            // The client's own spoofed entry sits left of the real one and is skipped.
            ("10.0.0.2", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            // Trusted hops in the chain are walked past (real_ip_recursive on).
            (
                "10.0.0.2",
                &["6.6.6.6, 198.51.100.7, 192.0.2.1, 10.9.9.9"],
                "198.51.100.7",
            ),
            // Several header lines are one list, in order.
            (
                "10.0.0.2",
                &["6.6.6.6, 198.51.100.7", "10.3.3.3"],
                "198.51.100.7",
            ),
            // All trusted: the left-most.
            ("10.0.0.2", &["10.5.5.5, 10.6.6.6"], "10.5.5.5"),
            // A junk entry stops the walk at the last address walked past.
            ("10.0.0.2", &["6.6.6.6, unknown, 10.6.6.6"], "10.6.6.6"),
            ("10.0.0.2", &["nonsense"], "10.0.0.2"),
            // Empty entries are skipped; ports and brackets are understood.
            ("10.0.0.2", &[" , 198.51.100.7:5555 ,, "], "198.51.100.7"),
            ("10.0.0.2", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.2", &["[2001:db8::2]"], "2001:db8::2"),
            // An IPv4 peer on a dual-stack socket is matched as IPv4.
            ("::ffff:10.0.0.2", &["198.51.100.7"], "198.51.100.7"),
            (
                "10.0.0.2",
                &["::ffff:10.7.7.7, ::ffff:198.51.100.9"],
                "198.51.100.9",
            ),
        ];
        for (peer, xff, want) in table {
            assert_eq!(client(&t, peer, xff), ip(want), "peer {peer}, xff {xff:?}");
        }
    }

    #[test]
    fn which_client_headers_survive() {
        use Inbound::*;
        // (header, untrusted peer, trusted peer)
        let table = [
            ("X-Forwarded-For", Chain, Chain),
            ("x-real-ip", Drop, Drop),
            ("X-Forwarded-Proto", Drop, Pass),
            ("x-forwarded-host", Drop, Pass),
            ("x-forwarded-port", Drop, Pass),
            ("Forwarded", Drop, Pass),
            ("x-forwarded-server", Other, Other),
            ("host", Other, Other),
            ("cookie", Other, Other),
            ("x-request-id", Other, Other),
        ];
        for (name, untrusted, trusted) in table {
            assert_eq!(
                inbound(name, false),
                untrusted,
                "{name} from an untrusted peer"
            );
            assert_eq!(inbound(name, true), trusted, "{name} from a trusted peer");
        }
    }

    #[test]
    fn ranges_parse_as_cidrs_or_addresses_and_bad_ones_are_named() {
        assert_eq!(
            parse_range(" 10.0.0.0/8").expect("cidr"),
            "10.0.0.0/8".parse::<IpNet>().expect("literal")
        );
        assert_eq!(
            parse_range("::1").expect("address"),
            "::1/128".parse::<IpNet>().expect("literal")
        );
        let e = parse_range("10.0.0.0/33").expect_err("bad");
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
    }
}
