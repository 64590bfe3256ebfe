//! Anti-pumping limits of the SMS fallback (shared/security.md S-06, S-16, S-17, S-18): which
//! numbers may get an SMS at all (client `sms_countries`, `[sms_limits].refused_prefixes`), and
//! how many — `governor` keyed rate limiters per MSISDN (1 per `msisdn_min_interval_s`,
//! `msisdn_per_hour`, `msisdn_per_day`), per number prefix (the E.164 number minus its last
//! `prefix_strip_digits`, `prefix_per_hour`) and per client (`sms_hourly_budget`,
//! `sms_daily_budget`), plus the consecutive failed codes per MSISDN, counted in the shared
//! [`Store`] (`max_consecutive_failures`; only a success resets it, a new code never).
//!
//! These limits are consulted ONLY before an SMS; nothing in the push path calls them, so no
//! limit, cap or block can stop a push (S-20).
//!
//! How the integrator calls it (one [`SmsLimits`] per gateway, built from the config):
//! - [`SmsLimits::admit`] right before sending an SMS (after the fallback decision and the
//!   SIM-swap gate): `Ok(())` consumed one unit of every quota; `Err(LimitError::Refused(r))`
//!   counted `mcgate_sms_refusals_total{reason}` and maps to the decision's
//!   [`crate::flow::fallback::LimitGate`] with [`Refusal::gate`]; `Err(LimitError::Store(_))`
//!   is a store outage (answer 503, L-08).
//! - [`SmsLimits::record_failure`] on each wrong/expired code, [`SmsLimits::record_success`]
//!   on an accepted one.
//! - [`SmsLimits::purge`] from the store's purge loop (drops idle limiter keys).
//!
//! The governor limiters are per instance (GCRA, refilling continuously: "`n` per hour/day"
//! means at most `n` in any rolling hour/day, at most ⌈n/2⌉ of them at once); with several
//! instances each enforces its own share. The failure
//! counter is shared through the store.

