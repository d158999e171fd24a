//! The allocator's internals: keeping, searching, recording. Private to [`super`].

use std::net::IpAddr;

use portico_model::ObjectKey;
use tracing::info;

use super::family::Family;
use super::pool::{self, Pool};
use super::{
    AllocError, Allocator, Assignment, FamilyPolicy, Held, PortKey, ServiceRequest, Sharing,
    families_text, same_set,
};

impl Allocator {
    /// Keep (and refresh the ports and sharing key of) what `req` holds, if still valid. Returns
    /// `None`, having released the old holding, when the Service must get a new address.
    pub(super) fn revalidate(&mut self, req: &ServiceRequest) -> Option<Assignment> {
        let held = self.held.get(&req.key)?.clone();
        let stale = (!req.requested_ips.is_empty() && !same_set(&req.requested_ips, &held.ips))
            || req.pool.as_ref().is_some_and(|p| *p != held.pool)
            || !req.families.satisfied_by(&held.ips);
        let checked = if stale {
            None
        } else {
            self.check_holdable(req, &held.ips).ok()
        };
        let Some(pool_name) =
            checked.filter(|p| self.pools.get(p).is_some_and(|pool| pool.allows(req)))
        else {
            info!(service = %req.key, ips = ?held.ips, "current address no longer fits the Service or the pools; reallocating");
            self.unrecord(&req.key);
            return None;
        };
        let mut ips = held.ips.clone();
        if req.families.policy == FamilyPolicy::PreferDualStack && ips.len() == 1 {
            let missing = Family::of(&ips[0]).other();
            if let Some(extra) = self
                .pools
                .get(&pool_name)
                .and_then(|p| self.free_in(p, missing, req))
            {
                info!(service = %req.key, ip = %extra, "additional address allocated (PreferDualStack)");
                ips.push(extra);
                ips.sort_by_key(|ip| Family::of(ip) != req.families.primary);
            }
        }
        let assignment = Assignment {
            pool: pool_name.clone(),
            ips: ips.clone(),
        };
        let held = Held {
            pool: pool_name,
            ips,
            ports: req.ports.clone(),
            sharing: req.sharing.clone(),
        };
        self.record(&req.key, held);
        Some(assignment)
    }

    /// Allocate anew for a Service that holds nothing.
    pub(super) fn allocate(&mut self, req: &ServiceRequest) -> Result<Assignment, AllocError> {
        let (pool, ips) = if !req.requested_ips.is_empty() {
            let pool = self.check_holdable(req, &req.requested_ips)?;
            if !self.pools.get(&pool).is_some_and(|p| p.allows(req)) {
                return Err(AllocError::PoolNotAllowed { pool });
            }
            if let Some(wanted) = req.pool.as_ref().filter(|w| **w != pool) {
                return Err(AllocError::WrongPool {
                    ip: req.requested_ips[0],
                    actual: pool,
                    requested: wanted.clone(),
                });
            }
            (pool, req.requested_ips.clone())
        } else if let Some(name) = &req.pool {
            let pool = self
                .pools
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?;
            if !pool.allows(req) {
                return Err(AllocError::PoolNotAllowed { pool: name.clone() });
            }
            let ips = self.pick(std::slice::from_ref(&pool), req).ok_or_else(|| {
                AllocError::PoolExhausted {
                    pool: name.clone(),
                    families: families_text(&req.families),
                }
            })?;
            (name.clone(), ips)
        } else {
            let mut pinned: Vec<&Pool> = self
                .pools
                .values()
                .filter(|p| p.auto_assign && p.allocation.is_some() && p.allows(req))
                .collect();
            pinned.sort_by_key(|p| p.allocation.as_ref().map(pool::Allocation::rank));
            let general: Vec<&Pool> = self
                .pools
                .values()
                .filter(|p| p.auto_assign && p.allocation.is_none())
                .collect();
            if pinned.is_empty() && general.is_empty() {
                return Err(AllocError::NoPool);
            }
            let ips = self
                .pick(&pinned, req)
                .or_else(|| self.pick(&general, req))
                .ok_or_else(|| AllocError::NoAvailableIps {
                    families: families_text(&req.families),
                })?;
            let pool = self.pool_of(&ips)?.name.clone();
            (pool, ips)
        };
        info!(service = %req.key, ips = ?ips, pool = %pool, "address allocated");
        let assignment = Assignment {
            pool: pool.clone(),
            ips: ips.clone(),
        };
        let held = Held {
            pool,
            ips,
            ports: req.ports.clone(),
            sharing: req.sharing.clone(),
        };
        self.record(&req.key, held);
        Ok(assignment)
    }

    /// The pool holding every address of `ips`, if there is one.
    pub(super) fn pool_of(&self, ips: &[IpAddr]) -> Result<&Pool, AllocError> {
        let first = ips
            .first()
            .ok_or(AllocError::SplitPools { ips: Vec::new() })?;
        let pool = self
            .pools
            .values()
            .find(|p| p.contains(first))
            .ok_or(AllocError::NotInPool { ip: *first })?;
        for ip in &ips[1..] {
            if !pool.contains(ip) {
                return Err(if self.pools.values().any(|p| p.contains(ip)) {
                    AllocError::SplitPools { ips: ips.to_vec() }
                } else {
                    AllocError::NotInPool { ip: *ip }
                });
            }
        }
        Ok(pool)
    }

