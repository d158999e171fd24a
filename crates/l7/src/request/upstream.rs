//! Phase `upstream`: THE loop over attempts, for both engines. The sticky endpoint (a valid
//! affinity cookie) goes first; then the balancer picks, excluding the endpoints already tried;
//! `proxy-next-upstream-tries` bounds the tries (never more than the endpoints); a failure that
//! may be retried counts toward the endpoint's ejection (logged once) and moves the request to
//! another endpoint; `session-cookie-change-on-failure` decides whether the new endpoint gets
//! the cookie. The in-flight count and the latency EWMA are kept here. The engine provides only
//! how one attempt moves bytes ([`Exchange`]), within the route's [`Timeouts`].
//!
//! Which failures move a request ([`Failure`]), as nginx's `proxy_next_upstream error`:
//! - a failed connect (nothing reached the upstream), when the engine can send the request
//!   again ([`Request::resendable`]);
//! - a connection that broke before any response byte (reset, EOF, a failed write), when the
//!   request may be sent twice ([`Request::replayable`]: idempotent, its body whole). A broken
//!   *pooled* connection costs no try (the upstream may just have closed it); when no other
//!   endpoint is left its endpoint is tried once more on a new connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use crate::annotations::Options;
use crate::shared::Shared;
use crate::table::Route;
use crate::upstream::{Endpoint, Target, Upstream};

/// The time allowed to each step of an exchange with the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `proxy-connect-timeout`: establishing a new connection.
    pub connect: Duration,
    /// `proxy-send-timeout`: between two successive writes of the request to the upstream
    /// (nginx's `proxy_send_timeout`); when it runs out the client gets `504`.
    pub send: Duration,
    /// `proxy-read-timeout`: between two successive reads of the response (`504` before
    /// the response head).
    pub read: Duration,
}

impl Timeouts {
    pub fn of(o: &Options) -> Self {
        Self {
            connect: o.connect_timeout,
            send: o.send_timeout,
            read: o.read_timeout,
        }
    }
}

/// How an attempt failed, as far as the loop is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: nothing reached the upstream.
    Connect,
    /// The connection broke before any response byte arrived (reset, EOF, a failed write);
    /// `reused`: it was a pooled connection.
    Broke { reused: bool },
    /// Anything else (a timeout, a bad response, the client's body): the request ends here,
    /// and the endpoint is not blamed.
    Final,
}

/// One attempt, as the loop hands it to the engine.
pub struct Attempt<'a> {
    /// The endpoint to send to; `None` for an ExternalName backend (the engine uses its name).
    pub endpoint: Option<&'a Endpoint>,
    /// A new connection must be used: a pooled one to this endpoint just broke.
    pub fresh: bool,
    /// The endpoint the response's affinity cookie names, if one is due.
    pub set_cookie: Option<&'a Endpoint>,
    options: &'a Options,
    shared: &'a Shared,
    service: &'a str,
}

impl Attempt<'_> {
    /// The time allowed to each step of this attempt.
    #[inline]
    pub fn timeouts(&self) -> Timeouts {
        Timeouts::of(self.options)
    }

    /// Record that a new connection to the endpoint was made (a success for passive health).
    pub fn connected(&self) {
        if let Some(e) = self.endpoint
            && self.shared.registry.connected(&e.state)
        {
            info!(service = %self.service, endpoint = %e.addr, "ejected endpoint readmitted after a successful connect");
        }
    }
}

/// How an engine sends one attempt: connect (or take a pooled connection), send the request
/// within [`Attempt::timeouts`], and return once the response head is in.
pub trait Exchange {
    /// What a successful attempt hands back (the response head and its connection).
    type Reply;
    type Error: std::fmt::Display;
    fn attempt(
        &mut self,
        attempt: &Attempt<'_>,
    ) -> impl Future<Output = Result<Self::Reply, (Self::Error, Failure)>>;
}

/// What the loop needs to know of the request.
pub struct Request<'r> {
    pub route: &'r Route,
    /// The route's backend or its canary.
    pub upstream: &'r Upstream,
    /// The endpoint a valid affinity cookie names.
    pub sticky: Option<&'r Endpoint>,
    /// The `upstream-hash-by` key.
    pub hash: Option<&'r [u8]>,
    /// The engine can send the request again after a failed connect.
    pub resendable: bool,
    /// The request may be sent twice after a connection broke before responding.
    pub replayable: bool,
    /// When the engine handed the request to the loop: the balancer's clock and the first
    /// attempt's latency are read from it (one clock read per request instead of three).
    pub start: Instant,
}

/// Counts a request in its endpoint's in-flight number while alive.
pub struct InFlight<'e>(Option<&'e Endpoint>);

