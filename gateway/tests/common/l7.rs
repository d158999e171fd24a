//! Helpers for the L7 router's black-box tests: origins on loopback, manifests to snapshots, the
//! router in-process on 127.0.0.1:0, a plain hyper client.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_l7::{L7, L7Config, Metrics};
use portico_model::control_plane::{Allocations, ControlPlaneConfig, complete};
use portico_model::manifest::parse_file;
use portico_model::routes::{ClassConfig, IngressCache, ingress as routing};
use portico_model::{ClusterState, Invalid, Snapshot, translate};
use portico_runtime::publisher::Publisher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// An origin that answers `origin=<name> path=<path> host=<host>` and echoes request headers
/// as `x-echo-<name>` response headers; `Upgrade` requests get 101 and a byte echo.
pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn origin_handle(
    name: Arc<str>,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.headers().contains_key(http::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut().insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        return Ok(r);
    }
    if let Some(ms) = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("sleep="))
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "origin={name} path={path} host={host}"
    ))));
    for (k, v) in req.headers() {
        if let Ok(n) = http::HeaderName::from_bytes(format!("x-echo-{}", k.as_str()).as_bytes()) {
            r.headers_mut().append(n, v.clone());
        }
    }
    Ok(r)
}

impl Origin {
    pub async fn start(name: &str, ip: &str) -> Origin {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let s = stop.clone();
        let n: Arc<str> = name.into();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = s.cancelled() => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let n = n.clone();
                let s2 = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| origin_handle(n.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! { _ = conn => {}, _ = s2.cancelled() => {} }
                });
            }
        });
        Origin {
            name: name.into(),
            addr,
            stop,
        }
    }
}

/// A Service `name` (port 80, named http) whose endpoints are `addrs`.
pub fn service(name: &str, addrs: &[SocketAddr]) -> String {
    let mut y = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
    );
    for (i, a) in addrs.iter().enumerate() {
        y.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: {}\n  protocol: TCP\nendpoints:\n- addresses: [\"{}\"]\n  conditions:\n    ready: true\n",
            a.port(),
            a.ip()
        ));
    }
    y
}

pub fn snapshot(yaml: &str, generation: u64) -> Snapshot {
    let mut state = ClusterState::default();
    for (origin, parsed) in parse_file("test.yaml", yaml) {
        state.insert(parsed.expect("test manifests are valid"), origin);
    }
    complete(
        &mut state,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&state, generation);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    snap
}

/// `snap` with its Ingresses routed, as the snapshot's writer publishes it.
fn routed(mut snap: Snapshot, (class, cache): &mut (ClassConfig, IngressCache)) -> Snapshot {
    routing::route(&mut snap, class, cache);
    snap
}

/// The router running in-process.
pub struct Gateway {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub l7: L7,
    pub snapshots: Arc<Publisher<Snapshot>>,
    pub metrics: Arc<Metrics>,
    generation: std::sync::atomic::AtomicU64,
    /// The router's class and the translation's cache, as the snapshot's writer keeps them.
    routing: std::sync::Mutex<(ClassConfig, IngressCache)>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    pub async fn start(yaml: &str) -> Gateway {
        Self::start_with(yaml, L7Config::default()).await
    }

    /// The router with the HTTP/1.1 fast engine on (`fast`) or off (every request on hyper).
    pub async fn start_on(yaml: &str, fast: bool) -> Gateway {
        let cfg = L7Config {
            fast_h1: fast,
            ..L7Config::default()
        };
        Self::start_with(yaml, cfg).await
    }

    /// `app.test` routed to the Service `app` with the endpoints `addrs`, on the engine `fast`.
    pub async fn app(addrs: &[SocketAddr], fast: bool) -> Gateway {
        let yaml = [
            service("app", addrs),
            ingress("app", &[], &[("app.test", "/", "Prefix", "app")]),
        ]
        .concat();
        Self::start_on(&yaml, fast).await
    }

