//! The one place RP-facing failures become HTTP answers: every [`RpError`] maps to a status and
//! an OAuth `{"error","error_description"}` body with `Cache-Control: no-store`. Descriptions
//! never contain a secret, a code, a token or an MSISDN.

use crate::flow::FailReason;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use std::borrow::Cow;

/// Everything an RP request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpError {
    /// Missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// Client authentication failed (`basic`: answer with a Basic challenge).
    #[error("invalid_client")]
    InvalidClient {
        /// The client tried HTTP Basic.
        basic: bool,
    },
    /// `private_key_jwt` authentication failed; the text names the check (never token content).
    #[error("invalid_client: {0}")]
    ClientAssertion(Cow<'static, str>),
    /// A signed request object was refused; the text names the check.
    #[error("invalid_request_object: {0}")]
    InvalidRequestObject(Cow<'static, str>),
    /// Scope not allowed.
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    /// Unknown, foreign, purged or consumed grant.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// Grant type not supported.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Client not allowed this grant or mode.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    /// No operator serves the number, or the subscriber is not enrolled.
    #[error("unknown_user_id: {0}")]
    UnknownUserId(Cow<'static, str>),
    /// Binding message rejected.
    #[error("invalid_binding_message: {0}")]
    InvalidBindingMessage(Cow<'static, str>),
    /// `ENCR_MSISDN` hint expired.
    #[error("expired_login_hint_token")]
    ExpiredLoginHintToken,
    /// Refused before any interaction (policy), or the person said no.
    #[error("access_denied: {0}")]
    AccessDenied(Cow<'static, str>),
    /// CIBA: the person refused (400 at the token endpoint, unlike a policy refusal).
    #[error("access_denied (person)")]
    PersonDenied,
    /// Operator or store unavailable.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Cow<'static, str>),
    /// CIBA: waiting for the person.
    #[error("authorization_pending")]
    AuthorizationPending,
    /// CIBA: polled too fast.
    #[error("slow_down")]
    SlowDown,
    /// CIBA: nobody answered in time.
    #[error("expired_token")]
    ExpiredToken,
    /// CIBA: ended without an answer from the person.
    #[error("transaction_failed: {}", .0.as_str())]
    TransactionFailed(FailReason),
    /// `Idempotency-Key` reused for a different request (422).
    #[error("invalid_request: idempotency key reused")]
    IdempotencyMismatch,
    /// `Idempotency-Key` of a request still being processed (409).
    #[error("invalid_request: idempotency key in use")]
    IdempotencyInFlight,
    /// Unknown path.
    #[error("not_found")]
    NotFound,
    /// Wrong method (`Allow` value).
    #[error("method_not_allowed")]
    MethodNotAllowed(&'static str),
    /// Body over the limit.
    #[error("payload_too_large")]
    PayloadTooLarge,
    /// Body of the wrong type.
    #[error("unsupported_media_type")]
    UnsupportedMediaType,
    /// Shed: too much open work (the driver is full); `Retry-After` seconds.
    #[error("temporarily_unavailable (shed)")]
    Shed(u32),
    /// An operator callback about a transaction we do not know.
    #[error("unknown transaction")]
    UnknownTransaction,
    /// A bug or an internal failure (detail goes to the log only).
    #[error("server_error: {0}")]
    Internal(String),
    /// Browser flow: the request cannot be sent back to any RP (unknown client, unregistered
    /// `redirect_uri`, unknown `state`): an HTML page, never a redirect.
    #[error("browser request refused: {0}")]
    BrowserError(Cow<'static, str>),
    /// `/authorize`: a `response_type` other than `code`.
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    /// `/si-authorize`: a `response_type` other than `mc_si_async_code` or `mc_si_polling`.
    #[error("unsupported_response_type (si)")]
    UnsupportedSiResponseType,
    /// Bearer token invalid or expired (`/userinfo`, operator callbacks).
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// `/userinfo`: no access token at all (challenge without an error code, RFC 6750 §3.1).
    #[error("no access token")]
    MissingToken,
}

impl RpError {
    /// Shorthand for `InvalidRequest`.
    pub fn invalid_request(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(msg.into())
    }

    /// The OAuth `error` code (also the metric outcome).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::IdempotencyMismatch | Self::IdempotencyInFlight => "invalid_request",
            Self::InvalidClient { .. } | Self::ClientAssertion(_) => "invalid_client",
            Self::InvalidRequestObject(_) => "invalid_request_object",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnknownUserId(_) => "unknown_user_id",
            Self::InvalidBindingMessage(_) => "invalid_binding_message",
            Self::ExpiredLoginHintToken => "expired_login_hint_token",
            Self::AccessDenied(_) | Self::PersonDenied => "access_denied",
            Self::TemporarilyUnavailable(_) | Self::Shed(_) => "temporarily_unavailable",
            Self::UnknownTransaction => "not_found",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::TransactionFailed(_) => "transaction_failed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Internal(_) => "server_error",
            Self::BrowserError(_) | Self::MissingToken => "invalid_request",
            Self::UnsupportedResponseType | Self::UnsupportedSiResponseType => "unsupported_response_type",
            Self::InvalidToken(_) => "invalid_token",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidClient { .. } | Self::ClientAssertion(_) | Self::InvalidToken(_) | Self::MissingToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::Shed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownTransaction => StatusCode::NOT_FOUND,
            Self::AccessDenied(_) => StatusCode::FORBIDDEN,
            Self::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInFlight => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Human-readable `error_description`.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(m)
            | Self::InvalidScope(m)
            | Self::UnknownUserId(m)
            | Self::InvalidBindingMessage(m)
            | Self::AccessDenied(m)
            | Self::TemporarilyUnavailable(m)
            | Self::BrowserError(m)
            | Self::ClientAssertion(m)
            | Self::InvalidRequestObject(m) => m.clone(),
            Self::InvalidToken(m) => Cow::Borrowed(m),
            Self::MissingToken => "a Bearer access token is required".into(),
            Self::UnsupportedResponseType => "response_type must be code".into(),
            Self::UnsupportedSiResponseType => "response_type must be mc_si_async_code or mc_si_polling".into(),
            Self::InvalidClient { .. } => "client authentication failed".into(),
            Self::InvalidGrant(m) | Self::UnauthorizedClient(m) => Cow::Borrowed(m),
            Self::Shed(_) => "too many open requests; try again later".into(),
            Self::UnknownTransaction => "no such transaction".into(),
            Self::UnsupportedGrantType => {
                "grant_type must be urn:openid:params:grant-type:ciba or authorization_code".into()
            }
            Self::ExpiredLoginHintToken => "the login hint token has expired".into(),
            Self::PersonDenied => "the person refused the authentication".into(),
            Self::AuthorizationPending => "the person has not answered yet".into(),
            Self::SlowDown => "polled faster than the interval; the interval grew".into(),
            Self::ExpiredToken => "the authentication request expired without an answer".into(),
            Self::TransactionFailed(r) => Cow::Borrowed(r.as_str()),
            Self::IdempotencyMismatch => "this Idempotency-Key was used for a different request".into(),
            Self::IdempotencyInFlight => {
                "the request with this Idempotency-Key is still being processed; retry shortly".into()
            }
            Self::NotFound => "no such endpoint".into(),
            Self::MethodNotAllowed(_) => "method not allowed on this endpoint".into(),
            Self::PayloadTooLarge => "request body too large".into(),
            Self::UnsupportedMediaType => "Content-Type must be application/x-www-form-urlencoded".into(),
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// The HTTP answer.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let Self::BrowserError(m) = &self {
            let mut resp = super::html::error_page(m);
            resp.extensions_mut().insert(super::ErrorCode(self.code()));
            return resp;
        }
        let body = serde_json::json!({"error": self.code(), "error_description": self.description()});
        let mut resp = json_response(self.status(), serde_json::to_vec(&body).unwrap_or_default());
        resp.extensions_mut().insert(super::ErrorCode(self.code()));
        let h = resp.headers_mut();
        match &self {
            Self::InvalidClient { basic: true } => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcgate\""));
            }
            Self::TemporarilyUnavailable(_) | Self::IdempotencyInFlight => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Shed(s) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*s));
            }
            Self::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::MissingToken => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcgate\""));
            }
            Self::InvalidToken(m) => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"mcgate\", error=\"invalid_token\", error_description=\"{m}\""
                )) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// A JSON answer that must not be cached.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A cacheable public JSON document (metadata, JWKS).
pub fn public_json(body: Bytes, max_age_s: u32) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age_s}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}
