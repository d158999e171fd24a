//! Portico's runtime spine: the snapshot publisher, the admin API, metrics and logging.

pub mod admin;
pub mod connections;
pub mod crypto;
pub mod limits;
pub mod metrics;
pub mod publisher;
pub mod telemetry;
pub mod views;

pub use crypto::install_crypto_provider;
pub use metrics::Metrics;
pub use publisher::Publisher;
