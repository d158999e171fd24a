//! Phase `log`: the route's metrics and the access log line, once per request.

use std::time::Duration;

use super::ConnInfo;
use crate::metrics::RouteMetrics;
use crate::shared::Shared;
use crate::table::Route;

/// What the access log says of a request (only built when the log is on).
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
}

/// A routed request is done: `status` is counted on `metrics` (the route's, or its canary's)
/// and logged.
pub fn done(
    shared: &Shared,
    conn: &ConnInfo,
    route: &Route,
    metrics: &RouteMetrics,
    line: Option<Line<'_>>,
    status: u16,
    elapsed: Duration,
) {
    metrics.observe(status, elapsed);
    if let Some(l) = line {
        shared.log_line(conn, l.method, l.path, l.host, Some(route), status, elapsed);
    }
}

/// A request no route served (refused, or not found): counted as unrouted and logged.
pub fn unrouted(
    shared: &Shared,
    conn: &ConnInfo,
    line: Option<Line<'_>>,
    status: u16,
    elapsed: Duration,
) {
    shared.metrics.unrouted.inc();
    if let Some(l) = line {
        shared.log_line(conn, l.method, l.path, l.host, None, status, elapsed);
    }
}
