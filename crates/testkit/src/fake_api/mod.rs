//! A small, faithful in-process Kubernetes API server for tests, served over plain HTTP on
//! `127.0.0.1:0`, that kube-rs clients, watchers and reflectors talk to unchanged.
//!
//! What it does as the real one does:
//! - one global `resourceVersion` counter; LIST returns it in `metadata.resourceVersion`
//!   (`limit`/`continue` paging, label and field selectors);
//! - WATCH streams newline-delimited `ADDED`/`MODIFIED`/`DELETED` events after the given
//!   resourceVersion from a bounded history, `BOOKMARK`s when `allowWatchBookmarks=true`, and an
//!   `ERROR` event with a `410 Expired` Status when the resourceVersion is older than the history;
//!   without a resourceVersion it starts with synthetic `ADDED` events; an object that stops (or
//!   starts) matching a selector is `DELETED` (or `ADDED`) for that watch;
//! - POST assigns `uid`, `resourceVersion`, `creationTimestamp`, `generation` (and names from
//!   `generateName`); PUT checks `metadata.resourceVersion` (409 Conflict); PATCH takes merge,
//!   JSON, strategic (as merge) and apply (as merge, creating) patches; a no-op write changes
//!   nothing; DELETE honours finalizers with `deletionTimestamp`;
//! - `.status` of kinds with a status subresource is written only through `.../status`.
//!
//! What it does not: authentication, admission (except, with [`Builder::namespace_lifecycle`],
//! the NamespaceLifecycle plugin's refusal to create in a namespace that does not exist),
//! defaulting, validation beyond names and types, garbage collection, field managers.
//!
//! ```no_run
//! # async fn example() {
//! use portico_testkit::FakeApiServer;
//! use serde_json::json;
//!
//! let fake = FakeApiServer::start().await;
//! fake.apply(json!({"apiVersion": "v1", "kind": "Service",
//!     "metadata": {"name": "web", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}));
//! let client = fake.client(); // hand it to the code under test
//! // ... later: what did the code write?
//! let svc = fake.get("v1", "Service", "shop", "web").expect("exists");
//! assert!(svc.pointer("/status/loadBalancer").is_none());
//! # drop(client);
//! # }
//! ```
//!
//! Fault injection: [`FakeApiServer::break_watches`] (connections end; clients resume from their
//! resourceVersion), [`FakeApiServer::expire_history`] (their next watch gets 410 and they must
//! re-list), [`FakeApiServer::hold_watches`] / [`FakeApiServer::hold_lists`] (requests wait),
//! [`Builder::without_metallb_crds`] and [`FakeApiServer::install`] (CRDs absent, then installed),
//! [`FakeApiServer::stop`] / [`FakeApiServer::restart`] (an outage: the port refuses connections,
//! then the server comes back on the same address with its objects and resourceVersions, as an
//! API server backed by the same etcd).

mod http;
pub mod resources;
mod selector;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use resources::ResourceType;
pub use selector::Selectors;
use store::Store;
pub use store::{ApiError, PatchType, Write};

/// One request the server received, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
}

impl RequestRecord {
    pub fn is_watch(&self) -> bool {
        matches!(
            self.query.get("watch").map(String::as_str),
            Some("true" | "1")
        )
    }
}

const MAX_REQUESTS_LOGGED: usize = 100_000;

pub(crate) struct Inner {
    store: Mutex<Store>,
    requests: Mutex<Vec<RequestRecord>>,
    hold_watches: watch::Sender<bool>,
    hold_lists: watch::Sender<bool>,
    /// Refuse creates in namespaces that have no Namespace object (404, as the API server).
    pub(crate) namespace_lifecycle: bool,
}

impl Inner {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, r: RequestRecord) {
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < MAX_REQUESTS_LOGGED {
            log.push(r);
        }
    }

    async fn wait_unheld(&self, hold: &watch::Sender<bool>) {
        let mut rx = hold.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we are borrowed.
        let _ = rx.wait_for(|held| !*held).await;
    }
}

