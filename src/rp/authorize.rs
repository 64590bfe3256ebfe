//! `GET /authorize` (Mobile Connect device-initiated = OIDC code flow, shared/protocol.md §1.3)
//! and `POST /authorize` (the "your mobile number" page's answer). The client and its exact
//! registered `redirect_uri` are checked first: failing either is an HTML page and never a
//! redirect (no open redirect). Every later problem goes back to that `redirect_uri` with
//! `error`, `state`, `iss`. A valid request becomes a pending [`Transaction`] with a
//! [`RedirectFlow`]; the browser is routed by MSISDN and sent to the operator with our own fresh
//! `state`, `nonce` and PKCE challenge (`state` → transaction kept single-use in the store).

use super::client_auth::RegisteredClient;
use super::error::RpError;
use super::form::Params;
use super::{html, login_hint, redirect_back, RequestLog};
use crate::app::Gateway;
use crate::flow::redirect::{s256, valid_pkce_value, RedirectFlow};
use crate::flow::{Channel, Transaction, TxState};
use crate::msisdn::Msisdn;
use crate::operators::{PushError, RedirectRequest};
use crate::store::CasResult;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;

/// Mobile Connect versions accepted (`mc_v1.1` when absent).
const VERSIONS: &[&str] = &["mc_v1.1", "mc_v1.2", "mc_v2.0", "mc_di_r2_v2.3", "mc_di_v3.0"];

/// Store key of our operator-side `state` (→ transaction id, single use).
pub fn op_state_key(state: &str) -> String {
    format!("authorize:op_state:{state}")
}

/// Store key of a number page's token (→ transaction id, single use).
fn page_key(token: &str) -> String {
    format!("authorize:page:{token}")
}

/// `GET /authorize`.
pub async fn get(gw: &Gateway, query: &[u8], log: &mut RequestLog) -> Result<Response<Full<Bytes>>, RpError> {
    let p = Params::parse(query).map_err(|e| RpError::BrowserError(e.description()))?;
    let (client, redirect_uri) = client_and_redirect_uri(gw, &p)?;
    log.client = Some(client.client_id.clone());
    let state = p.get("state");
    match start(gw, client, redirect_uri, &p, log).await {
        Ok(resp) => Ok(resp),
        Err(e @ RpError::BrowserError(_)) => Err(e),
        Err(e) => {
            log_internal(&e);
            redirect_back::error(redirect_uri, &e, state, &gw.issuer)
        }
    }
}

/// The client and its exact registered `redirect_uri`, or an HTML page.
fn client_and_redirect_uri<'a>(gw: &'a Gateway, p: &'a Params<'_>) -> Result<(&'a RegisteredClient, &'a str), RpError> {
    let client = p
        .get("client_id")
        .and_then(|id| gw.clients.get(id))
        .ok_or(RpError::BrowserError("unknown or missing client_id".into()))?;
    let uri = p
        .get("redirect_uri")
        .filter(|u| client.redirect_uris.iter().any(|r| r == u))
        .ok_or(RpError::BrowserError("redirect_uri is missing or not registered for this client".into()))?;
    Ok((client, uri))
}

/// What a valid request asks for.
#[derive(Debug)]
struct Validated<'a> {
    scope: String,
    acr_floor: u8,
    flow: RedirectFlow,
    login_hint: Option<&'a str>,
}

