//! Keyed pseudonyms of MSISDNs for records that must link one person's events without naming
//! them (the audit trail): `p1:` + the first 96 bits of HMAC-SHA-256 over the E.164 number, with
//! a key derived from a gateway secret. Stable for as long as that secret is (every instance
//! sharing it gives the same pseudonym); without the secret the number cannot be recovered
//! (the key makes a dictionary of all numbers useless). Knows nothing about where it is written.

use crate::keyed_hash::KeyedHasher;

/// Computes pseudonyms with one key.
#[derive(Clone)]
pub struct Pseudonyms {
    mac: KeyedHasher,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms([redacted])")
    }
}

impl Pseudonyms {
    /// Keyed from `secret` with a label of its own, so the same secret serves other uses too.
    pub fn new(secret: &[u8]) -> Self {
        Self { mac: KeyedHasher::derived(b"mcgate msisdn pseudonym v1\0", secret) }
    }

    /// The pseudonym of the E.164 number `msisdn` (digits as an integer).
    pub fn of(&self, msisdn: u64) -> String {
        let out = self.mac.mac(&[&msisdn.to_be_bytes()]);
        let mut hex = [0u8; 24];
        // Sizes fixed: 2 hex digits per byte.
        let _ = hex::encode_to_slice(&out[..12], &mut hex);
        let mut p = String::with_capacity(3 + hex.len());
        p.push_str("p1:");
        p.push_str(std::str::from_utf8(&hex).unwrap_or(""));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_key_distinct_across_keys_and_numbers() {
        let a = Pseudonyms::new(&[1u8; 32]);
        let b = Pseudonyms::new(&[2u8; 32]);
        assert_eq!(a.of(34600000001), a.of(34600000001));
        assert_ne!(a.of(34600000001), a.of(34600000002));
        assert_ne!(a.of(34600000001), b.of(34600000001));
        assert!(!a.of(34600000001).contains("34600000001"));
        assert_eq!(a.of(1).len(), 3 + 24);
        // The audit trail's pseudonyms, computed independently: they must never change.
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let key = Sha256::new_with_prefix(b"mcgate msisdn pseudonym v1\0").chain_update([1u8; 32]).finalize();
        let mut m = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        m.update(&34600000001u64.to_be_bytes());
        assert_eq!(a.of(34600000001), format!("p1:{}", hex::encode(&m.finalize().into_bytes()[..12])));
    }
}
