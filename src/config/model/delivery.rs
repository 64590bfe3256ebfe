//! `[driver]` and `[notifications]`: the background driver for ping/push clients and the
//! notification POSTs to relying parties, as written in `routing.toml` (part of [`super`]).

use super::*;

/// `[driver]`: the background driver that advances transactions of ping/push clients (the
/// gateway itself polls their operators) and delivers their notifications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Worker tasks running due jobs (operator polls, deliveries).
    #[serde(default = "default_driver_workers")]
    pub workers: usize,
    /// Most ping/push transactions followed at once; when full, `bc-authorize` answers 503.
    #[serde(default = "default_driver_capacity")]
    pub capacity: usize,
    /// `Retry-After` of that 503, seconds.
    #[serde(default = "default_driver_retry_after")]
    pub retry_after_s: u32,
    /// Delay before retrying a job the store could not serve, milliseconds.
    #[serde(default = "default_driver_store_retry")]
    pub store_retry_ms: u64,
}
impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            workers: default_driver_workers(),
            capacity: default_driver_capacity(),
            retry_after_s: default_driver_retry_after(),
            store_retry_ms: default_driver_store_retry(),
        }
    }
}
/// `[notifications]`: POSTs to the clients' `backchannel_client_notification_endpoint`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Most delivery attempts per transaction (also bounded by its expiry).
    #[serde(default = "default_notify_attempts")]
    pub attempts: u32,
    /// Wait after the first failed attempt, milliseconds; doubles per attempt.
    #[serde(default = "default_notify_initial_backoff")]
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts, milliseconds.
    #[serde(default = "default_notify_max_backoff")]
    pub max_backoff_ms: u64,
    /// Whole-exchange timeout of one attempt, milliseconds.
    #[serde(default = "default_notify_attempt_timeout")]
    pub attempt_timeout_ms: u64,
    /// TCP connect timeout towards the client, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
}
impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            attempts: default_notify_attempts(),
            initial_backoff_ms: default_notify_initial_backoff(),
            max_backoff_ms: default_notify_max_backoff(),
            attempt_timeout_ms: default_notify_attempt_timeout(),
            connect_timeout_ms: default_connect_timeout(),
        }
    }
}
fn default_driver_workers() -> usize {
    2
}
fn default_driver_capacity() -> usize {
    10_000
}
fn default_driver_retry_after() -> u32 {
    1
}
fn default_driver_store_retry() -> u64 {
    1_000
}
fn default_notify_attempts() -> u32 {
    5
}
fn default_notify_initial_backoff() -> u64 {
    1_000
}
fn default_notify_max_backoff() -> u64 {
    30_000
}
fn default_notify_attempt_timeout() -> u64 {
    5_000
}
