//! Who announces each LoadBalancer IP: a deterministic election every edge node computes alike,
//! with no coordination beyond agreeing on who is alive.
//!
//! The candidates are ordered by `sha256(node name + "#" + ip)` and the first one wins, as in
//! MetalLB's layer-2 mode. Because the order of two nodes never depends on a third, removing a
//! node that does not own an IP never moves that IP, and each IP lands on a different node with
//! equal probability.
//!
//! [`candidates`] turns a [`Snapshot`] into the candidate list of one Service IP:
//! - only IPs whose pool is named by an `L2Advertisement` (`ipAddressPools`,
//!   `ipAddressPoolSelectors`, or neither, which means every pool) are announced;
//! - a node must match one of that advertisement's `nodeSelectors` (none means every node), must
//!   not carry `node.kubernetes.io/exclude-from-external-load-balancers`, and must be alive
//!   according to membership;
//! - with `externalTrafficPolicy: Local` only nodes with a ready endpoint of the Service compete;
//! - the advertisement's `interfaces` say where the winner announces (none means every interface).
//!
//! An edge member with no Node object (standalone mode without Node manifests) is treated as a
//! ready node with no labels.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use portico_model::metallb::{IPAddressPool, L2Advertisement};
use portico_model::selector::label_selector_matches;
use portico_model::service::TrafficPolicy;
use portico_model::{Service, ServiceType, Snapshot};
use sha2::{Digest, Sha256};

use crate::announcement::{Announcement, Announcements};

/// Annotations MetalLB (and Portico's allocator) put on a Service to name the pool of its IP.
pub const POOL_ANNOTATIONS: [&str; 2] = [
    "metallb.io/ip-allocated-from-pool",
    "metallb.universe.tf/ip-allocated-from-pool",
];

/// One node that may announce an IP, and the interfaces it would announce it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCandidate {
    pub name: String,
    /// `None`: every interface the announcer runs on.
    pub interfaces: Option<BTreeSet<String>>,
}

impl NodeCandidate {
    pub fn any_interface(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            interfaces: None,
        }
    }
}

/// The election key of `node` for `ip`: lower wins.
pub fn rank(node: &str, ip: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.to_string().as_bytes());
    h.finalize().into()
}

/// The winner among `candidates` for `ip`, or `None` when there is no candidate. The order of
/// `candidates` does not matter; duplicates are harmless.
pub fn owner(ip: IpAddr, candidates: &[NodeCandidate]) -> Option<&NodeCandidate> {
    candidates
        .iter()
        .min_by(|a, b| (rank(&a.name, ip), &a.name).cmp(&(rank(&b.name, ip), &b.name)))
}

/// Whether `ip` lies in one of a pool's `addresses` (CIDRs or inclusive `a-b` ranges).
/// Entries that do not parse are ignored here; the allocator reports them on the pool.
pub fn pool_contains(pool: &IPAddressPool, ip: IpAddr) -> bool {
    pool.spec.addresses.iter().any(|entry| {
        let entry = entry.trim();
        if let Some((lo, hi)) = entry.split_once('-') {
            match (lo.trim().parse::<IpAddr>(), hi.trim().parse::<IpAddr>()) {
                (Ok(lo), Ok(hi)) => lo.is_ipv4() == ip.is_ipv4() && lo <= ip && ip <= hi,
                _ => false,
            }
        } else if let Ok(net) = entry.parse::<IpNet>() {
            net.contains(&ip)
        } else {
            entry.parse::<IpAddr>().is_ok_and(|a| a == ip)
        }
    })
}

