//! `GET`/`POST /si-authorize`: Mobile Connect server-initiated authentication
//! (shared/protocol.md §1.4). The RP names itself by `client_id` and proves itself with the
//! `request` object signed with its registered keys; credentials of its registered method, when
//! sent as well, are checked too. The object repeats the outer `client_id`, `response_type` and
//! `scope` and carries the authentication parameters (`version`, `nonce`, `login_hint`, …). The
//! transaction then starts exactly as a CIBA one (`bc_authorize::start_once`), with the
//! delivery the request chose: `mc_si_polling` → the RP polls `/token` with the CIBA grant;
//! `mc_si_async_code` → the result is POSTed to the request's registered `notification_uri`
//! with `Authorization: Bearer <client_notification_token>`. The ID token carries the RP's
//! `nonce`. Owns only the parameter rules of this endpoint; no operator or store knowledge.

use super::bc_authorize::{notification_token, start_once, StartRequest};
use super::client_auth::RegisteredClient;
use super::error::RpError;
use super::form::{printable, Params};
use super::request_object::{verify_request_object, Expected};
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::delivery::RequestDelivery;
use crate::flow::DeliveryMode;
use bytes::Bytes;
use http::{header, HeaderMap, Response};
use http_body_util::Full;
use serde_json::{Map, Value};

/// The only Mobile Connect SI version served.
pub const VERSION: &str = "mc_si_r2_v1.0";
/// Result POSTed to the RP's `notification_uri`.
pub const ASYNC_CODE: &str = "mc_si_async_code";
/// The RP polls `/token`.
pub const POLLING: &str = "mc_si_polling";

/// Request object claims used as parameters (all strings).
const OBJECT_PARAMS: &[&str] = &[
    "client_id",
    "response_type",
    "scope",
    "version",
    "nonce",
    "login_hint",
    "login_hint_token",
    "id_token_hint",
    "acr_values",
    "client_notification_token",
    "notification_uri",
    "binding_message",
    "context",
    "client_name",
];

/// Outer parameters that authenticate the client (besides `client_id`).
const CREDENTIALS: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// Handles one server-initiated request; `outer` is the query, form or JSON body.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    outer: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let client = identify(gw, headers, outer).await?;
    log.client = Some(client.client_id.clone());
    let response_type = outer.require("response_type")?;
    let mode = match response_type {
        ASYNC_CODE => DeliveryMode::Push,
        POLLING => DeliveryMode::Poll,
        _ => return Err(RpError::UnsupportedSiResponseType),
    };
    let scope = outer.require("scope")?;
    let jws = outer.require("request")?;
    // A request object naming another client is a malformed request, whatever its signature
    // (the verifier would call it a bad object).
    let inner_id = super::client_jws::unverified_claims(jws).and_then(|c| c.get("client_id").cloned());
    if inner_id.is_some_and(|id| id.as_str() != Some(client.client_id.as_str())) {
        return Err(RpError::invalid_request("request client_id differs from the outer client_id"));
    }
    let expected = Expected { require_time_and_jti: !client.mc_legacy };
    let claims = verify_request_object(gw, client, jws, expected).await?;
    let params = object_params(&claims, outer)?;
    for (name, outer_value) in
        [("client_id", client.client_id.as_str()), ("response_type", response_type), ("scope", scope)]
    {
        match params.get(name) {
            Some(v) if v == outer_value => {}
            Some(_) => {
                return Err(RpError::InvalidRequest(format!("request {name} differs from the outer {name}").into()))
            }
            None => {
                return Err(RpError::InvalidRequest(
                    format!("the request object must repeat client_id, response_type and scope ({name} is missing)")
                        .into(),
                ))
            }
        }
    }
    if params.get("version") != Some(VERSION) {
        return Err(RpError::invalid_request(format!("request version must be {VERSION}")));
    }
    let nonce = params.get("nonce").ok_or_else(|| RpError::invalid_request("request nonce is required"))?;
    if params.get("acr_values").is_none() {
        return Err(RpError::invalid_request("request acr_values is required (\"2\", \"3\" or \"3 2\")"));
    }
    let delivery = match mode {
        DeliveryMode::Push => RequestDelivery { mode, endpoint: Some(async_endpoint(client, &params)?.to_owned()) },
        _ => RequestDelivery { mode: DeliveryMode::Poll, endpoint: None },
    };
    let req = StartRequest { client, params: &params, delivery: Some(delivery), nonce: Some(nonce) };
    Ok(start_once(gw, headers, &req, log).await?.response(mode == DeliveryMode::Poll))
}

