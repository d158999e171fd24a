//! A raw HTTP/2 client: frames and HPACK written by hand, so a case can send what an h2 library
//! refuses to (connection-specific headers, a `content-length` that disagrees with DATA, a
//! header value with CRLF in it), and reads back the status, the body or the reset.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::Io;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// How the one stream of an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response {
        status: u16,
        body: String,
    },
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code before the response completed.
    GoAway(u32),
    Failed(String),
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix, `first` holding the bits above the prefix.
fn int(out: &mut Vec<u8>, mut v: usize, n: u32, first: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literals without indexing, new names, no Huffman: the bytes exactly.
fn block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in headers {
        out.push(0x00);
        int(&mut out, n.len(), 7, 0);
        out.extend_from_slice(n.as_bytes());
        int(&mut out, v.len(), 7, 0);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn read_int(b: &[u8], i: &mut usize, n: u32) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut v = usize::from(*b.get(*i)?) & max;
    *i += 1;
    if v < max {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 || shift > 28 {
            return Some(v);
        }
    }
}

/// Huffman-coded ASCII digits (RFC 7541 Appendix B: '0'-'2' are 5 bits, '3'-'9' 6 bits).
fn huffman_digits(b: &[u8]) -> Option<String> {
    let bits: Vec<u8> = b
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |k| (byte >> k) & 1))
        .collect();
    let (mut i, mut out) = (0, String::new());
    let take = |i: usize, n: usize| -> Option<u8> {
        bits.get(i..i + n)
            .map(|s| s.iter().fold(0u8, |a, b| a << 1 | b))
    };
    while bits.len() - i >= 5 {
        if bits[i..].iter().all(|b| *b == 1) && bits.len() - i < 8 {
            break; // EOS padding
        }
        match take(i, 5)? {
            d @ 0..=2 => {
                out.push(char::from(b'0' + d));
                i += 5;
            }
            _ => match take(i, 6)? {
                c @ 0x19..=0x1f => {
                    out.push(char::from(b'3' + (c - 0x19)));
                    i += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

/// `:status` from the first field of a response header block.
fn status(b: &[u8]) -> Option<u16> {
    let mut i = 0;
    // Dynamic table size updates come first.
    while b.get(i)? & 0xe0 == 0x20 {
        read_int(b, &mut i, 5)?;
    }
    let first = *b.get(i)?;
    let idx = if first & 0x80 != 0 {
        let idx = read_int(b, &mut i, 7)?;
        let code = [200, 204, 206, 304, 400, 404, 500];
        return idx.checked_sub(8).and_then(|k| code.get(k)).copied();
    } else if first & 0x40 != 0 {
        read_int(b, &mut i, 6)?
    } else {
        read_int(b, &mut i, 4)?
    };
    if !(8..=14).contains(&idx) {
        return None;
    }
    let huffman = b.get(i)? & 0x80 != 0;
    let len = read_int(b, &mut i, 7)?;
    let raw = b.get(i..i + len)?;
    let text = if huffman {
        huffman_digits(raw)?
    } else {
        String::from_utf8(raw.to_vec()).ok()?
    };
    text.parse().ok()
}

/// Send one request on stream 1 (`headers` include the pseudo-headers) with `data` in one DATA
/// frame, and read until the stream ends.
pub async fn request(io: &mut dyn Io, headers: &[(&str, &str)], data: Option<&[u8]>) -> Outcome {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let end = if data.is_none() { END_STREAM } else { 0 };
    out.extend(frame(HEADERS, END_HEADERS | end, 1, &block(headers)));
    if let Some(d) = data {
        out.extend(frame(DATA, END_STREAM, 1, d));
    }
    if let Err(e) = io.write_all(&out).await {
        return Outcome::Failed(format!("write: {e}"));
    }
    match tokio::time::timeout(Duration::from_secs(3), read_stream(io)).await {
        Ok(o) => o,
        Err(_) => Outcome::Failed("timed out".into()),
    }
}

async fn read_stream(io: &mut dyn Io) -> Outcome {
    let mut code = None;
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if let Err(e) = io.read_exact(&mut head).await {
            return Outcome::Failed(format!("connection ended: {e}"));
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (ty, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if let Err(e) = io.read_exact(&mut payload).await {
            return Outcome::Failed(format!("connection ended: {e}"));
        }
        let word = |p: &[u8], at: usize| {
            p.get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .unwrap_or(u32::MAX)
        };
        match ty {
            SETTINGS if flags & ACK == 0 => {
                let _ = io.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
            }
            PING if flags & ACK == 0 => {
                let _ = io.write_all(&frame(PING, ACK, 0, &payload)).await;
            }
            GOAWAY => return Outcome::GoAway(word(&payload, 4)),
            RST_STREAM if stream == 1 => return Outcome::Reset(word(&payload, 0)),
            HEADERS if stream == 1 => {
                if code.is_none() {
                    code = status(&payload);
                    if code.is_none() {
                        return Outcome::Failed(format!("no :status in {payload:02x?}"));
                    }
                }
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            DATA if stream == 1 => {
                body.extend_from_slice(&payload);
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    match code {
        Some(status) => Outcome::Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        None => Outcome::Failed("DATA before HEADERS".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_indexed_literal_and_huffman_forms() {
        assert_eq!(status(&[0x88]), Some(200));
        assert_eq!(status(&[0x8c]), Some(400));
        assert_eq!(status(&[0x08, 0x03, b'5', b'0', b'1']), Some(501));
        // "502" Huffman-coded: 011011 00000 00010; "20" is 00010 00000 and 6 bits of padding.
        assert_eq!(status(&[0x48, 0x82, 0x6c, 0x02]), Some(502));
        assert_eq!(huffman_digits(&[0x10, 0x3f]).as_deref(), Some("20"));
        assert_eq!(huffman_digits(&[0xff, 0x00]), None);
    }
}
