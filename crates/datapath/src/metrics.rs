//! Prometheus metrics of the datapath, read from the listeners' live counters at scrape time
//! (no second set of counters to keep in step). Labels: service, port, protocol and frontend
//! address: bounded by the configured Services, never a client address.

use std::fmt;
use std::sync::Arc;

use portico_runtime::Publisher;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::userspace::Status;
use portico_l4::CounterValues;

/// Exposes the datapath [`Status`] as metrics.
pub struct DatapathCollector {
    status: Arc<Publisher<Status>>,
}

impl DatapathCollector {
    pub fn new(status: Arc<Publisher<Status>>) -> Self {
        Self { status }
    }
}

impl fmt::Debug for DatapathCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatapathCollector").finish_non_exhaustive()
    }
}

type Getter = fn(&CounterValues) -> u64;

const COUNTERS: [(&str, &str, Getter); 4] = [
    (
        "proxy_connections",
        "TCP connections accepted and UDP flows opened",
        |v| v.accepted,
    ),
    (
        "proxy_no_backend",
        "New connections or flows dropped: no usable endpoint",
        |v| v.no_backend,
    ),
    (
        "proxy_connect_failures",
        "Connect attempts to an endpoint that failed or timed out",
        |v| v.connect_failures,
    ),
    (
        "proxy_dropped_datagrams",
        "UDP datagrams dropped (flow table or socket buffer full)",
        |v| v.dropped_datagrams,
    ),
];

impl Collector for DatapathCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let status = self.status.current();
        let rows: Vec<([(&str, String); 4], CounterValues)> = status
            .listening
            .iter()
            .map(|l| {
                let labels = [
                    ("service", l.target.service.to_string()),
                    ("port", l.target.port.clone()),
                    ("protocol", l.frontend.protocol.to_string()),
                    ("frontend", l.frontend.addr.to_string()),
                ];
                (labels, l.counters.values())
            })
            .collect();
        for (name, help, get) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, values) in &rows {
                ConstCounter::new(get(values)).encode(family.encode_family(labels)?)?;
            }
        }
        let mut active = encoder.encode_descriptor(
            "proxy_active",
            "TCP connections and UDP flows open now",
            None,
            MetricType::Gauge,
        )?;
        for (labels, values) in &rows {
            ConstGauge::new(i64::try_from(values.active).unwrap_or(i64::MAX))
                .encode(active.encode_family(labels)?)?;
        }
        let bind_errors = encoder.encode_descriptor(
            "proxy_bind_errors",
            "Frontends that could not be bound at the last reconcile",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(status.bind_errors.len() as i64).encode(bind_errors)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portico_model::ObjectKey;
    use portico_runtime::Metrics;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use portico_l4::{Frontend, Reconciler, Scope, Settings, Target};
    use portico_testkit::snapshots::snapshot;

    #[tokio::test]
    async fn listeners_show_up_as_labelled_series() {
        let snapshots = Publisher::new(snapshot(
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{name: http, port: 80}]}\n",
        ));
        let mut r = Reconciler::new(snapshots, Settings::default(), CancellationToken::new());
        let front = Frontend::tcp("127.88.7.1:8080".parse().expect("addr"));
        let target = Target::new(ObjectKey::new("default", "web"), "http", Scope::Cluster);
        assert!(r.reconcile(&BTreeMap::from([(front, target)])).is_empty());
        // No endpoints: the connection is refused and counted.
        let _refused = tokio::net::TcpStream::connect(front.addr)
            .await
            .expect("accepted");
        let status = Publisher::new(Status::default());
        let metrics = Metrics::new();
        metrics.with_registry(|reg| {
            reg.register_collector(Box::new(DatapathCollector::new(status.clone())))
        });
        for _ in 0..50 {
            status.publish(Status {
                listening: r.status(),
                ..Status::default()
            });
            if metrics.encode().contains("portico_proxy_no_backend_total{service=\"default/web\",port=\"http\",protocol=\"tcp\",frontend=\"127.88.7.1:8080\"} 1") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let text = metrics.encode();
        assert!(
            text.contains("portico_proxy_no_backend_total{service=\"default/web\",port=\"http\",protocol=\"tcp\",frontend=\"127.88.7.1:8080\"} 1"),
            "{text}"
        );
        assert!(text.contains("portico_proxy_connections_total{"), "{text}");
        assert!(text.contains("portico_proxy_bind_errors 0"), "{text}");
        r.stop_all().await;
    }
}
