use std::net::{IpAddr, SocketAddr};

use portico_model::state::Object;
use portico_model::{ClusterState, Origin, translate};
use serde_json::json;

use super::*;
use crate::{NoBackend, Target, upstreams};
use portico_model::ObjectKey;

fn snapshot(services: &[serde_json::Value], extra: &[Object]) -> Snapshot {
    let mut state = ClusterState::default();
    for s in services {
        state.insert(
            Object::Service(serde_json::from_value(s.clone()).expect("service")),
            Origin::default(),
        );
    }
    for o in extra {
        state.insert(o.clone(), Origin::default());
    }
    let snap = translate(&state, 1);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    snap
}

fn lb(
    name: &str,
    ips: &[&str],
    ports: serde_json::Value,
    annotations: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": ports},
        "status": {"loadBalancer": {"ingress": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()}},
    })
}

fn fe(addr: &str, protocol: Protocol) -> Frontend {
    Frontend {
        addr: addr.parse().expect("literal"),
        protocol,
    }
}

#[test]
fn every_ip_port_and_protocol_of_a_load_balancer_gets_a_listener() {
    let ports = json!([
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "sig", "port": 9, "protocol": "SCTP"},
    ]);
    let web = lb("web", &["192.0.2.10", "2001:db8::10"], ports, json!({}));
    let cluster_ip = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "internal", "namespace": "default"},
                            "spec": {"ports": [{"port": 80}]}});
    let pending = lb("pending", &[], json!([{"port": 80}]), json!({}));
    let want = desired(
        &snapshot(&[web, cluster_ip, pending], &[]),
        &L4Config::default(),
    );
    let keys: Vec<Frontend> = want.keys().copied().collect();
    assert_eq!(
        keys,
        vec![
            fe("192.0.2.10:53", Protocol::Udp),
            fe("192.0.2.10:80", Protocol::Tcp),
            fe("[2001:db8::10]:53", Protocol::Udp),
            fe("[2001:db8::10]:80", Protocol::Tcp),
        ],
        "SCTP is not carried; ClusterIP and IP-less Services get nothing"
    );
    assert_eq!(want[&keys[1]].port, "http");
}

#[test]
fn proxy_protocol_follows_the_flag_unless_the_annotation_says_otherwise() {
    let on = lb(
        "on",
        &["192.0.2.1"],
        json!([{"port": 80}]),
        json!({PROXY_PROTOCOL_ANNOTATION: "v2"}),
    );
    let off = lb(
        "off",
        &["192.0.2.2"],
        json!([{"port": 80}]),
        json!({PROXY_PROTOCOL_ANNOTATION: "none"}),
    );
    let plain = lb("plain", &["192.0.2.3"], json!([{"port": 80}]), json!({}));
    let snap = snapshot(&[on, off, plain], &[]);
    let pp = |cfg: &L4Config, ip: &str| {
        desired(&snap, cfg)[&fe(&format!("{ip}:80"), Protocol::Tcp)].proxy_protocol
    };
    let default = L4Config::default();
    let global = L4Config {
        proxy_protocol: true,
        ..Default::default()
    };
    assert_eq!(
        [
            pp(&default, "192.0.2.1"),
            pp(&default, "192.0.2.2"),
            pp(&default, "192.0.2.3")
        ],
        [true, false, false]
    );
    assert_eq!(
        [
            pp(&global, "192.0.2.1"),
            pp(&global, "192.0.2.2"),
            pp(&global, "192.0.2.3")
        ],
        [true, false, true]
    );
}

#[test]
fn a_shared_address_and_port_goes_to_the_first_service() {
    let a = lb("a", &["192.0.2.1"], json!([{"port": 80}]), json!({}));
    let b = lb("b", &["192.0.2.1"], json!([{"port": 80}, ]), json!({}));
    let want = desired(&snapshot(&[b, a], &[]), &L4Config::default());
    assert_eq!(want.len(), 1);
    assert_eq!(want[&fe("192.0.2.1:80", Protocol::Tcp)].service.name, "a");
}

fn node(name: &str, ip: &str, ready: bool, exclude: bool) -> Object {
    let mut labels = json!({});
    if exclude {
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
    }
    Object::Node(
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
        .expect("node"),
    )
}

fn endpoints_on(node: &str) -> Object {
    Object::Endpoints(
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": node}], "ports": [{"port": 8080}]}]}))
        .expect("endpoints"),
    )
}

#[test]
fn nodeport_upstreams_are_ready_nodes_not_excluded() {
    let mut web = lb(
        "web",
        &["192.0.2.10"],
        json!([{"port": 80, "nodePort": 30080}]),
        json!({}),
    );
    let nodes = [
        node("a", "10.0.0.1", true, false),
        node("b", "10.0.0.2", false, false),
        node("c", "10.0.0.3", true, true),
        node("d", "10.0.0.4", true, false),
        endpoints_on("d"),
    ];
    let target = |upstream: Upstream| Target {
        service: ObjectKey::new("default", "web"),
        port: String::new(),
        scope: L4Config {
            upstream,
            ..L4Config::default()
        }
        .scope(),
        proxy_protocol: false,
    };
    let upstreams = |snap: &Snapshot, upstream: Upstream, fam: IpAddr| {
        upstreams(snap, &target(upstream), fam).map(|u| u.addrs())
    };
    let fam: IpAddr = "192.0.2.10".parse().expect("literal");
    let snap = snapshot(std::slice::from_ref(&web), &nodes);
    let sa = |s: &str| -> SocketAddr { s.parse().expect("literal") };
    assert_eq!(
        upstreams(&snap, Upstream::NodePort, fam),
        Ok(vec![sa("10.0.0.1:30080"), sa("10.0.0.4:30080")])
    );
    assert_eq!(
        upstreams(&snap, Upstream::Endpoints, fam),
        Ok(vec![sa("10.244.1.5:8080")])
    );

    web["spec"]["externalTrafficPolicy"] = json!("Local");
    let snap = snapshot(std::slice::from_ref(&web), &nodes);
    assert_eq!(
        upstreams(&snap, Upstream::NodePort, fam),
        Ok(vec![sa("10.0.0.4:30080")]),
        "only d has the endpoint"
    );
    let snap = snapshot(std::slice::from_ref(&web), &nodes[..4]);
    assert_eq!(
        upstreams(&snap, Upstream::NodePort, fam),
        Err(NoBackend::NoNodes {
            service: ObjectKey::new("default", "web"),
            local: true
        })
    );

    let no_np = lb("web", &["192.0.2.10"], json!([{"port": 80}]), json!({}));
    let snap = snapshot(&[no_np], &nodes);
    assert!(matches!(
        upstreams(&snap, Upstream::NodePort, fam),
        Err(NoBackend::NoNodePort { .. })
    ));
}

#[test]
fn upstream_mode_parses_with_a_clear_error() {
    assert_eq!("nodeport".parse::<Upstream>(), Ok(Upstream::NodePort));
    assert_eq!("endpoints".parse::<Upstream>(), Ok(Upstream::Endpoints));
    let e = "pods".parse::<Upstream>().expect_err("invalid");
    assert_eq!(
        e.to_string(),
        "--l4-upstream: \"pods\" is not one of endpoints, nodeport"
    );
}
