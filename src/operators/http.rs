//! The outbound HTTP client towards operators: one keep-alive pool per operator (hyper-util's
//! client over rustls, certificates always verified, an operator-specific CA bundle allowed),
//! and [`call`], which bounds a whole exchange by a timeout and classifies failures by whether
//! the request can have reached the operator.
//!
//! Stale keep-alive connections: idle pooled connections are dropped after the per-operator
//! `pool_idle_timeout_ms` (default 4 s, below Node's 5 s server keep-alive), so we rarely write
//! on a connection the peer is closing. Two retries need no care from callers, since nothing
//! was written: hyper-util's `retry_canceled_requests` (its default, set explicitly here) moves a
//! request to another connection when the reused pooled one it was given turns out closed before
//! any byte was written; and [`call`] retries ONCE a failed connection attempt (`is_connect`:
//! refused, reset or TLS failure before the request). A connection that breaks after the
//! request was written is never retried (`Broken`: the operator may have acted on it).
//!
//! Every call made inside a request or a driver step carries a `traceparent` of its trace
//! ([`crate::telemetry::trace`]) and, at debug level, one log line (host, status, latency).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Pooled client to one operator.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest operator answer read, bytes.
pub const MAX_OPERATOR_BODY: usize = 256 * 1024;

/// HTTPS-or-HTTP connector with verified certificates.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled client over `connector` (its own, empty pool); idle connections are dropped after
/// `pool_idle_timeout`.
pub fn client_from(connector: Connector, pool_idle_timeout: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_max_idle_per_host(1024)
        // Relied on (hyper-util's default): an unwritten request on a dead reused connection moves on.
        .retry_canceled_requests(true)
        .build(connector)
}

/// One pool per worker thread. A pooled connection is driven by a task on the runtime that
/// opened it; with one runtime per core, sharing a pool would make most requests wake another
/// thread (and wait for it). Each thread lazily gets its own client over the shared connector.
pub struct PerThreadClient {
    id: u64,
    connector: Connector,
    pool_idle_timeout: Duration,
}

impl PerThreadClient {
    /// A per-thread client family over one connector configuration; `extra_ca` is a PEM bundle
    /// trusted in addition to the public roots.
    pub fn new(connect_timeout: Duration, extra_ca: Option<&Path>) -> Result<Self, String> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            id,
            connector: build_connector(connect_timeout, extra_ca)?,
            pool_idle_timeout: Duration::from_millis(crate::config::model::DEFAULT_POOL_IDLE_TIMEOUT_MS),
        })
    }

    /// The same family with idle pooled connections dropped after `timeout` (set before use).
    pub fn with_pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// A client with a pool of its own, on whichever thread uses it (rare calls: metadata, JWKS).
    pub fn shared(&self) -> HttpClient {
        client_from(self.connector.clone(), self.pool_idle_timeout)
    }

    /// This thread's client.
    pub fn get(&self) -> HttpClient {
        thread_local! {
            static CLIENTS: std::cell::RefCell<Vec<(u64, HttpClient)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.id) {
                return c.clone();
            }
            let c = client_from(self.connector.clone(), self.pool_idle_timeout);
            clients.push((self.id, c.clone()));
            c
        })
    }
}

fn build_connector(connect_timeout: Duration, extra_ca: Option<&Path>) -> Result<Connector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// An operator answer.
#[derive(Debug)]
pub struct OperatorResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Body (at most [`MAX_OPERATOR_BODY`]).
    pub body: Bytes,
}

/// How an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection was made: the request cannot have reached the operator.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The exchange did not finish in time: the request may have reached the operator.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The connection broke after the request was (perhaps) sent.
    #[error("exchange failed: {0}")]
    Broken(String),
    /// The answer was larger than allowed.
    #[error("answer too large")]
    TooLarge,
}

impl CallError {
    /// Metric label for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout(_) => "timeout",
            Self::Broken(_) | Self::TooLarge => "bad_answer",
        }
    }
    /// Whether the request certainly did not reach the operator.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// Sends `req` and reads the whole answer within `timeout`.
pub async fn call(
    client: &HttpClient,
    mut req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<OperatorResponse, CallError> {
    // Inside a request or a driver step: the trace's id, a new span id (W3C Trace Context).
    if let Some(tp) = crate::telemetry::trace::outgoing() {
        req.headers_mut().insert(crate::telemetry::trace::TRACEPARENT, tp);
    }
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return exchange(client, req, timeout).await;
    }
    let started = tokio::time::Instant::now();
    let host = req.uri().host().unwrap_or("-").to_owned();
    let result = exchange(client, req, timeout).await;
    tracing::debug!(
        host = %host,
        status = result.as_ref().map_or(0, |r| r.status.as_u16()),
        error = result.as_ref().err().map_or("-", CallError::kind),
        latency_us = started.elapsed().as_micros() as u64,
        "outgoing call"
    );
    result
}

async fn exchange(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<OperatorResponse, CallError> {
    let exchange = async {
        // A failed connection attempt wrote nothing: one more attempt on a fresh connection.
        let again = copy_request(&req);
        let resp = match client.request(req).await {
            // Within the operator's retry budget, after a 50–250 ms pause (L-03).
            Err(e) if e.is_connect() && super::resilience::may_retry("connect") => {
                super::resilience::retry_pause().await;
                client.request(again).await
            }
            r => r,
        }
        .map_err(|e| {
            if e.is_connect() {
                CallError::Connect(error_chain(&e))
            } else {
                CallError::Broken(error_chain(&e))
            }
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_OPERATOR_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge
                } else {
                    CallError::Broken(e.to_string())
                }
            })?
            .to_bytes();
        Ok(OperatorResponse { status, body })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout(timeout.as_millis() as u64)),
    }
}

/// Method, URI, version, headers and body of `req` (extensions are not used here).
fn copy_request(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
