//! The L7 Ingress router: Ingress v1 routing with ingress-nginx's annotations, TLS per SNI,
//! cookie affinity, HTTP/1.1 and HTTP/2, WebSocket tunnelling and hot reload.
//!
//! ```text
//! Publisher<Snapshot{routes, ..}> -> table::compile -> one ArcSwap<RouteTable> -> request path
//! ```
//! The routes are translated from the Ingresses before the snapshot is published (with their
//! errors in the snapshot's one list); the router only binds them to endpoints and certificates.
//! Per-endpoint state (EWMA, ejections) and parsed certificates live beside the table and
//! survive rebuilds; upstream keepalive pools live in the shared clients.
//!
//! ## The request path
//! One pipeline ([`request`]), in phases, each a function of the request's facts and the
//! compiled route: `route` (host and normalised path) -> `policy` (allow-list, redirects,
//! HTTPS redirection, body limit) -> `upstream` (THE loop over attempts: sticky endpoint,
//! balancer, retries, ejection, in-flight count and latency, connect / send / read timeouts)
//! -> `response` (affinity cookie, HSTS) -> `log` (metrics, access log).
//!
//! Two engines ([`engine`]) run it and differ only in how bytes move: [`engine::fast`] parses
//! HTTP/1.1 in place and writes each side in one write; [`engine::hyper`] serves everything
//! else (HTTP/2, upgrades, chunked requests) through hyper's server and pooled clients. The
//! fast engine is opt-in: a compiled route carries the [`request::Features`] it uses, the fast
//! engine declares those it implements ([`engine::fast::IMPLEMENTS`]), and a request goes fast
//! only when its route's set is covered; anything else is the hyper engine's, so a new option
//! never silently bypasses its own logic. The accept loops (`server.rs`) accept and hands each connection
//! to an engine.

pub mod annotations;
mod bind;
pub mod engine;
pub mod forwarded;
pub mod framing;
pub mod metrics;
pub mod path;
pub mod request;
mod server;
pub mod shared;
pub mod table;
pub mod tls;
pub mod upstream;
pub mod view;
mod workers;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use portico_model::{Invalid, ObjectKey, Snapshot};
use portico_runtime::connections::ConnectionLimit;
use portico_runtime::publisher::Publisher;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use bind::bind_listener;
pub use metrics::Metrics;
/// The IngressClass the router serves (the route model's class configuration).
pub use portico_model::routes::ClassConfig as RouterConfig;
pub use portico_model::routes::class::CONTROLLER;
pub use table::{CompileCache, CompileContext, Lookup, Route, RouteTable, compile};
pub use view::{IngressRow, ingress_view};

/// Access log format (one line per request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLog {
    #[default]
    Off,
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct L7Config {
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// The IngressClass name served (default `portico`).
    pub class_name: String,
    /// The IngressClass `spec.controller` served.
    pub controller: String,
    /// Certificate chain and key (PEM) for names without a certificate; generated when `None`.
    pub default_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// `--publish-address`: written to `status.loadBalancer.ingress`.
    pub publish_address: Option<String>,
    /// `--publish-service NS/NAME`: copy that LoadBalancer Service's EXTERNAL-IP instead.
    pub publish_service: Option<ObjectKey>,
    pub access_log: AccessLog,
    /// `Strict-Transport-Security` max-age on HTTPS responses of TLS hosts; off when `None`.
    pub hsts_max_age: Option<u64>,
    /// `--drain-timeout`: how long shutdown waits for in-flight requests and lets idle
    /// keepalive connections send a last request (see [`engine::DRAIN_IDLE_GRACE`]).
    pub drain_timeout: Duration,
    /// Serve plain HTTP/1.1 on the fast path (`--http1-engine portico`, the default) or
    /// everything with hyper (`--http1-engine hyper`).
    pub fast_h1: bool,
    /// Listener threads, each with its own current-thread runtime (`--l7-threads`); 0: the
    /// connections are served on the caller's runtime.
    pub threads: usize,
    /// Requests whose path holds `%2F` or `%5C`: refused (the default) or routed with them
    /// kept encoded (`--encoded-slashes`); see [`path`].
    pub encoded_slashes: path::EncodedSlashes,
    /// `--trust-forwarded-from`: peers whose `X-Forwarded-*` and `Forwarded` headers are
    /// believed (see [`forwarded`]); empty (the default): nobody's.
    pub trust_forwarded_from: Vec<ipnet::IpNet>,
    /// `--request-buffer-size`: request bodies are read up to this many bytes before an
    /// upstream connection is taken (the rest, if any, then streams); 0: bodies stream.
    pub request_buffer_size: usize,
    /// `--client-body-timeout`: the longest wait between two reads of a request body; then
    /// `408 Request Timeout` and the connection closes.
    pub client_body_timeout: Duration,
    /// `--max-connections`: open client connections counted against it (shared with the
    /// LoadBalancer listeners); at the limit the listeners stop accepting. `None`: no limit.
    pub connection_limit: Option<Arc<ConnectionLimit>>,
}

