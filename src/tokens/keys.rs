//! Gateway signing keys: RSA-2048 (RS256) keys generated with aws-lc-rs or loaded from PKCS#8
//! PEM files, each with a `kid` (its RFC 7638 thumbprint), and the public JWKS rendered once.
//! The first key signs; every key is published, so a new key can be published before it signs.

use aws_lc_rs::encoding::AsDer;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::path::PathBuf;

/// Key loading, generation or signing failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A key is not usable.
    #[error("invalid key: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// One signing key.
pub struct SigningKey {
    /// Key id published in the JWKS and set in every token header.
    pub kid: String,
    encoding: EncodingKey,
    /// Public JWK.
    pub jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// From a PKCS#8 (or PKCS#1) PEM RSA private key.
    pub fn from_rsa_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let encoding = EncodingKey::from_rsa_pem(pem).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Invalid(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self { kid, encoding, jwk })
    }

    /// Signs `claims` as a compact RS256 JWS with this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.sign_typed(claims, None)
    }

    /// As [`Self::sign`], with a `typ` header (e.g. `at+jwt`, RFC 9068).
    pub fn sign_typed<T: Serialize>(&self, claims: &T, typ: Option<&str>) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        if let Some(t) = typ {
            header.typ = Some(t.to_owned());
        }
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// A fresh RSA-2048 private key as PKCS#8 PEM.
pub fn generate_rsa_pkcs8_pem() -> Result<String, KeyError> {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
        .map_err(|_| KeyError::Invalid("RSA key encoding failed".into()))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())))
}

/// The gateway's keys and its published JWKS.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    jwks_json: bytes::Bytes,
}

impl KeySet {
    /// Builds a set from keys; the first signs.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Invalid("at least one signing key is required".into()));
        }
        let set = JwkSet { keys: keys.iter().map(|k| k.jwk.clone()).collect() };
        let jwks_json = serde_json::to_vec(&set).map_err(|e| KeyError::Invalid(e.to_string()))?.into();
        Ok(Self { keys, jwks_json })
    }

    /// One freshly generated RSA key (demo and tests: tokens die with the process).
    pub fn generate() -> Result<Self, KeyError> {
        let pem = generate_rsa_pkcs8_pem()?;
        Self::new(vec![SigningKey::from_rsa_pem(pem.as_bytes())?])
    }

    /// Loads PEM files.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            let pem = std::fs::read(p).map_err(|e| KeyError::Io(p.display().to_string(), e))?;
            keys.push(SigningKey::from_rsa_pem(&pem).map_err(|e| KeyError::Invalid(format!("{}: {e}", p.display())))?);
        }
        Self::new(keys)
    }

    /// The signing key.
    pub fn active(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The verification key of one of our keys, by `kid`.
    pub fn decoding_key(&self, kid: &str) -> Option<jsonwebtoken::DecodingKey> {
        let k = self.keys.iter().find(|k| k.kid == kid)?;
        jsonwebtoken::DecodingKey::from_jwk(&k.jwk).ok()
    }

    /// The public JWKS document.
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn generated_key_signs_tokens_its_jwks_verifies() {
        let ks = KeySet::generate().unwrap();
        let token = ks.active().sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64})).unwrap();
        let set: JwkSet = serde_json::from_slice(&ks.jwks_json()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "x");
        assert!(!String::from_utf8_lossy(&ks.jwks_json()).contains("\"d\""), "private part must not be published");
    }
}
