//! One listener: a bound socket and the task that serves it, TCP ([`tcp`]: accept, pick,
//! connect with fallback, optional PROXY header, copy both ways) or UDP ([`udp`]: a flow per
//! client address with a connected upstream socket; replies leave from the frontend socket).
//!
//! Stopping a listener closes its socket only: TCP connections go on until they end or the
//! engine shuts down. UDP flows end with their listener (UDP has no end to wait for).

mod tcp;
mod udp;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use portico_model::Snapshot;
use portico_runtime::Publisher;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bind;
use crate::counters::Counters;
use crate::frontend::{Frontend, Protocol, Settings};
use crate::select::Picker;

/// Pause after a failed `accept` or `recv` before the next, so that an error that lasts (out of
/// file descriptors, the address gone) cannot spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What a listener task needs.
pub(crate) struct Listener {
    pub(crate) frontend: Frontend,
    pub(crate) picker: Arc<Picker>,
    pub(crate) snapshots: Arc<Publisher<Snapshot>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) settings: Settings,
    /// Stops accepting; TCP connections already made go on.
    pub(crate) stop: CancellationToken,
    /// Ends everything, connections included.
    pub(crate) shutdown: CancellationToken,
}

/// Bind the listener's socket and start serving it. Must be called within a tokio runtime.
pub(crate) fn start(ctx: Listener) -> io::Result<JoinHandle<()>> {
    let (addr, freebind) = (ctx.frontend.addr, ctx.settings.freebind);
    let ctx = Arc::new(ctx);
    Ok(match ctx.frontend.protocol {
        Protocol::Tcp => {
            let socket = bind::tcp(addr, ctx.settings.backlog, freebind)?;
            tokio::spawn(tcp::serve(socket, ctx))
        }
        Protocol::Udp => tokio::spawn(udp::serve(bind::udp(addr, freebind)?, ctx)),
    })
}
