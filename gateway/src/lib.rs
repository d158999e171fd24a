//! Portico's edge binary as a library: `main.rs` only parses arguments and calls into here.

pub mod announce;
pub mod app;
pub mod cli;
pub mod get;
pub mod ingress_status;
pub mod l4;
pub mod l7;
pub mod quickstart;
