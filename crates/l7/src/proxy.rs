//! The request path. Phases, in order: route lookup, access checks and redirects
//! ([`policy`]), backend choice (canary, affinity, hash, balancer), the upstream exchange with
//! retries on connect failure, and the response (affinity cookie, HSTS, metrics, access log).
//! One `Arc<RouteTable>` is taken per request; nothing here locks.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tracing::{debug, info};

use super::annotations::{BackendProtocol, HashKey};
use super::forwarded::TrustedProxies;
use super::path::{self, EncodedSlashes, PathError};
use super::shared::Shared;
use super::table::{Canary, Lookup, Route, normalize_host};
use super::upstream::{Endpoint, Target};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) mod affinity;
mod body;
pub(crate) mod headers;
mod policy;
mod request;

/// What a connection knows about itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// The peer is in `--trust-forwarded-from`: its forwarding headers are believed.
    pub trusted_peer: bool,
    /// Who the request is from: the peer's address, or for a trusted peer the client its
    /// `X-Forwarded-For` names (set per request by [`ConnInfo::for_request`]). Allow-lists,
    /// `X-Real-IP`, `$remote_addr` hashing and the access log use it.
    pub client: IpAddr,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool, trusted: &TrustedProxies) -> Self {
        Self {
            peer,
            local,
            tls,
            trusted_peer: trusted.trusts(peer.ip()),
            client: peer.ip(),
        }
    }

    /// This connection's facts for one request whose `X-Forwarded-For` values are `xff`.
    pub fn for_request<'v>(
        self,
        trusted: &TrustedProxies,
        xff: impl DoubleEndedIterator<Item = &'v [u8]>,
    ) -> Self {
        if !self.trusted_peer {
            return self;
        }
        Self {
            client: trusted.client(self.peer.ip(), xff),
            ..self
        }
    }
}

/// Why a request got no upstream response; [`ProxyError::status`] maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route")]
    NoRoute,
    #[error("service {0} not found")]
    NoService(Arc<str>),
    #[error("service {0} has no ready endpoints")]
    NoEndpoints(Arc<str>),
    #[error("connect to {addr} failed")]
    Connect {
        addr: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("upstream {addr} failed")]
    Upstream {
        addr: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("upstream timed out")]
    Timeout,
    #[error("request body larger than the limit")]
    TooLarge,
    #[error("the request body stalled longer than the client body timeout")]
    BodyTimeout,
    #[error("the request body could not be read")]
    ClientBody(#[source] hyper::Error),
    #[error("the upstream request could not be built")]
    BadRequest(#[source] http::Error),
    #[error("request path refused")]
    BadPath(#[from] PathError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoService(_) | ProxyError::NoEndpoints(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadRequest(_) | ProxyError::BadPath(_) | ProxyError::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn redirect(status: StatusCode, location: HeaderValue) -> Response<ProxyBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r.headers_mut().insert(header::LOCATION, location);
    r
}

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
    if let Err(why) = request::admit(&mut req) {
        debug!(peer = %conn.peer, %why, "request refused");
        shared.metrics.unrouted.inc();
        return Ok(why.response());
    }
    // Everything from here on (routing, policy, rewrite, hashing, the upstream request, the
    // log) sees the normalised path.
    match normalized_uri(req.uri(), shared.encoded_slashes) {
        Ok(None) => {}
        Ok(Some(uri)) => *req.uri_mut() = uri,
        Err(e) => {
            debug!(peer = %conn.peer, error = %e, cause = ?std::error::Error::source(&e), "request refused");
            shared.metrics.unrouted.inc();
            if shared.access_log_enabled() {
                let raw = req.uri().path().escape_debug().to_string();
                let host = normalize_host(request_host(&req));
                let status = e.status().as_u16();
                shared.log_line(
                    &conn,
                    req.method().as_str(),
                    &raw,
                    &host,
                    None,
                    status,
                    start.elapsed(),
                );
            }
            return Ok(error_response(&e));
        }
    }
    let table = shared.table.load_full();
    let host = normalize_host(request_host(&req)).into_owned();
    let route = match table.lookup(&host, req.uri().path()) {
        Lookup::Route(r) => r.clone(),
        Lookup::NotFound => {
            shared.metrics.unrouted.inc();
            if shared.access_log_enabled() {
                shared.log_line(
                    &conn,
                    req.method().as_str(),
                    req.uri().path(),
                    &host,
                    None,
                    404,
                    start.elapsed(),
                );
            }
            return Ok(local_response(
                StatusCode::NOT_FOUND,
                "404 page not found\n",
            ));
        }
    };
    drop(table);
    let method = req.method().clone();
    let uri_for_log = shared.access_log_enabled().then(|| req.uri().clone());
    let (resp, target) = match policy::check(&shared, &conn, &route, &host, &req) {
        Some(resp) => (resp, RouteTarget::Main),
        None => proxy(&shared, conn, &route, &host, req).await,
    };
    let status = resp.status().as_u16();
    let metrics = match target {
        RouteTarget::Canary => route.canary.as_ref().map_or(&route.metrics, |c| &c.metrics),
        RouteTarget::Main => &route.metrics,
    };
    let elapsed = start.elapsed();
    metrics.observe(status, elapsed);
    if let Some(uri) = uri_for_log {
        shared.log_line(
            &conn,
            method.as_str(),
            uri.path(),
            &host,
            Some(&route),
            status,
            elapsed,
        );
    }
    Ok(resp)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RouteTarget {
    Main,
    Canary,
}

fn use_canary(c: &Canary, headers: &HeaderMap) -> bool {
    if let Some(name) = &c.rules.by_header
        && let Some(v) = headers.get(name)
    {
        match &c.rules.by_header_value {
            Some(want) => {
                if v.as_bytes() == want.as_bytes() {
                    return true;
                }
            }
            None => match v.as_bytes() {
                b"always" => return true,
                b"never" => return false,
                _ => {}
            },
        }
    }
    if let Some(name) = &c.rules.by_cookie {
        match affinity::cookie(headers, name) {
            Some("always") => return true,
            Some("never") => return false,
            _ => {}
        }
    }
    if c.rules.weight == 0 {
        return false;
    }
    let n = c.counter.fetch_add(1, Ordering::Relaxed);
    (n % u64::from(c.rules.weight_total)) < u64::from(c.rules.weight)
}

fn hash_key(
    key: &HashKey,
    conn: &ConnInfo,
    host: &str,
    req: &Request<Incoming>,
) -> Option<Vec<u8>> {
    let h = req.headers();
    Some(match key {
        HashKey::RequestUri => req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes()
            .to_vec(),
        HashKey::Uri => req.uri().path().as_bytes().to_vec(),
        HashKey::RemoteAddr => conn.client.to_string().into_bytes(),
        HashKey::Host => host.as_bytes().to_vec(),
        HashKey::Header(name) => h.get(name)?.as_bytes().to_vec(),
        HashKey::Cookie(name) => affinity::cookie(h, name)?.as_bytes().to_vec(),
        HashKey::Arg(name) => req
            .uri()
            .query()?
            .split('&')
            .find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v)
            })?
            .as_bytes()
            .to_vec(),
    })
}

