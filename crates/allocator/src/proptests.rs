//! The allocator's invariants over random histories of Service adds, edits and deletes, pool
//! edits and restarts (a restart is a new allocator loading what the old one had assigned):
//!
//! - no address is ever held by two Services unless MetalLB's sharing rule allows it;
//! - every held address lies in an accepted pool, and a Service that asked for addresses holds
//!   exactly those or nothing;
//! - a restart changes nothing: the new allocator ends where the old one would have.

use std::collections::BTreeMap;
use std::net::IpAddr;

use portico_model::metallb::{IPAddressPool, ServiceAllocation};
use portico_model::{ObjectKey, Protocol};
use proptest::prelude::*;

use super::tests::{ip, pool};
use super::*;

fn catalogue() -> Vec<IPAddressPool> {
    let mut manual = pool("d", &["10.2.0.0/31"]);
    manual.spec.auto_assign = Some(false);
    let mut picky = pool("e", &["10.3.0.254-10.3.1.1"]);
    picky.spec.avoid_buggy_i_ps = Some(true);
    picky.spec.service_allocation = Some(ServiceAllocation {
        priority: Some(1),
        namespaces: Some(vec!["ns1".into()]),
        ..Default::default()
    });
    vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.0.2-10.0.0.5"]), // overlaps a
        pool("c", &["10.1.0.0/31", "fd00::/127"]),
        manual,
        picky,
        pool("f", &["10.0.0.0/29"]), // overlaps a and b
    ]
}

const REQUESTABLE: &[&str] = &[
    "10.0.0.1", "10.0.0.3", "10.1.0.0", "fd00::1", "10.2.0.1", "10.3.1.0", "10.0.0.6",
];

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // test data
enum Op {
    Upsert(usize, ServiceRequest),
    Delete(usize),
    Garble(usize),
    Pools(u8),
    Restart,
}

fn service(idx: usize) -> impl Strategy<Value = ServiceRequest> {
    let sharing = (
        prop_oneof![Just(None), Just(Some("x")), Just(Some("y"))],
        0..3usize,
    )
        .prop_map(|(k, b)| Sharing {
            key: k.map(str::to_owned),
            backends: match b {
                0 => Backends::Cluster,
                n => Backends::Local(BTreeMap::from([("app".to_owned(), n.to_string())])),
            },
        });
    let ports = proptest::sample::subsequence(
        vec![
            (Protocol::TCP, 80),
            (Protocol::TCP, 81),
            (Protocol::UDP, 80),
        ],
        1..=2,
    );
    let request =
        prop_oneof![3 => Just(None), 2 => proptest::sample::select(REQUESTABLE).prop_map(Some)];
    let pool = prop_oneof![3 => Just(None), 1 => proptest::sample::select(vec!["a", "c", "d", "zz"]).prop_map(Some)];
    let families = prop_oneof![
        4 => Just(Families::V4),
        1 => Just(Families::V6),
        1 => Just(Families { primary: Family::V4, policy: FamilyPolicy::PreferDualStack }),
        1 => Just(Families { primary: Family::V6, policy: FamilyPolicy::RequireDualStack }),
    ];
    (sharing, ports, request, pool, families).prop_map(
        move |(sharing, ports, request, pool, families)| {
            let mut r =
                ServiceRequest::simple(ObjectKey::new(format!("ns{}", idx % 2), format!("s{idx}")));
            r.sharing = sharing;
            r.ports = ports;
            r.pool = pool.map(str::to_owned);
            r.families = families;
            if let Some(s) = request {
                // A request names addresses of the Service's own family, as the API enforces.
                let want = ip(s);
                r.families = Families {
                    primary: Family::of(&want),
                    policy: FamilyPolicy::SingleStack,
                };
                r.requested_ips = vec![want];
            }
            r
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..6usize).prop_flat_map(|i| service(i).prop_map(move |s| Op::Upsert(i, s))),
        2 => (0..6usize).prop_map(Op::Delete),
        1 => (0..6usize).prop_map(Op::Garble),
        1 => any::<u8>().prop_map(Op::Pools),
        1 => Just(Op::Restart),
    ]
}

fn chosen(mask: u8) -> Vec<IPAddressPool> {
    catalogue()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| p)
        .collect()
}

/// Services whose annotations became unreadable: they keep what they hold.
type Garbled = std::collections::BTreeSet<usize>;

