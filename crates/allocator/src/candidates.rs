//! The Services an allocation pass works on, read from a [`ClusterState`]: the same for the
//! standalone hook and the kube controller.

use std::collections::{BTreeMap, BTreeSet};

use portico_model::{ClusterState, ObjectKey, service};

use crate::request::eligible_raw;
use crate::{BadRequest, ServiceRequest, eligible};

pub struct Candidates {
    /// Every eligible Service, oldest first (then in manifest order, then by key).
    pub wanted: Vec<Result<ServiceRequest, BadRequest>>,
    /// The same Services, read leniently: what loading existing assignments needs.
    pub holding: Vec<ServiceRequest>,
    /// Services that failed validation (already reported by translate).
    pub invalid: BTreeSet<ObjectKey>,
}

pub fn candidates(state: &ClusterState, lb_class: Option<&str>) -> Candidates {
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = state
        .namespaces
        .iter()
        .map(|(k, ns)| {
            (
                k.name.as_str(),
                ns.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();
    let empty = BTreeMap::new();
    let mut rows = Vec::new();
    let mut invalid = BTreeSet::new();
    for (key, raw) in &state.services {
        let (wanted, created) = match service::from_k8s(key, raw) {
            Ok(svc) if eligible(&svc, lb_class) => {
                let labels = ns_labels.get(key.namespace.as_str()).unwrap_or(&empty);
                (
                    ServiceRequest::from_service(&svc, labels),
                    svc.creation_timestamp,
                )
            }
            Ok(_) => continue,
            // A LoadBalancer Service that fails validation keeps what it holds, as MetalLB keeps
            // the address of a Service whose requested IPs do not parse.
            Err(e) if eligible_raw(raw, lb_class) => {
                invalid.insert(key.clone());
                let bad = BadRequest {
                    key: key.clone(),
                    field: e.field,
                    message: e.message,
                };
                (
                    Err(bad),
                    raw.metadata.creation_timestamp.as_ref().map(|t| t.0),
                )
            }
            Err(_) => continue,
        };
        let origin = state.origin("Service", key);
        let order = (
            created.is_none(),
            created,
            origin.file,
            origin.document,
            key.clone(),
        );
        rows.push((order, wanted, ServiceRequest::holding(key, raw)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (wanted, holding) = rows.into_iter().map(|(_, w, h)| (w, h)).unzip();
    Candidates {
        wanted,
        holding,
        invalid,
    }
}
