//! One LoadBalancer listener: TCP (accept, choose, connect, optional PROXY header, copy both
//! ways) or UDP (a flow per client address with a connected upstream socket; replies go back
//! from the listener's socket, so their source is the EXTERNAL-IP).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use portico_model::Snapshot;
use portico_runtime::publisher::Publisher;
use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::proxy_protocol::{self, Transport};
use super::select::Selector;
use super::{Frontend, L4Config, L4Target};

/// Pause after a failed `recv` before the next, so that an error that repeats cannot spin a core.
const RECV_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Counters of one listener (bounded: one set per frontend).
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub no_upstream: AtomicU64,
    pub connect_failures: AtomicU64,
    pub dropped_datagrams: AtomicU64,
}

pub(super) struct Ctx {
    pub frontend: Frontend,
    pub target: ArcSwap<L4Target>,
    pub snapshots: Arc<Publisher<Snapshot>>,
    pub cfg: L4Config,
    pub selector: Arc<Selector>,
    pub counters: Arc<Counters>,
    /// Stops this listener; TCP connections already made go on.
    pub stop: CancellationToken,
    /// Ends everything.
    pub shutdown: CancellationToken,
}

/// A socket on `addr` that may be bound before the address is on any interface.
fn socket(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

pub(super) fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let s = socket(addr, Type::STREAM)?;
    s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(s.into())
}

pub(super) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(socket(addr, Type::DGRAM)?.into())
}

struct Active(Arc<Counters>);

impl Active {
    fn new(c: Arc<Counters>) -> Self {
        c.accepted.fetch_add(1, Relaxed);
        c.active.fetch_add(1, Relaxed);
        Self(c)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

pub(super) async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        let accepted = tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = ctx.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, client)) => {
                // At --max-connections, wait for a slot with this connection in hand and accept
                // no more: new connections wait in the listen backlog until one closes.
                let slot = match &ctx.cfg.connection_limit {
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
                    let _active = Active::new(ctx.counters.clone());
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => {}
                        () = proxy_tcp(stream, client, &ctx) => {}
                    }
                });
            }
            Err(e) => {
                warn!(frontend = %ctx.frontend, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    debug!(frontend = %ctx.frontend, "listener closed");
}

fn reset(stream: &TcpStream, ctx: &Ctx) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(frontend = %ctx.frontend, error = %e, "cannot set SO_LINGER");
    }
}

async fn proxy_tcp(mut inbound: TcpStream, client: SocketAddr, ctx: &Ctx) {
    let target = ctx.target.load_full();
    let snap = ctx.snapshots.current();
    let now = Instant::now();
    let choice = match ctx
        .selector
        .choose(&snap, &target, ctx.cfg.upstream, client.ip(), now)
    {
        Ok(c) => c,
        Err(e) => {
            ctx.counters.no_upstream.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, %client, reason = %e, "no upstream; resetting");
            return reset(&inbound, ctx);
        }
    };
    drop(snap);
    let mut connected = None;
    for up in &choice.upstreams {
        match tokio::time::timeout(ctx.cfg.connect_timeout, TcpStream::connect(up)).await {
            Ok(Ok(s)) => {
                connected = Some((s, *up));
                break;
            }
            Ok(Err(e)) => {
                ctx.counters.connect_failures.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, upstream = %up, error = %e, "connect failed; trying the next");
            }
            Err(_) => {
                ctx.counters.connect_failures.fetch_add(1, Relaxed);
                debug!(frontend = %ctx.frontend, upstream = %up, "connect timed out; trying the next");
            }
        }
    }
    let Some((mut outbound, upstream)) = connected else {
        debug!(frontend = %ctx.frontend, %client, "no upstream accepted the connection");
        return reset(&inbound, ctx);
    };
    ctx.selector
        .connected(&target, &choice, client.ip(), upstream, now);
    if target.proxy_protocol {
        let local = inbound.local_addr().unwrap_or(ctx.frontend.addr);
        let header = proxy_protocol::header(Transport::Stream, client, local);
        if let Err(e) = outbound.write_all(&header).await {
            debug!(frontend = %ctx.frontend, %upstream, error = %e, "cannot send the PROXY header");
            return reset(&inbound, ctx);
        }
    }
    for s in [&inbound, &outbound] {
        if let Err(e) = s.set_nodelay(true) {
            debug!(frontend = %ctx.frontend, error = %e, "cannot set TCP_NODELAY");
        }
    }
    debug!(frontend = %ctx.frontend, %client, %upstream, "connected");
    match tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        Ok((up, down)) => {
            debug!(frontend = %ctx.frontend, %upstream, bytes_up = up, bytes_down = down, "closed")
        }
        Err(e) => debug!(frontend = %ctx.frontend, %upstream, error = %e, "ended with an error"),
    }
}

const MAX_DATAGRAM: usize = 65_535;

