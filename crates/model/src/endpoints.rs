//! Endpoints of a Service, per port name, from EndpointSlices or legacy Endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize};

use crate::service::Protocol;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint address for one port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub addr: SocketAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    /// The Pod behind it (`targetRef`), when known.
    pub pod: Option<String>,
}

/// The endpoints of one Service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct PortBackends {
    pub protocol: Option<Protocol>,
    /// Every endpoint, sorted by address.
    pub all: Vec<Backend>,
    /// The ones to send new traffic to: the ready endpoints, or, when none is ready, the
    /// serving ones that are terminating (kube-proxy's fallback). Sorted by address.
    pub usable: Arc<[Backend]>,
}

impl PortBackends {
    fn finish(mut all: Vec<Backend>, protocol: Option<Protocol>) -> Self {
        all.sort();
        all.dedup_by(|a, b| a.addr == b.addr);
        let ready: Vec<Backend> = all.iter().filter(|b| b.ready).cloned().collect();
        let usable = if ready.is_empty() {
            all.iter()
                .filter(|b| b.serving && b.terminating)
                .cloned()
                .collect()
        } else {
            ready
        };
        Self {
            protocol,
            all,
            usable: usable.into(),
        }
    }
}

/// Endpoints of one Service, keyed by the Service port's name (empty for an unnamed port).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct ServiceEndpoints {
    pub ports: BTreeMap<String, PortBackends>,
}

impl ServiceEndpoints {
    pub fn port(&self, name: &str) -> Option<&PortBackends> {
        self.ports.get(name)
    }

    /// Distinct ready addresses, for headless DNS-style views.
    pub fn ready_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .ports
            .values()
            .flat_map(|p| p.all.iter().filter(|b| b.ready).map(|b| b.addr.ip()))
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }

    /// Merge EndpointSlices (all for the same Service).
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut acc: BTreeMap<String, (Option<Protocol>, Vec<Backend>)> = BTreeMap::new();
        for slice in slices {
            for port in slice.ports.iter().flatten() {
                let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                let name = port.name.clone().unwrap_or_default();
                let entry = acc
                    .entry(name)
                    .or_insert_with(|| (Protocol::parse(port.protocol.as_deref()), Vec::new()));
                for ep in slice.endpoints.iter().flatten() {
                    let cond = ep.conditions.as_ref();
                    // The API: a nil `ready` is interpreted as ready; nil `serving` follows ready.
                    let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                    let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                    let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                    for a in &ep.addresses {
                        let Ok(ip) = a.parse::<IpAddr>() else {
                            continue;
                        };
                        entry.1.push(Backend {
                            addr: SocketAddr::new(ip, number),
                            ready: ready && !terminating,
                            serving,
                            terminating,
                            node_name: ep.node_name.clone(),
                            zone: ep.zone.clone(),
                            pod: ep.target_ref.as_ref().and_then(|r| r.name.clone()),
                        });
                    }
                }
            }
        }
        Self {
            ports: acc
                .into_iter()
                .map(|(k, (proto, v))| (k, PortBackends::finish(v, proto)))
                .collect(),
        }
    }

    /// Legacy `v1/Endpoints`: `addresses` are ready, `notReadyAddresses` are not.
    pub fn from_endpoints(ep: &core::Endpoints) -> Self {
        let mut acc: BTreeMap<String, (Option<Protocol>, Vec<Backend>)> = BTreeMap::new();
        for subset in ep.subsets.iter().flatten() {
            for port in subset.ports.iter().flatten() {
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                let name = port.name.clone().unwrap_or_default();
                let entry = acc
                    .entry(name)
                    .or_insert_with(|| (Protocol::parse(port.protocol.as_deref()), Vec::new()));
                let groups = [
                    (true, subset.addresses.iter().flatten()),
                    (false, subset.not_ready_addresses.iter().flatten()),
                ];
                for (ready, addrs) in groups {
                    for a in addrs {
                        let Ok(ip) = a.ip.parse::<IpAddr>() else {
                            continue;
                        };
                        entry.1.push(Backend {
                            addr: SocketAddr::new(ip, number),
                            ready,
                            serving: ready,
                            terminating: false,
                            node_name: a.node_name.clone(),
                            zone: None,
                            pod: a.target_ref.as_ref().and_then(|r| r.name.clone()),
                        });
                    }
                }
            }
        }
        Self {
            ports: acc
                .into_iter()
                .map(|(k, (proto, v))| (k, PortBackends::finish(v, proto)))
                .collect(),
        }
    }
}