/// The pool `ip` of `svc` came from: the allocator's annotation when present, otherwise the
/// first pool (by key) that contains it.
pub fn pool_of<'a>(snap: &'a Snapshot, svc: &Service, ip: IpAddr) -> Option<&'a IPAddressPool> {
    let named = POOL_ANNOTATIONS
        .iter()
        .find_map(|a| svc.annotations.get(*a));
    let by_name = named.and_then(|name| {
        snap.ip_address_pools
            .values()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
    });
    if let Some(pool) = by_name {
        return Some(pool);
    }
    snap.ip_address_pools
        .values()
        .find(|p| pool_contains(p, ip))
        .map(|p| &**p)
}

fn advertises(adv: &L2Advertisement, pool: &IPAddressPool) -> bool {
    let names = adv.spec.ip_address_pools.as_deref().unwrap_or_default();
    let selectors = adv
        .spec
        .ip_address_pool_selectors
        .as_deref()
        .unwrap_or_default();
    if names.is_empty() && selectors.is_empty() {
        return true;
    }
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    names.iter().any(|n| n == name)
        || selectors
            .iter()
            .any(|s| label_selector_matches(s, pool.metadata.labels.as_ref()))
}

/// The nodes that compete for `ip` of `svc`, among the `alive` members.
pub fn candidates(
    snap: &Snapshot,
    svc: &Service,
    ip: IpAddr,
    alive: &BTreeSet<String>,
) -> Vec<NodeCandidate> {
    let Some(pool) = pool_of(snap, svc, ip) else {
        return Vec::new();
    };
    let advs: Vec<&L2Advertisement> = snap
        .l2_advertisements
        .values()
        .map(|a| &**a)
        .filter(|a| advertises(a, pool))
        .collect();
    if advs.is_empty() {
        return Vec::new();
    }
    let local = (svc.external_traffic_policy == TrafficPolicy::Local)
        .then(|| snap.nodes_with_ready_endpoint(&svc.key));
    let mut out = Vec::new();
    for name in alive {
        let node = snap.nodes.get(name);
        if node.is_some_and(|n| n.exclude_from_lb || !n.ready) {
            continue;
        }
        if local.as_ref().is_some_and(|l| !l.contains(name)) {
            continue;
        }
        let labels = node.map(|n| &n.labels);
        let mut matched = false;
        let mut interfaces: Option<BTreeSet<String>> = Some(BTreeSet::new());
        for adv in &advs {
            let selectors = adv.spec.node_selectors.as_deref().unwrap_or_default();
            if !selectors.is_empty() && !selectors.iter().any(|s| label_selector_matches(s, labels))
            {
                continue;
            }
            matched = true;
            match (
                adv.spec.interfaces.as_deref().unwrap_or_default(),
                interfaces.as_mut(),
            ) {
                ([], _) => interfaces = None,
                (list, Some(set)) => set.extend(list.iter().cloned()),
                (_, None) => {}
            }
        }
        if matched {
            out.push(NodeCandidate {
                name: name.clone(),
                interfaces,
            });
        }
    }
    out
}

/// What the election gives one node for one IP: the interfaces to announce it on (`None`: all)
/// and the Services it belongs to.
pub type Assignment = Announcement;

/// The IPs `me` owns in `snap`, given the `alive` members (which should include `me`).
pub fn owned_by(snap: &Snapshot, me: &str, alive: &BTreeSet<String>) -> Announcements {
    let mut out = Announcements::new();
    for svc in snap.services.values() {
        if svc.type_ != ServiceType::LoadBalancer {
            continue;
        }
        for &ip in &svc.load_balancer_ingress {
            let cands = candidates(snap, svc, ip, alive);
            let Some(win) = owner(ip, &cands) else {
                continue;
            };
            if win.name != me {
                continue;
            }
            let entry = out.entry(ip).or_insert_with(|| Assignment {
                interfaces: Some(BTreeSet::new()),
                ..Default::default()
            });
            entry.services.insert(svc.key.clone());
            match (&win.interfaces, entry.interfaces.as_mut()) {
                (None, _) => entry.interfaces = None,
                (Some(list), Some(set)) => set.extend(list.iter().cloned()),
                (Some(_), None) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
