//! UDP frontends. Each client address gets a flow: a connected upstream socket to the upstream
//! picked for it; the upstream's replies go back to the client from the frontend socket (so
//! their source is the frontend address). Flows idle-expire, and the flow table is bounded.
//!
//! When the snapshot changes, a flow whose upstream is no longer a candidate is closed at the
//! client's next datagram and a new upstream is picked (kube-proxy clears conntrack entries of
//! removed UDP endpoints for the same reason: UDP has no end to wait for). Stopping a UDP
//! listener ends its flows for the same reason.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Listener, RECV_ERROR_BACKOFF};
use crate::counters::ActiveGuard;
use crate::frontend::Frontend;
use crate::proxy_protocol::{self, Transport};
use crate::select::upstreams;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

struct Flow {
    id: u64,
    upstream: Arc<UdpSocket>,
    backend: SocketAddr,
    /// The publisher version (count of publishes) the upstream was last checked against.
    version: u64,
    /// Milliseconds since the listener's epoch of the last datagram either way.
    last: Arc<AtomicU64>,
    cancel: CancellationToken,
}

/// The flows of one listener. Owned by the listener task.
struct Flows {
    socket: Arc<UdpSocket>,
    epoch: Instant,
    /// Cancelled when the listener ends: every flow ends with it.
    all: CancellationToken,
    /// A flow's relay reports here when it ended (idle), with its id.
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    by_client: HashMap<SocketAddr, Flow>,
    next_id: u64,
}

/// Relay datagrams until `stop` or `shutdown`; every flow ends with the listener.
pub(super) async fn serve(socket: UdpSocket, ctx: Arc<Listener>) {
    let (ended, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut flows = Flows {
        socket: Arc::new(socket),
        epoch: Instant::now(),
        all: CancellationToken::new(),
        ended,
        by_client: HashMap::new(),
        next_id: 0,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = ctx.shutdown.cancelled() => break,
            Some((client, id)) = ended_rx.recv() => {
                if flows.by_client.get(&client).is_some_and(|f| f.id == id) {
                    flows.by_client.remove(&client);
                }
                continue;
            }
            r = flows.socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // ICMP errors and the like surface here on some kernels; nothing to do,
                    // but a lasting error must not spin the loop.
                    debug!(frontend = %ctx.frontend, error = %e, "recv failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(flow) = flows.for_client(client, &ctx).await else {
            continue;
        };
        let sent = if ctx.picker.proxy_protocol() {
            let mut d = proxy_protocol::header(Transport::Datagram, client, ctx.frontend.addr);
            d.extend_from_slice(&buf[..n]);
            flow.upstream.send(&d).await
        } else {
            // A UDP send waits only while the socket buffer is full, which is rare and short.
            flow.upstream.send(&buf[..n]).await
        };
        if let Err(e) = sent {
            ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, backend = %flow.backend, error = %e, "datagram to upstream dropped");
        }
    }
    flows.all.cancel();
    debug!(frontend = %ctx.frontend, flows = flows.by_client.len(), "listener closed");
}

impl Flows {
    /// The flow of `client`, re-picked when its upstream left, opened when there is none;
    /// `None` when the datagram is to be dropped. Marks the flow as used now.
    async fn for_client(&mut self, client: SocketAddr, ctx: &Listener) -> Option<&Flow> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let version = ctx.snapshots.version();
        // A flow whose relay ended (idle) but whose removal is still in the channel is gone.
        if self
            .by_client
            .get(&client)
            .is_some_and(|f| f.cancel.is_cancelled())
        {
            self.by_client.remove(&client);
        }
        if let Some(flow) = self.by_client.get_mut(&client)
            && flow.version != version
        {
            let target = ctx.picker.target();
            let still = upstreams(&ctx.snapshots.peek(), &target, client.ip())
                .is_ok_and(|u| u.contains(flow.backend));
            if still {
                flow.version = version;
            } else {
                debug!(frontend = %ctx.frontend, %client, backend = %flow.backend, "upstream gone; re-picking the flow");
                flow.cancel.cancel();
                self.by_client.remove(&client);
            }
        }
        if !self.by_client.contains_key(&client) {
            if self.by_client.len() >= ctx.settings.udp_max_flows {
                ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, %client, max = ctx.settings.udp_max_flows, "flow table full; datagram dropped");
                return None;
            }
            let flow = self.open(client, version, now_ms, ctx).await?;
            self.by_client.insert(client, flow);
        }
        let flow = self.by_client.get(&client)?;
        flow.last.store(now_ms, Relaxed);
        Some(flow)
    }

    async fn open(
        &mut self,
        client: SocketAddr,
        version: u64,
        now_ms: u64,
        ctx: &Listener,
    ) -> Option<Flow> {
        let pick = {
            let snapshot = ctx.snapshots.current();
            ctx.picker.pick(&snapshot, client.ip(), Instant::now())
        };
        let pick = match pick {
            Ok(p) => p,
            Err(e) => {
                ctx.counters.no_backend.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, %client, reason = %e, "no upstream; datagram dropped");
                return None;
            }
        };
        // A connected socket per flow: the kernel filters replies to that upstream.
        let backend = *pick.backends.first()?;
        let upstream = match connect(backend).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                ctx.counters.connect_failures.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, %backend, error = %e, "cannot open an upstream socket");
                return None;
            }
        };
        debug!(frontend = %ctx.frontend, %client, %backend, sticky = pick.sticky, "flow opened");
        self.next_id += 1;
        let id = self.next_id;
        let last = Arc::new(AtomicU64::new(now_ms));
        let cancel = self.all.child_token();
        let relay = Relay {
            frontend: self.socket.clone(),
            upstream: upstream.clone(),
            client,
            last: last.clone(),
            epoch: self.epoch,
            idle: ctx.settings.udp_idle,
            guard: ActiveGuard::new(ctx.counters.clone()),
            listening: ctx.frontend,
            cancel: cancel.clone(),
            shutdown: ctx.shutdown.clone(),
        };
        let ended = self.ended.clone();
        tokio::spawn(async move {
            relay.run().await;
            // The listener may be gone already; then there is no table to clean.
            let _closed = ended.send((client, id));
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

/// Upstream -> client half of one flow.
struct Relay {
    frontend: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    epoch: Instant,
    idle: Duration,
    guard: ActiveGuard,
    listening: Frontend,
    cancel: CancellationToken,
    shutdown: CancellationToken,
}

impl Relay {
    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last.load(Relaxed))
    }

    async fn run(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = self.shutdown.cancelled() => break,
                () = tokio::time::sleep_until(self.last() + self.idle) => {
                    if Instant::now() >= self.last() + self.idle {
                        debug!(frontend = %self.listening, client = %self.client, "flow idle; closed");
                        break;
                    }
                }
                r = self.upstream.recv(&mut buf) => match r {
                    Ok(n) => {
                        self.last.store(self.epoch.elapsed().as_millis() as u64, Relaxed);
                        if let Err(e) = self.frontend.send_to(&buf[..n], self.client).await {
                            self.guard.counters().dropped_datagrams.fetch_add(1, Relaxed);
                            debug!(frontend = %self.listening, client = %self.client, error = %e, "reply to client dropped");
                        }
                    }
                    // A refused port (ICMP) on a connected socket: the flow stays until idle.
                    Err(e) => {
                        debug!(frontend = %self.listening, client = %self.client, error = %e, "upstream unreachable");
                        tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                    }
                },
            }
        }
        // Marks the flow as gone for the listener, before its removal message arrives.
        self.cancel.cancel();
    }
}
