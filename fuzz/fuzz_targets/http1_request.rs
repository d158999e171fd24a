//! The fast path's request codec: `parse_request` never panics, and for every request it takes,
//! the head written upstream parses again with httparse, carries exactly one `Host` (the one the
//! client sent) and a `Content-Length` equal to the length the fast path frames the body with.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use portico_l7::engine::fast::codec::{Forwarding, parse_request, write_upstream_head};
use libfuzzer_sys::fuzz_target;
use portico_fuzz::{content_length, headers, values, written_headers};

fuzz_target!(|data: &[u8]| {
    let mut h = headers();
    let Ok(Some(req)) = parse_request(data, &mut h) else {
        return;
    };
    assert!(req.head_len <= data.len(), "head longer than the input");
    assert!(
        req.target.starts_with('/'),
        "target {:?} is not origin-form",
        req.target
    );

    // A trusted peer (its forwarding headers kept) for odd-length inputs, else an untrusted one.
    let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let fwd = Forwarding::new(peer, false, 8080, data.len() % 2 == 1);
    let mut out = Vec::new();
    write_upstream_head(&mut out, &req, req.path(), &fwd, peer, || [b'r'; 32]);

    let mut h2 = written_headers();
    let mut again = httparse::Request::new(&mut h2);
    match again.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "bytes after the head"),
        other => panic!(
            "the upstream head does not parse again: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(again.method, Some(req.method));
    assert_eq!(again.path, Some(req.target));
    assert_eq!(again.version, Some(1));

    let hosts = values(again.headers, "host");
    assert_eq!(
        hosts.len(),
        1,
        "upstream head must carry exactly one Host, got {hosts:?}\n{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        std::str::from_utf8(hosts[0]).map(str::trim),
        Ok(req.host),
        "Host changed on the way upstream"
    );

    let lengths = values(again.headers, "content-length");
    if req.content_length > 0 {
        assert_eq!(
            lengths.len(),
            1,
            "a body of {} bytes needs exactly one Content-Length upstream, got {lengths:?}\n{}",
            req.content_length,
            String::from_utf8_lossy(&out)
        );
    } else {
        assert!(
            lengths.len() <= 1,
            "several Content-Length upstream: {lengths:?}"
        );
    }
    for l in lengths {
        assert_eq!(
            content_length(l),
            Some(req.content_length),
            "upstream Content-Length {:?} is not the framed length {}",
            String::from_utf8_lossy(l),
            req.content_length
        );
    }
    assert!(
        values(again.headers, "transfer-encoding").is_empty(),
        "Transfer-Encoding forwarded upstream"
    );
});
