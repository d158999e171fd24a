//! The request head: parsed in place, and what the fast engine leaves to the hyper engine.

use httparse::Header;

use super::{ConnectionNames, MAX_HEADERS, decimal, tokens};
use crate::framing::{self, trim};

/// Why a request is not proxied by the fast path. Most are left to the general path, which
/// answers them (or refuses them); those [`Handoff::refusal`] names the fast path refuses itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// httparse refused the head; hyper answers 400.
    Malformed,
    TooManyHeaders,
    /// HTTP/1.0: keep-alive rules differ; rare enough to leave to the general path.
    Version,
    /// Not `A-Z`, `-`, `_` only ([`framing::valid_method`]); the general path answers 400.
    Method,
    /// Exactly `Transfer-Encoding: chunked`: the general path decodes it.
    TransferEncoding,
    /// Any other `Transfer-Encoding` ([`framing::RequestCoding::Unsupported`]): refused, 501.
    TransferCoding,
    /// `Transfer-Encoding` and `Content-Length` together: refused, 400. The general path would
    /// not see it: hyper drops the `Content-Length` of such a request before the proxy sees it.
    TransferEncodingAndLength,
    /// Repeated, or not a plain decimal number.
    ContentLength,
    Upgrade,
    Expect,
    /// Absolute-form, authority-form or asterisk-form.
    Target,
    /// No `Host`, or more than one.
    Host,
    /// `Connection` names too many headers.
    ConnectionNames,
    /// No route, or the route needs something only the general path does (redirects, canaries,
    /// rewrites, allow-lists, non-HTTP backends, 503 and 413 answers).
    Route,
    /// The path is refused by [`crate::path::normalize`] (400), or carries a fragment
    /// (which the general path's URI parser drops).
    Path,
}

impl Handoff {
    /// The status the fast path answers itself (then closes the connection), for the requests
    /// whose framing it refuses; `None`: the general path takes the connection.
    pub fn refusal(self) -> Option<u16> {
        match self {
            Handoff::TransferCoding => Some(501),
            Handoff::TransferEncodingAndLength => Some(400),
            _ => None,
        }
    }
}

/// The parts of a request head the fast path uses; borrows the read buffer.
#[derive(Debug)]
pub struct RequestHead<'b, 'h> {
    pub method: &'b str,
    /// Origin-form: starts with `/`.
    pub target: &'b str,
    pub headers: &'h [Header<'b>],
    /// Bytes of the head, including the final CRLF.
    pub head_len: usize,
    pub host: &'b str,
    pub content_length: u64,
    /// The client sent a `Content-Length` (then the upstream gets one, rewritten from the
    /// parsed value: the body is never forwarded without the length that delimits it).
    pub(super) has_content_length: bool,
    /// `Connection: close`.
    pub close: bool,
    pub has_request_id: bool,
    pub(super) connection_names: ConnectionNames<'b>,
}

impl RequestHead<'_, '_> {
    /// The path without the query, for route lookup.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// Whether a retry may resend this request (RFC 9110 idempotent methods).
    pub fn idempotent(&self) -> bool {
        matches!(
            self.method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        )
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Values of every header called `name` (case-insensitive).
    pub fn values<'s>(&'s self, name: &'s str) -> impl DoubleEndedIterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    pub(super) fn named_in_connection(&self, name: &str) -> bool {
        self.connection_names.contains(name)
    }
}

/// Parse a request head at the start of `buf`. `Ok(None)`: incomplete, read more.
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>; MAX_HEADERS],
) -> Result<Option<RequestHead<'b, 'h>>, Handoff> {
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Handoff::TooManyHeaders),
        Err(_) => return Err(Handoff::Malformed),
    };
    if req.version != Some(1) {
        return Err(Handoff::Version);
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(Handoff::Malformed);
    };
    if !framing::valid_method(method.as_bytes()) {
        return Err(Handoff::Method);
    }
    if !target.starts_with('/') || method == "CONNECT" || !framing::target_is_plain_uri(target) {
        return Err(Handoff::Target);
    }
    let headers: &'h [Header<'b>] = req.headers;
    let mut host = None;
    let mut hosts = 0;
    // Every header is looked at before deciding: a refusal (Transfer-Encoding with
    // Content-Length) must not hide behind an earlier hand-off.
    let mut content_length = None;
    let mut content_lengths = 0;
    let mut transfer_encodings = 0;
    let mut upgrade = false;
    let mut expect = false;
    let mut too_many_names = false;
    let mut close = false;
    let mut has_request_id = false;
    let mut connection_names = ConnectionNames::new();
    for h in headers {
        let n = h.name;
        if n.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = std::str::from_utf8(trim(h.value)).ok();
        } else if n.eq_ignore_ascii_case("content-length") {
            content_lengths += 1;
            content_length = decimal(h.value);
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
        } else if n.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if n.eq_ignore_ascii_case("expect") {
            expect = true;
        } else if n.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    upgrade = true;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") && !connection_names.add(t) {
                    too_many_names = true;
                }
            }
        } else if n.eq_ignore_ascii_case("x-request-id") {
            has_request_id = true;
        }
    }
    if transfer_encodings > 0 {
        if content_lengths > 0 {
            return Err(Handoff::TransferEncodingAndLength);
        }
        let values = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .map(|h| h.value);
        return Err(match framing::request_coding(values) {
            framing::RequestCoding::Chunked => Handoff::TransferEncoding,
            _ => Handoff::TransferCoding,
        });
    }
    if content_lengths > 1 || (content_lengths == 1 && content_length.is_none()) {
        return Err(Handoff::ContentLength);
    }
    if upgrade {
        return Err(Handoff::Upgrade);
    }
    if expect {
        return Err(Handoff::Expect);
    }
    if too_many_names {
        return Err(Handoff::ConnectionNames);
    }
    let host = match (hosts, host) {
        (1, Some(h)) if !h.is_empty() => h,
        _ => return Err(Handoff::Host),
    };
    Ok(Some(RequestHead {
        method,
        target,
        headers,
        head_len,
        host,
        content_length: content_length.unwrap_or(0),
        has_content_length: content_length.is_some(),
        close,
        has_request_id,
        connection_names,
    }))
}
