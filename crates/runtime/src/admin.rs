//! The admin API (axum): health, readiness, Prometheus metrics and JSON views of the current
//! configuration. `router(state)` is a plain function so tests can call it without a server.
//! Only requests for an allowed `Host` are answered (see [`host`]: DNS rebinding).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use portico_model::{Invalid, ObjectKey, Snapshot};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::views;

mod host;
pub use host::{AllowedHost, AllowedHosts, InvalidAllowedHost};

/// A named JSON view contributed by a part (ingresses, pools, datapath listeners, ...).
pub type ViewFn = Arc<dyn Fn() -> Value + Send + Sync>;
/// Configuration errors found by a part after translation (e.g. the Ingress router's).
pub type ErrorsFn = Arc<dyn Fn() -> Vec<Invalid> + Send + Sync>;

#[derive(Clone)]
pub struct AdminState {
    pub snapshots: Arc<Publisher<Snapshot>>,
    pub metrics: Arc<Metrics>,
    views: Arc<BTreeMap<String, ViewFn>>,
    errors: Arc<Vec<ErrorsFn>>,
    /// When each Service was first seen by this process: the AGE of objects without a
    /// creationTimestamp.
    first_seen: Arc<Mutex<BTreeMap<ObjectKey, String>>>,
    /// Extra readiness conditions (e.g. "the Ingress table is built").
    ready_checks: Arc<Vec<Arc<dyn Fn() -> bool + Send + Sync>>>,
    /// The `Host` values answered; others get 421.
    allowed_hosts: Arc<AllowedHosts>,
}

impl AdminState {
    pub fn new(snapshots: Arc<Publisher<Snapshot>>, metrics: Arc<Metrics>) -> Self {
        Self {
            snapshots,
            metrics,
            views: Arc::default(),
            errors: Arc::default(),
            first_seen: Arc::default(),
            ready_checks: Arc::default(),
            allowed_hosts: Arc::default(),
        }
    }

    /// Answer for these hosts besides loopback (`--admin-allowed-host`); [`serve`] adds the
    /// listening address.
    pub fn with_allowed_hosts(mut self, hosts: AllowedHosts) -> Self {
        self.allowed_hosts = Arc::new(hosts);
        self
    }

    pub fn with_view(mut self, name: &str, f: ViewFn) -> Self {
        Arc::make_mut(&mut self.views).insert(name.to_owned(), f);
        self
    }

    /// A view that shows the whole current value of a publisher.
    pub fn with_published_view<T: serde::Serialize + Send + Sync + 'static>(
        self,
        name: &str,
        publisher: Arc<Publisher<T>>,
    ) -> Self {
        self.with_view(
            name,
            Arc::new(move || serde_json::to_value(&*publisher.current()).unwrap_or_default()),
        )
    }

    pub fn with_errors(mut self, f: ErrorsFn) -> Self {
        Arc::make_mut(&mut self.errors).push(f);
        self
    }

    pub fn with_ready_check(mut self, f: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        Arc::make_mut(&mut self.ready_checks).push(f);
        self
    }

    fn first_seen(&self, snap: &Snapshot) -> BTreeMap<ObjectKey, String> {
        let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = jiff::Timestamp::now().to_string();
        for key in snap.services.keys() {
            seen.entry(key.clone()).or_insert_with(|| now.clone());
        }
        seen.retain(|k, _| snap.services.contains_key(k));
        seen.clone()
    }

    /// Every configuration error: the snapshot's and the parts'.
    pub fn all_errors(&self) -> Vec<Invalid> {
        let mut all: Vec<Invalid> = self.snapshots.peek().errors.to_vec();
        for f in self.errors.iter() {
            all.extend(f());
        }
        all
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/services", get(services))
        .route("/api/endpoints", get(endpoints))
        .route("/api/errors", get(errors))
        .route("/api/config", get(config))
        .route("/api/views/{name}", get(view))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Refuse requests for a `Host` the admin API does not answer for (DNS rebinding).
async fn check_host(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let host = match req.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().unwrap_or("")),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    if s.allowed_hosts.allows(host) {
        return next.run(req).await;
    }
    let host = host.unwrap_or_default().to_owned();
    tracing::debug!(%host, path = %req.uri().path(), "admin request for a host not allowed; 421");
    (
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "the admin API does not answer for host {host:?} (DNS rebinding protection); \
             allow it with --admin-allowed-host\n"
        ),
    )
        .into_response()
}

/// Serve until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    mut state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    state.allowed_hosts = Arc::new((*state.allowed_hosts).clone().with_listen_addr(listen));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.snapshots.is_ready() && s.ready_checks.iter().all(|f| f()) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: configuration not loaded yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let snap = s.snapshots.peek();
    s.metrics.config.generation.set(snap.generation as i64);
    s.metrics
        .config
        .invalid_objects
        .set(s.all_errors().len() as i64);
    drop(snap);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn services(State(s): State<AdminState>) -> Json<Value> {
    let snap = s.snapshots.current();
    let seen = s.first_seen(&snap);
    Json(json!(views::services(&snap, &seen)))
}

async fn endpoints(State(s): State<AdminState>) -> Json<Value> {
    let snap = s.snapshots.current();
    let seen = s.first_seen(&snap);
    Json(json!(views::endpoints(&snap, &seen)))
}

async fn errors(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.all_errors()))
}

async fn config(State(s): State<AdminState>) -> Json<Value> {
    let snap = s.snapshots.current();
    Json(json!({
        "generation": snap.generation,
        "ready": s.snapshots.is_ready(),
        "services": snap.services.len(),
        "endpoints": snap.endpoints.len(),
        "ingresses": snap.ingresses.len(),
        "tlsSecrets": snap.tls_secrets.len(),
        "ipAddressPools": snap.ip_address_pools.len(),
        "errors": s.all_errors().len(),
        "views": s.views.keys().collect::<Vec<_>>(),
    }))
}

async fn view(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    match s.views.get(&name) {
        Some(f) => Json(f()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no view named {name:?}\n")).into_response(),
    }
}
