//! Listener threads (`--l7-threads N`): N threads, each with a current-thread tokio runtime and
//! its own accept loops on the same listening sockets (duplicated descriptors; the kernel hands
//! each new connection to one of them). A connection then lives on one thread: its task, its
//! fast-path upstream pool and its timers are that thread's, so nothing is stolen or handed
//! between threads on the request path. The control plane, admin API, L4 listeners and the
//! announcer stay on the main runtime.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::server;
use super::shared::Shared;

/// The running listener threads.
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
    /// One per thread: its accept loops have returned.
    accepting: Vec<oneshot::Receiver<()>>,
}

/// A second descriptor for the same listening socket.
fn dup(l: &TcpListener) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::SockRef::from(l).try_clone()?;
    let l: std::net::TcpListener = s.into();
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Workers {
    /// Start `n` threads accepting on `http` (and `https` with its acceptor). Connections are
    /// tracked by `tracker`; `stop` ends the accept loops; after that each thread waits up to
    /// `drain` for its connections before its runtime (and anything left on it) is dropped.
    pub fn spawn(
        n: usize,
        shared: &Arc<Shared>,
        http: &TcpListener,
        https: Option<(&TcpListener, TlsAcceptor)>,
        tracker: &TaskTracker,
        stop: &CancellationToken,
        drain: Duration,
    ) -> std::io::Result<Self> {
        let mut threads = Vec::with_capacity(n);
        let mut accepting = Vec::with_capacity(n);
        for i in 0..n {
            let http = dup(http)?;
            let https = match &https {
                Some((l, acceptor)) => Some((dup(l)?, acceptor.clone())),
                None => None,
            };
            let (done_tx, done_rx) = oneshot::channel();
            let (shared, tracker, stop) = (shared.clone(), tracker.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name(format!("portico-l7-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            warn!(thread = i, error = %e, "cannot start a listener thread's runtime");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let mut loops = Vec::new();
                        let listeners = std::iter::once((http, None))
                            .chain(https.map(|(l, a)| (l, Some(a))));
                        for (l, acceptor) in listeners {
                            match TcpListener::from_std(l) {
                                Ok(l) => loops.push(tokio::spawn(server::accept_loop(
                                    shared.clone(),
                                    l,
                                    acceptor,
                                    tracker.clone(),
                                    stop.clone(),
                                ))),
                                Err(e) => warn!(thread = i, error = %e, "cannot register a listener"),
                            }
                        }
                        for l in loops {
                            let _ = l.await;
                        }
                        let _ = done_tx.send(());
                        // The main runtime closes the tracker once every thread stopped
                        // accepting; until then, and for at most `drain`, serve what is open.
                        let _ = tokio::time::timeout(drain, tracker.wait()).await;
                    });
                })?;
            threads.push(thread);
            accepting.push(done_rx);
        }
        Ok(Self { threads, accepting })
    }

    /// Wait until every thread's accept loops have returned (after `stop`).
    pub async fn stopped_accepting(&mut self) {
        for rx in self.accepting.drain(..) {
            let _ = rx.await;
        }
    }

    /// Wait for the threads to end.
    pub async fn join(self) {
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    warn!("a listener thread panicked");
                }
            }
        })
        .await;
    }
}
