//! The RP-facing HTTP surface: routing by path and method, body/form handling, and the one
//! request log line and metrics per request. Endpoint logic lives in one file each; every
//! failure is an [`error::RpError`] turned into an OAuth answer in `error.rs`.

pub mod bc_authorize;
pub mod client_auth;
pub mod discovery_api;
pub mod error;
pub mod form;
pub mod login_hint;
pub mod metadata;
pub mod token;

use crate::app::Gateway;
use crate::msisdn::Msisdn;
use crate::server::conn::Handler;
use crate::telemetry::metrics::Endpoint;
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
}

/// The public listener's handler.
pub struct RpService {
    gw: Arc<Gateway>,
    request_ids: AtomicU64,
    instance: String,
}

impl RpService {
    /// Serves `gw`.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self { gw, request_ids: AtomicU64::new(0), instance: crate::clock::random_token(4) }
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
        let started = tokio::time::Instant::now();
        let request_id = self.next_request_id();
        let method = req.method().clone();
        let mut log = RequestLog::default();
        let (endpoint, result) = route(&self.gw, req, &mut log).await;
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
        let outcome = if status.is_success() || status.is_redirection() { "ok" } else { outcome_of(&resp) };
        let elapsed = started.elapsed();
        self.gw.metrics.observe_request(endpoint, outcome, elapsed.as_secs_f64());
        tracing::info!(
            request_id = %request_id,
            method = %method,
            endpoint = endpoint.as_str(),
            status = status.as_u16(),
            outcome,
            client = log.client.as_deref().unwrap_or("-"),
            operator = log.operator.as_deref().unwrap_or("-"),
            route = log.route_source.unwrap_or("-"),
            msisdn = %log.msisdn.map(|m| m.masked().to_string()).unwrap_or_else(|| "-".into()),
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }
}

/// The OAuth error code carried in a response body (for the outcome label).
fn outcome_of(resp: &Response<Full<Bytes>>) -> &'static str {
    resp.extensions().get::<ErrorCode>().map(|c| c.0).unwrap_or("server_error")
}

/// The `error` code of an answer, attached as a response extension.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

async fn route(
    gw: &Gateway,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> (Endpoint, Result<Response<Full<Bytes>>, RpError>) {
    let path = req.uri().path();
    let endpoint = match path {
        "/.well-known/openid-configuration" => Endpoint::Metadata,
        "/jwks" => Endpoint::Jwks,
        "/bc-authorize" => Endpoint::BcAuthorize,
        "/token" => Endpoint::Token,
        "/v2/discovery" | "/v2/discovery/operator-selection" => Endpoint::Discovery,
        _ => return (Endpoint::Other, Err(RpError::NotFound)),
    };
    let result = match (endpoint, req.method()) {
        (Endpoint::Metadata, &Method::GET) => Ok(error::public_json(gw.metadata_json.clone(), 3600)),
        (Endpoint::Jwks, &Method::GET) => Ok(error::public_json(gw.tokens.keys.jwks_json(), 300)),
        (Endpoint::BcAuthorize, &Method::POST) => match read_form(gw, req).await {
            Ok((parts, body)) => match Params::parse(&body) {
                Ok(form) => bc_authorize::handle(gw, &parts.headers, &form, log).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        (Endpoint::Token, &Method::POST) => match read_form(gw, req).await {
            Ok((parts, body)) => match Params::parse(&body) {
                Ok(form) => token::handle(gw, &parts.headers, &form, log).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        (Endpoint::Discovery, &Method::GET) if req.uri().path().ends_with("/operator-selection") => {
            Params::parse(req.uri().query().unwrap_or("").as_bytes()).map(|q| discovery_api::operator_selection(gw, &q))
        }
        (Endpoint::Discovery, &Method::GET) => match Params::parse(req.uri().query().unwrap_or("").as_bytes()) {
            Ok(q) => Ok(discovery_api::handle(gw, req.headers(), &q, log).await),
            Err(e) => Err(e),
        },
        (Endpoint::Discovery, &Method::POST) if !req.uri().path().ends_with("/operator-selection") => {
            match read_form(gw, req).await {
                Ok((parts, body)) => match Params::parse(&body) {
                    Ok(form) => Ok(discovery_api::handle(gw, &parts.headers, &form, log).await),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        (Endpoint::BcAuthorize | Endpoint::Token, _) => Err(RpError::MethodNotAllowed("POST")),
        (Endpoint::Discovery, _) => Err(RpError::MethodNotAllowed("GET, POST")),
        _ => Err(RpError::MethodNotAllowed("GET")),
    };
    (endpoint, result)
}

async fn read_form(gw: &Gateway, req: Request<Incoming>) -> Result<(http::request::Parts, Bytes), RpError> {
    form::require_form(req.headers())?;
    form::read_body(req, gw.max_body_bytes).await
}
