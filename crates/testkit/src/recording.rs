//! A recording origin for request-smuggling tests: a raw TCP server (no HTTP library) that sees
//! exactly the bytes a proxy sent, frames each request itself, strictly, and records it.
//!
//! Every request is answered `200` with the body `target={target} origin={name}`, so a client
//! can tell which request (and which origin) a response belongs to. Anything the origin cannot
//! frame unambiguously is a [`ProtocolError`]: a bare LF, obs-fold, a header name with a space or
//! a value with a control byte, no `Host` or two, two `Content-Length`s, `Content-Length` with
//! `Transfer-Encoding`, any coding but a lone `chunked`, a malformed chunk, bytes after a
//! `Connection: close` request. The connection is answered 400 and closed; a test asserts that
//! none ever happens. Bytes that arrive but do not yet form a request are visible as
//! [`RecordingOrigin::pending`]: a smuggled request prefix waiting for its victim shows up there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Heads longer than this are a protocol error.
const MAX_HEAD: usize = 64 * 1024;
/// Bodies longer than this are a protocol error.
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// How long a connection is watched for bytes after a `Connection: close` request.
const AFTER_CLOSE: Duration = Duration::from_millis(500);

/// How a recorded request's body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// One request as the origin framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Which connection (numbered from 0 in accept order) carried it.
    pub conn: u64,
    pub method: String,
    pub target: String,
    pub version: String,
    /// In order, names as sent.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The body after chunked decoding.
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of header `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The only value of header `name`, if it appears exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut v = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        match (v.next(), v.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

/// Something the origin could not frame unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub conn: u64,
    pub reason: String,
    /// The unconsumed bytes when it was found (at most 512).
    pub near: String,
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<Recorded>,
    errors: Vec<ProtocolError>,
    /// Connections that ended in the middle of a request: (connection, bytes of it seen).
    aborted: Vec<(u64, String)>,
    /// Bytes received on each open connection that are not (yet) a complete request.
    pending: BTreeMap<u64, Vec<u8>>,
}

/// A running recording origin; stops when dropped.
pub struct RecordingOrigin {
    name: String,
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingOrigin {
    /// Start on `ip:0`.
    pub async fn start(name: &str, ip: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(accept(name.into(), listener, log.clone()));
        Ok(Self {
            name: name.to_owned(),
            addr,
            log,
            task,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A poisoned lock only means another test thread panicked; the log is still whole.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many requests have been recorded so far (a mark for [`RecordingOrigin::requests_since`]).
    pub fn mark(&self) -> usize {
        self.log().requests.len()
    }

    /// Every request recorded, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log().requests.clone()
    }

    /// The requests recorded after `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<Recorded> {
        self.log().requests.get(mark..).unwrap_or_default().to_vec()
    }

    /// Every protocol error so far.
    pub fn errors(&self) -> Vec<ProtocolError> {
        self.log().errors.clone()
    }

    /// Connections that closed in the middle of a request.
    pub fn aborted(&self) -> Vec<(u64, String)> {
        self.log().aborted.clone()
    }

    /// Open connections holding bytes that are not a complete request: (connection, bytes).
    pub fn pending(&self) -> Vec<(u64, String)> {
        self.log()
            .pending
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(c, b)| (*c, String::from_utf8_lossy(b).into_owned()))
            .collect()
    }
}

async fn accept(name: Arc<str>, listener: TcpListener, log: Arc<Mutex<Log>>) {
    let ids = AtomicU64::new(0);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let conn = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(name.clone(), conn, stream, log.clone()));
    }
}

/// Why a connection stopped being served.
enum Stop {
    /// Clean end between requests (or after a `Connection: close` exchange).
    Done,
    /// EOF in the middle of a request.
    Aborted,
    Protocol(String),
    Io,
}

struct Conn {
    id: u64,
    stream: TcpStream,
    buf: Vec<u8>,
    log: Arc<Mutex<Log>>,
}

impl Conn {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_pending(&self) {
        let copy = self.buf.clone();
        self.log().pending.insert(self.id, copy);
    }

