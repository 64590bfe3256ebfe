//! The MSISDN pseudonym of log lines (shared/security.md S-34): `msisdn_ref`, the first
//! [`REF_BYTES`] bytes of `HMAC-SHA-256(log key, "+" E.164)` in hex. The same number gives the same
//! reference while the key lasts, so an operator can follow one person's requests through the
//! logs, and only whoever holds the key can test a guess (a plain hash of a 9-digit national
//! range is reversed in seconds). The key comes from `keys.log_pseudonym_secret_file`, or is
//! generated at start (references then change with every restart).
//!
//! Owns: the key and the reference. Must not know: where it is printed.

use crate::keyed_hash::KeyedHasher;
use crate::msisdn::Msisdn;

/// Bytes of the HMAC kept (64 bits: no collision among a few billion numbers is likely, and
/// too short to be mistaken for a full hash).
pub const REF_BYTES: usize = 8;

/// Keyed MSISDN references for log lines.
#[derive(Clone)]
pub struct MsisdnPseudonyms {
    /// The HMAC with the key already absorbed.
    keyed: KeyedHasher,
}

impl std::fmt::Debug for MsisdnPseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsisdnPseudonyms([redacted])")
    }
}

impl MsisdnPseudonyms {
    /// From the log key (any length; ≥ 32 bytes in practice).
    pub fn new(key: &[u8]) -> Self {
        Self { keyed: KeyedHasher::new(key) }
    }

    /// The reference of `msisdn`: [`REF_BYTES`] × 2 lowercase hex digits.
    pub fn reference(&self, msisdn: Msisdn) -> MsisdnRef {
        let mut digits = itoa::Buffer::new();
        let full = self.keyed.mac(&[b"+", digits.format(msisdn.value()).as_bytes()]);
        let mut out = [0u8; REF_BYTES * 2];
        // Sizes fixed: 2 hex digits per byte.
        let _ = hex::encode_to_slice(&full[..REF_BYTES], &mut out);
        MsisdnRef(out)
    }
}

/// An MSISDN reference (displays as its hex digits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MsisdnRef([u8; REF_BYTES * 2]);

impl MsisdnRef {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for MsisdnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for MsisdnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MsisdnRef({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    #[test]
    fn references_are_keyed_stable_and_never_the_number() {
        let m = Msisdn::from_digits(34600000001).unwrap();
        let a = MsisdnPseudonyms::new(b"key one, thirty-two bytes long!!");
        let b = MsisdnPseudonyms::new(b"key two, thirty-two bytes long!!");
        let r = a.reference(m);
        assert_eq!(r, a.reference(m), "stable under one key");
        assert_ne!(r, b.reference(m), "another key, another reference");
        assert_ne!(r, a.reference(Msisdn::from_digits(34600000002).unwrap()));
        assert_eq!(r.as_str().len(), 16);
        assert!(r.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(!r.as_str().contains("600000001"));
        // HMAC-SHA-256(key, "+34600000001") computed independently.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key one, thirty-two bytes long!!").unwrap();
        mac.update(b"+34600000001");
        assert_eq!(r.as_str(), hex::encode(&mac.finalize().into_bytes()[..REF_BYTES]));
    }
}