/// The client named by `client_id`: authenticated by its registered method if the request
/// carries credentials, else only named (its signed request object is the proof). It must have
/// registered keys.
async fn identify<'g>(
    gw: &'g Gateway,
    headers: &HeaderMap,
    outer: &Params<'_>,
) -> Result<&'g RegisteredClient, RpError> {
    let id = outer.require("client_id")?;
    let credentials = headers.contains_key(header::AUTHORIZATION) || CREDENTIALS.iter().any(|n| outer.get(n).is_some());
    let client = if credentials {
        let c = super::client_auth::authenticate(gw, headers, outer, "/si-authorize").await?;
        if c.client_id != id {
            return Err(RpError::invalid_request("client_id differs from the authenticated client"));
        }
        c
    } else {
        gw.clients.get(id).ok_or(RpError::InvalidClient { basic: false })?
    };
    if client.is_public() {
        return Err(RpError::UnauthorizedClient("public clients cannot use server-initiated authentication"));
    }
    if client.keys.is_none() {
        // 401 invalid_client: without keys nothing can prove who sent the request.
        return Err(RpError::ClientAssertion(
            "the client has no registered keys to verify its signed request object".into(),
        ));
    }
    Ok(client)
}

/// `mc_si_async_code`: a valid `client_notification_token` and a `notification_uri` registered
/// for the client (exact match).
fn async_endpoint<'p>(client: &RegisteredClient, params: &'p Params<'_>) -> Result<&'p str, RpError> {
    if params.get("client_notification_token").is_none() {
        return Err(RpError::invalid_request("request client_notification_token is required for mc_si_async_code"));
    }
    notification_token(params.get("client_notification_token"))?;
    let uri = params
        .get("notification_uri")
        .ok_or_else(|| RpError::invalid_request("request notification_uri is required for mc_si_async_code"))?;
    let registered = client.notification_uris.iter().map(String::as_str).chain(client.notification_endpoint.as_deref());
    if !registered.into_iter().any(|r| r == uri) {
        return Err(RpError::invalid_request("request notification_uri is not registered for this client"));
    }
    Ok(uri)
}

/// The request object's claims as parameters (strings only). An outer parameter that is also
/// a request parameter must repeat the object's value; other outer parameters are tolerated.
fn object_params(claims: &Map<String, Value>, outer: &Params<'_>) -> Result<Params<'static>, RpError> {
    let mut pairs = Vec::with_capacity(OBJECT_PARAMS.len());
    for name in OBJECT_PARAMS {
        match claims.get(*name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => pairs.push((name.to_string(), s.clone())),
            Some(_) => {
                return Err(RpError::InvalidRequestObject(format!("request claim {name} must be a string").into()))
            }
        }
    }
    let params = Params::from_owned(pairs);
    let envelope = ["client_id", "response_type", "scope", "request"];
    for name in outer.names().filter(|n| OBJECT_PARAMS.contains(n) && !envelope.contains(n)) {
        if params.get(name) != outer.get(name) {
            return Err(RpError::InvalidRequest(
                format!(
                    "parameter {} must be inside the signed request object only (or repeat its value)",
                    printable(name)
                )
                .into(),
            ));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn object_params_take_strings_and_outer_values_must_repeat_them() {
        let c = claims(json!({"login_hint": "MSISDN:34600000001", "nonce": "n", "exp": 5, "other": "x"}));
        let p = object_params(&c, &Params::parse(b"client_id=rp&correlation_id=abc").unwrap()).unwrap();
        assert_eq!(
            (p.get("login_hint"), p.get("nonce"), p.get("other")),
            (Some("MSISDN:34600000001"), Some("n"), None)
        );
        let same = Params::parse(b"nonce=n").unwrap();
        assert!(object_params(&c, &same).is_ok());
        let differs = Params::parse(b"login_hint=MSISDN:34600000002").unwrap();
        assert!(matches!(object_params(&c, &differs), Err(RpError::InvalidRequest(_))));
        let number = claims(json!({"acr_values": 2}));
        assert!(matches!(object_params(&number, &Params::default()), Err(RpError::InvalidRequestObject(_))));
    }
}
