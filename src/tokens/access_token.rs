//! Gateway access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with our ID-token key, so
//! `/userinfo` (and any resource server holding our JWKS) verifies them without a store.
//! `aud` is our userinfo endpoint; `sub` the pairwise subject; `client_id`, `scope`, `acr`,
//! `auth_time` as granted. Issued by [`super::TokenIssuer::issue`] for both CIBA and the code flow.

use super::keys::{KeyError, KeySet};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

/// The JOSE `typ` of our access tokens.
pub const AT_TYP: &str = "at+jwt";

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Our issuer.
    pub iss: String,
    /// The protected resource: `<issuer>/userinfo`.
    pub aud: String,
    /// Pairwise subject.
    pub sub: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scope.
    pub scope: String,
    /// Issued at, seconds.
    pub iat: u64,
    /// Expiry, seconds.
    pub exp: u64,
    /// Unique id (256 random bits).
    pub jti: String,
    /// Approval time, seconds.
    pub auth_time: u64,
    /// Achieved level.
    pub acr: String,
}

/// Why an access token is refused (the caller answers `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenRejected {
    /// Not a JWT of ours: header, `typ`, algorithm or `kid`.
    #[error("not an access token of this issuer")]
    Foreign,
    /// Signature, issuer, audience or expiry invalid.
    #[error("access token invalid or expired")]
    Invalid,
}

/// The audience of our access tokens.
pub fn audience(issuer: &str) -> String {
    format!("{issuer}/userinfo")
}

/// Signs `claims` as an access token.
pub fn sign(keys: &KeySet, claims: &AccessTokenClaims) -> Result<String, KeyError> {
    keys.active().sign_typed(claims, Some(AT_TYP))
}

/// Verifies an access token against our keys at `now_s` (no leeway: we issued it).
pub fn verify(keys: &KeySet, issuer: &str, token: &str, now_s: u64) -> Result<AccessTokenClaims, AccessTokenRejected> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AccessTokenRejected::Foreign)?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(AT_TYP));
    if header.alg != Algorithm::RS256 || !typ_ok {
        return Err(AccessTokenRejected::Foreign);
    }
    let key = header.kid.as_deref().and_then(|k| keys.decoding_key(k)).ok_or(AccessTokenRejected::Foreign)?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience(issuer)]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    v.validate_exp = false; // checked below against the injected clock
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &v).map_err(|_| AccessTokenRejected::Invalid)?;
    if data.claims.exp <= now_s {
        return Err(AccessTokenRejected::Invalid);
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://gw".into(),
            aud: audience("https://gw"),
            sub: "s".into(),
            client_id: "rp".into(),
            scope: "openid".into(),
            iat: 100,
            exp,
            jti: "j".into(),
            auth_time: 90,
            acr: "2".into(),
        }
    }

    #[test]
    fn our_tokens_verify_until_expiry_and_others_do_not() {
        let keys = KeySet::generate().unwrap();
        let at = sign(&keys, &claims(400)).unwrap();
        assert_eq!(verify(&keys, "https://gw", &at, 399).unwrap(), claims(400));
        assert_eq!(verify(&keys, "https://gw", &at, 400), Err(AccessTokenRejected::Invalid));
        assert_eq!(verify(&keys, "https://other", &at, 399), Err(AccessTokenRejected::Invalid));
        let other = KeySet::generate().unwrap();
        assert_eq!(verify(&other, "https://gw", &at, 399), Err(AccessTokenRejected::Foreign));
        // An ID token (no at+jwt typ) is not an access token.
        let id_token = keys.active().sign(&claims(400)).unwrap();
        assert_eq!(verify(&keys, "https://gw", &id_token, 399), Err(AccessTokenRejected::Foreign));
        assert_eq!(verify(&keys, "https://gw", "abc", 399), Err(AccessTokenRejected::Foreign));
    }
}
