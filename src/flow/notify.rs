//! CIBA ping and push deliveries to a relying party's `backchannel_client_notification_endpoint`
//! (shared/protocol.md §2): what is sent ([`body`]), one attempt over HTTP ([`Notifier::send`],
//! `Authorization: Bearer <client_notification_token>`, never logged), and the pure retry rule
//! ([`record_attempt`]: exponential backoff, bounded by attempts and a deadline). The driver
//! decides when to call these; nothing here reads or writes the store.

use super::{DeliveryFailure, DeliveryMode, Notification, NotificationToken, Transaction, TxState};
use crate::app::Gateway;
use crate::config::NotificationsConfig;
use crate::operators::http::{call, CallError, PerThreadClient};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;

/// Sends notifications; one connection pool per worker thread.
pub struct Notifier {
    clients: PerThreadClient,
    cfg: NotificationsConfig,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with `cfg`'s timeouts (certificates verified against the public roots).
    pub fn new(cfg: &NotificationsConfig) -> Result<Self, String> {
        Ok(Self {
            clients: PerThreadClient::new(Duration::from_millis(cfg.connect_timeout_ms), None)?,
            cfg: cfg.clone(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &NotificationsConfig {
        &self.cfg
    }

    /// One attempt: POST `body` (JSON) to `endpoint` with the bearer token; `Ok` on any 2xx.
    pub async fn send(&self, endpoint: &str, token: &NotificationToken, body: Vec<u8>) -> Result<(), DeliveryFailure> {
        let uri: Uri = endpoint.parse().map_err(|_| DeliveryFailure::Connect)?;
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| DeliveryFailure::Connect)?;
        bearer.set_sensitive(true);
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| DeliveryFailure::Connect)?;
        match call(self.clients.get(), req, Duration::from_millis(self.cfg.attempt_timeout_ms)).await {
            Ok(resp) if resp.status.is_success() => Ok(()),
            Ok(_) => Err(DeliveryFailure::HttpStatus),
            Err(CallError::Connect(_)) => Err(DeliveryFailure::Connect),
            Err(CallError::Timeout(_)) => Err(DeliveryFailure::Timeout),
            Err(CallError::Broken(_) | CallError::TooLarge) => Err(DeliveryFailure::Broken),
        }
    }
}

/// The JSON a `mode` client receives for `tx` (terminal, not consumed). Push bodies carry fresh
/// tokens whose ID token has the `auth_req_id` claim and `at_hash`.
pub fn body(gw: &Gateway, tx: &Transaction, mode: DeliveryMode) -> Result<serde_json::Value, String> {
    let id = tx.id.as_str();
    if mode != DeliveryMode::Push {
        return Ok(json!({ "auth_req_id": id }));
    }
    let error = |code: &str, desc: &str| json!({"auth_req_id": id, "error": code, "error_description": desc});
    Ok(match tx.state {
        TxState::Approved => {
            let t = super::progress::issue_tokens(gw, tx, true)?;
            json!({
                "auth_req_id": id, "access_token": t.access_token, "token_type": t.token_type,
                "expires_in": t.expires_in, "id_token": t.id_token,
            })
        }
        TxState::Denied => error("access_denied", "the person refused the authentication"),
        TxState::Expired => error("expired_token", "the authentication request expired without an answer"),
        TxState::Failed(reason) => error("transaction_failed", reason.as_str()),
        s => return Err(format!("nothing to deliver in state {}", s.as_str())),
    })
}

/// The record after one attempt at `now_ms` (`outcome`), given the attempt bound and the time
/// after which nothing is attempted any more (`deadline_ms`).
pub fn record_attempt(
    prev: &Notification,
    outcome: Result<(), DeliveryFailure>,
    now_ms: u64,
    cfg: &NotificationsConfig,
    deadline_ms: u64,
) -> Notification {
    let mut n = prev.clone();
    n.attempts += 1;
    match outcome {
        Ok(()) => n.delivered = true,
        Err(class) => {
            n.last_failure = Some(class);
            let backoff = backoff_ms(n.attempts, cfg);
            n.next_attempt_at_ms = now_ms.saturating_add(backoff);
            n.gave_up = n.attempts >= cfg.attempts || n.next_attempt_at_ms >= deadline_ms;
        }
    }
    n
}

/// Wait after the `failed`-th failed attempt: initial × 2^(failed-1), capped.
pub fn backoff_ms(failed: u32, cfg: &NotificationsConfig) -> u64 {
    let doublings = failed.saturating_sub(1).min(32);
    cfg.initial_backoff_ms.saturating_mul(1u64 << doublings).min(cfg.max_backoff_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NotificationsConfig {
        NotificationsConfig {
            attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 250,
            attempt_timeout_ms: 1,
            connect_timeout_ms: 1,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = cfg();
        assert_eq!([1, 2, 3, 40].map(|n| backoff_ms(n, &c)), [100, 200, 250, 250]);
    }

    #[test]
    fn attempts_stop_at_the_bound_or_the_deadline() {
        let c = cfg();
        let n1 = record_attempt(&Notification::default(), Err(DeliveryFailure::HttpStatus), 0, &c, 10_000);
        assert_eq!((n1.attempts, n1.gave_up, n1.next_attempt_at_ms), (1, false, 100));
        let n2 = record_attempt(&n1, Err(DeliveryFailure::Timeout), 100, &c, 10_000);
        assert_eq!((n2.attempts, n2.gave_up, n2.last_failure), (2, false, Some(DeliveryFailure::Timeout)));
        let n3 = record_attempt(&n2, Err(DeliveryFailure::Connect), 300, &c, 10_000);
        assert!(n3.gave_up && !n3.delivered, "third failure of three ends it");
        let late = record_attempt(&Notification::default(), Err(DeliveryFailure::Connect), 9_950, &c, 10_000);
        assert!(late.gave_up, "no attempt is planned past the deadline");
        let ok = record_attempt(&n2, Ok(()), 300, &c, 10_000);
        assert!(ok.delivered && ok.finished() && ok.attempts == 3);
    }
}
