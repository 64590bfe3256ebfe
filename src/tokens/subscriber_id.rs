//! Encrypted subscriber ids for the Discovery API (`subscriber_id`, later sent back as
//! `ENCR_MSISDN:<id>`): AES-256-GCM over (MSISDN, expiry) with the client id as associated
//! data, so an id is useless to another client, after its expiry, or to anyone without the key.

use crate::msisdn::Msisdn;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Why a subscriber id was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriberIdError {
    /// Not ours, tampered with, or issued to another client.
    #[error("subscriber id is not valid for this client")]
    Invalid,
    /// Past its expiry.
    #[error("subscriber id has expired")]
    Expired,
}

/// Seals and opens subscriber ids.
pub struct SubscriberIds {
    key: LessSafeKey,
}

impl std::fmt::Debug for SubscriberIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriberIds([redacted])")
    }
}

impl SubscriberIds {
    /// Derives the AES key from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        let k = Sha256::new_with_prefix(b"mcgate subscriber-id v1\0").chain_update(secret).finalize();
        #[allow(clippy::expect_used)] // a SHA-256 output is always a valid AES-256 key
        let unbound = UnboundKey::new(&AES_256_GCM, &k).expect("32-byte AES key");
        Self { key: LessSafeKey::new(unbound) }
    }

    /// An id for `msisdn`, valid for `client_id` until `expires_at_s`.
    pub fn seal(&self, msisdn: &Msisdn, client_id: &str, expires_at_s: u64) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + 16 + 16);
        buf.extend_from_slice(&msisdn.value().to_be_bytes());
        buf.extend_from_slice(&expires_at_s.to_be_bytes());
        #[allow(clippy::expect_used)] // sealing into a Vec cannot fail for 16 bytes
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(client_id.as_bytes()), &mut buf)
            .expect("AES-GCM seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens an id presented by `client_id` at `now_s`.
    pub fn open(&self, id: &str, client_id: &str, now_s: u64) -> Result<Msisdn, SubscriberIdError> {
        let raw =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).map_err(|_| SubscriberIdError::Invalid)?;
        if raw.len() != NONCE_LEN + 16 + 16 {
            return Err(SubscriberIdError::Invalid);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SubscriberIdError::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(client_id.as_bytes()), &mut sealed)
            .map_err(|_| SubscriberIdError::Invalid)?;
        let mut m = [0u8; 8];
        let mut e = [0u8; 8];
        m.copy_from_slice(&plain[..8]);
        e.copy_from_slice(&plain[8..16]);
        if u64::from_be_bytes(e) <= now_s {
            return Err(SubscriberIdError::Expired);
        }
        Msisdn::from_digits(u64::from_be_bytes(m)).map_err(|_| SubscriberIdError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_client_and_expiry() {
        let s = SubscriberIds::new(&[1u8; 32]);
        let m = Msisdn::from_digits(34600000001).unwrap();
        let id = s.seal(&m, "rp-a", 1_000);
        assert_eq!(s.open(&id, "rp-a", 999), Ok(m));
        assert_eq!(s.open(&id, "rp-b", 999), Err(SubscriberIdError::Invalid));
        assert_eq!(s.open(&id, "rp-a", 1_000), Err(SubscriberIdError::Expired));
        assert_eq!(s.open("garbage", "rp-a", 1), Err(SubscriberIdError::Invalid));
        assert!(!id.contains("600000001"));
    }
}
