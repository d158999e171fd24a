//! `proxy-send-timeout` on the hyper engine. The request body goes to hyper's client in pieces
//! of at most [`PIECE`] bytes, and hyper asks for the next piece only when it has room to write
//! it: a piece handed over that is not followed by a request for the next one within the send
//! timeout means the upstream stopped reading (nginx's `proxy_send_timeout`, the time between
//! two successive writes). Waiting for the *client's* bytes is not the upstream's fault and is
//! not counted (`--client-body-timeout` bounds it).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::client::{BoxError, ProxyBody};

/// The largest piece of body handed to hyper at once.
pub const PIECE: usize = 16 * 1024;

/// When the last piece was handed over; the body itself, so that a stalled send can let go of
/// it (hyper's connection task, stuck writing to the upstream, would otherwise hold the
/// client's body, and with it the client connection, for as long as the upstream holds on).
pub struct Progress {
    origin: Instant,
    body: Mutex<Option<ProxyBody>>,
    /// Milliseconds after `origin`, plus one, of the last piece handed over that hyper has not
    /// yet followed with a request for the next; 0: none (hyper is asking, or the body is done).
    handed: AtomicU64,
}

impl Progress {
    fn handed(&self, last: bool) {
        let v = if last {
            0
        } else {
            self.origin.elapsed().as_millis() as u64 + 1
        };
        self.handed.store(v, Ordering::Relaxed);
    }

    fn body(&self) -> MutexGuard<'_, Option<ProxyBody>> {
        self.body.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when a piece handed over waited `limit` for hyper to ask for the next one.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let handed = self.handed.load(Ordering::Relaxed);
            if handed == 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            tokio::time::sleep_until(self.origin + Duration::from_millis(handed - 1) + limit).await;
            if self.handed.load(Ordering::Relaxed) == handed {
                drop(self.body().take());
                return;
            }
        }
    }
}

/// A request body handed to hyper in pieces, with its [`Progress`] watched.
pub struct Watched {
    pending: Bytes,
    /// The body has ended, or was let go of.
    ended: bool,
    progress: Arc<Progress>,
}

impl Watched {
    pub fn wrap(inner: ProxyBody) -> (ProxyBody, Arc<Progress>) {
        let ended = inner.is_end_stream();
        let progress = Arc::new(Progress {
            origin: Instant::now(),
            body: Mutex::new(Some(inner)),
            handed: AtomicU64::new(0),
        });
        let body = Watched {
            pending: Bytes::new(),
            ended,
            progress: progress.clone(),
        };
        (body.boxed_unsync(), progress)
    }

    fn piece(&mut self) -> Bytes {
        let n = self.pending.len().min(PIECE);
        let piece = self.pending.split_to(n);
        self.progress.handed(self.is_end_stream());
        piece
    }
}

fn inner_end(body: &Option<ProxyBody>) -> bool {
    body.as_ref().is_none_or(|b| b.is_end_stream())
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Asked: whatever was handed over is on its way.
        this.progress.handed.store(0, Ordering::Relaxed);
        if !this.pending.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(this.piece()))));
        }
        let mut body = this.progress.body();
        let Some(inner) = body.as_mut() else {
            this.ended = true;
            return Poll::Ready(Some(Err("the upstream stopped reading the request".into())));
        };
        let polled = Pin::new(inner).poll_frame(cx);
        let end = inner_end(&body);
        drop(body);
        this.ended = end;
        match polled {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    this.pending = data;
                    Poll::Ready(Some(Ok(Frame::data(this.piece()))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.ended
    }

    fn size_hint(&self) -> SizeHint {
        let h = match self.progress.body().as_ref() {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        };
        let p = self.pending.len() as u64;
        if let Some(n) = h.exact() {
            return SizeHint::with_exact(n + p);
        }
        let mut s = SizeHint::new();
        s.set_lower(h.lower() + p);
        if let Some(u) = h.upper() {
            s.set_upper(u + p);
        }
        s
    }
}
