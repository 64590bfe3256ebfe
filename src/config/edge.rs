//! `[edge]`: the public listener's overload protection and lifecycle numbers (shared/security.md
//! L-04, L-05): the in-flight request cap, the open-connection cap, HTTP header limits, HTTP/2
//! stream limit and the pause between `/ready` turning false and the listeners closing on
//! SIGTERM. Every key has a default, so files without the section stay valid.

use super::ConfigError;
use serde::Deserialize;

/// `[edge]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Requests served at once by this instance (public listeners, every worker thread); one more
    /// is answered 503 `temporarily_unavailable` + `Retry-After: 1` at once, never queued.
    /// The admin listener is not counted. Default 4096.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Open public connections of this instance; a connection over the cap is accepted and
    /// closed at once (counted as shed `connections`). Default 16384.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most request header fields (HTTP/1.1); more → 431. Default 64.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Largest request head (HTTP/1.1 read buffer, HTTP/2 header list), bytes; larger → 431
    /// (HTTP/1.1) or a stream reset (HTTP/2). At least 8192. Default 16384.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection. Default 100.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// On SIGTERM: time between `/ready` turning false and the listeners closing, milliseconds
    /// (lets a load balancer notice; requests keep being served meanwhile, HTTP/1.1 answers
    /// carry `Connection: close`). Default 0.
    #[serde(default)]
    pub unready_delay_ms: u64,
}

fn default_max_in_flight() -> usize {
    4096
}
fn default_max_connections() -> usize {
    16384
}
fn default_max_headers() -> usize {
    64
}
fn default_max_header_bytes() -> usize {
    16384
}
fn default_h2_streams() -> u32 {
    100
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            max_connections: default_max_connections(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            h2_max_concurrent_streams: default_h2_streams(),
            unready_delay_ms: 0,
        }
    }
}

/// Every problem of `[edge]`, by key path.
pub fn validate(e: &EdgeConfig) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut err = |k: &str, m: &str| out.push(ConfigError { path: format!("edge.{k}"), message: m.into() });
    if e.max_in_flight == 0 {
        err("max_in_flight", "must be > 0");
    }
    if e.max_connections == 0 {
        err("max_connections", "must be > 0");
    }
    if !(1..=1024).contains(&e.max_headers) {
        err("max_headers", "must be between 1 and 1024");
    }
    if !(8192..=1 << 20).contains(&e.max_header_bytes) {
        err("max_header_bytes", "must be between 8192 and 1048576");
    }
    if e.h2_max_concurrent_streams == 0 {
        err("h2_max_concurrent_streams", "must be > 0");
    }
    if e.unready_delay_ms > 60_000 {
        err("unready_delay_ms", "must be at most 60000");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_bad_key_is_listed() {
        assert!(validate(&EdgeConfig::default()).is_empty());
        let bad = EdgeConfig {
            max_in_flight: 0,
            max_connections: 0,
            max_headers: 0,
            max_header_bytes: 100,
            h2_max_concurrent_streams: 0,
            unready_delay_ms: 70_000,
        };
        let paths: Vec<String> = validate(&bad).into_iter().map(|e| e.path).collect();
        assert_eq!(paths.len(), 6, "{paths:?}");
        assert!(paths.contains(&"edge.max_header_bytes".to_string()));
    }
}
