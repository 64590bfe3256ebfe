//! Admin `GET /log-level` and `PUT /log-level` (admin listener only): reads or replaces the log
//! filter at runtime ([`crate::telemetry::log_level`]). The PUT body is the filter as plain text,
//! e.g. `debug` or `info,mcgate::operators=debug`; a bad one is 400 `invalid_request` and the
//! filter in force stays. Both answer `{"level":"<filter in force>"}`.

use crate::telemetry::log_level::{self, LogLevelError};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

/// The path.
pub const PATH: &str = "/log-level";

/// Serves `/log-level`; `max_body` bounds the PUT body.
pub async fn handle(req: Request<Incoming>, max_body: usize) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::GET => answer(log_level::current()),
        Method::PUT => {
            let body = match Limited::new(req.into_body(), max_body).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid_request", "body unreadable or too large"),
            };
            let Ok(text) = std::str::from_utf8(&body) else {
                return error(StatusCode::BAD_REQUEST, "invalid_request", "body must be UTF-8 text");
            };
            let result = log_level::set(text);
            if let Ok(now) = &result {
                tracing::warn!(filter = %now, "log filter changed through the admin listener");
            }
            answer(result)
        }
        _ => {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "use GET or PUT");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, PUT"));
            r
        }
    }
}

fn answer(result: Result<String, LogLevelError>) -> Response<Full<Bytes>> {
    match result {
        Ok(level) => json(StatusCode::OK, &serde_json::json!({ "level": level })),
        Err(e @ LogLevelError::Invalid(_)) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", &e.to_string()),
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": code, "error_description": description }))
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
