//! Command-line interface of the `gateway` binary.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "gateway",
    version,
    about = "Portico: Ingress, LoadBalancer and Service proxying for bare-metal Kubernetes"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the seed tutorial standalone: three hellok8s pods, their Services, and Portico in front.
    Quickstart(QuickstartArgs),
    /// Show what a running Portico serves, kubectl-style.
    Get(GetArgs),
    /// Announce IPs with ARP/NDP on an interface (diagnostics and namespace tests).
    #[command(hide = true)]
    AnnounceDebug(portico_announce::debug::AnnounceDebugArgs),
    /// The hellok8s demo app (used by the quickstart; one process per "pod").
    #[command(hide = true)]
    Hellok8s {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Serve a directory of Kubernetes manifests instead of talking to the Kubernetes API.
    #[arg(long, env = "PORTICO_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Admin API (health, readiness, metrics, JSON views). An IPv6 address may come without
    /// brackets (`fd00::5:9901`, the port last), as `$(POD_IP):PORT` gives it.
    #[arg(long, default_value = "127.0.0.1:9901", value_parser = parse_listen_addr)]
    pub admin_addr: SocketAddr,
    /// Also answer admin requests whose `Host` is this name or address (repeatable; `*`: any).
    /// Loopback and the admin address itself are always answered; other hosts get 421
    /// Misdirected Request (DNS rebinding protection).
    #[arg(long = "admin-allowed-host")]
    pub admin_allowed_hosts: Vec<portico_runtime::admin::AllowedHost>,
    /// Plain HTTP listener of the Ingress router.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub http_addr: SocketAddr,
    /// HTTPS listener of the Ingress router.
    #[arg(long, default_value = "0.0.0.0:443")]
    pub https_addr: SocketAddr,
    /// This node's name (traffic policy Local, L2 election).
    #[arg(long, env = "NODE_NAME", default_value = "portico-node")]
    pub node_name: String,
    /// This node's addresses for NodePorts (repeatable). Standalone default: 127.0.0.1.
    #[arg(long = "node-ip")]
    pub node_ips: Vec<IpAddr>,
    /// Standalone: the range ClusterIPs are assigned from.
    #[arg(long, default_value = "127.96.0.0/16")]
    pub service_cidr: ipnet::IpNet,
    /// Standalone: the NodePort range, as `FIRST-LAST`.
    #[arg(long, default_value = "30000-32767")]
    pub node_port_range: String,
    /// Do not run the embedded Service datapath (ClusterIP/NodePort forwarding).
    #[arg(long)]
    pub no_service_proxy: bool,
    /// The embedded Service datapath: `userspace` (the only one today).
    #[arg(long, default_value = "userspace")]
    pub datapath: portico_datapath::Kind,
    /// Where standalone mode keeps state that must survive restarts (LoadBalancer IPs).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// IngressClass name this gateway serves.
    #[arg(long, default_value = "portico")]
    pub ingress_class: String,
    /// Default certificate (PEM) for unknown server names; a self-signed one is generated if absent.
    #[arg(long, requires = "default_key")]
    pub default_cert: Option<PathBuf>,
    #[arg(long, requires = "default_cert")]
    pub default_key: Option<PathBuf>,
    /// Address published in the status of every Ingress served.
    #[arg(long)]
    pub publish_address: Option<IpAddr>,
    /// Copy the EXTERNAL-IP of this LoadBalancer Service (NAMESPACE/NAME) into Ingress status.
    #[arg(long)]
    pub publish_service: Option<String>,
    /// Per-request access log.
    #[arg(long, value_enum, default_value_t = AccessLog::Off)]
    pub access_log: AccessLog,
    /// Logs as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Who serves plain HTTP/1.1 requests: Portico's own fast path (hyper still serves HTTP/2,
    /// upgrades and every request the fast path leaves to it), or hyper alone.
    #[arg(long, value_enum, default_value_t = Http1Engine::Portico)]
    pub http1_engine: Http1Engine,
    /// Serve Ingress connections on this many threads, each with its own single-threaded
    /// runtime and accept loops on the shared listening sockets (e.g. one per core given to the
    /// edge). 0: on the process's runtime (`TOKIO_WORKER_THREADS` worker threads).
    #[arg(long, default_value_t = 0)]
    pub l7_threads: usize,
    /// Request paths holding an encoded slash or backslash (`%2F`, `%5C`) or a raw `\`:
    /// `reject` answers 400; `keep` routes them with these kept encoded, inside their segment.
    /// Paths are normalised either way (dot segments, repeated slashes, escapes).
    #[arg(long, value_enum, default_value_t = EncodedSlashes::Reject)]
    pub encoded_slashes: EncodedSlashes,
    /// Believe the `X-Forwarded-For`, `X-Forwarded-Proto/-Host/-Port` and `Forwarded` headers
    /// of peers in these ranges (CIDRs or addresses; repeatable or comma-separated), e.g. an
    /// external load balancer. The client is then the right-most untrusted `X-Forwarded-For`
    /// entry (for `X-Real-IP`, allow-lists and the access log). Default: nobody's; a client's
    /// forwarding headers are replaced by what the connection says.
    #[arg(long = "trust-forwarded-from", value_delimiter = ',', value_parser = parse_trusted_range)]
    pub trust_forwarded_from: Vec<ipnet::IpNet>,
    /// Read each request body up to this size (nginx syntax: `512k`, `1m`) before an upstream
    /// connection is taken, so slow clients hold no upstream connection; a larger body streams
    /// after that much. `0`: bodies stream as they arrive (also per Ingress:
    /// `nginx.ingress.kubernetes.io/proxy-request-buffering: "off"`).
    #[arg(long, default_value = "1m", value_parser = parse_buffer_size)]
    pub request_buffer_size: usize,
    /// The longest wait between two reads of a request body (`60s`, `500ms`, or seconds); then
    /// `408 Request Timeout` and the connection closes (nginx's `client_body_timeout`).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub client_body_timeout: std::time::Duration,
    /// At most this many open client connections, Ingress and LoadBalancer TCP together; at the
    /// limit the listeners stop accepting and new connections wait in the listen backlog.
    /// Default: (the open-file limit, raised to the hard limit at start - 1024) / 2, at least 64:
    /// every connection needs a second descriptor for its upstream.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// How long a stopping gateway drains (`25s`, `500ms`, or seconds): it stops accepting,
    /// answers every request it has read (with `Connection: close`, or an HTTP/2 GOAWAY), gives
    /// idle keepalive connections a moment to send one last request, and closes what is still
    /// open when this runs out. Below Kubernetes' default 30 s termination grace period.
    #[arg(long, default_value = "25s", value_parser = parse_timeout)]
    pub drain_timeout: std::time::Duration,
    /// Also allocate LoadBalancer IPs (always on in standalone mode).
    #[arg(long)]
    pub allocate: bool,
    /// The Lease that elects the allocating replica (shared with the lb-controller Deployment).
    #[arg(long, default_value = "portico-lb-controller")]
    pub lease_name: String,
    /// The Lease's namespace (default: the Pod's own, from `POD_NAMESPACE` or the service
    /// account; outside a cluster, the kubeconfig context's namespace). It must exist.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Only allocate for Services with this loadBalancerClass (unset: Services without a class).
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Where LoadBalancer listeners forward to.
    #[arg(long, value_enum, default_value_t = L4Upstream::Endpoints)]
    pub l4_upstream: L4Upstream,
    /// Send a PROXY protocol v2 header to LoadBalancer backends (per Service:
    /// `portico.dev/proxy-protocol: v2|none`).
    #[arg(long)]
    pub l4_proxy_protocol: bool,
    /// How this node announces the LoadBalancer IPs it takes traffic for: `l2` answers ARP/NDP
    /// on the `--announce-iface` interfaces for the IPs it wins the election for among the live
    /// edge nodes.
    #[arg(long, value_enum, default_value_t = portico_announce::AnnouncerKind::L2)]
    pub announce: portico_announce::AnnouncerKind,
    /// Answer ARP/NDP for the LoadBalancer IPs this node owns, on this interface (repeatable).
    /// Without it no L2 announcement runs (standalone on loopback needs none).
    #[arg(long = "announce-iface")]
    pub announce_ifaces: Vec<String>,
    /// Where this edge node receives membership heartbeats from the others.
    #[arg(long, default_value = "0.0.0.0:7946")]
    pub gossip_listen: SocketAddr,
    /// Another edge node's gossip address (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Also discover peers from the Node objects L2Advertisements allow, at this port.
    #[arg(long)]
    pub gossip_discover_port: Option<u16>,
}

