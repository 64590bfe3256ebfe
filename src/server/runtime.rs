//! Runs an instance to completion on the configured runtime shape (see the `server` module doc):
//! builds the runtime(s), serves, waits for SIGTERM/ctrl-c, flips `/ready` to false (and marks
//! the edge draining), waits `edge.unready_delay_ms`, signals every listener and waits for the
//! drain. With a [`ReloadSource`], SIGHUP reloads the configuration (as `POST /reload` does).

use super::admin::AdminService;
use super::conn::ConnOptions;
use super::edge::Edge;
use super::reload::{Live, Reloader};
use super::{serve_all_live, serve_public_live, shutdown_signal, BoundListeners, Instance};
use crate::app::Gateway;
use crate::config::{EdgeConfig, LoadedConfig, RuntimeFlavor};
use crate::telemetry::metrics::EdgeMetrics;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Runtime shape.
    pub flavor: RuntimeFlavor,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Connection settings.
    pub conn: ConnOptions,
    /// Store purge period.
    pub purge_interval: Duration,
    /// Overload limits and drain pacing.
    pub edge: EdgeConfig,
}

/// The file a running instance reloads on SIGHUP and `POST /reload`.
#[derive(Debug, Clone)]
pub struct ReloadSource {
    /// Path given to `serve --config`.
    pub path: std::path::PathBuf,
    /// What was loaded from it at start.
    pub loaded: LoadedConfig,
}

/// Worker count for `workers = 0`.
pub fn available_workers(workers: usize) -> usize {
    if workers > 0 {
        workers
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

/// Serves until SIGTERM/ctrl-c, then drains. `make_gateway` runs inside the runtime (adapters
/// need a reactor); `on_ready` is told the gateway once listeners are about to serve.
pub fn run_blocking<F, Fut>(
    listeners: BoundListeners,
    opts: RunOptions,
    reload: Option<ReloadSource>,
    make_gateway: F,
    on_ready: impl FnOnce(&Arc<Gateway>),
) -> std::io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::io::Result<Arc<Gateway>>>,
{
    let workers = available_workers(opts.workers);
    let mut rt = match opts.flavor {
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        RuntimeFlavor::PerCore => tokio::runtime::Builder::new_current_thread(),
    };
    if opts.flavor == RuntimeFlavor::MultiThread {
        rt.worker_threads(workers);
    }
    let rt = rt.enable_all().thread_name("mcgate").build()?;
    rt.block_on(async move {
        let gw = make_gateway().await?;
        let (tx, rx) = watch::channel(false);
        let edge_metrics = EdgeMetrics::register(gw.metrics.registry()).map_err(std::io::Error::other)?;
        let live = Live::new(gw.clone());
        let edge = Arc::new(Edge::new(&opts.edge, edge_metrics.clone()));
        let reloader = reload.map(|r| Arc::new(Reloader::new(r.path, r.loaded, live.clone(), edge_metrics)));
        let instance = Instance { live, edge: Some(edge.clone()) };
        let admin = Arc::new(AdminService::new(gw.clone()).with_control(reloader.clone(), Some(edge.clone())));
        // Installed before the ready line: an early SIGHUP must not kill the process.
        let hup = reloader.map(|r| (r, sighup()));
        let mut threads = Vec::new();
        if opts.flavor == RuntimeFlavor::PerCore {
            for i in 1..workers {
                let (public, plain) = listeners.public_clones()?;
                let (instance, tls, rx) = (instance.clone(), listeners.public_tls.clone(), rx.clone());
                let conn = opts.conn;
                threads.push(std::thread::Builder::new().name(format!("mcgate-{i}")).spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(serve_public_live(instance, public, tls, plain, rx, conn))
                })?);
            }
        }
        on_ready(&gw);
        let admin2 = admin.clone();
        let hup_task = reload_on_sighup(hup, rx.clone());
        let serve = serve_all_live(instance, listeners, admin, rx, opts.conn, opts.purge_interval);
        let unready_delay = Duration::from_millis(opts.edge.unready_delay_ms);
        let signal = async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: draining");
            admin2.set_ready(false);
            edge.start_drain();
            if !unready_delay.is_zero() {
                tokio::time::sleep(unready_delay).await;
            }
            let _ = tx.send(true);
        };
        let (served, _, _) = tokio::join!(serve, signal, hup_task);
        for t in threads {
            let _ = t.join();
        }
        served
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

/// The SIGHUP stream (none where signals are unavailable).
fn sighup() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "SIGHUP unavailable: reload only through POST /reload"))
            .ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Reloads on every SIGHUP until shutdown; outcomes (every problem of a rejected file) are logged.
async fn reload_on_sighup(hup: Option<(Arc<Reloader>, Hangup)>, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Some((reloader, Some(mut signal))) = hup else { return };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = signal.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match reloader.reload().await {
                        Ok(done) => tracing::info!(
                            generation = done.generation,
                            restart_required = ?done.restart_required,
                            "configuration reloaded (SIGHUP)"
                        ),
                        Err(e) => {
                            for p in e.problems() {
                                tracing::error!(key = %p.path, problem = %p.message, "configuration reload rejected (SIGHUP)");
                            }
                        }
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, shutdown.changed().await);
    }
}
