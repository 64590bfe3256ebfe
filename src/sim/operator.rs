//! A simulated operator: a Mobile Connect CIBA OP with its own metadata, JWKS, RS256 ID tokens,
//! `bc-authorize` and `token` (poll), and client_secret_basic authentication of the gateway;
//! plus the redirect flow's `authorize` and code grant (`authorize`), scripted the same way.
//! What happens is chosen by the last digit of the MSISDN ([`Outcome::for_msisdn`]):
//!
//! | last digit | outcome |
//! |---|---|
//! | 1, 8, 9 | approve after `approve_after_ms` (acr 2, amr `SIM_OK`) |
//! | 2 | the person denies (after `approve_after_ms`) |
//! | 3 | the person never answers |
//! | 4 | unknown subscriber: `bc-authorize` → 400 `unknown_user_id` |
//! | 5 | `bc-authorize` → HTTP 500 |
//! | 6 | slow: `bc-authorize` answers after `slow_ms` |
//! | 7 | approve with PIN (acr 3, amr `SIM_PIN`) |
//! | 0 | approve, but the ID token is signed with a key not in the JWKS (forged) |
//!
//! With [`SimNotification::Ping`] or [`SimNotification::Push`] (the mode the gateway registered
//! with this OP, CIBA §4) the simulator also calls the notification endpoint set with
//! [`SimOperator::set_notification_endpoint`] once the person answered, with the
//! `client_notification_token` the gateway sent, and records each call ([`SimOperator::sent`]).
//!
//! A CAMARA SIM Swap v2 `check` is served at `/sim-swap/v2/check`, scripted by the
//! second-to-last digit ([`sim_swap`]).
//!
//! Mobile Connect server-initiated is always served too (`si`): `POST /si-authorize` checks
//! the gateway's signed request object against the gateway's JWKS
//! ([`SimOperator::set_gateway_jwks_uri`]) and pushes the person's answer (scripted as above,
//! with an ID token carrying the gateway's nonce) to the notification endpoint.

mod authorize;
mod si;
pub mod sim_swap;

pub use si::SiRequest;

use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::msisdn::{Msisdn, ParseRules};
use crate::server::conn::{serve, ConnOptions, Handler};
use crate::tokens::keys::{KeySet, SigningKey};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A scripted outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Approves (acr 2).
    Approve,
    /// Denies.
    Deny,
    /// Never answers.
    NeverAnswer,
    /// Unknown subscriber.
    UnknownSubscriber,
    /// HTTP 500.
    ServerError,
    /// Slow acknowledgement.
    Slow,
    /// Approves with PIN (acr 3).
    ApprovePin,
    /// Approves with a token signed by a key that is not published.
    ForgedToken,
}

impl Outcome {
    /// The outcome scripted for a number.
    pub fn for_msisdn(m: &Msisdn) -> Self {
        match m.value() % 10 {
            2 => Self::Deny,
            3 => Self::NeverAnswer,
            4 => Self::UnknownSubscriber,
            5 => Self::ServerError,
            6 => Self::Slow,
            7 => Self::ApprovePin,
            0 => Self::ForgedToken,
            _ => Self::Approve,
        }
    }
}

/// How the simulated OP tells the gateway about results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SimNotification {
    /// The gateway polls.
    #[default]
    Poll,
    /// POST `{auth_req_id}`; the gateway then fetches at `/token`.
    Ping,
    /// POST the tokens or the error.
    Push,
}

/// One callback the simulator made.
#[derive(Debug, Clone)]
pub struct SentCallback {
    /// The `Authorization` header value sent.
    pub authorization: String,
    /// The JSON body sent.
    pub body: String,
    /// Status answered (0: no answer).
    pub status: u16,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Operator id (shown in its answers and tokens).
    pub operator_id: String,
    /// The gateway's client id here.
    pub client_id: String,
    /// The gateway's client secret here.
    pub client_secret: Secret,
    /// Delay before the simulated person answers.
    pub approve_after: Duration,
    /// Delay of a "slow" acknowledgement.
    pub slow: Duration,
    /// Poll interval announced, seconds.
    pub interval_s: u64,
    /// Whether (and how) the OP calls the gateway back.
    pub notification: SimNotification,
}

struct SimTx {
    msisdn: Msisdn,
    outcome: Outcome,
    created_ms: u64,
    expires_ms: u64,
    acr_values: String,
    collected: bool,
    /// The gateway's nonce (MC server-initiated), put in the ID token.
    nonce: Option<String>,
}

/// What the person's answer is at `/token` (or in a push): tokens, or an OAuth error.
type SimResult = Result<serde_json::Value, (StatusCode, &'static str, &'static str)>;

