//! What a request must look like to take a route: its host, its path, and (room for Gateway API)
//! headers, query parameters and method.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Which requests a route's host part covers. Orders as lookups try them: exact names, then
/// one-label wildcards, then every host.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// One name, lower case (`foo.example.com`).
    Exact(Arc<str>),
    /// `*.example.com`, stored as `example.com`: exactly one more label (`a.example.com`, not
    /// `a.b.example.com` nor `example.com`).
    Wildcard(Arc<str>),
    /// A rule without a host: every host that no exact or wildcard host claimed.
    Any,
}

impl HostMatch {
    /// An Ingress rule's host: empty or absent is [`HostMatch::Any`]; names are lower-cased.
    /// The error is the message for the `host` field.
    pub fn parse(host: Option<&str>) -> Result<Self, String> {
        let Some(h) = host.filter(|h| !h.is_empty()) else {
            return Ok(HostMatch::Any);
        };
        let h = h.to_ascii_lowercase();
        if let Some(rest) = h.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!("{h:?} is not a valid wildcard host"));
            }
            return Ok(HostMatch::Wildcard(rest.into()));
        }
        if h.contains('*') || h.contains(':') || h.contains('/') {
            return Err(format!(
                "{h:?} is not a valid host (no ports, paths or inner wildcards)"
            ));
        }
        Ok(HostMatch::Exact(h.into()))
    }

    /// Whether a normalized request host (lower case, no port) is covered.
    pub fn covers(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => &**h == host,
            HostMatch::Wildcard(parent) => wildcard_parent(host) == Some(&**parent),
            HostMatch::Any => true,
        }
    }
}

/// `a.example.com` -> `example.com`: the key its one-label wildcard is stored under.
pub fn wildcard_parent(host: &str) -> Option<&str> {
    host.split_once('.')
        .map(|(_, rest)| rest)
        .filter(|r| !r.is_empty())
}

/// The Ingress `pathType` a route came from: the second key of the precedence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

/// How a route's path matches the (normalised) request path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathMatch {
    /// The whole path, byte for byte (`pathType: Exact`).
    Exact(String),
    /// Element-wise prefix (`pathType: Prefix`): `/foo` covers `/foo`, `/foo/`, `/foo/bar`, not
    /// `/foobar`. Stored without trailing slashes (`""` for `/`).
    Prefix(String),
    /// A plain string prefix: ingress-nginx's `ImplementationSpecific` without regex, and the
    /// default backend (`/`).
    StringPrefix(String),
    /// A case-insensitive regex anchored at the start of the path (`use-regex`, or any path
    /// of an Ingress with `rewrite-target`, as ingress-nginx does).
    RegularExpression(PathRegex),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                path.starts_with(p.as_str())
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            PathMatch::StringPrefix(p) => path.starts_with(p.as_str()),
            PathMatch::RegularExpression(r) => r.regex().is_match(path),
        }
    }
}

/// A path regex as written, with its compiled form (`(?i)^` + the pattern). Equal when the
/// pattern is: compiled once, where it is checked, and shared (a `Regex` clone is cheap).
#[derive(Clone)]
pub struct PathRegex {
    pattern: String,
    regex: regex::Regex,
}

impl PathRegex {
    /// Compile a path as ingress-nginx reads it with `use-regex`. The error is the message for
    /// the `path` field.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::Regex::new(&format!("(?i)^{pattern}"))
            .map(|regex| Self {
                pattern: pattern.to_owned(),
                regex,
            })
            .map_err(|e| format!("{pattern:?} is not a valid regex: {e}"))
    }

    /// The pattern as the user wrote it.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The compiled regex (case-insensitive, anchored at the start).
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for PathRegex {}

impl Hash for PathRegex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pattern.hash(state);
    }
}

impl fmt::Debug for PathRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `regex::Regex` prints itself: the compiled pattern.
        fmt::Debug::fmt(&self.regex, f)
    }
}

/// A header name, validated as HTTP's token grammar and stored lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeaderName(String);

impl HeaderName {
    /// `None` when `name` is not a valid header name.
    pub fn parse(name: &str) -> Option<Self> {
        http::HeaderName::from_bytes(name.as_bytes())
            .ok()
            .map(|h| Self(h.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request header a route requires (Gateway API `HTTPHeaderMatch`, exact type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderMatch {
    pub name: HeaderName,
    pub value: String,
}

/// A query parameter a route requires (Gateway API `HTTPQueryParamMatch`, exact type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryMatch {
    pub name: String,
    pub value: String,
}

/// Everything a request must match to take a route. Ingress only ever sets the path; a data
/// plane that does not implement the other conditions must refuse routes that carry any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
    /// Upper-case method (`GET`), or any.
    pub method: Option<String>,
}

impl RouteMatch {
    /// A match on the path alone.
    pub fn path(path: PathMatch) -> Self {
        Self {
            path,
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }
    }

    /// Whether only the path is matched (all an Ingress can ask for).
    pub fn is_path_only(&self) -> bool {
        self.headers.is_empty() && self.query.is_empty() && self.method.is_none()
    }
}
