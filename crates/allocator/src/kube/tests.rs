//! The controller against the in-process fake API server: status written, a restart keeps every
//! IP, and two replicas never both allocate.

use std::collections::BTreeSet;
use std::time::Duration;

use portico_testkit::fake_api::FakeApiServer;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::*;

fn config(identity: &str) -> KubeConfig {
    let mut lease = LeaseConfig::new("portico-lb-controller", "portico-system", identity);
    lease.duration = Duration::from_secs(2);
    lease.renew_every = Duration::from_millis(200);
    KubeConfig {
        lb_class: None,
        lease,
    }
}

fn start(
    api: &FakeApiServer,
    identity: &str,
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(api.client(), config(identity), stop.clone()));
    (stop, task)
}

async fn stop(ctl: (CancellationToken, JoinHandle<anyhow::Result<()>>)) {
    ctl.0.cancel();
    let joined = tokio::time::timeout(Duration::from_secs(10), ctl.1)
        .await
        .expect("controller stops");
    joined.expect("no panic").expect("clean exit");
}

fn pool(api: &FakeApiServer, name: &str, addresses: &[&str]) {
    api.apply(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": addresses}
    }));
}

fn service(api: &FakeApiServer, name: &str, annotations: Value) {
    api.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}
    }));
}

fn external_ip(api: &FakeApiServer, name: &str) -> Option<String> {
    let svc = api.get("v1", "Service", "default", name)?;
    svc.pointer("/status/loadBalancer/ingress/0/ip")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Poll `f` until it returns `Some`, for at most 15 s.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn events_about(api: &FakeApiServer, name: &str, reason: &str) -> Vec<Value> {
    api.events()
        .into_iter()
        .filter(|e| {
            e["reason"] == reason
                && e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
        })
        .collect()
}

fn reporter(e: &Value) -> String {
    e["reportingInstance"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn status_annotation_events_and_pool_counters_are_written() {
    let api = FakeApiServer::start().await;
    pool(&api, "default", &["192.168.60.10-192.168.60.19"]);
    service(&api, "web", json!({}));
    service(
        &api,
        "greedy",
        json!({"metallb.io/loadBalancerIPs": "10.1.1.1"}),
    );
    let ctl = start(&api, "replica-a");

    let ip = eventually("web's address", || external_ip(&api, "web")).await;
    assert_eq!(ip, "192.168.60.10");
    let svc = api.get("v1", "Service", "default", "web").expect("exists");
    assert_eq!(
        svc.pointer("/metadata/annotations/metallb.io~1ip-allocated-from-pool"),
        Some(&json!("default"))
    );
    eventually("IPAllocated event", || {
        events_about(&api, "web", "IPAllocated").pop()
    })
    .await;
    let failed = eventually("AllocationFailed event", || {
        events_about(&api, "greedy", "AllocationFailed").pop()
    })
    .await;
    assert!(
        failed["note"]
            .as_str()
            .unwrap_or_default()
            .contains("10.1.1.1 is not in any address pool"),
        "{failed}"
    );
    assert_eq!(external_ip(&api, "greedy"), None);
    let counters = eventually("pool status", || {
        let p = api.get(
            "metallb.io/v1beta1",
            "IPAddressPool",
            "metallb-system",
            "default",
        )?;
        p.get("status").cloned()
    })
    .await;
    assert_eq!(
        (
            counters["assignedIPv4"].as_i64(),
            counters["availableIPv4"].as_i64()
        ),
        (Some(1), Some(9))
    );

    // A type change releases the address and clears what the controller wrote.
    let mut web = api.get("v1", "Service", "default", "web").expect("exists");
    web["spec"]["type"] = json!("ClusterIP");
    api.apply(web);
    // Two writes (status, then the annotation): wait for both rather than racing the second.
    eventually("cleared status and annotation", || {
        let svc = api.get("v1", "Service", "default", "web")?;
        let annotated = svc
            .pointer("/metadata/annotations/metallb.io~1ip-allocated-from-pool")
            .is_some_and(|v| !v.is_null());
        (external_ip(&api, "web").is_none() && !annotated).then_some(())
    })
    .await;
    stop(ctl).await;
}

#[tokio::test]
async fn a_restart_keeps_every_ip() {
    let api = FakeApiServer::start().await;
    pool(&api, "default", &["192.168.61.0/28"]);
    let names = ["s1", "s2", "s3", "s4"];
    for n in names {
        service(&api, n, json!({}));
    }
    let first = start(&api, "replica-a");
    let before: Vec<String> = {
        let mut out = Vec::new();
        for n in names {
            out.push(eventually("an address", || external_ip(&api, n)).await);
        }
        out
    };
    stop(first).await;

    // While no controller runs, a Service arrives whose name sorts first: were the existing
    // assignments not loaded first, it would take s1's address.
    service(&api, "a-newcomer", json!({}));
    let second = start(&api, "replica-b");
    let newcomer = eventually("the newcomer's address", || external_ip(&api, "a-newcomer")).await;
    let after: Vec<String> = names
        .iter()
        .map(|n| external_ip(&api, n).unwrap_or_default())
        .collect();
    assert_eq!(before, after);
    assert!(!before.contains(&newcomer));
    stop(second).await;
}

#[tokio::test]
async fn two_replicas_never_both_allocate() {
    let api = FakeApiServer::start().await;
    pool(&api, "default", &["192.168.62.0/28"]);
    for i in 0..5 {
        service(&api, &format!("s{i}"), json!({}));
    }
    let a = start(&api, "replica-a");
    let b = start(&api, "replica-b");
    for i in 0..5 {
        eventually("an address", || external_ip(&api, &format!("s{i}"))).await;
    }
    let holder = |api: &FakeApiServer| {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "portico-system",
            "portico-lb-controller",
        )
        .and_then(|l| {
            l.pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    let leader = eventually("a lease holder", || holder(&api)).await;
    // Let both replicas run several renewal periods: only the leader ever writes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let allocators: BTreeSet<String> = api
        .events()
        .iter()
        .filter(|e| e["reason"] == "IPAllocated")
        .map(reporter)
        .collect();
    assert_eq!(allocators, BTreeSet::from([leader.clone()]));

    // The leader goes away; the other replica takes over and serves a new Service.
    let (gone, stays) = if leader == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    stop(gone).await;
    service(&api, "late", json!({}));
    let late = eventually("the late Service's address", || external_ip(&api, "late")).await;
    let by = eventually("its event", || {
        events_about(&api, "late", "IPAllocated").pop()
    })
    .await;
    assert_ne!(reporter(&by), leader);
    let ips: BTreeSet<String> = (0..5)
        .filter_map(|i| external_ip(&api, &format!("s{i}")))
        .collect();
    assert_eq!(ips.len(), 5, "five distinct addresses");
    assert!(!ips.contains(&late));
    stop(stays).await;
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_only_after_its_lease_expires() {
    let api = FakeApiServer::start().await;
    pool(&api, "default", &["192.168.63.0/28"]);
    service(&api, "s0", json!({}));
    let a = start(&api, "replica-a");
    eventually("s0's address", || external_ip(&api, "s0")).await;
    let b = start(&api, "replica-b");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // replica-a dies without releasing its lease.
    a.1.abort();
    a.0.cancel(); // stops its reflectors only; the lease stays as it was
    let crashed = tokio::time::Instant::now();
    service(&api, "late", json!({}));
    eventually("the late Service's address", || external_ip(&api, "late")).await;
    let waited = crashed.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "took over after {waited:?}, before the 2 s lease could expire"
    );
    let by = eventually("its event", || {
        events_about(&api, "late", "IPAllocated").pop()
    })
    .await;
    assert_eq!(reporter(&by), "replica-b");
    assert_ne!(external_ip(&api, "late"), external_ip(&api, "s0"));
    stop(b).await;
}

#[tokio::test]
async fn the_lease_changes_hands_only_after_the_holder_stops_renewing_for_a_lease_duration() {
    let api = FakeApiServer::start().await;
    let cfg = |id: &str| {
        let mut c = LeaseConfig::new("lease", "portico-system", id);
        // Long against the 200 ms renew period, so a stalled scheduler on a busy machine
        // cannot make a renewing holder look dead.
        c.duration = Duration::from_millis(1500);
        c
    };
    let mut a = Elector::new(api.client(), cfg("a"));
    let mut b = Elector::new(api.client(), cfg("b"));
    assert!(a.try_acquire_or_renew().await.expect("api"));
    assert!(!b.try_acquire_or_renew().await.expect("api"));
    // While a renews, b never wins, however long it waits.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(a.try_acquire_or_renew().await.expect("api"));
        assert!(!b.try_acquire_or_renew().await.expect("api"));
    }
    // a stops renewing: b wins once the record has been still for a lease duration.
    let stopped = tokio::time::Instant::now();
    while !b.try_acquire_or_renew().await.expect("api") {
        assert!(
            stopped.elapsed() < Duration::from_secs(8),
            "b never took over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stopped.elapsed() >= Duration::from_millis(1450),
        "took over after {:?}",
        stopped.elapsed()
    );
    assert!(!a.try_acquire_or_renew().await.expect("api"));
    assert!(!a.is_leader());
    let lease = api
        .get("coordination.k8s.io/v1", "Lease", "portico-system", "lease")
        .expect("exists");
    assert_eq!(lease.pointer("/spec/holderIdentity"), Some(&json!("b")));
    assert_eq!(lease.pointer("/spec/leaseTransitions"), Some(&json!(1)));
    // b releases on shutdown; a takes over at once.
    b.release().await.expect("api");
    assert!(a.try_acquire_or_renew().await.expect("api"));
}

#[tokio::test]
async fn addresses_metallb_gave_are_kept_and_nothing_is_cleared_while_there_is_no_pool() {
    let api = FakeApiServer::start().await;
    // Taking over from MetalLB: the Services already carry addresses in their status.
    for (name, ip) in [("old-a", "192.168.64.7"), ("old-b", "192.168.64.3")] {
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]},
        });
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        api.apply(svc);
    }
    let ctl = start(&api, "replica-a");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        external_ip(&api, "old-a").as_deref(),
        Some("192.168.64.7"),
        "no pool: status left alone"
    );

    pool(&api, "default", &["192.168.64.0/29"]);
    service(&api, "fresh", json!({}));
    let fresh = eventually("the new Service's address", || external_ip(&api, "fresh")).await;
    assert_eq!(fresh, "192.168.64.0");
    assert_eq!(external_ip(&api, "old-a").as_deref(), Some("192.168.64.7"));
    assert_eq!(external_ip(&api, "old-b").as_deref(), Some("192.168.64.3"));
    eventually("the pool annotation on a kept Service", || {
        let svc = api.get("v1", "Service", "default", "old-a")?;
        (svc.pointer("/metadata/annotations/metallb.io~1ip-allocated-from-pool")
            == Some(&json!("default")))
        .then_some(())
    })
    .await;
    assert!(
        events_about(&api, "old-a", "IPAllocated").is_empty(),
        "a kept address is not a new allocation"
    );
    stop(ctl).await;
}

