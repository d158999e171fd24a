//! Prometheus metrics of the L7 router. Label sets are bounded (Ingress, Service, status class);
//! the per-route handles are made when the table is built, so the request path only bumps
//! atomics. A route's request series are created on its first request of each status class
//! (most routes only ever answer 2xx): with 10,000 routes, eagerly created series for all five
//! classes and the duration histogram were 13 MB of heap before any request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    ingress: String,
    service: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    ingress: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every L7 metric. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    connect_errors: Family<ServiceLabels, Counter>,
    pub tls_handshakes: Counter,
    pub tls_handshake_errors: Counter,
    pub open_connections: Gauge,
    pub open_upgrades: Gauge,
    pub config_publishes: Counter,
    pub config_errors: Gauge,
    /// Requests answered without a route (404) or refused before routing.
    pub unrouted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            connect_errors: Family::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_errors: Counter::default(),
            open_connections: Gauge::default(),
            open_upgrades: Gauge::default(),
            config_publishes: Counter::default(),
            config_errors: Gauge::default(),
            unrouted: Counter::default(),
        }
    }
}

impl Metrics {
    /// Add every metric to `registry` (the admin `/metrics`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("portico_ingress");
        r.register(
            "requests",
            "Requests by Ingress, Service and status class",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request duration by Ingress and Service",
            self.duration.clone(),
        );
        r.register(
            "upstream_connect_errors",
            "Failed connects to endpoints by Service",
            self.connect_errors.clone(),
        );
        r.register(
            "tls_handshakes",
            "Completed TLS handshakes",
            self.tls_handshakes.clone(),
        );
        r.register(
            "tls_handshake_errors",
            "Failed TLS handshakes",
            self.tls_handshake_errors.clone(),
        );
        r.register(
            "open_connections",
            "Open downstream connections",
            self.open_connections.clone(),
        );
        r.register(
            "open_upgraded_connections",
            "Open upgraded (WebSocket) tunnels",
            self.open_upgrades.clone(),
        );
        r.register(
            "config_publishes",
            "Route tables published",
            self.config_publishes.clone(),
        );
        r.register(
            "config_errors",
            "Problems in the current route table",
            self.config_errors.clone(),
        );
        r.register(
            "unrouted_requests",
            "Requests that matched no route",
            self.unrouted.clone(),
        );
    }

    pub fn route(&self, ingress: &str, service: &str) -> RouteMetrics {
        let connect_errors = self
            .connect_errors
            .get_or_create(&ServiceLabels {
                service: service.into(),
            })
            .clone();
        RouteMetrics {
            inner: Some(Arc::new(RouteHandles {
                labels: RouteLabels {
                    ingress: ingress.into(),
                    service: service.into(),
                },
                requests: self.requests.clone(),
                durations: self.duration.clone(),
                by_class: Default::default(),
                duration: OnceLock::new(),
                connect_errors,
            })),
        }
    }
}

#[derive(Debug)]
struct RouteHandles {
    labels: RouteLabels,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Made on first use; then the request path only loads a pointer.
    by_class: [OnceLock<Counter>; 5],
    duration: OnceLock<Histogram>,
    connect_errors: Counter,
}

impl RouteHandles {
    fn class(&self, class: usize) -> &Counter {
        self.by_class[class].get_or_init(|| {
            self.requests
                .get_or_create(&RequestLabels {
                    ingress: self.labels.ingress.clone(),
                    service: self.labels.service.clone(),
                    status: CLASSES[class].into(),
                })
                .clone()
        })
    }

    fn duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| self.durations.get_or_create(&self.labels).clone())
    }
}

/// A route's metric handles (no-ops when the table was built without metrics).
#[derive(Clone, Debug, Default)]
pub struct RouteMetrics {
    inner: Option<Arc<RouteHandles>>,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, elapsed: Duration) {
        if let Some(h) = &self.inner {
            let class = usize::from(status / 100).clamp(1, 5) - 1;
            h.class(class).inc();
            h.duration().observe(elapsed.as_secs_f64());
        }
    }

    pub fn connect_error(&self) {
        if let Some(h) = &self.inner {
            h.connect_errors.inc();
        }
    }
}
