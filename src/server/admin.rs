//! The admin listener (never the public one): `/live` (the process answers), `/ready` (200 only
//! while serving and the store answers; false from the first moment of shutdown) and `/metrics`
//! (Prometheus text), `/log-level` (GET, PUT: the log filter at runtime, [`super::log_level`]).

use super::conn::Handler;
use crate::app::Gateway;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Admin endpoints of one instance.
pub struct AdminService {
    gw: Arc<Gateway>,
    ready: AtomicBool,
}

impl AdminService {
    /// Not ready until the listeners run.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self { gw, ready: AtomicBool::new(false) }
    }
    /// Flips readiness (false first thing on shutdown).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Handler for AdminService {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        if req.uri().path() == super::log_level::PATH {
            return super::log_level::handle(req, self.gw.max_body_bytes).await;
        }
        if req.method() != Method::GET {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        match req.uri().path() {
            "/live" => text(StatusCode::OK, "live\n", "text/plain"),
            "/ready" => {
                if !self.ready.load(Ordering::SeqCst) {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: not serving\n", "text/plain");
                }
                match self.gw.store.ping().await {
                    Ok(()) => text(StatusCode::OK, "ready\n", "text/plain"),
                    Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"), "text/plain"),
                }
            }
            "/metrics" => text(StatusCode::OK, self.gw.metrics.render(), "text/plain; version=0.0.4"),
            _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
        }
    }
}
