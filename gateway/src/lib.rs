//! placeholder until the crate lands
pub mod announce;
pub mod l4;
