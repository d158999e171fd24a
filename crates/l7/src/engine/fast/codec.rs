//! HTTP/1.1 framing for the fast path. Pure, and free of allocation on the common path: which
//! requests the fast path takes, the request head sent upstream, the response head sent
//! downstream, and where a response body ends.
//!
//! The rules are deliberately narrow. Anything this module does not recognise as a plain
//! HTTP/1.1 request with at most one `Content-Length` (no `Transfer-Encoding`, no upgrade, no
//! `Expect`, one `Host`, origin-form target) is a [`Handoff`]: the connection goes to the general
//! hyper path, which answers it exactly as before. That keeps request smuggling defences in one
//! place: the fast path never has to decide between conflicting framings. The exceptions are the
//! framings hyper would resolve silently (a `Transfer-Encoding` with a `Content-Length`) or that
//! are refused anyway ([`Handoff::refusal`]): the fast path answers those itself and closes.
//! The header rules both engines share are in [`crate::framing`].

use std::io::Write;
use std::net::IpAddr;

use httparse::Header;

use crate::forwarded::{self, Inbound};
use crate::framing::{self, trim};

/// Request and response heads with more header lines go to the general path (request) or fail
/// (response), as hyper's default limit does.
pub const MAX_HEADERS: usize = 100;
/// A request head longer than this goes to the general path, which applies its own limit.
pub const MAX_HEAD: usize = 64 * 1024;
/// At most this many header names listed in `Connection` are removed; more goes to the general path.
const MAX_CONNECTION_NAMES: usize = 8;

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

/// The header names a `Connection` header lists (hop-by-hop for this message only).
#[derive(Debug, Clone, Copy)]
struct ConnectionNames<'b> {
    names: [&'b str; MAX_CONNECTION_NAMES],
    len: usize,
}

impl<'b> ConnectionNames<'b> {
    fn new() -> Self {
        Self {
            names: [""; MAX_CONNECTION_NAMES],
            len: 0,
        }
    }

    /// Remember `token`; false when there is no room left (or it is not text). Names that
    /// `Connection` may not remove ([`framing::PROTECTED`]) are not remembered.
    fn add(&mut self, token: &'b [u8]) -> bool {
        let Ok(t) = std::str::from_utf8(token) else {
            return false;
        };
        if !framing::connection_may_remove(t) {
            return true;
        }
        if self.len == MAX_CONNECTION_NAMES {
            return false;
        }
        self.names[self.len] = t;
        self.len += 1;
        true
    }

    fn contains(&self, name: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
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
    has_content_length: bool,
    /// `Connection: close`.
    pub close: bool,
    pub has_request_id: bool,
    connection_names: ConnectionNames<'b>,
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

    fn named_in_connection(&self, name: &str) -> bool {
        self.connection_names.contains(name)
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty())
}

fn decimal(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
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

/// An address as text, in a stack buffer (an IPv6 address is at most 45 characters).
#[derive(Debug, Clone, Copy)]
struct IpText {
    text: [u8; 45],
    len: u8,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let mut t = Self {
            text: [0; 45],
            len: 0,
        };
        let mut w = &mut t.text[..];
        let _ = write!(w, "{ip}");
        t.len = (45 - w.len()) as u8;
        t
    }

    fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

/// What the connection adds to every request it forwards, formatted once per connection.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding {
    peer_ip: IpAddr,
    peer: IpText,
    port: [u8; 5],
    port_len: u8,
    tls: bool,
    /// The peer is a trusted proxy ([`forwarded`]): its forwarding headers are kept.
    trusted: bool,
}

impl Forwarding {
    pub fn new(peer: IpAddr, tls: bool, local_port: u16, trusted: bool) -> Self {
        let mut f = Self {
            peer_ip: peer,
            peer: IpText::new(peer),
            port: [0; 5],
            port_len: 0,
            tls,
            trusted,
        };
        let mut w = &mut f.port[..];
        let _ = write!(w, "{local_port}");
        f.port_len = (5 - w.len()) as u8;
        f
    }

