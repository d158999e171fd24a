//! The request head written upstream: the client's, minus hop-by-hop headers, with the
//! forwarding headers Portico sets.

use std::io::Write;
use std::net::IpAddr;

use super::request::RequestHead;
use crate::forwarded::{self, Inbound};
use crate::framing;

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

    pub(super) fn peer(&self) -> &[u8] {
        self.peer.as_bytes()
    }

    pub(super) fn port(&self) -> &[u8] {
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