/// Counters a test can read.
#[derive(Debug, Default)]
pub struct SimStats {
    /// `bc-authorize` requests received.
    pub bc_authorize: AtomicU64,
    /// `token` requests received.
    pub token: AtomicU64,
    /// `authorize` (redirect flow) requests received.
    pub authorize: AtomicU64,
    /// `si-authorize` (Mobile Connect server-initiated) requests received.
    pub si_authorize: AtomicU64,
    /// `sim-swap/v2/check` requests received.
    pub sim_swap: AtomicU64,
}

/// A running simulated operator.
pub struct SimOperator {
    cfg: SimConfig,
    issuer: String,
    keys: Arc<KeySet>,
    forged: Arc<SigningKey>,
    metadata: Bytes,
    txs: Mutex<HashMap<String, SimTx>>,
    codes: Mutex<HashMap<String, authorize::SimCode>>,
    clock: SystemClock,
    /// Request counters.
    pub stats: SimStats,
    notification_endpoint: Mutex<Option<String>>,
    sent: Mutex<Vec<SentCallback>>,
    callbacks: Option<crate::operators::http::PerThreadClient>,
    gateway_jwks_uri: Mutex<Option<String>>,
    si_requests: Mutex<Vec<SiRequest>>,
    /// The last `traceparent` received, by path (bounded by the paths served).
    traceparents: Mutex<HashMap<String, String>>,
}

impl SimOperator {
    /// Builds a simulator serving at `issuer`; `keys` are its signing keys, `forged` a key it
    /// never publishes.
    pub fn new(cfg: SimConfig, issuer: String, keys: Arc<KeySet>, forged: Arc<SigningKey>) -> Self {
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "backchannel_authentication_endpoint": format!("{issuer}/bc-authorize"),
            "jwks_uri": format!("{issuer}/jwks"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "code_challenge_methods_supported": ["S256"],
            "backchannel_token_delivery_modes_supported": ["poll", "ping", "push"],
            "grant_types_supported": ["urn:openid:params:grant-type:ciba", "authorization_code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "acr_values_supported": ["2", "3"],
            "scopes_supported": ["openid", "mc_authn"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code", "mc_si_async_code"],
            "si_authorization_endpoint": format!("{issuer}/si-authorize"),
        });
        Self {
            cfg,
            issuer,
            keys,
            forged,
            metadata: Bytes::from(metadata.to_string()),
            txs: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            clock: SystemClock,
            stats: SimStats::default(),
            notification_endpoint: Mutex::new(None),
            sent: Mutex::new(Vec::new()),
            callbacks: crate::operators::http::PerThreadClient::new(Duration::from_secs(1), None).ok(),
            gateway_jwks_uri: Mutex::new(None),
            si_requests: Mutex::new(Vec::new()),
            traceparents: Mutex::new(HashMap::new()),
        }
    }

    /// Where ping/push callbacks go (the gateway's `/op/{operator}/notify`).
    pub fn set_notification_endpoint(&self, url: String) {
        *self.notification_endpoint.lock() = Some(url);
    }

    /// The last `traceparent` header received at `path` (e.g. `/bc-authorize`, `/token`).
    pub fn last_traceparent(&self, path: &str) -> Option<String> {
        self.traceparents.lock().get(path).cloned()
    }

    /// Every callback made so far.
    pub fn sent(&self) -> Vec<SentCallback> {
        self.sent.lock().clone()
    }

    /// After the person answered, pings or pushes the gateway about `id` (once).
    async fn call_back(self: Arc<Self>, id: String, token: String) {
        tokio::time::sleep(self.cfg.approve_after + Duration::from_millis(20)).await;
        let Some(endpoint) = self.notification_endpoint.lock().clone() else {
            return;
        };
        let body = {
            let now = self.clock.now_ms();
            let mut txs = self.txs.lock();
            let Some(tx) = txs.get_mut(&id) else { return };
            match (self.cfg.notification, tx.outcome) {
                (_, Outcome::NeverAnswer) => return,
                (SimNotification::Ping, _) => json!({ "auth_req_id": id }),
                _ => match self.result(&id, tx, now) {
                    Ok(mut tokens) => {
                        tokens["auth_req_id"] = json!(id);
                        tokens
                    }
                    Err((_, "authorization_pending", _)) => return,
                    Err((_, error, desc)) => json!({"auth_req_id": id, "error": error, "error_description": desc}),
                },
            }
        };
        self.post_callback(endpoint, &token, body).await;
    }

    /// POSTs `body` to `endpoint` with `Authorization: Bearer <token>` and records the call.
    async fn post_callback(&self, endpoint: String, token: &str, body: serde_json::Value) {
        let Some(client) = self.callbacks.as_ref() else { return };
        let authorization = format!("Bearer {token}");
        let Ok(req) = Request::builder()
            .method(Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, &authorization)
            .body(Full::new(Bytes::from(body.to_string())))
        else {
            return;
        };
        let status = crate::operators::http::call(client.get(), req, Duration::from_secs(5))
            .await
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        self.sent.lock().push(SentCallback { authorization, body: body.to_string(), status });
    }

    /// Binds `addr` (port 0 for ephemeral), and serves until `shutdown`; returns the simulator
    /// and its issuer URL.
    pub async fn start(
        cfg: SimConfig,
        addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::from_std(crate::server::bind(addr)?)?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let keys = Arc::new(KeySet::generate().map_err(std::io::Error::other)?);
        let forged_pem = crate::tokens::keys::generate_rsa_pkcs8_pem().map_err(std::io::Error::other)?;
        let forged = Arc::new(SigningKey::from_rsa_pem(forged_pem.as_bytes()).map_err(std::io::Error::other)?);
        let sim = Arc::new(Self::new(cfg, issuer, keys, forged));
        tokio::spawn(serve(listener, None, sim.clone(), shutdown, ConnOptions::default()));
        Ok(sim)
    }

    /// Operator id.
    pub fn operator_id(&self) -> &str {
        &self.cfg.operator_id
    }

    /// Issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn authenticated(&self, req: &http::request::Parts) -> bool {
        let Some(v) = req.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(b64) = v.strip_prefix("Basic ") else { return false };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else { return false };
        let raw = String::from_utf8_lossy(&raw);
        let Some((id, secret)) = raw.split_once(':') else { return false };
        // RFC 6749 §2.3.1: form-urlencoded, so `+` is a space.
        let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        dec(id) == self.cfg.client_id && self.cfg.client_secret.ct_eq(&dec(secret))
    }