fn wanted(
    services: &BTreeMap<usize, ServiceRequest>,
    garbled: &Garbled,
) -> Vec<Result<ServiceRequest, BadRequest>> {
    services
        .iter()
        .map(|(i, s)| {
            if garbled.contains(i) {
                Err(BadRequest {
                    key: s.key.clone(),
                    field: "metadata.annotations".into(),
                    message: "unreadable".into(),
                })
            } else {
                Ok(s.clone())
            }
        })
        .collect()
}

fn check(a: &Allocator, services: &BTreeMap<usize, ServiceRequest>) -> Result<(), TestCaseError> {
    let reqs: BTreeMap<ObjectKey, &ServiceRequest> =
        services.values().map(|r| (r.key.clone(), r)).collect();
    let held = a.assignments();
    let mut holders: BTreeMap<IpAddr, Vec<&ObjectKey>> = BTreeMap::new();
    for (key, asg) in &held {
        let req = reqs.get(key).ok_or_else(|| {
            TestCaseError::fail(format!("{key} holds {asg:?} but does not exist"))
        })?;
        let pool = a.pools().find(|p| p.name == asg.pool);
        prop_assert!(
            pool.is_some(),
            "{key} holds {asg:?} from a pool that is not accepted"
        );
        for ip in &asg.ips {
            prop_assert!(
                pool.is_some_and(|p| p.contains(ip)),
                "{key}: {ip} is outside pool {}",
                asg.pool
            );
            holders.entry(*ip).or_default().push(key);
        }
        if !req.requested_ips.is_empty() {
            prop_assert_eq!(
                &asg.ips,
                &req.requested_ips,
                "{} holds something it did not ask for",
                key
            );
        }
    }
    for (ip, keys) in holders {
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                let (rx, ry) = (reqs[*x], reqs[*y]);
                prop_assert!(
                    rx.sharing.refuses(&ry.sharing).is_none(),
                    "{ip} held by {x} and {y}, which may not share"
                );
                prop_assert!(
                    rx.ports.iter().all(|p| !ry.ports.contains(p)),
                    "{ip}: {x} and {y} use the same port"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_ip_is_ever_held_by_two_services_unless_they_may_share(
        initial_pools in any::<u8>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut pools_mask = initial_pools;
        let mut a = Allocator::new();
        a.set_pools(&chosen(pools_mask));
        a.load_existing(&[]);
        let mut services: BTreeMap<usize, ServiceRequest> = BTreeMap::new();
        let mut garbled = Garbled::new();
        for op in ops {
            match op {
                Op::Upsert(i, s) => {
                    garbled.remove(&i);
                    services.insert(i, s);
                }
                Op::Delete(i) => {
                    garbled.remove(&i);
                    services.remove(&i);
                }
                Op::Garble(i) => drop(services.contains_key(&i) && garbled.insert(i)),
                Op::Pools(mask) => {
                    pools_mask = mask;
                    a.set_pools(&chosen(mask));
                }
                Op::Restart => {
                    let before = a.assignments();
                    let mut b = Allocator::new();
                    b.remember_pools(a.pools().map(|p| p.name.clone()));
                    b.set_pools(&chosen(pools_mask));
                    // Load in reverse order: the order must not matter for a consistent state.
                    let existing: Vec<_> = services
                        .values()
                        .rev()
                        .filter_map(|s| before.get(&s.key).map(|h| (s.clone(), h.ips.clone())))
                        .collect();
                    let dropped = b.load_existing(&existing);
                    prop_assert!(dropped.is_empty(), "a consistent state loads whole: {:?}", dropped);
                    prop_assert_eq!(b.assignments(), before.clone(), "loading restores every assignment");
                    a.reconcile(&wanted(&services, &garbled));
                    b.reconcile(&wanted(&services, &garbled));
                    prop_assert_eq!(b.assignments(), a.assignments(), "a restart changes nothing");
                    for (key, old) in &before {
                        let now = b.assignment(key);
                        prop_assert!(now.is_some_and(|n| old.ips.iter().all(|ip| n.ips.contains(ip))), "{} lost an address", key);
                    }
                    a = b;
                }
            }
            let before = a.assignments();
            a.reconcile(&wanted(&services, &garbled));
            check(&a, &services)?;
            for i in &garbled {
                let key = &services[i].key;
                prop_assert_eq!(a.assignment(key), before.get(key).cloned(), "unreadable {} keeps what it holds", key);
            }
        }
    }
}
