//! `proxy-agent`: parse arguments, run the agent until SIGINT or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ipnet::IpNet;
use portico_model::control_plane::ControlPlaneConfig;
use portico_runtime::telemetry;
use proxy_agent::{AgentConfig, Config, DatapathKind, RunError};

/// Portico's node agent: ClusterIP and NodePort forwarding for TCP and UDP (kube-proxy's job).
#[derive(Parser, Debug)]
#[command(name = "proxy-agent", version)]
struct Args {
    /// Run standalone from the manifests in this directory (watched for changes). Without it
    /// the agent reads the Kubernetes API (KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, env = "PORTICO_MANIFESTS")]
    manifests: Option<PathBuf>,
    /// This node's name: traffic policy `Local` keeps to endpoints on this node.
    /// Defaults to the host name.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// An address NodePorts are served on (repeatable). Standalone default: 127.0.0.1; with
    /// the Kubernetes API: the addresses of this node's Node object.
    #[arg(long = "node-ip")]
    node_ips: Vec<IpAddr>,
    /// Standalone: the range ClusterIPs are allocated from.
    #[arg(long, default_value = "127.96.0.0/16")]
    service_cidr: IpNet,
    /// Standalone: the NodePort range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    node_port_range: std::ops::RangeInclusive<u16>,
    /// Serve the admin API (health, readiness, metrics, /api/views/datapath) on this address.
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// Also answer admin requests whose `Host` is this name or address (repeatable; `*`: any).
    /// Loopback and the admin address itself are always answered; other hosts get 421
    /// Misdirected Request (DNS rebinding protection).
    #[arg(long = "admin-allowed-host")]
    admin_allowed_hosts: Vec<portico_runtime::admin::AllowedHost>,
    /// The Service datapath: `userspace` (the only one today).
    #[arg(long, default_value = "userspace")]
    datapath: DatapathKind,
    /// UDP flows idle for this many seconds are forgotten.
    #[arg(long, default_value_t = 30)]
    udp_idle_seconds: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 30000-32767")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a > b {
        return Err(format!("{a}-{b} is empty"));
    }
    Ok(a..=b)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn main() -> ExitCode {
    portico_runtime::install_crypto_provider();
    let args = Args::parse();
    let node_ips = if args.node_ips.is_empty() && args.manifests.is_some() {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    } else {
        args.node_ips.clone()
    };
    let mut agent = AgentConfig::new(args.node_name.clone().unwrap_or_else(host_name), node_ips);
    agent.udp_idle = Duration::from_secs(args.udp_idle_seconds.max(1));
    let config = Config {
        manifests: args.manifests.clone(),
        agent,
        datapath: args.datapath,
        control_plane: ControlPlaneConfig {
            service_cidr: args.service_cidr,
            node_port_range: args.node_port_range.clone(),
        },
        admin_addr: args.admin_addr,
        admin_allowed_hosts: args.admin_allowed_hosts.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy-agent: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        telemetry::init_logging("info", args.log_json);
        portico_runtime::limits::raise_nofile_limit();
        proxy_agent::run(config, telemetry::shutdown_on_signals()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Nothing to run against: a usage error, like a bad flag.
        Err(e @ RunError::NoKubeConfig(_)) => {
            eprintln!("proxy-agent: {:#}", anyhow::Error::from(e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("proxy-agent: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
