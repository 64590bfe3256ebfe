//! `[sms]`, `[sms_codes]` and `[sms_limits]`: the SMS fallback channel, its one-time codes and
//! its anti-pumping limits, as written in `routing.toml` (part of [`super`]).

use super::*;

/// `[sms_codes]`: the SMS fallback's one-time codes and confirm links (shared/security.md
/// S-01, S-02, S-05, S-10, S-12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsCodesConfig {
    /// Digits of a one-time code, 6–8.
    #[serde(default = "default_sms_code_digits")]
    pub code_digits: u8,
    /// Lifetime of a code or confirm link, seconds (1–300; never beyond the transaction).
    #[serde(default = "default_sms_code_ttl")]
    pub code_ttl_s: u64,
    /// Wrong codes per transaction before it fails `too_many_attempts` (1–5).
    #[serde(default = "default_sms_max_attempts")]
    pub max_attempts: u32,
    /// Most SMS segments a message may take (1–3); a longer binding message is shortened.
    #[serde(default = "default_sms_code_max_segments")]
    pub max_segments: u8,
    /// Language of texts and pages when neither `ui_locales` nor `Accept-Language` names
    /// `ca`, `es` or `en`.
    #[serde(default = "default_sms_language")]
    pub default_language: String,
}
impl Default for SmsCodesConfig {
    fn default() -> Self {
        Self {
            code_digits: default_sms_code_digits(),
            code_ttl_s: default_sms_code_ttl(),
            max_attempts: default_sms_max_attempts(),
            max_segments: default_sms_code_max_segments(),
            default_language: default_sms_language(),
        }
    }
}
/// Default digits of an SMS code (S-01: at least 6).
pub const DEFAULT_SMS_CODE_DIGITS: u8 = 6;
fn default_sms_code_digits() -> u8 {
    DEFAULT_SMS_CODE_DIGITS
}
/// Default lifetime of an SMS code or link, seconds (S-02).
pub const DEFAULT_SMS_CODE_TTL_S: u64 = 300;
fn default_sms_code_ttl() -> u64 {
    DEFAULT_SMS_CODE_TTL_S
}
/// Default wrong codes allowed per transaction (S-05).
pub const DEFAULT_SMS_MAX_ATTEMPTS: u32 = 5;
fn default_sms_max_attempts() -> u32 {
    DEFAULT_SMS_MAX_ATTEMPTS
}
/// Default SMS segment budget of one message (S-12).
pub const DEFAULT_SMS_MAX_SEGMENTS: u8 = 2;
fn default_sms_code_max_segments() -> u8 {
    DEFAULT_SMS_MAX_SEGMENTS
}
fn default_sms_language() -> String {
    "es".into()
}
/// `[sms_limits]`: anti-pumping limits (shared/security.md S-06, S-16…S-18), consulted only
/// before an SMS, never before a push (S-20). Per-client budgets are client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsLimitsConfig {
    /// Smallest gap between two SMS to one MSISDN, seconds (S-17: 30).
    #[serde(default = "default_sms_msisdn_min_interval")]
    pub msisdn_min_interval_s: u32,
    /// Most SMS to one MSISDN per hour (S-17: 5).
    #[serde(default = "default_sms_msisdn_per_hour")]
    pub msisdn_per_hour: u32,
    /// Most SMS to one MSISDN per day (S-17: 10).
    #[serde(default = "default_sms_msisdn_per_day")]
    pub msisdn_per_day: u32,
    /// Most SMS per number prefix (the E.164 number minus its last `prefix_strip_digits`) per hour (S-18: 50).
    #[serde(default = "default_sms_prefix_per_hour")]
    pub prefix_per_hour: u32,
    /// Digits dropped from the end of a number to form its prefix (S-18: 4).
    #[serde(default = "default_sms_prefix_strip")]
    pub prefix_strip_digits: u8,
    /// E.164 prefixes (digits, no `+`) never sent SMS: premium, shared-cost, toll-free,
    /// personal and fixed ranges (S-16). Default: Spanish 8xx/9xx fixed (incl. 80x/90x), 70x, 118.
    #[serde(default = "default_sms_refused_prefixes")]
    pub refused_prefixes: Vec<String>,
    /// Consecutive failed codes per MSISDN, across transactions, after which SMS is refused (S-06: 100).
    #[serde(default = "default_sms_max_failures")]
    pub max_consecutive_failures: u32,
    /// How long the failure counter of an MSISDN is kept without a new failure, seconds (30 days).
    #[serde(default = "default_sms_failure_ttl")]
    pub failure_counter_ttl_s: u64,
}
impl Default for SmsLimitsConfig {
    fn default() -> Self {
        Self {
            msisdn_min_interval_s: default_sms_msisdn_min_interval(),
            msisdn_per_hour: default_sms_msisdn_per_hour(),
            msisdn_per_day: default_sms_msisdn_per_day(),
            prefix_per_hour: default_sms_prefix_per_hour(),
            prefix_strip_digits: default_sms_prefix_strip(),
            refused_prefixes: default_sms_refused_prefixes(),
            max_consecutive_failures: default_sms_max_failures(),
            failure_counter_ttl_s: default_sms_failure_ttl(),
        }
    }
}
fn default_sms_msisdn_min_interval() -> u32 {
    30
}
fn default_sms_msisdn_per_hour() -> u32 {
    5
}
fn default_sms_msisdn_per_day() -> u32 {
    10
}
fn default_sms_prefix_per_hour() -> u32 {
    50
}
fn default_sms_prefix_strip() -> u8 {
    4
}
fn default_sms_refused_prefixes() -> Vec<String> {
    // Spain: 8xx/9xx fixed lines (80x premium/toll-free and 90x toll-free/shared-cost/premium
    // included), 70x personal numbers, 118xx directory enquiries.
    ["348", "349", "3470", "34118"].map(String::from).to_vec()
}
fn default_sms_max_failures() -> u32 {
    100
}
fn default_sms_failure_ttl() -> u64 {
    30 * 86_400
}
/// `[sms]`: the SMS fallback channel.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `[sms.transport]`: how SMS leave the gateway; absent = no SMS can be sent.
    #[serde(default)]
    pub transport: Option<SmsTransportConfig>,
}
/// `[sms.transport]`: one transport, `kind = "smpp"` (with `[sms.transport.smpp]`) or
/// `kind = "http"` (with `[sms.transport.http]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsTransportConfig {
    /// `smpp` or `http`.
    pub kind: String,
    /// Longest message, in SMS segments (concatenated with a UDH); longer texts are refused.
    #[serde(default = "default_sms_max_segments")]
    pub max_segments: usize,
    /// SMPP settings (`kind = "smpp"`).
    #[serde(default)]
    pub smpp: Option<SmppConfig>,
    /// HTTP provider settings (`kind = "http"`).
    #[serde(default)]
    pub http: Option<SmsHttpConfig>,
}
/// `[sms.transport.smpp]`: one persistent SMPP session to an SMSC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    /// SMSC host name or IP.
    pub host: String,
    /// SMSC port.
    #[serde(default = "default_smpp_port")]
    pub port: u16,
    /// Bind `system_id` (≤ 15 characters).
    pub system_id: String,
    /// Bind password (≤ 8 characters); prefer `password_env`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Environment variable holding the bind password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Bind `system_type` (≤ 12 characters; often empty).
    #[serde(default)]
    pub system_type: String,
    /// `transceiver` (receipts arrive on the same session; default) or `transmitter` (no
    /// receipts can arrive: delivery state stays pending).
    #[serde(default = "default_smpp_bind")]
    pub bind: String,
    /// Sender shown on the phone (alphanumeric ≤ 11 characters, or a number).
    pub source_addr: String,
    /// TON of `source_addr` (5 = alphanumeric, 1 = international).
    #[serde(default = "default_smpp_source_ton")]
    pub source_addr_ton: u8,
    /// NPI of `source_addr` (0 = unknown, 1 = E.164).
    #[serde(default)]
    pub source_addr_npi: u8,
    /// TCP connect (and bind answer) timeout, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// `enquire_link` period, seconds; the session is dropped when nothing was heard for a
    /// period plus `submit_timeout_ms`.
    #[serde(default = "default_smpp_enquire_link")]
    pub enquire_link_s: u64,
    /// Whole `submit` timeout (window wait, every segment's `submit_sm_resp`), milliseconds.
    #[serde(default = "default_sms_submit_timeout")]
    pub submit_timeout_ms: u64,
    /// First wait before rebinding after a lost or refused session, milliseconds; doubles.
    #[serde(default = "default_smpp_rebind_initial")]
    pub rebind_initial_ms: u64,
    /// Longest wait between rebind attempts, milliseconds.
    #[serde(default = "default_smpp_rebind_max")]
    pub rebind_max_ms: u64,
    /// Most `submit_sm` awaiting their answer at once (SMSC window).
    #[serde(default = "default_smpp_window")]
    pub window: usize,
    /// Most messages whose delivery receipts are remembered.
    #[serde(default = "default_sms_receipt_capacity")]
    pub receipt_capacity: usize,
    /// How long a message's receipt state is remembered, seconds.
    #[serde(default = "default_sms_receipt_ttl")]
    pub receipt_ttl_s: u64,
}
/// `[sms.transport.http]`: a generic HTTP SMS provider (`POST {to, text, reference}` JSON with
/// `Authorization: Bearer <key>`; answer `{message_id}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsHttpConfig {
    /// Provider endpoint (https; plain http only for loopback hosts).
    pub url: String,
    /// Environment variable holding the API key (sent as a bearer token).
    pub api_key_env: String,
    /// TCP connect timeout, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, milliseconds.
    #[serde(default = "default_sms_submit_timeout")]
    pub timeout_ms: u64,
}
fn default_sms_max_segments() -> usize {
    2
}
fn default_smpp_port() -> u16 {
    2775
}
fn default_smpp_bind() -> String {
    "transceiver".into()
}
fn default_smpp_source_ton() -> u8 {
    5
}
fn default_smpp_enquire_link() -> u64 {
    30
}
/// SMS submit timeout (security.md L-01: 5 s).
fn default_sms_submit_timeout() -> u64 {
    5_000
}
fn default_smpp_rebind_initial() -> u64 {
    1_000
}
fn default_smpp_rebind_max() -> u64 {
    30_000
}
fn default_smpp_window() -> usize {
    10
}
fn default_sms_receipt_capacity() -> usize {
    100_000
}
fn default_sms_receipt_ttl() -> u64 {
    3_600
}
