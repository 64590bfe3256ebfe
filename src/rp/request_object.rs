//! Signed request objects (CIBA §7.1.1, MC server-initiated `request`): one verifier for every
//! endpoint that takes them. [`verify_request_object`] checks the signature with the client's
//! registered keys ([`super::client_jws`]: RS256, PS256, ES256, never `none`), `iss` = client_id,
//! `aud` = our issuer, a `client_id` claim if any = the client, `exp` in the future, `nbf`/`iat`
//! not in the future (skew `client_jwt.clock_skew_s`), a lifetime within
//! `client_jwt.request_object_max_lifetime_s`, and a `jti` never seen from this client (store,
//! until `exp` + skew). Every failure is 400 `invalid_request_object` naming the check. What the
//! claims mean is the endpoint's business.

use super::client_auth::RegisteredClient;
use super::client_jws::{self, audience_matches, numeric_date};
use super::error::RpError;
use crate::app::Gateway;
use serde_json::{Map, Value};

/// What an endpoint requires beyond signature, `iss` and `aud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// `exp`, `iat`, `nbf` and `jti` must all be present (CIBA, FAPI; MC-SI unless `mc_legacy`).
    /// When false they are still checked if present.
    pub require_time_and_jti: bool,
}

impl Expected {
    /// Every claim required (CIBA `/bc-authorize`).
    pub const STRICT: Self = Self { require_time_and_jti: true };
}

fn fail(why: impl Into<std::borrow::Cow<'static, str>>) -> RpError {
    RpError::InvalidRequestObject(why.into())
}

/// Verifies `jws` as a request object from `client` and returns its claims.
pub async fn verify_request_object(
    gw: &Gateway,
    client: &RegisteredClient,
    jws: &str,
    expected: Expected,
) -> Result<Map<String, Value>, RpError> {
    let keys = client.keys.as_ref().ok_or_else(|| fail("the client has no registered keys for request objects"))?;
    let claims = client_jws::verify(jws, keys).await.map_err(|e| match e {
        client_jws::JwsError::KeysUnavailable => {
            RpError::TemporarilyUnavailable("the client's keys could not be fetched".into())
        }
        e => fail(format!("request: {e}")),
    })?;
    if claims.get("iss").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return Err(fail("request iss must be the client_id"));
    }
    if !audience_matches(&claims, &[gw.issuer.as_str()]) {
        return Err(fail("request aud must be the issuer"));
    }
    if claims.get("client_id").is_some_and(|c| c.as_str() != Some(client.client_id.as_str())) {
        return Err(fail("request client_id differs from the authenticated client"));
    }
    let cfg = &gw.client_jwt;
    let (now, skew) = (gw.clock.now_s(), cfg.clock_skew_s);
    let date = |name: &'static str| -> Result<Option<u64>, RpError> {
        let v = numeric_date(&claims, name).map_err(|e| fail(format!("request {e}")))?;
        if v.is_none() && expected.require_time_and_jti {
            return Err(fail(format!("request has no {name}")));
        }
        Ok(v)
    };
    let (exp, iat, nbf) = (date("exp")?, date("iat")?, date("nbf")?);
    if let Some(exp) = exp {
        if now >= exp.saturating_add(skew) {
            return Err(fail("request has expired"));
        }
        let start = match (iat, nbf) {
            (Some(i), Some(n)) => i.min(n),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => now,
        };
        if exp.saturating_sub(start) > cfg.request_object_max_lifetime_s {
            return Err(fail(format!("request lifetime exceeds {} seconds", cfg.request_object_max_lifetime_s)));
        }
    }
    if nbf.is_some_and(|n| n > now + skew) {
        return Err(fail("request is not valid yet (nbf)"));
    }
    if iat.is_some_and(|i| i > now + skew) {
        return Err(fail("request iat is in the future"));
    }
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() => Some(j.as_str()),
        None if !expected.require_time_and_jti => None,
        _ => return Err(fail("request needs a jti string")),
    };
    if let Some(jti) = jti {
        // Without exp (legacy only) the guard lives for the longest lifetime we accept.
        let until_s = exp.unwrap_or(now + cfg.request_object_max_lifetime_s).saturating_add(skew);
        let key = client_jws::jti_key("request", &client.client_id, jti);
        let first = gw
            .store
            .remember_once(&key, until_s.saturating_mul(1000))
            .await
            .map_err(|e| RpError::TemporarilyUnavailable(format!("replay store: {e}").into()))?;
        if !first {
            tracing::warn!(client = %client.client_id, "request object jti replayed");
            return Err(fail("request jti has been used already"));
        }
    }
    Ok(claims)
}
