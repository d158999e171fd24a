//! UDP frontends. Each client address gets a flow: a connected upstream socket to the backend
//! picked for it; the backend's replies go back to the client from the frontend socket (so their
//! source is the frontend address). Flows idle-expire, and the flow table is bounded.
//!
//! When the snapshot changes, a flow whose backend is no longer a candidate is closed at the
//! client's next datagram and a new backend is picked (kube-proxy clears conntrack entries of
//! removed UDP endpoints for the same reason: UDP has no end to wait for). Stopping a UDP
//! listener ends its flows for the same reason.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{ActiveGuard, Listener, candidates};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

struct Flow {
    id: u64,
    upstream: Arc<UdpSocket>,
    backend: SocketAddr,
    /// The publisher version (count of publishes) the backend was last checked against.
    version: u64,
    /// Milliseconds since the listener's epoch of the last datagram either way.
    last: Arc<AtomicU64>,
    cancel: CancellationToken,
}

/// Relay datagrams until `stop` or `shutdown`; every flow ends with the listener.
pub(super) async fn serve(socket: UdpSocket, ctx: Listener) {
    let socket = Arc::new(socket);
    let epoch = Instant::now();
    let flows_done = CancellationToken::new();
    let (expired_tx, mut expired_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
            Some((client, id)) = expired_rx.recv() => {
                if flows.get(&client).is_some_and(|f| f.id == id) {
                    flows.remove(&client);
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors and the like surface here on some kernels; nothing to do.
                    debug!(frontend = %ctx.frontend, error = %e, "recv failed");
                    // Never spin on a lasting error.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let now_ms = epoch.elapsed().as_millis() as u64;
        let version = ctx.snapshots.version();
        // A flow whose relay ended (idle) but whose removal is still in the channel is gone.
        if flows.get(&client).is_some_and(|f| f.cancel.is_cancelled()) {
            flows.remove(&client);
        }
        if let Some(flow) = flows.get_mut(&client)
            && flow.version != version
        {
            let target = ctx.picker.target();
            let still = candidates(&ctx.snapshots.peek(), &target)
                .is_ok_and(|c| c.iter().any(|b| b.addr == flow.backend));
            if still {
                flow.version = version;
            } else {
                debug!(frontend = %ctx.frontend, client = %client, backend = %flow.backend, "endpoint gone; re-picking the flow");
                flow.cancel.cancel();
                flows.remove(&client);
            }
        }
        if !flows.contains_key(&client) {
            if flows.len() >= ctx.settings.udp_max_flows {
                ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, client = %client, max = ctx.settings.udp_max_flows, "flow table full; datagram dropped");
                continue;
            }
            next_id += 1;
            match open(
                &socket,
                client,
                next_id,
                version,
                now_ms,
                epoch,
                &ctx,
                &flows_done,
                &expired_tx,
            )
            .await
            {
                Some(flow) => drop(flows.insert(client, flow)),
                None => continue,
            }
        }
        let Some(flow) = flows.get(&client) else {
            continue;
        };
        flow.last.store(now_ms, Ordering::Relaxed);
        // A UDP send waits only while the socket buffer is full, which is rare and short.
        if let Err(e) = flow.upstream.send(&buf[..n]).await {
            ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, backend = %flow.backend, error = %e, "datagram to backend dropped");
        }
    }
    flows_done.cancel();
    debug!(frontend = %ctx.frontend, flows = flows.len(), "listener closed");
}

#[allow(clippy::too_many_arguments)]
async fn open(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    id: u64,
    version: u64,
    now_ms: u64,
    epoch: Instant,
    ctx: &Listener,
    flows_done: &CancellationToken,
    expired: &mpsc::UnboundedSender<(SocketAddr, u64)>,
) -> Option<Flow> {
    let pick = {
        let snapshot = ctx.snapshots.current();
        ctx.picker.pick(&snapshot, client.ip(), Instant::now())
    };
    let pick = match pick {
        Ok(p) => p,
        Err(e) => {
            ctx.counters.no_backend.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, client = %client, reason = %e, "no backend; datagram dropped");
            return None;
        }
    };
    // A connected socket per flow: the kernel filters replies to that backend.
    let backend = *pick.backends.first()?;
    let upstream = match connect(backend).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            ctx.counters.connect_failures.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, backend = %backend, error = %e, "cannot open an upstream socket");
            return None;
        }
    };
    debug!(frontend = %ctx.frontend, client = %client, backend = %backend, sticky = pick.sticky, "flow opened");
    let last = Arc::new(AtomicU64::new(now_ms));
    let cancel = flows_done.child_token();
    let task = Relay {
        frontend: socket.clone(),
        upstream: upstream.clone(),
        client,
        last: last.clone(),
        epoch,
        idle: ctx.settings.udp_idle,
        guard: ActiveGuard::new(ctx.counters.clone()),
        counters: ctx.counters.clone(),
        cancel: cancel.clone(),
        shutdown: ctx.shutdown.clone(),
    };
    let expired = expired.clone();
    tokio::spawn(async move {
        task.run().await;
        // The listener may be gone already; then there is no table to clean.
        let _closed = expired.send((client, id));
    });
    Some(Flow {
        id,
        upstream,
        backend,
        version,
        last,
        cancel,
    })
}

async fn connect(backend: SocketAddr) -> io::Result<UdpSocket> {
    let local: IpAddr = if backend.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    s.connect(backend).await?;
    Ok(s)
}

/// Backend -> client half of one flow.
struct Relay {
    frontend: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    epoch: Instant,
    idle: std::time::Duration,
    guard: ActiveGuard,
    counters: Arc<super::Counters>,
    cancel: CancellationToken,
    shutdown: CancellationToken,
}

impl Relay {
    async fn run(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.epoch
                + std::time::Duration::from_millis(self.last.load(Ordering::Relaxed))
                + self.idle;
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => {
                    let last = self.epoch + std::time::Duration::from_millis(self.last.load(Ordering::Relaxed));
                    if Instant::now() >= last + self.idle {
                        debug!(client = %self.client, "flow idle; closed");
                        break;
                    }
                }
                r = self.upstream.recv(&mut buf) => match r {
                    Ok(n) => {
                        self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                        if let Err(e) = self.frontend.send_to(&buf[..n], self.client).await {
                            self.counters.dropped_datagrams.fetch_add(1, Relaxed);
                            debug!(client = %self.client, error = %e, "reply to client dropped");
                        }
                    }
                    // A refused port (ICMP) on a connected socket; the flow stays until idle.
                    Err(e) => debug!(client = %self.client, error = %e, "backend unreachable"),
                },
            }
        }
        // Marks the flow as gone for the listener, before its removal message arrives.
        self.cancel.cancel();
        drop(self.guard);
    }
}
