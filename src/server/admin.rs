//! The admin listener (never the public one): `/live` (the process answers), `/ready` (200 only
//! while serving and the store answers; false from the first moment of shutdown) and `/metrics`
//! (Prometheus text), `/log-level` (GET, PUT: the log filter at runtime, [`super::log_level`]);
//! with `serve`, also `POST /reload` (hot reload: 200 with the new generation, 422 with every
//! problem of a rejected file as JSON).

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
    reloader: Option<Arc<super::reload::Reloader>>,
    edge: Option<Arc<super::edge::Edge>>,
}

impl AdminService {
    /// Not ready until the listeners run.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self { gw, ready: AtomicBool::new(false), reloader: None, edge: None }
    }
    /// Serves `POST /reload` with `reloader` and publishes `edge`'s gauges on `/metrics`.
    /// (`gw` stays the first gateway: the store and metrics it reads survive reloads.)
    pub fn with_control(
        mut self,
        reloader: Option<Arc<super::reload::Reloader>>,
        edge: Option<Arc<super::edge::Edge>>,
    ) -> Self {
        self.reloader = reloader;
        self.edge = edge;
        self
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
        if req.uri().path() == "/reload" {
            return self.reload(req.method()).await;
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
            "/metrics" => {
                if let Some(edge) = &self.edge {
                    edge.publish();
                }
                text(StatusCode::OK, self.gw.metrics.render(), "text/plain; version=0.0.4")
            }
            "/usage.csv" => super::usage_csv::answer(&self.gw, req.uri().query()).await,
            _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
        }
    }
}

impl AdminService {
    /// `POST /reload`.
    async fn reload(&self, method: &Method) -> Response<Full<Bytes>> {
        if method != Method::POST {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let Some(reloader) = &self.reloader else {
            return text(StatusCode::NOT_FOUND, "reload is only available with `mcgate serve`\n", "text/plain");
        };
        let json = |status, v: serde_json::Value| text(status, v.to_string(), "application/json");
        match reloader.reload().await {
            Ok(done) => {
                tracing::info!(generation = done.generation, restart_required = ?done.restart_required, "configuration reloaded (admin)");
                json(
                    StatusCode::OK,
                    serde_json::json!({
                        "status": "reloaded",
                        "generation": done.generation,
                        "restart_required": done.restart_required,
                    }),
                )
            }
            Err(e) => {
                let problems = e.problems();
                for p in &problems {
                    tracing::error!(key = %p.path, problem = %p.message, "configuration reload rejected (admin)");
                }
                let list: Vec<_> =
                    problems.iter().map(|p| serde_json::json!({"path": p.path, "message": p.message})).collect();
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({
                        "error": "invalid_configuration",
                        "error_description": format!("configuration rejected ({} problem(s)); the running configuration stays", list.len()),
                        "problems": list,
                    }),
                )
            }
        }
    }
}
