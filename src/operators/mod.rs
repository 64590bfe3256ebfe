//! Towards operators: the [`OperatorBackend`] trait the flow talks to, and its Mobile Connect
//! implementations ([`mobile_connect`]: CIBA, and server-initiated for `mode = "mc_si"`) with a pooled HTTPS client ([`http`]), cached operator
//! metadata and JWKS ([`metadata`]) and ID-token verification ([`id_token`]); the redirect
//! (authorization code) hop is part of the same adapter. Knows nothing of
//! relying parties: RP values never reach an operator.

pub mod callback;
pub mod form_body;
pub mod http;
pub mod http_pool;
pub mod id_token;
pub mod metadata;
pub mod mobile_connect;
pub mod resilience;
pub mod sim_swap;

use crate::flow::poll::OperatorAnswer;
use crate::flow::{DeliveryMode, FailReason, OperatorRef};
use crate::msisdn::Msisdn;
use async_trait::async_trait;
use callback::OperatorCallback;

pub use mobile_connect::{MobileConnectCiba, MobileConnectSi};

/// What the gateway asks an operator to do.
#[derive(Debug, Clone)]
pub struct PushRequest<'a> {
    /// The person.
    pub msisdn: &'a Msisdn,
    /// `acr_values` to request ("2", "3", "3 2").
    pub acr_values: &'a str,
    /// Text to show on the device, if any.
    pub binding_message: Option<&'a str>,
    /// Seconds the operator may keep its transaction open.
    pub requested_expiry_s: u64,
    /// Our `client_notification_token` for this transaction when the operator pings or pushes
    /// us (sent to the operator only; never logged).
    pub client_notification_token: Option<&'a str>,
}

/// The operator accepted the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStarted {
    /// Operator's transaction id.
    pub auth_req_id: String,
    /// Operator's lifetime for it, seconds.
    pub expires_in: u64,
    /// Operator's poll interval, seconds.
    pub interval_s: u64,
}

/// Why a push did not start, classified by whether the person may have been prompted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Nothing sent: the operator does not know the subscriber or they are not enrolled.
    #[error("subscriber not enrolled at the operator")]
    NotEnrolled,
    /// Nothing sent: operator unreachable, refusing, or answering 5xx.
    #[error("operator unavailable: {0}")]
    Unavailable(String),
    /// The request may have reached the operator (timeout after sending): the person may have
    /// a prompt; never retried, never followed by a second prompt.
    #[error("operator did not answer in time: {0}")]
    MaybeDelivered(String),
    /// The operator rejected our request (`invalid_request`, `invalid_client`, …): a
    /// configuration problem on one side; alert, never retried.
    #[error("operator rejected the request: {0}")]
    Rejected(String),
    /// Nothing sent: the operator refused the RP's `binding_message` (`invalid_binding_message`:
    /// operators' rules differ, e.g. oidc-provider's default allows 20 plain characters). The RP
    /// can shorten it and retry; the detail is the operator's `error_description`.
    #[error("operator refused the binding message: {0}")]
    BindingMessageRejected(String),
}

/// The operator hop of the redirect flow: where to send the browser. Every value is ours
/// (fresh per transaction), never the RP's.
#[derive(Debug, Clone)]
pub struct RedirectRequest<'a> {
    /// The person.
    pub msisdn: &'a Msisdn,
    /// `acr_values` to request.
    pub acr_values: &'a str,
    /// Our `state` (names the transaction at `/callback`).
    pub state: &'a str,
    /// Our `nonce`.
    pub nonce: &'a str,
    /// S256 challenge of our PKCE verifier.
    pub code_challenge: &'a str,
    /// `<issuer>/callback`.
    pub redirect_uri: &'a str,
    /// The RP's `max_age`, passed on so the operator re-authenticates when needed.
    pub max_age: Option<u64>,
}

/// What the operator sent the browser back to `/callback` with.
#[derive(Debug, Clone, Copy)]
pub enum RedirectReturn<'a> {
    /// An authorization code to redeem.
    Code {
        /// The code.
        code: &'a str,
        /// Our `redirect_uri` (sent again at the token endpoint).
        redirect_uri: &'a str,
        /// Our `nonce` (checked in the ID token).
        nonce: &'a str,
        /// Our PKCE verifier.
        code_verifier: &'a str,
    },
    /// An OAuth error.
    Error {
        /// `error`.
        error: &'a str,
        /// `error_description`.
        description: Option<&'a str>,
    },
}

/// One operator's Mobile Connect backend.
#[async_trait]
pub trait OperatorBackend: Send + Sync + 'static {
    /// Operator id.
    fn id(&self) -> &str;
    /// Whether the operator offers Mobile Connect push at all.
    fn push_capable(&self) -> bool;
    /// Push seconds before a silent prompt counts as timed out.
    fn push_timeout_s(&self) -> u64;
    /// Operator health for the fallback decision ([`resilience::ResilientBackend`]: its breaker).
    fn health(&self) -> crate::flow::fallback::OperatorHealth {
        crate::flow::fallback::OperatorHealth::Healthy
    }
    /// Starts a decoupled authentication.
    async fn start_push(&self, req: &PushRequest<'_>) -> Result<PushStarted, PushError>;
    /// Asks for the result of a started authentication. Transient failures answer `Pending`
    /// (the person's answer is not lost because one poll failed).
    async fn poll(&self, op: &OperatorRef) -> OperatorAnswer;
    /// Whether the operator's metadata and keys are reachable (readiness detail, not used per request).
    async fn warm_up(&self) -> Result<(), String>;
    /// Redirect flow: the operator authorization URL the browser is sent to. Backends without
    /// a redirect flow keep this default (`Rejected`).
    async fn authorization_url(&self, _req: &RedirectRequest<'_>) -> Result<String, PushError> {
        Err(PushError::Rejected("this operator backend has no redirect flow".into()))
    }
    /// Redirect flow: what the operator's return means — redeems a code and verifies its ID
    /// token, or classifies an error. Never `Pending`.
    async fn finish_redirect(&self, _ret: RedirectReturn<'_>) -> OperatorAnswer {
        OperatorAnswer::Failed(FailReason::OperatorError)
    }
    /// How the operator reports results to us (`poll` unless configured otherwise).
    fn notification_mode(&self) -> DeliveryMode {
        DeliveryMode::Poll
    }
    /// What an operator callback about `op` says: a ping fetches the result, a push is verified.
    /// `notify_secret_sha256` is the hash of the transaction's notification secret, as stored
    /// (Mobile Connect server-initiated derives the transaction's nonce from it).
    async fn callback_answer(
        &self,
        op: &OperatorRef,
        _notify_secret_sha256: &str,
        cb: &OperatorCallback,
    ) -> OperatorAnswer {
        match cb {
            OperatorCallback::Ping { .. } => self.poll(op).await,
            _ => OperatorAnswer::Failed(crate::flow::FailReason::OperatorError),
        }
    }
}
