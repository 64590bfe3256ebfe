//! Usage records (issue 8): per client, operator and UTC day, how many pushes and SMS went out
//! and what they cost, counted in the shared [`Store`] so every instance adds to the same figures
//! (`usage:{YYYY-MM-DD}:{client}:{push|sms}:{operator}`, kept `[usage] retention_days`), and
//! exported as CSV ([`Usage::rows`], [`csv`]) by the admin listener's `GET /usage.csv`.
//!
//! What counts: a **push** when the operator accepted it (CIBA / Mobile Connect SI: it answered
//! `bc-authorize`/`si_authorize` with its own id; redirect flow: the operator sent the browser
//! back with a code or `access_denied`, i.e. it ran its authentication page); an **SMS** when the
//! SMSC or HTTP provider accepted it (`submit_sm_resp` OK / 2xx with a message id). A push whose
//! outcome is unknown ("maybe delivered") or refused is not counted. The cost of a push is the
//! operator's `operator_push_cost`, else `push_unit_cost`; of an SMS, `sms_unit_cost`. Amounts
//! are integer micro-units ([`Micros`]); costs are computed when exported, so a price change
//! re-prices the past (export before changing prices).

use crate::clock::SharedClock;
use crate::config::{Micros, UsageConfig};
use crate::store::{Store, StoreError};
use crate::telemetry::metrics::UsageMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use time::{Date, Month, OffsetDateTime};

/// The two channels counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageChannel {
    /// Operator push.
    Push,
    /// SMS fallback.
    Sms,
}

impl UsageChannel {
    /// Key form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Sms => "sms",
        }
    }
}

/// One CSV row: one client, one operator, one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// UTC day.
    pub date: Date,
    /// Client id.
    pub client: String,
    /// Operator id.
    pub operator: String,
    /// Pushes accepted.
    pub pushes: u64,
    /// SMS accepted.
    pub sms: u64,
    /// Cost of one push at this operator.
    pub push_unit: Micros,
    /// Cost of one SMS.
    pub sms_unit: Micros,
}

impl UsageRow {
    /// Total cost of the row.
    pub fn cost(&self) -> Micros {
        Micros(self.pushes.saturating_mul(self.push_unit.0).saturating_add(self.sms.saturating_mul(self.sms_unit.0)))
    }
}

/// A `GET /usage.csv` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// First day (inclusive).
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
    /// Only this client.
    pub client: Option<String>,
}

/// Why a query is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// The usage counters of this gateway.
pub struct Usage {
    store: Arc<dyn Store>,
    clock: SharedClock,
    currency: String,
    push_unit: Micros,
    sms_unit: Micros,
    operator_push: HashMap<String, Micros>,
    retention_ms: u64,
    max_range_days: u32,
    clients: Vec<String>,
    operators: Vec<String>,
    metrics: UsageMetrics,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage").field("currency", &self.currency).finish_non_exhaustive()
    }
}

/// The UTC day of `ms` since the epoch.
pub fn day_of(ms: u64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map(|t| t.date()).unwrap_or(Date::MIN)
}

/// Parses `YYYY-MM-DD` strictly.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let month = Month::try_from(u8::try_from(m).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
}

/// `usage:<YYYY-MM-DD>:<client>:<channel>:<operator>`, written directly (a push counts on every
/// `bc-authorize`; `format!` through `Date`'s `Display` cost about 2 000 instructions).
fn key(day: Date, client: &str, channel: UsageChannel, operator: &str) -> String {
    let channel = channel.as_str();
    let mut k = String::with_capacity(6 + 11 + client.len() + 1 + channel.len() + 1 + operator.len());
    k.push_str("usage:");
    push_day(&mut k, day);
    k.push(':');
    k.push_str(client);
    k.push(':');
    k.push_str(channel);
    k.push(':');
    k.push_str(operator);
    k
}

