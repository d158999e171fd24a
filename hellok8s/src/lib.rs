//! `hellok8s`: the demo application of the Service tutorial Portico's quickstart follows. Every
//! response names the "pod" that served it, so round-robin is visible with plain curl:
//! `[v3] Hello, Kubernetes!, From host: <name>`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

/// The body for a pod called `name`, byte for byte what the tutorial's Go program writes.
pub fn greeting(name: &str) -> String {
    format!("[v3] Hello, Kubernetes!, From host: {name}")
}

/// Serve on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    name: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let body = Bytes::from(greeting(&name));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = listener.accept() => r?,
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain; charset=utf-8")
                            .body(Full::new(body))
                            .expect("static response parts are valid"),
                    )
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The listen backlog asked for; the kernel caps it to `net.core.somaxconn`.
///
/// `TcpListener::bind` listens with a backlog of 128: a proxy in front that opens more than
/// that many connections at once (one per client connection when its pool is empty, as under
/// a 256-connection load test) has the SYNs past the backlog dropped, and those requests wait
/// for the kernel's one-second SYN retransmission (a 0.6-1 s p99 in the load tests).
const BACKLOG: u32 = 4096;

/// A listening socket on `addr` (`SO_REUSEADDR`, as `TcpListener::bind` sets) with a backlog
/// of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Bind `addr` and serve.
pub async fn run(
    addr: SocketAddr,
    name: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind(addr)?;
    serve(listener, name, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A burst of connects larger than `TcpListener::bind`'s backlog of 128 completes at once,
    /// before anything is accepted, instead of waiting for SYN retransmissions.
    #[tokio::test]
    async fn a_burst_of_connects_waits_in_the_backlog() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(300);
        let listener = bind("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut conns = Vec::with_capacity(burst);
        for i in 0..burst {
            let c = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .unwrap_or_else(|_| panic!("connect {i} of {burst} waited for a SYN retransmission"))
            .expect("connect");
            conns.push(c);
        }
        assert_eq!(conns.len(), burst);
    }
}
