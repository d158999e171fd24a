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

fn pods(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  labels: {{app: web}}\n")
        })
        .collect()
}

#[test]
fn a_syntax_error_in_one_document_spares_the_others() {
    // Fails before: the YAML stream stopped at the first syntax error, so breaking document 2
    // lost the Pod of document 3, and breaking document 1 lost both others.
    for broken in 0..3 {
        let mut docs = pods(3);
        docs[broken] = docs[broken].replace("labels: {app: web}", "labels: {app: [web}");
        let text = docs.join("---\n");
        let parsed = parse_file("pods.yaml", &text);
        assert_eq!(parsed.len(), 3, "document {}: {parsed:?}", broken + 1);
        for (i, (origin, r)) in parsed.iter().enumerate() {
            assert_eq!(origin.document, Some(i + 1));
            if i == broken {
                let err = r.as_ref().expect_err("broken").to_string();
                let want = format!(
                    "Pod default/p{} in pods.yaml (document {}): invalid YAML",
                    i + 1,
                    i + 1
                );
                assert!(err.starts_with(&want), "{err}");
                // Lines are counted from the start of the file (5 a document, and `---`).
                let line = 6 * i + 5;
                assert!(err.contains(&format!("at line {line} column 21")), "{err}");
                assert!(err.ends_with(&format!("at line {line} column 17")), "{err}");
            } else {
                assert_eq!(r.as_ref().expect("ok").key().name, format!("p{}", i + 1));
            }
        }
    }
}

#[test]
fn documents_split_on_separator_lines_as_kubectl_does() {
    use super::documents::{identity, split};
    let text = "# a header\n---\nkind: Pod\n--- # the next one\nkind: Service\n---x: 1\n---\n\n---\nkind: Node\n";
    let docs: Vec<(usize, usize, &str)> = split(text)
        .iter()
        .map(|d| (d.number, d.first_line, d.text))
        .collect();
    assert_eq!(
        docs,
        [
            (1, 3, "kind: Pod\n"),
            (2, 5, "kind: Service\n---x: 1\n"),
            (3, 8, "\n"),
            (4, 10, "kind: Node\n"),
        ]
    );
    assert_eq!(split("kind: Pod\n").len(), 1, "no separator needed");
    assert_eq!(
        identity(
            "apiVersion: v1\nkind: Pod # a comment\nmetadata:\n  labels:\n    name: no\n  name: \"web\"\n  namespace: shop\nspec: [\n"
        ),
        Some(("Pod".into(), Some("shop".into()), "web".into()))
    );
    assert_eq!(
        identity("kind: 'Service'\nmetadata: {namespace: a, name: b}\n"),
        Some(("Service".into(), Some("a".into()), "b".into()))
    );
    assert_eq!(identity("kind: Pod\nspec: {}\n"), None, "no name shown");
}

#[test]
fn objects_the_api_server_would_refuse_for_their_size_are_refused() {
    // Fails before: both were accepted in standalone mode.
    use super::limits::{MAX_ANNOTATIONS_BYTES, MAX_OBJECT_BYTES};
    let with_annotation = |len: usize| {
        let v = "x".repeat(len - 1);
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations: {{a: {v}}}\n")
    };
    let ok = parse_file("s.yaml", &with_annotation(MAX_ANNOTATIONS_BYTES));
    assert!(ok[0].1.is_ok(), "at the limit: {:?}", ok[0].1);
    let over = parse_file("s.yaml", &with_annotation(MAX_ANNOTATIONS_BYTES + 1));
    let err = over[0].1.as_ref().expect_err("over the limit");
    assert_eq!(err.field, "metadata.annotations");
    assert!(
        err.to_string().starts_with(
            "Service default/s in s.yaml (document 1): metadata.annotations: too long: 262145 bytes"
        ),
        "{err}"
    );

    let big = "aGVsbG8h".repeat(MAX_OBJECT_BYTES / 8 + 1);
    let secret =
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: t}}\ndata: {{blob: {big}}}\n");
    let parsed = parse_file("t.yaml", &secret);
    let err = parsed[0].1.as_ref().expect_err("too large");
    assert_eq!(err.field, "data");
    assert!(err.message.starts_with("object too large"), "{err}");
    assert_eq!(err.object, Some(crate::key::ObjectKey::new("default", "t")));
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
