//! `ClusterState`: the raw Kubernetes objects a source has seen, one store per kind. Sources own
//! and mutate it; [`crate::translate`] reads it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::invalid::{Invalid, Origin};
use crate::key::ObjectKey;
use crate::metallb::{IPAddressPool, L2Advertisement};

/// One Kubernetes object of a kind Portico reads.
#[derive(Clone, Debug)]
pub enum Object {
    Service(core::Service),
    Endpoints(core::Endpoints),
    EndpointSlice(EndpointSlice),
    Pod(core::Pod),
    Node(core::Node),
    Namespace(core::Namespace),
    Secret(core::Secret),
    Ingress(Ingress),
    IngressClass(IngressClass),
    IPAddressPool(IPAddressPool),
    L2Advertisement(L2Advertisement),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Service(_) => "Service",
            Object::Endpoints(_) => "Endpoints",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Pod(_) => "Pod",
            Object::Node(_) => "Node",
            Object::Namespace(_) => "Namespace",
            Object::Secret(_) => "Secret",
            Object::Ingress(_) => "Ingress",
            Object::IngressClass(_) => "IngressClass",
            Object::IPAddressPool(_) => "IPAddressPool",
            Object::L2Advertisement(_) => "L2Advertisement",
        }
    }

    /// Whether the kind is cluster-scoped (its key has no namespace).
    pub fn cluster_scoped(kind: &str) -> bool {
        matches!(kind, "Node" | "Namespace" | "IngressClass")
    }

    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Service(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::IPAddressPool(o) => &o.metadata,
            Object::L2Advertisement(o) => &o.metadata,
        }
    }

    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        if Self::cluster_scoped(self.kind()) {
            ObjectKey::cluster(meta.name.clone().unwrap_or_default())
        } else {
            ObjectKey::of(meta)
        }
    }
}

/// An [`Object`] behind an `Arc`, as caches keep it: a [`ClusterState`] built from shared objects
/// copies no object, and a later stage can tell an unchanged object by pointer
/// (`Arc::ptr_eq`). The same size (16 bytes) whatever the kind, where an `Object` is as large
/// as its largest variant (a Pod, some kilobytes).
#[derive(Clone, Debug)]
pub enum SharedObject {
    Service(Arc<core::Service>),
    Endpoints(Arc<core::Endpoints>),
    EndpointSlice(Arc<EndpointSlice>),
    Pod(Arc<core::Pod>),
    Node(Arc<core::Node>),
    Namespace(Arc<core::Namespace>),
    Secret(Arc<core::Secret>),
    Ingress(Arc<Ingress>),
    IngressClass(Arc<IngressClass>),
    IPAddressPool(Arc<IPAddressPool>),
    L2Advertisement(Arc<L2Advertisement>),
}

impl From<Object> for SharedObject {
    fn from(obj: Object) -> Self {
        match obj {
            Object::Service(o) => Self::Service(Arc::new(o)),
            Object::Endpoints(o) => Self::Endpoints(Arc::new(o)),
            Object::EndpointSlice(o) => Self::EndpointSlice(Arc::new(o)),
            Object::Pod(o) => Self::Pod(Arc::new(o)),
            Object::Node(o) => Self::Node(Arc::new(o)),
            Object::Namespace(o) => Self::Namespace(Arc::new(o)),
            Object::Secret(o) => Self::Secret(Arc::new(o)),
            Object::Ingress(o) => Self::Ingress(Arc::new(o)),
            Object::IngressClass(o) => Self::IngressClass(Arc::new(o)),
            Object::IPAddressPool(o) => Self::IPAddressPool(Arc::new(o)),
            Object::L2Advertisement(o) => Self::L2Advertisement(Arc::new(o)),
        }
    }
}

impl SharedObject {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Service(_) => "Service",
            Self::Endpoints(_) => "Endpoints",
            Self::EndpointSlice(_) => "EndpointSlice",
            Self::Pod(_) => "Pod",
            Self::Node(_) => "Node",
            Self::Namespace(_) => "Namespace",
            Self::Secret(_) => "Secret",
            Self::Ingress(_) => "Ingress",
            Self::IngressClass(_) => "IngressClass",
            Self::IPAddressPool(_) => "IPAddressPool",
            Self::L2Advertisement(_) => "L2Advertisement",
        }
    }

    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Self::Service(o) => &o.metadata,
            Self::Endpoints(o) => &o.metadata,
            Self::EndpointSlice(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::Node(o) => &o.metadata,
            Self::Namespace(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Ingress(o) => &o.metadata,
            Self::IngressClass(o) => &o.metadata,
            Self::IPAddressPool(o) => &o.metadata,
            Self::L2Advertisement(o) => &o.metadata,
        }
    }

    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        if Object::cluster_scoped(self.kind()) {
            ObjectKey::cluster(meta.name.clone().unwrap_or_default())
        } else {
            ObjectKey::of(meta)
        }
    }
}

