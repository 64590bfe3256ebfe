//! Pairwise subject identifiers: `sub = base64url(HMAC-SHA-256(secret, sector ‖ 0x00 ‖ E.164))`.
//! Stable for one person within a sector (RPs that share `sector_identifier` see the same
//! `sub`), unlinkable across sectors, and never the MSISDN itself.

use crate::msisdn::Msisdn;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Computes pairwise subjects with one secret.
#[derive(Clone)]
pub struct PairwiseSubjects {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for PairwiseSubjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseSubjects([redacted])")
    }
}

impl PairwiseSubjects {
    /// From a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        Self { mac }
    }

    /// The subject of `msisdn` for `sector`.
    pub fn subject(&self, sector: &str, msisdn: &Msisdn) -> String {
        let mut m = self.mac.clone();
        m.update(sector.as_bytes());
        m.update(&[0]);
        m.update(msisdn.digits().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_within_a_sector_and_unlinkable_across() {
        let p = PairwiseSubjects::new(&[7u8; 32]);
        let m = Msisdn::from_digits(34600000001).unwrap();
        let a = p.subject("bank.example", &m);
        assert_eq!(a, p.subject("bank.example", &m));
        assert_ne!(a, p.subject("townhall.example", &m));
        assert!(!a.contains("600000001"));
        assert_eq!(a.len(), 43);
    }
}
