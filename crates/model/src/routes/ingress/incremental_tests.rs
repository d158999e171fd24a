//! A translation that reuses its cache gives what a translation from scratch gives, whatever
//! happened in between: the incremental path is checked against the full one after every change.

use proptest::prelude::*;

use crate::control_plane::{Allocations, ControlPlaneConfig, complete};
use crate::manifest::parse_file;
use crate::{ClusterState, Object, Snapshot};

use super::*;

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

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: cert}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: y}\n";

fn class(ours: bool) -> String {
    let controller = if ours {
        "portico.dev/ingress-controller"
    } else {
        "k8s.io/ingress-nginx"
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: portico}}\nspec: {{controller: {controller}}}\n"
    )
}

#[derive(Clone, Debug)]
struct Spec {
    name: usize,
    host: usize,
    path: usize,
    exact: bool,
    service: usize,
    by_name: bool,
    tls: bool,
    canary: bool,
    older: bool,
    default_backend: bool,
    annotations: usize,
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const HOSTS: [&str; 4] = ["x.example.com", "y.example.com", "*.example.com", ""];
const PATHS: [&str; 4] = ["/", "/api", "/api/v1", "api"];
const SERVICES: [&str; 3] = ["web", "api", "gone"];
const ANNOTATIONS: [&str; 5] = [
    "",
    "    nginx.ingress.kubernetes.io/use-regex: \"true\"\n",
    "    nginx.ingress.kubernetes.io/proxy-body-size: \"lots\"\n",
    "    nginx.ingress.kubernetes.io/enable-cors: \"true\"\n",
    "    nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n",
];

fn ingress(s: &Spec) -> Ingress {
    let host = HOSTS[s.host];
    let mut y = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {}\n  creationTimestamp: \"{}\"\n  annotations:\n{}",
        NAMES[s.name],
        if s.older {
            "2024-01-01T00:00:00Z"
        } else {
            "2024-06-01T00:00:00Z"
        },
        ANNOTATIONS[s.annotations],
    );
    if s.canary {
        y.push_str("    nginx.ingress.kubernetes.io/canary: \"true\"\n    nginx.ingress.kubernetes.io/canary-weight: \"30\"\n");
    }
    y = y.replace("  annotations:\nspec", "spec");
    y.push_str("spec:\n  ingressClassName: portico\n");
    let port = if s.by_name {
        "{name: http}"
    } else {
        "{number: 80}"
    };
    if s.default_backend {
        y.push_str(&format!(
            "  defaultBackend:\n    service:\n      name: {}\n      port: {port}\n",
            SERVICES[(s.service + 1) % SERVICES.len()]
        ));
    }
    if s.tls && !host.is_empty() {
        y.push_str(&format!(
            "  tls:\n  - hosts: [\"{host}\"]\n    secretName: cert\n"
        ));
    }
    y.push_str("  rules:\n");
    if host.is_empty() {
        y.push_str("  - http:\n");
    } else {
        y.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
    }
    y.push_str(&format!(
        "      paths:\n      - path: {}\n        pathType: {}\n        backend:\n          service:\n            name: {}\n            port: {port}\n",
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
    /// The same Ingress again, as a new object (equal value, another `Arc`).
    Touch(usize),
    /// Change a Service's port (routes to it by number stop resolving).
    ServicePort(usize, u16),
    Secret(bool),
    /// Whether the `portico` IngressClass is ours.
    Class(bool),
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            0..NAMES.len(),
            0..HOSTS.len(),
            0..PATHS.len(),
            any::<bool>(),
        ),
        (0..SERVICES.len(), any::<bool>(), any::<bool>()),
        (
            prop::bool::weighted(0.2),
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::sample::select(vec![0usize, 0, 0, 1, 2, 3, 4]),
        ),
    )
        .prop_map(
            |(
                (name, host, path, exact),
                (service, by_name, tls),
                (canary, older, default_backend, annotations),
            )| Spec {
                name,
                host,
                path,
                exact,
                service,
                by_name,
                tls,
                canary,
                older,
                default_backend,
                annotations,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => spec().prop_map(Op::Upsert),
        2 => (0..NAMES.len()).prop_map(Op::Remove),
        1 => (0..NAMES.len()).prop_map(Op::Touch),
        1 => (0..2usize, prop::sample::select(vec![80u16, 81])).prop_map(|(s, p)| Op::ServicePort(s, p)),
        1 => any::<bool>().prop_map(Op::Secret),
        1 => any::<bool>().prop_map(Op::Class),
    ]
}

/// A cluster that changes one object at a time; unchanged objects keep their `Arc`, as with the
/// sources.
struct World {
    state: ClusterState,
    generation: u64,
}

impl World {
    fn new() -> Self {
        let mut state = ClusterState::default();
        for name in ["web", "api"] {
            state.insert(object(&service(name, 80)), Default::default());
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
            Op::Touch(n) => {
                let ingresses = Arc::make_mut(&mut self.state.ingresses);
                if let Some(ing) = ingresses.get_mut(&key(NAMES[*n])) {
                    *ing = Arc::new((**ing).clone());
                }
            }
            Op::ServicePort(s, port) => self.replace(object(&service(SERVICES[*s], *port))),
            Op::Secret(true) => self.replace(object(SECRET)),
            Op::Secret(false) => drop(self.state.remove("Secret", &key("cert"))),
            Op::Class(ours) => self.replace(object(&class(*ours))),
        }
    }

