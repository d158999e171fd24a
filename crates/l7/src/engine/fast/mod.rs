//! The HTTP/1.1 fast engine: plain keepalive requests proxied with one read and one write per
//! side, in the connection's own task.
//!
//! Most Ingress traffic is small HTTP/1.1 requests on keepalive connections. The hyper engine
//! (hyper server -> `http::Request` -> hyper client pool -> connection task) spends more time
//! building header maps, waking tasks and passing requests through channels than moving bytes
//! (see loadtest/RESULTS.md). This engine parses the head in place (httparse), runs the request
//! pipeline ([`crate::request`]) on it, writes the rewritten head and the buffered body upstream
//! in one write on a connection from a per-thread pool, reads the response head in place and
//! forwards head and body in one write. Nothing is allocated per request on the common path.
//!
//! It is opt-in: it takes only requests it fully understands ([`codec::parse_request`]:
//! HTTP/1.1, one `Host`, at most one `Content-Length`, no `Transfer-Encoding`, no upgrade or
//! `Expect`) for routes whose [`Features`] it implements ([`IMPLEMENTS`]), and hands every
//! policy answer (403, redirects, 413) to the hyper engine, which writes it. Anything else
//! hands the connection, with the bytes already read, to the hyper engine for the rest of its
//! life, so behaviour never depends on which engine served.

mod answer;
pub mod codec;
mod exchange;
mod io;
mod plan;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::answer::refusal_response;
use self::codec::MAX_HEAD;
use self::io::Prefixed;
use super::DRAIN_IDLE_GRACE;
use crate::request::{ConnInfo, Features};
use crate::shared::Shared;
use crate::table::Route;

/// Idle time allowed before a request head arrives (hyper's `header_read_timeout` on the general path).
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Read buffer per side; grows for large heads.
const BUF: usize = 8 * 1024;
/// Body bytes copied per read when streaming.
const CHUNK: usize = 64 * 1024;

/// The route features this engine implements. Everything else (rewrites, hashing, canaries,
/// allow-lists, redirects, TLS or HTTP/2 upstreams, ExternalName and endpoint-less backends) is
/// served by the hyper engine.
pub const IMPLEMENTS: Features = Features::AFFINITY
    .union(Features::BODY_LIMIT)
    .union(Features::EWMA)
    .union(Features::STREAMED_BODY);

/// Whether this engine implements everything `route` uses on a connection that is `tls` or not.
#[inline]
pub fn takes(route: &Route, tls: bool) -> bool {
    IMPLEMENTS.contains(route.features.on(tls))
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
            Box::pin(super::hyper::serve_io(
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
                        let deadline = Instant::now() + DRAIN_IDLE_GRACE;
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
