//! The RP-facing HTTP surface: routing by path and method, body/form handling, and the one
//! request log line and metrics per request. Endpoint logic lives in one file each; every
//! failure is an [`error::RpError`] turned into an OAuth answer in `error.rs`.

pub mod authorize;
pub mod bc_authorize;
pub mod callback;
pub mod cancel;
pub mod client_assertion;
pub mod client_auth;
pub mod client_jws;
pub mod client_keys;
pub mod discovery_api;
pub mod error;
pub mod form;
pub mod html;
pub mod idempotency;
pub mod login_hint;
pub mod metadata;
pub mod op_notify;
pub mod redirect_back;
pub mod request_id;
pub mod request_object;
pub mod si_authorize;
pub mod sms_confirm;
pub mod sms_otp;
pub mod token;
pub mod token_code;
pub mod userinfo;
pub mod verified_secret;

use crate::app::Gateway;
use crate::msisdn::Msisdn;
use crate::server::conn::Handler;
use crate::telemetry::metrics::Endpoint;
use crate::telemetry::trace::TraceContext;
use bytes::Bytes;
use error::RpError;
use form::Params;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a handler learnt, for the request's log line (masked MSISDN only).
#[derive(Debug, Default)]
pub struct RequestLog {
    /// Authenticated client.
    pub client: Option<String>,
    /// Operator routed to.
    pub operator: Option<String>,
    /// The person (logged masked).
    pub msisdn: Option<Msisdn>,
    /// `ported` or `prefix`.
    pub route_source: Option<&'static str>,
    /// The request body was read to its end (else an HTTP/1.1 connection that announced one
    /// closes after the answer).
    pub body_read: bool,
}

/// The public listener's handler.
pub struct RpService {
    live: Arc<crate::server::reload::Live>,
    request_ids: AtomicU64,
    instance: String,
    edge: Option<Arc<crate::server::edge::Edge>>,
}

impl RpService {
    /// Serves `gw`.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self::live(crate::server::reload::Live::new(gw), None)
    }

    /// Serves whatever gateway `live` holds when a request starts (hot reload), under `edge`'s
    /// in-flight cap and drain flag.
    pub fn live(live: Arc<crate::server::reload::Live>, edge: Option<Arc<crate::server::edge::Edge>>) -> Self {
        Self { live, request_ids: AtomicU64::new(0), instance: crate::clock::random_token(4), edge }
    }
}

impl RpService {
    /// `<instance>-<counter>`: unique per instance, cheap (no formatting machinery).
    fn next_request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.instance.len() + 21);
        id.push_str(&self.instance);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        id
    }
}

impl Handler for RpService {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        // Over the in-flight cap: 503 at once, before any work (not logged per request: the
        // shed counter tells it without flooding the log under overload).
        let _in_flight = match &self.edge {
            Some(edge) => match edge.admit() {
                Some(place) => Some(place),
                None => {
                    let mut resp = RpError::TemporarilyUnavailable("the gateway is at capacity".into()).into_response();
                    if req.version() < http::Version::HTTP_2 && declares_body(req.headers()) {
                        // Its body is not read: the connection closes after this answer.
                        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    return resp;
                }
            },
            None => None,
        };
        // One snapshot of the configuration for the whole request.
        let gw = self.live.load();
        // The RP's trace, or a new one: operator calls and log lines of this request carry it.
        let trace = TraceContext::continue_or_start(req.headers().get(crate::telemetry::trace::TRACEPARENT));
        crate::telemetry::trace::scope(trace, self.serve(&gw, req)).await
    }
}

