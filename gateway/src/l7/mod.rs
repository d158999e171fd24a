//! The L7 Ingress router: Ingress v1 routing with ingress-nginx's annotations, TLS per SNI,
//! cookie affinity, HTTP/1.1 and HTTP/2, WebSocket tunnelling and hot reload.
//!
//! ```text
//! Publisher<Snapshot> -> RouteTable::build (pure) -> one ArcSwap<RouteTable> -> request path
//! ```

pub mod annotations;
pub mod class;
pub mod metrics;
pub mod table;
pub mod tls;
pub mod upstream;

pub use class::RouterConfig;
pub use metrics::Metrics;
pub use table::{Lookup, Route, RouteTable};
