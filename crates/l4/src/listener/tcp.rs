//! TCP frontends: accept (within `--max-connections` when set), pick, connect with fallback to
//! the next upstreams, send the PROXY v2 header when the target asks for it, copy both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{ACCEPT_ERROR_BACKOFF, Listener};
use crate::counters::ActiveGuard;
use crate::proxy_protocol::{self, Transport};

/// Accept until `stop` or `shutdown`. Each connection runs in its own task, which only
/// `shutdown` ends: stopping the listener closes the socket and nothing else.
pub(super) async fn serve(listener: TcpListener, ctx: Arc<Listener>) {
    loop {
        let accepted = tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = ctx.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, client) = match accepted {
            Ok(v) => v,
            Err(e) => {
                warn!(frontend = %ctx.frontend, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        // At the connection limit, wait for a slot with this connection in hand and accept no
        // more: new connections wait in the listen backlog until one closes.
        let slot = match &ctx.settings.connection_limit {
            None => None,
            Some(limit) => tokio::select! {
                () = ctx.stop.cancelled() => break,
                () = ctx.shutdown.cancelled() => break,
                slot = limit.acquire() => Some(slot),
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _active = ActiveGuard::new(ctx.counters.clone());
            tokio::select! {
                () = ctx.shutdown.cancelled() => {}
                () = proxy(stream, client, &ctx) => {}
            }
        });
    }
    debug!(frontend = %ctx.frontend, "listener closed");
}

/// Reset rather than a clean close: the client sees a refusal, not an empty reply.
fn reset(stream: &TcpStream, ctx: &Listener) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(frontend = %ctx.frontend, error = %e, "cannot set SO_LINGER");
    }
}

/// The first of `backends` that accepts a connection, counting the ones that did not.
async fn connect_first(backends: &[SocketAddr], ctx: &Listener) -> Option<(TcpStream, SocketAddr)> {
    let timeout = ctx.settings.connect_timeout;
    for backend in backends {
        match tokio::time::timeout(timeout, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => return Some((stream, *backend)),
            Ok(Err(e)) => {
                debug!(frontend = %ctx.frontend, %backend, error = %e, "connect failed; trying the next upstream");
            }
            Err(_) => {
                debug!(frontend = %ctx.frontend, %backend, timeout_ms = timeout.as_millis() as u64, "connect timed out; trying the next upstream");
            }
        }
        ctx.counters.connect_failures.fetch_add(1, Relaxed);
    }
    None
}

async fn proxy(mut inbound: TcpStream, client: SocketAddr, ctx: &Listener) {
    // One snapshot for the whole choice.
    let snapshot = ctx.snapshots.current();
    let now = Instant::now();
    let pick = match ctx.picker.pick(&snapshot, client.ip(), now) {
        Ok(p) => p,
        Err(e) => {
            ctx.counters.no_backend.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, %client, reason = %e, "no upstream; resetting");
            return reset(&inbound, ctx);
        }
    };
    drop(snapshot);
    let Some((mut outbound, backend)) = connect_first(&pick.backends, ctx).await else {
        debug!(frontend = %ctx.frontend, %client, tried = pick.backends.len(), "no upstream accepted the connection");
        return reset(&inbound, ctx);
    };
    ctx.picker.connected(&pick, client.ip(), backend, now);
    if ctx.picker.proxy_protocol() {
        let local = inbound.local_addr().unwrap_or(ctx.frontend.addr);
        let header = proxy_protocol::header(Transport::Stream, client, local);
        if let Err(e) = outbound.write_all(&header).await {
            debug!(frontend = %ctx.frontend, %backend, error = %e, "cannot send the PROXY header");
            return reset(&inbound, ctx);
        }
    }
    for s in [&inbound, &outbound] {
        if let Err(e) = s.set_nodelay(true) {
            debug!(frontend = %ctx.frontend, error = %e, "cannot set TCP_NODELAY");
        }
    }
    debug!(frontend = %ctx.frontend, %client, %backend, sticky = pick.sticky, "connected");
    match tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        Ok((up, down)) => {
            debug!(frontend = %ctx.frontend, %backend, bytes_up = up, bytes_down = down, "connection closed")
        }
        Err(e) => {
            debug!(frontend = %ctx.frontend, %backend, error = %e, "connection ended with an error")
        }
    }
}
