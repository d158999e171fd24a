//! ONE request pipeline for both engines. Each phase is a function of (request facts, compiled
//! route) with one job, run in this order:
//!
//! 1. [`route`]: the host and the normalised path to a route (or 404);
//! 2. [`policy`]: answers before any upstream — allow-list (403), redirects, HTTPS redirection,
//!    `app-root`, the body limit (413);
//! 3. [`upstream`]: THE loop over attempts — sticky endpoint first, pick excluding the tried
//!    ones, the retry bound, change-on-failure, failures toward ejection, in-flight count and
//!    latency, the connect / send / read timeouts;
//! 4. [`response`]: the headers Portico adds (affinity cookie, HSTS);
//! 5. [`log`]: the route's metrics and the access log.
//!
//! The engines ([`crate::engine`]) parse and write bytes and call these phases; they differ
//! only in how bytes move. Which engine may serve a route is decided by [`Features`].

pub mod affinity;
mod conn;
pub mod features;
pub mod log;
pub mod policy;
pub mod response;
pub mod route;
pub mod upstream;

pub use conn::ConnInfo;
pub use features::Features;
