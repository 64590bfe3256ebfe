//! The background driver: for transactions of ping/push clients nobody polls, so the gateway
//! itself asks the operator (per its interval, through [`super::progress::advance`], the same
//! step the RP's poll uses) until the transaction ends, then delivers the ping or push
//! ([`super::notify`]) with bounded retries.
//!
//! Bounded by construction: a fixed number of worker futures and a schedule of at most
//! `driver.capacity` transactions (one entry each, keyed by due time). [`Driver::admit`] reserves
//! a place before `bc-authorize` contacts the operator; when none is left the RP gets 503
//! `temporarily_unavailable` with `Retry-After`. No channel, no task per request. [`run`] is
//! started by the server next to the store purge and returns on shutdown.

use super::notify::{self, Notifier};
use super::progress::{self, CAS_ATTEMPTS};
use super::{DeliveryMode, Transaction, TxState};
use crate::app::Gateway;
use crate::config::{DriverConfig, NotificationsConfig};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Longest a worker sleeps with nothing scheduled (it is woken earlier by new work).
const IDLE_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Queue {
    /// (due ms, sequence) → transaction id.
    due: BTreeMap<(u64, u64), String>,
    /// Transaction id → its key in `due`.
    keys: HashMap<String, (u64, u64)>,
    /// Jobs being run → whether they were kicked meanwhile.
    running: HashMap<String, bool>,
    seq: u64,
}

impl Queue {
    fn put(&mut self, id: String, at_ms: u64) {
        if let Some(old) = self.keys.remove(&id) {
            self.due.remove(&old);
        }
        self.seq += 1;
        let key = (at_ms, self.seq);
        self.due.insert(key, id.clone());
        self.keys.insert(id, key);
    }
}

/// The schedule and the delivery client; lives in the [`Gateway`].
pub struct Driver {
    queue: Mutex<Queue>,
    wake: Notify,
    live: AtomicUsize,
    cfg: DriverConfig,
    notifier: Notifier,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("live", &self.live()).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// A reserved place in the schedule; released on drop unless [`Admission::schedule`]d.
#[must_use = "an admission is released when dropped"]
pub struct Admission<'a> {
    driver: &'a Driver,
    used: bool,
}

