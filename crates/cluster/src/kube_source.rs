//! The Kubernetes API source: one kube-runtime reflector (watcher + store) per kind, and one task
//! that turns the stores into a whole [`ClusterState`] after every change.
//!
//! - Nothing is sent before every kind has finished its initial list (a kind the API server does
//!   not serve, such as MetalLB's CRDs when MetalLB is not installed, counts as listed and empty;
//!   it fills in by itself if the CRD appears later).
//! - Changes are debounced ([`DEBOUNCE`], at most [`MAX_DELAY`] under a constant stream) so a
//!   burst becomes one state.
//! - Watch errors are logged and retried with [`backoff::WatchBackoff`] (0.8 s doubling to at
//!   most 5 s, so a watch is back within 5 s of the API server after an outage of any length;
//!   kube-runtime's default grows to 30-60 s). A store is never
//!   cleared by an error: after a `410 Expired` the watcher re-lists and the store is swapped in
//!   one step when the new list is complete.
//! - Each component reflects only the kinds its RBAC roles let it list and watch
//!   ([`run_for`], from [`crate::rbac`]); the kinds it does not read stay empty.
//! - Pods are not watched: in kube mode EndpointSlices are the endpoints source, and a Pod
//!   reflector would cost memory and a rebuild on every Pod status change.
//!
//! The state shares the reflectors' `Arc`s (no object is copied per rebuild); the API server
//! guarantees one object per kind and key, which is what [`ClusterState::insert`] would check.

pub mod backoff;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use portico_model::metallb::{IPAddressPool, L2Advertisement};
use portico_model::{ClusterState, Invalid, ObjectKey};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::StateTx;
use crate::rbac::{Component, Kind};

/// Quiet time after a change before the state is rebuilt.
pub const DEBOUNCE: Duration = Duration::from_millis(5);
/// The longest a change waits under a constant stream of changes.
pub const MAX_DELAY: Duration = Duration::from_millis(100);

/// A client as kubectl would build one: `KUBECONFIG`, else `~/.kube/config`, else the in-cluster
/// service account.
pub async fn client_from_env() -> anyhow::Result<Client> {
    Ok(Client::try_default().await?)
}

/// One reflected kind: its store and whether its initial list is done.
struct Reflected<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    ready: watch::Receiver<bool>,
}

/// Start the reflector of one kind on `tasks`. `optional` kinds that the API server does not
/// serve (404) count as listed and empty.
fn reflect<K>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    optional: bool,
    changed: Arc<Notify>,
) -> Reflected<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    reflect_into(
        tasks,
        Writer::default(),
        api,
        config,
        kind,
        optional,
        changed,
    )
}

fn reflect_into<K>(
    tasks: &mut JoinSet<()>,
    writer: Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    optional: bool,
    changed: Arc<Notify>,
) -> Reflected<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let store = writer.as_reader();
    let (ready_tx, ready) = watch::channel(false);
    let stream = reflector::reflector(
        writer,
        watcher(api, config).backoff(backoff::WatchBackoff::default()),
    );
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut absent = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if absent {
                        info!(kind, "now served by the API server");
                        absent = false;
                    }
                    debug!(kind, "listed");
                    ready_tx.send_replace(true);
                    changed.notify_one();
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(watcher::Error::InitialListFailed(kube::Error::Api(status))) if optional && status.code == 404 => {
                    if !absent {
                        warn!(kind, "not served by the API server (CRD not installed?); treated as empty until it is");
                        absent = true;
                    }
                    if !*ready_tx.borrow() {
                        ready_tx.send_replace(true);
                        changed.notify_one();
                    }
                }
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    info!(kind, "resourceVersion expired; re-listing (the objects already known keep serving)");
                }
                Err(e) => warn!(kind, error = %e, "watch failed; retrying with backoff, the objects already known keep serving"),
            }
        }
    });
    Reflected { store, ready }
}

struct Stores {
    services: Option<Reflected<Service>>,
    endpoint_slices: Option<Reflected<EndpointSlice>>,
    nodes: Option<Reflected<Node>>,
    namespaces: Option<Reflected<Namespace>>,
    secrets: Option<Reflected<Secret>>,
    ingresses: Option<Reflected<Ingress>>,
    ingress_classes: Option<Reflected<IngressClass>>,
    // Custom resources are read untyped and converted one by one: the API server only checks
    // them against the CRD's schema, and one object our types refuse must not stop the kind.
    ip_address_pools: Option<Reflected<DynamicObject>>,
    l2_advertisements: Option<Reflected<DynamicObject>>,
}

