//! `lb-controller`: MetalLB-compatible LoadBalancer IP allocation against the Kubernetes API,
//! behind leader election. `lb-controller crds` prints the CRDs it reads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lb_controller::kube::metrics::LbMetrics;
use lb_controller::kube::{KubeConfig, KubeView, LeaseConfig};
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
    #[arg(long, env = "POD_NAMESPACE", default_value = "portico-system")]
    lease_namespace: String,
    /// This replica's name in the Lease (default: the Pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds; the leader renews every third of it.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Serve the admin API (healthz, readyz, metrics, /api/views/allocations) on this address.
    #[arg(long)]
    admin_addr: Option<std::net::SocketAddr>,
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
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lb-controller".to_owned())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Crds { out: Some(dir) }) => return lb_controller::crds::write_to(&dir),
        Some(Command::Crds { out: None }) => {
            print!("{}", lb_controller::crds::stream()?);
            return Ok(());
        }
        None => {}
    }
    telemetry::init_logging("info", cli.log_json);
    let mut lease = LeaseConfig::new(
        cli.lease_name,
        cli.lease_namespace,
        cli.identity.unwrap_or_else(host_name),
    );
    lease.duration = Duration::from_secs(cli.lease_seconds.max(3));
    lease.renew_every = lease.duration / 3;
    let cfg = KubeConfig {
        lb_class: cli.lb_class,
        lease,
    };
    let admin_addr = cli.admin_addr;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let shutdown = telemetry::shutdown_on_signals();
        let client = portico_cluster::kube_source::client_from_env().await?;
        let (tx, rx) = portico_cluster::state_channel();
        let view = Publisher::new(KubeView::default());
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (client, sd) = (client.clone(), shutdown.clone());
            tasks.spawn(async move { portico_cluster::kube_source::run(client, tx, sd).await });
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
                .with_published_view("allocations", view.clone());
            let sd = shutdown.clone();
            tasks.spawn(async move { Ok(admin::serve(listener, state, sd).await?) });
        }
        lb_controller::kube::run_on(client, cfg, rx, view, shutdown.clone()).await;
        shutdown.cancel();
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
