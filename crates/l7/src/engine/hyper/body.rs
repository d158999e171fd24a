//! The client's request body on the general path: bounded by `proxy-body-size` and
//! `--client-body-timeout` while it is read ([`ClientBody`]), and read up to
//! `--request-buffer-size` before an upstream connection is taken ([`buffer`]), so a client
//! sending slowly holds no upstream connection (nginx's `proxy_request_buffering on`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::client::{BoxError, ProxyBody};
use super::error::ProxyError;

/// Why reading a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("request body larger than proxy-body-size")]
    TooLarge,
    #[error("no request body bytes within the client body timeout")]
    Timeout,
    #[error("reading the request body failed")]
    Read(#[source] hyper::Error),
}

impl From<ClientBodyError> for ProxyError {
    fn from(e: ClientBodyError) -> Self {
        match e {
            ClientBodyError::TooLarge => ProxyError::TooLarge,
            ClientBodyError::Timeout => ProxyError::BodyTimeout,
            ClientBodyError::Read(e) => ProxyError::ClientBody(e),
        }
    }
}

/// The body error that made an upstream exchange fail, if one did.
pub fn cause<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e ClientBodyError> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(b) = err.downcast_ref::<ClientBodyError>() {
            return Some(b);
        }
        next = err.source();
    }
    None
}

/// The client's body with the limits applied as it is read: more data than `limit` fails at the
/// frame that crosses it (that frame is never forwarded), and no frame within `timeout` of the
/// previous read fails with [`ClientBodyError::Timeout`].
pub struct ClientBody {
    inner: Incoming,
    left: Option<u64>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// The timer runs: the last poll found no data.
    waiting: bool,
}

impl ClientBody {
    pub fn new(inner: Incoming, limit: Option<u64>, timeout: Duration) -> Self {
        Self {
            inner,
            left: limit,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let (Some(left), Some(data)) = (&mut this.left, frame.data_ref()) {
                    let n = data.len() as u64;
                    if n > *left {
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge)));
                    }
                    *left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError::Read(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.timer.as_mut().reset(Instant::now() + this.timeout);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Timeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What [`buffer`] read, then the rest of the body (if it did not end within the bound).
struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<ClientBody>,
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(d) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if let Some(rest) = &mut this.rest {
            return Pin::new(rest)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from)));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let have = self.data.as_ref().map_or(0, |d| d.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(have),
            Some(r) => {
                let h = r.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + have);
                if let Some(u) = h.upper() {
                    s.set_upper(u + have);
                }
                s
            }
        }
    }
}

/// A body read whole by [`buffer`]: it can be sent again, to another endpoint.
#[derive(Debug, Clone, Default)]
pub struct Whole {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Whole {
    /// The body once more (the bytes are shared, not copied).
    pub fn body(&self) -> ProxyBody {
        Buffered {
            data: self.data.clone(),
            trailers: self.trailers.clone(),
            rest: None,
        }
        .boxed_unsync()
    }
}

/// Read `body` until it ends or more than `bound` bytes have arrived, under its limits. A body
/// that ended is sent with its exact length, and comes back as [`Whole`] too so that it can be
/// sent again; otherwise what was read goes first and the rest streams. Errors (too large,
/// timeout, a broken client) come back before any upstream is asked.
pub async fn buffer(
    mut body: ClientBody,
    bound: usize,
) -> Result<(ProxyBody, Option<Whole>), ClientBodyError> {
    let mut data = BytesMut::new();
    let mut trailers = None;
    let rest = loop {
        if data.len() > bound {
            break Some(body);
        }
        match body.frame().await {
            None => break None,
            Some(Err(e)) => return Err(e),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            },
        }
    };
    let data = (!data.is_empty()).then(|| data.freeze());
    let whole = rest.is_none().then(|| Whole {
        data: data.clone(),
        trailers: trailers.clone(),
    });
    let body = Buffered {
        data,
        trailers,
        rest,
    }
    .boxed_unsync();
    Ok((body, whole))
}