/// How to start a [`FakeApiServer`].
pub struct Builder {
    resources: Vec<ResourceType>,
    history_limit: usize,
    watch_queue: usize,
    bookmark_interval: Duration,
    namespace_lifecycle: bool,
}

impl Default for Builder {
    fn default() -> Self {
        let mut resources = resources::builtin();
        resources.extend(resources::metallb_crds());
        Self {
            resources,
            history_limit: 1000,
            watch_queue: 4096,
            bookmark_interval: Duration::from_secs(60),
            namespace_lifecycle: false,
        }
    }
}

impl Builder {
    /// Serve as if MetalLB's CRDs were not installed: their paths answer 404.
    pub fn without_metallb_crds(mut self) -> Self {
        self.resources.retain(|r| r.group != "metallb.io");
        self
    }

    /// Serve one more resource (a custom resource definition, say).
    pub fn resource(mut self, rt: ResourceType) -> Self {
        self.resources.push(rt);
        self
    }

    /// How many changes watches can be resumed from (older resourceVersions get 410).
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// How many events may wait for a slow watcher before it is disconnected.
    pub fn watch_queue(mut self, n: usize) -> Self {
        self.watch_queue = n;
        self
    }

    /// How often watches that allow bookmarks get one (a minute by default, as the API server).
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    /// Refuse to create a namespaced object in a namespace with no Namespace object, with the
    /// API server's `404 namespaces "NAME" not found` (its NamespaceLifecycle admission).
    /// Off by default: most tests create objects without creating their namespace first.
    pub fn namespace_lifecycle(mut self) -> Self {
        self.namespace_lifecycle = true;
        self
    }

    pub async fn start(self) -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a test server on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::new(
                self.resources,
                self.history_limit,
                self.watch_queue,
            )),
            requests: Mutex::new(Vec::new()),
            hold_watches: watch::channel(false).0,
            hold_lists: watch::channel(false).0,
            namespace_lifecycle: self.namespace_lifecycle,
        });
        let serve = tokio::spawn(serve(listener, inner.clone()));
        let bookmarks = tokio::spawn({
            let inner = inner.clone();
            let every = self.bookmark_interval.max(Duration::from_millis(10));
            async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tick.tick().await;
                    inner.store().send_bookmarks();
                }
            }
        });
        FakeApiServer {
            addr,
            inner,
            serving: Mutex::new(Some(serve)),
            bookmarks,
        }
    }
}

async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let inner = inner.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| http::handle(inner.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "fake API server connection ended");
            }
        });
    }
}

/// The fake API server. Stops (and closes every connection) when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    /// The accept loop (it owns the listener and every connection); `None` while stopped.
    serving: Mutex<Option<JoinHandle<()>>>,
    bookmarks: JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(t) = self.serving().take() {
            t.abort();
        }
        self.bookmarks.abort();
    }
}

