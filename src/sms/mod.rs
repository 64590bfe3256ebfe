//! The SMS fallback channel (shared/protocol.md §5, shared/security.md S-01…S-20): what an SMS
//! transport must do, shared by the transports (SMPP to an SMSC, a generic HTTP provider), the
//! one-time codes and confirm links, the message text and the anti-pumping limits. The decision
//! *whether* to fall back is a pure function in `flow`; nothing here decides that.

pub mod language;
pub mod limits;
pub mod message;
pub mod otp;
pub mod transport;

use crate::msisdn::Msisdn;
use async_trait::async_trait;

/// One SMS to send. `text` may contain a one-time code or link: transports never log it.
#[derive(Clone, Copy)]
pub struct OutgoingSms<'a> {
    /// Recipient.
    pub to: &'a Msisdn,
    /// Message text (GSM 03.38 where possible; the transport picks the encoding).
    pub text: &'a str,
    /// Our correlation id for delivery receipts (the transaction id, i.e. the RP's `auth_req_id`:
    /// sent to the SMS provider, never logged).
    pub reference: &'a str,
}

impl std::fmt::Debug for OutgoingSms<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSms")
            .field("to", &self.to.masked().to_string())
            .field("text", &"[redacted]")
            .field("reference", &self.reference)
            .finish()
    }
}

/// The SMSC (or provider) accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReceipt {
    /// The SMSC's message id (delivery receipts name it).
    pub message_id: String,
}

/// Why a message was not accepted. `Rejected` means the SMSC refused it: nothing reached the
/// phone. `Unavailable` after the request was written (a timeout, a session lost mid-submit)
/// may still deliver it: the caller never sends a second code for the same transaction, it
/// answers `failed{sms_unavailable}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// The SMSC answered and refused (throttled, submit failed, invalid destination).
    #[error("SMSC refused the message: {0}")]
    Rejected(String),
    /// No SMSC to talk to (down, bind lost, timeout before an answer).
    #[error("SMSC unavailable: {0}")]
    Unavailable(String),
}

/// Final state of a submitted message, from a delivery receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// No receipt yet.
    Pending,
    /// Delivered to the handset.
    Delivered,
    /// Not delivered (expired, undeliverable, rejected after acceptance).
    Failed,
}

/// Sends SMS. Implementations bound every call by their configured timeout.
#[async_trait]
pub trait SmsTransport: Send + Sync + 'static {
    /// Transport name for logs and metric labels (`smpp`, `http`).
    fn kind(&self) -> &'static str;
    /// Submits one message; returns once the SMSC accepted or refused it.
    async fn submit(&self, sms: &OutgoingSms<'_>) -> Result<SubmitReceipt, SmsError>;
    /// What the delivery receipts say about `message_id` so far.
    fn delivery_state(&self, message_id: &str) -> DeliveryState;
}
