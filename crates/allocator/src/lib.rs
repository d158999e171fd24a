//! Portico's LoadBalancer IP allocation, compatible with MetalLB's `metallb.io` objects and
//! annotations.
//!
//! - this module: the pure allocator (pools, assignments, sharing, dual-stack): synchronous, no
//!   I/O, no clock.
//! - [`standalone`]: the manifests-mode hook, with its state file.
//! - [`crds`]: the CustomResourceDefinitions, generated from the Rust types.
//! - [`kube`]: kube mode: the controller behind a Lease (run by `lb-controller` and embedded in
//!   the gateway).
//!
//! ```text
//! set_pools(IPAddressPools)        validated pools; assignments outside every pool are released
//! load_existing(status | state)    who holds what, BEFORE anything new is handed out
//! reconcile(all eligible Services) keep what is still valid, then requested IPs, then the rest
//! ```
//! `assign`, `reconcile` and friends refuse to run until `load_existing` has been called: an
//! allocator that has not yet seen the existing assignments would hand a live address to a second
//! Service (MetalLB #1774, #2443).
//!
//! Invariant: an address is held by two Services only when [`Sharing::refuses`] is `None` for
//! them and their ports are disjoint.

// `Invalid` is the workspace's report type for a rejected object; it is built once per bad
// object, never on a hot path.
#![allow(clippy::result_large_err)]

pub mod candidates;
pub mod crds;
pub mod kube;
pub mod standalone;

mod family;
mod internals;
mod observed;
pub mod pool;
pub mod request;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use portico_model::metallb::{IPAddressPool, IPAddressPoolStatus};
use portico_model::{Invalid, ObjectKey, Protocol};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

pub use family::Family;
pub use observed::observed_pool_status;
pub use pool::Pool;
pub use request::{
    ANNOTATION_ADDRESS_POOL, ANNOTATION_ALLOCATED_FROM_POOL, ANNOTATION_ALLOW_SHARED_IP,
    ANNOTATION_LOAD_BALANCER_IPS, Backends, BadRequest, Families, FamilyPolicy, PortKey,
    ServiceRequest, Sharing, eligible,
};

/// What a Service holds: addresses (primary family first) from one pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub pool: String,
    pub ips: Vec<IpAddr>,
}

/// Why a Service gets no (or not the wanted) address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("existing assignments have not been loaded yet")]
    NotLoaded,
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("{ip} is not in any address pool")]
    NotInPool { ip: IpAddr },
    #[error("{ips:?} are not all in the same address pool")]
    SplitPools { ips: Vec<IpAddr> },
    #[error("{ips:?} do not match the Service's IP families")]
    WrongFamilies { ips: Vec<IpAddr> },
    #[error("address pool {pool:?} does not exist")]
    UnknownPool { pool: String },
    #[error("address pool {pool} does not serve this Service (its spec.serviceAllocation)")]
    PoolNotAllowed { pool: String },
    #[error("{ip} belongs to pool {actual}, not to the requested pool {requested}")]
    WrongPool {
        ip: IpAddr,
        actual: String,
        requested: String,
    },
    #[error("{ip} is held by Service {holder} and cannot be shared: {reason}")]
    NotShareable {
        ip: IpAddr,
        holder: ObjectKey,
        reason: &'static str,
    },
    #[error("{ip} is shared with Service {holder}, which already uses port {protocol}/{port}")]
    PortInUse {
        ip: IpAddr,
        protocol: Protocol,
        port: u16,
        holder: ObjectKey,
    },
    #[error("address pool {pool} has no free {families} address")]
    PoolExhausted { pool: String, families: String },
    #[error("no address pool may assign addresses to this Service automatically")]
    NoPool,
    #[error("no free {families} address in any pool this Service may use")]
    NoAvailableIps { families: String },
}

