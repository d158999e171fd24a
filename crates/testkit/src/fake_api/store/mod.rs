//! The fake API server's storage: objects, one global resourceVersion counter (as etcd's
//! revision), a bounded history of changes for watches, and the open watches. Synchronous: the
//! HTTP layer calls it under one lock, so a change and its watch events are one step.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::resources::ResourceType;
use super::selector::Selectors;

mod error;
mod meta;
mod patch;
mod watch;

pub use error::ApiError;
use error::qualified;
use meta::{check_type, meta_mut, now, scope, set_or_remove, spec_of};

pub use patch::PatchType;
use watch::event_for;
pub use watch::event_line;

/// How a write treats `.status` and `metadata.resourceVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The main resource: `.status` is kept from the stored object when it is a subresource.
    Main,
    /// The `/status` subresource: only `.status` changes.
    Status,
    /// A test fixture: the whole object as given, no precondition.
    Fixture,
}

/// `(resource index, namespace or "", name)`.
pub type Key = (usize, String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

struct Change {
    rv: u64,
    key: Key,
    kind: ChangeKind,
    object: Arc<Value>,
    old: Option<Arc<Value>>,
}

struct Watch {
    res: usize,
    namespace: Option<String>,
    selectors: Selectors,
    bookmarks: bool,
    tx: mpsc::Sender<Bytes>,
}

/// What a watch request asks for.
pub struct WatchRequest<'a> {
    pub res: usize,
    pub namespace: Option<&'a str>,
    pub selectors: Selectors,
    pub resource_version: Option<&'a str>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
}

pub struct Store {
    pub resources: Vec<ResourceType>,
    rv: u64,
    /// Watches (and list continuations) from before this resourceVersion get `410 Expired`.
    compacted: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Change>,
    history_limit: usize,
    watches: Vec<Watch>,
    /// Events a slow watcher may have queued before it is disconnected (as the API server drops
    /// watchers that do not keep up).
    watch_queue: usize,
    uids: u64,
}

