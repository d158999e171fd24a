//! `gateway quickstart`: the seed tutorial on one machine, with no cluster and no root. Starts a
//! real hellok8s process for every Pod in the example directory (bound to the Pod's IP in
//! 127.0.0.0/8), then serves the directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use portico_cluster::manifests::ManifestCache;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::cli::{QuickstartArgs, RunArgs};

/// The example directory: as given, else the one in the source tree this binary was built from.
fn resolve_dir(dir: &Path) -> PathBuf {
    if dir.is_dir() {
        return dir.to_path_buf();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    if built.is_dir() {
        built
    } else {
        dir.to_path_buf()
    }
}

/// (host, first path, has TLS) of every Ingress rule in `dir`, for the instructions.
async fn ingress_rules(dir: &Path) -> Vec<(String, String, bool)> {
    let dir = dir.to_path_buf();
    let Ok(state) =
        tokio::task::spawn_blocking(move || ManifestCache::default().scan(&dir).0).await
    else {
        return vec![];
    };
    let mut out = Vec::new();
    for ing in state.ingresses.values() {
        let Some(spec) = &ing.spec else { continue };
        let tls_hosts: Vec<&String> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .collect();
        for rule in spec.rules.iter().flatten() {
            let Some(host) = &rule.host else { continue };
            let path = rule
                .http
                .as_ref()
                .and_then(|h| h.paths.first())
                .and_then(|p| p.path.clone())
                .unwrap_or_else(|| "/".into());
            out.push((host.clone(), path, tls_hosts.contains(&host)));
        }
    }
    out
}

/// (pod name, address) for every Pod in `dir` that has an IP.
async fn pods_in(dir: &Path) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let dir = dir.to_path_buf();
    let state = tokio::task::spawn_blocking(move || ManifestCache::default().scan(&dir).0).await?;
    let mut pods = Vec::new();
    for (key, pod) in &state.pods {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
        else {
            continue;
        };
        let port = pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .next()
                    .map(|p| p.container_port)
            })
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(3000);
        pods.push((key.name.clone(), SocketAddr::new(ip, port)));
    }
    Ok(pods)
}

/// Where the quickstart keeps its state (LoadBalancer allocations, ClusterIPs): per user, under
/// the XDG state directory (`$XDG_STATE_HOME/portico/quickstart`, else
/// `~/.local/state/portico/quickstart`), so two users on one machine never share it.
fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
        });
    match base {
        Some(b) => b.join("portico").join("quickstart"),
        None => std::env::temp_dir().join(format!("portico-quickstart-{}", std::process::id())),
    }
}

/// Every address the quickstart will listen on that is already taken, with what it is for.
async fn taken(addrs: &[(SocketAddr, String)]) -> Vec<String> {
    let mut busy = Vec::new();
    for (addr, what) in addrs {
        if let Err(e) = tokio::net::TcpListener::bind(addr).await {
            busy.push(format!("{addr} ({what}): {e}"));
        }
    }
    busy
}

/// The gateway's own arguments for the quickstart, parsed like a command line so that every
/// other flag keeps its documented default.
fn run_args(dir: &Path, args: &QuickstartArgs, state_dir: &Path) -> anyhow::Result<RunArgs> {
    let argv: Vec<String> = vec![
        "gateway".into(),
        "--manifests".into(),
        dir.display().to_string(),
        "--admin-addr".into(),
        args.admin_addr.to_string(),
        "--http-addr".into(),
        args.http_addr.to_string(),
        "--https-addr".into(),
        args.https_addr.to_string(),
        "--state-dir".into(),
        state_dir.display().to_string(),
        "--publish-address".into(),
        "127.0.0.1".into(),
        "--gossip-listen".into(),
        "127.0.0.1:0".into(),
    ];
    let cli = crate::cli::Cli::try_parse_from(argv).context("quickstart arguments")?;
    Ok(cli.run)
}

