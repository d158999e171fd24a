use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_model::ObjectKey;
use tokio::time::Instant;

use super::*;
use portico_testkit::snapshots::{pod, service, snapshot, terminating_pod};

fn target(name: &str, scope: Scope) -> Target {
    Target {
        service: ObjectKey::new("default", name),
        port: String::new(),
        scope,
        proxy_protocol: false,
    }
}

fn client(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn first(p: &Picker, snap: &Snapshot, c: &str, now: Instant) -> String {
    p.pick(snap, client(c), now).expect("a backend").backends[0].to_string()
}

fn three_pods(app: &str) -> String {
    format!(
        "{}{}{}",
        pod("a", app, "127.0.10.1", "n1", true),
        pod("b", app, "127.0.10.2", "n2", true),
        pod("c", app, "127.0.10.3", "n1", true)
    )
}

#[test]
fn round_robin_visits_every_ready_endpoint_in_turn_and_offers_fallbacks() {
    let snap = snapshot(&format!("{}{}", service("web", ""), three_pods("web")));
    let p = Picker::new(
        target("web", Scope::Cluster),
        Arc::new(AffinityTable::new()),
        3,
    );
    let now = Instant::now();
    let picks: Vec<String> = (0..6).map(|_| first(&p, &snap, "10.0.0.1", now)).collect();
    assert_eq!(
        picks,
        [
            "127.0.10.1:8080",
            "127.0.10.2:8080",
            "127.0.10.3:8080",
            "127.0.10.1:8080",
            "127.0.10.2:8080",
            "127.0.10.3:8080"
        ]
    );
    let pick = p.pick(&snap, client("10.0.0.1"), now).expect("pick");
    let all: Vec<String> = pick.backends.iter().map(ToString::to_string).collect();
    assert_eq!(
        all,
        ["127.0.10.1:8080", "127.0.10.2:8080", "127.0.10.3:8080"],
        "the next ones follow as fallbacks"
    );
    assert!(!pick.sticky && pick.affinity.is_none());
}

#[test]
fn a_not_ready_endpoint_gets_no_new_connections() {
    let yaml = format!(
        "{}{}{}",
        service("web", ""),
        pod("a", "web", "127.0.10.1", "n1", true),
        pod("b", "web", "127.0.10.2", "n1", false)
    );
    let snap = snapshot(&yaml);
    let p = Picker::new(
        target("web", Scope::Cluster),
        Arc::new(AffinityTable::new()),
        3,
    );
    for _ in 0..4 {
        assert_eq!(
            first(&p, &snap, "10.0.0.1", Instant::now()),
            "127.0.10.1:8080"
        );
    }
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let only_terminating = format!(
        "{}{}",
        service("web", ""),
        terminating_pod("a", "web", "127.0.10.1", "n1")
    );
    let p = Picker::new(
        target("web", Scope::Cluster),
        Arc::new(AffinityTable::new()),
        3,
    );
    assert_eq!(
        first(&p, &snapshot(&only_terminating), "10.0.0.1", Instant::now()),
        "127.0.10.1:8080"
    );

    let with_ready = format!(
        "{only_terminating}{}",
        pod("b", "web", "127.0.10.2", "n1", true)
    );
    let snap = snapshot(&with_ready);
    for _ in 0..3 {
        assert_eq!(
            first(&p, &snap, "10.0.0.1", Instant::now()),
            "127.0.10.2:8080"
        );
    }
}

#[test]
fn local_scope_keeps_to_this_node_and_refuses_when_it_has_none() {
    let snap = snapshot(&format!("{}{}", service("web", ""), three_pods("web")));
    let p = Picker::new(
        target("web", Scope::local("n1")),
        Arc::new(AffinityTable::new()),
        3,
    );
    let picks: Vec<String> = (0..4)
        .map(|_| first(&p, &snap, "10.0.0.1", Instant::now()))
        .collect();
    assert_eq!(
        picks,
        [
            "127.0.10.1:8080",
            "127.0.10.3:8080",
            "127.0.10.1:8080",
            "127.0.10.3:8080"
        ]
    );

    let p = Picker::new(
        target("web", Scope::local("n3")),
        Arc::new(AffinityTable::new()),
        3,
    );
    let err = p
        .pick(&snap, client("10.0.0.1"), Instant::now())
        .expect_err("no endpoint on n3");
    assert!(
        matches!(&err, NoBackend::NoLocalEndpoints { node, .. } if node == "n3"),
        "{err}"
    );
    assert!(
        err.to_string().contains("default/web") && err.to_string().contains("n3"),
        "{err}"
    );
}

#[test]
fn local_scope_falls_back_to_local_terminating_endpoints_even_when_remote_ones_are_ready() {
    let yaml = format!(
        "{}{}{}",
        service("web", ""),
        terminating_pod("a", "web", "127.0.10.1", "n1"),
        pod("b", "web", "127.0.10.2", "n2", true)
    );
    let p = Picker::new(
        target("web", Scope::local("n1")),
        Arc::new(AffinityTable::new()),
        3,
    );
    assert_eq!(
        first(&p, &snapshot(&yaml), "10.0.0.1", Instant::now()),
        "127.0.10.1:8080"
    );
}

#[test]
fn missing_service_port_or_endpoints_are_named() {
    let snap = snapshot(&service("web", ""));
    let affinity = Arc::new(AffinityTable::new());
    let p = Picker::new(target("web", Scope::Cluster), affinity.clone(), 3);
    assert!(matches!(
        p.pick(&snap, client("10.0.0.1"), Instant::now()),
        Err(NoBackend::NoEndpoints { .. })
    ));
    let p = Picker::new(target("gone", Scope::Cluster), affinity.clone(), 3);
    assert!(matches!(
        p.pick(&snap, client("10.0.0.1"), Instant::now()),
        Err(NoBackend::NoService { .. })
    ));
    let p = Picker::new(
        Target {
            port: "metrics".into(),
            ..target("web", Scope::Cluster)
        },
        affinity,
        3,
    );
    let err = p
        .pick(&snap, client("10.0.0.1"), Instant::now())
        .expect_err("no such port");
    assert_eq!(
        err.to_string(),
        "Service default/web has no port named \"metrics\""
    );
}

#[test]
fn client_ip_affinity_sticks_per_client_and_expires_after_the_timeout_without_connections() {
    let affinity =
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10}}\n";
    let snap = snapshot(&format!(
        "{}{}",
        service("web", affinity),
        three_pods("web")
    ));
    let table = Arc::new(AffinityTable::new());
    let p = Picker::new(target("web", Scope::Cluster), table.clone(), 3);
    let t0 = Instant::now();
    let one = first(&p, &snap, "10.0.0.1", t0);
    let two = first(&p, &snap, "10.0.0.2", t0);
    assert_ne!(one, two, "a second client is balanced elsewhere");
    // Connections keep coming every 9 s: each one renews the entry.
    for i in 1..=5 {
        let pick = p
            .pick(&snap, client("10.0.0.1"), t0 + Duration::from_secs(9 * i))
            .expect("pick");
        assert_eq!(pick.backends[0].to_string(), one);
        assert!(pick.sticky);
    }
    assert_eq!(table.len(), 2);
    // 10 s of silence: forgotten, the next connection is balanced again (round-robin moved on).
    let later = t0 + Duration::from_secs(45 + 10);
    let pick = p.pick(&snap, client("10.0.0.1"), later).expect("pick");
    assert!(!pick.sticky);
    assert_ne!(pick.backends[0].to_string(), one);
    // The sweep drops the other client's stale entry.
    assert_eq!(table.sweep(&snap, later), 1);
    assert_eq!(table.len(), 1);
}