    pub async fn start_with(yaml: &str, cfg: L7Config) -> Gateway {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let https = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (http_addr, https_addr) = (
            http.local_addr().expect("addr"),
            https.local_addr().expect("addr"),
        );
        let snapshots = Publisher::new(Snapshot::default());
        let mut routing = (cfg.router(), IngressCache::default());
        snapshots.publish(routed(snapshot(yaml, 1), &mut routing));
        let metrics = Arc::new(Metrics::default());
        let l7 = L7::new(cfg, metrics.clone(), Some(https_addr.port()));
        let stop = CancellationToken::new();
        let (h, p, s) = (l7.clone(), snapshots.clone(), stop.clone());
        let task = tokio::spawn(async move { h.serve(http, Some(https), p, s).await });
        let gw = Gateway {
            http: http_addr,
            https: https_addr,
            l7,
            snapshots,
            metrics,
            generation: 1.into(),
            routing: std::sync::Mutex::new(routing),
            stop,
            task: Some(task),
        };
        gw.wait_generation(1).await;
        gw
    }

    /// Publish a new configuration and wait until the router serves it.
    pub async fn publish(&self, yaml: &str) {
        let g = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let snap = {
            let mut routing = self.routing.lock().expect("not poisoned");
            routed(snapshot(yaml, g), &mut routing)
        };
        self.snapshots.publish(snap);
        self.wait_generation(g).await;
    }

    /// Every configuration error, as the admin API lists them: the snapshot's (the routes'
    /// translation errors among them), then the router's (certificates that do not parse).
    pub fn errors(&self) -> Vec<Invalid> {
        let mut all = self.snapshots.current().errors.to_vec();
        all.extend(self.l7.errors().iter().cloned());
        all
    }

    pub async fn wait_generation(&self, g: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(self.l7.is_ready() && self.l7.table().generation >= g) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "route table {g} not published in time"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("drained in time")
                .expect("joined")
                .expect("ran");
        }
    }
}

pub type TestClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// GET `path` from `addr` with a Host header and extra headers; returns status, headers, body.
pub async fn get(
    c: &TestClient,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut b = Request::get(format!("http://{addr}{path}")).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        c.request(b.body(Empty::new()).expect("request")),
    )
    .await
    .expect("answered in time")
    .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// The `origin=` part of a body.
pub fn origin_of(body: &str) -> &str {
    body.split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix("origin="))
        .unwrap_or("")
}

pub fn ingress(
    name: &str,
    annotations: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
) -> String {
    let mut y = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n"
    );
    if !annotations.is_empty() {
        y.push_str("  annotations:\n");
        for (k, v) in annotations {
            y.push_str(&format!(
                "    {}: \"{v}\"\n",
                if k.contains('/') {
                    k.to_string()
                } else {
                    format!("nginx.ingress.kubernetes.io/{k}")
                }
            ));
        }
    }
    y.push_str("spec:\n  ingressClassName: portico\n  rules:\n");
    for (host, path, ty, svc) in rules {
        if host.is_empty() {
            y.push_str("  - http:\n");
        } else {
            y.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
        }
        y.push_str(&format!(
            "      paths:\n      - path: {path}\n        pathType: {ty}\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 80\n"
        ));
    }
    y
}

/// Where a raw HTTP/1.1 head ends (after its blank line), if it is all in `buf`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The `Content-Length` of a raw head, 0 without one.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// A raw origin's read of the next request on `c`: its head (blank line included) and the length
/// of its `Content-Length` body, both taken off `buf`. `None` at EOF or on a read error.
pub async fn next_request(
    c: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, usize)> {
    let mut chunk = vec![0u8; 65536];
    let end = loop {
        if let Some(e) = head_end(buf) {
            break e;
        }
        match c.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len = content_length(&head);
    while buf.len() < end + len {
        match c.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..end + len);
    Some((head, len))
}

/// A `tracing` writer that keeps what is written, for tests that read the logs.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
