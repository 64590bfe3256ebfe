//! The accept loop shared by the gateway's listeners and the operator simulator: accept TCP
//! connections (optionally terminating TLS), serve HTTP/1.1 (and HTTP/2 over TLS ALPN) with a
//! header-read timeout, and on shutdown stop accepting and let open connections finish within
//! the drain timeout. [`serve_limited`] adds the instance's connection cap and the header
//! limits (`[edge]`); HTTP/1.1 idle keep-alive connections are closed by the same
//! header-read timer (hyper ≥ 1.4 arms it as soon as a connection waits for its next request).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Connection-level settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnOptions {
    /// Time allowed for a request's headers to arrive.
    pub header_read_timeout: Duration,
    /// Time open connections get to finish after shutdown.
    pub drain_timeout: Duration,
    /// Most request header fields (HTTP/1.1); more → 431.
    pub max_headers: usize,
    /// Largest request head, bytes (HTTP/1.1 read buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for ConnOptions {
    fn default() -> Self {
        let edge = crate::config::EdgeConfig::default();
        Self {
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_headers: edge.max_headers,
            max_header_bytes: edge.max_header_bytes,
            h2_max_concurrent_streams: edge.h2_max_concurrent_streams,
        }
    }
}

/// A request handler: given the request and the peer address, produce the response.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// Serves `listener` until `shutdown` turns true, then drains.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
) {
    serve_limited(listener, tls, handler, shutdown, opts, None).await
}

/// [`serve`], counting open connections against `edge`'s cap: a connection over the cap is
/// accepted and closed at once (the kernel backlog never fills with work we cannot take).
pub async fn serve_limited<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
    edge: Option<Arc<super::edge::Edge>>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true)
        .max_headers(opts.max_headers)
        .max_buf_size(opts.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors or a transient accept error: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let open = match &edge {
            Some(e) => match e.connection() {
                Some(open) => Some(open),
                None => {
                    drop(stream); // over the connection cap: closed at once, counted
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let svc = hyper::service::service_fn(move |req| {
            let h = handler.clone();
            async move { Ok::<_, Infallible>(h.handle(req, peer).await) }
        });
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(open);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let timeout = opts.header_read_timeout;
                tokio::spawn(async move {
                    let Ok(Ok(tls_stream)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc).into_owned();
                    let _ = watcher.watch(conn).await;
                    drop(open);
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(opts.drain_timeout, graceful.shutdown()).await;
}