/// Send the request upstream; returns the response and which backend served it.
async fn proxy(
    shared: &Shared,
    conn: ConnInfo,
    route: &Arc<Route>,
    host: &str,
    mut req: Request<Incoming>,
) -> (Response<ProxyBody>, RouteTarget) {
    let (upstream, target) = match &route.canary {
        Some(c) if use_canary(c, req.headers()) => (&c.upstream, RouteTarget::Canary),
        _ => (&route.upstream, RouteTarget::Main),
    };
    let opts = &route.options;
    if let Some(limit) = opts.body_limit
        && req.body().size_hint().lower() > limit
    {
        return (
            local_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 request entity too large\n",
            ),
            target,
        );
    }
    let authority = match &upstream.target {
        Target::NoService => {
            return (
                error_response(&ProxyError::NoService(upstream.label.clone())),
                target,
            );
        }
        Target::NoEndpoints => {
            return (
                error_response(&ProxyError::NoEndpoints(upstream.label.clone())),
                target,
            );
        }
        Target::External(a) => Some(a.clone()),
        Target::Endpoints(_) => None,
    };

    let upgrade = headers::is_upgrade(req.headers());
    let down_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let hash = opts
        .hash_by
        .as_ref()
        .and_then(|k| hash_key(k, &conn, host, &req));
    let sticky = opts
        .affinity
        .as_ref()
        .and_then(|a| affinity::cookie(req.headers(), &a.name).map(str::to_owned));
    let omit_samesite_none = opts.affinity.as_ref().is_some_and(|a| {
        a.conditional_samesite_none && affinity::samesite_none_incompatible(req.headers())
    });

    let (parts, body) = req.into_parts();
    let path_and_query = match headers::rewritten(route, &parts.uri) {
        Ok(pq) => pq,
        Err(e) => return (error_response(&e), target),
    };
    let mut up_headers = parts.headers;
    headers::forwarded(&mut up_headers, &conn, parts.uri.authority(), upgrade);

    let empty_body = body.is_end_stream();
    let grpc = matches!(
        opts.backend_protocol,
        BackendProtocol::Grpc | BackendProtocol::Grpcs
    );
    // A body that can be sent again: none, or one read whole.
    let mut whole = empty_body.then(body::Whole::default);
    let body = if empty_body {
        body.map_err(BoxError::from).boxed_unsync()
    } else {
        let b = body::ClientBody::new(body, opts.body_limit, shared.client_body_timeout);
        // Read the body before any upstream connection is taken (nginx's request buffering),
        // except for gRPC, whose request streams are conversations (as nginx's grpc_pass).
        if opts.request_buffering && shared.request_buffer > 0 && !grpc && !upgrade {
            match body::buffer(b, shared.request_buffer).await {
                Ok((b, w)) => {
                    whole = w;
                    b
                }
                Err(e) => {
                    debug!(service = %upstream.label, error = %e, "request body refused");
                    return (error_response(&e.into()), target);
                }
            }
        } else {
            b.map_err(BoxError::from).boxed_unsync()
        }
    };
    // A body still of unknown length after buffering (a chunked one larger than the buffer, or
    // one that streams) goes on chunked, whatever the method: without the header hyper's client
    // sends a GET, HEAD or CONNECT with an empty body, dropping the client's. A buffered body
    // has its exact length, which hyper sends as Content-Length. (An HTTP/2 upstream connection
    // leaves the header out.)
    if !upgrade && !body.is_end_stream() && body.size_hint().exact().is_none() {
        up_headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    // Any request whose body can be sent again goes to another endpoint when a connect fails
    // (nothing reached the upstream); an idempotent one also when the connection (new or
    // pooled) breaks before a response head arrives, as nginx's `proxy_next_upstream error`.
    // Each try goes to an endpoint not tried yet, so there are never more tries than endpoints
    // (and with one endpoint the headers need no copy for a retry).
    let resendable = whole.is_some() && !upgrade;
    let idempotent = is_idempotent(&parts.method);
    let tries = if resendable {
        opts.next_upstream_tries
            .clamp(1, upstream.endpoints().len().max(1) as u32)
    } else {
        1
    };
    let mut body = Some(body);
    let scheme = match opts.backend_protocol {
        BackendProtocol::Https | BackendProtocol::Grpcs => Scheme::HTTPS,
        BackendProtocol::Http | BackendProtocol::Grpc => Scheme::HTTP,
    };
    let now_ms = shared.registry.clock.now_ms();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut set_cookie: Option<&Endpoint> = None;
    let mut last_err = None;
    for attempt in 0..tries {
        let endpoint: Option<&Endpoint> = match &authority {
            Some(_) => None,
            None => {
                let by_cookie = if attempt == 0 {
                    sticky.as_deref().and_then(|v| upstream.by_cookie(v))
                } else {
                    None
                };
                match by_cookie {
                    Some(e) => Some(e),
                    None => {
                        let Some(e) = upstream.pick(now_ms, &tried, hash.as_deref()) else {
                            break;
                        };
                        if let Some(a) = &opts.affinity
                            && (attempt == 0 || a.change_on_failure)
                        {
                            set_cookie = Some(e);
                        }
                        Some(e)
                    }
                }
            }
        };
        let auth = match (endpoint, &authority) {
            (Some(e), _) => e.authority.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => break,
        };
        let uri = match Uri::builder()
            .scheme(scheme.clone())
            .authority(auth)
            .path_and_query(path_and_query.clone())
            .build()
        {
            Ok(u) => u,
            Err(e) => return (error_response(&ProxyError::BadRequest(e)), target),
        };
        let b = match (body.take(), &whole) {
            (Some(b), _) => b,
            (None, Some(w)) if !empty_body => w.body(),
            (None, _) => empty(),
        };
        let mut up = Request::new(b);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.version_mut() = if grpc {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *up.headers_mut() = if attempt + 1 < tries {
            up_headers.clone()
        } else {
            std::mem::take(&mut up_headers)
        };

        let client = if grpc {
            &shared.h2_client
        } else {
            &shared.client
        };
        if let Some(e) = endpoint {
            e.state.inflight.fetch_add(1, Ordering::Relaxed);
        }
        let sent = Instant::now();
        let res =
            tokio::time::timeout(opts.connect_timeout + opts.read_timeout, client.request(up))
                .await;
        if let Some(e) = endpoint {
            e.state.inflight.fetch_sub(1, Ordering::Relaxed);
        }
        match res {
            Ok(Ok(mut resp)) => {
                if let Some(e) = endpoint {
                    if shared.registry.connected(&e.state) {
                        info!(service = %upstream.label, endpoint = %e.addr, "ejected endpoint readmitted after a response");
                    }
                    e.state.observe_latency(sent.elapsed());
                }
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(down) = down_upgrade
                {
                    let up_upgrade = hyper::upgrade::on(&mut resp);
                    tunnel(shared, down, up_upgrade);
                }
                let mut out = resp.map(|b| b.map_err(BoxError::from).boxed_unsync());
                headers::strip_response(out.headers_mut());
                if let (Some(e), Some(a)) = (set_cookie, &opts.affinity)
                    && let Ok(v) = affinity::set_cookie(
                        a,
                        &e.cookie,
                        &route.path,
                        conn.tls,
                        omit_samesite_none,
                    )
                {
                    out.headers_mut().append(header::SET_COOKIE, v);
                }
                shared.hsts(&conn, route, out.headers_mut());
                return (out, target);
            }
            Ok(Err(e)) if e.is_connect() => {
                let addr =
                    endpoint.map_or_else(|| path_and_query.to_string(), |e| e.addr.to_string());
                route.metrics.connect_error();
                if let Some(ep) = endpoint {
                    tried.push(ep.addr);
                    endpoint_failed(shared, &upstream.label, ep);
                }
                debug!(service = %upstream.label, endpoint = %addr, error = %e, "connect failed");
                last_err = Some(ProxyError::Connect { addr, source: e });
            }
            Ok(Err(e)) => {
                let addr = endpoint.map_or_else(String::new, |e| e.addr.to_string());
                debug!(service = %upstream.label, endpoint = %addr, error = %e, cause = ?std::error::Error::source(&e), "upstream failed");
                let err = match body::cause(&e) {
                    Some(body::ClientBodyError::TooLarge) => ProxyError::TooLarge,
                    Some(body::ClientBodyError::Timeout) => ProxyError::BodyTimeout,
                    Some(body::ClientBodyError::Read(_)) => {
                        ProxyError::Upstream { addr, source: e }
                    }
                    None if !broke_before_response(&e) => ProxyError::Upstream { addr, source: e },
                    // No response head: the connection broke (reset, EOF, write error).
                    None => {
                        if let Some(ep) = endpoint {
                            tried.push(ep.addr);
                            endpoint_failed(shared, &upstream.label, ep);
                        }
                        if idempotent && attempt + 1 < tries {
                            debug!(service = %upstream.label, endpoint = %addr, "trying another endpoint");
                            last_err = Some(ProxyError::Upstream { addr, source: e });
                            continue;
                        }
                        ProxyError::Upstream { addr, source: e }
                    }
                };
                return (error_response(&err), target);
            }
            Err(_) => return (error_response(&ProxyError::Timeout), target),
        }
    }
    let err = last_err.unwrap_or_else(|| ProxyError::NoEndpoints(upstream.label.clone()));
    (error_response(&err), target)
}

/// Whether a client error says the upstream connection broke (reset, EOF, a failed write)
/// before a response head arrived, rather than that the upstream answered badly.
fn broke_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
            if h.is_parse() || h.is_parse_status() || h.is_user() {
                return false;
            }
        }
        if err.is::<std::io::Error>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// Count a failure of `endpoint` toward its ejection; the ejection is logged once.
