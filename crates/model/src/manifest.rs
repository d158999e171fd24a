//! Parsing Kubernetes manifests (YAML, multi-document, or JSON; `kind: List` too) into typed
//! objects, strictly: a field the API does not define is an error naming the field, as
//! `kubectl apply --validate=strict` reports it. Objects the API server would refuse for their
//! size (annotations over 256 KiB, an object over 1.5 MiB) are refused alike ([`limits`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::invalid::{Invalid, Origin};
use crate::key::ObjectKey;
use crate::state::{Object, SharedObject};

mod documents;
pub mod limits;

/// Kinds that are valid Kubernetes objects but mean nothing to Portico; they are skipped quietly.
const IGNORED_KINDS: &[&str] = &[
    "ConfigMap",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "BGPPeer",
    "BGPAdvertisement",
    "Community",
    "BFDProfile",
];

/// One document's outcome.
pub type Parsed = Result<Object, Invalid>;

/// Parse a file's text. `file` is used in error messages; JSON is detected by the extension.
pub fn parse_file(file: &str, text: &str) -> Vec<(Origin, Parsed)> {
    parse_file_into(file, text, |doc| doc)
}

/// [`parse_file`], with each document's object behind an `Arc` as soon as it is parsed: a
/// file of a thousand documents never holds a thousand `Object`s (each as large as a Pod).
pub fn parse_file_shared(file: &str, text: &str) -> Vec<(Origin, Result<SharedObject, Invalid>)> {
    parse_file_into(file, text, |(origin, parsed)| {
        (origin, parsed.map(SharedObject::from))
    })
}

fn parse_file_into<T>(file: &str, text: &str, f: impl Fn((Origin, Parsed)) -> T) -> Vec<T> {
    let mut out = Vec::new();
    let mut out = Out {
        docs: &mut out,
        map: &f,
    };
    let origin = |doc: usize| Origin {
        file: Some(file.to_owned()),
        document: Some(doc),
    };
    if file.ends_with(".json") {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => push_value(&mut out, origin(1), v),
            Err(e) => out.push((
                origin(1),
                Err(Invalid::unparsable(origin(1), format!("invalid JSON: {e}"))),
            )),
        }
        return finish(out);
    }
    // Each document on its own: a syntax error in one leaves the others readable.
    for doc in documents::split(text) {
        let o = origin(doc.number);
        for value in serde_norway::Deserializer::from_str(doc.text) {
            match Value::deserialize(value) {
                Ok(Value::Null) => {}
                Ok(v) => push_value(&mut out, o.clone(), v),
                Err(e) => {
                    out.push((o.clone(), Err(syntax_error(&doc, o.clone(), &e))));
                    // The rest of this document cannot be resynchronised after the error.
                    break;
                }
            }
        }
    }
    finish(out)
}

/// A document that is not YAML: named by the kind and name its text shows, if it shows them,
/// with the line counted from the start of the file.
fn syntax_error(doc: &documents::Document<'_>, origin: Origin, e: &serde_norway::Error) -> Invalid {
    let msg = shift_lines(&e.to_string(), doc.first_line - 1);
    let msg = format!("invalid YAML: {msg}");
    match documents::identity(doc.text).filter(|(kind, _, _)| kind != "List") {
        Some((kind, namespace, name)) => {
            let key = if Object::cluster_scoped(&kind) {
                ObjectKey::cluster(name)
            } else {
                ObjectKey::new(namespace.as_deref().unwrap_or("default"), name)
            };
            Invalid::new(&kind, &key, "", msg).with_origin(origin)
        }
        None => Invalid::unparsable(origin, msg),
    }
}

/// Every `at line N` of a message counted `by` lines later (a document's lines are counted from
/// the start of its file).
fn shift_lines(msg: &str, by: usize) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find("at line ") {
        let (head, tail) = rest.split_at(at + "at line ".len());
        out.push_str(head);
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match tail[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Where parsed documents go, converted one by one.
struct Out<'a, T, F> {
    docs: &'a mut Vec<T>,
    map: &'a F,
}

impl<T, F: Fn((Origin, Parsed)) -> T> Out<'_, T, F> {
    fn push(&mut self, doc: (Origin, Parsed)) {
        self.docs.push((self.map)(doc));
    }
}

