//! Watches: replaying the history after a resourceVersion, live events with selector
//! transitions, bookmarks, and ending or expiring them.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiError, Change, ChangeKind, Store, Watch, WatchRequest};
use crate::fake_api::selector::Selectors;

impl Store {
    /// Open a watch. `Err` with code 410 when the resourceVersion is older than the history.
    pub fn watch(&mut self, req: WatchRequest<'_>) -> Result<mpsc::Receiver<Bytes>, ApiError> {
        let mut lines = Vec::new();
        let rv = req.resource_version.filter(|v| !v.is_empty() && *v != "0");
        let from = match rv {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        match from {
            Some(n) if n < self.compacted => {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {n} ({})", self.compacted),
                ));
            }
            Some(n) if !req.send_initial_events => {
                for c in self.history.iter().filter(|c| c.rv > n) {
                    lines.extend(event_for(req.res, req.namespace, &req.selectors, c));
                }
            }
            _ => {
                // No resourceVersion ("most recent" or "any"): synthetic ADDED events for the
                // current state first, as the API server does.
                for (_, obj) in self.range(req.res, req.namespace) {
                    if req.selectors.matches(obj) {
                        lines.push(event_line("ADDED", obj));
                    }
                }
                if req.send_initial_events {
                    lines.push(self.bookmark_line(req.res, true));
                }
            }
        }
        let (tx, rx) = mpsc::channel(self.watch_queue + lines.len());
        for line in lines {
            tx.try_send(line)
                .expect("the queue was sized for the replayed events");
        }
        self.watches.push(Watch {
            res: req.res,
            namespace: req.namespace.map(str::to_owned),
            selectors: req.selectors,
            bookmarks: req.bookmarks,
            tx,
        });
        Ok(rx)
    }

    fn bookmark_line(&self, res: usize, initial_end: bool) -> Bytes {
        let rt = &self.resources[res];
        let mut meta = json!({ "resourceVersion": self.rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        event_line(
            "BOOKMARK",
            &json!({ "kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta }),
        )
    }

    /// Send a BOOKMARK with the current resourceVersion to every watch that allows them.
    pub fn send_bookmarks(&mut self) {
        let lines: Vec<Option<Bytes>> = self
            .watches
            .iter()
            .map(|w| w.bookmarks.then(|| self.bookmark_line(w.res, false)))
            .collect();
        let mut i = 0;
        self.watches.retain(|w| {
            let keep = match &lines[i] {
                Some(line) => w.tx.try_send(line.clone()).is_ok(),
                None => !w.tx.is_closed(),
            };
            i += 1;
            keep
        });
    }

    /// End every open watch (after the events already queued on it).
    pub fn break_watches(&mut self) {
        self.watches.clear();
    }

    /// Forget the history: every watch or list continuation from a resourceVersion before now
    /// gets `410 Expired`, as after an etcd compaction.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.compacted = self.rv;
    }
}

/// The watch event a change means to one watch, with selector transitions: an object that stops
/// matching is DELETED for that watch, one that starts matching is ADDED.
pub(super) fn event_for(
    res: usize,
    namespace: Option<&str>,
    selectors: &Selectors,
    c: &Change,
) -> Option<Bytes> {
    if c.key.0 != res || namespace.is_some_and(|ns| ns != c.key.1) {
        return None;
    }
    let now = selectors.matches(&c.object);
    let before = c.old.as_ref().is_some_and(|o| selectors.matches(o));
    let kind = match c.kind {
        ChangeKind::Added => now.then_some("ADDED"),
        ChangeKind::Deleted => (now || before).then_some("DELETED"),
        ChangeKind::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }?;
    Some(event_line(kind, &c.object))
}

pub fn event_line(kind: &str, obj: &Value) -> Bytes {
    let mut line = format!("{{\"type\":\"{kind}\",\"object\":{obj}}}");
    line.push('\n');
    Bytes::from(line)
}
