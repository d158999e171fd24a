//! Checks that answer before any upstream is chosen: source allow-lists, redirects, HTTPS
//! redirection and `app-root`.

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{ConnInfo, ProxyBody, local_response, redirect};
use crate::shared::Shared;
use crate::table::Route;

fn location(url: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(url).ok()
}

/// A response that ends the request here, or `None` to proxy it.
pub fn check(
    shared: &Shared,
    conn: &ConnInfo,
    route: &Route,
    host: &str,
    req: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    let o = &route.options;
    if let Some(allow) = &o.allow {
        // The client a trusted proxy forwarded for, else the peer.
        let ip = conn.client.to_canonical();
        if !allow.iter().any(|net| net.contains(&ip)) {
            return Some(local_response(StatusCode::FORBIDDEN, "403 forbidden\n"));
        }
    }
    if let Some((url, code)) = &o.permanent_redirect {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
        return location(url).map(|l| redirect(status, l));
    }
    if let Some((url, code)) = &o.temporal_redirect {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::FOUND);
        return location(url).map(|l| redirect(status, l));
    }
    if !conn.tls && ((route.tls_host && o.ssl_redirect) || o.force_ssl_redirect) {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let url = match shared.https_port {
            Some(443) | None => format!("https://{host}{pq}"),
            Some(port) => format!("https://{host}:{port}{pq}"),
        };
        return Some(match location(&url) {
            Some(l) => redirect(StatusCode::PERMANENT_REDIRECT, l),
            None => local_response(StatusCode::BAD_REQUEST, "400 bad request\n"),
        });
    }
    if let Some(root) = &o.app_root
        && req.uri().path() == "/"
    {
        return location(root).map(|l| redirect(StatusCode::FOUND, l));
    }
    None
}
