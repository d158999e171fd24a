//! What the parts of the process share while [`run`](super::run) builds them.

use std::sync::Arc;

use portico_model::Snapshot;
use portico_runtime::admin::AdminState;
use portico_runtime::{Metrics, Publisher};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What every part is built with: the snapshots it reads, the metrics registry, the admin
/// state it adds views to, and the task set it runs in.
pub(crate) struct Parts {
    pub snapshots: Arc<Publisher<Snapshot>>,
    pub metrics: Arc<Metrics>,
    pub admin: AdminState,
    pub tasks: JoinSet<anyhow::Result<()>>,
    pub shutdown: CancellationToken,
}

impl Parts {
    /// Add to the admin state (views, error lists, readiness checks).
    pub fn admin(&mut self, add: impl FnOnce(AdminState) -> AdminState) {
        self.admin = add(self.admin.clone());
    }
}
