//! The immutable snapshot every data plane reads. Built by [`crate::translate`], published once
//! through one `ArcSwap`, never mutated afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Serialize;

use crate::endpoints::ServiceEndpoints;
use crate::invalid::Invalid;
use crate::key::ObjectKey;
use crate::metallb::{IPAddressPool, L2Advertisement};
use crate::routes::Routes;
use crate::service::Service;

/// A `kubernetes.io/tls` Secret's certificate chain and key, as PEM bytes. The gateway parses
/// them; a Secret that does not parse is reported on the Ingresses that use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSecret {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<IpAddr>,
    pub ready: bool,
    /// `node.kubernetes.io/exclude-from-external-load-balancers` is set.
    pub exclude_from_lb: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases by one with every publish.
    pub generation: u64,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// Endpoints of every Service that has any (selector-derived, EndpointSlices or Endpoints).
    pub endpoints: BTreeMap<ObjectKey, Arc<ServiceEndpoints>>,
    pub nodes: BTreeMap<String, Arc<Node>>,
    pub namespaces: BTreeMap<String, Arc<core::Namespace>>,
    /// The source's store itself, shared (an `Arc` clone per snapshot, not a copy).
    pub ingresses: Arc<BTreeMap<ObjectKey, Arc<Ingress>>>,
    pub ingress_classes: BTreeMap<String, Arc<IngressClass>>,
    /// Valid `kubernetes.io/tls` Secrets.
    pub tls_secrets: BTreeMap<ObjectKey, Arc<TlsSecret>>,
    pub ip_address_pools: BTreeMap<ObjectKey, Arc<IPAddressPool>>,
    pub l2_advertisements: BTreeMap<ObjectKey, Arc<L2Advertisement>>,
    /// What the served Ingresses ask the HTTP data plane to do ([`crate::routes::ingress::route`]);
    /// empty until a snapshot is routed for an IngressClass.
    pub routes: Arc<Routes>,
    /// Every object left out of this snapshot, and why (the routes' translation errors too).
    pub errors: Arc<[Invalid]>,
}

impl Snapshot {
    pub fn service(&self, key: &ObjectKey) -> Option<&Arc<Service>> {
        self.services.get(key)
    }

    pub fn endpoints_of(&self, key: &ObjectKey) -> Option<&Arc<ServiceEndpoints>> {
        self.endpoints.get(key)
    }

    /// Nodes with a ready endpoint of the Service `key` (for `externalTrafficPolicy: Local`: the
    /// announcer elects among them, the LoadBalancer listeners forward only on them).
    pub fn nodes_with_ready_endpoint(&self, key: &ObjectKey) -> BTreeSet<String> {
        let Some(eps) = self.endpoints_of(key) else {
            return BTreeSet::new();
        };
        eps.ports
            .values()
            .flat_map(|p| p.all.iter())
            .filter(|b| b.ready)
            .filter_map(|b| b.node_name.clone())
            .collect()
    }
}
