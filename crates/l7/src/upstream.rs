//! Upstreams: the endpoints behind one Ingress backend, and how one is chosen. The set is built
//! with the route table and immutable; the fast-changing state of each endpoint (latency EWMA,
//! in-flight count, passive-health ejection) lives in [`EndpointRegistry`], keyed by address, so it
//! survives rebuilds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use pingora_ketama::{Bucket, Continuum};
use portico_model::ObjectKey;
use sha2::{Digest, Sha256};

use portico_model::routes::Balance;

/// Consecutive failures (connect, or a connection that broke before any response byte) that
/// eject an endpoint.
pub const EJECT_AFTER: u32 = 3;
/// How long an ejected endpoint is skipped before one request probes it.
pub const EJECT_FOR: Duration = Duration::from_secs(10);
/// How long the request probing an endpoint whose ejection ran out holds the probe; should it
/// vanish without reporting (its client went away), another request probes after this.
pub const PROBE_LEASE: Duration = Duration::from_secs(10);

/// Fast-changing state of one endpoint address.
#[derive(Debug, Default)]
pub struct EndpointState {
    /// Response-time EWMA in microseconds (0 = no sample yet).
    pub ewma_us: AtomicU64,
    pub inflight: AtomicU32,
    /// Consecutive failures since the last success.
    pub connect_failures: AtomicU32,
    /// 0: admitted. Otherwise ejected: until this millisecond on the registry's clock the
    /// endpoint is skipped; once it has passed, the first request to claim the probe
    /// ([`EndpointState::claim_probe`]) moves it forward by [`PROBE_LEASE`] and tries the
    /// endpoint alone. Its success readmits the endpoint, its failure ejects it again.
    pub ejected_until_ms: AtomicU64,
}

impl EndpointState {
    pub fn observe_latency(&self, d: Duration) {
        let sample = d.as_micros().min(u64::MAX as u128) as u64;
        let old = self.ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.ewma_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Not ejected: any request may use it.
    pub fn admitted(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) == 0
    }

