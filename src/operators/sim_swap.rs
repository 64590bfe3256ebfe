//! CAMARA SIM Swap v2 client (shared/protocol.md §4, shared/security.md S-14, S-15, L-01, F-07):
//! `POST <sim_swap_url> {"phoneNumber":"+34…","maxAge":h}` → `{"swapped":bool}`, asked before
//! any SMS and never before a push. Anything but a definite 200 answer — an error status
//! (`OUT_OF_RANGE`, `NOT_FOUND`, 5xx), a timeout, a connection failure or junk — is
//! [`SimSwapStatus::Unknown`]. The client's policy then decides ([`gate`]).
//!
//! Credentials: the operator's own, as for its Mobile Connect backend — `client_secret_basic`
//! (`Authorization: Basic` of the operator's `client_id` and secret). Operators whose CAMARA
//! gateway wants an OAuth bearer are out of scope for now (documented gap).
//!
//! Integrator: build one [`SimSwapClient`] per operator with [`SimSwapClient::new`], call
//! [`SimSwapClient::check`] with the client's `sim_swap_max_age_h`, then [`gate`] with the
//! client's `sim_swap_unknown` to get the fallback decision's
//! [`crate::flow::fallback::SimSwapGate`].

use super::http::{call, PerThreadClient};
use crate::config::{OperatorConfig, Secret};
use crate::flow::fallback::SimSwapGate;
use crate::msisdn::Msisdn;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use std::time::Duration;

/// What the operator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSwapStatus {
    /// The SIM changed within `maxAge` hours.
    Swapped,
    /// It did not.
    NotSwapped,
    /// No definite answer (error, timeout, junk, out of range, unknown number).
    Unknown,
}

/// The client's `sim_swap_unknown` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// No SMS when unknown (default): `failed{sim_swap_unknown}`.
    Deny,
    /// SMS when unknown (a logged risk).
    Allow,
}

impl UnknownPolicy {
    /// From a validated config value (anything but `allow` denies).
    pub fn from_config(s: &str) -> Self {
        if s == "allow" {
            Self::Allow
        } else {
            Self::Deny
        }
    }
}

/// The pure policy: what the fallback decision makes of a check's answer.
pub fn gate(status: SimSwapStatus, unknown: UnknownPolicy) -> SimSwapGate {
    match (status, unknown) {
        (SimSwapStatus::NotSwapped, _) | (SimSwapStatus::Unknown, UnknownPolicy::Allow) => SimSwapGate::Passed,
        (SimSwapStatus::Swapped, _) => SimSwapGate::Swapped,
        (SimSwapStatus::Unknown, UnknownPolicy::Deny) => SimSwapGate::UnknownDenied,
    }
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
#[error("operator {operator}: SIM swap: {message}")]
pub struct SimSwapSetupError {
    operator: String,
    message: String,
}

/// One operator's SIM Swap endpoint.
pub struct SimSwapClient {
    operator: String,
    url: Uri,
    authorization: HeaderValue,
    timeout: Duration,
    clients: PerThreadClient,
}

impl std::fmt::Debug for SimSwapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimSwapClient").field("operator", &self.operator).field("url", &self.url).finish()
    }
}

