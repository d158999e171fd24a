//! One attempt on the hyper engine: the upstream request built for an endpoint (or an
//! ExternalName), sent through the pooled client within the route's timeouts.

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::{Body, Incoming};

use super::body::{self, ClientBodyError, Whole};
use super::client::{ProxyBody, UpstreamClient};
use super::error::{ProxyError, empty};
use super::send::Watched;
use crate::request::upstream::{Attempt, Exchange, Failure};

/// The request, ready to be sent to whichever endpoint the upstream phase picks.
pub(super) struct HyperExchange<'a> {
    pub client: &'a UpstreamClient,
    pub method: Method,
    pub version: Version,
    pub scheme: Scheme,
    pub path_and_query: PathAndQuery,
    /// The ExternalName to send to; `None`: the endpoints.
    pub authority: Option<Authority>,
    pub headers: HeaderMap,
    /// Tries after this one that need the headers again.
    pub copies: u32,
    /// The body, for the first try.
    pub body: Option<ProxyBody>,
    /// The body once more, when it was read whole.
    pub whole: Option<Whole>,
    pub empty_body: bool,
}

impl HyperExchange<'_> {
    fn request(&mut self, authority: Authority) -> Result<Request<ProxyBody>, ProxyError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(self.path_and_query.clone())
            .build()
            .map_err(ProxyError::BadRequest)?;
        let b = match (self.body.take(), &self.whole) {
            (Some(b), _) => b,
            (None, Some(w)) if !self.empty_body => w.body(),
            (None, _) => empty(),
        };
        let mut up = Request::new(b);
        *up.method_mut() = self.method.clone();
        *up.uri_mut() = uri;
        *up.version_mut() = self.version;
        *up.headers_mut() = if self.copies > 0 {
            self.copies -= 1;
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        Ok(up)
    }
}

impl Exchange for HyperExchange<'_> {
    type Reply = Response<Incoming>;
    type Error = ProxyError;

    async fn attempt(
        &mut self,
        a: &Attempt<'_>,
    ) -> Result<Response<Incoming>, (ProxyError, Failure)> {
        let authority = match (a.endpoint, &self.authority) {
            (Some(e), _) => e.authority.clone(),
            (None, Some(x)) => x.clone(),
            (None, None) => return Err((ProxyError::NoRoute, Failure::Final)),
        };
        let mut up = self.request(authority).map_err(|e| (e, Failure::Final))?;
        // proxy-send-timeout: watched while there is a body to send.
        let progress = (!up.body().is_end_stream()).then(|| {
            let (b, p) = Watched::wrap(std::mem::replace(up.body_mut(), empty()));
            *up.body_mut() = b;
            p
        });
        let send_timeout = a.timeouts().send;
        let exchange = async {
            tokio::select! {
                r = self.client.request(up) => Ok(r),
                () = async {
                    match &progress {
                        Some(p) => p.stalled(send_timeout).await,
                        None => std::future::pending().await,
                    }
                } => Err(ProxyError::SendTimeout),
            }
        };
        let total = a.timeouts().connect + a.timeouts().read;
        let e = match tokio::time::timeout(total, exchange).await {
            Ok(Ok(Ok(resp))) => return Ok(resp),
            Ok(Ok(Err(e))) => e,
            Ok(Err(e)) => return Err((e, Failure::Final)),
            Err(_) => return Err((ProxyError::Timeout, Failure::Final)),
        };
        let addr = a.endpoint.map(|e| e.addr.to_string());
        if e.is_connect() {
            let addr = addr.unwrap_or_else(|| self.path_and_query.to_string());
            return Err((ProxyError::Connect { addr, source: e }, Failure::Connect));
        }
        let addr = addr.unwrap_or_default();
        Err(match body::cause(&e) {
            Some(ClientBodyError::TooLarge) => (ProxyError::TooLarge, Failure::Final),
            Some(ClientBodyError::Timeout) => (ProxyError::BodyTimeout, Failure::Final),
            Some(ClientBodyError::Read(_)) => {
                (ProxyError::Upstream { addr, source: e }, Failure::Final)
            }
            None if !broke_before_response(&e) => {
                (ProxyError::Upstream { addr, source: e }, Failure::Final)
            }
            // No response head: the connection broke (reset, EOF, write error).
            None => (
                ProxyError::Upstream { addr, source: e },
                Failure::Broke { reused: false },
            ),
        })
    }
}

/// Whether a client error says the upstream connection broke (reset, EOF, a failed write)
/// before a response head arrived, rather than that the upstream answered badly.
fn broke_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
            if h.is_parse() || h.is_parse_status() || h.is_user() {
                return false;
            }
        }
        if err.is::<std::io::Error>() {
            return true;
        }
        next = err.source();
    }
    false
}
