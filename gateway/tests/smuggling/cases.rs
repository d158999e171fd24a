//! The HTTP/1.1 case table: one line per case, each with its exact expected outcome.
//!
//! `Refused(status)`: the proxy answers the first request itself with that status (class) and
//! the origin sees no request at all. `Forwarded(requests)`: the origin sees exactly these
//! requests, in order, each once, with `Host` as sent, and the client gets each one's answer in
//! order. `Either`: RFC 9110/9112 allow both (reject, or repair and forward): exactly one of the
//! two holds. Nothing else is accepted: not a 502 or a hang instead of a 4xx, not a second
//! request the client did not frame, not a request still half-sent at the origin.

/// The status class of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Any 4xx.
    Client,
    /// 4xx, or 501 for a transfer coding the proxy does not implement.
    ClientOr501,
    Is(u16),
}

impl Status {
    pub fn matches(self, code: u16) -> bool {
        match self {
            Status::Client => (400..500).contains(&code),
            Status::ClientOr501 => (400..500).contains(&code) || code == 501,
            Status::Is(c) => c == code,
        }
    }
}

/// A request the origin must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub method: &'static str,
    pub target: &'static str,
    pub host: &'static str,
    /// Which recording origin: `app` or `other`.
    pub origin: &'static str,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Expect {
    Refused(Status),
    Forwarded(Vec<Want>),
    Either(Status, Vec<Want>),
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// Write one byte at a time, flushing each.
    pub trickle: bool,
    pub expect: Expect,
}

fn want(method: &'static str, target: &'static str, body: &str) -> Want {
    Want {
        method,
        target,
        host: "app.test",
        origin: "app",
        body: body.as_bytes().to_vec(),
    }
}

/// `POST /public/a` with these headers (after `Host: app.test`) and body.
fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /public/a HTTP/1.1\r\nHost: app.test\r\n{headers}\r\n{body}").into_bytes()
}

fn fwd_post(body: &str) -> Expect {
    Expect::Forwarded(vec![want("POST", "/public/a", body)])
}

fn either_post(body: &str) -> Expect {
    Expect::Either(Status::Client, vec![want("POST", "/public/a", body)])
}

fn refused() -> Expect {
    Expect::Refused(Status::Client)
}

/// A complete request that must never reach the origin as a request of its own.
pub const SMUGGLED: &str = "GET /public/smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// Case 1's payload: the 63 bytes after the head are a request prefix that would swallow the
/// next request on the upstream connection into its `X-Ignore` header.
pub const POISON: &str = "GET /internal-ADMIN-poison HTTP/1.1\r\nHost: app.test\r\nX-Ignore: ";

pub fn case1() -> Vec<u8> {
    assert_eq!(POISON.len(), 63);
    post(
        "Content-Length: 63\r\nConnection: content-length\r\n",
        POISON,
    )
}

/// `Content-Length` framing a chunked terminator and then [`SMUGGLED`], plus `te`.
fn cl_te(te: &str) -> Vec<u8> {
    let body = format!("0\r\n\r\n{SMUGGLED}");
    post(&format!("Content-Length: {}\r\n{te}", body.len()), &body)
}

/// A chunked body carrying [`SMUGGLED`] as its one chunk, with a short `Content-Length` too.
fn te_cl() -> Vec<u8> {
    let body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", &body)
}

fn get(head: &str) -> Vec<u8> {
    head.as_bytes().to_vec()
}

fn case(name: &'static str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        bytes,
        trickle: false,
        expect,
    }
}

