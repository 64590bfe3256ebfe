//! The simulated operator's Mobile Connect server-initiated endpoint, `POST /si-authorize`
//! (`response_type=mc_si_async_code`, client_secret_basic already checked): the `request` object
//! must verify against the gateway's JWKS (RS256, `kid` from that JWKS only), name this OP as
//! `aud` and the gateway's client id as `iss`, repeat the outer `client_id`, `response_type` and
//! `scope`, and carry `version=mc_si_r2_v1.0`, `nonce`, an MSISDN `login_hint`,
//! `client_notification_token`, `notification_uri`, `exp iat nbf jti`. The person is scripted by
//! the MSISDN's last digit like the CIBA side; the answer is POSTed (success with an ID token
//! carrying the gateway's nonce, or `{auth_req_id, error, error_description}`) to the
//! notification endpoint set on the simulator, else to the request's `notification_uri`.

use super::{json_ok, oauth, Outcome, SimOperator, SimTx};
use crate::clock::Clock;
use crate::msisdn::{Msisdn, ParseRules};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The MC-SI version the simulator accepts.
const VERSION: &str = "mc_si_r2_v1.0";
/// Lifetime of a simulated MC-SI transaction, seconds.
const EXPIRES_IN_S: u64 = 300;

/// One `si-authorize` request the simulator accepted.
#[derive(Debug, Clone)]
pub struct SiRequest {
    /// The compact JWS as received.
    pub request: String,
    /// Its verified claims.
    pub claims: Value,
    /// The operator transaction id answered.
    pub auth_req_id: String,
}

