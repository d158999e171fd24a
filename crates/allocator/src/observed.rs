//! Pools as the cluster shows them when this process does not allocate: the counters come from
//! the addresses in the Services' `status.loadBalancer`, whoever wrote them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use portico_model::ClusterState;

use super::PoolStatus;
use super::family::Family;
use super::pool::build_pools;

/// The addresses a Service's status holds (entries that are not an IP are skipped).
fn status_ips(svc: &Service) -> impl Iterator<Item = IpAddr> + '_ {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
}

/// Every valid `IPAddressPool` with its counters: an address is assigned when some Service's
/// status holds it (a shared address counts once), available = capacity - assigned. Pools that
/// are invalid or overlap an older one are left out, as the allocator leaves them out.
pub fn observed_pool_status(state: &ClusterState) -> Vec<PoolStatus> {
    let (pools, _invalid) = build_pools(
        state.ip_address_pools.values().map(|p| &**p),
        &BTreeSet::new(),
    );
    let in_use: BTreeSet<IpAddr> = state
        .services
        .values()
        .flat_map(|s| status_ips(s))
        .collect();
    let mut used: BTreeMap<(&str, Family), i64> = BTreeMap::new();
    for ip in &in_use {
        if let Some(p) = pools.values().find(|p| p.contains(ip)) {
            *used.entry((p.name.as_str(), Family::of(ip))).or_default() += 1;
        }
    }
    pools.values().map(|p| PoolStatus::of(p, &used)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portico_model::ObjectKey;
    use portico_model::metallb::IPAddressPool;
    use serde_json::json;

    use super::*;

    fn pool(name: &str, addresses: &[&str]) -> (ObjectKey, Arc<IPAddressPool>) {
        let p: IPAddressPool = serde_json::from_value(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"addresses": addresses},
        }))
        .expect("a pool");
        (ObjectKey::new("metallb-system", name), Arc::new(p))
    }

    fn service(name: &str, ips: &[&str]) -> (ObjectKey, Arc<Service>) {
        let s: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()}},
        }))
        .expect("a service");
        (ObjectKey::new("shop", name), Arc::new(s))
    }

    #[test]
    fn services_holding_pool_addresses_count_as_assigned() {
        let mut state = ClusterState::default();
        state.ip_address_pools.extend([
            pool("edge", &["192.0.2.100-192.0.2.109", "2001:db8::/126"]),
            pool("empty", &["198.51.100.0/30"]),
            pool("broken", &["not-an-address"]),
        ]);
        state.services.extend([
            service("a", &["192.0.2.100", "2001:db8::1"]),
            // Sharing a's address: one address in use, not two.
            service("b", &["192.0.2.100"]),
            service("c", &["192.0.2.101"]),
            // Outside every pool (assigned by someone else): not counted.
            service("d", &["203.0.113.7"]),
            service("pending", &[]),
        ]);
        let rows = observed_pool_status(&state);
        let by_name: BTreeMap<&str, &PoolStatus> =
            rows.iter().map(|r| (r.name.as_str(), r)).collect();
        assert_eq!(by_name.len(), 2, "the invalid pool is left out: {rows:?}");
        let edge = by_name["edge"];
        assert_eq!((edge.assigned_ipv4, edge.assigned_ipv6), (2, 1));
        assert_eq!((edge.available_ipv4, edge.available_ipv6), (8, 3));
        assert!(edge.auto_assign);
        let empty = by_name["empty"];
        assert_eq!((empty.assigned_ipv4, empty.available_ipv4), (0, 4));
    }

    #[test]
    fn no_pools_no_rows() {
        let mut state = ClusterState::default();
        state.services.extend([service("a", &["192.0.2.100"])]);
        assert!(observed_pool_status(&state).is_empty());
    }
}
