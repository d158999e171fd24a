//! A draining gateway loses no request: keepalive clients sending requests in a loop when the
//! drain begins each get every answer, the last with `Connection: close` (HTTP/1.1, both
//! engines) or a GOAWAY (HTTP/2), and none meets a reset or a close in place of a response.

#[path = "common/l7.rs"]
mod l7common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use l7common::*;
use tokio::net::TcpStream;

const CLIENTS: usize = 8;
/// Each client stops after this many requests if the drain has not ended it.
const MAX_PER_CLIENT: usize = 2000;

fn request(version: http::Version) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri("http://app.test/?sleep=1")
        .version(version)
        .header("host", "app.test")
        .body(Empty::new())
        .expect("request")
}

async fn gateway(fast: bool) -> (Origin, Gateway) {
    let origin = Origin::start("a", "127.0.0.1").await;
    let gw = Gateway::app(&[origin.addr], fast).await;
    (origin, gw)
}

/// How one client's loop ended.
#[derive(Debug)]
enum Ended {
    /// The last response said `Connection: close`.
    Closed,
    /// HTTP/2: the connection refused new streams before this one was sent.
    NotSent,
    /// A request was sent and got no response.
    Lost(String),
    Limit,
}

async fn h1_client(gw: std::net::SocketAddr, answered: Arc<AtomicUsize>) -> Ended {
    let s = TcpStream::connect(gw).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    for i in 0..MAX_PER_CLIENT {
        if let Err(e) = send.ready().await {
            return Ended::Lost(format!("request {i}: connection closed while idle: {e}"));
        }
        let resp = match tokio::time::timeout(
            Duration::from_secs(10),
            send.send_request(request(http::Version::HTTP_11)),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ended::Lost(format!("request {i}: {e}")),
            Err(_) => return Ended::Lost(format!("request {i}: no answer in 10 s")),
        };
        if resp.status() != StatusCode::OK {
            return Ended::Lost(format!("request {i}: {}", resp.status()));
        }
        let close = resp
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if let Err(e) = resp.into_body().collect().await {
            return Ended::Lost(format!("request {i}: body: {e}"));
        }
        answered.fetch_add(1, Ordering::SeqCst);
        if close {
            return Ended::Closed;
        }
    }
    Ended::Limit
}

async fn h2_client(gw: std::net::SocketAddr, answered: Arc<AtomicUsize>) -> Ended {
    let s = TcpStream::connect(gw).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    for i in 0..MAX_PER_CLIENT {
        if send.ready().await.is_err() {
            return Ended::NotSent;
        }
        let resp = match tokio::time::timeout(
            Duration::from_secs(10),
            send.send_request(request(http::Version::HTTP_2)),
        )
        .await
        {
            Ok(Ok(r)) => r,
            // Refused before it was sent: the GOAWAY had arrived.
            Ok(Err(e)) if e.is_canceled() || e.is_closed() => return Ended::NotSent,
            Ok(Err(e)) => return Ended::Lost(format!("request {i}: {e:?}")),
            Err(_) => return Ended::Lost(format!("request {i}: no answer in 10 s")),
        };
        if resp.status() != StatusCode::OK {
            return Ended::Lost(format!("request {i}: {}", resp.status()));
        }
        if let Err(e) = resp.into_body().collect().await {
            return Ended::Lost(format!("request {i}: body: {e}"));
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
    Ended::Limit
}

async fn drain_under_load(fast: bool, h2: bool) {
    let (_origin, gw) = gateway(fast).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, a) = (gw.http, answered.clone());
            tokio::spawn(async move {
                if h2 {
                    h2_client(addr, a).await
                } else {
                    h1_client(addr, a).await
                }
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < CLIENTS * 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stopping = tokio::spawn(gw.shutdown());
    let mut ends = Vec::new();
    for c in clients {
        ends.push(c.await.expect("client"));
    }
    stopping.await.expect("drained");
    let what = format!("fast={fast} h2={h2}");
    for e in &ends {
        match e {
            Ended::Closed if !h2 => {}
            Ended::NotSent if h2 => {}
            Ended::Lost(why) => panic!("{what}: a request was lost: {why}; all: {ends:?}"),
            other => panic!("{what}: a client ended with {other:?}; all: {ends:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_answers_every_keepalive_request_on_the_fast_path() {
    drain_under_load(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_answers_every_keepalive_request_on_the_general_path() {
    drain_under_load(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_answers_every_http2_request() {
    drain_under_load(true, true).await;
}

/// A keepalive connection idle when the drain begins may still send a request within
/// `DRAIN_IDLE_GRACE`: it is answered, with `Connection: close`, instead of meeting a close.
async fn an_idle_connection_gets_its_next_request_answered(fast: bool) {
    let (_origin, gw) = gateway(fast).await;
    let s = TcpStream::connect(gw.http).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = send
        .send_request(request(http::Version::HTTP_11))
        .await
        .expect("first response");
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    send.ready().await.expect("still open while draining");
    let resp = send
        .send_request(request(http::Version::HTTP_11))
        .await
        .unwrap_or_else(|e| panic!("fast={fast}: the request sent while draining was lost: {e}"));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(http::header::CONNECTION)
            .map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "fast={fast}"
    );
    let _ = resp.into_body().collect().await;
    stopping.await.expect("drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_answered_during_the_drain_on_either_engine() {
    an_idle_connection_gets_its_next_request_answered(true).await;
    an_idle_connection_gets_its_next_request_answered(false).await;
}
