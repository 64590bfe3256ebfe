//! `POST /token` with `grant_type=authorization_code`: client authentication (confidential as
//! registered; public clients by `client_id` with PKCE), then the code — single use (taken from
//! the store before anything else, so a failed attempt burns it), bound to its client, its
//! exact `redirect_uri` and its PKCE S256 challenge — and the transaction's compare-and-set
//! `approved → consumed`. Tokens carry the RP's nonce, `auth_time`, the operator's acr/amr and
//! the pairwise subject; any mismatch is `invalid_grant`. A replayed code also revokes the access
//! token issued from it ([`crate::tokens::revocation`], S-26).

use super::callback::code_key;
use super::error::{json_response, RpError};
use super::form::Params;
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::redirect::pkce_ok;
use crate::flow::TxState;
use crate::store::{CasResult, Versioned};
use crate::tokens::revocation;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// The grant type this module serves.
pub const GRANT: &str = "authorization_code";

/// Handles one code redemption.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let client = if form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some() {
        super::client_auth::authenticate(gw, headers, form, "/token").await?
    } else {
        gw.clients.authenticate_or_public(headers, form)?
    };
    log.client = Some(client.client_id.clone());
    let code = form.require("code")?;
    let redirect_uri = form.require("redirect_uri")?;
    let bad = RpError::InvalidGrant("the code is unknown, expired, already used or not yours");
    let key = code_key(code);
    let Some(tx_id) = gw.store.take(&key).await.map_err(unavailable)? else {
        // S-26: a replayed code revokes the access token issued from it.
        if revocation::revoke_on_replay(&*gw.store, &key).await.map_err(unavailable)? {
            tracing::warn!(client = %client.client_id, "authorization code replayed: its access token is revoked");
        }
        return Err(bad);
    };
    let Versioned { value: tx, version } = gw.store.get(&tx_id).await.map_err(unavailable)?.ok_or(bad.clone())?;
    log.operator = Some(tx.operator.clone());
    let flow = tx.redirect.as_ref().ok_or(bad.clone())?;
    if tx.client_id != client.client_id {
        return Err(bad);
    }
    if flow.redirect_uri != redirect_uri {
        return Err(RpError::InvalidGrant("redirect_uri differs from the authorization request's"));
    }
    if !pkce_ok(flow.code_challenge.as_deref(), form.get("code_verifier"))
        || (client.is_public() && flow.code_challenge.is_none())
    {
        return Err(RpError::InvalidGrant("PKCE verification failed"));
    }
    let now = gw.clock.now_ms();
    if tx.state != TxState::Approved || now >= tx.expires_at_ms {
        return Err(bad);
    }
    let mut done = tx.clone();
    done.state = TxState::Consumed;
    let retain = done.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let audit = gw.audit.transition_event(&tx, &done);
    match gw.store.compare_and_set(version, done, retain).await.map_err(unavailable)? {
        CasResult::Applied { .. } => {
            gw.audit.emit(audit).await;
            gw.metrics.transition(Some("approved"), Some("consumed"))
        }
        CasResult::Conflict { .. } => return Err(bad),
    }
    let now_s = gw.clock.now_s();
    let tokens = crate::flow::progress::issue_tokens(gw, &tx, false).map_err(RpError::Internal)?;
    gw.audit.tokens_issued(&tx, "code").await;
    let exp_ms = (now_s + tokens.expires_in) * 1000;
    if let Err(e) = revocation::remember_redemption(&*gw.store, &key, &tokens.jti, exp_ms).await {
        // The tokens are issued (the transaction is consumed): a replay then cannot revoke them.
        tracing::warn!(error = %e, "could not record the code redemption for replay revocation");
    }
    Ok(json_response(StatusCode::OK, serde_json::to_vec(&tokens).unwrap_or_default()))
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}
