//! Backends, canaries, filters and the order of errors, as stories.

use crate::routes::{
    BackendProtocol, BackendTarget, Balance, HttpsRedirect, PathMatch, PortRef, Redirect,
    UrlRewrite,
};

use super::tests::{T0, T1, annotated, found, ingress, route, routes, service};
use super::*;

fn canary(name: &str, created: &str, svc: &str, pairs: &[(&str, &str)]) -> String {
    let mut all = vec![("canary", "true")];
    all.extend_from_slice(pairs);
    annotated(
        &ingress(name, created, &[("a.example.com", "/", "Prefix", svc)]),
        &all,
    )
}

#[test]
fn a_canary_attaches_to_the_main_route_of_the_same_host_and_path() {
    let main = ingress("main", T0, &[("a.example.com", "/", "Prefix", "stable")]);
    let next = canary("canary", T1, "next", &[("canary-weight", "20")]);
    let (r, errors) = routes(&format!("{main}{next}"));
    assert!(errors.is_empty(), "{errors:?}");
    let main_route = found(&r, "a.example.com", "/");
    assert_eq!(main_route.backend.service.name, "stable");
    let c = main_route.canary.as_ref().expect("canary attached");
    assert_eq!(
        (
            c.backend.service.name.as_str(),
            c.rules.weight,
            c.rules.weight_total
        ),
        ("next", 20, 100)
    );
    assert_eq!(
        c.origin.to_string(),
        "Ingress default/canary: spec.rules[0].http.paths[0].backend"
    );
    assert_eq!(
        r.served,
        [
            ObjectKey::new("default", "canary"),
            ObjectKey::new("default", "main")
        ],
        "a canary is served, though it routes nothing of its own"
    );
    assert_eq!(r.iter().count(), 1);
}

#[test]
fn canaries_by_header_and_cookie_keep_their_rules_and_the_older_canary_wins() {
    let main = annotated(
        &ingress("main", T0, &[("a.example.com", "/", "Prefix", "stable")]),
        &[("backend-protocol", "GRPC"), ("upstream-hash-by", "$uri")],
    );
    let by_header = canary(
        "by-header",
        T0,
        "next",
        &[
            ("canary-by-header", "X-Env"),
            ("canary-by-header-value", "staging"),
            ("canary-by-cookie", "beta"),
            ("load-balance", "ewma"),
        ],
    );
    let younger = canary("younger", T1, "other", &[("canary-weight", "100")]);
    let (r, errors) = routes(&format!("{main}{younger}{by_header}"));
    assert!(
        errors.is_empty(),
        "the younger canary is dropped silently: {errors:?}"
    );
    let c = found(&r, "a.example.com", "/")
        .canary
        .clone()
        .expect("canary");
    assert_eq!(c.backend.service.name, "next");
    assert_eq!(
        c.rules.by_header.as_ref().map(|h| h.as_str()),
        Some("x-env")
    );
    assert_eq!(c.rules.by_header_value.as_deref(), Some("staging"));
    assert_eq!(c.rules.by_cookie.as_deref(), Some("beta"));
    assert_eq!(c.rules.weight, 0);
    assert_eq!((c.balance, c.hashed), (Balance::Ewma, false));
    assert_eq!(
        c.backend.protocol,
        BackendProtocol::Grpc,
        "the main route's protocol"
    );
}

#[test]
fn a_canary_without_its_main_route_or_backend_is_reported() {
    let main = ingress("main", T0, &[("a.example.com", "/", "Prefix", "stable")]);
    let elsewhere = annotated(
        &ingress("lost", T1, &[("b.example.com", "/x", "Prefix", "next")]),
        &[("canary", "true")],
    );
    let broken = annotated(
        &ingress("broken", T1, &[("a.example.com", "/", "Prefix", "svc")]),
        &[("canary", "true")],
    )
    .replace("              number: 80\n", "");
    let (r, errors) = routes(&format!("{main}{elsewhere}{broken}"));
    let got: Vec<(String, &str, InvalidReason)> = errors
        .iter()
        .map(|e| (e.to_string(), e.field.as_str(), e.reason))
        .collect();
    assert_eq!(
        got,
        [
            (
                "Ingress default/broken: spec.rules[0].http.paths[0].backend.service.port: a port number or name is required".to_owned(),
                "spec.rules[0].http.paths[0].backend.service.port",
                InvalidReason::MissingPort
            ),
            (
                "Ingress default/lost: spec.rules[0].http.paths[0].backend: no served Ingress has host Exact(\"b.example.com\") and path \"/x\"; the canary is not used".to_owned(),
                "spec.rules[0].http.paths[0].backend",
                InvalidReason::UnusedCanary
            ),
        ]
    );
    assert!(found(&r, "a.example.com", "/").canary.is_none());
}

