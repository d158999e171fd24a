//! Which Ingresses a router serves: IngressClass selection, as the Ingress API and ingress-nginx
//! define it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The legacy annotation that predates `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks an IngressClass as the default for Ingresses without a class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The `spec.controller` of Portico's IngressClasses, by default.
pub const CONTROLLER: &str = "portico.dev/ingress-controller";

/// The class a router answers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassConfig {
    /// The IngressClass name served when no IngressClass object has it (default `portico`).
    pub class_name: String,
    /// The `spec.controller` value of the IngressClasses served.
    pub controller: String,
}

impl Default for ClassConfig {
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

/// [`ClassConfig`] applied to one set of IngressClasses: decides per Ingress.
pub struct ClassSelector<'a> {
    config: &'a ClassConfig,
    classes: &'a BTreeMap<String, Arc<IngressClass>>,
    /// Some IngressClass of ours is the default class.
    default_is_ours: bool,
}

impl<'a> ClassSelector<'a> {
    pub fn new(config: &'a ClassConfig, classes: &'a BTreeMap<String, Arc<IngressClass>>) -> Self {
        let default_is_ours = classes.values().any(|c| {
            let default = c
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .map(String::as_str)
                == Some("true");
            default && controller(c) == Some(config.controller.as_str())
        });
        Self {
            config,
            classes,
            default_is_ours,
        }
    }

    /// Whether the router serves this Ingress. Every other Ingress is ignored entirely.
    pub fn serves(&self, ing: &Ingress) -> bool {
        match requested_class(ing) {
            Some(name) => match self.classes.get(name) {
                Some(class) => controller(class) == Some(self.config.controller.as_str()),
                // No IngressClass by that name (plain manifests often have none): the name alone.
                None => name == self.config.class_name,
            },
            None => self.default_is_ours,
        }
    }
}

fn controller(class: &IngressClass) -> Option<&str> {
    class.spec.as_ref().and_then(|s| s.controller.as_deref())
}
