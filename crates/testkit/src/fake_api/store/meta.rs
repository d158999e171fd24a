//! Object fields the server owns or checks: metadata, type, namespace, generation.

use serde_json::{Map, Value, json};

use super::ApiError;
use crate::fake_api::resources::ResourceType;

pub(super) fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

pub(super) fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// `apiVersion` and `kind` must name the resource of the URL (they are filled in when missing).
pub(super) fn check_type(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    for (field, want) in [("apiVersion", rt.api_version()), ("kind", rt.kind.clone())] {
        match o.get(field).and_then(Value::as_str) {
            None | Some("") => drop(o.insert(field.into(), Value::String(want))),
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApiError::bad_request(format!(
                    "{field} {got:?} does not match the resource, which expects {want:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The object's namespace, checked against the URL's; `None` for cluster-scoped resources.
pub(super) fn scope(
    rt: &ResourceType,
    url_ns: Option<&str>,
    meta: &mut Map<String, Value>,
) -> Result<Option<String>, ApiError> {
    if !rt.namespaced {
        meta.remove("namespace");
        return Ok(None);
    }
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let ns = match (url_ns, body_ns) {
        (Some(u), Some(b)) if u != b => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(u), _) => u.to_owned(),
        (None, Some(b)) => b,
        (None, None) => "default".to_owned(),
    };
    meta.insert("namespace".into(), Value::String(ns.clone()));
    Ok(Some(ns))
}

/// Everything but metadata and status: what `metadata.generation` counts changes of.
pub(super) fn spec_of(obj: &Value) -> Value {
    let mut o = obj.as_object().cloned().unwrap_or_default();
    for f in ["metadata", "status", "apiVersion", "kind"] {
        o.remove(f);
    }
    Value::Object(o)
}

pub(super) fn set_or_remove(obj: &mut Value, field: &str, v: Option<Value>) {
    if let Some(o) = obj.as_object_mut() {
        match v {
            Some(v) if !v.is_null() => drop(o.insert(field.into(), v)),
            _ => drop(o.remove(field)),
        }
    }
}
