use portico_model::manifest::parse_file;

use super::*;

fn state(yaml: &str) -> ClusterState {
    let mut s = ClusterState::default();
    for (origin, r) in parse_file("svc.yaml", yaml) {
        match r {
            Ok(o) => s.insert(o, origin),
            Err(e) => s.invalid.push(e),
        }
    }
    s
}

const GOOD: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, selector: {app: web}, ports: [{port: 80, nodePort: 30080}]}\n";

#[test]
fn an_invalid_edit_keeps_the_last_good_service() {
    let mut p = Pipeline::standalone(ControlPlaneConfig::default());
    let first = p.build(&state(GOOD));
    let key = ObjectKey::new("default", "web");
    assert_eq!(first.services[&key].ports[0].node_port, Some(30080));

    // nodePort outside the range: rejected by validation, the previous version keeps serving.
    let second = p.build(&state(&GOOD.replace("30080", "80")));
    assert_eq!(second.services[&key].ports[0].node_port, Some(30080));
    let err = second
        .errors
        .iter()
        .find(|e| e.object.as_ref() == Some(&key))
        .expect("reported");
    assert!(
        err.message.ends_with("the last good version keeps serving"),
        "{err}"
    );
    assert_eq!(err.field, "spec.ports[0].nodePort");
    assert_eq!(second.generation, first.generation + 1);

    // Deleting it removes it: deletion is not an error.
    let third = p.build(&ClusterState::default());
    assert!(third.services.is_empty());
    assert!(third.errors.is_empty());
}

#[test]
fn a_new_invalid_service_is_left_out_and_others_serve() {
    let mut p = Pipeline::standalone(ControlPlaneConfig::default());
    let bad = "---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {sessionAffinity: Sticky}\n";
    let snap = p.build(&state(&format!("{GOOD}{bad}")));
    assert!(
        snap.services
            .contains_key(&ObjectKey::new("default", "web"))
    );
    assert!(
        !snap
            .services
            .contains_key(&ObjectKey::new("default", "bad"))
    );
    let err = snap
        .errors
        .iter()
        .find(|e| e.field == "spec.sessionAffinity")
        .expect("reported");
    assert_eq!(err.origin.file.as_deref(), Some("svc.yaml"));
}

#[test]
fn a_tls_secret_edited_into_an_invalid_one_keeps_its_last_good_version() {
    let secret = |data: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\ntype: kubernetes.io/tls\nstringData: {{{data}}}\n"
        )
    };
    let mut p = Pipeline::kube();
    let key = ObjectKey::new("default", "tls");
    let first = p.build(&state(&secret("tls.crt: CERT, tls.key: KEY")));
    assert_eq!(first.tls_secrets[&key].key_pem, b"KEY");

    // tls.key removed: invalid; the last good version keeps serving and the error says so.
    let second = p.build(&state(&secret("tls.crt: CERT")));
    assert_eq!(second.tls_secrets[&key].key_pem, b"KEY");
    let err = second
        .errors
        .iter()
        .find(|e| e.object.as_ref() == Some(&key))
        .expect("reported");
    assert_eq!(
        (err.kind.as_str(), err.field.as_str()),
        ("Secret", "data[tls.key]")
    );
    assert!(
        err.message.ends_with("the last good version keeps serving"),
        "{err}"
    );

    // Deleted: gone, and no error.
    let third = p.build(&ClusterState::default());
    assert!(third.tls_secrets.is_empty());
    assert!(third.errors.is_empty());

    // Created invalid: left out, nothing to keep.
    let fourth = p.build(&state(&secret("tls.crt: CERT")));
    assert!(fourth.tls_secrets.is_empty());
}

const INGRESS: &str = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: shop\n  annotations:\n    nginx.ingress.kubernetes.io/configuration-snippet: \"x\"\nspec:\n  ingressClassName: portico\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: web\n            port: {number: 80}\n";

#[test]
fn a_routing_pipeline_publishes_routes_and_their_errors_in_the_one_list() {
    let yaml = format!("{GOOD}{INGRESS}");
    let mut p =
        Pipeline::standalone(ControlPlaneConfig::default()).with_routes(ClassConfig::default());
    let snap = p.build(&state(&yaml));
    let shop = ObjectKey::new("default", "shop");
    assert_eq!(snap.routes.served, vec![shop.clone()]);
    assert!(snap.routes.find("shop.example.com", "/cart").is_some());
    let unsupported: Vec<_> = snap
        .errors
        .iter()
        .filter(|e| e.object.as_ref() == Some(&shop))
        .collect();
    assert_eq!(unsupported.len(), 1, "{:?}", snap.errors);
    assert_eq!(
        unsupported[0].reason,
        portico_model::InvalidReason::UnsupportedAnnotation
    );

    // The same state again: the same routes.
    let again = p.build(&state(&yaml));
    let (a, b) = (
        snap.routes.find("shop.example.com", "/").expect("routed"),
        again.routes.find("shop.example.com", "/").expect("routed"),
    );
    assert_eq!(a, b);

    // Without routing (a part with no HTTP data plane): no routes, no Ingress errors.
    let plain = Pipeline::standalone(ControlPlaneConfig::default()).build(&state(&yaml));
    assert!(plain.routes.served.is_empty());
    assert!(plain.errors.iter().all(|e| e.kind != "Ingress"));
}
