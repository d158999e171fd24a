//! `lb-controller`: MetalLB-compatible LoadBalancer IP allocation against the Kubernetes API,
//! behind leader election. `lb-controller crds` prints the CRDs it reads; `lb-controller rbac`
//! the API access of every component (what the Helm chart's RBAC is rendered from).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portico_allocator::kube::process::{ControllerConfig, run_controller};
use portico_runtime::admin;
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
    let cfg = ControllerConfig {
        lb_class: cli.lb_class,
        lease_name: cli.lease_name,
        lease_namespace: cli.lease_namespace,
        identity: cli.identity,
        lease_seconds: cli.lease_seconds,
        admin_addr: cli.admin_addr,
        admin_allowed_hosts: admin::AllowedHosts::new(cli.admin_allowed_hosts),
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move { run_controller(cfg, telemetry::shutdown_on_signals()).await })
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