struct Flow {
    id: u64,
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    cancel: CancellationToken,
}

/// Relay datagrams until the listener stops; its flows end with it.
pub(super) async fn serve_udp(socket: UdpSocket, ctx: Arc<Ctx>) {
    let socket = Arc::new(socket);
    let epoch = Instant::now();
    let all_flows = CancellationToken::new();
    let (expired_tx, mut expired_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            () = ctx.stop.cancelled() => break,
            () = ctx.shutdown.cancelled() => break,
            Some((client, id)) = expired_rx.recv() => {
                if flows.get(&client).is_some_and(|f| f.id == id) {
                    flows.remove(&client);
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // A lasting error (the socket's address gone, ENOMEM) must not spin the loop:
                    // back off as the agent's UDP relay does.
                    debug!(frontend = %ctx.frontend, error = %e, "recv failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let now_ms = epoch.elapsed().as_millis() as u64;
        if !flows.contains_key(&client) {
            if flows.len() >= ctx.cfg.udp_max_flows {
                ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
                continue;
            }
            match open_flow(&ctx, client).await {
                Ok(upstream) => {
                    next_id += 1;
                    let flow = Flow {
                        id: next_id,
                        upstream: Arc::new(upstream),
                        last: Arc::new(AtomicU64::new(now_ms)),
                        cancel: all_flows.child_token(),
                    };
                    tokio::spawn(replies(
                        ctx.clone(),
                        socket.clone(),
                        client,
                        flow.id,
                        flow.upstream.clone(),
                        flow.last.clone(),
                        epoch,
                        flow.cancel.clone(),
                        expired_tx.clone(),
                    ));
                    flows.insert(client, flow);
                }
                Err(()) => {
                    ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
                    continue;
                }
            }
        }
        let Some(flow) = flows.get(&client) else {
            continue;
        };
        flow.last.store(now_ms, Relaxed);
        let target = ctx.target.load();
        let sent = if target.proxy_protocol {
            let mut d = proxy_protocol::header(Transport::Datagram, client, ctx.frontend.addr);
            d.extend_from_slice(&buf[..n]);
            flow.upstream.send(&d).await
        } else {
            flow.upstream.send(&buf[..n]).await
        };
        if let Err(e) = sent {
            ctx.counters.dropped_datagrams.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, %client, error = %e, "datagram dropped");
        }
    }
    all_flows.cancel();
}

async fn open_flow(ctx: &Ctx, client: SocketAddr) -> Result<UdpSocket, ()> {
    let target = ctx.target.load_full();
    let snap = ctx.snapshots.current();
    let now = Instant::now();
    let choice = ctx
        .selector
        .choose(&snap, &target, ctx.cfg.upstream, client.ip(), now)
        .map_err(|e| {
            ctx.counters.no_upstream.fetch_add(1, Relaxed);
            debug!(frontend = %ctx.frontend, %client, reason = %e, "no upstream; dropping");
        })?;
    let Some(up) = choice.upstreams.first().copied() else {
        return Err(());
    };
    let any: SocketAddr = if up.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any)
        .await
        .map_err(|e| debug!(error = %e, "cannot open a flow socket"))?;
    sock.connect(up)
        .await
        .map_err(|e| debug!(%up, error = %e, "cannot connect a flow socket"))?;
    ctx.counters.accepted.fetch_add(1, Relaxed);
    debug!(frontend = %ctx.frontend, %client, upstream = %up, "flow opened");
    Ok(sock)
}

#[allow(clippy::too_many_arguments)]
async fn replies(
    ctx: Arc<Ctx>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    id: u64,
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    epoch: Instant,
    cancel: CancellationToken,
    expired: mpsc::UnboundedSender<(SocketAddr, u64)>,
) {
    let _active = Active(ctx.counters.clone());
    ctx.counters.active.fetch_add(1, Relaxed);
    let idle = ctx.cfg.udp_idle;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let since = epoch
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(last.load(Relaxed)));
        if since >= idle {
            break;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(idle - since) => continue,
            r = upstream.recv(&mut buf) => match r {
                Ok(n) => {
                    last.store(epoch.elapsed().as_millis() as u64, Relaxed);
                    if let Err(e) = listener.send_to(&buf[..n], client).await {
                        debug!(frontend = %ctx.frontend, %client, error = %e, "reply not delivered");
                    }
                }
                // ICMP port unreachable from the upstream and the like: the flow stays until idle.
                Err(e) => {
                    debug!(frontend = %ctx.frontend, %client, error = %e, "upstream recv failed");
                    tokio::time::sleep(RECV_ERROR_BACKOFF).await;
                }
            },
        }
    }
    debug!(frontend = %ctx.frontend, %client, "flow idle; closed");
    // The listener may be gone already; then there is nothing to tidy.
    let _ = expired.send((client, id));
}
