//! HTTP/1.1 framing rules both engines share (the fast path's codec and the general path's
//! `engine/hyper/proxy.rs` / `engine/hyper/headers.rs`), so that which engine serves a request never changes where
//! it ends or what the upstream is told.
//!
//! Hop-by-hop headers (RFC 9110 section 7.6.1), in both directions: a `Connection` header may name further headers that apply to this hop only. A client must not
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

/// Whether `name` spells a [`PROTECTED`] header with `_` for `-` (`Content_Length`,
/// `Transfer_Encoding`, `X_Forwarded_For`). Origins behind CGI-style gateways (WSGI, PHP, Rack)
/// read both spellings as the same variable (`CONTENT_LENGTH`), so such a header would frame the
/// body, or name the client, differently at the origin than here. nginx drops every header
/// with an underscore by default; these are dropped in both directions.
pub fn underscore_lookalike(name: &str) -> bool {
    name.contains('_')
        && PROTECTED.iter().any(|p| {
            p.len() == name.len()
                && p.bytes()
                    .zip(name.bytes())
                    .all(|(p, n)| p == n.to_ascii_lowercase() || (p == b'-' && n == b'_'))
        })
}

/// THE rule: whether the header `name` is left out of the forwarded message, given whether the
/// message's `Connection` header lists it.
pub fn strip(name: &str, named_in_connection: bool) -> bool {
    is_hop_by_hop(name)
        || (named_in_connection && connection_may_remove(name))
        || underscore_lookalike(name)
}

/// Whether a request method is one Portico forwards: `A-Z`, `-` and `_` only (nginx's rule).
/// Methods are case-sensitive (RFC 9110 9.1): `get` is not `GET`, and an origin that
/// upper-cases it would run a different method than the one routed and logged. Others get 400.
pub fn valid_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_')
}

/// How a request's `Transfer-Encoding` headers frame its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCoding {
    /// No `Transfer-Encoding`.
    None,
    /// Exactly one header whose value is exactly `chunked`.
    Chunked,
    /// Anything else (`gzip, chunked`, `chunked, chunked`, `identity`, two headers): answered
    /// 501 Not Implemented, as nginx does. Only `chunked` is a coding both sides agree on.
    Unsupported,
}

/// Classify the values of every `Transfer-Encoding` header of a request.
pub fn request_coding<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> RequestCoding {
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (None, _) => RequestCoding::None,
        (Some(v), None) if trim(v).eq_ignore_ascii_case(b"chunked") => RequestCoding::Chunked,
        _ => RequestCoding::Unsupported,
    }
}

/// Whether an origin-form target holds only bytes that `http::Uri` (and so the general path)
/// accepts, and no fragment. The fast path hands any other target to the general path, which
/// answers 400 or drops the fragment, so that both engines route and forward the same request
/// (a backtick or `>` in the path, or a `#`, made them disagree).
pub fn target_is_plain_uri(target: &str) -> bool {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    path.bytes().all(|b| {
        matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}' | 0x80..)
    }) && query
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E | 0x80..))
}

/// `v` without leading and trailing spaces and tabs.
pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end]
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

    #[test]
    fn underscore_spellings_of_protected_headers_are_dropped() {
        for name in [
            "Content_Length",
            "transfer_encoding",
            "X_Forwarded_For",
            "x-forwarded_for",
            "X_REAL_IP",
        ] {
            assert!(underscore_lookalike(name), "{name}");
            assert!(strip(name, false), "{name}");
        }
        for name in [
            "Content-Length",
            "X_Custom_Header",
            "Content_Lengths",
            "content_",
        ] {
            assert!(!underscore_lookalike(name), "{name}");
        }
    }

    #[test]
    fn targets_are_plain_uris_as_http_uri_reads_them() {
        for ok in [
            "/",
            "/a/b?x=1&y=%2F",
            "/{\"json\":1}",
            "/a?b=`c`",
            "/caf\u{e9}",
        ] {
            assert!(target_is_plain_uri(ok), "{ok}");
            assert!(http::uri::PathAndQuery::try_from(ok).is_ok(), "{ok}");
        }
        // A fragment, and bytes http::Uri refuses: the general path answers these.
        for bad in ["/a#x", "/a?b#c", "/a`b", "/a>b", "/a<b", "/a b", "/a?b c"] {
            assert!(!target_is_plain_uri(bad), "{bad}");
            assert!(
                bad.contains('#') || http::uri::PathAndQuery::try_from(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn methods_are_upper_case_tokens() {
        for ok in ["GET", "POST", "PROPFIND", "VERSION-CONTROL", "M_SEARCH"] {
            assert!(valid_method(ok.as_bytes()), "{ok}");
        }
        for bad in ["get", "Get", "", "GET1", "G.T", "G T", "GET\u{0}", "GÉT"] {
            assert!(!valid_method(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn only_a_single_plain_chunked_is_a_supported_request_coding() {
        let coding = |v: &[&str]| request_coding(v.iter().map(|s| s.as_bytes()));
        assert_eq!(coding(&[]), RequestCoding::None);
        assert_eq!(coding(&["chunked"]), RequestCoding::Chunked);
        assert_eq!(coding(&[" Chunked\t"]), RequestCoding::Chunked);
        for bad in [
            &["gzip, chunked"][..],
            &["chunked, chunked"],
            &["identity"],
            &["chunked", "chunked"],
            &["chunked, identity"],
            &[""],
            &["chunked;q=1"],
        ] {
            assert_eq!(coding(bad), RequestCoding::Unsupported, "{bad:?}");
        }
    }
}
