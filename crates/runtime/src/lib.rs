//! Portico's runtime spine: the snapshot publisher, the admin API, metrics and logging.

pub mod publisher;

pub use publisher::Publisher;
