//! One `ArcSwap` per snapshot: writers publish whole values, readers take one `Arc` and keep it for
//! a whole request or connection. Changes are also announced on a watch channel so that
//! reconcilers (listeners, kernel datapaths) can react without polling.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

pub struct Publisher<T> {
    current: ArcSwap<T>,
    /// Number of publishes so far; 0 until the first one.
    version: watch::Sender<u64>,
}

impl<T> Publisher<T> {
    /// A publisher holding `initial`, not yet ready.
    pub fn new(initial: T) -> Arc<Self> {
        let (version, _) = watch::channel(0);
        Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
            version,
        })
    }

    /// The current value, for a whole request or connection. Lock-free.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A cheaper borrow for a short look (must not be held across `.await`).
    pub fn peek(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// Replace the value atomically and wake every subscriber.
    pub fn publish(&self, value: T) {
        self.publish_arc(Arc::new(value));
    }

    pub fn publish_arc(&self, value: Arc<T>) {
        self.current.store(value);
        self.version.send_modify(|v| *v += 1);
    }

    /// How many times a value was published.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Whether anything was published yet (readiness).
    pub fn is_ready(&self) -> bool {
        self.version() > 0
    }

    /// A receiver that changes whenever a new value is published. `changed().await` then
    /// `current()` gives the newest value; intermediate values may be skipped (that is fine for
    /// reconcilers, which converge on the newest).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Wait until the first value is published.
    pub async fn ready(&self) {
        let mut rx = self.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we are borrowed.
        let _ = rx.wait_for(|v| *v > 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_swaps_whole_values_and_notifies() {
        let p = Publisher::new(1u32);
        assert!(!p.is_ready());
        let mut rx = p.subscribe();
        let held = p.current();
        p.publish(2);
        rx.changed().await.expect("sender alive");
        assert_eq!(*p.current(), 2);
        assert_eq!(*held, 1, "a reader keeps the value it took");
        assert!(p.is_ready());
        p.ready().await;
    }
}
