//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! every write carries the `resourceVersion` it read (optimistic concurrency: of two replicas
//! racing, one gets `409 Conflict`), and another holder's lease counts as expired only when its
//! record has not changed for a whole lease duration *on this replica's clock* (no trust in
//! the other replica's wall clock).
//!
//! A leader that cannot renew for [`LeaseConfig::renew_deadline`] (two thirds of the lease
//! duration) stops acting before any other replica may consider the lease expired.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{debug, info};

/// Why the election cannot go on at all (as opposed to a failed round, which is retried).
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error(
        "the Lease namespace {namespace:?} does not exist: create it, or choose another with --lease-namespace (default: the Pod's own namespace)"
    )]
    NoNamespace { namespace: String },
}

/// This replica's name in the Lease when none is given: the Pod name (`POD_NAME`, from the
/// downward API), else the host name with the process id and a random suffix, as client-go's
/// leader election does, so that two replicas never share an identity and both lead.
pub fn default_identity() -> String {
    identity_from(std::env::var("POD_NAME").ok())
}

/// [`default_identity`] for a given `POD_NAME`.
pub fn identity_from(pod_name: Option<String>) -> String {
    if let Some(pod) = pod_name.filter(|p| !p.is_empty()) {
        return pod;
    }
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "portico".to_owned());
    // RandomState is seeded from the OS per process: a random suffix without a random crate.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        h.finish() & 0xff_ffff
    )
}

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's name in `spec.holderIdentity` (usually the Pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    /// How long a leader keeps acting without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// What identifies one version of the lease record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    resource_version: Option<String>,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The last record seen and when this replica first saw it.
    observed: Option<(Observed, Instant)>,
    /// When this replica last wrote the lease as its holder.
    renewed: Option<Instant>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// A create answered 404: the namespace does not exist (the API server's NamespaceLifecycle).
fn is_missing_namespace(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
            renewed: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Whether this replica may act as the leader now.
    pub fn is_leader(&self) -> bool {
        self.renewed
            .is_some_and(|t| t.elapsed() < self.cfg.renew_deadline())
    }

    /// [`Self::try_acquire_or_renew`], with a missing namespace told apart: that one no retry
    /// can mend, so the caller stops instead of retrying forever.
    pub async fn round(&mut self) -> Result<Result<bool, kube::Error>, ElectionError> {
        match self.try_acquire_or_renew().await {
            Err(e) if is_missing_namespace(&e) => Err(ElectionError::NoNamespace {
                namespace: self.cfg.namespace.clone(),
            }),
            r => Ok(r),
        }
    }

    /// Acquire the lease if it is free or expired, renew it if held. Returns whether this replica
    /// is the leader afterwards. A conflict (another replica wrote first) is not an error.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        // Whole seconds on the wire, rounded up (never 0, which would mean "expired at once").
        let whole = self.cfg.duration.as_secs() + u64::from(self.cfg.duration.subsec_nanos() > 0);
        let seconds = i32::try_from(whole.max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(self.won(true)),
                Err(e) if is_conflict(&e) => Ok(self.lost()),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = Observed {
            holder: holder.clone(),
            resource_version: lease.metadata.resource_version.clone(),
        };
        if self.observed.as_ref().is_none_or(|(r, _)| *r != record) {
            self.observed = Some((record, Instant::now()));
        }
        let theirs = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.cfg.duration);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() >= theirs);
        let mine = holder.as_deref() == Some(self.cfg.identity.as_str());
        if !(mine || holder.is_none() || expired) {
            return Ok(self.lost());
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time.clone()
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..spec
        });
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.won(!mine)),
            Err(e) if is_conflict(&e) => Ok(self.lost()),
            Err(e) => Err(e),
        }
    }

    /// Give the lease up (on shutdown) so another replica takes over without waiting.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        if !self.is_leader() {
            return Ok(());
        }
        self.renewed = None;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                info!(lease = %self.cfg.name, identity = %self.cfg.identity, "leadership released");
                Ok(())
            }
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn won(&mut self, acquired: bool) -> bool {
        let was = self.is_leader();
        self.renewed = Some(Instant::now());
        self.observed = None;
        if acquired || !was {
            info!(lease = %self.cfg.name, identity = %self.cfg.identity, "leadership acquired");
        } else {
            debug!(lease = %self.cfg.name, "lease renewed");
        }
        true
    }

    fn lost(&mut self) -> bool {
        if self.renewed.take().is_some() {
            info!(lease = %self.cfg.name, identity = %self.cfg.identity, "leadership lost");
        }
        false
    }
}
