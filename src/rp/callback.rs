//! `GET /callback`: the operator sends the browser back. Our single-use `state` names the
//! transaction (unknown or reused → HTML page, never a redirect); an operator `error=` or a code
//! is turned into the flow's outcome by the operator adapter (code redeemed, ID token verified
//! with our nonce), the transaction moves by compare-and-set, and the browser goes back to the
//! RP with OUR code (≥ 256 bits, single use, `redirect.code_ttl_s`) or an error per
//! shared/protocol.md §7, always with the RP's `state` and our `iss`.

use super::error::RpError;
use super::form::Params;
use super::{authorize, redirect_back, RequestLog};
use crate::app::Gateway;
use crate::flow::poll::{apply_operator_answer, OperatorAnswer};
use crate::flow::redirect::fresh_enough;
use crate::flow::{FailReason, TxState};
use crate::msisdn::Msisdn;
use crate::operators::RedirectReturn;
use crate::store::{CasResult, Versioned};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use sha2::{Digest, Sha256};

/// Store key of one of our authorization codes (its SHA-256: the store never holds a live code).
pub fn code_key(code: &str) -> String {
    format!("authorize:code:{}", hex::encode(Sha256::digest(code.as_bytes())))
}

/// `GET /callback`.
pub async fn handle(gw: &Gateway, query: &[u8], log: &mut RequestLog) -> Result<Response<Full<Bytes>>, RpError> {
    let unknown = || RpError::BrowserError("unknown, expired or already used sign-in".into());
    let p = Params::parse(query).map_err(|e| RpError::BrowserError(e.description()))?;
    let state = p.get("state").ok_or_else(unknown)?;
    let tx_id = gw.store.take(&authorize::op_state_key(state)).await.map_err(unavailable)?.ok_or_else(unknown)?;
    let Versioned { value: tx, version } = gw.store.get(&tx_id).await.map_err(unavailable)?.ok_or_else(unknown)?;
    let flow = tx.redirect.clone().ok_or_else(unknown)?;
    log.client = Some(tx.client_id.clone());
    log.operator = Some(tx.operator.clone());
    log.msisdn = Msisdn::from_digits(tx.msisdn).ok();
    let back = |e: RpError| redirect_back::error(&flow.redirect_uri, &e, Some(&flow.state), &gw.issuer);

    let now = gw.clock.now_ms();
    // SMS fallback: an operator error of a "nothing sent" class (through its error_map) sends
    // an opted-in client's person to our OTP page instead of back to the RP.
    if let (Some(error), true) = (p.get("error"), now < tx.expires_at_ms) {
        let class = crate::flow::sms_start::classify(gw, &tx.operator, error, p.get("error_description"));
        if let Some(next) = crate::flow::sms_start::after_push(gw, &tx, class).await {
            let to = next.state;
            let retain = next.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
            let counted = gw.metrics.auth.moved(tx.state, &next);
            match gw.store.compare_and_set(version, next.clone(), retain).await.map_err(unavailable)? {
                CasResult::Applied { .. } => {
                    counted.inc();
                    gw.audit.transition(&tx, &next).await;
                    gw.metrics.transition(Some(tx.state.as_str()), Some(to.as_str()))
                }
                CasResult::Conflict { .. } => return Err(unknown()),
            }
            return match to {
                TxState::PendingSms => {
                    let page = crate::rp::sms_otp::open_page(gw, &next).await.map_err(unavailable)?;
                    redirect_back::found(&page)
                }
                TxState::Failed(reason) => {
                    gw.metrics.failed(reason.as_str());
                    back(RpError::TransactionFailed(reason))
                }
                _ => back(RpError::Internal("unexpected state after the SMS fallback".into())),
            };
        }
    }
    let answer = if now >= tx.expires_at_ms {
        OperatorAnswer::Expired
    } else {
        let operator = gw
            .operator(&tx.operator)
            .ok_or_else(|| RpError::Internal("transaction names an unknown operator".into()))?;
        let callback = format!("{}/callback", gw.issuer);
        let ret = match (p.get("error"), p.get("code")) {
            (Some(error), _) => RedirectReturn::Error { error, description: p.get("error_description") },
            (None, Some(code)) => RedirectReturn::Code {
                code,
                redirect_uri: &callback,
                nonce: &flow.op_nonce,
                code_verifier: &flow.op_code_verifier,
            },
            (None, None) => RedirectReturn::Error { error: "invalid_request", description: Some("no code, no error") },
        };
        match operator.finish_redirect(ret).await {
            OperatorAnswer::Approved(r)
                if !fresh_enough(flow.max_age, r.auth_time, now / 1000, gw.redirect.max_age_skew_s) =>
            {
                tracing::warn!(operator = %tx.operator, "operator auth_time older than the RP's max_age");
                OperatorAnswer::Failed(FailReason::OperatorError)
            }
            a => a,
        }
    };
    // The operator ran its authentication page (see telemetry::usage): a push for the usage records.
    if matches!(answer, OperatorAnswer::Approved(_) | OperatorAnswer::Denied) {
        gw.usage.push_accepted(&tx.client_id, &tx.operator).await;
    }
    let Some(mut moved) = apply_operator_answer(&tx, &answer, now, tx.acr_floor) else {
        return back(RpError::Internal("operator return left the transaction pending".into()));
    };
    let code_ttl_ms = gw.redirect.code_ttl_s * 1000;
    if moved.state == TxState::Approved {
        moved.expires_at_ms = now + code_ttl_ms;
    }
    let retain = moved.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let to = moved.state;
    let counted = gw.metrics.auth.moved(tx.state, &moved);
    let audit = gw.audit.transition_event(&tx, &moved);
    match gw.store.compare_and_set(version, moved, retain).await.map_err(unavailable)? {
        CasResult::Applied { .. } => {
            counted.inc();
            gw.audit.emit(audit).await;
            gw.metrics.transition(Some(tx.state.as_str()), Some(to.as_str()))
        }
        CasResult::Conflict { .. } => return Err(unknown()),
    }
    match to {
        TxState::Approved => issue_code_redirect(gw, &tx.id, &flow, now).await,
        TxState::Denied => back(RpError::PersonDenied),
        TxState::Expired => back(RpError::ExpiredToken),
        TxState::Failed(reason) => back(RpError::TransactionFailed(reason)),
        _ => back(RpError::Internal("unexpected state after the operator's return".into())),
    }
}

/// The approved redirect-flow transaction `tx_id` goes back to its RP: a fresh single-use code
/// of ours (`redirect.code_ttl_s`, stored by its hash) in a 302 to the RP's `redirect_uri`.
/// Shared by the operator's return here and the SMS code page ([`super::sms_otp`]).
pub async fn issue_code_redirect(
    gw: &Gateway,
    tx_id: &str,
    flow: &crate::flow::redirect::RedirectFlow,
    now: u64,
) -> Result<Response<Full<Bytes>>, RpError> {
    let code = crate::clock::random_token(32);
    let until = now + gw.redirect.code_ttl_s * 1000;
    if gw.store.put_if_absent(&code_key(&code), tx_id, until).await.map_err(unavailable)?.is_some() {
        return redirect_back::error(
            &flow.redirect_uri,
            &RpError::Internal("authorization code collision".into()),
            Some(&flow.state),
            &gw.issuer,
        );
    }
    redirect_back::code(&flow.redirect_uri, &code, &flow.state, &gw.issuer)
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}
