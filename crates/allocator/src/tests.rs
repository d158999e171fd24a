//! Allocator stories. Each test is one short story about Services and pools.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use portico_model::metallb::{IPAddressPool, IPAddressPoolSpec, ServiceAllocation};
use portico_model::{ObjectKey, Protocol};

use super::*;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

pub(crate) fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    let mut p = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
    );
    p.metadata.namespace = Some("metallb-system".into());
    p
}

fn with(mut p: IPAddressPool, f: impl FnOnce(&mut IPAddressPoolSpec)) -> IPAddressPool {
    f(&mut p.spec);
    p
}

pub(crate) fn svc(name: &str) -> ServiceRequest {
    ServiceRequest::simple(ObjectKey::new("default", name))
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("default", name)
}

fn shared(name: &str, sharing_key: &str, port: u16) -> ServiceRequest {
    let mut r = svc(name);
    r.sharing.key = Some(sharing_key.into());
    r.ports = vec![(Protocol::TCP, port)];
    r
}

fn requesting(name: &str, ips: &[&str]) -> ServiceRequest {
    let mut r = svc(name);
    r.requested_ips = ips.iter().map(|s| ip(s)).collect();
    r
}

/// An allocator with these pools and no earlier assignments.
fn fresh(pools: &[IPAddressPool]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools);
    assert!(a.load_existing(&[]).is_empty());
    a
}

fn ips_of(a: &Allocator, name: &str) -> Vec<IpAddr> {
    a.assignment(&key(name)).map(|x| x.ips).unwrap_or_default()
}

#[test]
fn s1_gets_the_first_address_and_s2_the_next() {
    let mut a = fresh(&[pool("default", &["192.168.10.0/30"])]);
    assert_eq!(
        a.assign(&svc("s1")).expect("free pool").ips,
        vec![ip("192.168.10.0")]
    );
    assert_eq!(
        a.assign(&svc("s2")).expect("free pool").ips,
        vec![ip("192.168.10.1")]
    );
    assert_eq!(
        a.assign(&svc("s1")).expect("idempotent").ips,
        vec![ip("192.168.10.0")],
        "asking again changes nothing"
    );
}

#[test]
fn a_full_range_spills_into_the_next_range_of_the_pool() {
    let mut a = fresh(&[pool("two-ranges", &["10.0.0.1-10.0.0.1", "10.0.5.0/31"])]);
    let got: Vec<_> = (0..3)
        .map(|i| a.assign(&svc(&format!("s{i}"))).expect("room").ips[0])
        .collect();
    assert_eq!(got, [ip("10.0.0.1"), ip("10.0.5.0"), ip("10.0.5.1")]);
}

#[test]
fn s2_cant_grab_s1s_ip() {
    let mut a = fresh(&[pool("default", &["192.168.10.0/24"])]);
    a.assign(&requesting("s1", &["192.168.10.7"]))
        .expect("free address");
    let err = a
        .assign(&requesting("s2", &["192.168.10.7"]))
        .expect_err("taken");
    assert!(
        matches!(err, AllocError::NotShareable { ref holder, .. } if *holder == key("s1")),
        "{err}"
    );
    assert_eq!(
        err.field(&requesting("s2", &["192.168.10.7"])),
        "spec.loadBalancerIP"
    );
    assert_eq!(
        ips_of(&a, "s1"),
        vec![ip("192.168.10.7")],
        "s1 keeps its address"
    );
    assert!(a.assignment(&key("s2")).is_none(), "s2 stays pending");
}

#[test]
fn nothing_is_allocated_before_existing_assignments_are_loaded() {
    let mut a = Allocator::new();
    a.set_pools(&[pool("default", &["192.168.10.0/24"])]);
    assert_eq!(a.assign(&svc("s1")), Err(AllocError::NotLoaded));
    let r = a.reconcile(&[Ok(svc("s1"))]);
    assert_eq!(r.outcomes[&key("s1")].error, Some(AllocError::NotLoaded));
    assert!(a.assignments().is_empty());
}

