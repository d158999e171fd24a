//! The Kubernetes API access of each Portico component, as one list.
//!
//! - The Helm chart renders its Roles and ClusterRoles from [`document`], which
//!   `lb-controller rbac` prints and `helm/portico/files/rbac.json` holds (a test keeps the file
//!   equal to this list, so the chart and the code cannot drift).
//! - Each component's kube source starts reflectors only for the kinds its roles let it list and
//!   watch ([`Component::watched`]): a kind a component may not read is not asked for.
//!
//! Reads are `list` and `watch` only (reflectors never `get`). Writes name the exact verb the
//! code sends: merge patches are `patch`, the Lease's optimistic-concurrency write is `update`
//! (a PUT). The Lease rules live in a namespaced Role in the release namespace, and all but
//! `create` (which RBAC cannot limit by name) are limited to the one Lease the chart names.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

/// A kind some component reflects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    EndpointSlice,
    Node,
    Namespace,
    Secret,
    Ingress,
    IngressClass,
    IPAddressPool,
    L2Advertisement,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::Namespace,
        Kind::Secret,
        Kind::Ingress,
        Kind::IngressClass,
        Kind::IPAddressPool,
        Kind::L2Advertisement,
    ];

    /// The API group (`""` is the core group).
    pub fn api_group(self) -> &'static str {
        match self {
            Kind::Service | Kind::Node | Kind::Namespace | Kind::Secret => "",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Ingress | Kind::IngressClass => "networking.k8s.io",
            Kind::IPAddressPool | Kind::L2Advertisement => "metallb.io",
        }
    }

    /// The resource name RBAC rules use.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Node => "nodes",
            Kind::Namespace => "namespaces",
            Kind::Secret => "secrets",
            Kind::Ingress => "ingresses",
            Kind::IngressClass => "ingressclasses",
            Kind::IPAddressPool => "ipaddresspools",
            Kind::L2Advertisement => "l2advertisements",
        }
    }
}

/// Where a role's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// A ClusterRole bound cluster-wide.
    Cluster,
    /// A Role (and RoleBinding) in the release namespace only.
    ReleaseNamespace,
}

/// One write a role makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Limited to the Lease the component elects on (the chart fills in its name).
    pub only_the_lease: bool,
    /// What the code does with it.
    pub why: &'static str,
}

/// A set of rules granted together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: &'static str,
    pub scope: Scope,
    /// Kinds listed and watched (cluster-wide).
    pub watches: &'static [Kind],
    pub writes: &'static [Write],
}

const fn write(
    api_group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    why: &'static str,
) -> Write {
    Write {
        api_group,
        resource,
        verbs,
        only_the_lease: false,
        why,
    }
}

/// The Ingress router and L2 announcer: routes, TLS certificates, endpoints, pools to announce.
pub const GATEWAY: Role = Role {
    name: "gateway",
    scope: Scope::Cluster,
    watches: &[
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::Secret,
        Kind::Ingress,
        Kind::IngressClass,
        Kind::IPAddressPool,
        Kind::L2Advertisement,
    ],
    writes: &[write(
        "networking.k8s.io",
        "ingresses/status",
        &["patch"],
        "status.loadBalancer of the Ingresses served",
    )],
};

/// LoadBalancer IP allocation (the lb-controller, or the gateway with `--allocate`).
pub const ALLOCATOR: Role = Role {
    name: "allocator",
    scope: Scope::Cluster,
    watches: &[Kind::Service, Kind::Namespace, Kind::IPAddressPool],
    writes: &[
        write(
            "",
            "services/status",
            &["patch"],
            "status.loadBalancer of the Services allocated",
        ),
        write(
            "",
            "services",
            &["patch"],
            "the metallb.io/ip-allocated-from-pool annotation",
        ),
        write(
            "metallb.io",
            "ipaddresspools/status",
            &["patch"],
            "the pools' assigned and available counts",
        ),
        write(
            "events.k8s.io",
            "events",
            &["create", "patch"],
            "allocation Events on Services (a repeat patches its series)",
        ),
    ],
};

/// The allocator's leader election, on one Lease in the release namespace.
pub const ALLOCATOR_LEASE: Role = Role {
    name: "allocator-lease",
    scope: Scope::ReleaseNamespace,
    watches: &[],
    writes: &[
        Write {
            api_group: "coordination.k8s.io",
            resource: "leases",
            verbs: &["get", "update"],
            only_the_lease: true,
            why: "read and renew the election Lease",
        },
        write(
            "coordination.k8s.io",
            "leases",
            &["create"],
            "create the election Lease (RBAC cannot limit create by name)",
        ),
    ],
};

/// The node agent: Services, their endpoints, and this node's addresses.
pub const PROXY_AGENT: Role = Role {
    name: "proxy-agent",
    scope: Scope::Cluster,
    watches: &[Kind::Service, Kind::EndpointSlice, Kind::Node],
    writes: &[],
};

