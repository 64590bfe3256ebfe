//! `[resilience]` of `routing.toml`: the per-operator call protection (shared/security.md L-02,
//! L-03, L-04) — in-flight cap, circuit breaker, retry budget, push-capability cache — as one
//! default section, overridden key by key by an operator's optional `resilience` table
//! (`[operators.resilience]`). Defaults are the numbers of shared/security.md; [`check`] lists
//! every bad value by key path.

use serde::{Deserialize, Serialize};

/// Call protection for one operator (the `[resilience]` defaults, or merged with an
/// operator's override by [`ResilienceConfig::for_operator`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Operator calls in flight at once (L-04: 256); one more is refused at once, never queued.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Consecutive failed calls (connect, timeout, 5xx, bad answer) that open the breaker (L-02: 5).
    #[serde(default = "default_consecutive_failures")]
    pub breaker_consecutive_failures: u32,
    /// Failure share over `breaker_window_ms` that opens the breaker too (0 < rate ≤ 1; 1 = only
    /// when every call failed).
    #[serde(default = "default_failure_rate")]
    pub breaker_failure_rate: f64,
    /// Window of the failure-rate rule, milliseconds.
    #[serde(default = "default_window_ms")]
    pub breaker_window_ms: u64,
    /// Fewest calls in the window before the failure-rate rule applies.
    #[serde(default = "default_min_calls")]
    pub breaker_min_calls: u32,
    /// First open period, milliseconds (L-02: 10 s); doubled after each failed probe.
    #[serde(default = "default_open_ms")]
    pub breaker_open_ms: u64,
    /// Longest open period, milliseconds (L-02: 5 min).
    #[serde(default = "default_max_open_ms")]
    pub breaker_max_open_ms: u64,
    /// Retries allowed as a share of calls (L-03: 0.2, so upstream ÷ downstream ≤ 1.2).
    #[serde(default = "default_retry_ratio")]
    pub retry_budget_ratio: f32,
    /// Retries per second allowed besides the ratio (L-03: 10).
    #[serde(default = "default_retry_min_per_s")]
    pub retry_budget_min_per_s: u32,
    /// How long a call counts towards the budget, milliseconds (1 000–60 000).
    #[serde(default = "default_retry_ttl_ms")]
    pub retry_budget_ttl_ms: u64,
    /// Shortest wait before a retry, milliseconds (L-03: 50).
    #[serde(default = "default_jitter_min_ms")]
    pub retry_jitter_min_ms: u64,
    /// Longest wait before a retry, milliseconds (L-03: 250).
    #[serde(default = "default_jitter_max_ms")]
    pub retry_jitter_max_ms: u64,
    /// How long "not enrolled at the operator" (`unknown_user_id`) is remembered per number,
    /// seconds; 0 turns the push-capability cache off.
    #[serde(default = "default_not_enrolled_ttl_s")]
    pub not_enrolled_ttl_s: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            breaker_consecutive_failures: default_consecutive_failures(),
            breaker_failure_rate: default_failure_rate(),
            breaker_window_ms: default_window_ms(),
            breaker_min_calls: default_min_calls(),
            breaker_open_ms: default_open_ms(),
            breaker_max_open_ms: default_max_open_ms(),
            retry_budget_ratio: default_retry_ratio(),
            retry_budget_min_per_s: default_retry_min_per_s(),
            retry_budget_ttl_ms: default_retry_ttl_ms(),
            retry_jitter_min_ms: default_jitter_min_ms(),
            retry_jitter_max_ms: default_jitter_max_ms(),
            not_enrolled_ttl_s: default_not_enrolled_ttl_s(),
        }
    }
}

impl ResilienceConfig {
    /// These defaults with an operator's `resilience` table laid over them, key by key; an
    /// unknown key or a wrong type is an error naming it.
    pub fn for_operator(&self, overrides: Option<&toml::Table>) -> Result<Self, String> {
        let Some(over) = overrides else {
            return Ok(self.clone());
        };
        let toml::Value::Table(mut table) = toml::Value::try_from(self).map_err(|e| e.to_string())? else {
            return Err("resilience defaults are not a table".into());
        };
        for (k, v) in over {
            table.insert(k.clone(), v.clone());
        }
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.message().trim().to_owned())
    }
}

