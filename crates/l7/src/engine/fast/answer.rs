//! The answers the fast engine writes itself (refusals, upstream failures), and the log phase
//! for its requests.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::Conn;
use super::plan::Plan;
use crate::request::ConnInfo;
use crate::request::log::{self, Line};
use crate::shared::Shared;

/// The answer to a request whose framing the fast path refuses; the connection then closes,
/// since where the refused request ends is unknown.
pub(super) fn refusal_response(status: u16) -> &'static [u8] {
    match status {
        501 => b"HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n501 not implemented\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\nconnection: close\r\n\r\n400 bad request\n",
    }
}

pub(super) fn error_response(status: u16) -> &'static [u8] {
    match status {
        503 => b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 24\r\n\r\n503 service unavailable\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 request timeout\n",
        504 => b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\n\r\n504 gateway timeout\n",
        _ => b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n\r\n502 bad gateway\n",
    }
}

/// The request is done with `status`: the log phase.
pub(super) fn done(shared: &Shared, info: &ConnInfo, plan: &Plan, status: u16, start: Instant) {
    let line = plan
        .log
        .as_deref()
        .map(|(method, path, host)| Line { method, path, host });
    let conn = ConnInfo {
        client: plan.client,
        ..*info
    };
    let route = &*plan.route;
    log::done(
        shared,
        &conn,
        route,
        &route.metrics,
        line,
        status,
        start.elapsed(),
    );
}

impl<I> Conn<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    /// Answer with an error status; the connection stays open when the request was read whole.
    pub(super) async fn fail(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: &Plan,
        status: u16,
        start: Instant,
    ) -> Result<bool, ()> {
        done(shared, info, plan, status, start);
        let resp = error_response(status);
        let draining = self.shutdown.is_cancelled();
        let said_close = resp.windows(17).any(|w| w == b"connection: close");
        let written = if draining && !said_close {
            // The last response of a draining connection says so, after its status line.
            let line = resp
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(0, |i| i + 2);
            let mut r = Vec::with_capacity(resp.len() + 19);
            r.extend_from_slice(&resp[..line]);
            r.extend_from_slice(b"connection: close\r\n");
            r.extend_from_slice(&resp[line..]);
            self.io.write_all(&r).await
        } else {
            self.io.write_all(resp).await
        };
        if written.is_err() || self.io.flush().await.is_err() {
            return Err(());
        }
        Ok(plan.body_left == 0 && !plan.close && !draining)
    }
}
