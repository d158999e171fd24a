//! What one LoadBalancer Service asks of the allocator, read from its spec and MetalLB's
//! annotations (`metallb.io/…`, or the legacy `metallb.universe.tf/…` prefix).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use portico_model::service::TrafficPolicy;
use portico_model::{ObjectKey, Protocol, Service, ServiceType};

use crate::family::Family;

pub const ANNOTATION_ADDRESS_POOL: &str = "metallb.io/address-pool";
pub const ANNOTATION_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
pub const ANNOTATION_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
pub const ANNOTATION_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
const LEGACY_PREFIX: &str = "metallb.universe.tf/";

/// The value of a MetalLB annotation, the current prefix first, then the legacy one.
/// Returns the annotation name that was found, for error messages.
pub fn annotation<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &'static str,
) -> Option<(String, &'a str)> {
    if let Some(v) = annotations.get(name) {
        return Some((name.to_owned(), v.as_str()));
    }
    let suffix = name.strip_prefix("metallb.io/")?;
    let legacy = format!("{LEGACY_PREFIX}{suffix}");
    annotations.get(&legacy).map(|v| (legacy, v.as_str()))
}

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// Which families a Service wants, the primary one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families {
    pub primary: Family,
    pub policy: FamilyPolicy,
}

impl Families {
    pub const V4: Families = Families {
        primary: Family::V4,
        policy: FamilyPolicy::SingleStack,
    };
    pub const V6: Families = Families {
        primary: Family::V6,
        policy: FamilyPolicy::SingleStack,
    };

    /// Whether `ips` (already known to be at most one per family) satisfy these families.
    pub fn satisfied_by(&self, ips: &[IpAddr]) -> bool {
        let has = |f: Family| ips.iter().any(|ip| Family::of(ip) == f);
        match self.policy {
            FamilyPolicy::SingleStack => ips.len() == 1 && has(self.primary),
            FamilyPolicy::RequireDualStack => ips.len() == 2 && has(Family::V4) && has(Family::V6),
            FamilyPolicy::PreferDualStack => !ips.is_empty(),
        }
    }
}

/// Who may share an address with whom: MetalLB's rule. Two Services share an IP only when both
/// carry the same non-empty `allow-shared-ip` key, their ports (protocol + port) are disjoint, and
/// either both have `externalTrafficPolicy: Cluster` or both are `Local` with identical selectors
/// (traffic for a Local Service may only reach nodes with its own endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backends {
    Cluster,
    Local(BTreeMap<String, String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharing {
    /// `None`: the Service does not share its address.
    pub key: Option<String>,
    pub backends: Backends,
}

impl Sharing {
    pub fn exclusive() -> Self {
        Self {
            key: None,
            backends: Backends::Cluster,
        }
    }

    /// Why two Services may not share an address, if they may not.
    pub fn refuses(&self, other: &Sharing) -> Option<&'static str> {
        match (&self.key, &other.key) {
            (None, _) | (_, None) => {
                Some("one of them does not allow sharing (metallb.io/allow-shared-ip)")
            }
            (Some(a), Some(b)) if a != b => Some("their allow-shared-ip keys differ"),
            _ if self.backends != other.backends => Some(
                "their externalTrafficPolicy is not Cluster for both, nor Local with identical selectors",
            ),
            _ => None,
        }
    }
}

/// One port a Service exposes, as far as sharing is concerned.
pub type PortKey = (Protocol, u16);

/// Everything the allocator needs to know about one eligible Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRequest {
    pub key: ObjectKey,
    pub labels: BTreeMap<String, String>,
    /// Labels of the Service's namespace, for pools' `namespaceSelectors`.
    pub namespace_labels: BTreeMap<String, String>,
    pub ports: Vec<PortKey>,
    pub sharing: Sharing,
    /// `spec.loadBalancerIP` or `metallb.io/loadBalancerIPs`: these addresses or none.
    pub requested_ips: Vec<IpAddr>,
    /// Where `requested_ips` came from, for error messages.
    pub requested_field: String,
    /// `metallb.io/address-pool`.
    pub pool: Option<String>,
    pub families: Families,
}