    /// Read more bytes; `Err(Aborted)` on EOF.
    async fn fill(&mut self) -> Result<(), Stop> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err(Stop::Aborted),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.publish_pending();
                Ok(())
            }
            Err(_) => Err(Stop::Io),
        }
    }

    /// Take one CRLF-terminated line (without the CRLF); a bare LF is a protocol error.
    async fn line(&mut self, limit: usize) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Err(Stop::Protocol("bare LF line ending".into()));
                }
                let line = self.buf[..i - 1].to_vec();
                self.buf.drain(..=i);
                return Ok(line);
            }
            if self.buf.len() > limit {
                return Err(Stop::Protocol("line too long".into()));
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One request, or why not. `Ok(None)`: the peer closed cleanly between requests.
    async fn request(&mut self) -> Result<Option<Recorded>, Stop> {
        while self.buf.is_empty() {
            match self.fill().await {
                Ok(()) => {}
                Err(Stop::Aborted) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let line = self.line(MAX_HEAD).await?;
        let text = String::from_utf8(line)
            .map_err(|_| Stop::Protocol("request line is not UTF-8".into()))?;
        let parts: Vec<&str> = text.split(' ').collect();
        let [method, target, version] = parts[..] else {
            return Err(Stop::Protocol(format!("request line {text:?}")));
        };
        if method.is_empty() || !method.bytes().all(tchar) {
            return Err(Stop::Protocol(format!("method {method:?}")));
        }
        if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Stop::Protocol(format!("target {target:?}")));
        }
        if version != "HTTP/1.1" && version != "HTTP/1.0" {
            return Err(Stop::Protocol(format!("version {version:?}")));
        }
        let mut headers = Vec::new();
        let mut head_len = text.len();
        loop {
            let line = self.line(MAX_HEAD).await?;
            head_len += line.len() + 2;
            if head_len > MAX_HEAD {
                return Err(Stop::Protocol("head too long".into()));
            }
            if line.is_empty() {
                break;
            }
            headers.push(header(&line)?);
        }
        let mut req = Recorded {
            conn: self.id,
            method: method.to_owned(),
            target: target.to_owned(),
            version: version.to_owned(),
            headers,
            framing: Framing::None,
            body: Vec::new(),
        };
        let hosts = req.values("host").count();
        if hosts != 1 {
            return Err(Stop::Protocol(format!("{hosts} Host headers")));
        }
        let lengths: Vec<&str> = req.values("content-length").collect();
        let codings: Vec<&str> = req.values("transfer-encoding").collect();
        req.framing = match (&lengths[..], &codings[..]) {
            ([], []) => Framing::None,
            ([len], []) => Framing::Length(content_length(len)?),
            ([], [coding]) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            ([], _) => return Err(Stop::Protocol(format!("Transfer-Encoding {codings:?}"))),
            (_, []) => return Err(Stop::Protocol(format!("Content-Length {lengths:?}"))),
            _ => {
                return Err(Stop::Protocol(
                    "Content-Length with Transfer-Encoding".into(),
                ));
            }
        };
        req.body = match req.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => self.take(n as usize).await?,
            Framing::Chunked => self.chunked().await?,
        };
        Ok(Some(req))
    }

    /// A chunked body (RFC 9112 7.1), decoded; trailers are read and dropped.
    async fn chunked(&mut self) -> Result<Vec<u8>, Stop> {
        let mut body = Vec::new();
        loop {
            let line = self.line(4096).await?;
            let size = line.split(|b| *b == b';').next().unwrap_or_default();
            if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                return Err(Stop::Protocol(format!(
                    "chunk size line {:?}",
                    String::from_utf8_lossy(&line)
                )));
            }
            let n = u64::from_str_radix(&String::from_utf8_lossy(size), 16)
                .map_err(|_| Stop::Protocol("chunk size".into()))?;
            if body.len() as u64 + n > MAX_BODY {
                return Err(Stop::Protocol("chunked body too large".into()));
            }
            if n == 0 {
                while !self.line(4096).await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(n as usize).await?);
            if !self.line(2).await?.is_empty() {
                return Err(Stop::Protocol("chunk data longer than its size".into()));
            }
        }
    }

    async fn respond(&mut self, req: &Recorded, origin: &str, close: bool) -> Result<(), Stop> {
        let body = format!("target={} origin={origin}", req.target);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        let mut out = head.into_bytes();
        if req.method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        self.stream.write_all(&out).await.map_err(|_| Stop::Io)
    }

    /// After a `Connection: close` exchange nothing more may arrive.
    async fn expect_silence(&mut self) -> Stop {
        if !self.buf.is_empty() {
            return Stop::Protocol("bytes after a Connection: close request".into());
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(AFTER_CLOSE, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                Stop::Protocol("bytes after a Connection: close request".into())
            }
            _ => Stop::Done,
        }
    }
}

