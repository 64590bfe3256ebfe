//! `[audit]` and `[usage]` of `routing.toml`: where the hash-chained audit trail goes and how it
//! is flushed, and the unit costs and retention of the per-client usage records. Amounts are
//! held as integer micro-units of the currency ([`Micros`]) so sums never drift. The checks of
//! these sections ([`check`]) are called from `validate.rs`; nothing here knows HTTP or files.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[audit]`: the audit trail (absent or without `path`: off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// File the JSON lines are appended to (relative to the config file). Each gateway instance
    /// needs its own file; `{instance}` in the path is replaced by [`AuditConfig::instance`].
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// This instance's id, written in every record (default: `$HOSTNAME`, else `mcgate-<pid>`).
    #[serde(default)]
    pub instance: Option<String>,
    /// Records queued for the writer; a full queue makes the deciding request wait (never drops).
    #[serde(default = "default_audit_queue")]
    pub queue_capacity: usize,
    /// `always` (fsync after every batch written), `interval` (every `fsync_interval_ms`) or
    /// `never` (leave it to the OS). Every batch is written to the OS at once in all three.
    #[serde(default = "default_audit_fsync")]
    pub fsync: String,
    /// Period of `fsync = "interval"`, milliseconds.
    #[serde(default = "default_audit_fsync_interval")]
    pub fsync_interval_ms: u64,
    /// Wait before retrying a failed write, milliseconds (the record is kept, never skipped).
    #[serde(default = "default_audit_retry")]
    pub write_retry_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            instance: None,
            queue_capacity: default_audit_queue(),
            fsync: default_audit_fsync(),
            fsync_interval_ms: default_audit_fsync_interval(),
            write_retry_ms: default_audit_retry(),
        }
    }
}

fn default_audit_queue() -> usize {
    4096
}
fn default_audit_fsync() -> String {
    "interval".into()
}
fn default_audit_fsync_interval() -> u64 {
    1_000
}
fn default_audit_retry() -> u64 {
    500
}

/// `[usage]`: unit costs of pushes and SMS and how long the per-day counters are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// ISO 4217 currency of the costs, e.g. `"EUR"`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Cost of one push accepted by an operator (decimal, e.g. `0.002` or `"0.002"`).
    #[serde(default)]
    pub push_unit_cost: Micros,
    /// Cost of one SMS accepted by the SMSC or HTTP provider.
    #[serde(default)]
    pub sms_unit_cost: Micros,
    /// Per operator id: a push cost replacing `push_unit_cost`.
    #[serde(default)]
    pub operator_push_cost: BTreeMap<String, Micros>,
    /// How long a day's counters are kept in the store, days.
    #[serde(default = "default_usage_retention")]
    pub retention_days: u32,
    /// Longest `from..=to` range `GET /usage.csv` answers, days.
    #[serde(default = "default_usage_max_range")]
    pub max_range_days: u32,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            currency: default_currency(),
            push_unit_cost: Micros(0),
            sms_unit_cost: Micros(0),
            operator_push_cost: BTreeMap::new(),
            retention_days: default_usage_retention(),
            max_range_days: default_usage_max_range(),
        }
    }
}

fn default_currency() -> String {
    "EUR".into()
}
fn default_usage_retention() -> u32 {
    400
}
fn default_usage_max_range() -> u32 {
    92
}

/// An amount in millionths of a currency unit, written in TOML as a decimal number or string
/// with at most 6 decimals (`0.05`, `"0.05"`, `1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub u64);

