//! A relying party's public JWKS as written in `routing.toml` (`jwks`) or a `jwks_file`: parsed
//! and checked once, so a key the gateway could never use is a load error naming the client, not
//! a 401 at run time. Accepted: RSA keys of at least 2048 bits and EC P-256 keys, public parts
//! only, distinct `kid`s, `use` absent or `sig`. Also used on JWKS fetched from a `jwks_uri`.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};

/// Smallest RSA modulus accepted in a client key, bits.
pub const MIN_CLIENT_RSA_BITS: usize = 2048;

/// Members that only a private key has: a client must never hand those to us.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Parses and checks JWKS text; the error says what is wrong (never echoes key material).
pub fn parse_client_jwks(text: &str) -> Result<JwkSet, String> {
    let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let keys = raw.get("keys").and_then(|k| k.as_array()).ok_or("must be a JWKS object: {\"keys\": [...]}")?;
    if keys.is_empty() {
        return Err("the JWKS holds no key".into());
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| k.get(**m).is_some()) {
            return Err(format!("keys[{i}] has the private member {m:?}: publish public keys only"));
        }
    }
    let set: JwkSet = serde_json::from_value(raw).map_err(|e| format!("not a usable JWKS: {e}"))?;
    for (i, k) in set.keys.iter().enumerate() {
        match &k.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                use base64::Engine;
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(rsa.n.trim_end_matches('='))
                    .map_err(|_| format!("keys[{i}].n is not base64url"))?;
                let bits = n.iter().position(|b| *b != 0).map_or(0, |lead| (n.len() - lead) * 8);
                if bits < MIN_CLIENT_RSA_BITS {
                    return Err(format!("keys[{i}] is an RSA key under {MIN_CLIENT_RSA_BITS} bits"));
                }
            }
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
            _ => return Err(format!("keys[{i}] is neither an RSA nor an EC P-256 key")),
        }
        if matches!(&k.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            return Err(format!("keys[{i}] is not a signature key (\"use\" must be \"sig\" or absent)"));
        }
        if let Some(kid) = &k.common.key_id {
            if set.keys[..i].iter().any(|o| o.common.key_id.as_deref() == Some(kid)) {
                return Err(format!("keys[{i}] repeats kid {:?}", crate::rp::form::printable(kid)));
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_jwks() -> String {
        let k = crate::tokens::keys::SigningKey::from_pem(
            crate::tokens::keys::generate_p256_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        serde_json::to_string(&JwkSet { keys: vec![k.jwk] }).unwrap()
    }

    #[test]
    fn accepts_public_p256_and_rsa_keys() {
        assert_eq!(parse_client_jwks(&ec_jwks()).unwrap().keys.len(), 1);
        let rsa = crate::tokens::keys::SigningKey::from_pem(
            crate::tokens::keys::generate_rsa_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        let text = serde_json::to_string(&JwkSet { keys: vec![rsa.jwk] }).unwrap();
        assert!(parse_client_jwks(&text).is_ok());
    }

    #[test]
    fn refuses_private_parts_symmetric_keys_duplicates_and_junk() {
        let mut v: serde_json::Value = serde_json::from_str(&ec_jwks()).unwrap();
        v["keys"][0]["d"] = "AAAA".into();
        assert!(parse_client_jwks(&v.to_string()).unwrap_err().contains("private"));
        assert!(parse_client_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        let one: serde_json::Value = serde_json::from_str(&ec_jwks()).unwrap();
        let twice = serde_json::json!({"keys": [one["keys"][0], one["keys"][0]]});
        assert!(parse_client_jwks(&twice.to_string()).unwrap_err().contains("repeats kid"));
        assert!(parse_client_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_client_jwks("[]").is_err());
        assert!(parse_client_jwks("{").is_err());
        let small = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#;
        assert!(parse_client_jwks(small).unwrap_err().contains("2048"));
    }
}
