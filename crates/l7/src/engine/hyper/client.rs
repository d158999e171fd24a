//! The hyper engine's upstream clients (a keepalive pool per endpoint) and its body type.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_connect_timeout(Some(connect_timeout));
    c.set_nodelay(true);
    // The TLS wrapper below handles `https` URIs (backend-protocol HTTPS and GRPCS).
    c.enforce_http(false);
    c
}

fn connector_with_tls(h2: bool) -> HttpsConnector<HttpConnector> {
    let b = HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::upstream_client_config())
        .https_or_http();
    if h2 {
        b.enable_http2()
            .wrap_connector(connector(Duration::from_secs(5)))
    } else {
        b.enable_http1()
            .wrap_connector(connector(Duration::from_secs(5)))
    }
}

/// HTTP/1.1 (plain, or TLS for `backend-protocol: HTTPS`) with a keepalive pool per endpoint.
pub fn http1() -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector_with_tls(false))
}

/// HTTP/2 (prior knowledge, or ALPN over TLS), for `backend-protocol: GRPC` and `GRPCS`.
pub fn http2() -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector_with_tls(true))
}
