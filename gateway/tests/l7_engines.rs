//! Which engine serves a request, and the upstream phase's send timeout on both engines.
//!
//! The fast engine is opt-in: a route goes fast only when the fast engine implements every
//! feature the route uses. The engines are told apart by `date`: hyper's server adds one to
//! every response, the fast engine forwards the origin's head as it came (and this origin sends
//! none).

#[path = "common/l7.rs"]
mod l7common;

use std::net::SocketAddr;
use std::time::Duration;

use l7common::*;
use portico_l7::L7Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An origin answering `ok` to every request head, without a `date` header.
async fn dateless_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if c.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                    match c.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// An origin that accepts, reads a little of the request and then stops reading (its receive
/// buffer is small, so the proxy's writes soon block), and never answers.
async fn slow_reader() -> SocketAddr {
    let s = TcpSocket::new_v4().expect("socket");
    s.set_recv_buffer_size(4096).expect("rcvbuf");
    s.bind("127.0.0.1:0".parse().expect("literal"))
        .expect("bind");
    let l = s.listen(16).expect("listen");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut c, _)) = l.accept().await {
            let mut first = [0u8; 1024];
            let _ = c.read(&mut first).await;
            held.push(c);
        }
    });
    addr
}

/// The response head to `raw` sent on a new connection (the request is written by another
/// task, so a response sent while the request is still being written is read).
async fn head_of(gw: &Gateway, raw: Vec<u8>) -> String {
    let c = TcpStream::connect(gw.http).await.expect("connect");
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&raw).await;
        w
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break String::from_utf8_lossy(&buf[..end]).to_lowercase();
        }
        let n = r.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    writer.abort();
    head
}

fn get(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn a_route_using_a_feature_the_fast_engine_lacks_is_served_by_hyper() {
    let origin = dateless_origin().await;
    let yaml = [
        service("app", &[origin]),
        ingress("plain", &[], &[("plain.test", "/", "Prefix", "app")]),
        ingress(
            "hashed",
            &[("upstream-hash-by", "$request_uri")],
            &[("hashed.test", "/", "Prefix", "app")],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let plain = head_of(&gw, get("plain.test")).await;
    assert!(plain.starts_with("http/1.1 200"), "{plain}");
    assert!(
        !plain.contains("\r\ndate:"),
        "served by the fast engine: {plain}"
    );
    let hashed = head_of(&gw, get("hashed.test")).await;
    assert!(hashed.starts_with("http/1.1 200"), "{hashed}");
    assert!(
        hashed.contains("\r\ndate:"),
        "served by the hyper engine: {hashed}"
    );
    gw.shutdown().await;
}

/// A 4 MiB upload to an origin that stops reading gets 504 once `proxy-send-timeout` (1 s)
/// runs out, well before `proxy-read-timeout` (60 s), as with ingress-nginx.
async fn send_timeout_gives_504(fast: bool) {
    let origin = slow_reader().await;
    let yaml = [
        service("app", &[origin]),
        ingress(
            "app",
            &[("proxy-send-timeout", "1"), ("proxy-body-size", "0")],
            &[("app.test", "/", "Prefix", "app")],
        ),
    ]
    .concat();
    let gw = Gateway::start_with(
        &yaml,
        L7Config {
            fast_h1: fast,
            ..L7Config::default()
        },
    )
    .await;
    let len = 4 << 20;
    let mut raw =
        format!("PUT /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: {len}\r\n\r\n")
            .into_bytes();
    raw.resize(raw.len() + len, b'x');
    let started = tokio::time::Instant::now();
    let head = tokio::time::timeout(Duration::from_secs(20), head_of(&gw, raw))
        .await
        .expect("answered before the read timeout");
    assert!(head.starts_with("http/1.1 504"), "fast={fast}: {head}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "fast={fast}: the send timeout, not the read timeout, ended it"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_send_timeout_gives_504_on_the_fast_engine() {
    send_timeout_gives_504(true).await;
}

#[tokio::test]
async fn the_send_timeout_gives_504_on_the_hyper_engine() {
    send_timeout_gives_504(false).await;
}