/// Checks every parameter after the client and `redirect_uri` (shared/protocol.md §1.3).
fn validate<'a>(client: &RegisteredClient, redirect_uri: &str, p: &'a Params<'_>) -> Result<Validated<'a>, RpError> {
    if p.get("response_type") != Some("code") {
        return Err(RpError::UnsupportedResponseType);
    }
    if p.get("request").is_some() || p.get("request_uri").is_some() {
        return Err(RpError::invalid_request("request objects are not supported at /authorize"));
    }
    let state = p.require("state")?;
    let nonce = p.require("nonce")?;
    let version = p.get("version").unwrap_or("mc_v1.1");
    if !VERSIONS.contains(&version) {
        return Err(RpError::invalid_request(format!("version must be one of {}", VERSIONS.join(", "))));
    }
    let scope = p.get("scope").ok_or(RpError::InvalidScope("scope is required".into()))?;
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if !scopes.contains(&"openid") || !(scopes.contains(&"mc_authn") || scopes.contains(&"mc_authz")) {
        return Err(RpError::InvalidScope("scope must include openid and mc_authn or mc_authz".into()));
    }
    if let Some(s) = scopes.iter().find(|s| !client.scopes.iter().any(|c| c == *s)) {
        return Err(RpError::InvalidScope(
            format!("scope {} is not allowed for this client", super::form::printable(s)).into(),
        ));
    }
    if scopes.contains(&"mc_authz")
        && version != "mc_v1.1"
        && (p.get("client_name").is_none() || p.get("context").is_none())
    {
        return Err(RpError::invalid_request("mc_authz requires client_name and context"));
    }
    let acr_floor = super::bc_authorize::acr_floor(p.get("acr_values"), client.min_acr)?;
    let max_age = match (p.get("max_age"), p.get("max-age")) {
        (Some(a), Some(b)) if a != b => return Err(RpError::invalid_request("max_age and max-age differ")),
        (Some(v), _) | (None, Some(v)) => {
            Some(v.parse::<u64>().map_err(|_| RpError::invalid_request("max_age must be a non-negative integer"))?)
        }
        (None, None) => None,
    };
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (Some(c), Some("S256")) if valid_pkce_value(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => return Err(RpError::invalid_request("code_challenge is malformed")),
        (Some(_), _) | (None, Some(_)) => {
            return Err(RpError::invalid_request("PKCE needs code_challenge with code_challenge_method=S256"))
        }
        (None, None) if client.is_public() || !client.mc_legacy => {
            return Err(RpError::invalid_request("code_challenge (PKCE S256) is required"))
        }
        (None, None) => None,
    };
    Ok(Validated {
        scope: scopes.join(" "),
        acr_floor,
        flow: RedirectFlow {
            redirect_uri: redirect_uri.to_owned(),
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            code_challenge,
            max_age,
            version: version.to_owned(),
            ..Default::default()
        },
        login_hint: p.get("login_hint"),
    })
}

/// Validates, then either asks for the number or sends the browser to the operator.
async fn start(
    gw: &Gateway,
    client: &RegisteredClient,
    redirect_uri: &str,
    p: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let v = validate(client, redirect_uri, p)?;
    let now = gw.clock.now_ms();
    let expires = now + gw.redirect.pending_ttl_s * 1000;
    let tx = Transaction {
        id: crate::clock::random_token(32),
        client_id: client.client_id.clone(),
        channel: Channel::Push,
        state: TxState::PendingPush,
        scope: v.scope,
        acr_floor: v.acr_floor,
        created_at_ms: now,
        expires_at_ms: expires,
        push_deadline_ms: expires,
        redirect: Some(Box::new(v.flow)),
        trace_id: crate::telemetry::trace::current_trace_id(),
        ..Default::default()
    };
    match v.login_hint {
        Some(hint) => {
            let msisdn = login_hint::resolve(gw, &client.client_id, hint)?;
            to_operator(gw, client, tx, None, msisdn, log).await
        }
        None => {
            let retain = tx.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
            let id = tx.id.clone();
            gw.store.insert(tx, retain).await.map_err(unavailable)?;
            gw.metrics.transition(None, Some("pending_push"));
            number_page(gw, client, &id, expires, None).await
        }
    }
}

/// A fresh number page for the pending transaction `tx_id`.
async fn number_page(
    gw: &Gateway,
    client: &RegisteredClient,
    tx_id: &str,
    until_ms: u64,
    error: Option<&str>,
) -> Result<Response<Full<Bytes>>, RpError> {
    let token = crate::clock::random_token(32);
    if gw.store.put_if_absent(&page_key(&token), tx_id, until_ms).await.map_err(unavailable)?.is_some() {
        return Err(RpError::Internal("page token collision".into()));
    }
    // The form's POST is answered by a 302 to the person's operator (or back to the RP with an
    // error): browsers apply `form-action` to that redirect too.
    let targets = gw.operator_info.iter().map(|o| o.browser_target.as_str());
    Ok(html::allow_form_redirects_to(
        html::number_page(&token, &client.name, error),
        targets.chain(client.redirect_uris.iter().map(String::as_str)),
    ))
}

