//! Which features a compiled route carries, and which engine may serve it.

use super::*;
use crate::engine::fast;
use crate::table::Lookup;

/// The route of `app.test/` for an Ingress with `annotations`, in front of a Service with one
/// ready endpoint (and `tls` listing the host when asked).
fn route_with(annotations: &[(&str, &str)], tls: bool) -> Arc<Route> {
    let mut y = String::from(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: app-0\n  labels:\n    kubernetes.io/service-name: app\naddressType: IPv4\nports:\n- name: http\n  port: 8080\n  protocol: TCP\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions:\n    ready: true\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n",
    );
    if !annotations.is_empty() {
        y.push_str("  annotations:\n");
        for (k, v) in annotations {
            y.push_str(&format!("    nginx.ingress.kubernetes.io/{k}: \"{v}\"\n"));
        }
    }
    y.push_str("spec:\n  ingressClassName: portico\n");
    if tls {
        y.push_str("  tls:\n  - hosts: [app.test]\n    secretName: app-tls\n");
    }
    y.push_str("  rules:\n  - host: app.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: app\n            port:\n              number: 80\n");
    let (table, errors) = crate::table::tests::table(&y);
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|e| !e.to_string().contains("app-tls"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    match table.lookup("app.test", "/") {
        Lookup::Route(r) => r.clone(),
        Lookup::NotFound => panic!("app.test/ is routed"),
    }
}

use std::sync::Arc;

#[test]
fn a_plain_route_uses_only_the_body_limit_and_the_fast_engine_serves_it() {
    let r = route_with(&[], false);
    assert_eq!(r.features, Features::BODY_LIMIT);
    assert!(fast::takes(&r, false));
    assert!(fast::takes(&r, true));
}

#[test]
fn affinity_ewma_and_streamed_bodies_are_implemented_by_the_fast_engine() {
    let r = route_with(
        &[
            ("affinity", "cookie"),
            ("load-balance", "ewma"),
            ("proxy-request-buffering", "off"),
            ("proxy-body-size", "0"),
        ],
        false,
    );
    assert_eq!(
        r.features,
        Features::AFFINITY
            .union(Features::EWMA)
            .union(Features::STREAMED_BODY)
    );
    assert!(fast::takes(&r, false));
}

#[test]
fn a_route_using_a_feature_the_fast_engine_lacks_goes_to_the_hyper_engine() {
    for (annotation, value, feature) in [
        ("rewrite-target", "/x", Features::REWRITE),
        ("upstream-hash-by", "$request_uri", Features::HASH_BY),
        ("whitelist-source-range", "10.0.0.0/8", Features::ALLOW_LIST),
        (
            "permanent-redirect",
            "https://elsewhere.test/",
            Features::REDIRECT,
        ),
        ("app-root", "/app", Features::REDIRECT),
        ("force-ssl-redirect", "true", Features::HTTPS_REDIRECT),
        ("backend-protocol", "HTTPS", Features::UPSTREAM_TLS),
        ("backend-protocol", "GRPC", Features::UPSTREAM_H2),
    ] {
        let r = route_with(&[(annotation, value)], false);
        assert!(
            r.features.contains(feature),
            "{annotation}: {:?}",
            r.features
        );
        assert!(!fast::takes(&r, false), "{annotation} is not served fast");
    }
}

#[test]
fn https_redirection_only_matters_on_plain_connections() {
    // A TLS host redirects plain HTTP (ssl-redirect defaults on): the hyper engine writes the
    // redirect; on the TLS connection there is nothing to redirect and the fast engine serves.
    let r = route_with(&[], true);
    assert!(r.features.contains(Features::HTTPS_REDIRECT));
    assert!(!fast::takes(&r, false));
    assert!(fast::takes(&r, true));
    // With ssl-redirect off there is nothing to redirect at all.
    let r = route_with(&[("ssl-redirect", "false")], true);
    assert!(fast::takes(&r, false));
}

#[test]
fn a_backend_without_endpoints_is_not_for_the_fast_engine() {
    let yaml = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\nspec:\n  ingressClassName: portico\n  rules:\n  - host: app.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: missing\n            port:\n              number: 80\n";
    let (table, _) = crate::table::tests::table(yaml);
    let Lookup::Route(r) = table.lookup("app.test", "/") else {
        panic!("app.test/ is routed (to a 503)");
    };
    assert!(r.features.contains(Features::NOT_ENDPOINTS));
    assert!(!fast::takes(r, false));
}

/// The fast engine runs the policy phase only for routes whose features intersect
/// [`policy::CHECKED`]: every route the phase answers must carry one of them, on the
/// connection it answers on.
#[test]
fn the_policy_phase_answers_only_routes_with_a_checked_feature() {
    use crate::request::policy;
    let facts = |tls| policy::Facts {
        tls,
        client: "192.0.2.1".parse().expect("literal"),
        host: "app.test",
        path: "/",
        path_and_query: "/",
    };
    let cases: [(&[(&str, &str)], bool); 10] = [
        (&[], false),
        (&[], true),
        (&[("ssl-redirect", "false")], true),
        (&[("whitelist-source-range", "10.0.0.0/8")], false),
        (&[("permanent-redirect", "https://elsewhere.test/")], false),
        (&[("temporal-redirect", "https://elsewhere.test/")], false),
        (&[("app-root", "/app")], false),
        (&[("force-ssl-redirect", "true")], false),
        (&[("proxy-body-size", "1k"), ("affinity", "cookie")], false),
        (&[("load-balance", "ewma")], false),
    ];
    for (annotations, tls_host) in cases {
        let r = route_with(annotations, tls_host);
        for tls in [false, true] {
            let answered = policy::check(&facts(tls), &r, None).is_some();
            let checked = r.features.on(tls).intersects(policy::CHECKED);
            assert!(
                !answered || checked,
                "{annotations:?} (TLS host {tls_host}, TLS {tls}) is answered by the policy phase \
                 without a checked feature: {:?}",
                r.features
            );
        }
    }
    // The answered cases do answer (the test above is not vacuous).
    let r = route_with(&[("whitelist-source-range", "10.0.0.0/8")], false);
    assert!(policy::check(&facts(false), &r, None).is_some());
    let r = route_with(&[], true);
    assert!(policy::check(&facts(false), &r, None).is_some());
    assert!(policy::check(&facts(true), &r, None).is_none());
}
