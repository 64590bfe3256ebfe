//! Pairwise subject identifiers (`sub`), stable for one person within a sector (RPs that share
//! `sector_identifier` see the same `sub`), unlinkable across sectors, never the MSISDN itself —
//! and resolvable by us alone, so an RP can send `login_hint=PCR:<sub>` (shared/protocol.md §6).
//!
//! `sub = base64url(nonce ‖ AES-256-GCM-SIV(k_enc, nonce, E.164 as u64, aad = sector))` with
//! `nonce = HMAC-SHA-256(k_mac, sector ‖ 0x00 ‖ E.164)[..12]`: deterministic (the same inputs give
//! the same `sub`), and GCM-SIV stays safe even though the nonce is derived, not random. Opening
//! checks the tag with the presenting client's sector as associated data, then recomputes the
//! nonce, so only the canonical `sub` of that sector resolves. Both keys come from one secret.

use crate::msisdn::Msisdn;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV, NONCE_LEN};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const SEALED_LEN: usize = NONCE_LEN + 8 + 16;

/// Computes and resolves pairwise subjects with one secret.
pub struct PairwiseSubjects {
    mac: Hmac<Sha256>,
    key: LessSafeKey,
}

impl std::fmt::Debug for PairwiseSubjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseSubjects([redacted])")
    }
}

impl PairwiseSubjects {
    /// From a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        let derive = |label: &[u8]| Sha256::new_with_prefix(label).chain_update(secret).finalize();
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mac = Hmac::<Sha256>::new_from_slice(&derive(b"mcgate pairwise mac v2\0")).expect("HMAC key");
        #[allow(clippy::expect_used)] // a SHA-256 output is always a valid AES-256 key
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM_SIV, &derive(b"mcgate pairwise enc v2\0")).expect("32-byte AES key"),
        );
        Self { mac, key }
    }

    fn nonce(&self, sector: &str, msisdn: u64) -> [u8; NONCE_LEN] {
        let mut m = self.mac.clone();
        m.update(sector.as_bytes());
        m.update(&[0]);
        m.update(&msisdn.to_be_bytes());
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&m.finalize().into_bytes()[..NONCE_LEN]);
        n
    }

    /// The subject of `msisdn` for `sector`.
    pub fn subject(&self, sector: &str, msisdn: &Msisdn) -> String {
        let nonce = self.nonce(sector, msisdn.value());
        let mut buf = Vec::with_capacity(SEALED_LEN);
        buf.extend_from_slice(&msisdn.value().to_be_bytes());
        #[allow(clippy::expect_used)] // sealing 8 bytes into a Vec cannot fail
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(sector.as_bytes()), &mut buf)
            .expect("AES-GCM-SIV seal");
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// The person behind `sub`, if it is the canonical subject of someone in `sector`.
    pub fn resolve(&self, sector: &str, sub: &str) -> Option<Msisdn> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sub).ok()?;
        if raw.len() != SEALED_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(Nonce::try_assume_unique_for_key(nonce).ok()?, Aad::from(sector.as_bytes()), &mut sealed)
            .ok()?;
        let value = u64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        (self.nonce(sector, value)[..] == *nonce).then_some(())?;
        Msisdn::from_digits(value).ok()
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
        let b = p.subject("townhall.example", &m);
        assert_ne!(a, b);
        assert!(!a.contains("600000001"));
        assert_eq!(a.len(), 48);
        // No shared bytes to link them: different nonces, different ciphertexts.
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a, PairwiseSubjects::new(&[8u8; 32]).subject("bank.example", &m), "keyed");
    }

    #[test]
    fn resolves_only_within_its_own_sector() {
        let p = PairwiseSubjects::new(&[7u8; 32]);
        let m = Msisdn::from_digits(34600000001).unwrap();
        let a = p.subject("bank.example", &m);
        assert_eq!(p.resolve("bank.example", &a), Some(m));
        assert_eq!(p.resolve("townhall.example", &a), None, "another sector's RP cannot use it");
        assert_eq!(p.resolve("bank.example", "garbage"), None);
        let mut tampered = a.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(p.resolve("bank.example", std::str::from_utf8(&tampered).unwrap()), None);
        assert_eq!(PairwiseSubjects::new(&[8u8; 32]).resolve("bank.example", &a), None, "other key");
    }
}
