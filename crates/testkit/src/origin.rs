//! A tiny echo origin for tests (HTTP/1.1, and HTTP/2 with prior knowledge), plus port and
//! readiness helpers.
//!
//! Every response is JSON naming the origin, the method, the path (with query), the request
//! headers and the body length, with `x-origin: {name}`. Paths with a meaning:
//! `/status/{code}` answers with that status, `/delay/{ms}` answers after that many
//! milliseconds (at most 60 s), `/bytes/{n}` answers with `n` bytes (at most 16 MiB).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running echo origin; stops (closing its connections) when dropped.
pub struct Origin {
    name: String,
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Start on `127.0.0.1:0`.
    pub async fn start(name: &str) -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        Self::start_on(name, addr)
            .await
            .expect("binding an origin on 127.0.0.1:0")
    }

    /// Start on a given address (any loopback address, port 0 for any port).
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve(name, listener))
    }

    /// Serve on a listener the caller bound.
    pub fn serve(name: &str, listener: TcpListener) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept(name.to_owned(), listener, served.clone()));
        Self {
            name: name.to_owned(),
            addr,
            served,
            task,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it has answered.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

async fn accept(name: String, listener: TcpListener, served: Arc<AtomicU64>) {
    let name: Arc<str> = name.into();
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, served) = (name.clone(), served.clone());
        conns.spawn(async move {
            let svc = service_fn(move |req| echo(name.clone(), served.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "origin connection ended");
            }
        });
    }
}

async fn echo(
    name: Arc<str>,
    served: Arc<AtomicU64>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let version = format!("{:?}", req.version());
    let mut headers = Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => drop(headers.insert(k.as_str().to_owned(), Value::String(v))),
        }
    }
    let body_len = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    served.fetch_add(1, Ordering::Relaxed);

    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_matches('/')
        .split('/')
        .collect();
    let mut status = StatusCode::OK;
    let mut body = None;
    match segs.as_slice() {
        ["status", code] => {
            status = code
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST)
        }
        ["delay", ms] => {
            let ms = ms.parse::<u64>().unwrap_or(0).min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        ["bytes", n] => {
            body = Some(Bytes::from(vec![
                b'x';
                n.parse::<usize>()
                    .unwrap_or(0)
                    .min(16 << 20)
            ]))
        }
        _ => {}
    }
    let body = body.unwrap_or_else(|| {
        let doc = json!({
            "origin": &*name,
            "method": method,
            "path": path,
            "version": version,
            "headers": headers,
            "bodyLength": body_len,
        });
        Bytes::from(doc.to_string())
    });
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert("x-origin", v);
    }
    Ok(resp)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (prefer binding port 0 where you can).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// `127.0.0.1:{a free TCP port}`.
pub fn free_addr() -> SocketAddr {
    let l = StdTcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("a bound listener has an address")
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    s.local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Poll `url` (`http://host:port/path`) until it answers with any HTTP status; returns the
/// status, or an error describing the last failure once `timeout` has passed.
pub async fn wait_for_http(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("never tried");
    loop {
        match tokio::time::timeout_at(deadline, probe(authority, path)).await {
            Ok(Ok(code)) => return Ok(code),
            Ok(Err(e)) => last = e,
            Err(_) => return Err(format!("{url} did not answer within {timeout:?}: {last}")),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{url} did not answer within {timeout:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll until a TCP connection to `addr` succeeds.
pub async fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("{addr} not accepting within {timeout:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn probe(authority: &str, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let m = s
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if m == 0 {
            return Err("closed before a status line".into());
        }
        n += m;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        let code = out
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (code, body)
    }

    #[tokio::test]
    async fn the_origin_echoes_who_it_is_and_what_it_got() {
        let o = Origin::start("blue").await;
        assert_eq!(
            wait_for_http(&format!("{}/ready", o.url()), Duration::from_secs(5)).await,
            Ok(200)
        );
        let (code, body) = get(o.addr(), "/a/b?c=d", "X-Forwarded-For: 10.1.2.3\r\n").await;
        assert_eq!(code, 200);
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["origin"], "blue");
        assert_eq!(v["path"], "/a/b?c=d");
        assert_eq!(v["headers"]["x-forwarded-for"], "10.1.2.3");
        assert_eq!(get(o.addr(), "/status/503", "").await.0, 503);
        assert_eq!(get(o.addr(), "/bytes/1000", "").await.1.len(), 1000);
        assert_eq!(o.served(), 4, "the probe and three requests");
    }

    #[tokio::test]
    async fn waiting_for_nothing_times_out() {
        let port = free_port();
        let r = wait_for_http(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_millis(200),
        )
        .await;
        assert!(r.is_err());
        assert!(
            wait_for_tcp(free_addr(), Duration::from_millis(100))
                .await
                .is_err()
        );
        assert_ne!(free_udp_port(), 0);
    }
}