#[test]
fn a_restart_keeps_every_ip() {
    let pools = [pool("a", &["10.0.0.0/29"]), pool("b", &["10.0.1.0/29"])];
    let mut before = fresh(&pools);
    let services: Vec<ServiceRequest> = (0..10).map(|i| svc(&format!("s{i}"))).collect();
    let wanted: Vec<_> = services.iter().cloned().map(Ok).collect();
    before.reconcile(&wanted);
    let held = before.assignments();
    assert_eq!(held.len(), 10);

    // A new process: the Services are listed in another order, and a new one arrived meanwhile.
    let mut after = Allocator::new();
    after.set_pools(&pools);
    let existing: Vec<_> = services
        .iter()
        .rev()
        .map(|s| (s.clone(), held[&s.key].ips.clone()))
        .collect();
    assert!(after.load_existing(&existing).is_empty());
    let mut wanted_after: Vec<_> = vec![Ok(svc("newcomer"))];
    wanted_after.extend(services.iter().rev().cloned().map(Ok));
    let r = after.reconcile(&wanted_after);
    for s in &services {
        assert_eq!(
            after.assignment(&s.key),
            Some(held[&s.key].clone()),
            "{} keeps its address",
            s.key
        );
        assert!(!r.outcomes[&s.key].changed());
    }
    let newcomer = after
        .assignment(&key("newcomer"))
        .expect("room left in pool b");
    assert!(
        held.values().all(|h| !h.ips.contains(&newcomer.ips[0])),
        "the newcomer gets a free address"
    );
}

#[test]
fn after_a_restart_the_older_claim_wins_a_conflict_in_status() {
    // Two Services claim the same address in their status (MetalLB #2443): the first one loaded
    // (the oldest) keeps it; the other is allocated afresh.
    let mut a = Allocator::new();
    a.set_pools(&[pool("default", &["10.0.0.0/30"])]);
    let dropped = a.load_existing(&[
        (svc("old"), vec![ip("10.0.0.1")]),
        (svc("young"), vec![ip("10.0.0.1")]),
    ]);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].0, key("young"));
    a.reconcile(&[Ok(svc("young")), Ok(svc("old"))]);
    assert_eq!(ips_of(&a, "old"), vec![ip("10.0.0.1")]);
    assert_eq!(ips_of(&a, "young"), vec![ip("10.0.0.0")]);
}

#[test]
fn an_exhausted_pool_leaves_one_service_pending_and_the_others_unaffected() {
    let mut a = fresh(&[pool("tiny", &["10.0.0.1-10.0.0.2"])]);
    let r = a.reconcile(&[Ok(svc("s1")), Ok(svc("s2")), Ok(svc("s3"))]);
    assert_eq!(ips_of(&a, "s1"), vec![ip("10.0.0.1")]);
    assert_eq!(ips_of(&a, "s2"), vec![ip("10.0.0.2")]);
    let s3 = &r.outcomes[&key("s3")];
    assert!(
        matches!(s3.error, Some(AllocError::NoAvailableIps { .. })),
        "{s3:?}"
    );
    assert!(s3.current.is_none());

    // s1 is deleted: s3 gets its address on the next pass.
    let r = a.reconcile(&[Ok(svc("s2")), Ok(svc("s3"))]);
    assert_eq!(
        r.released,
        vec![(
            key("s1"),
            Assignment {
                pool: "tiny".into(),
                ips: vec![ip("10.0.0.1")]
            }
        )]
    );
    assert_eq!(ips_of(&a, "s3"), vec![ip("10.0.0.1")]);
}

#[test]
fn explicit_requests_are_served_before_automatic_ones() {
    let mut a = fresh(&[pool("default", &["10.0.0.1-10.0.0.2"])]);
    // "auto" is listed first but must not take the address "pinned" asks for.
    a.reconcile(&[Ok(svc("auto")), Ok(requesting("pinned", &["10.0.0.1"]))]);
    assert_eq!(ips_of(&a, "pinned"), vec![ip("10.0.0.1")]);
    assert_eq!(ips_of(&a, "auto"), vec![ip("10.0.0.2")]);
}

#[test]
fn sharing_needs_the_same_key_and_disjoint_ports() {
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    let web = shared("web", "k", 80);
    a.assign(&web).expect("free");
    let mut dns = shared("dns", "k", 53);
    dns.requested_ips = vec![ip("10.0.0.0")];
    assert_eq!(
        a.assign(&dns).expect("same key, other port").ips,
        vec![ip("10.0.0.0")]
    );

    let mut clash = shared("clash", "k", 80);
    clash.requested_ips = vec![ip("10.0.0.0")];
    assert!(matches!(
        a.assign(&clash),
        Err(AllocError::PortInUse { port: 80, .. })
    ));

    let mut stranger = shared("stranger", "other-key", 443);
    stranger.requested_ips = vec![ip("10.0.0.0")];
    assert!(matches!(
        a.assign(&stranger),
        Err(AllocError::NotShareable { .. })
    ));

    // Same key, same port but another protocol: allowed.
    let mut udp = shared("dns-udp", "k", 80);
    udp.ports = vec![(Protocol::UDP, 80)];
    udp.requested_ips = vec![ip("10.0.0.0")];
    assert!(a.assign(&udp).is_ok());
}

