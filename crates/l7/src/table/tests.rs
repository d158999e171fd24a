//! The route table against the Ingress API's documented examples, as stories.

use portico_model::control_plane::{Allocations, ControlPlaneConfig, complete};
use portico_model::manifest::parse_file;
use portico_model::{ClusterState, Snapshot, translate};

use portico_model::routes::{ClassConfig, IngressCache, ingress};

use super::*;
use crate::tls::CertCache;
use crate::upstream::EndpointRegistry;

fn snapshot(yaml: &str) -> Snapshot {
    let mut state = ClusterState::default();
    for (origin, parsed) in parse_file("test.yaml", yaml) {
        state.insert(parsed.expect("test manifests are valid"), origin);
    }
    complete(
        &mut state,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    translate(&state, 1)
}

/// An Ingress of class portico with `(host, path, pathType, service)` rules.
fn ingress(name: &str, created: &str, rules: &[(&str, &str, &str, &str)]) -> String {
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

/// The table of a snapshot routed and compiled from scratch, and the problems found on the way:
/// the translation's (which join the snapshot's errors) and the certificates'.
pub(crate) fn table(yaml: &str) -> (RouteTable, Vec<Invalid>) {
    let mut snap = snapshot(yaml);
    let before = snap.errors.len();
    ingress::route(
        &mut snap,
        &ClassConfig::default(),
        &mut IngressCache::default(),
    );
    let ctx = CompileContext {
        registry: &EndpointRegistry::default(),
        certs: &CertCache::default(),
        metrics: None,
    };
    let t = compile(&snap.routes, &snap, &ctx, &mut CompileCache::default());
    let mut errors = snap.errors[before..].to_vec();
    errors.extend(t.cert_errors.iter().cloned());
    (t, errors)
}

/// The Service a request goes to, or "404".
fn route(t: &RouteTable, host: &str, path: &str) -> String {
    match t.lookup(&normalize_host(host), path) {
        Lookup::Route(r) => r.upstream.service.name.clone(),
        Lookup::NotFound => "404".into(),
    }
}

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-06-01T00:00:00Z";

#[test]
fn the_kubernetes_path_type_examples() {
    // https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        // (pathType, path) rules, request path, expected match
        ("Prefix /", "/", &[("/", "a"), ("/anything", "a")]),
        (
            "Exact /foo",
            "",
            &[("/foo", "a"), ("/bar", "404"), ("/foo/", "404")],
        ),
        ("Exact /foo/", "", &[("/foo", "404"), ("/foo/", "a")]),
        ("Prefix /foo", "", &[("/foo", "a"), ("/foo/", "a")]),
        ("Prefix /foo/", "", &[("/foo", "a"), ("/foo/", "a")]),
        ("Prefix /aaa/bb", "", &[("/aaa/bbb", "404")]),
        (
            "Prefix /aaa/bbb",
            "",
            &[
                ("/aaa/bbb", "a"),
                ("/aaa/bbb/", "a"),
                ("/aaa/bbb/ccc", "a"),
                ("/aaa/bbbxyz", "404"),
            ],
        ),
    ];
    for (rule, _, reqs) in cases {
        let (ty, path) = rule.split_once(' ').expect("case");
        let (t, errors) = table(&ingress("i", T0, &[("", path, ty, "a")]));
        assert!(errors.is_empty(), "{errors:?}");
        for (req, want) in *reqs {
            assert_eq!(route(&t, "x.example.com", req), *want, "{rule} for {req}");
        }
    }
}

#[test]
fn the_longest_path_wins_and_exact_beats_prefix() {
    let (t, _) = table(&ingress(
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
    assert_eq!(route(&t, "h", "/aaa/ccc"), "aaa");
    assert_eq!(route(&t, "h", "/aaa/bbb"), "bbb");
    assert_eq!(route(&t, "h", "/aaa/bbbxyz"), "aaa");
    assert_eq!(route(&t, "h", "/ccc"), "root");
    assert_eq!(route(&t, "h", "/foo"), "efoo");
    assert_eq!(route(&t, "h", "/foo/x"), "pfoo");
}

#[test]
fn hosts_match_exactly_or_by_one_wildcard_label_ignoring_case_and_port() {
    let (t, _) = table(&ingress(
        "i",
        T0,
        &[
            ("foo.bar.com", "/", "Prefix", "exact"),
            ("*.foo.com", "/", "Prefix", "wild"),
            ("", "/", "Prefix", "any"),
        ],
    ));
    assert_eq!(route(&t, "foo.bar.com", "/"), "exact");
    assert_eq!(route(&t, "FOO.Bar.com:8080", "/"), "exact");
    assert_eq!(route(&t, "bar.foo.com", "/"), "wild");
    assert_eq!(
        route(&t, "baz.bar.foo.com", "/"),
        "any",
        "a wildcard covers exactly one label"
    );
    assert_eq!(route(&t, "foo.com", "/"), "any", "nor the bare domain");
    assert_eq!(route(&t, "other.example", "/"), "any");
}

#[test]
fn an_exact_host_is_chosen_before_a_wildcard() {
    let (t, _) = table(&ingress(
        "i",
        T0,
        &[
            ("*.example.com", "/", "Prefix", "wild"),
            ("a.example.com", "/", "Prefix", "exact"),
        ],
    ));
    assert_eq!(route(&t, "a.example.com", "/x"), "exact");
    assert_eq!(route(&t, "b.example.com", "/x"), "wild");
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
    let (t, _) = table(&yaml);
    assert_eq!(
        route(&t, "shop.example.com", "/cart"),
        "cart-old",
        "same host and path: the older Ingress"
    );
    assert_eq!(
        route(&t, "shop.example.com", "/api/v1"),
        "api",
        "merged from the older"
    );
    assert_eq!(
        route(&t, "shop.example.com", "/"),
        "web-new",
        "merged from the newer"
    );
}

#[test]
fn the_default_backend_catches_what_nothing_matched_and_otherwise_404() {
    let (t, _) = table(&ingress(
        "i",
        T0,
        &[("a.example.com", "/app", "Prefix", "app")],
    ));
    assert_eq!(route(&t, "a.example.com", "/other"), "404");
    assert_eq!(route(&t, "b.example.com", "/app"), "404");
    let yaml = format!(
        "{}  defaultBackend:\n    service:\n      name: fallback\n      port:\n        number: 80\n",
        ingress("i", T0, &[("a.example.com", "/app", "Prefix", "app")])
    );
    let (t, errors) = table(&yaml);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(route(&t, "a.example.com", "/other"), "fallback");
    assert_eq!(route(&t, "b.example.com", "/"), "fallback");
    assert_eq!(route(&t, "a.example.com", "/app"), "app");
}

#[test]
fn implementation_specific_is_a_string_prefix_and_regex_when_asked() {
    let (t, _) = table(&ingress(
        "i",
        T0,
        &[("", "/foo", "ImplementationSpecific", "p")],
    ));
    assert_eq!(route(&t, "h", "/foobar"), "p");
    let yaml = ingress(
        "r",
        T0,
        &[("", "/api/v[0-9]+/items", "ImplementationSpecific", "re")],
    )
    .replace(
        "  creationTimestamp",
        "  annotations:\n    nginx.ingress.kubernetes.io/use-regex: \"true\"\n  creationTimestamp",
    );
    let (t, errors) = table(&yaml);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(route(&t, "h", "/API/v2/items/7"), "re");
    assert_eq!(route(&t, "h", "/api/vx/items"), "404");
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
fn only_ingresses_of_our_class_are_served() {
    let theirs = ingress(
        "theirs",
        T0,
        &[("a.example.com", "/", "Prefix", "nginx-svc")],
    )
    .replace("ingressClassName: portico", "ingressClassName: nginx");
    let legacy = ingress(
        "legacy",
        T0,
        &[("b.example.com", "/", "Prefix", "legacy-svc")],
    )
    .replace("  ingressClassName: portico\n", "");
    let legacy = legacy.replace(
        "  creationTimestamp",
        "  annotations:\n    kubernetes.io/ingress.class: portico\n  creationTimestamp",
    );
    let classless = ingress(
        "classless",
        T0,
        &[("c.example.com", "/", "Prefix", "classless-svc")],
    )
    .replace("  ingressClassName: portico\n", "");
    let yaml = format!("{CLASSES}{theirs}{legacy}{classless}");
    let (t, _) = table(&yaml);
    assert_eq!(
        route(&t, "a.example.com", "/"),
        "404",
        "another controller's Ingress is ignored"
    );
    assert_eq!(
        route(&t, "b.example.com", "/"),
        "legacy-svc",
        "the legacy annotation is honoured"
    );
    assert_eq!(
        route(&t, "c.example.com", "/"),
        "404",
        "no class and no default class"
    );
    assert_eq!(t.served(), [ObjectKey::new("default", "legacy")]);

    let defaulted = CLASSES.replace(
        "  name: portico\n",
        "  name: portico\n  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n",
    );
    let (t, _) = table(&format!("{defaulted}{classless}"));
    assert_eq!(
        route(&t, "c.example.com", "/"),
        "classless-svc",
        "our class is the default class"
    );
}

#[test]
fn a_missing_tls_secret_is_an_error_on_the_ingress_and_the_host_still_counts_as_tls() {
    let yaml = format!(
        "{}  tls:\n  - hosts: [secure.example.com]\n    secretName: nope\n",
        ingress("i", T0, &[("secure.example.com", "/", "Prefix", "web")])
    );
    let (t, errors) = table(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "spec.tls[0].secretName");
    assert_eq!(errors[0].object, Some(ObjectKey::new("default", "i")));
    assert!(!t.has_cert("secure.example.com"));
    let Lookup::Route(r) = t.lookup("secure.example.com", "/") else {
        panic!("routed")
    };
    assert!(
        r.tls_host,
        "redirects to HTTPS, served with the default certificate"
    );
}

#[test]
fn a_broken_ingress_is_left_out_and_named_while_others_serve() {
    let bad = ingress("bad", T0, &[("a.example.com", "foo", "Prefix", "x")]);
    let good = ingress("good", T0, &[("b.example.com", "/", "Prefix", "web")]);
    let (t, errors) = table(&format!("{bad}{good}"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].to_string(), "Ingress default/bad in test.yaml (document 1): spec.rules[0].http.paths[0].path: \"foo\" must be an absolute path".replace(" in test.yaml (document 1)", ""));
    assert_eq!(route(&t, "a.example.com", "/"), "404");
    assert_eq!(route(&t, "b.example.com", "/"), "web");
}

#[test]
fn a_canary_attaches_to_the_main_route_of_the_same_host_and_path() {
    let main = ingress("main", T0, &[("a.example.com", "/", "Prefix", "stable")]);
    let canary = ingress("canary", T1, &[("a.example.com", "/", "Prefix", "next")]).replace(
        "  creationTimestamp",
        "  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"20\"\n  creationTimestamp",
    );
    let (t, errors) = table(&format!("{main}{canary}"));
    assert!(errors.is_empty(), "{errors:?}");
    let Lookup::Route(r) = t.lookup("a.example.com", "/") else {
        panic!("routed")
    };
    assert_eq!(r.upstream.service.name, "stable");
    let c = r.canary.as_ref().expect("canary attached");
    assert_eq!(
        (c.upstream.service.name.as_str(), c.rules.weight),
        ("next", 20)
    );
}
