//! Per-worker-thread HTTP/1 connection pools towards operators: the idle keep-alive connections
//! (hyper's `client::conn::http1::SendRequest`) of one client family ([`Pool`]), kept per origin
//! (scheme + authority) in a `thread_local!` list, so a checkout is a short linear search with no
//! lock, no hashing and no task. With one runtime per core, a connection is then always used by
//! the thread whose runtime drives it (see [`super::http::PerThreadClient`]).
//!
//! What the pool guarantees: connections are made by the family's [`Connector`] (TLS verified,
//! nodelay, connect timeout); each connection's driver is spawned once, on the current runtime,
//! when the connection is made; an idle connection is handed out last-in first-out, never after
//! `idle_timeout` (expired ones are dropped at the next checkout or check-in of their origin) and
//! never once its driver has ended (`is_closed`); at most `max_idle` connections are kept idle per
//! origin (the oldest goes first). A family's per-thread lists are dropped at the next new family
//! on that thread once every handle to it is gone (a reloaded configuration).
//!
//! Retries and error classes are the caller's ([`super::http::call`]).

use super::http::Connector;
use bytes::Bytes;
use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use http::Uri;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// One HTTP/1 connection's request handle.
pub type Sender = SendRequest<Full<Bytes>>;

/// Why a connection could not be made (connector or HTTP/1 handshake).
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// Limits of one family's pools.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// An idle connection older than this is never handed out.
    pub idle_timeout: Duration,
    /// Idle connections kept per origin and thread.
    pub max_idle: usize,
}

struct Family {
    id: u64,
    connector: Connector,
    settings: PoolSettings,
}

/// A family of per-thread pools over one connector (cheap to clone; every clone shares them).
#[derive(Clone)]
pub struct Pool {
    family: Arc<Family>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("id", &self.family.id).field("settings", &self.family.settings).finish()
    }
}

struct Idle {
    tx: Sender,
    since: Instant,
}

/// One origin's idle connections on this thread, oldest first, and its `Host` header value.
struct OriginIdle {
    scheme: Scheme,
    authority: Authority,
    host: Option<HeaderValue>,
    idle: VecDeque<Idle>,
}

/// One family's origins on this thread.
struct ThreadPools {
    id: u64,
    alive: Weak<Family>,
    origins: Vec<OriginIdle>,
}

thread_local! {
    static POOLS: RefCell<Vec<ThreadPools>> = const { RefCell::new(Vec::new()) };
}

impl Pool {
    /// A new family (empty pools on every thread) over `connector`.
    pub fn new(connector: Connector, settings: PoolSettings) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self { family: Arc::new(Family { id, connector, settings }) }
    }

    /// A new family over the same connector with other limits.
    pub fn with_settings(&self, settings: PoolSettings) -> Self {
        Self::new(self.family.connector.clone(), settings)
    }

    /// The family's limits.
    pub fn settings(&self) -> PoolSettings {
        self.family.settings
    }

    /// The family's connector.
    pub fn connector(&self) -> &Connector {
        &self.family.connector
    }

    /// The `Host` header value for the origin (computed once per thread and origin) and its most
    /// recent idle connection on this thread, if any.
    pub fn checkout_with_host(&self, scheme: &Scheme, authority: &Authority) -> (Option<Sender>, Option<HeaderValue>) {
        let timeout = self.family.settings.idle_timeout;
        self.with_origin(scheme, authority, |o| (take_idle(&mut o.idle, timeout), o.host.clone()))
    }

    /// The origin's most recent idle connection on this thread, if any.
    pub fn checkout(&self, scheme: &Scheme, authority: &Authority) -> Option<Sender> {
        let timeout = self.family.settings.idle_timeout;
        self.with_origin(scheme, authority, |o| take_idle(&mut o.idle, timeout))
    }

    /// Keeps `tx` (its answer fully read) for the next request to the origin on this thread.
    pub fn checkin(&self, scheme: &Scheme, authority: &Authority, tx: Sender) {
        let PoolSettings { idle_timeout, max_idle } = self.family.settings;
        if tx.is_closed() || max_idle == 0 {
            return;
        }
        self.with_origin(scheme, authority, |o| {
            let now = Instant::now();
            while o.idle.front().is_some_and(|i| now.duration_since(i.since) > idle_timeout) {
                o.idle.pop_front();
            }
            if o.idle.len() >= max_idle {
                o.idle.pop_front();
            }
            o.idle.push_back(Idle { tx, since: now });
        })
    }

    /// A new connection to the origin, its driver spawned on the current runtime.
    pub async fn connect(&self, scheme: &Scheme, authority: &Authority) -> Result<Sender, ConnectError> {
        // Boxed (connections are rare): the handshake holds the TLS stream, which would otherwise
        // enlarge the future of every caller of `call`, moved on every request.
        Box::pin(self.open(scheme, authority)).await
    }

    async fn open(&self, scheme: &Scheme, authority: &Authority) -> Result<Sender, ConnectError> {
        let uri = Uri::builder().scheme(scheme.clone()).authority(authority.clone()).path_and_query("/").build()?;
        let io = tower::ServiceExt::oneshot(self.family.connector.clone(), uri).await?;
        let (tx, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "operator connection ended");
            }
        });
        Ok(tx)
    }

    /// Idle connections of the origin on this thread.
    #[cfg(test)]
    pub(crate) fn idle_count(&self, scheme: &Scheme, authority: &Authority) -> usize {
        self.with_origin(scheme, authority, |o| o.idle.len())
    }

    fn with_origin<R>(&self, scheme: &Scheme, authority: &Authority, f: impl FnOnce(&mut OriginIdle) -> R) -> R {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            let at = match pools.iter().position(|p| p.id == self.family.id) {
                Some(at) => at,
                None => {
                    pools.retain(|p| p.alive.strong_count() > 0);
                    let alive = Arc::downgrade(&self.family);
                    pools.push(ThreadPools { id: self.family.id, alive, origins: Vec::new() });
                    pools.len() - 1
                }
            };
            let origins = &mut pools[at].origins;
            // Exact bytes (a memcmp): `Authority`'s own `==` ignores ASCII case byte by byte, at
            // ≈ 250 instructions a comparison; differently cased spellings just get two entries.
            let at =
                match origins.iter().position(|o| o.authority.as_str() == authority.as_str() && o.scheme == *scheme) {
                    Some(at) => at,
                    None => {
                        let host = host_header(scheme, authority);
                        let (scheme, authority) = (scheme.clone(), authority.clone());
                        origins.push(OriginIdle { scheme, authority, host, idle: VecDeque::new() });
                        origins.len() - 1
                    }
                };
            f(&mut origins[at])
        })
    }
}