    /// Whether `req` may hold `ips` next to the other holders: in one pool, families, sharing.
    pub(super) fn check_holdable(
        &self,
        req: &ServiceRequest,
        ips: &[IpAddr],
    ) -> Result<String, AllocError> {
        let pool = self.pool_of(ips)?;
        if !req.families.satisfied_by(ips) && !req.requested_ips.is_empty() {
            return Err(AllocError::WrongFamilies { ips: ips.to_vec() });
        }
        for ip in ips {
            if let Some(e) = self.conflict(&req.key, ip, &req.ports, &req.sharing) {
                return Err(e);
            }
        }
        Ok(pool.name.clone())
    }

    /// Why `key` may not hold `ip` next to its other holders, if it may not.
    pub(super) fn conflict(
        &self,
        key: &ObjectKey,
        ip: &IpAddr,
        ports: &[PortKey],
        sharing: &Sharing,
    ) -> Option<AllocError> {
        for other in self.users.get(ip)?.iter().filter(|o| *o != key) {
            let Some(h) = self.held.get(other) else {
                continue;
            };
            if let Some(reason) = sharing.refuses(&h.sharing) {
                return Some(AllocError::NotShareable {
                    ip: *ip,
                    holder: other.clone(),
                    reason,
                });
            }
            if let Some((protocol, port)) = ports.iter().find(|p| h.ports.contains(p)) {
                return Some(AllocError::PortInUse {
                    ip: *ip,
                    protocol: *protocol,
                    port: *port,
                    holder: other.clone(),
                });
            }
        }
        None
    }

    /// The first address of `family` in `pool` that `req` may hold: free, or shareable with it.
    ///
    /// Walks the range in step with the (sorted) addresses in use, so the cost is one step per
    /// address in use before the answer. For a Service that does not share, a per-range hint
    /// ("everything below is taken") skips the taken prefix, so filling a pool one Service at a
    /// time stays linear overall instead of quadratic.
    pub(super) fn free_in(
        &self,
        pool: &Pool,
        family: Family,
        req: &ServiceRequest,
    ) -> Option<IpAddr> {
        let exclusive = req.sharing.key.is_none();
        for (idx, range) in pool
            .ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.family == family)
        {
            let hint_key = (pool.name.clone(), idx);
            let mut n = range.start;
            if exclusive && let Some(h) = self.hints.borrow().get(&hint_key) {
                n = n.max(*h);
            }
            if n > range.end {
                continue;
            }
            let last = pool::from_int(family, range.end);
            let mut used = self
                .users
                .range(pool::from_int(family, n)..=last)
                .peekable();
            loop {
                let ip = pool::from_int(family, n);
                let buggy = pool.avoid_buggy_ips && pool::is_buggy(&ip);
                let taken = match used.peek() {
                    Some((u, holders)) if **u == ip => {
                        let others = holders.iter().any(|h| *h != req.key);
                        used.next();
                        others
                            && (exclusive
                                || self
                                    .conflict(&req.key, &ip, &req.ports, &req.sharing)
                                    .is_some())
                    }
                    _ => false,
                };
                if !buggy && !taken {
                    if exclusive {
                        self.hints.borrow_mut().insert(hint_key, n);
                    }
                    return Some(ip);
                }
                if n == range.end {
                    break;
                }
                n += 1;
            }
            if exclusive {
                self.hints
                    .borrow_mut()
                    .insert(hint_key, range.end.saturating_add(1));
            }
        }
        None
    }

    /// Addresses for `req` from the best of `pools` (in order), as MetalLB chooses: the first pool
    /// that satisfies the families; for PreferDualStack, the first with both families, else the
    /// first with the primary family, else the first with the other one.
    pub(super) fn pick(&self, pools: &[&Pool], req: &ServiceRequest) -> Option<Vec<IpAddr>> {
        let primary = req.families.primary;
        let mut fallback: [Option<Vec<IpAddr>>; 2] = [None, None];
        for pool in pools {
            let p = self.free_in(pool, primary, req);
            let s = match req.families.policy {
                FamilyPolicy::SingleStack => None,
                _ => self.free_in(pool, primary.other(), req),
            };
            match (req.families.policy, p, s) {
                (FamilyPolicy::SingleStack, Some(p), _) => return Some(vec![p]),
                (
                    FamilyPolicy::RequireDualStack | FamilyPolicy::PreferDualStack,
                    Some(p),
                    Some(s),
                ) => return Some(vec![p, s]),
                (FamilyPolicy::PreferDualStack, Some(p), None) if fallback[0].is_none() => {
                    fallback[0] = Some(vec![p]);
                }
                (FamilyPolicy::PreferDualStack, None, Some(s)) if fallback[1].is_none() => {
                    fallback[1] = Some(vec![s]);
                }
                _ => {}
            }
        }
        let [a, b] = fallback;
        a.or(b)
    }

    pub(super) fn record(&mut self, key: &ObjectKey, held: Held) {
        self.unrecord(key);
        for ip in &held.ips {
            self.users.entry(*ip).or_default().insert(key.clone());
        }
        self.held.insert(key.clone(), held);
    }

    pub(super) fn unrecord(&mut self, key: &ObjectKey) -> Option<Held> {
        let held = self.held.remove(key)?;
        if let Some(pool) = self.pools.get(&held.pool) {
            let mut hints = self.hints.borrow_mut();
            for ip in &held.ips {
                if let Some(idx) = pool.ranges.iter().position(|r| r.contains(ip)) {
                    let n = pool::to_int(*ip);
                    hints
                        .entry((pool.name.clone(), idx))
                        .and_modify(|h| *h = (*h).min(n));
                }
            }
        }
        for ip in &held.ips {
            if let Some(users) = self.users.get_mut(ip) {
                users.remove(key);
                if users.is_empty() {
                    self.users.remove(ip);
                }
            }
        }
        Some(held)
    }
}
