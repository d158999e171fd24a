//! The resource types the fake API server knows, and how request paths map onto them.

/// One served resource: `/{api|apis/group}/{version}/[namespaces/{ns}/]{plural}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// Empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether `.status` is a subresource: written only through `.../{name}/status`.
    pub status_subresource: bool,
}

impl ResourceType {
    pub fn new(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            kind: kind.to_owned(),
            namespaced,
            status_subresource: status,
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `api_version` and `kind_or_plural` name this resource.
    pub fn is(&self, api_version: &str, kind_or_plural: &str) -> bool {
        self.api_version() == api_version
            && (self.kind == kind_or_plural || self.plural == kind_or_plural)
    }
}

/// The built-in kinds Portico and its tests touch.
pub fn builtin() -> Vec<ResourceType> {
    let r = ResourceType::new;
    vec![
        r("", "v1", "namespaces", "Namespace", false, true),
        r("", "v1", "nodes", "Node", false, true),
        r("", "v1", "services", "Service", true, true),
        r("", "v1", "endpoints", "Endpoints", true, false),
        r("", "v1", "pods", "Pod", true, true),
        r("", "v1", "secrets", "Secret", true, false),
        r("", "v1", "configmaps", "ConfigMap", true, false),
        r("", "v1", "serviceaccounts", "ServiceAccount", true, false),
        r("", "v1", "events", "Event", true, false),
        r(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
        ),
        r(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            true,
            true,
        ),
        r(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "IngressClass",
            false,
            false,
        ),
        r("coordination.k8s.io", "v1", "leases", "Lease", true, false),
        r("events.k8s.io", "v1", "events", "Event", true, false),
    ]
}

/// MetalLB's custom resources (installed by default; see `Builder::without_metallb_crds`).
pub fn metallb_crds() -> Vec<ResourceType> {
    vec![
        ResourceType::new(
            "metallb.io",
            "v1beta1",
            "ipaddresspools",
            "IPAddressPool",
            true,
            true,
        ),
        ResourceType::new(
            "metallb.io",
            "v1beta1",
            "l2advertisements",
            "L2Advertisement",
            true,
            false,
        ),
    ]
}

/// A request path taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status` for `.../{name}/status`.
    pub subresource: Option<String>,
}

/// Parse `/api/v1/...` or `/apis/{group}/{version}/...`. `None` for anything else.
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        // `namespaces/{ns}/{plural}...`, but `namespaces/{name}` and `namespaces/{name}/status`
        // are the Namespace object itself.
        ["namespaces", ns, plural, more @ ..]
            if !(more.is_empty() && (*plural == "status" || *plural == "finalize")) =>
        {
            (Some((*ns).to_owned()), {
                let mut v = vec![*plural];
                v.extend_from_slice(more);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some((*n).to_owned()), None),
        [p, n, s] => (*p, Some((*n).to_owned()), Some((*s).to_owned())),
        _ => return None,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return None;
    }
    Some(Target {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: plural.to_owned(),
        namespace,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        g: &str,
        p: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<Target> {
        Some(Target {
            group: g.into(),
            version: if g == "metallb.io" {
                "v1beta1".into()
            } else {
                "v1".into()
            },
            plural: p.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn paths_name_their_resource() {
        assert_eq!(
            parse_path("/api/v1/services"),
            t("", "services", None, None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/services"),
            t("", "services", Some("a"), None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/services/web/status"),
            t("", "services", Some("a"), Some("web"), Some("status"))
        );
        assert_eq!(
            parse_path("/api/v1/namespaces"),
            t("", "namespaces", None, None, None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a"),
            t("", "namespaces", None, Some("a"), None)
        );
        assert_eq!(
            parse_path("/api/v1/namespaces/a/status"),
            t("", "namespaces", None, Some("a"), Some("status"))
        );
        assert_eq!(
            parse_path("/api/v1/nodes/n1"),
            t("", "nodes", None, Some("n1"), None)
        );
        assert_eq!(
            parse_path("/apis/metallb.io/v1beta1/namespaces/m/ipaddresspools/p/status"),
            t(
                "metallb.io",
                "ipaddresspools",
                Some("m"),
                Some("p"),
                Some("status")
            )
        );
        assert_eq!(parse_path("/healthz"), None);
        assert_eq!(
            parse_path("/api/v1/namespaces/a/services/web/status/extra"),
            None
        );
    }
}
