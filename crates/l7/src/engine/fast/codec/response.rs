//! The response head: parsed in place, where its body ends, and the head written downstream.

use httparse::Header;

use super::{ConnectionNames, MAX_HEAD, MAX_HEADERS, decimal, tokens};
use crate::framing;

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
