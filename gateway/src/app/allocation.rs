//! LoadBalancer IP allocation: always standalone (Portico is the whole control plane there);
//! against the API only with `--allocate` (normally the lb-controller Deployment does it). Also
//! the `pools` admin view in every mode.

use std::sync::Arc;

use anyhow::Context;
use portico_allocator::kube::{KubeConfig, KubeView, LeaseConfig};
use portico_allocator::standalone::{AllocateHook, HookConfig};
use portico_cluster::StateRx;
use portico_runtime::Publisher;
use tracing::info;

use super::parts::Parts;
use super::source::Source;
use crate::cli::RunArgs;

/// The `pools` admin view from the cluster state: every IPAddressPool, counted from the
/// addresses in the Services' status (for kube mode when this process does not allocate).
fn observed_pools(state: &StateRx) -> serde_json::Value {
    let rows = state
        .borrow()
        .as_deref()
        .map(portico_allocator::observed_pool_status)
        .unwrap_or_default();
    serde_json::to_value(rows).unwrap_or_default()
}

/// Start the part the mode calls for: the standalone hook (returned, for the pipeline), the
/// leader-elected controller, or only the observed pools.
pub(super) fn start(
    parts: &mut Parts,
    args: &RunArgs,
    source: &Source,
) -> anyhow::Result<Option<AllocateHook>> {
    if source.standalone {
        return standalone_hook(parts, args, source).map(Some);
    }
    if args.allocate {
        kube_controller(parts, args, source)?;
    } else {
        // Not allocating: the pools and the addresses the Services' status holds.
        let state = source.state.clone();
        parts.admin(|a| a.with_view("pools", Arc::new(move || observed_pools(&state))));
    }
    Ok(None)
}

/// Standalone: the allocator runs as a pipeline hook, with its state file.
fn standalone_hook(
    parts: &mut Parts,
    args: &RunArgs,
    source: &Source,
) -> anyhow::Result<AllocateHook> {
    let hook = AllocateHook::new(HookConfig {
        state_dir: args.state_dir.clone(),
        lb_class: args.lb_class.clone(),
    })
    .context("loading the LoadBalancer allocation state")?;
    let view = hook.view();
    let pools = view.clone();
    // The Pods the manifests declare: their readiness decides the endpoints here.
    let state = source.state.clone();
    parts.admin(|a| {
        a.with_view(
            "pools",
            Arc::new(move || serde_json::to_value(&pools.current().pools).unwrap_or_default()),
        )
        .with_view(
            "pods",
            Arc::new(move || {
                let rows = state
                    .borrow()
                    .as_deref()
                    .map(portico_runtime::views::pods)
                    .unwrap_or_default();
                serde_json::to_value(rows).unwrap_or_default()
            }),
        )
        .with_published_view("allocations", view)
    });
    Ok(hook)
}

/// `--allocate` against the API: the same leader-elected controller as the lb-controller
/// binary, fed by this process's own reflectors; replicas of either kind share the Lease, so
/// only one ever allocates.
fn kube_controller(parts: &mut Parts, args: &RunArgs, source: &Source) -> anyhow::Result<()> {
    let client = source
        .client
        .clone()
        .context("--allocate needs the Kubernetes API")?;
    // Unique per process unless the Pod name is given: two replicas must never share it.
    let identity = portico_allocator::kube::default_identity();
    let namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    info!(lease = %args.lease_name, %namespace, %identity, "LoadBalancer allocation: leader election");
    let cfg = KubeConfig {
        lb_class: args.lb_class.clone(),
        lease: LeaseConfig::new(args.lease_name.clone(), namespace, identity),
    };
    let view = Publisher::new(KubeView::default());
    // The leader shows its allocator's pools; a standby replica shows the cluster's.
    let (leading, state) = (view.clone(), source.state.clone());
    let allocations = view.clone();
    parts.admin(|a| {
        a.with_published_view("allocations", allocations).with_view(
            "pools",
            Arc::new(move || {
                let current = leading.current();
                if current.leader {
                    serde_json::to_value(&current.allocation.pools).unwrap_or_default()
                } else {
                    observed_pools(&state)
                }
            }),
        )
    });
    let (rx, sd) = (source.state.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        // A missing Lease namespace ends the process with the reason, not a silent retry.
        Ok(portico_allocator::kube::run_on(client, cfg, rx, view, sd).await?)
    });
    Ok(())
}
