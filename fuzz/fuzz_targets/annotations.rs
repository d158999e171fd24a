//! The route model's ingress-nginx annotation parser never panics, every error names the annotation it is
//! about, and the options it accepts keep the invariants the data plane relies on.
//!
//! Input: lines of `key=value`. A key without a `/` gets the `nginx.ingress.kubernetes.io/`
//! prefix, so the fuzzer reaches the supported annotations quickly.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use portico_model::ObjectKey;
use portico_model::routes::annotations::{PREFIX, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut map = BTreeMap::new();
    for line in text.split('\n') {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let k = if k.contains('/') {
            k.to_owned()
        } else {
            format!("{PREFIX}{k}")
        };
        map.insert(k, v.to_owned());
    }
    let key = ObjectKey::new("default", "fuzz");
    let parsed = parse(&key, &map);
    for e in parsed
        .unsupported
        .iter()
        .chain(parsed.options.as_ref().err())
    {
        assert_eq!(e.kind, "Ingress");
        assert!(
            e.field.starts_with("metadata.annotations[") && e.field.ends_with(']'),
            "error does not name an annotation: {e}"
        );
        let _ = e.to_string();
    }
    let Ok(o) = parsed.options else {
        return;
    };
    if let Some(c) = &o.canary {
        assert!(
            c.weight_total > 0 && c.weight <= c.weight_total,
            "canary weight {} of {} accepted",
            c.weight,
            c.weight_total
        );
    }
    assert!(o.policy.tries >= 1);
    if let Some(root) = &o.filters.app_root {
        assert!(root.starts_with('/'));
    }
    if let Some(a) = &o.policy.affinity {
        assert!(!a.name.is_empty());
    }
    if let Some(r) = &o.filters.redirect {
        assert!((300..=308).contains(&r.status));
        assert!(
            http_value_ok(&r.location),
            "redirect {:?} is not a header value",
            r.location
        );
    }
});

fn http_value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}
