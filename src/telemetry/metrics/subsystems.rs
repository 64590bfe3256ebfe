//! The metric families of the subsystems around the request path: operator call protection
//! ([`ResilienceMetrics`]), the edge (shedding, limits: [`EdgeMetrics`]), the audit trail
//! ([`AuditMetrics`]) and usage/SMS spend ([`UsageMetrics`]). Same rules as the parent module:
//! one registry per gateway, closed label sets, every series created at start-up.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::HashMap;

/// `to` labels of `mcgate_operator_breaker_transitions_total`.
pub const BREAKER_STATES: &[&str] = &["closed", "half_open", "open"];
/// `call` labels of `mcgate_operator_retries_total`.
pub const RETRY_CALLS: &[&str] = &["connect", "token"];
/// `outcome` labels of `mcgate_push_capability_cache_total`.
pub const PUSH_CACHE_OUTCOMES: &[&str] = &["hit", "store", "invalidate"];

/// Operator call protection (issue 7): breaker state and transitions, retries, shed calls and
/// the push-capability cache; every series of every configured operator exported from the start.
#[derive(Clone)]
pub struct ResilienceMetrics {
    /// `mcgate_operator_breaker_state{operator}`: 0 closed, 1 half_open, 2 open.
    pub breaker_state: IntGaugeVec,
    /// `mcgate_operator_breaker_transitions_total{operator,to}`.
    pub breaker_transitions: IntCounterVec,
    /// `mcgate_operator_retries_total{operator,call}`.
    pub retries: IntCounterVec,
    /// `mcgate_operator_shed_total{operator}`: refused by the per-operator in-flight cap.
    pub shed: IntCounterVec,
    /// `mcgate_push_capability_cache_total{outcome}`.
    pub push_cache: IntCounterVec,
}

impl ResilienceMetrics {
    /// Registers the families in `registry` with every series of `operators` at 0.
    pub fn register(registry: &Registry, operators: &[String]) -> Result<Self, prometheus::Error> {
        let breaker_state = IntGaugeVec::new(
            Opts::new("mcgate_operator_breaker_state", "Operator circuit breaker: 0 closed, 1 half_open, 2 open"),
            &["operator"],
        )?;
        let breaker_transitions = IntCounterVec::new(
            Opts::new("mcgate_operator_breaker_transitions_total", "Operator circuit breaker state changes"),
            &["operator", "to"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new("mcgate_operator_retries_total", "Operator calls retried (within the retry budget)"),
            &["operator", "call"],
        )?;
        let shed = IntCounterVec::new(
            Opts::new("mcgate_operator_shed_total", "Operator calls refused by the per-operator in-flight cap"),
            &["operator"],
        )?;
        let push_cache = IntCounterVec::new(
            Opts::new(
                "mcgate_push_capability_cache_total",
                "Push-capability cache (not enrolled) hits, stores, invalidations",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(breaker_state.clone()))?;
        registry.register(Box::new(breaker_transitions.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(push_cache.clone()))?;
        let m = Self { breaker_state, breaker_transitions, retries, shed, push_cache };
        m.cover_operators(operators);
        Ok(m)
    }

    /// Creates every series of `operators` (at 0; a reload that adds operators calls it again).
    pub fn cover_operators(&self, operators: &[String]) {
        for op in operators {
            self.breaker_state.with_label_values(&[op.as_str()]).set(0);
            for to in BREAKER_STATES {
                let _ = self.breaker_transitions.with_label_values(&[op.as_str(), to]);
            }
            for call in RETRY_CALLS {
                let _ = self.retries.with_label_values(&[op.as_str(), call]);
            }
            let _ = self.shed.with_label_values(&[op.as_str()]);
        }
        for o in PUSH_CACHE_OUTCOMES {
            let _ = self.push_cache.with_label_values(&[o]);
        }
    }
}

/// Instance-level metrics of the edge (overload shedding, open work) and of configuration
/// reloads; registered once per instance beside [`Metrics`](super::Metrics), they survive reloads.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// Requests shed because the in-flight cap was reached.
    pub shed_in_flight: IntCounter,
    /// Connections closed at accept because the connection cap was reached.
    pub shed_connections: IntCounter,
    /// Requests being served (set from the edge's counter when scraped).
    pub inflight: IntGauge,
    /// Open public connections (set from the edge's counter when scraped).
    pub open_connections: IntGauge,
    /// Successful reloads.
    pub reloads_ok: IntCounter,
    /// Rejected reloads (invalid file, or the gateway could not be built).
    pub reloads_rejected: IntCounter,
    /// Configuration generation: 1 at start, +1 per successful reload.
    pub generation: IntGauge,
    /// Unix time of the last successful reload (0 before any).
    pub last_reload_success: prometheus::Gauge,
}

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeMetrics")
    }
}

