//! Path normalisation before routing and policy, on both HTTP/1.1 engines: requests written
//! to climb from an open route into an allow-listed one are refused, and the origin is sent
//! the normalised path. Raw TCP, so the request target crosses the wire exactly as written.

#[path = "common/l7.rs"]
mod l7common;

use std::net::SocketAddr;
use std::time::Duration;

use l7common::*;
use portico_l7::L7Config;
use portico_l7::path::EncodedSlashes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "paths.example.com";

/// `/public` open, `/admin` only for 10.0.0.0/8 (the tests connect from 127.0.0.1), one Service.
fn yaml(origin: SocketAddr) -> String {
    [
        service("app", &[origin]),
        ingress("public", &[], &[(HOST, "/public", "Prefix", "app")]),
        ingress(
            "admin",
            &[("whitelist-source-range", "10.0.0.0/8")],
            &[(HOST, "/admin", "Prefix", "app")],
        ),
    ]
    .concat()
}

/// Send `GET <target>` on a new connection; the status and the body.
async fn raw_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{target}: no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

const ATTACKS: [&str; 7] = [
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/..%2fadmin",
    "//admin",
    "/public/./../admin",
    "/%2e%2e/x",
    "/a/%2Fb",
];

async fn climbing_paths_are_refused(cfg: L7Config) {
    let origin = Origin::start("app", "127.0.0.1").await;
    let gw = Gateway::start_with(&yaml(origin.addr), cfg).await;

    // The routes work as configured.
    let (s, body) = raw_get(gw.http, "/public/a").await;
    assert_eq!(
        (s, body.as_str()),
        (200, "origin=app path=/public/a host=paths.example.com")
    );
    assert_eq!(raw_get(gw.http, "/admin").await.0, 403);

    for target in ATTACKS {
        let (s, body) = raw_get(gw.http, target).await;
        assert!(s == 403 || s == 400, "{target}: {s} {body}");
    }
    // Refused before routing: counted as unrouted. (`/public/../admin`, `/public/./../admin`
    // and `//admin` are routed to /admin, whose allow-list answers 403.)
    let before = gw.metrics.unrouted.get();
    for (target, want) in [
        ("/%2e%2e/x", 400),
        ("/public/..%2fadmin", 400),
        ("/public/%zz", 400),
        ("/public/%00", 400),
        ("/public/..\\admin", 400),
    ] {
        assert_eq!(raw_get(gw.http, target).await.0, want, "{target}");
    }
    assert_eq!(gw.metrics.unrouted.get() - before, 5);

    // What reaches the origin is the normalised path; the query goes as it came.
    for (target, seen) in [
        ("/public/x/../y", "/public/y"),
        ("/public//x/./%7euser/%41", "/public/x/~user/A"),
        (
            "/public/x/../y?next=/../admin&a=%2f",
            "/public/y?next=/../admin&a=%2f",
        ),
        ("/admin/../public/z", "/public/z"),
    ] {
        let (s, body) = raw_get(gw.http, target).await;
        assert_eq!(s, 200, "{target}: {body}");
        assert_eq!(
            body,
            format!("origin=app path={seen} host={HOST}"),
            "{target}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn climbing_paths_are_refused_on_the_fast_path() {
    climbing_paths_are_refused(L7Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn climbing_paths_are_refused_on_the_hyper_engine() {
    climbing_paths_are_refused(L7Config {
        fast_h1: false,
        ..Default::default()
    })
    .await;
}

/// `--encoded-slashes keep`: `%2F` is part of its segment, never a separator, on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_kept_are_opaque() {
    let origin = Origin::start("app", "127.0.0.1").await;
    for fast_h1 in [true, false] {
        let cfg = L7Config {
            fast_h1,
            encoded_slashes: EncodedSlashes::Keep,
            ..Default::default()
        };
        let gw = Gateway::start_with(&yaml(origin.addr), cfg).await;
        for (target, seen) in [
            ("/public/..%2fadmin", "/public/..%2Fadmin"),
            ("/public/a%2Fb/../c", "/public/c"),
        ] {
            let (s, body) = raw_get(gw.http, target).await;
            assert_eq!(s, 200, "fast={fast_h1} {target}: {body}");
            assert_eq!(body, format!("origin=app path={seen} host={HOST}"));
        }
        assert_eq!(raw_get(gw.http, "/public/../admin").await.0, 403);
        assert_eq!(raw_get(gw.http, "/../admin").await.0, 400);
        gw.shutdown().await;
    }
}

/// `rewrite-target` and `app-root` act on the normalised path, on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_and_redirects_see_the_normalised_path() {
    let origin = Origin::start("app", "127.0.0.1").await;
    let yaml = [
        service("app", &[origin.addr]),
        ingress(
            "rewrite",
            &[("use-regex", "true"), ("rewrite-target", "/v2/$2")],
            &[(HOST, "/api(/|$)(.*)", "ImplementationSpecific", "app")],
        ),
        ingress(
            "root",
            &[("app-root", "/app1")],
            &[("root.example.com", "/", "Prefix", "app")],
        ),
    ]
    .concat();
    for fast_h1 in [true, false] {
        let cfg = L7Config {
            fast_h1,
            ..Default::default()
        };
        let gw = Gateway::start_with(&yaml, cfg).await;
        let (s, body) = raw_get(gw.http, "/x/../api//items/./7?q=/../1").await;
        assert_eq!(s, 200, "fast={fast_h1}: {body}");
        assert_eq!(
            body,
            format!("origin=app path=/v2/items/7?q=/../1 host={HOST}")
        );

        let mut s = TcpStream::connect(gw.http).await.expect("connect");
        s.write_all(b"GET /x/.. HTTP/1.1\r\nHost: root.example.com\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        assert!(
            text.starts_with("http/1.1 302") && text.contains("location: /app1"),
            "fast={fast_h1}: {text}"
        );
        gw.shutdown().await;
    }
}
