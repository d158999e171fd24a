//! What a route asks of the data plane beyond where to send a request: who may use it, how big a
//! body may be, how endpoints are chosen, how long to wait and how often to try again.

use std::time::Duration;

use ipnet::IpNet;

use super::matches::HeaderName;

/// How a backend's endpoints are picked when no hash key applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    /// Least (latency EWMA x in-flight requests).
    Ewma,
}

/// A request attribute that consistent hashing (`upstream-hash-by`) keys on, as the nginx
/// variables people use name them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// `$request_uri`: path and query.
    RequestUri,
    /// `$uri`: the path.
    Uri,
    /// `$remote_addr`, `$binary_remote_addr`: the client.
    RemoteAddr,
    /// `$host`, `$http_host`.
    Host,
    /// `$http_NAME`: a request header (`_` read as `-`).
    Header(HeaderName),
    /// `$cookie_NAME`.
    Cookie(String),
    /// `$arg_NAME`: a query parameter.
    Arg(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

/// Session affinity by a cookie Portico sets (`affinity: cookie` and `session-cookie-*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CookieAffinity {
    pub name: String,
    /// `affinity-mode: persistent`: keep the endpoint even when others are added.
    pub persistent: bool,
    /// `None`: the route's path.
    pub path: Option<String>,
    pub domain: Option<String>,
    pub max_age: Option<u64>,
    pub expires: Option<u64>,
    pub samesite: Option<SameSite>,
    /// Leave `SameSite=None` out for clients known to mishandle it.
    pub conditional_samesite_none: bool,
    pub secure: bool,
    /// Pick another endpoint (and reset the cookie) when the sticky one fails.
    pub change_on_failure: bool,
}

/// Upstream timeouts (`proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub send: Duration,
}

impl Default for Timeouts {
    /// ingress-nginx's defaults.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            send: Duration::from_secs(60),
        }
    }
}

/// A route's policy. Routes of Ingresses annotated alike share one (`Arc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Source ranges allowed (`allowlist-source-range`, `whitelist-source-range`); `None`:
    /// everyone. Others get 403 before anything else is decided.
    pub allow: Option<Vec<IpNet>>,
    /// `proxy-body-size`; `None`: no limit (413 above it).
    pub body_limit: Option<u64>,
    /// `proxy-request-buffering` (default on): read the body before an upstream connection is
    /// taken; off streams it.
    pub request_buffering: bool,
    pub balance: Balance,
    /// `upstream-hash-by`: consistent hashing on this key; [`Policy::balance`] picks when the
    /// request has no such attribute. A canary's endpoints are hashed on the route's key too.
    pub hash_by: Option<HashKey>,
    pub affinity: Option<CookieAffinity>,
    pub timeouts: Timeouts,
    /// `proxy-next-upstream-tries`: attempts per request, at least 1.
    pub tries: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow: None,
            // ingress-nginx's default `proxy-body-size`.
            body_limit: Some(1 << 20),
            request_buffering: true,
            balance: Balance::RoundRobin,
            hash_by: None,
            affinity: None,
            timeouts: Timeouts::default(),
            tries: 3,
        }
    }
}
