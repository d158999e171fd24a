//! Phase `policy`: what answers a request before any upstream is chosen — the source
//! allow-list, redirects, HTTPS redirection, `app-root` ([`check`]) and the body limit
//! ([`body_limit`]). The answer is data; each engine writes it in its own way.

use std::net::IpAddr;

use http::StatusCode;
use http::header::HeaderValue;

use super::Features;
use crate::annotations::Options;
use crate::table::Route;

/// The route features [`check`] can answer for: a route (on a connection) with none of them
/// gets `None`, so an engine may skip the phase per route instead of testing each option per
/// request.
pub const CHECKED: Features = Features::ALLOW_LIST
    .union(Features::REDIRECT)
    .union(Features::HTTPS_REDIRECT);

/// What the policy phase needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The connection is TLS.
    pub tls: bool,
    /// Who the request is from (see [`super::ConnInfo::client`]).
    pub client: IpAddr,
    /// The host as matched (no port, lower case).
    pub host: &'a str,
    /// The normalised path.
    pub path: &'a str,
    /// The normalised path and the query, as forwarded.
    pub path_and_query: &'a str,
}

/// A request answered by the policy phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `403`: the client is not in the route's allow-list.
    Forbidden,
    /// A redirect to `location`.
    Redirect {
        status: StatusCode,
        location: HeaderValue,
    },
    /// `400`: the redirect target is not a valid header value.
    BadRequest,
    /// `413`: the declared body is larger than `proxy-body-size`.
    TooLarge,
}

fn location(url: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(url).ok()
}

/// An answer that ends the request here, or `None` to go on to the upstream.
pub fn check(facts: &Facts<'_>, route: &Route, https_port: Option<u16>) -> Option<Answer> {
    let o = &route.options;
    if let Some(allow) = &o.allow {
        // The client a trusted proxy forwarded for, else the peer.
        let ip = facts.client.to_canonical();
        if !allow.iter().any(|net| net.contains(&ip)) {
            return Some(Answer::Forbidden);
        }
    }
    let redirect =
        |status, url: &str| location(url).map(|location| Answer::Redirect { status, location });
    if let Some((url, code)) = &o.permanent_redirect {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
        return redirect(status, url);
    }
    if let Some((url, code)) = &o.temporal_redirect {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::FOUND);
        return redirect(status, url);
    }
    if !facts.tls && ((route.tls_host && o.ssl_redirect) || o.force_ssl_redirect) {
        let (host, pq) = (facts.host, facts.path_and_query);
        let url = match https_port {
            Some(443) | None => format!("https://{host}{pq}"),
            Some(port) => format!("https://{host}:{port}{pq}"),
        };
        return Some(redirect(StatusCode::PERMANENT_REDIRECT, &url).unwrap_or(Answer::BadRequest));
    }
    if let Some(root) = &o.app_root
        && facts.path == "/"
    {
        return redirect(StatusCode::FOUND, root);
    }
    None
}

/// `413` when a body of at least `declared` bytes is over the route's `proxy-body-size`. A body
/// of unknown length is also bounded while it is read (each engine counts what it forwards).
pub fn body_limit(options: &Options, declared: u64) -> Option<Answer> {
    options
        .body_limit
        .is_some_and(|limit| declared > limit)
        .then_some(Answer::TooLarge)
}
