//! Listeners: accept loops for plain HTTP and TLS, one hyper connection per socket (HTTP/1.1 with
//! keepalive and upgrades, HTTP/2 by ALPN or prior knowledge), and a bounded graceful drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::proxy::{self, ConnInfo};
use super::shared::Shared;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// When the drain begins, how long an idle keepalive connection may still send one request
/// (answered with `Connection: close`) before it is closed. A client that has just had a
/// response and sends its next request at once, as busy keepalive clients do, is answered
/// instead of meeting a close in flight; only one idle for this long can still race the close.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);
/// Streams open at once on one HTTP/2 connection.
pub(super) const MAX_CONCURRENT_STREAMS: u32 = 128;

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

pub(super) async fn serve_io<I>(
    shared: Arc<Shared>,
    info: ConnInfo,
    io: I,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let b = builder();
    let draining = shutdown.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let (shared, draining) = (shared.clone(), draining.clone());
        async move {
            let h1 = req.version() < Version::HTTP_2;
            let mut resp = proxy::handle(shared, info, req).await?;
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

/// Accept until `shutdown`; connections are tracked so the caller can drain them.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // At --max-connections, wait for a slot with this connection in hand and accept no
        // more: new connections wait in the listen backlog until one closes.
        let slot = match &shared.connection_limit {
            None => None,
            Some(limit) => tokio::select! {
                _ = shutdown.cancelled() => return,
                slot = limit.acquire() => Some(slot),
            },
        };
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        // Boxed: the connection's state is copied once, into the box, instead of into the
        // task cell and again when the finished task's stage is overwritten.
        let conn = connection(
            shared.clone(),
            stream,
            peer,
            local,
            tls.clone(),
            shutdown.clone(),
        );
        tracker.spawn(Box::pin(async move {
            conn.await;
            // The slot is freed when the connection is done.
            drop(slot);
        }));
    }
}

/// One accepted connection: TLS handshake when on the HTTPS listener, then the fast path for
/// HTTP/1.1 (when on) or the general path.
async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let metrics = shared.metrics.clone();
    metrics.open_connections.inc();
    match tls {
        None => {
            let info = ConnInfo::new(peer, local, false, &shared.trusted);
            if shared.fast_h1 {
                super::fast::serve(shared, info, stream, shutdown).await
            } else {
                Box::pin(serve_io(shared, info, stream, shutdown)).await
            }
        }
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    metrics.tls_handshakes.inc();
                    let info = ConnInfo::new(peer, local, true, &shared.trusted);
                    // HTTP/2 (negotiated by ALPN) is the general path's.
                    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    if shared.fast_h1 && !h2 {
                        super::fast::serve(shared, info, tls_stream, shutdown).await
                    } else {
                        Box::pin(serve_io(shared, info, tls_stream, shutdown)).await
                    }
                }
                Ok(Err(e)) => {
                    metrics.tls_handshake_errors.inc();
                    debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.tls_handshake_errors.inc();
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
    metrics.open_connections.dec();
}
