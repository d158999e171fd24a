//! Address pools: `IPAddressPool` objects parsed and validated into address ranges.
//!
//! Addresses are CIDRs (`192.168.10.0/24`, every address including the network and broadcast
//! ones, as MetalLB hands them out) or inclusive `start-end` ranges, IPv4 or IPv6. Pools must not
//! overlap each other (nor themselves): an overlapping pool is left out and reported; pools that
//! were already accepted win over newcomers, so adding a bad pool never takes addresses away from
//! Services that hold them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use portico_model::metallb::IPAddressPool;
use portico_model::selector::label_selector_matches;
use portico_model::{Invalid, ObjectKey};

use crate::family::Family;
use crate::request::ServiceRequest;

/// An inclusive range of addresses of one family, as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

pub(crate) fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub(crate) fn from_int(family: Family, n: u128) -> IpAddr {
    match family {
        // Ranges of family V4 only hold values that came from a u32.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl AddrRange {
    /// Parse `a.b.c.d/len`, `a.b.c.d-e.f.g.h` (spaces around `-` allowed), or the IPv6 forms.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let start: IpAddr = a.trim().parse().map_err(|_| {
                format!(
                    "invalid range {s:?}: start {:?} is not an IP address",
                    a.trim()
                )
            })?;
            let end: IpAddr = b.trim().parse().map_err(|_| {
                format!(
                    "invalid range {s:?}: end {:?} is not an IP address",
                    b.trim()
                )
            })?;
            if Family::of(&start) != Family::of(&end) {
                return Err(format!(
                    "invalid range {s:?}: start and end are of different IP families"
                ));
            }
            let (start_n, end_n) = (to_int(start), to_int(end));
            if start_n > end_n {
                return Err(format!(
                    "invalid range {s:?}: start {start} is after end {end}"
                ));
            }
            return Ok(Self {
                family: Family::of(&start),
                start: start_n,
                end: end_n,
            });
        }
        let net: IpNet = s.parse().map_err(|_| {
            format!(
                "{s:?} is neither a CIDR (192.168.10.0/24) nor a range (192.168.10.1-192.168.10.9)"
            )
        })?;
        let net = net.trunc();
        let family = Family::of(&net.network());
        Ok(Self {
            family,
            start: to_int(net.network()),
            end: to_int(net.broadcast()),
        })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family && (self.start..=self.end).contains(&to_int(*ip))
    }

    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.start <= other.end && other.start <= self.end
    }

    pub fn first(&self) -> IpAddr {
        from_int(self.family, self.start)
    }

    /// The address after `ip` inside this range.
    pub fn next(&self, ip: &IpAddr) -> Option<IpAddr> {
        let n = to_int(*ip);
        (n < self.end).then(|| from_int(self.family, n + 1))
    }

    /// Number of addresses, minus the `.0` and `.255` ones when `avoid_buggy`.
    pub fn size(&self, avoid_buggy: bool) -> u128 {
        let total = self.end - self.start + 1;
        if !avoid_buggy || self.family == Family::V6 {
            return total;
        }
        // Multiples of 256 in [start, end] end in .0; their predecessors end in .255.
        let multiples = |lo: u128, hi: u128| {
            if lo > hi {
                0
            } else {
                hi / 256 + 1 - lo.div_ceil(256)
            }
        };
        total - multiples(self.start, self.end) - multiples(self.start + 1, self.end + 1)
    }
}

/// IPv4 addresses ending in `.0` or `.255`, which some consumer firmwares drop as smurf attacks.
pub fn is_buggy(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// `spec.serviceAllocation`: which Services may use a pool, and how much it is preferred.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Lower is preferred; 0 (or unset) comes after every pool with a priority, as in MetalLB.
    pub priority: i32,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
}

impl Allocation {
    /// Whether a Service may take addresses from a pool with this allocation.
    pub fn allows(&self, req: &ServiceRequest) -> bool {
        let ns_restricted = !self.namespaces.is_empty() || !self.namespace_selectors.is_empty();
        let ns_ok = !ns_restricted
            || self.namespaces.contains(&req.key.namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| label_selector_matches(s, Some(&req.namespace_labels)));
        let svc_ok = self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| label_selector_matches(s, Some(&req.labels)));
        ns_ok && svc_ok
    }

    /// Sort key: pools with a positive priority first, lowest number first.
    pub fn rank(&self) -> (bool, i32) {
        (self.priority <= 0, self.priority)
    }
}

