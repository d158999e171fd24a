//! Ingress translation against the Ingress API's documented examples and ingress-nginx's
//! annotations, as stories.

use crate::control_plane::{Allocations, ControlPlaneConfig, complete};
use crate::manifest::parse_file;
use crate::routes::{PathMatch, PathType};
use crate::{ClusterState, Snapshot};

use super::*;

pub(super) fn snapshot(yaml: &str) -> Snapshot {
    let mut state = ClusterState::default();
    for (origin, parsed) in parse_file("test.yaml", yaml) {
        state.insert(parsed.expect("test manifests are valid"), origin);
    }
    complete(
        &mut state,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    crate::translate(&state, 1)
}

pub(super) fn routes(yaml: &str) -> (Routes, Vec<Invalid>) {
    let snap = snapshot(yaml);
    translate(
        &IngressInputs::of(&snap),
        &ClassConfig::default(),
        &mut IngressCache::default(),
    )
}

/// An Ingress of class portico with `(host, path, pathType, service)` rules.
pub(super) fn ingress(name: &str, created: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    let mut y = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  creationTimestamp: \"{created}\"\nspec:\n  ingressClassName: portico\n  rules:\n"
    );
    for (host, path, ty, svc) in rules {
        if host.is_empty() {
            y.push_str("  - http:\n");
        } else {
            y.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
        }
        y.push_str(&format!(
            "      paths:\n      - path: {path}\n        pathType: {ty}\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 80\n"
        ));
    }
    y
}

/// `yaml` (one Ingress) with these ingress-nginx annotations.
pub(super) fn annotated(yaml: &str, pairs: &[(&str, &str)]) -> String {
    let mut a = String::from("  annotations:\n");
    for (k, v) in pairs {
        a.push_str(&format!("    nginx.ingress.kubernetes.io/{k}: \"{v}\"\n"));
    }
    yaml.replace("  creationTimestamp", &format!("{a}  creationTimestamp"))
}

pub(super) fn service(name: &str, ports: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: {ports}\n"
    )
}

/// `Host` to the name matched, as the data plane normalises it.
fn normalize(host: &str) -> String {
    host.rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase()
}

/// The Service a request goes to, or "404".
pub(super) fn route(r: &Routes, host: &str, path: &str) -> String {
    r.find(&normalize(host), path)
        .map_or_else(|| "404".into(), |r| r.backend.service.name.clone())
}

pub(super) fn found<'a>(r: &'a Routes, host: &str, path: &str) -> &'a Route {
    r.find(host, path).expect("routed")
}

pub(super) const T0: &str = "2024-01-01T00:00:00Z";
pub(super) const T1: &str = "2024-06-01T00:00:00Z";

#[test]
fn the_kubernetes_path_type_examples() {
    // https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        // (pathType, path) rule, then request path and expected match
        ("Prefix /", &[("/", "a"), ("/anything", "a")]),
        (
            "Exact /foo",
            &[("/foo", "a"), ("/bar", "404"), ("/foo/", "404")],
        ),
        ("Exact /foo/", &[("/foo", "404"), ("/foo/", "a")]),
        ("Prefix /foo", &[("/foo", "a"), ("/foo/", "a")]),
        ("Prefix /foo/", &[("/foo", "a"), ("/foo/", "a")]),
        ("Prefix /aaa/bb", &[("/aaa/bbb", "404")]),
        (
            "Prefix /aaa/bbb",
            &[
                ("/aaa/bbb", "a"),
                ("/aaa/bbb/", "a"),
                ("/aaa/bbb/ccc", "a"),
                ("/aaa/bbbxyz", "404"),
            ],
        ),
    ];
    for (rule, reqs) in cases {
        let (ty, path) = rule.split_once(' ').expect("case");
        let (r, errors) = routes(&ingress("i", T0, &[("", path, ty, "a")]));
        assert!(errors.is_empty(), "{errors:?}");
        for (req, want) in *reqs {
            assert_eq!(route(&r, "x.example.com", req), *want, "{rule} for {req}");
        }
    }
}

