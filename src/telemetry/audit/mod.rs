//! The audit trail (issue 8): every authentication decision — the route (operator and how it
//! was found), the channel, a fallback and its reason, each state reached, the acr/amr issued —
//! appended as one hash-chained JSON line ([`chain`]) to this instance's file, written by one
//! writer thread ([`writer`]); [`verify`] checks a file (`mcgate audit verify FILE`).
//!
//! Never in a record: the MSISDN (a keyed pseudonym, [`crate::telemetry::pseudonym`]), the
//! `auth_req_id` (its SHA-256 prefix `tx`, which support can compute from an RP's id), tokens,
//! codes, links or secrets.
//!
//! Back-pressure, not loss: [`Audit::record`] queues into a bounded channel and, when it is full,
//! WAITS for room (counted in `mcgate_audit_queue_full_total`): memory stays bounded and only
//! the deciding requests slow down while the disk lags; a record is never dropped while the
//! writer lives (`mcgate_audit_dropped_total` counts records refused because the writer thread
//! is gone — alert on any increase).
//!
//! Hooks are one-line calls from where decisions happen: [`Audit::started`] (a transaction is
//! stored), [`Audit::transition`] (a compare-and-set moved its state or channel),
//! [`Audit::fallback`] (the SMS fallback decision), [`Audit::tokens_issued`].

pub mod chain;
pub mod verify;
pub mod writer;

use crate::clock::SharedClock;
use crate::config::AuditConfig;
use crate::flow::{Channel, Transaction, TxState};
use crate::telemetry::pseudonym::Pseudonyms;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub use crate::telemetry::metrics::AuditMetrics;
pub use writer::OpenError;

/// One decision, as written (the writer adds `seq`, `prev`, `instance`, `ts` and `hash`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    /// `started`, `transition`, `fallback` or `tokens_issued`.
    pub event: &'static str,
    /// First 16 hex digits of the SHA-256 of the transaction's `auth_req_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    /// Relying party.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `ciba` (CIBA and Mobile Connect server-initiated) or `redirect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<&'static str>,
    /// Operator routed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// How the route was found: `ported` or `prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_source: Option<String>,
    /// `push` or `sms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'static str>,
    /// State before a transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
    /// State reached (the outcome once terminal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Why it failed (`failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The operator signal class a fallback decision answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'static str>,
    /// The fallback decision: `sent`, or why no SMS went out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// acr achieved / issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// amr achieved / issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// How tokens went out: `token` (poll), `push` (CIBA push / MC-SI notification), `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'static str>,
    /// Keyed pseudonym of the MSISDN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
}

/// The audit trail of this instance (off: every call returns at once).
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: mpsc::Sender<writer::Msg>,
    path: PathBuf,
    pseudonyms: Pseudonyms,
    clock: SharedClock,
    metrics: AuditMetrics,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("path", &self.path()).finish()
    }
}

fn channel(c: Channel) -> &'static str {
    match c {
        Channel::Push => "push",
        Channel::Sms => "sms",
    }
}

/// The `tx` field of a transaction id.
pub fn tx_ref(id: &str) -> String {
    chain::sha256_hex(id.as_bytes())[..16].to_owned()
}

/// `config_text` with `[audit] path = path` added when it has no `[audit]` section (`demo`).
pub fn with_default_path(config_text: &str, path: &Path) -> String {
    if config_text.lines().any(|l| l.trim() == "[audit]") {
        return config_text.to_owned();
    }
    let quoted = serde_json::to_string(&path.to_string_lossy()).unwrap_or_default();
    format!("{config_text}\n[audit]\npath = {quoted}\n")
}

/// The instance id: configured, else `$HOSTNAME`, else `mcgate-<pid>`.
pub fn instance_id(cfg: &AuditConfig) -> String {
    cfg.instance
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("mcgate-{}", std::process::id()))
}

impl Audit {
    /// No audit trail.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Opens the configured file (continuing its chain) and starts the writer thread; off when
    /// `[audit] path` is absent. `secret` keys the MSISDN pseudonyms.
    pub fn start(
        cfg: &AuditConfig,
        base_dir: &Path,
        secret: &[u8],
        clock: SharedClock,
        metrics: AuditMetrics,
    ) -> Result<Self, OpenError> {
        let Some(path) = &cfg.path else { return Ok(Self::off()) };
        let instance = instance_id(cfg);
        let path = base_dir.join(path.to_string_lossy().replace("{instance}", &instance));
        let (file, seq, prev) = writer::open_file(&path)?;
        let fsync = match cfg.fsync.as_str() {
            "always" => writer::Fsync::Always,
            "never" => writer::Fsync::Never,
            _ => writer::Fsync::Interval(Duration::from_millis(cfg.fsync_interval_ms.max(1))),
        };
        let w = writer::Writer {
            path: path.clone(),
            file,
            seq,
            prev,
            instance,
            fsync,
            retry: Duration::from_millis(cfg.write_retry_ms.max(1)),
            metrics: metrics.clone(),
        };
        let (queue, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let io = |error| OpenError::Io { path: path.display().to_string(), error };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(io)?;
        std::thread::Builder::new().name("mcgate-audit".into()).spawn(move || rt.block_on(w.run(rx))).map_err(io)?;
        let inner = Inner { queue, path, pseudonyms: Pseudonyms::new(secret), clock, metrics };
        Ok(Self { inner: Some(Arc::new(inner)) })
    }

    /// The file written, if on.
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_ref().map(|i| i.path.as_path())
    }