/// A validated pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub key: ObjectKey,
    /// The addresses as written, for display.
    pub addresses: Vec<String>,
    pub ranges: Vec<AddrRange>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<Allocation>,
}

impl Pool {
    /// Whether `ip` is one this pool may hand out.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        !(self.avoid_buggy_ips && is_buggy(ip)) && self.ranges.iter().any(|r| r.contains(ip))
    }

    pub fn allows(&self, req: &ServiceRequest) -> bool {
        self.allocation.as_ref().is_none_or(|a| a.allows(req))
    }

    /// Addresses of one family this pool can hand out, saturating at `i64::MAX`.
    pub fn capacity(&self, family: Family) -> i64 {
        let total: u128 = self
            .ranges
            .iter()
            .filter(|r| r.family == family)
            .fold(0u128, |acc, r| {
                acc.saturating_add(r.size(self.avoid_buggy_ips))
            });
        i64::try_from(total).unwrap_or(i64::MAX)
    }

    /// Parse one `IPAddressPool`. Overlap with other pools is checked by [`build_pools`].
    pub fn parse(obj: &IPAddressPool) -> Result<Pool, Invalid> {
        let key = ObjectKey::of(&obj.metadata);
        let bad = |field: String, msg: String| Invalid::new("IPAddressPool", &key, field, msg);
        let spec = &obj.spec;
        if spec.addresses.is_empty() {
            return Err(bad(
                "spec.addresses".into(),
                "a pool needs at least one CIDR or range".into(),
            ));
        }
        let mut ranges = Vec::with_capacity(spec.addresses.len());
        for (i, a) in spec.addresses.iter().enumerate() {
            let r = AddrRange::parse(a).map_err(|m| bad(format!("spec.addresses[{i}]"), m))?;
            if let Some(j) = ranges.iter().position(|o: &AddrRange| o.overlaps(&r)) {
                return Err(bad(
                    format!("spec.addresses[{i}]"),
                    format!(
                        "{a:?} overlaps {:?} (spec.addresses[{j}]) in the same pool",
                        spec.addresses[j]
                    ),
                ));
            }
            ranges.push(r);
        }
        let allocation = match &spec.service_allocation {
            None => None,
            Some(sa) => {
                let mut namespaces = BTreeSet::new();
                for (i, ns) in sa.namespaces.iter().flatten().enumerate() {
                    if !namespaces.insert(ns.clone()) {
                        return Err(bad(
                            format!("spec.serviceAllocation.namespaces[{i}]"),
                            format!("duplicate namespace {ns:?}"),
                        ));
                    }
                }
                let namespace_selectors = sa.namespace_selectors.clone().unwrap_or_default();
                let service_selectors = sa.service_selectors.clone().unwrap_or_default();
                for (what, list) in [
                    ("namespaceSelectors", &namespace_selectors),
                    ("serviceSelectors", &service_selectors),
                ] {
                    for (i, sel) in list.iter().enumerate() {
                        check_selector(sel).map_err(|(f, m)| {
                            bad(format!("spec.serviceAllocation.{what}[{i}]{f}"), m)
                        })?;
                    }
                }
                Some(Allocation {
                    priority: sa.priority.unwrap_or(0),
                    namespaces,
                    namespace_selectors,
                    service_selectors,
                })
            }
        };
        Ok(Pool {
            name: key.name.clone(),
            key,
            addresses: spec.addresses.clone(),
            ranges,
            auto_assign: spec.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.avoid_buggy_i_ps.unwrap_or(false),
            allocation,
        })
    }
}

