//! The `routing.toml` data model. Every struct denies unknown fields so a typo is an error,
//! every number has a named default function (nothing is hard-coded elsewhere), and secrets are
//! [`Secret`]s. Semantic checks live in `validate.rs`; this file only says what may be written.

use super::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

mod clients;
mod delivery;
mod operators;
mod sms;

pub use clients::*;
pub use delivery::*;
pub use operators::*;
pub use sms::*;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, TLS and the public issuer URL.
    pub server: ServerConfig,
    /// Gateway signing keys and the secrets behind pairwise subjects and subscriber ids.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Token lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// CIBA timing and limits.
    #[serde(default)]
    pub ciba: CibaConfig,
    /// Redirect (authorization code) flow timing.
    #[serde(default)]
    pub redirect: RedirectConfig,
    /// Transaction store.
    #[serde(default)]
    pub store: StoreConfig,
    /// MSISDN normalisation and portability data.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Operators and their Mobile Connect backends.
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// Relying parties.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// JWTs signed by relying parties: `private_key_jwt` assertions, request objects, client JWKS.
    #[serde(default)]
    pub client_jwt: ClientJwtConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The background driver (polls operators for ping/push clients).
    #[serde(default)]
    pub driver: DriverConfig,
    /// CIBA ping/push deliveries to relying parties.
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// Anti-pumping limits of the SMS fallback (never consulted for push).
    #[serde(default)]
    pub sms_limits: SmsLimitsConfig,
    /// The SMS fallback channel.
    #[serde(default)]
    pub sms: SmsConfig,
    /// SMS fallback one-time codes, confirm links and message text.
    #[serde(default)]
    pub sms_codes: SmsCodesConfig,
    /// Operator call protection defaults (breaker, in-flight cap, retry budget, push-capability
    /// cache); an operator's `resilience` table overrides them key by key.
    #[serde(default)]
    pub resilience: super::resilience::ResilienceConfig,
    /// Overload limits and drain pacing of the public listeners (`config::edge`).
    #[serde(default)]
    pub edge: super::edge::EdgeConfig,
    /// The hash-chained audit trail (off unless `path` is set).
    #[serde(default)]
    pub audit: super::records::AuditConfig,
    /// Usage records: unit costs and retention of the per-client, per-day counters.
    #[serde(default)]
    pub usage: super::records::UsageConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Public issuer URL (`iss` of our tokens, base of every endpoint in the metadata).
    pub issuer: String,
    /// Public RP listener, TLS unless `tls = false`.
    pub listen: String,
    /// Terminate TLS on `listen` (default true).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// PEM certificate chain for `listen`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `listen`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Optional extra plain-HTTP listener; only loopback addresses are accepted.
    #[serde(default)]
    pub plain_listen: Option<String>,
    /// Admin listener: `/live`, `/ready`, `/metrics`. Never on the public listener.
    pub admin_listen: String,
    /// Largest accepted request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Time allowed to read a request's headers, milliseconds.
    #[serde(default = "default_header_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long in-flight requests may take to finish after SIGTERM, milliseconds.
    #[serde(default = "default_drain_ms")]
    pub drain_timeout_ms: u64,
    /// Runtime flavour: `per_core` (one single-threaded runtime per worker thread, the best tail
    /// latency) or `multi_thread` (tokio's work-stealing scheduler).
    #[serde(default)]
    pub runtime: RuntimeFlavor,
    /// Worker threads; 0 = one per available core.
    #[serde(default)]
    pub workers: usize,
}

/// Runtime flavour of the server.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeFlavor {
    /// One current-thread runtime per worker, all accepting on the same socket.
    #[default]
    PerCore,
    /// One multi-thread runtime.
    MultiThread,
}

/// `[keys]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// PEM (PKCS#8) RSA private keys for RS256 ID tokens; the first signs, all are published in
    /// `/jwks` (rotation: add the new key second, publish, then move it first). Empty = a key
    /// is generated in memory at start (demo only: tokens die with the process).
    #[serde(default)]
    pub signing_keys: Vec<PathBuf>,
    /// File holding the secret (≥ 32 bytes) behind pairwise subjects; empty = generated.
    #[serde(default)]
    pub pairwise_secret_file: Option<PathBuf>,
    /// File holding the secret (≥ 32 bytes) behind subscriber ids (`ENCR_MSISDN`); empty = generated.
    #[serde(default)]
    pub subscriber_id_secret_file: Option<PathBuf>,
    /// File holding the secret (≥ 32 bytes) keying the HMACs of SMS codes and confirm links
    /// (S-08: never in the store); empty = generated (codes die with the process).
    #[serde(default)]
    pub sms_hmac_secret_file: Option<PathBuf>,
    /// File holding the secret (≥ 32 bytes) keying the MSISDN pseudonyms of log lines
    /// (`msisdn_ref`, S-34); empty = generated (references change at every restart).
    #[serde(default)]
    pub log_pseudonym_secret_file: Option<PathBuf>,
}