impl AllocError {
    /// The Service field to blame, as a JSON path.
    pub fn field(&self, req: &ServiceRequest) -> String {
        use AllocError::*;
        let pool_field = || format!("metadata.annotations[{ANNOTATION_ADDRESS_POOL}]");
        match self {
            BadRequest(b) => b.field.clone(),
            NotInPool { .. } | SplitPools { .. } | WrongFamilies { .. } => {
                req.requested_field.clone()
            }
            WrongPool { .. } => pool_field(),
            UnknownPool { .. } | PoolNotAllowed { .. } | PoolExhausted { .. }
                if req.pool.is_some() =>
            {
                pool_field()
            }
            NotShareable { .. } if !req.requested_ips.is_empty() => req.requested_field.clone(),
            NotShareable { .. } => format!("metadata.annotations[{ANNOTATION_ALLOW_SHARED_IP}]"),
            PortInUse { .. } => "spec.ports".into(),
            _ => "status.loadBalancer.ingress".into(),
        }
    }
}

/// One Service's result of a [`Allocator::reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub previous: Option<Assignment>,
    /// What the Service holds now (it may keep an address while its annotations are unreadable).
    pub current: Option<Assignment>,
    pub error: Option<AllocError>,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        self.previous != self.current
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub outcomes: BTreeMap<ObjectKey, Outcome>,
    /// Services that are gone (deleted, no longer LoadBalancer, another class) and what they had.
    pub released: Vec<(ObjectKey, Assignment)>,
}

impl Reconciled {
    pub fn changed(&self) -> bool {
        !self.released.is_empty() || self.outcomes.values().any(Outcome::changed)
    }
}

/// A pool, as the admin API and `IPAddressPool.status` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub name: String,
    pub namespace: String,
    pub addresses: Vec<String>,
    pub auto_assign: bool,
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

impl PoolStatus {
    /// `pool` with `used` addresses in use per family, counted by whoever holds them (the
    /// allocator's own assignments, or the Services' status when observing).
    pub(crate) fn of(pool: &Pool, used: &BTreeMap<(&str, Family), i64>) -> Self {
        let n = |f| used.get(&(pool.name.as_str(), f)).copied().unwrap_or(0);
        let (a4, a6) = (n(Family::V4), n(Family::V6));
        PoolStatus {
            name: pool.name.clone(),
            namespace: pool.key.namespace.clone(),
            addresses: pool.addresses.clone(),
            auto_assign: pool.auto_assign,
            assigned_ipv4: a4,
            assigned_ipv6: a6,
            available_ipv4: pool.capacity(Family::V4).saturating_sub(a4),
            available_ipv6: pool.capacity(Family::V6).saturating_sub(a6),
        }
    }

    pub fn to_crd_status(&self) -> IPAddressPoolStatus {
        IPAddressPoolStatus {
            assigned_ipv4: self.assigned_ipv4,
            assigned_ipv6: self.assigned_ipv6,
            available_ipv4: self.available_ipv4,
            available_ipv6: self.available_ipv6,
        }
    }
}

#[derive(Clone, Debug)]
struct Held {
    pool: String,
    ips: Vec<IpAddr>,
    ports: Vec<PortKey>,
    sharing: Sharing,
}