    fn peer(&self) -> &[u8] {
        self.peer.as_bytes()
    }

    fn port(&self) -> &[u8] {
        &self.port[..usize::from(self.port_len)]
    }
}

/// Append the upstream request head for `req` to `out`: the target with `path` (the normalised
/// path) in place of the client's and the query as it came, the client's headers minus
/// hop-by-hop ones ([`framing::strip`]) and the forwarding headers [`forwarded::inbound`] drops,
/// the `Content-Length` the body is framed with, then `X-Forwarded-For` (the peer, after a
/// trusted peer's chain), `X-Real-IP` (`client`: the peer, or whom a trusted peer forwarded for),
/// `X-Forwarded-Proto`, `-Host`, `-Port` (unless a trusted peer sent them) and an
/// `X-Request-ID` when the client sent none — what the general path sends.
pub fn write_upstream_head(
    out: &mut Vec<u8>,
    req: &RequestHead<'_, '_>,
    path: &str,
    fwd: &Forwarding,
    client: IpAddr,
    request_id: impl FnOnce() -> [u8; 32],
) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(&req.target.as_bytes()[req.path().len()..]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers {
        let n = h.name;
        // The client's Content-Length is replaced by the parsed value, written below.
        if framing::strip(n, req.named_in_connection(n)) || n.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        match forwarded::inbound(n, fwd.trusted) {
            Inbound::Other | Inbound::Pass => {}
            Inbound::Drop | Inbound::Chain => continue,
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if req.has_content_length {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "content-length: {}\r\n", req.content_length);
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if fwd.trusted {
        for prev in req.values("x-forwarded-for") {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.peer());
    out.extend_from_slice(b"\r\nx-real-ip: ");
    if client == fwd.peer_ip {
        out.extend_from_slice(fwd.peer());
    } else {
        out.extend_from_slice(IpText::new(client).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    let absent = |name| !fwd.trusted || req.values(name).next().is_none();
    if absent("x-forwarded-proto") {
        out.extend_from_slice(if fwd.tls {
            b"x-forwarded-proto: https\r\n"
        } else {
            b"x-forwarded-proto: http\r\n"
        });
    }
    if absent("x-forwarded-host") {
        out.extend_from_slice(b"x-forwarded-host: ");
        out.extend_from_slice(req.host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if absent("x-forwarded-port") {
        out.extend_from_slice(b"x-forwarded-port: ");
        out.extend_from_slice(fwd.port());
        out.extend_from_slice(b"\r\n");
    }
    if !req.has_request_id {
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(&request_id());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HEAD, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Neither length nor chunked: the body ends when the upstream closes.
    UntilClose,
}

/// An upstream response the fast path cannot forward; the client gets a 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    #[error("malformed response head")]
    Malformed,
    #[error("conflicting or invalid Content-Length")]
    ContentLength,
    #[error("response head too large")]
    TooLarge,
}

#[derive(Debug)]
pub struct ResponseHead<'b, 'h> {
    pub code: u16,
    pub reason: &'b str,
    pub headers: &'h [Header<'b>],
    pub head_len: usize,
    pub framing: Framing,
    /// The upstream connection may not be reused.
    pub close: bool,
    connection_names: ConnectionNames<'b>,
}

/// Parse a response head. `Ok(None)`: incomplete. `head_request`: the request was HEAD.
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>; MAX_HEADERS],
    head_request: bool,
) -> Result<Option<ResponseHead<'b, 'h>>, BadResponse> {
    let mut resp = httparse::Response::new(headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(BadResponse::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let code = resp.code.ok_or(BadResponse::Malformed)?;
    let reason = resp.reason.unwrap_or("");
    let http10 = resp.version == Some(0);
    let headers: &'h [Header<'b>] = resp.headers;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = http10;
    let mut connection_names = ConnectionNames::new();
    for h in headers {
        let n = h.name;
        if n.eq_ignore_ascii_case("content-length") {
            let v = decimal(h.value).ok_or(BadResponse::ContentLength)?;
            if length.is_some_and(|l| l != v) {
                return Err(BadResponse::ContentLength);
            }
            length = Some(v);
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = tokens(h.value)
                .last()
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if n.eq_ignore_ascii_case("connection") {
            for t in tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    if http10 {
                        close = false;
                    }
                } else if !connection_names.add(t) {
                    return Err(BadResponse::Malformed);
                }
            }
        }
    }
    let framing = if head_request || code == 204 || code == 304 || (100..200).contains(&code) {
        Framing::Empty
    } else if transfer_encoding {
        // Transfer-Encoding overrides Content-Length; a message with both was possibly crafted
        // to smuggle, so the connection is not reused (RFC 9112 6.3, point 3).
        if length.is_some() {
            close = true;
        }
        if chunked {
            Framing::Chunked
        } else {
            close = true;
            Framing::UntilClose
        }
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Some(ResponseHead {
        code,
        reason,
        headers,
        head_len,
        framing,
        close,
        connection_names,
    }))
}

/// What the proxy adds to a response.
#[derive(Debug, Default)]
pub struct ResponseExtras<'a> {
    pub set_cookie: Option<&'a [u8]>,
    /// `Strict-Transport-Security`, replacing the upstream's.
    pub hsts: Option<&'a [u8]>,
    /// The downstream connection closes after this response.
    pub close: bool,
}

/// Append the downstream response head: the upstream's status and headers minus hop-by-hop ones
/// (the framing header that matches `framing` is kept), plus the extras.
pub fn write_downstream_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead<'_, '_>,
    extras: &ResponseExtras<'_>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse accepts exactly three digits.
    let code = resp.code.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers {
        let n = h.name;
        let keep = if n.eq_ignore_ascii_case("transfer-encoding") {
            matches!(resp.framing, Framing::Chunked | Framing::UntilClose)
        } else if n.eq_ignore_ascii_case("content-length") {
            // With Transfer-Encoding the length is not the message's: never forward both.
            !matches!(resp.framing, Framing::Chunked | Framing::UntilClose)
        } else if n.eq_ignore_ascii_case("strict-transport-security") {
            extras.hsts.is_none()
        } else {
            !framing::strip(n, resp.connection_names.contains(n))
        };
        if keep {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(c) = extras.set_cookie {
        out.extend_from_slice(b"set-cookie: ");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(v) = extras.hsts {
        out.extend_from_slice(b"strict-transport-security: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if extras.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A chunked body that does not follow RFC 9112 section 7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { digits: u8 },
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Finds the end of a chunked body as it streams past, without changing it: the bytes are
/// forwarded as they are, so the client sees the upstream's chunks and trailers.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: Chunk,
    size: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: Chunk::Size { digits: 0 },
            size: 0,
        }
    }
}

impl ChunkedScanner {
    pub fn done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Consume `buf`; returns how many of its bytes belong to the body (fewer than `buf.len()`
    /// only when the body ends inside it).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                Chunk::Done => return Ok(i),
                Chunk::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(BadChunk);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        Chunk::Size { digits: digits + 1 }
                    } else if digits == 0 {
                        return Err(BadChunk);
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        Chunk::Extension
                    } else if b == b'\r' {
                        Chunk::SizeLf
                    } else {
                        return Err(BadChunk);
                    }
                }
                Chunk::Extension => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\t' => Chunk::Extension,
                    0..=0x1f | 0x7f => return Err(BadChunk),
                    _ => Chunk::Extension,
                },
                Chunk::SizeLf if b == b'\n' => {
                    if self.size == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data
                    }
                }
                Chunk::Data => {
                    let take =
                        (buf.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { digits: 0 },
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::TrailerLine => match b {
                    b'\r' => Chunk::TrailerLf,
                    b'\n' => return Err(BadChunk),
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                _ => return Err(BadChunk),
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests;
