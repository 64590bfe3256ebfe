//! `POST /token` with the CIBA grant: each poll is planned by [`crate::flow::poll::plan_poll`],
//! written with compare-and-set (so overlapping polls are refused with `slow_down` and an
//! approval is collected exactly once), asks the operator when its interval allows, and answers
//! per shared/protocol.md §7.

use super::error::{json_response, RpError};
use super::form::Params;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::poll::{plan_poll, PollPlan};
use crate::flow::poll_cache::Cached;
use crate::flow::progress::{self, ProgressError, Step};
use crate::flow::{DeliveryMode, Transaction, TxState};
use crate::store::{CasResult, Versioned};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

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
    // Another poll of this id by this client is being answered here: too fast, no store call.
    let _in_flight = match gw.poll_gate.enter(&client.client_id, id) {
        crate::flow::poll_gate::Entry::Admitted(ticket) => ticket,
        crate::flow::poll_gate::Entry::Overlapping => return Err(RpError::SlowDown),
    };
    if client.delivery == DeliveryMode::Push && !may_poll_despite_push(gw, id, &client.client_id).await? {
        // CIBA Core §11: a push client receives its tokens at its notification endpoint only.
        return Err(RpError::UnauthorizedClient("the client is registered for push delivery; it may not poll"));
    }

    // The last version seen here stands in for the first read (one store round trip instead of
    // two) when its plan writes: the compare-and-set checks it, and a lost one hands back the
    // current value, planned on in the next round. Terminal answers and the push-deadline SMS
    // fallback act on fresh reads only.
    let now = gw.clock.now_ms();
    let mut known = gw.poll_cache.get(id).filter(|c| {
        (c.value.state.is_pending() || c.value.state == TxState::Approved)
            && !crate::flow::sms_start::push_deadline_due(gw, &c.value, now)
    });
    let mut from_cache = known.is_some();
    // A compare-and-set of this poll lost to another writer: the poll overlapped another one.
    let mut lost = false;
    for _ in 0..CAS_ATTEMPTS {
        let current = match known.take() {
            Some(c) => c,
            None => match gw.store.get(id).await.map_err(unavailable)? {
                Some(read) => gw.poll_cache.put(Arc::new(read)),
                None => return Err(gone(gw, id)),
            },
        };
        let (tx, version) = (&current.value, current.version);
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
        if !std::mem::take(&mut from_cache)
            && crate::flow::sms_start::on_push_deadline(gw, tx, version).await.map_err(unavailable)?
        {
            continue;
        }
        let now = gw.clock.now_ms();
        match plan_poll(tx, now, gw.ciba.slow_down_step_s) {
            PollPlan::Terminal => return answer(tx),
            // Overlapped a poll that wrote first, and still early on its value: slow_down
            // without a second write (the interval grew with that one).
            PollPlan::SlowDown(_) if lost => return Err(RpError::SlowDown),
            PollPlan::SlowDown(next) => match cas(gw, version, tx, next).await? {
                Ok(_) => return Err(RpError::SlowDown),
                Err(now_current) => (known, lost) = (Some(now_current.ok_or_else(|| gone(gw, id))?), true),
            },
            PollPlan::Answer(next) => match cas(gw, version, tx, next.clone()).await? {
                Ok(_) => return answer(&next),
                Err(now_current) => (known, lost) = (Some(now_current.ok_or_else(|| gone(gw, id))?), true),
            },
            PollPlan::Collect => {
                let mut done = tx.clone();
                done.state = TxState::Consumed;
                match cas(gw, version, tx, done).await? {
                    Ok(_) => return issue(gw, tx).await,
                    Err(now_current) => (known, lost) = (Some(now_current.ok_or_else(|| gone(gw, id))?), true),
                }
            }
            PollPlan::AskOperator(next) => {
                let next = progress::with_fetch_lease(gw, next, now);
                let claimed = match cas(gw, version, tx, next.clone()).await? {
                    Ok(claimed) => claimed,
                    Err(now_current) => {
                        (known, lost) = (Some(now_current.ok_or_else(|| gone(gw, id))?), true);
                        continue;
                    }
                };
                // Settling the fetch writes versions this poll does not keep.
                gw.poll_cache.forget(id);
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
        Ok(_) => issue(gw, &approved).await,
        Err(_) => Err(RpError::InvalidGrant("auth_req_id already used")),
    }
}

/// Compare-and-set with metrics, the written version kept in the poll cache: `Ok(new_version)`
/// when applied, else `Err(the value it lost to)` (`None`: gone), also cached.
async fn cas(
    gw: &Gateway,
    version: u64,
    old: &Transaction,
    new: Transaction,
) -> Result<Result<u64, Option<Cached>>, RpError> {
    let written = gw.poll_cache.enabled().then(|| new.clone());
    match progress::cas_or_current(gw, version, old, new).await.map_err(unavailable)? {
        CasResult::Applied { version } => {
            if let Some(value) = written {
                gw.poll_cache.put(Arc::new(Versioned { value, version }));
            }
            Ok(Ok(version))
        }
        CasResult::Conflict { current: Some(current) } => Ok(Err(Some(gw.poll_cache.put(Arc::new(*current))))),
        CasResult::Conflict { current: None } => Ok(Err(None)),
    }
}

/// `invalid_grant` for an id the store no longer holds (and the cache forgets).
fn gone(gw: &Gateway, id: &str) -> RpError {
    gw.poll_cache.forget(id);
    RpError::InvalidGrant("unknown or expired auth_req_id")
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
