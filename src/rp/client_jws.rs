//! Verification of a JWS a relying party signed (client assertions, request objects), up to and
//! including the signature: compact form only, algorithm on the allow-list (RS256, PS256, ES256;
//! never `none` or HS*), no key references in the header (`jku`, `jwk`, `x5u`, `x5c`), no `crit`
//! extensions, key from the client's registered keys ([`super::client_keys`]). Claims come back
//! as a JSON map; time, audience and replay rules belong to the callers. Errors say which check
//! failed and never echo token content.

use super::client_keys::{ClientKeys, KeyLookupError};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

/// Algorithms a client may sign with.
pub const CLIENT_ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];

/// The same, as advertised in metadata.
pub const CLIENT_ALG_NAMES: &[&str] = &["RS256", "PS256", "ES256"];

/// Why a client JWS was refused (the text is the `error_description`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts with a JSON header naming an allowed algorithm.
    #[error("{0}")]
    Malformed(&'static str),
    /// Header asks for something we refuse.
    #[error("{0}")]
    Header(&'static str),
    /// No registered key fits.
    #[error("no registered key matches the kid and algorithm")]
    UnknownKey,
    /// The client's keys could not be obtained.
    #[error("the client's keys are unavailable")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The payload is not a JSON object.
    #[error("claims are not a JSON object")]
    BadClaims,
}

/// Verifies `jws` with `keys` and returns its claims.
pub async fn verify(jws: &str, keys: &ClientKeys) -> Result<Map<String, Value>, JwsError> {
    if jws.split('.').count() != 3 {
        return Err(JwsError::Malformed("not a compact JWS (three dot-separated parts)"));
    }
    let raw_header = raw_header(jws)?;
    let alg = raw_header.get("alg").and_then(Value::as_str).ok_or(JwsError::Malformed("header has no alg"))?;
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        _ => return Err(JwsError::Header("alg not allowed: use RS256, PS256 or ES256")),
    };
    for member in ["jku", "jwk", "x5u", "x5c"] {
        if raw_header.contains_key(member) {
            return Err(JwsError::Header("embedded key references (jku, jwk, x5u, x5c) are not accepted"));
        }
    }
    if raw_header.contains_key("crit") {
        return Err(JwsError::Header("crit header extensions are not supported"));
    }
    let kid = match raw_header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(JwsError::Malformed("kid must be a string")),
    };
    let key = keys.key_for(kid, alg).await.map_err(|e| match e {
        KeyLookupError::NoKey => JwsError::UnknownKey,
        KeyLookupError::Unavailable(_) => JwsError::KeysUnavailable,
    })?;
    // Signature only: claims are checked by the caller with the gateway's clock.
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(jws, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => JwsError::BadSignature,
        jsonwebtoken::errors::ErrorKind::Json(_) => JwsError::BadClaims,
        jsonwebtoken::errors::ErrorKind::Base64(_) | jsonwebtoken::errors::ErrorKind::Utf8(_) => {
            JwsError::Malformed("not valid base64url JSON")
        }
        _ => JwsError::BadSignature,
    })?;
    match data.claims {
        Value::Object(m) => Ok(m),
        _ => Err(JwsError::BadClaims),
    }
}

/// The header as a JSON object (before any verification: only used to pick the key).
fn raw_header(jws: &str) -> Result<Map<String, Value>, JwsError> {
    use base64::Engine;
    let part = jws.split('.').next().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed("header is not base64url"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwsError::Malformed("header is not a JSON object")),
    }
}

/// Unverified claims (only to learn which client claims to have signed; never trusted).
pub fn unverified_claims(jws: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let part = jws.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A NumericDate claim: a non-negative JSON number (fractions dropped).
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(f)) if f >= 0.0 && f.is_finite() => Ok(Some(f as u64)),
            _ => Err(format!("{name} must be a number of seconds")),
        },
    }
}

/// Whether `aud` (a string or an array of strings) contains one of `accepted`.
pub fn audience_matches(claims: &Map<String, Value>, accepted: &[&str]) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => accepted.contains(&a.as_str()),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str().is_some_and(|a| accepted.contains(&a))),
        _ => false,
    }
}

