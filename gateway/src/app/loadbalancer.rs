//! The LoadBalancer listeners on every EXTERNAL-IP, and their `loadbalancers` admin view.

use std::sync::Arc;

use portico_l4::lb::{L4, L4Config, ListenerView, Upstream};
use portico_runtime::connections::ConnectionLimit;

use super::parts::Parts;
use crate::cli::{L4Upstream, RunArgs};

/// One listener as the admin API shows it.
fn view_row(v: &ListenerView) -> serde_json::Value {
    serde_json::json!({
        "frontend": v.frontend.to_string(), "service": v.target.service_port().to_string(), "accepted": v.accepted,
        "active": v.active, "noUpstream": v.no_upstream, "connectFailures": v.connect_failures,
        "droppedDatagrams": v.dropped_datagrams,
    })
}

/// Start the listeners; their TCP connections count against `connection_limit`.
pub(super) fn start(parts: &mut Parts, args: &RunArgs, connection_limit: &Arc<ConnectionLimit>) {
    let cfg = L4Config {
        upstream: match args.l4_upstream {
            L4Upstream::Endpoints => Upstream::Endpoints,
            L4Upstream::Nodeport => Upstream::NodePort,
        },
        proxy_protocol: args.l4_proxy_protocol,
        connection_limit: Some(connection_limit.clone()),
        ..Default::default()
    };
    let (views_tx, views_rx) = tokio::sync::watch::channel(Vec::<ListenerView>::new());
    parts.admin(|a| {
        a.with_view(
            "loadbalancers",
            Arc::new(move || {
                serde_json::Value::Array(views_rx.borrow().iter().map(view_row).collect())
            }),
        )
    });
    let l4 = L4::new(cfg, parts.snapshots.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        l4.run(Some(views_tx)).await;
        Ok(())
    });
}
