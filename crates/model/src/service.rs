//! The domain view of a Service: validated, typed, ready for the data planes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::invalid::Invalid;
use crate::key::ObjectKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    TCP,
    UDP,
    SCTP,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::TCP),
            "UDP" => Some(Protocol::UDP),
            "SCTP" => Some(Protocol::SCTP),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Empty for a single unnamed port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: TargetPort,
    pub node_port: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// A validated Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub key: ObjectKey,
    #[serde(rename = "type")]
    pub type_: ServiceType,
    /// Empty for headless and ExternalName Services (and in kube mode before the API assigned one).
    pub cluster_ips: Vec<IpAddr>,
    pub headless: bool,
    pub external_name: Option<String>,
    pub ports: Vec<ServicePort>,
    /// `None` for a selector-less Service (endpoints are managed by hand).
    pub selector: Option<BTreeMap<String, String>>,
    /// `Some(timeout seconds)` when `sessionAffinity: ClientIP`.
    pub session_affinity_timeout: Option<u32>,
    pub external_traffic_policy: TrafficPolicy,
    pub internal_traffic_policy: TrafficPolicy,
    pub load_balancer_ip: Option<IpAddr>,
    pub load_balancer_class: Option<String>,
    pub ip_family_policy: Option<String>,
    pub ip_families: Vec<String>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`: the EXTERNAL-IPs.
    pub load_balancer_ingress: Vec<IpAddr>,
    pub publish_not_ready_addresses: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub creation_timestamp: Option<jiff::Timestamp>,
}

impl Service {
    pub fn port_named(&self, name: &str) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.name == name)
    }
}

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours), as the API server defaults it.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn port_u16(v: i32) -> Option<u16> {
    u16::try_from(v).ok().filter(|p| *p != 0)
}

/// Validate and convert one Service, as the API server's validation would.
pub fn from_k8s(key: &ObjectKey, svc: &core::Service) -> Result<Service, Invalid> {
    let bad = |field: &str, msg: String| Invalid::new("Service", key, field, msg);
    let spec = svc.spec.clone().unwrap_or_default();
    let type_ = match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ClusterIP" => ServiceType::ClusterIP,
        "NodePort" => ServiceType::NodePort,
        "LoadBalancer" => ServiceType::LoadBalancer,
        "ExternalName" => ServiceType::ExternalName,
        other => {
            return Err(bad(
                "spec.type",
                format!(
                    "unsupported value {other:?}: expected ClusterIP, NodePort, LoadBalancer or ExternalName"
                ),
            ));
        }
    };
    let external_name = spec.external_name.clone().filter(|s| !s.is_empty());
    if type_ == ServiceType::ExternalName && external_name.is_none() {
        return Err(bad(
            "spec.externalName",
            "required for type ExternalName".into(),
        ));
    }

    let mut headless = false;
    let mut cluster_ips = Vec::new();
    let ip_strings: Vec<String> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.clone(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip.clone()],
        _ => vec![],
    };
    for (i, s) in ip_strings.iter().enumerate() {
        if s == "None" {
            headless = true;
            continue;
        }
        let ip: IpAddr = s.parse().map_err(|_| {
            bad(
                &format!("spec.clusterIPs[{i}]"),
                format!("{s:?} is not an IP address"),
            )
        })?;
        cluster_ips.push(ip);
    }
    if headless && type_ != ServiceType::ClusterIP {
        return Err(bad(
            "spec.clusterIP",
            format!("may not be None for type {type_}"),
        ));
    }
    if type_ == ServiceType::ExternalName {
        cluster_ips.clear();
    }

    let mut ports = Vec::new();
    let raw_ports = spec.ports.clone().unwrap_or_default();
    for (i, p) in raw_ports.iter().enumerate() {
        let f = |name: &str| format!("spec.ports[{i}].{name}");
        let name = p.name.clone().unwrap_or_default();
        if raw_ports.len() > 1 && name.is_empty() {
            return Err(bad(
                &f("name"),
                "required when a Service has more than one port".into(),
            ));
        }
        if ports.iter().any(|q: &ServicePort| q.name == name) {
            return Err(bad(&f("name"), format!("duplicate port name {name:?}")));
        }
        let protocol = Protocol::parse(p.protocol.as_deref()).ok_or_else(|| {
            bad(
                &f("protocol"),
                format!(
                    "unsupported value {:?}: expected TCP, UDP or SCTP",
                    p.protocol
                ),
            )
        })?;
        let port = port_u16(p.port).ok_or_else(|| {
            bad(
                &f("port"),
                format!("{} is not a valid port (1-65535)", p.port),
            )
        })?;
        let target_port =
            match &p.target_port {
                None => TargetPort::Number(port),
                Some(IntOrString::Int(n)) => TargetPort::Number(port_u16(*n).ok_or_else(|| {
                    bad(
                        &f("targetPort"),
                        format!("{n} is not a valid port (1-65535)"),
                    )
                })?),
                Some(IntOrString::String(s)) => {
                    if let Ok(n) = s.parse::<i32>() {
                        TargetPort::Number(port_u16(n).ok_or_else(|| {
                            bad(&f("targetPort"), format!("{n} is not a valid port"))
                        })?)
                    } else if is_iana_svc_name(s) {
                        TargetPort::Name(s.clone())
                    } else {
                        return Err(bad(
                            &f("targetPort"),
                            format!("{s:?} is not a port number or a valid port name"),
                        ));
                    }
                }
            };
        let node_port = match p.node_port {
            None | Some(0) => None,
            Some(n) => {
                if matches!(type_, ServiceType::ClusterIP | ServiceType::ExternalName) {
                    return Err(bad(
                        &f("nodePort"),
                        format!("may not be set for type {type_}"),
                    ));
                }
                Some(
                    port_u16(n)
                        .ok_or_else(|| bad(&f("nodePort"), format!("{n} is not a valid port")))?,
                )
            }
        };
        ports.push(ServicePort {
            name,
            protocol,
            port,
            target_port,
            node_port,
        });
    }

    let session_affinity_timeout = match spec.session_affinity.as_deref().unwrap_or("None") {
        "None" => None,
        "ClientIP" => {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT as i32);
            if !(1..=86_400).contains(&t) {
                return Err(bad(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    format!("{t} is out of range (1-86400)"),
                ));
            }
            Some(t as u32)
        }
        other => {
            return Err(bad(
                "spec.sessionAffinity",
                format!("unsupported value {other:?}: expected None or ClientIP"),
            ));
        }
    };
    let policy = |v: Option<&str>, field: &str| match v.unwrap_or("Cluster") {
        "Cluster" => Ok(TrafficPolicy::Cluster),
        "Local" => Ok(TrafficPolicy::Local),
        other => Err(bad(
            field,
            format!("unsupported value {other:?}: expected Cluster or Local"),
        )),
    };
    let external_traffic_policy = policy(
        spec.external_traffic_policy.as_deref(),
        "spec.externalTrafficPolicy",
    )?;
    let internal_traffic_policy = policy(
        spec.internal_traffic_policy.as_deref(),
        "spec.internalTrafficPolicy",
    )?;
    let load_balancer_ip = match spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| bad("spec.loadBalancerIP", format!("{s:?} is not an IP address")))?,
        ),
    };
    let mut external_ips = Vec::new();
    for (i, s) in spec.external_ips.iter().flatten().enumerate() {
        external_ips.push(s.parse().map_err(|_| {
            bad(
                &format!("spec.externalIPs[{i}]"),
                format!("{s:?} is not an IP address"),
            )
        })?);
    }
    let load_balancer_ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();

    Ok(Service {
        key: key.clone(),
        type_,
        cluster_ips,
        headless,
        external_name,
        ports,
        selector: spec.selector.clone().filter(|s| !s.is_empty()),
        session_affinity_timeout,
        external_traffic_policy,
        internal_traffic_policy,
        load_balancer_ip,
        load_balancer_class: spec.load_balancer_class.clone(),
        ip_family_policy: spec.ip_family_policy.clone(),
        ip_families: spec.ip_families.clone().unwrap_or_default(),
        external_ips,
        load_balancer_ingress,
        publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        annotations: svc.metadata.annotations.clone().unwrap_or_default(),
        creation_timestamp: svc.metadata.creation_timestamp.as_ref().map(|t| t.0),
    })
}

#[cfg(test)]
mod tests;
