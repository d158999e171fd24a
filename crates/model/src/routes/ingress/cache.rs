//! What one translation hands the next, so that a translation after a small change costs about
//! the change: per Ingress object its parsed annotations and TLS entries, and the routes of the
//! latest translation in which it was served cleanly, with the Services they were resolved from.
//!
//! Reuse is decided by identity and equality only, never by time: an Ingress is the same when
//! its `Arc` is the same object (sources share unchanged objects from one snapshot to the next);
//! a Service is the same when it is the same `Arc` or compares equal. A translation with a warm
//! cache gives what a translation with an empty one gives (see the tests).
//!
//! Entries are found by the address of the Ingress's `Arc` (the entry holds that `Arc`, so the
//! address is not reused while the entry exists): a lookup hashes one word and compares no
//! strings, which matters when every translation looks up every Ingress. An Ingress's key is
//! its metadata's namespace and name, so one object has one key.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::networking::v1::Ingress;

use crate::invalid::Invalid;
use crate::key::ObjectKey;
use crate::routes::annotations::{self, Options};
use crate::routes::backend::{BackendProtocol, CanaryRules};
use crate::routes::filters::Filters;
use crate::routes::matches::{HostMatch, PathType};
use crate::routes::policy::Policy;
use crate::routes::{Route, RouteOrigin, SourceKind, TlsEntry};
use crate::service::Service;

/// Caches carried from one [`super::translate`] to the next. Any cache gives the same result;
/// a fresh one (`IngressCache::default()`) is a translation from scratch.
#[derive(Default)]
pub struct IngressCache {
    /// By [`addr`] of the Ingress.
    pub(super) ingresses: HashMap<usize, CachedIngress, BuildHasherDefault<AddrHasher>>,
    /// Parsed annotations by the annotations themselves, for sets that parse cleanly: Ingresses
    /// annotated alike share one policy and one set of filters, parsed once.
    shared: HashMap<BTreeMap<String, String>, Arc<Annotated>>,
    /// Translations so far; marks what the latest one saw.
    pass: u64,
    /// Routes the latest translation reused rather than built.
    pub(super) reused: usize,
}

/// An Ingress's annotations, as routes use them.
#[derive(Debug)]
pub(super) struct Annotated {
    pub policy: Arc<Policy>,
    pub filters: Arc<Filters>,
    pub protocol: BackendProtocol,
    pub regex_paths: bool,
    pub canary: Option<CanaryRules>,
}

impl From<Options> for Annotated {
    fn from(o: Options) -> Self {
        Self {
            regex_paths: o.regex_paths(),
            policy: Arc::new(o.policy),
            filters: Arc::new(o.filters),
            protocol: o.protocol,
            canary: o.canary,
        }
    }
}

pub(super) struct CachedIngress {
    /// The object the rest was computed from (held: its address is the entry's key).
    pub ing: Arc<Ingress>,
    /// Boxed: an `Invalid` is large and rare, and there is one entry per Ingress.
    pub annotated: Result<Arc<Annotated>, Box<Invalid>>,
    pub unsupported: Box<[Invalid]>,
    pub tls: Arc<[Arc<TlsEntry>]>,
    /// The routes of the latest translation in which this Ingress was served without errors.
    pub built: Option<Built>,
    seen: u64,
}

/// The routes of one Ingress.
pub(super) struct Built {
    pub routes: Box<[BuiltRoute]>,
}

/// A route, and what it was resolved from.
pub(super) struct BuiltRoute {
    pub host: HostMatch,
    pub path_type: PathType,
    pub route: Arc<Route>,
    /// The Service its backend looked up, as it was then (`None`: absent).
    pub service: Option<Arc<Service>>,
}

/// The address of an Ingress's `Arc`: its entry's key.
pub(super) fn addr(ing: &Arc<Ingress>) -> usize {
    Arc::as_ptr(ing) as usize
}

/// Hashes an address: a folded multiply, so that the low bits (zero in aligned addresses) and
/// the high bits both spread over the table.
#[derive(Default)]
pub(super) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Same object, or equal values.
pub(super) fn same<T: PartialEq>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
        _ => false,
    }
}

impl IngressCache {
    /// Routes the latest translation reused from earlier ones rather than built.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// Ingresses the cache holds (those the latest translation served or refused).
    pub fn len(&self) -> usize {
        self.ingresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ingresses.is_empty()
    }

    pub(super) fn begin(&mut self) {
        self.pass += 1;
        self.reused = 0;
    }

    /// The entry of an Ingress the router serves, parsed again when the object changed.
    pub(super) fn entry(&mut self, key: &ObjectKey, ing: &Arc<Ingress>) -> &mut CachedIngress {
        let pass = self.pass;
        let entry = match self.ingresses.entry(addr(ing)) {
            Entry::Occupied(o) => {
                debug_assert!(
                    Arc::ptr_eq(&o.get().ing, ing),
                    "held: the address is not reused"
                );
                o.into_mut()
            }
            Entry::Vacant(v) => v.insert(parse(&mut self.shared, key, ing, pass)),
        };
        entry.seen = pass;
        entry
    }

    /// End a translation: forget Ingresses it did not see, and shared annotations no Ingress
    /// uses any more.
    pub(super) fn finish(&mut self) {
        let pass = self.pass;
        self.ingresses.retain(|_, c| c.seen == pass);
        self.shared.retain(|_, a| Arc::strong_count(a) > 1);
    }
}

/// An Ingress's entry, its annotations parsed (or shared with an Ingress annotated alike).
fn parse(
    shared: &mut HashMap<BTreeMap<String, String>, Arc<Annotated>>,
    key: &ObjectKey,
    ing: &Arc<Ingress>,
    pass: u64,
) -> CachedIngress {
    let none = BTreeMap::new();
    let ann = ing.metadata.annotations.as_ref().unwrap_or(&none);
    let (annotated, unsupported) = match shared.get(ann) {
        Some(a) => (Ok(a.clone()), Box::default()),
        None => {
            let parsed = annotations::parse(key, ann);
            let annotated = parsed
                .options
                .map(|o| Arc::new(Annotated::from(o)))
                .map_err(Box::new);
            if let Ok(a) = &annotated
                && parsed.unsupported.is_empty()
            {
                shared.insert(ann.clone(), a.clone());
            }
            (annotated, parsed.unsupported.into_boxed_slice())
        }
    };
    CachedIngress {
        ing: ing.clone(),
        annotated,
        unsupported,
        tls: tls_entries(key, ing),
        built: None,
        seen: pass,
    }
}

/// An Ingress's `spec.tls` entries. Most Ingresses have none: they share one empty list.
fn tls_entries(key: &ObjectKey, ing: &Ingress) -> Arc<[Arc<TlsEntry>]> {
    static NONE: OnceLock<Arc<[Arc<TlsEntry>]>> = OnceLock::new();
    let tls = ing.spec.iter().flat_map(|s| s.tls.iter().flatten());
    if tls.clone().next().is_none() {
        return NONE.get_or_init(|| Arc::from(Vec::new())).clone();
    }
    tls.enumerate()
        .map(|(i, t)| {
            Arc::new(TlsEntry {
                origin: RouteOrigin {
                    kind: SourceKind::Ingress,
                    object: key.clone(),
                    field: format!("spec.tls[{i}]"),
                },
                hosts: t
                    .hosts
                    .iter()
                    .flatten()
                    .filter_map(|h| HostMatch::parse(Some(h)).ok())
                    .filter(|h| *h != HostMatch::Any)
                    .collect(),
                secret: t
                    .secret_name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| ObjectKey::new(key.namespace.clone(), n)),
            })
        })
        .collect()
}
