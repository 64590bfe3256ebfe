//! The transaction: one authentication of one person for one relying party, from
//! `bc-authorize` to the token. Owns the states and the pure rules that move between them;
//! knows nothing of HTTP parsing or operator wire formats.
//!
//! ```text
//!                 operator accepted                 operator: approved (ID token verified)
//!  bc-authorize ──────────────────► pending_push ──────────────────────────────► approved ──► consumed
//!        │                              │  operator: access_denied  ──► denied      (RP collects once)
//!        │ operator refused at once     │  deadline, no answer      ──► expired
//!        └──► (no transaction: error)   └─ operator error / bad token ──► failed{reason}
//! ```
//! Terminal states stay readable until `expires_at + terminal_retention`; every transition is a
//! compare-and-set in the [`crate::store::Store`], so duplicate polls or two instances can never
//! approve or consume twice.

pub mod poll;
pub mod redirect;

use serde::{Deserialize, Serialize};

/// Why a transaction failed (a closed set: also a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// Operator unreachable or answering 5xx.
    OperatorUnavailable,
    /// Subscriber not enrolled in Mobile Connect.
    NotEnrolled,
    /// Operator rejected our request as malformed or misconfigured.
    OperatorError,
    /// Operator's ID token failed verification.
    OperatorTokenInvalid,
    /// Transaction cancelled.
    Cancelled,
}

impl FailReason {
    /// Wire and label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperatorUnavailable => "operator_unavailable",
            Self::NotEnrolled => "not_enrolled",
            Self::OperatorError => "operator_error",
            Self::OperatorTokenInvalid => "operator_token_invalid",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Transaction state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum TxState {
    /// Waiting for the person to answer the operator's push.
    #[default]
    PendingPush,
    /// Waiting for the person to answer an SMS (fallback; later work).
    PendingSms,
    /// The person approved; tokens not collected yet.
    Approved,
    /// The person refused.
    Denied,
    /// Nobody answered in time.
    Expired,
    /// Ended without an answer from the person.
    Failed(FailReason),
    /// Tokens collected.
    Consumed,
}

impl TxState {
    /// Label / log form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPush => "pending_push",
            Self::PendingSms => "pending_sms",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Failed(_) => "failed",
            Self::Consumed => "consumed",
        }
    }
    /// Every label value, for metrics.
    pub const ALL_LABELS: [&'static str; 7] =
        ["pending_push", "pending_sms", "approved", "denied", "expired", "failed", "consumed"];
    /// Whether the person may still answer.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::PendingPush | Self::PendingSms)
    }
}

/// Delivery channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Operator push (Mobile Connect).
    #[default]
    Push,
    /// SMS fallback.
    Sms,
}

/// Our side of the operator's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRef {
    /// The operator's auth_req_id (never shown to the RP).
    pub auth_req_id: String,
    /// Poll interval the operator asked for, seconds.
    pub interval_s: u64,
    /// Earliest time we may poll the operator again, ms.
    pub next_poll_at_ms: u64,
}

/// What the person's approval established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResult {
    /// Achieved acr.
    pub acr: String,
    /// Methods used, as verified in the operator's token.
    pub amr: Vec<String>,
    /// Approval time, seconds.
    pub auth_time: u64,
}

/// One authentication.
///
/// `Default` exists so constructors can name only what they set (`..Default::default()`); new
/// optional parts of a flow are added as `Option<…>` fields with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Gateway auth_req_id (256 random bits, base64url).
    pub id: String,
    /// RP client id.
    pub client_id: String,
    /// E.164 digits of the person's MSISDN (needed for the pairwise subject; never logged).
    pub msisdn: u64,
    /// Operator id.
    pub operator: String,
    /// How the route was found (`ported` / `prefix`).
    pub route_source: String,
    /// Channel in use.
    pub channel: Channel,
    /// State.
    pub state: TxState,
    /// Granted scope.
    pub scope: String,
    /// Lowest acr the RP accepts.
    pub acr_floor: u8,
    /// RP's binding message.
    pub binding_message: Option<String>,
    /// Creation time, ms.
    pub created_at_ms: u64,
    /// End of the authentication window (`expires_in`), ms.
    pub expires_at_ms: u64,
    /// Current RP poll interval (grows with `slow_down`), seconds.
    pub interval_s: u64,
    /// Earliest next RP poll, ms.
    pub next_poll_at_ms: u64,
    /// After this, a push with no answer counts as timed out, ms.
    pub push_deadline_ms: u64,
    /// The operator's transaction, once it accepted ours.
    pub operator_ref: Option<OperatorRef>,
    /// Set on approval.
    pub result: Option<AuthResult>,
    /// The browser (authorization code) flow's values; `None` for CIBA.
    #[serde(default)]
    pub redirect: Option<redirect::RedirectFlow>,
}

impl Transaction {
    /// A pending push transaction for unit tests: `id`, created at `now` ms, 300 s to answer,
    /// operator poll due after 2 s.
    #[cfg(test)]
    pub fn sample(id: &str, now: u64) -> Self {
        Transaction {
            id: id.into(),
            client_id: "rp".into(),
            msisdn: 34600000001,
            operator: "movistar".into(),
            route_source: "prefix".into(),
            channel: Channel::Push,
            state: TxState::PendingPush,
            scope: "openid".into(),
            acr_floor: 2,
            binding_message: None,
            created_at_ms: now,
            expires_at_ms: now + 300_000,
            interval_s: 5,
            next_poll_at_ms: now + 5_000,
            push_deadline_ms: now + 60_000,
            operator_ref: Some(OperatorRef { auth_req_id: "op".into(), interval_s: 2, next_poll_at_ms: now + 2_000 }),
            ..Default::default()
        }
    }

    /// When the store may forget this transaction, ms.
    pub fn retain_until_ms(&self, retention_ms: u64) -> u64 {
        self.expires_at_ms.saturating_add(retention_ms)
    }
}
