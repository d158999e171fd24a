//! Listeners: accept loops for plain HTTP and TLS; each connection goes to an engine — the fast
//! one for HTTP/1.1 (unless `--http1-engine hyper`), hyper for HTTP/2 by ALPN and the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::engine::{fast, hyper};
use super::request::ConnInfo;
use super::shared::Shared;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
                fast::serve(shared, info, stream, shutdown).await
            } else {
                Box::pin(hyper::serve_io(shared, info, stream, shutdown)).await
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
                        fast::serve(shared, info, tls_stream, shutdown).await
                    } else {
                        Box::pin(hyper::serve_io(shared, info, tls_stream, shutdown)).await
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
