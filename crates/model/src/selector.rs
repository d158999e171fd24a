//! Label selectors, as the API server evaluates them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A Service's `spec.selector`: every pair must be present. An empty selector selects nothing
/// for a Service (the API treats an empty Service selector as "no selector").
pub fn service_selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if selector.is_empty() {
        return false;
    }
    let Some(labels) = labels else { return false };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions). An empty selector selects
/// everything, as in the API.
pub fn label_selector_matches(
    sel: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = &sel.match_labels {
        if !ml.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    for expr in sel.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let value = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn service_selector_needs_every_pair() {
        let sel = labels(&[("app", "hellok8s")]);
        assert!(service_selects(
            &sel,
            Some(&labels(&[("app", "hellok8s"), ("tier", "web")]))
        ));
        assert!(!service_selects(&sel, Some(&labels(&[("app", "nginx")]))));
        assert!(!service_selects(&sel, None));
        assert!(
            !service_selects(&BTreeMap::new(), Some(&labels(&[("app", "x")]))),
            "empty selector selects nothing"
        );
    }

    #[test]
    fn label_selector_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert!(label_selector_matches(
            &sel,
            Some(&labels(&[("team", "a"), ("env", "prod")]))
        ));
        assert!(!label_selector_matches(
            &sel,
            Some(&labels(&[("team", "a"), ("env", "dev")]))
        ));
        assert!(!label_selector_matches(
            &sel,
            Some(&labels(&[("team", "a"), ("env", "prod"), ("legacy", "1")]))
        ));
        assert!(
            label_selector_matches(&LabelSelector::default(), None),
            "empty selector selects all"
        );
    }
}
