//! Writes the other parts make in kube mode: LoadBalancer status (through the status
//! subresource, as a JSON merge patch), Service annotations, and Events.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::{Client, Resource};
use portico_model::ObjectKey;
use serde_json::{Value, json};

pub use kube::runtime::events::EventType;

/// A write to the API server that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} of {kind} {key}")]
pub struct WriteError {
    pub action: &'static str,
    pub kind: &'static str,
    pub key: ObjectKey,
    #[source]
    pub source: kube::Error,
}

/// The controller name Events are reported under.
pub const REPORTING_CONTROLLER: &str = "portico";

fn lb_ingress(ips: &[IpAddr]) -> Value {
    if ips.is_empty() {
        // `null` removes the field; an empty status means "no address".
        return json!({ "status": { "loadBalancer": { "ingress": null } } });
    }
    let ingress: Vec<Value> = ips
        .iter()
        .map(|ip| json!({ "ip": ip.to_string() }))
        .collect();
    json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

/// Set `status.loadBalancer.ingress` of a Service to `ips` (none clears it).
pub async fn patch_service_lb_status(
    client: &Client,
    key: &ObjectKey,
    ips: &[IpAddr],
) -> Result<(), WriteError> {
    patch_lb_status::<Service>(client, key, ips, "Service").await
}

/// Set `status.loadBalancer.ingress` of an Ingress to `ips` (none clears it).
pub async fn patch_ingress_lb_status(
    client: &Client,
    key: &ObjectKey,
    ips: &[IpAddr],
) -> Result<(), WriteError> {
    patch_lb_status::<Ingress>(client, key, ips, "Ingress").await
}

/// Both kinds carry the same `status.loadBalancer.ingress[].ip` shape.
async fn patch_lb_status<K>(
    client: &Client,
    key: &ObjectKey,
    ips: &[IpAddr],
    kind: &'static str,
) -> Result<(), WriteError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &key.namespace);
    api.patch_status(
        &key.name,
        &PatchParams::default(),
        &Patch::Merge(lb_ingress(ips)),
    )
    .await
    .map(drop)
    .map_err(|source| WriteError {
        action: "status patch",
        kind,
        key: key.clone(),
        source,
    })
}

async fn patch_annotation(
    client: &Client,
    key: &ObjectKey,
    k: &str,
    v: Option<&str>,
) -> Result<(), WriteError> {
    let api = Api::<Service>::namespaced(client.clone(), &key.namespace);
    let patch = json!({ "metadata": { "annotations": { k: v } } });
    api.patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(drop)
        .map_err(|source| WriteError {
            action: "annotation patch",
            kind: "Service",
            key: key.clone(),
            source,
        })
}

/// Set one annotation of a Service (the others are left alone).
pub async fn annotate_service(
    client: &Client,
    key: &ObjectKey,
    k: &str,
    v: &str,
) -> Result<(), WriteError> {
    patch_annotation(client, key, k, Some(v)).await
}

/// Remove one annotation of a Service.
pub async fn remove_service_annotation(
    client: &Client,
    key: &ObjectKey,
    k: &str,
) -> Result<(), WriteError> {
    patch_annotation(client, key, k, None).await
}

/// A reference to an object for [`publish_event`]: `object_ref::<Service>(&key)`.
pub fn object_ref<K: Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        name: Some(key.name.clone()),
        ..ObjectReference::default()
    }
}

/// Publishes `events.k8s.io/v1` Events; repeats of the same event within a few minutes become one
/// Event with a growing `series.count` rather than a new object each time.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

impl EventPublisher {
    /// `instance` names this replica (its Pod or node name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), WriteError> {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.to_owned()),
            action: reason.to_owned(),
            secondary: None,
        };
        self.recorder
            .publish(&event, regarding)
            .await
            .map_err(|source| WriteError {
                action: "event",
                kind: "Event",
                key: ObjectKey::new(
                    regarding.namespace.clone().unwrap_or_default(),
                    regarding.name.clone().unwrap_or_default(),
                ),
                source,
            })
    }
}

/// Publish one Event about `regarding` (no de-duplication across calls: keep an
/// [`EventPublisher`] for that).
pub async fn publish_event(
    client: &Client,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) -> Result<(), WriteError> {
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    EventPublisher::new(client.clone(), instance)
        .publish(regarding, type_, reason, note)
        .await
}
