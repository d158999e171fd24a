//! The hyper engine: HTTP/1.1 (keepalive, upgrades, chunked requests) and HTTP/2 (by ALPN or
//! prior knowledge) through hyper's server, and the upstream through hyper's pooled clients.
//! It parses and writes; the request pipeline ([`crate::request`]) decides.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::error::{ProxyError, answer, error_response, local_response};
use self::proxy::RouteTarget;
use super::DRAIN_IDLE_GRACE;
use crate::path::{self, EncodedSlashes};
use crate::request::log::{self, Line};
use crate::request::{ConnInfo, policy, route};
use crate::shared::Shared;

mod admit;
mod body;
pub mod client;
pub mod error;
mod exchange;
pub(crate) mod headers;
mod proxy;
mod send;

pub use client::{BoxError, ProxyBody};

/// Streams open at once on one HTTP/2 connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The host a request is for: the Host header, else the URI's authority (HTTP/2 `:authority`,
/// absolute-form). A proxy in front (gRPC hops) keeps the client's Host while `:authority` names
/// the endpoint, so Host goes first, as nginx does.
fn request_host(req: &Request<Incoming>) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// `uri` with its path normalised ([`path::normalize`]) and its query as it came; `None` when
/// the path is already normal. Asterisk-form (`*`) and authority-form (no path) are left as
/// they are: no route prefix matches them.
fn normalized_uri(uri: &Uri, slashes: EncodedSlashes) -> Result<Option<Uri>, ProxyError> {
    let p = uri.path();
    if p == "*" || p.is_empty() {
        return Ok(None);
    }
    let std::borrow::Cow::Owned(mut p) = path::normalize(p, slashes)? else {
        return Ok(None);
    };
    if let Some(q) = uri.query() {
        p.push('?');
        p.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(p).map_err(|e| ProxyError::BadRequest(e.into()))?);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|e| ProxyError::BadRequest(e.into()))
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    // nginx's `http2_max_concurrent_streams`: one connection cannot open more requests than this.
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    b
}

pub async fn serve_io<I>(shared: Arc<Shared>, info: ConnInfo, io: I, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let b = builder();
    let draining = shutdown.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let (shared, draining) = (shared.clone(), draining.clone());
        async move {
            let h1 = req.version() < Version::HTTP_2;
            let mut resp = handle(shared, info, req).await?;
            // Draining: an HTTP/1.1 client learns that this is the connection's last response.
            if h1 && draining.is_cancelled() && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = b.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(peer = %info.peer, error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            // Requests read meanwhile are answered with `Connection: close`, which ends an
            // HTTP/1.1 connection after its response; what is left idle after the grace is
            // closed, and HTTP/2 gets its GOAWAY (in-flight streams finish).
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(peer = %info.peer, error = %e, "connection ended with an error while draining");
                    }
                    return;
                }
                _ = tokio::time::sleep(DRAIN_IDLE_GRACE) => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                debug!(peer = %info.peer, error = %e, "connection ended with an error while draining");
            }
        }
    }
}

/// The whole request: never fails (errors become responses).
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let conn = conn.for_request(
        &shared.trusted,
        req.headers()
            .get_all(&headers::X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    // RFC 9112 3.2: an HTTP/1.1 request with no Host, or with more than one, is refused; which
    // of two hosts a request is for is exactly what a smuggler wants proxy and origin to disagree on.
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && req.version() == Version::HTTP_11) {
        shared.metrics.unrouted.inc();
        return Ok(local_response(StatusCode::BAD_REQUEST, "400 bad request\n"));
    }
    if let Err(why) = admit::admit(&mut req) {
        debug!(peer = %conn.peer, %why, "request refused");
        shared.metrics.unrouted.inc();
        return Ok(why.response());
    }
    let logging = shared.access_log_enabled();
    // Everything from here on (routing, policy, rewrite, hashing, the upstream request, the
    // log) sees the normalised path.
    match normalized_uri(req.uri(), shared.encoded_slashes) {
        Ok(None) => {}
        Ok(Some(uri)) => *req.uri_mut() = uri,
        Err(e) => {
            debug!(peer = %conn.peer, error = %e, cause = ?std::error::Error::source(&e), "request refused");
            let raw = logging.then(|| req.uri().path().escape_debug().to_string());
            let host = crate::table::normalize_host(request_host(&req));
            let line = raw.as_deref().map(|path| Line {
                method: req.method().as_str(),
                path,
                host: &host,
            });
            log::unrouted(&shared, &conn, line, e.status().as_u16(), start.elapsed());
            return Ok(error_response(&e));
        }
    }
    let (host, found) = route::route(&shared.table.load(), request_host(&req), req.uri().path());
    let host = host.into_owned();
    let Some(route) = found else {
        let line = logging.then(|| Line {
            method: req.method().as_str(),
            path: req.uri().path(),
            host: &host,
        });
        log::unrouted(&shared, &conn, line, 404, start.elapsed());
        return Ok(local_response(
            StatusCode::NOT_FOUND,
            "404 page not found\n",
        ));
    };
    let method = req.method().clone();
    let uri_for_log = logging.then(|| req.uri().clone());
    let facts = policy::Facts {
        tls: conn.tls,
        client: conn.client,
        host: &host,
        path: req.uri().path(),
        path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
    };
    let (resp, target) = match policy::check(&facts, &route, shared.https_port) {
        Some(a) => (answer(a), RouteTarget::Main),
        None => proxy::proxy(&shared, conn, &route, &host, req).await,
    };
    let metrics = match target {
        RouteTarget::Canary => route.canary.as_ref().map_or(&route.metrics, |c| &c.metrics),
        RouteTarget::Main => &route.metrics,
    };
    let line = uri_for_log.as_ref().map(|uri| Line {
        method: method.as_str(),
        path: uri.path(),
        host: &host,
    });
    let status = resp.status().as_u16();
    log::done(
        &shared,
        &conn,
        &route,
        metrics,
        line,
        status,
        start.elapsed(),
    );
    Ok(resp)
}