/// `day` as `Date`'s `Display` writes it: `YYYY-MM-DD` for years 0-9999 (every real day).
fn push_day(out: &mut String, day: Date) {
    let (year, month, d) = (day.year(), u8::from(day.month()), day.day());
    if !(0..=9999).contains(&year) {
        out.push_str(&day.to_string());
        return;
    }
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let y = year as u32;
    for c in [digit(y / 1000), digit(y / 100), digit(y / 10), digit(y), '-'] {
        out.push(c);
    }
    for c in [digit(u32::from(month) / 10), digit(u32::from(month)), '-', digit(u32::from(d) / 10), digit(u32::from(d))]
    {
        out.push(c);
    }
}

impl Usage {
    /// From the config; `clients` and `operators` are the configured ids.
    pub fn new(
        cfg: &UsageConfig,
        clients: Vec<String>,
        operators: Vec<String>,
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: UsageMetrics,
    ) -> Self {
        Self {
            store,
            clock,
            currency: cfg.currency.clone(),
            push_unit: cfg.push_unit_cost,
            sms_unit: cfg.sms_unit_cost,
            operator_push: cfg.operator_push_cost.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            retention_ms: u64::from(cfg.retention_days) * 86_400_000,
            max_range_days: cfg.max_range_days,
            clients,
            operators,
            metrics,
        }
    }

    /// Currency of the costs.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    fn push_unit(&self, operator: &str) -> Micros {
        self.operator_push.get(operator).copied().unwrap_or(self.push_unit)
    }

    /// A push for `client` was accepted by `operator` (see the module doc).
    pub async fn push_accepted(&self, client: &str, operator: &str) {
        let (key, until_ms) = self.push_counter(client, operator);
        let stored = self.store.incr(&key, until_ms).await;
        self.push_counted(client, operator, stored);
    }

    /// For a caller that counts an accepted push in its own store call
    /// ([`Store::insert_counted`]): the counter's key and keep-until time. Hand the count's
    /// result to [`Usage::push_counted`].
    pub fn push_counter(&self, client: &str, operator: &str) -> (String, u64) {
        self.counter(client, operator, UsageChannel::Push)
    }

    /// Today's counter of `channel` for `client` and `operator`, and how long it is kept.
    fn counter(&self, client: &str, operator: &str, channel: UsageChannel) -> (String, u64) {
        let now = self.clock.now_ms();
        (key(day_of(now), client, channel, operator), now.saturating_add(self.retention_ms))
    }

    /// The push counted with [`Usage::push_counter`]'s key was stored (or not): metrics and,
    /// on failure, the error log line.
    pub fn push_counted(&self, client: &str, operator: &str, stored: Result<u64, StoreError>) {
        if let Some(c) = self.metrics.pushes.get(client) {
            c.inc();
        }
        self.report(client, operator, UsageChannel::Push, stored);
    }

    /// An SMS for `client` (to a subscriber of `operator`) was accepted by the transport.
    pub async fn sms_accepted(&self, client: &str, operator: &str) {
        if let Some(c) = self.metrics.sms_sent.get(client) {
            c.inc();
        }
        if let Some(c) = self.metrics.sms_spend.get(client) {
            c.inc_by(self.sms_unit.as_f64());
        }
        self.count(client, operator, UsageChannel::Sms).await;
    }

    async fn count(&self, client: &str, operator: &str, channel: UsageChannel) {
        let (key, until_ms) = self.counter(client, operator, channel);
        let stored = self.store.incr(&key, until_ms).await;
        self.report(client, operator, channel, stored);
    }

    fn report(&self, client: &str, operator: &str, channel: UsageChannel, stored: Result<u64, StoreError>) {
        if let Err(e) = stored {
            self.metrics.store_errors.inc();
            tracing::error!(error = %e, client, operator, channel = channel.as_str(), "usage count not stored");
        }
    }

    /// Parses the query string of `GET /usage.csv`.
    pub fn parse_query(&self, query: Option<&str>) -> Result<UsageQuery, QueryError> {
        let bad = |m: String| Err(QueryError(m));
        let (mut from, mut to, mut client) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "from" | "to" => {
                    let Some(d) = parse_date(&v) else {
                        return bad(format!("{k} must be a date written YYYY-MM-DD"));
                    };
                    if k == "from" {
                        from = Some(d)
                    } else {
                        to = Some(d)
                    }
                }
                "client" => {
                    if !self.clients.iter().any(|c| *c == v) {
                        return bad("client is not a configured client_id".into());
                    }
                    client = Some(v.into_owned());
                }
                other => return bad(format!("unknown parameter {other:?} (from, to, client)")),
            }
        }
        let (Some(from), Some(to)) = (from, to) else { return bad("from and to are required (YYYY-MM-DD)".into()) };
        if to < from {
            return bad("to must not be before from".into());
        }
        let days = (to - from).whole_days() + 1;
        if days > i64::from(self.max_range_days) {
            return bad(format!("at most {} days per export (usage.max_range_days)", self.max_range_days));
        }
        Ok(UsageQuery { from, to, client })
    }

    /// The non-empty rows of `q`, by day, client, operator.
    pub async fn rows(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let mut rows = Vec::new();
        let mut day = q.from;
        loop {
            for client in self.clients.iter().filter(|c| q.client.as_ref().is_none_or(|only| only == *c)) {
                for op in &self.operators {
                    let pushes = self.store.counter(&key(day, client, UsageChannel::Push, op)).await?;
                    let sms = self.store.counter(&key(day, client, UsageChannel::Sms, op)).await?;
                    if pushes + sms > 0 {
                        rows.push(UsageRow {
                            date: day,
                            client: client.clone(),
                            operator: op.clone(),
                            pushes,
                            sms,
                            push_unit: self.push_unit(op),
                            sms_unit: self.sms_unit,
                        });
                    }
                }
            }
            match day.next_day() {
                Some(d) if d <= q.to => day = d,
                _ => break,
            }
        }
        Ok(rows)
    }
}

