//! What a compiled route uses, as a small set, so that an engine serves a route only when it
//! implements all of it. Computed once per route when the table is built
//! ([`Features::of`]); an engine declares its own set (the fast engine's is
//! [`crate::engine::fast::IMPLEMENTS`]). A new route option is a compile error in
//! [`Features::of`] until it is given a feature (or named as one every engine has), so it can
//! never be served by an engine that ignores it.

use crate::annotations::{BackendProtocol, Balance, Options};
use crate::table::Route;
use crate::upstream::Target;

/// A set of route features (one bit each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features(u32);

impl Features {
    pub const NONE: Features = Features(0);
    /// `rewrite-target`: the upstream path is rewritten.
    pub const REWRITE: Features = Features(1);
    /// `upstream-hash-by`: consistent hashing on a request key.
    pub const HASH_BY: Features = Features(1 << 1);
    /// `affinity: cookie`: a sticky endpoint and its `Set-Cookie`.
    pub const AFFINITY: Features = Features(1 << 2);
    /// `proxy-body-size`: a body limit (413).
    pub const BODY_LIMIT: Features = Features(1 << 3);
    /// `whitelist-source-range` / `allowlist-source-range` (403).
    pub const ALLOW_LIST: Features = Features(1 << 4);
    /// `permanent-redirect`, `temporal-redirect`, `app-root`.
    pub const REDIRECT: Features = Features(1 << 5);
    /// `ssl-redirect` on a TLS host, or `force-ssl-redirect`: plain HTTP is redirected to
    /// HTTPS (nothing to do on a TLS connection, see [`Features::on`]).
    pub const HTTPS_REDIRECT: Features = Features(1 << 6);
    /// `canary-*`: a second backend chosen per request.
    pub const CANARY: Features = Features(1 << 7);
    /// `backend-protocol: HTTPS` or `GRPCS`: TLS to the upstream.
    pub const UPSTREAM_TLS: Features = Features(1 << 8);
    /// `backend-protocol: GRPC` or `GRPCS`: HTTP/2 to the upstream.
    pub const UPSTREAM_H2: Features = Features(1 << 9);
    /// The backend is not a set of endpoints: an ExternalName Service, or a Service that is
    /// missing or has no endpoints (answered locally).
    pub const NOT_ENDPOINTS: Features = Features(1 << 10);
    /// `load-balance: ewma`.
    pub const EWMA: Features = Features(1 << 11);
    /// `proxy-request-buffering: off`: the body streams as it arrives.
    pub const STREAMED_BODY: Features = Features(1 << 12);

    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    pub const fn without(self, other: Features) -> Features {
        Features(self.0 & !other.0)
    }

    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// What a request on a connection (`tls` or not) needs of an engine: HTTPS redirection
    /// does nothing on a TLS connection.
    #[inline]
    pub const fn on(self, tls: bool) -> Features {
        if tls {
            self.without(Features::HTTPS_REDIRECT)
        } else {
            self
        }
    }

    /// The features `route` uses.
    pub fn of(route: &Route) -> Features {
        // Every option, by name: a new one does not compile until it is placed here.
        let Options {
            use_regex: _, // routing only: every engine routes through the table
            rewrite_target,
            ssl_redirect,
            force_ssl_redirect,
            backend_protocol,
            balance,
            hash_by,
            affinity,
            body_limit,
            allow,
            permanent_redirect,
            temporal_redirect,
            app_root,
            canary: _,          // the route's `canary` below is what is served
            connect_timeout: _, // timeouts and retries are the upstream phase's, which
            read_timeout: _,    // every engine runs
            send_timeout: _,
            next_upstream_tries: _,
            request_buffering,
        } = &*route.options;
        let mut f = Features::NONE;
        let mut add = |on: bool, feature: Features| {
            if on {
                f = f.union(feature);
            }
        };
        add(rewrite_target.is_some(), Features::REWRITE);
        add(hash_by.is_some(), Features::HASH_BY);
        add(affinity.is_some(), Features::AFFINITY);
        add(body_limit.is_some(), Features::BODY_LIMIT);
        add(allow.is_some(), Features::ALLOW_LIST);
        add(
            permanent_redirect.is_some() || temporal_redirect.is_some() || app_root.is_some(),
            Features::REDIRECT,
        );
        add(
            (route.tls_host && *ssl_redirect) || *force_ssl_redirect,
            Features::HTTPS_REDIRECT,
        );
        add(route.canary.is_some(), Features::CANARY);
        add(
            matches!(
                backend_protocol,
                BackendProtocol::Https | BackendProtocol::Grpcs
            ),
            Features::UPSTREAM_TLS,
        );
        add(
            matches!(
                backend_protocol,
                BackendProtocol::Grpc | BackendProtocol::Grpcs
            ),
            Features::UPSTREAM_H2,
        );
        add(
            !matches!(&route.upstream.target, Target::Endpoints(e) if !e.is_empty()),
            Features::NOT_ENDPOINTS,
        );
        add(*balance == Balance::Ewma, Features::EWMA);
        add(!request_buffering, Features::STREAMED_BODY);
        f
    }
}

#[cfg(test)]
mod tests;
