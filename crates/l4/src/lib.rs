//! Portico's one L4 relay: listeners on [`Frontend`]s, each sending new TCP connections or UDP
//! flows to an upstream chosen from the *current* snapshot by a [`Picker`].
//!
//! The engine does not care where it listens nor who asks: the Service datapath
//! (`portico-datapath`) computes ClusterIP and NodePort frontends, the gateway computes its
//! LoadBalancer frontends ([`lb`]), and both hand the desired set to a [`Reconciler`], which
//! starts what is new, stops what is gone and leaves the rest alone. What differs between them
//! is data: per frontend a [`Target`] (which upstreams count: [`Scope`]; PROXY v2 or not), per
//! engine [`Settings`] (FREEBIND, connection limit, timeouts).
//!
//! ```text
//! desired: BTreeMap<Frontend, Target>  --Reconciler::reconcile-->  one task per listener
//! new connection: publisher.current() -> Picker::pick -> connect (<= 3 tries)
//!                 -> [PROXY v2 header] -> copy both ways
//! ```
//! Connections run in their own tasks: stopping a listener never cuts them; only the engine's
//! shutdown token does.
//!
//! Modules, leaves first: `frontend` (the data), `counters`, `affinity`, `proxy_protocol`,
//! `bind`, `select` (candidates and the picker), `listener` (`tcp`, `udp`), `reconcile`, `lb`.
//! A module uses only the ones before it; this file only declares and re-exports.

mod affinity;
mod bind;
mod counters;
mod frontend;
mod listener;
pub mod proxy_protocol;
mod reconcile;
mod select;

pub mod lb;

pub use affinity::AffinityTable;
pub use counters::{CounterValues, Counters};
pub use frontend::{Frontend, Protocol, Scope, ServiceKey, ServicePort, Settings, Target};
pub use reconcile::{BindError, ListenerStatus, Plan, Reconciler, plan};
pub use select::{NoBackend, Pick, Picker, Upstreams, candidates, upstreams};