impl Micros {
    /// Parses a non-negative decimal with at most 6 fractional digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a non-negative decimal with at most 6 decimals");
        let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > 6 {
            return Err(bad());
        }
        let whole: u64 = int.parse().map_err(|_| bad())?;
        let frac_v: u64 = if frac.is_empty() { 0 } else { frac.parse::<u64>().map_err(|_| bad())? };
        let scaled = frac_v * 10u64.pow(6 - frac.len() as u32);
        whole.checked_mul(1_000_000).and_then(|w| w.checked_add(scaled)).map(Micros).ok_or_else(bad)
    }

    /// `1.5` → `"1.500000"`: the decimal form with all 6 fractional digits.
    pub fn to_decimal(self) -> String {
        format!("{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }

    /// As a float, for Prometheus counters (currency units).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            // TOML floats print their shortest exact form (`0.05`), which parses exactly.
            Raw::Float(f) if f.is_finite() && f >= 0.0 => format!("{f}"),
            Raw::Float(f) => return Err(serde::de::Error::custom(format!("{f} is not a non-negative amount"))),
            Raw::Text(s) => s,
        };
        Micros::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Every problem of `[audit]` and `[usage]`, as `(key path, message)`.
pub fn check(audit: &AuditConfig, usage: &UsageConfig, operator_ids: &[&str]) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let mut err = |k: &str, m: &str| errs.push((k.to_string(), m.to_string()));
    if audit.queue_capacity == 0 || audit.queue_capacity > 1_000_000 {
        err("audit.queue_capacity", "must be between 1 and 1000000");
    }
    if !matches!(audit.fsync.as_str(), "always" | "interval" | "never") {
        err("audit.fsync", "must be \"always\", \"interval\" or \"never\"");
    }
    if audit.fsync_interval_ms == 0 || audit.fsync_interval_ms > 3_600_000 {
        err("audit.fsync_interval_ms", "must be between 1 and 3600000");
    }
    if audit.write_retry_ms == 0 || audit.write_retry_ms > 60_000 {
        err("audit.write_retry_ms", "must be between 1 and 60000");
    }
    if let Some(i) = &audit.instance {
        if i.is_empty() || i.len() > 64 || !i.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            err("audit.instance", "must be 1-64 characters of letters, digits, '-', '_' or '.'");
        }
    }
    if audit.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        err("audit.path", "must not be empty (leave it out to turn the audit trail off)");
    }
    if usage.currency.len() != 3 || !usage.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        err("usage.currency", "must be an ISO 4217 code such as \"EUR\"");
    }
    if usage.retention_days == 0 || usage.retention_days > 3_660 {
        err("usage.retention_days", "must be between 1 and 3660");
    }
    if usage.max_range_days == 0 || usage.max_range_days > usage.retention_days {
        err("usage.max_range_days", "must be between 1 and usage.retention_days");
    }
    for id in usage.operator_push_cost.keys() {
        if !operator_ids.contains(&id.as_str()) {
            errs.push((format!("usage.operator_push_cost.{id}"), "no operator has this id".into()));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_parse_exactly_and_refuse_what_is_not_an_amount() {
        assert_eq!(Micros::parse("0.05"), Ok(Micros(50_000)));
        assert_eq!(Micros::parse("12"), Ok(Micros(12_000_000)));
        assert_eq!(Micros::parse("0.000001"), Ok(Micros(1)));
        assert_eq!(Micros(1_500_000).to_decimal(), "1.500000");
        for bad in ["", "-1", "0.0000001", "1e3", "abc", ".5"] {
            assert!(Micros::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_audit_and_usage_key_is_named_and_the_shipped_file_is_valid() {
        use crate::config::{parse, ValidateOptions, EMBEDDED_ROUTING_TOML};
        let opts = ValidateOptions { check_environment: false };
        let ok = parse(EMBEDDED_ROUTING_TOML, std::path::Path::new("."), opts).unwrap();
        assert_eq!(ok.config.usage.sms_unit_cost, Micros(50_000));
        assert_eq!(ok.config.usage.operator_push_cost["orange"], Micros(3_000));
        let text = EMBEDDED_ROUTING_TOML
            .replace("currency = \"EUR\"", "currency = \"euro\"")
            .replace("retention_days = 400", "retention_days = 0")
            .replace("orange = 0.003", "orange = 0.003\nnobody = 1")
            .replace(
                "[usage]",
                "[audit]\npath = \"\"\ninstance = \"a b\"\nqueue_capacity = 0\nfsync = \"sometimes\"\n\
                 fsync_interval_ms = 0\nwrite_retry_ms = 0\n\n[usage]",
            );
        let err = parse(&text, std::path::Path::new("."), opts).unwrap_err().to_string();
        for key in [
            "audit.path",
            "audit.instance",
            "audit.queue_capacity",
            "audit.fsync:",
            "audit.fsync_interval_ms",
            "audit.write_retry_ms",
            "usage.currency",
            "usage.retention_days",
            "usage.max_range_days",
            "usage.operator_push_cost.nobody",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
        let bad_amount = EMBEDDED_ROUTING_TOML.replace("sms_unit_cost = 0.05", "sms_unit_cost = -0.05");
        let err = crate::config::parse_unvalidated(&bad_amount).unwrap_err().to_string();
        assert!(err.contains("usage.sms_unit_cost"), "{err}");
    }

    #[test]
    fn float_and_string_forms_agree() {
        #[derive(Deserialize)]
        struct T {
            a: Micros,
            b: Micros,
            c: Micros,
        }
        let t: T = toml::from_str("a = 0.07\nb = \"0.07\"\nc = 3").unwrap();
        assert_eq!((t.a, t.b, t.c), (Micros(70_000), Micros(70_000), Micros(3_000_000)));
    }
}
