use super::*;
use crate::manifest::parse_value;
use crate::state::Object;

fn svc(yaml: &str) -> core::Service {
    let v: serde_json::Value = serde_norway::from_str(yaml).expect("test yaml");
    match parse_value(v) {
        Some(Ok(Object::Service(s))) => s,
        other => panic!("not a service: {other:?}"),
    }
}

fn key() -> ObjectKey {
    ObjectKey::new("default", "s")
}

#[test]
fn seed_clusterip_service_defaults_target_port_protocol_and_type() {
    let s = svc(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: hellok8s}\n  ports:\n  - port: 3000\n",
    );
    let m = from_k8s(&key(), &s).expect("valid");
    assert_eq!(m.type_, ServiceType::ClusterIP);
    assert_eq!(m.ports[0].target_port, TargetPort::Number(3000));
    assert_eq!(m.ports[0].protocol, Protocol::TCP);
    assert_eq!(m.session_affinity_timeout, None);
}

#[test]
fn named_target_port_and_client_ip_affinity() {
    let s = svc(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  sessionAffinity: ClientIP\n  ports:\n  - {name: web, port: 80, targetPort: http}\n",
    );
    let m = from_k8s(&key(), &s).expect("valid");
    assert_eq!(m.ports[0].target_port, TargetPort::Name("http".into()));
    assert_eq!(m.session_affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
}

#[test]
fn headless_and_external_name() {
    let h = from_k8s(&key(), &svc("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: None, ports: [{port: 80}]}\n")).expect("valid");
    assert!(h.headless);
    assert!(h.cluster_ips.is_empty());
    let e = from_k8s(&key(), &svc("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: ExternalName, externalName: db.example.com}\n")).expect("valid");
    assert_eq!(e.external_name.as_deref(), Some("db.example.com"));
    let missing = from_k8s(
        &key(),
        &svc("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: ExternalName}\n"),
    )
    .unwrap_err();
    assert_eq!(missing.field, "spec.externalName");
}

#[test]
fn invalid_values_name_the_field() {
    let cases = [
        ("spec: {ports: [{port: 70000}]}", "spec.ports[0].port"),
        (
            "spec: {ports: [{port: 80, protocol: ICMP}]}",
            "spec.ports[0].protocol",
        ),
        (
            "spec: {ports: [{port: 80}, {port: 81}]}",
            "spec.ports[0].name",
        ),
        (
            "spec: {ports: [{port: 80, targetPort: Not_A_Name}]}",
            "spec.ports[0].targetPort",
        ),
        (
            "spec: {ports: [{port: 80, nodePort: 30001}]}",
            "spec.ports[0].nodePort",
        ),
        ("spec: {type: Balancer}", "spec.type"),
        (
            "spec: {externalTrafficPolicy: Nearby}",
            "spec.externalTrafficPolicy",
        ),
        ("spec: {clusterIP: 10.0.0.300}", "spec.clusterIPs[0]"),
        (
            "spec: {sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
    ];
    for (spec, field) in cases {
        let s = svc(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n{spec}\n"
        ));
        let err = from_k8s(&key(), &s).expect_err(spec);
        assert_eq!(err.field, field, "{spec}: {err}");
    }
}
