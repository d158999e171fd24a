//! Per-listener counters, read live by the admin views and the metrics collectors. Bounded: one
//! set per frontend.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

/// The counters of one listener.
#[derive(Debug, Default)]
pub struct Counters {
    /// TCP connections accepted, or UDP flows opened.
    pub accepted: AtomicU64,
    /// TCP connections or UDP flows open now.
    pub active: AtomicU64,
    /// New connections or flows dropped because no upstream was usable.
    pub no_backend: AtomicU64,
    /// TCP connect attempts to an upstream that failed or timed out, and UDP upstream sockets
    /// that could not be opened.
    pub connect_failures: AtomicU64,
    /// UDP datagrams dropped (flow table full, socket buffer full).
    pub dropped_datagrams: AtomicU64,
}

/// The values of [`Counters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterValues {
    pub accepted: u64,
    pub active: u64,
    pub no_backend: u64,
    pub connect_failures: u64,
    pub dropped_datagrams: u64,
}

impl Counters {
    pub fn values(&self) -> CounterValues {
        CounterValues {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            no_backend: self.no_backend.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            dropped_datagrams: self.dropped_datagrams.load(Relaxed),
        }
    }
}

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

/// Counts a connection or flow as accepted and open, and keeps `active` right however its
/// task ends.
pub(crate) struct ActiveGuard(Arc<Counters>);

impl ActiveGuard {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        counters.accepted.fetch_add(1, Relaxed);
        counters.active.fetch_add(1, Relaxed);
        Self(counters)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}
