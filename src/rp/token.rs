//! `POST /token` with the CIBA grant: each poll is planned by [`crate::flow::poll::plan_poll`],
//! written with compare-and-set (so overlapping polls are refused with `slow_down` and an
//! approval is collected exactly once), asks the operator when its interval allows, and answers
//! per shared/protocol.md §7.

use super::error::{json_response, RpError};
use super::form::Params;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::poll::{plan_poll, PollPlan};
use crate::flow::progress::{self, ProgressError, Step};
use crate::flow::{DeliveryMode, Transaction, TxState};
use crate::store::Versioned;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// Attempts when another writer wins a compare-and-set (each retry re-reads the state).
const CAS_ATTEMPTS: usize = progress::CAS_ATTEMPTS;

/// Handles one token request.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    if form.get("grant_type") == Some(super::token_code::GRANT) {
        return super::token_code::handle(gw, headers, form, log).await;
    }
    let client = super::client_auth::authenticate(gw, headers, form, "/token").await?;
    log.client = Some(client.client_id.clone());
    match form.require("grant_type")? {
        CIBA_GRANT => {}
        _ => return Err(RpError::UnsupportedGrantType),
    }
    let id = form.require("auth_req_id")?;
    if client.delivery == DeliveryMode::Push && !may_poll_despite_push(gw, id, &client.client_id).await? {
        // CIBA Core §11: a push client receives its tokens at its notification endpoint only.
        return Err(RpError::UnauthorizedClient("the client is registered for push delivery; it may not poll"));
    }

    for _ in 0..CAS_ATTEMPTS {
        let Some(Versioned { value: tx, version }) = gw.store.get(id).await.map_err(unavailable)? else {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        };
        if tx.client_id != client.client_id {
            return Err(RpError::InvalidGrant("unknown or expired auth_req_id"));
        }
        if tx.delivery.as_ref().is_some_and(|d| d.mode == DeliveryMode::Push) {
            // MC-SI mc_si_async_code: the result goes to the request's notification_uri only.
            return Err(RpError::UnauthorizedClient(
                "this request asked for mc_si_async_code: its result is delivered to its notification_uri",
            ));
        }
        log.operator = Some(tx.operator.clone());
        if crate::flow::sms_start::on_push_deadline(gw, &tx, version).await.map_err(unavailable)? {
            continue;
        }
        let now = gw.clock.now_ms();
        match plan_poll(&tx, now, gw.ciba.slow_down_step_s) {
            PollPlan::Terminal => return answer(&tx),
            PollPlan::SlowDown(next) => {
                // A lost race here means another poll overlapped this one: still slow_down.
                cas(gw, version, &tx, next).await?;
                return Err(RpError::SlowDown);
            }
            PollPlan::Answer(next) => {
                if cas(gw, version, &tx, next.clone()).await?.is_some() {
                    return answer(&next);
                }
            }
            PollPlan::Collect => {
                let mut done = tx.clone();
                done.state = TxState::Consumed;
                if cas(gw, version, &tx, done).await?.is_some() {
                    return issue(gw, &tx).await;
                }
            }
            PollPlan::AskOperator(next) => {
                let next = progress::with_fetch_lease(gw, next, now);
                let Some(claimed) = cas(gw, version, &tx, next.clone()).await? else {
                    continue;
                };
                return match progress::ask_operator(gw, claimed, &next).await {
                    Ok(Step::Unchanged) => answer(&next),
                    Ok(Step::Applied { version, tx: moved }) if moved.state == TxState::Approved => {
                        collect_after_approval(gw, version, *moved).await
                    }
                    Ok(Step::Applied { tx: moved, .. }) => answer(&moved),
                    // Someone else moved it meanwhile (a duplicate poll or callback): re-read.
                    Ok(Step::Conflict) => continue,
                    Err(ProgressError::Store(e)) => Err(unavailable(e)),
                    Err(e @ ProgressError::UnknownOperator) => Err(RpError::Internal(e.to_string())),
                };
            }
        }
    }
    Err(RpError::SlowDown)
}

/// Whether transaction `id` of a push-registered client chose polling itself (MC-SI
/// `mc_si_polling`); anything else keeps the push client's refusal.
async fn may_poll_despite_push(gw: &Gateway, id: &str, client_id: &str) -> Result<bool, RpError> {
    let tx = gw.store.get(id).await.map_err(unavailable)?;
    Ok(tx.is_some_and(|v| {
        v.value.client_id == client_id && v.value.delivery.as_ref().is_some_and(|d| d.mode == DeliveryMode::Poll)
    }))
}

async fn collect_after_approval(
    gw: &Gateway,
    version: u64,
    approved: Transaction,
) -> Result<Response<Full<Bytes>>, RpError> {
    let mut done = approved.clone();
    done.state = TxState::Consumed;
    match cas(gw, version, &approved, done).await? {
        Some(_) => issue(gw, &approved).await,
        None => Err(RpError::InvalidGrant("auth_req_id already used")),
    }
}

/// Compare-and-set with metrics; `Some(new_version)` when applied, `None` on conflict.
async fn cas(gw: &Gateway, version: u64, old: &Transaction, new: Transaction) -> Result<Option<u64>, RpError> {
    progress::cas(gw, version, old, new).await.map_err(unavailable)
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
async fn issue(gw: &Gateway, tx: &Transaction) -> Result<Response<Full<Bytes>>, RpError> {
    let tokens = progress::issue_tokens(gw, tx, false).map_err(RpError::Internal)?;
    gw.audit.tokens_issued(tx, "token").await;
    Ok(json_response(StatusCode::OK, serde_json::to_vec(&tokens).unwrap_or_default()))
}
