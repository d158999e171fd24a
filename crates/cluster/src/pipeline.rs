//! The one writer of the snapshot: state in, snapshot out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use portico_model::ObjectKey;
use portico_model::service::Service;
use portico_model::snapshot::TlsSecret;

use portico_model::control_plane::{self, Allocations, ControlPlaneConfig};
use portico_model::routes::{self, ClassConfig, IngressCache};
use portico_model::{ClusterState, Snapshot, translate};
use portico_runtime::Publisher;
use portico_runtime::metrics::ConfigMetrics;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::StateRx;

/// Work done on the raw state before translation, in order. Hooks are pure with respect to the
/// outside world (any persistence they need is their own business) and must not block for long.
pub trait StateHook: Send {
    fn name(&self) -> &'static str;
    fn apply(&mut self, state: &mut ClusterState);
}

/// Everything between a source and the publisher.
pub struct Pipeline {
    /// Standalone only: play the API server's allocators and the endpoints controller.
    control_plane: Option<(ControlPlaneConfig, Allocations)>,
    hooks: Vec<Box<dyn StateHook>>,
    generation: u64,
    metrics: Option<ConfigMetrics>,
    /// Services of the previous snapshot: an edit that fails validation keeps the last good one.
    last_services: BTreeMap<ObjectKey, Arc<Service>>,
    /// TLS Secrets of the previous snapshot: a Secret edited into an invalid one (e.g. its
    /// `tls.key` removed) keeps its last good certificate serving, as a Service does.
    last_tls_secrets: BTreeMap<ObjectKey, Arc<TlsSecret>>,
    /// The IngressClass whose Ingresses are routed into each snapshot, and what one translation
    /// hands the next; `None`: no routes (a part without an HTTP data plane).
    routes: Option<(ClassConfig, IngressCache)>,
}

impl Pipeline {
    /// The pipeline for the Kubernetes API source: translation only.
    pub fn kube() -> Self {
        Self {
            control_plane: None,
            hooks: Vec::new(),
            generation: 0,
            metrics: None,
            last_services: BTreeMap::new(),
            last_tls_secrets: BTreeMap::new(),
            routes: None,
        }
    }

    /// The pipeline for standalone mode.
    pub fn standalone(cfg: ControlPlaneConfig) -> Self {
        Self {
            control_plane: Some((cfg, Allocations::default())),
            hooks: Vec::new(),
            generation: 0,
            metrics: None,
            last_services: BTreeMap::new(),
            last_tls_secrets: BTreeMap::new(),
            routes: None,
        }
    }

    pub fn with_metrics(mut self, metrics: ConfigMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Route every snapshot's Ingresses of `class` ([`routes::ingress::route`]): the routes are
    /// published with the snapshot and their errors join its one error list.
    pub fn with_routes(mut self, class: ClassConfig) -> Self {
        self.routes = Some((class, IngressCache::default()));
        self
    }

    pub fn with_hook(mut self, hook: Box<dyn StateHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Build the next snapshot from `state`. Pure apart from the allocations it remembers.
    pub fn build(&mut self, state: &ClusterState) -> Snapshot {
        let t0 = Instant::now();
        let mut state = state.clone();
        let cloned = t0.elapsed();
        if let Some((cfg, alloc)) = &mut self.control_plane {
            control_plane::complete(&mut state, cfg, alloc);
        }
        let completed = t0.elapsed();
        for hook in &mut self.hooks {
            let started = Instant::now();
            hook.apply(&mut state);
            debug!(
                hook = hook.name(),
                took_us = started.elapsed().as_micros() as u64,
                "state hook applied"
            );
        }
        let hooked = t0.elapsed();
        self.generation += 1;
        let mut snap = translate(&state, self.generation);
        let translated = t0.elapsed();
        self.keep_last_good(&mut snap);
        self.last_services = snap.services.clone();
        self.last_tls_secrets = snap.tls_secrets.clone();
        let kept = t0.elapsed();
        if let Some((class, cache)) = &mut self.routes {
            routes::ingress::route(&mut snap, class, cache);
        }
        debug!(
            generation = self.generation,
            clone_us = cloned.as_micros() as u64,
            control_plane_us = (completed - cloned).as_micros() as u64,
            hooks_us = (hooked - completed).as_micros() as u64,
            translate_us = (translated - hooked).as_micros() as u64,
            last_good_us = (kept - translated).as_micros() as u64,
            routes_us = (t0.elapsed() - kept).as_micros() as u64,
            "snapshot built"
        );
        snap
    }

    /// A Service or TLS Secret that was serving and whose new version is invalid keeps serving
    /// as it was; the error says so. A new invalid one is simply left out; a deleted one is gone.
    fn keep_last_good(&self, snap: &mut Snapshot) {
        let mut errors = snap.errors.to_vec();
        let mut changed = false;
        for e in &mut errors {
            let Some(key) = &e.object else { continue };
            let kept = match e.kind.as_str() {
                "Service" => keep(&mut snap.services, &self.last_services, key),
                "Secret" => keep(&mut snap.tls_secrets, &self.last_tls_secrets, key),
                _ => false,
            };
            if kept {
                e.message.push_str("; the last good version keeps serving");
                changed = true;
            }
        }
        if changed {
            snap.errors = errors.into();
        }
    }

    /// Publish a snapshot for every state the source sends, until shutdown or until the source
    /// goes away.
    pub async fn run(
        mut self,
        mut rx: StateRx,
        publisher: Arc<Publisher<Snapshot>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let state = rx.borrow_and_update().clone();
            if let Some(state) = state {
                let started = Instant::now();
                let snap = self.build(&state);
                let errors = snap.errors.len();
                let previous_errors: Vec<String> = publisher
                    .peek()
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                for e in snap.errors.iter() {
                    let text = e.to_string();
                    if !previous_errors.contains(&text) {
                        warn!(error = %text, "configuration object rejected; the rest keeps serving");
                    }
                }
                let generation = snap.generation;
                let services = snap.services.len();
                let ingresses = snap.ingresses.len();
                let previous = publisher.current();
                publisher.publish(snap);
                // The last reference to the previous snapshot may hold the only copy of large
                // stores: free it off the runtime's threads.
                tokio::task::spawn_blocking(move || drop(previous));
                if let Some(m) = &self.metrics {
                    m.publishes.inc();
                    m.generation.set(generation as i64);
                }
                info!(
                    generation,
                    services,
                    ingresses,
                    errors,
                    took_us = started.elapsed().as_micros() as u64,
                    "snapshot published"
                );
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// Put `key`'s previous value back into `now` when the new version was left out as invalid.
fn keep<T>(
    now: &mut BTreeMap<ObjectKey, Arc<T>>,
    last: &BTreeMap<ObjectKey, Arc<T>>,
    key: &ObjectKey,
) -> bool {
    if now.contains_key(key) {
        return false;
    }
    match last.get(key) {
        Some(prev) => {
            now.insert(key.clone(), prev.clone());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
