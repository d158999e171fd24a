//! Which `Host` the admin API answers for: a defence against DNS rebinding. A web page on
//! `evil.test` whose name is re-pointed at 127.0.0.1 makes the browser send requests to the
//! admin API that the same-origin policy lets the page read; every such request carries
//! `Host: evil.test`. The admin API therefore answers only for
//! - loopback: `localhost` and any address in 127.0.0.0/8 or `::1`;
//! - the address it listens on; when that is unspecified (`0.0.0.0`, `::`, as in a Pod, where the
//!   kubelet's probes and Prometheus use the Pod IP), any IP address: a rebinding attack always
//!   comes with a DNS name, never an address;
//! - the names and addresses of `--admin-allowed-host` (repeatable; `*` turns the check off).
//!
//! A request without `Host` (HTTP/1.0 tools) is answered: browsers always send one. Anything
//! else gets `421 Misdirected Request`: this server is not configured for that authority.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// A `--admin-allowed-host` value that is neither an IP address nor a DNS name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--admin-allowed-host {0:?}: expected a DNS name (e.g. portico.example.com), an IP address or *"
)]
pub struct InvalidAllowedHost(pub String);

/// One `--admin-allowed-host` value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AllowedHost {
    /// `*`: every host.
    Any,
    Ip(IpAddr),
    /// Lower case, without a trailing dot.
    Name(String),
}

impl std::str::FromStr for AllowedHost {
    type Err = InvalidAllowedHost;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "*" {
            return Ok(AllowedHost::Any);
        }
        let bare = t
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(AllowedHost::Ip(ip.to_canonical()));
        }
        let name = t.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(InvalidAllowedHost(s.to_owned()));
        }
        Ok(AllowedHost::Name(name))
    }
}

/// The hosts the admin API answers for. The default answers for loopback only; [`super::serve`]
/// adds the listening address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    any_ip: bool,
    ips: BTreeSet<IpAddr>,
    names: BTreeSet<String>,
}

impl AllowedHosts {
    /// Loopback and the `--admin-allowed-host` values.
    pub fn new(extra: impl IntoIterator<Item = AllowedHost>) -> Self {
        let mut hosts = Self::default();
        for h in extra {
            match h {
                AllowedHost::Any => hosts.any = true,
                AllowedHost::Ip(ip) => {
                    hosts.ips.insert(ip);
                }
                AllowedHost::Name(n) => {
                    hosts.names.insert(n);
                }
            }
        }
        hosts
    }

    /// Also answer for the address the admin API listens on (any IP when it is unspecified).
    pub fn with_listen_addr(mut self, addr: SocketAddr) -> Self {
        let ip = addr.ip().to_canonical();
        if ip.is_unspecified() {
            self.any_ip = true;
        } else {
            self.ips.insert(ip);
        }
        self
    }

    /// Whether a request with this `Host` header (`None`: none sent) is answered.
    pub fn allows(&self, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = host else { return true };
        match parse_host(host) {
            None => false,
            Some(HostName::Ip(ip)) => ip.is_loopback() || self.any_ip || self.ips.contains(&ip),
            Some(HostName::Name(n)) => n == "localhost" || self.names.contains(&n),
        }
    }
}

enum HostName {
    Ip(IpAddr),
    Name(String),
}

/// The host part of a `Host` header (`name`, `name:port`, `1.2.3.4:port`, `[::1]:port`),
/// lower case and without a trailing dot; `None` when it is malformed.
fn parse_host(h: &str) -> Option<HostName> {
    let h = h.trim();
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = v6.parse().ok()?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return port_ok(after.strip_prefix(':'))
            .then_some(HostName::Ip(IpAddr::V6(ip).to_canonical()));
    } else {
        match h.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    if host.is_empty() || !port_ok(port) {
        return None;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(HostName::Ip(ip.to_canonical()));
    }
    Some(HostName::Name(
        host.trim_end_matches('.').to_ascii_lowercase(),
    ))
}

fn port_ok(port: Option<&str>) -> bool {
    port.is_none_or(|p| p.is_empty() || p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(extra: &[&str], listen: &str) -> AllowedHosts {
        AllowedHosts::new(extra.iter().map(|s| s.parse().expect("valid")))
            .with_listen_addr(listen.parse().expect("addr"))
    }

    #[test]
    fn loopback_names_and_addresses_are_answered() {
        let h = hosts(&[], "127.0.0.1:9901");
        for ok in [
            "localhost",
            "LOCALHOST:9901",
            "localhost.:9901",
            "127.0.0.1",
            "127.0.0.1:9901",
            "127.3.4.5:80",
            "[::1]",
            "[::1]:9901",
            "[::ffff:127.0.0.1]:9901",
        ] {
            assert!(h.allows(Some(ok)), "{ok}");
        }
        assert!(h.allows(None), "no Host: not a browser");
    }

    #[test]
    fn a_rebound_name_is_refused() {
        let h = hosts(&[], "127.0.0.1:9901");
        for bad in [
            "evil.test",
            "evil.test:9901",
            "localhost.evil.test",
            "127.0.0.1.evil.test",
            "10.1.2.3:9901",
            "",
            "[::1",
            "::1",
            "localhost:notaport",
            "[::1]x",
        ] {
            assert!(!h.allows(Some(bad)), "{bad:?}");
        }
    }

    #[test]
    fn the_listen_address_and_the_flag_values_are_answered() {
        let h = hosts(
            &["portico.example.com.", "192.0.2.7", "[2001:db8::7]"],
            "10.0.0.5:9901",
        );
        assert!(h.allows(Some("10.0.0.5:9901")));
        assert!(h.allows(Some("Portico.Example.com:9901")));
        assert!(h.allows(Some("192.0.2.7")));
        assert!(h.allows(Some("[2001:db8::7]:9901")));
        assert!(!h.allows(Some("10.0.0.6:9901")));
        assert!(!h.allows(Some("other.example.com")));
    }

    #[test]
    fn an_unspecified_listen_address_answers_any_ip_but_no_unknown_name() {
        let h = hosts(&[], "0.0.0.0:9901");
        assert!(h.allows(Some("10.244.1.7:9901")), "kubelet probe by Pod IP");
        assert!(h.allows(Some("[fd00::7]:9901")));
        assert!(!h.allows(Some("evil.test:9901")));
    }

    #[test]
    fn a_star_turns_the_check_off() {
        assert!(hosts(&["*"], "127.0.0.1:9901").allows(Some("evil.test")));
    }

    #[test]
    fn flag_values_must_be_names_or_addresses() {
        assert_eq!(
            "Portico.Example.com".parse(),
            Ok(AllowedHost::Name("portico.example.com".into()))
        );
        assert_eq!(
            "[::1]".parse(),
            Ok(AllowedHost::Ip("::1".parse().expect("ip")))
        );
        for bad in [
            "",
            "a b",
            "evil.test:80",
            "http://x",
            "a..b",
            "*.example.com",
        ] {
            let e = bad.parse::<AllowedHost>().expect_err(bad);
            assert!(e.to_string().contains("--admin-allowed-host"), "{e}");
        }
    }
}
