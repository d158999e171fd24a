//! How a watch retries after an error: [`WatchBackoff`].
//!
//! kube-runtime's default policy (0.8 s doubling to 30 s, jitter up to twice that, reset only
//! after an event or two idle minutes) grows during an API server outage, so the first retry
//! after the server is back could come most of a minute later, and new objects waited that long
//! while the ones already known kept serving. This policy caps the wait at [`MAX`], so a watch is
//! back within [`MAX`] of the API server, however long the outage was.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use kube::runtime::utils::Backoff;
use tokio::time::Instant;

/// The first wait after an error.
pub const INITIAL: Duration = Duration::from_millis(800);
/// The longest wait between two attempts, jitter included.
pub const MAX: Duration = Duration::from_secs(5);
/// A failure this long after the previous one starts over at [`INITIAL`]: the watch worked in
/// between (the stream also starts over on every event it yields).
pub const RESET_AFTER: Duration = Duration::from_secs(15);

/// Exponential backoff for a watch: [`INITIAL`], doubling, at most [`MAX`]; each wait is
/// jittered down by up to a fifth so that many gateways do not retry in step.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
    last: Option<Instant>,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: INITIAL,
            last: None,
        }
    }
}

impl WatchBackoff {
    /// The wait before the attempt that follows a failure at `now`, without jitter.
    fn step(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) > RESET_AFTER)
        {
            self.next = INITIAL;
        }
        self.last = Some(now);
        let d = self.next;
        self.next = (self.next * 2).min(MAX);
        d
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.step(Instant::now());
        // 0..=20% less; a std random hasher is random enough for spreading retries.
        let permille = RandomState::new().hash_one(0u8) % 201;
        Some(d - d * permille as u32 / 1000)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_800ms_and_never_exceed_5s() {
        let mut b = WatchBackoff::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let d = b.step(now);
            waits.push(d.as_millis());
            now += d;
        }
        assert_eq!(waits, [800, 1600, 3200, 5000, 5000, 5000, 5000, 5000]);
        let mut b = WatchBackoff::default();
        for _ in 0..100 {
            let d = b.next().expect("never gives up");
            assert!(d <= MAX, "{d:?}");
            assert!(d >= INITIAL * 4 / 5, "{d:?}");
        }
    }

    #[test]
    fn a_long_outage_still_retries_every_5s_at_most() {
        // 60 s of refused connections (each attempt failing after 100 ms): the waits stay at the
        // cap, they neither keep growing nor start over.
        let mut b = WatchBackoff::default();
        let start = Instant::now();
        let mut now = start;
        let mut waits = Vec::new();
        while now < start + Duration::from_secs(60) {
            let d = b.step(now);
            waits.push(d);
            now += d + Duration::from_millis(100);
        }
        assert!(waits.iter().all(|d| *d <= MAX), "{waits:?}");
        assert!(waits[4..].iter().all(|d| *d == MAX), "{waits:?}");
    }

    #[test]
    fn an_event_or_a_quiet_spell_starts_over() {
        let mut b = WatchBackoff::default();
        let now = Instant::now();
        for _ in 0..6 {
            b.step(now);
        }
        b.reset();
        assert_eq!(b.step(now), INITIAL, "reset by an event");
        for _ in 0..6 {
            b.step(now);
        }
        let later = now + RESET_AFTER + Duration::from_secs(1);
        assert_eq!(b.step(later), INITIAL, "no failure for a while");
        assert_eq!(b.step(later), INITIAL * 2);
    }
}