impl Stores {
    /// Reflectors for the kinds in `kinds` only; the others stay empty in every state.
    fn start(
        client: &Client,
        kinds: &BTreeSet<Kind>,
        tasks: &mut JoinSet<()>,
        changed: &Arc<Notify>,
    ) -> Self {
        let cfg = watcher::Config::default;
        let mut s = Starter {
            client,
            kinds,
            tasks,
            changed,
        };
        Self {
            services: s.all(Kind::Service, "Service", cfg()),
            endpoint_slices: s.all(Kind::EndpointSlice, "EndpointSlice", cfg()),
            nodes: s.all(Kind::Node, "Node", cfg()),
            namespaces: s.all(Kind::Namespace, "Namespace", cfg()),
            secrets: s.all(
                Kind::Secret,
                "Secret",
                cfg().fields("type=kubernetes.io/tls"),
            ),
            ingresses: s.all(Kind::Ingress, "Ingress", cfg()),
            ingress_classes: s.all(Kind::IngressClass, "IngressClass", cfg()),
            ip_address_pools: s.custom::<IPAddressPool>(Kind::IPAddressPool, "IPAddressPool"),
            l2_advertisements: s
                .custom::<L2Advertisement>(Kind::L2Advertisement, "L2Advertisement"),
        }
    }

    fn readiness(&self) -> Vec<watch::Receiver<bool>> {
        [
            self.services.as_ref().map(|r| r.ready.clone()),
            self.endpoint_slices.as_ref().map(|r| r.ready.clone()),
            self.nodes.as_ref().map(|r| r.ready.clone()),
            self.namespaces.as_ref().map(|r| r.ready.clone()),
            self.secrets.as_ref().map(|r| r.ready.clone()),
            self.ingresses.as_ref().map(|r| r.ready.clone()),
            self.ingress_classes.as_ref().map(|r| r.ready.clone()),
            self.ip_address_pools.as_ref().map(|r| r.ready.clone()),
            self.l2_advertisements.as_ref().map(|r| r.ready.clone()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The whole state, from what the stores hold now.
    fn state(&self) -> ClusterState {
        let mut invalid = Vec::new();
        let ip_address_pools = self
            .ip_address_pools
            .as_ref()
            .map(|r| custom(&r.store, "IPAddressPool", &mut invalid))
            .unwrap_or_default();
        let l2_advertisements = self
            .l2_advertisements
            .as_ref()
            .map(|r| custom(&r.store, "L2Advertisement", &mut invalid))
            .unwrap_or_default();
        ClusterState {
            services: namespaced(&self.services),
            endpoint_slices: namespaced(&self.endpoint_slices),
            nodes: cluster_scoped(&self.nodes),
            namespaces: cluster_scoped(&self.namespaces),
            secrets: namespaced(&self.secrets),
            ingresses: Arc::new(namespaced(&self.ingresses)),
            ingress_classes: cluster_scoped(&self.ingress_classes),
            ip_address_pools,
            l2_advertisements,
            invalid,
            ..ClusterState::default()
        }
    }
}

/// Starts the reflector of one kind when it is wanted.
struct Starter<'a> {
    client: &'a Client,
    kinds: &'a BTreeSet<Kind>,
    tasks: &'a mut JoinSet<()>,
    changed: &'a Arc<Notify>,
}

impl Starter<'_> {
    /// A built-in kind, watched in every namespace.
    fn all<K>(&mut self, k: Kind, name: &'static str, cfg: watcher::Config) -> Option<Reflected<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let api = Api::all(self.client.clone());
        let changed = self.changed.clone();
        self.kinds
            .contains(&k)
            .then(|| reflect(self.tasks, api, cfg, name, false, changed))
    }

    /// A custom resource, read untyped (see [`reflect_custom`]).
    fn custom<K>(&mut self, k: Kind, name: &'static str) -> Option<Reflected<DynamicObject>>
    where
        K: Resource<DynamicType = ()>,
    {
        let changed = self.changed.clone();
        self.kinds
            .contains(&k)
            .then(|| reflect_custom::<K>(self.tasks, self.client, name, changed))
    }
}

fn reflect_custom<K>(
    tasks: &mut JoinSet<()>,
    client: &Client,
    kind: &'static str,
    changed: Arc<Notify>,
) -> Reflected<DynamicObject>
where
    K: Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api = Api::all_with(client.clone(), &ar);
    reflect_into(
        tasks,
        Writer::new(ar),
        api,
        watcher::Config::default(),
        kind,
        true,
        changed,
    )
}

/// Typed custom resources from untyped ones; those that do not convert are reported.
fn custom<K>(
    store: &Store<DynamicObject>,
    kind: &'static str,
    invalid: &mut Vec<Invalid>,
) -> BTreeMap<ObjectKey, Arc<K>>
where
    K: Resource + DeserializeOwned,
{
    let mut out = BTreeMap::new();
    for obj in store.state() {
        let key = ObjectKey::of(&obj.metadata);
        let mut value = match serde_json::to_value(&*obj) {
            Ok(v) => v,
            Err(e) => {
                invalid.push(Invalid::new(kind, &key, "", format!("cannot be read: {e}")));
                continue;
            }
        };
        // Every field of MetalLB's specs is optional, so the CRDs allow leaving out `spec`.
        if let Some(o) = value.as_object_mut() {
            o.entry("spec").or_insert_with(|| serde_json::json!({}));
        }
        match serde_json::from_value::<K>(value) {
            Ok(k) => drop(out.insert(key, Arc::new(k))),
            Err(e) => invalid.push(Invalid::new(
                kind,
                &key,
                "spec",
                format!("does not match the {kind} schema: {e}"),
            )),
        }
    }
    out
}

fn namespaced<K: Resource + Clone + 'static>(
    reflected: &Option<Reflected<K>>,
) -> BTreeMap<ObjectKey, Arc<K>>
where
    K::DynamicType: Eq + Hash + Clone,
{
    let Some(r) = reflected else {
        return BTreeMap::new();
    };
    r.store
        .state()
        .into_iter()
        .map(|o| (ObjectKey::of(o.meta()), o))
        .collect()
}

