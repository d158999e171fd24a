//! `translate`: the one pure function from raw objects to a [`Snapshot`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoints::{SERVICE_NAME_LABEL, ServiceEndpoints};
use crate::invalid::Invalid;
use crate::key::ObjectKey;
use crate::service;
use crate::snapshot::{Node, Snapshot, TlsSecret};
use crate::state::ClusterState;

/// Build the snapshot for `state`. Invalid objects are left out and listed in
/// `Snapshot::errors` (together with the source's own `state.invalid`); everything else is in.
pub fn translate(state: &ClusterState, generation: u64) -> Snapshot {
    let mut errors = Errors {
        state,
        list: state.invalid.clone(),
    };
    let mut services = BTreeMap::new();
    for (key, svc) in &state.services {
        match service::from_k8s(key, svc) {
            Ok(s) => drop(services.insert(key.clone(), Arc::new(s))),
            Err(e) => errors.report("Service", e),
        }
    }
    let endpoints = endpoints(state, &mut errors);
    let nodes = state
        .nodes
        .iter()
        .map(|(key, node)| (key.name.clone(), Arc::new(node_of(&key.name, node))))
        .collect();
    let tls_secrets = tls_secrets(state, &mut errors);

    Snapshot {
        generation,
        services,
        endpoints,
        nodes,
        namespaces: state
            .namespaces
            .iter()
            .map(|(k, v)| (k.name.clone(), v.clone()))
            .collect(),
        ingresses: state.ingresses.clone(),
        ingress_classes: state
            .ingress_classes
            .iter()
            .map(|(k, v)| (k.name.clone(), v.clone()))
            .collect(),
        tls_secrets,
        ip_address_pools: state.ip_address_pools.clone(),
        l2_advertisements: state.l2_advertisements.clone(),
        routes: Arc::default(),
        errors: errors.list.into(),
    }
}

/// The snapshot's error list, each error placed at its object's origin (file and document).
struct Errors<'a> {
    state: &'a ClusterState,
    list: Vec<Invalid>,
}

impl Errors<'_> {
    fn report(&mut self, kind: &'static str, e: Invalid) {
        let origin = e
            .object
            .as_ref()
            .map(|k| self.state.origin(kind, k))
            .unwrap_or_default();
        self.list.push(if e.origin.file.is_none() {
            e.with_origin(origin)
        } else {
            e
        });
    }
}

/// Every Service's endpoints. EndpointSlices win over legacy Endpoints for the same Service (the
/// API mirrors the latter into the former; standalone, the endpoints controller writes slices).
fn endpoints(
    state: &ClusterState,
    errors: &mut Errors<'_>,
) -> BTreeMap<ObjectKey, Arc<ServiceEndpoints>> {
    let mut slices: BTreeMap<ObjectKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for (key, slice) in &state.endpoint_slices {
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        match owner {
            Some(svc) => slices
                .entry(ObjectKey::new(key.namespace.clone(), svc.clone()))
                .or_default()
                .push(slice),
            None => errors.report(
                "EndpointSlice",
                Invalid::new(
                    "EndpointSlice",
                    key,
                    format!("metadata.labels[{SERVICE_NAME_LABEL}]"),
                    "required: names the Service",
                ),
            ),
        }
    }
    let mut endpoints = BTreeMap::new();
    for (key, list) in &slices {
        endpoints.insert(
            key.clone(),
            Arc::new(ServiceEndpoints::from_slices(list.iter().copied())),
        );
    }
    for (key, ep) in &state.endpoints {
        if !slices.contains_key(key) {
            endpoints.insert(key.clone(), Arc::new(ServiceEndpoints::from_endpoints(ep)));
        }
    }
    endpoints
}

fn node_of(name: &str, node: &k8s_openapi::api::core::v1::Node) -> Node {
    let status = node.status.as_ref();
    let addresses: Vec<IpAddr> = status
        .and_then(|s| s.addresses.as_ref())
        .map(|a| a.iter().filter_map(|a| a.address.parse().ok()).collect())
        .unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .map(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        .unwrap_or(false);
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let exclude_from_lb =
        labels.contains_key("node.kubernetes.io/exclude-from-external-load-balancers");
    Node {
        name: name.to_owned(),
        labels,
        addresses,
        ready,
        exclude_from_lb,
    }
}

/// The `kubernetes.io/tls` Secrets with both halves; one without is an error on its field.
fn tls_secrets(
    state: &ClusterState,
    errors: &mut Errors<'_>,
) -> BTreeMap<ObjectKey, Arc<TlsSecret>> {
    let mut tls_secrets = BTreeMap::new();
    for (key, secret) in &state.secrets {
        if secret.type_.as_deref() != Some("kubernetes.io/tls") {
            continue;
        }
        let get = |k: &str| -> Option<Vec<u8>> {
            if let Some(v) = secret.data.as_ref().and_then(|d| d.get(k)) {
                return Some(v.0.clone());
            }
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|s| s.as_bytes().to_vec())
        };
        match (get("tls.crt"), get("tls.key")) {
            (Some(cert_pem), Some(key_pem)) if !cert_pem.is_empty() && !key_pem.is_empty() => {
                tls_secrets.insert(key.clone(), Arc::new(TlsSecret { cert_pem, key_pem }));
            }
            (c, _) => {
                let field = if c.is_none_or(|c| c.is_empty()) {
                    "data[tls.crt]"
                } else {
                    "data[tls.key]"
                };
                errors.report(
                    "Secret",
                    Invalid::new("Secret", key, field, "required for type kubernetes.io/tls"),
                );
            }
        }
    }
    tls_secrets
}
