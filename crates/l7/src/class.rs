//! Which Ingresses are Portico's: IngressClass selection, as the Ingress API and ingress-nginx
//! define it.

use k8s_openapi::api::networking::v1::Ingress;
use portico_model::Snapshot;

/// The legacy annotation that predates `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks an IngressClass as the default for Ingresses without a class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
pub const CONTROLLER: &str = "portico.dev/ingress-controller";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// The IngressClass name Portico answers to (default `portico`).
    pub class_name: String,
    /// The `spec.controller` value of IngressClasses Portico serves.
    pub controller: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            class_name: "portico".into(),
            controller: CONTROLLER.into(),
        }
    }
}

/// The class an Ingress asks for: `spec.ingressClassName`, else the legacy annotation.
pub fn requested_class(ing: &Ingress) -> Option<&str> {
    ing.spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        })
}

fn class_is_ours(snap: &Snapshot, cfg: &RouterConfig, name: &str) -> bool {
    match snap.ingress_classes.get(name) {
        Some(class) => {
            class.spec.as_ref().and_then(|s| s.controller.as_deref())
                == Some(cfg.controller.as_str())
        }
        // No IngressClass object by that name (plain manifests often have none): the name alone.
        None => name == cfg.class_name,
    }
}

fn default_class_is_ours(snap: &Snapshot, cfg: &RouterConfig) -> bool {
    snap.ingress_classes.values().any(|c| {
        let default = c
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .map(String::as_str)
            == Some("true");
        default
            && c.spec.as_ref().and_then(|s| s.controller.as_deref())
                == Some(cfg.controller.as_str())
    })
}

/// Whether Portico serves this Ingress. Every other Ingress is ignored entirely (never touched).
pub fn is_ours(snap: &Snapshot, cfg: &RouterConfig, ing: &Ingress) -> bool {
    match requested_class(ing) {
        Some(name) => class_is_ours(snap, cfg, name),
        None => default_class_is_ours(snap, cfg),
    }
}
