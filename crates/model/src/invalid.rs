use std::fmt;

use serde::Serialize;

use crate::key::ObjectKey;

/// Where an object came from: a file and the 1-based document in it (manifests mode), or the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct Origin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.document) {
            (Some(file), Some(doc)) => write!(f, "{file} (document {doc})"),
            (Some(file), None) => f.write_str(file),
            _ => f.write_str("api"),
        }
    }
}

/// Why an object (or part of one) was refused: the cause, for code that reacts to a kind of
/// problem (status conditions, metrics, tests) without reading the message. The message still
/// says it for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum InvalidReason {
    /// Reported through [`Invalid::new`] or [`Invalid::unparsable`], which name no cause.
    #[default]
    Unclassified,
    /// An `nginx.ingress.kubernetes.io/*` annotation Portico does not implement (ignored).
    UnsupportedAnnotation,
    /// A supported annotation whose value does not parse (the Ingress is not served).
    BadAnnotationValue,
    /// A host that is not a name or a one-label wildcard (`spec.rules[].host`).
    BadHost,
    /// A path that is not absolute where it must be.
    BadPath,
    /// A `pathType` other than Exact, Prefix or ImplementationSpecific.
    BadPathType,
    /// A path that `use-regex` or `rewrite-target` makes a regex, and that does not compile.
    BadRegex,
    /// A backend that names no Service (a `resource` backend).
    UnsupportedBackend,
    /// A Service backend with neither a port number nor a port name.
    MissingPort,
    /// The Service exists but has no such port. (A missing Service is not an error: its routes
    /// answer 503 until it appears.)
    MissingServicePort,
    /// An ExternalName Service whose name cannot be an authority.
    BadExternalName,
    /// A `spec.tls[].secretName` that names no valid `kubernetes.io/tls` Secret.
    MissingSecret,
    /// A canary whose host and path no served Ingress routes.
    UnusedCanary,
}

impl InvalidReason {
    /// Whether no cause was given (kept out of the JSON form, which then reads as before).
    pub fn is_unclassified(&self) -> bool {
        *self == InvalidReason::Unclassified
    }
}

/// An object (or a whole document) that was left out of the snapshot, and why. Everything else
/// keeps serving. `field` is a JSON path such as `spec.ports[0].nodePort`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invalid {
    pub kind: String,
    /// Empty when the document could not be parsed far enough to know its name.
    pub object: Option<ObjectKey>,
    pub origin: Origin,
    pub field: String,
    /// The cause, by kind; [`InvalidReason::Unclassified`] where the reporter named none.
    #[serde(skip_serializing_if = "InvalidReason::is_unclassified")]
    pub reason: InvalidReason,
    pub message: String,
}

impl Invalid {
    pub fn new(
        kind: &str,
        object: &ObjectKey,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.to_owned(),
            object: Some(object.clone()),
            origin: Origin::default(),
            field: field.into(),
            reason: InvalidReason::Unclassified,
            message: message.into(),
        }
    }

    /// A problem with one field of a named object, and its cause.
    pub fn because(
        reason: InvalidReason,
        kind: &str,
        object: &ObjectKey,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            reason,
            ..Self::new(kind, object, field, message)
        }
    }

    /// A problem with a file or document as a whole, before any object could be named
    /// (unreadable file, syntax error, a document that is not a mapping).
    pub fn unparsable(origin: Origin, message: impl Into<String>) -> Self {
        Self {
            kind: String::new(),
            object: None,
            origin,
            field: String::new(),
            reason: InvalidReason::Unclassified,
            message: message.into(),
        }
    }

    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(o) = &self.object {
            write!(f, " {o}")?;
        }
        if self.origin.file.is_some() {
            write!(f, " in {}", self.origin)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_changes_neither_the_message_nor_the_older_json() {
        let key = ObjectKey::new("default", "web");
        let plain = Invalid::new("Ingress", &key, "spec.rules[0].host", "bad");
        let caused = Invalid::because(
            InvalidReason::BadHost,
            "Ingress",
            &key,
            "spec.rules[0].host",
            "bad",
        );
        assert_eq!(plain.to_string(), caused.to_string());
        assert_eq!(
            caused.to_string(),
            "Ingress default/web: spec.rules[0].host: bad"
        );
        assert_eq!(plain.reason, InvalidReason::Unclassified);
        let json = |i: &Invalid| serde_json::to_value(i).expect("serializable");
        assert!(json(&plain).get("reason").is_none(), "as before");
        assert_eq!(json(&caused)["reason"], "badHost");
    }
}