/// `[tokens]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// ID token lifetime, seconds.
    #[serde(default = "default_token_ttl")]
    pub id_token_ttl_s: u64,
    /// Access token lifetime, seconds.
    #[serde(default = "default_token_ttl")]
    pub access_token_ttl_s: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self { id_token_ttl_s: default_token_ttl(), access_token_ttl_s: default_token_ttl() }
    }
}

/// `[ciba]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CibaConfig {
    /// `expires_in` when the RP sends no `requested_expiry`, seconds.
    #[serde(default = "default_expiry")]
    pub default_expiry_s: u64,
    /// Largest `requested_expiry` honoured (larger values are clamped), seconds.
    #[serde(default = "default_max_expiry")]
    pub max_expiry_s: u64,
    /// Minimum poll interval announced to RPs, seconds.
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    /// Added to a transaction's interval on every `slow_down`, seconds.
    #[serde(default = "default_interval")]
    pub slow_down_step_s: u64,
    /// Longest accepted `binding_message`, characters.
    #[serde(default = "default_binding_len")]
    pub binding_message_max_chars: usize,
    /// How long terminal states stay readable after `expires_at`, seconds.
    #[serde(default = "default_retention")]
    pub terminal_retention_s: u64,
    /// How long a claimed fetch of an operator's result may run before another poll or an
    /// operator ping may fetch again, ms (covers its metadata, token and JWKS calls).
    #[serde(default = "default_operator_fetch_lease")]
    pub operator_fetch_lease_ms: u64,
    /// Slots of the per-instance gate that answers `slow_down` to a poll overlapping another
    /// poll of the same id ([`crate::flow::poll_gate`]; default 4096, 0 = off).
    #[serde(default = "default_poll_gate_slots")]
    pub poll_gate_slots: usize,
}

impl Default for CibaConfig {
    fn default() -> Self {
        Self {
            default_expiry_s: default_expiry(),
            max_expiry_s: default_max_expiry(),
            interval_s: default_interval(),
            slow_down_step_s: default_interval(),
            binding_message_max_chars: default_binding_len(),
            terminal_retention_s: default_retention(),
            operator_fetch_lease_ms: default_operator_fetch_lease(),
            poll_gate_slots: default_poll_gate_slots(),
        }
    }
}

/// `[redirect]`: the browser (authorization code) flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// Lifetime of our authorization codes, seconds (BCP: at most 10 min).
    #[serde(default = "default_code_ttl")]
    pub code_ttl_s: u64,
    /// How long a person may take between `/authorize` and the operator's redirect back to
    /// `/callback` (number page included), seconds.
    #[serde(default = "default_expiry")]
    pub pending_ttl_s: u64,
    /// Clock difference allowed with operators when checking the RP's `max_age` against the
    /// operator's `auth_time`, seconds.
    #[serde(default = "default_skew")]
    pub max_age_skew_s: u64,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        Self { code_ttl_s: default_code_ttl(), pending_ttl_s: default_expiry(), max_age_skew_s: default_skew() }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (default; one instance) or `redis` (shared by every instance).
    #[serde(default = "default_store_kind")]
    pub kind: String,
    /// How often expired entries are purged, milliseconds (memory; Redis expires keys itself).
    #[serde(default = "default_purge_ms")]
    pub purge_interval_ms: u64,
    /// Redis: `redis://[user:password@]host:port[/db]`. Prefer `url_env` when it holds a password.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis: name of the environment variable holding the URL (exactly one of `url`/`url_env`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Redis: prefix of every key (default `mcgate:`), so several deployments can share a server.
    #[serde(default = "default_redis_key_prefix")]
    pub key_prefix: String,
    /// Redis: deadline of one store operation, milliseconds (L-01; default 500). Past it the
    /// request fails closed (503 `temporarily_unavailable`).
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
    /// Redis: connect deadline of one (re)connection attempt, milliseconds (default 500).
    #[serde(default = "default_redis_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Redis: multiplexed connections per worker thread, opened lazily by each thread and used
    /// round robin (default 2).
    #[serde(default = "default_redis_connections")]
    pub connections: usize,
    /// Redis: period of the background health probe behind `/ready`, milliseconds (default
    /// 1000; at most 4000 so `/ready` turns within 5 s, L-08).
    #[serde(default = "default_redis_health_ms")]
    pub health_interval_ms: u64,
    /// Redis: longest wait between reconnection attempts, milliseconds (default 1000).
    #[serde(default = "default_redis_health_ms")]
    pub reconnect_max_delay_ms: u64,
    /// Redis: transactions whose last seen version this instance keeps, so an RP's poll writes
    /// without reading first ([`crate::flow::poll_cache`]; default 4096, 0 = off).
    #[serde(default = "default_poll_cache_slots")]
    pub poll_cache_slots: usize,
    /// Redis: read "now" off the store's clock (Redis `TIME`, sampled by the health probe) instead
    /// of this host's, so every instance agrees on the deadlines of shared transactions (F-15;
    /// default true).
    #[serde(default = "default_true")]
    pub shared_clock: bool,
    /// Redis: a warning is logged when this host's clock is further than this from the store's,
    /// milliseconds (default 60000; `mcgate_store_clock_offset_seconds` always shows the offset).
    #[serde(default = "default_clock_offset_warn_ms")]
    pub clock_offset_warn_ms: u64,
    /// Redis: most "not enrolled" numbers this instance indexes locally, so a bc-authorize for
    /// any other number skips the push-capability look-up in Redis
    /// ([`crate::operators::resilience::not_enrolled_index`]; default 100000, 0 = off: every
    /// push asks Redis first).
    #[serde(default = "default_not_enrolled_index_max")]
    pub not_enrolled_index_max: usize,
    /// Redis: how often the index reads what other instances learned, milliseconds (default
    /// 1000). Until it has, they may ask the operator once more about such a number.
    #[serde(default = "default_not_enrolled_sync_ms")]
    pub not_enrolled_sync_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: default_store_kind(),
            purge_interval_ms: default_purge_ms(),
            url: None,
            url_env: None,
            key_prefix: default_redis_key_prefix(),
            timeout_ms: default_redis_timeout_ms(),
            connect_timeout_ms: default_redis_timeout_ms(),
            connections: default_redis_connections(),
            health_interval_ms: default_redis_health_ms(),
            reconnect_max_delay_ms: default_redis_health_ms(),
            poll_cache_slots: default_poll_cache_slots(),
            shared_clock: true,
            clock_offset_warn_ms: default_clock_offset_warn_ms(),
            not_enrolled_index_max: default_not_enrolled_index_max(),
            not_enrolled_sync_ms: default_not_enrolled_sync_ms(),
        }
    }
}

