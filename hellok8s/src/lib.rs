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
use tokio::net::TcpListener;
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

/// Bind `addr` and serve.
pub async fn run(
    addr: SocketAddr,
    name: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, name, shutdown).await
}
