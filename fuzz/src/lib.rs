//! Checks shared by the fuzz targets. Each target in `fuzz_targets/` is a thin wrapper that feeds
//! libFuzzer's bytes to one function here; a property that does not hold panics, which libFuzzer
//! reports as a crash and saves the input.

pub mod differential;

use httparse::Header;

/// Headers for one parse, as the gateway's connection loop allocates them.
pub fn headers<'b>() -> [Header<'b>; portico_l7::engine::fast::codec::MAX_HEADERS] {
    [httparse::EMPTY_HEADER; portico_l7::engine::fast::codec::MAX_HEADERS]
}

/// Room to parse a head the proxy wrote: the peer's header lines (at most
/// [`MAX_HEADERS`](portico_l7::engine::fast::codec::MAX_HEADERS)) plus the few the proxy adds
/// (`X-Forwarded-*`, `X-Real-IP`, `X-Request-ID`; `Set-Cookie`, HSTS, `Connection`).
pub const WRITTEN_HEADERS: usize = portico_l7::engine::fast::codec::MAX_HEADERS + 16;

pub fn written_headers<'b>() -> [Header<'b>; WRITTEN_HEADERS] {
    [httparse::EMPTY_HEADER; WRITTEN_HEADERS]
}

/// Values of every header called `name` (case-insensitive).
pub fn values<'h, 'b>(headers: &'h [Header<'b>], name: &'h str) -> Vec<&'b [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

/// A `Content-Length` value as a number (`None`: not a plain decimal).
pub fn content_length(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Split `data` at the points its first byte chooses: bit `i` of `data[0]` set means a cut after
/// `i + 1` bytes of every 8, so one byte selects one of 256 split patterns. Empty pieces never
/// appear.
pub fn pieces(data: &[u8]) -> (u8, Vec<&[u8]>) {
    let Some((&pattern, rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..rest.len() {
        if pattern & (1 << (i % 8)) != 0 {
            out.push(&rest[start..=i]);
            start = i + 1;
        }
    }
    if start < rest.len() {
        out.push(&rest[start..]);
    }
    (pattern, out)
}