fn check_selector(sel: &LabelSelector) -> Result<(), (String, String)> {
    for (j, e) in sel.match_expressions.iter().flatten().enumerate() {
        let has_values = e.values.as_ref().is_some_and(|v| !v.is_empty());
        let ok = match e.operator.as_str() {
            "In" | "NotIn" => has_values,
            "Exists" | "DoesNotExist" => !has_values,
            other => {
                return Err((
                    format!(".matchExpressions[{j}].operator"),
                    format!(
                        "unsupported operator {other:?}: expected In, NotIn, Exists or DoesNotExist"
                    ),
                ));
            }
        };
        if !ok {
            return Err((
                format!(".matchExpressions[{j}].values"),
                format!(
                    "operator {} {} values",
                    e.operator,
                    if has_values { "takes no" } else { "needs" }
                ),
            ));
        }
    }
    Ok(())
}

/// Parse every pool and drop the ones that are invalid or overlap a pool kept before them.
/// Pools named in `incumbents` (accepted by the previous call) are considered first, then the
/// rest oldest first, then by name: an existing pool never loses its addresses to a newcomer.
pub fn build_pools<'a>(
    objects: impl IntoIterator<Item = &'a IPAddressPool>,
    incumbents: &BTreeSet<String>,
) -> (BTreeMap<String, Pool>, Vec<Invalid>) {
    let mut errors = Vec::new();
    let mut parsed: Vec<(Pool, Option<jiff::Timestamp>)> = Vec::new();
    for obj in objects {
        match Pool::parse(obj) {
            Ok(p) => parsed.push((p, obj.metadata.creation_timestamp.as_ref().map(|t| t.0))),
            Err(e) => errors.push(e),
        }
    }
    parsed.sort_by(|(a, ta), (b, tb)| {
        let rank = |p: &Pool, t: &Option<jiff::Timestamp>| {
            (!incumbents.contains(&p.name), t.is_none(), *t)
        };
        rank(a, ta)
            .cmp(&rank(b, tb))
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    'pools: for (pool, _) in parsed {
        if let Some(other) = pools.get(&pool.name) {
            errors.push(Invalid::new(
                "IPAddressPool",
                &pool.key,
                "metadata.name",
                format!(
                    "a pool named {:?} already exists in namespace {:?}; pool names must be unique",
                    pool.name, other.key.namespace
                ),
            ));
            continue;
        }
        for (i, r) in pool.ranges.iter().enumerate() {
            for other in pools.values() {
                if let Some(j) = other.ranges.iter().position(|o| o.overlaps(r)) {
                    errors.push(Invalid::new(
                        "IPAddressPool",
                        &pool.key,
                        format!("spec.addresses[{i}]"),
                        format!(
                            "{:?} overlaps {:?} of pool {}; this pool is left out",
                            pool.addresses[i], other.addresses[j], other.name
                        ),
                    ));
                    continue 'pools;
                }
            }
        }
        pools.insert(pool.name.clone(), pool);
    }
    (pools, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test literal")
    }

    #[test]
    fn parses_cidrs_and_ranges() {
        let r = AddrRange::parse("192.168.10.0/30").expect("valid");
        assert_eq!((r.first(), r.size(false)), (ip("192.168.10.0"), 4));
        let r = AddrRange::parse("192.168.10.5/24").expect("host bits are masked, as MetalLB does");
        assert_eq!(r.first(), ip("192.168.10.0"));
        let r = AddrRange::parse("10.0.0.250 - 10.0.1.5").expect("valid");
        assert_eq!(r.size(false), 12);
        assert_eq!(r.size(true), 10, ".255 and .0 are skipped");
        let r = AddrRange::parse("fd00::/120").expect("valid");
        assert_eq!((r.family, r.size(true)), (Family::V6, 256));
        assert!(AddrRange::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(AddrRange::parse("10.0.0.1-fd00::1").is_err());
        assert!(AddrRange::parse("10.0.0.1").is_err());
        assert!(AddrRange::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn buggy_counts_match_a_walk() {
        for (a, b) in [
            (0u128, 1000u128),
            (255, 256),
            (256, 511),
            (3, 250),
            (0, 0),
            (255, 255),
        ] {
            let r = AddrRange {
                family: Family::V4,
                start: a,
                end: b,
            };
            let walked = (a..=b)
                .filter(|n| !is_buggy(&from_int(Family::V4, *n)))
                .count() as u128;
            assert_eq!(r.size(true), walked, "range {a}-{b}");
        }
    }
}
