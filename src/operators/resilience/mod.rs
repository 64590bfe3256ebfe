//! The per-operator call protection (shared/security.md L-02, L-03, L-04; issue 7): every
//! operator adapter is wrapped in a [`ResilientBackend`] that, before the adapter runs,
//! - answers from the push-capability cache ([`push_cache`]): a number the operator said is not
//!   enrolled is `NotEnrolled` at once for `not_enrolled_ttl_s`, without an operator call;
//! - asks the operator's circuit [`breaker`]: open → `PushError::Unavailable` at once (the
//!   fallback's "push unavailable" signal: SMS where the policy allows it, else 503
//!   `temporarily_unavailable` + `Retry-After`), and exactly one half-open probe;
//! - takes an in-flight slot (`max_in_flight`, L-04): none free → refused at once, never queued
//!   (`mcgate_operator_shed_total`);
//!
//! and afterwards records the call's outcome in the breaker. The outcome comes from the adapter
//! itself: the adapter counts each failure (`mcgate_operator_errors_total`), and the failure
//! kinds that mean "the operator is not working" (connect, timeout, 5xx, bad answer, invalid ID
//! token) also mark the running call as failed through a task-local [`note_failure`] — a
//! poll that failed transiently still answers `Pending` to the flow, but the breaker sees it.
//!
//! Retries (L-03) happen only where nothing can have reached the phone: a failed connection
//! attempt ([`super::http::call`]) and a 5xx of the CIBA token poll; each asks [`may_retry`],
//! which draws on the operator's retry budget (`tower`'s [`TpsBudget`]: `retry_budget_ratio`
//! of the calls plus `retry_budget_min_per_s`) and then waits a random 50–250 ms
//! ([`retry_pause`]). A push (`bc-authorize`, `si-authorize`) or a code redemption is never
//! retried. Per call the cost is a few atomic operations and one `Arc` clone.

pub mod breaker;
pub mod not_enrolled_index;
pub mod push_cache;

use super::callback::OperatorCallback;
use super::{OperatorBackend, PushError, PushRequest, PushStarted, RedirectRequest, RedirectReturn};
use crate::config::resilience::ResilienceConfig;
use crate::flow::fallback::OperatorHealth;
use crate::flow::poll::OperatorAnswer;
use crate::flow::{DeliveryMode, OperatorRef};
use crate::telemetry::metrics::ResilienceMetrics;
use async_trait::async_trait;
use breaker::{Admit, Breaker, State, Thresholds, Transition};
use prometheus::{IntCounter, IntGauge};
use push_cache::PushCapabilityCache;
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::retry::budget::{Budget, TpsBudget};

/// Adapter failure kinds (`OPERATOR_ERROR_KINDS`) that count against the breaker; an OAuth
/// error answer is the operator working, not failing.
const BREAKER_FAILURE_KINDS: &[&str] = &["connect", "timeout", "http_5xx", "bad_answer", "token_invalid"];

/// One operator's breaker, in-flight count, retry budget and metric handles.
pub struct Resilience {
    operator: String,
    breaker: Breaker,
    in_flight: AtomicU32,
    max_in_flight: u32,
    budget: TpsBudget,
    jitter_ms: (u64, u64),
    epoch: Instant,
    state_gauge: IntGauge,
    to_closed: IntCounter,
    to_half_open: IntCounter,
    to_open: IntCounter,
    retry_connect: IntCounter,
    retry_token: IntCounter,
    shed: IntCounter,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience").field("operator", &self.operator).field("state", &self.state()).finish()
    }
}

impl Resilience {
    /// From `cfg` (validated), registering nothing: `metrics` holds the families.
    pub fn new(operator: &str, cfg: &ResilienceConfig, metrics: &ResilienceMetrics) -> Self {
        let to = |s: &str| metrics.breaker_transitions.with_label_values(&[operator, s]);
        let retries = |c: &str| metrics.retries.with_label_values(&[operator, c]);
        Self {
            operator: operator.to_owned(),
            breaker: Breaker::new(Thresholds {
                consecutive: cfg.breaker_consecutive_failures,
                rate: cfg.breaker_failure_rate,
                window_ms: cfg.breaker_window_ms,
                min_calls: cfg.breaker_min_calls,
                open_ms: cfg.breaker_open_ms,
                max_open_ms: cfg.breaker_max_open_ms,
            }),
            in_flight: AtomicU32::new(0),
            max_in_flight: cfg.max_in_flight,
            budget: TpsBudget::new(
                Duration::from_millis(cfg.retry_budget_ttl_ms),
                cfg.retry_budget_min_per_s,
                cfg.retry_budget_ratio,
            ),
            jitter_ms: (cfg.retry_jitter_min_ms, cfg.retry_jitter_max_ms),
            epoch: Instant::now(),
            state_gauge: metrics.breaker_state.with_label_values(&[operator]),
            to_closed: to("closed"),
            to_half_open: to("half_open"),
            to_open: to("open"),
            retry_connect: retries("connect"),
            retry_token: retries("token"),
            shed: metrics.shed.with_label_values(&[operator]),
        }
    }

