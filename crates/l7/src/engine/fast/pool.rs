//! Idle upstream connections, one pool per thread. A request's task takes a connection, drives
//! it itself and puts it back: no hand-off to a connection task, no channel, no lock. With a
//! current-thread runtime per core every connection of a thread is used only on that thread.
//! Under the multi-thread runtime a task may run on any worker; each worker then has its own
//! pool, which only costs a few more idle connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tracing::debug;

/// Idle connections older than this are closed instead of reused (the upstream has probably
/// dropped them; ingress-nginx's `upstream-keepalive-timeout` is 60 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per endpoint and thread (`upstream-keepalive-connections`: 320).
pub const MAX_IDLE: usize = 320;

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// The pool's keys are endpoint addresses from the cluster's configuration, never chosen by a
/// client, so they need no DoS-resistant hash; SipHash was 2% of the instructions per request.
#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Pool = HashMap<SocketAddr, Vec<Idle>, std::hash::BuildHasherDefault<AddrHasher>>;

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
    static PUTS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Every this many returns, the whole pool of the thread drops its stale connections, so that
/// connections to endpoints no longer routed to are closed too.
const SWEEP_EVERY: u32 = 4096;

/// What an idle connection holds that no request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclean {
    /// Bytes: a response nobody asked for, or the rest of one. The next request's answer
    /// would be read from them, so they could hand one client's answer to another.
    Bytes,
    /// The upstream closed it (its keepalive timeout).
    Closed,
    /// The socket reports an error.
    Error,
}

/// Whether the upstream sent anything on an idle connection since its last response. Asks the
/// socket directly (a non-blocking `MSG_PEEK` of one byte) rather than the reactor's readiness,
/// which may not have seen bytes that arrived while this thread was busy.
fn unclean(stream: &TcpStream) -> Option<Unclean> {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    loop {
        return match socket2::SockRef::from(stream).peek(&mut probe) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Ok(0) => Some(Unclean::Closed),
            Ok(_) => Some(Unclean::Bytes),
            Err(_) => Some(Unclean::Error),
        };
    }
}

/// The most recently used idle connection to `addr` that is fresh enough and on which the
/// upstream has sent nothing (no byte, no EOF) since its last response.
pub fn take(addr: SocketAddr) -> Option<TcpStream> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let idle = p.get_mut(&addr)?;
        // Most recent last: anything older than the first fresh one is stale too.
        let now = Instant::now();
        let stale = idle
            .iter()
            .position(|c| now.duration_since(c.since) < IDLE_TIMEOUT)
            .unwrap_or(idle.len());
        idle.drain(..stale);
        while let Some(c) = idle.pop() {
            match unclean(&c.stream) {
                None => return Some(c.stream),
                Some(why) => {
                    debug!(endpoint = %addr, ?why, "idle upstream connection dropped instead of reused");
                }
            }
        }
        None
    })
}

/// Return a connection that finished a response cleanly.
pub fn put(addr: SocketAddr, stream: TcpStream) {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let n = PUTS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            p.retain(|_, idle| {
                idle.retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT);
                !idle.is_empty()
            });
        }
        let idle = p.entry(addr).or_default();
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            since: Instant::now(),
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_come_back_most_recent_first_and_per_address() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let a = TcpStream::connect(addr).await.expect("connect");
        let b = TcpStream::connect(addr).await.expect("connect");
        let (a_port, b_port) = (
            a.local_addr().expect("addr").port(),
            b.local_addr().expect("addr").port(),
        );
        put(addr, a);
        put(addr, b);
        let other: SocketAddr = "127.0.0.1:1".parse().expect("literal");
        assert!(take(other).is_none());
        assert_eq!(
            take(addr).expect("b").local_addr().expect("addr").port(),
            b_port
        );
        assert_eq!(
            take(addr).expect("a").local_addr().expect("addr").port(),
            a_port
        );
        assert!(take(addr).is_none());
    }

    #[tokio::test]
    async fn a_connection_with_bytes_or_eof_pending_is_never_taken() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let quiet = TcpStream::connect(addr).await.expect("connect");
        let (_quiet_peer, _) = l.accept().await.expect("accept");
        let chatty = TcpStream::connect(addr).await.expect("connect");
        let (mut chatty_peer, _) = l.accept().await.expect("accept");
        let closed = TcpStream::connect(addr).await.expect("connect");
        let (closed_peer, _) = l.accept().await.expect("accept");
        let quiet_port = quiet.local_addr().expect("addr").port();
        put(addr, quiet);
        put(addr, chatty);
        put(addr, closed);
        tokio::io::AsyncWriteExt::write_all(&mut chatty_peer, b"HTTP/1.1 200 OK\r\n")
            .await
            .expect("write");
        drop(closed_peer);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            take(addr)
                .expect("the quiet one")
                .local_addr()
                .expect("addr")
                .port(),
            quiet_port
        );
        assert!(take(addr).is_none());
    }
}
