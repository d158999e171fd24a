//! Test-only helpers for Portico: a fake Kubernetes API server, certificates, echo origins and
//! binary runners. Never a dependency of a shipped binary.

pub mod bin;
pub mod certs;
pub mod fake_api;
pub mod origin;
pub mod recording;
pub mod require;
pub mod snapshots;

pub use bin::{ChildGuard, bin_under_test, cargo_bin};
pub use fake_api::FakeApiServer;
pub use origin::{Origin, free_addr, free_port, wait_for_http};
pub use recording::RecordingOrigin;
pub use require::{in_ci, require, skip, tool_missing, tool_missing_with};

/// Make ring the process's rustls provider. A kube client needs one, and rustls only picks one
/// by itself when exactly one provider feature is enabled in the build, which a test build of a
/// single crate does not guarantee. Idempotent.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
