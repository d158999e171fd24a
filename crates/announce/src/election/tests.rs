use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use portico_model::endpoints::PortBackends;
use portico_model::metallb::{IPAddressPoolSpec, L2AdvertisementSpec};
use portico_model::snapshot::Node;
use portico_model::{Backend, ObjectKey, ServiceEndpoints};
use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn lb(name: &str, ips: &[&str]) -> Service {
    Service {
        key: ObjectKey::new("default", name),
        type_: ServiceType::LoadBalancer,
        cluster_ips: vec![],
        headless: false,
        external_name: None,
        ports: vec![],
        selector: None,
        session_affinity_timeout: None,
        external_traffic_policy: TrafficPolicy::Cluster,
        internal_traffic_policy: TrafficPolicy::Cluster,
        load_balancer_ip: None,
        load_balancer_class: None,
        ip_family_policy: None,
        ip_families: vec![],
        external_ips: vec![],
        load_balancer_ingress: ips.iter().map(|s| ip(s)).collect(),
        publish_not_ready_addresses: false,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        creation_timestamp: None,
    }
}

fn pool(
    name: &str,
    addresses: &[&str],
    labels: &[(&str, &str)],
) -> (ObjectKey, Arc<IPAddressPool>) {
    let meta = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("metallb-system".into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        ),
        ..Default::default()
    };
    let spec = IPAddressPoolSpec {
        addresses: addresses.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    };
    (
        ObjectKey::new("metallb-system", name),
        Arc::new(IPAddressPool {
            metadata: meta,
            spec,
            status: None,
        }),
    )
}

fn adv(name: &str, spec: L2AdvertisementSpec) -> (ObjectKey, Arc<L2Advertisement>) {
    let meta = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("metallb-system".into()),
        ..Default::default()
    };
    (
        ObjectKey::new("metallb-system", name),
        Arc::new(L2Advertisement {
            metadata: meta,
            spec,
        }),
    )
}

fn node(name: &str, labels: &[(&str, &str)], exclude: bool) -> (String, Arc<Node>) {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    (
        name.into(),
        Arc::new(Node {
            name: name.into(),
            labels,
            addresses: vec![],
            ready: true,
            exclude_from_lb: exclude,
        }),
    )
}

fn selector(k: &str, v: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(k.to_owned(), v.to_owned())].into()),
        match_expressions: None,
    }
}

/// Three edge nodes, one pool 192.0.2.0/24 advertised everywhere, one Service.
fn world() -> Snapshot {
    let mut snap = Snapshot::default();
    snap.ip_address_pools.extend([pool(
        "public",
        &["192.0.2.0/24", "2001:db8::10-2001:db8::20"],
        &[("tier", "public")],
    )]);
    snap.l2_advertisements
        .extend([adv("all", L2AdvertisementSpec::default())]);
    snap.nodes.extend([
        node("edge-a", &[], false),
        node("edge-b", &[], false),
        node("edge-c", &[], false),
    ]);
    let svc = lb("web", &["192.0.2.10"]);
    snap.services.insert(svc.key.clone(), Arc::new(svc));
    snap
}

fn winner(snap: &Snapshot, svc: &str, addr: &str, alive: &[&str]) -> Option<String> {
    let svc = &snap.services[&ObjectKey::new("default", svc)];
    owner(ip(addr), &candidates(snap, svc, ip(addr), &names(alive))).map(|c| c.name.clone())
}

#[test]
fn the_lowest_hash_wins_whatever_the_order() {
    let a = ip("192.0.2.10");
    let nodes = ["edge-a", "edge-b", "edge-c"];
    let mut best = nodes[0];
    for n in nodes {
        if rank(n, a) < rank(best, a) {
            best = n;
        }
    }
    let forward: Vec<_> = nodes
        .iter()
        .map(|n| NodeCandidate::any_interface(*n))
        .collect();
    let backward: Vec<_> = forward.iter().rev().cloned().collect();
    assert_eq!(owner(a, &forward).map(|c| c.name.as_str()), Some(best));
    assert_eq!(owner(a, &backward).map(|c| c.name.as_str()), Some(best));
    assert_eq!(owner(a, &[]), None, "nobody to announce");
}

#[test]
fn rank_is_sha256_of_node_hash_ip() {
    // sha256("edge-a#192.0.2.10"), computed independently.
    let expected = Sha256::digest(b"edge-a#192.0.2.10");
    assert_eq!(
        rank("edge-a", ip("192.0.2.10")).as_slice(),
        expected.as_slice()
    );
}

#[test]
fn every_alive_node_competes_and_dead_ones_do_not() {
    let snap = world();
    let all =
        winner(&snap, "web", "192.0.2.10", &["edge-a", "edge-b", "edge-c"]).expect("someone wins");
    let rest: Vec<&str> = ["edge-a", "edge-b", "edge-c"]
        .into_iter()
        .filter(|n| *n != all)
        .collect();
    let next = winner(&snap, "web", "192.0.2.10", &rest).expect("a survivor takes over");
    assert_ne!(next, all, "the dead owner is replaced");
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &[]),
        None,
        "no members, no owner"
    );
}

