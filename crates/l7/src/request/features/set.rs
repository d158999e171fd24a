//! The set type itself, apart from [`Features::of`](super::Features::of), so that the compiled
//! route can carry one without the table importing the code that reads the route.

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

    /// Whether the two sets have a feature in common.
    pub const fn intersects(self, other: Features) -> bool {
        self.0 & other.0 != 0
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
}