    /// Claim the probe of an endpoint whose ejection has run out: true for exactly one caller
    /// per lease; the others keep avoiding the endpoint until the probe succeeds.
    pub fn claim_probe(&self, now_ms: u64) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0
            && until <= now_ms
            && self
                .ejected_until_ms
                .compare_exchange(
                    until,
                    now_ms + PROBE_LEASE.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// One process-wide clock in milliseconds, for ejection deadlines.
#[derive(Debug)]
pub struct Clock(tokio::time::Instant);

impl Default for Clock {
    fn default() -> Self {
        Self(tokio::time::Instant::now())
    }
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// [`Clock::now_ms`] for an instant already read (one clock read less on the request path).
    pub fn ms_at(&self, t: tokio::time::Instant) -> u64 {
        t.saturating_duration_since(self.0).as_millis() as u64
    }
}

/// Endpoint states by address. Locked only while a table is built.
#[derive(Debug, Default)]
pub struct EndpointRegistry {
    states: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
    pub clock: Clock,
}

impl EndpointRegistry {
    pub fn state(&self, addr: SocketAddr) -> Arc<EndpointState> {
        let mut m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(addr).or_default().clone()
    }

    /// Forget endpoints no table refers to any more.
    pub fn prune(&self) {
        let mut m = self.states.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, s| Arc::strong_count(s) > 1);
    }

    /// Record a failed connect, or a connection (new or pooled) that broke before any response
    /// byte arrived. Returns true only for the failure that ejected the endpoint (so the
    /// ejection is logged once); a failure while ejected (a failed probe, or a request already
    /// under way) keeps it ejected for another [`EJECT_FOR`].
    pub fn connect_failed(&self, s: &EndpointState) -> bool {
        self.failed_at(s, self.clock.now_ms())
    }

    fn failed_at(&self, s: &EndpointState, now_ms: u64) -> bool {
        let until = now_ms + EJECT_FOR.as_millis() as u64;
        if !s.admitted() {
            s.ejected_until_ms.store(until, Ordering::Relaxed);
            return false;
        }
        let n = s.connect_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < EJECT_AFTER {
            return false;
        }
        s.connect_failures.store(0, Ordering::Relaxed);
        // Of failures racing on several threads, one ejects.
        s.ejected_until_ms
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Record a success (a connect, or a response head): the failure count restarts and an
    /// ejected endpoint is readmitted. Returns true when this readmitted it.
    pub fn connected(&self, s: &EndpointState) -> bool {
        if s.connect_failures.load(Ordering::Relaxed) != 0 {
            s.connect_failures.store(0, Ordering::Relaxed);
        }
        !s.admitted() && s.ejected_until_ms.swap(0, Ordering::AcqRel) != 0
    }
}

/// One endpoint of an upstream.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub authority: Authority,
    /// The affinity cookie value naming this endpoint: the same on every replica and reload.
    pub cookie: Box<str>,
    pub state: Arc<EndpointState>,
}

/// The affinity cookie value of an endpoint of a Service: a hash of both, no per-process key.
pub fn cookie_value(service: &ObjectKey, addr: SocketAddr) -> String {
    let mut h = Sha256::new();
    h.update(service.namespace.as_bytes());
    h.update(b"/");
    h.update(service.name.as_bytes());
    h.update(b"|");
    h.update(addr.to_string().as_bytes());
    let d = h.finalize();
    d[..10].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
pub enum Target {
    Endpoints(Box<[Endpoint]>),
    /// An ExternalName Service: connect to this name.
    External(Authority),
    /// The Service does not exist (503).
    NoService,
    /// The Service exists but has no usable endpoint (503).
    NoEndpoints,
}

/// The endpoints behind one backend (Service and port) of one route.
pub struct Upstream {
    pub service: ObjectKey,
    /// `namespace/name`, for metrics and logs.
    pub label: Arc<str>,
    pub target: Target,
    pub balance: Balance,
    continuum: Option<Continuum>,
    rr: AtomicUsize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("service", &self.service)
            .field("target", &self.target)
            .finish()
    }
}

impl Upstream {
    pub fn new(service: ObjectKey, target: Target, balance: Balance, hashed: bool) -> Self {
        let continuum = match (&target, hashed) {
            (Target::Endpoints(eps), true) => {
                let buckets: Vec<Bucket> = eps.iter().map(|e| Bucket::new(e.addr, 1)).collect();
                Some(Continuum::new(&buckets))
            }
            _ => None,
        };
        let label = service.to_string().into();
        Self {
            service,
            label,
            target,
            balance,
            continuum,
            rr: AtomicUsize::new(0),
        }
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        match &self.target {
            Target::Endpoints(e) => e,
            _ => &[],
        }
    }

    fn usable(&self, e: &Endpoint, exclude: &[SocketAddr]) -> bool {
        e.state.admitted() && !exclude.contains(&e.addr)
    }

