//! The process-wide Prometheus registry and the configuration metrics every part shares.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics about configuration: publishes, rejected objects, generation.
#[derive(Clone, Default)]
pub struct ConfigMetrics {
    pub publishes: Counter,
    pub invalid_objects: Gauge,
    pub generation: Gauge,
}

/// Owns the registry. Parts register their metrics at start-up through `with_registry`; the
/// admin API encodes it on `/metrics`. The lock is only taken at start-up and on scrapes.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub config: ConfigMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portico");
        let config = ConfigMetrics::default();
        registry.register(
            "config_publishes",
            "Snapshots published",
            config.publishes.clone(),
        );
        registry.register(
            "config_invalid_objects",
            "Objects rejected in the current snapshot",
            config.invalid_objects.clone(),
        );
        registry.register(
            "config_generation",
            "Generation of the current snapshot",
            config.generation.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            config,
        }
    }

    /// Register more metrics.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut reg)
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
