//! Metric handles, created once per [`prometheus::Registry`] (a fresh registry per test; no
//! global statics) and labelled only from closed sets. Hot-path handles (per endpoint and
//! outcome) are resolved at start-up so a request pays an atomic add, not a label lookup.

use crate::discovery::RouteSource;
use parking_lot::RwLock;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::Arc;

mod subsystems;
pub use subsystems::{
    AuditMetrics, EdgeMetrics, ResilienceMetrics, UsageMetrics, BREAKER_STATES, PUSH_CACHE_OUTCOMES, RETRY_CALLS,
};

/// RP-facing endpoints (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Metadata,
    /// `/jwks`
    Jwks,
    /// `/v2/discovery`
    Discovery,
    /// `/bc-authorize`
    BcAuthorize,
    /// `/si-authorize`
    SiAuthorize,
    /// `/token`
    Token,
    /// `/cancel`
    Cancel,
    /// `/authorize`
    Authorize,
    /// `/callback`
    Callback,
    /// `/userinfo`
    Userinfo,
    /// `/op/{operator}/notify`
    OperatorNotify,
    /// `/sms/confirm/{token}` (SMS confirm link page)
    SmsConfirm,
    /// `/sms/otp` (SMS code page of the redirect flow)
    SmsOtp,
    /// anything else
    Other,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 14] = [
        Self::Metadata,
        Self::Jwks,
        Self::Discovery,
        Self::BcAuthorize,
        Self::SiAuthorize,
        Self::Token,
        Self::Cancel,
        Self::Authorize,
        Self::Callback,
        Self::Userinfo,
        Self::OperatorNotify,
        Self::SmsConfirm,
        Self::SmsOtp,
        Self::Other,
    ];
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Jwks => "jwks",
            Self::Discovery => "discovery",
            Self::BcAuthorize => "bc_authorize",
            Self::SiAuthorize => "si_authorize",
            Self::Token => "token",
            Self::Cancel => "cancel",
            Self::Authorize => "authorize",
            Self::Callback => "callback",
            Self::Userinfo => "userinfo",
            Self::OperatorNotify => "operator_notify",
            Self::SmsConfirm => "sms_confirm",
            Self::SmsOtp => "sms_otp",
            Self::Other => "other",
        }
    }
}

/// Request outcomes (the `outcome` label): `ok` or the OAuth error code answered.
pub const OUTCOMES: &[&str] = &[
    "ok",
    "invalid_request",
    "invalid_client",
    "invalid_request_object",
    "invalid_scope",
    "invalid_grant",
    "unsupported_grant_type",
    "unauthorized_client",
    "unknown_user_id",
    "invalid_binding_message",
    "expired_login_hint_token",
    "access_denied",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "transaction_failed",
    "temporarily_unavailable",
    "server_error",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "Not_Found_Entity",
    "unsupported_response_type",
    "invalid_token",
];

/// Operator call kinds (the `call` label).
pub const OPERATOR_CALLS: &[&str] = &["bc_authorize", "si_authorize", "token", "metadata", "jwks"];
/// Operator error kinds (the `kind` label).
pub const OPERATOR_ERROR_KINDS: &[&str] =
    &["connect", "timeout", "http_5xx", "http_other", "bad_answer", "oauth_error", "token_invalid"];

/// Ping/push delivery modes (the `mode` label of `mcgate_notifications_total`).
pub const NOTIFICATION_MODES: &[&str] = &["ping", "push"];
/// Delivery outcomes (the `outcome` label): one per attempt, plus `gave_up` when attempts end
/// without success.
pub const NOTIFICATION_OUTCOMES: &[&str] = &["delivered", "connect", "timeout", "http_status", "broken", "gave_up"];

/// `transactions_started` children by operator id, in [`RouteSource`] order.
type StartedChildren = HashMap<String, [Option<IntCounter>; 2], foldhash::fast::RandomState>;

