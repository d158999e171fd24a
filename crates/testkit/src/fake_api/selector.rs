//! Label and field selectors, as the API server parses them (`a=b,c!=d,e in (f,g),!h`).

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// The `labelSelector` and `fieldSelector` of one request. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selectors {
    labels: Vec<Req>,
    /// Field path (dotted, `metadata.name`, `type`, `spec.nodeName`) and the required value.
    fields: Vec<(String, String, bool)>,
}

impl Selectors {
    pub fn parse(label: Option<&str>, field: Option<&str>) -> Result<Self, String> {
        let mut s = Selectors::default();
        if let Some(label) = label {
            for term in split_terms(label) {
                s.labels.push(parse_label_term(&term)?);
            }
        }
        if let Some(field) = field {
            for term in split_terms(field) {
                let (path, value, eq) = if let Some((k, v)) = term.split_once("!=") {
                    (k, v, false)
                } else if let Some((k, v)) = term.split_once("==") {
                    (k, v, true)
                } else if let Some((k, v)) = term.split_once('=') {
                    (k, v, true)
                } else {
                    return Err(format!(
                        "invalid field selector term {term:?}: expected field=value or field!=value"
                    ));
                };
                s.fields
                    .push((path.trim().to_owned(), value.trim().to_owned(), eq));
            }
        }
        Ok(s)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            Req::Eq(k, v) => label(k) == Some(v.as_str()),
            Req::NotEq(k, v) => label(k) != Some(v.as_str()),
            Req::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Req::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Req::Exists(k) => label(k).is_some(),
            Req::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, want, eq)| {
                let pointer = format!("/{}", path.replace('.', "/"));
                let got = match obj.pointer(&pointer) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                (got == *want) == *eq
            })
    }
}

/// Split on commas outside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_term(term: &str) -> Result<Req, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("invalid label selector term {term:?}: expected a (set)"))?;
        Ok(inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect())
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Req::NotExists(k.trim().to_owned()));
    }
    if let Some((k, rest)) = term.split_once(" notin ") {
        return Ok(Req::NotIn(k.trim().to_owned(), set(rest)?));
    }
    if let Some((k, rest)) = term.split_once(" in ") {
        return Ok(Req::In(k.trim().to_owned(), set(rest)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Req::NotEq(k.trim().to_owned(), v.trim().to_owned()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Req::Eq(k.trim().to_owned(), v.trim().to_owned()));
    }
    if term.contains(['(', ')', ' ']) {
        return Err(format!("invalid label selector term {term:?}"));
    }
    Ok(Req::Exists(term.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sel(l: &str, f: &str) -> Selectors {
        Selectors::parse(Some(l), Some(f)).expect("valid selector")
    }

    #[test]
    fn labels_and_fields_select_as_the_api_server_does() {
        let secret = json!({"type": "kubernetes.io/tls", "metadata": {"name": "s", "labels": {"app": "web", "tier": "edge"}}});
        assert!(sel("", "").matches(&secret));
        assert!(sel("app=web", "type=kubernetes.io/tls").matches(&secret));
        assert!(sel("app==web,tier", "metadata.name=s").matches(&secret));
        assert!(sel("app in (api, web),!missing", "").matches(&secret));
        assert!(!sel("app notin (web)", "").matches(&secret));
        assert!(!sel("app!=web", "").matches(&secret));
        assert!(!sel("", "type=Opaque").matches(&secret));
        assert!(sel("", "type!=Opaque").matches(&secret));
        assert!(
            sel("", "spec.nodeName=").matches(&secret),
            "a missing field is the empty string"
        );
    }

    #[test]
    fn bad_selectors_are_refused() {
        assert!(Selectors::parse(None, Some("justaname")).is_err());
        assert!(Selectors::parse(Some("a in b"), None).is_err());
    }
}
