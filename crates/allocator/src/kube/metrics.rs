//! Prometheus gauges for kube mode, refreshed from the published [`KubeView`]. Labels are
//! bounded: pool names and two fixed sets.

use std::sync::Arc;

use portico_runtime::Publisher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::KubeView;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    family: &'static str,
    state: &'static str,
}

#[derive(Clone, Default)]
pub struct LbMetrics {
    leader: Gauge,
    pending: Gauge,
    addresses: Family<PoolLabels, Gauge>,
}

impl LbMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "lb_leader",
            "1 while this replica holds the allocation Lease",
            m.leader.clone(),
        );
        registry.register(
            "lb_services_pending",
            "LoadBalancer Services without the address they need",
            m.pending.clone(),
        );
        registry.register(
            "lb_pool_addresses",
            "Addresses per pool, family and state (assigned, available)",
            m.addresses.clone(),
        );
        m
    }

    fn update(&self, view: &KubeView) {
        self.leader.set(i64::from(view.leader));
        self.pending.set(
            view.allocation
                .services
                .iter()
                .filter(|s| s.pending.is_some())
                .count() as i64,
        );
        self.addresses.clear();
        for p in &view.allocation.pools {
            for (family, state, n) in [
                ("IPv4", "assigned", p.assigned_ipv4),
                ("IPv4", "available", p.available_ipv4),
                ("IPv6", "assigned", p.assigned_ipv6),
                ("IPv6", "available", p.available_ipv6),
            ] {
                self.addresses
                    .get_or_create(&PoolLabels {
                        pool: p.name.clone(),
                        family,
                        state,
                    })
                    .set(n);
            }
        }
    }

    /// Follow `view` until `shutdown`.
    pub async fn follow(self, view: Arc<Publisher<KubeView>>, shutdown: CancellationToken) {
        let mut rx = view.subscribe();
        loop {
            self.update(&view.current());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}