/// Every role, in the order the chart renders them.
pub const ROLES: [Role; 4] = [GATEWAY, ALLOCATOR, ALLOCATOR_LEASE, PROXY_AGENT];

/// A Portico process running against the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// `gateway`; `allocate` is `--allocate`.
    Gateway {
        allocate: bool,
    },
    LbController,
    ProxyAgent,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Gateway { allocate: false },
        Component::Gateway { allocate: true },
        Component::LbController,
        Component::ProxyAgent,
    ];

    /// The name the chart's values and service accounts use.
    pub fn name(self) -> &'static str {
        match self {
            Component::Gateway { allocate: false } => "gateway",
            Component::Gateway { allocate: true } => "gateway-allocate",
            Component::LbController => "lb-controller",
            Component::ProxyAgent => "proxy-agent",
        }
    }

    pub fn roles(self) -> &'static [Role] {
        match self {
            Component::Gateway { allocate: false } => &[GATEWAY],
            Component::Gateway { allocate: true } => &[GATEWAY, ALLOCATOR, ALLOCATOR_LEASE],
            Component::LbController => &[ALLOCATOR, ALLOCATOR_LEASE],
            Component::ProxyAgent => &[PROXY_AGENT],
        }
    }

    /// The kinds this component reflects: exactly those its roles let it list and watch.
    pub fn watched(self) -> BTreeSet<Kind> {
        self.roles()
            .iter()
            .flat_map(|r| r.watches.iter().copied())
            .collect()
    }
}

impl Role {
    /// The role's rules as Kubernetes writes them, reads first (one rule per API group), then
    /// writes. A rule limited to the Lease carries `"onlyTheLease": true` for the chart to
    /// replace with `resourceNames`.
    pub fn rules(&self) -> Vec<Value> {
        let groups: BTreeSet<&str> = self.watches.iter().map(|k| k.api_group()).collect();
        let mut rules: Vec<Value> = groups
            .into_iter()
            .map(|g| {
                let resources: BTreeSet<&str> = self
                    .watches
                    .iter()
                    .filter(|k| k.api_group() == g)
                    .map(|k| k.resource())
                    .collect();
                json!({ "apiGroups": [g], "resources": resources, "verbs": ["list", "watch"] })
            })
            .collect();
        for w in self.writes {
            let mut rule = json!({
                "apiGroups": [w.api_group],
                "resources": [w.resource],
                "verbs": w.verbs,
                "why": w.why,
            });
            if w.only_the_lease
                && let Some(o) = rule.as_object_mut()
            {
                o.insert("onlyTheLease".into(), Value::Bool(true));
            }
            rules.push(rule);
        }
        rules
    }
}

/// Every role and which component is bound to which roles, as the chart reads it.
pub fn document() -> Value {
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|r| json!({ "name": r.name, "scope": r.scope, "rules": r.rules() }))
        .collect();
    let components: serde_json::Map<String, Value> = Component::ALL
        .iter()
        .map(|c| {
            let names: Vec<&str> = c.roles().iter().map(|r| r.name).collect();
            (c.name().to_owned(), json!(names))
        })
        .collect();
    json!({ "roles": roles, "components": components })
}

/// [`document`] as the chart's `files/rbac.json` holds it (pretty, with a final newline).
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../helm/portico/files/rbac.json"
    );

    /// The chart renders its RBAC from this file: it must be what the code says.
    /// `PORTICO_BLESS=1` rewrites it.
    #[test]
    fn the_chart_file_is_the_code_list() {
        let want = document_text();
        if std::env::var("PORTICO_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(CHART_FILE, &want).expect("write the chart's rbac.json");
        }
        let have = std::fs::read_to_string(CHART_FILE).unwrap_or_default();
        assert!(
            have == want,
            "{CHART_FILE} differs from portico_cluster::rbac; run \
             `PORTICO_BLESS=1 cargo test -p portico-cluster --lib rbac` (or `lb-controller rbac`)\n\
             have:\n{have}\nwant:\n{want}"
        );
    }

    #[test]
    fn least_privilege_holds() {
        for c in Component::ALL {
            let secrets = c.watched().contains(&Kind::Secret);
            assert_eq!(
                secrets,
                matches!(c, Component::Gateway { .. }),
                "{}",
                c.name()
            );
        }
        for r in ROLES {
            for w in r.writes {
                if w.api_group == "coordination.k8s.io" {
                    assert_eq!(r.scope, Scope::ReleaseNamespace, "{}: Lease writes", r.name);
                }
                if w.resource == "services/status" {
                    assert_eq!(r.name, "allocator");
                }
                assert!(
                    !w.verbs
                        .iter()
                        .any(|v| matches!(*v, "*" | "delete" | "deletecollection")),
                    "{}: {w:?}",
                    r.name
                );
            }
        }
        assert!(!Component::ProxyAgent.watched().contains(&Kind::Ingress));
        assert_eq!(
            Component::LbController.watched(),
            BTreeSet::from([Kind::Service, Kind::Namespace, Kind::IPAddressPool])
        );
    }
}
