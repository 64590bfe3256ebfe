//! The NOC's authentication counters (issue 8): authentications started and completed per
//! client, operator and channel (`mcgate_authentications_started_total`,
//! `mcgate_authentications_completed_total{…,outcome}`), the SMS fallbacks by the reason that
//! triggered them (`mcgate_fallbacks_total{operator,reason}`) and the rate-limit refusals by the
//! limit that refused (`mcgate_rate_limited_total{limit}`).
//!
//! Every label comes from a closed set (configured client ids and operator ids, fixed channel,
//! outcome, reason and limit names) and every combination is created at start-up so the series
//! exist with 0. Handles are resolved once; a hook looks them up by the transaction's client and
//! operator (two small map lookups, no allocation) and pays an atomic add. A client or operator
//! that is not in the sets (a config reload added it) is not counted rather than labelled freely.
//!
//! Hooks are one line around each store write that creates a transaction or moves it:
//! `let n = gw.metrics.auth.created(&tx);` / `gw.metrics.auth.moved(old.state, &new)` before
//! the write, `n.inc()` once the write applied.

use crate::flow::{Channel, Transaction, TxState};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use std::collections::HashMap;

/// Maps keyed by configured ids (foldhash, as the other hot-path handle maps).
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Channels (the `channel` label), indexed by `channel_index`.
pub const CHANNELS: [&str; 2] = ["push", "sms"];
/// Terminal outcomes of an authentication (the `outcome` label of the completed counter).
pub const AUTH_OUTCOMES: [&str; 4] = ["approved", "denied", "expired", "failed"];
/// What triggered an SMS fallback that was sent (the `reason` label of
/// `mcgate_fallbacks_total`): the operator's signal class, or `race` (push and SMS at once).
pub const FALLBACK_REASONS: [&str; 9] =
    ["no_mc", "unavailable", "not_enrolled", "push_timeout", "denied", "config", "forged", "rp", "race"];
/// Rate limits that may refuse (the `limit` label of `mcgate_rate_limited_total`): the SMS
/// anti-pumping limiters of [`crate::sms::limits`].
pub const RATE_LIMITS: [&str; 6] =
    ["msisdn_interval", "msisdn_hour", "msisdn_day", "prefix_hour", "client_hour", "client_day"];

fn channel_index(c: Channel) -> usize {
    match c {
        Channel::Push => 0,
        Channel::Sms => 1,
    }
}

fn outcome_index(s: TxState) -> Option<usize> {
    match s {
        TxState::Approved => Some(0),
        TxState::Denied => Some(1),
        TxState::Expired => Some(2),
        TxState::Failed(_) => Some(3),
        TxState::PendingPush | TxState::PendingSms | TxState::Consumed => None,
    }
}

/// Handles of one (client, operator) pair.
struct Pair {
    started: [IntCounter; 2],
    completed: [[IntCounter; 4]; 2],
}

/// Counters of the authentication life cycle.
#[derive(Default)]
pub struct AuthMetrics {
    families: Option<Families>,
    pairs: Map<Map<Pair>>,
    fallbacks: Map<[IntCounter; FALLBACK_REASONS.len()]>,
    rate_limited: Vec<IntCounter>,
}

/// The registered families, kept so a reload can create the series of added clients/operators.
#[derive(Clone)]
struct Families {
    started: IntCounterVec,
    completed: IntCounterVec,
    fallbacks: IntCounterVec,
    rate_limited: IntCounterVec,
}

impl std::fmt::Debug for AuthMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthMetrics")
    }
}

/// Counters to bump once a store write applied (see the module doc); empty when the write
/// neither starts nor ends an authentication.
#[derive(Debug, Default)]
#[must_use = "call inc() once the write applied"]
pub struct Pending<'a>(Option<&'a IntCounter>, Option<&'a IntCounter>);

impl Pending<'_> {
    /// The write applied: count it.
    pub fn inc(self) {
        for c in [self.0, self.1].into_iter().flatten() {
            c.inc();
        }
    }
}