#[test]
fn automatic_allocation_joins_a_shareable_address() {
    // As in MetalLB, a Service with a sharing key takes the first address it may use, which may
    // be one already shared under its key.
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    a.assign(&shared("web", "k", 80)).expect("free");
    assert_eq!(
        a.assign(&shared("dns", "k", 53)).expect("shareable").ips,
        vec![ip("10.0.0.0")]
    );
    assert_eq!(
        a.assign(&shared("web2", "k", 80))
            .expect("port clash: next")
            .ips,
        vec![ip("10.0.0.1")]
    );
    assert_eq!(
        a.assign(&svc("plain")).expect("no key: a free one").ips,
        vec![ip("10.0.0.2")]
    );
}

#[test]
fn local_traffic_policy_shares_only_with_identical_selectors() {
    let selector = |app: &str| BTreeMap::from([("app".to_owned(), app.to_owned())]);
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    let mut s1 = shared("s1", "k", 80);
    s1.sharing.backends = Backends::Local(selector("web"));
    a.assign(&s1).expect("free");

    let mut cluster = shared("cluster", "k", 81);
    cluster.requested_ips = vec![ip("10.0.0.0")];
    assert!(
        matches!(a.assign(&cluster), Err(AllocError::NotShareable { .. })),
        "Local and Cluster do not mix"
    );

    let mut other = shared("other", "k", 82);
    other.sharing.backends = Backends::Local(selector("api"));
    other.requested_ips = vec![ip("10.0.0.0")];
    assert!(
        matches!(a.assign(&other), Err(AllocError::NotShareable { .. })),
        "different backends"
    );

    let mut same = shared("same", "k", 83);
    same.sharing.backends = Backends::Local(selector("web"));
    same.requested_ips = vec![ip("10.0.0.0")];
    assert!(a.assign(&same).is_ok(), "same selector");
}

#[test]
fn a_port_change_that_clashes_moves_the_service() {
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    a.reconcile(&[Ok(shared("web", "k", 80)), Ok(shared("dns", "k", 53))]);
    assert_eq!(ips_of(&a, "dns"), vec![ip("10.0.0.0")]);
    let r = a.reconcile(&[Ok(shared("web", "k", 80)), Ok(shared("dns", "k", 80))]);
    assert_eq!(
        ips_of(&a, "web"),
        vec![ip("10.0.0.0")],
        "the first holder stays"
    );
    assert_eq!(ips_of(&a, "dns"), vec![ip("10.0.0.1")]);
    assert!(r.outcomes[&key("dns")].changed());
}

#[test]
fn a_changed_request_moves_the_service() {
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    a.reconcile(&[Ok(svc("s1"))]);
    let r = a.reconcile(&[Ok(requesting("s1", &["10.0.0.42"]))]);
    assert_eq!(ips_of(&a, "s1"), vec![ip("10.0.0.42")]);
    assert_eq!(
        r.outcomes[&key("s1")]
            .previous
            .as_ref()
            .map(|p| p.ips.clone()),
        Some(vec![ip("10.0.0.0")])
    );
}

#[test]
fn an_unreadable_service_keeps_its_address() {
    let mut a = fresh(&[pool("default", &["10.0.0.0/24"])]);
    a.reconcile(&[Ok(svc("s1"))]);
    let bad = BadRequest {
        key: key("s1"),
        field: "metadata.annotations[metallb.io/loadBalancerIPs]".into(),
        message: "x".into(),
    };
    let r = a.reconcile(&[Err(bad)]);
    let o = &r.outcomes[&key("s1")];
    assert_eq!(
        o.current.as_ref().map(|c| c.ips.clone()),
        Some(vec![ip("10.0.0.0")])
    );
    assert!(matches!(o.error, Some(AllocError::BadRequest(_))));
    assert!(!r.changed());
}

