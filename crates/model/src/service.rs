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
    let v = Validator { key };
    let spec = svc.spec.clone().unwrap_or_default();
    let type_ = v.service_type(&spec)?;
    let external_name = spec.external_name.clone().filter(|s| !s.is_empty());
    if type_ == ServiceType::ExternalName && external_name.is_none() {
        return Err(v.bad("spec.externalName", "required for type ExternalName".into()));
    }
    let (cluster_ips, headless) = v.cluster_ips(&spec, type_)?;

    let mut ports = Vec::new();
    let raw_ports = spec.ports.clone().unwrap_or_default();
    for (i, p) in raw_ports.iter().enumerate() {
        let port = v.port(i, p, &raw_ports, &ports, type_)?;
        ports.push(port);
    }

    let session_affinity_timeout = v.session_affinity(&spec)?;
    let external_traffic_policy = v.traffic_policy(
        spec.external_traffic_policy.as_deref(),
        "spec.externalTrafficPolicy",
    )?;
    let internal_traffic_policy = v.traffic_policy(
        spec.internal_traffic_policy.as_deref(),
        "spec.internalTrafficPolicy",
    )?;
    let load_balancer_ip = match spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(v.ip(s, "spec.loadBalancerIP")?),
    };
    let mut external_ips = Vec::new();
    for (i, s) in spec.external_ips.iter().flatten().enumerate() {
        external_ips.push(v.ip(s, &format!("spec.externalIPs[{i}]"))?);
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

/// The checks of [`from_k8s`], one field group each; every error names the Service and field.
struct Validator<'a> {
    key: &'a ObjectKey,
}

impl Validator<'_> {
    fn bad(&self, field: &str, msg: String) -> Invalid {
        Invalid::new("Service", self.key, field, msg)
    }

    fn ip(&self, s: &str, field: &str) -> Result<IpAddr, Invalid> {
        s.parse()
            .map_err(|_| self.bad(field, format!("{s:?} is not an IP address")))
    }

    fn service_type(&self, spec: &core::ServiceSpec) -> Result<ServiceType, Invalid> {
        match spec.type_.as_deref().unwrap_or("ClusterIP") {
            "ClusterIP" => Ok(ServiceType::ClusterIP),
            "NodePort" => Ok(ServiceType::NodePort),
            "LoadBalancer" => Ok(ServiceType::LoadBalancer),
            "ExternalName" => Ok(ServiceType::ExternalName),
            other => Err(self.bad(
                "spec.type",
                format!(
                    "unsupported value {other:?}: expected ClusterIP, NodePort, LoadBalancer or ExternalName"
                ),
            )),
        }
    }

    /// `spec.clusterIPs` (or `spec.clusterIP`): the addresses, and whether it is headless.
    fn cluster_ips(
        &self,
        spec: &core::ServiceSpec,
        type_: ServiceType,
    ) -> Result<(Vec<IpAddr>, bool), Invalid> {
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
            cluster_ips.push(self.ip(s, &format!("spec.clusterIPs[{i}]"))?);
        }
        if headless && type_ != ServiceType::ClusterIP {
            return Err(self.bad(
                "spec.clusterIP",
                format!("may not be None for type {type_}"),
            ));
        }
        if type_ == ServiceType::ExternalName {
            cluster_ips.clear();
        }
        Ok((cluster_ips, headless))
    }

    /// `spec.ports[i]` (`p`) of a Service with ports `all`, after the `earlier` ones.
    fn port(
        &self,
        i: usize,
        p: &core::ServicePort,
        all: &[core::ServicePort],
        earlier: &[ServicePort],
        type_: ServiceType,
    ) -> Result<ServicePort, Invalid> {
        let f = |name: &str| format!("spec.ports[{i}].{name}");
        let name = p.name.clone().unwrap_or_default();
        if all.len() > 1 && name.is_empty() {
            return Err(self.bad(
                &f("name"),
                "required when a Service has more than one port".into(),
            ));
        }
        if earlier.iter().any(|q| q.name == name) {
            return Err(self.bad(&f("name"), format!("duplicate port name {name:?}")));
        }
        let protocol = Protocol::parse(p.protocol.as_deref()).ok_or_else(|| {
            self.bad(
                &f("protocol"),
                format!(
                    "unsupported value {:?}: expected TCP, UDP or SCTP",
                    p.protocol
                ),
            )
        })?;
        let port = port_u16(p.port).ok_or_else(|| {
            self.bad(
                &f("port"),
                format!("{} is not a valid port (1-65535)", p.port),
            )
        })?;
        let target_port = self.target_port(p.target_port.as_ref(), port, &f("targetPort"))?;
        let node_port =
            match p.node_port {
                None | Some(0) => None,
                Some(n) => {
                    if matches!(type_, ServiceType::ClusterIP | ServiceType::ExternalName) {
                        return Err(
                            self.bad(&f("nodePort"), format!("may not be set for type {type_}"))
                        );
                    }
                    Some(port_u16(n).ok_or_else(|| {
                        self.bad(&f("nodePort"), format!("{n} is not a valid port"))
                    })?)
                }
            };
        Ok(ServicePort {
            name,
            protocol,
            port,
            target_port,
            node_port,
        })
    }

    fn target_port(
        &self,
        target: Option<&IntOrString>,
        port: u16,
        field: &str,
    ) -> Result<TargetPort, Invalid> {
        match target {
            None => Ok(TargetPort::Number(port)),
            Some(IntOrString::Int(n)) => {
                Ok(TargetPort::Number(port_u16(*n).ok_or_else(|| {
                    self.bad(field, format!("{n} is not a valid port (1-65535)"))
                })?))
            }
            Some(IntOrString::String(s)) => {
                if let Ok(n) = s.parse::<i32>() {
                    Ok(TargetPort::Number(port_u16(n).ok_or_else(|| {
                        self.bad(field, format!("{n} is not a valid port"))
                    })?))
                } else if is_iana_svc_name(s) {
                    Ok(TargetPort::Name(s.clone()))
                } else {
                    Err(self.bad(
                        field,
                        format!("{s:?} is not a port number or a valid port name"),
                    ))
                }
            }
        }
    }

    /// `spec.sessionAffinity` and its timeout: `None`, or the ClientIP timeout in seconds.
    fn session_affinity(&self, spec: &core::ServiceSpec) -> Result<Option<u32>, Invalid> {
        match spec.session_affinity.as_deref().unwrap_or("None") {
            "None" => Ok(None),
            "ClientIP" => {
                let t = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .unwrap_or(DEFAULT_AFFINITY_TIMEOUT as i32);
                if !(1..=86_400).contains(&t) {
                    return Err(self.bad(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        format!("{t} is out of range (1-86400)"),
                    ));
                }
                Ok(Some(t as u32))
            }
            other => Err(self.bad(
                "spec.sessionAffinity",
                format!("unsupported value {other:?}: expected None or ClientIP"),
            )),
        }
    }

    fn traffic_policy(&self, v: Option<&str>, field: &str) -> Result<TrafficPolicy, Invalid> {
        match v.unwrap_or("Cluster") {
            "Cluster" => Ok(TrafficPolicy::Cluster),
            "Local" => Ok(TrafficPolicy::Local),
            other => Err(self.bad(
                field,
                format!("unsupported value {other:?}: expected Cluster or Local"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
