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
    let (a, b) = s
        .split_once('-')
        .context("node port range must look like 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a <= b, "node port range {a}-{b} is empty");
    Ok(a..=b)
}

/// The `pools` admin view from the cluster state: every IPAddressPool, counted from the
/// addresses in the Services' status (for kube mode when this process does not allocate).
fn observed_pools(state: &portico_cluster::StateRx) -> serde_json::Value {
    let rows = state
        .borrow()
        .as_deref()
        .map(portico_allocator::observed_pool_status)
        .unwrap_or_default();
    serde_json::to_value(rows).unwrap_or_default()
}

/// Run until `shutdown`. Listeners are bound here, before anything is served, so that a port in
/// use is an immediate, clear error.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let nofile = portico_runtime::limits::raise_nofile_limit();
    let max_connections = match args.max_connections {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => portico_runtime::connections::default_max_connections(nofile.after),
    };
    let connection_limit = portico_runtime::connections::ConnectionLimit::new(max_connections);
    info!(
        max_connections,
        "client connection limit (--max-connections)"
    );
    let metrics = Arc::new(Metrics::new());
    let snapshots: Arc<Publisher<Snapshot>> = Publisher::new(Snapshot::default());
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

    let admin_listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin API on {}", args.admin_addr))?;
    // The Ingress listeners get the system's listen backlog (net.core.somaxconn), not 128.
    let http_listener = portico_l7::bind_listener(args.http_addr)
        .with_context(|| format!("cannot bind the HTTP listener on {}", args.http_addr))?;
    let https_listener = portico_l7::bind_listener(args.https_addr)
        .with_context(|| format!("cannot bind the HTTPS listener on {}", args.https_addr))?;

    metrics.with_registry(|r| connection_limit.register(r));
    let mut admin_state = AdminState::new(snapshots.clone(), metrics.clone()).with_allowed_hosts(
        admin::AllowedHosts::new(args.admin_allowed_hosts.iter().cloned()),
    );

    // Source and pipeline.
    let (tx, rx) = state_channel();
    let standalone = args.manifests.is_some();
    let mut kube_client: Option<kube::Client> = None;
    let pipeline = if let Some(dir) = &args.manifests {
        anyhow::ensure!(
            dir.is_dir(),
            "--manifests {}: not a directory",
            dir.display()
        );
        let cfg = ControlPlaneConfig {
            service_cidr: args.service_cidr,
            node_port_range: parse_port_range(&args.node_port_range)?,
        };
        let source = ManifestsConfig::new(dir.clone());
        let sd = shutdown.clone();
        tasks.spawn(async move { manifests::run(source, tx, sd).await });
        Pipeline::standalone(cfg)
    } else {
        let client = portico_cluster::kube_source::client_from_env()
            .await
            .context(
                "no Kubernetes API configuration found (use --manifests DIR to run standalone)",
            )?;
        kube_client = Some(client.clone());
        let sd = shutdown.clone();
        // Only what this gateway's RBAC roles allow (more with --allocate).
        let component = portico_cluster::rbac::Component::Gateway {
            allocate: args.allocate,
        };
        tasks.spawn(async move {
            portico_cluster::kube_source::run_for(client, component, tx, sd).await
        });
        Pipeline::kube()
    };
    let mut pipeline = pipeline.with_metrics(metrics.config.clone());
    // LoadBalancer IP allocation: always standalone (Portico is the whole control plane there);
    // against the API only with --allocate (normally the lb-controller Deployment does it).
    if standalone {
        let hook = portico_allocator::standalone::AllocateHook::new(
            portico_allocator::standalone::HookConfig {
                state_dir: args.state_dir.clone(),
                lb_class: args.lb_class.clone(),
            },
        )
        .context("loading the LoadBalancer allocation state")?;
        let view = hook.view();
        let pools = view.clone();
        // The Pods the manifests declare: their readiness decides the endpoints here.
        let state = rx.clone();
        admin_state = admin_state
            .with_view(
                "pools",
                Arc::new(move || serde_json::to_value(&pools.current().pools).unwrap_or_default()),
            )
            .with_view(
                "pods",
                Arc::new(move || {
                    let rows = state
                        .borrow()
                        .as_deref()
                        .map(portico_runtime::views::pods)
                        .unwrap_or_default();
                    serde_json::to_value(rows).unwrap_or_default()
                }),
            )
            .with_published_view("allocations", view);
        pipeline = pipeline.with_hook(Box::new(hook));
    } else if args.allocate {
        // The same leader-elected controller as the lb-controller binary, fed by this process's
        // own reflectors; replicas of either kind share the Lease, so only one ever allocates.
        let client = kube_client
            .clone()
            .context("--allocate needs the Kubernetes API")?;
        // Unique per process unless the Pod name is given: two replicas must never share it.
        let identity = portico_allocator::kube::default_identity();
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        info!(lease = %args.lease_name, %namespace, %identity, "LoadBalancer allocation: leader election");
        let cfg = portico_allocator::kube::KubeConfig {
            lb_class: args.lb_class.clone(),
            lease: portico_allocator::kube::LeaseConfig::new(
                args.lease_name.clone(),
                namespace,
                identity,
            ),
        };
        let view = Publisher::new(portico_allocator::kube::KubeView::default());
        admin_state = admin_state.with_published_view("allocations", view.clone());
        // The leader shows its allocator's pools; a standby replica shows the cluster's.
        let (leading, state) = (view.clone(), rx.clone());
        admin_state = admin_state.with_view(
            "pools",
            Arc::new(move || {
                let current = leading.current();
                if current.leader {
                    serde_json::to_value(&current.allocation.pools).unwrap_or_default()
                } else {
                    observed_pools(&state)
                }
            }),
        );
        let (rx2, sd) = (rx.clone(), shutdown.clone());
        tasks.spawn(async move {
            // A missing Lease namespace ends the process with the reason, not a silent retry.
            Ok(portico_allocator::kube::run_on(client, cfg, rx2, view, sd).await?)
        });
    } else {
        // Not allocating: the pools and the addresses the Services' status holds.
        let state = rx.clone();
        admin_state = admin_state.with_view("pools", Arc::new(move || observed_pools(&state)));
    }
    {
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            pipeline.run(rx, p, sd).await;
            Ok(())
        });
    }

    // The Service datapath for this node (ClusterIP and NodePort forwarding).
    if !args.no_service_proxy {
        let node_ips = if args.node_ips.is_empty() && standalone {
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        } else {
            args.node_ips.clone()
        };
        let cfg = portico_datapath::AgentConfig::new(args.node_name.clone(), node_ips);
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        match args.datapath {
            portico_datapath::Kind::Userspace => {
                use portico_datapath::Datapath as _;
                let datapath = portico_datapath::UserspaceDatapath::new(cfg, p.clone(), sd.clone());
                admin_state = admin_state.with_published_view("datapath", datapath.status());
                tasks.spawn(async move {
                    datapath.run(p, sd).await;
                    Ok(())
                });
            }
        }
    }

    // The Ingress router.
    {
        let default_cert = match (&args.default_cert, &args.default_key) {
            (Some(c), Some(k)) => Some((
                tokio::fs::read(c)
                    .await
                    .with_context(|| format!("--default-cert {}", c.display()))?,
                tokio::fs::read(k)
                    .await
                    .with_context(|| format!("--default-key {}", k.display()))?,
            )),
            _ => None,
        };
        let publish_service = match &args.publish_service {
            None => None,
            Some(s) => {
                let (ns, name) = s
                    .split_once('/')
                    .context("--publish-service must be NAMESPACE/NAME")?;
                Some(portico_model::ObjectKey::new(ns, name))
            }
        };
        let cfg = portico_l7::L7Config {
            http_addr: args.http_addr,
            https_addr: args.https_addr,
            class_name: args.ingress_class.clone(),
            default_cert,
            publish_address: args.publish_address.map(|a| a.to_string()),
            publish_service,
            access_log: match args.access_log {
                crate::cli::AccessLog::Off => portico_l7::AccessLog::Off,
                crate::cli::AccessLog::Text => portico_l7::AccessLog::Text,
                crate::cli::AccessLog::Json => portico_l7::AccessLog::Json,
            },
            fast_h1: args.http1_engine == crate::cli::Http1Engine::Portico,
            threads: args.l7_threads,
            encoded_slashes: match args.encoded_slashes {
                crate::cli::EncodedSlashes::Reject => portico_l7::path::EncodedSlashes::Reject,
                crate::cli::EncodedSlashes::Keep => portico_l7::path::EncodedSlashes::Keep,
            },
            trust_forwarded_from: args.trust_forwarded_from.clone(),
            request_buffer_size: args.request_buffer_size,
            client_body_timeout: args.client_body_timeout,
            connection_limit: Some(connection_limit.clone()),
            drain_timeout: args.drain_timeout,
            ..Default::default()
        };
        let l7_metrics = Arc::new(portico_l7::Metrics::default());
        metrics.with_registry(|r| l7_metrics.register(r));
        let https_port = https_listener.local_addr().ok().map(|a| a.port());
        let l7 = portico_l7::L7::new(cfg, l7_metrics, https_port);
        let (v, e, r) = (l7.clone(), l7.clone(), l7.clone());
        let snaps = snapshots.clone();
        admin_state = admin_state
            .with_view(
                "ingresses",
                Arc::new(move || {
                    serde_json::to_value(v.ingress_view(&snaps.current())).unwrap_or_default()
                }),
            )
            .with_errors(Arc::new(move || e.errors().to_vec()))
            .with_ready_check(Arc::new(move || r.is_ready()));
        if let Some(client) = kube_client.clone() {
            let (l, p, sd) = (l7.clone(), snapshots.clone(), shutdown.clone());
            tasks.spawn(async move {
                crate::ingress_status::run(client, l, p, sd).await;
                Ok(())
            });
        }
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        info!(http = %args.http_addr, https = %args.https_addr, "ingress router listening");
        tasks.spawn(async move { l7.serve(http_listener, Some(https_listener), p, sd).await });
    }

    // LoadBalancer listeners on every EXTERNAL-IP.
    {
        let cfg = portico_l4::lb::L4Config {
            upstream: match args.l4_upstream {
                crate::cli::L4Upstream::Endpoints => portico_l4::lb::Upstream::Endpoints,
                crate::cli::L4Upstream::Nodeport => portico_l4::lb::Upstream::NodePort,
            },
            proxy_protocol: args.l4_proxy_protocol,
            connection_limit: Some(connection_limit.clone()),
            ..Default::default()
        };
        let (views_tx, views_rx) =
            tokio::sync::watch::channel(Vec::<portico_l4::lb::ListenerView>::new());
        admin_state = admin_state.with_view("loadbalancers", Arc::new(move || {
            let rows: Vec<serde_json::Value> = views_rx
                .borrow()
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "frontend": v.frontend.to_string(), "service": v.target.service_port().to_string(), "accepted": v.accepted,
                        "active": v.active, "noUpstream": v.no_upstream, "connectFailures": v.connect_failures,
                        "droppedDatagrams": v.dropped_datagrams,
                    })
                })
                .collect();
            serde_json::Value::Array(rows)
        }));
        let l4 = portico_l4::lb::L4::new(cfg, snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            l4.run(Some(views_tx)).await;
            Ok(())
        });
    }

    // ARP/NDP announcement of the LoadBalancer IPs this node wins.
    if !args.announce_ifaces.is_empty() {
        let cfg = portico_announce::EdgeL2Config {
            node: args.node_name.clone(),
            interfaces: args.announce_ifaces.clone(),
            gossip_listen: args.gossip_listen,
            peers: args.peers.clone(),
            discover_port: args.gossip_discover_port,
            timing: Default::default(),
        };
        let (owned_tx, owned_rx) = tokio::sync::watch::channel(Arc::<
            std::collections::BTreeMap<IpAddr, portico_announce::election::Assignment>,
        >::default());
        admin_state = admin_state.with_view(
            "announcements",
            Arc::new(move || {
                let owned = owned_rx.borrow().clone();
                serde_json::Value::Array(
                    owned
                        .keys()
                        .map(|ip| serde_json::Value::String(ip.to_string()))
                        .collect(),
                )
            }),
        );
        let (p, sd) = (snapshots.clone(), shutdown.clone());
        tasks.spawn(async move {
            portico_announce::run_edge(cfg, p, Some(owned_tx), sd)
                .await
                .context("L2 announcer")
        });
    }

    {
        let sd = shutdown.clone();
        let st = admin_state.clone();
        info!(addr = %args.admin_addr, "admin API listening");
        tasks.spawn(async move {
            admin::serve(admin_listener, st, sd)
                .await
                .context("admin API")
        });
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
