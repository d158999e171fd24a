//! The HTTP/1.1 fast path: plain keepalive requests proxied with one read and one write per
//! side, in the connection's own task.
//!
//! Most Ingress traffic is small HTTP/1.1 requests on keepalive connections. The general path
//! (hyper server -> `http::Request` -> hyper client pool -> connection task) spends more time
//! building header maps, waking tasks and passing requests through channels than moving bytes
//! (see loadtest/RESULTS.md). This path parses the head in place (httparse), decides from the
//! published route table, writes the rewritten head and the buffered body upstream in one
//! write on a connection from a per-thread pool, reads the response head in place and forwards
//! head and body in one write. Nothing is allocated per request on the common path.
//!
//! It takes only what it fully understands ([`codec::parse_request`] and [`eligible`]): HTTP/1.1,
//! one `Host`, at most one `Content-Length`, no `Transfer-Encoding`, no upgrade or `Expect`, a
//! route proxied over plain HTTP to endpoints, with no redirect, allow-list, canary, rewrite or
//! hash annotation. Anything else hands the connection, with the bytes already read, to the
//! general path for the rest of its life, so behaviour never depends on which path served.

pub mod codec;
mod io;
mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use self::codec::{Framing, Handoff, MAX_HEAD, MAX_HEADERS, ResponseExtras};
use self::io::Prefixed;
use super::annotations::BackendProtocol;
use super::path;
use super::proxy::{ConnInfo, affinity, headers};
use super::shared::Shared;
use super::table::{Lookup, Route, normalize_host};
use super::upstream::{Endpoint, Target};

/// Idle time allowed before a request head arrives (hyper's `header_read_timeout` on the general path).
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Read buffer per side; grows for large heads.
const BUF: usize = 8 * 1024;
/// Body bytes copied per read when streaming.
const CHUNK: usize = 64 * 1024;

/// Whether the route's options are all ones the fast path implements.
fn eligible(route: &Route, tls: bool) -> bool {
    let o = &route.options;
    matches!(route.upstream.target, Target::Endpoints(_))
        && o.backend_protocol == BackendProtocol::Http
        && o.rewrite_target.is_none()
        && o.hash_by.is_none()
        && o.allow.is_none()
        && o.permanent_redirect.is_none()
        && o.temporal_redirect.is_none()
        && o.app_root.is_none()
        && route.canary.is_none()
        && (tls || !((route.tls_host && o.ssl_redirect) || o.force_ssl_redirect))
}

/// A new upstream connection, bounded by `proxy-connect-timeout`.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(UpstreamError::Io(e)),
        Err(_) => Err(UpstreamError::Timeout),
    }
}

/// Count a failure of `endpoint` toward its ejection; the ejection is logged once.
fn endpoint_failed(shared: &Shared, upstream: &super::upstream::Upstream, endpoint: &Endpoint) {
    if shared.registry.connect_failed(&endpoint.state) {
        info!(service = %upstream.label, endpoint = %endpoint.addr, "endpoint ejected after repeated failures");
    }
}

/// What the client is told about a response, decided from its head.
struct Head {
    status: u16,
    framing: Framing,
    /// The upstream connection may not be reused.
    up_close: bool,
    /// The client connection closes after this response.
    close_down: bool,
}

/// Put the head for the client in `out` (the upstream's minus hop-by-hop headers, plus the
/// affinity cookie, HSTS and `connection: close` when due).
fn downstream_head(
    out: &mut Vec<u8>,
    resp: &codec::ResponseHead<'_, '_>,
    shared: &Shared,
    info: &ConnInfo,
    plan: &Plan,
    set_cookie: Option<&Endpoint>,
    draining: bool,
) -> Head {
    let cookie = match (set_cookie, &plan.route.options.affinity) {
        (Some(e), Some(a)) => affinity::set_cookie(
            a,
            &e.cookie,
            &plan.route.path,
            info.tls,
            plan.omit_samesite_none,
        )
        .ok(),
        _ => None,
    };
    let hsts = shared
        .hsts
        .as_ref()
        .filter(|_| info.tls && plan.route.tls_host);
    let close_down = plan.close || draining || resp.framing == Framing::UntilClose;
    out.clear();
    codec::write_downstream_head(
        out,
        resp,
        &ResponseExtras {
            set_cookie: cookie.as_ref().map(|c| c.as_bytes()),
            hsts: hsts.map(|h| h.as_bytes()),
            close: close_down,
        },
    );
    Head {
        status: resp.code,
        framing: resp.framing,
        up_close: resp.close,
        close_down,
    }
}

