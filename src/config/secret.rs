//! Secrets as a type: [`Secret`] holds a value that must never be printed. `Debug` and
//! `Display` say `[redacted]`, there is no `Serialize` and no `PartialEq` (compare with
//! [`Secret::ct_eq`], which is constant time), and reading the value is an explicit
//! [`Secret::expose`].

use serde::{Deserialize, Deserializer};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string (operator client secret, notification token, key material path content).
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself: only for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// SHA-256 of a client secret, as 64 lowercase hex digits: what `routing.toml` stores for RPs.
pub fn secret_sha256_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh client secret (256 random bits, base64url) and its SHA-256 for `routing.toml`.
pub fn generate_client_secret() -> (Secret, String) {
    let s = crate::clock::random_token(32);
    let h = secret_sha256_hex(&s);
    (Secret(s), h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert!(s.ct_eq("hunter2"));
        assert!(!s.ct_eq("hunter3"));
    }

    #[test]
    fn generated_secrets_hash_to_their_hex() {
        let (s, h) = generate_client_secret();
        assert_eq!(secret_sha256_hex(s.expose()), h);
        assert_eq!(h.len(), 64);
    }
}
