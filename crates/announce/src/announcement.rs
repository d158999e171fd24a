//! The seam between "which addresses does this node announce" and "how does it say so".
//!
//! Every published [`Snapshot`] yields the desired set of this node: each LoadBalancer address
//! it announces, with the Services the address belongs to and where it goes out
//! ([`Announcements`]). An [`Announcer`] computes that set in its own way and makes the network
//! believe it, announcing what is new and withdrawing what left:
//!
//! - L2 ([`crate::l2`]): ONE node answers ARP/NDP for an address, elected among the live edge
//!   members ([`crate::election`], fed by [`crate::membership`]), on the interfaces its
//!   L2Advertisements name.
//! - BGP (next): every eligible node advertises a /32 or /128 route to its peers, with the
//!   communities and localPref of the matching BGPAdvertisement; the routers spread traffic
//!   over them. No election: eligibility is per node.
//!
//! So the election is a property of the implementation, not of the seam: [`Announcer::desired`]
//! is where L2 elects and BGP would only filter. [`run`] drives any implementation from the
//! snapshot publisher.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use portico_model::{ObjectKey, Snapshot};
use portico_runtime::publisher::Publisher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One address this node announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcement {
    /// Where the address goes out: the interfaces (L2) it is announced on; `None`: every
    /// interface the announcer runs on. (BGP adds its peers, communities and localPref here.)
    pub interfaces: Option<BTreeSet<String>>,
    /// The Services the address belongs to (several when they share it).
    pub services: BTreeSet<ObjectKey>,
}

/// The desired set of one node: every address it announces.
pub type Announcements = BTreeMap<IpAddr, Announcement>;

/// The implementations, chosen on the gateway's command line (`--announce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AnnouncerKind {
    /// ARP (IPv4) and NDP (IPv6) answers from the elected owner of each address.
    L2,
}

/// A way of announcing LoadBalancer addresses to the network.
pub trait Announcer: Send {
    /// Why the announcer cannot go on.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The addresses this node should announce in `snap`, with their Services and where they
    /// go out. L2 returns those it wins the election for among the live members; an
    /// implementation without election returns every address this node is eligible for.
    fn desired(&self, snap: &Snapshot) -> Announcements;

    /// Make `desired` the announced set: announce the new addresses, withdraw the ones that
    /// left it. `generation` is the snapshot's, for logs.
    fn apply(&mut self, desired: &Announcements, generation: u64);

    /// Resolves when [`Announcer::desired`] must be computed again although no snapshot was
    /// published (L2: the alive set changed), or with an error when the announcer failed.
    fn changed(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stop announcing and wait until every task of the announcer has ended.
    fn stop(self) -> impl Future<Output = ()> + Send;
}

/// Drive `announcer` until `shutdown`: after every snapshot and every change it reports,
/// compute the desired set and apply it. `owned`, when given, receives every desired set (for
/// the admin API and tests). Returns the announcer's error if it fails first.
pub async fn run<A: Announcer>(
    mut announcer: A,
    snapshots: Arc<Publisher<Snapshot>>,
    owned: Option<watch::Sender<Arc<Announcements>>>,
    shutdown: CancellationToken,
) -> Result<(), A::Error> {
    let mut versions = snapshots.subscribe();
    loop {
        let snap = snapshots.current();
        let desired = announcer.desired(&snap);
        announcer.apply(&desired, snap.generation);
        if let Some(out) = &owned {
            out.send_replace(Arc::new(desired));
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            r = versions.changed() => if r.is_err() { break },
            r = announcer.changed() => {
                if shutdown.is_cancelled() {
                    break;
                }
                r?;
            }
        }
    }
    announcer.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the fake announcer broke")]
    struct Broken;

    /// What the fake was told to apply: (generation, addresses), in order.
    type Applied = Arc<Mutex<Vec<(u64, Vec<IpAddr>)>>>;

    /// Announces one address per snapshot generation, from every node (no election); records
    /// what it was told to apply, and whether it was stopped.
    struct Fake {
        applied: Applied,
        stopped: Arc<Mutex<bool>>,
        wake: mpsc::Receiver<Result<(), Broken>>,
    }

    impl Announcer for Fake {
        type Error = Broken;

        fn desired(&self, snap: &Snapshot) -> Announcements {
            let ip = IpAddr::from([192, 0, 2, u8::try_from(snap.generation).unwrap_or(255)]);
            Announcements::from([(ip, Announcement::default())])
        }

        fn apply(&mut self, desired: &Announcements, generation: u64) {
            let ips = desired.keys().copied().collect();
            self.applied
                .lock()
                .expect("not poisoned")
                .push((generation, ips));
        }

        async fn changed(&mut self) -> Result<(), Broken> {
            match self.wake.recv().await {
                Some(r) => r,
                None => std::future::pending().await,
            }
        }

        async fn stop(self) {
            *self.stopped.lock().expect("not poisoned") = true;
        }
    }

    /// The test's side of a [`Fake`].
    struct Handles {
        wake: mpsc::Sender<Result<(), Broken>>,
        applied: Applied,
        stopped: Arc<Mutex<bool>>,
    }

    fn fake() -> (Fake, Handles) {
        let (tx, wake) = mpsc::channel(4);
        let applied = Applied::default();
        let stopped = Arc::new(Mutex::new(false));
        let f = Fake {
            applied: applied.clone(),
            stopped: stopped.clone(),
            wake,
        };
        let handles = Handles {
            wake: tx,
            applied,
            stopped,
        };
        (f, handles)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn every_snapshot_and_every_change_is_applied_and_shutdown_stops_the_announcer() {
        let snapshots = Publisher::new(Snapshot::default());
        let (
            announcer,
            Handles {
                wake,
                applied,
                stopped,
            },
        ) = fake();
        let (owned_tx, owned_rx) = watch::channel(Arc::<Announcements>::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            announcer,
            snapshots.clone(),
            Some(owned_tx),
            shutdown.clone(),
        ));
        settle().await;
        snapshots.publish(Snapshot {
            generation: 1,
            ..Snapshot::default()
        });
        settle().await;
        wake.send(Ok(())).await.expect("running");
        settle().await;
        let ip = |last: u8| IpAddr::from([192, 0, 2, last]);
        assert_eq!(
            *applied.lock().expect("not poisoned"),
            vec![(0, vec![ip(0)]), (1, vec![ip(1)]), (1, vec![ip(1)])]
        );
        assert_eq!(
            owned_rx.borrow().keys().copied().collect::<Vec<_>>(),
            vec![ip(1)]
        );
        shutdown.cancel();
        task.await.expect("joined").expect("clean stop");
        assert!(
            *stopped.lock().expect("not poisoned"),
            "stopped on shutdown"
        );
    }

    #[tokio::test]
    async fn a_failing_announcer_ends_the_run_with_its_error() {
        let snapshots = Publisher::new(Snapshot::default());
        let (announcer, handles) = fake();
        let task = tokio::spawn(run(announcer, snapshots, None, CancellationToken::new()));
        handles.wake.send(Err(Broken)).await.expect("running");
        let r = task.await.expect("joined");
        assert!(matches!(r, Err(Broken)), "{r:?}");
    }
}
