//! Test-only helpers for Portico: a fake Kubernetes API server, certificates, echo origins and
//! binary runners. Never a dependency of a shipped binary.

pub mod bin;
pub mod certs;
pub mod fake_api;
pub mod origin;

pub use bin::{ChildGuard, cargo_bin};
pub use fake_api::FakeApiServer;
pub use origin::{Origin, free_addr, free_port, wait_for_http};

/// Make ring the process's rustls provider (the dependency graph enables more than one, so
/// rustls cannot pick by itself). Idempotent.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