impl EdgeMetrics {
    /// Registers the edge and reload metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let shed = IntCounterVec::new(
            Opts::new("mcgate_requests_shed_total", "Work refused at the edge, by reason (in_flight, connections)"),
            &["reason"],
        )?;
        registry.register(Box::new(shed.clone()))?;
        let inflight = IntGauge::new("mcgate_inflight_requests", "Public requests being served")?;
        registry.register(Box::new(inflight.clone()))?;
        let open_connections = IntGauge::new("mcgate_open_connections", "Open public connections")?;
        registry.register(Box::new(open_connections.clone()))?;
        let reloads = IntCounterVec::new(
            Opts::new("mcgate_config_reloads_total", "Configuration reloads, by outcome"),
            &["outcome"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        let generation =
            IntGauge::new("mcgate_config_generation", "Configuration generation (1 at start, +1 per reload)")?;
        generation.set(1);
        registry.register(Box::new(generation.clone()))?;
        let last_reload_success = prometheus::Gauge::new(
            "mcgate_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload",
        )?;
        registry.register(Box::new(last_reload_success.clone()))?;
        Ok(Self {
            shed_in_flight: shed.with_label_values(&["in_flight"]),
            shed_connections: shed.with_label_values(&["connections"]),
            inflight,
            open_connections,
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_rejected: reloads.with_label_values(&["rejected"]),
            generation,
            last_reload_success,
        })
    }
}

/// Audit trail counters (issue 8; [`crate::telemetry::audit`]).
#[derive(Clone)]
pub struct AuditMetrics {
    /// `mcgate_audit_records_total`: records written.
    pub records: IntCounter,
    /// `mcgate_audit_dropped_total`: records lost because the writer thread was gone (alert on any).
    pub dropped: IntCounter,
    /// `mcgate_audit_queue_full_total`: records that waited for room in the writer's queue.
    pub queue_full: IntCounter,
    /// `mcgate_audit_write_errors_total`: failed writes or fsyncs (retried).
    pub write_errors: IntCounter,
}

impl AuditMetrics {
    /// Registers the audit counters.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            records: counter("mcgate_audit_records_total", "Audit records written")?,
            dropped: counter("mcgate_audit_dropped_total", "Audit records lost: the writer was gone")?,
            queue_full: counter("mcgate_audit_queue_full_total", "Audit records that waited for queue room")?,
            write_errors: counter("mcgate_audit_write_errors_total", "Failed audit writes or fsyncs (retried)")?,
        })
    }
}

/// Usage and SMS spend per client (issue 8; [`crate::telemetry::usage`]); `client` is a
/// configured client id (a closed set: the handles are made at start).
#[derive(Clone)]
pub struct UsageMetrics {
    /// `mcgate_usage_pushes_total{client}`: pushes accepted by an operator.
    pub pushes: HashMap<String, IntCounter>,
    /// `mcgate_sms_sent_total{client}`: SMS accepted by the SMSC / provider.
    pub sms_sent: HashMap<String, IntCounter>,
    /// `mcgate_sms_spend_total{client}`: their cost, currency units.
    pub sms_spend: HashMap<String, prometheus::Counter>,
    /// `mcgate_usage_store_errors_total`: usage counts the store could not take.
    pub store_errors: IntCounter,
}

impl UsageMetrics {
    /// Registers the usage metrics for `clients`: `(client_id, SMS daily budget, 0 when none)`.
    pub fn register(registry: &Registry, clients: &[(String, u32)]) -> Result<Self, prometheus::Error> {
        let pushes = IntCounterVec::new(
            Opts::new("mcgate_usage_pushes_total", "Pushes accepted by an operator, by client"),
            &["client"],
        )?;
        registry.register(Box::new(pushes.clone()))?;
        let sms_sent = IntCounterVec::new(
            Opts::new("mcgate_sms_sent_total", "SMS accepted by the SMSC or HTTP provider, by client"),
            &["client"],
        )?;
        registry.register(Box::new(sms_sent.clone()))?;
        let sms_spend = prometheus::CounterVec::new(
            Opts::new("mcgate_sms_spend_total", "Cost of the SMS sent, in [usage] currency units, by client"),
            &["client"],
        )?;
        registry.register(Box::new(sms_spend.clone()))?;
        let budget = IntGaugeVec::new(
            Opts::new("mcgate_sms_daily_budget", "SMS a client may cause per day (sms_daily_budget; 0: no SMS)"),
            &["client"],
        )?;
        registry.register(Box::new(budget.clone()))?;
        let store_errors =
            IntCounter::new("mcgate_usage_store_errors_total", "Usage counts the store could not record")?;
        registry.register(Box::new(store_errors.clone()))?;
        let mut m = Self { pushes: HashMap::new(), sms_sent: HashMap::new(), sms_spend: HashMap::new(), store_errors };
        for (c, b) in clients {
            budget.with_label_values(&[c.as_str()]).set(i64::from(*b));
            m.pushes.insert(c.clone(), pushes.with_label_values(&[c.as_str()]));
            m.sms_sent.insert(c.clone(), sms_sent.with_label_values(&[c.as_str()]));
            m.sms_spend.insert(c.clone(), sms_spend.with_label_values(&[c.as_str()]));
        }
        Ok(m)
    }
}
