//! A compiled route's options: the route model's policy and filters in the form the request
//! path reads them (header names parsed into `http`'s type, the rewrite in the regex crate's
//! expansion syntax, the redirect split by its status). Routes whose model shares one policy and
//! one set of filters share one `Options`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use portico_model::routes::{
    self, BackendProtocol, Balance, CookieAffinity, Filters, HttpsRedirect, Policy,
};

use super::ptr::ByPtr;

/// A request attribute `upstream-hash-by` hashes (the nginx variables people use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    RequestUri,
    Uri,
    RemoteAddr,
    Host,
    Header(http::HeaderName),
    Cookie(String),
    Arg(String),
}

/// When a canary takes a request; see [`routes::CanaryRules`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CanaryRules {
    pub weight: u32,
    pub weight_total: u32,
    pub by_header: Option<http::HeaderName>,
    pub by_header_value: Option<String>,
    pub by_cookie: Option<String>,
}

/// What a route does besides choosing its upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `rewrite-target` as written.
    pub rewrite_target: Option<String>,
    /// `rewrite_target` in the regex crate's expansion syntax (`$1` -> `${1}`), for regex routes.
    pub rewrite_expansion: Option<String>,
    /// With `force_ssl_redirect`: a plain-HTTP request is redirected to HTTPS when
    /// `(tls_host && ssl_redirect) || force_ssl_redirect`.
    pub ssl_redirect: bool,
    pub force_ssl_redirect: bool,
    pub backend_protocol: BackendProtocol,
    pub balance: Balance,
    pub hash_by: Option<HashKey>,
    pub affinity: Option<CookieAffinity>,
    /// `None`: no limit.
    pub body_limit: Option<u64>,
    pub allow: Option<Vec<IpNet>>,
    /// The route's redirect (`permanent-redirect`, else `temporal-redirect`) when its status is
    /// a permanent one (301, 308); else in `temporal_redirect`. At most one of them is set.
    pub permanent_redirect: Option<(String, u16)>,
    pub temporal_redirect: Option<(String, u16)>,
    pub app_root: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub next_upstream_tries: u32,
    /// `proxy-request-buffering` (default `on`): read the request body (up to
    /// `--request-buffer-size`) before an upstream connection is taken; `off` streams it.
    pub request_buffering: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options::compile(
            &Policy::default(),
            &Filters::default(),
            BackendProtocol::Http,
        )
    }
}

/// A header name the model validated, in `http`'s type.
pub(super) fn header_name(name: &routes::HeaderName) -> Option<http::HeaderName> {
    // The model parsed it with `http::HeaderName` and keeps its lower-case form: this succeeds.
    http::HeaderName::from_bytes(name.as_str().as_bytes()).ok()
}

fn hash_key(key: &routes::HashKey) -> Option<HashKey> {
    Some(match key {
        routes::HashKey::RequestUri => HashKey::RequestUri,
        routes::HashKey::Uri => HashKey::Uri,
        routes::HashKey::RemoteAddr => HashKey::RemoteAddr,
        routes::HashKey::Host => HashKey::Host,
        routes::HashKey::Header(h) => HashKey::Header(header_name(h)?),
        routes::HashKey::Cookie(c) => HashKey::Cookie(c.clone()),
        routes::HashKey::Arg(a) => HashKey::Arg(a.clone()),
    })
}

impl CanaryRules {
    pub(super) fn compile(rules: &routes::CanaryRules) -> Self {
        Self {
            weight: rules.weight,
            weight_total: rules.weight_total,
            by_header: rules.by_header.as_ref().and_then(header_name),
            by_header_value: rules.by_header_value.clone(),
            by_cookie: rules.by_cookie.clone(),
        }
    }
}

impl Options {
    /// The options of a route with this policy, these filters and this backend protocol.
    pub fn compile(policy: &Policy, filters: &Filters, protocol: BackendProtocol) -> Self {
        let redirect = filters
            .redirect
            .as_ref()
            .map(|r| (r.location.clone(), r.status));
        let permanent = redirect
            .as_ref()
            .is_some_and(|(_, status)| matches!(status, 301 | 308));
        let (permanent_redirect, temporal_redirect) = if permanent {
            (redirect, None)
        } else {
            (None, redirect)
        };
        Self {
            rewrite_target: filters.rewrite.as_ref().map(|r| r.target.clone()),
            rewrite_expansion: filters.rewrite.as_ref().map(routes::UrlRewrite::expansion),
            ssl_redirect: filters.https_redirect != HttpsRedirect::Never,
            force_ssl_redirect: filters.https_redirect == HttpsRedirect::Always,
            backend_protocol: protocol,
            balance: policy.balance,
            hash_by: policy.hash_by.as_ref().and_then(hash_key),
            affinity: policy.affinity.clone(),
            body_limit: policy.body_limit,
            allow: policy.allow.clone(),
            permanent_redirect,
            temporal_redirect,
            app_root: filters.app_root.clone(),
            connect_timeout: policy.timeouts.connect,
            read_timeout: policy.timeouts.read,
            send_timeout: policy.timeouts.send,
            next_upstream_tries: policy.tries,
            request_buffering: policy.request_buffering,
        }
    }
}

/// Compiled options by the model's shared policy and filters (by identity: the model shares
/// one of each among Ingresses annotated alike), so that their routes share one `Options`.
#[derive(Default)]
pub(super) struct OptionsCache {
    by_model: HashMap<(ByPtr<Policy>, ByPtr<Filters>, BackendProtocol), Arc<Options>>,
}

impl OptionsCache {
    pub fn get(
        &mut self,
        policy: &Arc<Policy>,
        filters: &Arc<Filters>,
        protocol: BackendProtocol,
    ) -> Arc<Options> {
        let key = (ByPtr(policy.clone()), ByPtr(filters.clone()), protocol);
        self.by_model
            .entry(key)
            .or_insert_with(|| Arc::new(Options::compile(policy, filters, protocol)))
            .clone()
    }

    /// Forget the options no route uses any more.
    pub fn prune(&mut self) {
        self.by_model.retain(|_, o| Arc::strong_count(o) > 1);
    }
}
