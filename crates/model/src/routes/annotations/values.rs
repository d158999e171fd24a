//! The value syntaxes of ingress-nginx annotations: sizes, booleans, hash keys, CIDR lists.

use ipnet::IpNet;

use crate::routes::matches::HeaderName;
use crate::routes::policy::HashKey;

/// nginx's size syntax: `8m`, `512k`, `1g`, plain bytes; `0` means unlimited.
pub fn parse_size(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    Some(if n == 0 {
        None
    } else {
        Some(n.checked_mul(mult)?)
    })
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_hash_key(s: &str) -> Option<HashKey> {
    let v = s.trim().strip_prefix('$')?;
    Some(match v {
        "request_uri" => HashKey::RequestUri,
        "uri" => HashKey::Uri,
        "remote_addr" | "binary_remote_addr" => HashKey::RemoteAddr,
        "host" | "http_host" => HashKey::Host,
        _ => {
            if let Some(h) = v.strip_prefix("http_") {
                HashKey::Header(HeaderName::parse(&h.replace('_', "-"))?)
            } else if let Some(c) = v.strip_prefix("cookie_") {
                HashKey::Cookie(c.to_owned())
            } else if let Some(a) = v.strip_prefix("arg_") {
                HashKey::Arg(a.to_owned())
            } else {
                return None;
            }
        }
    })
}

pub(super) fn parse_cidrs(s: &str) -> Option<Vec<IpNet>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .ok()
                .or_else(|| p.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}
