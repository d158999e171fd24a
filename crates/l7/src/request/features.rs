//! What a compiled route uses, as a small set, so that an engine serves a route only when it
//! implements all of it. Computed once per route when the table is built
//! ([`Features::of`]); an engine declares its own set (the fast engine's is
//! [`crate::engine::fast::IMPLEMENTS`]). A new route option is a compile error in
//! [`Features::of`] until it is given a feature (or named as one every engine has), so it can
//! never be served by an engine that ignores it.

use crate::annotations::{BackendProtocol, Balance, Options};
use crate::table::Route;
use crate::upstream::Target;

pub use set::Features;

mod set;

impl Route {
    /// The route with its [`Features`] computed: once, when the table is compiled.
    pub(crate) fn compiled(mut self) -> Self {
        self.features = Features::of(&self);
        self
    }
}

impl Features {
    /// The features `route` uses.
    pub fn of(route: &Route) -> Features {
        // Every option, by name: a new one does not compile until it is placed here.
        let Options {
            rewrite_target,
            rewrite_expansion: _, // what `rewrite_target` expands to: the same feature
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
