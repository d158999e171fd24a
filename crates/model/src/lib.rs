//! Portico's pure core: Kubernetes objects in, one immutable [`Snapshot`] out.
//!
//! ```text
//! source (kube reflectors | manifests directory)
//!   -> ClusterState                      raw objects, one store per kind
//!   -> control_plane::complete()         standalone only: ClusterIPs, NodePorts, EndpointSlices
//!   -> translate(&state) -> Snapshot     pure, synchronous, no I/O
//!   -> Publisher::publish(snapshot)      one ArcSwap
//! ```
//! [`routes`] is the route model: Ingress (and later Gateway API) objects translated, purely and
//! incrementally, into routes every HTTP data plane compiles the same way.
//! Nothing in this crate performs I/O, spawns tasks or reads the clock: callers pass time in.

pub mod control_plane;
pub mod endpoints;
pub mod invalid;
pub mod key;
pub mod manifest;
pub mod metallb;
pub mod routes;
pub mod selector;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod translate;

pub use endpoints::{Backend, ServiceEndpoints};
pub use invalid::{Invalid, InvalidReason, Origin};
pub use key::ObjectKey;
pub use service::{Protocol, Service, ServicePort, ServiceType, TargetPort};
pub use snapshot::Snapshot;
pub use state::{ClusterState, Object, SharedObject};
pub use translate::translate;
