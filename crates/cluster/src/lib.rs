//! Where Portico's cluster state comes from, and how it becomes a published [`Snapshot`].
//!
//! A source (a manifests directory, or the Kubernetes API) owns a [`ClusterState`] and sends a
//! whole copy on every change through a [`StateTx`] (a watch channel, so bursts coalesce). A copy
//! is cheap: objects are behind `Arc`s, and the largest stores (Ingresses, origins) are shared
//! whole until someone changes them, so unchanged objects keep their identity from one state to
//! the next and later stages (the route table) can reuse what they built from them. The
//! [`pipeline`] task turns each copy into a snapshot: standalone control-plane work, hooks (such
//! as LoadBalancer IP allocation), the pure `translate`, and one publish.

pub mod kube_source;
pub mod manifests;
pub mod pipeline;
pub mod rbac;

use std::sync::Arc;

use portico_model::ClusterState;
use tokio::sync::watch;

pub use pipeline::{Pipeline, StateHook};

/// Sends the newest complete cluster state. `None` until the source's initial list is done:
/// nothing downstream acts before that.
pub type StateTx = watch::Sender<Option<Arc<ClusterState>>>;
pub type StateRx = watch::Receiver<Option<Arc<ClusterState>>>;

/// A channel for one source.
pub fn state_channel() -> (StateTx, StateRx) {
    watch::channel(None)
}