    async fn bc_authorize(self: &Arc<Self>, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        self.stats.bc_authorize.fetch_add(1, Ordering::Relaxed);
        if !form.get("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
            return oauth(StatusCode::BAD_REQUEST, "invalid_scope", "scope must include openid");
        }
        let Some(msisdn) = form.get("login_hint").and_then(|h| Msisdn::parse(h, &ParseRules::default()).ok()) else {
            return oauth(StatusCode::BAD_REQUEST, "invalid_request", "login_hint must be an MSISDN");
        };
        let outcome = Outcome::for_msisdn(&msisdn);
        if let Some(refused) = self.answer_at_once(outcome).await {
            return refused;
        }
        let expires_in = form.get("requested_expiry").and_then(|e| e.parse::<u64>().ok()).unwrap_or(300).min(600);
        let id = crate::clock::random_token(16);
        let now = self.clock.now_ms();
        self.txs.lock().insert(
            id.clone(),
            SimTx {
                msisdn,
                outcome,
                created_ms: now,
                expires_ms: now + expires_in * 1000,
                acr_values: form.get("acr_values").cloned().unwrap_or_else(|| "2".into()),
                collected: false,
                nonce: None,
            },
        );
        if let (SimNotification::Ping | SimNotification::Push, Some(token)) =
            (self.cfg.notification, form.get("client_notification_token"))
        {
            tokio::spawn(self.clone().call_back(id.clone(), token.clone()));
        }
        json_ok(json!({"auth_req_id": id, "expires_in": expires_in, "interval": self.cfg.interval_s}))
    }

