use std::net::{IpAddr, SocketAddr};

use portico_model::ObjectKey;
use portico_testkit::snapshots::{pod, service, snapshot, terminating_pod};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn addrs(b: &[Backend]) -> Vec<SocketAddr> {
    b.iter().map(|b| b.addr).collect()
}

#[test]
fn every_address_a_service_is_reached_on_is_listed_sctp_included() {
    let snap = snapshot(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: LoadBalancer\n  clusterIP: 127.96.0.30\n  externalIPs: [192.0.2.50]\n  externalTrafficPolicy: Local\n  sessionAffinity: ClientIP\n  ports: [{name: http, port: 80, nodePort: 30080}, {name: sig, port: 9, protocol: SCTP, nodePort: 30009}]\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.10}]}}\n",
    );
    let table = ServiceTable::of(&snap, &NodeConfig::new("n1", vec![ip("127.0.0.1")]));
    assert_eq!(table.node_ips, [ip("127.0.0.1")]);
    let web = &table.services[&ObjectKey::new("default", "web")];
    assert_eq!(web.cluster_ips, [ip("127.96.0.30")]);
    assert_eq!(web.external_ips, [ip("192.0.2.50")]);
    assert_eq!(web.load_balancer_ips, [ip("192.0.2.10")]);
    assert_eq!(web.external_policy, TrafficPolicy::Local);
    assert_eq!(web.internal_policy, TrafficPolicy::Cluster);
    assert_eq!(web.affinity, Some(Duration::from_secs(10_800)));
    let ports: Vec<(&str, Protocol, u16, Option<u16>)> = web
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol, p.port, p.node_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("http", Protocol::TCP, 80, Some(30080)),
            ("sig", Protocol::SCTP, 9, Some(30009))
        ]
    );
}

#[test]
fn headless_and_external_name_services_have_no_entry_and_cluster_ips_no_node_port() {
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: ext}}\nspec: {{type: ExternalName, externalName: example.org}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: headless}}\nspec: {{clusterIP: None, selector: {{app: x}}, ports: [{{port: 80}}]}}\n",
        service("web", "")
    );
    let table = ServiceTable::of(&snapshot(&yaml), &NodeConfig::new("n1", vec![]));
    let keys: Vec<String> = table.services.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["default/web"]);
    assert!(
        table
            .services
            .values()
            .all(|s| s.ports.iter().all(|p| p.node_port.is_none()))
    );
}

#[test]
fn endpoints_per_policy_follow_the_relays_rule_with_the_terminating_fallback() {
    let local = "  internalTrafficPolicy: Local\n";
    let yaml = format!(
        "{}{}{}{}",
        service("web", local),
        terminating_pod("a", "web", "127.0.10.1", "n1"),
        pod("b", "web", "127.0.10.2", "n2", true),
        pod("c", "web", "127.0.10.3", "n2", false)
    );
    let table = ServiceTable::of(&snapshot(&yaml), &NodeConfig::new("n1", vec![]));
    let port = &table.services[&ObjectKey::new("default", "web")].ports[0];
    assert_eq!(
        addrs(&port.cluster_endpoints),
        ["127.0.10.2:8080".parse::<SocketAddr>().expect("addr")],
        "the ready one; not-ready and terminating ones are out"
    );
    assert_eq!(
        addrs(&port.local_endpoints),
        ["127.0.10.1:8080".parse::<SocketAddr>().expect("addr")],
        "n1 has only a terminating endpoint: it serves Local traffic"
    );

    let cluster = ServiceTable::of(
        &snapshot(&format!(
            "{}{}",
            service("web", ""),
            pod("b", "web", "127.0.10.2", "n1", true)
        )),
        &NodeConfig::new("n1", vec![]),
    );
    let port = &cluster.services[&ObjectKey::new("default", "web")].ports[0];
    assert!(
        port.local_endpoints.is_empty(),
        "no Local policy, no local set"
    );
}

#[test]
fn the_table_is_pure_equal_snapshots_give_equal_tables() {
    let yaml = format!(
        "{}{}",
        service("web", ""),
        pod("b", "web", "127.0.10.2", "n1", true)
    );
    let node = NodeConfig::new("n1", vec![ip("127.0.0.1")]);
    assert_eq!(
        ServiceTable::of(&snapshot(&yaml), &node),
        ServiceTable::of(&snapshot(&yaml), &node)
    );
}