/// `IP:PORT`, `[IPv6]:PORT`, or an IPv6 address without brackets followed by `:PORT`.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = || format!("{s:?} is not an address such as 127.0.0.1:9901 or [::1]:9901");
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match (ip.parse::<IpAddr>(), port.parse::<u16>()) {
        (Ok(ip @ IpAddr::V6(_)), Ok(port)) => Ok(SocketAddr::new(ip, port)),
        _ => Err(bad()),
    }
}

fn parse_trusted_range(s: &str) -> Result<ipnet::IpNet, String> {
    portico_l7::forwarded::parse_range(s).map_err(|e| e.to_string())
}

fn parse_buffer_size(s: &str) -> Result<usize, String> {
    match portico_l7::annotations::parse_size(s) {
        Some(n) => usize::try_from(n.unwrap_or(0)).map_err(|_| format!("{s:?} is too large")),
        None => Err(format!("{s:?} is not a size such as 512k or 1m")),
    }
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let d = if let Some(ms) = t.strip_suffix("ms") {
        ms.parse().ok().map(std::time::Duration::from_millis)
    } else {
        t.strip_suffix('s')
            .unwrap_or(t)
            .parse()
            .ok()
            .map(std::time::Duration::from_secs)
    };
    match d {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{s:?} is not a positive duration such as 60s or 500ms"
        )),
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http1Engine {
    Portico,
    Hyper,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodedSlashes {
    Reject,
    Keep,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Upstream {
    Endpoints,
    Nodeport,
}

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// The example directory to serve (edit it while Portico runs).
    #[arg(long, default_value = "examples/hellok8s")]
    pub dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin_addr: SocketAddr,
    /// Ingress HTTP listener (unprivileged port so no root is needed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub https_addr: SocketAddr,
    /// Where ClusterIPs and LoadBalancer allocations persist (default: per user,
    /// `$XDG_STATE_HOME/portico/quickstart` or `~/.local/state/portico/quickstart`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[arg(value_enum)]
    pub what: GetWhat,
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin_addr: SocketAddr,
    /// Output format: `wide` adds columns (services: SELECTOR; pods: IP, NODE); `json` and
    /// `yaml` print the view as the admin API serves it. Any other format is refused.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<GetOutput>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetOutput {
    Wide,
    Json,
    Yaml,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetWhat {
    #[value(alias = "svc", alias = "service")]
    Services,
    #[value(alias = "ep", alias = "endpoint")]
    Endpoints,
    #[value(alias = "ing", alias = "ingress")]
    Ingresses,
    #[value(alias = "ipaddresspools", alias = "pool")]
    Pools,
    /// Standalone only: the Pods of the manifests, whose readiness decides the endpoints.
    #[value(alias = "po", alias = "pod")]
    Pods,
    Errors,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_address_takes_a_pod_ip_of_either_family() {
        let v4 = Cli::try_parse_from(["gateway", "--admin-addr", "10.1.2.3:9901"]).expect("v4");
        assert_eq!(v4.run.admin_addr, "10.1.2.3:9901".parse().expect("addr"));
        let v6 = Cli::try_parse_from(["gateway", "--admin-addr", "fd00::5:9901"]).expect("v6");
        assert_eq!(v6.run.admin_addr, "[fd00::5]:9901".parse().expect("addr"));
        let br = Cli::try_parse_from(["gateway", "--admin-addr", "[::1]:9901"]).expect("[v6]");
        assert_eq!(br.run.admin_addr, "[::1]:9901".parse().expect("addr"));
        for bad in ["10.1.2.3", "10.1.2.3:99999", "nohost:80", "fd00::5"] {
            let e = Cli::try_parse_from(["gateway", "--admin-addr", bad]).expect_err(bad);
            assert!(e.to_string().contains("--admin-addr"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_announcer_is_chosen_by_name_and_an_unknown_one_is_refused() {
        let cli = Cli::try_parse_from(["gateway"]).expect("default");
        assert_eq!(cli.run.announce, portico_announce::AnnouncerKind::L2);
        let cli = Cli::try_parse_from(["gateway", "--announce", "l2"]).expect("l2");
        assert_eq!(cli.run.announce, portico_announce::AnnouncerKind::L2);
        let e = Cli::try_parse_from(["gateway", "--announce", "bgp"]).expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("--announce") && msg.contains("bgp"), "{msg}");
        assert!(msg.contains("l2"), "names the possible values: {msg}");
    }

    #[test]
    fn body_flags_parse_and_bad_values_say_why() {
        assert_eq!(parse_buffer_size("1m"), Ok(1 << 20));
        assert_eq!(parse_buffer_size("0"), Ok(0));
        assert!(parse_buffer_size("lots").is_err());
        assert_eq!(parse_timeout("60s"), Ok(std::time::Duration::from_secs(60)));
        assert_eq!(parse_timeout("7"), Ok(std::time::Duration::from_secs(7)));
        assert_eq!(
            parse_timeout("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert!(parse_timeout("0s").expect_err("zero").contains("0s"));
        assert!(parse_timeout("soon").is_err());
        let cli = Cli::try_parse_from([
            "gateway",
            "--trust-forwarded-from",
            "10.0.0.0/8,192.0.2.1",
            "--trust-forwarded-from",
            "::1",
        ])
        .expect("valid");
        assert_eq!(cli.run.trust_forwarded_from.len(), 3);
        assert_eq!(cli.run.request_buffer_size, 1 << 20);
        let e = Cli::try_parse_from(["gateway", "--trust-forwarded-from", "10.0.0.0/40"])
            .expect_err("invalid");
        assert!(e.to_string().contains("10.0.0.0/40"), "{e}");
    }
}