impl SimSwapClient {
    /// The client for `cfg` (secret already resolved): `sim_swap_url` or
    /// `<issuer>/sim-swap/v2/check`, bounded by `sim_swap_timeout_ms` (connect included).
    pub fn new(cfg: &OperatorConfig, secret: &Secret, base_dir: &std::path::Path) -> Result<Self, SimSwapSetupError> {
        let err = |message: String| SimSwapSetupError { operator: cfg.id.clone(), message };
        let url = cfg.sim_swap_url.clone().unwrap_or_else(|| format!("{}/sim-swap/v2/check", cfg.issuer));
        let url = url.parse::<Uri>().map_err(|e| err(format!("bad URL: {e}")))?;
        let ca = cfg.tls_ca_file.as_ref().map(|p| base_dir.join(p));
        let timeout = Duration::from_millis(cfg.sim_swap_timeout_ms);
        let connect = Duration::from_millis(cfg.connect_timeout_ms).min(timeout);
        let clients = PerThreadClient::new(connect, ca.as_deref())
            .map_err(err)?
            .with_pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .with_pool_max_idle(cfg.pool_max_idle_per_origin);
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&cfg.client_id),
            enc(secret.expose())
        ));
        let mut authorization = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|e| err(e.to_string()))?;
        authorization.set_sensitive(true);
        Ok(Self { operator: cfg.id.clone(), url, authorization, timeout, clients })
    }

    /// Asks whether `msisdn`'s SIM changed within `max_age_h` hours; never longer than the
    /// configured timeout; every failure is `Unknown` (logged without the number).
    pub async fn check(&self, msisdn: &Msisdn, max_age_h: u32) -> SimSwapStatus {
        let body = serde_json::json!({ "phoneNumber": msisdn.e164(), "maxAge": max_age_h }).to_string();
        let Ok(req) = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, self.authorization.clone())
            .body(Full::new(Bytes::from(body)))
        else {
            return SimSwapStatus::Unknown;
        };
        let status = match call(self.clients.get(), req, self.timeout).await {
            Ok(resp) if resp.status == StatusCode::OK => parse_answer(&resp.body),
            Ok(resp) => {
                tracing::warn!(operator = %self.operator, status = resp.status.as_u16(), code = %camara_code(&resp.body), "SIM swap check refused");
                SimSwapStatus::Unknown
            }
            Err(e) => {
                tracing::warn!(operator = %self.operator, error = %e, "SIM swap check failed");
                SimSwapStatus::Unknown
            }
        };
        tracing::debug!(operator = %self.operator, msisdn = %msisdn.masked(), ?status, "SIM swap check");
        status
    }
}

/// `{"swapped": bool}` → a definite answer; anything else → `Unknown`.
pub fn parse_answer(body: &[u8]) -> SimSwapStatus {
    #[derive(serde::Deserialize)]
    struct Answer {
        swapped: bool,
    }
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer { swapped: true }) => SimSwapStatus::Swapped,
        Ok(Answer { swapped: false }) => SimSwapStatus::NotSwapped,
        Err(_) => SimSwapStatus::Unknown,
    }
}

/// The CAMARA error `code` (`OUT_OF_RANGE`, `NOT_FOUND`, …) for logs, at most 64 characters.
fn camara_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(|c| c.chars().take(64).collect()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_definite_answer_counts() {
        assert_eq!(parse_answer(br#"{"swapped":true}"#), SimSwapStatus::Swapped);
        assert_eq!(parse_answer(br#"{"swapped":false,"extra":1}"#), SimSwapStatus::NotSwapped);
        for junk in [&b""[..], b"{}", br#"{"swapped":"true"}"#, b"<html>", br#"{"swapped":null}"#] {
            assert_eq!(parse_answer(junk), SimSwapStatus::Unknown, "{}", String::from_utf8_lossy(junk));
        }
    }

    #[test]
    fn unknown_follows_the_client_policy() {
        use SimSwapGate::*;
        for (status, policy, want) in [
            (SimSwapStatus::NotSwapped, UnknownPolicy::Deny, Passed),
            (SimSwapStatus::Swapped, UnknownPolicy::Allow, Swapped),
            (SimSwapStatus::Unknown, UnknownPolicy::Deny, UnknownDenied),
            (SimSwapStatus::Unknown, UnknownPolicy::Allow, Passed),
        ] {
            assert_eq!(gate(status, policy), want, "{status:?} {policy:?}");
        }
        assert_eq!(UnknownPolicy::from_config("deny"), UnknownPolicy::Deny);
        assert_eq!(UnknownPolicy::from_config("allow"), UnknownPolicy::Allow);
    }
}
