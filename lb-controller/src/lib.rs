//! Portico's LoadBalancer IP allocation, compatible with MetalLB's `metallb.io` objects and
//! annotations.
//!
//! - [`allocator`]: the pure allocator (pools, assignments, sharing, dual-stack).
//! - [`standalone`]: the manifests-mode hook, with its state file.
//! - [`crds`]: the CustomResourceDefinitions, generated from the Rust types.
//! - [`kube`]: kube mode: the controller behind a Lease.

// `Invalid` is the workspace's report type for a rejected object; it is built once per bad
// object, never on a hot path.
#![allow(clippy::result_large_err)]

pub mod allocator;
pub mod candidates;
pub mod crds;
pub mod kube;
pub mod standalone;
