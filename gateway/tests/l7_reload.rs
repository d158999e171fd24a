//! Hot reload: 200 configuration changes while a load generator and open WebSockets run; zero
//! failed requests, zero dropped tunnels. And a bounded graceful drain on shutdown.

#[path = "common/l7.rs"]
mod l7common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use l7common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open an upgraded tunnel through the gateway; returns the socket after the 101.
async fn websocket(gw: SocketAddr, host: &str) -> TcpStream {
    let mut s = TcpStream::connect(gw).await.expect("connect");
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("101 in time")
            .expect("read");
        assert!(
            n == 1,
            "closed before the 101: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s
}

async fn echo(s: &mut TcpStream, msg: &str) {
    s.write_all(msg.as_bytes())
        .await
        .expect("tunnel open for writing");
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("tunnel open");
    assert_eq!(buf, msg.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_reloads_under_load_drop_nothing() {
    let (a, b) = (
        Origin::start("a", "127.0.0.1").await,
        Origin::start("b", "127.0.0.1").await,
    );
    let base = |i: usize| {
        let eps = if i.is_multiple_of(2) {
            vec![a.addr, b.addr]
        } else {
            vec![a.addr]
        };
        let mut y = [
            service("web", &eps),
            ingress("web", &[], &[("app.example.com", "/", "Prefix", "web")]),
        ]
        .concat();
        // Churn: an extra Ingress appears and disappears, annotations change.
        if i.is_multiple_of(3) {
            y.push_str(&ingress(
                &format!("extra-{i}"),
                &[("proxy-read-timeout", "30")],
                &[(&format!("x{i}.example.com"), "/", "Prefix", "web")],
            ));
        }
        y
    };
    let gw = Gateway::start(&base(0)).await;

    let mut tunnels = Vec::new();
    for _ in 0..5 {
        tunnels.push(websocket(gw.http, "app.example.com").await);
    }
    for t in &mut tunnels {
        echo(t, "hello").await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.http);
        load.push(tokio::spawn(async move {
            let c = client();
            // Bounded: at most 200k requests per worker, and the test stops it sooner.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let req = http::Request::get(format!("http://{addr}/"))
                    .header("host", "app.example.com")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .expect("request");
                match tokio::time::timeout(Duration::from_secs(5), c.request(req)).await {
                    Ok(Ok(r)) if r.status() == 200 => {
                        let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    for i in 1..=200 {
        gw.publish(&base(i)).await;
        if i % 20 == 0 {
            for t in &mut tunnels {
                echo(t, &format!("after reload {i}")).await;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load worker");
    }
    for t in &mut tunnels {
        echo(t, "still here").await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("200 reloads: {ok} requests succeeded, {failed} failed, 5 tunnels open");
    assert_eq!(failed, 0);
    assert!(ok > 200, "the load generator ran during the reloads ({ok})");
    assert_eq!(gw.l7.table().generation, 201);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let a = Origin::start("a", "127.0.0.1").await;
    let gw = Gateway::start(
        &[
            service("web", &[a.addr]),
            ingress("web", &[], &[("", "/", "Prefix", "web")]),
        ]
        .concat(),
    )
    .await;
    let addr = gw.http;
    let slow =
        tokio::spawn(async move { get(&client(), addr, "any", "/slow?sleep=400", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    gw.shutdown().await;
    let (s, _, body) = slow.await.expect("joined");
    assert_eq!(s, 200, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "shutdown waited for the request: {:?} {body}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