fn endpoint_failed(shared: &Shared, service: &str, endpoint: &Endpoint) {
    if shared.registry.connect_failed(&endpoint.state) {
        info!(service, endpoint = %endpoint.addr, "endpoint ejected after repeated failures");
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn error_response(e: &ProxyError) -> Response<ProxyBody> {
    let text = match e.status() {
        StatusCode::NOT_FOUND => "404 page not found\n",
        StatusCode::SERVICE_UNAVAILABLE => "503 service unavailable\n",
        StatusCode::BAD_GATEWAY => "502 bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "504 gateway timeout\n",
        StatusCode::PAYLOAD_TOO_LARGE => "413 request entity too large\n",
        StatusCode::REQUEST_TIMEOUT => "408 request timeout\n",
        _ => "400 bad request\n",
    };
    let mut r = local_response(e.status(), text);
    if matches!(e, ProxyError::BodyTimeout) {
        // The rest of the body is not read: the connection cannot carry another request.
        // (hyper drops the header on HTTP/2, where only the stream ends.)
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Join the two upgraded halves and copy bytes both ways until either side closes. The tunnel
/// does not hold the route table, so reloads never touch it.
fn tunnel(shared: &Shared, down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let gauge = shared.metrics.open_upgrades.clone();
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(down, up) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "upgrade failed");
                return;
            }
        };
        gauge.inc();
        let (mut d, mut u) = (TokioIo::new(down), TokioIo::new(up));
        if let Err(e) = tokio::io::copy_bidirectional(&mut d, &mut u).await {
            debug!(error = %e, "upgraded connection ended with an error");
        }
        gauge.dec();
    });
}