impl RpService {
    /// One request, inside its trace: route, answer, one log line, metrics.
    async fn serve(&self, gw: &Arc<Gateway>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let http1 = req.version() < http::Version::HTTP_2;
        let started = tokio::time::Instant::now();
        let request_id = match request_id::incoming(req.headers(), gw.request_id_max_len) {
            Some(id) => id.to_owned(),
            None => self.next_request_id(),
        };
        let method = req.method().clone();
        let declares_body = declares_body(req.headers());
        let mut log = RequestLog::default();
        let (endpoint, result) = route(gw, req, &mut log).await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                if let RpError::Internal(detail) = &e {
                    tracing::error!(request_id = %request_id, error = %detail, "internal error");
                }
                e.into_response()
            }
        };
        let status = resp.status();
        let outcome = match resp.extensions().get::<ErrorCode>() {
            Some(c) => c.0, // also an error sent back to an RP by redirect
            None if status.is_success() || status.is_redirection() => "ok",
            None => outcome_of(&resp),
        };
        let elapsed = started.elapsed();
        gw.metrics.observe_request(endpoint, outcome, elapsed.as_secs_f64());
        let msisdn_ref = log.msisdn.map(|m| gw.msisdn_refs.reference(m));
        // Strings recorded as `&str` (not `%` Display): the same JSON, without the formatting
        // machinery or, for the masked number, a `String`.
        let masked = log.msisdn.map(|m| m.masked().text());
        tracing::info!(
            request_id = request_id.as_str(),
            method = method.as_str(),
            endpoint = endpoint.as_str(),
            status = status.as_u16(),
            outcome,
            client = log.client.as_deref().unwrap_or("-"),
            operator = log.operator.as_deref().unwrap_or("-"),
            route = log.route_source.unwrap_or("-"),
            msisdn = masked.as_ref().map_or("-", |m| m.as_str()),
            msisdn_ref = msisdn_ref.as_ref().map_or("-", |r| r.as_str()),
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        // Answered without reading the body (too large, wrong type, no such route or method…).
        let body_left_unread = declares_body && !log.body_read;
        if http1 && (body_left_unread || self.edge.as_ref().is_some_and(|e| e.draining())) {
            // Draining, or a refused body still on the wire (hyper closes such a connection after
            // the answer): this HTTP/1.1 connection ends here, and the client is told so, so that it
            // does not send its next request on a socket about to close.
            resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Reads the body (up to the gateway's limit) and notes that it was read.
async fn read_body(
    req: Request<Incoming>,
    gw: &Gateway,
    log: &mut RequestLog,
) -> Result<(http::request::Parts, Bytes), RpError> {
    let read = form::read_body(req, gw.max_body_bytes).await?;
    log.body_read = true;
    Ok(read)
}

/// Whether a request announces a body (a length above zero, or a chunked one).
fn declares_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

#[cfg(test)]
mod route_tests {
    use super::Route;

    #[test]
    fn every_route_round_trips_through_its_path() {
        for r in Route::ALL {
            assert_eq!(Route::of(r.path()), Some(r), "{r:?}");
        }
    }
}

/// The OAuth error code carried in a response body (for the outcome label).
fn outcome_of(resp: &Response<Full<Bytes>>) -> &'static str {
    resp.extensions().get::<ErrorCode>().map(|c| c.0).unwrap_or("server_error")
}

/// The `error` code of an answer, attached as a response extension.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// The raw query string of a request.
fn query(req: &Request<Incoming>) -> &[u8] {
    req.uri().query().unwrap_or("").as_bytes()
}

/// The paths the public listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metadata,
    Jwks,
    OpenApi,
    BcAuthorize,
    SiAuthorize,
    Cancel,
    Token,
    Discovery,
    OperatorSelection,
    Authorize,
    Callback,
    Userinfo,
    OperatorNotify,
    SmsConfirm,
    SmsOtp,
}

/// The checked-in OpenAPI 3.1 description of this surface (`docs/openapi.json`), served as is.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

impl Route {
    /// Every route (the OpenAPI test checks the document against this list).
    const ALL: [Route; 15] = [
        Self::Metadata,
        Self::Jwks,
        Self::OpenApi,
        Self::BcAuthorize,
        Self::SiAuthorize,
        Self::Cancel,
        Self::Token,
        Self::Discovery,
        Self::OperatorSelection,
        Self::Authorize,
        Self::Callback,
        Self::Userinfo,
        Self::OperatorNotify,
        Self::SmsConfirm,
        Self::SmsOtp,
    ];

    /// The path, as the OpenAPI document spells it.
    fn path(self) -> &'static str {
        match self {
            Self::Metadata => "/.well-known/openid-configuration",
            Self::Jwks => "/jwks",
            Self::OpenApi => "/openapi.json",
            Self::BcAuthorize => "/bc-authorize",
            Self::SiAuthorize => "/si-authorize",
            Self::Cancel => "/cancel",
            Self::Token => "/token",
            Self::Discovery => "/v2/discovery",
            Self::OperatorSelection => "/v2/discovery/operator-selection",
            Self::Authorize => "/authorize",
            Self::Callback => "/callback",
            Self::Userinfo => "/userinfo",
            Self::OperatorNotify => "/op/{operator}/notify",
            Self::SmsConfirm => "/sms/confirm/{token}",
            Self::SmsOtp => sms_otp::PATH,
        }
    }

    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/.well-known/openid-configuration" => Self::Metadata,
            "/jwks" => Self::Jwks,
            "/openapi.json" => Self::OpenApi,
            "/bc-authorize" => Self::BcAuthorize,
            "/si-authorize" => Self::SiAuthorize,
            "/cancel" => Self::Cancel,
            "/token" => Self::Token,
            "/v2/discovery" => Self::Discovery,
            "/v2/discovery/operator-selection" => Self::OperatorSelection,
            "/authorize" => Self::Authorize,
            "/callback" => Self::Callback,
            "/userinfo" => Self::Userinfo,
            p if op_notify::operator_of(p).is_some() => Self::OperatorNotify,
            sms_otp::PATH => Self::SmsOtp,
            p if sms_confirm::token_of(p).is_some() => Self::SmsConfirm,
            _ => return None,
        })
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Self::Metadata | Self::OpenApi => Endpoint::Metadata,
            Self::Jwks => Endpoint::Jwks,
            Self::BcAuthorize => Endpoint::BcAuthorize,
            Self::SiAuthorize => Endpoint::SiAuthorize,
            Self::Cancel => Endpoint::Cancel,
            Self::Token => Endpoint::Token,
            Self::Discovery | Self::OperatorSelection => Endpoint::Discovery,
            Self::Authorize => Endpoint::Authorize,
            Self::Callback => Endpoint::Callback,
            Self::Userinfo => Endpoint::Userinfo,
            Self::OperatorNotify => Endpoint::OperatorNotify,
            Self::SmsConfirm => Endpoint::SmsConfirm,
            Self::SmsOtp => Endpoint::SmsOtp,
        }
    }

    /// The `Allow` header for a wrong method.
    fn allow(self) -> &'static str {
        match self {
            Self::BcAuthorize | Self::Cancel | Self::Token | Self::OperatorNotify => "POST",
            Self::Discovery | Self::Authorize | Self::Userinfo | Self::SiAuthorize => "GET, POST",
            Self::SmsConfirm | Self::SmsOtp => "GET, HEAD, POST",
            Self::Metadata | Self::Jwks | Self::OpenApi | Self::OperatorSelection | Self::Callback => "GET",
        }
    }
}

