//! The outbound operator client against a TLS server on 127.0.0.1:0 served by this test: a
//! connection that fails before the request is written (the server drops it during the TLS
//! handshake) is retried exactly once, and idle pooled connections are dropped after the
//! configured `pool_idle_timeout_ms` (a new connection) or reused before it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcgate::operators::http::{call, CallError, PerThreadClient};
use mcgate::server::tls::TlsMaterial;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A TLS server that drops the first `drop_first` connections at once, then answers 200 on
/// keep-alive connections. Returns its URL and the count of accepted connections.
async fn server(drop_first: usize) -> (String, Arc<AtomicUsize>, tempfile::NamedTempFile) {
    let tls = TlsMaterial::generate_self_signed().unwrap();
    let acceptor = tls.acceptor().unwrap();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca, tls.cert_pem.as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/token", listener.local_addr().unwrap().port());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) < drop_first {
                drop(stream);
                continue;
            }
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let svc = service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"{}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (url, accepted, ca)
}

fn request(url: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(url).body(Full::new(Bytes::from_static(b"grant_type=x"))).unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_connection_dropped_before_the_request_is_retried_exactly_once() {
    let (url, accepted, ca) = server(1).await;
    let clients = PerThreadClient::new(Duration::from_secs(1), Some(ca.path())).unwrap();
    let resp = call(clients.get(), request(&url), TIMEOUT).await.expect("the retry succeeds");
    assert_eq!(resp.status, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one failed connection, one retry");

    let (url, accepted, ca) = server(usize::MAX).await;
    let clients = PerThreadClient::new(Duration::from_secs(1), Some(ca.path())).unwrap();
    let err = call(clients.get(), request(&url), TIMEOUT).await.unwrap_err();
    assert!(matches!(err, CallError::Connect(_)), "{err:?}");
    assert!(err.nothing_sent());
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "exactly one retry");
}

#[tokio::test]
async fn idle_connections_are_reused_within_the_pool_idle_timeout_and_dropped_after_it() {
    let (url, accepted, ca) = server(0).await;
    let short = PerThreadClient::new(Duration::from_secs(1), Some(ca.path()))
        .unwrap()
        .with_pool_idle_timeout(Duration::from_millis(50))
        .shared();
    call(&short, request(&url), TIMEOUT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(&short, request(&url), TIMEOUT).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "the idle connection expired: a new one");

    let long = PerThreadClient::new(Duration::from_secs(1), Some(ca.path()))
        .unwrap()
        .with_pool_idle_timeout(Duration::from_secs(60))
        .shared();
    call(&long, request(&url), TIMEOUT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(&long, request(&url), TIMEOUT).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "reused within the idle timeout");
}
