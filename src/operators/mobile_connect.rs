//! The Mobile Connect CIBA adapter: `bc-authorize` at the operator with the gateway's own
//! credentials (client_secret_basic), then polls of the operator's token endpoint honouring its
//! `interval`/`slow_down`, and verification of the ID token it returns; the redirect flow's
//! hop lives in `redirect`, the Mobile Connect server-initiated variant in `si`. Operator error codes are mapped to the flow's classes here and
//! nowhere else: first through the operator's `error_map` (shared/protocol.md §5, exact
//! `error:description`, then `error`; [`ErrorMap::lookup`]), then by the built-in rules below.
//! The map applies to the `bc-authorize` (and MC-SI `si-authorize`) answer, token-endpoint
//! errors, pushed error bodies and the redirect hop's error return; CIBA's own
//! `authorization_pending` / `slow_down` are protocol states, never mapped.

mod redirect;
mod si;

pub use si::{si_nonce, MobileConnectSi};

use super::callback::OperatorCallback;
use super::http::{call, CallError, OperatorResponse, PerThreadClient};
use super::id_token::{verify, TokenPolicy, TokenRejected};
use super::metadata::{MetadataCache, PinnedEndpoints};
use super::{OperatorBackend, PushError, PushRequest, PushStarted};
use crate::clock::SharedClock;
use crate::config::{OperatorConfig, Secret};
use crate::flow::fallback::{ErrorMap, SignalClass};
use crate::flow::poll::OperatorAnswer;
use crate::flow::{DeliveryMode, FailReason, OperatorRef};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use prometheus::{Histogram, IntCounter};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Errors building the adapter from config.
#[derive(Debug, thiserror::Error)]
#[error("operator {operator}: {message}")]
pub struct AdapterError {
    operator: String,
    message: String,
}

struct CallMetrics {
    bc_seconds: Histogram,
    token_seconds: Histogram,
    errors: HashMap<&'static str, IntCounter>,
}

impl CallMetrics {
    fn error(&self, kind: &'static str) {
        super::resilience::note_failure(kind);
        if let Some(c) = self.errors.get(kind) {
            c.inc();
        }
    }
}

/// One operator reached over Mobile Connect CIBA.
pub struct MobileConnectCiba {
    id: String,
    push: bool,
    push_timeout_s: u64,
    clients: PerThreadClient,
    basic_auth: HeaderValue,
    call_timeout: Duration,
    metadata: MetadataCache,
    policy: TokenPolicy,
    metrics: CallMetrics,
    notification: DeliveryMode,
    /// The operator's `error_map` overrides (validated at load).
    error_map: ErrorMap,
}

