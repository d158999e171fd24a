use super::*;

#[test]
fn multi_document_yaml_with_list_and_empty_documents() {
    let text = "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: web}}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n";
    let docs = parse_file("x.yaml", text);
    assert_eq!(
        docs.len(),
        2,
        "the Deployment is skipped quietly, the empty document ignored"
    );
    let keys: Vec<String> = docs
        .iter()
        .map(|(_, r)| r.as_ref().expect("ok").key().to_string())
        .collect();
    assert_eq!(keys, ["default/a", "web/b"]);
}

#[test]
fn errors_name_file_document_and_field() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 80\n    nodPort: 30000\n";
    let docs = parse_file("dir/svc.yaml", text);
    let err = docs[1].1.as_ref().expect_err("unknown field");
    assert_eq!(err.field, "spec.ports[0].nodPort");
    assert_eq!(
        err.to_string(),
        "Service default/s in dir/svc.yaml (document 2): spec.ports[0].nodPort: unknown field"
    );
}

#[test]
fn wrong_types_unknown_kinds_and_syntax_errors() {
    let wrong = parse_file(
        "a.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: [1]}]}\n",
    );
    assert_eq!(
        wrong[0].1.as_ref().expect_err("type").field,
        "spec.ports[0].targetPort"
    );
    let kind = parse_file(
        "a.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    );
    assert_eq!(kind[0].1.as_ref().expect_err("kind").field, "kind");
    let version = parse_file(
        "a.yaml",
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: i}\n",
    );
    assert_eq!(
        version[0].1.as_ref().expect_err("version").field,
        "apiVersion"
    );
    let syntax = parse_file("a.yaml", "apiVersion: v1\nkind: [unclosed\n");
    assert!(
        syntax[0]
            .1
            .as_ref()
            .expect_err("syntax")
            .message
            .starts_with("invalid YAML")
    );
    let json = parse_file("a.json", "{\"apiVersion\": \"v1\", ");
    assert!(
        json[0]
            .1
            .as_ref()
            .expect_err("json")
            .message
            .starts_with("invalid JSON")
    );
}

#[test]
fn metallb_pool_and_tls_secret_parse() {
    let docs = parse_file(
        "p.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec:\n  addresses: [192.168.10.0/24, 10.0.0.1-10.0.0.9]\n  autoAssign: false\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: t}\ntype: kubernetes.io/tls\ndata: {tls.crt: aGVsbG8=, tls.key: aGVsbG8=}\n",
    );
    assert!(docs.iter().all(|(_, r)| r.is_ok()), "{docs:?}");
}

mod never_panics {
    use proptest::prelude::*;

    use super::super::parse_file;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever bytes a file holds, parsing reports errors and never panics.
        #[test]
        fn arbitrary_text(text in "\\PC{0,200}") {
            let _ = parse_file("fuzz.yaml", &text);
            let _ = parse_file("fuzz.json", &text);
        }

        /// Structurally plausible manifests with random values.
        #[test]
        fn plausible_services(port in any::<i64>(), name in "[a-zA-Z0-9_.-]{0,20}", proto in "[A-Z]{0,5}", extra in "[a-z]{1,8}") {
            let text = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: \"{name}\"}}\nspec:\n  ports:\n  - port: {port}\n    protocol: \"{proto}\"\n    {extra}: 1\n");
            for (_, r) in parse_file("fuzz.yaml", &text) {
                if let Ok(crate::state::Object::Service(s)) = r {
                    let key = crate::key::ObjectKey::of(&s.metadata);
                    let _ = crate::service::from_k8s(&key, &s);
                }
            }
        }
    }
}
