//! Towards operators: the [`OperatorBackend`] trait the flow talks to, and its Mobile Connect
//! CIBA implementation ([`mobile_connect`]) with a pooled HTTPS client ([`http`]), cached operator
//! metadata and JWKS ([`metadata`]) and ID-token verification ([`id_token`]). Knows nothing of
//! relying parties: RP values never reach an operator.

pub mod http;
pub mod id_token;
pub mod metadata;
pub mod mobile_connect;

use crate::flow::poll::OperatorAnswer;
use crate::flow::OperatorRef;
use crate::msisdn::Msisdn;
use async_trait::async_trait;

pub use mobile_connect::MobileConnectCiba;

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

/// One operator's Mobile Connect backend.
#[async_trait]
pub trait OperatorBackend: Send + Sync + 'static {
    /// Operator id.
    fn id(&self) -> &str;
    /// Whether the operator offers Mobile Connect push at all.
    fn push_capable(&self) -> bool;
    /// Push seconds before a silent prompt counts as timed out.
    fn push_timeout_s(&self) -> u64;
    /// Starts a decoupled authentication.
    async fn start_push(&self, req: &PushRequest<'_>) -> Result<PushStarted, PushError>;
    /// Asks for the result of a started authentication. Transient failures answer `Pending`
    /// (the person's answer is not lost because one poll failed).
    async fn poll(&self, op: &OperatorRef) -> OperatorAnswer;
    /// Whether the operator's metadata and keys are reachable (readiness detail, not used per request).
    async fn warm_up(&self) -> Result<(), String>;
}
