//! `POST /cancel`: the RP withdraws a transaction it started (the person closed the page, the RP
//! timed out on its side). A pending or approved-but-uncollected transaction becomes
//! `failed{cancelled}` by compare-and-set, so a late approval can never turn into tokens; the
//! answer always reports the state the transaction ended in, and repeating a cancel is harmless.
//! Cancelling never blocks a new `bc-authorize` for the same person (shared/protocol.md §7).
//!
//! The operator is not told: CIBA has no cancel call, and a person who still answers the prompt
//! only moves a transaction nobody will collect.

use super::error::{json_response, RpError};
use super::form::Params;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::{FailReason, TxState};
use crate::store::CasResult;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// Attempts when another writer wins a compare-and-set.
const CAS_ATTEMPTS: usize = 4;

/// Handles one cancel request.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let client = super::client_auth::authenticate(gw, headers, form, "/cancel").await?;
    log.client = Some(client.client_id.clone());
    let id = form.require("auth_req_id")?;
    let retention_ms = gw.ciba.terminal_retention_s * 1000;
    let unavailable =
        |e: crate::store::StoreError| RpError::TemporarilyUnavailable(format!("transaction store: {e}").into());

    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = gw.store.get(id).await.map_err(unavailable)? else {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        };
        let tx = current.value;
        if tx.client_id != client.client_id {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        }
        log.operator = Some(tx.operator.clone());
        if !(tx.state.is_pending() || tx.state == TxState::Approved) {
            return Ok(answer(id, tx.state));
        }
        let (from, from_state) = (tx.state.as_str(), tx.state);
        let mut cancelled = tx.clone();
        cancelled.state = TxState::Failed(FailReason::Cancelled);
        let retain = cancelled.retain_until_ms(retention_ms);
        let counted = gw.metrics.auth.moved(from_state, &cancelled);
        let audit = gw.audit.transition_event(&tx, &cancelled);
        if let CasResult::Applied { .. } =
            gw.store.compare_and_set(current.version, cancelled, retain).await.map_err(unavailable)?
        {
            counted.inc();
            gw.audit.emit(audit).await;
            gw.metrics.transition(Some(from), Some("failed"));
            return Ok(answer(id, TxState::Failed(FailReason::Cancelled)));
        }
    }
    Err(RpError::IdempotencyInFlight)
}

/// `{"auth_req_id", "state", "reason"?}` for the state the transaction is in now.
fn answer(id: &str, state: TxState) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({"auth_req_id": id, "state": state.as_str()});
    if let TxState::Failed(reason) = state {
        body["reason"] = reason.as_str().into();
    }
    json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
}