/// All handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: HashMap<(Endpoint, &'static str), IntCounter, foldhash::fast::RandomState>,
    request_seconds: HashMap<Endpoint, Histogram, foldhash::fast::RandomState>,
    /// `transactions{state}` of every state label, resolved at start-up ([`Self::transition`]
    /// runs on every request).
    by_state: HashMap<&'static str, IntGauge, foldhash::fast::RandomState>,
    /// `transactions_started{operator,source}` children, kept once first used (by operator id,
    /// then [`RouteSource`] order): created lazily as `with_label_values` did, hashed once.
    started: Arc<RwLock<StartedChildren>>,
    /// Operator call latency by operator and call.
    pub operator_seconds: HistogramVec,
    /// Operator call failures by operator and kind.
    pub operator_errors: IntCounterVec,
    /// Transactions by state (this instance's view).
    pub transactions: IntGaugeVec,
    /// Transactions started, by operator and route source.
    pub transactions_started: IntCounterVec,
    /// Ping/push delivery attempts to RPs, by mode and outcome.
    pub notifications: IntCounterVec,
    /// Transactions that ended `failed`, by reason ([`crate::flow::FailReason::ALL_LABELS`]).
    pub failures: IntCounterVec,
    /// SMS refused by the anti-pumping limits, by reason ([`crate::sms::limits::Refusal::ALL_LABELS`]).
    pub sms_refusals: IntCounterVec,
    /// SMS fallback attempts by operator and outcome ([`SMS_FALLBACK_OUTCOMES`]).
    pub sms_fallbacks: IntCounterVec,
    /// Authentications started/completed, fallbacks by reason, rate-limit refusals (issue 8).
    pub auth: std::sync::Arc<super::noc::AuthMetrics>,
    /// Store call latency and failures by operation (`mcgate_store_*{op}`).
    pub store: crate::store::instrumented::StoreMetrics,
}