impl AuthMetrics {
    /// Registers the counters in `registry`, every combination of `clients` × `operators` ×
    /// channel (× outcome) created at 0.
    pub fn register(registry: &Registry, clients: &[String], operators: &[String]) -> Result<Self, prometheus::Error> {
        let started = IntCounterVec::new(
            Opts::new(
                "mcgate_authentications_started_total",
                "Authentications started, by client, operator and channel",
            ),
            &["client", "operator", "channel"],
        )?;
        registry.register(Box::new(started.clone()))?;
        let completed = IntCounterVec::new(
            Opts::new(
                "mcgate_authentications_completed_total",
                "Authentications that reached a terminal state, by client, operator, channel and outcome",
            ),
            &["client", "operator", "channel", "outcome"],
        )?;
        registry.register(Box::new(completed.clone()))?;
        let fallbacks = IntCounterVec::new(
            Opts::new("mcgate_fallbacks_total", "SMS fallbacks sent, by operator and the reason that triggered them"),
            &["operator", "reason"],
        )?;
        registry.register(Box::new(fallbacks.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new("mcgate_rate_limited_total", "Refusals by a rate limit, by limit"),
            &["limit"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;

        Ok(Self::resolve(Families { started, completed, fallbacks, rate_limited }, clients, operators))
    }

    /// The same families with every series of `clients` × `operators` resolved (a configuration
    /// reload that adds clients or operators; the counts so far are kept).
    pub fn covering(&self, clients: &[String], operators: &[String]) -> Self {
        match &self.families {
            Some(f) => Self::resolve(f.clone(), clients, operators),
            None => Self::default(),
        }
    }

    fn resolve(families: Families, clients: &[String], operators: &[String]) -> Self {
        let Families { started, completed, fallbacks, rate_limited } = &families;
        let mut pairs: Map<Map<Pair>> = Map::default();
        for client in clients {
            let per_op = pairs.entry(client.clone()).or_default();
            for op in operators {
                let ch = |c: usize| started.with_label_values(&[client.as_str(), op.as_str(), CHANNELS[c]]);
                let done = |c: usize| {
                    AUTH_OUTCOMES.map(|o| completed.with_label_values(&[client.as_str(), op.as_str(), CHANNELS[c], o]))
                };
                per_op.insert(op.clone(), Pair { started: [ch(0), ch(1)], completed: [done(0), done(1)] });
            }
        }
        let fallbacks = operators
            .iter()
            .map(|op| (op.clone(), FALLBACK_REASONS.map(|r| fallbacks.with_label_values(&[op.as_str(), r]))))
            .collect();
        let rate_limited = RATE_LIMITS.iter().map(|l| rate_limited.with_label_values(&[l])).collect();
        Self { families: Some(families.clone()), pairs, fallbacks, rate_limited }
    }

    fn pair(&self, tx: &Transaction) -> Option<&Pair> {
        self.pairs.get(tx.client_id.as_str())?.get(tx.operator.as_str())
    }

    /// `tx` is about to be stored for the first time with its operator known: started (and
    /// completed, when it is created in a terminal state).
    pub fn created(&self, tx: &Transaction) -> Pending<'_> {
        let Some(p) = self.pair(tx) else { return Pending::default() };
        let c = channel_index(tx.channel);
        Pending(Some(&p.started[c]), outcome_index(tx.state).map(|o| &p.completed[c][o]))
    }

    /// A stored transaction in state `from` is about to become `to`: completed when a pending
    /// transaction reaches a terminal state (an approved one cancelled later is not counted
    /// twice).
    pub fn moved(&self, from: TxState, to: &Transaction) -> Pending<'_> {
        if !from.is_pending() {
            return Pending::default();
        }
        let Some(p) = self.pair(to) else { return Pending::default() };
        Pending(None, outcome_index(to.state).map(|o| &p.completed[channel_index(to.channel)][o]))
    }

    /// An SMS fallback for `operator` went out because of `reason` (a [`FALLBACK_REASONS`] value).
    pub fn fallback(&self, operator: &str, reason: &str) {
        if let (Some(h), Some(i)) = (self.fallbacks.get(operator), FALLBACK_REASONS.iter().position(|r| *r == reason)) {
            h[i].inc();
        }
    }

    /// The handle counting refusals by `limit` (a [`RATE_LIMITS`] value), for pre-resolution.
    pub fn rate_limited(&self, limit: &str) -> Option<IntCounter> {
        RATE_LIMITS.iter().position(|l| *l == limit).and_then(|i| self.rate_limited.get(i)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FailReason;

    fn metrics() -> (Registry, AuthMetrics) {
        let r = Registry::new();
        let m = AuthMetrics::register(&r, &["rp".into()], &["movistar".into()]).unwrap();
        (r, m)
    }

    fn value(r: &Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
        r.gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| labels.iter().all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v)))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    #[test]
    fn every_combination_exists_at_zero() {
        let (r, _m) = metrics();
        let families = r.gather();
        let count = |n: &str| families.iter().find(|f| f.name() == n).map_or(0, |f| f.get_metric().len());
        assert_eq!(count("mcgate_authentications_started_total"), 2);
        assert_eq!(count("mcgate_authentications_completed_total"), 8);
        assert_eq!(count("mcgate_fallbacks_total"), FALLBACK_REASONS.len());
        assert_eq!(count("mcgate_rate_limited_total"), RATE_LIMITS.len());
    }

    #[test]
    fn created_moved_and_cancel_after_approval_count_once() {
        let (r, m) = metrics();
        let mut tx = Transaction::sample("a", 0);
        tx.client_id = "rp".into();
        m.created(&tx).inc();
        let mut done = tx.clone();
        done.state = TxState::Approved;
        m.moved(tx.state, &done).inc();
        let mut cancelled = done.clone();
        cancelled.state = TxState::Failed(FailReason::Cancelled);
        m.moved(done.state, &cancelled).inc();
        assert_eq!(value(&r, "mcgate_authentications_started_total", &[("channel", "push")]), 1);
        assert_eq!(value(&r, "mcgate_authentications_completed_total", &[("outcome", "approved")]), 1);
        assert_eq!(value(&r, "mcgate_authentications_completed_total", &[("outcome", "failed")]), 0);
        // A transaction created failed is started and completed at once; unknown clients are not counted.
        let mut failed = Transaction::sample("b", 0);
        failed.client_id = "rp".into();
        failed.channel = Channel::Sms;
        failed.state = TxState::Failed(FailReason::SimSwap);
        m.created(&failed).inc();
        failed.client_id = "someone-else".into();
        m.created(&failed).inc();
        assert_eq!(
            value(&r, "mcgate_authentications_completed_total", &[("channel", "sms"), ("outcome", "failed")]),
            1
        );
        m.fallback("movistar", "not_enrolled");
        m.fallback("movistar", "made-up");
        assert_eq!(value(&r, "mcgate_fallbacks_total", &[]), 1);
    }
}
