//! State shared by every connection: the published route table (one `ArcSwap`), the caches that
//! survive rebuilds, the upstream clients (keepalive pools per endpoint) and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{HeaderMap, HeaderValue};
use tracing::info;

use portico_runtime::connections::ConnectionLimit;

use super::AccessLog;
use super::engine::hyper::client::{self, UpstreamClient};
use super::forwarded::TrustedProxies;
use super::metrics::Metrics;
use super::path::EncodedSlashes;
use super::request::ConnInfo;
use super::table::{Route, RouteTable};
use super::tls::CertCache;
use super::upstream::EndpointRegistry;
use portico_model::routes::ClassConfig as RouterConfig;

/// `--request-buffer-size` default: ingress-nginx's default `proxy-body-size`, so a body within
/// the default limit is read whole before any upstream connection is taken.
pub const DEFAULT_REQUEST_BUFFER: usize = 1 << 20;
/// `--client-body-timeout` default: nginx's `client_body_timeout`.
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Shared {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub registry: EndpointRegistry,
    pub certs: CertCache,
    pub metrics: Arc<Metrics>,
    /// HTTP/1.1 (plain, or TLS for `backend-protocol: HTTPS`) with a keepalive pool per endpoint.
    pub client: UpstreamClient,
    /// HTTP/2 (prior knowledge, or ALPN over TLS), for `backend-protocol: GRPC` and `GRPCS`.
    pub h2_client: UpstreamClient,
    pub router: RouterConfig,
    pub access_log: AccessLog,
    pub hsts: Option<HeaderValue>,
    /// The HTTPS listener's port, for redirects.
    pub https_port: Option<u16>,
    /// A table built from a published snapshot is in place.
    pub ready: AtomicBool,
    /// Plain HTTP/1.1 requests take the fast path ([`super::engine::fast`]); off, hyper serves all.
    pub fast_h1: bool,
    /// How request paths with `%2F` / `%5C` are treated ([`super::path`]).
    pub encoded_slashes: EncodedSlashes,
    /// Peers whose forwarding headers are believed (`--trust-forwarded-from`; none by default).
    pub trusted: TrustedProxies,
    /// Request bodies are read up to this many bytes before an upstream connection is taken.
    pub request_buffer: usize,
    /// The longest wait between two reads of a request body (then 408).
    pub client_body_timeout: Duration,
    /// `--max-connections`: shared with every accept loop of the process; `None`: no limit.
    pub connection_limit: Option<Arc<ConnectionLimit>>,
}

impl Shared {
    pub fn new(
        router: RouterConfig,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        hsts_max_age: Option<u64>,
        https_port: Option<u16>,
    ) -> Self {
        let (client, h2_client) = (client::http1(), client::http2());
        let hsts = hsts_max_age
            .and_then(|s| HeaderValue::from_str(&format!("max-age={s}; includeSubDomains")).ok());
        Self {
            table: Arc::new(ArcSwap::from_pointee(RouteTable::default())),
            registry: EndpointRegistry::default(),
            certs: CertCache::default(),
            metrics,
            client,
            h2_client,
            router,
            access_log,
            hsts,
            https_port,
            ready: AtomicBool::new(false),
            fast_h1: true,
            encoded_slashes: EncodedSlashes::default(),
            trusted: TrustedProxies::default(),
            request_buffer: DEFAULT_REQUEST_BUFFER,
            client_body_timeout: DEFAULT_CLIENT_BODY_TIMEOUT,
            connection_limit: None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn access_log_enabled(&self) -> bool {
        self.access_log != AccessLog::Off
    }

    /// HSTS on HTTPS responses of hosts with TLS, when enabled.
    pub fn hsts(&self, conn: &ConnInfo, route: &Route, headers: &mut HeaderMap) {
        if let Some(v) = &self.hsts
            && conn.tls
            && route.tls_host
        {
            headers.insert(http::header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn log_line(
        &self,
        conn: &ConnInfo,
        method: &str,
        path: &str,
        host: &str,
        route: Option<&Route>,
        status: u16,
        elapsed: Duration,
    ) {
        let ingress = route.map(|r| r.ingress().to_string()).unwrap_or_default();
        let service = route
            .map(|r| r.upstream.label.to_string())
            .unwrap_or_default();
        let ms = elapsed.as_secs_f64() * 1000.0;
        match self.access_log {
            AccessLog::Off => {}
            AccessLog::Text => info!(
                target: "portico::access",
                client = %conn.client, method, host, path, status, ingress, service,
                duration_ms = ms,
                "request"
            ),
            AccessLog::Json => {
                let line = serde_json::json!({
                    "client": conn.client.to_string(),
                    "method": method,
                    "host": host,
                    "path": path,
                    "status": status,
                    "ingress": ingress,
                    "service": service,
                    "tls": conn.tls,
                    "duration_ms": ms,
                });
                info!(target: "portico::access", "{line}");
            }
        }
    }
}
