//! `ChunkedScanner::feed` never panics, and where a body ends does not depend on how the bytes
//! arrive: feeding them in pieces (the first input byte picks the cuts) gives the same outcome,
//! the same number of body bytes and the same `done()` as feeding them whole.
#![no_main]

use portico_l7::engine::fast::codec::{BadChunk, ChunkedScanner};
use libfuzzer_sys::fuzz_target;
use portico_fuzz::pieces;

/// Feed `parts` one after the other, as the connection loop does: stop at the end of the body
/// or at the first error. Returns the body bytes seen and whether the scanner is done.
fn scan<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<(usize, bool), BadChunk> {
    let mut s = ChunkedScanner::default();
    let mut total = 0;
    for p in parts {
        let n = s.feed(p)?;
        assert!(n <= p.len(), "feed claimed {n} of {} bytes", p.len());
        assert!(
            n == p.len() || s.done(),
            "stopped early without finishing the body"
        );
        total += n;
        if s.done() {
            break;
        }
    }
    Ok((total, s.done()))
}

fuzz_target!(|data: &[u8]| {
    let (_, parts) = pieces(data);
    let body = data.get(1..).unwrap_or_default();
    let whole = scan([body]);
    let split = scan(parts.iter().copied());
    assert_eq!(
        whole, split,
        "the outcome depends on how the bytes were split"
    );
    if let Ok((n, true)) = whole {
        // The body that was found is complete on its own.
        assert_eq!(scan([&body[..n]]), Ok((n, true)));
    }
});