/// Every HTTP/1.1 case, numbered as in the suite's brief.
pub fn all() -> Vec<Case> {
    let te_chunked = "Transfer-Encoding: chunked\r\n";
    let chunked_smuggle = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let gets = |a: &'static str, b: &'static str| {
        Expect::Forwarded(vec![want("GET", a, ""), want("GET", b, "")])
    };
    let mut cases = vec![
        // 1. A header named in Connection must not take the request's framing with it.
        case("1 connection: content-length", case1(), either_post(POISON)),
        // 2-3. Nor its Host, nor the proxy's own forwarding headers.
        case(
            "2 connection: host",
            get("GET /public/a HTTP/1.1\r\nHost: app.test\r\nConnection: host\r\n\r\n"),
            Expect::Either(Status::Client, vec![want("GET", "/public/a", "")]),
        ),
        case(
            "3 connection: transfer-encoding",
            post(
                "Transfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            either_post("hello"),
        ),
        case(
            "3 connection: x-forwarded-for",
            get(
                "GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: x-forwarded-for\r\n\r\n",
            ),
            Expect::Either(Status::Client, vec![want("GET", "/public/a", "")]),
        ),
        case(
            "3 connection: x-real-ip",
            get(
                "GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-Real-IP: 10.9.9.9\r\nConnection: x-real-ip\r\n\r\n",
            ),
            Expect::Either(Status::Client, vec![want("GET", "/public/a", "")]),
        ),
        // 4. The classics. CL.TE and TE.CL: reject, or use chunked and close (RFC 9112 6.3).
        case("4 cl.te", cl_te(te_chunked), either_post("")),
        case("4 te.cl", te_cl(), either_post(SMUGGLED)),
        // TE.TE: a coding list whose final coding is not chunked is a 400 (RFC 9112 6.3);
        // a coding the proxy does not implement (anything but one chunked) is a 501 (6.1).
        case(
            "4 te: xchunked",
            cl_te("Transfer-Encoding: xchunked\r\n"),
            refused(),
        ),
        case(
            "4 te: ' chunked'",
            cl_te("Transfer-Encoding:  chunked\r\n"),
            either_post(""),
        ),
        case(
            "4 te: 'chunked\\t'",
            cl_te("Transfer-Encoding: chunked\t\r\n"),
            either_post(""),
        ),
        case(
            "4 te: '\\tchunked'",
            cl_te("Transfer-Encoding:\tchunked\r\n"),
            either_post(""),
        ),
        case(
            "4 te: CHUNKED",
            cl_te("Transfer-Encoding: CHUNKED\r\n"),
            either_post(""),
        ),
        case(
            "4 'transfer-encoding : chunked'",
            cl_te("Transfer-Encoding : chunked\r\n"),
            refused(),
        ),
        case(
            "4 te: chunked + te: cow",
            cl_te("Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n"),
            refused(),
        ),
        case(
            "4 te: cow + te: chunked",
            cl_te("Transfer-encoding: cow\r\nTransfer-Encoding: chunked\r\n"),
            Expect::Refused(Status::ClientOr501),
        ),
        case(
            "4 te: chunked twice",
            cl_te("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Expect::Refused(Status::ClientOr501),
        ),
        case(
            "4 te: chunked, chunked",
            cl_te("Transfer-Encoding: chunked, chunked\r\n"),
            Expect::Refused(Status::ClientOr501),
        ),
        case(
            "4 te: chunked, identity",
            cl_te("Transfer-Encoding: chunked, identity\r\n"),
            refused(),
        ),
        case(
            "4 te: identity",
            cl_te("Transfer-Encoding: identity\r\n"),
            Expect::Refused(Status::ClientOr501),
        ),
        case(
            "4 te: gzip, chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            Expect::Refused(Status::Is(501)),
        ),
        case(
            "4 te: \"chunked\"",
            cl_te("Transfer-Encoding: \"chunked\"\r\n"),
            refused(),
        ),
        case(
            "4 te: chunk",
            cl_te("Transfer-Encoding: chunk\r\n"),
            refused(),
        ),
        case("4 te: empty", cl_te("Transfer-Encoding: \r\n"), refused()),
        case(
            "4 te: chunked\\0",
            cl_te("Transfer-Encoding: chunked\0\r\n"),
            refused(),
        ),
        case(
            "4 te: obs-fold value",
            cl_te("Transfer-Encoding:\r\n chunked\r\n"),
            either_post(""),
        ),
        case(
            "4 te inside a continuation line",
            cl_te("X-Pad: a\r\n Transfer-Encoding: chunked\r\n"),
            either_post(&format!("0\r\n\r\n{SMUGGLED}")),
        ),
        case(
            "4 te on http/1.0",
            {
                let body = format!("0\r\n\r\n{SMUGGLED}");
                format!("POST /public/a HTTP/1.0\r\nHost: app.test\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}", body.len()).into_bytes()
            },
            refused(),
        ),
        case(
            "4 transfer_encoding (underscore) is just a header",
            cl_te("Transfer_Encoding: chunked\r\n"),
            fwd_post(&format!("0\r\n\r\n{SMUGGLED}")),
        ),
        // Content-Length: one valid decimal, or a 400 (RFC 9112 6.3, RFC 9110 8.6).
        case(
            "4 cl twice, same value",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            either_post("hello"),
        ),
        case(
            "4 cl: 5, 5",
            post("Content-Length: 5, 5\r\n", "hello"),
            either_post("hello"),
        ),
        case(
            "4 cl twice, different values",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            refused(),
        ),
        case(
            "4 cl: +5",
            post("Content-Length: +5\r\n", "hello"),
            refused(),
        ),
        case(
            "4 cl: -1",
            post("Content-Length: -1\r\n", "hello"),
            refused(),
        ),
        case(
            "4 cl: 0x5",
            post("Content-Length: 0x5\r\n", "hello"),
            refused(),
        ),
        case(
            "4 cl: 5 5",
            post("Content-Length: 5 5\r\n", "hello"),
            refused(),
        ),
        case(
            "4 cl: empty",
            post("Content-Length: \r\n", "hello"),
            refused(),
        ),
        case(
            "4 cl: 005",
            post("Content-Length: 005\r\n", "hello"),
            fwd_post("hello"),
        ),
        case(
            "4 cl: 2^64 overflows",
            post("Content-Length: 18446744073709551616\r\n", "hello"),
            refused(),
        ),
        case(
            "4 'content-length : 5'",
            post("Content-Length : 5\r\n", "hello"),
            refused(),
        ),
        // Chunked bodies (RFC 9112 7.1).
        case(
            "4 chunk extension",
            post(te_chunked, "5;name=value\r\nhello\r\n0\r\n\r\n"),
            fwd_post("hello"),
        ),
        case(
            "4 chunk size zz",
            post(te_chunked, "zz\r\nhello\r\n0\r\n\r\n"),
            refused(),
        ),
        case(
            "4 chunk size -5",
            post(te_chunked, "-5\r\nhello\r\n0\r\n\r\n"),
            refused(),
        ),
        case(
            "4 chunk size 0x5",
            post(te_chunked, "0x5\r\nhello\r\n0\r\n\r\n"),
            refused(),
        ),
        case(
            "4 chunk size overflows",
            post(te_chunked, "10000000000000005\r\nhello\r\n0\r\n\r\n"),
            refused(),
        ),
        case(
            "4 chunk longer than its size",
            post(te_chunked, "3\r\nhello\r\n0\r\n\r\n"),
            refused(),
        ),
        case(
            "4 chunk size with bare LF",
            post(te_chunked, "5\nhello\r\n0\r\n\r\n"),
            either_post("hello"),
        ),
        case(
            "4 chunk carrying a request",
            post(te_chunked, &chunked_smuggle),
            fwd_post(SMUGGLED),
        ),
        // Heads.
        case(
            "4 bare LF line ends",
            get("GET /public/a HTTP/1.1\nHost: app.test\n\n"),
            Expect::Either(Status::Client, vec![want("GET", "/public/a", "")]),
        ),
        case(
            "4 NUL in a header value",
            get("GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-A: a\0b\r\n\r\n"),
            refused(),
        ),
        case(
            "4 NUL in a header name",
            get("GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-\0A: b\r\n\r\n"),
            refused(),
        ),
        case(
            "4 header name with a space",
            get("GET /public/a HTTP/1.1\r\nHost: app.test\r\nX A: b\r\n\r\n"),
            refused(),
        ),
        case(
            "4 'host : app.test'",
            get("GET /public/a HTTP/1.1\r\nHost : app.test\r\n\r\n"),
            refused(),
        ),
        case(
            "4 no host",
            get("GET /public/a HTTP/1.1\r\nX-A: b\r\n\r\n"),
            refused(),
        ),
        case(
            "4 two hosts",
            get("GET /public/a HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n"),
            refused(),
        ),
        case(
            "4 request line with two spaces",
            get("GET  /public/a HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            Expect::Either(Status::Client, vec![want("GET", "/public/a", "")]),
        ),
        case(
            "4 http/1.0 keep-alive with a body",
            get(
                "POST /public/a HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
            ),
            fwd_post("hello"),
        ),
        case("4 http/0.9", get("GET /public/a\r\n\r\n"), refused()),
        case(
            "4 pipelined GETs",
            get(
                "GET /public/p1 HTTP/1.1\r\nHost: app.test\r\n\r\nGET /public/p2 HTTP/1.1\r\nHost: app.test\r\n\r\n",
            ),
            gets("/public/p1", "/public/p2"),
        ),
        case(
            "4 pipelined POST and GET",
            {
                let mut b = post("Content-Length: 5\r\n", "hello");
                b.extend_from_slice(b"GET /public/p2 HTTP/1.1\r\nHost: app.test\r\n\r\n");
                b
            },
            Expect::Forwarded(vec![
                want("POST", "/public/a", "hello"),
                want("GET", "/public/p2", ""),
            ]),
        ),
        // 5. Methods are case-sensitive tokens; a lowercase GET is nobody's GET.
        case(
            "5 lowercase method",
            get("get /public/a HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            Expect::Refused(Status::Is(400)),
        ),
        // 6. Absolute-form: the target's authority wins over Host (RFC 9112 3.2.2).
        case(
            "6 absolute-form routes by its authority",
            get("GET {scheme}://other.test/public/a HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            Expect::Forwarded(vec![Want {
                host: "other.test",
                origin: "other",
                ..want("GET", "/public/a", "")
            }]),
        ),
        // 7. /admin is allow-listed to 10.0.0.0/8; no spelling of it gets past.
        case(
            "7 /admin itself",
            get("GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            Expect::Refused(Status::Is(403)),
        ),
        case(
            "7 /public/../admin",
            get("GET /public/../admin HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            refused(),
        ),
        case(
            "7 /public/%2e%2e/admin",
            get("GET /public/%2e%2e/admin HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            refused(),
        ),
        case(
            "7 /public/..%2fadmin",
            get("GET /public/..%2fadmin HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            refused(),
        ),
        case(
            "7 //admin",
            get("GET //admin HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            refused(),
        ),
    ];
    // 4. Case 1 trickled byte by byte: every split point of the payload, on one connection.
    let mut trickled = case("4 case 1 byte by byte", case1(), either_post(POISON));
    trickled.trickle = true;
    cases.push(trickled);
    cases
}
