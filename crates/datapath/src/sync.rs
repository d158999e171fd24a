//! The loop every datapath runs: compute the desired table of the current snapshot, apply it,
//! wait for the next publish (or the sync period), again.

use std::sync::Arc;

use portico_model::Snapshot;
use portico_runtime::Publisher;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::Datapath;
use crate::table::ServiceTable;

pub(crate) async fn run<D: Datapath>(
    mut datapath: D,
    snapshots: Arc<Publisher<Snapshot>>,
    shutdown: CancellationToken,
) {
    let mut versions = snapshots.subscribe();
    tokio::select! {
        () = shutdown.cancelled() => return datapath.close().await,
        () = snapshots.ready() => {}
    }
    let (min, period) = (datapath.node().min_sync_period, datapath.node().sync_period);
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        versions.borrow_and_update();
        let desired = ServiceTable::of(&snapshots.current(), datapath.node());
        match datapath.apply(&desired).await {
            Ok(()) => debug!(
                generation = desired.generation,
                services = desired.services.len(),
                "datapath synced"
            ),
            Err(e) => {
                warn!(generation = desired.generation, error = %e, "datapath sync failed; retrying")
            }
        }
        drop(desired);
        if !min.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(min) => {}
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = versions.changed() => if changed.is_err() { break },
            // Retry what failed, refresh counters and expire state even when quiet.
            _ = every.tick() => {}
        }
    }
    datapath.close().await;
}