/// How a connection's fast-path life ended.
enum End {
    Close,
    /// Continue on the general path with these bytes first.
    Handoff(BytesMut),
}

/// Serve one connection, starting on the fast path.
pub async fn serve<I>(shared: Arc<Shared>, info: ConnInfo, io: I, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = Conn {
        io,
        shutdown: shutdown.clone(),
        inbuf: BytesMut::with_capacity(BUF),
        upbuf: BytesMut::new(),
        out: Vec::with_capacity(2048),
        fwd: codec::Forwarding::new(
            info.peer.ip(),
            info.tls,
            info.local.port(),
            info.trusted_peer,
        ),
    };
    let end = conn.run(&shared, &info, &shutdown).await;
    match end {
        End::Close => {
            let _ = conn.io.shutdown().await;
        }
        End::Handoff(prefix) => {
            // Boxed: the general path's state stays out of this (much more common) future.
            Box::pin(super::server::serve_io(
                shared,
                info,
                Prefixed::new(prefix.freeze(), conn.io),
                shutdown,
            ))
            .await;
        }
    }
}

struct Conn<I> {
    io: I,
    /// Cancelled when the gateway drains: responses from then on carry `Connection: close`.
    shutdown: CancellationToken,
    /// Bytes from the client not yet handled.
    inbuf: BytesMut,
    /// Bytes from the upstream not yet forwarded.
    upbuf: BytesMut,
    /// What is about to be written (a request head upstream, a response head downstream).
    out: Vec<u8>,
    fwd: codec::Forwarding,
}

/// What one request needs once its head is no longer borrowed.
struct Plan {
    route: Arc<Route>,
    /// Index of the endpoint named by a valid affinity cookie.
    sticky: Option<usize>,
    omit_samesite_none: bool,
    body_left: u64,
    close: bool,
    head_request: bool,
    /// The method may be sent twice (RFC 9110 9.2.2).
    idempotent: bool,
    /// For the access log, only when it is on.
    log: Option<(String, String, String)>,
    /// Who the request is from (the peer, or whom a trusted proxy forwarded for).
    client: std::net::IpAddr,
}

/// How far an exchange had come when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// No response byte arrived and nothing was sent to the client: a request that may be
    /// sent again can go to another endpoint.
    Unanswered,
    /// Part of the response arrived; the client has been sent nothing yet.
    Answering,
    /// Part of the response was sent to the client.
    Forwarded,
}

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before responding")]
    Closed,
    #[error("upstream timed out")]
    Timeout,
    #[error(transparent)]
    Response(#[from] codec::BadResponse),
    #[error(transparent)]
    Chunk(#[from] codec::BadChunk),
    #[error("client went away")]
    Client(std::io::Error),
    #[error("the request body stalled longer than the client body timeout")]
    BodyTimeout,
}

/// The answer to a request whose framing the fast path refuses; the connection then closes,
/// since where the refused request ends is unknown.
fn refusal_response(status: u16) -> &'static [u8] {
    match status {
        501 => b"HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n501 not implemented\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\nconnection: close\r\n\r\n400 bad request\n",
    }
}

fn error_response(status: u16) -> &'static [u8] {
    match status {
        503 => b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 24\r\n\r\n503 service unavailable\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 request timeout\n",
        504 => b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\n\r\n504 gateway timeout\n",
        _ => b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n\r\n502 bad gateway\n",
    }
}