impl Held {
    fn assignment(&self) -> Assignment {
        Assignment {
            pool: self.pool.clone(),
            ips: self.ips.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, Pool>,
    pool_errors: Vec<Invalid>,
    held: BTreeMap<ObjectKey, Held>,
    /// Who holds each address.
    users: BTreeMap<IpAddr, BTreeSet<ObjectKey>>,
    loaded: bool,
    /// Pools accepted last time: they win overlaps against newcomers.
    incumbents: BTreeSet<String>,
    /// Per (pool, range index): every address of the range below this one is held. A lower
    /// bound only; lowered on release, dropped when the pools change.
    hints: RefCell<BTreeMap<(String, usize), u128>>,
}

fn families_text(f: &Families) -> String {
    match f.policy {
        FamilyPolicy::SingleStack => f.primary.to_string(),
        FamilyPolicy::PreferDualStack => {
            format!("{} (and preferably {})", f.primary, f.primary.other())
        }
        FamilyPolicy::RequireDualStack => "IPv4 and IPv6".into(),
    }
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

impl Allocator {
    /// An allocator with no pools that has not loaded existing assignments yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the pools. Invalid or overlapping pools are left out (see [`Allocator::pool_errors`]).
    /// Assignments whose addresses are in no remaining pool are released and returned; an address
    /// that moved to another pool stays with its Service.
    pub fn set_pools<'a>(
        &mut self,
        objects: impl IntoIterator<Item = &'a IPAddressPool>,
    ) -> Vec<(ObjectKey, Assignment)> {
        let (pools, errors) = pool::build_pools(objects, &self.incumbents);
        self.incumbents = pools.keys().cloned().collect();
        self.pools = pools;
        self.hints.borrow_mut().clear();
        self.pool_errors = errors;
        let mut released = Vec::new();
        let keys: Vec<ObjectKey> = self.held.keys().cloned().collect();
        for key in keys {
            let Some(held) = self.held.get(&key) else {
                continue;
            };
            match self.pool_of(&held.ips) {
                Ok(pool) => {
                    let name = pool.name.clone();
                    if let Some(h) = self.held.get_mut(&key) {
                        h.pool = name;
                    }
                }
                Err(_) => {
                    if let Some(h) = self.unrecord(&key) {
                        info!(service = %key, ips = ?h.ips, pool = %h.pool, "address released: no longer in any pool");
                        released.push((key, h.assignment()));
                    }
                }
            }
        }
        released
    }

    /// Seed the pools that win overlaps in the next [`Allocator::set_pools`] (after a restart,
    /// the pools that were accepted before it), so that a restart keeps the same pools.
    pub fn remember_pools(&mut self, names: impl IntoIterator<Item = String>) {
        self.incumbents.extend(names);
    }

    /// Pools left out by the last [`Allocator::set_pools`], and why.
    pub fn pool_errors(&self) -> &[Invalid] {
        &self.pool_errors
    }

    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// Record what Services held before (Service status in kube mode, the state file standalone).
    /// Must be called, once, before anything is allocated; earlier entries win conflicts, so pass
    /// the oldest Services first. An entry that is outside every pool, or that would break the
    /// sharing rule, is dropped and returned; the next reconcile allocates that Service afresh.
    pub fn load_existing(
        &mut self,
        existing: &[(ServiceRequest, Vec<IpAddr>)],
    ) -> Vec<(ObjectKey, AllocError)> {
        self.loaded = true;
        let mut dropped = Vec::new();
        for (req, ips) in existing {
            let mut ips = ips.clone();
            ips.dedup();
            if ips.is_empty() {
                continue;
            }
            let per_family_ok =
                ips.len() <= 2 && !(ips.len() == 2 && Family::of(&ips[0]) == Family::of(&ips[1]));
            let checked = if per_family_ok {
                self.check_holdable(req, &ips)
            } else {
                Err(AllocError::WrongFamilies { ips: ips.clone() })
            };
            match checked {
                Ok(pool) => {
                    debug!(service = %req.key, ips = ?ips, pool = %pool, "existing assignment loaded");
                    self.record(
                        &req.key,
                        Held {
                            pool,
                            ips,
                            ports: req.ports.clone(),
                            sharing: req.sharing.clone(),
                        },
                    );
                }
                Err(e) => {
                    info!(service = %req.key, ips = ?ips, error = %e, "existing assignment dropped");
                    dropped.push((req.key.clone(), e));
                }
            }
        }
        dropped
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Give `req` an address: keep what it holds if that is still valid, otherwise allocate.
    pub fn assign(&mut self, req: &ServiceRequest) -> Result<Assignment, AllocError> {
        if !self.loaded {
            return Err(AllocError::NotLoaded);
        }
        if let Some(a) = self.revalidate(req) {
            return Ok(a);
        }
        self.allocate(req)
    }

    /// Free whatever `key` holds.
    pub fn release(&mut self, key: &ObjectKey) -> Option<Assignment> {
        let held = self.unrecord(key)?;
        info!(service = %key, ips = ?held.ips, pool = %held.pool, "address released");
        Some(held.assignment())
    }

    pub fn assignment(&self, key: &ObjectKey) -> Option<Assignment> {
        self.held.get(key).map(Held::assignment)
    }

    pub fn assignments(&self) -> BTreeMap<ObjectKey, Assignment> {
        self.held
            .iter()
            .map(|(k, h)| (k.clone(), h.assignment()))
            .collect()
    }

    /// Bring every assignment in line with the complete list of eligible Services (a Service whose
    /// annotations cannot be read comes as a `BadRequest` and keeps what it holds). Services not
    /// in the list are released. Order matters only for conflicts: pass the oldest first.
    pub fn reconcile(&mut self, wanted: &[Result<ServiceRequest, BadRequest>]) -> Reconciled {
        let mut out = Reconciled::default();
        let key_of = |w: &Result<ServiceRequest, BadRequest>| match w {
            Ok(r) => r.key.clone(),
            Err(b) => b.key.clone(),
        };
        let present: BTreeSet<ObjectKey> = wanted.iter().map(key_of).collect();
        let gone: Vec<ObjectKey> = self
            .held
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(a) = self.release(&key) {
                out.released.push((key, a));
            }
        }
        if !self.loaded {
            for w in wanted {
                let previous = self.assignment(&key_of(w));
                out.outcomes.insert(
                    key_of(w),
                    Outcome {
                        current: previous.clone(),
                        previous,
                        error: Some(AllocError::NotLoaded),
                    },
                );
            }
            return out;
        }
        // 1. Keep what is still valid; drop what is not (without allocating yet, so that a
        //    Service moving away frees its address before anyone else looks for one).
        let mut pending: Vec<&ServiceRequest> = Vec::new();
        for w in wanted {
            let previous = self.assignment(&key_of(w));
            match w {
                Err(bad) => {
                    let outcome = Outcome {
                        current: previous.clone(),
                        previous,
                        error: Some(AllocError::BadRequest(bad.clone())),
                    };
                    out.outcomes.insert(bad.key.clone(), outcome);
                }
                Ok(req) => match self.revalidate(req) {
                    Some(a) => drop(out.outcomes.insert(
                        req.key.clone(),
                        Outcome {
                            previous,
                            current: Some(a),
                            error: None,
                        },
                    )),
                    None => {
                        out.outcomes.insert(
                            req.key.clone(),
                            Outcome {
                                previous,
                                current: None,
                                error: None,
                            },
                        );
                        pending.push(req);
                    }
                },
            }
        }
        // 2. Services asking for specific addresses, then 3. everyone else.
        let (explicit, automatic): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|r| !r.requested_ips.is_empty());
        for req in explicit.into_iter().chain(automatic) {
            let result = self.allocate(req);
            if let Some(o) = out.outcomes.get_mut(&req.key) {
                match result {
                    Ok(a) => o.current = Some(a),
                    Err(e) => o.error = Some(e),
                }
            }
        }
        out
    }

    /// Counters for every accepted pool, by name.
    pub fn pool_status(&self) -> Vec<PoolStatus> {
        let mut used: BTreeMap<(&str, Family), i64> = BTreeMap::new();
        for (ip, users) in &self.users {
            let pool = users
                .iter()
                .find_map(|k| self.held.get(k))
                .map(|h| h.pool.as_str());
            if let Some(pool) = pool {
                *used.entry((pool, Family::of(ip))).or_default() += 1;
            }
        }
        self.pools
            .values()
            .map(|p| PoolStatus::of(p, &used))
            .collect()
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
