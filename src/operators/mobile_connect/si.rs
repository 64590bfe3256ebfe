//! Mobile Connect server-initiated (`mode = "mc_si"`, shared/protocol.md §1.4, §4): the
//! decoupled start is a form POST to the operator's `si_authorization_endpoint` (our
//! client_secret_basic credentials, `response_type=mc_si_async_code`) carrying a request object
//! signed RS256 with the gateway's active RSA key (its `kid` is in our `/jwks`): `iss` our client
//! id there, `aud` the operator issuer, `version=mc_si_r2_v1.0`, `login_hint=MSISDN:<digits>`, our
//! own nonce, the per-transaction notification token and `notification_uri =
//! <issuer>/op/{operator}/notify`. There is nothing to poll: the result arrives at that URI and
//! its ID token must carry our nonce; without a callback the transaction simply expires.
//!
//! The nonce is not stored separately: it is derived ([`si_nonce`]) from the hash of the
//! transaction's notification secret, which every transaction of a notifying operator already
//! stores. It is fresh per transaction (256 unpredictable bits in), never an RP value, and the
//! callback can recompute it on any instance. The redirect hop is the CIBA adapter's.

use super::MobileConnectCiba;
use crate::clock::SharedClock;
use crate::config::{OperatorConfig, Secret};
use crate::flow::poll::OperatorAnswer;
use crate::flow::{DeliveryMode, FailReason, OperatorRef};
use crate::operators::callback::OperatorCallback;
use crate::operators::http::call;
use crate::operators::id_token::{verify_si, TokenRejected};
use crate::operators::mobile_connect::AdapterError;
use crate::operators::{OperatorBackend, PushError, PushRequest, PushStarted, RedirectRequest, RedirectReturn};
use crate::telemetry::Metrics;
use crate::tokens::KeySet;
use async_trait::async_trait;
use base64::Engine;
use prometheus::Histogram;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

/// The Mobile Connect server-initiated version we speak.
pub const SI_VERSION: &str = "mc_si_r2_v1.0";
/// The response type of MC-SI with the result pushed to `notification_uri`.
pub const SI_RESPONSE_TYPE: &str = "mc_si_async_code";
const SCOPE: &str = "openid mc_authn";

