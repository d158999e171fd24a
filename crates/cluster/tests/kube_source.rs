//! The kube-rs source against the fake API server: initial list, watch events, recovery, status
//! writes, missing CRDs, and the whole way to a published Snapshot.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use portico_cluster::kube_source::{self, status};
use portico_cluster::{Pipeline, StateRx, state_channel};
use portico_model::{ClusterState, ObjectKey, Snapshot};
use portico_runtime::Publisher;
use portico_testkit::FakeApiServer;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn service(ns: &str, name: &str, extra: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}], "clusterIP": "10.96.0.10"},
    });
    if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    s
}

fn slice(ns: &str, svc: &str, ips: &[&str]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-abcde"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// One of everything the source reflects.
fn seed(fake: &FakeApiServer) {
    fake.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    fake.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}], "conditions": [{"type": "Ready", "status": "True"}]}}));
    fake.apply(service("shop", "web", json!({})));
    fake.apply(slice("shop", "web", &["10.0.0.1"]));
    fake.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "tls", "namespace": "shop"},
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}));
    fake.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "password", "namespace": "shop"}, "data": {"p": "eA=="}}));
    fake.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "portico"}, "spec": {"controller": "portico.dev/ingress"}}));
    fake.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ingressClassName": "portico", "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));
}

fn seed_metallb(fake: &FakeApiServer) {
    fake.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "pool", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.1.240-192.168.1.250"]}}));
    fake.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": "metallb-system"}}));
}

struct Running {
    rx: StateRx,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start(fake: &FakeApiServer) -> Self {
        let (tx, rx) = state_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(kube_source::run(fake.client(), tx, shutdown.clone()));
        Self { rx, shutdown, task }
    }

    /// Wait until a state satisfies `pred`; every state seen on the way must satisfy `always`.
    async fn until_checked(
        &mut self,
        what: &str,
        always: impl Fn(&ClusterState) -> bool,
        pred: impl Fn(&ClusterState) -> bool,
    ) -> Arc<ClusterState> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(state) = self.rx.borrow_and_update().clone() {
                assert!(
                    always(&state),
                    "a state broke an invariant while waiting for {what}"
                );
                if pred(&state) {
                    return state;
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("the source stopped while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; last state: {:?}",
                    self.rx.borrow().as_ref().map(|s| s
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>())
                ),
            }
        }
    }

    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&ClusterState) -> bool,
    ) -> Arc<ClusterState> {
        self.until_checked(what, |_| true, pred).await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the source stops on shutdown");
        r.expect("the source task does not panic")
            .expect("the source ends cleanly");
    }
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(ns, name)
}

fn labels_of(state: &ClusterState, k: &ObjectKey) -> Option<Value> {
    state
        .services
        .get(k)
        .and_then(|s| s.metadata.labels.as_ref())
        .map(|l| json!(l))
}

#[tokio::test]
async fn the_initial_list_gives_every_kind_and_nothing_is_sent_before_it_completes() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    seed_metallb(&fake);
    fake.hold_lists(true);
    let mut src = Running::start(&fake);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        src.rx.borrow().is_none(),
        "nothing is sent while lists are pending"
    );
    fake.hold_lists(false);

    let state = src.until("the initial state", |_| true).await;
    assert_eq!(
        state.services.keys().collect::<Vec<_>>(),
        [&key("shop", "web")]
    );
    assert_eq!(
        state.endpoint_slices.keys().collect::<Vec<_>>(),
        [&key("shop", "web-abcde")]
    );
    assert_eq!(
        state.nodes.keys().collect::<Vec<_>>(),
        [&ObjectKey::cluster("n1")]
    );
    assert_eq!(
        state.namespaces.keys().collect::<Vec<_>>(),
        [&ObjectKey::cluster("shop")]
    );
    assert_eq!(
        state.secrets.keys().collect::<Vec<_>>(),
        [&key("shop", "tls")],
        "only TLS secrets are reflected"
    );
    assert_eq!(
        state.ingresses.keys().collect::<Vec<_>>(),
        [&key("shop", "web")]
    );
    assert_eq!(
        state.ingress_classes.keys().collect::<Vec<_>>(),
        [&ObjectKey::cluster("portico")]
    );
    assert_eq!(
        state.ip_address_pools.keys().collect::<Vec<_>>(),
        [&key("metallb-system", "pool")]
    );
    assert_eq!(
        state.l2_advertisements.keys().collect::<Vec<_>>(),
        [&key("metallb-system", "l2")]
    );
    assert!(state.invalid.is_empty());

    let secret_list = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/secrets")
        .expect("secrets are listed");
    assert_eq!(
        secret_list.query.get("fieldSelector").map(String::as_str),
        Some("type=kubernetes.io/tls")
    );
    src.stop().await;
}

