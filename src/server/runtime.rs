//! Runs an instance to completion on the configured runtime shape (see the `server` module doc):
//! builds the runtime(s), serves, waits for SIGTERM/ctrl-c, flips `/ready` to false, signals
//! every listener and waits for the drain.

use super::admin::AdminService;
use super::conn::ConnOptions;
use super::{serve_all, serve_public, shutdown_signal, BoundListeners};
use crate::app::Gateway;
use crate::config::RuntimeFlavor;
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
        let admin = Arc::new(AdminService::new(gw.clone()));
        let mut threads = Vec::new();
        if opts.flavor == RuntimeFlavor::PerCore {
            for i in 1..workers {
                let (public, plain) = listeners.public_clones()?;
                let (gw, tls, rx) = (gw.clone(), listeners.public_tls.clone(), rx.clone());
                let conn = opts.conn;
                threads.push(std::thread::Builder::new().name(format!("mcgate-{i}")).spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(serve_public(gw, public, tls, plain, rx, conn))
                })?);
            }
        }
        on_ready(&gw);
        let admin2 = admin.clone();
        let serve = serve_all(gw, listeners, admin, rx, opts.conn, opts.purge_interval);
        let signal = async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: draining");
            admin2.set_ready(false);
            let _ = tx.send(true);
        };
        let (served, _) = tokio::join!(serve, signal);
        for t in threads {
            let _ = t.join();
        }
        served
    })
}
