//! Hot reload (shared/security.md L-06): the live gateway cell every request snapshots once
//! ([`Live`], an `ArcSwap<Gateway>`), and the [`Reloader`] that re-reads `routing.toml` (and the
//! files it names, e.g. the ported-numbers CSV), validates everything, builds the next gateway
//! with [`crate::app::build_with`] (store, metrics, driver schedule, SMS limits and generated
//! secrets carried over) and swaps it in atomically. A file with problems is rejected with
//! every problem listed and the running configuration stays. Triggered by SIGHUP and by
//! `POST /reload` on the admin listener; one reload at a time.

use crate::app::{BuildError, BuildOptions, Gateway};
use crate::config::{self, ConfigError, ConfigErrors, LoadedConfig, ValidateOptions};
use crate::telemetry::metrics::EdgeMetrics;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// The gateway requests are served with now.
#[derive(Debug)]
pub struct Live {
    cell: ArcSwap<Gateway>,
    generation: watch::Sender<u64>,
}

impl Live {
    /// Starts at generation 1 with `gw`.
    pub fn new(gw: Arc<Gateway>) -> Arc<Self> {
        Arc::new(Self { cell: ArcSwap::new(gw), generation: watch::Sender::new(1) })
    }

    /// A snapshot: a request takes one at its start and keeps it to the end.
    pub fn load(&self) -> Arc<Gateway> {
        self.cell.load_full()
    }

    /// Told the generation after every swap (the background driver restarts on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Current generation (1 at start).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Installs `gw`; returns the new generation.
    pub fn swap(&self, gw: Arc<Gateway>) -> u64 {
        self.cell.store(gw);
        let mut next = 0;
        self.generation.send_modify(|g| {
            *g += 1;
            next = *g;
        });
        next
    }
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error("configuration rejected:\n{0}")]
    Invalid(ConfigErrors),
    /// The file is valid but the gateway could not be built from it (a key file, a client key…).
    #[error("configuration rejected: {0}")]
    Build(#[from] BuildError),
    /// The build task failed.
    #[error("configuration rejected: build task failed: {0}")]
    Task(String),
}

impl ReloadError {
    /// Every problem, by key path.
    pub fn problems(&self) -> Vec<ConfigError> {
        match self {
            Self::Invalid(e) => e.0.clone(),
            Self::Build(e) => vec![ConfigError { path: "(build)".into(), message: e.to_string() }],
            Self::Task(e) => vec![ConfigError { path: "(build)".into(), message: e.clone() }],
        }
    }
}

/// A successful reload.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The new generation.
    pub generation: u64,
    /// Changed keys that only take effect after a restart (listeners, runtime, edge limits,
    /// store, driver, SMS transport and limits, logging).
    pub restart_required: Vec<&'static str>,
}

/// Re-reads one configuration file into a [`Live`] cell.
pub struct Reloader {
    path: PathBuf,
    live: Arc<Live>,
    current: tokio::sync::Mutex<LoadedConfig>,
    metrics: EdgeMetrics,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Reloader {
    /// Reloads `path` (the file `current` was loaded from) into `live`.
    pub fn new(path: PathBuf, current: LoadedConfig, live: Arc<Live>, metrics: EdgeMetrics) -> Self {
        Self { path, live, current: tokio::sync::Mutex::new(current), metrics }
    }

    /// Reads, validates, builds and swaps; on any problem nothing changes.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut current = self.current.lock().await;
        let result = self.build_next().await;
        let (loaded, gw) = match result {
            Ok(next) => next,
            Err(e) => {
                self.metrics.reloads_rejected.inc();
                return Err(e);
            }
        };
        let restart_required = restart_only_changes(&current.config, &loaded.config);
        *current = loaded;
        let generation = self.live.swap(Arc::new(gw));
        self.metrics.reloads_ok.inc();
        self.metrics.generation.set(generation as i64);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.metrics.last_reload_success.set(now.as_secs_f64());
        Ok(Reloaded { generation, restart_required })
    }

    async fn build_next(&self) -> Result<(LoadedConfig, Gateway), ReloadError> {
        let path = self.path.clone();
        let old = self.live.load();
        // Files (the ported-numbers CSV may be large) are read off the serving threads; the
        // blocking pool keeps the runtime context, so adapters can still reach the reactor.
        tokio::task::spawn_blocking(move || {
            let loaded =
                config::load(&path, ValidateOptions { check_environment: true }).map_err(ReloadError::Invalid)?;
            let opts = BuildOptions { clock: old.clock.clone(), ..BuildOptions::new() };
            let gw = crate::app::build_with(&loaded, opts, &old)?;
            Ok((loaded, gw))
        })
        .await
        .map_err(|e| ReloadError::Task(e.to_string()))?
    }
}

/// Keys whose change needs a restart to take effect.
fn restart_only_changes(old: &config::Config, new: &config::Config) -> Vec<&'static str> {
    let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let (o, n) = (&old.server, &new.server);
    let pairs: [(&'static str, String, String); 16] = [
        ("server.listen", d(&o.listen), d(&n.listen)),
        ("server.plain_listen", d(&o.plain_listen), d(&n.plain_listen)),
        ("server.admin_listen", d(&o.admin_listen), d(&n.admin_listen)),
        ("server.tls", d(&(o.tls, &o.tls_cert, &o.tls_key)), d(&(n.tls, &n.tls_cert, &n.tls_key))),
        ("server.header_read_timeout_ms", d(&o.header_read_timeout_ms), d(&n.header_read_timeout_ms)),
        ("server.drain_timeout_ms", d(&o.drain_timeout_ms), d(&n.drain_timeout_ms)),
        ("server.runtime", d(&(o.runtime, o.workers)), d(&(n.runtime, n.workers))),
        ("edge", d(&old.edge), d(&new.edge)),
        ("store", d(&old.store), d(&new.store)),
        ("driver", d(&old.driver), d(&new.driver)),
        ("notifications", d(&old.notifications), d(&new.notifications)),
        ("sms.transport", d(&old.sms), d(&new.sms)),
        ("sms_limits", d(&old.sms_limits), d(&new.sms_limits)),
        ("log", d(&old.log), d(&new.log)),
        ("audit", d(&old.audit), d(&new.audit)),
        ("usage", d(&old.usage), d(&new.usage)),
    ];
    pairs.into_iter().filter(|(_, a, b)| a != b).map(|(k, _, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::restart_only_changes;
    use crate::config::{parse_unvalidated, EMBEDDED_ROUTING_TOML};

    #[test]
    fn only_restart_bound_keys_are_reported() {
        let old = parse_unvalidated(EMBEDDED_ROUTING_TOML).unwrap();
        let mut new = old.clone();
        assert!(restart_only_changes(&old, &new).is_empty());
        new.clients.pop(); // live: not reported
        new.server.issuer.push_str("/x"); // live: not reported
        assert!(restart_only_changes(&old, &new).is_empty());
        new.edge.max_in_flight += 1;
        new.server.listen = "127.0.0.1:1".into();
        assert_eq!(restart_only_changes(&old, &new), vec!["server.listen", "edge"]);
    }
}
