//! The `lb-controller` process: the kube source, the election and the controller, and (when an
//! admin address is given) a pipeline, the admin API and the allocation metrics beside them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::Client;
use portico_cluster::rbac::Component;
use portico_cluster::{Pipeline, StateRx, kube_source};
use portico_runtime::admin::{self, AdminState, AllowedHosts};
use portico_runtime::{Metrics, Publisher};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::metrics::LbMetrics;
use super::{KubeConfig, KubeView, LeaseConfig, default_identity, run_on};

/// What `lb-controller` is told on its command line.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Handle only Services with this `spec.loadBalancerClass` (`None`: Services without one).
    pub lb_class: Option<String>,
    /// The Lease replicas elect a leader on.
    pub lease_name: String,
    /// The Lease's namespace; `None`: the client's default namespace.
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease; `None`: [`default_identity`].
    pub identity: Option<String>,
    /// Lease duration in seconds (at least 3); the leader renews every third of it.
    pub lease_seconds: u64,
    /// Serve the admin API here.
    pub admin_addr: Option<SocketAddr>,
    pub admin_allowed_hosts: AllowedHosts,
}

/// Run until `shutdown`: connect to the API, reflect it, take part in the election and allocate
/// while leading. The first part to fail ends the run with its error.
pub async fn run_controller(
    cfg: ControllerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = kube_source::client_from_env().await?;
    let kube_cfg = kube_config(&cfg, &client);
    let (tx, rx) = portico_cluster::state_channel();
    let view = Publisher::new(KubeView::default());
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    {
        let (client, sd) = (client.clone(), shutdown.clone());
        tasks.spawn(
            async move { kube_source::run_for(client, Component::LbController, tx, sd).await },
        );
    }
    if let Some(addr) = cfg.admin_addr {
        spawn_admin(
            &mut tasks,
            addr,
            cfg.admin_allowed_hosts,
            rx.clone(),
            view.clone(),
            &shutdown,
        )
        .await?;
    }
    let elected = run_on(client, kube_cfg, rx, view, shutdown.clone()).await;
    shutdown.cancel();
    elected?;
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// The controller's configuration: the Lease from the flags, with the client's namespace and a
/// unique identity where none is given.
fn kube_config(cfg: &ControllerConfig, client: &Client) -> KubeConfig {
    let namespace = cfg
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut lease = LeaseConfig::new(
        cfg.lease_name.clone(),
        namespace,
        cfg.identity.clone().unwrap_or_else(default_identity),
    );
    lease.duration = Duration::from_secs(cfg.lease_seconds.max(3));
    lease.renew_every = lease.duration / 3;
    info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "leader election");
    KubeConfig {
        lb_class: cfg.lb_class.clone(),
        lease,
    }
}

/// Bind the admin API on `addr` and spawn it with what it shows: a pipeline's snapshots, the
/// allocation metrics and the `allocations` view.
async fn spawn_admin(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    addr: SocketAddr,
    allowed_hosts: AllowedHosts,
    rx: StateRx,
    view: Arc<Publisher<KubeView>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--admin-addr {addr}"))?;
    let snapshots = Publisher::new(portico_model::Snapshot::default());
    let metrics = Arc::new(Metrics::new());
    let lb = metrics.with_registry(LbMetrics::register);
    let pipeline = Pipeline::kube().with_metrics(metrics.config.clone());
    let (p, sd) = (snapshots.clone(), shutdown.clone());
    tasks.spawn(async move {
        pipeline.run(rx, p, sd).await;
        Ok(())
    });
    let (v, sd) = (view.clone(), shutdown.clone());
    tasks.spawn(async move {
        lb.follow(v, sd).await;
        Ok(())
    });
    let state = AdminState::new(snapshots, metrics)
        .with_allowed_hosts(allowed_hosts)
        .with_published_view("allocations", view);
    let sd = shutdown.clone();
    tasks.spawn(async move { Ok(admin::serve(listener, state, sd).await?) });
    Ok(())
}
