//! The access log: one JSON line per request, from the fast path and from the general path
//! alike. Its own test binary, because it installs the process-wide log subscriber.

#[path = "common/l7.rs"]
mod l7common;

use l7common::*;
use portico_l7::{AccessLog, L7Config};

/// The JSON objects logged under `portico::access`.
fn access_lines(c: &Capture) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&c.0.lock().expect("lock")).to_string();
    text.lines()
        .filter(|l| l.contains("portico::access"))
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_once_with_its_route_and_status() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_target(true)
        .init();
    let a = Origin::start("a", "127.0.0.1").await;
    let yaml = [
        service("svc-a", &[a.addr]),
        ingress("web", &[], &[("log.example.com", "/", "Prefix", "svc-a")]),
    ]
    .concat();
    let cfg = L7Config {
        access_log: AccessLog::Json,
        ..Default::default()
    };
    let gw = Gateway::start_with(&yaml, cfg).await;
    let c = client();
    assert_eq!(
        get(&c, gw.http, "log.example.com", "/fast?q=1", &[])
            .await
            .0,
        200
    );
    assert_eq!(
        get(&c, gw.http, "nowhere.example.com", "/missing", &[])
            .await
            .0,
        404
    );
    assert_eq!(
        get(&c, gw.http, "log.example.com", "/a/..//fast/%2e/x", &[])
            .await
            .0,
        200
    );
    assert_eq!(
        get(&c, gw.http, "log.example.com", "/a/%zz", &[]).await.0,
        400
    );
    gw.shutdown().await;

    let lines = access_lines(&capture);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let ok = &lines[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/fast", "the query stays out of the log");
    assert_eq!(ok["host"], "log.example.com");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["ingress"], "default/web");
    assert_eq!(ok["service"], "default/svc-a");
    assert_eq!(ok["tls"], false);
    assert!(ok["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    let missing = &lines[1];
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["path"], "/missing");
    assert_eq!(missing["ingress"], "");
    assert_eq!(lines[2]["path"], "/fast/x", "the normalised path is logged");
    assert_eq!(lines[2]["status"], 200);
    assert_eq!(
        (&lines[3]["path"], &lines[3]["status"]),
        (&"/a/%zz".into(), &400.into())
    );
}
