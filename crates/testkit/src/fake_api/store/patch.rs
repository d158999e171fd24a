//! PATCH: merge, strategic (as merge), apply (as merge, creating) and JSON patches.

use serde_json::Value;

use super::{ApiError, Store, Write, meta_mut};

/// The patch formats the API server accepts, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, applied as a merge patch: lists are replaced
    /// rather than merged by key.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply), applied as a merge patch that creates
    /// a missing object; field ownership is not tracked.
    Apply,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl Store {
    pub fn patch(
        &mut self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
        ty: PatchType,
        body: &[u8],
        mode: Write,
    ) -> Result<Value, ApiError> {
        let patch: Value = match ty {
            PatchType::Apply => serde_norway::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?,
            _ => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch body: {e}")))?,
        };
        let current = match self.get(res, namespace, name) {
            Ok(c) => c,
            Err(e) if ty == PatchType::Apply && mode == Write::Main => {
                let mut obj = patch;
                if obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n != name)
                {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                meta_mut(&mut obj)?.insert("name".into(), Value::String(name.to_owned()));
                return self
                    .create(res, namespace, obj, mode)
                    .map_err(|c| if c.code == 409 { e } else { c });
            }
            Err(e) => return Err(e),
        };
        let mut doc = (*current).clone();
        match ty {
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut doc, &ops).map_err(|e| {
                    ApiError::invalid(format!("the JSON patch does not apply: {e}"))
                })?;
            }
            _ => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut doc, &patch);
            }
        }
        self.update(res, namespace, name, doc, mode)
    }
}
