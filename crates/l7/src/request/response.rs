//! Phase `response`: what Portico adds to an upstream's response head — the affinity cookie
//! when one is due, and `Strict-Transport-Security` on HTTPS responses of TLS hosts. (Each
//! engine removes the hop-by-hop headers as it copies the head.)

use http::header::HeaderValue;

use super::affinity;
use crate::shared::Shared;
use crate::table::Route;
use crate::upstream::Endpoint;

/// The headers added to one response.
pub struct Added<'a> {
    /// `Set-Cookie` naming the endpoint that served, for affinity.
    pub set_cookie: Option<HeaderValue>,
    /// `Strict-Transport-Security`.
    pub hsts: Option<&'a HeaderValue>,
}

/// The headers to add to a response of `route` from `set_cookie` (the endpoint the upstream
/// phase says the cookie names) on a connection that is `tls` or not; `omit_samesite_none`:
/// the client's user agent mishandles `SameSite=None`.
pub fn added<'a>(
    shared: &'a Shared,
    route: &Route,
    tls: bool,
    set_cookie: Option<&Endpoint>,
    omit_samesite_none: bool,
) -> Added<'a> {
    let set_cookie = match (set_cookie, &route.options.affinity) {
        (Some(e), Some(a)) => {
            affinity::set_cookie(a, &e.cookie, route.path(), tls, omit_samesite_none).ok()
        }
        _ => None,
    };
    let hsts = shared.hsts.as_ref().filter(|_| tls && route.tls_host);
    Added { set_cookie, hsts }
}
