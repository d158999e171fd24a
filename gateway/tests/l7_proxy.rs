//! The L7 router in-process against real origins on loopback: routing, forwarded headers,
//! 503s, retries and passive health, cookie affinity, and the ingress-nginx annotations.

#[path = "common/l7.rs"]
mod l7common;

use l7common::*;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_with_forwarded_headers_and_404_otherwise() {
    let (a, b) = (
        Origin::start("a", "127.0.0.1").await,
        Origin::start("b", "127.0.0.1").await,
    );
    let yaml = [
        service("svc-a", &[a.addr]),
        service("svc-b", &[b.addr]),
        ingress(
            "web",
            &[],
            &[
                ("shop.example.com", "/", "Prefix", "svc-a"),
                ("shop.example.com", "/api", "Prefix", "svc-b"),
            ],
        ),
        ingress(
            "wild",
            &[],
            &[("*.apps.example.com", "/", "Prefix", "svc-b")],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let c = client();

    let (s, h, body) = get(
        &c,
        gw.http,
        "Shop.Example.com:8080",
        "/cart?x=1",
        &[("x-forwarded-for", "192.0.2.7")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(origin_of(&body), "a");
    assert!(body.contains("path=/cart?x=1"), "{body}");
    // The client's own X-Forwarded-For is replaced: 127.0.0.1 is not a trusted proxy.
    assert_eq!(h["x-echo-x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-echo-x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-echo-x-forwarded-proto"], "http");
    assert_eq!(h["x-echo-x-forwarded-host"], "Shop.Example.com:8080");
    assert_eq!(
        h["x-echo-x-forwarded-port"],
        gw.http.port().to_string().as_str()
    );
    assert_eq!(h["x-echo-x-request-id"].len(), 32);

    assert_eq!(
        origin_of(&get(&c, gw.http, "shop.example.com", "/api/v1", &[]).await.2),
        "b"
    );
    assert_eq!(
        origin_of(&get(&c, gw.http, "shop.example.com", "/apix", &[]).await.2),
        "a",
        "element-wise prefix"
    );
    assert_eq!(
        origin_of(&get(&c, gw.http, "x.apps.example.com", "/", &[]).await.2),
        "b"
    );
    assert_eq!(
        get(&c, gw.http, "y.x.apps.example.com", "/", &[]).await.0,
        404
    );
    assert_eq!(get(&c, gw.http, "other.example.com", "/", &[]).await.0, 404);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_endpoints_or_missing_answers_503() {
    let yaml = [
        service("empty", &[]),
        ingress(
            "web",
            &[],
            &[
                ("a.example.com", "/", "Prefix", "empty"),
                ("b.example.com", "/", "Prefix", "missing"),
            ],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let c = client();
    assert_eq!(get(&c, gw.http, "a.example.com", "/", &[]).await.0, 503);
    assert_eq!(get(&c, gw.http, "b.example.com", "/", &[]).await.0, 503);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_retries_another_endpoint_and_round_robin_spreads() {
    let (a, b) = (
        Origin::start("a", "127.0.0.1").await,
        Origin::start("b", "127.0.0.1").await,
    );
    // A port nothing listens on: bind, note it, close.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let yaml = [
        service("web", &[a.addr, b.addr, dead]),
        ingress("web", &[], &[("", "/", "Prefix", "web")]),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let c = client();
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let (s, _, body) = get(&c, gw.http, "any", "/", &[]).await;
        assert_eq!(s, 200, "connect failures are retried on another endpoint");
        seen.insert(origin_of(&body).to_owned());
    }
    assert_eq!(seen, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_holds_100_of_100_and_moves_when_the_pod_goes() {
    let origins = [
        Origin::start("p1", "127.0.0.1").await,
        Origin::start("p2", "127.0.0.1").await,
        Origin::start("p3", "127.0.0.1").await,
    ];
    let addrs: Vec<_> = origins.iter().map(|o| o.addr).collect();
    let annotations = [
        ("affinity", "cookie"),
        ("session-cookie-name", "route"),
        ("session-cookie-max-age", "3600"),
    ];
    let ing = ingress(
        "web",
        &annotations,
        &[("app.example.com", "/", "Prefix", "web")],
    );
    let gw = Gateway::start(&[service("web", &addrs), ing.clone()].concat()).await;
    let c = client();

    let (_, h, body) = get(&c, gw.http, "app.example.com", "/", &[]).await;
    let set = h["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(
        set.starts_with("route=") && set.contains("Path=/") && set.contains("Max-Age=3600"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("pair").to_owned();
    let pinned = origin_of(&body).to_owned();
    for _ in 0..100 {
        let (s, h, body) = get(&c, gw.http, "app.example.com", "/", &[("cookie", &cookie)]).await;
        assert_eq!(s, 200);
        assert_eq!(origin_of(&body), pinned);
        assert!(
            h.get("set-cookie").is_none(),
            "a valid cookie is not reissued"
        );
    }

    // The same cookie means the same pod after a reload (no per-process key).
    gw.publish(&[service("web", &addrs), ing.clone()].concat())
        .await;
    assert_eq!(
        origin_of(
            &get(&c, gw.http, "app.example.com", "/", &[("cookie", &cookie)])
                .await
                .2
        ),
        pinned
    );

    // Remove the pinned pod: another one answers and a new cookie is set.
    let rest: Vec<_> = origins
        .iter()
        .filter(|o| o.name != pinned)
        .map(|o| o.addr)
        .collect();
    gw.publish(&[service("web", &rest), ing].concat()).await;
    let (s, h, body) = get(&c, gw.http, "app.example.com", "/", &[("cookie", &cookie)]).await;
    assert_eq!(s, 200);
    assert_ne!(origin_of(&body), pinned);
    let new_cookie = h["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    assert_ne!(new_cookie, cookie);
    let moved = origin_of(&body).to_owned();
    for _ in 0..20 {
        assert_eq!(
            origin_of(
                &get(
                    &c,
                    gw.http,
                    "app.example.com",
                    "/",
                    &[("cookie", &new_cookie)]
                )
                .await
                .2
            ),
            moved
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_rewrite_allowlist_body_size_redirects_app_root_and_canary() {
    let (a, b) = (
        Origin::start("stable", "127.0.0.1").await,
        Origin::start("next", "127.0.0.1").await,
    );
    let yaml = [
        service("stable", &[a.addr]),
        service("next", &[b.addr]),
        ingress(
            "rewrite",
            &[("use-regex", "true"), ("rewrite-target", "/v2/$2")],
            &[(
                "rw.example.com",
                "/api(/|$)(.*)",
                "ImplementationSpecific",
                "stable",
            )],
        ),
        ingress(
            "deny",
            &[("allowlist-source-range", "10.0.0.0/8")],
            &[("deny.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "allow",
            &[("whitelist-source-range", "127.0.0.0/8")],
            &[("allow.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "moved",
            &[("permanent-redirect", "https://new.example.com/")],
            &[("old.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "moving",
            &[("temporal-redirect", "https://tmp.example.com/")],
            &[("tmp.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "root",
            &[("app-root", "/app1")],
            &[("root.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "main",
            &[],
            &[("canary.example.com", "/", "Prefix", "stable")],
        ),
        ingress(
            "canary",
            &[
                ("canary", "true"),
                ("canary-by-header", "x-canary"),
                ("canary-weight", "25"),
            ],
            &[("canary.example.com", "/", "Prefix", "next")],
        ),
        ingress(
            "unknown",
            &[("configuration-snippet", "more_set_headers x")],
            &[("u.example.com", "/", "Prefix", "stable")],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let c = client();

    let (s, _, body) = get(&c, gw.http, "rw.example.com", "/api/items/7?q=1", &[]).await;
    assert_eq!(s, 200);
    assert!(body.contains("path=/v2/items/7?q=1"), "{body}");
    assert_eq!(get(&c, gw.http, "deny.example.com", "/", &[]).await.0, 403);
    assert_eq!(get(&c, gw.http, "allow.example.com", "/", &[]).await.0, 200);
    let (s, h, _) = get(&c, gw.http, "old.example.com", "/x", &[]).await;
    assert_eq!(
        (s.as_u16(), h["location"].to_str().expect("ascii")),
        (301, "https://new.example.com/")
    );
    let (s, h, _) = get(&c, gw.http, "tmp.example.com", "/x", &[]).await;
    assert_eq!(
        (s.as_u16(), h["location"].to_str().expect("ascii")),
        (302, "https://tmp.example.com/")
    );
    let (s, h, _) = get(&c, gw.http, "root.example.com", "/", &[]).await;
    assert_eq!(
        (s.as_u16(), h["location"].to_str().expect("ascii")),
        (302, "/app1")
    );
    assert_eq!(
        get(&c, gw.http, "root.example.com", "/other", &[]).await.0,
        200
    );

    assert_eq!(
        origin_of(
            &get(
                &c,
                gw.http,
                "canary.example.com",
                "/",
                &[("x-canary", "always")]
            )
            .await
            .2
        ),
        "next"
    );
    assert_eq!(
        origin_of(
            &get(
                &c,
                gw.http,
                "canary.example.com",
                "/",
                &[("x-canary", "never")]
            )
            .await
            .2
        ),
        "stable"
    );
    let mut next = 0;
    for _ in 0..100 {
        if origin_of(&get(&c, gw.http, "canary.example.com", "/", &[]).await.2) == "next" {
            next += 1;
        }
    }
    assert_eq!(next, 25, "canary-weight 25 of 100");

    let unsupported: Vec<String> = gw.errors().iter().map(|e| e.to_string()).collect();
    assert!(
        unsupported.iter().any(|e| e.contains("default/unknown")
            && e.contains("configuration-snippet")
            && e.contains("not supported")),
        "{unsupported:?}"
    );
    assert_eq!(
        get(&c, gw.http, "u.example.com", "/", &[]).await.0,
        200,
        "served, the annotation ignored"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_body_size_answers_413() {
    let a = Origin::start("a", "127.0.0.1").await;
    let yaml = [
        service("web", &[a.addr]),
        ingress(
            "web",
            &[("proxy-body-size", "1k")],
            &[("", "/", "Prefix", "web")],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let big = "x".repeat(4096);
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &big,
            &format!("http://{}/", gw.http),
        ])
        .output()
        .await
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413");
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            "small",
            &format!("http://{}/", gw.http),
        ])
        .output()
        .await
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_protocol_https_and_grpc_reach_a_tls_and_an_h2c_upstream() {
    // The upstream is a second Portico: TLS on its HTTPS listener, h2c by prior knowledge on its
    // plain one, in front of an HTTP/1.1 origin.
    let a = Origin::start("a", "127.0.0.1").await;
    let inner = Gateway::start(
        &[
            service("web", &[a.addr]),
            ingress(
                "inner",
                &[("ssl-redirect", "false")],
                &[
                    ("tls.example.com", "/", "Prefix", "web"),
                    ("grpc.example.com", "/", "Prefix", "web"),
                ],
            ),
        ]
        .concat(),
    )
    .await;
    let outer = Gateway::start(
        &[
            service("inner-https", &[inner.https]),
            service("inner-h2c", &[inner.http]),
            ingress(
                "tls-up",
                &[("backend-protocol", "HTTPS")],
                &[("tls.example.com", "/", "Prefix", "inner-https")],
            ),
            ingress(
                "grpc-up",
                &[("backend-protocol", "GRPC")],
                &[("grpc.example.com", "/", "Prefix", "inner-h2c")],
            ),
        ]
        .concat(),
    )
    .await;
    let c = client();
    let (s, h, body) = get(&c, outer.http, "tls.example.com", "/x", &[]).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("origin=a path=/x host=tls.example.com"),
        "{body}"
    );
    assert_eq!(
        h["x-echo-x-forwarded-proto"], "https",
        "the inner hop was TLS"
    );
    let (s, _, body) = get(&c, outer.http, "grpc.example.com", "/svc.Method", &[]).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("origin=a path=/svc.Method"), "{body}");
    outer.shutdown().await;
    inner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_ingress_service_and_status_class() {
    let a = Origin::start("a", "127.0.0.1").await;
    let yaml = [
        service("web", &[a.addr]),
        service("empty", &[]),
        ingress(
            "web",
            &[],
            &[("", "/", "Prefix", "web"), ("", "/none", "Prefix", "empty")],
        ),
    ]
    .concat();
    let gw = Gateway::start(&yaml).await;
    let mut registry = prometheus_client::registry::Registry::default();
    gw.metrics.register(&mut registry);
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, gw.http, "any", "/", &[]).await.0, 200);
    }
    assert_eq!(get(&c, gw.http, "any", "/none", &[]).await.0, 503);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains(r#"portico_ingress_requests_total{ingress="default/web",service="default/web",status="2xx"} 3"#), "{text}");
    assert!(text.contains(r#"portico_ingress_requests_total{ingress="default/web",service="default/empty",status="5xx"} 1"#), "{text}");
    assert!(text.contains("portico_ingress_request_duration_seconds_count{ingress=\"default/web\",service=\"default/web\"} 3"), "{text}");
    for name in [
        "portico_ingress_config_publishes_total",
        "portico_ingress_open_connections",
        "portico_ingress_upstream_connect_errors_total",
        "portico_ingress_tls_handshakes_total",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_name_service_is_proxied_to_the_external_name() {
    let a = Origin::start("ext", "127.0.0.1").await;
    let port = a.addr.port();
    let svc = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports:\n  - name: http\n    port: {port}\n"
    );
    let ing = ingress("ext", &[], &[("ext.example.com", "/", "Prefix", "ext")])
        .replace("number: 80", &format!("number: {port}"));
    let gw = Gateway::start(&[svc, ing].concat()).await;
    let (s, _, body) = get(&client(), gw.http, "ext.example.com", "/x", &[]).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("origin=ext path=/x host=ext.example.com"),
        "{body}"
    );
    gw.shutdown().await;
}