    /// The breaker's state.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn transition(&self, t: Transition) {
        let Some(to) = t else { return };
        self.state_gauge.set(to as i64);
        match to {
            State::Closed => self.to_closed.inc(),
            State::HalfOpen => self.to_half_open.inc(),
            State::Open => self.to_open.inc(),
        }
        match to {
            State::Open => tracing::warn!(operator = %self.operator, "operator circuit breaker open"),
            _ => tracing::info!(operator = %self.operator, to = to.as_str(), "operator circuit breaker"),
        }
    }

    /// An in-flight slot, or `None` at the cap (counted as shed).
    fn enter(&self) -> Option<Slot<'_>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.shed.inc();
            return None;
        }
        Some(Slot(self))
    }
}

/// A taken in-flight slot; given back on drop.
struct Slot<'a>(&'a Resilience);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running call's protection and whether the adapter reported a failure in it.
struct CallContext {
    res: Arc<Resilience>,
    failed: Cell<bool>,
}

tokio::task_local! {
    static CALL: CallContext;
}

/// Marks the running operator call as failed when `kind` is a breaker failure kind (called by
/// the adapters where they count `mcgate_operator_errors_total`; no-op outside a call).
pub fn note_failure(kind: &str) {
    if BREAKER_FAILURE_KINDS.contains(&kind) {
        let _ = CALL.try_with(|c| c.failed.set(true));
    }
}

/// Whether one retry of `call` (`"connect"` or `"token"`) may go out: inside an operator call,
/// only when the operator's retry budget has room (counted in `mcgate_operator_retries_total`);
/// outside one (no budget to draw on, e.g. the SIM-swap client) it may.
pub fn may_retry(call: &'static str) -> bool {
    CALL.try_with(|c| {
        let ok = c.res.budget.withdraw();
        if ok {
            match call {
                "token" => c.res.retry_token.inc(),
                _ => c.res.retry_connect.inc(),
            }
        }
        ok
    })
    .unwrap_or(true)
}

/// The pause before a retry: a random `retry_jitter_min_ms`–`retry_jitter_max_ms` inside an
/// operator call, none outside one.
pub async fn retry_pause() {
    let Ok((lo, hi)) = CALL.try_with(|c| c.res.jitter_ms) else { return };
    let ms = if hi > lo { rand::random_range(lo..=hi) } else { lo };
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Why a call did not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Breaker open (or its probe is out).
    Open,
    /// In-flight cap reached.
    Shed,
}

impl Refused {
    fn push_error(self) -> PushError {
        PushError::Unavailable(
            match self {
                Self::Open => "circuit breaker open",
                Self::Shed => "too many calls in flight to this operator",
            }
            .into(),
        )
    }
}

/// Reopens the breaker if a probe's caller goes away before it ends.
struct ProbeGuard<'a> {
    res: &'a Resilience,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.res.transition(self.res.breaker.abandon_probe(self.res.now_ms()));
        }
    }
}

/// An operator adapter behind its [`Resilience`] and the push-capability cache.
pub struct ResilientBackend {
    inner: Arc<dyn OperatorBackend>,
    res: Arc<Resilience>,
    cache: Option<PushCapabilityCache>,
}

impl ResilientBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OperatorBackend>, res: Arc<Resilience>, cache: Option<PushCapabilityCache>) -> Self {
        Self { inner, res, cache }
    }

    /// The operator's protection (breaker state for tests and admin views).
    pub fn resilience(&self) -> &Arc<Resilience> {
        &self.res
    }

    /// Runs `call` under the protection. `gate`: refused when the breaker is open or the cap is
    /// reached (calls that start something); otherwise (results the operator sent us) it always
    /// runs and only its outcome is recorded.
    async fn run<F: Future>(&self, gate: bool, call: F) -> Result<F::Output, Refused> {
        let res = &*self.res;
        let admit = if gate {
            let (admit, t) = res.breaker.admit(res.now_ms());
            res.transition(t);
            admit
        } else if res.breaker.state() == State::Closed {
            Admit::Call
        } else {
            Admit::Refused // runs, unrecorded
        };
        if gate && admit == Admit::Refused {
            return Err(Refused::Open);
        }
        let mut probe = ProbeGuard { res, armed: admit == Admit::Probe };
        let _slot = match gate {
            true => Some(res.enter().ok_or(Refused::Shed)?),
            false => None,
        };
        res.budget.deposit();
        let ctx = CallContext { res: self.res.clone(), failed: Cell::new(false) };
        let (out, failed) = CALL
            .scope(ctx, async {
                let out = call.await;
                (out, CALL.with(|c| c.failed.get()))
            })
            .await;
        probe.armed = false;
        res.transition(res.breaker.record(admit, !failed, res.now_ms()));
        Ok(out)
    }
}