/// `--drain-timeout` default: below Kubernetes' default `terminationGracePeriodSeconds` (30 s),
/// leaving the rest of the process time to stop before SIGKILL.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

impl Default for L7Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 80)),
            https_addr: SocketAddr::from(([0, 0, 0, 0], 443)),
            class_name: "portico".into(),
            controller: CONTROLLER.into(),
            default_cert: None,
            publish_address: None,
            publish_service: None,
            access_log: AccessLog::Off,
            hsts_max_age: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            fast_h1: true,
            threads: 0,
            encoded_slashes: path::EncodedSlashes::Reject,
            trust_forwarded_from: Vec::new(),
            request_buffer_size: shared::DEFAULT_REQUEST_BUFFER,
            client_body_timeout: shared::DEFAULT_CLIENT_BODY_TIMEOUT,
            connection_limit: None,
        }
    }
}

impl L7Config {
    pub fn router(&self) -> RouterConfig {
        RouterConfig {
            class_name: self.class_name.clone(),
            controller: self.controller.clone(),
        }
    }
}

/// A handle on a running (or about to run) router: readiness, errors and views for the admin API.
#[derive(Clone)]
pub struct L7 {
    shared: Arc<shared::Shared>,
    cfg: Arc<L7Config>,
}

impl L7 {
    pub fn new(cfg: L7Config, metrics: Arc<Metrics>, https_port: Option<u16>) -> Self {
        let mut shared = shared::Shared::new(
            cfg.router(),
            metrics,
            cfg.access_log,
            cfg.hsts_max_age,
            https_port,
        );
        shared.fast_h1 = cfg.fast_h1;
        shared.encoded_slashes = cfg.encoded_slashes;
        shared.trusted = forwarded::TrustedProxies::new(cfg.trust_forwarded_from.clone());
        shared.request_buffer = cfg.request_buffer_size;
        shared.client_body_timeout = cfg.client_body_timeout;
        shared.connection_limit = cfg.connection_limit.clone();
        Self {
            shared: Arc::new(shared),
            cfg: Arc::new(cfg),
        }
    }

    /// A route table from a published snapshot is serving.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }

    /// The current route table (one `Arc`).
    pub fn table(&self) -> Arc<RouteTable> {
        self.shared.table.load_full()
    }

    /// Problems found while compiling the current table: TLS Secrets whose certificate does
    /// not parse. Every other Ingress problem is in the snapshot's errors.
    pub fn errors(&self) -> Arc<[Invalid]> {
        self.shared.table.load().cert_errors.clone()
    }

    /// Rows for `gateway get ingresses`.
    pub fn ingress_view(&self, snap: &Snapshot) -> Vec<IngressRow> {
        let addr = view::publish_address(
            snap,
            self.cfg.publish_address.as_deref(),
            self.cfg.publish_service.as_ref(),
        );
        view::ingress_view(snap, &self.shared.router, addr.as_deref())
    }

    /// Compile and publish the table for `snap`, reusing what `cache` holds of earlier
    /// compiles; logs each certificate problem once.
    fn rebuild(&self, snap: &Snapshot, reported: &mut HashSet<String>, cache: &mut CompileCache) {
        let s = &self.shared;
        let ctx = CompileContext {
            registry: &s.registry,
            certs: &s.certs,
            metrics: Some(&s.metrics),
        };
        let started = std::time::Instant::now();
        let table = table::compile(&snap.routes, snap, &ctx, cache);
        let built = started.elapsed();
        let mut now = HashSet::with_capacity(table.cert_errors.len());
        for e in table.cert_errors.iter() {
            let line = e.to_string();
            if !reported.contains(&line) {
                warn!(object = ?e.object, field = %e.field, "ingress problem: {line}");
            }
            now.insert(line);
        }
        *reported = now;
        // The route problems: the translation's (in the snapshot's list) and the certificates'.
        let errors =
            snap.errors.iter().filter(|e| e.kind == "Ingress").count() + table.cert_errors.len();
        let routes = table.served().len();
        s.metrics.config_errors.set(errors as i64);
        s.metrics.config_publishes.inc();
        let old = s.table.swap(Arc::new(table));
        s.ready.store(true, Ordering::Release);
        // Freeing a large table takes milliseconds: not on the thread that serves requests.
        tokio::task::spawn_blocking(move || {
            drop(old);
            release_free_memory();
        });
        info!(
            generation = snap.generation,
            ingresses = routes,
            errors,
            build_us = built.as_micros() as u64,
            publish_us = (started.elapsed() - built).as_micros() as u64,
            "route table published"
        );
    }

