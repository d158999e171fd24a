//! Request bodies on both HTTP/1.1 engines: a body is read before any upstream connection is
//! taken (slow clients hold none), a stalled body gets 408, and a chunked body over
//! `proxy-body-size` gets 413 without the origin seeing a byte.

#[path = "common/l7.rs"]
mod l7common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use l7common::*;
use portico_l7::L7Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that counts the connections it accepts and answers each request (with a
/// `Content-Length` body) `200 got <n>`.
struct CountingOrigin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl CountingOrigin {
    async fn start() -> CountingOrigin {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some((_, len)) = next_request(&mut c, &mut buf).await {
                        let body = format!("got {len}");
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if c.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingOrigin { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn setup(fast: bool, cfg: L7Config) -> (CountingOrigin, Gateway) {
    let o = CountingOrigin::start().await;
    let yaml = [
        service("body", &[o.addr]),
        ingress("body", &[], &[("body.example.com", "/", "Prefix", "body")]),
        ingress(
            "small",
            &[("proxy-body-size", "1k")],
            &[("small.example.com", "/", "Prefix", "body")],
        ),
        ingress(
            "streamed",
            &[("proxy-request-buffering", "off")],
            &[("streamed.example.com", "/", "Prefix", "body")],
        ),
    ]
    .concat();
    let gw = Gateway::start_with(
        &yaml,
        L7Config {
            fast_h1: fast,
            ..cfg
        },
    )
    .await;
    (o, gw)
}

/// Everything the gateway sends until it closes (bounded by `limit`).
async fn read_until_close(c: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const CLIENTS: usize = 50;
const BODY: usize = 20;

/// `CLIENTS` clients each send a `BODY`-byte body at one byte per 100 ms.
async fn slow_bodies(fast: bool) {
    let (o, gw) = setup(fast, L7Config::default()).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let addr = gw.http;
        clients.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(
                format!(
                    "POST /upload HTTP/1.1\r\nHost: body.example.com\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("head");
            for _ in 0..BODY {
                tokio::time::sleep(Duration::from_millis(100)).await;
                c.write_all(b"x").await.expect("body byte");
            }
            read_until_close(&mut c, Duration::from_secs(10)).await
        }));
    }
    // Half-way through every body, the origin has not been asked anything.
    tokio::time::sleep(Duration::from_millis(BODY as u64 * 50)).await;
    assert_eq!(
        o.accepted(),
        0,
        "upstream connections taken for incomplete bodies (fast={fast})"
    );
    for c in clients {
        let resp = c.await.expect("client");
        assert!(resp.starts_with("HTTP/1.1 200"), "fast={fast}: {resp}");
        assert!(
            resp.ends_with(&format!("got {BODY}")),
            "fast={fast}: {resp}"
        );
    }
    assert!(o.accepted() >= 1, "fast={fast}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_take_no_upstream_connection_until_complete_on_the_fast_path() {
    slow_bodies(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_take_no_upstream_connection_until_complete_on_the_general_path() {
    slow_bodies(false).await;
}

/// With `proxy-request-buffering: "off"` a body streams: the origin is connected at once.
async fn unbuffered_route_streams(fast: bool) {
    let (o, gw) = setup(fast, L7Config::default()).await;
    let mut c = TcpStream::connect(gw.http).await.expect("connect");
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: streamed.example.com\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab",
    )
    .await
    .expect("head");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while o.accepted() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the origin was never connected (fast={fast})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.write_all(b"cd").await.expect("rest");
    let resp = read_until_close(&mut c, Duration::from_secs(10)).await;
    assert!(resp.ends_with("got 4"), "fast={fast}: {resp}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_buffering_off_streams_on_both_engines() {
    unbuffered_route_streams(true).await;
    unbuffered_route_streams(false).await;
}

/// A body that stops arriving gets 408 after the client body timeout; the origin sees nothing.
async fn stalled_body(fast: bool, chunked: bool) {
    let cfg = L7Config {
        client_body_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let (o, gw) = setup(fast, cfg).await;
    let mut c = TcpStream::connect(gw.http).await.expect("connect");
    let req: &[u8] = if chunked {
        b"POST / HTTP/1.1\r\nHost: body.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    } else {
        b"POST / HTTP/1.1\r\nHost: body.example.com\r\nContent-Length: 10\r\n\r\nabc"
    };
    c.write_all(req).await.expect("request");
    let started = tokio::time::Instant::now();
    let resp = read_until_close(&mut c, Duration::from_secs(10)).await;
    assert!(
        resp.starts_with("HTTP/1.1 408"),
        "fast={fast} chunked={chunked}: {resp:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fast={fast} chunked={chunked}: closed after {:?}",
        started.elapsed()
    );
    assert_eq!(o.accepted(), 0, "fast={fast} chunked={chunked}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_on_the_fast_path() {
    stalled_body(true, false).await;
    stalled_body(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_on_the_general_path() {
    stalled_body(false, false).await;
    stalled_body(false, true).await;
}

/// A chunked body over `proxy-body-size` (1k here) gets 413; nothing reaches the origin.
async fn chunked_over_the_limit(fast: bool) {
    let (o, gw) = setup(fast, L7Config::default()).await;
    let mut c = TcpStream::connect(gw.http).await.expect("connect");
    let mut req =
        b"POST / HTTP/1.1\r\nHost: small.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'x'; 512]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.write_all(&req).await.expect("request");
    let resp = read_until_close(&mut c, Duration::from_secs(10)).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "fast={fast}: {resp:?}");
    assert_eq!(o.accepted(), 0, "fast={fast}");
    // A chunked body within the limit is delivered whole, with its length.
    let mut c = TcpStream::connect(gw.http).await.expect("connect");
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: small.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await
    .expect("request");
    let resp = read_until_close(&mut c, Duration::from_secs(10)).await;
    assert!(resp.ends_with("got 5"), "fast={fast}: {resp:?}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413_on_the_fast_path() {
    chunked_over_the_limit(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413_on_the_general_path() {
    chunked_over_the_limit(false).await;
}

/// A request body fed from a channel: sent as the test decides.
struct ChannelBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Many streams on one HTTP/2 connection with bodies still arriving hold no upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_streams_take_no_upstream_connection_until_complete() {
    use http_body_util::BodyExt;
    const STREAMS: usize = 20;
    let (o, gw) = setup(false, L7Config::default()).await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<ChannelBody>();
    let mut senders = Vec::new();
    let mut responses = Vec::new();
    for _ in 0..STREAMS {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(bytes::Bytes::from_static(b"ab"))
            .await
            .expect("send");
        senders.push(tx);
        let req = http::Request::post(format!("http://{}/h2", gw.http))
            .header("host", "body.example.com")
            .body(ChannelBody(rx))
            .expect("request");
        let h2 = h2.clone();
        responses.push(tokio::spawn(async move {
            let resp = h2.request(req).await.expect("response");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        o.accepted(),
        0,
        "upstream connections for incomplete h2 bodies"
    );
    for tx in senders {
        tx.send(bytes::Bytes::from_static(b"cd"))
            .await
            .expect("send");
    }
    for r in responses {
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .expect("answered in time")
            .expect("joined");
        assert_eq!((status.as_u16(), body.as_str()), (200, "got 4"));
    }
    gw.shutdown().await;
}
