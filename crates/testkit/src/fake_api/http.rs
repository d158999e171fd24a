//! The HTTP face of the fake API server: paths and query parameters to [`Store`] calls.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use super::resources::parse_path;
use super::selector::Selectors;
use super::store::{ApiError, PatchType, WatchRequest, Write, event_line};
use super::{Inner, RequestRecord};

pub type Body = BoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 16 << 20;

pub async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    inner.record(RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
    });
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            ))));
        }
    };
    Ok(
        match route(&inner, &method, &path, &query, &content_type, &body).await {
            Ok(resp) => resp,
            Err(e) => error(&e),
        },
    )
}

async fn route(
    inner: &Arc<Inner>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    if let Some(doc) = discovery(inner, path) {
        return Ok(json_response(StatusCode::OK, &doc));
    }
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let t = parse_path(path).ok_or_else(not_found)?;
    let res = inner
        .store()
        .find(&t.group, &t.version, &t.plural)
        .ok_or_else(not_found)?;
    let namespaced = inner.store().resources[res].namespaced;
    if !namespaced && t.namespace.is_some() {
        return Err(not_found());
    }
    let ns = t.namespace.as_deref();
    let mode = match t.subresource.as_deref() {
        None => Write::Main,
        Some("status") => Write::Status,
        Some(_) => return Err(not_found()),
    };
    let q = |k: &str| query.get(k).map(String::as_str);
    let flag = |k: &str| matches!(q(k), Some("true" | "1"));
    let parse_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    };
    let created = |v: Value| json_response(StatusCode::CREATED, &v);
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    match (method, t.name.as_deref()) {
        (&Method::GET, None) => {
            let selectors = Selectors::parse(q("labelSelector"), q("fieldSelector"))
                .map_err(ApiError::bad_request)?;
            if flag("watch") {
                inner.wait_unheld(&inner.hold_watches).await;
                let timeout = q("timeoutSeconds")
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(1800);
                let req = WatchRequest {
                    res,
                    namespace: ns,
                    selectors,
                    resource_version: q("resourceVersion"),
                    bookmarks: flag("allowWatchBookmarks"),
                    send_initial_events: flag("sendInitialEvents"),
                };
                let opened = inner.store().watch(req);
                return Ok(match opened {
                    Ok(rx) => watch_response(rx, Duration::from_secs(timeout)),
                    // The API server reports an expired resourceVersion inside the watch stream.
                    Err(e) => {
                        let (tx, rx) = tokio::sync::mpsc::channel(1);
                        tx.try_send(event_line("ERROR", &e.status()))
                            .expect("a fresh channel has room for one event");
                        watch_response(rx, Duration::from_secs(timeout))
                    }
                });
            }
            inner.wait_unheld(&inner.hold_lists).await;
            let limit = q("limit")
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|l| *l > 0);
            Ok(ok(inner.store().list(
                res,
                ns,
                &selectors,
                limit,
                q("continue"),
            )?))
        }
        (&Method::GET, Some(name)) => Ok(ok((*inner.store().get(res, ns, name)?).clone())),
        (&Method::POST, None) if mode == Write::Main => {
            if namespaced && ns.is_none() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "create requires a namespace in the path",
                ));
            }
            if let (true, Some(ns)) = (namespaced && inner.namespace_lifecycle, ns) {
                let store = inner.store();
                let exists = store
                    .resources
                    .iter()
                    .position(|r| r.group.is_empty() && r.plural == "namespaces")
                    .is_some_and(|n| store.get(n, None, ns).is_ok());
                if !exists {
                    return Err(ApiError::new(
                        404,
                        "NotFound",
                        format!("namespaces \"{ns}\" not found"),
                    ));
                }
            }
            Ok(created(inner.store().create(
                res,
                ns,
                parse_body()?,
                Write::Main,
            )?))
        }
        (&Method::PUT, Some(name)) => Ok(ok(inner.store().update(
            res,
            ns,
            name,
            parse_body()?,
            mode,
        )?)),
        (&Method::PATCH, Some(name)) => {
            let ty = PatchType::from_content_type(content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format ({content_type:?})"),
                )
            })?;
            Ok(ok(inner.store().patch(res, ns, name, ty, body, mode)?))
        }
        (&Method::DELETE, Some(name)) if mode == Write::Main => {
            Ok(ok(inner.store().delete(res, ns, name)?))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {path}"),
        )),
    }
}

/// `/version`, `/api`, `/apis`, `/api/v1` and `/apis/{group}/{version}`.
fn discovery(inner: &Inner, path: &str) -> Option<Value> {
    let store = inner.store();
    let path = path.trim_end_matches('/');
    match path {
        "/version" => {
            return Some(
                json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-portico-fake", "platform": "linux/amd64"}),
            );
        }
        "/api" => {
            return Some(
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            );
        }
        "/apis" => {
            let mut groups: Vec<(String, String)> = store
                .resources
                .iter()
                .filter(|r| !r.group.is_empty())
                .map(|r| (r.group.clone(), r.version.clone()))
                .collect();
            groups.dedup();
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, v)| {
                    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            return Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        _ => {}
    }
    let gv = path
        .strip_prefix("/api/")
        .or_else(|| path.strip_prefix("/apis/"))?;
    let resources: Vec<Value> = store
        .resources
        .iter()
        .filter(|r| r.api_version() == gv)
        .flat_map(|r| {
            let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
            let main = json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs});
            let status = r.status_subresource.then(|| json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
            std::iter::once(main).chain(status)
        })
        .collect();
    (!resources.is_empty()).then(|| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status(),
    )
}

/// A streaming `200` of newline-delimited watch events, ended by `timeout` or when the server
/// drops the sender (`break_watches`, a slow reader, shutdown).
fn watch_response(rx: tokio::sync::mpsc::Receiver<Bytes>, timeout: Duration) -> Response<Body> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => Some((Ok::<_, Infallible>(Frame::data(line)), rx)),
            _ => None,
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