pub async fn run(args: QuickstartArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = resolve_dir(&args.dir);
    anyhow::ensure!(
        dir.is_dir(),
        "{}: no such directory (run from the repository root)",
        args.dir.display()
    );
    let exe = std::env::current_exe().context("cannot find this executable")?;

    // Check every address first, and name each one taken, instead of starting pods that
    // cannot bind and then failing on the admin port.
    let pods = pods_in(&dir).await?;
    let mut wanted: Vec<(SocketAddr, String)> = pods
        .iter()
        .map(|(name, addr)| (*addr, format!("pod {name}")))
        .collect();
    wanted.push((args.admin_addr, "admin API, --admin-addr".into()));
    wanted.push((args.http_addr, "HTTP, --http-addr".into()));
    wanted.push((args.https_addr, "HTTPS, --https-addr".into()));
    let busy = taken(&wanted).await;
    anyhow::ensure!(
        busy.is_empty(),
        "cannot start the quickstart, addresses in use (is another quickstart running?):\n  {}",
        busy.join("\n  ")
    );

    let mut children: Vec<Child> = Vec::new();
    for (name, addr) in pods {
        let child = Command::new(&exe)
            .args(["hellok8s", "--listen", &addr.to_string(), "--name", &name])
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the hellok8s process for {name}"))?;
        println!("started pod {name} (hellok8s) on {addr}");
        children.push(child);
    }

    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    println!(
        "state (ClusterIPs, LoadBalancer IPs) is kept in {}",
        state_dir.display()
    );
    let run_args = run_args(&dir, &args, &state_dir)?;
    let admin = args.admin_addr;
    let shown_dir = dir.display().to_string();
    let rules = ingress_rules(&dir).await;
    let (http, https) = (args.http_addr, args.https_addr);
    tokio::spawn(async move {
        if let Err(e) = print_instructions(admin, &shown_dir, &rules, http, https).await {
            eprintln!("quickstart: {e:#}");
        }
    });
    let result = crate::app::run(run_args, shutdown).await;
    for mut c in children {
        let _ = c.kill().await;
    }
    result
}

async fn print_instructions(
    admin: SocketAddr,
    dir: &str,
    rules: &[(String, String, bool)],
    http: SocketAddr,
    https: SocketAddr,
) -> anyhow::Result<()> {
    // Wait for the first snapshot and for the Services' datapath to be listening.
    let mut services = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(v) = crate::commands::get::fetch_json(admin, "/api/services").await
            && v.as_array().is_some_and(|a| !a.is_empty())
        {
            services = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lines = vec![
        String::new(),
        "Portico is serving the hellok8s example, standalone (no cluster, no root).".to_owned(),
        String::new(),
        "Try:".to_owned(),
    ];
    for s in services.as_array().into_iter().flatten() {
        let get = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let (name, type_, cip, ext, ports) = (
            get("name"),
            get("type"),
            get("clusterIp"),
            get("externalIp"),
            get("ports"),
        );
        let Some(first) = ports.split(',').next() else {
            continue;
        };
        let port = first.split(['/', ':']).next().unwrap_or("");
        if !cip.is_empty() && cip != "None" && cip != "<none>" {
            lines.push(format!("  curl http://{cip}:{port}/        # {name} ({type_}): repeat it, the pod name rotates"));
        }
        if let Some(np) = first
            .split('/')
            .next()
            .and_then(|p| p.split_once(':'))
            .map(|(_, np)| np.to_owned())
        {
            lines.push(format!(
                "  curl http://127.0.0.1:{np}/       # {name} on the node port"
            ));
        }
        if type_ == "LoadBalancer" && ext != "<pending>" && !ext.is_empty() {
            lines.push(format!(
                "  curl http://{ext}:{port}/        # {name} on its EXTERNAL-IP"
            ));
        }
    }
    for (host, path, tls) in rules {
        if *tls {
            let (ip, port) = (https.ip(), https.port());
            lines.push(format!("  curl -k --resolve {host}:{port}:{ip} https://{host}:{port}{path}     # Ingress, TLS by SNI"));
            lines.push(format!("  curl -k -c /tmp/portico-jar -b /tmp/portico-jar --resolve {host}:{port}:{ip} https://{host}:{port}{path}     # cookie affinity: one pod"));
            lines.push(format!(
                "  curl -i -H 'Host: {host}' http://{http}{path}     # 308 redirect to HTTPS"
            ));
        } else {
            lines.push(format!(
                "  curl -H 'Host: {host}' http://{http}{path}     # Ingress"
            ));
        }
    }
    lines.push(String::new());
    lines.push(format!(
        "  target/release/gateway get services --admin-addr {admin}"
    ));
    lines.push(format!(
        "  target/release/gateway get ingresses --admin-addr {admin}"
    ));
    lines.push(format!(
        "  target/release/gateway get endpoints --admin-addr {admin}"
    ));
    lines.push(format!(
        "  target/release/gateway get pods -o wide --admin-addr {admin}"
    ));
    lines.push(format!(
        "  target/release/gateway get errors --admin-addr {admin}"
    ));
    lines.push(String::new());
    lines.push(format!("Edit {dir}/pods.yaml: set a Pod's Ready condition to \"False\" and it leaves the rotation within a second."));
    lines.push("Press Ctrl-C to stop.".to_owned());
    println!("{}", lines.join("\n"));
    Ok(())
}
