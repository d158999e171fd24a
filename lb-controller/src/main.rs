//! `lb-controller`: MetalLB-compatible LoadBalancer IP allocation against the Kubernetes API,
//! behind leader election. `lb-controller crds` prints the CRDs it reads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lb_controller::kube::{KubeConfig, LeaseConfig};
use portico_runtime::telemetry;

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
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let shutdown = telemetry::shutdown_on_signals();
        let client = portico_cluster::kube_source::client_from_env().await?;
        lb_controller::kube::run(client, cfg, shutdown).await
    })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-controller: {e:#}");
            ExitCode::FAILURE
        }
    }
}
