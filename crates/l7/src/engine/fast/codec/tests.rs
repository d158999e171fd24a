use std::net::IpAddr;

use httparse::Header;

use super::*;
use proptest::prelude::*;

fn headers() -> [Header<'static>; MAX_HEADERS] {
    [httparse::EMPTY_HEADER; MAX_HEADERS]
}

fn classify(raw: &str) -> Result<Option<usize>, Handoff> {
    let mut h = headers();
    parse_request(raw.as_bytes(), &mut h).map(|r| r.map(|r| r.head_len))
}

#[test]
fn a_plain_request_is_taken() {
    let raw = "GET /a?b=1 HTTP/1.1\r\nHost: Example.com:8080\r\nAccept: */*\r\n\r\nrest";
    let mut h = headers();
    let r = parse_request(raw.as_bytes(), &mut h)
        .expect("taken")
        .expect("complete");
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/a?b=1");
    assert_eq!(r.path(), "/a");
    assert_eq!(r.host, "Example.com:8080");
    assert_eq!(r.head_len, raw.len() - 4);
    assert_eq!(r.content_length, 0);
    assert!(!r.close && r.idempotent());
}

#[test]
fn an_incomplete_head_asks_for_more() {
    assert_eq!(classify("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
}

#[test]
fn anything_unusual_goes_to_the_general_path() {
    let cases = [
        ("GET / HTTP/1.0\r\nHost: a\r\n\r\n", Handoff::Version),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            Handoff::TransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Handoff::ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            Handoff::ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            Handoff::ContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            Handoff::ContentLength,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            Handoff::Upgrade,
        ),
        (
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            Handoff::Expect,
        ),
        ("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Handoff::Target),
        ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Handoff::Target),
        ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Handoff::Target),
        ("GET / HTTP/1.1\r\n\r\n", Handoff::Host),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Handoff::Host,
        ),
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Handoff::Host),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Handoff::Malformed),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            Handoff::Malformed,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b, c, d, e, f, g, h, i\r\n\r\n",
            Handoff::ConnectionNames,
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(classify(raw), Err(want), "{raw:?}");
        assert_eq!(want.refusal(), None, "{raw:?}");
    }
}

#[test]
fn invalid_methods_go_to_the_general_path_which_refuses_them() {
    for raw in [
        "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        "Get / HTTP/1.1\r\nHost: a\r\n\r\n",
        "G.T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET1 / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(classify(raw), Err(Handoff::Method), "{raw:?}");
    }
}

#[test]
fn transfer_codings_other_than_chunked_and_length_with_coding_are_refused() {
    let cases = [
        ("gzip, chunked", Handoff::TransferCoding, 501),
        ("chunked, chunked", Handoff::TransferCoding, 501),
        ("identity", Handoff::TransferCoding, 501),
        (
            "chunked\r\nTransfer-Encoding: chunked",
            Handoff::TransferCoding,
            501,
        ),
        (
            "chunked\r\nContent-Length: 5",
            Handoff::TransferEncodingAndLength,
            400,
        ),
        // A refusal is not hidden behind an earlier reason to hand off.
        (
            "chunked\r\nContent-Length: 5\r\nContent-Length: 6",
            Handoff::TransferEncodingAndLength,
            400,
        ),
        (
            "chunked\r\nUpgrade: websocket\r\nContent-Length: 5",
            Handoff::TransferEncodingAndLength,
            400,
        ),
    ];
    for (te, want, status) in cases {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(classify(&raw), Err(want), "{raw:?}");
        assert_eq!(want.refusal(), Some(status), "{raw:?}");
    }
    let length_first =
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        classify(length_first),
        Err(Handoff::TransferEncodingAndLength)
    );
    assert_eq!(
        classify("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n"),
        Err(Handoff::TransferEncoding),
        "exactly chunked: the general path decodes it"
    );
}

fn upstream_head(raw: &str, tls: bool) -> String {
    let mut h = headers();
    let r = parse_request(raw.as_bytes(), &mut h)
        .expect("taken")
        .expect("complete");
    let mut out = Vec::new();
    let peer = "127.0.0.9".parse().expect("literal");
    let fwd = Forwarding::new(peer, tls, 8080, false);
    write_upstream_head(&mut out, &r, r.path(), &fwd, peer, || [b'7'; 32]);
    String::from_utf8(out).expect("ascii")
}

