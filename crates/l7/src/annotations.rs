//! The option types the request path reads, under the path they have long had. The
//! ingress-nginx annotations themselves are parsed by the route model
//! (`portico_model::routes::annotations`) and compiled into [`crate::table::Options`]; this
//! module only re-exports.

pub use crate::table::options::{CanaryRules, HashKey, Options};
pub use portico_model::routes::annotations::{PREFIX, SUPPORTED, parse_size};
pub use portico_model::routes::{BackendProtocol, Balance, CookieAffinity as Affinity, SameSite};
