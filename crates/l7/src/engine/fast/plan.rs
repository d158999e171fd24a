//! The fast engine's view of one request: its head parsed in place, the route and policy
//! phases run on it, the upstream head written, and the body buffered.

use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tracing::debug;

use super::codec::{self, Handoff, MAX_HEADERS};
use super::{CHUNK, Conn, End, takes};
use crate::engine::hyper::headers;
use crate::path;
use crate::request::{ConnInfo, Features, affinity, policy, route};
use crate::shared::Shared;
use crate::table::Route;

/// What one request needs once its head is no longer borrowed.
pub(super) struct Plan {
    pub(super) route: Arc<Route>,
    /// Index of the endpoint named by a valid affinity cookie.
    pub(super) sticky: Option<usize>,
    pub(super) omit_samesite_none: bool,
    pub(super) body_left: u64,
    pub(super) close: bool,
    pub(super) head_request: bool,
    /// The method may be sent twice (RFC 9110 9.2.2).
    pub(super) idempotent: bool,
    /// For the access log, only when it is on.
    pub(super) log: Option<Box<(String, String, String)>>,
    /// Who the request is from (the peer, or whom a trusted proxy forwarded for).
    pub(super) client: std::net::IpAddr,
}

impl<I> Conn<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    /// Parse the head at the start of `inbuf` and decide. `Ok(None)`: incomplete.
    /// On success the head (and any body bytes already read) are consumed and the upstream
    /// request is in `out`.
    pub(super) fn plan(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
    ) -> Result<Option<Plan>, Handoff> {
        let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(req) = codec::parse_request(&self.inbuf, &mut hdrs)? else {
            return Ok(None);
        };
        // Routed, checked and forwarded as normalised; a refused path gets its 400 (and its
        // count and log line) from the general path.
        let path =
            path::normalize(req.path(), shared.encoded_slashes).map_err(|_| Handoff::Path)?;
        let (host, route) = route::route(&shared.table.load(), req.host, &path);
        // 404s, 503s and the rest keep their one implementation.
        let route = route.ok_or(Handoff::Route)?;
        if !takes(&route, info.tls) {
            return Err(Handoff::Route);
        }
        // Who the request is from: the peer, unless a trusted proxy says otherwise.
        let client = info
            .for_request(&shared.trusted, req.values("x-forwarded-for"))
            .client;
        // The hyper engine writes every policy answer (it runs the same phase). Whether the
        // route has anything the phase could answer was decided when the table was compiled.
        let uses = route.features.on(info.tls);
        let answered = uses.intersects(policy::CHECKED)
            && policy::check(
                &policy::Facts {
                    tls: info.tls,
                    client,
                    host: &host,
                    path: &path,
                    path_and_query: req.target,
                },
                &route,
                shared.https_port,
            )
            .is_some();
        if answered
            || (uses.contains(Features::BODY_LIMIT)
                && policy::body_limit(&route.options, req.content_length).is_some())
        {
            return Err(Handoff::Route);
        }
        let (sticky, omit_samesite_none) = match &route.options.affinity {
            Some(a) => {
                let sticky = affinity::cookie_in(req.values("cookie"), &a.name).and_then(|v| {
                    let e = route.upstream.by_cookie(v)?;
                    route
                        .upstream
                        .endpoints()
                        .iter()
                        .position(|x| std::ptr::eq(x, e))
                });
                let omit = a.conditional_samesite_none
                    && req
                        .values("user-agent")
                        .next()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .is_some_and(affinity::user_agent_rejects_samesite_none);
                (sticky, omit)
            }
            None => (None, false),
        };
        self.out.clear();
        codec::write_upstream_head(
            &mut self.out,
            &req,
            &path,
            &self.fwd,
            client,
            headers::request_id_bytes,
        );
        let in_buf = (self.inbuf.len() - req.head_len)
            .min(usize::try_from(req.content_length).unwrap_or(usize::MAX));
        self.out
            .extend_from_slice(&self.inbuf[req.head_len..req.head_len + in_buf]);
        let body_left = req.content_length - in_buf as u64;
        let log = shared.access_log_enabled().then(|| {
            Box::new((
                req.method.to_owned(),
                path.clone().into_owned(),
                host.into_owned(),
            ))
        });
        let plan = Plan {
            sticky,
            omit_samesite_none,
            body_left,
            close: req.close,
            head_request: req.is_head(),
            idempotent: req.idempotent(),
            log,
            client,
            route,
        };
        let consumed = req.head_len + in_buf;
        self.inbuf.advance(consumed);
        Ok(Some(plan))
    }

    /// Read the rest of the request body into `inbuf` until it is whole or
    /// `--request-buffer-size` bytes are there, before any upstream connection is taken: a
    /// client sending slowly holds no upstream connection. A client silent for longer than
    /// `--client-body-timeout` gets a 408 and the connection closes.
    /// What was read joins the head in `out`, so a whole body goes upstream in the same write
    /// (and can be sent again on a fresh connection when a pooled one turns out closed).
    pub(super) async fn buffer_body(
        &mut self,
        shared: &Shared,
        info: &ConnInfo,
        plan: &mut Plan,
    ) -> Result<(), End> {
        let start = Instant::now();
        let want = usize::try_from(plan.body_left)
            .unwrap_or(usize::MAX)
            .min(shared.request_buffer);
        while self.inbuf.len() < want {
            self.inbuf.reserve((want - self.inbuf.len()).min(CHUNK));
            let read = self.io.read_buf(&mut self.inbuf);
            match tokio::time::timeout(shared.client_body_timeout, read).await {
                Ok(Ok(0) | Err(_)) => return Err(End::Close),
                Ok(Ok(_)) => {}
                Err(_) => {
                    debug!(peer = %info.peer, "request body timed out");
                    let _ = self.fail(shared, info, plan, 408, start).await;
                    return Err(End::Close);
                }
            }
        }
        let n = want.min(self.inbuf.len());
        self.out.extend_from_slice(&self.inbuf[..n]);
        self.inbuf.advance(n);
        plan.body_left -= n as u64;
        Ok(())
    }
}
