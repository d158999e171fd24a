//! A build that reuses its cache gives the table a build from scratch gives, whatever happened
//! in between: the incremental path is checked against the full one after every change.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use portico_model::control_plane::{Allocations, ControlPlaneConfig, complete};
use portico_model::manifest::parse_file;
use portico_model::routes::{ClassConfig, IngressCache, ingress as routing};
use portico_model::{ClusterState, Invalid, Object, ObjectKey, Snapshot, translate};
use proptest::prelude::*;

use super::super::{CompileContext, HostRules, RouteTable, compile};
use super::CompileCache;
use crate::tls::CertCache;
use crate::upstream::EndpointRegistry;

/// Everything a request can observe of a table, and the problems reported, as text.
fn describe(t: &RouteTable, errors: &[Invalid]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rules = |name: &str, r: &HostRules| {
        for route in &r.routes {
            out.push(format!(
                "{name} {} {} {:?} {} {:?} tls={} options={:?} canary={:?}",
                route.ingress(),
                route.path(),
                route.matcher,
                route.upstream.label,
                route.upstream.target,
                route.tls_host,
                route.options,
                route.canary.as_ref().map(|c| (
                    &c.ingress,
                    &c.upstream.label,
                    &c.upstream.target,
                    &c.rules
                )),
            ));
        }
    };
    let mut exact: Vec<_> = t.exact.iter().collect();
    exact.sort_by(|a, b| a.0.cmp(b.0));
    for (h, r) in exact {
        rules(h, r);
    }
    let mut wildcard: Vec<_> = t.wildcard.iter().collect();
    wildcard.sort_by(|a, b| a.0.cmp(b.0));
    for (h, r) in wildcard {
        rules(&format!("*.{h}"), r);
    }
    rules("(any)", &t.any_host);
    if let Some(d) = &t.default_backend {
        out.push(format!(
            "default {} {} {:?}",
            d.ingress(),
            d.upstream.label,
            d.upstream.target
        ));
    }
    out.push(format!("served {:?}", t.served()));
    out.extend(
        errors
            .iter()
            .chain(t.cert_errors.iter())
            .map(|e| format!("error {e}")),
    );
    out
}

fn object(yaml: &str) -> Object {
    let mut docs = parse_file("t.yaml", yaml);
    assert_eq!(docs.len(), 1, "{yaml}");
    docs.remove(0).1.expect("valid test object")
}

fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports:\n  - {{name: http, port: {port}, targetPort: 8080}}\n"
    )
}

fn endpoints(name: &str, ip: u8) -> String {
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\nsubsets:\n- addresses: [{{ip: 10.0.0.{ip}}}]\n  ports: [{{name: http, port: 8080}}]\n"
    )
}

