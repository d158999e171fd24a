//! The hyper engine's request path, from a routed request to its response: the canary, the
//! body (limits, buffering), the upstream request and headers; the endpoint loop is the
//! pipeline's ([`crate::request::upstream`]), this module only builds what each attempt sends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tracing::debug;

use super::body::{self, Whole};
use super::client::{BoxError, ProxyBody};
use super::error::{ProxyError, answer, error_response};
use super::exchange::HyperExchange;
use super::headers;
use crate::annotations::{BackendProtocol, HashKey, Options};
use crate::request::upstream::{self, Outcome};
use crate::request::{ConnInfo, affinity, policy, response};
use crate::shared::Shared;
use crate::table::{Canary, Route};
use crate::upstream::{Target, Upstream};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteTarget {
    Main,
    Canary,
}

fn use_canary(c: &Canary, headers: &HeaderMap) -> bool {
    if let Some(name) = &c.rules.by_header
        && let Some(v) = headers.get(name)
    {
        match &c.rules.by_header_value {
            Some(want) => {
                if v.as_bytes() == want.as_bytes() {
                    return true;
                }
            }
            None => match v.as_bytes() {
                b"always" => return true,
                b"never" => return false,
                _ => {}
            },
        }
    }
    if let Some(name) = &c.rules.by_cookie {
        match affinity::cookie(headers, name) {
            Some("always") => return true,
            Some("never") => return false,
            _ => {}
        }
    }
    if c.rules.weight == 0 {
        return false;
    }
    let n = c.counter.fetch_add(1, Ordering::Relaxed);
    (n % u64::from(c.rules.weight_total)) < u64::from(c.rules.weight)
}

fn hash_key(
    key: &HashKey,
    conn: &ConnInfo,
    host: &str,
    req: &Request<Incoming>,
) -> Option<Vec<u8>> {
    let h = req.headers();
    Some(match key {
        HashKey::RequestUri => req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes()
            .to_vec(),
        HashKey::Uri => req.uri().path().as_bytes().to_vec(),
        HashKey::RemoteAddr => conn.client.to_string().into_bytes(),
        HashKey::Host => host.as_bytes().to_vec(),
        HashKey::Header(name) => h.get(name)?.as_bytes().to_vec(),
        HashKey::Cookie(name) => affinity::cookie(h, name)?.as_bytes().to_vec(),
        HashKey::Arg(name) => req
            .uri()
            .query()?
            .split('&')
            .find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v)
            })?
            .as_bytes()
            .to_vec(),
    })
}

/// The body as it goes upstream, and the same once more when it was read whole (none, or
/// buffered to its end). Read before any upstream connection is taken (nginx's request
/// buffering), except for gRPC, whose request streams are conversations (as nginx's
/// `grpc_pass`), upgrades, and routes with `proxy-request-buffering: off`.
async fn prepare_body(
    shared: &Shared,
    opts: &Options,
    body: Incoming,
    stream: bool,
) -> Result<(ProxyBody, Option<Whole>), ProxyError> {
    if body.is_end_stream() {
        return Ok((
            body.map_err(BoxError::from).boxed_unsync(),
            Some(Whole::default()),
        ));
    }
    let b = body::ClientBody::new(body, opts.body_limit, shared.client_body_timeout);
    if opts.request_buffering && shared.request_buffer > 0 && !stream {
        return body::buffer(b, shared.request_buffer)
            .await
            .map_err(ProxyError::from);
    }
    Ok((b.map_err(BoxError::from).boxed_unsync(), None))
}

/// The ExternalName to send to (`None`: the endpoints), or why there is nothing to send to.
fn external_name(upstream: &Upstream) -> Result<Option<Authority>, ProxyError> {
    match &upstream.target {
        Target::NoService => Err(ProxyError::NoService(upstream.label.clone())),
        Target::NoEndpoints => Err(ProxyError::NoEndpoints(upstream.label.clone())),
        Target::External(a) => Ok(Some(a.clone())),
        Target::Endpoints(_) => Ok(None),
    }
}

