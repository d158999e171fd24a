//! Views of the served Ingresses, for `gateway get ingresses` and the admin API, and the status
//! Portico publishes on them.

use serde::Serialize;

use portico_model::{ObjectKey, Snapshot};

use portico_model::routes::ClassConfig as RouterConfig;
use portico_model::routes::class::{ClassSelector, requested_class};

/// One row of `gateway get ingresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngressRow {
    pub namespace: String,
    pub name: String,
    pub class: Option<String>,
    pub hosts: Vec<String>,
    /// The address published in `status.loadBalancer.ingress` (empty when none is configured).
    pub address: Option<String>,
    /// `80` or `80, 443` when the Ingress has TLS.
    pub ports: String,
}

/// The Ingresses Portico serves, sorted by namespace and name.
pub fn ingress_view(snap: &Snapshot, cfg: &RouterConfig, address: Option<&str>) -> Vec<IngressRow> {
    let selector = ClassSelector::new(cfg, &snap.ingress_classes);
    snap.ingresses
        .iter()
        .filter(|(_, ing)| selector.serves(ing))
        .map(|(key, ing): (&ObjectKey, _)| {
            let spec = ing.spec.as_ref();
            let mut hosts: Vec<String> = spec
                .and_then(|s| s.rules.as_ref())
                .map(|r| {
                    r.iter()
                        .map(|r| r.host.clone().unwrap_or_else(|| "*".into()))
                        .collect()
                })
                .unwrap_or_default();
            hosts.dedup();
            let tls = spec
                .and_then(|s| s.tls.as_ref())
                .is_some_and(|t| !t.is_empty());
            IngressRow {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                class: requested_class(ing).map(str::to_owned),
                hosts,
                address: address.map(str::to_owned),
                ports: if tls { "80, 443".into() } else { "80".into() },
            }
        })
        .collect()
}

/// The `status.loadBalancer` Portico writes on every Ingress it serves.
pub fn load_balancer_status(
    address: &str,
) -> k8s_openapi::api::networking::v1::IngressLoadBalancerStatus {
    use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;
    let entry = if address.parse::<std::net::IpAddr>().is_ok() {
        IngressLoadBalancerIngress {
            ip: Some(address.to_owned()),
            ..Default::default()
        }
    } else {
        IngressLoadBalancerIngress {
            hostname: Some(address.to_owned()),
            ..Default::default()
        }
    };
    k8s_openapi::api::networking::v1::IngressLoadBalancerStatus {
        ingress: Some(vec![entry]),
    }
}

/// The address to publish: `--publish-address`, else the EXTERNAL-IP of `--publish-service`.
pub fn publish_address(
    snap: &Snapshot,
    address: Option<&str>,
    service: Option<&ObjectKey>,
) -> Option<String> {
    if let Some(a) = address {
        return Some(a.to_owned());
    }
    let svc = snap.service(service?)?;
    svc.load_balancer_ingress.first().map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use portico_model::control_plane::{Allocations, ControlPlaneConfig, complete};
    use portico_model::manifest::parse_file;
    use portico_model::{ClusterState, translate};

    use super::*;

    #[test]
    fn rows_list_served_ingresses_with_hosts_address_and_ports() {
        let yaml = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  ingressClassName: portico
  tls:
  - hosts: [a.example.com]
    secretName: a-tls
  rules:
  - host: a.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: other
spec:
  ingressClassName: nginx
  rules:
  - host: b.example.com
";
        let mut state = ClusterState::default();
        for (origin, parsed) in parse_file("t.yaml", yaml) {
            state.insert(parsed.expect("valid"), origin);
        }
        complete(
            &mut state,
            &ControlPlaneConfig::default(),
            &mut Allocations::default(),
        );
        let snap = translate(&state, 1);
        let rows = ingress_view(&snap, &RouterConfig::default(), Some("192.0.2.10"));
        assert_eq!(
            rows,
            [IngressRow {
                namespace: "default".into(),
                name: "web".into(),
                class: Some("portico".into()),
                hosts: vec!["a.example.com".into()],
                address: Some("192.0.2.10".into()),
                ports: "80, 443".into(),
            }]
        );
        let status = load_balancer_status("192.0.2.10");
        assert_eq!(
            status.ingress.expect("one")[0].ip.as_deref(),
            Some("192.0.2.10")
        );
    }
}
