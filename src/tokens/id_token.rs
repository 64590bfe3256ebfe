//! Gateway ID tokens and access tokens. [`TokenIssuer::issue`] turns an approved transaction's
//! facts into `{access_token, id_token}`: an ID token signed with the client's registered
//! `id_token_signed_response_alg` (RS256 by default, ES256 offered) carrying `iss aud azp sub iat
//! exp auth_time acr amr at_hash` (+ `nonce`, the CIBA `auth_req_id` claim), and an RFC 9068 JWT
//! access token ([`super::access_token`]); both flows (CIBA and code) issue through this one function.

use super::keys::{KeyError, KeySet};
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Claims of a gateway ID token.
#[derive(Debug, Serialize)]
pub struct IdTokenClaims<'a> {
    /// Our issuer.
    pub iss: &'a str,
    /// The relying party.
    pub aud: &'a str,
    /// Authorized party (= aud).
    pub azp: &'a str,
    /// Pairwise subject.
    pub sub: &'a str,
    /// Issued at, seconds.
    pub iat: u64,
    /// Expiry, seconds.
    pub exp: u64,
    /// When the person authenticated at the operator, seconds.
    pub auth_time: u64,
    /// Achieved level.
    pub acr: &'a str,
    /// Methods really used.
    pub amr: &'a [String],
    /// RP's nonce, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// Left half of SHA-256 of the access token.
    pub at_hash: String,
    /// CIBA transaction id.
    #[serde(rename = "urn:openid:params:jwt:claim:auth_req_id", skip_serializing_if = "Option::is_none")]
    pub auth_req_id: Option<&'a str>,
}

/// What the token endpoint returns.
#[derive(Debug, Serialize)]
pub struct IssuedTokens {
    /// Opaque bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
    /// Signed ID token.
    pub id_token: String,
    /// The access token's `jti` (never sent: names it in revocation records).
    #[serde(skip)]
    pub jti: String,
}

/// Facts about one approved authentication.
#[derive(Debug)]
pub struct Approval<'a> {
    /// RP client id.
    pub client_id: &'a str,
    /// Pairwise subject.
    pub sub: &'a str,
    /// Approval time, seconds.
    pub auth_time: u64,
    /// Achieved acr.
    pub acr: &'a str,
    /// Methods.
    pub amr: &'a [String],
    /// RP nonce.
    pub nonce: Option<&'a str>,
    /// CIBA auth_req_id.
    pub auth_req_id: Option<&'a str>,
    /// Granted scope (goes into the access token).
    pub scope: &'a str,
}

/// Issues tokens with the gateway's keys.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    /// Our issuer URL.
    pub issuer: Arc<str>,
    /// Signing keys.
    pub keys: Arc<KeySet>,
    /// ID token lifetime, seconds.
    pub id_token_ttl_s: u64,
    /// Access token lifetime, seconds.
    pub access_token_ttl_s: u64,
    /// Clients whose ID tokens are not RS256 (`id_token_signed_response_alg`), by client id.
    pub id_token_algs: Arc<HashMap<String, jsonwebtoken::Algorithm>>,
}

impl TokenIssuer {
    /// The ID token algorithm registered for `client_id` (RS256 unless registered otherwise).
    pub fn alg_for(&self, client_id: &str) -> jsonwebtoken::Algorithm {
        self.id_token_algs.get(client_id).copied().unwrap_or(jsonwebtoken::Algorithm::RS256)
    }

    /// Issues an access token and an ID token for `approval` at `now_s`.
    pub fn issue(&self, approval: &Approval<'_>, now_s: u64) -> Result<IssuedTokens, KeyError> {
        let at_claims = super::access_token::AccessTokenClaims {
            iss: self.issuer.to_string(),
            aud: super::access_token::audience(&self.issuer),
            sub: approval.sub.to_owned(),
            client_id: approval.client_id.to_owned(),
            scope: approval.scope.to_owned(),
            iat: now_s,
            exp: now_s + self.access_token_ttl_s,
            jti: crate::clock::random_token(32),
            auth_time: approval.auth_time,
            acr: approval.acr.to_owned(),
        };
        let access_token = super::access_token::sign(&self.keys, &at_claims)?;
        let jti = at_claims.jti;
        let claims = IdTokenClaims {
            iss: &self.issuer,
            aud: approval.client_id,
            azp: approval.client_id,
            sub: approval.sub,
            iat: now_s,
            exp: now_s + self.id_token_ttl_s,
            auth_time: approval.auth_time,
            acr: approval.acr,
            amr: approval.amr,
            nonce: approval.nonce,
            at_hash: half_hash(&access_token),
            auth_req_id: approval.auth_req_id,
        };
        let alg = self.alg_for(approval.client_id);
        let key = self
            .keys
            .signer(alg)
            .ok_or_else(|| KeyError::Invalid(format!("no signing key for {alg:?} (client {})", approval.client_id)))?;
        let id_token = key.sign(&claims)?;
        Ok(IssuedTokens { access_token, token_type: "Bearer", expires_in: self.access_token_ttl_s, id_token, jti })
    }
}

/// OIDC `at_hash`: base64url of the left half of SHA-256 (RS256/ES256).
pub fn half_hash(value: &str) -> String {
    let d = Sha256::digest(value.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d[..16])
}
