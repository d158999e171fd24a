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

use crate::framing::{self, trim};

mod chunked;
mod request;
mod response;
mod upstream_head;

pub use self::chunked::{BadChunk, ChunkedScanner};
pub use self::request::{Handoff, RequestHead, parse_request};
pub use self::response::{
    BadResponse, Framing, ResponseExtras, ResponseHead, parse_response, write_downstream_head,
};
pub use self::upstream_head::{Forwarding, write_upstream_head};

/// Request and response heads with more header lines go to the general path (request) or fail
/// (response), as hyper's default limit does.
pub const MAX_HEADERS: usize = 100;
/// A request head longer than this goes to the general path, which applies its own limit.
pub const MAX_HEAD: usize = 64 * 1024;
/// At most this many header names listed in `Connection` are removed; more goes to the general path.
const MAX_CONNECTION_NAMES: usize = 8;

/// The header names a `Connection` header lists (hop-by-hop for this message only).
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionNames<'b> {
    names: [&'b str; MAX_CONNECTION_NAMES],
    len: usize,
}

impl<'b> ConnectionNames<'b> {
    pub(super) fn new() -> Self {
        Self {
            names: [""; MAX_CONNECTION_NAMES],
            len: 0,
        }
    }

    /// Remember `token`; false when there is no room left (or it is not text). Names that
    /// `Connection` may not remove ([`framing::PROTECTED`]) are not remembered.
    pub(super) fn add(&mut self, token: &'b [u8]) -> bool {
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

    pub(super) fn contains(&self, name: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(super) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty())
}

pub(super) fn decimal(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests;
