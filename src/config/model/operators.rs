//! `[[operators]]`: one operator and its Mobile Connect backend, as written in `routing.toml`
//! (part of [`super`]).

use super::*;

/// `[[operators]]`: one operator and its Mobile Connect backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Stable id (metric label, `serving_operator`), e.g. `movistar`.
    pub id: String,
    /// Name shown to people.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Country (ISO 3166 alpha-2) for the Discovery API.
    #[serde(default = "default_country")]
    pub country: String,
    /// MCC-MNC pairs served, `"214-07"`.
    #[serde(default)]
    pub mcc_mnc: Vec<String>,
    /// E.164 prefixes (digits, no `+`) of the operator's mobile ranges.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Protocol spoken for decoupled authentication: `ciba` (CIBA `bc-authorize`, then poll,
    /// ping or push) or `mc_si` (Mobile Connect server-initiated: a signed request to the
    /// operator's `si_authorization_endpoint`; the result is always pushed to
    /// `<issuer>/op/{id}/notify`).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Operator issuer: metadata is fetched from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Overrides the metadata's `backchannel_authentication_endpoint`.
    #[serde(default)]
    pub backchannel_authentication_endpoint: Option<String>,
    /// Overrides the metadata's `si_authorization_endpoint` (`mode = "mc_si"`).
    #[serde(default)]
    pub si_authorization_endpoint: Option<String>,
    /// Lifetime (`exp - iat`) of the request objects we sign for an `mc_si` operator, seconds.
    #[serde(default = "default_si_request_lifetime")]
    pub si_request_lifetime_s: u64,
    /// Overrides the metadata's `authorization_endpoint` (redirect flow).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Overrides the metadata's `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Overrides the metadata's `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The gateway's client id at this operator.
    pub client_id: String,
    /// The gateway's client secret at this operator (client_secret_basic).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Environment variable holding that secret instead (preferred in production).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Whether the operator offers Mobile Connect push at all.
    #[serde(default = "default_true")]
    pub push: bool,
    /// ID token signature algorithms accepted from this operator.
    #[serde(default = "default_operator_algs")]
    pub id_token_algs: Vec<String>,
    /// Extra PEM CA bundle trusted for this operator's HTTPS endpoints.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// TCP connect timeout, milliseconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Whole-call timeout for one operator HTTP call, milliseconds.
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
    /// Idle keep-alive connections to this operator are dropped after this, milliseconds: keep
    /// it below the operator's own idle timeout (Node servers close after 5 s), or a request may
    /// be written on a connection the operator is closing (then "maybe delivered").
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout_ms: u64,
    /// Idle keep-alive connections kept per operator origin (scheme + host + port) and worker
    /// thread; more are closed, the oldest first.
    #[serde(default = "default_pool_max_idle_per_origin")]
    pub pool_max_idle_per_origin: usize,
    /// How long the person has to answer the push before it counts as timed out, seconds.
    #[serde(default = "default_push_timeout")]
    pub push_timeout_s: u64,
    /// Metadata cache lifetime, seconds.
    #[serde(default = "default_metadata_ttl")]
    pub metadata_ttl_s: u64,
    /// Smallest interval between two JWKS refetches for an unknown `kid`, seconds.
    #[serde(default = "default_jwks_refetch")]
    pub jwks_min_refetch_s: u64,
    /// Clock skew allowed on the operator's `exp`/`iat`, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    /// How the operator reports results: `poll` (we poll its token endpoint), `ping` (it POSTs
    /// `{auth_req_id}` to `<issuer>/op/{id}/notify`, then we fetch) or `push` (it POSTs the
    /// result there). We register that endpoint with the operator out of band.
    #[serde(default = "default_delivery_mode")]
    pub notification: String,
    /// Whether the SMS fallback may be used for this operator's subscribers (false: never SMS).
    #[serde(default = "default_true")]
    pub sms_fallback: bool,
    /// Operator error overrides: `"error[:description]" -> class` (`unavailable`,
    /// `not_enrolled`, `push_timeout`, `denied`, `config`); see `flow::fallback::ErrorMap`.
    #[serde(default)]
    pub error_map: std::collections::BTreeMap<String, String>,
    /// CAMARA SIM Swap v2 `check` endpoint; default `<issuer>/sim-swap/v2/check`.
    #[serde(default)]
    pub sim_swap_url: Option<String>,
    /// Whole-call timeout of one SIM-swap check, milliseconds (L-01: 2 s).
    #[serde(default = "default_sim_swap_timeout")]
    pub sim_swap_timeout_ms: u64,
    /// Overrides of `[resilience]` for this operator (same keys, each optional).
    #[serde(default)]
    pub resilience: Option<toml::Table>,
}

fn default_country() -> String {
    "ES".into()
}

fn default_mode() -> String {
    "ciba".into()
}

fn default_operator_algs() -> Vec<String> {
    vec!["RS256".into()]
}

fn default_call_timeout() -> u64 {
    3_000
}

fn default_push_timeout() -> u64 {
    60
}

fn default_metadata_ttl() -> u64 {
    86_400
}

fn default_si_request_lifetime() -> u64 {
    60
}

/// Idle pooled connection lifetime, ms: below Node's 5 s keep-alive timeout.
pub const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 4_000;

fn default_pool_idle_timeout() -> u64 {
    DEFAULT_POOL_IDLE_TIMEOUT_MS
}

/// Idle pooled connections kept per origin and worker thread (hyper-util's pool kept 1024).
pub const DEFAULT_POOL_MAX_IDLE_PER_ORIGIN: usize = 1024;

fn default_pool_max_idle_per_origin() -> usize {
    DEFAULT_POOL_MAX_IDLE_PER_ORIGIN
}

/// SIM-swap check timeout, ms (L-01).
fn default_sim_swap_timeout() -> u64 {
    2_000
}