    /// Serve until `shutdown`, then drain (bounded by `drain_timeout`).
    pub async fn serve(
        &self,
        http: TcpListener,
        https: Option<TcpListener>,
        snapshots: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let tls = match &https {
            None => None,
            Some(_) => {
                let default = match &self.cfg.default_cert {
                    Some((c, k)) => tls::certified_key(c, k).context("the default certificate")?,
                    None => tls::self_signed().context("generating the default certificate")?,
                };
                let resolver = Arc::new(tls::SniResolver {
                    table: self.shared.table.clone(),
                    default,
                });
                Some(TlsAcceptor::from(
                    tls::server_config(resolver).context("TLS configuration")?,
                ))
            }
        };

        // The table follows the snapshots: rebuilt on every publish, swapped whole.
        let this = self.clone();
        let pubs = snapshots.clone();
        let stop = shutdown.clone();
        let reload = tokio::spawn(async move {
            let mut rx = pubs.subscribe();
            let mut reported = HashSet::new();
            let mut cache = CompileCache::default();
            loop {
                if pubs.is_ready() {
                    this.rebuild(&pubs.current(), &mut reported, &mut cache);
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
            }
        });

        let tracker = TaskTracker::new();
        let conn_stop = CancellationToken::new();
        let mut loops = Vec::new();
        let http_addr = http.local_addr().ok();
        let https = https.zip(tls);
        info!(
            http = ?http_addr,
            https = ?https.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            threads = self.cfg.threads,
            "ingress listeners up"
        );
        let mut workers = None;
        if self.cfg.threads > 0 {
            // The threads accept on duplicates of these sockets; the originals are dropped here.
            workers = Some(
                workers::Workers::spawn(
                    self.cfg.threads,
                    &self.shared,
                    &http,
                    https.as_ref().map(|(l, a)| (l, a.clone())),
                    &tracker,
                    &conn_stop,
                    self.cfg.drain_timeout,
                )
                .context("starting the listener threads")?,
            );
        } else {
            loops.push(tokio::spawn(server::accept_loop(
                self.shared.clone(),
                http,
                None,
                tracker.clone(),
                conn_stop.clone(),
            )));
            if let Some((l, acceptor)) = https {
                loops.push(tokio::spawn(server::accept_loop(
                    self.shared.clone(),
                    l,
                    Some(acceptor),
                    tracker.clone(),
                    conn_stop.clone(),
                )));
            }
        }

        shutdown.cancelled().await;
        // Stop accepting, then ask every connection to finish its in-flight requests.
        conn_stop.cancel();
        for l in loops {
            if let Err(e) = l.await {
                warn!(error = %e, "accept loop ended abnormally");
            }
        }
        if let Some(w) = &mut workers {
            w.stopped_accepting().await;
        }
        tracker.close();
        if tokio::time::timeout(self.cfg.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = tracker.len(),
                "drain timed out; closing the remaining connections"
            );
        }
        if let Some(w) = workers {
            w.join().await;
        }
        reload.abort();
        Ok(())
    }
}

/// Hand the heap's free pages back to the system. glibc keeps what a rebuild freed (the previous
/// table, a snapshot's stores, parse garbage) mapped, fragmented between live objects: measured
/// with 10,000 Ingresses and a few reloads, RSS after routing every host was 76 MB without
/// this and 62 MB with it (one run each, same build otherwise).
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's own free lists under
    // the allocator's locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Run the router on already-bound listeners until `shutdown`.
pub async fn run(
    cfg: L7Config,
    http: TcpListener,
    https: Option<TcpListener>,
    snapshots: Arc<Publisher<Snapshot>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let https_port = https
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port());
    L7::new(cfg, metrics, https_port)
        .serve(http, https, snapshots, shutdown)
        .await
}
