//! `lb-controller`: MetalLB-compatible LoadBalancer IP allocation against the Kubernetes API,
//! behind leader election. `lb-controller crds` prints the CRDs it reads; `lb-controller rbac`
//! the API access of every component (what the Helm chart's RBAC is rendered from).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portico_allocator::kube::metrics::LbMetrics;
use portico_allocator::kube::{KubeConfig, KubeView, LeaseConfig, default_identity};
use portico_cluster::Pipeline;
use portico_runtime::admin::{self, AdminState};
use portico_runtime::{Metrics, Publisher, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "lb-controller",
    version,
    about = "MetalLB-compatible LoadBalancer IP allocation for Portico"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Handle only Services with this spec.loadBalancerClass (unset: Services without a class).
    #[arg(long, env = "PORTICO_LB_CLASS")]
    lb_class: Option<String>,
    /// The coordination.k8s.io/v1 Lease replicas elect a leader on.
    #[arg(long, default_value = "portico-lb-controller")]
    lease_name: String,
    /// The Lease's namespace (default: the Pod's own, from `POD_NAMESPACE` or the service
    /// account; outside a cluster, the kubeconfig context's namespace). It must exist.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's name in the Lease (default: the Pod name, else host name, process id and a
    /// random suffix: never shared by two replicas).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds; the leader renews every third of it.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Serve the admin API (healthz, readyz, metrics, /api/views/allocations) on this address.
    #[arg(long)]
    admin_addr: Option<std::net::SocketAddr>,
    /// Also answer admin requests whose `Host` is this name or address (repeatable; `*`: any).
    /// Loopback and the admin address itself are always answered; other hosts get 421
    /// Misdirected Request (DNS rebinding protection).
    #[arg(long = "admin-allowed-host")]
    admin_allowed_hosts: Vec<admin::AllowedHost>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions this controller reads (or write them into --out).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the Kubernetes API access of every Portico component as JSON: the roles the Helm
    /// chart renders its RBAC from (its files/rbac.json) and which component gets which.
    Rbac,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Crds { out: Some(dir) }) => return portico_allocator::crds::write_to(&dir),
        Some(Command::Crds { out: None }) => {
            print!("{}", portico_allocator::crds::stream()?);
            return Ok(());
        }
        Some(Command::Rbac) => {
            print!("{}", portico_cluster::rbac::document_text());
            return Ok(());
        }
        None => {}
    }
    telemetry::init_logging("info", cli.log_json);
    portico_runtime::limits::raise_nofile_limit();
    let admin_addr = cli.admin_addr;
    let allowed_hosts = admin::AllowedHosts::new(cli.admin_allowed_hosts);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let shutdown = telemetry::shutdown_on_signals();
        let client = portico_cluster::kube_source::client_from_env().await?;
        let namespace = cli
            .lease_namespace
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let mut lease = LeaseConfig::new(
            cli.lease_name,
            namespace,
            cli.identity.unwrap_or_else(default_identity),
        );
        lease.duration = Duration::from_secs(cli.lease_seconds.max(3));
        lease.renew_every = lease.duration / 3;
        tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "leader election");
        let cfg = KubeConfig {
            lb_class: cli.lb_class,
            lease,
        };
        let (tx, rx) = portico_cluster::state_channel();
        let view = Publisher::new(KubeView::default());
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (client, sd) = (client.clone(), shutdown.clone());
            tasks.spawn(async move {
                portico_cluster::kube_source::run_for(
                    client,
                    portico_cluster::rbac::Component::LbController,
                    tx,
                    sd,
                )
                .await
            });
        }
        if let Some(addr) = admin_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--admin-addr {addr}"))?;
            let snapshots = Publisher::new(portico_model::Snapshot::default());
            let metrics = Arc::new(Metrics::new());
            let lb = metrics.with_registry(LbMetrics::register);
            let pipeline = Pipeline::kube().with_metrics(metrics.config.clone());
            let (p, rx2, sd) = (snapshots.clone(), rx.clone(), shutdown.clone());
            tasks.spawn(async move {
                pipeline.run(rx2, p, sd).await;
                Ok(())
            });
            let (v, sd) = (view.clone(), shutdown.clone());
            tasks.spawn(async move {
                lb.follow(v, sd).await;
                Ok(())
            });
            let state = AdminState::new(snapshots, metrics)
                .with_allowed_hosts(allowed_hosts)
                .with_published_view("allocations", view.clone());
            let sd = shutdown.clone();
            tasks.spawn(async move { Ok(admin::serve(listener, state, sd).await?) });
        }
        let elected = portico_allocator::kube::run_on(client, cfg, rx, view, shutdown.clone()).await;
        shutdown.cancel();
        elected?;
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    portico_runtime::install_crypto_provider();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-controller: {e:#}");
            ExitCode::FAILURE
        }
    }
}