/// The store key of a `jti` replay guard: a hash, so neither the client id nor the `jti` (any
/// length, any characters) shapes the key.
pub fn jti_key(kind: &str, client_id: &str, jti: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::new().chain_update(client_id.as_bytes()).chain_update([0]).chain_update(jti.as_bytes()).finalize();
    format!("jti:{kind}:{}", hex::encode(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::keys::{generate_p256_pkcs8_pem, generate_rsa_pkcs8_pem, SigningKey};
    use base64::Engine;
    use jsonwebtoken::jwk::JwkSet;

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn keys_of(k: &SigningKey) -> ClientKeys {
        ClientKeys::fixed(JwkSet { keys: vec![k.jwk.clone()] })
    }

    #[tokio::test]
    async fn good_signatures_verify_for_each_allowed_algorithm() {
        let ec = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let claims = serde_json::json!({"iss": "rp"});
        let m = verify(&ec.sign(&claims).unwrap(), &keys_of(&ec)).await.unwrap();
        assert_eq!(m["iss"], "rp");
        let rsa = SigningKey::from_pem(generate_rsa_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert!(verify(&rsa.sign(&claims).unwrap(), &keys_of(&rsa)).await.is_ok());
        // PS256 with an RSA key whose JWK does not pin an algorithm.
        let mut jwk = rsa.jwk.clone();
        jwk.common.key_algorithm = None;
        let unpinned = ClientKeys::fixed(JwkSet { keys: vec![jwk] });
        assert!(verify(&rsa.sign_as(Algorithm::PS256, &claims).unwrap(), &unpinned).await.is_ok());
        // The JWK pins RS256: PS256 with it is refused.
        let err = verify(&rsa.sign_as(Algorithm::PS256, &claims).unwrap(), &keys_of(&rsa)).await.unwrap_err();
        assert_eq!(err, JwsError::UnknownKey);
    }

    #[tokio::test]
    async fn none_hs256_key_references_crit_and_junk_are_refused() {
        let ec = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let keys = keys_of(&ec);
        let body = b64(&serde_json::json!({"iss": "rp"}));
        let none = format!("{}.{body}.", b64(&serde_json::json!({"alg": "none"})));
        assert!(matches!(verify(&none, &keys).await, Err(JwsError::Header(_))));
        let hs = format!("{}.{body}.c2ln", b64(&serde_json::json!({"alg": "HS256"})));
        assert!(matches!(verify(&hs, &keys).await, Err(JwsError::Header(_))));
        let jku = format!("{}.{body}.c2ln", b64(&serde_json::json!({"alg": "ES256", "jku": "https://evil"})));
        assert!(matches!(verify(&jku, &keys).await, Err(JwsError::Header(_))));
        let crit = format!("{}.{body}.c2ln", b64(&serde_json::json!({"alg": "ES256", "crit": ["x"], "x": 1})));
        assert!(matches!(verify(&crit, &keys).await, Err(JwsError::Header(_))));
        for junk in ["a.b", "a.b.c.d", "!!.b.c", "", "e30.e30.e30"] {
            assert!(verify(junk, &keys).await.is_err(), "{junk}");
        }
        // A valid token with its signature from another key.
        let other = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
        let t = other.sign(&serde_json::json!({"iss": "rp"})).unwrap();
        assert_eq!(verify(&t, &keys).await.unwrap_err(), JwsError::UnknownKey, "unknown kid");
        let mut parts: Vec<&str> = t.split('.').collect();
        let good = ec.sign(&serde_json::json!({"iss": "rp"})).unwrap();
        let good_parts: Vec<&str> = good.split('.').collect();
        parts[0] = good_parts[0];
        assert_eq!(verify(&parts.join("."), &keys).await.unwrap_err(), JwsError::BadSignature);
    }

    #[test]
    fn claim_helpers() {
        let m = serde_json::json!({"exp": 10, "iat": "10", "aud": ["x", "y"]}).as_object().unwrap().clone();
        assert_eq!(numeric_date(&m, "exp"), Ok(Some(10)));
        assert!(numeric_date(&m, "iat").is_err());
        assert_eq!(numeric_date(&m, "nbf"), Ok(None));
        assert!(audience_matches(&m, &["y"]));
        assert!(!audience_matches(&m, &["z"]));
        assert_ne!(jti_key("a", "c", "j"), jti_key("a", "c", "k"));
    }
}
