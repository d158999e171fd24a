//! `--l7-threads`: Ingress connections served on listener threads with their own runtimes.

#[path = "common/l7.rs"]
mod l7common;

use std::time::Duration;

use l7common::*;
use portico_l7::L7Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on a new connection; the response as text.
async fn one_shot(addr: std::net::SocketAddr, path: &str) -> String {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t.example.com\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out))
        .await
        .expect("answered in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_threads_serve_http_and_https_and_drain_on_shutdown() {
    let a = Origin::start("a", "127.0.0.1").await;
    let cfg = L7Config {
        threads: 3,
        ..Default::default()
    };
    let gw = Gateway::start_with(
        &[
            service("web", &[a.addr]),
            ingress(
                "web",
                &[("ssl-redirect", "false")],
                &[("t.example.com", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
        cfg,
    )
    .await;

    // Many connections at once: whichever thread accepts each, all are answered.
    let answers = futures::future::join_all(
        (0..30).map(|i| one_shot(gw.http, if i % 2 == 0 { "/even" } else { "/odd" })),
    )
    .await;
    for (i, text) in answers.iter().enumerate() {
        assert!(text.starts_with("HTTP/1.1 200"), "{i}: {text}");
        assert!(text.contains("origin=a"), "{i}: {text}");
    }

    // HTTPS is served by the threads too.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "--max-time",
            "10",
            "-H",
            "Host: t.example.com",
        ])
        .arg(format!("https://127.0.0.1:{}/tls", gw.https.port()))
        .output()
        .await
        .expect("curl runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("origin=a path=/tls"),
        "{out:?}"
    );

    // A request in flight when shutdown starts still completes; afterwards nothing listens (the
    // threads' duplicate sockets are closed too).
    let addr = gw.http;
    let slow = tokio::spawn(async move { one_shot(addr, "/slow?sleep=400").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let text = slow.await.expect("joined");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