#[test]
fn the_upstream_head_drops_hop_by_hop_headers_and_adds_forwarding() {
    let got = upstream_head(
        "GET /x HTTP/1.1\r\nHost: a.example.com\r\nConnection: keep-alive, X-Secret\r\n\
         X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.1\r\n\
         X-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\nCookie: a=b\r\n\r\n",
        false,
    );
    assert_eq!(
        got,
        "GET /x HTTP/1.1\r\nHost: a.example.com\r\nCookie: a=b\r\n\
         x-forwarded-for: 127.0.0.9\r\nx-real-ip: 127.0.0.9\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: a.example.com\r\nx-forwarded-port: 8080\r\n\
         x-request-id: 77777777777777777777777777777777\r\n\r\n"
    );
}

#[test]
fn a_trusted_peer_keeps_its_chain_scheme_host_and_port() {
    let raw = "GET /x HTTP/1.1\r\nHost: a.example.com\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.1\r\n\
               X-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.3\r\n\
               Forwarded: for=192.0.2.1\r\nX-Forwarded-Port: 443\r\n\r\n";
    let mut h = headers();
    let r = parse_request(raw.as_bytes(), &mut h)
        .expect("taken")
        .expect("complete");
    let peer: IpAddr = "127.0.0.9".parse().expect("literal");
    let mut out = Vec::new();
    let fwd = Forwarding::new(peer, false, 8080, true);
    let client = "192.0.2.1".parse().expect("literal");
    write_upstream_head(&mut out, &r, r.path(), &fwd, client, || [b'7'; 32]);
    assert_eq!(
        String::from_utf8(out).expect("ascii"),
        "GET /x HTTP/1.1\r\nHost: a.example.com\r\nX-Forwarded-Proto: https\r\n\
         Forwarded: for=192.0.2.1\r\nX-Forwarded-Port: 443\r\n\
         x-forwarded-for: 6.6.6.6, 192.0.2.1, 10.0.0.3, 127.0.0.9\r\nx-real-ip: 192.0.2.1\r\n\
         x-forwarded-host: a.example.com\r\n\
         x-request-id: 77777777777777777777777777777777\r\n\r\n"
    );
}

#[test]
fn an_untrusted_peer_sends_no_forwarding_headers_of_its_own() {
    let got = upstream_head(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
         X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nx-forwarded-for: 7.7.7.7\r\n\r\n",
        false,
    );
    assert_eq!(
        got,
        "GET /x HTTP/1.1\r\nHost: a\r\n\
         x-forwarded-for: 127.0.0.9\r\nx-real-ip: 127.0.0.9\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: a\r\nx-forwarded-port: 8080\r\n\
         x-request-id: 77777777777777777777777777777777\r\n\r\n"
    );
}

#[test]
fn connection_cannot_remove_the_framing_the_host_or_the_forwarding_headers() {
    let got = upstream_head(
        "POST /public/a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 63\r\n\
         X-Request-ID: abc\r\nX-Forwarded-For: 192.0.2.1\r\nForwarded: for=192.0.2.1\r\n\
         Connection: content-length, Host, x-request-id, x-forwarded-for, forwarded, x-secret\r\n\
         X-Secret: 1\r\n\r\n",
        false,
    );
    assert_eq!(
        got,
        "POST /public/a HTTP/1.1\r\nHost: app.test\r\nX-Request-ID: abc\r\n\
         content-length: 63\r\n\
         x-forwarded-for: 127.0.0.9\r\nx-real-ip: 127.0.0.9\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: app.test\r\nx-forwarded-port: 8080\r\n\r\n"
    );
    // Protected names do not use up the room for names that may be removed.
    let many = "GET / HTTP/1.1\r\nHost: a\r\nConnection: host, content-length, x-request-id, \
                x-real-ip, forwarded, x-forwarded-for, x-forwarded-host, x-forwarded-port, a\r\n\r\n";
    assert!(classify(many).is_ok());
}