#[test]
fn the_longest_path_wins_and_exact_beats_prefix() {
    let (r, _) = routes(&ingress(
        "i",
        T0,
        &[
            ("", "/", "Prefix", "root"),
            ("", "/aaa", "Prefix", "aaa"),
            ("", "/aaa/bbb", "Prefix", "bbb"),
            ("", "/foo", "Prefix", "pfoo"),
            ("", "/foo", "Exact", "efoo"),
        ],
    ));
    assert_eq!(route(&r, "h", "/aaa/ccc"), "aaa");
    assert_eq!(route(&r, "h", "/aaa/bbb"), "bbb");
    assert_eq!(route(&r, "h", "/aaa/bbbxyz"), "aaa");
    assert_eq!(route(&r, "h", "/ccc"), "root");
    assert_eq!(route(&r, "h", "/foo"), "efoo");
    assert_eq!(route(&r, "h", "/foo/x"), "pfoo");
    // The order is data: longest path, then Exact before Prefix, then position.
    let order: Vec<(&str, usize, PathType)> = r.hosts[&HostMatch::Any]
        .iter()
        .map(|rr| {
            let p = rr.precedence;
            (
                rr.route.backend.service.name.as_str(),
                p.path_len,
                p.path_type,
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("bbb", 8, PathType::Prefix),
            ("efoo", 4, PathType::Exact),
            ("aaa", 4, PathType::Prefix),
            ("pfoo", 4, PathType::Prefix),
            ("root", 1, PathType::Prefix),
        ]
    );
    let hosts = &r.hosts[&HostMatch::Any];
    assert!(hosts.windows(2).all(|w| w[0].precedence < w[1].precedence));
}

#[test]
fn hosts_match_exactly_or_by_one_wildcard_label_ignoring_case_and_port() {
    let (r, _) = routes(&ingress(
        "i",
        T0,
        &[
            ("Foo.Bar.com", "/", "Prefix", "exact"),
            ("*.foo.com", "/", "Prefix", "wild"),
            ("", "/", "Prefix", "any"),
        ],
    ));
    assert!(
        r.hosts
            .contains_key(&HostMatch::Exact("foo.bar.com".into()))
    );
    assert!(r.hosts.contains_key(&HostMatch::Wildcard("foo.com".into())));
    assert_eq!(route(&r, "foo.bar.com", "/"), "exact");
    assert_eq!(route(&r, "FOO.Bar.com:8080", "/"), "exact");
    assert_eq!(route(&r, "bar.foo.com", "/"), "wild");
    assert_eq!(
        route(&r, "baz.bar.foo.com", "/"),
        "any",
        "a wildcard covers exactly one label"
    );
    assert_eq!(route(&r, "foo.com", "/"), "any", "nor the bare domain");
    assert_eq!(route(&r, "other.example", "/"), "any");
}

#[test]
fn an_exact_host_is_chosen_before_a_wildcard_and_decides_alone() {
    let (r, _) = routes(&ingress(
        "i",
        T0,
        &[
            ("*.example.com", "/", "Prefix", "wild"),
            ("a.example.com", "/app", "Prefix", "exact"),
        ],
    ));
    assert_eq!(route(&r, "a.example.com", "/app/x"), "exact");
    assert_eq!(route(&r, "b.example.com", "/x"), "wild");
    assert_eq!(
        route(&r, "a.example.com", "/x"),
        "404",
        "once a host matches, its own rules decide"
    );
}

#[test]
fn ingresses_of_one_host_merge_and_the_older_wins_a_conflict() {
    let yaml = [
        ingress(
            "newer",
            T1,
            &[
                ("shop.example.com", "/cart", "Prefix", "cart-new"),
                ("shop.example.com", "/", "Prefix", "web-new"),
            ],
        ),
        ingress(
            "older",
            T0,
            &[
                ("shop.example.com", "/cart", "Prefix", "cart-old"),
                ("shop.example.com", "/api", "Prefix", "api"),
            ],
        ),
    ]
    .concat();
    let (r, _) = routes(&yaml);
    assert_eq!(route(&r, "shop.example.com", "/cart"), "cart-old");
    assert_eq!(route(&r, "shop.example.com", "/api/v1"), "api");
    assert_eq!(route(&r, "shop.example.com", "/"), "web-new");
    assert_eq!(
        r.served,
        [
            ObjectKey::new("default", "newer"),
            ObjectKey::new("default", "older")
        ]
    );
    let origin = &found(&r, "shop.example.com", "/api").origin;
    assert_eq!(
        origin.to_string(),
        "Ingress default/older: spec.rules[1].http.paths[0]"
    );
}

#[test]
fn the_default_backend_catches_what_nothing_matched_and_otherwise_404() {
    let app = ingress("i", T0, &[("a.example.com", "/app", "Prefix", "app")]);
    let (r, _) = routes(&app);
    assert_eq!(route(&r, "a.example.com", "/other"), "404");
    assert_eq!(route(&r, "b.example.com", "/app"), "404");
    let with_default = |yaml: &str, svc: &str| {
        format!(
            "{yaml}  defaultBackend:\n    service:\n      name: {svc}\n      port:\n        number: 80\n"
        )
    };
    let (r, errors) = routes(&with_default(&app, "fallback"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(route(&r, "a.example.com", "/other"), "fallback");
    assert_eq!(route(&r, "b.example.com", "/"), "fallback");
    assert_eq!(route(&r, "a.example.com", "/app"), "app");
    let d = r.default_backend.as_ref().expect("default");
    assert_eq!(
        (d.path.as_str(), &d.matches.path, d.tls_host),
        ("/", &PathMatch::StringPrefix("/".into()), false)
    );
    assert_eq!(d.origin.field, "spec.defaultBackend");

    // The oldest Ingress's default backend wins; a broken Ingress gives it up.
    let newer = with_default(
        &ingress("newer", T1, &[]).replace("  rules:\n", ""),
        "newer",
    );
    let (r, _) = routes(&format!("{}{newer}", with_default(&app, "older")));
    assert_eq!(route(&r, "z", "/"), "older");
    let broken = with_default(
        &ingress("broken", T0, &[("", "rel", "Prefix", "x")]),
        "older",
    );
    let (r, errors) = routes(&format!("{broken}{newer}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(route(&r, "z", "/"), "newer");
}

#[test]
fn implementation_specific_is_a_string_prefix_and_regex_when_asked() {
    let (r, _) = routes(&ingress(
        "i",
        T0,
        &[("", "/foo", "ImplementationSpecific", "p")],
    ));
    assert_eq!(route(&r, "h", "/foobar"), "p");
    let yaml = annotated(
        &ingress(
            "r",
            T0,
            &[("", "/api/v[0-9]+/items", "ImplementationSpecific", "re")],
        ),
        &[("use-regex", "true")],
    );
    let (r, errors) = routes(&yaml);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(route(&r, "h", "/API/v2/items/7"), "re");
    assert_eq!(route(&r, "h", "/api/vx/items"), "404");
    let PathMatch::RegularExpression(re) = &found(&r, "h", "/api/v2/items").matches.path else {
        panic!("a regex")
    };
    assert_eq!(re.pattern(), "/api/v[0-9]+/items");
}

const CLASSES: &str = "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: portico
spec:
  controller: portico.dev/ingress-controller
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
";

#[test]
fn only_ingresses_of_our_class_are_served_and_reported() {
    let theirs = annotated(
        &ingress(
            "theirs",
            T0,
            &[("a.example.com", "/", "Prefix", "nginx-svc")],
        ),
        &[("configuration-snippet", "x"), ("ssl-redirect", "maybe")],
    )
    .replace("ingressClassName: portico", "ingressClassName: nginx");
    let legacy = ingress(
        "legacy",
        T0,
        &[("b.example.com", "/", "Prefix", "legacy-svc")],
    )
    .replace("  ingressClassName: portico\n", "")
    .replace(
        "  creationTimestamp",
        "  annotations:\n    kubernetes.io/ingress.class: portico\n  creationTimestamp",
    );
    let classless = ingress(
        "classless",
        T0,
        &[("c.example.com", "/", "Prefix", "classless-svc")],
    )
    .replace("  ingressClassName: portico\n", "");
    let (r, errors) = routes(&format!("{CLASSES}{theirs}{legacy}{classless}"));
    assert!(
        errors.is_empty(),
        "another controller's Ingress is not reported: {errors:?}"
    );
    assert_eq!(route(&r, "a.example.com", "/"), "404");
    assert_eq!(route(&r, "b.example.com", "/"), "legacy-svc");
    assert_eq!(
        route(&r, "c.example.com", "/"),
        "404",
        "no class, no default"
    );
    assert_eq!(r.served, [ObjectKey::new("default", "legacy")]);

    let defaulted = CLASSES.replace(
        "  name: portico\n",
        "  name: portico\n  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n",
    );
    let (r, _) = routes(&format!("{defaulted}{classless}"));
    assert_eq!(route(&r, "c.example.com", "/"), "classless-svc");

    // Another router's class, by configuration.
    let snap = snapshot(&format!("{CLASSES}{theirs}"));
    let nginx = ClassConfig {
        class_name: "nginx".into(),
        controller: "k8s.io/ingress-nginx".into(),
    };
    let (r, errors) = translate(
        &IngressInputs::of(&snap),
        &nginx,
        &mut IngressCache::default(),
    );
    let reasons: Vec<_> = errors.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        [
            InvalidReason::UnsupportedAnnotation,
            InvalidReason::BadAnnotationValue
        ]
    );
    assert!(r.served.is_empty(), "its bad value leaves it out");
}

#[test]
fn a_missing_tls_secret_is_an_error_on_the_ingress_and_the_host_still_counts_as_tls() {
    let yaml = format!(
        "{}  tls:\n  - hosts: [secure.example.com]\n    secretName: nope\n",
        ingress("i", T0, &[("secure.example.com", "/", "Prefix", "web")])
    );
    let (r, errors) = routes(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "spec.tls[0].secretName");
    assert_eq!(errors[0].object, Some(ObjectKey::new("default", "i")));
    assert_eq!(errors[0].reason, InvalidReason::MissingSecret);
    let route = found(&r, "secure.example.com", "/");
    assert!(route.tls_host);
    assert!(route.redirects_to_https(), "ssl-redirect is on by default");
    assert_eq!(
        r.tls,
        [Arc::new(TlsEntry {
            origin: crate::routes::RouteOrigin {
                kind: crate::routes::SourceKind::Ingress,
                object: ObjectKey::new("default", "i"),
                field: "spec.tls[0]".into(),
            },
            hosts: vec![HostMatch::Exact("secure.example.com".into())],
            secret: Some(ObjectKey::new("default", "nope")),
        })]
    );
}

#[test]
fn tls_hosts_cover_other_ingresses_and_wildcards_cover_one_label() {
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: y}\n";
    let tls = format!(
        "{}  tls:\n  - hosts: [\"*.example.com\", \"\"]\n    secretName: cert\n  - hosts: [plain.test]\n",
        ingress("tls", T0, &[])
    );
    let other = ingress(
        "other",
        T1,
        &[
            ("a.example.com", "/", "Prefix", "a"),
            ("*.example.com", "/", "Prefix", "w"),
            ("a.b.example.com", "/", "Prefix", "deep"),
            ("plain.test", "/", "Prefix", "p"),
            ("", "/", "Prefix", "any"),
        ],
    );
    let (r, errors) = routes(&format!("{secret}{tls}{other}"));
    assert!(errors.is_empty(), "{errors:?}");
    let tls_host = |h: &str| found(&r, h, "/").tls_host;
    assert!(tls_host("a.example.com") && tls_host("x.example.com") && tls_host("plain.test"));
    assert!(!tls_host("a.b.example.com") && !tls_host("elsewhere"));
    assert_eq!(r.tls.len(), 2);
    assert_eq!(r.tls[0].hosts, [HostMatch::Wildcard("example.com".into())]);
    assert_eq!(r.tls[1].secret, None);
}

#[test]
fn a_broken_ingress_is_left_out_and_named_while_others_serve() {
    let bad = ingress("bad", T0, &[("a.example.com", "foo", "Prefix", "x")]);
    let good = ingress("good", T0, &[("b.example.com", "/", "Prefix", "web")]);
    let (r, errors) = routes(&format!("{bad}{good}"));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "Ingress default/bad: spec.rules[0].http.paths[0].path: \"foo\" must be an absolute path"
    );
    assert_eq!(errors[0].reason, InvalidReason::BadPath);
    assert_eq!(route(&r, "a.example.com", "/"), "404");
    assert_eq!(route(&r, "b.example.com", "/"), "web");
    assert_eq!(r.served, [ObjectKey::new("default", "good")]);
}

#[test]
fn bad_hosts_path_types_and_regexes_are_named_by_cause() {
    let cases: &[(String, &str, InvalidReason, &str)] = &[
        (
            ingress("i", T0, &[("a:80", "/", "Prefix", "x")]),
            "spec.rules[0].host",
            InvalidReason::BadHost,
            "\"a:80\" is not a valid host (no ports, paths or inner wildcards)",
        ),
        (
            ingress("i", T0, &[("*.", "/", "Prefix", "x")]),
            "spec.rules[0].host",
            InvalidReason::BadHost,
            "\"*.\" is not a valid wildcard host",
        ),
        (
            ingress("i", T0, &[("", "/", "Regex", "x")]),
            "spec.rules[0].http.paths[0].pathType",
            InvalidReason::BadPathType,
            "unsupported value \"Regex\": expected Exact, Prefix or ImplementationSpecific",
        ),
        (
            annotated(
                &ingress("i", T0, &[("", "/a(", "Prefix", "x")]),
                &[("use-regex", "true")],
            ),
            "spec.rules[0].http.paths[0].path",
            InvalidReason::BadRegex,
            "",
        ),
    ];
    for (yaml, field, reason, message) in cases {
        let (r, errors) = routes(yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].field.as_str(), errors[0].reason),
            (*field, *reason)
        );
        assert!(errors[0].message.starts_with(message), "{}", errors[0]);
        assert!(r.served.is_empty() && r.hosts.is_empty());
    }
}
