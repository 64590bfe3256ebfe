//! Where a transaction's result goes. By default the client's registered CIBA mode (`poll`,
//! `ping` or `push` to its `backchannel_client_notification_endpoint`); a request may choose its
//! own delivery instead (Mobile Connect server-initiated: `mc_si_polling` → the RP polls,
//! `mc_si_async_code` → the result is POSTed to the request's `notification_uri`). This one rule
//! is read by the authorize endpoints, `/token`, operator callbacks and the driver.

use super::{DeliveryMode, Transaction};
use serde::{Deserialize, Serialize};

/// A delivery chosen by the request itself, stored with the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDelivery {
    /// `poll` (the RP polls `/token`) or `push` (the result is POSTed to `endpoint`).
    pub mode: DeliveryMode,
    /// Where a push goes (a URI registered for the client); `None` for `poll`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The delivery in force for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// How the result reaches the RP.
    pub mode: DeliveryMode,
    /// Where ping/push notifications go.
    pub endpoint: Option<&'a str>,
}

/// The request's own delivery if it chose one, else the client's registered `client_mode` and
/// `client_endpoint`.
pub fn target<'a>(tx: &'a Transaction, client_mode: DeliveryMode, client_endpoint: Option<&'a str>) -> Target<'a> {
    match &tx.delivery {
        Some(d) => Target { mode: d.mode, endpoint: d.endpoint.as_deref() },
        None => Target { mode: client_mode, endpoint: client_endpoint },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_choice_wins_over_the_client_registration() {
        let mut tx = Transaction::sample("id", 0);
        let registered = target(&tx, DeliveryMode::Ping, Some("https://rp/ping"));
        assert_eq!(registered, Target { mode: DeliveryMode::Ping, endpoint: Some("https://rp/ping") });
        tx.delivery = Some(RequestDelivery { mode: DeliveryMode::Push, endpoint: Some("https://rp/si".into()) });
        let chosen = target(&tx, DeliveryMode::Ping, Some("https://rp/ping"));
        assert_eq!(chosen, Target { mode: DeliveryMode::Push, endpoint: Some("https://rp/si") });
        tx.delivery = Some(RequestDelivery { mode: DeliveryMode::Poll, endpoint: None });
        assert_eq!(target(&tx, DeliveryMode::Push, Some("https://rp/push")).mode, DeliveryMode::Poll);
    }

    #[test]
    fn transactions_stored_before_the_field_existed_still_read() {
        let tx = Transaction::sample("id", 0);
        let mut v = serde_json::to_value(&tx).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("delivery");
        obj.remove("nonce");
        let back: Transaction = serde_json::from_value(v).unwrap();
        assert_eq!((back.delivery, back.nonce), (None, None));
    }
}