/// Every problem of `c`, as `(key under prefix, message)`.
pub fn check(prefix: &str, c: &ResilienceConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = |key: &str, msg: &str| out.push((format!("{prefix}.{key}"), msg.to_owned()));
    if c.max_in_flight == 0 || c.max_in_flight > 100_000 {
        bad("max_in_flight", "must be between 1 and 100000");
    }
    if c.breaker_consecutive_failures == 0 || c.breaker_consecutive_failures > 1_000 {
        bad("breaker_consecutive_failures", "must be between 1 and 1000");
    }
    if !(c.breaker_failure_rate > 0.0 && c.breaker_failure_rate <= 1.0) {
        bad("breaker_failure_rate", "must be > 0 and <= 1");
    }
    if c.breaker_window_ms == 0 || c.breaker_window_ms > 3_600_000 {
        bad("breaker_window_ms", "must be between 1 and 3600000");
    }
    if c.breaker_min_calls == 0 {
        bad("breaker_min_calls", "must be >= 1");
    }
    if c.breaker_open_ms == 0 || c.breaker_open_ms > c.breaker_max_open_ms {
        bad("breaker_open_ms", "must be > 0 and <= breaker_max_open_ms");
    }
    if c.breaker_max_open_ms > 3_600_000 {
        bad("breaker_max_open_ms", "must be <= 3600000 (1 h)");
    }
    if !(0.0..=1.0).contains(&c.retry_budget_ratio) {
        bad("retry_budget_ratio", "must be between 0 and 1 (L-03: 0.2)");
    }
    if c.retry_budget_min_per_s > 10_000 {
        bad("retry_budget_min_per_s", "must be <= 10000");
    }
    if !(1_000..=60_000).contains(&c.retry_budget_ttl_ms) {
        bad("retry_budget_ttl_ms", "must be between 1000 and 60000");
    }
    if c.retry_jitter_min_ms > c.retry_jitter_max_ms || c.retry_jitter_max_ms > 10_000 {
        bad("retry_jitter_min_ms", "must be <= retry_jitter_max_ms, itself <= 10000");
    }
    if c.not_enrolled_ttl_s > 30 * 86_400 {
        bad("not_enrolled_ttl_s", "must be <= 2592000 (30 days)");
    }
    out
}

fn default_max_in_flight() -> u32 {
    256
}
fn default_consecutive_failures() -> u32 {
    5
}
fn default_failure_rate() -> f64 {
    0.5
}
fn default_window_ms() -> u64 {
    10_000
}
fn default_min_calls() -> u32 {
    20
}
fn default_open_ms() -> u64 {
    10_000
}
fn default_max_open_ms() -> u64 {
    300_000
}
fn default_retry_ratio() -> f32 {
    0.2
}
fn default_retry_min_per_s() -> u32 {
    10
}
fn default_retry_ttl_ms() -> u64 {
    10_000
}
fn default_jitter_min_ms() -> u64 {
    50
}
fn default_jitter_max_ms() -> u64 {
    250
}
fn default_not_enrolled_ttl_s() -> u64 {
    3_600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_numbers_and_valid() {
        let d = ResilienceConfig::default();
        assert_eq!((d.max_in_flight, d.breaker_consecutive_failures), (256, 5));
        assert_eq!((d.breaker_open_ms, d.breaker_max_open_ms), (10_000, 300_000));
        assert_eq!((d.retry_budget_ratio, d.retry_budget_min_per_s), (0.2, 10));
        assert_eq!((d.retry_jitter_min_ms, d.retry_jitter_max_ms), (50, 250));
        assert!(check("resilience", &d).is_empty());
        let empty: ResilienceConfig = toml::from_str("").unwrap();
        assert_eq!(empty, d);
    }

    #[test]
    fn an_operator_override_replaces_only_its_keys_and_unknown_keys_are_errors() {
        let d = ResilienceConfig::default();
        let over: toml::Table = toml::from_str("breaker_open_ms = 500\nmax_in_flight = 8").unwrap();
        let m = d.for_operator(Some(&over)).unwrap();
        assert_eq!((m.breaker_open_ms, m.max_in_flight, m.breaker_consecutive_failures), (500, 8, 5));
        assert_eq!(d.for_operator(None).unwrap(), d);
        let typo: toml::Table = toml::from_str("breaker_opn_ms = 1").unwrap();
        assert!(d.for_operator(Some(&typo)).unwrap_err().contains("breaker_opn_ms"));
        let wrong: toml::Table = toml::from_str("max_in_flight = \"x\"").unwrap();
        assert!(d.for_operator(Some(&wrong)).is_err());
    }

    #[test]
    fn bad_values_are_listed_by_key() {
        let c = ResilienceConfig {
            max_in_flight: 0,
            breaker_failure_rate: 0.0,
            breaker_open_ms: 400_000,
            retry_budget_ratio: 2.0,
            retry_jitter_min_ms: 300,
            ..Default::default()
        };
        let keys: Vec<String> = check("operators[1].resilience", &c).into_iter().map(|(k, _)| k).collect();
        for k in
            ["max_in_flight", "breaker_failure_rate", "breaker_open_ms", "retry_budget_ratio", "retry_jitter_min_ms"]
        {
            assert!(keys.contains(&format!("operators[1].resilience.{k}")), "{k}: {keys:?}");
        }
    }
}