impl Admission<'_> {
    /// Hands transaction `id` to the driver, first looked at `at_ms`.
    pub fn schedule(mut self, id: String, at_ms: u64) {
        self.used = true;
        self.driver.queue.lock().put(id, at_ms);
        self.driver.wake.notify_one();
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.driver.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Driver {
    /// An empty driver.
    pub fn new(cfg: &DriverConfig, notifications: &NotificationsConfig) -> Result<Self, String> {
        Ok(Self {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            live: AtomicUsize::new(0),
            cfg: cfg.clone(),
            notifier: Notifier::new(notifications)?,
        })
    }

    /// Reserves a place for one more transaction, or `None` when `capacity` are followed.
    pub fn admit(&self) -> Option<Admission<'_>> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.cfg.capacity).then_some(n + 1))
            .ok()
            .map(|_| Admission { driver: self, used: false })
    }

    /// `Retry-After` for RPs refused because the driver is full, seconds.
    pub fn retry_after_s(&self) -> u32 {
        self.cfg.retry_after_s
    }

    /// Transactions followed now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Something happened to `id` (an operator callback): look at it now.
    pub fn kick(&self, id: &str, now_ms: u64) {
        let mut q = self.queue.lock();
        if let Some(flag) = q.running.get_mut(id) {
            *flag = true;
        } else if q.keys.contains_key(id) {
            q.put(id.to_owned(), now_ms);
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Takes the first due job, or tells when the next one is due.
    fn pop_due(&self, now_ms: u64) -> Result<String, Option<u64>> {
        let mut q = self.queue.lock();
        let Some((&key, _)) = q.due.first_key_value() else { return Err(None) };
        if key.0 > now_ms {
            return Err(Some(key.0));
        }
        let id = q.due.remove(&key).unwrap_or_default();
        q.keys.remove(&id);
        q.running.insert(id.clone(), false);
        Ok(id)
    }

    /// A job ran: reschedule it at `next` (at once if kicked meanwhile) or let it go.
    fn done(&self, id: String, next: Option<u64>, now_ms: u64) {
        let mut q = self.queue.lock();
        let kicked = q.running.remove(&id).unwrap_or(false);
        match next {
            Some(at) => q.put(id, if kicked { now_ms } else { at }),
            None => {
                drop(q);
                self.live.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Runs the driver's workers until `shutdown`.
pub async fn run(gw: Arc<Gateway>, shutdown: watch::Receiver<bool>) {
    let workers = (0..gw.driver.cfg.workers.max(1)).map(|_| worker(gw.clone(), shutdown.clone()));
    futures_util::future::join_all(workers).await;
}

async fn worker(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = gw.clock.now_ms();
        let wait = match gw.driver.pop_due(now) {
            Ok(id) => {
                // Each step in a trace of its own, tied to the transaction's (`trace_id`).
                let next = crate::telemetry::trace::background(step(&gw, &id)).await;
                gw.driver.done(id, next, gw.clock.now_ms());
                continue;
            }
            Err(Some(at)) => Duration::from_millis(at.saturating_sub(now)).min(IDLE_WAIT),
            Err(None) => IDLE_WAIT,
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = gw.driver.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One look at transaction `id`: advance it, or deliver its notification. Returns when to look
/// again (`None`: the driver is done with it).
async fn step(gw: &Gateway, id: &str) -> Option<u64> {
    let retry = || Some(gw.clock.now_ms() + gw.driver.cfg.store_retry_ms);
    let (current, wait) = match progress::advance(gw, id).await {
        Ok(Some(x)) => x,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "driver could not advance a transaction");
            return retry();
        }
    };
    let tx = &current.value;
    let now = gw.clock.now_ms();
    if tx.state.is_pending() {
        return Some(wait.unwrap_or(now));
    }
    let client = gw.clients.get(&tx.client_id)?;
    // The request's own delivery (MC-SI async) wins over the client's registered mode.
    let target = super::delivery::target(tx, client.delivery, client.notification_endpoint.as_deref());
    let (mode, Some(endpoint), Some(token)) = (target.mode, target.endpoint, tx.client_notification_token.as_ref())
    else {
        return None;
    };
    if mode == DeliveryMode::Poll || tx.state == TxState::Consumed {
        return None;
    }
    let prev = tx.notification.clone().unwrap_or_default();
    if prev.finished() {
        return None;
    }
    if now < prev.next_attempt_at_ms {
        return Some(prev.next_attempt_at_ms);
    }
    let body = match notify::body(gw, tx, mode) {
        Ok(b) => serde_json::to_vec(&b).unwrap_or_default(),
        Err(e) => {
            tracing::error!(client = %tx.client_id, error = %e, "cannot build the notification");
            return None;
        }
    };
    let outcome = gw.driver.notifier.send(endpoint, token, body).await;
    if outcome.is_ok() && mode == DeliveryMode::Push && tx.state == TxState::Approved {
        gw.audit.tokens_issued(tx, "push").await;
    }
    let now = gw.clock.now_ms();
    let deadline = tx.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let n = notify::record_attempt(&prev, outcome, now, gw.driver.notifier.config(), deadline);
    let label = match outcome {
        Ok(()) => "delivered",
        Err(class) => class.as_str(),
    };
    gw.metrics.notification(mode.as_str(), label);
    if n.gave_up {
        gw.metrics.notification(mode.as_str(), "gave_up");
    }
    tracing::info!(
        client = %tx.client_id, operator = %tx.operator, mode = mode.as_str(), attempt = n.attempts,
        outcome = label, gave_up = n.gave_up, "client notification"
    );
    if let Err(e) = write_record(gw, current.version, tx.clone(), &n, mode).await {
        tracing::warn!(error = %e, "could not record a notification attempt");
    }
    if n.finished() {
        None
    } else {
        Some(n.next_attempt_at_ms)
    }
}

/// Stores the delivery record, re-reading on conflict. A delivered push also moves `approved →
/// consumed`; a push that gave up moves `approved → failed{delivery_failed}` (shared/protocol.md
/// §7): the tokens were never received and a push client may not poll, so nothing can consume
/// the approval any more.
async fn write_record(
    gw: &Gateway,
    mut version: u64,
    mut tx: Transaction,
    n: &super::Notification,
    mode: DeliveryMode,
) -> Result<(), crate::store::StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let mut next = tx.clone();
        next.notification = Some(n.clone());
        if mode == DeliveryMode::Push && next.state == TxState::Approved {
            if n.delivered {
                next.state = TxState::Consumed;
            } else if n.gave_up {
                next.state = TxState::Failed(super::FailReason::DeliveryFailed);
            }
        }
        if progress::cas(gw, version, &tx, next).await?.is_some() {
            return Ok(());
        }
        match gw.store.get(&tx.id).await? {
            Some(v) => (tx, version) = (v.value, v.version),
            None => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(capacity: usize) -> Driver {
        let cfg = DriverConfig { capacity, ..Default::default() };
        Driver::new(&cfg, &NotificationsConfig::default()).unwrap()
    }

    #[test]
    fn admission_is_bounded_and_released_when_unused() {
        let d = driver(2);
        let a = d.admit().unwrap();
        let b = d.admit().unwrap();
        assert!(d.admit().is_none(), "full at capacity");
        drop(b);
        assert_eq!(d.live(), 1);
        a.schedule("t1".into(), 10);
        d.admit().unwrap().schedule("t2".into(), 5);
        assert!(d.admit().is_none());
        assert_eq!(d.pop_due(4), Err(Some(5)));
        assert_eq!(d.pop_due(10), Ok("t2".into()));
        d.done("t2".into(), None, 10);
        assert_eq!(d.live(), 1, "a finished job frees its place");
    }

    #[test]
    fn every_fail_reason_is_a_metric_label() {
        use super::super::FailReason::*;
        let all = [
            OperatorUnavailable,
            NotEnrolled,
            OperatorError,
            OperatorTokenInvalid,
            Cancelled,
            DeliveryFailed,
            SimSwap,
            SimSwapUnknown,
            TooManyAttempts,
            RateLimited,
            SmsUnavailable,
        ];
        assert_eq!(all.map(|r| r.as_str()), super::super::FailReason::ALL_LABELS);
        let json = serde_json::to_string(&TxState::Failed(DeliveryFailed)).unwrap();
        assert_eq!(json, r#"{"state":"failed","reason":"delivery_failed"}"#);
    }

    #[test]
    fn a_kick_during_a_run_reschedules_at_once() {
        let d = driver(4);
        d.admit().unwrap().schedule("t".into(), 0);
        let id = d.pop_due(0).unwrap();
        d.kick("t", 7);
        d.done(id, Some(1_000), 7);
        assert_eq!(d.pop_due(7), Ok("t".into()));
        d.done("t".into(), Some(1_000), 7);
        d.kick("t", 8);
        assert_eq!(d.pop_due(8), Ok("t".into()), "a kick moves a waiting job forward");
    }
}
