use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

use super::*;

fn svc(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"ports": [{"port": 80}]},
    })
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next event that is not a bookmark.
async fn next<K: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    loop {
        match next_raw(s).await {
            WatchEvent::Bookmark(_) => continue,
            other => return other,
        }
    }
}

async fn next_raw<K: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("a watch event within 5s")
        .expect("the stream is open")
        .expect("a well-formed event")
}

fn name_of<K: kube::Resource>(e: &WatchEvent<K>) -> (&'static str, String) {
    match e {
        WatchEvent::Added(o) => ("ADDED", o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => ("MODIFIED", o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Deleted(o) => ("DELETED", o.meta().name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => ("BOOKMARK", String::new()),
        WatchEvent::Error(e) => ("ERROR", e.reason.clone()),
    }
}

#[tokio::test]
async fn list_returns_the_objects_and_the_resource_version() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "web", json!({"app": "web"})));
    fake.apply(svc("a", "api", json!({"app": "api"})));
    fake.apply(svc("b", "web", json!({"app": "web"})));
    let client = fake.client();

    let all = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 3);
    assert_eq!(
        all.metadata.resource_version,
        Some(fake.resource_version().to_string())
    );

    let in_a = Api::<Service>::namespaced(client.clone(), "a")
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(in_a.items.len(), 2);
    let web = Api::<Service>::all(client.clone())
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(web.items.len(), 2);

    // Paging: two at a time, every object exactly once.
    let api = Api::<Service>::all(client);
    let mut lp = ListParams::default().limit(2);
    let mut names = Vec::new();
    loop {
        let page = api.list(&lp).await.expect("page");
        assert!(page.items.len() <= 2);
        names.extend(
            page.items
                .iter()
                .map(|s| s.metadata.name.clone().unwrap_or_default()),
        );
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, ["api", "web", "web"]);
}

#[tokio::test]
async fn watch_streams_only_the_changes_after_the_given_version_in_order() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "one", json!({})));
    let api = Api::<Service>::namespaced(fake.client(), "a");
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a list has a version");

    fake.apply(svc("a", "two", json!({})));
    fake.apply(svc("a", "one", json!({"changed": "yes"})));
    fake.apply(svc("b", "elsewhere", json!({})));
    fake.delete("v1", "Service", "a", "two");

    let mut w = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(name_of(&next(&mut w).await));
    }
    assert_eq!(
        seen,
        [
            ("ADDED", "two".into()),
            ("MODIFIED", "one".into()),
            ("DELETED", "two".into())
        ]
    );

    // Live changes follow on the same stream.
    fake.apply(svc("a", "three", json!({})));
    assert_eq!(name_of(&next(&mut w).await), ("ADDED", "three".into()));
}

#[tokio::test]
async fn a_watch_without_a_version_starts_with_the_current_objects() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "one", json!({})));
    let api = Api::<Service>::all(fake.client());
    let mut w = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    assert_eq!(name_of(&next(&mut w).await), ("ADDED", "one".into()));
}

#[tokio::test]
async fn a_selector_watch_sees_objects_leave_and_enter_the_selection() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "one", json!({"app": "web"})));
    let api = Api::<Service>::all(fake.client());
    let rv = fake.resource_version().to_string();
    let mut w = api
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.apply(svc("a", "one", json!({"app": "other"})));
    assert_eq!(name_of(&next(&mut w).await), ("DELETED", "one".into()));
    fake.apply(svc("a", "one", json!({"app": "web"})));
    assert_eq!(name_of(&next(&mut w).await), ("ADDED", "one".into()));
}

#[tokio::test]
async fn an_expired_version_gets_410_in_the_stream() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "one", json!({})));
    let old = fake.resource_version().to_string();
    fake.expire_history();
    let api = Api::<Service>::all(fake.client());
    let mut w = api
        .watch(&WatchParams::default(), &old)
        .await
        .expect("watch")
        .boxed();
    match next(&mut w).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // A fresh list gives a version that can be watched from.
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("version");
    let mut w = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.apply(svc("a", "two", json!({})));
    assert_eq!(name_of(&next(&mut w).await), ("ADDED", "two".into()));
}