#[test]
fn underscore_spellings_of_framing_headers_never_reach_the_origin() {
    let got = upstream_head(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent_Length: 63\r\n\
         Transfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nX_Custom: kept\r\n\r\n",
        false,
    );
    assert!(!got.contains("Content_Length"), "{got}");
    assert!(!got.contains("Transfer_Encoding"), "{got}");
    assert!(!got.contains("6.6.6.6"), "{got}");
    assert!(got.contains("X_Custom: kept\r\n"), "{got}");
    assert!(got.contains("content-length: 5\r\n"), "{got}");
}

#[test]
fn httparse_leniencies_do_not_change_where_a_request_ends() {
    // A bare CR inside a value, or a NUL, is refused (hyper then answers 400)...
    for raw in [
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rContent-Length: 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(classify(raw), Err(Handoff::Malformed), "{raw:?}");
    }
    // ...and bare LF line ends, which httparse accepts, end up as CRLF upstream: the origin
    // reads the same headers, and the body by the length written here.
    let got = upstream_head(
        "POST /x HTTP/1.1\nHost: a\nX: 1\nContent-Length: 2\n\nhi",
        false,
    );
    assert!(
        got.starts_with("POST /x HTTP/1.1\r\nHost: a\r\nX: 1\r\ncontent-length: 2\r\n"),
        "{got}"
    );
    assert!(
        !got.contains("\n\n") && !got.replace("\r\n", "").contains('\n'),
        "{got}"
    );
}

#[test]
fn the_body_is_framed_with_the_length_the_proxy_parsed() {
    let got = upstream_head(
        "POST /x HTTP/1.1\r\nContent-Length:  0005 \r\nHost: a\r\n\r\nhello",
        false,
    );
    assert!(got.contains("\r\ncontent-length: 5\r\n"), "{got}");
    assert!(!got.contains("0005"), "{got}");
    let got = upstream_head("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert!(
        !got.to_ascii_lowercase().contains("content-length"),
        "{got}"
    );
}

#[test]
fn a_response_connection_cannot_remove_its_framing() {
    let (_, framing, _, head) = response(
        "HTTP/1.1 200 OK\r\nConnection: content-length, x-internal\r\nX-Internal: 1\r\n\
         Content-Length: 2\r\n\r\n",
        false,
    )
    .expect("valid");
    assert_eq!(framing, Framing::Length(2));
    assert!(head.contains("Content-Length: 2\r\n"), "{head}");
    assert!(!head.contains("X-Internal"), "{head}");
}

#[test]
fn forwarding_text_fits_the_longest_addresses() {
    let v6: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
        .parse()
        .expect("literal");
    let f = Forwarding::new(v6, false, 65535, false);
    assert_eq!(f.peer(), v6.to_string().as_bytes());
    assert_eq!(f.port(), b"65535");
    let f = Forwarding::new("::1".parse().expect("literal"), false, 80, false);
    assert_eq!((f.peer(), f.port()), (&b"::1"[..], &b"80"[..]));
}

#[test]
fn a_client_request_id_is_kept_and_tls_is_told() {
    let got = upstream_head(
        "POST /x HTTP/1.1\r\nHost: a\r\nX-Request-ID: abc\r\nContent-Length: 3\r\n\r\n",
        true,
    );
    assert!(got.contains("X-Request-ID: abc\r\n"), "{got}");
    assert!(!got.contains("x-request-id"), "{got}");
    assert!(got.contains("content-length: 3\r\n"), "{got}");
    assert!(!got.contains("Content-Length"), "{got}");
    assert!(got.contains("x-forwarded-proto: https\r\n"), "{got}");
}

fn response(raw: &str, head_request: bool) -> Result<(u16, Framing, bool, String), BadResponse> {
    let mut h = headers();
    let r = parse_response(raw.as_bytes(), &mut h, head_request)?.expect("complete");
    let mut out = Vec::new();
    write_downstream_head(
        &mut out,
        &r,
        &ResponseExtras {
            set_cookie: Some(b"route=abc; Path=/; HttpOnly"),
            hsts: None,
            close: false,
        },
    );
    Ok((
        r.code,
        r.framing,
        r.close,
        String::from_utf8(out).expect("ascii"),
    ))
}

