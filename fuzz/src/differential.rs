//! The fast codec against a reference: hyper's own HTTP/1 server, the engine the general path
//! runs, reading the same bytes over an in-memory pipe.
//!
//! The reference is `hyper::server::conn::http1` with its default settings (those the gateway
//! does not change: it only adds a header read timeout), driven on a current-thread runtime over
//! `tokio::io::duplex`. Its service records the first request it is handed. When the fast codec
//! takes a request (`Ok(Some(head))`), hyper must accept it too and agree on the method, the
//! request target, the number of header lines and the body length (`Content-Length`, or 0). When
//! the fast codec hands a request off or needs more bytes, there is nothing to compare: the
//! general path, hyper itself, answers it.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use portico_l7::engine::fast::codec::parse_request;
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::headers;

/// What hyper saw of the first request on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: usize,
    /// `Content-Length`, or 0 without a body; `None` for a body of unknown length.
    pub body_len: Option<u64>,
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Serve `data` as one client's bytes (then end of stream) and return the first request hyper
/// parsed, if any.
pub fn reference(data: &[u8]) -> Option<Seen> {
    RUNTIME.with(|rt| rt.block_on(serve(data)))
}

async fn serve(data: &[u8]) -> Option<Seen> {
    let (mut client, server) = tokio::io::duplex(data.len() + 4096);
    let seen: Rc<RefCell<Option<Seen>>> = Rc::default();
    let record = seen.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let mut first = record.borrow_mut();
        if first.is_none() {
            *first = Some(Seen {
                method: req.method().as_str().to_owned(),
                target: req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned()),
                headers: req.headers().len(),
                body_len: req.body().size_hint().exact(),
            });
        }
        async { Ok::<_, Infallible>(Response::new(String::new())) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service);
    // The whole input fits the pipe, so this write never waits for the server.
    if client.write_all(data).await.is_err() || client.shutdown().await.is_err() {
        return None;
    }
    // Read the responses while the server runs, so a pipelined input never fills the pipe.
    let drain = async move {
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    };
    let _ = tokio::join!(conn, drain);
    seen.take()
}

/// The property: when the fast codec takes a request, hyper takes the same request.
pub fn check(data: &[u8]) {
    let mut h = headers();
    let Ok(Some(fast)) = parse_request(data, &mut h) else {
        return;
    };
    let Some(reference) = reference(data) else {
        panic!(
            "the fast codec took a request hyper refuses: {:?}",
            String::from_utf8_lossy(&data[..fast.head_len])
        );
    };
    let ours = Seen {
        method: fast.method.to_owned(),
        target: fast.target.to_owned(),
        headers: fast.headers.len(),
        body_len: Some(fast.content_length),
    };
    assert_eq!(
        ours,
        reference,
        "the fast codec and hyper disagree on {:?}",
        String::from_utf8_lossy(&data[..fast.head_len])
    );
}