#[test]
fn an_ip_outside_every_advertised_pool_is_not_announced() {
    let mut snap = world();
    let svc = lb("stray", &["198.51.100.7"]);
    snap.services.insert(svc.key.clone(), Arc::new(svc));
    assert_eq!(
        winner(&snap, "stray", "198.51.100.7", &["edge-a", "edge-b"]),
        None
    );

    // A pool nobody advertises is not announced either.
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "other",
        L2AdvertisementSpec {
            ip_address_pools: Some(vec!["private".into()]),
            ..Default::default()
        },
    )]);
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["edge-a", "edge-b"]),
        None
    );
}

#[test]
fn advertisements_pick_pools_by_name_or_label() {
    let mut snap = world();
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "by-label",
        L2AdvertisementSpec {
            ip_address_pool_selectors: Some(vec![selector("tier", "public")]),
            ..Default::default()
        },
    )]);
    assert!(
        winner(&snap, "web", "192.0.2.10", &["edge-a"]).is_some(),
        "selected by label"
    );
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "by-name",
        L2AdvertisementSpec {
            ip_address_pools: Some(vec!["public".into()]),
            ..Default::default()
        },
    )]);
    assert!(
        winner(&snap, "web", "192.0.2.10", &["edge-a"]).is_some(),
        "selected by name"
    );
}

#[test]
fn the_pool_annotation_wins_over_address_lookup() {
    let mut snap = world();
    snap.ip_address_pools
        .extend([pool("named", &["10.9.0.0/16"], &[])]);
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "named-only",
        L2AdvertisementSpec {
            ip_address_pools: Some(vec!["named".into()]),
            ..Default::default()
        },
    )]);
    let mut svc = lb("annotated", &["192.0.2.11"]);
    svc.annotations
        .insert(POOL_ANNOTATIONS[0].into(), "named".into());
    snap.services.insert(svc.key.clone(), Arc::new(svc));
    assert!(winner(&snap, "annotated", "192.0.2.11", &["edge-a"]).is_some());
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["edge-a"]),
        None,
        "web's pool is not advertised"
    );
}

#[test]
fn node_selectors_and_the_exclude_label_narrow_the_field() {
    let mut snap = world();
    snap.nodes.extend([
        node("edge-a", &[("edge", "true")], false),
        node("edge-b", &[("edge", "true")], true),
    ]);
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "edges",
        L2AdvertisementSpec {
            node_selectors: Some(vec![selector("edge", "true")]),
            ..Default::default()
        },
    )]);
    // edge-b is excluded by label, edge-c does not match the selector: only edge-a remains.
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["edge-a", "edge-b", "edge-c"]).as_deref(),
        Some("edge-a")
    );
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["edge-b", "edge-c"]),
        None
    );
}

#[test]
fn a_member_without_a_node_object_competes_with_no_labels() {
    let mut snap = world();
    snap.nodes.clear();
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["standalone-1"]).as_deref(),
        Some("standalone-1")
    );
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([adv(
        "edges",
        L2AdvertisementSpec {
            node_selectors: Some(vec![selector("edge", "true")]),
            ..Default::default()
        },
    )]);
    assert_eq!(
        winner(&snap, "web", "192.0.2.10", &["standalone-1"]),
        None,
        "no labels, no match"
    );
}

#[test]
fn local_policy_only_lets_nodes_with_a_ready_endpoint_compete() {
    let mut snap = world();
    let mut svc = lb("local", &["192.0.2.20"]);
    svc.external_traffic_policy = TrafficPolicy::Local;
    let key = svc.key.clone();
    snap.services.insert(key.clone(), Arc::new(svc));
    let backend = |addr: &str, node: &str, ready: bool| Backend {
        addr: SocketAddr::new(ip(addr), 8080),
        ready,
        serving: ready,
        terminating: false,
        node_name: Some(node.into()),
        zone: None,
        pod: None,
    };
    let port = PortBackends {
        protocol: None,
        all: vec![
            backend("10.0.0.1", "edge-c", true),
            backend("10.0.0.2", "edge-a", false),
        ],
        usable: Arc::from(vec![]),
    };
    snap.endpoints.insert(
        key,
        Arc::new(ServiceEndpoints {
            ports: [(String::new(), port)].into(),
        }),
    );
    assert_eq!(
        winner(
            &snap,
            "local",
            "192.0.2.20",
            &["edge-a", "edge-b", "edge-c"]
        )
        .as_deref(),
        Some("edge-c")
    );
    assert_eq!(
        winner(&snap, "local", "192.0.2.20", &["edge-a", "edge-b"]),
        None,
        "no ready local endpoint anywhere"
    );
}

