//! What a connection knows about itself, and who one request on it is from.

use std::net::{IpAddr, SocketAddr};

use crate::forwarded::TrustedProxies;

/// What a connection knows about itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// The peer is in `--trust-forwarded-from`: its forwarding headers are believed.
    pub trusted_peer: bool,
    /// Who the request is from: the peer's address, or for a trusted peer the client its
    /// `X-Forwarded-For` names (set per request by [`ConnInfo::for_request`]). Allow-lists,
    /// `X-Real-IP`, `$remote_addr` hashing and the access log use it.
    pub client: IpAddr,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool, trusted: &TrustedProxies) -> Self {
        Self {
            peer,
            local,
            tls,
            trusted_peer: trusted.trusts(peer.ip()),
            client: peer.ip(),
        }
    }

    /// This connection's facts for one request whose `X-Forwarded-For` values are `xff`.
    pub fn for_request<'v>(
        self,
        trusted: &TrustedProxies,
        xff: impl DoubleEndedIterator<Item = &'v [u8]>,
    ) -> Self {
        if !self.trusted_peer {
            return self;
        }
        Self {
            client: trusted.client(self.peer.ip(), xff),
            ..self
        }
    }
}
