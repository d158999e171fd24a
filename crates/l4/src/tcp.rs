//! TCP frontends: accept, pick, connect (with fallback to the next backends), copy both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{ActiveGuard, Listener};

/// Accept until `stop` or `shutdown`. Each connection runs in its own task, which only
/// `shutdown` ends: stopping the listener closes the socket and nothing else.
pub(super) async fn serve(listener: TcpListener, ctx: Listener) {
    let ctx = Arc::new(ctx);
    loop {
        let accepted = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, client)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let guard = ActiveGuard::new(ctx.counters.clone());
                    let shutdown = ctx.shutdown.clone();
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = proxy(stream, client, &ctx) => {}
                    }
                    drop(guard);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(frontend = %ctx.frontend, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    debug!(frontend = %ctx.frontend, "listener closed");
}

async fn proxy(mut inbound: TcpStream, client: SocketAddr, ctx: &Listener) {
    // One snapshot for the whole connection.
    let snapshot = ctx.snapshots.current();
    let now = Instant::now();
    let pick = match ctx.picker.pick(&snapshot, client.ip(), now) {
        Ok(p) => p,
        Err(e) => {
            ctx.counters.no_backend.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, client = %client, reason = %e, "no backend; resetting");
            // Reset rather than a clean close: the client sees a refusal, not an empty reply.
            if let Err(e) = inbound.set_zero_linger() {
                debug!(frontend = %ctx.frontend, error = %e, "cannot set SO_LINGER");
            }
            return;
        }
    };
    drop(snapshot);
    let mut upstream = None;
    for backend in &pick.backends {
        match tokio::time::timeout(ctx.settings.connect_timeout, TcpStream::connect(backend)).await
        {
            Ok(Ok(stream)) => {
                upstream = Some((stream, *backend));
                break;
            }
            Ok(Err(e)) => {
                ctx.counters.connect_failures.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, backend = %backend, error = %e, "connect failed; trying the next endpoint");
            }
            Err(_) => {
                ctx.counters.connect_failures.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, backend = %backend, timeout_ms = ctx.settings.connect_timeout.as_millis() as u64, "connect timed out; trying the next endpoint");
            }
        }
    }
    let Some((mut outbound, backend)) = upstream else {
        debug!(frontend = %ctx.frontend, client = %client, tried = pick.backends.len(), "no endpoint accepted the connection");
        if let Err(e) = inbound.set_zero_linger() {
            debug!(frontend = %ctx.frontend, error = %e, "cannot set SO_LINGER");
        }
        return;
    };
    ctx.picker.connected(&pick, client.ip(), backend, now);
    for s in [&inbound, &outbound] {
        if let Err(e) = s.set_nodelay(true) {
            debug!(frontend = %ctx.frontend, error = %e, "cannot set TCP_NODELAY");
        }
    }
    debug!(frontend = %ctx.frontend, client = %client, backend = %backend, sticky = pick.sticky, "connected");
    match tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        Ok((up, down)) => {
            debug!(frontend = %ctx.frontend, backend = %backend, bytes_up = up, bytes_down = down, "connection closed")
        }
        Err(e) => {
            debug!(frontend = %ctx.frontend, backend = %backend, error = %e, "connection ended with an error")
        }
    }
}
