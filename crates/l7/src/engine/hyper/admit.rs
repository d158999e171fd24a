//! What the general path refuses before routing a request, and the host of an absolute-form
//! request. The rules are [`crate::framing`]'s, shared with the fast path.

use http::header::{self, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::client::ProxyBody;
use super::error::local_response;
use crate::framing::{self, RequestCoding};

/// Why a request is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("method is not A-Z, '-', '_' only")]
    Method,
    #[error("transfer coding other than a single 'chunked'")]
    TransferCoding,
    #[error("absolute-form target with a scheme other than http or https")]
    TargetScheme,
    #[error("absolute-form target with user information")]
    TargetUserinfo,
}

impl Refused {
    /// 501 for a transfer coding, else 400; either closes the connection (as nginx does): the
    /// client and the proxy may not agree on where the refused request ends.
    pub fn response(self) -> Response<ProxyBody> {
        let mut r = match self {
            Refused::TransferCoding => {
                local_response(StatusCode::NOT_IMPLEMENTED, "501 not implemented\n")
            }
            _ => local_response(StatusCode::BAD_REQUEST, "400 bad request\n"),
        };
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    }
}

/// Check the method and the transfer coding; for an HTTP/1.x absolute-form target
/// (`GET http://other.test/x HTTP/1.1`), make its authority the request's `Host`: RFC 9112
/// section 3.2.2 says a server ignores the `Host` header then, so the route and the upstream's
/// `Host` follow the target (the upstream gets the origin-form path). HTTP/2 keeps `Host` first.
pub fn admit(req: &mut Request<Incoming>) -> Result<(), Refused> {
    if !framing::valid_method(req.method().as_str().as_bytes()) {
        return Err(Refused::Method);
    }
    if req.version() >= Version::HTTP_2 {
        return Ok(());
    }
    let te = req
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .map(HeaderValue::as_bytes);
    if framing::request_coding(te) == RequestCoding::Unsupported {
        return Err(Refused::TransferCoding);
    }
    let uri = req.uri();
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Ok(());
    };
    if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
        return Err(Refused::TargetScheme);
    }
    if authority.as_str().contains('@') {
        return Err(Refused::TargetUserinfo);
    }
    // An Authority is valid header text.
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| Refused::TargetUserinfo)?;
    req.headers_mut().insert(header::HOST, host);
    Ok(())
}