    fn token(&self, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        self.stats.token.fetch_add(1, Ordering::Relaxed);
        if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
            return self.token_code(form);
        }
        if form.get("grant_type").map(String::as_str) != Some("urn:openid:params:grant-type:ciba") {
            return oauth(StatusCode::BAD_REQUEST, "unsupported_grant_type", "CIBA grant only");
        }
        let Some(id) = form.get("auth_req_id") else {
            return oauth(StatusCode::BAD_REQUEST, "invalid_request", "auth_req_id is required");
        };
        let now = self.clock.now_ms();
        let mut txs = self.txs.lock();
        let Some(tx) = txs.get_mut(id) else {
            return oauth(StatusCode::BAD_REQUEST, "invalid_grant", "unknown auth_req_id");
        };
        match self.result(id, tx, now) {
            Ok(tokens) => json_ok(tokens),
            Err((status, error, desc)) => oauth(status, error, desc),
        }
    }

    /// The person's answer for `tx` at `now` ms; an approval is handed out once.
    fn result(&self, id: &str, tx: &mut SimTx, now: u64) -> SimResult {
        const PENDING: (StatusCode, &str, &str) =
            (StatusCode::BAD_REQUEST, "authorization_pending", "waiting for the user");
        if tx.collected {
            return Err((StatusCode::BAD_REQUEST, "invalid_grant", "already collected"));
        }
        if now >= tx.expires_ms {
            return Err((StatusCode::BAD_REQUEST, "expired_token", "expired"));
        }
        let answered = now >= tx.created_ms + self.cfg.approve_after.as_millis() as u64;
        let (acr, amr, key) = match tx.outcome {
            _ if !answered => return Err(PENDING),
            Outcome::NeverAnswer => return Err(PENDING),
            Outcome::Deny => return Err((StatusCode::FORBIDDEN, "access_denied", "user_denied")),
            Outcome::ApprovePin => ("3", "SIM_PIN", self.keys.active()),
            Outcome::ForgedToken => ("2", "SIM_OK", &*self.forged),
            _ => ("2", "SIM_OK", self.keys.active()),
        };
        let acr = if acr == "3" && !tx.acr_values.split(' ').any(|a| a == "3") { "2" } else { acr };
        tx.collected = true;
        let sub = crate::tokens::id_token::half_hash(&format!("{}:{}", self.cfg.operator_id, tx.msisdn.value()));
        let now_s = now / 1000;
        let mut claims = json!({
            "iss": self.issuer, "aud": self.cfg.client_id, "sub": sub, "iat": now_s, "exp": now_s + 300,
            "auth_time": now_s, "acr": acr, "amr": [amr], "urn:openid:params:jwt:claim:auth_req_id": id,
        });
        if let Some(n) = &tx.nonce {
            claims["nonce"] = json!(n);
        }
        match key.sign(&claims) {
            Ok(id_token) => Ok(json!({
                "access_token": crate::clock::random_token(32), "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
            })),
            Err(_) => Err((StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed")),
        }
    }
}

fn json_ok(v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl SimOperator {
    /// The outcomes the simulated operator answers before acknowledging, the same at its CIBA and
    /// SI endpoints: an unknown subscriber, a 500, or (`Slow`) a delay before the acknowledgement.
    pub(crate) async fn answer_at_once(&self, outcome: Outcome) -> Option<Response<Full<Bytes>>> {
        match outcome {
            Outcome::UnknownSubscriber => {
                Some(oauth(StatusCode::BAD_REQUEST, "unknown_user_id", "subscriber not enrolled"))
            }
            Outcome::ServerError => Some(oauth(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "simulated failure")),
            Outcome::Slow => {
                tokio::time::sleep(self.cfg.slow).await;
                None
            }
            _ => None,
        }
    }
}

fn oauth(status: StatusCode, error: &str, desc: &str) -> Response<Full<Bytes>> {
    let mut r = json_ok(json!({"error": error, "error_description": desc}));
    *r.status_mut() = status;
    r
}

impl Handler for SimOperator {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        if let Some(tp) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
            self.traceparents.lock().insert(path.clone(), tp.to_owned());
        }
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/.well-known/openid-configuration") => {
                json_ok(serde_json::from_slice(&self.metadata).unwrap_or_default())
            }
            (Method::GET, "/jwks") => {
                let mut r = Response::new(Full::new(self.keys.jwks_json()));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            (Method::GET, "/authorize") => self.authorize(req.uri().query().unwrap_or("")).await,
            (Method::POST, "/sim-swap/v2/check") => {
                let (parts, body) = req.into_parts();
                if !self.authenticated(&parts) {
                    return oauth(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "client authentication failed");
                }
                match Limited::new(body, 64 * 1024).collect().await {
                    Ok(b) => self.sim_swap_check(&b.to_bytes()).await,
                    Err(_) => oauth(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "unreadable body"),
                }
            }
            (Method::POST, "/bc-authorize" | "/token" | "/si-authorize") => {
                let (parts, body) = req.into_parts();
                if !self.authenticated(&parts) {
                    return oauth(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
                }
                let Ok(body) = Limited::new(body, 64 * 1024).collect().await.map(|b| b.to_bytes()) else {
                    return oauth(StatusCode::BAD_REQUEST, "invalid_request", "unreadable body");
                };
                let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
                if path == "/token" {
                    self.token(&form)
                } else if path == "/si-authorize" {
                    self.si_authorize(&form).await
                } else {
                    self.bc_authorize(&form).await
                }
            }
            _ => oauth(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }
}
