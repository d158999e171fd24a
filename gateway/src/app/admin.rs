//! The admin API (health, readiness, metrics, JSON views), with every view the other parts
//! added. Started last, so that it serves them all.

use std::net::SocketAddr;

use anyhow::Context;
use portico_runtime::admin;
use tokio::net::TcpListener;
use tracing::info;

use super::parts::Parts;

pub(super) fn start(parts: &mut Parts, listener: TcpListener, addr: SocketAddr) {
    let (st, sd) = (parts.admin.clone(), parts.shutdown.clone());
    info!(%addr, "admin API listening");
    parts
        .tasks
        .spawn(async move { admin::serve(listener, st, sd).await.context("admin API") });
}
