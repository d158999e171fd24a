use std::net::IpAddr;

use portico_model::ObjectKey;

use super::*;
use portico_testkit::snapshots::snapshot;

fn cfg(node_ips: &[&str]) -> AgentConfig {
    AgentConfig::new(
        "n1",
        node_ips.iter().map(|s| s.parse().expect("ip")).collect(),
    )
}

/// Frontends as `proto/addr -> service:port scope` lines, for tables that read like stories.
fn table(d: &Desired) -> Vec<String> {
    d.frontends
        .iter()
        .map(|(f, t)| format!("{f} -> {t}"))
        .collect()
}

fn svc(name: &str, spec: &str) -> String {
    format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

#[test]
fn cluster_ip_services_are_served_on_their_cluster_ip_per_port_and_protocol() {
    let snap = snapshot(&svc(
        "dns",
        "{clusterIP: 127.96.0.10, ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}, {name: sctp, port: 9, protocol: SCTP}]}",
    ));
    assert_eq!(
        table(&desired_frontends(&snap, &cfg(&["127.0.0.1"]))),
        [
            "tcp/127.96.0.10:53 -> default/dns:dns-tcp (Cluster)",
            "udp/127.96.0.10:53 -> default/dns:dns (Cluster)"
        ],
        "SCTP is not forwarded, and a ClusterIP Service gets no node port"
    );
}

#[test]
fn node_port_and_load_balancer_services_are_also_served_on_every_node_ip() {
    let yaml = format!(
        "{}{}",
        svc(
            "np",
            "{type: NodePort, clusterIP: 127.96.0.11, ports: [{port: 80, nodePort: 30080}]}"
        ),
        svc(
            "lb",
            "{type: LoadBalancer, clusterIP: 127.96.0.12, ports: [{port: 443, nodePort: 30443}]}"
        )
    );
    let snap = snapshot(&yaml);
    assert_eq!(
        table(&desired_frontends(&snap, &cfg(&["127.0.0.1", "127.0.0.2"]))),
        [
            "tcp/127.0.0.1:30080 -> default/np (Cluster)",
            "tcp/127.0.0.1:30443 -> default/lb (Cluster)",
            "tcp/127.0.0.2:30080 -> default/np (Cluster)",
            "tcp/127.0.0.2:30443 -> default/lb (Cluster)",
            "tcp/127.96.0.11:80 -> default/np (Cluster)",
            "tcp/127.96.0.12:443 -> default/lb (Cluster)",
        ]
    );
}

#[test]
fn headless_and_external_name_services_are_not_proxied() {
    let yaml = format!(
        "{}{}",
        svc(
            "headless",
            "{clusterIP: None, selector: {app: x}, ports: [{port: 80}]}"
        ),
        svc(
            "ext",
            "{type: ExternalName, externalName: example.org, ports: [{port: 80}]}"
        )
    );
    assert!(
        desired_frontends(&snapshot(&yaml), &cfg(&["127.0.0.1"]))
            .frontends
            .is_empty()
    );
}

#[test]
fn traffic_policies_pick_the_scope_of_each_frontend() {
    let yaml = svc(
        "web",
        "{type: NodePort, clusterIP: 127.96.0.13, externalTrafficPolicy: Local, internalTrafficPolicy: Cluster, ports: [{port: 80, nodePort: 30081}]}",
    ) + &svc(
        "internal",
        "{clusterIP: 127.96.0.14, internalTrafficPolicy: Local, ports: [{port: 80}]}",
    );
    assert_eq!(
        table(&desired_frontends(&snapshot(&yaml), &cfg(&["127.0.0.1"]))),
        [
            "tcp/127.0.0.1:30081 -> default/web (Local(n1))",
            "tcp/127.96.0.13:80 -> default/web (Cluster)",
            "tcp/127.96.0.14:80 -> default/internal (Local(n1))",
        ]
    );
}

#[test]
fn without_configured_node_ips_the_nodes_own_addresses_are_used() {
    let node = "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses: [{type: InternalIP, address: 127.0.0.5}]\n";
    let yaml = format!(
        "{}{node}",
        svc(
            "np",
            "{type: NodePort, clusterIP: 127.96.0.11, ports: [{port: 80, nodePort: 30080}]}"
        )
    );
    let d = desired_frontends(&snapshot(&yaml), &cfg(&[]));
    let addrs: Vec<IpAddr> = d.frontends.keys().map(|f| f.addr.ip()).collect();
    assert_eq!(
        addrs,
        [
            "127.0.0.5".parse::<IpAddr>().expect("ip"),
            "127.96.0.11".parse().expect("ip")
        ]
    );
}

#[test]
fn a_frontend_claimed_twice_is_kept_by_the_first_and_reported() {
    // The API server never allows this, but the node IP can equal a ClusterIP by misconfiguration.
    let yaml = format!(
        "{}{}",
        svc("a", "{clusterIP: 127.96.0.20, ports: [{port: 30080}]}"),
        svc(
            "b",
            "{type: NodePort, clusterIP: 127.96.0.21, ports: [{port: 80, nodePort: 30080}]}"
        )
    );
    let d = desired_frontends(&snapshot(&yaml), &cfg(&["127.96.0.20"]));
    assert_eq!(d.conflicts.len(), 1);
    assert_eq!(d.conflicts[0].kept.service, ObjectKey::new("default", "a"));
    assert_eq!(
        d.conflicts[0].refused.service,
        ObjectKey::new("default", "b")
    );
    assert_eq!(d.frontends.len(), 2);
}

mod invariants {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use portico_model::service::TrafficPolicy;
    use portico_model::{ObjectKey, Service, ServicePort, ServiceType, Snapshot, TargetPort};
    use proptest::prelude::*;

    use super::super::*;

    fn arb_service(i: u8) -> impl Strategy<Value = Service> {
        let type_ = prop_oneof![
            Just(ServiceType::ClusterIP),
            Just(ServiceType::NodePort),
            Just(ServiceType::LoadBalancer),
            Just(ServiceType::ExternalName)
        ];
        let protocol = prop_oneof![
            Just(portico_model::Protocol::TCP),
            Just(portico_model::Protocol::UDP),
            Just(portico_model::Protocol::SCTP)
        ];
        let policy = prop_oneof![Just(TrafficPolicy::Cluster), Just(TrafficPolicy::Local)];
        let ports = proptest::collection::vec((protocol, 1u16..4, any::<bool>()), 0..3);
        (type_, any::<bool>(), ports, policy.clone(), policy).prop_map(
            move |(type_, headless, ports, etp, itp)| {
                let headless = headless && type_ == ServiceType::ClusterIP;
                let has_ip = !headless && type_ != ServiceType::ExternalName;
                let node_ports = matches!(type_, ServiceType::NodePort | ServiceType::LoadBalancer);
                Service {
                    key: ObjectKey::new("default", format!("s{i}")),
                    type_,
                    cluster_ips: if has_ip {
                        vec![IpAddr::V4(Ipv4Addr::new(127, 96, 0, i))]
                    } else {
                        vec![]
                    },
                    headless,
                    external_name: (type_ == ServiceType::ExternalName)
                        .then(|| "example.org".into()),
                    ports: ports
                        .into_iter()
                        .enumerate()
                        .map(|(j, (protocol, port, np))| ServicePort {
                            name: format!("p{j}"),
                            protocol,
                            // Distinct per index: the API server refuses duplicate ports.
                            port: 10 * (j as u16 + 1) + port,
                            target_port: TargetPort::Number(port),
                            node_port: (node_ports && np)
                                .then_some(30000 + u16::from(i) * 10 + j as u16),
                        })
                        .collect(),
                    selector: None,
                    session_affinity_timeout: None,
                    external_traffic_policy: etp,
                    internal_traffic_policy: itp,
                    load_balancer_ip: None,
                    load_balancer_class: None,
                    ip_family_policy: None,
                    ip_families: vec![],
                    external_ips: vec![],
                    load_balancer_ingress: vec![],
                    publish_not_ready_addresses: false,
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                    creation_timestamp: None,
                }
            },
        )
    }

    fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
        (arb_service(1), arb_service(2), arb_service(3)).prop_map(|(a, b, c)| Snapshot {
            services: [a, b, c]
                .into_iter()
                .map(|s| (s.key.clone(), Arc::new(s)))
                .collect(),
            ..Snapshot::default()
        })
    }

    proptest! {
        #[test]
        fn frontends_are_exactly_the_cluster_ip_and_node_port_ones(snap in arb_snapshot()) {
            let cfg = AgentConfig::new("n1", vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            let d = desired_frontends(&snap, &cfg);
            prop_assert!(d.conflicts.is_empty(), "distinct IPs and node ports never conflict");
            let mut expected = 0;
            for svc in snap.services.values() {
                for p in &svc.ports {
                    let Some(protocol) = portico_l4::Protocol::of_service(p.protocol) else { continue };
                    for ip in &svc.cluster_ips {
                        expected += 1;
                        let t = &d.frontends[&Frontend { addr: SocketAddr::new(*ip, p.port), protocol }];
                        prop_assert_eq!(&t.service, &svc.key);
                        prop_assert_eq!(&t.port, &p.name);
                        prop_assert_eq!(t.scope == Scope::Cluster, svc.internal_traffic_policy == TrafficPolicy::Cluster);
                    }
                    if let (false, Some(np)) = (svc.cluster_ips.is_empty(), p.node_port) {
                        expected += 1;
                        let t = &d.frontends[&Frontend { addr: SocketAddr::from(([127, 0, 0, 1], np)), protocol }];
                        prop_assert_eq!(&t.service, &svc.key);
                        prop_assert_eq!(t.scope == Scope::Cluster, svc.external_traffic_policy == TrafficPolicy::Cluster);
                    }
                }
                if svc.headless || svc.type_ == ServiceType::ExternalName {
                    prop_assert!(d.frontends.values().all(|t| t.service != svc.key), "{} is not proxied", svc.key);
                }
            }
            prop_assert_eq!(d.frontends.len(), expected, "nothing else");
        }
    }
}
