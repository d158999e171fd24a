//! The Ingress router: its configuration from the flags, its admin views (ingresses, errors,
//! readiness), and the router itself on the listeners bound at start.

use std::sync::Arc;

use anyhow::Context;
use portico_l7::{L7, L7Config};
use portico_runtime::connections::ConnectionLimit;
use tokio::net::TcpListener;
use tracing::info;

use super::parts::Parts;
use crate::cli::{AccessLog, EncodedSlashes, Http1Engine, RunArgs};

/// The router's listeners, bound before anything is served.
pub(super) struct Listeners {
    pub http: TcpListener,
    pub https: TcpListener,
}

/// The IngressClass the router serves (`--ingress-class`, and Portico's controller name).
pub(super) fn class_config(args: &RunArgs) -> portico_model::routes::ClassConfig {
    portico_model::routes::ClassConfig {
        class_name: args.ingress_class.clone(),
        controller: portico_l7::CONTROLLER.into(),
    }
}

/// The router's configuration: the flags, the default certificate read from disk.
async fn config(
    args: &RunArgs,
    connection_limit: &Arc<ConnectionLimit>,
) -> anyhow::Result<L7Config> {
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
    Ok(L7Config {
        http_addr: args.http_addr,
        https_addr: args.https_addr,
        class_name: args.ingress_class.clone(),
        default_cert,
        publish_address: args.publish_address.map(|a| a.to_string()),
        publish_service,
        access_log: match args.access_log {
            AccessLog::Off => portico_l7::AccessLog::Off,
            AccessLog::Text => portico_l7::AccessLog::Text,
            AccessLog::Json => portico_l7::AccessLog::Json,
        },
        fast_h1: args.http1_engine == Http1Engine::Portico,
        threads: args.l7_threads,
        encoded_slashes: match args.encoded_slashes {
            EncodedSlashes::Reject => portico_l7::path::EncodedSlashes::Reject,
            EncodedSlashes::Keep => portico_l7::path::EncodedSlashes::Keep,
        },
        trust_forwarded_from: args.trust_forwarded_from.clone(),
        request_buffer_size: args.request_buffer_size,
        client_body_timeout: args.client_body_timeout,
        connection_limit: Some(connection_limit.clone()),
        drain_timeout: args.drain_timeout,
        ..Default::default()
    })
}

/// Start the router on `listeners`; returns it for the Ingress status writer.
pub(super) async fn start(
    parts: &mut Parts,
    args: &RunArgs,
    listeners: Listeners,
    connection_limit: &Arc<ConnectionLimit>,
) -> anyhow::Result<L7> {
    let cfg = config(args, connection_limit).await?;
    let l7_metrics = Arc::new(portico_l7::Metrics::default());
    parts.metrics.with_registry(|r| l7_metrics.register(r));
    let https_port = listeners.https.local_addr().ok().map(|a| a.port());
    let l7 = L7::new(cfg, l7_metrics, https_port);
    let (v, e, r) = (l7.clone(), l7.clone(), l7.clone());
    let snaps = parts.snapshots.clone();
    parts.admin(|a| {
        a.with_view(
            "ingresses",
            Arc::new(move || {
                serde_json::to_value(v.ingress_view(&snaps.current())).unwrap_or_default()
            }),
        )
        .with_errors(Arc::new(move || e.errors().to_vec()))
        .with_ready_check(Arc::new(move || r.is_ready()))
    });
    let (router, p, sd) = (l7.clone(), parts.snapshots.clone(), parts.shutdown.clone());
    info!(http = %args.http_addr, https = %args.https_addr, "ingress router listening");
    parts.tasks.spawn(async move {
        router
            .serve(listeners.http, Some(listeners.https), p, sd)
            .await
    });
    Ok(l7)
}