#[tokio::test]
async fn watch_add_modify_and_delete_each_reach_the_channel() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let mut src = Running::start(&fake);
    src.until("the initial state", |s| s.services.len() == 1)
        .await;

    fake.apply(service("shop", "api", json!({})));
    src.until("an added Service", |s| {
        s.services.contains_key(&key("shop", "api"))
    })
    .await;

    fake.apply(service(
        "shop",
        "api",
        json!({"metadata": {"name": "api", "namespace": "shop", "labels": {"v": "2"}}}),
    ));
    src.until("a modified Service", |s| {
        labels_of(s, &key("shop", "api")) == Some(json!({"v": "2"}))
    })
    .await;

    fake.delete("v1", "Service", "shop", "api");
    src.until("a deleted Service", |s| {
        !s.services.contains_key(&key("shop", "api"))
    })
    .await;

    // A TLS secret that becomes Opaque leaves the selection.
    fake.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "tls", "namespace": "shop"}}));
    src.until("a secret leaving the field selector", |s| {
        s.secrets.is_empty()
    })
    .await;
    src.stop().await;
}

#[tokio::test]
async fn a_burst_of_changes_is_coalesced() {
    let fake = FakeApiServer::start().await;
    let mut src = Running::start(&fake);
    src.until("the initial state", |_| true).await;
    let mut states = 0;
    for i in 0..200 {
        fake.apply(service("load", &format!("s{i}"), json!({})));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::timeout_at(deadline, src.rx.changed())
            .await
            .expect("all 200 arrive")
            .expect("source alive");
        states += 1;
        if src
            .rx
            .borrow()
            .as_ref()
            .is_some_and(|s| s.services.len() == 200)
        {
            break;
        }
    }
    assert!(states < 50, "200 changes in a burst gave {states} states");
    src.stop().await;
}

#[tokio::test]
async fn after_broken_watches_the_source_resumes_without_losing_updates() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    fake.apply(service("shop", "old", json!({})));
    let mut src = Running::start(&fake);
    src.until("the initial state", |s| s.services.len() == 2)
        .await;
    let lists_before = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/services" && !r.is_watch())
        .count();

    // While the watches are down, three changes happen.
    fake.hold_watches(true);
    fake.break_watches();
    fake.apply(service("shop", "new", json!({})));
    fake.apply(service(
        "shop",
        "web",
        json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"v": "2"}}}),
    ));
    fake.delete("v1", "Service", "shop", "old");
    fake.hold_watches(false);

    let web = key("shop", "web");
    src.until_checked(
        "the three changes",
        |s| s.services.contains_key(&web),
        |s| {
            s.services.contains_key(&key("shop", "new"))
                && !s.services.contains_key(&key("shop", "old"))
                && labels_of(s, &web) == Some(json!({"v": "2"}))
        },
    )
    .await;
    let lists_after = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/services" && !r.is_watch())
        .count();
    assert_eq!(
        lists_before, lists_after,
        "resumed from the resourceVersion, no re-list"
    );
    src.stop().await;
}