#[test]
fn removing_a_pool_releases_its_services_and_they_move() {
    let mut a = fresh(&[pool("old", &["10.0.0.0/30"]), pool("new", &["10.1.0.0/30"])]);
    let mut on_old = svc("s1");
    on_old.pool = None;
    a.assign(&requesting("s1", &["10.0.0.1"])).expect("free");
    let released = a.set_pools(&[pool("new", &["10.1.0.0/30"])]);
    assert_eq!(released.len(), 1);
    assert!(a.assignment(&key("s1")).is_none());
    a.reconcile(&[Ok(on_old)]);
    assert_eq!(ips_of(&a, "s1"), vec![ip("10.1.0.0")]);
}

#[test]
fn a_renamed_pool_keeps_its_services() {
    let mut a = fresh(&[pool("old-name", &["10.0.0.0/30"])]);
    a.assign(&svc("s1")).expect("free");
    assert!(
        a.set_pools(&[pool("new-name", &["10.0.0.0/29"])])
            .is_empty()
    );
    assert_eq!(
        a.assignment(&key("s1")),
        Some(Assignment {
            pool: "new-name".into(),
            ips: vec![ip("10.0.0.0")]
        })
    );
}

#[test]
fn an_overlapping_pool_is_left_out_and_the_others_keep_working() {
    let mut a = Allocator::new();
    a.set_pools(&[
        pool("a", &["10.0.0.0/24"]),
        pool("b", &["10.1.0.0/24", "10.0.0.128/25"]),
        pool("c", &["10.2.0.0/24"]),
    ]);
    let names: Vec<_> = a.pools().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["a", "c"]);
    let e = &a.pool_errors()[0];
    assert_eq!(
        (e.object.as_ref().map(|o| o.name.as_str()), e.field.as_str()),
        (Some("b"), "spec.addresses[1]")
    );
    assert!(e.message.contains("pool a"), "{e}");
}

#[test]
fn a_newcomer_never_takes_addresses_from_an_existing_pool() {
    let mut a = fresh(&[pool("zz-first", &["10.0.0.0/24"])]);
    a.assign(&svc("s1")).expect("free");
    // "aa-late" sorts first by name, but "zz-first" was there before.
    let released = a.set_pools(&[
        pool("zz-first", &["10.0.0.0/24"]),
        pool("aa-late", &["10.0.0.0/16"]),
    ]);
    assert!(released.is_empty());
    assert_eq!(
        a.pools().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["zz-first"]
    );
    assert_eq!(
        a.pool_errors()[0].object.as_ref().map(|o| o.name.as_str()),
        Some("aa-late")
    );
}

#[test]
fn bad_addresses_are_reported_with_their_field() {
    let mut a = Allocator::new();
    a.set_pools(&[
        pool("bad", &["10.0.0.0/24", "10.0.1.9-10.0.1.1"]),
        pool("empty", &[]),
        pool("ok", &["fd00::/120"]),
    ]);
    let fields: Vec<_> = a.pool_errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.addresses[1]", "spec.addresses"]);
    assert_eq!(a.pools().count(), 1);
}

#[test]
fn auto_assign_false_pools_serve_only_on_request() {
    let mut a = fresh(&[with(pool("manual", &["10.9.0.0/30"]), |s| {
        s.auto_assign = Some(false)
    })]);
    assert_eq!(a.assign(&svc("auto")), Err(AllocError::NoPool));
    let mut by_pool = svc("by-pool");
    by_pool.pool = Some("manual".into());
    assert_eq!(
        a.assign(&by_pool).expect("asked for the pool").ips,
        vec![ip("10.9.0.0")]
    );
    assert_eq!(
        a.assign(&requesting("by-ip", &["10.9.0.3"]))
            .expect("asked for the address")
            .pool,
        "manual"
    );
}