/// `POST /authorize`: the number page's answer (`request` names the pending request and is
/// its single-use CSRF token).
pub async fn post(gw: &Gateway, form: &Params<'_>, log: &mut RequestLog) -> Result<Response<Full<Bytes>>, RpError> {
    let expired = || RpError::BrowserError("this sign-in page has expired or was already used".into());
    let token = form.get("request").ok_or_else(expired)?;
    let tx_id = gw.store.take(&page_key(token)).await.map_err(unavailable)?.ok_or_else(expired)?;
    let current = gw.store.get(&tx_id).await.map_err(unavailable)?.ok_or_else(expired)?;
    let tx = current.value;
    let now = gw.clock.now_ms();
    let Some(flow) = tx.redirect.clone().filter(|_| tx.msisdn == 0 && tx.state.is_pending() && now < tx.expires_at_ms)
    else {
        return Err(expired());
    };
    let client = gw.clients.get(&tx.client_id).ok_or_else(expired)?;
    log.client = Some(client.client_id.clone());
    let again = |msg: &'static str| number_page(gw, client, &tx_id, tx.expires_at_ms, Some(msg));
    let msisdn = match form.get("login_hint").map(|h| login_hint::resolve(gw, &client.client_id, h)) {
        Some(Ok(m)) => m,
        None => return again("Please type your mobile number.").await,
        Some(Err(_)) => {
            return again("That is not a mobile number. Type it with its country code, e.g. +34 600 000 001.").await
        }
    };
    match to_operator(gw, client, tx.clone(), Some(current.version), msisdn, log).await {
        Err(RpError::UnknownUserId(_)) => {
            again("None of the operators we work with serves that number. Check it and try again.").await
        }
        Err(e @ RpError::BrowserError(_)) => Err(e),
        Err(e) => {
            log_internal(&e);
            redirect_back::error(&flow.redirect_uri, &e, Some(&flow.state), &gw.issuer)
        }
        ok => ok,
    }
}

/// Routes `msisdn`, stores the transaction (insert, or compare-and-set from `version`), maps our
/// operator `state` to it and sends the browser to the operator.
async fn to_operator(
    gw: &Gateway,
    client: &RegisteredClient,
    mut tx: Transaction,
    version: Option<u64>,
    msisdn: Msisdn,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    log.msisdn = Some(msisdn);
    let (route, operator) = super::bc_authorize::operator_for(gw, client, &msisdn, log)?;
    let flow = tx.redirect.as_mut().ok_or_else(|| RpError::Internal("redirect transaction without a flow".into()))?;
    flow.op_state = crate::clock::random_token(32);
    flow.op_nonce = crate::clock::random_token(32);
    flow.op_code_verifier = crate::clock::random_token(32);
    let callback = format!("{}/callback", gw.issuer);
    let url = operator
        .authorization_url(&RedirectRequest {
            msisdn: &msisdn,
            acr_values: if tx.acr_floor >= 3 { "3" } else { "2" },
            state: &flow.op_state,
            nonce: &flow.op_nonce,
            code_challenge: &s256(&flow.op_code_verifier),
            redirect_uri: &callback,
            max_age: flow.max_age,
        })
        .await
        .map_err(|e| match e {
            PushError::Unavailable(d) => {
                tracing::warn!(operator = %operator.id(), error = %d, "operator unavailable at authorize");
                RpError::TemporarilyUnavailable("the person's operator is unavailable; try again later".into())
            }
            other => RpError::Internal(format!("operator {}: {other}", operator.id())),
        })?;
    let op_state = flow.op_state.clone();
    tx.msisdn = msisdn.value();
    tx.operator = operator.id().to_owned();
    tx.route_source = route.source.as_str().to_owned();
    let retain = tx.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let (id, expires) = (tx.id.clone(), tx.expires_at_ms);
    let counted = gw.metrics.auth.created(&tx);
    let audit = gw.audit.started_event(&tx);
    match version {
        None => {
            gw.store.insert(tx, retain).await.map_err(unavailable)?;
            gw.metrics.transition(None, Some("pending_push"));
        }
        Some(v) => {
            if let CasResult::Conflict { .. } = gw.store.compare_and_set(v, tx, retain).await.map_err(unavailable)? {
                return Err(RpError::BrowserError("this sign-in page was already used".into()));
            }
        }
    }
    gw.audit.emit(audit).await;
    gw.metrics.transaction_started(operator.id(), route.source);
    counted.inc();
    if gw.store.put_if_absent(&op_state_key(&op_state), &id, expires).await.map_err(unavailable)?.is_some() {
        return Err(RpError::Internal("operator state collision".into()));
    }
    redirect_back::found(&url)
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}

