//! Rows for `gateway get ...`, computed from a snapshot, kubectl-style.

use std::collections::BTreeMap;

use portico_model::service::ServiceType;
use portico_model::{ObjectKey, Snapshot};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ports: String,
    pub created: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsRow {
    pub namespace: String,
    pub name: String,
    pub endpoints: String,
    /// Every endpoint with its state, for scripts.
    pub detail: Vec<portico_model::Backend>,
    pub created: Option<String>,
}

/// `kubectl get services` columns. `first_seen` gives an age to objects that carry no
/// creationTimestamp (plain manifests).
pub fn services(snap: &Snapshot, first_seen: &BTreeMap<ObjectKey, String>) -> Vec<ServiceRow> {
    snap.services
        .values()
        .map(|s| {
            let cluster_ip = if s.headless {
                "None".to_owned()
            } else if s.cluster_ips.is_empty() {
                "<none>".to_owned()
            } else {
                join(s.cluster_ips.iter())
            };
            let external_ip = match s.type_ {
                ServiceType::ExternalName => s.external_name.clone().unwrap_or_default(),
                ServiceType::LoadBalancer
                    if s.load_balancer_ingress.is_empty() && s.external_ips.is_empty() =>
                {
                    "<pending>".to_owned()
                }
                _ if s.load_balancer_ingress.is_empty() && s.external_ips.is_empty() => {
                    "<none>".to_owned()
                }
                _ => join(s.load_balancer_ingress.iter().chain(&s.external_ips)),
            };
            let ports = if s.ports.is_empty() {
                "<none>".to_owned()
            } else {
                s.ports
                    .iter()
                    .map(|p| match p.node_port {
                        Some(np) => format!("{}:{}/{}", p.port, np, p.protocol),
                        None => format!("{}/{}", p.port, p.protocol),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            ServiceRow {
                namespace: s.key.namespace.clone(),
                name: s.key.name.clone(),
                type_: s.type_.to_string(),
                cluster_ip,
                external_ip,
                ports,
                created: s
                    .creation_timestamp
                    .map(|t| t.to_string())
                    .or_else(|| first_seen.get(&s.key).cloned()),
            }
        })
        .collect()
}

/// `kubectl get endpoints` columns: ready addresses.
pub fn endpoints(snap: &Snapshot, first_seen: &BTreeMap<ObjectKey, String>) -> Vec<EndpointsRow> {
    let mut rows = Vec::new();
    for (key, svc) in &snap.services {
        if svc.external_name.is_some() {
            continue;
        }
        let eps = snap.endpoints.get(key);
        let mut ready: Vec<String> = Vec::new();
        let mut detail = Vec::new();
        if let Some(eps) = eps {
            for pb in eps.ports.values() {
                for b in &pb.all {
                    if b.ready {
                        ready.push(b.addr.to_string());
                    }
                    detail.push(b.clone());
                }
            }
        }
        ready.sort();
        ready.dedup();
        rows.push(EndpointsRow {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            endpoints: if ready.is_empty() {
                "<none>".to_owned()
            } else {
                ready.join(",")
            },
            detail,
            created: svc
                .creation_timestamp
                .map(|t| t.to_string())
                .or_else(|| first_seen.get(key).cloned()),
        });
    }
    rows
}

fn join<T: ToString>(it: impl Iterator<Item = T>) -> String {
    it.map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// kubectl's AGE: `45s`, `12m`, `3h`, `5d`.
pub fn age(created: Option<&str>, now: jiff::Timestamp) -> String {
    let Some(ts) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".to_owned();
    };
    let secs = now.as_second().saturating_sub(ts.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().expect("ts");
        assert_eq!(age(Some("2026-01-01T23:59:50Z"), now), "10s");
        assert_eq!(age(Some("2026-01-01T23:00:00Z"), now), "60m");
        assert_eq!(age(Some("2026-01-01T00:00:00Z"), now), "24h");
        assert_eq!(age(Some("2025-12-01T00:00:00Z"), now), "32d");
        assert_eq!(age(None, now), "<unknown>");
    }
}
