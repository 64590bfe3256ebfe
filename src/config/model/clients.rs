//! `[[clients]]` and `[client_jwt]`: relying parties and the JWTs they sign, as written in
//! `routing.toml` (part of [`super`]).

use super::*;

/// `[[clients]]`: one relying party.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// OAuth client id.
    pub client_id: String,
    /// Name shown to people (consent texts, `applicationShortName`).
    #[serde(default)]
    pub client_name: Option<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or `none` (public client:
    /// redirect flow with PKCE only, no secret, no CIBA).
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    /// SHA-256 (hex) of the client secret; two during a rotation. Never the secret itself.
    #[serde(default)]
    pub client_secret_sha256: Vec<String>,
    /// `poll`, `ping` or `push` (CIBA token delivery mode).
    #[serde(default = "default_delivery_mode")]
    pub backchannel_token_delivery_mode: String,
    /// Where ping/push notifications are POSTed (https; http only for loopback hosts).
    #[serde(default)]
    pub backchannel_client_notification_endpoint: Option<String>,
    /// Scopes the client may ask for.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Registered redirect URIs (Discovery API `Redirect_URL`, redirect flow).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Sector of pairwise subjects: RPs sharing it see the same `sub` for a person.
    pub sector_identifier: String,
    /// Lowest acr this client accepts ("2" or "3").
    #[serde(default = "default_min_acr")]
    pub min_acr: String,
    /// Operators this client may be routed to; empty = all.
    #[serde(default)]
    pub allowed_operators: Vec<String>,
    /// `id_token_signed_response_alg`: `RS256` (default; GSMA SDKs verify RSA only) or `ES256`.
    #[serde(default = "default_rs256")]
    pub id_token_signed_response_alg: String,
    /// Mobile Connect legacy client: may use the redirect flow without PKCE (confidential only),
    /// and its `/si-authorize` request objects may omit `exp`, `iat`, `nbf` and `jti`.
    #[serde(default)]
    pub mc_legacy: bool,
    /// Mobile Connect server-initiated: the `notification_uri`s its `mc_si_async_code` requests
    /// may name (exact match; https, plain http only for loopback hosts). The client's
    /// `backchannel_client_notification_endpoint` is accepted too.
    #[serde(default)]
    pub notification_uris: Vec<String>,
    /// The client's public keys as JWKS JSON text (`private_key_jwt`, signed request objects).
    #[serde(default)]
    pub jwks: Option<String>,
    /// A file holding the client's public JWKS (relative to the config file).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Where the client publishes its JWKS (https; plain http only for loopback hosts).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// SMS fallback opt-in (shared/protocol.md §5): false (default) = never SMS for this client.
    #[serde(default)]
    pub sms_fallback: bool,
    /// SIM-swap window: no SMS when the SIM changed within this many hours (CAMARA `maxAge`, 1-2400).
    #[serde(default = "default_sim_swap_max_age_h")]
    pub sim_swap_max_age_h: u32,
    /// When the SIM-swap check gives no definite answer: `deny` (default, no SMS) or `allow`.
    #[serde(default = "default_sim_swap_unknown")]
    pub sim_swap_unknown: String,
    /// Country calling codes (digits, no `+`) SMS may go to; default `["34"]`.
    #[serde(default = "default_sms_countries")]
    pub sms_countries: Vec<String>,
    /// Most SMS this client may cause per day (S-18 spend cap).
    #[serde(default = "default_sms_daily_budget")]
    pub sms_daily_budget: u32,
    /// Most SMS this client may cause per hour (S-18 spend cap).
    #[serde(default = "default_sms_hourly_budget")]
    pub sms_hourly_budget: u32,
    /// Race mode (opt-in, acr 2 only): push and SMS link at once, first approval wins.
    #[serde(default)]
    pub race: bool,
}
/// `[client_jwt]`: JWTs relying parties sign (RFC 7523 client assertions, CIBA request objects).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientJwtConfig {
    /// Clock skew allowed on `exp`, `iat` and `nbf`, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    /// Longest accepted client assertion lifetime (`exp` − `iat`), seconds.
    #[serde(default = "default_jwt_lifetime")]
    pub assertion_max_lifetime_s: u64,
    /// Longest accepted request object lifetime (`exp` − `iat`/`nbf`), seconds.
    #[serde(default = "default_jwt_lifetime")]
    pub request_object_max_lifetime_s: u64,
    /// How long a JWKS fetched from a client's `jwks_uri` is used, seconds.
    #[serde(default = "default_client_jwks_ttl")]
    pub jwks_cache_ttl_s: u64,
    /// Smallest interval between two fetches of one client's `jwks_uri` (unknown `kid`), seconds.
    #[serde(default = "default_jwks_refetch")]
    pub jwks_min_refetch_s: u64,
    /// Whole-fetch timeout for a client's `jwks_uri` (connect included), milliseconds.
    #[serde(default = "default_jwks_fetch_timeout")]
    pub jwks_fetch_timeout_ms: u64,
}
impl Default for ClientJwtConfig {
    fn default() -> Self {
        Self {
            clock_skew_s: default_skew(),
            assertion_max_lifetime_s: default_jwt_lifetime(),
            request_object_max_lifetime_s: default_jwt_lifetime(),
            jwks_cache_ttl_s: default_client_jwks_ttl(),
            jwks_min_refetch_s: default_jwks_refetch(),
            jwks_fetch_timeout_ms: default_jwks_fetch_timeout(),
        }
    }
}
fn default_jwt_lifetime() -> u64 {
    300
}
fn default_client_jwks_ttl() -> u64 {
    3_600
}
fn default_jwks_fetch_timeout() -> u64 {
    5_000
}
fn default_auth_method() -> String {
    "client_secret_basic".into()
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "mc_authn".into()]
}
fn default_min_acr() -> String {
    "2".into()
}
fn default_rs256() -> String {
    "RS256".into()
}
/// CAMARA `maxAge` default, hours (shared/protocol.md §4).
pub const DEFAULT_SIM_SWAP_MAX_AGE_H: u32 = 240;
fn default_sim_swap_max_age_h() -> u32 {
    DEFAULT_SIM_SWAP_MAX_AGE_H
}
fn default_sim_swap_unknown() -> String {
    "deny".into()
}
fn default_sms_countries() -> Vec<String> {
    vec!["34".into()]
}
fn default_sms_daily_budget() -> u32 {
    1_000
}
fn default_sms_hourly_budget() -> u32 {
    200
}