    /// Queues one record, waiting for room when the queue is full (see the module doc).
    pub async fn record(&self, event: AuditEvent) {
        let Some(i) = &self.inner else { return };
        let msg = writer::Msg::Record(Box::new((i.clock.now_ms(), event)));
        let msg = match i.queue.try_send(msg) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(m)) => {
                i.metrics.queue_full.inc();
                m
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return self.lost(),
        };
        if i.queue.send(msg).await.is_err() {
            self.lost();
        }
    }

    fn lost(&self) {
        if let Some(i) = &self.inner {
            i.metrics.dropped.inc();
            tracing::error!(path = %i.path.display(), "audit writer is gone: a record was lost");
        }
    }

    /// Waits until everything queued so far is written and fsynced (shutdown, tests).
    pub async fn flush(&self) {
        let Some(i) = &self.inner else { return };
        let (tx, rx) = oneshot::channel();
        if i.queue.send(writer::Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn base(&self, event: &'static str, tx: &Transaction) -> Option<AuditEvent> {
        let i = self.inner.as_ref()?;
        Some(AuditEvent {
            event,
            tx: Some(tx_ref(&tx.id)),
            client: Some(tx.client_id.clone()),
            flow: Some(if tx.redirect.is_some() { "redirect" } else { "ciba" }),
            operator: (!tx.operator.is_empty()).then(|| tx.operator.clone()),
            route_source: (!tx.route_source.is_empty()).then(|| tx.route_source.clone()),
            channel: Some(channel(tx.channel)),
            state: Some(tx.state.as_str()),
            reason: match tx.state {
                TxState::Failed(r) => Some(r.as_str()),
                _ => None,
            },
            msisdn: (tx.msisdn != 0).then(|| i.pseudonyms.of(tx.msisdn)),
            ..Default::default()
        })
    }

    /// Queues `event` if there is one (see the `*_event` builders).
    pub async fn emit(&self, event: Option<AuditEvent>) {
        if let Some(e) = event {
            self.record(e).await;
        }
    }

    /// The `started` record of `tx` (route, channel, first state): build it before the store
    /// takes `tx`, [`Audit::emit`] it once stored. `None` when off.
    pub fn started_event(&self, tx: &Transaction) -> Option<AuditEvent> {
        self.base("started", tx)
    }

    /// A transaction was stored: its route, channel and first state.
    pub async fn started(&self, tx: &Transaction) {
        self.emit(self.started_event(tx)).await;
    }

    /// The record of `old` becoming `new`, when the state or the channel changed (build it
    /// before a compare-and-set takes `new`, [`Audit::emit`] it when applied). `None` when off.
    pub fn transition_event(&self, old: &Transaction, new: &Transaction) -> Option<AuditEvent> {
        if old.state == new.state && old.channel == new.channel {
            return None;
        }
        let mut e = self.base("transition", new)?;
        e.from = Some(old.state.as_str());
        if new.state == TxState::Approved {
            if let Some(r) = &new.result {
                (e.acr, e.amr) = (Some(r.acr.clone()), Some(r.amr.clone()));
            }
        }
        Some(e)
    }

    /// `old` was replaced by `new`: recorded when the state or the channel changed.
    pub async fn transition(&self, old: &Transaction, new: &Transaction) {
        self.emit(self.transition_event(old, new)).await;
    }

    /// The SMS fallback was decided for `tx` on `signal`: `outcome` is `sent` or why not.
    pub async fn fallback(&self, tx: &Transaction, signal: Option<crate::flow::fallback::SignalClass>, outcome: &str) {
        let Some(mut e) = self.base("fallback", tx) else { return };
        e.signal = signal.map(|s| s.as_str());
        e.fallback = Some(outcome.to_owned());
        self.record(e).await;
    }

    /// Tokens of `tx` went out by `delivery` (`token`, `push`, `code`).
    pub async fn tokens_issued(&self, tx: &Transaction, delivery: &'static str) {
        let Some(mut e) = self.base("tokens_issued", tx) else { return };
        if let Some(r) = &tx.result {
            (e.acr, e.amr) = (Some(r.acr.clone()), Some(r.amr.clone()));
        }
        e.delivery = Some(delivery);
        self.record(e).await;
    }
}
