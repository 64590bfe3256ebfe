//! Listeners and their lifecycle: binding (large accept backlog), the public RP listener (TLS by
//! default, optional loopback plain HTTP), the separate admin listener, background upkeep (store
//! purge, the ping/push driver) and graceful shutdown: on SIGTERM/ctrl-c `/ready` turns false, listeners stop
//! accepting and in-flight requests get `drain_timeout_ms` to finish. `edge` holds the
//! overload limits, `reload` the live (hot-reloadable) gateway.
//!
//! Two runtime shapes: `per_core` runs one current-thread tokio runtime per worker thread, all
//! accepting on the same socket (no work stealing, the best tail latency on few cores);
//! `multi_thread` runs tokio's work-stealing scheduler.

pub mod admin;
pub mod conn;
pub mod edge;
pub mod log_level;
pub mod reload;
pub mod runtime;
pub mod tls;
pub mod usage_csv;

use crate::rp::RpService;
use admin::AdminService;
use conn::ConnOptions;
use edge::Edge;
use reload::Live;
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

/// What the public listeners of one instance share across worker threads: the live gateway
/// and (for `serve`) the edge limits.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The gateway requests snapshot.
    pub live: Arc<Live>,
    /// In-flight and connection caps, drain flag (`None`: unlimited).
    pub edge: Option<Arc<Edge>>,
}

/// Serves the public listeners (public + plain) of a live (reloadable) gateway under its edge
/// limits until shutdown; used by every worker.
pub async fn serve_public_live(
    instance: Instance,
    public: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    plain: Option<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
) -> std::io::Result<()> {
    let edge = instance.edge.clone();
    let service = Arc::new(RpService::live(instance.live, edge.clone()));
    let public = tokio::net::TcpListener::from_std(public)?;
    let main = conn::serve_limited(public, tls, service.clone(), shutdown.clone(), opts, edge.clone());
    match plain {
        Some(p) => {
            let p = tokio::net::TcpListener::from_std(p)?;
            tokio::join!(main, conn::serve_limited(p, None, service, shutdown, opts, edge));
        }
        None => main.await,
    }
    Ok(())
}

/// Serves everything of one instance on the current runtime (public listeners, admin listener,
/// store purge) for a live (reloadable) gateway under edge limits; returns after shutdown and
/// drain. The store purge and the ping/push driver follow reloads (the driver restarts on the new
/// gateway, its schedule kept).
pub async fn serve_all_live(
    instance: Instance,
    listeners: BoundListeners,
    admin: Arc<AdminService>,
    shutdown: watch::Receiver<bool>,
    opts: ConnOptions,
    purge_interval: std::time::Duration,
) -> std::io::Result<()> {
    let admin_listener = tokio::net::TcpListener::from_std(listeners.admin)?;
    let admin_task = conn::serve(admin_listener, None, admin.clone(), shutdown.clone(), ConnOptions { ..opts });
    let purge = purge_loop(instance.live.clone(), shutdown.clone(), purge_interval);
    let driver = drive_live(instance.live.clone(), shutdown.clone());
    admin.set_ready(true);
    let audit = instance.live.load().audit.clone();
    let public = serve_public_live(instance, listeners.public, listeners.public_tls, listeners.plain, shutdown, opts);
    let (r, _, _, _) = tokio::join!(public, admin_task, purge, driver);
    audit.flush().await;
    r
}

/// Runs the ping/push driver on the current gateway; after a reload the running one finishes
/// its job and stops, and a new one starts on the new gateway over the same (shared) schedule.
async fn drive_live(live: Arc<Live>, mut shutdown: watch::Receiver<bool>) {
    let mut generations = live.subscribe();
    loop {
        let (stop, stopped) = watch::channel(false);
        let run = crate::flow::driver::run(live.load(), stopped);
        tokio::pin!(run);
        let reloaded = tokio::select! {
            _ = &mut run => return,
            _ = shutdown.changed() => false,
            r = generations.changed() => r.is_ok(),
        };
        let _ = stop.send(true);
        run.await;
        if !reloaded {
            return;
        }
    }
}

async fn purge_loop(live: Arc<Live>, mut shutdown: watch::Receiver<bool>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                let gw = live.load();
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
