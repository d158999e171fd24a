//! The sizes the API server refuses, refused alike in standalone mode: a manifest that works
//! here must also apply to a real cluster.

use std::io;

use serde_json::Value;

use crate::invalid::Invalid;
use crate::key::ObjectKey;

/// The API server's `TotalAnnotationSizeLimitB`: keys and values of all annotations together.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// The largest object, encoded as JSON (etcd's request limit is 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// Counts what is written, keeping nothing.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn encoded_len(v: &Value) -> usize {
    let mut c = Counter(0);
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Why the API server would refuse an object for its size, naming the field; `None` if not.
pub(super) fn problem(v: &Value, kind: &str, key: &ObjectKey) -> Option<Invalid> {
    let annotations = v
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    if let Some(annotations) = annotations {
        let total: usize = annotations
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > MAX_ANNOTATIONS_BYTES {
            return Some(Invalid::new(
                kind,
                key,
                "metadata.annotations",
                format!("too long: {total} bytes, must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
            ));
        }
    }
    let len = encoded_len(v);
    if len > MAX_OBJECT_BYTES {
        // Name the largest top-level field: that is where the bulk is.
        let largest = v.as_object().and_then(|o| {
            o.iter()
                .map(|(k, v)| (encoded_len(v), k))
                .max()
                .map(|(_, k)| k.clone())
        });
        return Some(Invalid::new(
            kind,
            key,
            largest.unwrap_or_default(),
            format!(
                "object too large: {len} bytes as JSON, over the limit of {MAX_OBJECT_BYTES} (1.5 MiB)"
            ),
        ));
    }
    None
}