async fn serve(origin: Arc<str>, id: u64, stream: TcpStream, log: Arc<Mutex<Log>>) {
    let mut c = Conn {
        id,
        stream,
        buf: Vec::new(),
        log,
    };
    let stop = loop {
        match c.request().await {
            Ok(None) => break Stop::Done,
            Ok(Some(req)) => {
                let close = req.version == "HTTP/1.0"
                    || req
                        .values("connection")
                        .flat_map(|v| v.split(','))
                        .any(|t| t.trim().eq_ignore_ascii_case("close"));
                c.log().requests.push(req.clone());
                c.publish_pending();
                if let Err(stop) = c.respond(&req, &origin, close).await {
                    break stop;
                }
                if close {
                    break c.expect_silence().await;
                }
            }
            Err(stop) => break stop,
        }
    };
    let near = String::from_utf8_lossy(&c.buf[..c.buf.len().min(512)]).into_owned();
    c.log().pending.remove(&id);
    match stop {
        Stop::Done | Stop::Io => {}
        Stop::Aborted => c.log().aborted.push((id, near)),
        Stop::Protocol(reason) => {
            c.log().errors.push(ProtocolError {
                conn: id,
                reason,
                near,
            });
            let _ = c
                .stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    }
}

/// RFC 9110 token characters.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `name: value`, strictly: a token name right before the colon, no control bytes in the value.
fn header(line: &[u8]) -> Result<(String, String), Stop> {
    let show = || String::from_utf8_lossy(line).into_owned();
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Stop::Protocol(format!("obs-fold line {:?}", show())));
    }
    let colon = line
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(|| Stop::Protocol(format!("header line without a colon {:?}", show())))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().copied().all(tchar) {
        return Err(Stop::Protocol(format!("header name {:?}", show())));
    }
    if value
        .iter()
        .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
    {
        return Err(Stop::Protocol(format!(
            "control byte in header value {:?}",
            show()
        )));
    }
    let value = String::from_utf8_lossy(value)
        .trim_matches([' ', '\t'])
        .to_owned();
    Ok((String::from_utf8_lossy(name).into_owned(), value))
}

fn content_length(v: &str) -> Result<u64, Stop> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Stop::Protocol(format!("Content-Length {v:?}")));
    }
    match v.parse::<u64>() {
        Ok(n) if n <= MAX_BODY => Ok(n),
        _ => Err(Stop::Protocol(format!("Content-Length {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exchange(origin: &RecordingOrigin, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(origin.addr()).await.expect("connect");
        s.write_all(bytes).await.expect("write");
        s.shutdown().await.expect("half-close");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn frames_length_and_chunked_requests_and_names_the_target() {
        let o = RecordingOrigin::start("a", "127.0.0.1")
            .await
            .expect("start");
        let out = exchange(
            &o,
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPUT /y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nhi\r\n0\r\nT: 1\r\n\r\n",
        )
        .await;
        assert!(out.contains("target=/x origin=a") && out.contains("target=/y origin=a"));
        let r = o.requests();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].body.as_slice(), r[0].framing),
            (&b"abc"[..], Framing::Length(3))
        );
        assert_eq!(
            (r[1].body.as_slice(), r[1].framing),
            (&b"hi"[..], Framing::Chunked)
        );
        assert_eq!(r[1].header("host"), Some("h"));
        assert!(o.errors().is_empty() && o.aborted().is_empty());
    }

    #[tokio::test]
    async fn ambiguous_framing_is_a_protocol_error() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX Y: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            let o = RecordingOrigin::start("a", "127.0.0.1").await.expect("start");
            let out = exchange(&o, bad).await;
            let shown = String::from_utf8_lossy(bad);
            assert!(out.contains("400 Bad Request"), "{shown:?}: {out}");
            assert_eq!(o.errors().len(), 1, "{shown:?}");
        }
    }

    #[tokio::test]
    async fn a_partial_request_is_pending_until_the_connection_ends() {
        let o = RecordingOrigin::start("a", "127.0.0.1")
            .await
            .expect("start");
        let mut s = TcpStream::connect(o.addr()).await.expect("connect");
        s.write_all(b"GET /smuggled HTTP/1.1\r\nHost: h\r\nX: ")
            .await
            .expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while o.pending().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never pending");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(o.pending()[0].1.contains("/smuggled"));
        drop(s);
        while o.aborted().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never aborted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(o.pending().is_empty() && o.requests().is_empty());
    }
}
