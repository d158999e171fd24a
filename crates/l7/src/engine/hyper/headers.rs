//! Header handling: hop-by-hop removal, X-Forwarded-*, X-Real-IP, X-Request-ID, rewrites.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Uri;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};

use super::error::ProxyError;
use crate::request::ConnInfo;
use crate::table::{Matcher, Route};
use crate::{forwarded, framing};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether the request asks for a protocol upgrade (WebSocket and others).
pub fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Remove what [`framing::strip`] leaves out: the hop-by-hop headers, and those the message's
/// `Connection` lists unless they are [`framing::PROTECTED`].
fn remove_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| framing::strip(n.as_str(), true))
        .collect();
    let lookalikes = h
        .keys()
        .filter(|n| framing::underscore_lookalike(n.as_str()))
        .cloned();
    let named: Vec<HeaderName> = named.into_iter().chain(lookalikes).collect();
    for n in named {
        h.remove(n);
    }
    for n in framing::HOP_BY_HOP {
        h.remove(n);
    }
}

/// A unique request id: a per-process random-ish seed and a counter, as 32 hex digits.
pub fn request_id_bytes() -> [u8; 32] {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    let n = COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, word) in [seed, n].into_iter().enumerate() {
        for j in 0..16 {
            out[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
        }
    }
    out
}

