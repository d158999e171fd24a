//! A raw HTTP/1.1 client: writes exactly the bytes a case gives, over plain TCP or TLS, and
//! frames the responses itself (Content-Length, chunked or until close).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long a client waits for one response before it calls the case hung.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// Where the gateway listens and how to reach its HTTPS listener.
pub struct Dialer {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// ALPN `http/1.1`.
    pub tls_h1: TlsConnector,
    /// ALPN `h2`.
    pub tls_h2: TlsConnector,
}

impl Dialer {
    pub fn new(http: SocketAddr, https: SocketAddr, ca_pem: &str) -> Self {
        portico_testkit::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(c.expect("CA PEM")).expect("a CA certificate");
        }
        let config = |alpn: &[u8]| {
            let mut c = rustls::ClientConfig::builder()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.alpn_protocols = vec![alpn.to_vec()];
            TlsConnector::from(Arc::new(c))
        };
        Self {
            http,
            https,
            tls_h1: config(b"http/1.1"),
            tls_h2: config(b"h2"),
        }
    }

    /// A new connection; TLS with SNI `app.test`, offering `h2` when `h2`.
    pub async fn connect(&self, transport: Transport, h2: bool) -> Box<dyn Io> {
        match transport {
            Transport::Plain => {
                let s = TcpStream::connect(self.http).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                Box::new(s)
            }
            Transport::Tls => {
                let s = TcpStream::connect(self.https).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let name = ServerName::try_from("app.test").expect("a name");
                let tls = if h2 { &self.tls_h2 } else { &self.tls_h1 };
                let s = tls.connect(name, s).await.expect("TLS handshake");
                if h2 {
                    assert_eq!(
                        s.get_ref().1.alpn_protocol(),
                        Some(&b"h2"[..]),
                        "the HTTPS listener negotiates h2"
                    );
                }
                Box::new(s)
            }
        }
    }
}

/// A response as the client framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// What a client connection got back.
#[derive(Debug, Default)]
pub struct Received {
    pub responses: Vec<Response>,
    /// Why reading stopped before the expected number of responses, if it did.
    pub stopped: Option<String>,
    /// Bytes after the last response that are not part of it.
    pub extra: Vec<u8>,
}

/// Write `bytes` (one byte per write, with a flush each, when `trickle`), then read up to
/// `want` responses. A response that closes the connection (or a 4xx/5xx the proxy made) ends
/// the reading early.
pub async fn exchange(io: &mut dyn Io, bytes: &[u8], trickle: bool, want: usize) -> Received {
    let written = if trickle {
        let mut r = Ok(());
        for b in bytes {
            r = io.write_all(std::slice::from_ref(b)).await;
            if r.is_err() {
                break;
            }
            r = io.flush().await;
            if r.is_err() {
                break;
            }
        }
        r
    } else {
        match io.write_all(bytes).await {
            Ok(()) => io.flush().await,
            Err(e) => Err(e),
        }
    };
    let mut got = Received::default();
    let mut buf = Vec::new();
    if let Err(e) = written {
        // The proxy may refuse and close before the whole payload is written; read its answer.
        got.stopped = Some(format!("write failed: {e}"));
    }
    while got.responses.len() < want {
        match tokio::time::timeout(RESPONSE_TIMEOUT, read_response(io, &mut buf)).await {
            Err(_) => {
                got.stopped = Some("timed out waiting for a response".into());
                break;
            }
            Ok(Err(e)) => {
                got.stopped = Some(e);
                break;
            }
            Ok(Ok((resp, close))) => {
                let refused = resp.status >= 400;
                got.responses.push(resp);
                if close || refused {
                    break;
                }
            }
        }
    }
    got.extra = buf;
    got
}

async fn more(io: &mut dyn Io, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    match io.read(&mut chunk).await {
        Ok(0) => Err("connection closed".into()),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("read failed: {e}")),
    }
}

/// One response from the front of `buf` (reading more as needed); `true` when the connection
/// closes after it.
pub async fn read_response(io: &mut dyn Io, buf: &mut Vec<u8>) -> Result<(Response, bool), String> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(io, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(io, buf).await?
    } else if let Some(n) = length {
        while buf.len() < n {
            more(io, buf).await?;
        }
        buf.drain(..n).collect()
    } else {
        close = true;
        while more(io, buf).await.is_ok() {}
        std::mem::take(buf)
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok((Response { status, body }, close))
}

async fn dechunk(io: &mut dyn Io, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            more(io, buf).await?;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        buf.drain(..line_end + 2);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                while !buf.windows(2).any(|w| w == b"\r\n") {
                    more(io, buf).await?;
                }
                let i = buf
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .unwrap_or_default();
                buf.drain(..i + 2);
                if i == 0 {
                    return Ok(body);
                }
            }
        }
        while buf.len() < size + 2 {
            more(io, buf).await?;
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}