/// Our nonce for an MC-SI transaction, from the SHA-256 (hex) of its notification secret as the
/// transaction stores it: base64url(SHA-256("mcgate mc_si nonce" ‖ 0 ‖ hash)).
pub fn si_nonce(notify_secret_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mcgate mc_si nonce\0");
    h.update(notify_secret_sha256.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// One operator reached over Mobile Connect server-initiated.
pub struct MobileConnectSi {
    /// Shared machinery: HTTP clients, credentials, metadata/JWKS cache, token policy, metrics,
    /// and the redirect hop.
    base: MobileConnectCiba,
    /// The gateway's keys (the active RS256 key signs our request objects).
    keys: Arc<KeySet>,
    /// `<issuer>/op/{operator}/notify`.
    notification_uri: String,
    /// `exp - iat` of our request objects, seconds.
    request_lifetime_s: u64,
    clock: SharedClock,
    si_seconds: Histogram,
}

impl MobileConnectSi {
    /// Builds the adapter for `cfg` (secret already resolved); `issuer` is the gateway's own.
    pub fn new(
        cfg: &OperatorConfig,
        secret: &Secret,
        base_dir: &std::path::Path,
        clock: SharedClock,
        metrics: &Metrics,
        keys: Arc<KeySet>,
        issuer: &str,
    ) -> Result<Self, AdapterError> {
        if keys.signer(jsonwebtoken::Algorithm::RS256).is_none() {
            return Err(AdapterError {
                operator: cfg.id.clone(),
                message: "mode mc_si needs an RSA signing key (RS256) in keys.signing_keys".into(),
            });
        }
        let base = MobileConnectCiba::new(cfg, secret, base_dir, clock.clone(), metrics)?;
        Ok(Self {
            base,
            keys,
            notification_uri: format!("{}/op/{}/notify", issuer.trim_end_matches('/'), cfg.id),
            request_lifetime_s: cfg.si_request_lifetime_s,
            clock,
            si_seconds: metrics.operator_seconds.with_label_values(&[&cfg.id, "si_authorize"]),
        })
    }

    /// The signed request object for `req` with `nonce` and our notification `token`.
    fn request_object(&self, req: &PushRequest<'_>, nonce: &str, token: &str) -> Result<String, PushError> {
        let now = self.clock.now_s();
        let mut claims = serde_json::json!({
            "iss": self.base.policy.audience,
            "aud": self.base.metadata.issuer(),
            "client_id": self.base.policy.audience,
            "response_type": SI_RESPONSE_TYPE,
            "scope": SCOPE,
            "version": SI_VERSION,
            "nonce": nonce,
            "login_hint": format!("MSISDN:{}", req.msisdn.value()),
            "acr_values": req.acr_values,
            "client_notification_token": token,
            "notification_uri": self.notification_uri,
            "iat": now,
            "nbf": now,
            "exp": now + self.request_lifetime_s,
            "jti": crate::clock::random_token(16),
        });
        if let Some(b) = req.binding_message {
            claims["binding_message"] = b.into();
        }
        let key = self
            .keys
            .signer(jsonwebtoken::Algorithm::RS256)
            .ok_or_else(|| PushError::Rejected("no RS256 signing key for the MC-SI request object".into()))?;
        key.sign(&claims).map_err(|e| PushError::Rejected(format!("signing the request object: {e}")))
    }

    /// A pushed result's ID token: the operator's keys, our client id, our nonce.
    async fn verify_result(&self, op: &OperatorRef, notify_secret_sha256: &str, id_token: &str) -> OperatorAnswer {
        let nonce = si_nonce(notify_secret_sha256);
        match verify_si(id_token, &self.base.metadata, &self.base.policy, &op.auth_req_id, &nonce).await {
            Ok(r) => OperatorAnswer::Approved(r),
            Err(TokenRejected::KeysUnavailable(e)) => {
                // Nothing polls an MC-SI result again: end it rather than let it hang.
                self.base.metrics.error("connect");
                tracing::warn!(operator = %self.base.id, error = %e, "operator keys unavailable for a pushed result");
                OperatorAnswer::Failed(FailReason::OperatorUnavailable)
            }
            Err(e) => {
                self.base.metrics.error("token_invalid");
                tracing::warn!(operator = %self.base.id, error = %e, "operator ID token rejected");
                OperatorAnswer::Failed(FailReason::OperatorTokenInvalid)
            }
        }
    }
}

/// A pushed MC-SI error as the transaction's outcome (shared/protocol.md §5, §7).
fn result_error(error: &str) -> OperatorAnswer {
    match error {
        "access_denied" => OperatorAnswer::Denied,
        "expired_token" => OperatorAnswer::Expired,
        "unknown_user_id" | "Not_Found_Entity" => OperatorAnswer::Failed(FailReason::NotEnrolled),
        "transaction_failed" | "temporarily_unavailable" | "server_error" => {
            OperatorAnswer::Failed(FailReason::OperatorUnavailable)
        }
        _ => OperatorAnswer::Failed(FailReason::OperatorError),
    }
}

#[async_trait]
impl OperatorBackend for MobileConnectSi {
    fn id(&self) -> &str {
        &self.base.id
    }

    fn push_capable(&self) -> bool {
        self.base.push
    }

    fn push_timeout_s(&self) -> u64 {
        self.base.push_timeout_s
    }

    async fn start_push(&self, req: &PushRequest<'_>) -> Result<PushStarted, PushError> {
        // `<tx id>.<secret>`: only the secret's hash is stored, and the nonce derives from it.
        let token = req.client_notification_token.ok_or_else(|| {
            PushError::Rejected("an mc_si operator needs a notification token for the transaction".into())
        })?;
        let secret =
            token.split_once('.').map(|(_, s)| s).filter(|s| !s.is_empty()).ok_or_else(|| {
                PushError::Rejected("the transaction's notification token is not <id>.<secret>".into())
            })?;
        let nonce = si_nonce(&crate::config::secret::secret_sha256_hex(secret));
        let endpoints = self.base.metadata.endpoints().await.map_err(|e| {
            self.base.metrics.error("connect");
            PushError::Unavailable(format!("metadata: {e}"))
        })?;
        let endpoint = endpoints
            .si_authorization
            .as_ref()
            .ok_or_else(|| PushError::Rejected("the operator publishes no si_authorization_endpoint".into()))?;
        let request = self.request_object(req, &nonce, token)?;
        let form = form_urlencoded::Serializer::new(String::with_capacity(request.len() + 128))
            .append_pair("client_id", &self.base.policy.audience)
            .append_pair("response_type", SI_RESPONSE_TYPE)
            .append_pair("scope", SCOPE)
            .append_pair("request", &request)
            .finish();
        let http_request = self.base.form_request(endpoint, form).map_err(|e| PushError::Rejected(e.to_string()))?;
        let started = Instant::now();
        let result = call(self.base.clients.get(), http_request, self.base.call_timeout).await;
        self.si_seconds.observe(started.elapsed().as_secs_f64());
        self.base.acknowledgement(result)
    }

    /// MC-SI async has no token endpoint to ask: the answer only ever arrives as a callback.
    async fn poll(&self, _op: &OperatorRef) -> OperatorAnswer {
        OperatorAnswer::Pending { slow_down: false }
    }

    async fn warm_up(&self) -> Result<(), String> {
        self.base.warm_up().await
    }

    async fn authorization_url(&self, req: &RedirectRequest<'_>) -> Result<String, PushError> {
        self.base.redirect_url(req).await
    }

    async fn finish_redirect(&self, ret: RedirectReturn<'_>) -> OperatorAnswer {
        self.base.redirect_return(ret).await
    }

    fn notification_mode(&self) -> DeliveryMode {
        DeliveryMode::Push
    }

    async fn callback_answer(&self, op: &OperatorRef, notify: &str, cb: &OperatorCallback) -> OperatorAnswer {
        match cb {
            OperatorCallback::Tokens { id_token, .. } => self.verify_result(op, notify, id_token).await,
            OperatorCallback::Error { error, error_description, .. } => {
                let answer = match self.base.mapped(error, error_description.as_deref()) {
                    Some(class) => super::class_answer(class),
                    None => result_error(error),
                };
                if matches!(answer, OperatorAnswer::Failed(_)) {
                    self.base.metrics.error("oauth_error");
                }
                let description: String = error_description.as_deref().unwrap_or("-").chars().take(200).collect();
                tracing::info!(operator = %self.base.id, error = %error, description = %description, "operator MC-SI error result");
                answer
            }
            // A bare `{auth_req_id}` means nothing in MC-SI (no token endpoint to fetch from).
            OperatorCallback::Ping { .. } => {
                tracing::warn!(operator = %self.base.id, "MC-SI operator sent a body without a result; ignored");
                OperatorAnswer::Pending { slow_down: false }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_derived_from_the_stored_hash_fresh_per_transaction_and_url_safe() {
        let a = si_nonce(&crate::config::secret::secret_sha256_hex("secret-a"));
        let b = si_nonce(&crate::config::secret::secret_sha256_hex("secret-b"));
        assert_ne!(a, b);
        assert_eq!(a, si_nonce(&crate::config::secret::secret_sha256_hex("secret-a")), "recomputable");
        assert_eq!(a.len(), 43, "256 bits, base64url");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn pushed_errors_map_to_outcomes() {
        assert_eq!(result_error("access_denied"), OperatorAnswer::Denied);
        assert_eq!(result_error("expired_token"), OperatorAnswer::Expired);
        assert_eq!(result_error("unknown_user_id"), OperatorAnswer::Failed(FailReason::NotEnrolled));
        assert_eq!(result_error("server_error"), OperatorAnswer::Failed(FailReason::OperatorUnavailable));
        assert_eq!(result_error("invalid_request"), OperatorAnswer::Failed(FailReason::OperatorError));
    }
}
