//! Listeners and their lifecycle: binding (large accept backlog), the public RP listener (TLS by
//! default, optional loopback plain HTTP), the separate admin listener, background upkeep (store
//! purge, the ping/push driver) and graceful shutdown: on SIGTERM/ctrl-c `/ready` turns false, listeners stop
//! accepting and in-flight requests get `drain_timeout_ms` to finish.
//!
//! Two runtime shapes: `per_core` runs one current-thread tokio runtime per worker thread, all
//! accepting on the same socket (no work stealing, the best tail latency on few cores);
//! `multi_thread` runs tokio's work-stealing scheduler.

pub mod admin;
pub mod conn;
pub mod log_level;
pub mod runtime;
pub mod tls;

use crate::app::Gateway;
use crate::rp::RpService;
use admin::AdminService;
use conn::ConnOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Sockets bound before the runtime starts (so `main` can report them and tests use port 0).
pub struct BoundListeners {
    /// Public RP listener.
    pub public: std::net::TcpListener,
    /// TLS on the public listener.
    pub public_tls: Option<TlsAcceptor>,
    /// Optional loopback plain-HTTP listener.
    pub plain: Option<std::net::TcpListener>,
    /// Admin listener.
    pub admin: std::net::TcpListener,
}

impl BoundListeners {
    /// Clones of the public sockets for another worker thread.
    pub fn public_clones(&self) -> std::io::Result<(std::net::TcpListener, Option<std::net::TcpListener>)> {
        Ok((self.public.try_clone()?, self.plain.as_ref().map(|p| p.try_clone()).transpose()?))
    }
}

/// Binds a listening socket with a large backlog, non-blocking.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Serves the public listeners (public + plain) until shutdown; used by every worker.
pub async fn serve_public(
    gw: Arc<Gateway>,
    public: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    plain: Option<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
) -> std::io::Result<()> {
    let service = Arc::new(RpService::new(gw));
    let public = tokio::net::TcpListener::from_std(public)?;
    let main = conn::serve(public, tls, service.clone(), shutdown.clone(), opts);
    match plain {
        Some(p) => {
            let p = tokio::net::TcpListener::from_std(p)?;
            tokio::join!(main, conn::serve(p, None, service, shutdown, opts));
        }
        None => main.await,
    }
    Ok(())
}

/// Serves everything of one instance on the current runtime: public listeners, admin listener,
/// store purge. Returns after shutdown and drain.
pub async fn serve_all(
    gw: Arc<Gateway>,
    listeners: BoundListeners,
    admin: Arc<AdminService>,
    shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
    purge_interval: std::time::Duration,
) -> std::io::Result<()> {
    let admin_listener = tokio::net::TcpListener::from_std(listeners.admin)?;
    let admin_task = conn::serve(admin_listener, None, admin.clone(), shutdown.clone(), ConnOptions { ..opts });
    let purge = purge_loop(gw.clone(), shutdown.clone(), purge_interval);
    let driver = crate::flow::driver::run(gw.clone(), shutdown.clone());
    admin.set_ready(true);
    let public = serve_public(gw, listeners.public, listeners.public_tls, listeners.plain, shutdown, opts);
    let (r, _, _, _) = tokio::join!(public, admin_task, purge, driver);
    r
}

async fn purge_loop(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                match gw.store.purge_expired().await {
                    Ok(states) => for s in states { gw.metrics.transition(Some(s), None) },
                    Err(e) => tracing::warn!(error = %e, "store purge failed"),
                }
                gw.sms.limits.purge();
            }
        }
    }
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