/// A Service whose wishes cannot be read. It keeps what it holds and is reported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadRequest {
    pub key: ObjectKey,
    pub field: String,
    pub message: String,
}

/// Whether this allocator handles the Service: type LoadBalancer, and `spec.loadBalancerClass`
/// equal to `lb_class` (both unset by default), exactly as MetalLB's `--lb-class` filter.
pub fn eligible(svc: &Service, lb_class: Option<&str>) -> bool {
    svc.type_ == ServiceType::LoadBalancer && svc.load_balancer_class.as_deref() == lb_class
}

/// [`eligible`] on the raw object, for Services that do not pass validation.
pub fn eligible_raw(svc: &core::Service, lb_class: Option<&str>) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_deref()) == lb_class
}

impl ServiceRequest {
    /// What a Service needs in order to keep the addresses it holds, read leniently from the raw
    /// object (key, ports, sharing) so that even a Service whose spec or annotations cannot be
    /// read has its addresses reserved when existing assignments are loaded.
    pub fn holding(key: &ObjectKey, svc: &core::Service) -> Self {
        let spec = svc.spec.clone().unwrap_or_default();
        let annotations = svc.metadata.annotations.clone().unwrap_or_default();
        let mut ports: Vec<PortKey> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    Protocol::parse(p.protocol.as_deref())?,
                    u16::try_from(p.port).ok()?,
                ))
            })
            .collect();
        ports.sort();
        ports.dedup();
        let sharing_key = annotation(&annotations, ANNOTATION_ALLOW_SHARED_IP)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty());
        let backends = match spec.external_traffic_policy.as_deref() {
            Some("Local") => Backends::Local(spec.selector.clone().unwrap_or_default()),
            _ => Backends::Cluster,
        };
        Self {
            ports,
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            sharing: Sharing {
                key: sharing_key,
                backends,
            },
            ..Self::simple(key.clone())
        }
    }

    /// A Service that exposes `ports` over TCP, Cluster policy, no annotations: for tests and
    /// simple callers.
    pub fn simple(key: ObjectKey) -> Self {
        Self {
            key,
            labels: BTreeMap::new(),
            namespace_labels: BTreeMap::new(),
            ports: vec![(Protocol::TCP, 80)],
            sharing: Sharing::exclusive(),
            requested_ips: Vec::new(),
            requested_field: "spec.loadBalancerIP".into(),
            pool: None,
            families: Families::V4,
        }
    }

    /// Read a validated Service. `namespace_labels` are its namespace's labels (empty if unknown).
    pub fn from_service(
        svc: &Service,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Result<Self, BadRequest> {
        let bad = |field: String, message: String| BadRequest {
            key: svc.key.clone(),
            field,
            message,
        };
        let (requested_ips, ips_field) = requested_ips(svc, &bad)?;
        let families = families(svc, &requested_ips, &ips_field, &bad)?;
        let ann = &svc.annotations;
        let pool = annotation(ann, ANNOTATION_ADDRESS_POOL)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let key_value = annotation(ann, ANNOTATION_ALLOW_SHARED_IP)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty());
        let backends = match svc.external_traffic_policy {
            TrafficPolicy::Cluster => Backends::Cluster,
            TrafficPolicy::Local => Backends::Local(svc.selector.clone().unwrap_or_default()),
        };
        let mut ports: Vec<PortKey> = svc.ports.iter().map(|p| (p.protocol, p.port)).collect();
        ports.sort();
        ports.dedup();
        Ok(Self {
            key: svc.key.clone(),
            labels: svc.labels.clone(),
            namespace_labels: namespace_labels.clone(),
            ports,
            sharing: Sharing {
                key: key_value,
                backends,
            },
            requested_ips,
            requested_field: ips_field,
            pool,
            families,
        })
    }
}