fn cluster_scoped<K: Resource + Clone + 'static>(
    reflected: &Option<Reflected<K>>,
) -> BTreeMap<ObjectKey, Arc<K>>
where
    K::DynamicType: Eq + Hash + Clone,
{
    let Some(r) = reflected else {
        return BTreeMap::new();
    };
    r.store
        .state()
        .into_iter()
        .map(|o| {
            (
                ObjectKey::cluster(o.meta().name.clone().unwrap_or_default()),
                o,
            )
        })
        .collect()
}

/// Reflect every kind Portico reads into `tx` until shutdown (what a single process doing every
/// job needs; a component uses [`run_for`]).
pub async fn run(client: Client, tx: StateTx, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_watching(client, Kind::ALL.into_iter().collect(), tx, shutdown).await
}

/// Reflect what `component` may read (its [`rbac`](crate::rbac) roles' kinds) into `tx` until
/// shutdown. The kinds it does not read stay empty.
pub async fn run_for(
    client: Client,
    component: Component,
    tx: StateTx,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_watching(client, component.watched(), tx, shutdown).await
}

/// Reflect the kinds in `kinds` into `tx` until shutdown.
pub async fn run_watching(
    client: Client,
    kinds: BTreeSet<Kind>,
    tx: StateTx,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let changed = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let stores = Stores::start(&client, &kinds, &mut tasks, &changed);
    info!(kinds = ?kinds, "watching");

    for mut ready in stores.readiness() {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = ready.wait_for(|r| *r) => { r?; }
        }
    }
    info!(
        took_ms = started.elapsed().as_millis() as u64,
        "initial lists done"
    );

    loop {
        let t = Instant::now();
        let state = stores.state();
        let (services, slices, ingresses) = (
            state.services.len(),
            state.endpoint_slices.len(),
            state.ingresses.len(),
        );
        tx.send_replace(Some(Arc::new(state)));
        debug!(
            services,
            slices,
            ingresses,
            took_us = t.elapsed().as_micros() as u64,
            "cluster state sent"
        );

        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = changed.notified() => {}
        }
        // Coalesce a burst: wait for quiet, but not forever.
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = changed.notified() => {}
                _ = tokio::time::sleep(DEBOUNCE) => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    tasks.abort_all();
    Ok(())
}
