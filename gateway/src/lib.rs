//! Portico's edge binary as a library: `main.rs` only parses arguments and calls into here. The
//! data planes live in their own crates (`portico-l7`, `portico-l4`, `portico-datapath`,
//! `portico-announce`, `portico-allocator`); this crate wires them into one process.

pub mod app;
pub mod cli;
pub mod commands;
