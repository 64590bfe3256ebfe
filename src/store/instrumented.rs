//! [`InstrumentedStore`]: a decorator timing every [`Store`] call of any backend (memory or
//! Redis) into `mcgate_store_operation_duration_seconds{op}` and counting failures in
//! `mcgate_store_errors_total{op}`. `op` is the trait method name (a closed set); the label
//! handles are resolved once at start-up, so a call pays a clock read and two atomic adds.
//! [`StoreMetrics`] also holds `mcgate_store_clock_offset_seconds`, set by a Redis store that
//! keeps the gateway's clock on its own (`store.shared_clock`; 0 otherwise).

use super::{CasResult, LogPage, Store, StoreError, Versioned};
use crate::flow::Transaction;
use async_trait::async_trait;
use prometheus::{Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

/// The `op` label values, in `Op` order.
pub const OPS: [&str; 14] = [
    "insert",
    "get",
    "compare_and_set",
    "remember_once",
    "put_if_absent",
    "take",
    "get_value",
    "incr",
    "reset_counter",
    "counter",
    "ping",
    "purge_expired",
    "log_append",
    "log_read",
];

#[derive(Clone, Copy)]
enum Op {
    Insert,
    Get,
    CompareAndSet,
    RememberOnce,
    PutIfAbsent,
    Take,
    GetValue,
    Incr,
    ResetCounter,
    Counter,
    Ping,
    PurgeExpired,
    LogAppend,
    LogRead,
}

/// Pre-resolved store metric handles (one per `op`).
#[derive(Clone)]
pub struct StoreMetrics {
    seconds: Arc<[Histogram]>,
    errors: Arc<[IntCounter]>,
    /// The store's clock minus this host's, seconds.
    pub clock_offset: Gauge,
}

impl StoreMetrics {
    /// Registers both metric families in `registry` with every `op` label pre-created.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let seconds = HistogramVec::new(
            HistogramOpts::new("mcgate_store_operation_duration_seconds", "Store call latency by operation")
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
            &["op"],
        )?;
        registry.register(Box::new(seconds.clone()))?;
        let errors = IntCounterVec::new(
            Opts::new("mcgate_store_errors_total", "Store calls that failed (backend unavailable or timed out)"),
            &["op"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        let clock_offset = Gauge::new(
            "mcgate_store_clock_offset_seconds",
            "Shared store's clock minus this host's (Redis TIME; the gateway follows the store's clock)",
        )?;
        registry.register(Box::new(clock_offset.clone()))?;
        Ok(Self {
            clock_offset,
            seconds: OPS.iter().map(|op| seconds.with_label_values(&[op])).collect(),
            errors: OPS.iter().map(|op| errors.with_label_values(&[op])).collect(),
        })
    }
}

/// Any store, timed and counted.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl InstrumentedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, op: Op, started: Instant, r: &Result<T, StoreError>) {
        self.metrics.seconds[op as usize].observe(started.elapsed().as_secs_f64());
        if let Err(StoreError::Unavailable(_)) = r {
            self.metrics.errors[op as usize].inc();
        }
    }
}

macro_rules! timed {
    ($self:ident, $op:expr, $call:expr) => {{
        let started = Instant::now();
        let r = $call.await;
        $self.record($op, started, &r);
        r
    }};
}

#[async_trait]
impl Store for InstrumentedStore {
    async fn insert(&self, tx: Transaction, retain_until_ms: u64) -> Result<u64, StoreError> {
        timed!(self, Op::Insert, self.inner.insert(tx, retain_until_ms))
    }
    async fn get(&self, id: &str) -> Result<Option<Versioned<Transaction>>, StoreError> {
        timed!(self, Op::Get, self.inner.get(id))
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        tx: Transaction,
        retain_until_ms: u64,
    ) -> Result<CasResult, StoreError> {
        timed!(self, Op::CompareAndSet, self.inner.compare_and_set(expected_version, tx, retain_until_ms))
    }
    async fn remember_once(&self, key: &str, until_ms: u64) -> Result<bool, StoreError> {
        timed!(self, Op::RememberOnce, self.inner.remember_once(key, until_ms))
    }
    async fn put_if_absent(&self, key: &str, value: &str, until_ms: u64) -> Result<Option<String>, StoreError> {
        timed!(self, Op::PutIfAbsent, self.inner.put_if_absent(key, value, until_ms))
    }
    async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        timed!(self, Op::Take, self.inner.take(key))
    }
    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        timed!(self, Op::GetValue, self.inner.get_value(key))
    }
    async fn incr(&self, key: &str, until_ms: u64) -> Result<u64, StoreError> {
        timed!(self, Op::Incr, self.inner.incr(key, until_ms))
    }
    async fn insert_counted(
        &self,
        tx: Transaction,
        retain_until_ms: u64,
        counter: &str,
        counter_until_ms: u64,
    ) -> (Result<u64, StoreError>, Result<u64, StoreError>) {
        // One round trip serving two operations: each op label gets its sample and its errors.
        let started = Instant::now();
        let (inserted, counted) = self.inner.insert_counted(tx, retain_until_ms, counter, counter_until_ms).await;
        self.record(Op::Insert, started, &inserted);
        self.record(Op::Incr, started, &counted);
        (inserted, counted)
    }
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        timed!(self, Op::ResetCounter, self.inner.reset_counter(key))
    }
    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        timed!(self, Op::Counter, self.inner.counter(key))
    }
    async fn log_append(&self, log: &str, entry: &str, keep_ms: u64) -> Result<(), StoreError> {
        timed!(self, Op::LogAppend, self.inner.log_append(log, entry, keep_ms))
    }
    async fn log_read(&self, log: &str, cursor: Option<&str>, max: usize) -> Result<LogPage, StoreError> {
        timed!(self, Op::LogRead, self.inner.log_read(log, cursor, max))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        timed!(self, Op::Ping, self.inner.ping())
    }
    async fn purge_expired(&self) -> Result<Vec<&'static str>, StoreError> {
        timed!(self, Op::PurgeExpired, self.inner.purge_expired())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn every_call_is_timed_under_its_op_label() {
        let registry = Registry::new();
        let metrics = StoreMetrics::register(&registry).unwrap();
        let inner: Arc<dyn Store> = Arc::new(super::super::MemoryStore::new(Arc::new(ManualClock::new(0))));
        let store = InstrumentedStore::new(inner, metrics);
        store.remember_once("k", 10).await.unwrap();
        store.incr("c", 10).await.unwrap();
        store.incr("c", 10).await.unwrap();
        let tx = Transaction { id: "t".into(), ..Default::default() };
        let (inserted, counted) = store.insert_counted(tx, 10, "c", 10).await;
        assert_eq!((inserted.unwrap(), counted.unwrap()), (1, 3));
        let families = registry.gather();
        let h = families.iter().find(|f| f.name() == "mcgate_store_operation_duration_seconds").unwrap();
        let count = |op: &str| {
            h.get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == op))
                .map(|m| m.get_histogram().get_sample_count())
                .unwrap()
        };
        assert_eq!((count("remember_once"), count("incr"), count("insert"), count("take")), (1, 3, 1, 0));
    }
}
