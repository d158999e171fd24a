//! Forwarding headers on both HTTP/1.1 engines: a client cannot name itself someone else
//! (`X-Forwarded-For` and friends are replaced), while a peer in `--trust-forwarded-from` has its
//! chain kept and the client it names used for `X-Real-IP`, allow-lists and the access log.

#[path = "common/l7.rs"]
mod l7common;

use l7common::*;
use portico_l7::{AccessLog, L7Config};

const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-for", "6.6.6.6"),
    ("x-real-ip", "6.6.6.6"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "1"),
    ("forwarded", "for=6.6.6.6;proto=https"),
];

fn yaml(a: &Origin) -> String {
    [
        service("svc-a", &[a.addr]),
        ingress("open", &[], &[("fwd.example.com", "/", "Prefix", "svc-a")]),
        ingress(
            "guarded",
            &[("whitelist-source-range", "198.51.100.0/24")],
            &[("guarded.example.com", "/", "Prefix", "svc-a")],
        ),
    ]
    .concat()
}

fn config(fast: bool, trusted: &[&str]) -> L7Config {
    L7Config {
        fast_h1: fast,
        trust_forwarded_from: trusted
            .iter()
            .map(|r| r.parse().expect("literal"))
            .collect(),
        access_log: AccessLog::Json,
        ..Default::default()
    }
}

async fn spoofed_headers_are_replaced(fast: bool) {
    let a = Origin::start("a", "127.0.0.1").await;
    let gw = Gateway::start_with(&yaml(&a), config(fast, &[])).await;
    let c = client();
    let (s, h, _) = get(&c, gw.http, "fwd.example.com", "/", SPOOFED).await;
    assert_eq!(s, 200, "fast={fast}");
    let all = |n: &str| {
        h.get_all(format!("x-echo-{n}").as_str())
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-forwarded-for"), ["127.0.0.1"], "fast={fast}");
    assert_eq!(all("x-real-ip"), ["127.0.0.1"], "fast={fast}");
    assert_eq!(all("x-forwarded-proto"), ["http"], "fast={fast}");
    assert_eq!(all("x-forwarded-host"), ["fwd.example.com"], "fast={fast}");
    assert_eq!(
        all("x-forwarded-port"),
        [gw.http.port().to_string()],
        "fast={fast}"
    );
    assert!(all("forwarded").is_empty(), "fast={fast}");
    // Nor does a spoofed address open an allow-list.
    let (s, _, _) = get(
        &c,
        gw.http,
        "guarded.example.com",
        "/",
        &[("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(s, 403, "fast={fast}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_forwarding_headers_are_replaced_on_the_fast_path() {
    spoofed_headers_are_replaced(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_forwarding_headers_are_replaced_on_the_general_path() {
    spoofed_headers_are_replaced(false).await;
}

/// The `client` of each JSON access log line.
fn logged_clients(c: &Capture) -> Vec<String> {
    let text = String::from_utf8_lossy(&c.0.lock().expect("lock")).to_string();
    text.lines()
        .filter(|l| l.contains("portico::access"))
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .map(|v| v["client"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn a_trusted_peer_names_the_client(fast: bool) {
    // A current-thread runtime: the gateway's tasks run on this thread and log into `capture`.
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_target(true)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let a = Origin::start("a", "127.0.0.1").await;
    let gw = Gateway::start_with(&yaml(&a), config(fast, &["127.0.0.0/8", "10.0.0.0/8"])).await;
    let c = client();
    let (s, h, _) = get(
        &c,
        gw.http,
        "fwd.example.com",
        "/",
        &[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.7;proto=https"),
        ],
    )
    .await;
    assert_eq!(s, 200, "fast={fast}");
    assert_eq!(
        h["x-echo-x-forwarded-for"], "6.6.6.6, 198.51.100.7, 10.1.2.3, 127.0.0.1",
        "fast={fast}"
    );
    assert_eq!(h["x-echo-x-real-ip"], "198.51.100.7", "fast={fast}");
    assert_eq!(h["x-echo-x-forwarded-proto"], "https", "fast={fast}");
    assert_eq!(
        h["x-echo-x-forwarded-host"], "fwd.example.com",
        "fast={fast}"
    );
    assert_eq!(
        h["x-echo-forwarded"], "for=198.51.100.7;proto=https",
        "fast={fast}"
    );

    // The allow-list sees the client the trusted peer forwarded for.
    let guarded = |xff: &'static str| {
        let c = c.clone();
        let addr = gw.http;
        async move {
            get(
                &c,
                addr,
                "guarded.example.com",
                "/",
                &[("x-forwarded-for", xff)],
            )
            .await
            .0
        }
    };
    assert_eq!(guarded("198.51.100.7").await, 200, "fast={fast}");
    assert_eq!(
        guarded("198.51.100.7, 203.0.113.9").await,
        403,
        "the right-most untrusted entry is the client (fast={fast})"
    );
    gw.shutdown().await;
    assert_eq!(
        logged_clients(&capture),
        ["198.51.100.7", "198.51.100.7", "203.0.113.9"],
        "fast={fast}"
    );
}

#[tokio::test]
async fn a_trusted_peers_chain_is_kept_on_the_fast_path() {
    a_trusted_peer_names_the_client(true).await;
}

#[tokio::test]
async fn a_trusted_peers_chain_is_kept_on_the_general_path() {
    a_trusted_peer_names_the_client(false).await;
}