/// The CSV header.
pub const CSV_HEADER: &str = "date,client_id,operator,pushes,sms,currency,push_unit_cost,sms_unit_cost,cost\n";

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `rows` as CSV (RFC 4180, `\n` line ends), header first.
pub fn csv(rows: &[UsageRow], currency: &str) -> String {
    let mut out = String::from(CSV_HEADER);
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.date,
            field(&r.client),
            field(&r.operator),
            r.pushes,
            r.sms,
            currency,
            r.push_unit.to_decimal(),
            r.sms_unit.to_decimal(),
            r.cost().to_decimal()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_are_what_format_wrote() {
        // Stored counters are found by these keys: they must never change.
        let days =
            [(0, Month::January, 1), (9, Month::March, 7), (2026, Month::November, 26), (9999, Month::December, 31)]
                .into_iter()
                .chain([(10000, Month::January, 1), (-1, Month::January, 1)]) // only with time's large-dates
                .filter_map(|(y, m, d)| Date::from_calendar_date(y, m, d).ok())
                .chain([day_of(0), day_of(1_764_115_200_000), Date::MIN, Date::MAX]);
        for day in days {
            for channel in [UsageChannel::Push, UsageChannel::Sms] {
                let want = format!("usage:{day}:rp-1:{}:movistar", channel.as_str());
                assert_eq!(key(day, "rp-1", channel, "movistar"), want);
            }
        }
    }

    #[test]
    fn dates_parse_strictly_and_days_are_utc() {
        assert_eq!(parse_date("2026-02-28").map(|d| d.to_string()), Some("2026-02-28".into()));
        for bad in ["2026-02-30", "2026-2-28", "26-02-28", "2026/02/28", "2026-02-28x", "+026-02-28"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
        assert_eq!(day_of(0).to_string(), "1970-01-01");
        assert_eq!(day_of(86_400_000 - 1).to_string(), "1970-01-01");
        assert_eq!(day_of(86_400_000).to_string(), "1970-01-02");
    }

    #[test]
    fn csv_costs_are_exact_and_fields_escaped() {
        let row = UsageRow {
            date: parse_date("2026-01-02").unwrap(),
            client: "a,b".into(),
            operator: "movistar".into(),
            pushes: 3,
            sms: 7,
            push_unit: Micros(2_000),
            sms_unit: Micros(70_000),
        };
        assert_eq!(row.cost(), Micros(496_000));
        let text = csv(&[row], "EUR");
        assert_eq!(text, format!("{CSV_HEADER}2026-01-02,\"a,b\",movistar,3,7,EUR,0.002000,0.070000,0.496000\n"));
    }
}