#[test]
fn interfaces_are_the_union_of_matching_advertisements() {
    let mut snap = world();
    snap.l2_advertisements.clear();
    snap.l2_advertisements.extend([
        adv(
            "eth1",
            L2AdvertisementSpec {
                interfaces: Some(vec!["eth1".into()]),
                ..Default::default()
            },
        ),
        adv(
            "bond0",
            L2AdvertisementSpec {
                interfaces: Some(vec!["bond0".into()]),
                ..Default::default()
            },
        ),
    ]);
    let owned = owned_by(&snap, "edge-a", &names(&["edge-a"]));
    let a = &owned[&ip("192.0.2.10")];
    assert_eq!(a.interfaces, Some(names(&["bond0", "eth1"])));
    assert_eq!(a.services, [ObjectKey::new("default", "web")].into());

    snap.l2_advertisements
        .extend([adv("any", L2AdvertisementSpec::default())]);
    let owned = owned_by(&snap, "edge-a", &names(&["edge-a"]));
    assert_eq!(
        owned[&ip("192.0.2.10")].interfaces,
        None,
        "an advertisement without interfaces means all"
    );
}

#[test]
fn owned_by_splits_ips_between_nodes() {
    let mut snap = world();
    let many: Vec<String> = (1..=40).map(|i| format!("192.0.2.{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let svc = lb("many", &refs);
    snap.services.insert(svc.key.clone(), Arc::new(svc));
    let alive = names(&["edge-a", "edge-b", "edge-c"]);
    let per_node: Vec<BTreeMap<IpAddr, Assignment>> = ["edge-a", "edge-b", "edge-c"]
        .iter()
        .map(|n| owned_by(&snap, n, &alive))
        .collect();
    let total: usize = per_node.iter().map(BTreeMap::len).sum();
    assert_eq!(
        total, 40,
        "each IP has exactly one owner (web's .10 is in the range too)"
    );
    assert!(
        per_node.iter().all(|m| !m.is_empty()),
        "40 IPs spread over 3 nodes: none is left idle"
    );
}

#[test]
fn pool_ranges_and_families() {
    let (_, p) = pool(
        "p",
        &[
            "192.0.2.0/28",
            "198.51.100.5-198.51.100.9",
            "2001:db8::10-2001:db8::20",
            "junk",
        ],
        &[],
    );
    assert!(pool_contains(&p, ip("192.0.2.15")));
    assert!(!pool_contains(&p, ip("192.0.2.16")));
    assert!(pool_contains(&p, ip("198.51.100.9")));
    assert!(!pool_contains(&p, ip("198.51.100.10")));
    assert!(pool_contains(&p, ip("2001:db8::1a")));
    assert!(!pool_contains(&p, ip("2001:db8::21")));
}

fn arb_nodes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z]{1,8}(-[0-9]{1,2})?", 1..12)
        .prop_map(|s| s.into_iter().collect())
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from)
    ]
}

proptest! {
    #[test]
    fn every_node_elects_the_same_owner(nodes in arb_nodes(), addr in arb_ip(), seed in any::<u64>()) {
        let cands: Vec<NodeCandidate> = nodes.iter().map(NodeCandidate::any_interface).collect();
        let expected = owner(addr, &cands).map(|c| c.name.clone());
        // Each node sees the members in its own order.
        let mut shuffled = cands.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(owner(addr, &shuffled).map(|c| c.name.clone()), expected);
    }

    #[test]
    fn removing_a_non_owner_never_moves_an_ip(nodes in arb_nodes(), addr in arb_ip(), pick in any::<prop::sample::Index>()) {
        let cands: Vec<NodeCandidate> = nodes.iter().map(NodeCandidate::any_interface).collect();
        let before = owner(addr, &cands).map(|c| c.name.clone()).expect("non-empty");
        let gone = &nodes[pick.index(nodes.len())];
        prop_assume!(*gone != before);
        let rest: Vec<NodeCandidate> = cands.iter().filter(|c| &c.name != gone).cloned().collect();
        prop_assert_eq!(owner(addr, &rest).map(|c| c.name.clone()), Some(before));
    }

    #[test]
    fn every_ip_has_exactly_one_owner_among_alive_nodes(alive in arb_nodes(), last in 1u8..=254) {
        let mut snap = world();
        let ips: Vec<String> = (1..=last).step_by(7).map(|i| format!("192.0.2.{i}")).collect();
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let svc = lb("prop", &refs);
        snap.services.insert(svc.key.clone(), Arc::new(svc));
        snap.nodes.clear();
        let alive: BTreeSet<String> = alive.into_iter().collect();
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for n in &alive {
            for ip in owned_by(&snap, n, &alive).into_keys() {
                *seen.entry(ip).or_default() += 1;
            }
        }
        let mut want: BTreeSet<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        want.insert(ip("192.0.2.10"));
        prop_assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), want);
        prop_assert!(seen.values().all(|c| *c == 1));
    }
}