#[derive(Deserialize)]
struct Ack {
    auth_req_id: String,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

impl MobileConnectCiba {
    /// Builds the adapter for `cfg` (secret already resolved).
    pub fn new(
        cfg: &OperatorConfig,
        secret: &Secret,
        base_dir: &std::path::Path,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Result<Self, AdapterError> {
        let err = |message: String| AdapterError { operator: cfg.id.clone(), message };
        let ca = cfg.tls_ca_file.as_ref().map(|p| base_dir.join(p));
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let clients = PerThreadClient::new(connect_timeout, ca.as_deref())
            .map_err(err)?
            .with_pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
            .with_pool_max_idle(cfg.pool_max_idle_per_origin);
        let algorithms = cfg
            .id_token_algs
            .iter()
            .map(|a| a.parse::<jsonwebtoken::Algorithm>().map_err(|_| err(format!("unknown algorithm {a}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let basic_auth = basic_authorization(&cfg.client_id, secret.expose()).map_err(|e| err(e.to_string()))?;
        let call_timeout = Duration::from_millis(cfg.call_timeout_ms);
        let metadata = MetadataCache::new(
            cfg.issuer.clone(),
            PinnedEndpoints {
                backchannel: cfg.backchannel_authentication_endpoint.clone(),
                token: cfg.token_endpoint.clone(),
                jwks: cfg.jwks_uri.clone(),
                authorization: cfg.authorization_endpoint.clone(),
                si_authorization: cfg.si_authorization_endpoint.clone(),
            },
            clients.shared(),
            clock,
            call_timeout,
            cfg.metadata_ttl_s,
            cfg.jwks_min_refetch_s,
        );
        let error_map = ErrorMap::parse(&cfg.error_map).map_err(|errors| {
            let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
            err(format!("invalid error_map entries {keys:?}"))
        })?;
        let errors = crate::telemetry::metrics::OPERATOR_ERROR_KINDS
            .iter()
            .map(|k| (*k, metrics.operator_errors.with_label_values(&[cfg.id.as_str(), k])))
            .collect();
        Ok(Self {
            id: cfg.id.clone(),
            push: cfg.push,
            push_timeout_s: cfg.push_timeout_s,
            clients,
            basic_auth,
            call_timeout,
            metadata,
            policy: TokenPolicy { algorithms, audience: cfg.client_id.clone(), skew_s: cfg.clock_skew_s },
            metrics: CallMetrics {
                bc_seconds: metrics.operator_seconds.with_label_values(&[&cfg.id, "bc_authorize"]),
                token_seconds: metrics.operator_seconds.with_label_values(&[&cfg.id, "token"]),
                errors,
            },
            notification: DeliveryMode::from_config(&cfg.notification),
            error_map,
        })
    }

    /// POSTs `form` to the operator's token endpoint (timed, failures counted). A request that
    /// cannot be built is `failed{operator_error}`; no answer or a 5xx is `on_failure` (the CIBA
    /// poll keeps waiting, a code redemption is `operator_unavailable`); anything else is the
    /// caller's to read.
    async fn token_exchange(
        &self,
        token: &Uri,
        form: String,
        on_failure: OperatorAnswer,
    ) -> Result<OperatorResponse, OperatorAnswer> {
        let Ok(request) = self.form_request(token, form) else {
            return Err(OperatorAnswer::Failed(FailReason::OperatorError));
        };
        // The CIBA poll (`on_failure` pending) is idempotent: one 5xx is retried within the
        // retry budget (L-03). A code redemption may have used the code: never retried.
        let retry_form = matches!(on_failure, OperatorAnswer::Pending { .. }).then(|| request.body().clone());
        let started = Instant::now();
        let mut result = call(self.clients.get(), request, self.call_timeout).await;
        if let Some(body) = retry_form {
            if matches!(&result, Ok(r) if r.status.is_server_error()) && super::resilience::may_retry("token") {
                super::resilience::retry_pause().await;
                if let Ok(again) = self.form_request_body(token, body) {
                    result = call(self.clients.get(), again, self.call_timeout).await;
                }
            }
        }
        self.metrics.token_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(r) if r.status.is_server_error() => {
                self.metrics.error("http_5xx");
                Err(on_failure)
            }
            Ok(r) => Ok(r),
            Err(e) => {
                self.metrics.error(e.kind());
                Err(on_failure)
            }
        }
    }

    fn form_request(&self, uri: &Uri, form: String) -> Result<Request<Full<Bytes>>, http::Error> {
        self.form_request_body(uri, Full::new(Bytes::from(form)))
    }

    fn form_request_body(&self, uri: &Uri, body: Full<Bytes>) -> Result<Request<Full<Bytes>>, http::Error> {
        // Built in place: each `Request::builder()` step moves the whole request.
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::AUTHORIZATION, self.basic_auth.clone());
        Ok(request)
    }
}

impl MobileConnectCiba {
    /// Verifies the operator's ID token for `op` (polled or pushed).
    async fn verify_id_token(&self, op: &OperatorRef, id_token: &str) -> OperatorAnswer {
        match verify(id_token, &self.metadata, &self.policy, &op.auth_req_id).await {
            Ok(r) => OperatorAnswer::Approved(r),
            Err(TokenRejected::KeysUnavailable(_)) => {
                self.metrics.error("connect");
                OperatorAnswer::Pending { slow_down: false }
            }
            Err(e) => {
                self.metrics.error("token_invalid");
                tracing::warn!(operator = %self.id, error = %e, "operator ID token rejected");
                OperatorAnswer::Failed(FailReason::OperatorTokenInvalid)
            }
        }
    }

    /// The operator's `error_map` class for an OAuth error, if an entry applies (logged: the
    /// codes are the operator's, never a secret; the description is not logged).
    fn mapped(&self, error: &str, description: Option<&str>) -> Option<SignalClass> {
        let class = self.error_map.lookup(error, description)?;
        tracing::info!(operator = %self.id, error, class = class.as_str(), "operator error classified by error_map");
        Some(class)
    }

    /// Maps an operator's result error (token endpoint answer or pushed error): the
    /// `error_map` first, then the built-in rules.
    fn result_error(&self, error: &str, description: Option<&str>) -> OperatorAnswer {
        let answer = match error {
            "authorization_pending" | "slow_down" => poll_error(Some(error)),
            _ => mapped_result(self.mapped(error, description), error),
        };
        if matches!(answer, OperatorAnswer::Failed(_)) {
            self.metrics.error("oauth_error");
        }
        answer
    }

    /// Maps an operator's OAuth error at its backchannel endpoint: the `error_map` first, then
    /// the built-in rules.
    fn backchannel_error(&self, e: OAuthError) -> PushError {
        mapped_push_error(self.mapped(&e.error, e.error_description.as_deref()), e)
    }

    /// What the operator's answer to a decoupled start (CIBA `bc-authorize` or MC-SI
    /// `si-authorize`, both `{auth_req_id, expires_in}`) means, classified per §5.
    fn acknowledgement(&self, result: Result<OperatorResponse, CallError>) -> Result<PushStarted, PushError> {
        let resp = result.map_err(|e| {
            self.metrics.error(e.kind());
            match e {
                CallError::Connect(_) => PushError::Unavailable(e.to_string()),
                _ => PushError::MaybeDelivered(e.to_string()),
            }
        })?;
        if resp.status.is_success() {
            let ack: Ack = serde_json::from_slice(&resp.body).map_err(|_| {
                self.metrics.error("bad_answer");
                PushError::MaybeDelivered("operator acknowledgement is not valid JSON".into())
            })?;
            if ack.auth_req_id.is_empty() || ack.auth_req_id.len() > 1024 {
                self.metrics.error("bad_answer");
                return Err(PushError::MaybeDelivered("operator acknowledgement has no usable auth_req_id".into()));
            }
            return Ok(PushStarted {
                auth_req_id: ack.auth_req_id,
                expires_in: ack.expires_in,
                interval_s: ack.interval.unwrap_or(5).max(1),
            });
        }
        if resp.status.is_server_error() {
            self.metrics.error("http_5xx");
            return Err(PushError::Unavailable(format!("HTTP {}", resp.status.as_u16())));
        }
        self.metrics.error("oauth_error");
        match oauth_error(&resp.body) {
            Some(e) => Err(self.backchannel_error(e)),
            None => Err(PushError::Rejected(format!("HTTP {} without an OAuth error", resp.status.as_u16()))),
        }
    }
}

fn oauth_error(body: &[u8]) -> Option<OAuthError> {
    serde_json::from_slice(body).ok()
}

/// `client_secret_basic` credentials: RFC 6749 §2.3.1 form-urlencodes id and secret before
/// joining them with `:` (a `:` in the secret must not end the user part). The form encoding
/// leaves `*-._` alone, so the usual base64url secrets travel as they are and servers that
/// skip the decoding step still accept them.
fn basic_authorization(client_id: &str, secret: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
    let mut value = HeaderValue::from_str(&format!("Basic {basic}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Longest operator `error_description` kept for our logs.
const MAX_DESCRIPTION: usize = 200;

/// `error: description` (bounded) for our logs and the RP-hidden detail.
fn describe(e: &OAuthError) -> String {
    let d: String = e.error_description.as_deref().unwrap_or_default().chars().take(MAX_DESCRIPTION).collect();
    if d.is_empty() {
        e.error.clone()
    } else {
        format!("{}: {d}", e.error)
    }
}

/// What an `error_map` class means for a result (token endpoint, pushed error, redirect
/// return): `push_timeout` is `Expired`, so the fallback's push-timeout rule applies.
fn class_answer(class: SignalClass) -> OperatorAnswer {
    match class {
        SignalClass::NotEnrolled => OperatorAnswer::Failed(FailReason::NotEnrolled),
        SignalClass::Unavailable | SignalClass::NoMc => OperatorAnswer::Failed(FailReason::OperatorUnavailable),
        SignalClass::PushTimeout => OperatorAnswer::Expired,
        SignalClass::Denied => OperatorAnswer::Denied,
        SignalClass::Forged => OperatorAnswer::Failed(FailReason::OperatorTokenInvalid),
        SignalClass::Config | SignalClass::Rp => OperatorAnswer::Failed(FailReason::OperatorError),
    }
}

/// What an `error_map` class means for a decoupled start's answer. `push_timeout` is "maybe
/// delivered" (acknowledged; the push deadline decides); [`PushError`] has no "denied" (no
/// person has answered before the acknowledgement), so `denied` there is a rejection.
fn class_push_error(class: SignalClass, detail: String) -> PushError {
    match class {
        SignalClass::NotEnrolled => PushError::NotEnrolled,
        SignalClass::Unavailable | SignalClass::NoMc => PushError::Unavailable(detail),
        SignalClass::PushTimeout => PushError::MaybeDelivered(detail),
        SignalClass::Denied | SignalClass::Config | SignalClass::Forged | SignalClass::Rp => {
            PushError::Rejected(detail)
        }
    }
}

/// A result error: the `error_map` class when one applied, else the built-in rule.
fn mapped_result(class: Option<SignalClass>, error: &str) -> OperatorAnswer {
    class.map_or_else(|| poll_error(Some(error)), class_answer)
}

/// A backchannel error: the `error_map` class when one applied, else the built-in rule.
fn mapped_push_error(class: Option<SignalClass>, e: OAuthError) -> PushError {
    match class {
        Some(class) => class_push_error(class, describe(&e)),
        None => push_error(e),
    }
}

/// Maps an operator's OAuth error at its backchannel endpoint to the flow's classes (§5).
fn push_error(e: OAuthError) -> PushError {
    let detail = || describe(&e);
    match e.error.as_str() {
        "unknown_user_id" | "Not_Found_Entity" => PushError::NotEnrolled,
        "temporarily_unavailable" | "server_error" | "transaction_failed" => PushError::Unavailable(e.error),
        "invalid_binding_message" => PushError::BindingMessageRejected(detail()),
        _ => PushError::Rejected(detail()),
    }
}

/// Maps an operator's OAuth error at its token endpoint (a 4xx; 5xx are transient) to what it
/// means for our transaction (§5, §7).
fn poll_error(error: Option<&str>) -> OperatorAnswer {
    match error {
        Some("authorization_pending") => OperatorAnswer::Pending { slow_down: false },
        Some("slow_down") => OperatorAnswer::Pending { slow_down: true },
        Some("access_denied") => OperatorAnswer::Denied,
        Some("expired_token") => OperatorAnswer::Expired,
        // The operator's side failed (CIBA's push error code, or an outage reported in a 4xx):
        // class `unavailable`, not our configuration.
        Some("transaction_failed" | "temporarily_unavailable" | "server_error") => {
            OperatorAnswer::Failed(FailReason::OperatorUnavailable)
        }
        // invalid_grant, invalid_client, unauthorized_client, …: one side's configuration.
        Some(_) | None => OperatorAnswer::Failed(FailReason::OperatorError),
    }
}

#[async_trait]
impl OperatorBackend for MobileConnectCiba {
    fn id(&self) -> &str {
        &self.id
    }

    fn push_capable(&self) -> bool {
        self.push
    }

    fn push_timeout_s(&self) -> u64 {
        self.push_timeout_s
    }

    async fn start_push(&self, req: &PushRequest<'_>) -> Result<PushStarted, PushError> {
        let endpoints = self.metadata.endpoints().await.map_err(|e| {
            self.metrics.error("connect");
            PushError::Unavailable(format!("metadata: {e}"))
        })?;
        let form = super::form_body::ciba_start(req);
        let backchannel = endpoints.backchannel.as_ref().ok_or_else(|| {
            PushError::Rejected("the operator publishes no backchannel_authentication_endpoint".into())
        })?;
        let request = self.form_request(backchannel, form).map_err(|e| PushError::Rejected(e.to_string()))?;
        let started = Instant::now();
        let result = call(self.clients.get(), request, self.call_timeout).await;
        self.metrics.bc_seconds.observe(started.elapsed().as_secs_f64());
        self.acknowledgement(result)
    }

    async fn poll(&self, op: &OperatorRef) -> OperatorAnswer {
        let pending = OperatorAnswer::Pending { slow_down: false };
        let Ok(endpoints) = self.metadata.endpoints().await else {
            self.metrics.error("connect");
            return pending;
        };
        let form = form_urlencoded::Serializer::new(String::with_capacity(128))
            .append_pair("grant_type", "urn:openid:params:grant-type:ciba")
            .append_pair("auth_req_id", &op.auth_req_id)
            .finish();
        let resp = match self.token_exchange(&endpoints.token, form, pending).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        if resp.status.is_success() {
            let Ok(answer) = serde_json::from_slice::<TokenAnswer>(&resp.body) else {
                self.metrics.error("bad_answer");
                return OperatorAnswer::Failed(FailReason::OperatorTokenInvalid);
            };
            return self.verify_id_token(op, &answer.id_token).await;
        }
        match oauth_error(&resp.body) {
            Some(e) => self.result_error(&e.error, e.error_description.as_deref()),
            None => {
                self.metrics.error("oauth_error");
                poll_error(None)
            }
        }
    }

    fn notification_mode(&self) -> DeliveryMode {
        self.notification
    }

    async fn callback_answer(&self, op: &OperatorRef, _notify: &str, cb: &OperatorCallback) -> OperatorAnswer {
        match cb {
            OperatorCallback::Ping { .. } => self.poll(op).await,
            OperatorCallback::Tokens { id_token, .. } => self.verify_id_token(op, id_token).await,
            OperatorCallback::Error { error, error_description, .. } => {
                self.result_error(error, error_description.as_deref())
            }
        }
    }

    async fn warm_up(&self) -> Result<(), String> {
        self.metadata.endpoints().await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn authorization_url(&self, req: &super::RedirectRequest<'_>) -> Result<String, PushError> {
        self.redirect_url(req).await
    }

    async fn finish_redirect(&self, ret: super::RedirectReturn<'_>) -> OperatorAnswer {
        self.redirect_return(ret).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(error: &str, description: Option<&str>) -> OAuthError {
        OAuthError { error: error.into(), error_description: description.map(str::to_owned) }
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        let decode = |v: HeaderValue| {
            let b64 = v.to_str().unwrap().strip_prefix("Basic ").unwrap().to_owned();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
        };
        // base64url secrets travel untouched (servers that do not decode still match them)
        assert_eq!(decode(basic_authorization("mcgate", "aZ09-_.*").unwrap()), "mcgate:aZ09-_.*");
        // `:` cannot end the user part; space is `+`, `+` is `%2B` (RFC 6749 §2.3.1)
        assert_eq!(decode(basic_authorization("mc:gate", "a:b +/%~").unwrap()), "mc%3Agate:a%3Ab+%2B%2F%25%7E");
        assert!(basic_authorization("mcgate", "s").unwrap().is_sensitive());
    }

    #[test]
    fn backchannel_errors_map_to_flow_classes() {
        assert_eq!(push_error(err("unknown_user_id", None)), PushError::NotEnrolled);
        assert_eq!(push_error(err("Not_Found_Entity", None)), PushError::NotEnrolled);
        for e in ["temporarily_unavailable", "server_error", "transaction_failed"] {
            assert_eq!(push_error(err(e, Some("x"))), PushError::Unavailable(e.into()));
        }
        assert_eq!(
            push_error(err("invalid_binding_message", Some("1 - 20 characters"))),
            PushError::BindingMessageRejected("invalid_binding_message: 1 - 20 characters".into())
        );
        assert_eq!(push_error(err("invalid_client", None)), PushError::Rejected("invalid_client".into()));
        match push_error(err("invalid_request", Some(&"y".repeat(10_000)))) {
            PushError::Rejected(d) => assert_eq!(d.len(), "invalid_request: ".len() + MAX_DESCRIPTION),
            e => panic!("{e:?}"),
        }
    }

    fn map(entries: &[(&str, &str)]) -> ErrorMap {
        let raw = entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ErrorMap::parse(&raw).unwrap()
    }

    #[test]
    fn error_map_classes_map_to_adapter_outcomes() {
        use SignalClass as C;
        assert_eq!(class_answer(C::NotEnrolled), OperatorAnswer::Failed(FailReason::NotEnrolled));
        assert_eq!(class_answer(C::Unavailable), OperatorAnswer::Failed(FailReason::OperatorUnavailable));
        assert_eq!(class_answer(C::PushTimeout), OperatorAnswer::Expired);
        assert_eq!(class_answer(C::Denied), OperatorAnswer::Denied);
        assert_eq!(class_answer(C::Config), OperatorAnswer::Failed(FailReason::OperatorError));
        assert_eq!(class_answer(C::Forged), OperatorAnswer::Failed(FailReason::OperatorTokenInvalid));
        let d = || "e: d".to_string();
        assert_eq!(class_push_error(C::NotEnrolled, d()), PushError::NotEnrolled);
        assert_eq!(class_push_error(C::Unavailable, d()), PushError::Unavailable(d()));
        assert_eq!(class_push_error(C::PushTimeout, d()), PushError::MaybeDelivered(d()));
        assert_eq!(class_push_error(C::Config, d()), PushError::Rejected(d()));
        assert_eq!(class_push_error(C::Denied, d()), PushError::Rejected(d()));
        // Round trip: the fallback sees the class the map named.
        for c in [C::NotEnrolled, C::Unavailable, C::PushTimeout, C::Denied, C::Config, C::Forged] {
            assert_eq!(SignalClass::from_answer(&class_answer(c)), Some(c), "{c:?}");
        }
        for c in [C::NotEnrolled, C::Unavailable, C::PushTimeout, C::Config] {
            assert_eq!(SignalClass::from_push_error(&class_push_error(c, d())), c, "{c:?}");
        }
    }

    #[test]
    fn error_map_wins_exact_then_error_then_built_in() {
        let m = map(&[
            ("access_denied:user_not_registered", "not_enrolled"),
            ("access_denied:timeout", "push_timeout"),
            ("invalid_request", "unavailable"),
        ]);
        let result = |e: &str, d: Option<&str>| mapped_result(m.lookup(e, d), e);
        assert_eq!(
            result("access_denied", Some("user_not_registered")),
            OperatorAnswer::Failed(FailReason::NotEnrolled)
        );
        assert_eq!(result("access_denied", Some("timeout")), OperatorAnswer::Expired);
        assert_eq!(result("access_denied", Some("user_denied")), OperatorAnswer::Denied, "built-in");
        assert_eq!(result("access_denied", None), OperatorAnswer::Denied, "built-in");
        assert_eq!(result("invalid_request", Some("x")), OperatorAnswer::Failed(FailReason::OperatorUnavailable));
        // Built-in adapter rules stay for unmapped codes (the adapter's, not of_oauth_error's).
        assert_eq!(result("unknown_user_id", None), OperatorAnswer::Failed(FailReason::OperatorError));
        let push = |e: &str, d: Option<&str>| mapped_push_error(m.lookup(e, d), err(e, d));
        assert_eq!(push("access_denied", Some("user_not_registered")), PushError::NotEnrolled);
        assert_eq!(push("access_denied", Some("timeout")), PushError::MaybeDelivered("access_denied: timeout".into()));
        assert_eq!(push("invalid_request", Some("x")), PushError::Unavailable("invalid_request: x".into()));
        assert_eq!(
            push("access_denied", Some("other")),
            PushError::Rejected("access_denied: other".into()),
            "built-in"
        );
        assert_eq!(push("unknown_user_id", None), PushError::NotEnrolled, "built-in");
        assert_eq!(mapped_push_error(None, err("invalid_client", None)), PushError::Rejected("invalid_client".into()));
    }

    #[test]
    fn token_endpoint_errors_map_to_operator_answers() {
        assert_eq!(poll_error(Some("authorization_pending")), OperatorAnswer::Pending { slow_down: false });
        assert_eq!(poll_error(Some("slow_down")), OperatorAnswer::Pending { slow_down: true });
        assert_eq!(poll_error(Some("access_denied")), OperatorAnswer::Denied);
        assert_eq!(poll_error(Some("expired_token")), OperatorAnswer::Expired);
        for e in ["transaction_failed", "temporarily_unavailable", "server_error"] {
            assert_eq!(poll_error(Some(e)), OperatorAnswer::Failed(FailReason::OperatorUnavailable), "{e}");
        }
        for e in [Some("invalid_grant"), Some("invalid_client"), None] {
            assert_eq!(poll_error(e), OperatorAnswer::Failed(FailReason::OperatorError), "{e:?}");
        }
    }
}
