//! Overload protection of one instance's public listeners (shared/security.md L-04, L-05): the
//! in-flight request cap (one atomic add per request; over the cap → 503
//! `temporarily_unavailable` + `Retry-After: 1` at once, no queue), the open-connection cap
//! (over it a new connection is accepted and closed at once) and the drain flag (HTTP/1.1
//! answers carry `Connection: close` once SIGTERM arrived). Shared by every worker thread;
//! the admin listener is never counted.

use crate::config::EdgeConfig;
use crate::telemetry::metrics::EdgeMetrics;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The instance's edge counters and limits.
#[derive(Debug)]
pub struct Edge {
    max_in_flight: usize,
    max_connections: usize,
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    draining: AtomicBool,
    metrics: EdgeMetrics,
}

/// One admitted request; releases its place when dropped (also when the client goes away).
#[must_use = "the request's place is released when this is dropped"]
pub struct InFlight<'a>(&'a Edge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open connection; released when its task ends.
#[must_use = "the connection's place is released when this is dropped"]
pub struct OpenConnection(Arc<Edge>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Edge {
    /// Limits from `[edge]`.
    pub fn new(cfg: &EdgeConfig, metrics: EdgeMetrics) -> Self {
        Self {
            max_in_flight: cfg.max_in_flight,
            max_connections: cfg.max_connections,
            in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            metrics,
        }
    }

    /// Takes a place for a request, or `None` (counted as shed `in_flight`) when the cap is reached.
    pub fn admit(&self) -> Option<InFlight<'_>> {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.metrics.shed_in_flight.inc();
            return None;
        }
        Some(InFlight(self))
    }

    /// Takes a place for a connection, or `None` (counted as shed `connections`).
    pub fn connection(self: &Arc<Self>) -> Option<OpenConnection> {
        if self.connections.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            self.metrics.shed_connections.inc();
            return None;
        }
        Some(OpenConnection(self.clone()))
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// SIGTERM arrived: answers ask HTTP/1.1 clients to close.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the instance is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Copies the counters into their gauges (called when `/metrics` is scraped, so the
    /// request path pays one atomic per request, not two).
    pub fn publish(&self) {
        self.metrics.inflight.set(self.in_flight() as i64);
        self.metrics.open_connections.set(self.open_connections() as i64);
    }

    /// The metrics (reload counters live here too).
    pub fn metrics(&self) -> &EdgeMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(n: usize) -> Arc<Edge> {
        let reg = prometheus::Registry::new();
        let cfg = EdgeConfig { max_in_flight: n, max_connections: n, ..EdgeConfig::default() };
        Arc::new(Edge::new(&cfg, EdgeMetrics::register(&reg).unwrap()))
    }

    #[test]
    fn the_cap_sheds_the_excess_and_dropping_releases() {
        let e = edge(2);
        let a = e.admit().unwrap();
        let b = e.admit().unwrap();
        assert!(e.admit().is_none());
        assert_eq!(e.metrics().shed_in_flight.get(), 1);
        drop(a);
        let c = e.admit();
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(e.in_flight(), 0);
        let c1 = e.connection().unwrap();
        let _c2 = e.connection().unwrap();
        assert!(e.connection().is_none());
        drop(c1);
        assert_eq!(e.open_connections(), 1);
        e.publish();
        assert_eq!(e.metrics().open_connections.get(), 1);
        assert_eq!(e.metrics().shed_connections.get(), 1);
    }
}