/// The most recent idle connection younger than `timeout` whose driver still runs; everything
/// older than an expired one has expired too (the list is oldest first) and is dropped.
fn take_idle(idle: &mut VecDeque<Idle>, timeout: Duration) -> Option<Sender> {
    let now = Instant::now();
    while let Some(i) = idle.pop_back() {
        if now.duration_since(i.since) > timeout {
            idle.clear();
            return None;
        }
        if !i.tx.is_closed() {
            return Some(i.tx);
        }
    }
    None
}

/// `Host` for an origin: the host, with the port unless it is the scheme's default (as
/// hyper-util's client sends it). A parsed authority is always a valid value.
fn host_header(scheme: &Scheme, authority: &Authority) -> Option<HeaderValue> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    };
    HeaderValue::from_maybe_shared(Bytes::from(host)).ok()
}

#[cfg(test)]
mod tests {
    use super::super::http::{call, CallError, PerThreadClient};
    use super::*;
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A keep-alive HTTP/1 server answering `<path> <host>`; counts accepted connections.
    async fn echo_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        let host = req.headers().get(http::header::HOST).map(|h| h.to_str().unwrap().to_owned());
                        let line = format!("{} {}", req.uri(), host.unwrap_or_default());
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(line))))
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        (base, accepted)
    }

    /// A server that answers one request per connection, then closes it 20 ms later without
    /// having said so (`Connection: close` absent): every pooled connection goes stale.
    async fn one_shot_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
                    // Closed a little later: the client has pooled the connection by then.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        (base, accepted)
    }

    fn get(url: &str) -> hyper::Request<Full<Bytes>> {
        hyper::Request::get(url).body(Full::default()).unwrap()
    }

    fn origin(base: &str) -> (Scheme, Authority) {
        let uri: Uri = base.parse().unwrap();
        (uri.scheme().unwrap().clone(), uri.authority().unwrap().clone())
    }

    fn client(idle_timeout: Duration, max_idle: usize) -> PerThreadClient {
        PerThreadClient::new(Duration::from_secs(1), None)
            .unwrap()
            .with_pool_idle_timeout(idle_timeout)
            .with_pool_max_idle(max_idle)
    }

    #[tokio::test]
    async fn sequential_calls_reuse_one_connection_and_send_origin_form_with_host() {
        let (base, accepted) = echo_server().await;
        let clients = client(Duration::from_secs(60), 8);
        for i in 0..3 {
            let resp = call(clients.get(), get(&format!("{base}/token?n={i}")), TIMEOUT).await.unwrap();
            let port = base.rsplit(':').next().unwrap();
            assert_eq!(resp.body, format!("/token?n={i} 127.0.0.1:{port}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one keep-alive connection");
        let (scheme, authority) = origin(&base);
        assert_eq!(clients.pool().idle_count(&scheme, &authority), 1);
        // A bare origin is sent as "/".
        let resp = call(clients.get(), get(&base), TIMEOUT).await.unwrap();
        assert!(resp.body.starts_with(b"/ "), "{:?}", resp.body);
    }

    #[tokio::test]
    async fn idle_connections_expire_after_the_idle_timeout() {
        let (base, accepted) = echo_server().await;
        let clients = client(Duration::from_millis(50), 8);
        call(clients.get(), get(&base), TIMEOUT).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (scheme, authority) = origin(&base);
        assert!(clients.pool().checkout(&scheme, &authority).is_none(), "expired: never handed out");
        assert_eq!(clients.pool().idle_count(&scheme, &authority), 0, "and dropped");
        call(clients.get(), get(&base), TIMEOUT).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_peer_is_skipped() {
        let (base, accepted) = one_shot_server().await;
        let clients = client(Duration::from_secs(60), 8);
        let (scheme, authority) = origin(&base);
        for n in 1..=3 {
            call(clients.get(), get(&base), TIMEOUT).await.expect("a closed pooled connection is no error");
            assert_eq!(accepted.load(Ordering::SeqCst), n);
            // Once its driver saw the close, the pooled connection is never handed out again.
            tokio::time::sleep(Duration::from_millis(80)).await;
            assert_eq!(clients.pool().idle_count(&scheme, &authority), 1, "still listed");
            assert!(clients.pool().checkout(&scheme, &authority).is_none(), "but skipped");
        }
    }

    #[tokio::test]
    async fn concurrent_calls_open_connections_and_keep_at_most_max_idle() {
        let (base, accepted) = echo_server().await;
        let clients = client(Duration::from_secs(60), 2);
        let calls = (0..4).map(|_| call(clients.get(), get(&base), TIMEOUT));
        for r in futures_util::future::join_all(calls).await {
            r.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        let (scheme, authority) = origin(&base);
        assert_eq!(clients.pool().idle_count(&scheme, &authority), 2);

        let none = client(Duration::from_secs(60), 0);
        call(none.get(), get(&base), TIMEOUT).await.unwrap();
        assert_eq!(none.pool().idle_count(&scheme, &authority), 0, "max_idle = 0 keeps nothing");
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_as_connect() {
        // A port with nothing listening (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let clients = client(Duration::from_secs(60), 8);
        let err = call(clients.get(), get(&format!("http://127.0.0.1:{port}/x")), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, CallError::Connect(_)), "{err:?}");
        assert!(err.nothing_sent());
    }

    /// A TLS server dropping every connection during the handshake (a failed connection attempt).
    async fn tls_dropping_server() -> (String, Arc<AtomicUsize>, tempfile::NamedTempFile) {
        let tls = crate::server::tls::TlsMaterial::generate_self_signed().unwrap();
        let mut ca = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut ca, tls.cert_pem.as_bytes()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}/token", listener.local_addr().unwrap().port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (url, accepted, ca)
    }

    #[tokio::test]
    async fn a_failed_connection_attempt_is_retried_exactly_once_per_call() {
        let (url, accepted, ca) = tls_dropping_server().await;
        let clients = PerThreadClient::new(Duration::from_secs(1), Some(ca.path())).unwrap();
        for calls in 1..=2 {
            let err = call(clients.get(), get(&url), TIMEOUT).await.unwrap_err();
            assert!(matches!(err, CallError::Connect(_)), "{err:?}");
            assert_eq!(accepted.load(Ordering::SeqCst), 2 * calls, "one attempt and one retry");
        }
    }

    #[tokio::test]
    async fn a_fresh_connection_closed_before_answering_is_broken_not_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await; // the request arrived: it may be acted on
            }
        });
        let clients = client(Duration::from_secs(60), 8);
        let err = call(clients.get(), get(&base), TIMEOUT).await.unwrap_err();
        assert!(matches!(err, CallError::Broken(_)), "{err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "never retried");
    }

    #[tokio::test]
    async fn families_keep_separate_pools_and_dead_families_are_pruned() {
        let (base, accepted) = echo_server().await;
        let (scheme, authority) = origin(&base);
        let a = client(Duration::from_secs(60), 8);
        call(a.get(), get(&base), TIMEOUT).await.unwrap();
        let b = client(Duration::from_secs(60), 8);
        call(b.get(), get(&base), TIMEOUT).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "b does not take a's connection");
        let before = POOLS.with(|p| p.borrow().len());
        drop(a);
        let c = client(Duration::from_secs(60), 8);
        assert_eq!(c.pool().idle_count(&scheme, &authority), 0);
        assert_eq!(POOLS.with(|p| p.borrow().len()), before, "a's lists went when c's came");
    }
}
