use std::net::IpAddr;

use portico_model::{Object, Origin};
use serde_json::json;

use super::*;

fn service(name: &str, extra: serde_json::Value) -> core::Service {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("valid Service")
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn pool(name: &str, addresses: &[&str]) -> portico_model::metallb::IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": addresses}
    }))
    .expect("valid pool")
}

fn origin(file: &str, doc: usize) -> Origin {
    Origin {
        file: Some(file.into()),
        document: Some(doc),
    }
}

/// A state with one pool and `names` as Services, written in that order in one file.
fn state_with(names: &[&str]) -> ClusterState {
    let mut st = ClusterState::default();
    st.insert(
        Object::IPAddressPool(pool("default", &["192.168.50.10-192.168.50.19"])),
        origin("pools.yaml", 1),
    );
    for (i, n) in names.iter().enumerate() {
        st.insert(
            Object::Service(service(n, json!({}))),
            origin("services.yaml", i + 1),
        );
    }
    st
}

fn external_ips(st: &ClusterState, name: &str) -> Vec<IpAddr> {
    let svc = &st.services[&ObjectKey::new("default", name)];
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| x.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn hook(dir: &std::path::Path) -> AllocateHook {
    AllocateHook::new(HookConfig {
        state_dir: Some(dir.to_owned()),
        lb_class: None,
    })
    .expect("readable state")
}

#[test]
fn services_get_status_and_the_pool_annotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = hook(dir.path());
    let mut st = state_with(&["web", "api"]);
    h.apply(&mut st);
    assert_eq!(
        external_ips(&st, "web"),
        vec!["192.168.50.10".parse::<IpAddr>().expect("literal")]
    );
    assert_eq!(
        external_ips(&st, "api"),
        vec!["192.168.50.11".parse::<IpAddr>().expect("literal")]
    );
    let ann = st.services[&ObjectKey::new("default", "web")]
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(
        ann.get(ANNOTATION_ALLOCATED_FROM_POOL).map(String::as_str),
        Some("default")
    );
    assert!(st.invalid.is_empty(), "{:?}", st.invalid);
    let view = h.view().current();
    assert_eq!(
        (view.pools[0].assigned_ipv4, view.pools[0].available_ipv4),
        (2, 8)
    );
    assert_eq!(h.pool_status(), view.pools);
}

#[test]
fn a_restart_keeps_every_ip_even_when_services_come_in_another_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["a", "b", "c", "d", "e"];
    let mut st = state_with(&names);
    hook(dir.path()).apply(&mut st);
    let before: Vec<_> = names.iter().map(|n| external_ips(&st, n)).collect();
    assert!(before.iter().all(|ips| ips.len() == 1));

    // A new process. The manifests now list the Services in reverse, after a newcomer that
    // would take the first address if the old assignments were not loaded first.
    let mut st2 = ClusterState::default();
    st2.insert(
        Object::IPAddressPool(pool("default", &["192.168.50.10-192.168.50.19"])),
        origin("pools.yaml", 1),
    );
    st2.insert(
        Object::Service(service("newcomer", json!({}))),
        origin("a-first.yaml", 1),
    );
    for (i, n) in names.iter().rev().enumerate() {
        st2.insert(
            Object::Service(service(n, json!({}))),
            origin("services.yaml", i + 1),
        );
    }
    hook(dir.path()).apply(&mut st2);
    let after: Vec<_> = names.iter().map(|n| external_ips(&st2, n)).collect();
    assert_eq!(before, after);
    let newcomer = external_ips(&st2, "newcomer");
    assert_eq!(newcomer.len(), 1);
    assert!(!before.iter().any(|b| b == &newcomer));
}

#[test]
fn the_state_file_is_written_only_when_assignments_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = state_file::path_in(dir.path());
    let mut h = hook(dir.path());
    h.apply(&mut state_with(&["web"]));
    let saved = state_file::load(&path).expect("written");
    assert_eq!(saved.assignments.len(), 1);
    assert_eq!(saved.pools, vec!["default".to_owned()]);

    std::fs::remove_file(&path).expect("remove");
    h.apply(&mut state_with(&["web"]));
    assert!(!path.exists(), "nothing changed, nothing written");
    h.apply(&mut state_with(&["web", "api"]));
    assert_eq!(
        state_file::load(&path)
            .expect("rewritten")
            .assignments
            .len(),
        2
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left behind: {leftovers:?}"
    );
}

#[test]
fn a_pending_service_is_reported_and_the_others_are_unaffected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = state_with(&["web"]);
    let greedy = service(
        "greedy",
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "10.9.9.9"}}}),
    );
    st.insert(Object::Service(greedy), origin("greedy.yaml", 1));
    let bad = service(
        "bad",
        json!({"metadata": {"annotations": {"metallb.universe.tf/loadBalancerIPs": "not-an-ip"}}}),
    );
    st.insert(Object::Service(bad), origin("bad.yaml", 1));
    hook(dir.path()).apply(&mut st);

    assert_eq!(external_ips(&st, "web").len(), 1);
    assert!(external_ips(&st, "greedy").is_empty());
    let fields: BTreeMap<String, (String, String)> = st
        .invalid
        .iter()
        .map(|e| {
            (
                e.object
                    .as_ref()
                    .map(|o| o.name.clone())
                    .unwrap_or_default(),
                (e.field.clone(), e.message.clone()),
            )
        })
        .collect();
    assert_eq!(
        fields["greedy"].0,
        "metadata.annotations[metallb.io/loadBalancerIPs]"
    );
    assert!(
        fields["greedy"]
            .1
            .contains("10.9.9.9 is not in any address pool"),
        "{:?}",
        fields["greedy"]
    );
    assert_eq!(
        fields["bad"].0,
        "metadata.annotations[metallb.universe.tf/loadBalancerIPs]"
    );
    assert!(
        st.invalid.iter().all(|e| e.origin.file.is_some()),
        "errors name their file"
    );
}