use crate::config::{ClientConfig, SmsLimitsConfig};
use crate::flow::fallback::LimitGate;
use crate::msisdn::Msisdn;
use crate::store::{Store, StoreError};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use prometheus::IntCounter;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Why an SMS was refused (a closed set: the `reason` label of `mcgate_sms_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Per-MSISDN or per-prefix rate.
    RateLimited,
    /// The client's hourly or daily SMS budget.
    BudgetExhausted,
    /// The number's country is not in the client's `sms_countries`.
    CountryNotAllowed,
    /// Premium, shared-cost, toll-free, personal or fixed range.
    PremiumRange,
    /// `max_consecutive_failures` wrong codes for this number (S-06).
    TooManyFailures,
}

impl Refusal {
    /// Label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::BudgetExhausted => "budget_exhausted",
            Self::CountryNotAllowed => "country_not_allowed",
            Self::PremiumRange => "premium_range",
            Self::TooManyFailures => "too_many_failures",
        }
    }
    /// Every label value.
    pub const ALL_LABELS: [&'static str; 5] =
        ["rate_limited", "budget_exhausted", "country_not_allowed", "premium_range", "too_many_failures"];
    /// What the fallback decision makes of it: the number itself is refused (no SMS ever: the
    /// RP gets the class's answer), or a quota is exhausted (`failed{rate_limited}`).
    pub fn gate(self) -> LimitGate {
        match self {
            Self::CountryNotAllowed | Self::PremiumRange => LimitGate::NumberRefused,
            _ => LimitGate::Exhausted,
        }
    }
}

/// A refused or failed admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Refused; `retry_after_s` when waiting helps (a rate, not a rule).
    #[error("SMS refused: {}", .reason.as_str())]
    Refused {
        /// Why.
        reason: Refusal,
        /// Seconds until a retry may pass (for `Retry-After`), if known.
        retry_after_s: Option<u64>,
    },
    /// The store holding the failure counters failed.
    #[error("store: {0}")]
    Store(String),
}

impl From<StoreError> for LimitError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

type Keyed<K, C> = RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// At most `n` in any rolling `window` (GCRA: a burst of ⌈n/2⌉, then one more every
/// `window / ⌊n/2⌋`, so burst + refills within one window never exceed `n`); `None` when `n` is 0.
fn quota(n: u32, window: Duration) -> Option<Quota> {
    let burst = NonZeroU32::new(n.div_ceil(2))?;
    let refills = n - burst.get();
    let period = if refills == 0 { window } else { window / refills };
    Quota::with_period(period).map(|q| q.allow_burst(burst))
}

const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

struct ClientBudget<C: Clock> {
    countries: Vec<String>,
    /// `None`: a budget of 0 (never SMS).
    hour: Option<Direct<C>>,
    day: Option<Direct<C>>,
}

/// The anti-pumping limits of one gateway instance.
pub struct SmsLimits<C: Clock = DefaultClock> {
    clock: C,
    msisdn_gap: Keyed<u64, C>,
    msisdn_hour: Keyed<u64, C>,
    msisdn_day: Keyed<u64, C>,
    prefix_hour: Keyed<u64, C>,
    prefix_div: u64,
    refused_prefixes: Vec<String>,
    max_failures: u64,
    failure_ttl_ms: u64,
    clients: HashMap<String, ClientBudget<C>>,
    store: Arc<dyn Store>,
    refusals: HashMap<Refusal, IntCounter>,
    /// `mcgate_rate_limited_total{limit}` by [`crate::telemetry::noc::RATE_LIMITS`] index.
    limited: Vec<Option<IntCounter>>,
    now_ms: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl SmsLimits<DefaultClock> {
    /// Limits from validated config, with the store's clock for counter lifetimes.
    pub fn new(
        cfg: &SmsLimitsConfig,
        clients: &[ClientConfig],
        store: Arc<dyn Store>,
        clock: crate::clock::SharedClock,
        metrics: &crate::telemetry::Metrics,
    ) -> Self {
        Self::with_clock(cfg, clients, store, move || clock.now_ms(), metrics, DefaultClock::default())
    }
}

impl<C: Clock + Clone> SmsLimits<C> {
    /// Limits over a given governor clock (tests use `governor::clock::FakeRelativeClock`);
    /// `now_ms` is the wall clock for store TTLs.
    pub fn with_clock(
        cfg: &SmsLimitsConfig,
        clients: &[ClientConfig],
        store: Arc<dyn Store>,
        now_ms: impl Fn() -> u64 + Send + Sync + 'static,
        metrics: &crate::telemetry::Metrics,
        clock: C,
    ) -> Self {
        // Validated > 0; fall back to 1 rather than panic if called with raw config.
        let keyed = |n: u32, period: Duration| -> Keyed<u64, C> {
            let q = quota(n.max(1), period).unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN));
            RateLimiter::dashmap_with_clock(q, clock.clone())
        };
        let direct =
            |n: u32, period: Duration| quota(n, period).map(|q| RateLimiter::direct_with_clock(q, clock.clone()));
        let gap = Duration::from_secs(u64::from(cfg.msisdn_min_interval_s.max(1)));
        let clients = clients
            .iter()
            .map(|c| {
                let budget = ClientBudget {
                    countries: c.sms_countries.clone(),
                    hour: direct(c.sms_hourly_budget, HOUR),
                    day: direct(c.sms_daily_budget, DAY),
                };
                (c.client_id.clone(), budget)
            })
            .collect();
        let refusals = [
            Refusal::RateLimited,
            Refusal::BudgetExhausted,
            Refusal::CountryNotAllowed,
            Refusal::PremiumRange,
            Refusal::TooManyFailures,
        ]
        .into_iter()
        .map(|r| (r, metrics.sms_refusals.with_label_values(&[r.as_str()])))
        .collect();
        Self {
            msisdn_gap: keyed(1, gap),
            msisdn_hour: keyed(cfg.msisdn_per_hour, HOUR),
            msisdn_day: keyed(cfg.msisdn_per_day, DAY),
            prefix_hour: keyed(cfg.prefix_per_hour, HOUR),
            prefix_div: 10u64.pow(u32::from(cfg.prefix_strip_digits.clamp(1, 8))),
            refused_prefixes: cfg.refused_prefixes.clone(),
            max_failures: u64::from(cfg.max_consecutive_failures),
            failure_ttl_ms: cfg.failure_counter_ttl_s.saturating_mul(1000),
            clients,
            store,
            refusals,
            limited: crate::telemetry::noc::RATE_LIMITS.iter().map(|l| metrics.auth.rate_limited(l)).collect(),
            now_ms: Box::new(now_ms),
            clock,
        }
    }

    /// Counts a refusal by the limiter at `RATE_LIMITS[i]`.
    fn limited(&self, i: usize) {
        if let Some(Some(c)) = self.limited.get(i) {
            c.inc();
        }
    }

    fn refuse(&self, reason: Refusal, retry_after_s: Option<u64>) -> LimitError {
        if let Some(c) = self.refusals.get(&reason) {
            c.inc();
        }
        LimitError::Refused { reason, retry_after_s }
    }

    /// The static rules (pure, consumes nothing): country allow-list and refused ranges.
    pub fn number_allowed(&self, client_id: &str, to: &Msisdn) -> Result<(), Refusal> {
        let digits = to.digits();
        if self.refused_prefixes.iter().any(|p| digits.starts_with(p.as_str())) {
            return Err(Refusal::PremiumRange);
        }
        let countries = self.clients.get(client_id).map(|c| c.countries.as_slice()).unwrap_or_default();
        if !countries.iter().any(|cc| digits.starts_with(cc.as_str())) {
            return Err(Refusal::CountryNotAllowed);
        }
        Ok(())
    }

    /// Admits one SMS from `client_id` to `to`, consuming one unit of each quota, or refuses it
    /// (and counts the refusal). Checks run narrowest first (number rules, failures, MSISDN,
    /// prefix, then the client's budget), so one busy number never eats the client's budget.
    pub async fn admit(&self, client_id: &str, to: &Msisdn) -> Result<(), LimitError> {
        if let Err(r) = self.number_allowed(client_id, to) {
            return Err(self.refuse(r, None));
        }
        if self.store.counter(&failure_key(to)).await? >= self.max_failures {
            return Err(self.refuse(Refusal::TooManyFailures, None));
        }
        let n = to.value();
        for (i, limiter) in [&self.msisdn_gap, &self.msisdn_hour, &self.msisdn_day].into_iter().enumerate() {
            if let Err(not_until) = limiter.check_key(&n) {
                self.limited(i);
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(self.refuse(Refusal::RateLimited, Some(wait.as_secs().max(1))));
            }
        }
        if let Err(not_until) = self.prefix_hour.check_key(&(n / self.prefix_div)) {
            self.limited(3);
            let wait = not_until.wait_time_from(self.clock.now());
            return Err(self.refuse(Refusal::RateLimited, Some(wait.as_secs().max(1))));
        }
        let Some(budget) = self.clients.get(client_id) else {
            return Err(self.refuse(Refusal::BudgetExhausted, None));
        };
        for (i, limiter) in [&budget.hour, &budget.day].into_iter().enumerate() {
            match limiter {
                None => return Err(self.refuse(Refusal::BudgetExhausted, None)),
                Some(l) => {
                    if let Err(not_until) = l.check() {
                        self.limited(4 + i);
                        let wait = not_until.wait_time_from(self.clock.now());
                        return Err(self.refuse(Refusal::BudgetExhausted, Some(wait.as_secs().max(1))));
                    }
                }
            }
        }
        Ok(())
    }

    /// One more failed code for `to` (wrong, expired or foreign); returns the consecutive count.
    pub async fn record_failure(&self, to: &Msisdn) -> Result<u64, StoreError> {
        let until = (self.now_ms)().saturating_add(self.failure_ttl_ms);
        self.store.incr(&failure_key(to), until).await
    }

    /// A code was accepted: the consecutive failures of `to` start again from 0.
    pub async fn record_success(&self, to: &Msisdn) -> Result<(), StoreError> {
        self.store.reset_counter(&failure_key(to)).await
    }

    /// Drops limiter keys that are back to a full quota (call periodically).
    pub fn purge(&self) {
        for l in [&self.msisdn_gap, &self.msisdn_hour, &self.msisdn_day, &self.prefix_hour] {
            l.retain_recent();
        }
    }
}

/// Store key of a number's failure counter (a hash would be kinder to dumps, but the store holds
/// the MSISDN in every transaction anyway; never logged).
fn failure_key(to: &Msisdn) -> String {
    format!("sms_fail:{}", to.value())
}

#[cfg(test)]
mod tests;