#[tokio::test]
async fn after_410_expired_the_source_relists_and_never_clears_its_store() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let mut src = Running::start(&fake);
    src.until("the initial state", |s| s.services.len() == 1)
        .await;

    fake.hold_watches(true);
    fake.break_watches();
    fake.apply(service("shop", "missed", json!({})));
    fake.expire_history();
    fake.hold_watches(false);

    let web = key("shop", "web");
    src.until_checked(
        "the missed Service after a re-list",
        |s| s.services.contains_key(&web) && !s.endpoint_slices.is_empty() && !s.nodes.is_empty(),
        |s| s.services.contains_key(&key("shop", "missed")),
    )
    .await;
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/services" && !r.is_watch())
        .count();
    assert!(lists >= 2, "a 410 forces a re-list ({lists} lists)");

    // And the watch works again afterwards.
    fake.apply(service("shop", "later", json!({})));
    src.until("a change after recovery", |s| {
        s.services.contains_key(&key("shop", "later"))
    })
    .await;
    src.stop().await;
}

#[tokio::test]
async fn a_custom_resource_our_types_refuse_is_reported_and_the_rest_still_flows() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    seed_metallb(&fake);
    fake.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "broken", "namespace": "metallb-system"},
        "spec": {"addresses": "192.168.1.0/24"}}));
    let mut src = Running::start(&fake);
    let state = src.until("the initial state", |_| true).await;
    assert_eq!(
        state.ip_address_pools.keys().collect::<Vec<_>>(),
        [&key("metallb-system", "pool")]
    );
    assert_eq!(
        state.l2_advertisements.len(),
        1,
        "an L2Advertisement may leave out its spec"
    );
    assert_eq!(state.invalid.len(), 1);
    let text = state.invalid[0].to_string();
    assert!(
        text.contains("IPAddressPool") && text.contains("broken") && text.contains("spec"),
        "{text}"
    );
    src.stop().await;
}

#[tokio::test]
async fn missing_metallb_crds_do_not_block_the_rest() {
    let fake = FakeApiServer::builder()
        .without_metallb_crds()
        .start()
        .await;
    seed(&fake);
    let mut src = Running::start(&fake);
    let state = src.until("the initial state", |_| true).await;
    assert_eq!(state.services.len(), 1);
    assert!(state.ip_address_pools.is_empty() && state.l2_advertisements.is_empty());
    fake.apply(service("shop", "api", json!({})));
    src.until("changes keep flowing", |s| s.services.len() == 2)
        .await;

    // MetalLB is installed later: its objects fill in by themselves.
    fake.install_metallb_crds();
    seed_metallb(&fake);
    src.until("the pool once the CRD exists", |s| {
        s.ip_address_pools.len() == 1 && s.l2_advertisements.len() == 1
    })
    .await;
    src.stop().await;
}

#[tokio::test]
async fn status_writers_change_only_what_they_say() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let client = fake.client();
    let web = key("shop", "web");
    let before = fake.get("v1", "Service", "shop", "web").expect("seeded");

    let ips: Vec<IpAddr> = vec![
        "192.168.1.240".parse().expect("ip"),
        "fd00::1".parse().expect("ip"),
    ];
    status::patch_service_lb_status(&client, &web, &ips)
        .await
        .expect("service status");
    let after = fake
        .get("v1", "Service", "shop", "web")
        .expect("still there");
    assert_eq!(
        after["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.168.1.240"}, {"ip": "fd00::1"}])
    );
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    status::patch_service_lb_status(&client, &web, &[])
        .await
        .expect("clear");
    let cleared = fake
        .get("v1", "Service", "shop", "web")
        .expect("still there");
    assert_eq!(cleared.pointer("/status/loadBalancer/ingress"), None);

    status::patch_ingress_lb_status(&client, &web, &ips[..1])
        .await
        .expect("ingress status");
    let ing = fake
        .get("networking.k8s.io/v1", "Ingress", "shop", "web")
        .expect("seeded");
    assert_eq!(
        ing["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.168.1.240"}])
    );

    status::annotate_service(&client, &web, "portico.dev/allocated-from", "pool")
        .await
        .expect("annotate");
    let annotated = fake
        .get("v1", "Service", "shop", "web")
        .expect("still there");
    assert_eq!(
        annotated["metadata"]["annotations"],
        json!({"portico.dev/allocated-from": "pool"})
    );
    assert_eq!(annotated["status"], cleared["status"]);
    status::remove_service_annotation(&client, &web, "portico.dev/allocated-from")
        .await
        .expect("remove");
    let plain = fake
        .get("v1", "Service", "shop", "web")
        .expect("still there");
    assert_eq!(
        plain.pointer("/metadata/annotations/portico.dev~1allocated-from"),
        None
    );

    let err = status::patch_service_lb_status(&client, &key("shop", "nope"), &ips)
        .await
        .expect_err("missing Service");
    assert!(err.to_string().contains("Service shop/nope"), "{err}");

    let regarding = status::object_ref::<Service>(&web);
    status::publish_event(
        &client,
        &regarding,
        status::EventType::Warning,
        "AllocationFailed",
        "no pool has a free address",
    )
    .await
    .expect("event");
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "AllocationFailed");
    assert_eq!(events[0]["note"], "no pool has a free address");
    assert_eq!(events[0]["regarding"]["kind"], "Service");
    assert_eq!(events[0]["metadata"]["namespace"], "shop");
}