#[derive(Clone, Debug)]
struct Spec {
    name: usize,
    host: usize,
    path: usize,
    exact: bool,
    service: usize,
    tls: bool,
    canary: bool,
    older: bool,
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const HOSTS: [&str; 4] = ["x.example.com", "y.example.com", "*.example.com", ""];
const PATHS: [&str; 4] = ["/", "/api", "/api/v1", "api"];
const SERVICES: [&str; 3] = ["web", "api", "gone"];

fn ingress(s: &Spec) -> Ingress {
    let host = HOSTS[s.host];
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {}\n  creationTimestamp: \"{}\"\n",
        NAMES[s.name],
        if s.older {
            "2024-01-01T00:00:00Z"
        } else {
            "2024-06-01T00:00:00Z"
        }
    );
    if s.canary {
        y.push_str("  annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"30\"\n");
    }
    y.push_str("spec:\n  ingressClassName: portico\n");
    if s.tls && !host.is_empty() {
        y.push_str(&format!(
            "  tls:\n  - hosts: [\"{host}\"]\n    secretName: missing\n"
        ));
    }
    y.push_str("  rules:\n");
    if host.is_empty() {
        y.push_str("  - http:\n");
    } else {
        y.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
    }
    y.push_str(&format!(
        "      paths:\n      - path: {}\n        pathType: {}\n        backend:\n          service:\n            name: {}\n            port: {{name: http}}\n",
        PATHS[s.path],
        if s.exact { "Exact" } else { "Prefix" },
        SERVICES[s.service]
    ));
    match object(&y) {
        Object::Ingress(i) => i,
        other => panic!("not an Ingress: {other:?}"),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(Spec),
    Remove(usize),
    /// Change a Service's port (its upstream must be resolved again).
    ServicePort(usize, u16),
    /// Move a Service's one endpoint.
    Endpoint(usize, u8),
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..NAMES.len(),
        0..HOSTS.len(),
        0..PATHS.len(),
        any::<bool>(),
        0..SERVICES.len(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(
            |(name, host, path, exact, service, tls, canary, older)| Spec {
                name,
                host,
                path,
                exact,
                service,
                tls,
                canary,
                older,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => spec().prop_map(Op::Upsert),
        2 => (0..NAMES.len()).prop_map(Op::Remove),
        1 => (0..2usize, prop::sample::select(vec![80u16, 81])).prop_map(|(s, p)| Op::ServicePort(s, p)),
        1 => (0..2usize, 1..3u8).prop_map(|(s, ip)| Op::Endpoint(s, ip)),
    ]
}

/// A cluster that changes one object at a time; unchanged objects keep their `Arc`, as with the
/// manifests source.
struct World {
    state: ClusterState,
    generation: u64,
}

impl World {
    fn new() -> Self {
        let mut state = ClusterState::default();
        for (i, name) in ["web", "api"].iter().enumerate() {
            state.insert(object(&service(name, 80)), Default::default());
            state.insert(object(&endpoints(name, i as u8 + 1)), Default::default());
        }
        Self {
            state,
            generation: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        let key = |n: &str| ObjectKey::new("default", n);
        match op {
            Op::Upsert(s) => {
                Arc::make_mut(&mut self.state.ingresses)
                    .insert(key(NAMES[s.name]), Arc::new(ingress(s)));
            }
            Op::Remove(n) => {
                Arc::make_mut(&mut self.state.ingresses).remove(&key(NAMES[*n]));
            }
            Op::ServicePort(s, port) => {
                let Object::Service(svc) = object(&service(SERVICES[*s], *port)) else {
                    unreachable!()
                };
                self.state.services.insert(key(SERVICES[*s]), Arc::new(svc));
            }
            Op::Endpoint(s, ip) => {
                let Object::Endpoints(ep) = object(&endpoints(SERVICES[*s], *ip)) else {
                    unreachable!()
                };
                self.state.endpoints.insert(key(SERVICES[*s]), Arc::new(ep));
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let mut state = self.state.clone();
        complete(
            &mut state,
            &ControlPlaneConfig::default(),
            &mut Allocations::default(),
        );
        self.generation += 1;
        translate(&state, self.generation)
    }
}

/// The caches kept across snapshots: the translation's (beside the snapshot's writer) and the
/// router's.
struct Router {
    registry: EndpointRegistry,
    certs: CertCache,
    ingresses: IngressCache,
    cache: CompileCache,
}

impl Router {
    fn new() -> Self {
        Self {
            registry: EndpointRegistry::default(),
            certs: CertCache::default(),
            ingresses: IngressCache::default(),
            cache: CompileCache::default(),
        }
    }

    fn ctx(&self) -> CompileContext<'_> {
        CompileContext {
            registry: &self.registry,
            certs: &self.certs,
            metrics: None,
        }
    }

    /// Incremental translation and compile, checked against both from scratch.
    fn build(&mut self, snap: &Snapshot) -> RouteTable {
        let cfg = ClassConfig::default();
        let mut routed = snap.clone();
        routing::route(&mut routed, &cfg, &mut self.ingresses);
        let ctx = CompileContext {
            registry: &self.registry,
            certs: &self.certs,
            metrics: None,
        };
        let t = compile(&routed.routes, &routed, &ctx, &mut self.cache);
        let mut fresh = snap.clone();
        routing::route(&mut fresh, &cfg, &mut IngressCache::default());
        let full = compile(
            &fresh.routes,
            &fresh,
            &self.ctx(),
            &mut CompileCache::default(),
        );
        assert_eq!(describe(&t, &routed.errors), describe(&full, &fresh.errors));
        assert_eq!(routed.errors, fresh.errors);
        t
    }
}

#[test]
fn an_edit_rebuilds_one_ingress_and_reuses_the_others() {
    let mut world = World::new();
    let mut router = Router::new();
    for name in 0..NAMES.len() {
        world.apply(&Op::Upsert(Spec {
            name,
            host: name % 2,
            path: name % 3,
            exact: false,
            service: name % 2,
            tls: false,
            canary: false,
            older: true,
        }));
    }
    router.build(&world.snapshot());
    assert_eq!(router.cache.reused, 0, "a cold cache reuses nothing");

    // One Ingress edited: the four others are reused as they were.
    let edited = Spec {
        name: 0,
        host: 1,
        path: 1,
        exact: true,
        service: 1,
        tls: false,
        canary: false,
        older: true,
    };
    world.apply(&Op::Upsert(edited));
    let t = router.build(&world.snapshot());
    assert_eq!(router.cache.reused, 4);
    assert_eq!(t.served().len(), 5);

    // A Service's port changes: every route to it is resolved again, the others are reused.
    world.apply(&Op::ServicePort(1, 81));
    router.build(&world.snapshot());
    assert_eq!(router.cache.reused, 2, "the routes to web are reused");

    // A deleted Ingress is gone from the table and from the cache.
    world.apply(&Op::Remove(4));
    let t = router.build(&world.snapshot());
    assert_eq!(t.served().len(), 4);
    assert_eq!(router.ingresses.len(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The invariant of the cache: after any sequence of changes, the incremental table is the
    /// table a build from scratch gives.
    #[test]
    fn incremental_equals_full_after_any_changes(ops in prop::collection::vec(op(), 1..24)) {
        let mut world = World::new();
        let mut router = Router::new();
        router.build(&world.snapshot());
        for op in &ops {
            world.apply(op);
            router.build(&world.snapshot());
        }
    }
}
