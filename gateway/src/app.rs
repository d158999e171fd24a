//! Wiring: one process for one box. Source -> pipeline -> snapshot publisher, and every data
//! plane reading from it: the Service datapath (ClusterIP/NodePort), the Ingress router, the
//! LoadBalancer listeners and the admin API.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::Context;
use portico_cluster::manifests::{self, ManifestsConfig};
use portico_cluster::{Pipeline, state_channel};
use portico_model::Snapshot;
use portico_model::control_plane::ControlPlaneConfig;
use portico_runtime::admin::{self, AdminState};
use portico_runtime::{Metrics, Publisher};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cli::RunArgs;

/// Parse `FIRST-LAST`.
pub fn parse_port_range(s: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s.split_once('-').context("node port range must look like 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a <= b, "node port range {a}-{b} is empty");
    Ok(a..=b)
}

/// Run until `shutdown`. Listeners are bound here, before anything is served, so that a port in
/// use is an immediate, clear error.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let snapshots: Arc<Publisher<Snapshot>> = Publisher::new(Snapshot::default());
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    let admin_listener = TcpListener::bind(args.admin_addr).await.with_context(|| format!("cannot bind the admin API on {}", args.admin_addr))?;

    // Source and pipeline.
    let (tx, rx) = state_channel();
    let standalone = args.manifests.is_some();
    let pipeline = if let Some(dir) = &args.manifests {
        anyhow::ensure!(dir.is_dir(), "--manifests {}: not a directory", dir.display());
        let cfg = ControlPlaneConfig { service_cidr: args.service_cidr, node_port_range: parse_port_range(&args.node_port_range)? };
        let source = ManifestsConfig::new(dir.clone());
        let sd = shutdown.clone();
        tasks.spawn(async move { manifests::run(source, tx, sd).await });
        Pipeline::standalone(cfg)
    } else {
        drop(tx);
        anyhow::bail!("the Kubernetes API source is not wired in yet: use --manifests DIR");
    };
    let pipeline = pipeline.with_metrics(metrics.config.clone());
    {
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            pipeline.run(rx, p, sd).await;
            Ok(())
        });
    }

    let admin_state = AdminState::new(snapshots.clone(), metrics.clone());

    let mut admin_state = admin_state;

    // The Service datapath for this node (ClusterIP and NodePort forwarding).
    if !args.no_service_proxy {
        let node_ips = if args.node_ips.is_empty() && standalone { vec![IpAddr::V4(Ipv4Addr::LOCALHOST)] } else { args.node_ips.clone() };
        let datapath = proxy_agent::userspace::Datapath::new(proxy_agent::userspace::AgentConfig::new(args.node_name.clone(), node_ips));
        let status = datapath.status();
        admin_state = admin_state.with_view("datapath", Arc::new(move || serde_json::to_value(&*status.current()).unwrap_or_default()));
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            datapath.run(p, sd).await;
            Ok(())
        });
    }

    {
        let sd = shutdown.clone();
        let st = admin_state.clone();
        info!(addr = %args.admin_addr, "admin API listening");
        tasks.spawn(async move { admin::serve(admin_listener, st, sd).await.context("admin API") });
    }

    // The first task to fail takes the process down cleanly; the others are told to stop.
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(error = %format!("{e:#}"), "a component failed; shutting down");
                if result.is_ok() {
                    result = Err(e);
                }
                shutdown.cancel();
            }
            Err(e) => {
                error!(error = %e, "a component panicked; shutting down");
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(e.into());
                }
            }
        }
    }
    result
}