fn log_internal(e: &RpError) {
    if let RpError::Internal(detail) = e {
        tracing::error!(error = %detail, "internal error in the redirect flow");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

    fn client(method: &str, legacy: bool) -> RegisteredClient {
        let cfg: ClientConfig = toml::from_str(&format!(
            r#"
            client_id = "rp"
            token_endpoint_auth_method = "{method}"
            scopes = ["openid", "mc_authn", "mc_authz"]
            redirect_uris = ["https://rp/cb"]
            sector_identifier = "x"
            mc_legacy = {legacy}
            "#
        ))
        .expect("client config");
        RegisteredClient::from_config(&cfg, |_| None)
    }

    const PKCE: &str = "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

    fn check(c: &RegisteredClient, q: &str) -> Result<u8, RpError> {
        let p = Params::parse(q.as_bytes()).unwrap();
        validate(c, "https://rp/cb", &p).map(|v| v.acr_floor)
    }

    #[test]
    fn the_protocol_table_is_enforced() {
        let c = client("client_secret_basic", false);
        let ok = format!("response_type=code&scope=openid+mc_authn&state=s&nonce=n{PKCE}");
        assert_eq!(check(&c, &ok), Ok(2));
        assert_eq!(check(&c, &format!("{ok}&acr_values=3")), Ok(3));
        assert_eq!(check(&c, &format!("{ok}&max-age=60")), Ok(2));
        assert_eq!(
            check(&c, &ok.replace("response_type=code", "response_type=token")),
            Err(RpError::UnsupportedResponseType)
        );
        assert!(matches!(check(&c, &ok.replace("+mc_authn", "")), Err(RpError::InvalidScope(_))));
        assert!(matches!(check(&c, &ok.replace("&state=s", "")), Err(RpError::InvalidRequest(_))));
        assert!(matches!(check(&c, &ok.replace("&nonce=n", "")), Err(RpError::InvalidRequest(_))));
        assert!(matches!(check(&c, &format!("{ok}&version=mc_v9")), Err(RpError::InvalidRequest(_))));
        assert!(matches!(check(&c, &format!("{ok}&acr_values=4")), Err(RpError::InvalidRequest(_))));
        assert!(matches!(check(&c, &format!("{ok}&max_age=-1")), Err(RpError::InvalidRequest(_))));
        assert!(matches!(check(&c, &format!("{ok}&max_age=1&max-age=2")), Err(RpError::InvalidRequest(_))));
        let authz = ok.replace("mc_authn", "mc_authz");
        assert_eq!(check(&c, &authz), Ok(2), "mc_v1.1 needs no context");
        assert!(matches!(check(&c, &format!("{authz}&version=mc_v1.2")), Err(RpError::InvalidRequest(_))));
        assert_eq!(check(&c, &format!("{authz}&version=mc_v1.2&client_name=Shop&context=Pay")), Ok(2));
    }

    #[test]
    fn pkce_is_required_unless_legacy_confidential() {
        let no_pkce = "response_type=code&scope=openid+mc_authn&state=s&nonce=n";
        for c in [client("client_secret_basic", false), client("none", false)] {
            assert!(matches!(check(&c, no_pkce), Err(RpError::InvalidRequest(_))));
        }
        assert_eq!(check(&client("client_secret_basic", true), no_pkce), Ok(2));
        let plain = format!("{no_pkce}&code_challenge={}&code_challenge_method=plain", "a".repeat(43));
        assert!(matches!(check(&client("client_secret_basic", true), &plain), Err(RpError::InvalidRequest(_))));
    }
}
