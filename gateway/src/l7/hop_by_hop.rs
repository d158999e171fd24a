//! Hop-by-hop headers (RFC 9110 section 7.6.1): one list and one rule for both HTTP/1.1 engines
//! (the fast path's codec and the general path's `proxy/headers.rs`), in both directions.
//!
//! A `Connection` header may name further headers that apply to this hop only. A client must not
//! be able to use that to remove what frames the message (`Content-Length`, `Transfer-Encoding`),
//! what names its target (`Host`), or what the proxy itself tells the upstream
//! (`X-Forwarded-*`, `X-Real-IP`, `X-Request-ID`, `Forwarded`): a request forwarded with its body
//! but without the header that delimits it leaves the body to be read as the next request.

/// Headers never forwarded in either direction, whatever `Connection` says.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a `Connection` header can never remove.
pub const PROTECTED: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-request-id",
    "forwarded",
];

fn listed(list: &[&str], name: &str) -> bool {
    list.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether `name` is hop-by-hop by definition (removed from every forwarded message).
pub fn is_hop_by_hop(name: &str) -> bool {
    listed(&HOP_BY_HOP, name)
}

/// Whether a `Connection` header that lists `name` removes it from its message.
pub fn connection_may_remove(name: &str) -> bool {
    !listed(&PROTECTED, name)
}

/// THE rule: whether the header `name` is left out of the forwarded message, given whether the
/// message's `Connection` header lists it.
pub fn strip(name: &str, named_in_connection: bool) -> bool {
    is_hop_by_hop(name) || (named_in_connection && connection_may_remove(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cannot_remove_framing_target_or_forwarding_headers() {
        for name in [
            "Content-Length",
            "content-length",
            "HOST",
            "X-Forwarded-For",
            "x-forwarded-proto",
            "X-Forwarded-Host",
            "X-Forwarded-Port",
            "X-Real-IP",
            "X-Request-Id",
            "Forwarded",
        ] {
            assert!(!strip(name, true), "{name}");
        }
        assert!(strip("Transfer-Encoding", false), "hop-by-hop anyway");
        assert!(strip("X-Secret", true));
        assert!(!strip("X-Secret", false));
        assert!(strip("Keep-Alive", false));
    }
}