fn request_id() -> HeaderValue {
    HeaderValue::from_bytes(&request_id_bytes()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Prepare the request headers for the upstream. What the client's forwarding headers are worth
/// is [`forwarded::inbound`]'s decision; `conn.client` is who the request is from.
pub fn forwarded(h: &mut HeaderMap, conn: &ConnInfo, authority: Option<&Authority>, upgrade: bool) {
    let upgrade_value = if upgrade {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    };
    remove_hop_by_hop(h);
    if let Some(v) = upgrade_value {
        h.insert(header::UPGRADE, v);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // HTTP/2 requests carry the host in the authority only.
    if !h.contains_key(header::HOST)
        && let Some(a) = authority
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        h.insert(header::HOST, v);
    }
    let trusted = conn.trusted_peer;
    let peer = conn.peer.ip();
    // A trusted peer's chain (every line, in order) gets the peer appended; anyone else's is
    // replaced by the peer alone.
    let mut chain = None;
    if trusted {
        let mut it = h.get_all(&X_FORWARDED_FOR).iter();
        if let Some(first) = it.next() {
            let mut v = first.as_bytes().to_vec();
            for more in it {
                v.extend_from_slice(b", ");
                v.extend_from_slice(more.as_bytes());
            }
            v.extend_from_slice(format!(", {peer}").as_bytes());
            chain = HeaderValue::from_bytes(&v).ok();
        }
    }
    h.insert(
        X_FORWARDED_FOR.clone(),
        chain.unwrap_or_else(|| ip_value(peer)),
    );
    h.insert(X_REAL_IP.clone(), ip_value(conn.client));
    for name in [
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &X_FORWARDED_PORT,
        &FORWARDED,
    ] {
        if forwarded::inbound(name.as_str(), trusted) == forwarded::Inbound::Drop {
            h.remove(name);
        }
    }
    if !h.contains_key(&X_FORWARDED_PROTO) {
        h.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
        );
    }
    if !h.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = h.get(header::HOST).cloned()
    {
        h.insert(X_FORWARDED_HOST.clone(), host);
    }
    if !h.contains_key(&X_FORWARDED_PORT) {
        h.insert(
            X_FORWARDED_PORT.clone(),
            HeaderValue::from(conn.local.port()),
        );
    }
    if !h.contains_key(&X_REQUEST_ID) {
        h.insert(X_REQUEST_ID.clone(), request_id());
    }
}

/// Remove hop-by-hop headers from an upstream response (kept on 101: they carry the upgrade).
pub fn strip_response(h: &mut HeaderMap) {
    if h.contains_key(header::UPGRADE) {
        return;
    }
    remove_hop_by_hop(h);
}

/// The path and query sent upstream: the original, or `rewrite-target` with capture groups.
pub fn rewritten(route: &Route, uri: &Uri) -> Result<PathAndQuery, ProxyError> {
    let (Some(target), Some(expansion)) = (
        &route.options.rewrite_target,
        &route.options.rewrite_expansion,
    ) else {
        return Ok(uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")));
    };
    let path = uri.path();
    let mut new = match &route.matcher {
        Matcher::Regex(re) => match re.captures(path) {
            Some(c) => {
                let mut dst = String::new();
                c.expand(expansion, &mut dst);
                dst
            }
            None => target.clone(),
        },
        _ => target.clone(),
    };
    if !new.starts_with('/') {
        new.insert(0, '/');
    }
    if let Some(q) = uri.query() {
        new.push(if new.contains('?') { '&' } else { '?' });
        new.push_str(q);
    }
    PathAndQuery::try_from(new).map_err(|e| ProxyError::BadRequest(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(trusted: &[&str]) -> ConnInfo {
        let t = crate::forwarded::TrustedProxies::new(
            trusted
                .iter()
                .map(|r| r.parse().expect("literal"))
                .collect(),
        );
        ConnInfo::new(
            "127.0.0.9:5555".parse().expect("literal"),
            "127.0.0.1:8080".parse().expect("literal"),
            false,
            &t,
        )
    }

    fn spoofing_client() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.example.com"));
        h.append(X_FORWARDED_FOR.clone(), HeaderValue::from_static("6.6.6.6"));
        h.append(
            X_FORWARDED_FOR.clone(),
            HeaderValue::from_static("192.0.2.1"),
        );
        h.insert(X_REAL_IP.clone(), HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
        h.insert(
            X_FORWARDED_HOST.clone(),
            HeaderValue::from_static("evil.example"),
        );
        h.insert(X_FORWARDED_PORT.clone(), HeaderValue::from_static("443"));
        h.insert(FORWARDED.clone(), HeaderValue::from_static("for=6.6.6.6"));
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::HOST, HeaderValue::from_static("a.example.com"));
        forwarded(&mut h, &conn(&[]), None, false);
        assert!(
            h.get("x-secret").is_none()
                && h.get("keep-alive").is_none()
                && h.get(header::CONNECTION).is_none()
        );
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.9");
        assert_eq!(h[&X_REAL_IP], "127.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "a.example.com");
        assert_eq!(h[&X_FORWARDED_PORT], "8080");
        assert_eq!(h[&X_REQUEST_ID].len(), 32);
    }

    #[test]
    fn an_untrusted_peer_cannot_set_forwarding_headers() {
        let mut h = spoofing_client();
        forwarded(&mut h, &conn(&[]), None, false);
        let all = |n: &HeaderName| h.get_all(n).iter().collect::<Vec<_>>();
        assert_eq!(all(&X_FORWARDED_FOR), ["127.0.0.9"]);
        assert_eq!(all(&X_REAL_IP), ["127.0.0.9"]);
        assert_eq!(all(&X_FORWARDED_PROTO), ["http"]);
        assert_eq!(all(&X_FORWARDED_HOST), ["a.example.com"]);
        assert_eq!(all(&X_FORWARDED_PORT), ["8080"]);
        assert!(h.get(&FORWARDED).is_none());
    }

    #[test]
    fn a_trusted_peer_forwards_its_chain_and_its_scheme_host_and_port() {
        let mut h = spoofing_client();
        let c = conn(&["127.0.0.0/8"]).for_request(
            &crate::forwarded::TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("literal")]),
            h.get_all(&X_FORWARDED_FOR)
                .iter()
                .map(HeaderValue::as_bytes),
        );
        assert_eq!(c.client.to_string(), "192.0.2.1");
        forwarded(&mut h, &c, None, false);
        assert_eq!(h[&X_FORWARDED_FOR], "6.6.6.6, 192.0.2.1, 127.0.0.9");
        assert_eq!(h[&X_REAL_IP], "192.0.2.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "evil.example");
        assert_eq!(h[&X_FORWARDED_PORT], "443");
        assert_eq!(h[&FORWARDED], "for=6.6.6.6");
    }

    #[test]
    fn connection_cannot_remove_framing_host_or_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static(
                "content-length, host, x-forwarded-for, x-request-id, forwarded, x-secret",
            ),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("63"));
        h.insert(header::HOST, HeaderValue::from_static("app.test"));
        h.insert(
            X_FORWARDED_FOR.clone(),
            HeaderValue::from_static("192.0.2.1"),
        );
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("client-id"));
        h.insert(header::FORWARDED, HeaderValue::from_static("for=192.0.2.1"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        // A trusted peer, so that its forwarding headers are kept unless Connection could
        // remove them.
        let conn = conn(&["127.0.0.0/8"]);
        forwarded(&mut h, &conn, None, false);
        assert_eq!(h[header::CONTENT_LENGTH], "63");
        assert_eq!(h[header::HOST], "app.test");
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.1, 127.0.0.9");
        assert_eq!(h[&X_FORWARDED_HOST], "app.test");
        assert_eq!(h[&X_REQUEST_ID], "client-id");
        assert_eq!(h[header::FORWARDED], "for=192.0.2.1");

        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("app.test"));
        h.insert("content_length", HeaderValue::from_static("63"));
        h.insert("transfer_encoding", HeaderValue::from_static("chunked"));
        h.insert("x_forwarded_for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x_custom", HeaderValue::from_static("kept"));
        forwarded(&mut h, &conn, None, false);
        assert!(h.get("content_length").is_none() && h.get("transfer_encoding").is_none());
        assert!(h.get("x_forwarded_for").is_none());
        assert_eq!(h["x_custom"], "kept");
        assert!(h.get("x-secret").is_none() && h.get(header::CONNECTION).is_none());

        // A response's Connection cannot remove its framing either.
        let mut r = HeaderMap::new();
        r.insert(
            header::CONNECTION,
            HeaderValue::from_static("content-length, x-internal"),
        );
        r.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        r.insert("x-internal", HeaderValue::from_static("1"));
        strip_response(&mut r);
        assert_eq!(r[header::CONTENT_LENGTH], "2");
        assert!(r.get("x-internal").is_none());
    }
}