/// Every `(path, method)` the public listener serves, from the router itself.
pub fn served_operations() -> Vec<(&'static str, &'static str)> {
    Route::ALL.iter().flat_map(|r| r.allow().split(", ").map(move |m| (r.path(), m))).collect()
}

async fn route(
    gw: &Gateway,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> (Endpoint, Result<Response<Full<Bytes>>, RpError>) {
    match Route::of(req.uri().path()) {
        Some(route) => (route.endpoint(), dispatch(gw, route, req, log).await),
        None => (Endpoint::Other, Err(RpError::NotFound)),
    }
}

/// Every handler's future is boxed: the largest (token, operator notify, callback: 6-10 KB)
/// would otherwise size this future, and with it the request future that hyper, the trace
/// scope and every enclosing `async fn` move by `memcpy` several times per request (≈ 26 KB
/// each time before this; one allocation of the running handler's own size instead).
async fn dispatch(
    gw: &Gateway,
    route: Route,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    match (route, req.method()) {
        (Route::Metadata, &Method::GET) => Ok(error::public_json(gw.metadata_json.clone(), 3600)),
        (Route::Jwks, &Method::GET) => Ok(error::public_json(gw.tokens.keys.jwks_json(), 300)),
        (Route::OpenApi, &Method::GET) => Ok(error::public_json(Bytes::from_static(OPENAPI_JSON.as_bytes()), 3600)),
        (Route::OperatorSelection, &Method::GET) => {
            Ok(discovery_api::operator_selection(gw, &Params::parse(query(&req))?))
        }
        (Route::Discovery, &Method::GET) => {
            Ok(Box::pin(discovery_api::handle(gw, req.headers(), &Params::parse(query(&req))?, log)).await)
        }
        (Route::Authorize, &Method::GET) => Box::pin(authorize::get(gw, query(&req), log)).await,
        (Route::Callback, &Method::GET) => Box::pin(callback::handle(gw, query(&req), log)).await,
        (Route::Userinfo, &Method::GET | &Method::POST) => Box::pin(userinfo::handle(gw, req.headers(), log)).await,
        (Route::SiAuthorize, &Method::GET) => {
            Box::pin(si_authorize::handle(gw, req.headers(), &Params::parse(query(&req))?, log)).await
        }
        (Route::SiAuthorize, &Method::POST) => {
            // A form, or (Mobile Connect SI only) a JSON object of strings.
            let json = form::is_json(req.headers());
            if !json {
                form::require_form(req.headers())?;
            }
            let (parts, body) = read_body(req, gw, log).await?;
            let params = if json { form::parse_json(&body)? } else { Params::parse(&body)? };
            Box::pin(si_authorize::handle(gw, &parts.headers, &params, log)).await
        }
        (Route::BcAuthorize | Route::Cancel | Route::Token | Route::Discovery | Route::Authorize, &Method::POST) => {
            form::require_form(req.headers())?;
            let (parts, body) = read_body(req, gw, log).await?;
            let form = Params::parse(&body)?;
            match route {
                Route::BcAuthorize => Box::pin(bc_authorize::handle(gw, &parts.headers, &form, log)).await,
                Route::Token => Box::pin(token::handle(gw, &parts.headers, &form, log)).await,
                Route::Cancel => Box::pin(cancel::handle(gw, &parts.headers, &form, log)).await,
                Route::Authorize => Box::pin(authorize::post(gw, &form, log)).await,
                _ => Ok(Box::pin(discovery_api::handle(gw, &parts.headers, &form, log)).await),
            }
        }
        (Route::OperatorNotify, &Method::POST) => {
            let path = req.uri().path().to_owned();
            let (parts, body) = read_body(req, gw, log).await?;
            let operator = op_notify::operator_of(&path).unwrap_or_default();
            Box::pin(op_notify::handle(gw, operator, &parts.headers, &body, log)).await
        }
        (Route::SmsConfirm, &Method::GET | &Method::HEAD) => {
            let token = sms_confirm::token_of(req.uri().path()).unwrap_or_default();
            Box::pin(sms_confirm::get(gw, token, req.headers(), log)).await
        }
        (Route::SmsOtp, &Method::GET | &Method::HEAD) => {
            Box::pin(sms_otp::get(gw, &Params::parse(query(&req))?, req.headers(), log)).await
        }
        (Route::SmsConfirm | Route::SmsOtp, &Method::POST) => {
            let path = req.uri().path().to_owned();
            form::require_form(req.headers())?;
            let (parts, body) = read_body(req, gw, log).await?;
            let form = Params::parse(&body)?;
            match sms_confirm::token_of(&path) {
                Some(token) => Box::pin(sms_confirm::post(gw, token, &parts.headers, &form, log)).await,
                None => Box::pin(sms_otp::post(gw, &form, &parts.headers, log)).await,
            }
        }
        (route, _) => Err(RpError::MethodNotAllowed(route.allow())),
    }
}