/// Builds the [`BadRequest`] of one Service from a field and a message.
type Bad<'a> = dyn Fn(String, String) -> BadRequest + 'a;

/// The addresses a Service asks for (`metallb.io/loadBalancerIPs`, else `spec.loadBalancerIP`)
/// and the field they came from: at most one per family.
fn requested_ips(svc: &Service, bad: &Bad<'_>) -> Result<(Vec<IpAddr>, String), BadRequest> {
    let mut requested_ips = Vec::new();
    let mut ips_field = "spec.loadBalancerIP".to_owned();
    if let Some((name, value)) = annotation(&svc.annotations, ANNOTATION_LOAD_BALANCER_IPS)
        .filter(|(_, v)| !v.trim().is_empty())
    {
        ips_field = format!("metadata.annotations[{name}]");
        if svc.load_balancer_ip.is_some() {
            return Err(bad(
                ips_field,
                "may not be set together with spec.loadBalancerIP".into(),
            ));
        }
        for part in value.split(',') {
            let ip = part.trim().parse::<IpAddr>().map_err(|_| {
                bad(
                    ips_field.clone(),
                    format!("{:?} is not an IP address", part.trim()),
                )
            })?;
            requested_ips.push(ip);
        }
    } else if let Some(ip) = svc.load_balancer_ip {
        requested_ips.push(ip);
    }
    if requested_ips.len() > 2
        || (requested_ips.len() == 2
            && Family::of(&requested_ips[0]) == Family::of(&requested_ips[1]))
    {
        return Err(bad(
            ips_field,
            "at most one IPv4 and one IPv6 address may be requested".into(),
        ));
    }
    Ok((requested_ips, ips_field))
}

