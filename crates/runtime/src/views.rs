//! Rows for `gateway get ...`, computed from a snapshot, kubectl-style.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use portico_model::service::ServiceType;
use portico_model::{ClusterState, ObjectKey, Snapshot};
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
    /// `kubectl get services -o wide`'s SELECTOR.
    #[serde(default)]
    pub selector: String,
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

/// `kubectl get pods` columns (`-o wide`: IP and NODE too). Standalone only: there the Pods are
/// the manifests' own, and their readiness decides the endpoints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    /// Ready containers / containers, as kubectl shows them.
    pub ready: String,
    pub status: String,
    pub restarts: i32,
    pub ip: String,
    pub node: String,
    pub created: Option<String>,
}

/// One row per Pod of the state. READY counts the containers' statuses when the Pod has them,
/// else all or none of its containers by its `Ready` condition.
pub fn pods(state: &ClusterState) -> Vec<PodRow> {
    state
        .pods
        .iter()
        .map(|(key, pod)| {
            let status = pod.status.as_ref();
            let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
            let statuses = status.and_then(|s| s.container_statuses.as_deref());
            let pod_ready = status
                .and_then(|s| s.conditions.as_deref())
                .into_iter()
                .flatten()
                .any(|c: &core::PodCondition| c.type_ == "Ready" && c.status == "True");
            let (ready, restarts) = match statuses {
                Some(cs) if !cs.is_empty() => (
                    cs.iter().filter(|c| c.ready).count(),
                    cs.iter().map(|c| c.restart_count).sum(),
                ),
                _ => (if pod_ready { containers } else { 0 }, 0),
            };
            PodRow {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                ready: format!("{ready}/{containers}"),
                status: status
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".to_owned()),
                restarts,
                ip: status
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| "<none>".to_owned()),
                node: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".to_owned()),
                created: pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
            }
        })
        .collect()
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
                selector: match &s.selector {
                    Some(sel) => sel
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    None => "<none>".to_owned(),
                },
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
