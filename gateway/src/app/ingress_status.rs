//! Kube mode: publish the gateway's address in `status.loadBalancer.ingress` of every Ingress it
//! serves (through the status subresource), so `kubectl get ingress` shows an ADDRESS. Ingresses
//! of other classes are never touched. Standalone, the same address is shown by
//! `gateway get ingresses`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_cluster::kube_source::status::patch_ingress_lb_status;
use portico_model::{ObjectKey, Snapshot};
use portico_runtime::Publisher;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use portico_l7::L7;

/// The addresses an Ingress currently carries in its status.
fn current_ips(snap: &Snapshot, key: &ObjectKey) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = snap
        .ingresses
        .get(key)
        .and_then(|i| i.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|v| {
            v.iter()
                .filter_map(|e| e.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ips.sort();
    ips
}

/// The status changes needed now: (ingress, addresses it should carry).
pub fn pending_updates(l7: &L7, snap: &Snapshot) -> Vec<(ObjectKey, Vec<IpAddr>)> {
    let mut out = Vec::new();
    for row in l7.ingress_view(snap) {
        let Some(address) = row.address.as_deref() else {
            continue;
        };
        let mut want: Vec<IpAddr> = address
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        want.sort();
        let key = ObjectKey::new(row.namespace, row.name);
        if !want.is_empty() && current_ips(snap, &key) != want {
            out.push((key, want));
        }
    }
    out
}

/// Keep the status of served Ingresses up to date until `shutdown`.
pub async fn run(
    client: kube::Client,
    l7: L7,
    snapshots: Arc<Publisher<Snapshot>>,
    shutdown: CancellationToken,
) {
    let mut versions = snapshots.subscribe();
    loop {
        if snapshots.is_ready() && l7.is_ready() {
            let snap = snapshots.current();
            for (key, ips) in pending_updates(&l7, &snap) {
                match patch_ingress_lb_status(&client, &key, &ips).await {
                    Ok(()) => info!(ingress = %key, address = ?ips, "Ingress status published"),
                    Err(e) => {
                        warn!(ingress = %key, error = %e, "cannot publish Ingress status; will retry")
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = versions.changed() => if r.is_err() { return },
            // Retries failed patches and catches a route table that became ready after the last publish.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The writer as one of the gateway's parts: kube mode only (`client`), beside the router `l7`.
pub(super) fn spawn(parts: &mut super::parts::Parts, client: Option<kube::Client>, l7: &L7) {
    let Some(client) = client else {
        return;
    };
    let (l, p, sd) = (l7.clone(), parts.snapshots.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        run(client, l, p, sd).await;
        Ok(())
    });
}