#[async_trait]
impl OperatorBackend for ResilientBackend {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn push_capable(&self) -> bool {
        self.inner.push_capable()
    }

    fn push_timeout_s(&self) -> u64 {
        self.inner.push_timeout_s()
    }

    fn health(&self) -> OperatorHealth {
        match self.res.state() {
            State::Open => OperatorHealth::BreakerOpen,
            _ => OperatorHealth::Healthy,
        }
    }

    async fn start_push(&self, req: &PushRequest<'_>) -> Result<PushStarted, PushError> {
        // The number's cache key (a keyed hash) is computed once for the lookup and the update.
        let mut cached = None;
        if let Some(cache) = &self.cache {
            let key = cache.key(req.msisdn);
            match cache.lookup(&key).await {
                push_cache::Lookup::NotEnrolled => return Err(PushError::NotEnrolled),
                found => cached = Some((cache, key, found)),
            }
        }
        let result = self.run(true, self.inner.start_push(req)).await.map_err(Refused::push_error)?;
        if let Some((cache, key, found)) = &cached {
            match &result {
                Err(PushError::NotEnrolled) => cache.remember_not_enrolled_at(key).await,
                // A started push forgets the number, unless the lookup has just seen nothing
                // there (one store call fewer per push: a Redis round trip). Only an entry
                // written by another request in between is left to its TTL.
                Ok(_) if *found == push_cache::Lookup::Unknown => cache.forget_at(key).await,
                // The index vouched: no store call, unless another instance's mark of this
                // number has reached the index since (then it is forgotten).
                Ok(_) if *found == push_cache::Lookup::Vouched => cache.started(key).await,
                _ => {}
            }
        }
        result
    }

    async fn poll(&self, op: &OperatorRef) -> OperatorAnswer {
        // Refused: the answer is not lost, the next poll asks again.
        self.run(true, self.inner.poll(op)).await.unwrap_or(OperatorAnswer::Pending { slow_down: false })
    }

    async fn warm_up(&self) -> Result<(), String> {
        self.inner.warm_up().await
    }

    async fn authorization_url(&self, req: &RedirectRequest<'_>) -> Result<String, PushError> {
        self.run(true, self.inner.authorization_url(req)).await.map_err(Refused::push_error)?
    }

    async fn finish_redirect(&self, ret: RedirectReturn<'_>) -> OperatorAnswer {
        match self.run(false, self.inner.finish_redirect(ret)).await {
            Ok(a) => a,
            Err(_) => unreachable!("ungated calls always run"),
        }
    }

    fn notification_mode(&self) -> DeliveryMode {
        self.inner.notification_mode()
    }

    async fn callback_answer(
        &self,
        op: &OperatorRef,
        notify_secret_sha256: &str,
        cb: &OperatorCallback,
    ) -> OperatorAnswer {
        match self.run(false, self.inner.callback_answer(op, notify_secret_sha256, cb)).await {
            Ok(a) => a,
            Err(_) => unreachable!("ungated calls always run"),
        }
    }
}

/// Wraps every adapter of `operators` (ids and configs in the same order as `configs`) in its
/// protection; `cache` is shared by all (its key includes the operator).
pub fn wrap_all(
    operators: Vec<Arc<dyn OperatorBackend>>,
    defaults: &ResilienceConfig,
    configs: &[crate::config::OperatorConfig],
    cache: Option<push_cache::CacheParts>,
    metrics: &ResilienceMetrics,
) -> Result<Vec<Arc<dyn OperatorBackend>>, String> {
    let merged = configs
        .iter()
        .map(|cfg| {
            defaults.for_operator(cfg.resilience.as_ref()).map_err(|e| format!("operators.{}.resilience: {e}", cfg.id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Announcements of new marks outlive the longest mark of any operator, plus a minute for
    // clocks that differ.
    let longest_ttl_s = merged.iter().map(|m| m.not_enrolled_ttl_s).max().unwrap_or(0);
    let log_keep_ms = longest_ttl_s.saturating_add(60).saturating_mul(1000);
    Ok(operators
        .into_iter()
        .zip(configs.iter().zip(&merged))
        .map(|(inner, (cfg, merged))| {
            let res = Arc::new(Resilience::new(&cfg.id, merged, metrics));
            let cache = cache.as_ref().filter(|_| merged.not_enrolled_ttl_s > 0).map(|parts| {
                PushCapabilityCache::new(parts.clone(), &cfg.id, merged.not_enrolled_ttl_s, log_keep_ms, metrics)
            });
            Arc::new(ResilientBackend::new(inner, res, cache)) as Arc<dyn OperatorBackend>
        })
        .collect())
}