/// `[discovery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Country code given to national numbers.
    #[serde(default = "default_country_code")]
    pub default_country_code: u16,
    /// Digits of a national number (Spain: 9).
    #[serde(default = "default_national_len")]
    pub national_len: u8,
    /// Portability file: `msisdn,operator` lines; overrides prefixes. Relative to the config file.
    #[serde(default)]
    pub ported_numbers: Option<PathBuf>,
    /// Lifetime of a Discovery API answer (`ttl`), seconds.
    #[serde(default = "default_discovery_ttl")]
    pub discovery_ttl_s: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            default_country_code: default_country_code(),
            national_len: default_national_len(),
            ported_numbers: None,
            discovery_ttl_s: default_discovery_ttl(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `mcgate=debug`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `json` (one object per line) or `text`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// Longest RP `X-Request-Id` kept as the request id (characters, 16..=256; default 64):
    /// longer or ill-formed ones are replaced by an id of ours.
    #[serde(default = "default_request_id_max_len")]
    pub request_id_max_len: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: default_log_format(),
            request_id_max_len: default_request_id_max_len(),
        }
    }
}

fn default_request_id_max_len() -> usize {
    64
}

fn default_true() -> bool {
    true
}

fn default_max_body() -> usize {
    64 * 1024
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_drain_ms() -> u64 {
    30_000
}

fn default_token_ttl() -> u64 {
    300
}

fn default_expiry() -> u64 {
    300
}

fn default_max_expiry() -> u64 {
    600
}

fn default_interval() -> u64 {
    5
}

fn default_code_ttl() -> u64 {
    60
}

fn default_binding_len() -> usize {
    64
}

fn default_retention() -> u64 {
    300
}

fn default_store_kind() -> String {
    "memory".into()
}

fn default_purge_ms() -> u64 {
    5_000
}

fn default_redis_key_prefix() -> String {
    "mcgate:".into()
}

fn default_redis_timeout_ms() -> u64 {
    500
}

fn default_redis_connections() -> usize {
    2
}

fn default_poll_gate_slots() -> usize {
    4096
}

fn default_poll_cache_slots() -> usize {
    4096
}

fn default_not_enrolled_index_max() -> usize {
    100_000
}

fn default_not_enrolled_sync_ms() -> u64 {
    1_000
}

fn default_clock_offset_warn_ms() -> u64 {
    60_000
}

fn default_redis_health_ms() -> u64 {
    1_000
}

fn default_country_code() -> u16 {
    34
}

fn default_national_len() -> u8 {
    9
}

fn default_discovery_ttl() -> u64 {
    3_600
}

fn default_skew() -> u64 {
    60
}

fn default_log_level() -> String {
    "info".into()
}

fn default_log_format() -> String {
    "json".into()
}

/// Operator fetch lease: 3 × the default operator call timeout (metadata, token, JWKS) + margin.
fn default_operator_fetch_lease() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    1_000
}
fn default_jwks_refetch() -> u64 {
    60
}
fn default_delivery_mode() -> String {
    "poll".into()
}
