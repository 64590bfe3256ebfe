//! A relying party's notification endpoint for `demo`: records every CIBA ping/push POSTed to
//! it (path, `Authorization` header, JSON body; the last [`KEEP`]) and shows them on `GET`, so a
//! demo user can follow the flow with curl. Knows nothing of the gateway: it only receives HTTP.

use crate::server::conn::{serve, ConnOptions, Handler};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// Notifications kept.
pub const KEEP: usize = 100;

/// A running sink.
#[derive(Default)]
pub struct RpSink {
    url: String,
    received: Mutex<VecDeque<Value>>,
}

impl RpSink {
    /// Binds `addr` (port 0: ephemeral) and serves until `shutdown`.
    pub async fn start(addr: SocketAddr, shutdown: watch::Receiver<bool>) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::from_std(crate::server::bind(addr)?)?;
        let url = format!("http://{}", listener.local_addr()?);
        let sink = Arc::new(Self { url, received: Mutex::new(VecDeque::new()) });
        tokio::spawn(serve(listener, None, sink.clone(), shutdown, ConnOptions::default()));
        Ok(sink)
    }

    /// Base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What was received, oldest first.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().iter().cloned().collect()
    }
}

impl Handler for RpSink {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        let json_answer = |status: StatusCode, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        match *req.method() {
            Method::GET => json_answer(StatusCode::OK, Value::from(self.received()).to_string()),
            Method::POST => {
                let path = req.uri().path().to_owned();
                let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await.map(|b| b.to_bytes()) else {
                    return json_answer(StatusCode::BAD_REQUEST, "{}".into());
                };
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut r = self.received.lock();
                if r.len() == KEEP {
                    r.pop_front();
                }
                r.push_back(json!({"path": path, "authorization": auth, "body": body}));
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::NO_CONTENT;
                resp
            }
            _ => json_answer(StatusCode::METHOD_NOT_ALLOWED, "{}".into()),
        }
    }
}