/// Every object a source knows, by kind. Cheap to clone (objects are behind `Arc`).
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub services: BTreeMap<ObjectKey, Arc<core::Service>>,
    pub endpoints: BTreeMap<ObjectKey, Arc<core::Endpoints>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    pub pods: BTreeMap<ObjectKey, Arc<core::Pod>>,
    pub nodes: BTreeMap<ObjectKey, Arc<core::Node>>,
    pub namespaces: BTreeMap<ObjectKey, Arc<core::Namespace>>,
    pub secrets: BTreeMap<ObjectKey, Arc<core::Secret>>,
    /// Behind an `Arc` (as `origins`): the largest stores are shared by a source's state, the
    /// pipeline's working copy and the snapshot instead of copied; change them with
    /// `Arc::make_mut`.
    pub ingresses: Arc<BTreeMap<ObjectKey, Arc<Ingress>>>,
    pub ingress_classes: BTreeMap<ObjectKey, Arc<IngressClass>>,
    pub ip_address_pools: BTreeMap<ObjectKey, Arc<IPAddressPool>>,
    pub l2_advertisements: BTreeMap<ObjectKey, Arc<L2Advertisement>>,
    /// Where each object came from, for error messages.
    pub origins: Arc<BTreeMap<(&'static str, ObjectKey), Origin>>,
    /// Problems the source found before translation (unparsable documents, duplicates).
    pub invalid: Vec<Invalid>,
}

impl ClusterState {
    /// Add an object. A second object with the same kind and key is refused (the first one,
    /// in the source's order, stays) and reported.
    pub fn insert(&mut self, obj: Object, origin: Origin) {
        self.insert_shared(obj.into(), origin);
    }

    /// [`ClusterState::insert`] for an object already behind an `Arc`: nothing is copied.
    pub fn insert_shared(&mut self, obj: SharedObject, origin: Origin) {
        let kind = obj.kind();
        let key = obj.key();
        if key.name.is_empty() {
            self.invalid.push(
                Invalid::new(kind, &key, "metadata.name", "a name is required").with_origin(origin),
            );
            return;
        }
        match Arc::make_mut(&mut self.origins).entry((kind, key)) {
            Entry::Occupied(first) => {
                let msg = format!("duplicate object; the one in {} is used", first.get());
                let key = &first.key().1;
                self.invalid
                    .push(Invalid::new(kind, key, "metadata.name", msg).with_origin(origin));
                return;
            }
            Entry::Vacant(v) => {
                v.insert(origin);
            }
        }
        let key = obj.key();
        match obj {
            SharedObject::Service(o) => drop(self.services.insert(key, o)),
            SharedObject::Endpoints(o) => drop(self.endpoints.insert(key, o)),
            SharedObject::EndpointSlice(o) => drop(self.endpoint_slices.insert(key, o)),
            SharedObject::Pod(o) => drop(self.pods.insert(key, o)),
            SharedObject::Node(o) => drop(self.nodes.insert(key, o)),
            SharedObject::Namespace(o) => drop(self.namespaces.insert(key, o)),
            SharedObject::Secret(o) => drop(self.secrets.insert(key, o)),
            SharedObject::Ingress(o) => drop(Arc::make_mut(&mut self.ingresses).insert(key, o)),
            SharedObject::IngressClass(o) => drop(self.ingress_classes.insert(key, o)),
            SharedObject::IPAddressPool(o) => drop(self.ip_address_pools.insert(key, o)),
            SharedObject::L2Advertisement(o) => drop(self.l2_advertisements.insert(key, o)),
        }
    }

    /// Take out the object of `kind` and `key` (and its origin); whether there was one.
    pub fn remove(&mut self, kind: &'static str, key: &ObjectKey) -> bool {
        let removed = match kind {
            "Service" => self.services.remove(key).is_some(),
            "Endpoints" => self.endpoints.remove(key).is_some(),
            "EndpointSlice" => self.endpoint_slices.remove(key).is_some(),
            "Pod" => self.pods.remove(key).is_some(),
            "Node" => self.nodes.remove(key).is_some(),
            "Namespace" => self.namespaces.remove(key).is_some(),
            "Secret" => self.secrets.remove(key).is_some(),
            "Ingress" => Arc::make_mut(&mut self.ingresses).remove(key).is_some(),
            "IngressClass" => self.ingress_classes.remove(key).is_some(),
            "IPAddressPool" => self.ip_address_pools.remove(key).is_some(),
            "L2Advertisement" => self.l2_advertisements.remove(key).is_some(),
            _ => false,
        };
        if removed {
            Arc::make_mut(&mut self.origins).remove(&(kind, key.clone()));
        }
        removed
    }

    /// Where an object came from (the API when unknown).
    pub fn origin(&self, kind: &'static str, key: &ObjectKey) -> Origin {
        self.origins
            .get(&(kind, key.clone()))
            .cloned()
            .unwrap_or_default()
    }
}