#[tokio::test]
async fn a_bounded_history_expires_old_versions() {
    let fake = FakeApiServer::builder().history_limit(3).start().await;
    let first = fake.resource_version().to_string();
    for i in 0..5 {
        fake.apply(svc("a", &format!("s{i}"), json!({})));
    }
    let api = Api::<Service>::all(fake.client());
    let mut w = api
        .watch(&WatchParams::default(), &first)
        .await
        .expect("watch")
        .boxed();
    assert!(matches!(next(&mut w).await, WatchEvent::Error(e) if e.code == 410));
    let recent = (fake.resource_version() - 2).to_string();
    let mut w = api
        .watch(&WatchParams::default(), &recent)
        .await
        .expect("watch")
        .boxed();
    assert_eq!(name_of(&next(&mut w).await), ("ADDED", "s3".into()));
}

#[tokio::test]
async fn bookmarks_only_when_asked_and_break_watches_ends_streams() {
    let fake = FakeApiServer::builder()
        .bookmark_interval(Duration::from_secs(3600))
        .start()
        .await;
    let api = Api::<Service>::all(fake.client());
    let rv = fake.resource_version().to_string();
    let mut with = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut without = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .expect("watch")
        .boxed();
    fake.send_bookmarks();
    match next_raw(&mut with).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), without.next())
            .await
            .is_err(),
        "no bookmark unless asked"
    );
    assert_eq!(fake.open_watches(), 2);
    fake.break_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), with.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(fake.open_watches(), 0);
}

#[tokio::test]
async fn create_fills_server_fields_and_put_checks_the_resource_version() {
    let fake = FakeApiServer::start().await;
    let api = Api::<Service>::namespaced(fake.client(), "a");
    let s: Service = serde_json::from_value(svc("a", "web", json!({}))).expect("a Service");
    let created = api
        .create(&PostParams::default(), &s)
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(meta.generation, Some(1));
    let (code, reason) = api_code(
        api.create(&PostParams::default(), &s)
            .await
            .expect_err("exists"),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut changed = created.clone();
    changed.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into());
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        replaced.metadata.generation,
        Some(1),
        "labels are not the spec"
    );
    // The stale version is refused.
    let (code, reason) = api_code(
        api.replace("web", &PostParams::default(), &changed)
            .await
            .expect_err("stale"),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    // A write that changes nothing does not bump the version.
    let same = api
        .replace("web", &PostParams::default(), &replaced)
        .await
        .expect("no-op");
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );

    let (code, _) = api_code(api.get("missing").await.expect_err("missing"));
    assert_eq!(code, 404);
}

#[tokio::test]
async fn status_is_written_only_through_the_subresource() {
    let fake = FakeApiServer::start().await;
    let api = Api::<Service>::namespaced(fake.client(), "a");
    let mut body = svc("a", "web", json!({}));
    body["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}});
    let s: Service = serde_json::from_value(body).expect("a Service");
    let created = api
        .create(&PostParams::default(), &s)
        .await
        .expect("create");
    assert_eq!(
        created
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress),
        None,
        "status is not set on create"
    );

    let status = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    let after = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patch");
    let ip = |s: &Service| {
        s.status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?
            .ip
            .clone()
    };
    assert_eq!(ip(&after).as_deref(), Some("192.0.2.10"));
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.type_.clone()),
        None,
        "a status patch leaves the spec alone"
    );

    let main = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}]}}});
    let after = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .expect("patch");
    assert_eq!(
        ip(&after).as_deref(),
        Some("192.0.2.10"),
        "a main patch leaves the status alone"
    );
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    assert_eq!(
        after.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );

    // A merge patch carrying a stale resourceVersion is a precondition.
    let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version}, "spec": {"type": "ClusterIP"}});
    let (code, _) = api_code(
        api.patch("web", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .expect_err("stale"),
    );
    assert_eq!(code, 409);
}

#[tokio::test]
async fn apply_creates_json_patch_edits_and_finalizers_hold_deletion() {
    let fake = FakeApiServer::start().await;
    let api = Api::<Service>::namespaced(fake.client(), "a");
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("portico"),
            &Patch::Apply(svc("a", "web", json!({"app": "web"}))),
        )
        .await
        .expect("apply creates");
    assert!(applied.metadata.uid.is_some());
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/finalizers", "value": ["portico.dev/test"]}
    ]))
    .expect("a JSON patch");
    api.patch("web", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .expect("json patch");

    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let held = fake
        .get("v1", "Service", "a", "web")
        .expect("held by its finalizer");
    assert!(held.pointer("/metadata/deletionTimestamp").is_some());
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("release");
    assert_eq!(fake.get("v1", "Service", "a", "web"), None);
}

