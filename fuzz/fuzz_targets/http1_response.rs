//! The fast path's response codec: `parse_response` never panics, and for every response it
//! takes, the head written downstream parses again with httparse, keeps the status, and frames the
//! body the way the fast path will send it: `Length(n)` with `Content-Length: n` (every copy) and
//! no `Transfer-Encoding`; `Chunked` with `chunked` as the last coding and no `Content-Length`.
//! The first input byte chooses the request method and the extras; the rest is the response.
#![no_main]

use portico_l7::engine::fast::codec::{Framing, ResponseExtras, parse_response, write_downstream_head};
use libfuzzer_sys::fuzz_target;
use portico_fuzz::{content_length, headers, values, written_headers};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 != 0;
    let mut h = headers();
    let Ok(Some(resp)) = parse_response(data, &mut h, head_request) else {
        return;
    };
    assert!(resp.head_len <= data.len(), "head longer than the input");
    let extras = ResponseExtras {
        set_cookie: (flags & 2 != 0).then_some(b"route=abc; Path=/; HttpOnly".as_slice()),
        hsts: (flags & 4 != 0).then_some(b"max-age=31536000".as_slice()),
        close: flags & 8 != 0 || resp.close,
    };
    let mut out = Vec::new();
    write_downstream_head(&mut out, &resp, &extras);

    let mut h2 = written_headers();
    let mut again = httparse::Response::new(&mut h2);
    match again.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "bytes after the head"),
        other => panic!(
            "the downstream head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(again.version, Some(1));
    assert_eq!(again.code, Some(resp.code));

    let lengths = values(again.headers, "content-length");
    let codings = values(again.headers, "transfer-encoding");
    let show = || String::from_utf8_lossy(&out).into_owned();
    match resp.framing {
        Framing::Length(n) => {
            assert!(
                !lengths.is_empty(),
                "Length({n}) without Content-Length\n{}",
                show()
            );
            for l in &lengths {
                assert_eq!(
                    content_length(l),
                    Some(n),
                    "Content-Length is not {n}\n{}",
                    show()
                );
            }
            assert!(
                codings.is_empty(),
                "Length({n}) with Transfer-Encoding\n{}",
                show()
            );
        }
        Framing::Chunked => {
            assert!(
                lengths.is_empty(),
                "chunked with Content-Length\n{}",
                show()
            );
            let last = codings
                .iter()
                .flat_map(|v| v.split(|b| *b == b','))
                .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
                .rfind(|t| !t.is_empty());
            assert_eq!(
                last.as_deref(),
                Some("chunked"),
                "chunked framing\n{}",
                show()
            );
        }
        Framing::UntilClose => {
            assert!(
                lengths.is_empty(),
                "until-close with Content-Length\n{}",
                show()
            );
            assert!(resp.close, "until-close framing on a reusable connection");
        }
        Framing::Empty => {}
    }
    if extras.close {
        assert!(
            values(again.headers, "connection")
                .iter()
                .any(|v| v.eq_ignore_ascii_case(b"close")),
            "close requested but no Connection: close\n{}",
            show()
        );
    }
});