impl<I> Conn<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(&mut self, shared: &Shared, info: &ConnInfo, shutdown: &CancellationToken) -> End {
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // The drain began while the connection was idle: it may still send one request
        // (answered with `Connection: close`) until `idle` runs out.
        let mut grace = false;
        let idle = tokio::time::sleep(HEADER_TIMEOUT);
        tokio::pin!(idle);
        loop {
            // One deadline for the whole head, however it trickles in (as hyper's
            // `header_read_timeout`): a client sending a byte a minute cannot hold the connection.
            if !grace {
                idle.as_mut().reset(Instant::now() + HEADER_TIMEOUT);
            }
            // A complete head, or a reason to stop.
            let mut plan = loop {
                if !self.inbuf.is_empty() {
                    match self.plan(shared, info) {
                        Ok(Some(plan)) => break plan,
                        Ok(None) if self.inbuf.len() > MAX_HEAD => {
                            return End::Handoff(std::mem::take(&mut self.inbuf));
                        }
                        Ok(None) => {}
                        Err(why) => {
                            if let Some(status) = why.refusal() {
                                debug!(peer = %info.peer, ?why, status, "request refused");
                                shared.metrics.unrouted.inc();
                                if let Err(e) = self.io.write_all(refusal_response(status)).await {
                                    debug!(peer = %info.peer, error = %e, "refusal not sent");
                                }
                                return End::Close;
                            }
                            debug!(peer = %info.peer, ?why, "request handed to the general path");
                            return End::Handoff(std::mem::take(&mut self.inbuf));
                        }
                    }
                }
                if self.inbuf.capacity() - self.inbuf.len() < 1024 {
                    self.inbuf.reserve(BUF);
                }
                let idle_between_requests = self.inbuf.is_empty();
                let n = tokio::select! {
                    biased;
                    r = self.io.read_buf(&mut self.inbuf) => match r {
                        Ok(n) => n,
                        Err(_) => return End::Close,
                    },
                    _ = &mut cancelled, if idle_between_requests && !grace => {
                        grace = true;
                        let deadline = Instant::now() + super::server::DRAIN_IDLE_GRACE;
                        if deadline < idle.deadline() {
                            idle.as_mut().reset(deadline);
                        }
                        continue;
                    }
                    _ = &mut idle => return End::Close,
                };
                if n == 0 {
                    return End::Close;
                }
            };
            if plan.body_left > 0
                && plan.route.options.request_buffering
                && shared.request_buffer > 0
                && let Err(end) = self.buffer_body(shared, info, &mut plan).await
            {
                return end;
            }
            // A response sent before the drain began said keep-alive: the loop then gives the
            // client the drain's grace to send its next request.
            match self.proxy(shared, info, plan).await {
                Ok(true) => {}
                _ => return End::Close,
            }
        }
    }

    /// Parse the head at the start of `inbuf` and decide. `Ok(None)`: incomplete.
    /// On success the head (and any body bytes already read) are consumed and the upstream
    /// request is in `out`.
    fn plan(&mut self, shared: &Shared, info: &ConnInfo) -> Result<Option<Plan>, Handoff> {
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(req) = codec::parse_request(&self.inbuf, &mut hdrs)? else {
            return Ok(None);
        };
        // Routed, checked and forwarded as normalised; a refused path gets its 400 (and its
        // count and log line) from the general path.
        let path =
            path::normalize(req.path(), shared.encoded_slashes).map_err(|_| Handoff::Path)?;
        let route = {
            let table = shared.table.load();
            let host = normalize_host(req.host);
            match table.lookup(&host, &path) {
                Lookup::Route(r) => r.clone(),
                // 404s, 503s and the rest keep their one implementation.
                Lookup::NotFound => return Err(Handoff::Route),
            }
        };
        if !eligible(&route, info.tls)
            || route.upstream.endpoints().is_empty()
            || route
                .options
                .body_limit
                .is_some_and(|l| req.content_length > l)
        {
            return Err(Handoff::Route);
        }
        let (sticky, omit_samesite_none) = match &route.options.affinity {
            Some(a) => {
                let sticky = affinity::cookie_in(req.values("cookie"), &a.name).and_then(|v| {
                    let e = route.upstream.by_cookie(v)?;
                    route
                        .upstream
                        .endpoints()
                        .iter()
                        .position(|x| std::ptr::eq(x, e))
                });
                let omit = a.conditional_samesite_none
                    && req
                        .values("user-agent")
                        .next()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .is_some_and(affinity::user_agent_rejects_samesite_none);
                (sticky, omit)
            }
            None => (None, false),
        };
        // Who the request is from: the peer, unless a trusted proxy says otherwise.
        let client = info
            .for_request(&shared.trusted, req.values("x-forwarded-for"))
            .client;
        self.out.clear();
        codec::write_upstream_head(
            &mut self.out,
            &req,
            &path,
            &self.fwd,
            client,
            headers::request_id_bytes,
        );
        let in_buf = (self.inbuf.len() - req.head_len)
            .min(usize::try_from(req.content_length).unwrap_or(usize::MAX));
        self.out
            .extend_from_slice(&self.inbuf[req.head_len..req.head_len + in_buf]);
        let body_left = req.content_length - in_buf as u64;
        let log = shared.access_log_enabled().then(|| {
            (
                req.method.to_owned(),
                path.clone().into_owned(),
                normalize_host(req.host).into_owned(),
            )
        });
        let plan = Plan {
            sticky,
            omit_samesite_none,
            body_left,
            close: req.close,
            head_request: req.is_head(),
            idempotent: req.idempotent(),
            log,
            client,
            route,
        };
        let consumed = req.head_len + in_buf;
        self.inbuf.advance(consumed);
        Ok(Some(plan))
    }

    /// Read the rest of the request body into `inbuf` until it is whole or
    /// `--request-buffer-size` bytes are there, before any upstream connection is taken: a
    /// client sending slowly holds no upstream connection. A client silent for longer than
    /// `--client-body-timeout` gets a 408 and the connection closes.
    /// What was read joins the head in `out`, so a whole body goes upstream in the same write
    /// (and can be sent again on a fresh connection when a pooled one turns out closed).
    async fn buffer_body(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: &mut Plan,
    ) -> Result<(), End> {
        let start = Instant::now();
        let want = usize::try_from(plan.body_left)
            .unwrap_or(usize::MAX)
            .min(shared.request_buffer);
        while self.inbuf.len() < want {
            self.inbuf.reserve((want - self.inbuf.len()).min(CHUNK));
            let read = self.io.read_buf(&mut self.inbuf);
            match tokio::time::timeout(shared.client_body_timeout, read).await {
                Ok(Ok(0) | Err(_)) => return Err(End::Close),
                Ok(Ok(_)) => {}
                Err(_) => {
                    debug!(peer = %info.peer, "request body timed out");
                    let _ = self.fail(shared, info, plan, 408, start).await;
                    return Err(End::Close);
                }
            }
        }
        let n = want.min(self.inbuf.len());
        self.out.extend_from_slice(&self.inbuf[..n]);
        self.inbuf.advance(n);
        plan.body_left -= n as u64;
        Ok(())
    }

    /// Proxy one planned request. `Ok(true)`: the connection may serve another request.
    ///
    /// The endpoint loop, within `proxy-next-upstream-tries` (and never more tries than
    /// endpoints): a failed connect moves any request to another endpoint, since nothing
    /// reached the upstream; a connection that breaks before any response byte arrives (reset,
    /// EOF, write error) moves a request that may be sent twice (idempotent, its whole body in
    /// `out`) too, as nginx's `proxy_next_upstream error`. A broken pooled connection costs no
    /// try (the upstream may just have closed it); when no other endpoint is left its endpoint
    /// is tried once more on a new connection. Every such failure counts toward ejection.
    async fn proxy(&mut self, shared: &Shared, info: &ConnInfo, plan: Plan) -> Result<bool, ()> {
        let start = Instant::now();
        let route = &*plan.route;
        let upstream = &route.upstream;
        let opts = &route.options;
        let eps = upstream.endpoints();
        let now_ms = shared.registry.clock.ms_at(start);
        let tries = opts.next_upstream_tries.clamp(1, eps.len().max(1) as u32);
        let replayable = plan.idempotent && plan.body_left == 0;
        // Allocates only when an attempt fails.
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut set_cookie: Option<&Endpoint> = None;
        let mut attempt = 0;
        // The endpoint of a pooled connection that broke, to try on a new connection.
        let mut stale: Option<&Endpoint> = None;
        while attempt < tries {
            let first = tried.is_empty();
            let (endpoint, fresh) = match plan.sticky.filter(|_| first) {
                Some(i) => (&eps[i], false),
                None => match upstream.pick(now_ms, &tried, None) {
                    Some(e) => {
                        if let Some(a) = &opts.affinity
                            && (first || a.change_on_failure)
                        {
                            set_cookie = Some(e);
                        }
                        (e, false)
                    }
                    None => match stale.take() {
                        Some(e) => (e, true),
                        None => break,
                    },
                },
            };
            // An endpoint being probed after its ejection gets one new connection.
            let pooled = if fresh || !endpoint.state.admitted() {
                None
            } else {
                pool::take(endpoint.addr)
            };
            let (up, reused) = match pooled {
                Some(s) => (s, true),
                None => match connect(endpoint.addr, opts.connect_timeout).await {
                    Ok(s) => {
                        if shared.registry.connected(&endpoint.state) {
                            info!(service = %upstream.label, endpoint = %endpoint.addr, "ejected endpoint readmitted after a successful connect");
                        }
                        (s, false)
                    }
                    Err(e) => {
                        debug!(service = %upstream.label, endpoint = %endpoint.addr, error = %e, "connect failed");
                        route.metrics.connect_error();
                        endpoint_failed(shared, upstream, endpoint);
                        tried.push(endpoint.addr);
                        attempt += 1;
                        continue;
                    }
                },
            };

            endpoint.state.inflight.fetch_add(1, Ordering::Relaxed);
            let result = self
                .exchange(shared, info, &plan, endpoint, set_cookie, up, start)
                .await;
            endpoint.state.inflight.fetch_sub(1, Ordering::Relaxed);
            return match result {
                Ok((status, keep)) => {
                    if shared.registry.connected(&endpoint.state) {
                        info!(service = %upstream.label, endpoint = %endpoint.addr, "ejected endpoint readmitted after a response");
                    }
                    route.metrics.observe(status, start.elapsed());
                    self.log(shared, info, &plan, status, start);
                    Ok(keep && !plan.close)
                }
                Err((UpstreamError::Client(_), _)) => Err(()),
                Err((UpstreamError::BodyTimeout, progress)) => {
                    debug!(peer = %info.peer, "request body timed out");
                    if progress != Progress::Forwarded {
                        let _ = self.fail(shared, info, &plan, 408, start).await;
                    }
                    Err(())
                }
                Err((e @ (UpstreamError::Io(_) | UpstreamError::Closed), Progress::Unanswered))
                    if replayable =>
                {
                    debug!(service = %upstream.label, endpoint = %endpoint.addr, reused, error = %e, "upstream connection broke before responding; trying another endpoint");
                    endpoint_failed(shared, upstream, endpoint);
                    tried.push(endpoint.addr);
                    if reused {
                        stale = Some(endpoint);
                    } else {
                        attempt += 1;
                    }
                    continue;
                }
                Err((e, progress)) => {
                    debug!(service = %upstream.label, endpoint = %endpoint.addr, error = %e, "upstream failed");
                    if matches!(e, UpstreamError::Io(_) | UpstreamError::Closed)
                        && progress == Progress::Unanswered
                    {
                        endpoint_failed(shared, upstream, endpoint);
                    }
                    if progress == Progress::Forwarded {
                        // The response is cut short; the client sees the connection close.
                        route.metrics.observe(502, start.elapsed());
                        return Err(());
                    }
                    let status = if matches!(e, UpstreamError::Timeout) {
                        504
                    } else {
                        502
                    };
                    self.fail(shared, info, &plan, status, start).await
                }
            };
        }
        self.fail(shared, info, &plan, 502, start).await
    }

    /// Answer with an error status; the connection stays open when the request was read whole.
    async fn fail(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: &Plan,
        status: u16,
        start: Instant,
    ) -> Result<bool, ()> {
        plan.route.metrics.observe(status, start.elapsed());
        self.log(shared, info, plan, status, start);
        let resp = error_response(status);
        let draining = self.shutdown.is_cancelled();
        let said_close = resp.windows(17).any(|w| w == b"connection: close");
        let written = if draining && !said_close {
            // The last response of a draining connection says so, after its status line.
            let line = resp
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(0, |i| i + 2);
            let mut r = Vec::with_capacity(resp.len() + 19);
            r.extend_from_slice(&resp[..line]);
            r.extend_from_slice(b"connection: close\r\n");
            r.extend_from_slice(&resp[line..]);
            self.io.write_all(&r).await
        } else {
            self.io.write_all(resp).await
        };
        if written.is_err() || self.io.flush().await.is_err() {
            return Err(());
        }
        Ok(plan.body_left == 0 && !plan.close && !draining)
    }

    fn log(&self, shared: &Shared, info: &ConnInfo, plan: &Plan, status: u16, start: Instant) {
        if let Some((method, path, host)) = &plan.log {
            shared.log_line(
                &ConnInfo {
                    client: plan.client,
                    ..*info
                },
                method,
                path,
                host,
                Some(&plan.route),
                status,
                start.elapsed(),
            );
        }
    }

    /// Send the request in `out` (and the rest of its body), forward the response. Returns the
    /// status and whether the client connection may be reused; on error, whether part of the
    /// response was already sent.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: &Plan,
        endpoint: &Endpoint,
        set_cookie: Option<&Endpoint>,
        mut up: TcpStream,
        sent: Instant,
    ) -> Result<(u16, bool), (UpstreamError, Progress)> {
        let opts = &plan.route.options;
        self.upbuf.clear();
        // Send, and read until a complete response head.
        let mut received = false;
        let r = tokio::time::timeout(
            opts.read_timeout,
            self.send_and_read_head(&mut up, shared, info, plan, set_cookie, &mut received),
        )
        .await;
        let unanswered = if received {
            Progress::Answering
        } else {
            Progress::Unanswered
        };
        let head = match r {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return Err((e, unanswered)),
            Err(_) => return Err((UpstreamError::Timeout, unanswered)),
        };
        endpoint.state.observe_latency(sent.elapsed());
        let Head {
            status,
            framing,
            up_close,
            close_down,
        } = head;

        // The body: what came with the head goes out with it; the rest streams.
        let mut scanner = codec::ChunkedScanner::default();
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut done = self
            .take_body(framing, &mut left, &mut scanner)
            .map_err(|e| (e, Progress::Answering))?;
        self.io
            .write_all(&self.out)
            .await
            .map_err(|e| (UpstreamError::Client(e), Progress::Forwarded))?;
        while !done {
            self.upbuf.clear();
            self.upbuf.reserve(CHUNK);
            let n =
                match tokio::time::timeout(opts.read_timeout, up.read_buf(&mut self.upbuf)).await {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err((e.into(), Progress::Forwarded)),
                    Err(_) => return Err((UpstreamError::Timeout, Progress::Forwarded)),
                };
            if n == 0 {
                if framing == Framing::UntilClose {
                    break;
                }
                return Err((UpstreamError::Closed, Progress::Forwarded));
            }
            self.out.clear();
            done = self
                .take_body(framing, &mut left, &mut scanner)
                .map_err(|e| (e, Progress::Forwarded))?;
            self.io
                .write_all(&self.out)
                .await
                .map_err(|e| (UpstreamError::Client(e), Progress::Forwarded))?;
        }
        self.io
            .flush()
            .await
            .map_err(|e| (UpstreamError::Client(e), Progress::Forwarded))?;
        // Bytes after the response mean the upstream is confused: never reuse it.
        if !up_close && framing != Framing::UntilClose && self.upbuf.is_empty() {
            pool::put(endpoint.addr, up);
        }
        Ok((status, !close_down))
    }

    /// Move the body bytes of `upbuf` to `out`; returns whether the body is complete.
    fn take_body(
        &mut self,
        framing: Framing,
        left: &mut u64,
        scanner: &mut codec::ChunkedScanner,
    ) -> Result<bool, UpstreamError> {
        let n = match framing {
            Framing::Empty => 0,
            Framing::Length(_) => {
                let n = (self.upbuf.len() as u64).min(*left) as usize;
                *left -= n as u64;
                n
            }
            Framing::Chunked => scanner.feed(&self.upbuf)?,
            Framing::UntilClose => self.upbuf.len(),
        };
        self.out.extend_from_slice(&self.upbuf[..n]);
        self.upbuf.advance(n);
        Ok(match framing {
            Framing::Empty => true,
            Framing::Length(_) => *left == 0,
            Framing::Chunked => scanner.done(),
            Framing::UntilClose => false,
        })
    }

    /// Write `out` and the rest of the request body, then read until a complete response head
    /// (interim 1xx responses are skipped) and put the client's head in `out`. The head is
    /// parsed once, here, in place.
    async fn send_and_read_head(
        &mut self,
        up: &mut TcpStream,
        shared: &Shared,
        info: &ConnInfo,
        plan: &Plan,
        set_cookie: Option<&Endpoint>,
        received: &mut bool,
    ) -> Result<Head, UpstreamError> {
        up.write_all(&self.out).await?;
        let mut left = plan.body_left;
        while left > 0 {
            if self.inbuf.is_empty() {
                self.inbuf.reserve(CHUNK.min(left as usize));
                let read = self.io.read_buf(&mut self.inbuf);
                let n = match tokio::time::timeout(shared.client_body_timeout, read).await {
                    Ok(r) => r.map_err(UpstreamError::Client)?,
                    Err(_) => return Err(UpstreamError::BodyTimeout),
                };
                if n == 0 {
                    return Err(UpstreamError::Client(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
            }
            let n = (self.inbuf.len() as u64).min(left) as usize;
            up.write_all(&self.inbuf[..n]).await?;
            self.inbuf.advance(n);
            left -= n as u64;
        }
        loop {
            if !self.upbuf.is_empty() {
                let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match codec::parse_response(&self.upbuf, &mut hdrs, plan.head_request)? {
                    None => {}
                    Some(r) if r.code == 101 => return Err(codec::BadResponse::Malformed.into()),
                    Some(r) => {
                        let n = r.head_len;
                        let interim = (100..200).contains(&r.code);
                        let head = (!interim).then(|| {
                            let draining = self.shutdown.is_cancelled();
                            downstream_head(
                                &mut self.out,
                                &r,
                                shared,
                                info,
                                plan,
                                set_cookie,
                                draining,
                            )
                        });
                        self.upbuf.advance(n);
                        match head {
                            Some(h) => return Ok(h),
                            // A final response may already follow the interim one.
                            None => continue,
                        }
                    }
                }
            }
            if self.upbuf.capacity() - self.upbuf.len() < 1024 {
                self.upbuf.reserve(BUF);
            }
            let n = up.read_buf(&mut self.upbuf).await?;
            if n == 0 {
                return Err(UpstreamError::Closed);
            }
            *received = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessLog, Metrics, RouterConfig};

    /// Every connection's task holds this future; its size is copied when the task is spawned
    /// and is memory per open connection. Parsed headers (3 KiB per head) must stay out of it.
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let shared = Arc::new(Shared::new(
            RouterConfig {
                class_name: "portico".into(),
                controller: crate::CONTROLLER.into(),
            },
            Arc::new(Metrics::default()),
            AccessLog::Off,
            None,
            None,
        ));
        let (io, _peer) = tokio::io::duplex(64);
        let info = ConnInfo::new(
            "127.0.0.1:1".parse().expect("literal"),
            "127.0.0.1:2".parse().expect("literal"),
            false,
            &crate::forwarded::TrustedProxies::default(),
        );
        let fut = serve(shared, info, io, CancellationToken::new());
        let size = std::mem::size_of_val(&fut);
        assert!(
            size < 2048,
            "the fast path's connection future is {size} bytes"
        );
    }
}