/// The Service's IP families (`spec.ipFamilyPolicy`, `spec.ipFamilies`), checked against the
/// addresses it requests.
fn families(
    svc: &Service,
    requested_ips: &[IpAddr],
    ips_field: &str,
    bad: &Bad<'_>,
) -> Result<Families, BadRequest> {
    let policy = match svc.ip_family_policy.as_deref() {
        None | Some("SingleStack") => FamilyPolicy::SingleStack,
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        Some(other) => {
            return Err(bad(
                "spec.ipFamilyPolicy".into(),
                format!(
                    "unsupported value {other:?}: expected SingleStack, PreferDualStack or RequireDualStack"
                ),
            ));
        }
    };
    let mut families = Vec::new();
    for (i, f) in svc.ip_families.iter().enumerate() {
        families.push(match f.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            other => {
                return Err(bad(
                    format!("spec.ipFamilies[{i}]"),
                    format!("unsupported value {other:?}: expected IPv4 or IPv6"),
                ));
            }
        });
    }
    // The API server always fills ipFamilies; standalone manifests often leave it out, and
    // then the requested addresses (or the ClusterIP) decide.
    let primary = families
        .first()
        .copied()
        .or_else(|| requested_ips.first().map(Family::of))
        .or_else(|| svc.cluster_ips.first().map(Family::of))
        .unwrap_or(Family::V4);
    // A cluster that gave the Service one family only (ipFamilies has one entry) makes
    // PreferDualStack single-stack, as MetalLB follows the Service's ClusterIPs.
    let policy = if families.len() == 1 && policy == FamilyPolicy::PreferDualStack {
        FamilyPolicy::SingleStack
    } else {
        policy
    };
    if !requested_ips.is_empty() {
        let fits = match policy {
            FamilyPolicy::SingleStack => {
                requested_ips.len() == 1 && Family::of(&requested_ips[0]) == primary
            }
            FamilyPolicy::RequireDualStack => requested_ips.len() == 2,
            FamilyPolicy::PreferDualStack => true,
        };
        if !fits {
            return Err(bad(
                ips_field.to_owned(),
                format!(
                    "the requested addresses do not match the Service's IP families ({primary}, {policy:?})"
                ),
            ));
        }
    }
    Ok(Families { primary, policy })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(extra: serde_json::Value) -> Result<ServiceRequest, BadRequest> {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "web"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
        });
        for (k, val) in extra.as_object().cloned().unwrap_or_default() {
            for (k2, v2) in val.as_object().cloned().unwrap_or_default() {
                v[&k][k2] = v2;
            }
        }
        let raw: core::Service = serde_json::from_value(v).expect("valid Service");
        let key = ObjectKey::new("shop", "web");
        let svc = portico_model::service::from_k8s(&key, &raw).expect("valid");
        ServiceRequest::from_service(&svc, &BTreeMap::new())
    }

    #[test]
    fn reads_metallb_annotations_with_either_prefix() {
        let r = read(json!({"metadata": {"annotations": {
            "metallb.universe.tf/loadBalancerIPs": "10.0.0.5, fd00::5",
            "metallb.io/address-pool": "blue",
            "metallb.universe.tf/allow-shared-ip": "k",
        }}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}))
        .expect("readable");
        assert_eq!(
            r.requested_ips,
            [
                "10.0.0.5".parse::<IpAddr>().expect("ip"),
                "fd00::5".parse().expect("ip")
            ]
        );
        assert_eq!(
            r.requested_field,
            "metadata.annotations[metallb.universe.tf/loadBalancerIPs]"
        );
        assert_eq!(r.pool.as_deref(), Some("blue"));
        assert_eq!(
            r.sharing,
            Sharing {
                key: Some("k".into()),
                backends: Backends::Cluster
            }
        );
        assert_eq!(r.ports, [(Protocol::TCP, 80), (Protocol::UDP, 53)]);
        assert_eq!(r.labels.get("tier").map(String::as_str), Some("web"));
    }

    #[test]
    fn local_policy_shares_by_selector() {
        let r = read(json!({"spec": {"externalTrafficPolicy": "Local"}})).expect("readable");
        assert_eq!(
            r.sharing.backends,
            Backends::Local(BTreeMap::from([("app".to_owned(), "web".to_owned())]))
        );
    }

    #[test]
    fn unreadable_requests_name_their_field() {
        let both = read(
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "10.0.0.5"}},
                               "spec": {"loadBalancerIP": "10.0.0.6"}}),
        );
        assert_eq!(
            both.expect_err("both set").field,
            "metadata.annotations[metallb.io/loadBalancerIPs]"
        );
        let two_v4 = read(
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "10.0.0.5,10.0.0.6"}}}),
        );
        assert!(
            two_v4
                .expect_err("same family twice")
                .message
                .contains("at most one IPv4")
        );
        let wrong = read(json!({"spec": {"loadBalancerIP": "fd00::1", "ipFamilies": ["IPv4"]}}));
        assert_eq!(
            wrong.expect_err("family mismatch").field,
            "spec.loadBalancerIP"
        );
    }

    #[test]
    fn families_follow_the_policy_and_what_the_cluster_gave() {
        let fam = |extra| read(extra).expect("readable").families;
        assert_eq!(fam(json!({})), Families::V4);
        assert_eq!(
            fam(json!({"spec": {"loadBalancerIP": "fd00::1"}})),
            Families::V6
        );
        assert_eq!(fam(json!({"spec": {"ipFamilies": ["IPv6"]}})), Families::V6);
        let prefer =
            json!({"spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6", "IPv4"]}});
        assert_eq!(
            fam(prefer),
            Families {
                primary: Family::V6,
                policy: FamilyPolicy::PreferDualStack
            }
        );
        let single_cluster =
            json!({"spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"]}});
        assert_eq!(
            fam(single_cluster),
            Families::V4,
            "a single-stack cluster makes PreferDualStack single"
        );
    }
}