impl FakeApiServer {
    /// Start with the built-in kinds and MetalLB's CRDs.
    pub async fn start() -> Self {
        Builder::default().start().await
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serving(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Go down as an API server does in an outage: the listening socket is closed (new
    /// connections are refused) and every open connection, watches included, ends. The objects
    /// and the resourceVersion counter are kept for [`FakeApiServer::restart`]. A no-op when
    /// stopped already.
    pub async fn stop(&self) {
        let serving = self.serving().take();
        if let Some(t) = serving {
            t.abort();
            // Wait until the listener and the connections are really dropped.
            let _ = t.await;
        }
        self.inner.store().break_watches();
    }

    /// Come back after [`FakeApiServer::stop`] on the same address, with the same objects and
    /// resourceVersions. A no-op when serving. Panics if the port was taken in between.
    pub async fn restart(&self) {
        if self.serving().is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("rebinding the fake API server on {}: {e}", self.addr));
        let serve = tokio::spawn(serve(listener, self.inner.clone()));
        *self.serving() = Some(serve);
    }

    /// Whether the server accepts connections (false between `stop` and `restart`).
    pub fn is_serving(&self) -> bool {
        self.serving().is_some()
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server: plain HTTP, no authentication, namespace `default`.
    pub fn client(&self) -> kube::Client {
        crate::install_crypto_provider();
        let uri: ::http::Uri = self.url().parse().expect("a loopback URL is a valid URI");
        kube::Client::try_from(kube::Config::new(uri))
            .expect("a client for a plain-HTTP loopback server")
    }

    fn resolve(&self, api_version: &str, kind_or_plural: &str) -> usize {
        self.inner
            .store()
            .find_by(api_version, kind_or_plural)
            .unwrap_or_else(|| {
                panic!("the fake API server does not serve {api_version} {kind_or_plural}")
            })
    }

    /// A kubeconfig (YAML) that points kubectl-style clients at this server, no credentials.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Create or replace an object as a fixture: the whole object (status included) is stored
    /// as given, with no resourceVersion precondition. Watches see ADDED or MODIFIED. Returns
    /// the stored object. Panics on an unknown kind or a malformed object (a bug in the test).
    pub fn apply(&self, obj: Value) -> Value {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let res = self.resolve(&api_version, &kind);
        self.inner
            .store()
            .update(res, ns.as_deref(), &name, obj, Write::Fixture)
            .unwrap_or_else(|e| panic!("applying {kind} {name:?}: {}", e.message))
    }

    /// One object; `namespace` is ignored for cluster-scoped kinds.
    pub fn get(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let res = self.resolve(api_version, kind_or_plural);
        self.inner
            .store()
            .get(res, Some(namespace), name)
            .ok()
            .map(|v| (*v).clone())
    }

    /// Every object of a kind, in one namespace or all.
    pub fn list(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let res = self.resolve(api_version, kind_or_plural);
        let store = self.inner.store();
        let namespace = if store.resources[res].namespaced {
            namespace
        } else {
            None
        };
        store.all(res, namespace)
    }

    /// Delete as a client would (finalizers hold the object with a deletionTimestamp). Returns
    /// the object as deleted, or `None` if there was none.
    pub fn delete(
        &self,
        api_version: &str,
        kind_or_plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let res = self.resolve(api_version, kind_or_plural);
        self.inner.store().delete(res, Some(namespace), name).ok()
    }

    /// Every recorded Event, core `v1` and `events.k8s.io/v1`, in creation order.
    pub fn events(&self) -> Vec<Value> {
        let store = self.inner.store();
        let mut out = Vec::new();
        for av in ["v1", "events.k8s.io/v1"] {
            if let Some(res) = store.find_by(av, "Event") {
                out.extend(store.all(res, None));
            }
        }
        let rv = |v: &Value| {
            v.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        out.sort_by_key(rv);
        out
    }

    /// Start serving a resource, as when a CRD is installed (a no-op if it is served already).
    pub fn install(&self, rt: ResourceType) {
        let mut store = self.inner.store();
        if store.find(&rt.group, &rt.version, &rt.plural).is_none() {
            store.resources.push(rt);
        }
    }

    /// Install MetalLB's CRDs (for a server built `without_metallb_crds`).
    pub fn install_metallb_crds(&self) {
        for rt in resources::metallb_crds() {
            self.install(rt);
        }
    }

    /// End every open watch stream (clients see the connection end and re-watch).
    pub fn break_watches(&self) {
        self.inner.store().break_watches();
    }

    /// Forget the watch history: the next watch from any resourceVersion seen so far gets an
    /// `ERROR` event with a `410 Expired` Status (clients must re-list).
    pub fn expire_history(&self) {
        self.inner.store().expire_history();
    }

    /// Send a BOOKMARK now to every watch that allows them.
    pub fn send_bookmarks(&self) {
        self.inner.store().send_bookmarks();
    }

    /// While held, new watch requests wait (open watches keep streaming).
    pub fn hold_watches(&self, hold: bool) {
        self.inner.hold_watches.send_replace(hold);
    }

    /// While held, list requests wait.
    pub fn hold_lists(&self, hold: bool) {
        self.inner.hold_lists.send_replace(hold);
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store().resource_version()
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.inner.store().open_watches()
    }

    /// Every request received so far (up to 100 000).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn clear_requests(&self) {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests;