#[test]
fn affinity_moves_on_when_the_remembered_endpoint_leaves_and_survives_a_rebuild() {
    let affinity = "  sessionAffinity: ClientIP\n";
    let svc = service("web", affinity);
    let before = snapshot(&format!("{svc}{}", three_pods("web")));
    let table = Arc::new(AffinityTable::new());
    let p = Picker::new(target("web", Scope::Cluster), table.clone(), 3);
    let now = Instant::now();
    assert_eq!(first(&p, &before, "10.0.0.1", now), "127.0.10.1:8080");

    // A rebuilt snapshot with the same endpoints: the client keeps its backend.
    let rebuilt = snapshot(&format!("{svc}{}", three_pods("web")));
    assert_eq!(first(&p, &rebuilt, "10.0.0.1", now), "127.0.10.1:8080");
    // A new picker (a restarted listener) sharing the table: still the same backend.
    let p2 = Picker::new(target("web", Scope::Cluster), table.clone(), 3);
    assert_eq!(first(&p2, &rebuilt, "10.0.0.1", now), "127.0.10.1:8080");

    // Pod a is no longer ready: the client moves, and sticks to its new backend.
    let after = snapshot(&format!(
        "{svc}{}{}{}",
        pod("a", "web", "127.0.10.1", "n1", false),
        pod("b", "web", "127.0.10.2", "n2", true),
        pod("c", "web", "127.0.10.3", "n1", true)
    ));
    let moved = first(&p, &after, "10.0.0.1", now);
    assert_ne!(moved, "127.0.10.1:8080");
    assert_eq!(first(&p, &after, "10.0.0.1", now), moved);
}

#[test]
fn a_fallback_that_connected_becomes_the_remembered_backend() {
    let snap = snapshot(&format!(
        "{}{}",
        service("web", "  sessionAffinity: ClientIP\n"),
        three_pods("web")
    ));
    let p = Picker::new(
        target("web", Scope::Cluster),
        Arc::new(AffinityTable::new()),
        3,
    );
    let now = Instant::now();
    let pick = p.pick(&snap, client("10.0.0.1"), now).expect("pick");
    // The first choice refused the connection; the second took it.
    p.connected(&pick, client("10.0.0.1"), pick.backends[1], now);
    assert_eq!(
        first(&p, &snap, "10.0.0.1", now),
        pick.backends[1].to_string()
    );
}