#[test]
fn a_type_change_releases_the_address_and_clears_the_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = hook(dir.path());
    let mut st = state_with(&["web"]);
    h.apply(&mut st);
    let mut st = state_with(&[]);
    let mut web = service("web", json!({"spec": {"type": "ClusterIP"}}));
    // The manifest still carries the old status (copied from somewhere): it must go.
    web.status = Some(core::ServiceStatus {
        load_balancer: Some(core::LoadBalancerStatus {
            ingress: Some(vec![core::LoadBalancerIngress {
                ip: Some("192.168.50.10".into()),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    });
    st.insert(Object::Service(web), origin("services.yaml", 1));
    h.apply(&mut st);
    assert!(external_ips(&st, "web").is_empty());
    assert!(
        state_file::load(&state_file::path_in(dir.path()))
            .expect("written")
            .assignments
            .is_empty()
    );
}

#[test]
fn an_overlapping_pool_is_reported_and_left_out_of_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = state_with(&["web"]);
    st.insert(
        Object::IPAddressPool(pool("intruder", &["192.168.50.0/24"])),
        origin("intruder.yaml", 1),
    );
    hook(dir.path()).apply(&mut st);
    assert_eq!(st.ip_address_pools.len(), 1);
    let e = st
        .invalid
        .iter()
        .find(|e| e.kind == "IPAddressPool")
        .expect("reported");
    assert_eq!(
        (e.field.as_str(), e.origin.file.as_deref()),
        ("spec.addresses[0]", Some("intruder.yaml"))
    );
    assert_eq!(external_ips(&st, "web").len(), 1);
}

#[test]
fn only_services_of_the_configured_class_are_handled() {
    let mut st = state_with(&["plain"]);
    st.insert(
        Object::Service(service(
            "classy",
            json!({"spec": {"loadBalancerClass": "portico"}}),
        )),
        origin("c.yaml", 1),
    );
    let mut h = AllocateHook::new(HookConfig {
        state_dir: None,
        lb_class: Some("portico".into()),
    })
    .expect("no file");
    h.apply(&mut st);
    assert_eq!(external_ips(&st, "classy").len(), 1);
    assert!(external_ips(&st, "plain").is_empty());
}

#[test]
fn a_corrupt_state_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(state_file::path_in(dir.path()), "{not json").expect("write");
    let err = AllocateHook::new(HookConfig {
        state_dir: Some(dir.path().to_owned()),
        lb_class: None,
    })
    .err()
    .expect("corrupt");
    assert!(err.to_string().contains("lb-allocations.json"), "{err}");
}

#[test]
fn an_unreadable_service_keeps_its_address_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = state_with(&["web", "api"]);
    hook(dir.path()).apply(&mut st);
    let (web, api) = (external_ips(&st, "web"), external_ips(&st, "api"));

    // Both Services become unreadable (a bad annotation; a spec that fails validation), then the
    // process restarts and a newcomer that sorts first arrives: their addresses stay reserved.
    let mut st2 = ClusterState::default();
    st2.insert(
        Object::IPAddressPool(pool("default", &["192.168.50.10-192.168.50.19"])),
        origin("pools.yaml", 1),
    );
    st2.insert(
        Object::Service(service("newcomer", json!({}))),
        origin("a-first.yaml", 1),
    );
    let bad_ann = service(
        "web",
        json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "garbage"}}}),
    );
    st2.insert(Object::Service(bad_ann), origin("services.yaml", 1));
    st2.insert(
        Object::Service(service(
            "api",
            json!({"spec": {"loadBalancerIP": "garbage"}}),
        )),
        origin("services.yaml", 2),
    );
    hook(dir.path()).apply(&mut st2);

    assert_eq!(external_ips(&st2, "web"), web);
    let newcomer = external_ips(&st2, "newcomer");
    assert_eq!(newcomer.len(), 1);
    assert!(
        newcomer != web && newcomer != api,
        "the newcomer got a free address"
    );
    let saved = state_file::load(&state_file::path_in(dir.path())).expect("written");
    assert_eq!(
        saved.assignments[&ObjectKey::new("default", "api")].ips,
        api,
        "api's address stays reserved"
    );
    let reported: Vec<_> = st2
        .invalid
        .iter()
        .filter_map(|e| e.object.as_ref().map(|o| o.name.clone()))
        .collect();
    assert_eq!(
        reported,
        ["web"],
        "api's validation error is translate's to report"
    );
}

#[test]
fn with_no_pool_at_all_the_assignments_are_held_not_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = hook(dir.path());
    let mut st = state_with(&["web"]);
    h.apply(&mut st);
    let web = external_ips(&st, "web");

    // The pools file is being rewritten: no pool for a moment.
    let mut st = state_with(&["web"]);
    st.ip_address_pools.clear();
    h.apply(&mut st);
    assert_eq!(external_ips(&st, "web"), web, "status kept");
    assert_eq!(
        state_file::load(&state_file::path_in(dir.path()))
            .expect("file")
            .assignments
            .len(),
        1
    );

    // A restart during that moment keeps it too, and the pools coming back change nothing.
    let mut h2 = hook(dir.path());
    let mut st = state_with(&["web"]);
    st.ip_address_pools.clear();
    h2.apply(&mut st);
    assert_eq!(external_ips(&st, "web"), web);
    let mut st = state_with(&["newcomer", "web"]);
    h2.apply(&mut st);
    assert_eq!(external_ips(&st, "web"), web);
}
