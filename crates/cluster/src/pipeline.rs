//! The one writer of the snapshot: state in, snapshot out.

use std::sync::Arc;
use std::time::Instant;

use portico_model::control_plane::{self, Allocations, ControlPlaneConfig};
use portico_model::{ClusterState, Snapshot, translate};
use portico_runtime::Publisher;
use portico_runtime::metrics::ConfigMetrics;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
}

impl Pipeline {
    /// The pipeline for the Kubernetes API source: translation only.
    pub fn kube() -> Self {
        Self { control_plane: None, hooks: Vec::new(), generation: 0, metrics: None }
    }

    /// The pipeline for standalone mode.
    pub fn standalone(cfg: ControlPlaneConfig) -> Self {
        Self { control_plane: Some((cfg, Allocations::default())), hooks: Vec::new(), generation: 0, metrics: None }
    }

    pub fn with_metrics(mut self, metrics: ConfigMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_hook(mut self, hook: Box<dyn StateHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Build the next snapshot from `state`. Pure apart from the allocations it remembers.
    pub fn build(&mut self, state: &ClusterState) -> Snapshot {
        let mut state = state.clone();
        if let Some((cfg, alloc)) = &mut self.control_plane {
            control_plane::complete(&mut state, cfg, alloc);
        }
        for hook in &mut self.hooks {
            hook.apply(&mut state);
        }
        self.generation += 1;
        translate(&state, self.generation)
    }

    /// Publish a snapshot for every state the source sends, until shutdown or until the source
    /// goes away.
    pub async fn run(mut self, mut rx: StateRx, publisher: Arc<Publisher<Snapshot>>, shutdown: CancellationToken) {
        loop {
            let state = rx.borrow_and_update().clone();
            if let Some(state) = state {
                let started = Instant::now();
                let snap = self.build(&state);
                let errors = snap.errors.len();
                let previous_errors: Vec<String> = publisher.peek().errors.iter().map(ToString::to_string).collect();
                for e in snap.errors.iter() {
                    let text = e.to_string();
                    if !previous_errors.contains(&text) {
                        warn!(error = %text, "configuration object rejected; the rest keeps serving");
                    }
                }
                let generation = snap.generation;
                let services = snap.services.len();
                let ingresses = snap.ingresses.len();
                publisher.publish(snap);
                if let Some(m) = &self.metrics {
                    m.publishes.inc();
                    m.generation.set(generation as i64);
                }
                info!(generation, services, ingresses, errors, took_us = started.elapsed().as_micros() as u64, "snapshot published");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}