    /// Insert or replace (`ClusterState::insert` keeps the first of two).
    fn replace(&mut self, obj: Object) {
        self.state.remove(obj.kind(), &obj.key());
        self.state.insert(obj, Default::default());
    }

    fn snapshot(&mut self) -> Snapshot {
        let mut state = self.state.clone();
        complete(
            &mut state,
            &ControlPlaneConfig::default(),
            &mut Allocations::default(),
        );
        self.generation += 1;
        crate::translate(&state, self.generation)
    }
}

/// Incremental translation, checked against a translation from scratch.
fn check(cache: &mut IngressCache, snap: &Snapshot) -> Routes {
    let inputs = IngressInputs::of(snap);
    let class = ClassConfig::default();
    let (routes, errors) = translate(&inputs, &class, cache);
    let (full, full_errors) = translate(&inputs, &class, &mut IngressCache::default());
    assert_eq!(routes, full);
    assert_eq!(errors, full_errors);
    routes
}

fn plain(name: usize) -> Spec {
    Spec {
        name,
        host: name % 2,
        path: name % 3,
        exact: false,
        service: name % 2,
        by_name: true,
        tls: false,
        canary: false,
        older: true,
        default_backend: false,
        annotations: 0,
    }
}

#[test]
fn an_edit_rebuilds_one_ingress_and_reuses_the_others() {
    let mut world = World::new();
    let mut cache = IngressCache::default();
    for name in 0..NAMES.len() {
        world.apply(&Op::Upsert(plain(name)));
    }
    let first = check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 0, "a cold cache reuses nothing");

    // One Ingress edited: the four others are reused as they were, the same `Arc`s.
    world.apply(&Op::Upsert(Spec {
        host: 1,
        path: 1,
        exact: true,
        service: 1,
        ..plain(0)
    }));
    let second = check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 4);
    assert_eq!(second.served.len(), 5);
    let kept = |r: &Routes, name: &str| {
        r.iter()
            .find(|(_, route)| route.origin.object.name == name)
            .map(|(_, route)| route.clone())
            .expect("routed")
    };
    assert!(Arc::ptr_eq(&kept(&first, "b"), &kept(&second, "b")));

    // A Service's port changes: every route to it is resolved again, the others are reused.
    world.apply(&Op::ServicePort(1, 81));
    check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 2, "the routes to web are reused");

    // A deleted Ingress is gone from the routes and from the cache.
    world.apply(&Op::Remove(4));
    let routes = check(&mut cache, &world.snapshot());
    assert_eq!(routes.served.len(), 4);
    assert_eq!(cache.len(), 4);

    // The same object again, as another `Arc`: parsed again, then reused.
    world.apply(&Op::Touch(0));
    check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 3);
}

#[test]
fn a_tls_host_added_elsewhere_rebuilds_the_routes_of_that_host() {
    let mut world = World::new();
    let mut cache = IngressCache::default();
    world.apply(&Op::Upsert(plain(0)));
    let before = check(&mut cache, &world.snapshot());
    assert!(before.iter().all(|(_, r)| !r.tls_host));
    world.apply(&Op::Upsert(Spec {
        tls: true,
        path: 2,
        ..plain(2)
    }));
    let after = check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 0);
    assert!(after.iter().all(|(_, r)| r.tls_host));
    let again = check(&mut cache, &world.snapshot());
    assert_eq!(cache.reused(), 2);
    assert!(
        Arc::ptr_eq(&after.tls[0], &again.tls[0]),
        "TLS entries are shared too"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The invariant of the cache: after any sequence of changes, the incremental translation
    /// is the translation from scratch.
    #[test]
    fn incremental_equals_full_after_any_changes(ops in prop::collection::vec(op(), 1..24)) {
        let mut world = World::new();
        let mut cache = IngressCache::default();
        check(&mut cache, &world.snapshot());
        for op in &ops {
            world.apply(op);
            check(&mut cache, &world.snapshot());
        }
    }
}
