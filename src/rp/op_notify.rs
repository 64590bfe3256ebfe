//! `POST /op/{operator}/notify`: operators calling us back (shared/protocol.md §4). The bearer is
//! the `client_notification_token` we gave the operator for one transaction, `<id>.<secret>`:
//! the id finds the transaction without a secondary index, the secret is checked in constant
//! time against the stored hash. The body ([`crate::operators::callback::parse`]) must name the
//! operator's own `auth_req_id` for that transaction; the answer it carries is applied with
//! compare-and-set, so a duplicate callback changes nothing and answers 204. A ping means "fetch
//! the result": like an RP poll or the driver, it first claims the operator poll slot and fetch
//! lease by compare-and-set (the operator hands the result out once); while another fetch holds
//! the lease, that fetch (or the next scheduled one) reads the result and the ping just answers
//! 204. When the transaction ends, the driver is told to notify a ping/push RP at once.

use super::error::RpError;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::progress::{self, ProgressError, Step, CAS_ATTEMPTS};
use crate::flow::DeliveryMode;
use crate::operators::callback;
use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::Full;
use subtle::ConstantTimeEq;

/// The operator id of a `/op/{operator}/notify` path.
pub fn operator_of(path: &str) -> Option<&str> {
    path.strip_prefix("/op/")?.strip_suffix("/notify").filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Handles one operator callback.
pub async fn handle(
    gw: &Gateway,
    operator_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let operator = gw.operator(operator_id).ok_or(RpError::NotFound)?;
    log.operator = Some(operator.id().to_owned());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(RpError::InvalidToken("a Bearer token is required"))?;
    let wrong = RpError::InvalidToken("the bearer token is not valid for this operator");
    let (id, secret) = bearer.trim().split_once('.').ok_or(wrong.clone())?;
    let cb = callback::parse(body).map_err(|e| RpError::invalid_request(e.0))?;

    for _ in 0..CAS_ATTEMPTS {
        let current = gw.store.get(id).await.map_err(unavailable)?.ok_or(wrong.clone())?;
        let tx = &current.value;
        let expected = tx.operator_notify_sha256.as_deref().unwrap_or("");
        let presented = crate::config::secret::secret_sha256_hex(secret);
        let hash_ok: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
        if !hash_ok || expected.is_empty() || tx.operator != operator_id {
            return Err(wrong);
        }
        log.client = Some(tx.client_id.clone());
        let Some(op_ref) = tx.operator_ref.as_ref().filter(|o| o.auth_req_id == cb.auth_req_id()) else {
            return Err(RpError::UnknownTransaction);
        };
        if !tx.state.is_pending() {
            return Ok(no_content()); // a duplicate: the first callback (or a poll) already decided
        }
        let step = if let callback::OperatorCallback::Ping { .. } = cb {
            let now = gw.clock.now_ms();
            if tx.operator_fetch_in_flight(now) {
                return Ok(no_content()); // a fetch is running: it (or the next one) reads the result
            }
            let mut claimed = tx.clone();
            if let Some(op) = &mut claimed.operator_ref {
                op.next_poll_at_ms = now + op.interval_s.max(1) * 1000;
            }
            let claimed = progress::with_fetch_lease(gw, claimed, now);
            let Some(version) = progress::cas(gw, current.version, tx, claimed.clone()).await.map_err(unavailable)?
            else {
                continue;
            };
            match progress::ask_operator(gw, version, &claimed).await {
                Ok(step) => step,
                Err(ProgressError::Store(e)) => return Err(unavailable(e)),
                Err(e @ ProgressError::UnknownOperator) => return Err(RpError::Internal(e.to_string())),
            }
        } else {
            let answer = operator.callback_answer(op_ref, expected, &cb).await;
            progress::apply_answer(gw, current.version, tx, &answer).await.map_err(unavailable)?
        };
        match step {
            Step::Unchanged => return Ok(no_content()),
            Step::Applied { tx: moved, .. } => {
                let mode = gw.clients.get(&moved.client_id).map_or(DeliveryMode::Poll, |c| {
                    crate::flow::delivery::target(&moved, c.delivery, c.notification_endpoint.as_deref()).mode
                });
                if !moved.state.is_pending() && mode != DeliveryMode::Poll {
                    gw.driver.kick(&moved.id, gw.clock.now_ms());
                }
                return Ok(no_content());
            }
            Step::Conflict => continue,
        }
    }
    Ok(no_content())
}

fn no_content() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_is_read_from_the_path() {
        assert_eq!(operator_of("/op/orange/notify"), Some("orange"));
        for bad in ["/op//notify", "/op/a/b/notify", "/op/orange", "/x/orange/notify"] {
            assert_eq!(operator_of(bad), None, "{bad}");
        }
    }
}