    /// Choose an endpoint, skipping ejected ones and `exclude` (already tried) when possible.
    /// An endpoint whose ejection has run out goes to the first request that claims its probe.
    /// `hash` is the request's hash key when `upstream-hash-by` applies.
    pub fn pick(
        &self,
        now_ms: u64,
        exclude: &[SocketAddr],
        hash: Option<&[u8]>,
    ) -> Option<&Endpoint> {
        let eps = self.endpoints();
        if eps.is_empty() {
            return None;
        }
        let probe = |e: &Endpoint| !exclude.contains(&e.addr) && e.state.claim_probe(now_ms);
        if let (Some(c), Some(key)) = (&self.continuum, hash) {
            // Walk the ring from the key's point until a usable endpoint.
            for addr in c.node_iter(key).take(eps.len() * 160) {
                if let Some(e) = eps.iter().find(|e| e.addr == *addr)
                    && (self.usable(e, exclude) || probe(e))
                {
                    return Some(e);
                }
            }
        } else if let Some(e) = eps.iter().find(|e| !e.state.admitted() && probe(e)) {
            return Some(e);
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        match self.balance {
            Balance::RoundRobin => (0..eps.len())
                .map(|i| &eps[(start + i) % eps.len()])
                .find(|e| self.usable(e, exclude)),
            Balance::Ewma => {
                let score = |e: &Endpoint| {
                    let ewma = e.state.ewma_us.load(Ordering::Relaxed).max(1);
                    ewma.saturating_mul(u64::from(e.state.inflight.load(Ordering::Relaxed)) + 1)
                };
                (0..eps.len())
                    .map(|i| &eps[(start + i) % eps.len()])
                    .filter(|e| self.usable(e, exclude))
                    .min_by_key(|e| score(e))
            }
        }
        // Every endpoint ejected or tried: fall back to any not yet tried (better than a 503).
        .or_else(|| {
            (0..eps.len())
                .map(|i| &eps[(start + i) % eps.len()])
                .find(|e| !exclude.contains(&e.addr))
        })
    }

    /// The endpoint an affinity cookie names, when it is still there and not ejected.
    pub fn by_cookie(&self, value: &str) -> Option<&Endpoint> {
        self.endpoints()
            .iter()
            .find(|e| &*e.cookie == value && self.usable(e, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(
        addrs: &[&str],
        balance: Balance,
        hashed: bool,
        reg: &EndpointRegistry,
    ) -> Upstream {
        let svc = ObjectKey::new("default", "web");
        let eps = addrs
            .iter()
            .map(|a| {
                let addr: SocketAddr = a.parse().expect("literal");
                Endpoint {
                    addr,
                    authority: a.parse().expect("literal"),
                    cookie: cookie_value(&svc, addr).into(),
                    state: reg.state(addr),
                }
            })
            .collect();
        Upstream::new(svc, Target::Endpoints(eps), balance, hashed)
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let reg = EndpointRegistry::default();
        let u = upstream(
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
            Balance::RoundRobin,
            false,
            &reg,
        );
        let picks: Vec<_> = (0..6)
            .map(|_| u.pick(0, &[], None).expect("some").addr.to_string())
            .collect();
        assert_eq!(picks[..3], picks[3..]);
        let mut first = picks[..3].to_vec();
        first.sort();
        assert_eq!(first, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    }

    #[test]
    fn an_endpoint_failing_to_connect_three_times_is_skipped_for_a_while() {
        let reg = EndpointRegistry::default();
        let u = upstream(
            &["10.0.0.1:80", "10.0.0.2:80"],
            Balance::RoundRobin,
            false,
            &reg,
        );
        let bad = &u.endpoints()[0];
        assert!(!reg.connect_failed(&bad.state));
        assert!(!reg.connect_failed(&bad.state));
        assert!(reg.connect_failed(&bad.state));
        for _ in 0..4 {
            assert_eq!(
                u.pick(0, &[], None).expect("some").addr,
                u.endpoints()[1].addr
            );
        }
        let later = EJECT_FOR.as_millis() as u64 + 1;
        let picks: Vec<_> = (0..2)
            .map(|_| u.pick(later, &[], None).expect("some").addr)
            .collect();
        assert!(picks.contains(&bad.addr), "back after the ejection window");
    }

    #[test]
    fn when_the_ejection_runs_out_one_request_probes_and_the_others_keep_away() {
        let reg = EndpointRegistry::default();
        let u = upstream(
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
            Balance::RoundRobin,
            false,
            &reg,
        );
        let bad = &u.endpoints()[0];
        let eject_ms = EJECT_FOR.as_millis() as u64;
        for _ in 1..EJECT_AFTER {
            assert!(!reg.failed_at(&bad.state, 0));
        }
        assert!(reg.failed_at(&bad.state, 0), "the third failure ejects");
        // Requests already under way fail too: the ejection is not reported again.
        assert!(!reg.failed_at(&bad.state, 1));
        assert!(!reg.failed_at(&bad.state, 1));
        let later = eject_ms + 2;
        assert_eq!(
            u.pick(later, &[], None).expect("some").addr,
            bad.addr,
            "the first request after the ejection probes"
        );
        for _ in 0..10 {
            assert_ne!(
                u.pick(later, &[], None).expect("some").addr,
                bad.addr,
                "the others keep away while the probe runs"
            );
        }
        // The probe fails: ejected again, without a second report.
        assert!(!reg.failed_at(&bad.state, later));
        for _ in 0..10 {
            assert_ne!(u.pick(later + 1, &[], None).expect("some").addr, bad.addr);
        }
        // The next probe succeeds: readmitted, in turn again.
        let again = later + eject_ms;
        assert_eq!(u.pick(again, &[], None).expect("some").addr, bad.addr);
        assert!(reg.connected(&bad.state));
        assert!(bad.state.admitted());
        let picks: Vec<_> = (0..3)
            .map(|_| u.pick(again, &[], None).expect("some").addr)
            .collect();
        assert!(picks.contains(&bad.addr));
    }

    #[test]
    fn a_probe_whose_request_vanished_is_taken_over_after_its_lease() {
        let reg = EndpointRegistry::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80"], Balance::Ewma, false, &reg);
        let bad = &u.endpoints()[0];
        for _ in 0..EJECT_AFTER {
            reg.failed_at(&bad.state, 0);
        }
        let expiry = EJECT_FOR.as_millis() as u64;
        assert!(bad.state.claim_probe(expiry));
        assert!(!bad.state.claim_probe(expiry + 1), "one probe at a time");
        let lease_over = expiry + PROBE_LEASE.as_millis() as u64;
        assert_eq!(u.pick(lease_over, &[], None).expect("some").addr, bad.addr);
    }

    #[test]
    fn retries_exclude_what_was_tried() {
        let reg = EndpointRegistry::default();
        let u = upstream(
            &["10.0.0.1:80", "10.0.0.2:80"],
            Balance::RoundRobin,
            false,
            &reg,
        );
        let first = u.pick(0, &[], None).expect("some").addr;
        let second = u.pick(0, &[first], None).expect("some").addr;
        assert_ne!(first, second);
        assert!(u.pick(0, &[first, second], None).is_none());
    }

    #[test]
    fn hashing_is_stable_and_spreads() {
        let reg = EndpointRegistry::default();
        let u = upstream(
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
            Balance::RoundRobin,
            true,
            &reg,
        );
        let mut seen = std::collections::BTreeSet::new();
        for user in 0..50 {
            let key = format!("user-{user}");
            let a = u.pick(0, &[], Some(key.as_bytes())).expect("some").addr;
            let b = u.pick(0, &[], Some(key.as_bytes())).expect("some").addr;
            assert_eq!(a, b);
            seen.insert(a);
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn ewma_prefers_the_faster_endpoint() {
        let reg = EndpointRegistry::default();
        let u = upstream(&["10.0.0.1:80", "10.0.0.2:80"], Balance::Ewma, false, &reg);
        u.endpoints()[0]
            .state
            .observe_latency(Duration::from_millis(50));
        u.endpoints()[1]
            .state
            .observe_latency(Duration::from_millis(1));
        for _ in 0..5 {
            assert_eq!(
                u.pick(0, &[], None).expect("some").addr,
                u.endpoints()[1].addr
            );
        }
    }

    #[test]
    fn cookie_values_are_deterministic_per_service_and_address() {
        let a: SocketAddr = "10.0.0.1:80".parse().expect("literal");
        let svc = ObjectKey::new("default", "web");
        assert_eq!(cookie_value(&svc, a), cookie_value(&svc, a));
        assert_ne!(
            cookie_value(&svc, a),
            cookie_value(&ObjectKey::new("default", "api"), a)
        );
        assert_eq!(cookie_value(&svc, a).len(), 20);
    }
}