impl<'e> InFlight<'e> {
    fn new(endpoint: Option<&'e Endpoint>) -> Self {
        if let Some(e) = endpoint {
            e.state.inflight.fetch_add(1, Ordering::Relaxed);
        }
        Self(endpoint)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.0 {
            e.state.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How the loop ended.
pub enum Outcome<'r, R, E> {
    Answered {
        reply: R,
        endpoint: Option<&'r Endpoint>,
        /// The endpoint the response's affinity cookie names, if one is due.
        set_cookie: Option<&'r Endpoint>,
        /// Held for as long as the engine moves the response.
        inflight: InFlight<'r>,
    },
    /// The last attempt's error.
    Failed(E),
    /// Nothing to try.
    NoEndpoint,
}

/// Count a failure of `endpoint` toward its ejection; the ejection is logged once.
fn endpoint_failed(shared: &Shared, service: &str, endpoint: &Endpoint) {
    if shared.registry.connect_failed(&endpoint.state) {
        info!(service, endpoint = %endpoint.addr, "endpoint ejected after repeated failures");
    }
}

/// How many tries `req` gets: `proxy-next-upstream-tries`, never more than the endpoints, and
/// one when the engine cannot send the request again.
pub fn tries(req: &Request<'_>) -> u32 {
    if req.resendable {
        let endpoints = req.upstream.endpoints().len().max(1) as u32;
        req.route.options.next_upstream_tries.clamp(1, endpoints)
    } else {
        1
    }
}

/// Send `req` upstream through `engine`: THE endpoint loop.
pub async fn run<'r, X: Exchange>(
    shared: &'r Shared,
    req: &Request<'r>,
    engine: &mut X,
) -> Outcome<'r, X::Reply, X::Error> {
    let upstream = req.upstream;
    let opts = &req.route.options;
    let external = matches!(upstream.target, Target::External(_));
    let tries = tries(req);
    let now_ms = shared.registry.clock.ms_at(req.start);
    // Allocates only when an attempt fails.
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut set_cookie: Option<&Endpoint> = None;
    // The endpoint of a pooled connection that broke, to try on a new connection.
    let mut stale: Option<&Endpoint> = None;
    let mut last = None;
    let mut attempt = 0;
    while attempt < tries {
        let first = tried.is_empty();
        let (endpoint, fresh) = if external {
            (None, false)
        } else {
            match req.sticky.filter(|_| first) {
                Some(e) => (Some(e), false),
                None => match upstream.pick(now_ms, &tried, req.hash) {
                    Some(e) => {
                        if let Some(a) = &opts.affinity
                            && (first || a.change_on_failure)
                        {
                            set_cookie = Some(e);
                        }
                        (Some(e), false)
                    }
                    None => match stale.take() {
                        Some(e) => (Some(e), true),
                        None => break,
                    },
                },
            }
        };
        let inflight = InFlight::new(endpoint);
        let sent = if first { req.start } else { Instant::now() };
        let result = engine
            .attempt(&Attempt {
                endpoint,
                fresh,
                set_cookie,
                options: opts,
                shared,
                service: &upstream.label,
            })
            .await;
        let addr = endpoint.map(|e| e.addr);
        let (err, failure) = match result {
            Ok(reply) => {
                if let Some(e) = endpoint {
                    if shared.registry.connected(&e.state) {
                        info!(service = %upstream.label, endpoint = %e.addr, "ejected endpoint readmitted after a response");
                    }
                    e.state.observe_latency(sent.elapsed());
                }
                return Outcome::Answered {
                    reply,
                    endpoint,
                    set_cookie,
                    inflight,
                };
            }
            Err(failed) => failed,
        };
        drop(inflight);
        match failure {
            Failure::Connect => {
                debug!(service = %upstream.label, endpoint = ?addr, error = %err, "connect failed");
                req.route.metrics.connect_error();
                attempt += 1;
            }
            Failure::Broke { reused } if req.replayable && (reused || attempt + 1 < tries) => {
                debug!(service = %upstream.label, endpoint = ?addr, reused, error = %err, "upstream connection broke before responding; trying another endpoint");
                if reused {
                    stale = endpoint;
                } else {
                    attempt += 1;
                }
            }
            Failure::Broke { .. } => {
                debug!(service = %upstream.label, endpoint = ?addr, error = %err, "upstream connection broke before responding");
                if let Some(e) = endpoint {
                    endpoint_failed(shared, &upstream.label, e);
                }
                return Outcome::Failed(err);
            }
            Failure::Final => {
                debug!(service = %upstream.label, endpoint = ?addr, error = %err, "upstream failed");
                return Outcome::Failed(err);
            }
        }
        if let Some(e) = endpoint {
            endpoint_failed(shared, &upstream.label, e);
            tried.push(e.addr);
        }
        last = Some(err);
    }
    match last {
        Some(err) => Outcome::Failed(err),
        None => Outcome::NoEndpoint,
    }
}
