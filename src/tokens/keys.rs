//! Gateway signing keys: RSA (≥ 2048 bits, RS256) and P-256 (ES256) PKCS#8 PEM keys, generated
//! with aws-lc-rs or loaded from files, each with a `kid` (its RFC 7638 thumbprint), `alg` and
//! `use`, and the public JWKS rendered once. The first key of each type signs; later keys of that
//! type are published only, so a new key can be published before it signs (rotation, see
//! certs/README.md).

use aws_lc_rs::encoding::AsDer;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::path::PathBuf;

/// Smallest RSA modulus accepted for a signing key, bits.
pub const MIN_RSA_BITS: usize = 2048;

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
    /// The algorithm this key signs with (RS256 or ES256).
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// Public JWK.
    pub jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// From a PKCS#8 (or PKCS#1) PEM RSA private key.
    pub fn from_rsa_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let encoding = EncodingKey::from_rsa_pem(pem).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::with_encoding(encoding, Algorithm::RS256)
    }

    /// From a PKCS#8 PEM P-256 private key.
    pub fn from_ec_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let encoding = EncodingKey::from_ec_pem(pem).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::with_encoding(encoding, Algorithm::ES256)
    }

    /// From a PEM private key of either accepted type: P-256 (PKCS#8) → ES256, RSA of at least
    /// [`MIN_RSA_BITS`] (PKCS#8 or PKCS#1) → RS256. Anything else is refused.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|e| KeyError::Invalid(format!("not PEM: {e}")))?;
        let der = parsed.contents();
        if aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .is_ok()
        {
            return Self::from_ec_pem(pem_text);
        }
        let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(der));
        match rsa {
            Ok(kp) if kp.public_modulus_len() * 8 >= MIN_RSA_BITS => Self::from_rsa_pem(pem_text),
            Ok(kp) => Err(KeyError::Invalid(format!(
                "RSA key of {} bits; at least {MIN_RSA_BITS} are required",
                kp.public_modulus_len() * 8
            ))),
            Err(_) => Err(KeyError::Invalid("neither an RSA nor a P-256 (PKCS#8) private key".into())),
        }
    }

    fn with_encoding(encoding: EncodingKey, alg: Algorithm) -> Result<Self, KeyError> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Invalid(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm =
            Some(if alg == Algorithm::ES256 { KeyAlgorithm::ES256 } else { KeyAlgorithm::RS256 });
        Ok(Self { kid, alg, encoding, jwk })
    }

    /// Signs `claims` as a compact JWS with this key's algorithm and `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.sign_full(self.alg, claims, None)
    }

    /// Signs with another algorithm of the same key family (an RSA key may sign PS256).
    pub fn sign_as<T: Serialize>(&self, alg: Algorithm, claims: &T) -> Result<String, KeyError> {
        self.sign_full(alg, claims, None)
    }

    /// As [`Self::sign`], with a `typ` header (e.g. `at+jwt`, RFC 9068).
    pub fn sign_typed<T: Serialize>(&self, claims: &T, typ: Option<&str>) -> Result<String, KeyError> {
        self.sign_full(self.alg, claims, typ)
    }

    fn sign_full<T: Serialize>(&self, alg: Algorithm, claims: &T, typ: Option<&str>) -> Result<String, KeyError> {
        let mut header = Header::new(alg);
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

/// A fresh P-256 private key as PKCS#8 PEM.
pub fn generate_p256_pkcs8_pem() -> Result<String, KeyError> {
    let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| KeyError::Invalid("P-256 key generation failed".into()))?;
    let der = kp.to_pkcs8v1().map_err(|_| KeyError::Invalid("P-256 key encoding failed".into()))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())))
}

/// The gateway's keys and its published JWKS.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    jwks_json: bytes::Bytes,
}

impl KeySet {
    /// Builds a set from keys; the first of each algorithm signs, all are published.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Invalid("at least one signing key is required".into()));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(KeyError::Invalid(format!("signing key {} is listed twice", i + 1)));
            }
        }
        let set = JwkSet { keys: keys.iter().map(|k| k.jwk.clone()).collect() };
        let jwks_json = serde_json::to_vec(&set).map_err(|e| KeyError::Invalid(e.to_string()))?.into();
        Ok(Self { keys, jwks_json })
    }

    /// One freshly generated RSA key and one P-256 key (tokens die with the process).
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_with(1)
    }

    /// `rsa_keys` fresh RSA keys (the first signs, the others are published only, as during a
    /// rotation) and one P-256 key. The demo uses two RSA keys so rotation shows in its JWKS.
    pub fn generate_with(rsa_keys: usize) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(rsa_keys + 1);
        for _ in 0..rsa_keys.max(1) {
            keys.push(SigningKey::from_rsa_pem(generate_rsa_pkcs8_pem()?.as_bytes())?);
        }
        keys.push(SigningKey::from_ec_pem(generate_p256_pkcs8_pem()?.as_bytes())?);
        Self::new(keys)
    }

    /// Loads PEM files (RSA ≥ 2048 bits or P-256, PKCS#8).
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            let pem = std::fs::read(p).map_err(|e| KeyError::Io(p.display().to_string(), e))?;
            keys.push(SigningKey::from_pem(&pem).map_err(|e| KeyError::Invalid(format!("{}: {e}", p.display())))?);
        }
        Self::new(keys)
    }

    /// The default signing key: the first RS256 key (the first key if there is none).
    pub fn active(&self) -> &SigningKey {
        self.signer(Algorithm::RS256).unwrap_or(&self.keys[0])
    }

    /// The key that signs with `alg`: the first of that algorithm.
    pub fn signer(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.alg == alg)
    }

    /// The algorithms some key can sign with, RS256 first (metadata).
    pub fn algorithms(&self) -> Vec<&'static str> {
        [(Algorithm::RS256, "RS256"), (Algorithm::ES256, "ES256")]
            .into_iter()
            .filter(|(a, _)| self.signer(*a).is_some())
            .map(|(_, n)| n)
            .collect()
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

    #[test]
    fn rotation_set_publishes_every_key_with_distinct_kids_and_the_first_of_each_type_signs() {
        let ks = KeySet::generate_with(2).unwrap();
        let set: JwkSet = serde_json::from_slice(&ks.jwks_json()).unwrap();
        assert_eq!(set.keys.len(), 3);
        let kids: std::collections::HashSet<_> = set.keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect();
        assert_eq!(kids.len(), 3, "distinct kids");
        assert_eq!(ks.active().kid, set.keys[0].common.key_id.clone().unwrap(), "first RSA key signs");
        let es = ks.signer(Algorithm::ES256).unwrap();
        let token = es.sign(&serde_json::json!({"sub": "y", "exp": 4_000_000_000u64})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let jwk = set.find(&header.kid.unwrap()).unwrap();
        assert_eq!(jwk.common.key_algorithm, Some(KeyAlgorithm::ES256));
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &v).is_ok());
        assert_eq!(ks.algorithms(), vec!["RS256", "ES256"]);
    }

    #[test]
    fn from_pem_accepts_rsa_and_p256_and_refuses_small_rsa_and_other_curves() {
        let rsa = SigningKey::from_pem(generate_rsa_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(rsa.alg, Algorithm::RS256);
        let ec = SigningKey::from_pem(generate_p256_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(ec.alg, Algorithm::ES256);
        // A P-384 key is neither.
        let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap();
        let p384 = pem::encode(&pem::Pem::new("PRIVATE KEY", p384.as_ref().to_vec()));
        assert!(SigningKey::from_pem(p384.as_bytes()).is_err());
        assert!(SigningKey::from_pem(b"not a key").is_err());
    }
}
