//! The gateway's subcommands besides `run`: `get` (kubectl-style listings from the admin API)
//! and `quickstart` (the seed tutorial, standalone).

pub mod get;
pub mod quickstart;
