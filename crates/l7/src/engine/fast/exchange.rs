//! The fast engine's exchange with an upstream: one attempt ([`Exchange`] for the upstream
//! phase's loop: a pooled or new connection, the request written within
//! `proxy-send-timeout`, the response head read within `proxy-read-timeout`), then the
//! response body forwarded as it arrives.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use super::answer::done;
use super::codec::{self, Framing, MAX_HEADERS, ResponseExtras};
use super::plan::Plan;
use super::{BUF, CHUNK, Conn, pool};
use crate::request::upstream::{self, Attempt, Exchange, Failure, Outcome};
use crate::request::{ConnInfo, response};
use crate::shared::Shared;
use crate::upstream::Endpoint;

/// How far forwarding a response had come when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Part of the response arrived; the client has been sent nothing yet.
    Answering,
    /// Part of the response was sent to the client.
    Forwarded,
}

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection before responding")]
    Closed,
    #[error("upstream timed out")]
    Timeout,
    #[error("sending the request to the upstream timed out")]
    SendTimeout,
    #[error(transparent)]
    Response(#[from] codec::BadResponse),
    #[error(transparent)]
    Chunk(#[from] codec::BadChunk),
    #[error("client went away")]
    Client(std::io::Error),
    #[error("the request body stalled longer than the client body timeout")]
    BodyTimeout,
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

/// Write all of `buf`, each write within `limit` (nginx's `proxy_send_timeout`: the time
/// between two successive writes to the upstream). A write that can go at once (the common
/// case) needs no timer; one that has to wait gets a boxed one, which keeps the timer out of
/// every connection's future.
async fn write_within(
    up: &mut TcpStream,
    mut buf: &[u8],
    limit: Duration,
) -> Result<(), UpstreamError> {
    while !buf.is_empty() {
        match up.try_write(buf) {
            Ok(0) => return Err(UpstreamError::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                match Box::pin(tokio::time::timeout(limit, up.writable())).await {
                    Ok(r) => r?,
                    Err(_) => return Err(UpstreamError::SendTimeout),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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
    let added = response::added(
        shared,
        &plan.route,
        info.tls,
        set_cookie,
        plan.omit_samesite_none,
    );
    let close_down = plan.close || draining || resp.framing == Framing::UntilClose;
    out.clear();
    codec::write_downstream_head(
        out,
        resp,
        &ResponseExtras {
            set_cookie: added.set_cookie.as_ref().map(|c| c.as_bytes()),
            hsts: added.hsts.map(|h| h.as_bytes()),
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

/// One attempt of the upstream phase, on this connection.
struct FastExchange<'c, I> {
    conn: &'c mut Conn<I>,
    shared: &'c Shared,
    info: &'c ConnInfo,
    plan: &'c Plan,
}

impl<I> Exchange for FastExchange<'_, I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    type Reply = (Head, TcpStream);
    type Error = UpstreamError;

    async fn attempt(
        &mut self,
        a: &Attempt<'_>,
    ) -> Result<(Head, TcpStream), (UpstreamError, Failure)> {
        // The fast engine serves endpoints only (see `Features::NOT_ENDPOINTS`).
        let Some(endpoint) = a.endpoint else {
            return Err((UpstreamError::Closed, Failure::Final));
        };
        // An endpoint being probed after its ejection gets one new connection.
        let pooled = if a.fresh || !endpoint.state.admitted() {
            None
        } else {
            pool::take(endpoint.addr)
        };
        let (mut up, reused) = match pooled {
            Some(s) => (s, true),
            None => match connect(endpoint.addr, a.timeouts().connect).await {
                Ok(s) => {
                    a.connected();
                    (s, false)
                }
                Err(e) => return Err((e, Failure::Connect)),
            },
        };
        self.conn.upbuf.clear();
        let mut received = false;
        let exchange = self.conn.send_and_read_head(
            &mut up,
            self.shared,
            self.info,
            self.plan,
            a.set_cookie,
            a.timeouts().send,
            &mut received,
        );
        match tokio::time::timeout(a.timeouts().read, exchange).await {
            Ok(Ok(head)) => Ok((head, up)),
            Ok(Err(e @ (UpstreamError::Io(_) | UpstreamError::Closed))) if !received => {
                Err((e, Failure::Broke { reused }))
            }
            Ok(Err(e)) => Err((e, Failure::Final)),
            Err(_) => Err((UpstreamError::Timeout, Failure::Final)),
        }
    }
}

impl<I> Conn<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    /// Proxy one planned request. `Ok(true)`: the connection may serve another request.
    /// The endpoint loop is the upstream phase's ([`upstream::run`]); a request whose body is
    /// whole in `out` and whose method is idempotent may be sent twice.
    pub(super) async fn proxy(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: Plan,
    ) -> Result<bool, ()> {
        let start = Instant::now();
        let route = &*plan.route;
        let req = upstream::Request {
            route,
            upstream: &route.upstream,
            sticky: plan.sticky.and_then(|i| route.upstream.endpoints().get(i)),
            hash: None,
            // A failed connect consumed nothing: the request is still in `out` and `inbuf`.
            resendable: true,
            replayable: plan.idempotent && plan.body_left == 0,
            start,
        };
        let mut exchange = FastExchange {
            conn: self,
            shared,
            info,
            plan: &plan,
        };
        match upstream::run(shared, &req, &mut exchange).await {
            Outcome::Answered {
                reply: (head, up),
                endpoint,
                inflight,
                ..
            } => {
                let addr = endpoint.map(|e| e.addr);
                let forwarded = self.forward(&plan, head, up, addr).await;
                drop(inflight);
                match forwarded {
                    Ok((status, keep)) => {
                        done(shared, info, &plan, status, start);
                        Ok(keep && !plan.close)
                    }
                    Err((UpstreamError::Client(_), _)) => Err(()),
                    Err((e, progress)) => {
                        debug!(service = %route.upstream.label, endpoint = ?addr, error = %e, "upstream failed");
                        if progress == Progress::Forwarded {
                            // The response is cut short; the client sees the connection close.
                            route.metrics.observe(502, start.elapsed());
                            return Err(());
                        }
                        self.fail(shared, info, &plan, 502, start).await
                    }
                }
            }
            Outcome::Failed(UpstreamError::Client(_)) => Err(()),
            Outcome::Failed(UpstreamError::BodyTimeout) => {
                debug!(peer = %info.peer, "request body timed out");
                let _ = self.fail(shared, info, &plan, 408, start).await;
                Err(())
            }
            Outcome::Failed(e) => {
                let status = match e {
                    UpstreamError::Timeout | UpstreamError::SendTimeout => 504,
                    _ => 502,
                };
                self.fail(shared, info, &plan, status, start).await
            }
            Outcome::NoEndpoint => self.fail(shared, info, &plan, 502, start).await,
        }
    }

    /// Forward the response whose head is in `out` and its body. Returns the status and whether
    /// the client connection may be reused; on error, whether part of the response was already
    /// sent. A connection left clean goes back to the pool.
    async fn forward(
        &mut self,
        plan: &Plan,
        head: Head,
        mut up: TcpStream,
        addr: Option<SocketAddr>,
    ) -> Result<(u16, bool), (UpstreamError, Progress)> {
        let read_timeout = plan.route.options.read_timeout;
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
            let n = match tokio::time::timeout(read_timeout, up.read_buf(&mut self.upbuf)).await {
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
        if !up_close
            && framing != Framing::UntilClose
            && self.upbuf.is_empty()
            && let Some(addr) = addr
        {
            pool::put(addr, up);
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
    #[allow(clippy::too_many_arguments)]
    async fn send_and_read_head(
        &mut self,
        up: &mut TcpStream,
        shared: &Shared,
        info: &ConnInfo,
        plan: &Plan,
        set_cookie: Option<&Endpoint>,
        send_timeout: Duration,
        received: &mut bool,
    ) -> Result<Head, UpstreamError> {
        write_within(up, &self.out, send_timeout).await?;
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
            write_within(up, &self.inbuf[..n], send_timeout).await?;
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
