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

pub mod delivery;
pub mod driver;
pub mod fallback;
pub mod notify;
pub mod poll;
pub mod poll_cache;
pub mod poll_gate;
pub mod progress;
pub mod redirect;
pub mod sms_start;

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
    /// Approved, but the push delivery to the RP gave up: the tokens can never be received.
    DeliveryFailed,
    /// The SIM changed within the client's window: no SMS.
    SimSwap,
    /// The SIM-swap check gave no definite answer and the client's policy refuses SMS then.
    SimSwapUnknown,
    /// Too many wrong SMS codes for this transaction.
    TooManyAttempts,
    /// An SMS limit (MSISDN, client, prefix, budget) refused the message.
    RateLimited,
    /// No SMS could be sent (SMSC refused or unavailable).
    SmsUnavailable,
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
            Self::DeliveryFailed => "delivery_failed",
            Self::SimSwap => "sim_swap",
            Self::SimSwapUnknown => "sim_swap_unknown",
            Self::TooManyAttempts => "too_many_attempts",
            Self::RateLimited => "rate_limited",
            Self::SmsUnavailable => "sms_unavailable",
        }
    }
    /// Every label value, for metrics.
    pub const ALL_LABELS: [&'static str; 11] = [
        "operator_unavailable",
        "not_enrolled",
        "operator_error",
        "operator_token_invalid",
        "cancelled",
        "delivery_failed",
        "sim_swap",
        "sim_swap_unknown",
        "too_many_attempts",
        "rate_limited",
        "sms_unavailable",
    ];
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

/// How results reach a party (a CIBA client's `backchannel_token_delivery_mode`, or an
/// operator's `notification`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// The party polls the token endpoint.
    #[default]
    Poll,
    /// The party is told `{auth_req_id}`, then polls.
    Ping,
    /// The result itself is POSTed.
    Push,
}

impl DeliveryMode {
    /// From a validated config value (anything unknown is `poll`).
    pub fn from_config(s: &str) -> Self {
        match s {
            "ping" => Self::Ping,
            "push" => Self::Push,
            _ => Self::Poll,
        }
    }
    /// Config and label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poll => "poll",
            Self::Ping => "ping",
            Self::Push => "push",
        }
    }
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
/// optional parts of a flow are added as `Option<…>` fields with `#[serde(default,
/// skip_serializing_if = "Option::is_none")]`: the stored JSON (Redis) leaves out what is not
/// set, and a record without a field reads it as `None`. Large parts that only some flows use
/// are boxed (`Option<Box<…>>`, the same JSON): the memory store keeps every pending transaction,
/// and a test holds the struct to one 512-byte allocation.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_ref: Option<OperatorRef>,
    /// Set on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AuthResult>,
    /// The browser (authorization code) flow's values; `None` for CIBA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Box<redirect::RedirectFlow>>,
    /// The RP's `client_notification_token` (ping/push clients; never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_notification_token: Option<NotificationToken>,
    /// Ping/push delivery to the RP so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    /// SHA-256 (hex) of the secret half of the `client_notification_token` we gave the operator
    /// (`<id>.<secret>`), when the operator pings or pushes us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_notify_sha256: Option<String>,
    /// Delivery chosen by the request (Mobile Connect server-initiated), in preference to the
    /// client's registered mode; `None`: the client's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<delivery::RequestDelivery>,
    /// The RP's `nonce` for the ID token (Mobile Connect server-initiated; the redirect flow
    /// keeps its own in [`redirect::RedirectFlow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// A fetch of the operator's result is in flight until this time, ms: set by whoever claims
    /// the operator poll slot (RP poll, driver, operator ping), cleared when its answer is
    /// applied. An operator hands a result out once, so nobody else fetches meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_fetch_until_ms: Option<u64>,
    /// The SMS fallback's code or confirm link (HMAC only), attempts and sends
    /// ([`crate::sms::otp`]); `None` while no SMS was armed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<Box<crate::sms::otp::SmsState>>,
    /// W3C trace id (32 hex) of the request that created the transaction: the driver's later
    /// operator calls for it join this trace ([`crate::telemetry::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// A bearer token the RP gave us for its notification endpoint: sent only there, never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotificationToken(String);

impl NotificationToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
    /// The token itself: only for the `Authorization` header of a delivery.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NotificationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why one delivery attempt to the RP failed (a closed set: also a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailure {
    /// No connection could be made.
    Connect,
    /// No answer within the attempt timeout.
    Timeout,
    /// The endpoint answered something other than 200/204.
    HttpStatus,
    /// The connection broke mid-exchange.
    Broken,
}

impl DeliveryFailure {
    /// Label form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::Broken => "broken",
        }
    }
}

/// Ping/push delivery status of a transaction (never the token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Attempts made.
    pub attempts: u32,
    /// The endpoint acknowledged (200/204).
    pub delivered: bool,
    /// Attempts are exhausted (or the transaction expired) without success.
    pub gave_up: bool,
    /// Class of the last failure.
    pub last_failure: Option<DeliveryFailure>,
    /// Earliest next attempt, ms.
    pub next_attempt_at_ms: u64,
}

impl Notification {
    /// Whether nothing more will be attempted.
    pub fn finished(&self) -> bool {
        self.delivered || self.gave_up
    }
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

    /// Whether a claimed operator fetch may still be running at `now_ms`.
    pub fn operator_fetch_in_flight(&self, now_ms: u64) -> bool {
        self.operator_fetch_until_ms.is_some_and(|until| now_ms < until)
    }

    /// When the store may forget this transaction, ms.
    pub fn retain_until_ms(&self, retention_ms: u64) -> u64 {
        self.expires_at_ms.saturating_add(retention_ms)
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The memory store keeps every pending transaction (boxed) until its retention ends, and
    /// every read clones one: the parts only some flows use (the browser flow, the SMS fallback)
    /// are boxed so that a CIBA push transaction does not carry their room inline.
    #[test]
    fn a_transaction_keeps_rarely_used_parts_out_of_line() {
        let size = std::mem::size_of::<Transaction>();
        eprintln!("size_of::<Transaction>() = {size}");
        assert!(size <= 512, "Transaction grew to {size} bytes (past a 512-byte allocation): box new optional parts");
    }
}
