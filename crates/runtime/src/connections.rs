//! The process-wide limit of open client connections (`--max-connections`), shared by every
//! accept loop (Ingress HTTP/HTTPS on every listener thread, LoadBalancer TCP listeners).
//!
//! An accept loop takes a slot for every connection it accepts before serving it. At the limit
//! it waits for a slot with that one connection in hand and accepts nothing more, so new
//! connections wait in the kernel's listen backlog until one closes (as with nginx's
//! `worker_connections`), instead of the process running out of descriptors mid-request. Slots
//! are not taken ahead of `accept`: an idle loop (one per listener and thread) would hold one. Each time a loop finds the limit reached, `portico_connections_limit_reached_total`
//! goes up; a warning is logged at most once per 10 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tracing::warn;

/// Descriptors kept out of the default limit for listeners, the admin API, the API watch,
/// files, and idle upstream connections.
pub const RESERVED_DESCRIPTORS: u64 = 1024;

const WARN_EVERY: Duration = Duration::from_secs(10);

/// The default `--max-connections` for an open-file limit (`None`: unlimited): every client
/// connection needs a second descriptor for its upstream, and [`RESERVED_DESCRIPTORS`] are kept
/// for the rest. At least 64.
pub fn default_max_connections(nofile: Option<u64>) -> usize {
    let nofile = nofile.unwrap_or(1 << 20);
    let n = nofile.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(n).unwrap_or(usize::MAX).max(64)
}

/// Counts open client connections against a maximum.
pub struct ConnectionLimit {
    max: usize,
    permits: Arc<Semaphore>,
    reached: Counter,
    limit: Gauge,
    epoch: Instant,
    /// When the last warning was logged, in ms since `epoch` plus one (0: never).
    last_warn: AtomicU64,
}

impl std::fmt::Debug for ConnectionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimit")
            .field("max", &self.max)
            .field("open", &self.open())
            .finish()
    }
}

/// One open client connection's slot; freed on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ConnectionLimit {
    /// A limit of `max` open connections (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        let limit = Gauge::default();
        limit.set(i64::try_from(max).unwrap_or(i64::MAX));
        Arc::new(Self {
            max,
            permits: Arc::new(Semaphore::new(max)),
            reached: Counter::default(),
            limit,
            epoch: Instant::now(),
            last_warn: AtomicU64::new(0),
        })
    }

    /// Register `portico_connections_limit` and `portico_connections_limit_reached_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_limit",
            "Open client connections allowed (--max-connections)",
            self.limit.clone(),
        );
        registry.register(
            "connections_limit_reached",
            "Times an accept loop found --max-connections reached and stopped accepting",
            self.reached.clone(),
        );
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// Times the limit was found reached.
    pub fn reached(&self) -> u64 {
        self.reached.get()
    }

    /// A slot for the next connection to accept; at the limit, wait until one is freed.
    pub async fn acquire(&self) -> ConnectionSlot {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => return ConnectionSlot { _permit: Some(p) },
            Err(TryAcquireError::NoPermits) => {
                self.reached.inc();
                self.warn_at_most_every_10s();
            }
            // The semaphore is never closed; should it be, nothing is limited any more.
            Err(TryAcquireError::Closed) => return ConnectionSlot { _permit: None },
        }
        ConnectionSlot {
            _permit: self.permits.clone().acquire_owned().await.ok(),
        }
    }

    fn warn_at_most_every_10s(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_warn.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                max = self.max,
                reached = self.reached.get(),
                "--max-connections reached: new connections wait in the listen backlog"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_a_descriptor_per_upstream_and_a_reserve() {
        assert_eq!(default_max_connections(Some(1_048_576)), 523_776);
        assert_eq!(default_max_connections(Some(65_536)), 32_256);
        assert_eq!(default_max_connections(Some(1024)), 64, "never below 64");
        assert_eq!(default_max_connections(None), 523_776);
    }

    #[tokio::test]
    async fn at_the_limit_the_next_acquire_waits_until_a_slot_is_freed() {
        let limit = ConnectionLimit::new(2);
        let a = limit.acquire().await;
        let _b = limit.acquire().await;
        assert_eq!((limit.open(), limit.reached()), (2, 0));

        let waiting = tokio::time::timeout(Duration::from_millis(100), limit.acquire()).await;
        assert!(waiting.is_err(), "no third slot while two are open");
        assert_eq!(limit.reached(), 1);

        let l = limit.clone();
        let third = tokio::spawn(async move { l.acquire().await });
        tokio::task::yield_now().await;
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("a freed slot is taken")
            .expect("joined");
        assert_eq!((limit.open(), limit.reached()), (2, 2));
    }

    #[test]
    fn the_metrics_show_the_limit_and_the_times_it_was_reached() {
        let limit = ConnectionLimit::new(7);
        let mut reg = Registry::with_prefix("portico");
        limit.register(&mut reg);
        limit.reached.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(out.contains("portico_connections_limit 7"), "{out}");
        assert!(
            out.contains("portico_connections_limit_reached_total 1"),
            "{out}"
        );
    }
}
