use super::*;
use crate::manifest::parse_file;
use crate::translate;

fn state(yaml: &str) -> ClusterState {
    let mut s = ClusterState::default();
    for (origin, r) in parse_file("test.yaml", yaml) {
        s.insert(r.expect("valid test manifest"), origin);
    }
    s
}

fn pod(name: &str, ip: &str, ready: bool, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: hello}}}}\nspec:\n  containers:\n  - name: c\n    image: x\n{extra}status:\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"{}\"}}]\n",
        if ready { "True" } else { "False" }
    )
}

const SVC: &str = "---\napiVersion: v1\nkind: Service\nmetadata: {name: hello}\nspec:\n  selector: {app: hello}\n  ports: [{port: 3000}]\n";

#[test]
fn endpoints_follow_ready_pods() {
    let mut s = state(&format!(
        "{SVC}{}{}{}",
        pod("a", "127.0.10.1", true, ""),
        pod("b", "127.0.10.2", true, ""),
        pod("c", "127.0.10.3", false, "")
    ));
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    let eps = &snap.endpoints[&ObjectKey::new("default", "hello")];
    let usable: Vec<String> = eps
        .port("")
        .expect("port")
        .usable
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    assert_eq!(
        usable,
        ["127.0.10.1:3000", "127.0.10.2:3000"],
        "the not-ready pod is out of rotation"
    );
    assert_eq!(eps.port("").expect("port").all.len(), 3);
}

#[test]
fn named_target_port_resolves_per_pod() {
    let named = |port: u16| format!("    ports: [{{name: http, containerPort: {port}}}]\n");
    let svc = SVC.replace(
        "ports: [{port: 3000}]",
        "ports: [{port: 80, targetPort: http}]",
    );
    let mut s = state(&format!(
        "{svc}{}{}{}",
        pod("a", "127.0.10.1", true, &named(8080)),
        pod("b", "127.0.10.2", true, &named(9090)),
        pod("c", "127.0.10.3", true, "")
    ));
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    let usable: Vec<String> = snap.endpoints[&ObjectKey::new("default", "hello")]
        .port("")
        .expect("port")
        .usable
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    assert_eq!(
        usable,
        ["127.0.10.1:8080", "127.0.10.2:9090"],
        "pod c has no port named http"
    );
}

#[test]
fn cluster_ips_and_node_ports_are_assigned_stably_and_conflicts_refused() {
    let yaml = "---\napiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec: {type: NodePort, ports: [{port: 3000, nodePort: 30000}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: auto}\nspec: {type: NodePort, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec: {type: NodePort, ports: [{port: 81, nodePort: 30000}]}\n";
    let cfg = ControlPlaneConfig::default();
    let mut alloc = Allocations::default();
    let mut s = state(yaml);
    complete(&mut s, &cfg, &mut alloc);
    let snap = translate(&s, 1);
    // Without creation timestamps the order is the order written: np asked for 30000 first,
    // clash asked too and is refused whole, as the API server would refuse to create it.
    assert!(snap.services.contains_key(&ObjectKey::new("default", "np")));
    assert!(
        !snap
            .services
            .contains_key(&ObjectKey::new("default", "clash"))
    );
    let err = snap
        .errors
        .iter()
        .find(|e| e.object == Some(ObjectKey::new("default", "clash")))
        .expect("conflict reported");
    assert_eq!(err.field, "spec.ports[0].nodePort");
    let auto = &snap.services[&ObjectKey::new("default", "auto")];
    let np = auto.ports[0].node_port.expect("assigned");
    assert!((30000..=32767).contains(&np) && np != 30000);
    let ip = auto.cluster_ips[0];
    assert!(cfg.service_cidr.contains(&ip));

    // A fresh allocator (a restart) gives the same ClusterIP: the first choice is a hash of the key.
    let mut s2 = state(yaml);
    complete(&mut s2, &cfg, &mut Allocations::default());
    assert_eq!(
        translate(&s2, 1).services[&ObjectKey::new("default", "auto")].cluster_ips[0],
        ip
    );
}

#[test]
fn requested_cluster_ip_is_honoured_and_headless_gets_none() {
    let yaml = "---\napiVersion: v1\nkind: Service\nmetadata: {name: fixed}\nspec: {clusterIP: 127.96.0.10, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: headless}\nspec: {clusterIP: None, ports: [{port: 80}]}\n";
    let mut s = state(yaml);
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    assert_eq!(
        snap.services[&ObjectKey::new("default", "fixed")].cluster_ips,
        ["127.96.0.10".parse::<IpAddr>().expect("ip")]
    );
    assert!(
        snap.services[&ObjectKey::new("default", "headless")]
            .cluster_ips
            .is_empty()
    );
}

#[test]
fn selectorless_service_uses_manual_endpoints() {
    let yaml = "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {ports: [{port: 80, targetPort: 8080}]}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets:\n- addresses: [{ip: 127.0.20.1}, {ip: 127.0.20.2}]\n  ports: [{port: 8080}]\n";
    let mut s = state(yaml);
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    let eps = &snap.endpoints[&ObjectKey::new("default", "ext")];
    assert_eq!(eps.port("").expect("port").usable.len(), 2);
}

#[test]
fn terminating_endpoints_are_used_only_when_none_is_ready() {
    let deleting = |name: &str, ip: &str| {
        pod(name, ip, true, "").replace(
            "labels: {app: hello}}",
            "labels: {app: hello}, deletionTimestamp: \"2026-01-01T00:00:00Z\"}",
        )
    };
    let mut s = state(&format!("{SVC}{}", deleting("a", "127.0.10.1")));
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    let usable = &snap.endpoints[&ObjectKey::new("default", "hello")]
        .port("")
        .expect("port")
        .usable;
    assert_eq!(usable.len(), 1);
    assert!(usable[0].terminating);
    let mut s = state(&format!(
        "{SVC}{}{}",
        deleting("a", "127.0.10.1"),
        pod("b", "127.0.10.2", true, "")
    ));
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&s, 1);
    let usable = &snap.endpoints[&ObjectKey::new("default", "hello")]
        .port("")
        .expect("port")
        .usable;
    assert_eq!(
        usable
            .iter()
            .map(|b| b.addr.to_string())
            .collect::<Vec<_>>(),
        ["127.0.10.2:3000"]
    );
}

#[test]
fn a_requested_cluster_ip_outside_the_service_range_is_refused() {
    // Fails before: such a Service was accepted and served on an address the API server
    // would never have given it.
    let svc = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n{spec}  ports: [{{port: 80}}]\n"
        )
    };
    let mut s = state(
        &[
            svc("inside", "  clusterIP: 127.96.0.10\n"),
            svc("outside", "  clusterIP: 10.96.0.10\n"),
            svc("listed", "  clusterIPs: [127.96.0.11, 10.0.0.1]\n"),
            svc("headless", "  clusterIP: None\n"),
            svc("headless-listed", "  clusterIPs: [None]\n"),
            svc("allocated", ""),
        ]
        .concat(),
    );
    complete(
        &mut s,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let kept: Vec<&str> = s.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(kept, ["allocated", "headless", "headless-listed", "inside"]);
    let errors: Vec<String> = s.invalid.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "Service default/outside in test.yaml (document 2): spec.clusterIP: 10.96.0.10: provided IP is not in the valid range. The range of valid IPs is 127.96.0.0/16",
            "Service default/listed in test.yaml (document 3): spec.clusterIPs[1]: 10.0.0.1: provided IP is not in the valid range. The range of valid IPs is 127.96.0.0/16",
        ]
    );
}
