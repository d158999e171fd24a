//! Why a request got no upstream response on the hyper engine, and the local answers it writes.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use super::client::ProxyBody;
use crate::path::PathError;
use crate::request::policy::Answer;

/// Why a request got no upstream response; [`ProxyError::status`] maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route")]
    NoRoute,
    #[error("service {0} not found")]
    NoService(Arc<str>),
    #[error("service {0} has no ready endpoints")]
    NoEndpoints(Arc<str>),
    #[error("connect to {addr} failed")]
    Connect {
        addr: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("upstream {addr} failed")]
    Upstream {
        addr: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("upstream timed out")]
    Timeout,
    #[error("sending the request to the upstream timed out")]
    SendTimeout,
    #[error("request body larger than the limit")]
    TooLarge,
    #[error("the request body stalled longer than the client body timeout")]
    BodyTimeout,
    #[error("the request body could not be read")]
    ClientBody(#[source] hyper::Error),
    #[error("the upstream request could not be built")]
    BadRequest(#[source] http::Error),
    #[error("request path refused")]
    BadPath(#[from] PathError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoService(_) | ProxyError::NoEndpoints(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout | ProxyError::SendTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadRequest(_) | ProxyError::BadPath(_) | ProxyError::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn redirect(status: StatusCode, location: HeaderValue) -> Response<ProxyBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r.headers_mut().insert(header::LOCATION, location);
    r
}

/// The policy phase's answer, written.
pub fn answer(a: Answer) -> Response<ProxyBody> {
    match a {
        Answer::Forbidden => local_response(StatusCode::FORBIDDEN, "403 forbidden\n"),
        Answer::Redirect { status, location } => redirect(status, location),
        Answer::BadRequest => local_response(StatusCode::BAD_REQUEST, "400 bad request\n"),
        Answer::TooLarge => local_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 request entity too large\n",
        ),
    }
}

pub fn error_response(e: &ProxyError) -> Response<ProxyBody> {
    let text = match e.status() {
        StatusCode::NOT_FOUND => "404 page not found\n",
        StatusCode::SERVICE_UNAVAILABLE => "503 service unavailable\n",
        StatusCode::BAD_GATEWAY => "502 bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "504 gateway timeout\n",
        StatusCode::PAYLOAD_TOO_LARGE => "413 request entity too large\n",
        StatusCode::REQUEST_TIMEOUT => "408 request timeout\n",
        _ => "400 bad request\n",
    };
    let mut r = local_response(e.status(), text);
    if matches!(e, ProxyError::BodyTimeout) {
        // The rest of the body is not read: the connection cannot carry another request.
        // (hyper drops the header on HTTP/2, where only the stream ends.)
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