#[test]
fn the_pool_annotation_must_match_the_requested_address() {
    let mut a = fresh(&[pool("a", &["10.0.0.0/24"]), pool("b", &["10.1.0.0/24"])]);
    let mut r = requesting("s1", &["10.0.0.5"]);
    r.pool = Some("b".into());
    let err = a.assign(&r).expect_err("address in a, pool b requested");
    assert!(matches!(err, AllocError::WrongPool { .. }));
    assert_eq!(
        err.field(&r),
        "metadata.annotations[metallb.io/address-pool]"
    );
    let mut unknown = svc("s2");
    unknown.pool = Some("nope".into());
    assert_eq!(
        a.assign(&unknown),
        Err(AllocError::UnknownPool {
            pool: "nope".into()
        })
    );
    let mut moved = svc("s3");
    a.assign(&moved).expect("free");
    moved.pool = Some("b".into());
    assert_eq!(a.assign(&moved).expect("moves to b").pool, "b");
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut a = fresh(&[with(pool("p", &["10.0.0.254-10.0.1.1"]), |s| {
        s.avoid_buggy_i_ps = Some(true)
    })]);
    let got: Vec<_> = (0..3)
        .map(|i| a.assign(&svc(&format!("s{i}"))).map(|x| x.ips[0]))
        .collect();
    assert_eq!(
        got,
        vec![
            Ok(ip("10.0.0.254")),
            Ok(ip("10.0.1.1")),
            Err(AllocError::NoAvailableIps {
                families: "IPv4".into()
            })
        ]
    );
    assert!(matches!(
        a.assign(&requesting("x", &["10.0.1.0"])),
        Err(AllocError::NotInPool { .. })
    ));
}

fn prioritized(name: &str, addr: &str, priority: i32) -> IPAddressPool {
    with(pool(name, &[addr]), |s| {
        s.service_allocation = Some(ServiceAllocation {
            priority: Some(priority),
            ..Default::default()
        })
    })
}

#[test]
fn pools_with_priority_are_tried_in_order_before_general_pools() {
    let mut a = fresh(&[
        pool("general", &["10.0.0.0/24"]),
        prioritized("second", "10.2.0.0/31", 2),
        prioritized("first", "10.1.0.0/32", 1),
        prioritized("unranked", "10.3.0.0/32", 0),
    ]);
    let pools: Vec<_> = (0..5)
        .map(|i| a.assign(&svc(&format!("s{i}"))).expect("room").pool)
        .collect();
    assert_eq!(pools, ["first", "second", "second", "unranked", "general"]);
}

#[test]
fn namespace_and_service_selectors_restrict_a_pool() {
    let team_pool = with(pool("team-a", &["10.5.0.0/30"]), |s| {
        s.service_allocation = Some(ServiceAllocation {
            namespaces: Some(vec!["team-a".into()]),
            namespace_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("team".into(), "a".into())])),
                ..Default::default()
            }]),
            ..Default::default()
        })
    });
    let web_pool = with(pool("web", &["10.6.0.0/30"]), |s| {
        s.service_allocation = Some(ServiceAllocation {
            service_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("tier".into(), "web".into())])),
                ..Default::default()
            }]),
            ..Default::default()
        })
    });
    let mut a = fresh(&[pool("general", &["10.0.0.0/24"]), team_pool, web_pool]);

    let in_ns = ServiceRequest::simple(ObjectKey::new("team-a", "x"));
    assert_eq!(a.assign(&in_ns).expect("room").pool, "team-a");
    let mut labelled_ns = ServiceRequest::simple(ObjectKey::new("shop", "y"));
    labelled_ns.namespace_labels = BTreeMap::from([("team".into(), "a".into())]);
    assert_eq!(a.assign(&labelled_ns).expect("room").pool, "team-a");
    let mut web = svc("front");
    web.labels = BTreeMap::from([("tier".into(), "web".into())]);
    assert_eq!(a.assign(&web).expect("room").pool, "web");
    assert_eq!(a.assign(&svc("other")).expect("room").pool, "general");

    let outsider = requesting("outsider", &["10.5.0.3"]);
    assert_eq!(
        a.assign(&outsider),
        Err(AllocError::PoolNotAllowed {
            pool: "team-a".into()
        })
    );
}

fn dual(name: &str, policy: FamilyPolicy, primary: Family) -> ServiceRequest {
    let mut r = svc(name);
    r.families = Families { primary, policy };
    r
}

