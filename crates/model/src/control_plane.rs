//! Standalone mode plays the control plane's part, purely: it assigns ClusterIPs and NodePorts
//! (as kube-apiserver's allocators do) and computes EndpointSlices from selectors over Pods (as
//! the endpoints controller does). In kube mode none of this runs: the API server did it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::endpoints::SERVICE_NAME_LABEL;
use crate::invalid::Invalid;
use crate::key::ObjectKey;
use crate::selector::service_selects;
use crate::state::ClusterState;

pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY_PORTICO: &str = "endpointslice-controller.portico.dev";

#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// Where ClusterIPs come from. The default lies inside 127.0.0.0/8 so that binding them
    /// needs no root and no address configuration on Linux.
    pub service_cidr: IpNet,
    pub node_port_range: RangeInclusive<u16>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            service_cidr: "127.96.0.0/16".parse().expect("valid literal"),
            node_port_range: 30000..=32767,
        }
    }
}

/// Assignments made so far; kept between runs so a Service keeps its ClusterIP and NodePorts
/// while it exists.
#[derive(Clone, Debug, Default)]
pub struct Allocations {
    pub cluster_ips: BTreeMap<ObjectKey, IpAddr>,
    /// (service, port index) -> node port.
    pub node_ports: BTreeMap<(ObjectKey, usize), u16>,
}

/// Fill in ClusterIPs and NodePorts, generate EndpointSlices for Services with selectors, and
/// report conflicts. A Service whose requested ClusterIP or NodePort is taken is refused
/// whole, as the API server would refuse to create it; the Service that had it keeps it.
pub fn complete(state: &mut ClusterState, cfg: &ControlPlaneConfig, alloc: &mut Allocations) {
    let order = creation_order(state);
    alloc
        .cluster_ips
        .retain(|k, _| state.services.contains_key(k));
    alloc
        .node_ports
        .retain(|(k, _), _| state.services.contains_key(k));

    // Pass 1: requested values, in order; the first holder wins.
    let mut claims = Claims::default();
    for key in &order {
        claims.claim_requested(state, cfg, key);
    }
    claims.release_refused(alloc);
    // Pass 2: assign what was not requested.
    for key in &order {
        claims.assign(state, cfg, alloc, key);
    }

    generate_endpoint_slices(state);
}

/// Oldest first; without timestamps (plain manifests), in the order they are written (file, then
/// document): the order the API server would have seen them in.
fn creation_order(state: &ClusterState) -> Vec<ObjectKey> {
    let mut order: Vec<ObjectKey> = state.services.keys().cloned().collect();
    order.sort_by_key(|k| {
        let ts = state.services[k]
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        let origin = state.origin("Service", k);
        (ts.is_none(), ts, origin.file, origin.document, k.clone())
    });
    order
}

/// Who holds which ClusterIP and NodePort during one `complete`, and who was refused.
#[derive(Default)]
struct Claims {
    ips: BTreeMap<IpAddr, ObjectKey>,
    ports: BTreeMap<u16, ObjectKey>,
    refused: BTreeSet<ObjectKey>,
}