/// Send the request upstream; returns the response and which backend served it.
pub(super) async fn proxy(
    shared: &Shared,
    conn: ConnInfo,
    route: &Arc<Route>,
    host: &str,
    mut req: Request<Incoming>,
) -> (Response<ProxyBody>, RouteTarget) {
    let (upstream, target) = match &route.canary {
        Some(c) if use_canary(c, req.headers()) => (&c.upstream, RouteTarget::Canary),
        _ => (&route.upstream, RouteTarget::Main),
    };
    let opts = &route.options;
    if let Some(a) = policy::body_limit(opts, req.body().size_hint().lower()) {
        return (answer(a), target);
    }
    let authority = match external_name(upstream) {
        Ok(a) => a,
        Err(e) => return (error_response(&e), target),
    };

    let upgrade = headers::is_upgrade(req.headers());
    let down_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let hash = opts
        .hash_by
        .as_ref()
        .and_then(|k| hash_key(k, &conn, host, &req));
    let sticky = opts
        .affinity
        .as_ref()
        .and_then(|a| affinity::cookie(req.headers(), &a.name).map(str::to_owned));
    let omit_samesite_none = opts.affinity.as_ref().is_some_and(|a| {
        a.conditional_samesite_none && affinity::samesite_none_incompatible(req.headers())
    });

    let (parts, body) = req.into_parts();
    let path_and_query = match headers::rewritten(route, &parts.uri) {
        Ok(pq) => pq,
        Err(e) => return (error_response(&e), target),
    };
    let mut up_headers = parts.headers;
    headers::forwarded(&mut up_headers, &conn, parts.uri.authority(), upgrade);

    let empty_body = body.is_end_stream();
    let grpc = matches!(
        opts.backend_protocol,
        BackendProtocol::Grpc | BackendProtocol::Grpcs
    );
    let (body, whole) = match prepare_body(shared, opts, body, grpc || upgrade).await {
        Ok(b) => b,
        Err(e) => {
            debug!(service = %upstream.label, error = %e, "request body refused");
            return (error_response(&e), target);
        }
    };
    // A body still of unknown length after buffering (a chunked one larger than the buffer, or
    // one that streams) goes on chunked, whatever the method: without the header hyper's client
    // sends a GET, HEAD or CONNECT with an empty body, dropping the client's. A buffered body
    // has its exact length, which hyper sends as Content-Length. (An HTTP/2 upstream connection
    // leaves the header out.)
    if !upgrade && !body.is_end_stream() && body.size_hint().exact().is_none() {
        up_headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    // A body that can be sent again (none, or one read whole) may go to another endpoint.
    let resendable = whole.is_some() && !upgrade;
    let plan = upstream::Request {
        route,
        upstream,
        sticky: sticky.as_deref().and_then(|v| upstream.by_cookie(v)),
        hash: hash.as_deref(),
        resendable,
        replayable: resendable && is_idempotent(&parts.method),
        start: Instant::now(),
    };
    let mut exchange = HyperExchange {
        client: if grpc {
            &shared.h2_client
        } else {
            &shared.client
        },
        method: parts.method,
        version: if grpc {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        },
        scheme: match opts.backend_protocol {
            BackendProtocol::Https | BackendProtocol::Grpcs => Scheme::HTTPS,
            BackendProtocol::Http | BackendProtocol::Grpc => Scheme::HTTP,
        },
        path_and_query,
        authority,
        headers: up_headers,
        copies: upstream::tries(&plan) - 1,
        body: Some(body),
        whole,
        empty_body,
    };
    let resp = match upstream::run(shared, &plan, &mut exchange).await {
        Outcome::Answered {
            reply,
            set_cookie,
            inflight,
            ..
        } => {
            drop(inflight);
            let added = response::added(shared, route, conn.tls, set_cookie, omit_samesite_none);
            respond(shared, reply, down_upgrade, added)
        }
        Outcome::Failed(e) => error_response(&e),
        Outcome::NoEndpoint => error_response(&ProxyError::NoEndpoints(upstream.label.clone())),
    };
    (resp, target)
}

/// The upstream's response for the client: hop-by-hop headers out, the response phase's in,
/// and the tunnel when the upstream switched protocols.
fn respond(
    shared: &Shared,
    mut resp: Response<Incoming>,
    down_upgrade: Option<hyper::upgrade::OnUpgrade>,
    added: response::Added<'_>,
) -> Response<ProxyBody> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(down) = down_upgrade
    {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        tunnel(shared, down, up_upgrade);
    }
    let mut out = resp.map(|b| b.map_err(BoxError::from).boxed_unsync());
    headers::strip_response(out.headers_mut());
    if let Some(v) = added.set_cookie {
        out.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Some(v) = added.hsts {
        out.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
    out
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Join the two upgraded halves and copy bytes both ways until either side closes. The tunnel
/// does not hold the route table, so reloads never touch it.
fn tunnel(shared: &Shared, down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let gauge = shared.metrics.open_upgrades.clone();
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(down, up) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "upgrade failed");
                return;
            }
        };
        gauge.inc();
        let (mut d, mut u) = (TokioIo::new(down), TokioIo::new(up));
        if let Err(e) = tokio::io::copy_bidirectional(&mut d, &mut u).await {
            debug!(error = %e, "upgraded connection ended with an error");
        }
        gauge.dec();
    });
}