#[tokio::test]
async fn a_service_and_its_slice_become_snapshot_services_and_endpoints() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let (tx, rx) = state_channel();
    let shutdown = CancellationToken::new();
    let publisher = Publisher::new(Snapshot::default());
    let source = tokio::spawn(kube_source::run(fake.client(), tx, shutdown.clone()));
    let pipeline = tokio::spawn(Pipeline::kube().run(rx, publisher.clone(), shutdown.clone()));

    let web = key("shop", "web");
    let snap = wait_for_endpoints(&publisher, &web, &["10.0.0.1:8080"]).await;
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    assert_eq!(snap.service(&web).map(|s| s.ports.len()), Some(1));

    fake.apply(slice("shop", "web", &["10.0.0.1", "10.0.0.2"]));
    wait_for_endpoints(&publisher, &web, &["10.0.0.1:8080", "10.0.0.2:8080"]).await;

    shutdown.cancel();
    source
        .await
        .expect("source task")
        .expect("source ends cleanly");
    pipeline.await.expect("pipeline task");
}

fn usable_addrs(snap: &Snapshot, svc: &ObjectKey) -> Vec<String> {
    snap.endpoints_of(svc)
        .and_then(|e| e.ports.get("http"))
        .map(|p| p.usable.iter().map(|b| b.addr.to_string()).collect())
        .unwrap_or_default()
}

async fn wait_for_endpoints(
    publisher: &Publisher<Snapshot>,
    svc: &ObjectKey,
    want: &[&str],
) -> Arc<Snapshot> {
    let mut versions = publisher.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snap = publisher.current();
        if snap.service(svc).is_some() && usable_addrs(&snap, svc) == want {
            return snap;
        }
        tokio::time::timeout_at(deadline, versions.changed())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for endpoints {want:?}; have {:?}",
                    usable_addrs(&publisher.current(), svc)
                )
            })
            .expect("publisher alive");
    }
}

/// 2 000 Services with their EndpointSlices: the initial list, then one change, timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_thousand_objects_list_and_update_promptly() {
    const N: usize = 2000;
    let fake = FakeApiServer::start().await;
    for i in 0..N {
        fake.apply(service("load", &format!("s{i}"), json!({})));
        fake.apply(slice("load", &format!("s{i}"), &["10.0.0.1", "10.0.0.2"]));
    }
    let t = std::time::Instant::now();
    let mut src = Running::start(&fake);
    src.until("the initial state", |s| {
        s.services.len() == N && s.endpoint_slices.len() == N
    })
    .await;
    let initial = t.elapsed();

    let t = std::time::Instant::now();
    fake.apply(slice("load", "s7", &["10.0.0.9"]));
    src.until("one changed slice", |s| {
        s.endpoint_slices
            .get(&key("load", "s7-abcde"))
            .is_some_and(|e| e.endpoints.as_ref().is_some_and(|v| v.len() == 1))
    })
    .await;
    let update = t.elapsed();
    eprintln!(
        "{N} Services + {N} EndpointSlices: initial state in {initial:?}, one change in {update:?}"
    );
    assert!(
        initial < Duration::from_secs(10),
        "initial state took {initial:?}"
    );
    assert!(update < Duration::from_secs(1), "a change took {update:?}");
    src.stop().await;
}