#[test]
fn backends_resolve_against_their_services() {
    let services = [
        service("named", "[{name: web, port: 8080, targetPort: 80}]"),
        service("numbered", "[{port: 80, targetPort: 8080}]"),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  externalName: api.example.org\n".to_owned(),
    ]
    .concat();
    let by_name = ingress("n", T0, &[("n", "/", "Prefix", "named")])
        .replace("              number: 80\n", "              name: web\n");
    let yaml = [
        services,
        by_name,
        ingress("m", T0, &[("m", "/", "Prefix", "numbered")]),
        ingress("e", T0, &[("e", "/", "Prefix", "ext")]),
        ingress("g", T0, &[("g", "/", "Prefix", "gone")]),
    ]
    .concat();
    let (r, errors) = routes(&yaml);
    assert!(
        errors.is_empty(),
        "a missing Service is not an error: {errors:?}"
    );
    let backend = |h: &str| found(&r, h, "/").backend.clone();
    let n = backend("n");
    assert_eq!(
        (n.port, n.target),
        (
            PortRef::Name("web".into()),
            BackendTarget::ServicePort {
                name: "web".into(),
                port: 8080
            }
        )
    );
    assert_eq!(
        backend("m").target,
        BackendTarget::ServicePort {
            name: String::new(),
            port: 80
        }
    );
    assert_eq!(
        backend("e").target,
        BackendTarget::External {
            host: "api.example.org".into(),
            port: 80
        }
    );
    let g = backend("g");
    assert_eq!(
        (g.port, g.target, g.weight, g.protocol),
        (
            PortRef::Number(80),
            BackendTarget::NoService,
            1,
            BackendProtocol::Http
        )
    );
}

#[test]
fn backends_that_cannot_resolve_leave_their_ingress_out() {
    let svc = service("web", "[{name: http, port: 8080, targetPort: 80}]");
    let ext = "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  externalName: \"bad name\"\n";
    let resource = ingress("res", T0, &[("r", "/", "Prefix", "x")]).replace(
        "          service:\n            name: x\n            port:\n              number: 80\n",
        "          resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}\n",
    );
    let cases: &[(String, &str, InvalidReason, &str)] = &[
        (
            ingress("i", T0, &[("", "/", "Prefix", "web")]),
            "spec.rules[0].http.paths[0].backend.service.port",
            InvalidReason::MissingServicePort,
            "Service default/web has no port 80",
        ),
        (
            ingress("i", T0, &[("", "/", "Prefix", "ext")]),
            "spec.rules[0].http.paths[0].backend",
            InvalidReason::BadExternalName,
            "ExternalName \"bad name\" of Service default/ext is not a host name",
        ),
        (
            resource,
            "spec.rules[0].http.paths[0].backend",
            InvalidReason::UnsupportedBackend,
            "resource backends are not supported; use a Service",
        ),
    ];
    for (yaml, field, reason, message) in cases {
        let (r, errors) = routes(&format!("{svc}{ext}{yaml}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (
                errors[0].field.as_str(),
                errors[0].reason,
                errors[0].message.as_str()
            ),
            (*field, *reason, *message)
        );
        assert!(r.hosts.is_empty());
    }
}

#[test]
fn redirects_and_rewrites_become_filters() {
    let moved = annotated(
        &ingress("moved", T0, &[("old.example.com", "/", "Prefix", "web")]),
        &[
            ("permanent-redirect", "https://new.example.com/"),
            ("force-ssl-redirect", "true"),
        ],
    );
    let rooted = annotated(
        &ingress("rooted", T0, &[("app.example.com", "/", "Prefix", "web")]),
        &[("app-root", "/app"), ("ssl-redirect", "false")],
    );
    let rewritten = annotated(
        &ingress(
            "api",
            T0,
            &[(
                "api.example.com",
                "/v1(/|$)(.*)",
                "ImplementationSpecific",
                "api",
            )],
        ),
        &[("rewrite-target", "/$2")],
    );
    let (r, errors) = routes(&[moved, rooted, rewritten].concat());
    assert!(errors.is_empty(), "{errors:?}");
    let moved = found(&r, "old.example.com", "/");
    assert_eq!(
        moved.filters.redirect,
        Some(Redirect {
            location: "https://new.example.com/".into(),
            status: 301
        })
    );
    assert_eq!(moved.filters.https_redirect, HttpsRedirect::Always);
    assert!(moved.redirects_to_https(), "forced, without TLS");
    let rooted = found(&r, "app.example.com", "/");
    assert_eq!(rooted.filters.app_root.as_deref(), Some("/app"));
    assert!(!rooted.redirects_to_https());
    let api = found(&r, "api.example.com", "/V1/items");
    assert_eq!(
        api.filters.rewrite,
        Some(UrlRewrite {
            target: "/$2".into()
        })
    );
    let PathMatch::RegularExpression(re) = &api.matches.path else {
        panic!("rewrite-target makes the path a regex")
    };
    let caps = re.regex().captures("/v1/items").expect("matches");
    let mut out = String::new();
    caps.expand(
        &api.filters.rewrite.as_ref().expect("rewrite").expansion(),
        &mut out,
    );
    assert_eq!(out, "/items");
}