#[test]
fn response_framing_follows_rfc_9112() {
    let ok = |raw: &str, head: bool| response(raw, head).expect("valid");
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).1,
        Framing::Length(5)
    );
    assert_eq!(
        ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).1,
        Framing::Empty
    );
    assert_eq!(
        ok("HTTP/1.1 204 No Content\r\n\r\n", false).1,
        Framing::Empty
    );
    assert_eq!(
        ok("HTTP/1.1 304 Not Modified\r\n\r\n", false).1,
        Framing::Empty
    );
    let (_, f, close, head) = ok(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        false,
    );
    assert_eq!(f, Framing::Chunked);
    assert!(close, "both framings: not reused");
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let (_, f, close, _) = ok("HTTP/1.1 200 OK\r\n\r\n", false);
    assert_eq!((f, close), (Framing::UntilClose, true));
    let (_, f, close, _) = ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
    assert_eq!((f, close), (Framing::UntilClose, true));
    let (_, f, close, _) = ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
    assert_eq!((f, close), (Framing::Length(1), true));
    assert_eq!(
        response(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            false
        ),
        Err(BadResponse::ContentLength)
    );
    assert_eq!(
        response("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
        Err(BadResponse::ContentLength)
    );
}

#[test]
fn the_downstream_head_strips_hop_by_hop_and_adds_the_cookie() {
    let (code, _, close, head) = response(
        "HTTP/1.1 201 Created\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\n\
         Keep-Alive: timeout=5\r\nContent-Length: 2\r\nX-App: y\r\n\r\n",
        false,
    )
    .expect("valid");
    assert_eq!(code, 201);
    assert!(close);
    assert_eq!(
        head,
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-App: y\r\n\
         set-cookie: route=abc; Path=/; HttpOnly\r\n\r\n"
    );
}

fn scan_in_pieces(body: &[u8], cuts: &[usize]) -> Result<Option<usize>, BadChunk> {
    let mut s = ChunkedScanner::default();
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    bounds.push(body.len());
    bounds.sort_unstable();
    for end in bounds {
        if end < at {
            continue;
        }
        let n = s.feed(&body[at..end])?;
        if s.done() {
            return Ok(Some(at + n));
        }
        at = end;
    }
    Ok(None)
}

#[test]
fn the_chunked_scanner_finds_the_end_and_nothing_more() {
    let body =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    assert_eq!(
        scan_in_pieces(body, &[]),
        Ok(Some(body.len() - 4)),
        "stops before the next message"
    );
    assert_eq!(scan_in_pieces(b"0\r\n\r\n", &[]), Ok(Some(5)));
    assert_eq!(scan_in_pieces(b"5\r\nhel", &[]), Ok(None));
    for bad in [
        &b"x\r\n"[..],
        b"5\r\nhelloX\r\n",
        b"\r\n",
        b"5\nhello\r\n",
        b"1234567890abcdef0\r\n",
        b"0\r\nbad\n\r\n",
    ] {
        assert_eq!(scan_in_pieces(bad, &[]), Err(BadChunk), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn the_chunked_scanner_does_not_care_where_reads_split(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let end = body.len();
        body.extend_from_slice(b"GET / HTTP/1.1\r\n");
        prop_assert_eq!(scan_in_pieces(&body, &cuts), Ok(Some(end)));
    }

    #[test]
    fn request_parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut h = headers();
        let _ = parse_request(&raw, &mut h);
        let mut h = headers();
        let _ = parse_response(&raw, &mut h, false);
    }
}

#[test]
fn the_upstream_target_is_the_given_path_and_the_query_as_it_came() {
    let raw = "GET /a/../b?x=/../%2f HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut h = headers();
    let r = parse_request(raw.as_bytes(), &mut h)
        .expect("taken")
        .expect("complete");
    let peer = "127.0.0.9".parse().expect("literal");
    let fwd = Forwarding::new(peer, false, 80, false);
    let mut out = Vec::new();
    write_upstream_head(&mut out, &r, "/b", &fwd, peer, || [b'7'; 32]);
    assert!(out.starts_with(b"GET /b?x=/../%2f HTTP/1.1\r\n"));
    out.clear();
    write_upstream_head(&mut out, &r, r.path(), &fwd, peer, || [b'7'; 32]);
    assert!(out.starts_with(b"GET /a/../b?x=/../%2f HTTP/1.1\r\n"));
}
