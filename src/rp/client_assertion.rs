//! `private_key_jwt` client authentication (RFC 7523 §2.2/§3, OIDC Core §9): the client proves
//! itself with a JWT it signed with one of its registered keys. Checks, in order: assertion type,
//! a client registered for this method, the signature ([`super::client_jws`]), `iss` = `sub` =
//! client_id, `aud` holding our issuer or the URL of the endpoint called, `exp` in the future,
//! `iat`/`nbf` not in the future (skew from `client_jwt.clock_skew_s`), a lifetime within
//! `client_jwt.assertion_max_lifetime_s`, and finally a `jti` never seen from this client
//! (`Store::remember_once` until `exp` + skew), so an invalid assertion never burns a `jti`.
//! Every failure is 401 `invalid_client` with a description naming the check.

use super::client_auth::{AuthMethod, RegisteredClient};
use super::client_jws::{self, audience_matches, numeric_date};
use super::error::RpError;
use super::form::Params;
use crate::app::Gateway;
use serde_json::Value;

/// The only `client_assertion_type` accepted.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn fail(why: impl Into<std::borrow::Cow<'static, str>>) -> RpError {
    RpError::ClientAssertion(why.into())
}

/// Authenticates the client of a request carrying `client_assertion`; `endpoint_path` is the
/// path called (`/token`, `/bc-authorize`), whose full URL is accepted as `aud`.
pub async fn authenticate<'g>(
    gw: &'g Gateway,
    form: &Params<'_>,
    endpoint_path: &str,
) -> Result<&'g RegisteredClient, RpError> {
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(fail(format!("client_assertion_type must be {ASSERTION_TYPE}")));
    }
    let assertion = form.get("client_assertion").ok_or_else(|| fail("client_assertion is required"))?;
    // Which client claims to have signed: the form's client_id, else the (unverified) sub.
    let claimed = client_jws::unverified_claims(assertion);
    let id = match form.get("client_id") {
        Some(id) => id.to_owned(),
        None => claimed
            .as_ref()
            .and_then(|c| c.get("sub").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| fail("client_assertion is not a JWT with a sub claim"))?,
    };
    let client = gw
        .clients
        .get(&id)
        .filter(|c| c.method == AuthMethod::PrivateKeyJwt)
        .ok_or_else(|| fail("no client registered for private_key_jwt with this client_id"))?;
    let keys = client.keys.as_ref().ok_or_else(|| fail("the client has no registered keys"))?;
    let claims = client_jws::verify(assertion, keys).await.map_err(|e| fail(format!("client_assertion: {e}")))?;

    let cfg = &gw.client_jwt;
    let is_client = |name: &str| claims.get(name).and_then(Value::as_str) == Some(client.client_id.as_str());
    if !is_client("iss") {
        return Err(fail("client_assertion iss must be the client_id"));
    }
    if !is_client("sub") {
        return Err(fail("client_assertion sub must be the client_id"));
    }
    let endpoint = format!("{}{endpoint_path}", gw.issuer);
    if !audience_matches(&claims, &[gw.issuer.as_str(), endpoint.as_str()]) {
        return Err(fail("client_assertion aud must be the issuer or the URL of this endpoint"));
    }
    let now = gw.clock.now_s();
    let skew = cfg.clock_skew_s;
    let exp = numeric_date(&claims, "exp").map_err(fail)?.ok_or_else(|| fail("client_assertion has no exp"))?;
    if now >= exp.saturating_add(skew) {
        return Err(fail("client_assertion has expired"));
    }
    let iat = numeric_date(&claims, "iat").map_err(fail)?;
    if iat.is_some_and(|iat| iat > now + skew) {
        return Err(fail("client_assertion iat is in the future"));
    }
    if numeric_date(&claims, "nbf").map_err(fail)?.is_some_and(|nbf| nbf > now + skew) {
        return Err(fail("client_assertion is not valid yet (nbf)"));
    }
    if exp.saturating_sub(iat.unwrap_or(now)) > cfg.assertion_max_lifetime_s {
        return Err(fail(format!("client_assertion lifetime exceeds {} seconds", cfg.assertion_max_lifetime_s)));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| fail("client_assertion has no jti"))?;
    let key = client_jws::jti_key("assertion", &client.client_id, jti);
    let first = gw
        .store
        .remember_once(&key, exp.saturating_add(skew).saturating_mul(1000))
        .await
        .map_err(|e| RpError::TemporarilyUnavailable(format!("replay store: {e}").into()))?;
    if !first {
        tracing::warn!(client = %client.client_id, "client_assertion jti replayed");
        return Err(fail("client_assertion jti has been used already"));
    }
    Ok(client)
}
