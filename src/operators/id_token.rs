//! Verification of an operator's ID token before the gateway approves anything: the key comes
//! from the operator's JWKS by `kid` (never from the token: no `jku`/`jwk`/`x5u`), the algorithm
//! is on the operator's allow-list (never `none` or HS*), `iss` is the configured issuer, `aud`
//! holds our client id, `exp` is in the future (with the configured skew), and the CIBA
//! `auth_req_id` claim, when present, is the operator transaction we asked about; in the
//! redirect flow ([`verify_redirect`]) and in Mobile Connect server-initiated results
//! ([`verify_si`]) the `nonce` must be the one we sent.

use super::metadata::MetadataCache;
use crate::flow::AuthResult;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Why an operator token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    /// Header unreadable or algorithm not allowed.
    #[error("token header or algorithm not acceptable: {0}")]
    Header(String),
    /// No key with that `kid` (after one refetch).
    #[error("no operator key for the token's kid")]
    UnknownKey,
    /// The operator's keys could not be fetched.
    #[error("operator keys unavailable: {0}")]
    KeysUnavailable(String),
    /// Signature or claims invalid.
    #[error("token invalid: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct OperatorClaims {
    acr: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
    auth_time: Option<u64>,
    iat: Option<u64>,
    #[serde(rename = "urn:openid:params:jwt:claim:auth_req_id")]
    auth_req_id: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Verification settings for one operator.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Allowed algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Our client id at the operator (`aud`).
    pub audience: String,
    /// Allowed clock skew, seconds.
    pub skew_s: u64,
}

/// Verifies `token` for the operator transaction `op_auth_req_id`; returns what it proves.
pub async fn verify(
    token: &str,
    keys: &MetadataCache,
    policy: &TokenPolicy,
    op_auth_req_id: &str,
) -> Result<AuthResult, TokenRejected> {
    let c = decode(token, keys, policy).await?;
    if let Some(id) = &c.auth_req_id {
        if id != op_auth_req_id {
            return Err(TokenRejected::Invalid("auth_req_id claim names another transaction".into()));
        }
    }
    result(c)
}

/// Verifies the ID token of a redirect-flow code redemption: `nonce` must be ours.
pub async fn verify_redirect(
    token: &str,
    keys: &MetadataCache,
    policy: &TokenPolicy,
    our_nonce: &str,
) -> Result<AuthResult, TokenRejected> {
    let c = decode(token, keys, policy).await?;
    check_nonce(&c, our_nonce)?;
    result(c)
}

/// Verifies the ID token of a Mobile Connect server-initiated result for the operator
/// transaction `op_auth_req_id`: `nonce` must be ours, an `auth_req_id` claim (if any) that one.
pub async fn verify_si(
    token: &str,
    keys: &MetadataCache,
    policy: &TokenPolicy,
    op_auth_req_id: &str,
    our_nonce: &str,
) -> Result<AuthResult, TokenRejected> {
    let c = decode(token, keys, policy).await?;
    if c.auth_req_id.as_deref().is_some_and(|id| id != op_auth_req_id) {
        return Err(TokenRejected::Invalid("auth_req_id claim names another transaction".into()));
    }
    check_nonce(&c, our_nonce)?;
    result(c)
}

fn check_nonce(c: &OperatorClaims, our_nonce: &str) -> Result<(), TokenRejected> {
    let same = c
        .nonce
        .as_deref()
        .is_some_and(|n| bool::from(subtle::ConstantTimeEq::ct_eq(n.as_bytes(), our_nonce.as_bytes())));
    if !same {
        return Err(TokenRejected::Invalid("nonce missing or not ours".into()));
    }
    Ok(())
}

async fn decode(token: &str, keys: &MetadataCache, policy: &TokenPolicy) -> Result<OperatorClaims, TokenRejected> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| TokenRejected::Header(e.to_string()))?;
    if !policy.algorithms.contains(&header.alg) {
        return Err(TokenRejected::Header(format!("algorithm {:?} not allowed", header.alg)));
    }
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() {
        return Err(TokenRejected::Header("embedded key references are not accepted".into()));
    }
    let kid = header.kid.clone().unwrap_or_default();
    let mut set = keys.jwks(false).await.map_err(|e| TokenRejected::KeysUnavailable(e.to_string()))?;
    if find(&set, &kid, header.alg).is_none() {
        set = keys.jwks(true).await.map_err(|e| TokenRejected::KeysUnavailable(e.to_string()))?;
    }
    let key = find(&set, &kid, header.alg).ok_or(TokenRejected::UnknownKey)?;
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.set_issuer(&[keys.issuer()]);
    v.set_audience(&[policy.audience.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = policy.skew_s;
    let data =
        jsonwebtoken::decode::<OperatorClaims>(token, &key, &v).map_err(|e| TokenRejected::Invalid(e.to_string()))?;
    Ok(data.claims)
}

fn result(c: OperatorClaims) -> Result<AuthResult, TokenRejected> {
    let acr = c
        .acr
        .filter(|a| a == "2" || a == "3")
        .ok_or_else(|| TokenRejected::Invalid("acr missing or unknown".into()))?;
    Ok(AuthResult { acr, amr: c.amr, auth_time: c.auth_time.or(c.iat).unwrap_or(0) })
}

fn find(set: &jsonwebtoken::jwk::JwkSet, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
    let jwk = if kid.is_empty() && set.keys.len() == 1 { set.keys.first() } else { set.find(kid) }?;
    if let Some(ka) = jwk.common.key_algorithm {
        if format!("{ka:?}") != format!("{alg:?}") {
            return None;
        }
    }
    DecodingKey::from_jwk(jwk).ok()
}
