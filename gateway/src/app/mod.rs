//! Wiring: one process for one box. Source -> pipeline -> snapshot publisher, and every data
//! plane reading from it: the Service datapath (ClusterIP/NodePort), the Ingress router, the
//! LoadBalancer listeners, the announcer and the admin API.
//!
//! [`run`] builds the parts, each in its own module and each one or more tasks of one
//! [`JoinSet`], then joins them: the first to fail stops the others.

mod admin;
mod allocation;
mod announce;
mod datapath;
mod ingress;
pub mod ingress_status;
mod loadbalancer;
mod parts;
mod source;

use std::sync::Arc;

use anyhow::Context;
use portico_model::Snapshot;
use portico_runtime::admin::AdminState;
use portico_runtime::connections::ConnectionLimit;
use portico_runtime::{Metrics, Publisher};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cli::RunArgs;
use parts::Parts;
pub use source::parse_port_range;

/// Run until `shutdown`. Listeners are bound here, before anything is served, so that a port in
/// use is an immediate, clear error.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let connection_limit = connection_limit(&args);
    let metrics = Arc::new(Metrics::new());
    let snapshots: Arc<Publisher<Snapshot>> = Publisher::new(Snapshot::default());

    let admin_listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin API on {}", args.admin_addr))?;
    // The Ingress listeners get the system's listen backlog (net.core.somaxconn), not 128.
    let l7_listeners = ingress::Listeners {
        http: portico_l7::bind_listener(args.http_addr)
            .with_context(|| format!("cannot bind the HTTP listener on {}", args.http_addr))?,
        https: portico_l7::bind_listener(args.https_addr)
            .with_context(|| format!("cannot bind the HTTPS listener on {}", args.https_addr))?,
    };

    metrics.with_registry(|r| connection_limit.register(r));
    let admin = AdminState::new(snapshots.clone(), metrics.clone()).with_allowed_hosts(
        portico_runtime::admin::AllowedHosts::new(args.admin_allowed_hosts.iter().cloned()),
    );
    let mut parts = Parts {
        snapshots,
        metrics,
        admin,
        tasks: JoinSet::new(),
        shutdown: shutdown.clone(),
    };

    let source = source::start(&mut parts, &args).await?;
    let hook = allocation::start(&mut parts, &args, &source)?;
    // The Ingresses of the router's class are routed into every snapshot before it is published.
    let mut pipeline = source.pipeline.with_routes(ingress::class_config(&args));
    if let Some(hook) = hook {
        pipeline = pipeline.with_hook(Box::new(hook));
    }
    source::spawn_pipeline(&mut parts, pipeline, source.state);
    datapath::start(&mut parts, &args, source.standalone);
    let l7 = ingress::start(&mut parts, &args, l7_listeners, &connection_limit).await?;
    ingress_status::spawn(&mut parts, source.client, &l7);
    loadbalancer::start(&mut parts, &args, &connection_limit);
    announce::start(&mut parts, &args);
    admin::start(&mut parts, admin_listener, args.admin_addr);

    join(parts.tasks, &shutdown).await
}

/// The client connection limit (`--max-connections`, else from the open-file limit, raised
/// to its hard limit first).
fn connection_limit(args: &RunArgs) -> Arc<ConnectionLimit> {
    let nofile = portico_runtime::limits::raise_nofile_limit();
    let max_connections = match args.max_connections {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => portico_runtime::connections::default_max_connections(nofile.after),
    };
    info!(
        max_connections,
        "client connection limit (--max-connections)"
    );
    ConnectionLimit::new(max_connections)
}

/// Wait for every part. The first task to fail takes the process down cleanly; the others are
/// told to stop. Returns the first failure.
async fn join(
    mut tasks: JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
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
