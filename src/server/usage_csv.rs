//! `GET /usage.csv?from=YYYY-MM-DD&to=YYYY-MM-DD[&client=ID]` on the admin listener: the usage
//! records ([`crate::telemetry::usage`]) as CSV. A bad query is a 400 with an OAuth-style JSON
//! `error`/`error_description`; a store outage a 503.

use crate::app::Gateway;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

fn json_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Answers one export.
pub async fn answer(gw: &Gateway, query: Option<&str>) -> Response<Full<Bytes>> {
    let q = match gw.usage.parse_query(query) {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &e.0),
    };
    let rows = match gw.usage.rows(&q).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "usage export: store unavailable");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "usage store unavailable");
        }
    };
    let body = crate::telemetry::usage::csv(&rows, gw.usage.currency());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"usage-{}-{}.csv\"", q.from, q.to)) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