#[tokio::test]
async fn an_overlapping_pool_gets_a_warning_event_and_the_other_keeps_serving() {
    let api = FakeApiServer::start().await;
    pool(&api, "first", &["192.168.65.0/29"]);
    let ctl = start(&api, "replica-a");
    service(&api, "web", json!({}));
    eventually("web's address", || external_ip(&api, "web")).await;
    pool(&api, "second", &["192.168.65.4-192.168.65.20"]);
    let ev = eventually("InvalidAddressPool event", || {
        events_about(&api, "second", "InvalidAddressPool").pop()
    })
    .await;
    assert!(
        ev["note"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.addresses[0]"),
        "{ev}"
    );
    service(&api, "api", json!({}));
    assert_eq!(
        eventually("api's address", || external_ip(&api, "api")).await,
        "192.168.65.1"
    );
    stop(ctl).await;
}

#[tokio::test]
async fn a_missing_lease_namespace_ends_the_controller_with_the_reason() {
    let api = FakeApiServer::builder().namespace_lifecycle().start().await;
    let (_stop, task) = start(&api, "replica-a");
    let ended = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the controller stops instead of retrying forever")
        .expect("no panic");
    let err = ended.expect_err("an error, not a clean exit");
    assert!(
        err.to_string()
            .contains("\"portico-system\" does not exist"),
        "{err:#}"
    );
}

#[tokio::test]
async fn the_lease_is_taken_once_its_namespace_exists() {
    let api = FakeApiServer::builder().namespace_lifecycle().start().await;
    api.apply(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "portico-system"}}),
    );
    let ctl = start(&api, "replica-a");
    eventually("the lease", || {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "portico-system",
            "portico-lb-controller",
        )
    })
    .await;
    stop(ctl).await;
}

#[test]
fn identities_are_unique_per_process_without_a_pod_name() {
    // Two replicas started without POD_NAME on one host (or two hosts with the same name)
    // must not share an identity, or both would lead.
    let (a, b) = (lease::identity_from(None), lease::identity_from(None));
    assert_ne!(a, b, "a random suffix per replica");
    assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    assert_eq!(
        lease::identity_from(Some("portico-lb-7d9f".into())),
        "portico-lb-7d9f"
    );
}
