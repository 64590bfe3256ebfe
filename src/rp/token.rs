//! `POST /token` with the CIBA grant: each poll is planned by [`crate::flow::poll::plan_poll`],
//! written with compare-and-set (so overlapping polls are refused with `slow_down` and an
//! approval is collected exactly once), asks the operator when its interval allows, and answers
//! per shared/protocol.md §7.

use super::error::{json_response, RpError};
use super::form::Params;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::poll::{apply_operator_answer, plan_poll, PollPlan};
use crate::flow::{Transaction, TxState};
use crate::msisdn::Msisdn;
use crate::store::{CasResult, Versioned};
use crate::tokens::id_token::Approval;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// Attempts when another writer wins a compare-and-set (each retry re-reads the state).
const CAS_ATTEMPTS: usize = 4;

/// Handles one token request.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let client = super::client_auth::authenticate(gw, headers, form, "/token").await?;
    log.client = Some(client.client_id.clone());
    match form.require("grant_type")? {
        CIBA_GRANT => {}
        _ => return Err(RpError::UnsupportedGrantType),
    }
    let id = form.require("auth_req_id")?;
    let retention_ms = gw.ciba.terminal_retention_s * 1000;

    for _ in 0..CAS_ATTEMPTS {
        let Some(Versioned { value: tx, version }) = gw.store.get(id).await.map_err(unavailable)? else {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        };
        if tx.client_id != client.client_id {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        }
        log.operator = Some(tx.operator.clone());
        let now = gw.clock.now_ms();
        match plan_poll(&tx, now, gw.ciba.slow_down_step_s) {
            PollPlan::Terminal => return answer(&tx),
            PollPlan::SlowDown(next) => {
                // A lost race here means another poll overlapped this one: still slow_down.
                cas(gw, version, &tx, next, retention_ms).await?;
                return Err(RpError::SlowDown);
            }
            PollPlan::Answer(next) => {
                if cas(gw, version, &tx, next.clone(), retention_ms).await?.is_some() {
                    return answer(&next);
                }
            }
            PollPlan::Collect => {
                let mut done = tx.clone();
                done.state = TxState::Consumed;
                if cas(gw, version, &tx, done, retention_ms).await?.is_some() {
                    return issue(gw, &tx);
                }
            }
            PollPlan::AskOperator(next) => {
                let Some(claimed) = cas(gw, version, &tx, next.clone(), retention_ms).await? else {
                    continue;
                };
                let (Some(operator), Some(op_ref)) = (gw.operator(&next.operator), next.operator_ref.as_ref()) else {
                    return Err(RpError::Internal("transaction names an unknown operator".into()));
                };
                let op_answer = operator.poll(op_ref).await;
                let now = gw.clock.now_ms();
                let Some(moved) = apply_operator_answer(&next, &op_answer, now, next.acr_floor) else {
                    return answer(&next);
                };
                return match cas(gw, claimed, &next, moved.clone(), retention_ms).await? {
                    Some(v) if moved.state == TxState::Approved => {
                        collect_after_approval(gw, v, moved, retention_ms).await
                    }
                    Some(_) => answer(&moved),
                    // Someone else moved it meanwhile (a duplicate poll or callback): re-read.
                    None => continue,
                };
            }
        }
    }
    Err(RpError::SlowDown)
}

async fn collect_after_approval(
    gw: &Gateway,
    version: u64,
    approved: Transaction,
    retention_ms: u64,
) -> Result<Response<Full<Bytes>>, RpError> {
    let mut done = approved.clone();
    done.state = TxState::Consumed;
    match cas(gw, version, &approved, done, retention_ms).await? {
        Some(_) => issue(gw, &approved),
        None => Err(RpError::InvalidGrant("auth_req_id already used")),
    }
}

/// Compare-and-set with metrics; `Some(new_version)` when applied, `None` on conflict.
async fn cas(
    gw: &Gateway,
    version: u64,
    old: &Transaction,
    new: Transaction,
    retention_ms: u64,
) -> Result<Option<u64>, RpError> {
    let (from, to) = (old.state.as_str(), new.state.as_str());
    let retain = new.retain_until_ms(retention_ms);
    match gw.store.compare_and_set(version, new, retain).await.map_err(unavailable)? {
        CasResult::Applied { version } => {
            if from != to {
                gw.metrics.transition(Some(from), Some(to));
            }
            Ok(Some(version))
        }
        CasResult::Conflict { .. } => Ok(None),
    }
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}

/// The RP's answer for a transaction's state.
fn answer(tx: &Transaction) -> Result<Response<Full<Bytes>>, RpError> {
    Err(match tx.state {
        TxState::PendingPush | TxState::PendingSms => RpError::AuthorizationPending,
        TxState::Denied => RpError::PersonDenied,
        TxState::Expired => RpError::ExpiredToken,
        TxState::Failed(reason) => RpError::TransactionFailed(reason),
        TxState::Consumed => RpError::InvalidGrant("auth_req_id already used"),
        TxState::Approved => RpError::Internal("approved transaction answered without collection".into()),
    })
}

/// Issues the tokens of an approved (now consumed) transaction.
fn issue(gw: &Gateway, tx: &Transaction) -> Result<Response<Full<Bytes>>, RpError> {
    let result = tx.result.as_ref().ok_or_else(|| RpError::Internal("approved without a result".into()))?;
    let client = gw.clients.get(&tx.client_id).ok_or_else(|| RpError::Internal("client vanished".into()))?;
    let msisdn = Msisdn::from_digits(tx.msisdn).map_err(|_| RpError::Internal("stored MSISDN invalid".into()))?;
    let sub = gw.pairwise.subject(&client.sector, &msisdn);
    let approval = Approval {
        client_id: &tx.client_id,
        sub: &sub,
        auth_time: result.auth_time,
        acr: &result.acr,
        amr: &result.amr,
        nonce: None,
        auth_req_id: None,
    };
    let tokens = gw.tokens.issue(&approval, gw.clock.now_s()).map_err(|e| RpError::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, serde_json::to_vec(&tokens).unwrap_or_default()))
}