fn finish<T, F>(out: Out<'_, T, F>) -> Vec<T> {
    std::mem::take(out.docs)
}

fn push_value<T, F: Fn((Origin, Parsed)) -> T>(out: &mut Out<'_, T, F>, origin: Origin, v: Value) {
    if v.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(items) = v.get("items").and_then(Value::as_array) {
            for item in items {
                if let Some(r) = parse_value(item.clone()) {
                    out.push((origin.clone(), r.map_err(|e| e.with_origin(origin.clone()))));
                }
            }
        }
        return;
    }
    if let Some(r) = parse_value(v) {
        out.push((origin.clone(), r.map_err(|e| e.with_origin(origin))));
    }
}

/// Parse one object. `None` for kinds Portico ignores.
pub fn parse_value(v: Value) -> Option<Parsed> {
    let Value::Object(map) = &v else {
        return Some(Err(Invalid::unparsable(
            Origin::default(),
            "a manifest must be a mapping with apiVersion and kind",
        )));
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let meta = map.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    let key = if Object::cluster_scoped(&kind) {
        ObjectKey::cluster(name)
    } else {
        ObjectKey::new(namespace.unwrap_or("default"), name)
    };
    let err = |field: &str, msg: String| Invalid::new(&kind, &key, field, msg);
    if kind.is_empty() {
        return Some(Err(err("kind", "required".into())));
    }
    if api_version.is_empty() {
        return Some(Err(err("apiVersion", "required".into())));
    }
    let parsed = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Service") => typed(&v, &kind, &key).map(Object::Service),
        ("v1", "Endpoints") => typed(&v, &kind, &key).map(Object::Endpoints),
        ("v1", "Pod") => typed(&v, &kind, &key).map(Object::Pod),
        ("v1", "Node") => typed(&v, &kind, &key).map(Object::Node),
        ("v1", "Namespace") => typed(&v, &kind, &key).map(Object::Namespace),
        ("v1", "Secret") => typed(&v, &kind, &key).map(Object::Secret),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            typed(&v, &kind, &key).map(Object::EndpointSlice)
        }
        ("networking.k8s.io/v1", "Ingress") => typed(&v, &kind, &key).map(Object::Ingress),
        ("networking.k8s.io/v1", "IngressClass") => {
            typed(&v, &kind, &key).map(Object::IngressClass)
        }
        ("metallb.io/v1beta1", "IPAddressPool") => {
            typed(&v, &kind, &key).map(Object::IPAddressPool)
        }
        ("metallb.io/v1beta1", "L2Advertisement") => {
            typed(&v, &kind, &key).map(Object::L2Advertisement)
        }
        (_, k) if IGNORED_KINDS.contains(&k) => return None,
        (
            _,
            "Service" | "Endpoints" | "Pod" | "Node" | "Namespace" | "Secret" | "EndpointSlice"
            | "Ingress" | "IngressClass" | "IPAddressPool" | "L2Advertisement",
        ) => Err(err(
            "apiVersion",
            format!("{api_version:?} is not a supported version of {kind}"),
        )),
        _ => Err(err(
            "kind",
            format!("{kind:?} ({api_version}) is not a kind Portico reads"),
        )),
    };
    Some(match parsed {
        Ok(obj) => limits::problem(&v, &kind, &key).map_or(Ok(obj), Err),
        Err(e) => Err(e),
    })
}

/// Deserialize with the failing field's path in the error, then reject unknown fields by
/// comparing the input with what the typed object serialises back to.
fn typed<T: DeserializeOwned + Serialize>(
    v: &Value,
    kind: &str,
    key: &ObjectKey,
) -> Result<T, Invalid> {
    let obj: T = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        Invalid::new(kind, key, field, e.into_inner().to_string())
    })?;
    let back =
        serde_json::to_value(&obj).map_err(|e| Invalid::new(kind, key, "", e.to_string()))?;
    if let Some(field) = unknown_field(v, &back, String::new()) {
        return Err(Invalid::new(kind, key, field, "unknown field"));
    }
    Ok(obj)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// The first path present (and non-null) in `input` but absent from `known`.
fn unknown_field(input: &Value, known: &Value, path: String) -> Option<String> {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() || is_empty(v) {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => return Some(p),
                    Some(kv) => {
                        if let Some(f) = unknown_field(v, kv, p) {
                            return Some(f);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| unknown_field(x, y, format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