/// The collection path the API server serves `kind` on (cluster-wide).
fn collection(kind: portico_cluster::rbac::Kind) -> String {
    let (group, resource) = (kind.api_group(), kind.resource());
    match group {
        "" => format!("/api/v1/{resource}"),
        "metallb.io" => format!("/apis/metallb.io/v1beta1/{resource}"),
        g => format!("/apis/{g}/v1/{resource}"),
    }
}

#[tokio::test]
async fn each_component_asks_only_for_the_kinds_its_rbac_roles_allow() {
    use portico_cluster::rbac::{Component, Kind};
    for component in Component::ALL {
        let fake = FakeApiServer::start().await;
        seed(&fake);
        seed_metallb(&fake);
        let (tx, mut rx) = state_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(kube_source::run_for(
            fake.client(),
            component,
            tx,
            shutdown.clone(),
        ));
        tokio::time::timeout(WAIT, rx.wait_for(|s| s.is_some()))
            .await
            .expect("an initial state in time")
            .expect("channel open");
        let state = rx.borrow().clone().expect("a state");
        let allowed = component.watched();
        let paths: std::collections::BTreeSet<String> =
            fake.requests().into_iter().map(|r| r.path).collect();
        for kind in Kind::ALL {
            assert_eq!(
                paths.contains(&collection(kind)),
                allowed.contains(&kind),
                "{}: {kind:?} requested iff its roles allow it; requests: {paths:?}",
                component.name()
            );
        }
        // What is not watched stays empty; what is, is there.
        assert_eq!(
            state.secrets.is_empty(),
            !allowed.contains(&Kind::Secret),
            "{}",
            component.name()
        );
        assert_eq!(
            state.namespaces.is_empty(),
            !allowed.contains(&Kind::Namespace),
            "{}",
            component.name()
        );
        assert!(!state.services.is_empty(), "{}", component.name());
        shutdown.cancel();
        task.await.expect("joined").expect("source ends cleanly");
    }
}

/// Stop the API server for `outage`, bring it back, create a Service: how long until the source
/// sends a state with it.
async fn new_object_delay_after_an_outage(outage: Duration) -> Duration {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let mut src = Running::start(&fake);
    src.until("the initial state", |s| s.services.len() == 1)
        .await;

    fake.stop().await;
    tokio::time::sleep(outage).await;
    fake.restart().await;
    let back = tokio::time::Instant::now();
    fake.apply(service("shop", "new", json!({})));
    let new = key("shop", "new");
    let web = key("shop", "web");
    // Longer than WAIT, so that a slow recovery is measured rather than cut short.
    let deadline = back + Duration::from_secs(90);
    loop {
        if let Some(s) = src.rx.borrow_and_update().clone() {
            assert!(
                s.services.contains_key(&web),
                "the known Service kept serving"
            );
            if s.services.contains_key(&new) {
                break;
            }
        }
        tokio::time::timeout_at(deadline, src.rx.changed())
            .await
            .expect("the new Service arrives within 90 s")
            .expect("the source keeps running");
    }
    let took = back.elapsed();
    println!(
        "outage {outage:?}: a new Service reached the state {took:?} after the API server came back"
    );
    src.stop().await;
    took
}

/// The watch backoff is capped (5 s), so a new object arrives within ~5 s of the API server's
/// return. With kube-runtime's default backoff it grew during the outage (to 12 s after 6 s).
#[tokio::test]
async fn after_a_6s_api_server_outage_new_objects_arrive_within_seconds() {
    let took = new_object_delay_after_an_outage(Duration::from_secs(6)).await;
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

/// As above after 25 s (the default backoff waited up to ~50 s): the wait does not grow with
/// the outage.
#[tokio::test]
async fn after_a_25s_api_server_outage_new_objects_still_arrive_within_seconds() {
    let took = new_object_delay_after_an_outage(Duration::from_secs(25)).await;
    assert!(took < Duration::from_secs(6), "took {took:?}");
}
