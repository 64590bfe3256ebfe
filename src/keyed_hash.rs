//! [`KeyedHasher`]: HMAC-SHA-256 with the key schedule done once, at start-up. Every keyed hash of
//! an MSISDN or a secret goes through it: the push-capability cache keys and SMS code MACs
//! (`sms::otp`, length-prefixed parts under the SMS HMAC secret), the audit trail's `p1:`
//! pseudonyms (`telemetry::pseudonym`, a key derived from the pairwise secret under its own
//! label) and the log lines' `msisdn_ref` (`telemetry::msisdn_ref`, the log key). Each use keeps
//! its own key, so one audience's values never link to another's; a per-use domain label
//! (first part, or in the key derivation) separates uses that share a key.
//!
//! Owns: the keyed state and the two input framings. Must not know: what the digests name.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA-256 under one key, its inner and outer pads already absorbed: a use clones the
/// state (two SHA-256 states, about 200 bytes) instead of hashing the key twice.
#[derive(Clone)]
pub struct KeyedHasher {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher([redacted])")
    }
}

impl KeyedHasher {
    /// Keyed by `key` itself (any length).
    pub fn new(key: &[u8]) -> Self {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        Self { keyed }
    }

    /// Keyed by `SHA-256(label ‖ secret)`: a key of its own for one use of a shared secret.
    pub fn derived(label: &[u8], secret: &[u8]) -> Self {
        Self::new(&Sha256::new_with_prefix(label).chain_update(secret).finalize())
    }

    /// `HMAC(key, parts[0] ‖ parts[1] ‖ …)`: the parts as one message.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// `HMAC(key, len(parts[0]) ‖ parts[0] ‖ …)`, each length a big-endian `u64`: no two
    /// different part lists give the same message. By convention `parts[0]` is the use's label.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HMAC-SHA-256 from scratch, keyed per call (what the three uses computed before).
    fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn mac_is_hmac_of_the_concatenation_and_state_is_reused_cleanly() {
        let k = KeyedHasher::new(b"key one, thirty-two bytes long!!");
        let want = hmac(b"key one, thirty-two bytes long!!", b"+34600000001");
        assert_eq!(k.mac(&[b"+", b"34600000001"]), want);
        assert_eq!(k.mac(&[b"+34600000001"]), want, "a second use starts from the keyed state again");
        // RFC 4231 test case 2.
        let rfc = KeyedHasher::new(b"Jefe").mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(rfc), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // A key longer than a block is hashed first, as HMAC specifies.
        let long = [0xaau8; 131];
        assert_eq!(KeyedHasher::new(&long).mac(&[b"x"]), hmac(&long, b"x"));
    }

    #[test]
    fn digest_length_prefixes_every_part() {
        let k = KeyedHasher::new(&[7u8; 32]);
        let mut msg = Vec::new();
        for p in [&b"mcgate label v1"[..], b"op", &34600000001u64.to_be_bytes()] {
            msg.extend_from_slice(&(p.len() as u64).to_be_bytes());
            msg.extend_from_slice(p);
        }
        assert_eq!(k.digest(&[b"mcgate label v1", b"op", &34600000001u64.to_be_bytes()]), hmac(&[7u8; 32], &msg));
        assert_ne!(k.digest(&[b"ab", b"c"]), k.digest(&[b"a", b"bc"]), "framing keeps parts apart");
    }

    #[test]
    fn derived_keys_are_labelled_and_distinct() {
        let secret = [1u8; 32];
        let key = Sha256::new_with_prefix(b"label a\0").chain_update(secret).finalize();
        assert_eq!(KeyedHasher::derived(b"label a\0", &secret).mac(&[b"m"]), hmac(&key, b"m"));
        assert_ne!(
            KeyedHasher::derived(b"label a\0", &secret).mac(&[b"m"]),
            KeyedHasher::derived(b"label b\0", &secret).mac(&[b"m"])
        );
        assert_eq!(format!("{:?}", KeyedHasher::new(&secret)), "KeyedHasher([redacted])");
    }
}