impl Store {
    pub fn new(resources: Vec<ResourceType>, history_limit: usize, watch_queue: usize) -> Self {
        Self {
            resources,
            rv: 1,
            compacted: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            watches: Vec::new(),
            watch_queue: watch_queue.max(16),
            uids: 0,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn open_watches(&self) -> usize {
        self.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.resources
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn find_by(&self, api_version: &str, kind_or_plural: &str) -> Option<usize> {
        self.resources
            .iter()
            .position(|r| r.is(api_version, kind_or_plural))
    }

    fn key(&self, res: usize, namespace: Option<&str>, name: &str) -> Key {
        let ns = if self.resources[res].namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        (res, ns.to_owned(), name.to_owned())
    }

    /// Every object of a resource (in one namespace, or all), in key order.
    fn range(
        &self,
        res: usize,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&Key, &Arc<Value>)> {
        let start = (res, namespace.unwrap_or_default().to_owned(), String::new());
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.0 == res && namespace.is_none_or(|ns| k.1 == ns))
    }

    pub fn get(
        &self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.objects
            .get(&self.key(res, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&self.resources[res], name))
    }

    /// All objects of some resources, for test assertions.
    pub fn all(&self, res: usize, namespace: Option<&str>) -> Vec<Value> {
        self.range(res, namespace)
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    pub fn list(
        &self,
        res: usize,
        namespace: Option<&str>,
        selectors: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Value, ApiError> {
        let rt = &self.resources[res];
        let (list_rv, after) = match continue_token {
            None => (self.rv, None),
            Some(token) => {
                let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
                let (rv, rest) = token.split_once('/').ok_or_else(bad)?;
                let rv: u64 = rv.parse().map_err(|_| bad())?;
                let (ns, name) = rest.split_once('/').ok_or_else(bad)?;
                if rv < self.compacted {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((ns.to_owned(), name.to_owned())))
            }
        };
        let mut items = Vec::new();
        let mut next = None;
        for (key, obj) in self.range(res, namespace) {
            if let Some((ns, name)) = &after
                && (&key.1, &key.2) <= (ns, name)
            {
                continue;
            }
            if !selectors.matches(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                let last: &Value = items.last().expect("limit reached, so an item was taken");
                let ns = last
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = last
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                next = Some(format!("{list_rv}/{ns}/{name}"));
                break;
            }
            items.push((**obj).clone());
        }
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if let Some(next) = next {
            metadata["continue"] = Value::String(next);
        }
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    pub fn create(
        &mut self,
        res: usize,
        namespace: Option<&str>,
        mut obj: Value,
        mode: Write,
    ) -> Result<Value, ApiError> {
        let rt = self.resources[res].clone();
        check_type(&rt, &mut obj)?;
        let meta = meta_mut(&mut obj)?;
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix: String = (0..5)
                        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
                        .collect();
                    format!("{prefix}{suffix}")
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        rt.kind
                    )));
                }
            },
        };
        meta.insert("name".into(), Value::String(name.clone()));
        let ns = scope(&rt, namespace, meta)?;
        let key = self.key(res, ns.as_deref(), &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", qualified(&rt)),
            ));
        }
        self.rv += 1;
        self.uids += 1;
        let meta = meta_mut(&mut obj)?;
        meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        meta.insert(
            "uid".into(),
            Value::String(format!("7e57c0de-0000-4000-8000-{:012x}", self.uids)),
        );
        meta.insert("creationTimestamp".into(), Value::String(now()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("generateName");
        if mode != Write::Fixture && rt.status_subresource {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
            if rt.kind == "Namespace" && rt.group.is_empty() {
                obj["status"] = json!({ "phase": "Active" });
            }
        }
        let obj = Arc::new(obj);
        self.commit(key, ChangeKind::Added, obj.clone(), None);
        Ok((*obj).clone())
    }

    pub fn update(
        &mut self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        mode: Write,
    ) -> Result<Value, ApiError> {
        let rt = self.resources[res].clone();
        if mode == Write::Status && !rt.status_subresource {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("{} has no status subresource", qualified(&rt)),
            ));
        }
        let key = self.key(res, namespace, name);
        let Some(current) = self.objects.get(&key).cloned() else {
            if mode == Write::Fixture {
                return self.create(res, namespace, body, mode);
            }
            return Err(ApiError::not_found(&rt, name));
        };
        check_type(&rt, &mut body)?;
        let meta = meta_mut(&mut body)?;
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => drop(meta.insert("name".into(), Value::String(name.to_owned()))),
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        scope(&rt, namespace, meta)?;
        let current_rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if mode != Write::Fixture
            && let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && rv != current_rv
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                    qualified(&rt)
                ),
            ));
        }
        let mut new = match mode {
            Write::Status => {
                let mut new = (*current).clone();
                set_or_remove(&mut new, "status", body.get("status").cloned());
                new
            }
            Write::Main if rt.status_subresource => {
                set_or_remove(&mut body, "status", current.get("status").cloned());
                body
            }
            _ => body,
        };
        // Fields the server owns.
        let old_meta = current
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = meta_mut(&mut new)?;
        for f in ["uid", "creationTimestamp", "namespace", "deletionTimestamp"] {
            match old_meta.get(f) {
                Some(v) => drop(meta.insert(f.into(), v.clone())),
                None => drop(meta.remove(f)),
            }
        }
        meta.insert("resourceVersion".into(), Value::String(current_rv));
        let old_gen = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if spec_of(&new) != spec_of(&current) {
            old_gen + 1
        } else {
            old_gen
        };
        meta_mut(&mut new)?.insert("generation".into(), json!(generation));
        if new == *current {
            return Ok(new); // a no-op write changes nothing, not even the resourceVersion
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        self.rv += 1;
        meta_mut(&mut new)?.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let new = Arc::new(new);
        let kind = if finalized {
            ChangeKind::Deleted
        } else {
            ChangeKind::Modified
        };
        self.commit(key, kind, new.clone(), Some(current));
        Ok((*new).clone())
    }

    /// Delete, or mark for deletion while finalizers remain.
    pub fn delete(
        &mut self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = self.key(res, namespace, name);
        let current = self.get(res, namespace, name)?;
        let mut obj = (*current).clone();
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers && obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(obj);
        }
        self.rv += 1;
        let meta = meta_mut(&mut obj)?;
        meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let kind = if has_finalizers {
            meta.insert("deletionTimestamp".into(), Value::String(now()));
            ChangeKind::Modified
        } else {
            ChangeKind::Deleted
        };
        let obj = Arc::new(obj);
        self.commit(key, kind, obj.clone(), Some(current));
        Ok((*obj).clone())
    }

    fn commit(&mut self, key: Key, kind: ChangeKind, object: Arc<Value>, old: Option<Arc<Value>>) {
        if kind == ChangeKind::Deleted {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        let change = Change {
            rv: self.rv,
            key,
            kind,
            object,
            old,
        };
        let mut dead = Vec::new();
        for (i, w) in self.watches.iter().enumerate() {
            if let Some(line) = event_for(w.res, w.namespace.as_deref(), &w.selectors, &change)
                && w.tx.try_send(line).is_err()
            {
                dead.push(i);
            }
        }
        for i in dead.into_iter().rev() {
            self.watches.swap_remove(i);
        }
        self.history.push_back(change);
        while self.history.len() > self.history_limit {
            if let Some(gone) = self.history.pop_front() {
                self.compacted = gone.rv;
            }
        }
    }
}
