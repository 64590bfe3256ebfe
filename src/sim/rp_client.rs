//! The relying party's side of `private_key_jwt` and signed request objects, for the demo, the
//! `mcgate client-assertion` command and tests: a key pair as an RP would hold it, its public
//! JWKS, and the JWTs it signs. Speaks only the wire format (RFC 7523, CIBA §7.1.1).

use crate::tokens::keys::{KeyError, SigningKey};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{json, Map, Value};

/// The public JWKS (one key) of an RP key, as JSON text for `routing.toml`'s `jwks`.
pub fn public_jwks(key: &SigningKey) -> String {
    serde_json::to_string(&JwkSet { keys: vec![key.jwk.clone()] }).unwrap_or_default()
}

/// A client assertion: `iss` = `sub` = `client_id`, `aud`, `iat` = now, `exp` = now +
/// `lifetime_s`, a fresh random `jti`.
pub fn client_assertion(
    key: &SigningKey,
    client_id: &str,
    aud: &str,
    now_s: u64,
    lifetime_s: u64,
) -> Result<String, KeyError> {
    key.sign(&json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now_s,
        "exp": now_s + lifetime_s,
        "jti": crate::clock::random_token(16),
    }))
}

/// A request object: `params` plus `iss` = `client_id`, `aud`, `iat` = `nbf` = now, `exp` = now
/// + `lifetime_s`, a fresh `jti`.
pub fn request_object(
    key: &SigningKey,
    client_id: &str,
    aud: &str,
    params: &[(&str, &str)],
    now_s: u64,
    lifetime_s: u64,
) -> Result<String, KeyError> {
    let mut claims = Map::new();
    for (k, v) in params {
        claims.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    claims.insert("iss".into(), client_id.into());
    claims.insert("aud".into(), aud.into());
    claims.insert("iat".into(), now_s.into());
    claims.insert("nbf".into(), now_s.into());
    claims.insert("exp".into(), (now_s + lifetime_s).into());
    claims.insert("jti".into(), crate::clock::random_token(16).into());
    key.sign(&Value::Object(claims))
}