#[test]
fn policy_comes_from_annotations_and_is_shared_by_ingresses_annotated_alike() {
    let pairs = [
        ("whitelist-source-range", "10.0.0.0/8"),
        ("proxy-body-size", "8m"),
        ("proxy-read-timeout", "5"),
        ("proxy-next-upstream-tries", "0"),
        ("affinity", "cookie"),
    ];
    let a = annotated(&ingress("a", T0, &[("a", "/", "Prefix", "web")]), &pairs);
    let b = annotated(&ingress("b", T0, &[("b", "/", "Prefix", "web")]), &pairs);
    let (r, _) = routes(&format!("{a}{b}"));
    let (pa, pb) = (&found(&r, "a", "/").policy, &found(&r, "b", "/").policy);
    assert!(Arc::ptr_eq(pa, pb), "parsed once");
    assert_eq!(pa.body_limit, Some(8 << 20));
    assert_eq!(pa.timeouts.read, std::time::Duration::from_secs(5));
    assert_eq!(pa.tries, 1);
    assert_eq!(
        pa.affinity.as_ref().map(|a| a.name.as_str()),
        Some("INGRESSCOOKIE")
    );
    assert_eq!(pa.allow.as_ref().map(Vec::len), Some(1));
}

#[test]
fn bad_annotations_are_errors_naming_the_ingress_and_annotation() {
    let bad = annotated(
        &ingress("bad", T0, &[("a.example.com", "/", "Prefix", "web")]),
        &[
            ("whitelist-source-range", "nonsense"),
            ("enable-cors", "true"),
        ],
    );
    let unsupported = annotated(
        &ingress("odd", T1, &[("b.example.com", "/", "Prefix", "web")]),
        &[("server-snippet", "x")],
    );
    let (r, errors) = routes(&format!("{bad}{unsupported}"));
    let got: Vec<_> = errors.iter().map(|e| (e.to_string(), e.reason)).collect();
    assert_eq!(
        got,
        [
            ("Ingress default/bad: metadata.annotations[nginx.ingress.kubernetes.io/enable-cors]: not supported by Portico; ignored".to_owned(), InvalidReason::UnsupportedAnnotation),
            ("Ingress default/bad: metadata.annotations[nginx.ingress.kubernetes.io/whitelist-source-range]: \"nonsense\" is not a comma-separated list of CIDRs".to_owned(), InvalidReason::BadAnnotationValue),
            ("Ingress default/odd: metadata.annotations[nginx.ingress.kubernetes.io/server-snippet]: not supported by Portico; ignored".to_owned(), InvalidReason::UnsupportedAnnotation),
        ]
    );
    assert_eq!(
        route(&r, "a.example.com", "/"),
        "404",
        "a broken allow-list never allows everyone"
    );
    assert_eq!(
        route(&r, "b.example.com", "/"),
        "web",
        "unsupported ones are ignored"
    );
    assert_eq!(r.served, [ObjectKey::new("default", "odd")]);
}

#[test]
fn errors_come_in_one_stable_order() {
    let a = annotated(
        &format!(
            "{}  tls:\n  - hosts: [a]\n    secretName: none\n",
            ingress("a", T0, &[("a", "rel", "Prefix", "web")])
        ),
        &[("enable-cors", "true")],
    );
    let b = annotated(
        &ingress("b", T1, &[("b", "/", "Prefix", "web")]),
        &[("canary", "true")],
    );
    let c = annotated(
        &ingress("c", T0, &[("c", "/", "Prefix", "web")]),
        &[("canary", "true")],
    )
    .replace("              number: 80\n", "");
    let (_, errors) = routes(&[a, b, c].concat());
    let reasons: Vec<InvalidReason> = errors.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            InvalidReason::UnsupportedAnnotation,
            InvalidReason::MissingSecret,
            InvalidReason::MissingPort,
            InvalidReason::BadPath,
            InvalidReason::UnusedCanary,
        ]
    );
    // The TLS entry of an Ingress whose routes failed still counts.
    assert_eq!(errors[1].object, Some(ObjectKey::new("default", "a")));
}
