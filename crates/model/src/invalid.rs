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

/// An object (or a whole document) that was left out of the snapshot, and why. Everything else
/// keeps serving. `field` is a JSON path such as `spec.ports[0].nodePort`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invalid {
    pub kind: String,
    /// Empty when the document could not be parsed far enough to know its name.
    pub object: Option<ObjectKey>,
    pub origin: Origin,
    pub field: String,
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
            message: message.into(),
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