type Refusal = (StatusCode, &'static str, String);

impl SimOperator {
    /// Where the gateway publishes its keys (its `/jwks`), for checking request objects.
    pub fn set_gateway_jwks_uri(&self, url: String) {
        *self.gateway_jwks_uri.lock() = Some(url);
    }

    /// Every MC-SI request accepted so far.
    pub fn si_requests(&self) -> Vec<SiRequest> {
        self.si_requests.lock().clone()
    }

    /// Signs `claims` with this OP's published key, as its ID tokens are (tests build tokens
    /// with chosen claims, e.g. another nonce).
    pub fn sign_id_token(&self, claims: &Value) -> Option<String> {
        self.keys.active().sign(claims).ok()
    }

    /// `POST /si-authorize`.
    pub(super) async fn si_authorize(self: &Arc<Self>, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        self.stats.si_authorize.fetch_add(1, Ordering::Relaxed);
        let (jws, claims) = match self.si_request(form).await {
            Ok(v) => v,
            Err((status, error, desc)) => return oauth(status, error, &desc),
        };
        let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let Ok(msisdn) = Msisdn::parse(&text("login_hint"), &ParseRules::default()) else {
            return oauth(StatusCode::BAD_REQUEST, "invalid_request", "login_hint must be an MSISDN");
        };
        let outcome = Outcome::for_msisdn(&msisdn);
        if let Some(refused) = self.answer_at_once(outcome).await {
            return refused;
        }
        let id = crate::clock::random_token(16);
        let now = self.clock.now_ms();
        self.txs.lock().insert(
            id.clone(),
            SimTx {
                msisdn,
                outcome,
                created_ms: now,
                expires_ms: now + EXPIRES_IN_S * 1000,
                acr_values: claims.get("acr_values").and_then(Value::as_str).unwrap_or("2").to_owned(),
                collected: false,
                nonce: Some(text("nonce")),
            },
        );
        let endpoint = self.notification_endpoint.lock().clone().unwrap_or_else(|| text("notification_uri"));
        let token = text("client_notification_token");
        self.si_requests.lock().push(SiRequest {
            request: jws,
            claims: Value::Object(claims),
            auth_req_id: id.clone(),
        });
        tokio::spawn(self.clone().si_call_back(id.clone(), endpoint, token));
        json_ok(json!({"auth_req_id": id, "expires_in": EXPIRES_IN_S}))
    }

    /// Checks the outer form and the signed request object; returns the JWS and its claims.
    async fn si_request(&self, form: &HashMap<String, String>) -> Result<(String, Map<String, Value>), Refusal> {
        let bad = |error: &'static str, d: &str| (StatusCode::BAD_REQUEST, error, d.to_owned());
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if get("client_id") != Some(self.cfg.client_id.as_str()) {
            return Err(bad("invalid_request", "client_id must be the authenticated client"));
        }
        if get("response_type") != Some("mc_si_async_code") {
            return Err(bad("unsupported_response_type", "response_type must be mc_si_async_code"));
        }
        if !get("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
            return Err(bad("invalid_scope", "scope must include openid"));
        }
        let jws = get("request").ok_or_else(|| bad("invalid_request", "request is required"))?;
        let header = jsonwebtoken::decode_header(jws).map_err(|_| bad("invalid_request_object", "bad JWS"))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad("invalid_request_object", "request objects must be RS256"));
        }
        let kid = header.kid.ok_or_else(|| bad("invalid_request_object", "kid is required"))?;
        let keys = self.gateway_keys().await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "server_error", e))?;
        let jwk = keys.find(&kid).ok_or_else(|| bad("invalid_request_object", "kid not in the client's JWKS"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| bad("invalid_request_object", "unusable key"))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[self.issuer.as_str()]);
        v.set_issuer(&[self.cfg.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "nbf"]);
        v.validate_nbf = true;
        v.leeway = 60;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(jws, &key, &v)
            .map_err(|e| (StatusCode::BAD_REQUEST, "invalid_request_object", e.to_string()))?
            .claims;
        for outer in ["client_id", "response_type", "scope"] {
            if claims.get(outer).and_then(Value::as_str) != get(outer) {
                return Err(bad("invalid_request", "outer parameters must repeat the request object's"));
            }
        }
        if claims.get("version").and_then(Value::as_str) != Some(VERSION) {
            return Err(bad("invalid_request", "version must be mc_si_r2_v1.0"));
        }
        for required in ["nonce", "login_hint", "client_notification_token", "notification_uri", "jti"] {
            if claims.get(required).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(bad(
                    "invalid_request",
                    "nonce, login_hint, client_notification_token, notification_uri and jti are required",
                ));
            }
        }
        if !claims.get("iat").is_some_and(Value::is_u64) {
            return Err(bad("invalid_request_object", "iat is required"));
        }
        Ok((jws.to_owned(), claims))
    }

    /// The gateway's JWKS, fetched for each request (the simulator keeps no cache).
    async fn gateway_keys(&self) -> Result<JwkSet, String> {
        let url = self.gateway_jwks_uri.lock().clone().ok_or("the gateway's JWKS URL is not configured")?;
        let client = self.callbacks.as_ref().ok_or("no HTTP client")?;
        let req =
            Request::builder().method(Method::GET).uri(url).body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let resp =
            crate::operators::http::call(client.get(), req, Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&resp.body).map_err(|e| format!("gateway JWKS: {e}"))
    }

    /// After the person answered, pushes the MC-SI result for `id` (once).
    async fn si_call_back(self: Arc<Self>, id: String, endpoint: String, token: String) {
        tokio::time::sleep(self.cfg.approve_after + Duration::from_millis(20)).await;
        let body = {
            let now = self.clock.now_ms();
            let mut txs = self.txs.lock();
            let Some(tx) = txs.get_mut(&id) else { return };
            if tx.outcome == Outcome::NeverAnswer {
                return;
            }
            match self.result(&id, tx, now) {
                Ok(mut tokens) => {
                    tokens["auth_req_id"] = json!(id);
                    tokens
                }
                Err((_, "authorization_pending", _)) => return,
                Err((_, error, desc)) => json!({"auth_req_id": id, "error": error, "error_description": desc}),
            }
        };
        self.post_callback(endpoint, &token, body).await;
    }
}