#[tokio::test]
async fn leases_have_optimistic_concurrency() {
    let fake = FakeApiServer::start().await;
    let api = Api::<Lease>::namespaced(fake.client(), "portico");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .expect("a Lease");
    let l = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let mut mine = l.clone();
    let mut theirs = l.clone();
    mine.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    theirs.spec.as_mut().expect("spec").holder_identity = Some("c".into());
    api.replace("leader", &PostParams::default(), &mine)
        .await
        .expect("first writer wins");
    let (code, _) = api_code(
        api.replace("leader", &PostParams::default(), &theirs)
            .await
            .expect_err("second loses"),
    );
    assert_eq!(code, 409);
}

#[tokio::test]
async fn events_are_recorded() {
    let fake = FakeApiServer::start().await;
    let recorder = kube::runtime::events::Recorder::new(fake.client(), "portico-test".into());
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some("a".into()),
        name: Some("web".into()),
        ..Default::default()
    };
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "NoPool".into(),
        note: Some("no pool has a free address".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.expect("publish");
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "NoPool");
    assert_eq!(events[0].pointer("/regarding/name"), Some(&json!("web")));
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("/events"))
    );
}

#[tokio::test]
async fn unknown_resources_are_404_and_discovery_lists_known_ones() {
    let fake = FakeApiServer::builder()
        .without_metallb_crds()
        .start()
        .await;
    let client = fake.client();
    let req = ::http::Request::get("/apis/metallb.io/v1beta1/ipaddresspools")
        .body(Vec::new())
        .expect("request");
    let (code, _) = api_code(client.request_text(req).await.expect_err("not installed"));
    assert_eq!(code, 404);
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
    let core = client
        .list_core_api_resources("v1")
        .await
        .expect("discovery");
    assert!(core.resources.iter().any(|r| r.name == "services/status"));

    let with = FakeApiServer::start().await;
    let list = with
        .client()
        .request_text(
            ::http::Request::get("/apis/metallb.io/v1beta1/namespaces/m/ipaddresspools")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect("installed by default");
    assert!(list.contains("IPAddressPoolList"));
    let _ = with.client().list_api_groups().await.expect("groups");
    let stream = Api::<Service>::all(with.client())
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch");
    drop(stream.try_collect::<Vec<_>>());
}

#[tokio::test]
async fn held_lists_wait_until_released() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("a", "one", json!({})));
    fake.hold_lists(true);
    let client = fake.client();
    let lists: Vec<_> = (0..12)
        .map(|_| {
            let api = Api::<Service>::all(client.clone());
            tokio::spawn(async move { api.list(&ListParams::default()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lists.iter().all(|l| !l.is_finished()));
    fake.hold_lists(false);
    for list in lists {
        let got = tokio::time::timeout(Duration::from_secs(5), list)
            .await
            .expect("released")
            .expect("task")
            .expect("list");
        assert_eq!(got.items.len(), 1);
    }
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_restarts_on_the_same_address_with_its_objects() {
    let fake = FakeApiServer::start().await;
    fake.apply(svc("shop", "web", json!({})));
    let api = Api::<Service>::all(fake.client());
    let rv = fake.resource_version().to_string();
    let mut watch = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();

    fake.stop().await;
    assert!(!fake.is_serving());
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the open watch ends with the outage");
    assert!(
        !matches!(
            end,
            Some(Ok(WatchEvent::Added(_) | WatchEvent::Modified(_)))
        ),
        "{end:?}"
    );
    let refused = tokio::net::TcpStream::connect(fake.addr()).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "new connections are refused while stopped"
    );
    assert!(api.list(&ListParams::default()).await.is_err());

    fake.restart().await;
    assert!(fake.is_serving());
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    assert_eq!(list.items.len(), 1, "objects survive the outage");
    assert_eq!(list.metadata.resource_version.as_deref(), Some(rv.as_str()));
    // A watch resumes from the resourceVersion seen before the outage.
    let mut watch = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch after restart")
        .boxed();
    fake.apply(svc("shop", "new", json!({})));
    assert_eq!(
        name_of(&next(&mut watch).await),
        ("ADDED", "new".to_owned())
    );
}
