//! Session affinity (`sessionAffinity: ClientIP`): which backend a client IP was last sent to.
//!
//! The table lives beside the snapshot, keyed by stable identity (Service, port, client IP), so
//! it survives snapshot rebuilds and listener restarts. An entry expires after the Service's
//! `timeoutSeconds` without a new connection from that client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use portico_model::Snapshot;
use tokio::time::Instant;

use crate::frontend::ServiceKey;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    service: ServiceKey,
    port: String,
    client: IpAddr,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    backend: SocketAddr,
    last: Instant,
}

/// Client IP -> backend, per Service port. Shared by every frontend of the engine (a ClusterIP
/// and a NodePort of the same Service port share a client's affinity, as in kube-proxy).
#[derive(Debug, Default)]
pub struct AffinityTable {
    // Held only for a map lookup or insert, never across an await.
    entries: Mutex<HashMap<Key, Entry>>,
}

impl AffinityTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts and
        // removes), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The backend remembered for `client`, if it was used less than `timeout` ago and `valid`
    /// accepts it; a hit refreshes the entry. Expired or invalid entries are removed.
    pub fn lookup(
        &self,
        service: &ServiceKey,
        port: &str,
        client: IpAddr,
        timeout: Duration,
        now: Instant,
        valid: impl FnOnce(SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let key = Key {
            service: service.clone(),
            port: port.to_owned(),
            client,
        };
        let mut entries = self.lock();
        let entry = entries.get_mut(&key)?;
        if now.saturating_duration_since(entry.last) < timeout && valid(entry.backend) {
            entry.last = now;
            return Some(entry.backend);
        }
        entries.remove(&key);
        None
    }

    /// Remember that `client` was sent to `backend` at `now`.
    pub fn remember(
        &self,
        service: &ServiceKey,
        port: &str,
        client: IpAddr,
        backend: SocketAddr,
        now: Instant,
    ) {
        let key = Key {
            service: service.clone(),
            port: port.to_owned(),
            client,
        };
        self.lock().insert(key, Entry { backend, last: now });
    }

    /// Forget expired entries and those of Services that no longer ask for affinity (or no longer
    /// exist). Returns how many were removed.
    pub fn sweep(&self, snapshot: &Snapshot, now: Instant) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|k, e| {
            let timeout = snapshot
                .service(&k.service)
                .and_then(|s| s.session_affinity_timeout);
            timeout.is_some_and(|t| {
                now.saturating_duration_since(e.last) < Duration::from_secs(u64::from(t))
            })
        });
        before - entries.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
