//! Request path normalisation, applied by both engines before routing, policy and forwarding,
//! so that the path a route and an allow-list see is the path the backend is sent.
//!
//! [`normalize`] takes the path of an origin-form request target (no query) and either returns
//! it unchanged (`Cow::Borrowed`, no allocation), a normalised copy, or a [`PathError`] (answered
//! with `400 Bad Request`). The rules, in the order they apply:
//!
//! 1. The path starts with `/` ([`PathError::NotAbsolute`]); `*` and authority-form are the
//!    caller's to handle.
//! 2. Raw control characters (0x00–0x1F, 0x7F) are refused ([`PathError::NulOrControl`]), and
//!    so is a raw `#` ([`PathError::Fragment`]): a request target carries no fragment.
//! 3. Percent-escapes: an escape of an unreserved character (ALPHA DIGIT `-` `.` `_` `~`) is
//!    decoded (`%41` -> `A`, `%2e` -> `.`); every other escape is kept with its hex digits
//!    uppercased (`%3f` -> `%3F`). A malformed escape (`%`, `%4`, `%zz`) is refused
//!    ([`PathError::BadEscape`]), and so is `%00` ([`PathError::NulOrControl`]).
//! 4. Encoded slashes `%2F` and encoded backslashes `%5C`, and raw backslashes `\`: with
//!    [`EncodedSlashes::Reject`] (the default) a path holding one is refused
//!    ([`PathError::EncodedSlash`], [`PathError::Backslash`]), as Apache's default
//!    `AllowEncodedSlashes Off` and Envoy's `REJECT_REQUEST` do. Decoding them would break
//!    applications that put `%2F` inside a segment; keeping them lets a backend that decodes
//!    later (or a WHATWG URL parser, which reads `\` as `/`) see `..%2F` as a climb past the
//!    route that was checked. With [`EncodedSlashes::Keep`] they stay encoded (a raw `\`
//!    becomes `%5C`), opaque within their segment, and the path is otherwise normalised.
//! 5. Repeated slashes are merged into one (nginx's `merge_slashes on`, ingress-nginx's default),
//!    before dot segments are resolved: `/a//../b` is `/b`, as in nginx.
//! 6. `.` and `..` segments are resolved (RFC 3986 section 5.2.4), also when written encoded
//!    (`%2e%2E`). A `..` that would climb above the root is refused ([`PathError::AboveRoot`]),
//!    never clamped silently. A path ending in a `.` or `..` segment keeps a trailing slash
//!    (`/a/b/..` is `/a/`).
//!
//! Other bytes, including non-ASCII UTF-8, are kept as they are.

use std::borrow::Cow;

/// What to do with `%2F` and `%5C` (and raw `\`) in a request path (`--encoded-slashes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// Refuse the request with 400.
    #[default]
    Reject,
    /// Keep them encoded, as part of their segment.
    Keep,
}

/// Why a request path was refused; each one is answered with `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("malformed percent-escape at byte {at}")]
    BadEscape { at: usize },
    #[error("NUL or control character at byte {at}")]
    NulOrControl { at: usize },
    #[error("encoded slash or backslash at byte {at}")]
    EncodedSlash { at: usize },
    #[error("backslash at byte {at}")]
    Backslash { at: usize },
    #[error("'#' at byte {at}: a request target has no fragment")]
    Fragment { at: usize },
    #[error("a '..' segment climbs above the root")]
    AboveRoot,
}

/// Normalise a request path; see the module documentation for the rules.
pub fn normalize(path: &str, slashes: EncodedSlashes) -> Result<Cow<'_, str>, PathError> {
    if is_normal(path, slashes) {
        return Ok(Cow::Borrowed(path));
    }
    rebuild(path, slashes).map(Cow::Owned)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The escape at `at` (which holds `%`): its value, if two hex digits follow.
fn escape(b: &[u8], at: usize) -> Result<u8, PathError> {
    let digit = |i: usize| b.get(i).copied().and_then(hex);
    match (digit(at + 1), digit(at + 2)) {
        (Some(h), Some(l)) => Ok(h << 4 | l),
        _ => Err(PathError::BadEscape { at }),
    }
}

/// Whether `path` is already normal (and valid): [`normalize`] would return it unchanged. One
/// pass, no allocation; any doubt answers `false` and leaves the verdict to [`rebuild`].
fn is_normal(path: &str, slashes: EncodedSlashes) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let dot_segment = |s: &[u8]| s == b"." || s == b"..";
    let mut seg_start = 1;
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'/' => {
                let seg = &b[seg_start..i];
                if seg.is_empty() || dot_segment(seg) {
                    return false;
                }
                seg_start = i + 1;
            }
            b'%' => {
                let upper = |i: usize| matches!(b.get(i), Some(b'0'..=b'9' | b'A'..=b'F'));
                if !upper(i + 1) || !upper(i + 2) {
                    return false;
                }
                let v = match escape(b, i) {
                    Ok(v) => v,
                    Err(_) => return false,
                };
                let slash = v == b'/' || v == b'\\';
                if v == 0 || unreserved(v) || (slash && slashes == EncodedSlashes::Reject) {
                    return false;
                }
                i += 2;
            }
            b'\\' | b'#' => return false,
            c if control(c) => return false,
            _ => {}
        }
        i += 1;
    }
    !dot_segment(&b[seg_start..])
}

/// Append segment `seg` (which starts at byte `offset` of the path), escapes normalised.
fn push_segment(
    out: &mut String,
    seg: &str,
    offset: usize,
    slashes: EncodedSlashes,
) -> Result<(), PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = seg.as_bytes();
    let keep = slashes == EncodedSlashes::Keep;
    // Bytes from `lit` up to `i` are copied as they are.
    let mut lit = 0;
    let mut i = 0;
    while i < b.len() {
        let at = offset + i;
        match b[i] {
            b'%' => {
                out.push_str(&seg[lit..i]);
                let v = escape(b, i).map_err(|_| PathError::BadEscape { at })?;
                if v == 0 {
                    return Err(PathError::NulOrControl { at });
                }
                if (v == b'/' || v == b'\\') && !keep {
                    return Err(PathError::EncodedSlash { at });
                }
                if unreserved(v) {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(v >> 4)]));
                    out.push(char::from(HEX[usize::from(v & 0xf)]));
                }
                i += 3;
                lit = i;
            }
            b'\\' if keep => {
                out.push_str(&seg[lit..i]);
                out.push_str("%5C");
                i += 1;
                lit = i;
            }
            b'\\' => return Err(PathError::Backslash { at }),
            b'#' => return Err(PathError::Fragment { at }),
            c if control(c) => return Err(PathError::NulOrControl { at }),
            _ => i += 1,
        }
    }
    out.push_str(&seg[lit..]);
    Ok(())
}

/// The normalised copy of a path that is not normal (or the reason it is refused).
fn rebuild(path: &str, slashes: EncodedSlashes) -> Result<String, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut out = String::with_capacity(path.len());
    out.push('/');
    let mut offset = 1;
    let mut segments = rest.split('/').peekable();
    // Invariant: before each segment, `out` ends with '/'.
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        let start = out.len();
        push_segment(&mut out, raw, offset, slashes)?;
        offset += raw.len() + 1;
        match &out[start..] {
            // Merged slashes.
            "" => {}
            "." => out.truncate(start),
            ".." => {
                out.truncate(start);
                if out.len() == 1 {
                    return Err(PathError::AboveRoot);
                }
                // Drop the previous segment, keep its leading '/'.
                out.pop();
                let prev = out.rfind('/').map_or(0, |k| k + 1);
                out.truncate(prev);
            }
            _ if !last => out.push('/'),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
