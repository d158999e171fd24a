//! Where the state comes from (a manifests directory, or the Kubernetes API) and the pipeline
//! that turns it into snapshots.

use anyhow::Context;
use portico_cluster::manifests::{self, ManifestsConfig};
use portico_cluster::{Pipeline, StateRx, state_channel};
use portico_model::control_plane::ControlPlaneConfig;

use super::parts::Parts;
use crate::cli::RunArgs;

/// Parse `FIRST-LAST`.
pub fn parse_port_range(s: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s
        .split_once('-')
        .context("node port range must look like 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a <= b, "node port range {a}-{b} is empty");
    Ok(a..=b)
}

/// The running source, and the pipeline (not yet running) that follows it.
pub(super) struct Source {
    pub pipeline: Pipeline,
    pub state: StateRx,
    /// Kube mode only.
    pub client: Option<kube::Client>,
    pub standalone: bool,
}

/// Start the source: the manifests directory (`--manifests`), else the Kubernetes API.
pub(super) async fn start(parts: &mut Parts, args: &RunArgs) -> anyhow::Result<Source> {
    let (tx, rx) = state_channel();
    let mut client = None;
    let pipeline = if let Some(dir) = &args.manifests {
        anyhow::ensure!(
            dir.is_dir(),
            "--manifests {}: not a directory",
            dir.display()
        );
        let cfg = ControlPlaneConfig {
            service_cidr: args.service_cidr,
            node_port_range: parse_port_range(&args.node_port_range)?,
        };
        let source = ManifestsConfig::new(dir.clone());
        let sd = parts.shutdown.clone();
        parts
            .tasks
            .spawn(async move { manifests::run(source, tx, sd).await });
        Pipeline::standalone(cfg)
    } else {
        let kube = portico_cluster::kube_source::client_from_env()
            .await
            .context(
                "no Kubernetes API configuration found (use --manifests DIR to run standalone)",
            )?;
        client = Some(kube.clone());
        let sd = parts.shutdown.clone();
        // Only what this gateway's RBAC roles allow (more with --allocate).
        let component = portico_cluster::rbac::Component::Gateway {
            allocate: args.allocate,
        };
        parts.tasks.spawn(async move {
            portico_cluster::kube_source::run_for(kube, component, tx, sd).await
        });
        Pipeline::kube()
    };
    Ok(Source {
        pipeline: pipeline.with_metrics(parts.metrics.config.clone()),
        state: rx,
        standalone: args.manifests.is_some(),
        client,
    })
}

/// Run the pipeline (with whatever hooks the other parts added): one publish per state.
pub(super) fn spawn_pipeline(parts: &mut Parts, pipeline: Pipeline, state: StateRx) {
    let (p, sd) = (parts.snapshots.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        pipeline.run(state, p, sd).await;
        Ok(())
    });
}
