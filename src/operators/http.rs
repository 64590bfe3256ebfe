//! The outbound HTTP client towards operators: per-worker-thread keep-alive pools of HTTP/1
//! connections ([`super::http_pool`], over rustls, certificates always verified, an
//! operator-specific CA bundle allowed), and [`call`], which bounds a whole exchange by a timeout
//! and classifies failures by whether the request can have reached the operator.
//!
//! Stale keep-alive connections: idle pooled connections are never used after the per-operator
//! `pool_idle_timeout_ms` (default 4 s, below Node's 5 s server keep-alive), so we rarely write
//! on a connection the peer is closing. Two retries need no care from callers, since nothing
//! was written: a request given a reused pooled connection that turns out closed before any
//! byte was written moves to the next idle connection or a new one (hyper hands the unsent
//! request back: nothing is cloned up front); and [`call`] retries ONCE a failed connection
//! attempt (`is_connect`: refused, reset or TLS failure before the request), within the
//! operator's retry budget. A connection that breaks after the request was written is never
//! retried (`Broken`: the operator may have acted on it). A connection goes back to this thread's
//! pool only after its whole answer was read. Rare calls (metadata, JWKS) use the same pools
//! ([`PerThreadClient::shared`]); the SMS provider, which reads answers itself, keeps hyper-util's
//! client ([`PerThreadClient::legacy`]).
//!
//! Every call made inside a request or a driver step carries a `traceparent` of its trace
//! ([`crate::telemetry::trace`]) and, at debug level, one log line (host, status, latency).

use super::http_pool::{Pool, PoolSettings, Sender};
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{header, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The client [`call`] takes: a family of per-thread pools (see [`PerThreadClient`]).
pub type HttpClient = PerThreadClient;

/// hyper-util's pooled client, for callers that stream answers themselves (the SMS provider).
pub type LegacyClient = Client<Connector, Full<Bytes>>;

/// Largest operator answer read, bytes.
pub const MAX_OPERATOR_BODY: usize = 256 * 1024;

/// HTTPS-or-HTTP connector with verified certificates.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// One pool per worker thread. A pooled connection is driven by a task on the runtime that
/// opened it; with one runtime per core, sharing a pool would make most requests wake another
/// thread (and wait for it). Each thread lazily gets its own pools over the shared connector;
/// clones share them.
#[derive(Debug, Clone)]
pub struct PerThreadClient {
    pool: Pool,
}

impl PerThreadClient {
    /// A per-thread client family over one connector configuration; `extra_ca` is a PEM bundle
    /// trusted in addition to the public roots.
    pub fn new(connect_timeout: Duration, extra_ca: Option<&Path>) -> Result<Self, String> {
        let settings = PoolSettings {
            idle_timeout: Duration::from_millis(crate::config::model::DEFAULT_POOL_IDLE_TIMEOUT_MS),
            max_idle: crate::config::model::DEFAULT_POOL_MAX_IDLE_PER_ORIGIN,
        };
        Ok(Self { pool: Pool::new(build_connector(connect_timeout, extra_ca)?, settings) })
    }

    /// The same family with idle pooled connections dropped after `timeout` (set before use).
    pub fn with_pool_idle_timeout(self, timeout: Duration) -> Self {
        let settings = PoolSettings { idle_timeout: timeout, ..self.pool.settings() };
        Self { pool: self.pool.with_settings(settings) }
    }

    /// The same family keeping at most `max_idle` idle connections per origin and thread (set
    /// before use).
    pub fn with_pool_max_idle(self, max_idle: usize) -> Self {
        let settings = PoolSettings { max_idle, ..self.pool.settings() };
        Self { pool: self.pool.with_settings(settings) }
    }

    /// A handle for rare calls (metadata, JWKS) from any thread: the same family, each thread
    /// using its own pool.
    pub fn shared(&self) -> HttpClient {
        self.clone()
    }

    /// The client for a call on this thread (each call takes this thread's pool).
    pub fn get(&self) -> &HttpClient {
        self
    }

    /// A hyper-util client with a pool of its own over the same connector and idle timeout.
    pub fn legacy(&self) -> LegacyClient {
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool.settings().idle_timeout)
            .pool_max_idle_per_host(self.pool.settings().max_idle)
            .build(self.pool.connector().clone())
    }

    /// The pools.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
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
    mut req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<OperatorResponse, CallError> {
    let exchange = async {
        // The URI's scheme and authority pick the pool; HTTP/1 sends the path (origin form).
        let uri = std::mem::take(req.uri_mut()).into_parts();
        let (Some(scheme), Some(authority)) = (uri.scheme, uri.authority) else {
            return Err(CallError::Broken("the request URI must be absolute".into()));
        };
        if let Some(path) = uri.path_and_query.filter(|p| p.as_str() != "/") {
            *req.uri_mut() = Uri::from(path);
        }
        let pool = &client.pool;
        let (tx, resp) = send(pool, &scheme, &authority, req).await?;
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
        pool.checkin(&scheme, &authority, tx);
        Ok(OperatorResponse { status, body })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout(timeout.as_millis() as u64)),
    }
}

/// Sends `req` (origin form) on this thread's most recent idle connection to the origin, or a
/// new one; an unwritten request on a reused connection found closed moves on to the next.
async fn send(
    pool: &Pool,
    scheme: &Scheme,
    authority: &Authority,
    mut req: Request<Full<Bytes>>,
) -> Result<(Sender, Response<Incoming>), CallError> {
    let (mut idle, host) = pool.checkout_with_host(scheme, authority);
    if let Some(host) = host {
        req.headers_mut().entry(header::HOST).or_insert(host);
    }
    loop {
        let (mut tx, reused) = match idle.take() {
            Some(mut tx) => {
                // Ready once its driver took the previous exchange's end; an error: it closed.
                if !tx.is_ready() && tx.ready().await.is_err() {
                    idle = pool.checkout(scheme, authority);
                    continue;
                }
                (tx, true)
            }
            None => (connect(pool, scheme, authority).await?, false),
        };
        match tx.try_send_request(req).await {
            Ok(resp) => return Ok((tx, resp)),
            Err(mut e) => match e.take_message() {
                // Nothing written on a reused connection that closed meanwhile: the next one.
                Some(unsent) if reused => {
                    req = unsent;
                    idle = pool.checkout(scheme, authority);
                }
                _ => return Err(CallError::Broken(error_chain(&e.into_error()))),
            },
        }
    }
}

/// A new connection; a failed attempt wrote nothing: one more within the operator's retry
/// budget, after a 50–250 ms pause (L-03).
async fn connect(pool: &Pool, scheme: &Scheme, authority: &Authority) -> Result<Sender, CallError> {
    match pool.connect(scheme, authority).await {
        Err(_) if super::resilience::may_retry("connect") => {
            super::resilience::retry_pause().await;
            pool.connect(scheme, authority).await
        }
        r => r,
    }
    .map_err(|e| CallError::Connect(error_chain(&*e)))
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
