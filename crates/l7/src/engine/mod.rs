//! The two engines: they parse and write bytes and run the request pipeline
//! ([`crate::request`]); no policy lives here.
//!
//! - [`fast`]: HTTP/1.1 in place (one read and one write per side, nothing allocated per
//!   request on the common path), for the routes whose [`Features`](crate::request::Features)
//!   it implements ([`fast::IMPLEMENTS`]); anything else hands the connection to hyper.
//! - [`hyper`]: everything else — HTTP/2, upgrades, chunked requests, the routes the fast
//!   engine does not implement, and all of HTTP/1.1 with `--http1-engine hyper`.

pub mod fast;
pub mod hyper;

use std::time::Duration;

/// When the drain begins, how long an idle keepalive connection may still send one request
/// (answered with `Connection: close`) before it is closed. A client that has just had a
/// response and sends its next request at once, as busy keepalive clients do, is answered
/// instead of meeting a close in flight; only one idle for this long can still race the close.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);