impl Claims {
    /// Pass 1 for one Service: claim the ClusterIP and NodePorts it asks for, or refuse it.
    fn claim_requested(
        &mut self,
        state: &mut ClusterState,
        cfg: &ControlPlaneConfig,
        key: &ObjectKey,
    ) {
        let spec = state.services[key].spec.clone().unwrap_or_default();
        if let Some((field, msg)) = requested_ip_problem(&spec, &cfg.service_cidr) {
            refuse(state, &mut self.refused, key, &field, msg);
            return;
        }
        if let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "None")
            .and_then(|s| s.parse::<IpAddr>().ok())
        {
            if let Some(holder) = self.ips.get(&ip) {
                let msg = format!("{ip} is already allocated to Service {holder}");
                refuse(state, &mut self.refused, key, "spec.clusterIP", msg);
                return;
            }
            self.ips.insert(ip, key.clone());
        }
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            let Some(np) = p
                .node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
            else {
                continue;
            };
            let field = format!("spec.ports[{i}].nodePort");
            if !cfg.node_port_range.contains(&np) {
                let r = &cfg.node_port_range;
                let msg = format!(
                    "{np} is outside the node port range {}-{}",
                    r.start(),
                    r.end()
                );
                refuse(state, &mut self.refused, key, &field, msg);
                break;
            }
            if let Some(holder) = self.ports.get(&np) {
                let msg = format!("{np} is already allocated to Service {holder}");
                refuse(state, &mut self.refused, key, &field, msg);
                break;
            }
            self.ports.insert(np, key.clone());
        }
    }

    /// Between the passes: free what refused Services had claimed, and take back the earlier
    /// allocations still valid.
    fn release_refused(&mut self, alloc: &mut Allocations) {
        let refused = &self.refused;
        self.ips.retain(|_, k| !refused.contains(k));
        self.ports.retain(|_, k| !refused.contains(k));
        let (ips, ports) = (&self.ips, &self.ports);
        alloc
            .cluster_ips
            .retain(|k, ip| !refused.contains(k) && ips.get(ip).is_none_or(|h| h == k));
        alloc
            .node_ports
            .retain(|(k, _), p| !refused.contains(k) && ports.get(p).is_none_or(|h| h == k));
        for (k, ip) in &alloc.cluster_ips {
            self.ips.insert(*ip, k.clone());
        }
        for ((k, _), p) in &alloc.node_ports {
            self.ports.insert(*p, k.clone());
        }
    }

    /// Pass 2 for one Service: drop it if refused, else give it what it did not ask for.
    fn assign(
        &mut self,
        state: &mut ClusterState,
        cfg: &ControlPlaneConfig,
        alloc: &mut Allocations,
        key: &ObjectKey,
    ) {
        if self.refused.contains(key) {
            state.services.remove(key);
            return;
        }
        let mut svc = (*state.services[key]).clone();
        let spec = svc.spec.get_or_insert_with(Default::default);
        let type_ = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
        if type_ == "ExternalName" {
            return;
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if !headless && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            let ip = match alloc.cluster_ips.get(key) {
                Some(ip) => Some(*ip),
                None => pick_ip(&cfg.service_cidr, key, &self.ips),
            };
            let Some(ip) = ip else {
                let msg = format!("no free address in the service range {}", cfg.service_cidr);
                refuse(state, &mut self.refused, key, "spec.clusterIP", msg);
                state.services.remove(key);
                return;
            };
            self.ips.insert(ip, key.clone());
            alloc.cluster_ips.insert(key.clone(), ip);
            spec.cluster_ip = Some(ip.to_string());
            spec.cluster_ips = Some(vec![ip.to_string()]);
        } else if !headless && spec.cluster_ips.is_none() {
            spec.cluster_ips = spec.cluster_ip.clone().map(|ip| vec![ip]);
        }
        if matches!(type_.as_str(), "NodePort" | "LoadBalancer")
            && spec.allocate_load_balancer_node_ports != Some(false)
            || type_ == "NodePort"
        {
            for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
                if p.node_port.is_some_and(|n| n != 0) {
                    continue;
                }
                let np = match alloc.node_ports.get(&(key.clone(), i)) {
                    Some(np) => Some(*np),
                    None => pick_port(&cfg.node_port_range, key, i, &self.ports),
                };
                if let Some(np) = np {
                    self.ports.insert(np, key.clone());
                    alloc.node_ports.insert((key.clone(), i), np);
                    p.node_port = Some(i32::from(np));
                }
            }
        }
        state.services.insert(key.clone(), Arc::new(svc));
    }
}

/// Why the API server would refuse the ClusterIPs a Service asks for (`spec.clusterIP`, then
/// `spec.clusterIPs`): not an address, or outside the service range. `None` (headless) and
/// empty (allocate one) ask for nothing; an ExternalName Service gets no ClusterIP.
fn requested_ip_problem(spec: &core::ServiceSpec, cidr: &IpNet) -> Option<(String, String)> {
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let single = spec
        .cluster_ip
        .iter()
        .map(|ip| ("spec.clusterIP".to_owned(), ip));
    let listed = spec
        .cluster_ips
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip));
    single
        .chain(listed)
        .filter(|(_, ip)| !ip.is_empty() && *ip != "None")
        .find_map(|(field, ip)| match ip.parse::<IpAddr>() {
            Err(_) => Some((field, format!("{ip:?}: must be a valid IP address"))),
            Ok(addr) if !cidr.contains(&addr) => Some((
                field,
                format!(
                    "{ip}: provided IP is not in the valid range. The range of valid IPs is {cidr}"
                ),
            )),
            Ok(_) => None,
        })
}

fn refuse(
    state: &mut ClusterState,
    refused: &mut BTreeSet<ObjectKey>,
    key: &ObjectKey,
    field: &str,
    msg: String,
) {
    let origin = state.origin("Service", key);
    state
        .invalid
        .push(Invalid::new("Service", key, field, msg).with_origin(origin));
    refused.insert(key.clone());
}

