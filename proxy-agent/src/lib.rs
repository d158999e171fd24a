//! Portico's node agent: kube-proxy's job. ClusterIP:port and nodeIP:nodePort frontends
//! forward TCP and UDP to the endpoints of the current snapshot, through the Service datapath
//! of `portico-datapath` (today the userspace one, on the one L4 relay of `portico-l4`).
//!
//! `main.rs` parses arguments and calls [`run`]; no other package depends on this one.

mod app;

pub use app::{Config, RunError, run};
pub use portico_datapath::{AgentConfig, Kind as DatapathKind};