/// Outcomes of an SMS fallback attempt (`flow::sms_start`): `sent`, or why no SMS went out.
pub const SMS_FALLBACK_OUTCOMES: &[&str] = &[
    "sent",
    "never_for_class",
    "client_opt_out",
    "operator_off",
    "acr_above_sms",
    "not_mobile_range",
    "sim_swap",
    "sim_swap_unknown",
    "rate_limited",
    "expired",
    "sms_unavailable",
    "already_sms",
    "push",
];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric in `registry`; `operators` are the configured operator ids.
    pub fn register(registry: Registry, operators: &[String]) -> Result<Self, prometheus::Error> {
        Self::register_with_clients(registry, operators, &[])
    }

    /// As [`Metrics::register`], with the configured client ids (the `client` label's set).
    pub fn register_with_clients(
        registry: Registry,
        operators: &[String],
        clients: &[String],
    ) -> Result<Self, prometheus::Error> {
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "mcgate_http_requests_total",
                "RP-facing requests by endpoint and outcome (ok or OAuth error code)",
            ),
            &["endpoint", "outcome"],
        )?;
        registry.register(Box::new(requests_vec.clone()))?;
        let seconds_vec = HistogramVec::new(
            HistogramOpts::new("mcgate_http_request_duration_seconds", "RP-facing request latency")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["endpoint"],
        )?;
        registry.register(Box::new(seconds_vec.clone()))?;
        let operator_seconds = HistogramVec::new(
            HistogramOpts::new("mcgate_operator_request_duration_seconds", "Latency of calls to operator backends")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["operator", "call"],
        )?;
        registry.register(Box::new(operator_seconds.clone()))?;
        let operator_errors = IntCounterVec::new(
            Opts::new("mcgate_operator_errors_total", "Failed calls to operator backends by kind"),
            &["operator", "kind"],
        )?;
        registry.register(Box::new(operator_errors.clone()))?;
        let transactions =
            IntGaugeVec::new(Opts::new("mcgate_transactions", "Transactions held, by state"), &["state"])?;
        registry.register(Box::new(transactions.clone()))?;
        let transactions_started = IntCounterVec::new(
            Opts::new("mcgate_transactions_started_total", "Transactions started, by operator and route source"),
            &["operator", "source"],
        )?;
        registry.register(Box::new(transactions_started.clone()))?;
        let notifications = IntCounterVec::new(
            Opts::new("mcgate_notifications_total", "CIBA ping/push delivery attempts to relying parties, by outcome"),
            &["mode", "outcome"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        for m in NOTIFICATION_MODES {
            for o in NOTIFICATION_OUTCOMES {
                let _ = notifications.with_label_values(&[m, o]);
            }
        }
        let failures = IntCounterVec::new(
            Opts::new("mcgate_transaction_failures_total", "Transactions that ended failed, by reason"),
            &["reason"],
        )?;
        registry.register(Box::new(failures.clone()))?;
        for r in crate::flow::FailReason::ALL_LABELS {
            let _ = failures.with_label_values(&[r]);
        }
        let sms_refusals = IntCounterVec::new(
            Opts::new("mcgate_sms_refusals_total", "SMS refused by the anti-pumping limits, by reason"),
            &["reason"],
        )?;
        registry.register(Box::new(sms_refusals.clone()))?;
        for r in crate::sms::limits::Refusal::ALL_LABELS {
            let _ = sms_refusals.with_label_values(&[r]);
        }
        let sms_fallbacks = IntCounterVec::new(
            Opts::new("mcgate_sms_fallbacks_total", "SMS fallback attempts, by operator and outcome"),
            &["operator", "outcome"],
        )?;
        registry.register(Box::new(sms_fallbacks.clone()))?;
        for op in operators {
            for o in SMS_FALLBACK_OUTCOMES {
                let _ = sms_fallbacks.with_label_values(&[op.as_str(), o]);
            }
        }
        let mut build_opts =
            Opts::new("mcgate_build_info", "Build information").const_label("version", env!("CARGO_PKG_VERSION"));
        if let Some(sha) = option_env!("MCGATE_GIT_SHA").filter(|s| !s.is_empty()) {
            build_opts = build_opts.const_label("revision", sha);
        }
        let build = IntGauge::with_opts(build_opts)?;
        build.set(1);
        registry.register(Box::new(build))?;

        let mut requests = HashMap::default();
        let mut request_seconds = HashMap::default();
        for e in Endpoint::ALL {
            for o in OUTCOMES {
                requests.insert((e, *o), requests_vec.with_label_values(&[e.as_str(), o]));
            }
            request_seconds.insert(e, seconds_vec.with_label_values(&[e.as_str()]));
        }
        let mut by_state = HashMap::default();
        for s in crate::flow::TxState::ALL_LABELS {
            let gauge = transactions.with_label_values(&[s]);
            gauge.set(0);
            by_state.insert(s, gauge);
        }
        for op in operators {
            for c in OPERATOR_CALLS {
                let _ = operator_seconds.with_label_values(&[op.as_str(), c]);
            }
            for k in OPERATOR_ERROR_KINDS {
                let _ = operator_errors.with_label_values(&[op.as_str(), k]);
            }
        }
        let auth = std::sync::Arc::new(super::noc::AuthMetrics::register(&registry, clients, operators)?);
        let store = crate::store::instrumented::StoreMetrics::register(&registry)?;
        Ok(Self {
            registry,
            requests,
            request_seconds,
            by_state,
            started: Arc::default(),
            operator_seconds,
            operator_errors,
            transactions,
            transactions_started,
            notifications,
            failures,
            sms_refusals,
            sms_fallbacks,
            auth,
            store,
        })
    }

    /// Counts one delivery attempt (or the end of the attempts); labels outside the closed sets
    /// are ignored.
    pub fn notification(&self, mode: &str, outcome: &str) {
        if NOTIFICATION_MODES.contains(&mode) && NOTIFICATION_OUTCOMES.contains(&outcome) {
            self.notifications.with_label_values(&[mode, outcome]).inc();
        }
    }

    /// Counts one request and its latency.
    pub fn observe_request(&self, endpoint: Endpoint, outcome: &str, seconds: f64) {
        let key = OUTCOMES.iter().find(|o| **o == outcome).copied().unwrap_or("server_error");
        if let Some(c) = self.requests.get(&(endpoint, key)) {
            c.inc();
        }
        if let Some(h) = self.request_seconds.get(&endpoint) {
            h.observe(seconds);
        }
    }

    /// A transaction was started at `operator`, routed by `source`.
    pub fn transaction_started(&self, operator: &str, source: RouteSource) {
        let slot = source as usize;
        if let Some(c) = self.started.read().get(operator).and_then(|children| children[slot].as_ref()) {
            c.inc();
            return;
        }
        let c = self.transactions_started.with_label_values(&[operator, source.as_str()]);
        c.inc();
        self.started.write().entry(operator.to_owned()).or_default()[slot] = Some(c);
    }

    /// A transaction ended `failed` for `reason` (a [`crate::flow::FailReason`] label).
    pub fn failed(&self, reason: &str) {
        if crate::flow::FailReason::ALL_LABELS.contains(&reason) {
            self.failures.with_label_values(&[reason]).inc();
        }
    }

    /// A transaction moved from `from` to `to` (either may be absent: created / dropped).
    pub fn transition(&self, from: Option<&str>, to: Option<&str>) {
        let add = |state: &str, n: i64| match self.by_state.get(state) {
            Some(g) => g.add(n),
            None => self.transactions.with_label_values(&[state]).add(n),
        };
        if let Some(f) = from {
            add(f, -1);
        }
        if let Some(t) = to {
            add(t, 1);
        }
    }

    /// The registry the handles live in (instance-wide metrics registered beside these).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates the per-operator series of operators added by a configuration reload (the
    /// handles are shared with the previous configuration; nothing is registered twice).
    pub fn cover_operators(&self, operators: &[String]) {
        for op in operators {
            for o in SMS_FALLBACK_OUTCOMES {
                let _ = self.sms_fallbacks.with_label_values(&[op.as_str(), o]);
            }
            for c in OPERATOR_CALLS {
                let _ = self.operator_seconds.with_label_values(&[op.as_str(), c]);
            }
            for k in OPERATOR_ERROR_KINDS {
                let _ = self.operator_errors.with_label_values(&[op.as_str(), k]);
            }
        }
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_children_are_made_on_first_use_and_kept() {
        let m = Metrics::register(Registry::new(), &["movistar".to_owned()]).unwrap();
        let text = || String::from_utf8(m.render()).unwrap();
        assert!(!text().contains("mcgate_transactions_started_total{"), "no series before a start");
        m.transaction_started("movistar", RouteSource::Prefix);
        m.transaction_started("movistar", RouteSource::Prefix);
        m.transaction_started("movistar", RouteSource::Ported);
        m.transaction_started("orange", RouteSource::Prefix);
        assert_eq!(text().matches("mcgate_transactions_started_total{").count(), 3, "{}", text());
        let n = |op: &str, source: &str| m.transactions_started.with_label_values(&[op, source]).get();
        assert_eq!((n("movistar", "prefix"), n("movistar", "ported"), n("orange", "prefix")), (2, 1, 1));
    }

    #[test]
    fn transitions_move_the_state_gauges() {
        let m = Metrics::register(Registry::new(), &[]).unwrap();
        let g = |state: &str| m.transactions.with_label_values(&[state]).get();
        m.transition(None, Some("pending_push"));
        m.transition(None, Some("pending_push"));
        m.transition(Some("pending_push"), Some("approved"));
        assert_eq!((g("pending_push"), g("approved")), (1, 1));
        m.transition(Some("approved"), None);
        assert_eq!(g("approved"), 0);
        m.transition(None, Some("not_a_state"));
        assert_eq!(g("not_a_state"), 1, "a label outside the resolved set still counts");
    }
}