/// A stable first choice (a hash of the Service's key), then the next free address: the same
/// Service gets the same ClusterIP across restarts unless another one took it meanwhile.
fn pick_ip(cidr: &IpNet, key: &ObjectKey, used: &BTreeMap<IpAddr, ObjectKey>) -> Option<IpAddr> {
    let hosts: Vec<IpAddr> = match cidr {
        IpNet::V4(n) => {
            let size = 1u64 << (32 - n.prefix_len());
            let base = u32::from(n.network()) as u64;
            let start = hash(key, 0) % size.max(1);
            // Skip the network address and the broadcast address.
            return (0..size)
                .map(|i| (start + i) % size)
                .filter(|off| *off != 0 && *off != size - 1)
                .map(|off| IpAddr::V4(((base + off) as u32).into()))
                .find(|ip| !used.contains_key(ip));
        }
        IpNet::V6(n) => n.hosts().take(1 << 16).map(IpAddr::V6).collect(),
    };
    let start = (hash(key, 0) as usize) % hosts.len().max(1);
    (0..hosts.len())
        .map(|i| hosts[(start + i) % hosts.len()])
        .find(|ip| !used.contains_key(ip))
}

fn pick_port(
    range: &RangeInclusive<u16>,
    key: &ObjectKey,
    index: usize,
    used: &BTreeMap<u16, ObjectKey>,
) -> Option<u16> {
    let size = u64::from(range.end() - range.start()) + 1;
    let start = hash(key, index as u64) % size;
    (0..size)
        .map(|i| range.start() + ((start + i) % size) as u16)
        .find(|p| !used.contains_key(p))
}

fn hash(key: &ObjectKey, salt: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(key.namespace.as_bytes());
    h.update(b"/");
    h.update(key.name.as_bytes());
    h.update(salt.to_be_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Whether a Pod counts as Ready: its `Ready` condition is `True` and it is not being deleted.
pub fn pod_ready(pod: &core::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(pod: &core::Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .pod_ip
        .clone()
        .filter(|s| s.parse::<IpAddr>().is_ok())
}

/// Resolve a Service port's targetPort on one Pod: a number as is, a name through the Pod's
/// containers' named ports (and the protocol must match). `None`: this Pod lacks the port.
pub fn resolve_target_port(
    pod: &core::Pod,
    target: &Option<IntOrString>,
    port: i32,
    protocol: &str,
) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(s)) => {
            if let Ok(n) = s.parse() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|cp| {
                    let proto = cp.protocol.as_deref().unwrap_or("TCP");
                    (cp.name.as_deref() == Some(s.as_str()) && proto == protocol)
                        .then_some(cp.container_port)
                })
        }
    }
}

/// Replace the slices this controller owns with fresh ones for every Service with a selector.
/// Pods whose named targetPort resolves to different numbers land in different slices, as the
/// real controller groups them.
pub fn generate_endpoint_slices(state: &mut ClusterState) {
    state.endpoint_slices.retain(|_, s| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .map(String::as_str)
            != Some(MANAGED_BY_PORTICO)
    });
    let mut generated = Vec::new();
    for (key, svc) in &state.services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
        // Group endpoints by their resolved port set.
        let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Endpoint>> = BTreeMap::new();
        for (pkey, pod) in state
            .pods
            .range(ObjectKey::new(key.namespace.clone(), String::new())..)
        {
            if pkey.namespace != key.namespace {
                break;
            }
            if !service_selects(selector, pod.metadata.labels.as_ref()) {
                continue;
            }
            let Some(ip) = pod_ip(pod) else { continue };
            let mut ports = Vec::new();
            for p in spec.ports.iter().flatten() {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                if let Some(n) = resolve_target_port(pod, &p.target_port, p.port, &proto) {
                    ports.push((p.name.clone().unwrap_or_default(), n, proto));
                }
            }
            if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
                continue;
            }
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let ready = pod_ready(pod) && !terminating;
            groups.entry(ports).or_default().push(Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(ready || (publish_not_ready && !terminating)),
                    serving: Some(pod_ready(pod)),
                    terminating: Some(terminating),
                }),
                node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(core::ObjectReference {
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    namespace: Some(pkey.namespace.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for (i, (ports, endpoints)) in groups.into_iter().enumerate() {
            let name = format!("{}-portico-{i}", key.name);
            let labels = BTreeMap::from([
                (SERVICE_NAME_LABEL.to_owned(), key.name.clone()),
                (MANAGED_BY.to_owned(), MANAGED_BY_PORTICO.to_owned()),
            ]);
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(key.namespace.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: Some(endpoints),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: Some(name),
                            port: Some(port),
                            protocol: Some(protocol),
                            ..Default::default()
                        })
                        .collect(),
                ),
            };
            generated.push((ObjectKey::new(key.namespace.clone(), name), slice));
        }
        // A selector Service with no matching Pod still gets an (empty) entry so the data planes
        // know it has zero endpoints rather than unknown ones.
    }
    for (key, slice) in generated {
        state.endpoint_slices.insert(key, Arc::new(slice));
    }
}

#[cfg(test)]
mod tests;
