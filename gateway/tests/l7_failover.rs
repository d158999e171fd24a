//! An endpoint dying under load loses no request, on both HTTP/1.1 engines: a request whose
//! upstream connection (new or pooled) breaks before any response byte goes to another
//! endpoint when it may be sent twice; a request that surely never reached the upstream (a
//! failed connect) goes to another endpoint whatever its method.

#[path = "common/l7.rs"]
mod l7common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use l7common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An origin answering `200 <name>` after `delay`, whose sockets all close with a reset
/// (`SO_LINGER` 0) when it is killed: its listener goes away and every connection, idle or
/// with a request in flight, is reset, as when the process is killed.
struct MortalOrigin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    kill: CancellationToken,
}

impl MortalOrigin {
    async fn start(name: &'static str, delay: Duration) -> MortalOrigin {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let kill = CancellationToken::new();
        let (h, k) = (hits.clone(), kill.clone());
        tokio::spawn(async move {
            loop {
                let (s, _) = tokio::select! {
                    _ = k.cancelled() => return,
                    r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
                let (h, k) = (h.clone(), k.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let h = h.clone();
                        async move {
                            let _ = req.into_body().collect().await;
                            tokio::time::sleep(delay).await;
                            h.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc);
                    tokio::select! { _ = conn => {}, _ = k.cancelled() => {} }
                });
            }
        });
        MortalOrigin { addr, hits, kill }
    }
}

/// An origin that reads a request head and resets the connection without answering.
async fn black_hole() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            });
        }
    });
    (addr, hits)
}

async fn gateway(addrs: &[SocketAddr], fast: bool) -> Gateway {
    Gateway::app(addrs, fast).await
}

/// A keepalive client connection to the gateway.
async fn client_conn(gw: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let s = TcpStream::connect(gw).await.expect("connect");
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

/// Send one request on `send` once the connection is ready for it.
async fn send(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> hyper::Result<Response<Incoming>> {
    send.ready().await?;
    send.send_request(req).await
}

fn request(method: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/")
        .header("host", "app.test")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

const CONNS: usize = 8;
const PER_CONN: usize = 200;

/// 8 keepalive connections x 200 GETs over three origins; one is killed (reset) after a quarter
/// of the requests. Every request must get a 200.
async fn one_origin_killed_under_load(fast: bool) {
    let delay = Duration::from_millis(1);
    let origins = [
        MortalOrigin::start("a", delay).await,
        MortalOrigin::start("b", delay).await,
        MortalOrigin::start("c", delay).await,
    ];
    let addrs: Vec<_> = origins.iter().map(|o| o.addr).collect();
    let gw = gateway(&addrs, fast).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        let (addr, done) = (gw.http, done.clone());
        clients.push(tokio::spawn(async move {
            let mut send = client_conn(addr).await;
            let mut bad = Vec::new();
            for i in 0..PER_CONN {
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    self::send(&mut send, request("GET", "")),
                )
                .await
                .expect("answered in time");
                match r {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        let _ = resp.into_body().collect().await;
                    }
                    Ok(resp) => bad.push(format!("request {i}: {}", resp.status())),
                    Err(e) => {
                        bad.push(format!("request {i}: {e}"));
                        break;
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            bad
        }));
    }
    while done.load(Ordering::SeqCst) < CONNS * PER_CONN / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let before = origins[0].hits.load(Ordering::SeqCst);
    origins[0].kill.cancel();
    let mut bad = Vec::new();
    for c in clients {
        bad.extend(c.await.expect("client"));
    }
    assert!(before > 0, "the killed origin served before it died");
    let total: usize = origins.iter().map(|o| o.hits.load(Ordering::SeqCst)).sum();
    assert!(
        bad.is_empty(),
        "fast={fast}: {} of {} requests failed: {:?}",
        bad.len(),
        CONNS * PER_CONN,
        &bad[..bad.len().min(10)]
    );
    assert!(total >= CONNS * PER_CONN, "{total}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_origins_fails_no_get_on_the_fast_path() {
    one_origin_killed_under_load(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_origins_fails_no_get_on_the_general_path() {
    one_origin_killed_under_load(false).await;
}

/// A POST goes to another endpoint when the connect failed (it never reached the dead one).
async fn a_post_moves_on_after_a_failed_connect(fast: bool) {
    let live = MortalOrigin::start("live", Duration::ZERO).await;
    let dead = MortalOrigin::start("dead", Duration::ZERO).await;
    dead.kill.cancel();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let gw = gateway(&[dead.addr, live.addr], fast).await;
    let mut send = client_conn(gw.http).await;
    for i in 0..6 {
        let resp = self::send(&mut send, request("POST", "payload"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "fast={fast} POST {i}");
        let _ = resp.into_body().collect().await;
    }
    assert_eq!(live.hits.load(Ordering::SeqCst), 6);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_moves_to_another_endpoint_after_a_failed_connect_on_either_engine() {
    a_post_moves_on_after_a_failed_connect(true).await;
    a_post_moves_on_after_a_failed_connect(false).await;
}

/// An upstream that read the request and reset without answering: a GET is sent again to
/// another endpoint, a POST is not (it may have been acted on) and gets a 502.
async fn only_idempotent_requests_are_sent_twice(fast: bool) {
    let live = MortalOrigin::start("live", Duration::ZERO).await;
    let (hole, hole_hits) = black_hole().await;
    let gw = gateway(&[hole, live.addr], fast).await;
    let mut send = client_conn(gw.http).await;
    for i in 0..4 {
        let resp = self::send(&mut send, request("GET", ""))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "fast={fast} GET {i}");
        let _ = resp.into_body().collect().await;
    }
    assert!(
        hole_hits.load(Ordering::SeqCst) > 0,
        "some GET met the black hole first"
    );
    assert_eq!(live.hits.load(Ordering::SeqCst), 4);
    // A fresh gateway: the black hole is not ejected yet.
    gw.shutdown().await;
    let gw = gateway(&[hole, live.addr], fast).await;
    let (hole_before, live_before) = (
        hole_hits.load(Ordering::SeqCst),
        live.hits.load(Ordering::SeqCst),
    );
    let mut failed = 0;
    for _ in 0..2 {
        let mut send = client_conn(gw.http).await;
        let resp = self::send(&mut send, request("POST", "payload"))
            .await
            .expect("response");
        if resp.status() == StatusCode::BAD_GATEWAY {
            failed += 1;
        } else {
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }
    let hole_posts = hole_hits.load(Ordering::SeqCst) - hole_before;
    let live_posts = live.hits.load(Ordering::SeqCst) - live_before;
    assert_eq!(
        hole_posts, failed,
        "fast={fast}: each POST the black hole took got a 502"
    );
    assert_eq!(
        live_posts,
        2 - failed,
        "fast={fast}: no POST was sent twice"
    );
    assert!(failed > 0, "round robin sent a POST to the black hole");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_requests_that_may_be_sent_twice_are_after_the_upstream_read_them_on_either_engine() {
    only_idempotent_requests_are_sent_twice(true).await;
    only_idempotent_requests_are_sent_twice(false).await;
}