#[test]
fn dual_stack_follows_the_ip_family_policy() {
    let mut a = fresh(&[
        pool("v4only", &["10.0.0.0/30"]),
        pool("both", &["10.1.0.0/30", "fd00::/126"]),
    ]);
    let both = a
        .assign(&dual("require", FamilyPolicy::RequireDualStack, Family::V4))
        .expect("pool both");
    assert_eq!(
        (both.pool.as_str(), both.ips.clone()),
        ("both", vec![ip("10.1.0.0"), ip("fd00::")])
    );
    let v6first = a
        .assign(&dual("v6first", FamilyPolicy::PreferDualStack, Family::V6))
        .expect("pool both");
    assert_eq!(
        v6first.ips,
        vec![ip("fd00::1"), ip("10.1.0.1")],
        "primary family first"
    );
    let single6 = a
        .assign(&dual("single6", FamilyPolicy::SingleStack, Family::V6))
        .expect("v6");
    assert_eq!(single6.ips, vec![ip("fd00::2")]);
    // Fill v6; PreferDualStack then settles for IPv4 only, RequireDualStack stays pending.
    a.assign(&dual("v6-last", FamilyPolicy::SingleStack, Family::V6))
        .expect("v6");
    let prefer = a
        .assign(&dual("prefer", FamilyPolicy::PreferDualStack, Family::V4))
        .expect("v4 only");
    assert_eq!(
        (prefer.pool.as_str(), prefer.ips.clone()),
        ("both", vec![ip("10.1.0.2")])
    );
    assert!(matches!(
        a.assign(&dual(
            "require2",
            FamilyPolicy::RequireDualStack,
            Family::V4
        )),
        Err(AllocError::NoAvailableIps { .. })
    ));
}

#[test]
fn prefer_dual_stack_gains_the_missing_family_from_its_pool() {
    let mut a = fresh(&[pool("both", &["10.1.0.0/32", "fd00::/127"])]);
    a.assign(&dual("v6hog", FamilyPolicy::SingleStack, Family::V6))
        .expect("v6");
    a.assign(&dual("v6hog2", FamilyPolicy::SingleStack, Family::V6))
        .expect("v6");
    let p = dual("prefer", FamilyPolicy::PreferDualStack, Family::V4);
    assert_eq!(a.assign(&p).expect("v4").ips, vec![ip("10.1.0.0")]);
    a.release(&key("v6hog"));
    assert_eq!(
        a.assign(&p).expect("gains v6").ips,
        vec![ip("10.1.0.0"), ip("fd00::")]
    );
}

#[test]
fn pool_status_counts_assigned_and_available_addresses() {
    let mut a = fresh(&[
        with(pool("p", &["10.0.0.0/24", "fd00::/64"]), |s| {
            s.avoid_buggy_i_ps = Some(true)
        }),
        pool("q", &["10.1.0.0/30"]),
    ]);
    a.assign(&shared("s1", "k", 80)).expect("free");
    a.assign(&shared("s2", "k", 81)).expect("shares with s1");
    a.assign(&dual("s3", FamilyPolicy::RequireDualStack, Family::V4))
        .expect("both");
    let st = a.pool_status();
    assert_eq!(st[0].name, "p");
    assert_eq!(
        (st[0].assigned_ipv4, st[0].available_ipv4),
        (2, 252),
        "two addresses, three Services; .0/.255 excluded"
    );
    assert_eq!(
        (st[0].assigned_ipv6, st[0].available_ipv6),
        (1, i64::MAX - 1)
    );
    assert_eq!((st[1].assigned_ipv4, st[1].available_ipv4), (0, 4));
    let json = serde_json::to_value(&st[1]).expect("serializable");
    assert_eq!(json["availableIPv4"], 4);
}

/// Scale check (run with `--ignored --nocapture`): 10 000 Services on a /16, a steady-state
/// pass, and a restart.
#[test]
#[ignore]
fn scale_ten_thousand_services() {
    let pools = [pool("big", &["10.0.0.0/16"])];
    let wanted: Vec<_> = (0..10_000).map(|i| Ok(svc(&format!("s{i:05}")))).collect();
    let mut a = fresh(&pools);
    let t = std::time::Instant::now();
    a.reconcile(&wanted);
    let first = t.elapsed();
    let t = std::time::Instant::now();
    let r = a.reconcile(&wanted);
    let steady = t.elapsed();
    assert!(!r.changed());
    let held = a.assignments();
    let t = std::time::Instant::now();
    let mut b = Allocator::new();
    b.set_pools(&pools);
    let existing: Vec<_> = wanted
        .iter()
        .filter_map(|w| w.as_ref().ok())
        .map(|s| (s.clone(), held[&s.key].ips.clone()))
        .collect();
    assert!(b.load_existing(&existing).is_empty());
    b.reconcile(&wanted);
    let restart = t.elapsed();
    assert_eq!(b.assignments(), held);
    println!(
        "10k services: first pass {first:?}, steady pass {steady:?}, restart (load + pass) {restart:?}"
    );
}
