//! [`run`] is the whole agent: a source, the pipeline, the datapath chosen by `--datapath`
//! (`portico-datapath`) and the admin API, one task each, joined.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use portico_cluster::manifests::{self, ManifestsConfig};
use portico_cluster::{Pipeline, kube_source, state_channel};
use portico_model::control_plane::ControlPlaneConfig;
use portico_model::{Invalid, Snapshot};
use portico_runtime::admin::{self, AdminState};
use portico_runtime::{Metrics, Publisher};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use portico_datapath::userspace::{self, UserspaceDatapath};
use portico_datapath::{AgentConfig, Datapath, Kind};

/// Everything the agent needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Standalone: read objects from this directory. `None`: the Kubernetes API (KUBECONFIG,
    /// ~/.kube/config or the in-cluster service account).
    pub manifests: Option<PathBuf>,
    pub agent: AgentConfig,
    /// Which datapath serves the Services.
    pub datapath: Kind,
    /// Standalone only: where ClusterIPs and NodePorts are allocated from.
    pub control_plane: ControlPlaneConfig,
    /// Serve the admin API (health, readiness, metrics, `/api/views/datapath`) here.
    pub admin_addr: Option<SocketAddr>,
    /// `Host` values the admin API answers besides loopback and its own address.
    pub admin_allowed_hosts: Vec<admin::AllowedHost>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "no Kubernetes API configuration found (KUBECONFIG, ~/.kube/config or in-cluster); use --manifests DIR to run standalone"
    )]
    NoKubeConfig(#[source] BoxError),
    #[error("--manifests {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot bind the admin API on {addr}")]
    AdminBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{component} failed")]
    Component {
        component: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{component} panicked")]
    Panicked {
        component: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Run the agent until `shutdown`. The first component to fail stops the others.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    if let Some(dir) = &config.manifests
        && !tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir())
    {
        return Err(RunError::NotADirectory(dir.clone()));
    }
    let admin_listener = match config.admin_addr {
        Some(addr) => Some((
            addr,
            TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::AdminBind { addr, source })?,
        )),
        None => None,
    };

    let metrics = Arc::new(Metrics::new());
    let snapshots: Arc<Publisher<Snapshot>> = Publisher::new(Snapshot::default());
    let mut tasks: JoinSet<(&'static str, Result<(), BoxError>)> = JoinSet::new();

    let (tx, rx) = state_channel();
    let sd = shutdown.clone();
    let pipeline = match config.manifests.clone() {
        Some(dir) => {
            let source = ManifestsConfig::new(dir);
            tasks.spawn(async move {
                (
                    "manifests source",
                    manifests::run(source, tx, sd).await.map_err(Into::into),
                )
            });
            Pipeline::standalone(config.control_plane.clone())
        }
        None => {
            let client = kube_source::client_from_env()
                .await
                .map_err(|e| RunError::NoKubeConfig(e.into()))?;
            tasks.spawn(async move {
                (
                    "Kubernetes API source",
                    kube_source::run_for(
                        client,
                        portico_cluster::rbac::Component::ProxyAgent,
                        tx,
                        sd,
                    )
                    .await
                    .map_err(Into::into),
                )
            });
            Pipeline::kube()
        }
    };
    {
        let pipeline = pipeline.with_metrics(metrics.config.clone());
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            pipeline.run(rx, p, sd).await;
            ("pipeline", Ok(()))
        });
    }

    let status = match config.datapath {
        Kind::Userspace => {
            let datapath =
                UserspaceDatapath::new(config.agent.clone(), snapshots.clone(), shutdown.clone());
            let status = datapath.status();
            let (p, sd) = (snapshots.clone(), shutdown.clone());
            tasks.spawn(async move {
                datapath.run(p, sd).await;
                ("datapath", Ok(()))
            });
            status
        }
    };
    let collector = portico_datapath::metrics::DatapathCollector::new(status.clone());
    metrics.with_registry(|registry| registry.register_collector(Box::new(collector)));

    if let Some((addr, listener)) = admin_listener {
        let (view, errors, ready) = (status.clone(), status.clone(), status);
        let state = AdminState::new(snapshots.clone(), metrics.clone())
            .with_allowed_hosts(admin::AllowedHosts::new(
                config.admin_allowed_hosts.iter().cloned(),
            ))
            .with_published_view("datapath", view)
            .with_errors(Arc::new(move || bind_errors(&errors.current())))
            .with_ready_check(Arc::new(move || ready.is_ready()));
        let sd = shutdown.clone();
        info!(%addr, "admin API listening");
        tasks.spawn(async move {
            (
                "admin API",
                admin::serve(listener, state, sd).await.map_err(Into::into),
            )
        });
    }

    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok((_, Ok(()))) => continue,
            Ok((component, Err(source))) => RunError::Component { component, source },
            Err(source) => RunError::Panicked {
                component: "a task",
                source,
            },
        };
        error!(error = %failure, "shutting down");
        shutdown.cancel();
        if result.is_ok() {
            result = Err(failure);
        }
    }
    result
}

/// Frontends that could not be bound, as configuration errors of their Services.
fn bind_errors(status: &userspace::Status) -> Vec<Invalid> {
    let binds = status.bind_errors.iter().map(|b| {
        Invalid::new(
            "Service",
            &b.target.service,
            "",
            format!("cannot listen on {}: {}", b.frontend, b.error),
        )
    });
    let conflicts = status.conflicts.iter().map(|c| {
        Invalid::new(
            "Service",
            &c.refused.service,
            "",
            format!("{} is already served for {}", c.frontend, c.kept),
        )
    });
    binds.chain(conflicts).collect()
}
