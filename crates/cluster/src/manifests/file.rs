//! One cached manifest file: what it puts in the state, its problems, and the last good object
//! of every document, kept across broken edits and failed reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::SystemTime;

use portico_model::{Invalid, Origin, SharedObject};

/// The largest manifest file read; a larger one is refused whole, without being read.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One document's outcome, with its object shared (cheap to clone, compared by pointer later).
pub(super) type Doc = (Origin, Result<SharedObject, Invalid>);

/// Why a file could not be taken in at all. Its last good objects keep serving.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileProblem {
    #[error("cannot read: {0}")]
    Unreadable(#[source] io::Error),
    #[error("file too large: {len} bytes, over the limit of {MAX_FILE_BYTES} (8 MiB); not read")]
    TooLarge { len: u64 },
    #[error("not UTF-8 text: {0}")]
    NotUtf8(#[source] std::string::FromUtf8Error),
}

#[derive(Default)]
pub(super) struct FileEntry {
    /// Modification time and size of the version taken in. `None` after a read failed, so
    /// that the next look reads the file again.
    pub stamp: Option<(SystemTime, u64)>,
    /// What the file puts in the state: each document's object, or its last good version.
    pub served: Vec<(SharedObject, Origin)>,
    /// The broken documents of the version taken in.
    pub doc_errors: Vec<Invalid>,
    /// Why the latest read failed, if it did: `served` is then what the file held before.
    pub read_error: Option<Invalid>,
    /// The last object that parsed, per (document, item of a `kind: List`).
    last_good: BTreeMap<(usize, usize), SharedObject>,
}

impl FileEntry {
    /// Every problem of the file, in a stable order.
    pub fn errors(&self) -> impl Iterator<Item = &Invalid> {
        self.read_error.iter().chain(&self.doc_errors)
    }

    /// Take in a new version of the file. A broken document keeps its last good object: the
    /// one of the same kind and name when the error names it, else the one at its position.
    pub fn take_in(&mut self, stamp: (SystemTime, u64), docs: Vec<Doc>) {
        let old = std::mem::take(&mut self.last_good);
        let mut reused: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut served = Vec::with_capacity(docs.len());
        let mut errors = Vec::new();
        let mut item = 0usize;
        let mut prev_doc = None;
        for (origin, parsed) in docs {
            let doc = origin.document.unwrap_or(0);
            item = if prev_doc == Some(doc) { item + 1 } else { 0 };
            prev_doc = Some(doc);
            match parsed {
                Ok(obj) => {
                    self.last_good.insert((doc, item), obj.clone());
                    served.push((obj, origin));
                }
                Err(inv) => {
                    let kept = kept_for(&old, &reused, doc, item, &inv);
                    for k in &kept {
                        reused.insert(*k);
                        let obj = old[k].clone();
                        self.last_good.insert(*k, obj.clone());
                        served.push((obj, origin.clone()));
                    }
                    errors.push(kept_or_not(inv, !kept.is_empty()));
                }
            }
        }
        self.stamp = Some(stamp);
        self.served = served;
        self.doc_errors = errors;
        self.read_error = None;
    }

    /// The file could not be taken in: keep serving what it held. `stamp` is `None` when the
    /// read should be tried again at the next look. Whether the reported problem changed.
    pub fn failed(
        &mut self,
        stamp: Option<(SystemTime, u64)>,
        origin: Origin,
        problem: &FileProblem,
    ) -> bool {
        let kept = !self.served.is_empty();
        let inv = kept_or_not(Invalid::unparsable(origin, problem.to_string()), kept);
        self.stamp = stamp;
        let changed = self.read_error.as_ref() != Some(&inv);
        self.read_error = Some(inv);
        changed
    }
}

/// Which last good objects a broken document keeps: the one of the kind and name the error
/// names, else the one at the same position, else (a whole document broken, no name known)
/// every object the document held.
fn kept_for(
    old: &BTreeMap<(usize, usize), SharedObject>,
    reused: &BTreeSet<(usize, usize)>,
    doc: usize,
    item: usize,
    inv: &Invalid,
) -> Vec<(usize, usize)> {
    let free = |k: &(usize, usize)| !reused.contains(k);
    if let Some(key) = inv.object.as_ref().filter(|_| !inv.kind.is_empty()) {
        let same = |o: &SharedObject| o.kind() == inv.kind && &o.key() == key;
        if let Some((k, _)) = old.iter().find(|(k, o)| free(k) && same(o)) {
            return vec![*k];
        }
        // A renamed object whose edit is broken: the position's previous object stays.
        let here = (doc, item);
        return if old.contains_key(&here) && free(&here) {
            vec![here]
        } else {
            Vec::new()
        };
    }
    old.range((doc, 0)..=(doc, usize::MAX))
        .map(|(k, _)| *k)
        .filter(free)
        .collect()
}

/// A problem, saying whether the last good version keeps serving.
fn kept_or_not(mut inv: Invalid, kept: bool) -> Invalid {
    if kept {
        inv.message
            .push_str("; the last good version keeps serving");
    }
    inv
}
