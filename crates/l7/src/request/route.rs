//! Phase `route`: the host and the (already normalised) path to the route that serves them.

use std::borrow::Cow;
use std::sync::Arc;

use crate::table::{Lookup, Route, RouteTable, normalize_host};

/// The route for a request to `host` (as the request spelled it: port and case do not matter)
/// and `path` (normalised, see [`crate::path`]); also the host as matched, for the rest of the
/// pipeline. `None`: nothing serves it (404).
pub fn route<'h>(
    table: &RouteTable,
    host: &'h str,
    path: &str,
) -> (Cow<'h, str>, Option<Arc<Route>>) {
    let host = normalize_host(host);
    let found = match table.lookup(&host, path) {
        Lookup::Route(r) => Some(r.clone()),
        Lookup::NotFound => None,
    };
    (host, found)
}
